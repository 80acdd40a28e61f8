"""advlab.training.classifier"""
