"""advlab.attacks.llm"""
