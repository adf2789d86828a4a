"""Schedules that repeat: ``CyclicLR`` (Smith 2017) and ``CosineAnnealingWarmRestarts``
(SGDR, Loshchilov & Hutter 2017). Both are in closed form in the step count."""

from __future__ import annotations

import math

from ..optimizer import is_real_number
from .base import LRScheduler, check, is_int, momentum_range, param_groups_of, per_group, write_momentum


class CyclicLR(LRScheduler):
    """PyTorch's ``CyclicLR``: the lr goes back and forth between ``base_lr`` and ``max_lr``.

    A cycle is ``S = step_size_up + step_size_down`` steps (``step_size_down`` defaults to
    ``step_size_up``). At step ``t``, with ``r = step_size_up / S``::

        cycle = floor(1 + t / S)          x = 1 + t / S - cycle       (in [0, 1))
        h     = x / r                     if x <= r  (rising)
              = (x - 1) / (r - 1)         otherwise  (falling)
        lr    = base_lr + (max_lr - base_lr) · h · scale

    ``scale`` is 1 (``mode="triangular"``), ``1 / 2^(cycle - 1)`` (``"triangular2"``: the
    height halves each cycle), ``gamma^t`` (``"exp_range"``), or ``scale_fn(cycle)`` /
    ``scale_fn(t)`` (``scale_mode`` ``"cycle"`` / ``"iterations"``). With
    ``cycle_momentum`` the momentum (SGD's ``momentum`` or Adam's ``β1``) moves the other
    way, ``max_momentum - (max_momentum - base_momentum) · h · scale``. Building it sets
    every group's lr to ``base_lr`` (its ``base_lrs``). A ``scale_fn`` is not saved in
    ``state_dict()``: rebuild with the same function before loading.
    """

    _not_saved = ("optimizer", "scale_fn")
    MODES = ("triangular", "triangular2", "exp_range")

    def __init__(self, optimizer, base_lr, max_lr, step_size_up: int = 2000, step_size_down: int | None = None,
                 mode: str = "triangular", gamma: float = 1.0, scale_fn=None, scale_mode: str = "cycle",
                 cycle_momentum: bool = True, base_momentum=0.8, max_momentum=0.9, last_epoch: int = -1):
        groups = param_groups_of(optimizer)
        base_lrs, max_lrs = per_group("base_lr", base_lr, groups), per_group("max_lr", max_lr, groups)
        for value in base_lrs + max_lrs:
            check(is_real_number(value) and value >= 0, "base_lr and max_lr", "numbers >= 0 (or one per group)", value)
        step_size_down = step_size_up if step_size_down is None else step_size_down
        for name, value in (("step_size_up", step_size_up), ("step_size_down", step_size_down)):
            check(is_int(value) and value >= 1, name, "an integer >= 1", value)
        if scale_fn is None:
            check(mode in self.MODES, "mode", f"one of {self.MODES} (or give scale_fn)", mode)
            scale_mode = "iterations" if mode == "exp_range" else "cycle"
        else:
            check(callable(scale_fn), "scale_fn", "a function of the cycle or step", scale_fn)
            check(scale_mode in ("cycle", "iterations"), "scale_mode", "'cycle' or 'iterations'", scale_mode)
        if cycle_momentum:
            self.use_beta1, self.base_momentums, self.max_momentums = momentum_range(optimizer, base_momentum, max_momentum)
        if last_epoch == -1:
            for group, lr in zip(groups, base_lrs):
                group["lr"] = group["initial_lr"] = lr
        self.max_lrs = max_lrs
        self.total_size = step_size_up + step_size_down
        self.step_ratio = step_size_up / self.total_size
        self.mode, self.gamma, self.scale_fn, self.scale_mode = mode, gamma, scale_fn, scale_mode
        self.cycle_momentum = cycle_momentum
        super().__init__(optimizer, last_epoch)

    def _height_and_scale(self) -> tuple[float, float]:
        """``h`` and ``scale`` at step ``last_epoch`` (see the class docstring)."""
        t = self.last_epoch
        cycle = math.floor(1 + t / self.total_size)
        x = 1.0 + t / self.total_size - cycle
        height = x / self.step_ratio if x <= self.step_ratio else (x - 1) / (self.step_ratio - 1)
        argument = cycle if self.scale_mode == "cycle" else t
        if self.scale_fn is not None:
            return height, self.scale_fn(argument)
        return height, {"triangular": 1.0, "triangular2": 1 / 2.0 ** (cycle - 1), "exp_range": self.gamma**t}[self.mode]

    def get_lr(self) -> list:
        height, scale = self._height_and_scale()
        return [base + (peak - base) * height * scale for base, peak in zip(self.base_lrs, self.max_lrs)]

    def step(self) -> None:
        """Advance one step: set every group's lr and, with ``cycle_momentum``, its momentum."""
        super().step()
        if self.cycle_momentum:
            height, scale = self._height_and_scale()
            momenta = [peak - (peak - base) * height * scale for base, peak in zip(self.base_momentums, self.max_momentums)]
            write_momentum(self.optimizer.param_groups, momenta, self.use_beta1)


class CosineAnnealingWarmRestarts(LRScheduler):
    """SGDR: a cosine from ``base_lr`` down towards ``eta_min`` over ``T_i`` steps, then a
    jump back to ``base_lr`` (a warm restart); each period is ``T_mult`` times the last::

        T_0, T_0·T_mult, T_0·T_mult², ...   periods;   T_cur = steps since the last restart
        lr = eta_min + (base_lr - eta_min) · (1 + cos(π · T_cur / T_i)) / 2

    ``T_cur`` and ``T_i`` (PyTorch's names) follow from the step count alone.
    """

    def __init__(self, optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0, last_epoch: int = -1):
        check(is_int(T_0) and T_0 >= 1, "T_0", "a positive integer", T_0)
        check(is_int(T_mult) and T_mult >= 1, "T_mult", "an integer >= 1", T_mult)
        check(is_real_number(eta_min), "eta_min", "a number", eta_min)
        self.T_0, self.T_mult, self.eta_min = T_0, T_mult, eta_min
        self.T_i, self.T_cur = T_0, last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self.T_i, self.T_cur = self.T_0, self.last_epoch
        if self.T_mult == 1:
            self.T_cur %= self.T_0
        while self.T_cur >= self.T_i:
            self.T_cur -= self.T_i
            self.T_i *= self.T_mult
        cosine = (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
        return [self.eta_min + (base_lr - self.eta_min) * cosine for base_lr in self.base_lrs]
