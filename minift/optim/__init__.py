"""Optimizers with param groups, gradient clipping, and learning-rate schedules.

``SGD``, ``Adam`` and ``AdamW`` follow PyTorch's update rules step for step; the
schedules are in ``minift.optim.lr_scheduler``.
"""

from . import lr_scheduler
from .adam import Adam, AdamW
from .clip import clip_grad_norm_, clip_grad_value_
from .optimizer import Optimizer, required
from .sgd import SGD

__all__ = ["Optimizer", "required", "SGD", "Adam", "AdamW", "clip_grad_norm_", "clip_grad_value_", "lr_scheduler"]
