"""Ops that move elements without computing: reshape, permute, indexing, concatenation,
padding and broadcasting. Their backward moves the gradient back the same way."""

from __future__ import annotations

import numpy as np

from ..engine.autograd import Function
from ..backend.device import array_module, scatter_add


class Reshape(Function):
    """z = x viewed with a new shape.   dL/dx = g reshaped back."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape)


class Permute(Function):
    """z = x with axes reordered (``z.shape[i] = x.shape[axes[i]]``).
    dL/dx = g with the inverse permutation."""

    @staticmethod
    def forward(ctx, x, axes):
        ctx.inverse = tuple(np.argsort(axes))
        return x.transpose(axes)

    @staticmethod
    def backward(ctx, g):
        return g.transpose(ctx.inverse)


class BroadcastTo(Function):
    """z = x broadcast to ``shape``.  dL/dx = g, summed back by the engine's unbroadcast."""

    @staticmethod
    def forward(ctx, x, shape):
        return array_module(x).broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, g):
        return g


def _is_basic(index) -> bool:
    """Basic indexing (ints, slices, None, ...) selects each element at most once."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice, np.integer)) for p in parts)


class GetItem(Function):
    """z = x[index].  dL/dx = zeros with g placed back at ``index``.

    With integer-array indexing an element may be picked several times; its gradient is
    then the *sum* over the picks, which is what ``np.add.at`` (scatter-add) computes and
    what plain assignment ``dx[index] = g`` would get wrong.
    """

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.index = x.shape, index
        return x[index]

    @staticmethod
    def backward(ctx, g):
        dx = array_module(g).zeros(ctx.shape, dtype=g.dtype)
        if _is_basic(ctx.index):
            dx[ctx.index] = g
        else:
            scatter_add(dx, ctx.index, g)
        return dx


class Concatenate(Function):
    """z = the inputs joined along ``axis``.   dL/dx_i = the slice of g that x_i filled."""

    @staticmethod
    def forward(ctx, *xs, axis):
        ctx.axis = axis
        ctx.bounds = np.cumsum([x.shape[axis] for x in xs])[:-1]
        return array_module(xs[0]).concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, g):
        return tuple(array_module(g).split(g, ctx.bounds, axis=ctx.axis))


class Stack(Function):
    """z = the inputs stacked along a new ``axis``.   dL/dx_i = g taken at index i there."""

    @staticmethod
    def forward(ctx, *xs, axis):
        ctx.axis = axis
        return array_module(xs[0]).stack(xs, axis=axis)

    @staticmethod
    def backward(ctx, g):
        return tuple(g.take(i, axis=ctx.axis) for i in range(g.shape[ctx.axis]))


class Pad(Function):
    """z = x padded with a constant; ``pad_width`` as ``numpy.pad``'s ((before, after), ...).
    dL/dx = the centre of g (the padding received no input)."""

    @staticmethod
    def forward(ctx, x, pad_width, value):
        ctx.centre = tuple(slice(b, b + n) for (b, _), n in zip(pad_width, x.shape))
        return array_module(x).pad(x, pad_width, constant_values=value)

    @staticmethod
    def backward(ctx, g):
        return g[ctx.centre]


def _axis(what: str, axis: int, shape: tuple, new_axis: bool = False) -> int:
    """``axis`` as an index from 0 (a negative one counts from the end), or a clear error.
    With ``new_axis`` (unsqueeze, stack) the end itself is one more place to put an axis."""
    places = len(shape) + new_axis
    if not -places <= axis < places:
        raise IndexError(
            f"{what}: axis {axis} is out of range for shape {tuple(shape)}: expected {-places} <= axis < {places}"
        )
    return axis % places


def _shapes_of_same_ndim(tensors, what):
    if len(tensors) == 0:
        raise ValueError(f"{what} expects a non-empty sequence of tensors")
    ndim = tensors[0].ndim
    shapes = [t.shape for t in tensors]
    if any(t.ndim != ndim for t in tensors):
        raise ValueError(f"{what} expects tensors with the same number of dimensions, got shapes {shapes}")
    return shapes


def reshape(x, *shape):
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    size = int(np.prod([n for n in shape if n != -1]))
    if shape.count(-1) > 1 or (-1 not in shape and size != x.numel()) or (
        -1 in shape and (size == 0 or x.numel() % size)
    ):
        raise ValueError(f"cannot reshape a tensor of shape {x.shape} ({x.numel()} elements) to {tuple(shape)}")
    return Reshape.apply(x, shape=tuple(shape))


def permute(x, *axes):
    axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
    normalised = tuple(_axis("permute", a, x.shape) for a in axes)
    if sorted(normalised) != list(range(x.ndim)):
        raise ValueError(f"permute expects a permutation of range({x.ndim}), got {tuple(axes)}")
    return Permute.apply(x, axes=normalised)


def transpose(x, dim0=-2, dim1=-1):
    """Swap two axes (PyTorch's ``transpose``); by default the last two."""
    if x.ndim < 2:
        return x
    dim0, dim1 = _axis("transpose", dim0, x.shape), _axis("transpose", dim1, x.shape)
    axes = list(range(x.ndim))
    axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
    return Permute.apply(x, axes=tuple(axes))


def getitem(x, index):
    from ..engine.tensor import Tensor

    def raw(part):
        if isinstance(part, Tensor):
            if part.dtype.kind not in "iub":
                raise IndexError(f"tensors used as indices must be integer or bool, got {part.dtype}")
            return part.data
        return part

    index = tuple(raw(p) for p in index) if isinstance(index, tuple) else raw(index)
    return GetItem.apply(x, index=index)


def concatenate(tensors, axis=0):
    tensors = list(tensors)
    shapes = _shapes_of_same_ndim(tensors, "concatenate")
    axis = _axis("concatenate", axis, shapes[0])
    if any(s[:axis] + s[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:] for s in shapes):
        raise ValueError(f"concatenate along axis {axis} needs equal sizes on the other axes, got {shapes}")
    return Concatenate.apply(*tensors, axis=axis)


cat = concatenate


def stack(tensors, axis=0):
    tensors = list(tensors)
    shapes = _shapes_of_same_ndim(tensors, "stack")
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"stack expects tensors of the same shape, got {shapes}")
    return Stack.apply(*tensors, axis=_axis("stack", axis, shapes[0], new_axis=True))


def split(x, split_size_or_sections, axis=0):
    """PyTorch's ``split``: an int is the size of each chunk (the last may be smaller); a
    list gives each chunk's size and must sum to the axis length."""
    axis = _axis("split", axis, x.shape)
    length = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split size must be positive, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (length // split_size_or_sections)
        if length % split_size_or_sections:
            sizes.append(length % split_size_or_sections)
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != length:
            raise ValueError(f"split sizes {sizes} sum to {sum(sizes)}, but the axis has length {length}")
    chunks, start = [], 0
    for size in sizes:
        index = (slice(None),) * axis + (slice(start, start + size),)
        chunks.append(GetItem.apply(x, index=index))
        start += size
    return chunks


def pad(x, pad, value=0.0):
    """PyTorch's ``F.pad``: ``pad`` lists (before, after) pairs starting from the LAST axis,
    e.g. ``(1, 1, 2, 2)`` pads the last axis by 1 and the one before by 2."""
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad needs an even number of values for at most {x.ndim} axes, got {pad}")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad supports non-negative padding only, got {pad}")
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
    width = [(0, 0)] * (x.ndim - len(pairs)) + pairs[::-1]
    return Pad.apply(x, pad_width=tuple(width), value=value)


def broadcast_to(x, shape):
    try:
        np.broadcast_shapes(x.shape, tuple(shape))
    except ValueError:
        raise ValueError(f"cannot broadcast a tensor of shape {x.shape} to {tuple(shape)}") from None
    if np.broadcast_shapes(x.shape, tuple(shape)) != tuple(shape):
        raise ValueError(f"cannot broadcast a tensor of shape {x.shape} to {tuple(shape)}")
    return BroadcastTo.apply(x, shape=tuple(shape))


def expand(x, *shape):
    """PyTorch's ``expand``: -1 keeps a dimension's size."""
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    lead = len(shape) - x.ndim
    if -1 in shape[:lead]:
        raise ValueError(f"expand: -1 (keep the size) cannot stand for a new leading axis, got {tuple(shape)} "
                         f"for a tensor of shape {x.shape}")
    full = tuple(x.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
    return broadcast_to(x, full)


def squeeze(x, axis=None):
    if axis is None:
        return Reshape.apply(x, shape=tuple(n for n in x.shape if n != 1))
    axis = _axis("squeeze", axis, x.shape)
    if x.shape[axis] != 1:
        return x  # PyTorch leaves an axis that is not of size 1 alone
    return Reshape.apply(x, shape=x.shape[:axis] + x.shape[axis + 1:])


def unsqueeze(x, axis):
    axis = _axis("unsqueeze", axis, x.shape, new_axis=True)
    return Reshape.apply(x, shape=x.shape[:axis] + (1,) + x.shape[axis:])


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return Reshape.apply(x, shape=(1,))
    start, end = _axis("flatten", start_dim, x.shape), _axis("flatten", end_dim, x.shape)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {x.shape}")
    merged = int(np.prod(x.shape[start:end + 1]))
    return Reshape.apply(x, shape=x.shape[:start] + (merged,) + x.shape[end + 1:])
