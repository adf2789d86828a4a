"""``LRScheduler``, the base of every learning-rate schedule, and helpers they share.

A scheduler owns a step count, ``last_epoch`` (PyTorch's name; every schedule in minift
counts batches in it), and one base lr per param group, ``base_lrs``. Each ``step()``
advances the count and writes ``get_lr()`` -- the schedule's value for every group at
the new count -- into ``group["lr"]``.
"""

from __future__ import annotations

import copy
import numbers

from ..optimizer import Optimizer, is_real_number


def param_groups_of(optimizer) -> list:
    """``optimizer.param_groups``, or ``TypeError`` if ``optimizer`` is not an Optimizer."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
    return optimizer.param_groups


def check(condition: bool, name: str, expected: str, value) -> None:
    """Raise ``ValueError`` naming the argument, what was expected and what came."""
    if not condition:
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def per_group(name: str, value, groups: list) -> list:
    """One value per param group: a scalar is repeated, a list must have one per group."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(groups):
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups: {name} has "
                f"{len(value)} values, param_groups has {len(groups)}"
            )
        return list(value)
    return [value] * len(groups)


def momentum_range(optimizer, base_momentum, max_momentum) -> tuple:
    """For a schedule that cycles the momentum: ``(use_beta1, base_momentums, max_momentums)``,
    one bound per group, each checked to be in [0, 1); the momentum is Adam's ``β1`` when
    the optimizer has ``betas``, else SGD's ``momentum``."""
    groups = param_groups_of(optimizer)
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
    base_momentums = per_group("base_momentum", base_momentum, groups)
    max_momentums = per_group("max_momentum", max_momentum, groups)
    for value in base_momentums + max_momentums:
        check(is_real_number(value) and 0 <= value < 1, "base_momentum and max_momentum", "numbers in [0, 1)", value)
    return "betas" in optimizer.defaults, base_momentums, max_momentums


def write_momentum(groups: list, momenta: list, use_beta1: bool) -> None:
    """Set each group's momentum: SGD's ``momentum``, or Adam's ``β1`` (``betas[0]``)."""
    for group, momentum in zip(groups, momenta):
        if use_beta1:
            group["betas"] = (momentum, *group["betas"][1:])
        else:
            group["momentum"] = momentum


class LRScheduler:
    """Base class: ``base_lrs``, the step count ``last_epoch``, ``step()`` and saving.

    ``last_epoch`` is PyTorch's name for the count; every schedule here counts batches in
    it. It is ``-1`` before the first step, and building a scheduler takes that first
    step, so the optimizer's lr is the schedule's value at step 0 straight away.
    A subclass sets its own attributes, then calls ``super().__init__``, and implements
    ``get_lr()``: the lr of every group at step ``last_epoch``.
    """

    _not_saved = ("optimizer",)

    def __init__(self, optimizer, last_epoch: int = -1):
        groups = param_groups_of(optimizer)
        check(is_int(last_epoch) and last_epoch >= -1, "last_epoch", "an integer >= -1", last_epoch)
        if last_epoch == -1:
            for group in groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for index, group in enumerate(groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{index}] when "
                        f"resuming a scheduler with last_epoch={last_epoch}: load the "
                        f"optimizer's state dict first, or start with last_epoch=-1"
                    )
        self.optimizer = optimizer
        self.base_lrs = [group["initial_lr"] for group in groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self) -> list:
        """The lr of every param group at step ``last_epoch`` (implemented by each schedule)."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_lr")

    def get_last_lr(self) -> list:
        """The learning rates set by the latest ``step()``, one per param group."""
        return list(self._last_lr)

    def step(self) -> None:
        """Advance one step and write the new lr into every param group."""
        groups = self.optimizer.param_groups
        if len(groups) != len(self.base_lrs):
            raise ValueError(
                f"the optimizer has {len(groups)} param groups but this "
                f"{type(self).__name__} was built for {len(self.base_lrs)}: build the "
                f"scheduler after adding every group (a frozen group can be added from the "
                f"start: parameters without gradients are not stepped)"
            )
        self.last_epoch += 1
        self._last_lr = self.get_lr()
        for group, lr in zip(groups, self._last_lr):
            group["lr"] = lr

    def state_dict(self) -> dict:
        """Copies of every attribute except the optimizer (and functions, which cannot be saved)."""
        return {key: copy.deepcopy(value) for key, value in vars(self).items() if key not in self._not_saved}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a ``state_dict()``; on a mismatch raise ``ValueError`` and change nothing.

        The optimizer's learning rates are not touched: they are restored by the
        optimizer's own ``load_state_dict``, or set by the next ``step()``.
        """
        self._check_state_dict(state_dict)
        self.__dict__.update(copy.deepcopy(state_dict))

    def _check_state_dict(self, state_dict) -> None:
        expected = {key for key in vars(self) if key not in self._not_saved}
        if not isinstance(state_dict, dict) or set(state_dict) != expected:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"{type(self).__name__} state dict must have keys {sorted(expected)}, got {got}")
        if len(state_dict["base_lrs"]) != len(self.optimizer.param_groups):
            raise ValueError(
                f"the state dict is for {len(state_dict['base_lrs'])} param groups, the "
                f"optimizer has {len(self.optimizer.param_groups)}"
            )
