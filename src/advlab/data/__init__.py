"""Data: behaviours, the built-in safety gym, instruction and task sets, image sets."""

from advlab.data.behavior_loaders import load_behaviors, load_harmless, overlap
from advlab.data.behavior_record import Behavior
from advlab.data.images import load_digits_split, load_image_split

__all__ = ["Behavior", "load_behaviors", "load_digits_split", "load_harmless", "load_image_split", "overlap"]
