"""Freezing: which parameters learn.

A frozen parameter has ``requires_grad = False``. Backward then computes no gradient for
it (``grad`` stays ``None``), and every minift optimizer skips a parameter without a
gradient entirely -- no momentum, no Adam moments, no weight decay -- so it stays
bit-identical however many steps are taken. That is the whole mechanism; there is no
separate "frozen" flag to keep in sync.

Why freeze? The first fine-tuning phase trains a freshly initialised head on top of a
pretrained body. While the head is still random, its gradients are large and noisy; sent
back into the body they would scramble the pretrained features before the head has
learned to use them. So the body is frozen first (``freeze``), the head trained, and only
then is the body unfrozen (``unfreeze``), usually with lower learning rates.

fastai's names and semantics, on layer groups (``minift.finetune.groups``):

- ``freeze_to(model, n)``: groups ``[:n]`` frozen, groups ``[n:]`` trainable; a negative
  ``n`` counts from the head, so ``freeze_to(model, -1)`` leaves only the last group
  trainable;
- ``freeze(model)`` = ``freeze_to(model, -1)``; ``unfreeze(model)`` = ``freeze_to(model, 0)``;
- ``set_trainable(model, patterns, trainable)`` works by parameter name instead (fnmatch
  patterns such as ``"body.block3.*"`` or ``"*.bn*"``).

BatchNorm in a frozen group: by default its affine parameters freeze with the rest (as
in Keras); ``train_bn=True`` keeps them trainable, which is what fastai's ``Learner``
does by default (``train_bn=True``): a few thousand BatchNorm weights adapt the
pretrained features to the new data's statistics cheaply. Whether a frozen BatchNorm
still updates its running statistics is a separate switch: ``set_bn_policy``.
"""

from __future__ import annotations

import fnmatch
import numbers

from ..nn import BatchNorm1d, BatchNorm2d, Module
from .groups import resolve_groups


def freeze_to(model: Module, n: int, groups=None, train_bn: bool = False) -> None:
    """Freeze layer groups ``[:n]`` and make groups ``[n:]`` trainable (fastai's ``freeze_to``).

    ``n`` may be ``-len(groups) .. len(groups)``: ``0`` unfreezes everything,
    ``len(groups)`` freezes everything, ``-1`` leaves only the head trainable. ``groups``:
    ``None`` (``layer_groups(model)``), a list of ``LayerGroup``, or a splitter.
    ``train_bn``: keep BatchNorm parameters of frozen groups trainable (fastai's default).
    An ``n`` out of range raises ``IndexError`` and changes nothing.
    """
    groups = resolve_groups(model, groups)
    if not isinstance(n, numbers.Integral) or isinstance(n, bool):
        raise TypeError(f"freeze_to expects an int number of groups, got {type(n).__name__} {n!r}")
    if not -len(groups) <= n <= len(groups):
        raise IndexError(
            f"freeze_to({n}) is out of range for {len(groups)} layer groups: expected "
            f"-{len(groups)} <= n <= {len(groups)} ({[g.name for g in groups]})"
        )
    frozen_count = n if n >= 0 else len(groups) + n
    kept_trainable = batchnorm_parameter_ids(model) if train_bn else set()
    for index, group in enumerate(groups):
        for param in group.parameters():
            param.requires_grad_(index >= frozen_count or id(param) in kept_trainable)


def freeze(model: Module, groups=None, train_bn: bool = False) -> None:
    """Freeze every layer group but the last (the head): ``freeze_to(model, -1)``."""
    freeze_to(model, -1, groups, train_bn)


def unfreeze(model: Module, groups=None) -> None:
    """Make every layer group trainable: ``freeze_to(model, 0)``."""
    freeze_to(model, 0, groups)


def set_trainable(model: Module, patterns, trainable: bool) -> list[str]:
    """Set ``requires_grad = trainable`` on every parameter whose name matches one of the
    fnmatch ``patterns`` (a str or a list of str); returns the names matched, in model order.

    Each pattern must match at least one name: a pattern that matches nothing is almost
    always a typo, so it raises ``ValueError`` (listing some names) and nothing is changed.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    patterns = list(patterns)
    if not patterns or not all(isinstance(p, str) for p in patterns):
        raise TypeError(f"set_trainable expects a pattern or a non-empty list of str patterns, got {patterns!r}")
    if not isinstance(trainable, bool):
        raise TypeError(f"set_trainable expects trainable=True or False, got {trainable!r}")
    named = list(model.named_parameters())
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(name, p) for name, _ in named)]
    if unmatched:
        some = ", ".join(name for name, _ in named[:8])
        raise ValueError(f"patterns {unmatched} match no parameter name (nothing was changed); the names begin: {some}, ...")
    matched = [name for name, p in named if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)]
    params = dict(named)
    for name in matched:
        params[name].requires_grad_(trainable)
    return matched


def trainable_report(model: Module, groups=None) -> str:
    """A table, one line per layer group: trainable / total parameter values, and a total."""
    groups = resolve_groups(model, groups)
    rows = [(g.name, sum(p.numel() for p in g.parameters() if p.requires_grad), g.numel()) for g in groups]
    rows.append(("total", sum(r[1] for r in rows), sum(r[2] for r in rows)))
    width = max(len(name) for name, _, _ in rows)
    lines = [f"{'group':<{width}}  {'trainable':>12}  {'total':>12}  state"]
    for index, (name, trainable, total) in enumerate(rows):
        state = "trainable" if trainable == total else "frozen" if trainable == 0 else "partly frozen"
        if index == len(rows) - 1:
            lines.append("-" * len(lines[0]))
        lines.append(f"{name:<{width}}  {trainable:>12,}  {total:>12,}  {state}")
    return "\n".join(lines)


def batchnorm_parameter_ids(model: Module) -> set[int]:
    return {id(p) for m in model.modules() if isinstance(m, (BatchNorm1d, BatchNorm2d)) for p in m.parameters()}
