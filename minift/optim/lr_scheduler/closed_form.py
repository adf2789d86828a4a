"""Schedules in closed form, ``lr(t) = base_lr · f(t)``: LambdaLR, StepLR, MultiStepLR,
ExponentialLR, CosineAnnealingLR, LinearLR, PolynomialLR, and SequentialLR, which runs
several of them one after the other.
"""

from __future__ import annotations

import copy
import math
from bisect import bisect_right

from ..optimizer import is_real_number
from .base import LRScheduler, check, is_int, param_groups_of


class LambdaLR(LRScheduler):
    """``lr_i(t) = base_lr_i · λ_i(t)``, with one function for all groups or one per group.

    The functions are not part of ``state_dict()``: rebuild the scheduler with the same
    functions before loading.
    """

    _not_saved = ("optimizer", "lr_lambdas")

    def __init__(self, optimizer, lr_lambda, last_epoch: int = -1):
        groups = param_groups_of(optimizer)
        if isinstance(lr_lambda, (list, tuple)) and len(lr_lambda) != len(groups):
            raise ValueError(f"Expected {len(groups)} lr_lambdas, but got {len(lr_lambda)}")
        lr_lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * len(groups)
        for function in lr_lambdas:
            check(callable(function), "lr_lambda", "a function of the step (or a list of them)", function)
        self.lr_lambdas = lr_lambdas
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        return [base_lr * lr_lambda(self.last_epoch) for base_lr, lr_lambda in zip(self.base_lrs, self.lr_lambdas)]


class StepLR(LRScheduler):
    """``lr(t) = base_lr · gamma ^ floor(t / step_size)``: decay by ``gamma`` every ``step_size`` steps."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        check(is_int(step_size) and step_size >= 1, "step_size", "an integer >= 1", step_size)
        check(is_real_number(gamma) and gamma >= 0, "gamma", "a number >= 0", gamma)
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size) for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    """``lr(t) = base_lr · gamma ^ (number of milestones <= t)``: decay by ``gamma`` at each milestone.

    A milestone listed twice decays twice, as in PyTorch.
    """

    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        milestones = list(milestones)
        check(all(is_int(m) and m >= 0 for m in milestones), "milestones", "a list of integers >= 0", milestones)
        check(is_real_number(gamma) and gamma >= 0, "gamma", "a number >= 0", gamma)
        self.milestones = sorted(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        decays = bisect_right(self.milestones, self.last_epoch)
        return [base_lr * self.gamma**decays for base_lr in self.base_lrs]


class ExponentialLR(LRScheduler):
    """``lr(t) = base_lr · gamma ^ t``."""

    def __init__(self, optimizer, gamma: float, last_epoch: int = -1):
        check(is_real_number(gamma) and gamma >= 0, "gamma", "a number >= 0", gamma)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        return [base_lr * self.gamma**self.last_epoch for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """``lr(t) = eta_min + (base_lr - eta_min) · (1 + cos(π t / T_max)) / 2`` (closed form).

    From ``base_lr`` at ``t = 0`` down to ``eta_min`` at ``t = T_max``; beyond ``T_max``
    the cosine rises again, as PyTorch's does (SGDR without the restart jump).
    """

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        check(is_int(T_max) and T_max >= 1, "T_max", "an integer >= 1", T_max)
        check(is_real_number(eta_min) and eta_min >= 0, "eta_min", "a number >= 0", eta_min)
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        cosine = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base_lr - self.eta_min) * cosine for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    """Linear warm-up (or decay) of a factor: ``lr(t) = base_lr · f(t)`` with

    ``f(t) = start_factor + (end_factor - start_factor) · min(t, total_iters) / total_iters``.
    """

    def __init__(
        self,
        optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ):
        check(is_real_number(start_factor) and 0 < start_factor <= 1, "start_factor", "in (0, 1]", start_factor)
        check(is_real_number(end_factor) and 0 <= end_factor <= 1, "end_factor", "in [0, 1]", end_factor)
        check(is_int(total_iters) and total_iters >= 1, "total_iters", "an integer >= 1", total_iters)
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        progress = min(self.last_epoch, self.total_iters) / self.total_iters
        factor = self.start_factor + (self.end_factor - self.start_factor) * progress
        return [base_lr * factor for base_lr in self.base_lrs]


class PolynomialLR(LRScheduler):
    """``lr(t) = base_lr · (1 - min(t, total_iters) / total_iters) ^ power``: down to 0 at
    ``total_iters`` (a straight line for ``power = 1``), then 0."""

    def __init__(self, optimizer, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1):
        check(is_int(total_iters) and total_iters >= 1, "total_iters", "an integer >= 1", total_iters)
        check(is_real_number(power) and power >= 0, "power", "a number >= 0", power)
        self.total_iters = total_iters
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        factor = (1 - min(self.last_epoch, self.total_iters) / self.total_iters) ** self.power
        return [base_lr * factor for base_lr in self.base_lrs]


class SequentialLR(LRScheduler):
    """Run ``schedulers[0]`` until ``milestones[0]``, then ``schedulers[1]``, and so on.

    Each scheduler starts again from its own step 0 at its milestone: at step ``t`` with
    ``milestones[k-1] <= t < milestones[k]``, scheduler ``k`` is at step ``t - milestones[k-1]``.
    All schedulers must drive this same optimizer.
    """

    _not_saved = ("optimizer", "_schedulers")

    def __init__(self, optimizer, schedulers, milestones, last_epoch: int = -1):
        schedulers, milestones = list(schedulers), list(milestones)
        if not schedulers:
            raise ValueError("SequentialLR expects at least one scheduler, but got no scheduler")
        for index, scheduler in enumerate(schedulers):
            if not isinstance(scheduler, LRScheduler):
                raise TypeError(f"schedulers[{index}] must be an LRScheduler, got {type(scheduler).__name__}")
            if scheduler.optimizer is not optimizer:
                raise ValueError(
                    f"SequentialLR expects all schedulers to belong to the same optimizer, but "
                    f"schedulers[{index}] ({type(scheduler).__name__}) drives another one"
                )
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                f"SequentialLR expects one milestone fewer than schedulers, got "
                f"{len(schedulers)} schedulers and {len(milestones)} milestones"
            )
        increasing = all(is_int(m) for m in milestones) and all(
            earlier < later for earlier, later in zip([0, *milestones], milestones)
        )
        check(increasing, "milestones", "strictly increasing integers > 0", milestones)
        self._schedulers = schedulers
        self._milestones = milestones
        super().__init__(optimizer, last_epoch)

    def step(self) -> None:
        """Advance one step; the scheduler whose interval contains the new step sets the lr."""
        step = self.last_epoch + 1
        index = bisect_right(self._milestones, step)
        start = self._milestones[index - 1] if index > 0 else 0
        scheduler = self._schedulers[index]
        scheduler.last_epoch = step - start - 1
        scheduler.step()
        self.last_epoch = step
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self) -> dict:
        """Own state plus every scheduler's state dict under ``"_schedulers"``."""
        state = super().state_dict()
        state["_schedulers"] = [scheduler.state_dict() for scheduler in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        self._check_state_dict(state_dict)
        own = {key: value for key, value in state_dict.items() if key != "_schedulers"}
        self.__dict__.update(copy.deepcopy(own))
        for scheduler, saved in zip(self._schedulers, state_dict["_schedulers"]):
            scheduler.load_state_dict(saved)

    def _check_state_dict(self, state_dict) -> None:
        own = {key: value for key, value in state_dict.items() if key != "_schedulers"} if isinstance(state_dict, dict) else state_dict
        super()._check_state_dict(own)
        saved = state_dict.get("_schedulers")
        if not isinstance(saved, list) or len(saved) != len(self._schedulers):
            raise ValueError(f"the state dict must hold {len(self._schedulers)} scheduler states under '_schedulers'")
        for scheduler, scheduler_state in zip(self._schedulers, saved):
            scheduler._check_state_dict(scheduler_state)

