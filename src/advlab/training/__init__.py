"""advlab.training"""
