"""Schedules that ramp the lr up, then anneal it: the fine-tuning schedules.

``OneCycleLR`` (Smith & Topin 2018; fastai's ``fit_one_cycle``), ``SlantedTriangularLR``
(ULMFiT, Howard & Ruder 2018) and ``CosineWarmupLR`` (linear warm-up, then cosine, as in
BERT-style fine-tuning). A short warm-up keeps the first, large gradients of a freshly
initialised head from wrecking the pretrained weights; the long anneal then settles them.
All are stepped per batch.
"""

from __future__ import annotations

import math

from ..optimizer import is_real_number
from .base import LRScheduler, check, is_int, momentum_range, param_groups_of, per_group, write_momentum


class OneCycleLR(LRScheduler):
    """The 1cycle policy, PyTorch's ``OneCycleLR``: up to ``max_lr``, then far below the start.

    With ``T = total_steps`` (or ``epochs · steps_per_epoch``), ``p = pct_start``,
    ``initial_lr = max_lr / div_factor`` and ``min_lr = initial_lr / final_div_factor``,
    the phases end at these steps (momentum moves the opposite way to the lr)::

        two phases (default)                      three_phase=True
        ends at p·T - 1:  initial_lr → max_lr     ends at p·T - 1:    initial_lr → max_lr
                          momentum max → base     ends at 2p·T - 2:   max_lr → initial_lr
        ends at T - 1:    max_lr → min_lr                             momentum base → max
                          momentum base → max     ends at T - 1:      initial_lr → min_lr

    Within a phase from step ``a`` to step ``b``, with ``pct = (t - a) / (b - a)``:
    ``cos``: ``end + (start - end) · (1 + cos(π · pct)) / 2``;
    ``linear``: ``start + (end - start) · pct``.

    ``max_lr``, ``base_momentum`` and ``max_momentum`` are one number or one per group
    (pass a list for discriminative rates). With ``cycle_momentum`` the momentum is SGD's
    ``momentum`` or Adam's ``β1`` (``betas[0]``). Each group's ``initial_lr`` becomes
    ``max_lr / div_factor``. Stepping more than ``T`` times raises ``ValueError``.

    Any ``T >= 1`` works with any ``pct_start``, as fastai's ``fit_one_cycle`` does: a
    phase of zero steps (``p·T = 1``, where PyTorch divides by zero) is a jump to its end
    value, ``pct = 1``; elsewhere the values are PyTorch's.
    """

    def __init__(
        self,
        optimizer,
        max_lr,
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum=0.85,
        max_momentum=0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ):
        groups = param_groups_of(optimizer)
        if total_steps is not None:
            check(is_int(total_steps) and total_steps >= 1, "total_steps", "a positive integer", total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            check(is_int(epochs) and epochs >= 1, "epochs", "a positive integer", epochs)
            check(is_int(steps_per_epoch) and steps_per_epoch >= 1, "steps_per_epoch", "a positive integer", steps_per_epoch)
            total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        check(is_real_number(pct_start) and 0 <= pct_start <= 1, "pct_start", "a number in [0, 1]", pct_start)
        check(anneal_strategy in ("cos", "linear"), "anneal_strategy", "'cos' or 'linear'", anneal_strategy)
        check(is_real_number(div_factor) and div_factor > 0, "div_factor", "a number > 0", div_factor)
        check(is_real_number(final_div_factor) and final_div_factor > 0, "final_div_factor", "a number > 0", final_div_factor)
        max_lrs = per_group("max_lr", max_lr, groups)
        for value in max_lrs:
            check(is_real_number(value) and value >= 0, "max_lr", "a number >= 0 or one per group", max_lr)
        phases = self._phases(total_steps, pct_start, three_phase)
        if cycle_momentum:
            self.use_beta1, self.base_momentums, self.max_momentums = momentum_range(optimizer, base_momentum, max_momentum)
        self.total_steps = total_steps
        self.anneal_strategy = anneal_strategy
        self.cycle_momentum = cycle_momentum
        self.phases = phases
        self.max_lrs = max_lrs
        if last_epoch == -1:
            for group, peak in zip(groups, max_lrs):
                group["initial_lr"] = peak / div_factor
        self.min_lrs = [peak / div_factor / final_div_factor for peak in max_lrs]
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _phases(total_steps: int, pct_start: float, three_phase: bool) -> list:
        """Where each phase ends, and the attributes its lr and momentum go from and to."""
        warm_up = {
            "end_step": float(pct_start * total_steps) - 1,
            "lr": ("base_lrs", "max_lrs"),
            "momentum": ("max_momentums", "base_momentums"),
        }
        if not three_phase:
            return [warm_up, {"end_step": total_steps - 1, "lr": ("max_lrs", "min_lrs"), "momentum": ("base_momentums", "max_momentums")}]
        return [
            warm_up,
            {"end_step": float(2 * pct_start * total_steps) - 2, "lr": ("max_lrs", "base_lrs"), "momentum": ("base_momentums", "max_momentums")},
            {"end_step": total_steps - 1, "lr": ("base_lrs", "min_lrs"), "momentum": ("max_momentums", "max_momentums")},
        ]

    def _position(self) -> tuple[dict, float]:
        """The phase that step ``last_epoch`` falls in, and how far into it (0 → 1) it is."""
        start = 0.0
        for index, phase in enumerate(self.phases):
            end = phase["end_step"]
            if self.last_epoch <= end or index == len(self.phases) - 1:
                return phase, (self.last_epoch - start) / (end - start) if end != start else 1.0
            start = end

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _interpolate(self, key: str) -> list:
        """The ``"lr"`` or ``"momentum"`` of every group at step ``last_epoch``."""
        phase, pct = self._position()
        start_name, end_name = phase[key]
        return [self._anneal(start, end, pct) for start, end in zip(getattr(self, start_name), getattr(self, end_name))]

    def get_lr(self) -> list:
        return self._interpolate("lr")

    def step(self) -> None:
        """Advance one step: set every group's lr and, with ``cycle_momentum``, its momentum."""
        if self.last_epoch + 1 > self.total_steps:
            raise ValueError(
                f"Tried to step {self.last_epoch + 1} times. The specified number of total "
                f"steps is {self.total_steps}"
            )
        super().step()
        if self.cycle_momentum:
            write_momentum(self.optimizer.param_groups, self._interpolate("momentum"), self.use_beta1)


class SlantedTriangularLR(LRScheduler):
    """ULMFiT's slanted triangular learning rate (Howard & Ruder 2018, eq. 3).

    A short linear rise to ``lr_max`` (the group's base lr) for a fraction ``cut_frac`` of
    the ``T = total_steps`` steps, then a long linear decay::

        cut = floor(T · cut_frac)
        p   = t / cut                                      if t < cut
            = 1 - (t - cut) / (cut · (1 / cut_frac - 1))   otherwise
        lr  = lr_max · (1 + p · (ratio - 1)) / ratio

    so ``lr`` goes from ``lr_max / ratio`` up to ``lr_max`` at ``t = cut`` and back down to
    ``lr_max / ratio``. The paper's defaults: ``cut_frac = 0.1``, ``ratio = 32``. When
    ``T · cut_frac < 1`` the rise still lasts one step (``cut = 1``), so any ``T >= 1``
    works. When
    ``T · cut_frac`` is not an integer the decay reaches ``p = 0`` at ``t = cut / cut_frac``,
    a little before ``T``; from there on (and past ``T``) minift holds ``p = 0`` instead of
    letting the formula go below ``lr_max / ratio`` and, eventually, negative.
    """

    def __init__(self, optimizer, total_steps: int, cut_frac: float = 0.1, ratio: float = 32.0, last_epoch: int = -1):
        check(is_int(total_steps) and total_steps >= 1, "total_steps", "a positive integer", total_steps)
        check(is_real_number(cut_frac) and 0 < cut_frac < 1, "cut_frac", "a number in (0, 1)", cut_frac)
        check(is_real_number(ratio) and ratio >= 1, "ratio", "a number >= 1", ratio)
        cut = max(math.floor(total_steps * cut_frac), 1)
        self.total_steps = total_steps
        self.cut_frac = cut_frac
        self.ratio = ratio
        self.cut = cut
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        t, cut = self.last_epoch, self.cut
        if t < cut:
            p = t / cut
        else:
            p = max(0.0, 1 - (t - cut) / (cut * (1 / self.cut_frac - 1)))
        return [lr_max * (1 + p * (self.ratio - 1)) / self.ratio for lr_max in self.base_lrs]


class CosineWarmupLR(LRScheduler):
    """Linear warm-up from 0 to the base lr, then a cosine down to ``eta_min``.

    With ``W = warmup_steps`` and ``T = total_steps``::

        lr(t) = base_lr · t / W                                              t < W
        lr(t) = eta_min + (base_lr - eta_min) · (1 + cos(π · min(1, (t - W) / (T - W)))) / 2

    the shape of Hugging Face's ``get_cosine_schedule_with_warmup`` (which has
    ``eta_min = 0``). It stays at ``eta_min`` after ``T`` steps. Give ``warmup_steps``, or
    ``pct_start``, the fraction of ``T`` to warm up for: ``W = floor(pct_start · T)``.
    """

    def __init__(self, optimizer, warmup_steps: int | None = None, total_steps: int | None = None,
                 eta_min: float = 0.0, last_epoch: int = -1, *, pct_start: float | None = None):
        check(is_int(total_steps) and total_steps >= 1, "total_steps", "a positive integer", total_steps)
        if (warmup_steps is None) == (pct_start is None):
            raise ValueError(f"give warmup_steps or pct_start (one of them), got {warmup_steps=} and {pct_start=}")
        if pct_start is not None:
            check(is_real_number(pct_start) and 0 <= pct_start < 1, "pct_start", "a number in [0, 1)", pct_start)
            warmup_steps = math.floor(pct_start * total_steps)
        check(is_int(warmup_steps) and warmup_steps >= 0, "warmup_steps", "an integer >= 0", warmup_steps)
        check(is_int(total_steps) and total_steps > warmup_steps, "total_steps", f"an integer > warmup_steps ({warmup_steps})", total_steps)
        check(is_real_number(eta_min) and eta_min >= 0, "eta_min", "a number >= 0", eta_min)
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        t, warmup = self.last_epoch, self.warmup_steps
        if t < warmup:
            return [base_lr * t / warmup for base_lr in self.base_lrs]
        progress = min(1.0, (t - warmup) / (self.total_steps - warmup))
        cosine = (1 + math.cos(math.pi * progress)) / 2
        return [self.eta_min + (base_lr - self.eta_min) * cosine for base_lr in self.base_lrs]
