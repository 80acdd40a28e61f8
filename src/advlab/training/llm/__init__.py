"""advlab.training.llm"""
