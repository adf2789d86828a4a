"""``ReduceLROnPlateau``: divide the lr when a monitored metric stops improving.

Unlike every other schedule here it is stepped with the metric, once per epoch
(``scheduler.step(val_loss)``), and it is not in closed form: the lr depends on the
history of the metric.
"""

from __future__ import annotations

import math

from ..optimizer import is_real_number
from .base import LRScheduler, check, is_int, param_groups_of, per_group


class ReduceLROnPlateau(LRScheduler):
    """PyTorch's ``ReduceLROnPlateau``, step for step.

    A metric value ``a`` improves on the best so far when (``threshold = τ``)::

        mode="min": a < best · (1 - τ)  ("rel")   or   a < best - τ  ("abs")
        mode="max": a > best · (1 + τ)  ("rel")   or   a > best + τ  ("abs")

    After more than ``patience`` epochs without improvement, every group's lr becomes
    ``max(lr · factor, min_lr)`` (unless that changes it by ``eps`` or less), and then
    ``cooldown`` epochs pass before bad epochs count again. ``last_epoch`` counts the
    ``step(metric)`` calls; building the scheduler does not step.
    """

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr=0, eps: float = 1e-8):
        groups = param_groups_of(optimizer)
        check(mode in ("min", "max"), "mode", "'min' or 'max'", mode)
        check(threshold_mode in ("rel", "abs"), "threshold_mode", "'rel' or 'abs'", threshold_mode)
        check(is_real_number(factor) and 0 <= factor < 1, "factor", "a number in [0, 1) (Factor should be < 1.0)", factor)
        check(is_int(patience) and patience >= 0, "patience", "an integer >= 0", patience)
        check(is_int(cooldown) and cooldown >= 0, "cooldown", "an integer >= 0", cooldown)
        for name, value in (("threshold", threshold), ("eps", eps)):
            check(is_real_number(value) and value >= 0, name, "a number >= 0", value)
        self.optimizer = optimizer
        self.min_lrs = per_group("min_lr", min_lr, groups)
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.eps = cooldown, eps
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0
        self.last_epoch = 0
        self.base_lrs = [group["lr"] for group in groups]
        self._last_lr = [group["lr"] for group in groups]

    def is_better(self, a: float, best: float) -> bool:
        if self.mode == "min":
            return a < best * (1 - self.threshold) if self.threshold_mode == "rel" else a < best - self.threshold
        return a > best * (1 + self.threshold) if self.threshold_mode == "rel" else a > best + self.threshold

    def step(self, metrics) -> None:
        """Record one epoch's metric (a number or a one-element tensor); maybe reduce the lr."""
        current = float(metrics.item() if hasattr(metrics, "item") else metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                new_lr = max(group["lr"] * self.factor, min_lr)
                if group["lr"] - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
