"""advlab.attacks.classifier"""
