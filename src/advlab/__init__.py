"""advlab: a laboratory for the adversarial robustness of classifiers and LLMs."""

__version__ = "0.1.0"
