"""Discriminative learning rates: one learning rate per layer group.

Early layers hold general features that the new task can reuse almost as they are; the
head is new. So the head gets the largest learning rate and each group closer to the
input a smaller one. A high learning rate on the pretrained layers would be the fastest
way to *catastrophic forgetting*: a few large steps driven by a small target dataset
overwrite what millions of source images taught, and the general features are gone
before the model has learned anything better. A low one lets those layers adjust
without leaving the neighbourhood of their pretrained values.

How the rates are written, input side first (``n`` groups):

- ``lr`` (a float): the same rate for every group;
- ``slice(a, b)``: fastai's ``even_mults`` -- geometrically spaced from ``a`` (first group)
  to ``b`` (head), so every group gets ``(b/a)**(1/(n-1))`` times the rate of the group
  before: ``slice(1e-5, 1e-3)`` on 3 groups is ``1e-5, 1e-4, 1e-3``;
- ``slice(b)``: fastai's rule for "train mostly the head": ``b/10`` for every group but
  the last, which gets ``b``: ``slice(1e-3)`` on 3 groups is ``1e-4, 1e-4, 1e-3``;
- a list of ``n`` floats, as given;
- ``ulmfit_lrs(lr, n, factor=2.6)``: ULMFiT (Howard & Ruder 2018) divides the rate by 2.6
  per group going down from the head: ``lr / 2.6**depth``;
- ``layerwise_lrs(lr, n, decay)``: layer-wise learning-rate decay (as in ELECTRA/BEiT
  fine-tuning), ``lr * decay**depth``; depth 0 is the head.

``param_groups`` turns the rates into ordinary ``minift.optim`` param groups.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..nn import Module
from .groups import resolve_groups


def discriminative_lrs(lr, n_groups: int) -> list[float]:
    """The learning rate of each of ``n_groups`` groups, input side first, from a float,
    ``slice(a, b)``, ``slice(b)`` or a list (see the module docstring).

    Raises ``ValueError`` for a non-positive or non-finite rate, a list whose length is not
    ``n_groups``, or ``slice(a, b)`` with fewer than 2 groups (it has more values than groups).
    """
    _check_count(n_groups)
    if isinstance(lr, slice):
        return _slice_lrs(lr, n_groups)
    if isinstance(lr, (list, tuple, np.ndarray)):
        values = [_check_lr(value, "lr") for value in lr]
        if len(values) != n_groups:
            raise ValueError(f"got {len(values)} learning rates for {n_groups} layer groups; give one per group")
        return values
    return [_check_lr(lr, "lr")] * n_groups


def ulmfit_lrs(lr: float, n_groups: int, factor: float = 2.6) -> list[float]:
    """ULMFiT's rule: the head gets ``lr``, each group below it ``1/factor`` of the one above:
    ``lr / factor**depth`` with depth ``n_groups-1`` at the input and 0 at the head."""
    _check_count(n_groups)
    lr = _check_lr(lr, "lr")
    if not (_is_real(factor) and math.isfinite(factor) and factor >= 1):
        raise ValueError(f"ulmfit factor must be a finite number >= 1 (2.6 in the paper), got {factor!r}")
    return [lr / factor ** (n_groups - 1 - index) for index in range(n_groups)]


def layerwise_lrs(lr: float, n_groups: int, decay: float) -> list[float]:
    """Layer-wise decay: ``lr * decay**depth``, depth 0 at the head; ``0 < decay <= 1``."""
    _check_count(n_groups)
    lr = _check_lr(lr, "lr")
    if not (_is_real(decay) and 0 < decay <= 1):
        raise ValueError(f"layer-wise decay must be in (0, 1] (e.g. 0.75), got {decay!r}")
    return [lr * decay ** (n_groups - 1 - index) for index in range(n_groups)]


def param_groups(model: Module, lr, groups=None, **hyper) -> list[dict]:
    """Optimizer param groups, one per layer group, each with its own learning rate:
    ``[{"params": [...], "lr": ..., "name": group.name, "param_names": [...], **hyper}, ...]``.

    ``lr`` is anything ``discriminative_lrs`` accepts. Frozen parameters are included on
    purpose: the optimizer skips a parameter while it has no gradient, so unfreezing it
    later needs no new optimizer (and it starts with fresh optimizer state).
    """
    reserved = {"params", "lr", "name", "param_names"} & set(hyper)
    if reserved:
        raise TypeError(f"param_groups sets {sorted(reserved)} itself; pass the other hyperparameters only")
    groups = resolve_groups(model, groups)
    lrs = discriminative_lrs(lr, len(groups))
    names = {id(p): name for name, p in model.named_parameters()}
    return [
        {"params": group.parameters(), "lr": rate, "name": group.name,
         "param_names": [names[id(p)] for p in group.parameters()], **hyper}
        for group, rate in zip(groups, lrs)
    ]


def describe_param_groups(optimizer) -> str:
    """One line per param group of ``optimizer``: name, lr, weight decay, trainable / total values."""
    rows = []
    for index, group in enumerate(optimizer.param_groups):
        params = group["params"]
        trainable = sum(p.numel() for p in params if p.requires_grad)
        rows.append((
            str(index), str(group.get("name", "")), f"{group['lr']:.3g}",
            f"{group['weight_decay']:.3g}" if "weight_decay" in group else "-",
            f"{trainable:,} / {sum(p.numel() for p in params):,}",
        ))
    header = ("group", "name", "lr", "weight_decay", "trainable / total")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows])


def _slice_lrs(lr: slice, n_groups: int) -> list[float]:
    if lr.step is not None or lr.stop is None:
        raise ValueError(f"a learning-rate slice is slice(b) or slice(a, b), got {lr!r}")
    stop = _check_lr(lr.stop, "slice stop")
    if lr.start is None:
        return [stop / 10] * (n_groups - 1) + [stop]
    start = _check_lr(lr.start, "slice start")
    if n_groups < 2:
        raise ValueError(
            f"{lr!r} spreads rates from the first group to the last, which needs at least 2 "
            f"groups; the model has {n_groups}: give one float instead"
        )
    return [float(value) for value in np.geomspace(start, stop, n_groups)]


def _check_count(n_groups) -> None:
    if not isinstance(n_groups, numbers.Integral) or isinstance(n_groups, bool) or n_groups < 1:
        raise ValueError(f"n_groups must be a positive int, got {n_groups!r}")


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_lr(value, what: str) -> float:
    if not (_is_real(value) and math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be a finite number > 0, got {value!r}")
    return float(value)
