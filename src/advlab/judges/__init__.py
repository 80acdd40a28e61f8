"""advlab.judges"""
