"""Data: behaviours, the built-in safety gym, instruction and task sets, image sets."""

from advlab.data.images import load_digits_split, load_image_split

__all__ = ["load_digits_split", "load_image_split"]
