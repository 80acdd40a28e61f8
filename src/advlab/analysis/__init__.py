"""advlab.analysis"""
