"""Models: HF chat LMs, small torch classifiers, the zoo of embedded defaults."""

from advlab.models.classifiers import build_classifier, load_classifier, save_classifier
from advlab.models.segments import PromptSegments


def load_chat_model(*args, **kwargs):
    """Load any HF causal LM and its tokenizer (see :func:`advlab.models.chat.load_chat_model`)."""
    from advlab.models.chat import load_chat_model as _load

    return _load(*args, **kwargs)


__all__ = ["PromptSegments", "build_classifier", "load_chat_model", "load_classifier", "save_classifier"]
