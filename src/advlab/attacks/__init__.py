"""advlab.attacks"""
