"""Reductions along axes: sum, mean, max, min, var, std, logsumexp.

Each takes ``axis`` (None for all axes, an int, or a tuple; negative counts from the end)
and ``keepdims``. The backward of a reduction broadcasts ``g`` back over the reduced axes,
so it first restores them as size-1 axes (``_keep``).
"""

from __future__ import annotations

import builtins  # this module defines sum / max / min, shadowing the built-ins

from ..engine.autograd import Function
from ..backend.device import array_module


def _axes(axis, ndim: int) -> tuple:
    """Normalise ``axis`` to a sorted tuple of non-negative axes, with a clear error."""
    if axis is None or ndim == 0:  # a 0-d tensor reduces over nothing, whatever the axis
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    normalised = []
    for a in axes:
        if not -builtins.max(ndim, 1) <= a < builtins.max(ndim, 1):
            raise IndexError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        normalised.append(a % builtins.max(ndim, 1))
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"axis {axis} repeats an axis")
    return tuple(sorted(normalised))


def _keep(g, shape: tuple, axes: tuple):
    """Reshape a reduced gradient so that it broadcasts against the input's ``shape``."""
    return g.reshape([1 if i in axes else n for i, n in enumerate(shape)])


def _count(shape: tuple, axes: tuple) -> int:
    count = 1
    for a in axes:
        count *= shape[a]
    return count


class Sum(Function):
    """z = sum of x over ``axes``.   dL/dx = g broadcast back over those axes."""

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        ctx.shape, ctx.axes = x.shape, axes
        return x.sum(axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        return array_module(g).broadcast_to(_keep(g, ctx.shape, ctx.axes), ctx.shape)


class Mean(Function):
    """z = sum(x) / n over ``axes``.   dL/dx = g / n broadcast back."""

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        ctx.shape, ctx.axes = x.shape, axes
        return x.mean(axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        n = _count(ctx.shape, ctx.axes)
        return array_module(g).broadcast_to(_keep(g, ctx.shape, ctx.axes) / builtins.max(n, 1), ctx.shape)


class Max(Function):
    """z = max of x over ``axes``.  The gradient is shared equally by every element equal
    to the maximum (``torch.amax``'s rule); ``Min`` is the same with min."""

    @staticmethod
    def forward(ctx, x, axes, keepdims, reduce="max"):
        z = x.max(axis=axes, keepdims=True) if reduce == "max" else x.min(axis=axes, keepdims=True)
        ctx.save_for_backward(x, z)
        ctx.axes = axes
        return z if keepdims else z.reshape([n for i, n in enumerate(z.shape) if i not in axes])

    @staticmethod
    def backward(ctx, g):
        x, z = ctx.saved
        winners = (x == z).astype(g.dtype)
        return winners * (_keep(g, x.shape, ctx.axes) / winners.sum(axis=ctx.axes, keepdims=True))


class Var(Function):
    """z = sum((x - mean)**2) / (n - correction) over ``axes``.

    dL/dx = g * 2 (x - mean) / (n - correction).
    """

    @staticmethod
    def forward(ctx, x, axes, keepdims, correction):
        centred = x - x.mean(axis=axes, keepdims=True)
        ctx.save_for_backward(centred)
        ctx.axes = axes
        ctx.denominator = _count(x.shape, axes) - correction
        z = (centred * centred).sum(axis=axes, keepdims=keepdims)
        return z / ctx.denominator

    @staticmethod
    def backward(ctx, g):
        (centred,) = ctx.saved
        return _keep(g, centred.shape, ctx.axes) * (2 / ctx.denominator) * centred


class LogSumExp(Function):
    """z = log(sum(exp(x))) over ``axes``, computed as m + log(sum(exp(x - m))), m = max(x)
    so that nothing overflows.   dL/dx = g * softmax(x) = g * exp(x - z)."""

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        xp = array_module(x)
        m = x.max(axis=axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # all -inf (or +inf) along an axis: no shift
        z = m + xp.log(xp.exp(x - m).sum(axis=axes, keepdims=True))
        ctx.save_for_backward(x, z)
        ctx.axes = axes
        return z if keepdims else z.reshape([n for i, n in enumerate(z.shape) if i not in axes])

    @staticmethod
    def backward(ctx, g):
        x, z = ctx.saved
        return _keep(g, x.shape, ctx.axes) * array_module(x).exp(x - z)


def sum(x, axis=None, keepdims=False):  # noqa: A001 - PyTorch's name
    return Sum.apply(x, axes=_axes(axis, x.ndim), keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return Mean.apply(x, axes=_axes(axis, x.ndim), keepdims=keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    return Max.apply(x, axes=_axes(axis, x.ndim), keepdims=keepdims, reduce="max")


def min(x, axis=None, keepdims=False):  # noqa: A001
    return Max.apply(x, axes=_axes(axis, x.ndim), keepdims=keepdims, reduce="min")


def var(x, axis=None, keepdims=False, correction=1):
    """Variance; ``correction=1`` is the unbiased estimate (PyTorch's default), 0 the biased."""
    return Var.apply(x, axes=_axes(axis, x.ndim), keepdims=keepdims, correction=correction)


def std(x, axis=None, keepdims=False, correction=1):
    return var(x, axis, keepdims, correction).sqrt()


def logsumexp(x, axis=None, keepdims=False):
    return LogSumExp.apply(x, axes=_axes(axis, x.ndim), keepdims=keepdims)
