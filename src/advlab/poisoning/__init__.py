"""advlab.poisoning"""
