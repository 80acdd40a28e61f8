"""Classifier training: standard, PGD-AT (Madry et al. 2018) and TRADES (Zhang et al. 2019).

The epoch pieces (:func:`train_epoch`, :func:`iterate_batches`, :func:`evaluate_accuracy`) take any
``loss_fn(model, x, y) -> scalar`` and are reused by robustness-congruent fine-tuning; the command
``advlab train classifier`` is :mod:`advlab.pipelines.train_classifier`.
"""

from advlab.training.classifier.checkpoint import load_checkpoint, save_checkpoint
from advlab.training.classifier.epoch import evaluate_accuracy, iterate_batches, train_epoch
from advlab.training.classifier.pgd_at import pgd_at_loss
from advlab.training.classifier.standard import standard_loss
from advlab.training.classifier.trades import trades_adversary, trades_loss
from advlab.training.classifier.train_config import TrainConfig, make_optimizer

__all__ = [
    "TrainConfig",
    "evaluate_accuracy",
    "iterate_batches",
    "load_checkpoint",
    "make_optimizer",
    "pgd_at_loss",
    "save_checkpoint",
    "standard_loss",
    "trades_adversary",
    "trades_loss",
    "train_epoch",
]
