"""Optimizers with param groups, gradient clipping, and learning-rate schedules.

``SGD``, ``Adam``, ``AdamW``, ``RMSprop``, ``Adagrad``, ``NAdam`` and ``RAdam`` follow
PyTorch's update rules step for step, one file each; the schedules are in the package
``minift.optim.lr_scheduler``.
"""

from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .clip import clip_grad_norm_, clip_grad_value_
from .nadam import NAdam
from .optimizer import Optimizer, required
from .radam import RAdam
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "required", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "NAdam", "RAdam", "clip_grad_norm_", "clip_grad_value_", "lr_scheduler"]
