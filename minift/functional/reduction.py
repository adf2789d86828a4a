"""Reductions along axes: sum, mean, amax, amin, max, min, var, std, logsumexp, argmax, argmin.

Each takes ``dim`` (None for all axes, an int, or a tuple; negative counts from the end)
and ``keepdim``, or NumPy's spellings ``axis=`` / ``keepdims=`` (``arguments.py``). The
backward of a reduction broadcasts ``g`` back over the reduced axes, so it first restores
them as size-1 axes (``_keep``).

``max`` / ``min`` are PyTorch's: over all elements a 0-d tensor; along one ``dim`` the
pair ``(values, indices)``. ``amax`` / ``amin`` reduce over any axes and return values.
"""

from __future__ import annotations

import builtins  # this module defines sum / max / min, shadowing the built-ins
from collections import namedtuple

from ..engine.autograd import Function
from ..backend.device import array_module
from .arguments import dim_and_keepdim

values_indices = namedtuple("values_indices", ["values", "indices"])
values_indices.__doc__ = "What ``max(x, dim)`` / ``min(x, dim)`` return: ``(values, indices)``, as torch.return_types."


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
    to the maximum (``torch.amax``'s rule)."""

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        return _save_extremum(ctx, x, x.max(axis=axes, keepdims=True), axes, keepdims)

    @staticmethod
    def backward(ctx, g):
        x, z = ctx.saved
        winners = (x == z).astype(g.dtype)
        return winners * (_keep(g, x.shape, ctx.axes) / winners.sum(axis=ctx.axes, keepdims=True))


class Min(Function):
    """z = min of x over ``axes``; the gradient is shared as ``Max``'s."""

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        return _save_extremum(ctx, x, x.min(axis=axes, keepdims=True), axes, keepdims)

    backward = Max.backward


def _save_extremum(ctx, x, z, axes, keepdims):
    """Save what ``Max.backward`` reads; return ``z`` (kept as size-1 axes) in the asked shape."""
    ctx.save_for_backward(x, z)
    ctx.axes = axes
    return z if keepdims else z.reshape([n for i, n in enumerate(z.shape) if i not in axes])


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


def sum(x, dim=None, keepdim=None, *, axis=None, keepdims=None):  # noqa: A001 - PyTorch's name
    dim, keepdim = dim_and_keepdim(dim, keepdim, axis, keepdims)
    return Sum.apply(x, axes=_axes(dim, x.ndim), keepdims=keepdim)


def mean(x, dim=None, keepdim=None, *, axis=None, keepdims=None):
    dim, keepdim = dim_and_keepdim(dim, keepdim, axis, keepdims)
    return Mean.apply(x, axes=_axes(dim, x.ndim), keepdims=keepdim)


def amax(x, dim=None, keepdim=None, *, axis=None, keepdims=None):
    """The largest value over ``dim`` (an int, a tuple, or None for all axes)."""
    dim, keepdim = dim_and_keepdim(dim, keepdim, axis, keepdims)
    return Max.apply(x, axes=_axes(dim, x.ndim), keepdims=keepdim)


def amin(x, dim=None, keepdim=None, *, axis=None, keepdims=None):
    """The smallest value over ``dim`` (an int, a tuple, or None for all axes)."""
    dim, keepdim = dim_and_keepdim(dim, keepdim, axis, keepdims)
    return Min.apply(x, axes=_axes(dim, x.ndim), keepdims=keepdim)


def max(x, dim=None, keepdim=None, *, axis=None, keepdims=None):  # noqa: A001
    """PyTorch's ``max``: without ``dim`` the largest element (a 0-d tensor, the gradient
    shared by ties); with an int ``dim`` the pair ``(values, indices)`` along it, the
    gradient going to the index picked."""
    return _extremum_along(x, dim, keepdim, axis, keepdims, amax, argmax)


def min(x, dim=None, keepdim=None, *, axis=None, keepdims=None):  # noqa: A001
    """PyTorch's ``min``: as ``max``, with the smallest."""
    return _extremum_along(x, dim, keepdim, axis, keepdims, amin, argmin)


def _extremum_along(x, dim, keepdim, axis, keepdims, reduce_all, arg):
    from .shape import gather, squeeze

    dim, keepdim = dim_and_keepdim(dim, keepdim, axis, keepdims)
    if dim is None:
        return reduce_all(x)
    if not isinstance(dim, int):
        raise TypeError(f"max/min take one int dim (for several axes use amax/amin), got {dim!r}")
    indices = arg(x, dim, keepdim=True)
    values = gather(x, dim, indices)
    if not keepdim:
        values, indices = squeeze(values, dim), squeeze(indices, dim)
    return values_indices(values, indices)


def argmax(x, dim=None, keepdim=None, *, axis=None, keepdims=None):
    """The index of the largest value along ``dim`` (of the flattened tensor without it);
    int64, no gradient. Ties give the first index."""
    return _arg_extremum(x, dim, keepdim, axis, keepdims, "argmax")


def argmin(x, dim=None, keepdim=None, *, axis=None, keepdims=None):
    """The index of the smallest value along ``dim``; as ``argmax``."""
    return _arg_extremum(x, dim, keepdim, axis, keepdims, "argmin")


def _arg_extremum(x, dim, keepdim, axis, keepdims, method):
    from ..engine.tensor import Tensor

    dim, keepdim = dim_and_keepdim(dim, keepdim, axis, keepdims)
    if x.data.size == 0:
        raise IndexError(f"{method}(): cannot take the {method} of an empty tensor")
    if dim is not None:
        (dim,) = _axes(dim, x.ndim) or (None,)
    found = getattr(x.data, method)(axis=dim, keepdims=keepdim)
    return Tensor._from_array(array_module(x.data).asarray(found, dtype="int64"))


def var(x, dim=None, keepdim=None, *, correction=1, axis=None, keepdims=None):
    """Variance; ``correction=1`` is the unbiased estimate (PyTorch's default), 0 the biased."""
    dim, keepdim = dim_and_keepdim(dim, keepdim, axis, keepdims)
    return Var.apply(x, axes=_axes(dim, x.ndim), keepdims=keepdim, correction=correction)


def std(x, dim=None, keepdim=None, *, correction=1, axis=None, keepdims=None):
    return var(x, dim, keepdim, correction=correction, axis=axis, keepdims=keepdims).sqrt()


def logsumexp(x, dim=None, keepdim=None, *, axis=None, keepdims=None):
    dim, keepdim = dim_and_keepdim(dim, keepdim, axis, keepdims)
    return LogSumExp.apply(x, axes=_axes(dim, x.ndim), keepdims=keepdim)
