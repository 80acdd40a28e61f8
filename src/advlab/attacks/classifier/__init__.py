"""Classifier attacks: FGSM, PGD (L∞/L2), APGD-CE / APGD-T, a black-box noise check, worst-case evaluation.

All share one gradient loop (:mod:`.loop`) with small hooks (start, step direction, projection, domain
clip from :mod:`.constraints`). Inputs are in [0, 1], the model returns logits::

    from advlab.attacks.classifier import PGD, APGD, FGSM, WorstCase
    x_adv = PGD(eps=0.1, steps=40, norm="linf")(model, x, y)
    result = WorstCase(eps=0.1).evaluate(model, x, y)   # robust accuracy per attack and overall
"""

from advlab.attacks.classifier.apgd import APGD, apgd_ce, apgd_t
from advlab.attacks.classifier.base import AttackResult
from advlab.attacks.classifier.constraints import Box, L2Ball, LinfBall, make_ball, perturbation_norms
from advlab.attacks.classifier.fgsm import FGSM
from advlab.attacks.classifier.loop import attack_mode, gradient_loop
from advlab.attacks.classifier.noise import RandomNoise
from advlab.attacks.classifier.pgd import PGD
from advlab.attacks.classifier.validate import RobustnessWarning
from advlab.attacks.classifier.worst_case import WorstCase, WorstCaseResult, default_attacks

__all__ = [
    "APGD",
    "FGSM",
    "PGD",
    "AttackResult",
    "Box",
    "L2Ball",
    "LinfBall",
    "RandomNoise",
    "RobustnessWarning",
    "WorstCase",
    "WorstCaseResult",
    "apgd_ce",
    "apgd_t",
    "attack_mode",
    "default_attacks",
    "gradient_loop",
    "make_ball",
    "perturbation_norms",
]
