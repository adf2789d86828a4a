"""Ops that move elements without computing: reshape, permute, indexing, concatenation,
padding and broadcasting. Their backward moves the gradient back the same way."""

from __future__ import annotations

import numpy as np

from ..engine.autograd import Function
from ..backend.device import array_module, scatter_add
from .arguments import spelled


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


class SetItem(Function):
    """z = x with z[index] = v (``x[index] = v`` without changing ``x``; ``Tensor.__setitem__``
    writes z back into x).   dL/dx = g with zeros at ``index``,  dL/dv = g[index]."""

    @staticmethod
    def forward(ctx, x, v, index):
        ctx.index = index
        z = x.copy()
        z[index] = v
        return z

    @staticmethod
    def backward(ctx, g):
        dx = g.copy()
        dx[ctx.index] = 0
        return dx, g[ctx.index]


class Gather(Function):
    """z[i, j, k] = x[index[i, j, k], j, k] for dim 0 (and likewise along any ``dim``):
    ``z.shape == index.shape``.   dL/dx = g scatter-added back (an index picked twice gets
    both gradients)."""

    @staticmethod
    def forward(ctx, x, dim, index):
        xp = array_module(x)
        grids = [xp.arange(n).reshape([-1 if i == a else 1 for i in range(index.ndim)])
                 for a, n in enumerate(index.shape)]
        grids[dim] = index
        ctx.shape, ctx.picks = x.shape, tuple(grids)
        return x[ctx.picks]

    @staticmethod
    def backward(ctx, g):
        dx = array_module(g).zeros(ctx.shape, dtype=g.dtype)
        scatter_add(dx, ctx.picks, g)
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


def _raw_index(index):
    """An index with any Tensor in it replaced by its array (integer or bool only)."""
    from ..engine.tensor import Tensor

    def raw(part):
        if isinstance(part, Tensor):
            if part.dtype.kind not in "iub":
                raise IndexError(f"tensors used as indices must be integer or bool, got {part.dtype}")
            return part.data
        return part

    return tuple(raw(p) for p in index) if isinstance(index, tuple) else raw(index)


def getitem(x, index):
    return GetItem.apply(x, index=_raw_index(index))


def setitem(x, index, value):
    """``x`` with ``value`` written at ``index``, as a new tensor (``x`` is unchanged);
    ``value`` is cast to ``x``'s dtype. ``x[index] = value`` writes this into ``x``."""
    from ..engine.tensor import Tensor

    if not isinstance(value, Tensor):
        value = Tensor._from_array(array_module(x.data).asarray(value, dtype=x.dtype))
    return SetItem.apply(x, value, index=_raw_index(index))


def gather(x, dim, index):
    """PyTorch's ``gather``: values of ``x`` picked along ``dim`` by the int64 ``index``,
    which has ``x``'s number of dimensions and, on every other axis, at most its length."""
    from ..engine.tensor import Tensor

    idx = index.data if isinstance(index, Tensor) else array_module(x.data).asarray(index)
    dim = _axis("gather", dim, x.shape)
    if idx.dtype.kind not in "iu":
        raise RuntimeError(f"gather(): expected an int64 index, got dtype {idx.dtype}")
    if idx.ndim != x.ndim or any(n > m for a, (n, m) in enumerate(zip(idx.shape, x.shape)) if a != dim):
        raise RuntimeError(f"gather(): index of shape {tuple(idx.shape)} does not fit input of shape {x.shape} "
                           f"along dim {dim}: same number of dimensions, and no longer than the input on other axes")
    if idx.size and (idx.min() < 0 or idx.max() >= x.shape[dim]):
        raise IndexError(f"gather(): index out of range for dim {dim} of length {x.shape[dim]}: "
                         f"got values in [{int(idx.min())}, {int(idx.max())}]")
    return Gather.apply(x, dim=dim, index=idx)


def copy_into(x, src):
    """``src`` broadcast to ``x``'s shape and cast to its dtype: what ``x.copy_(src)``
    writes into ``x`` (``x`` gives only the shape, dtype and device)."""
    from ..engine.tensor import Tensor

    if not isinstance(src, Tensor):
        src = Tensor._from_array(array_module(x.data).asarray(src, dtype=x.dtype))
    return broadcast_to(src.to(x.dtype), x.shape)


def concatenate(tensors, dim=None, *, axis=None):
    """The tensors joined along ``dim`` (0 by default); ``cat`` is the same function."""
    axis = spelled(dim, axis, 0)
    tensors = list(tensors)
    shapes = _shapes_of_same_ndim(tensors, "concatenate")
    axis = _axis("concatenate", axis, shapes[0])
    if any(s[:axis] + s[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:] for s in shapes):
        raise ValueError(f"concatenate along axis {axis} needs equal sizes on the other axes, got {shapes}")
    return Concatenate.apply(*tensors, axis=axis)


cat = concatenate


def stack(tensors, dim=None, *, axis=None):
    """The tensors, all of one shape, stacked along a new axis ``dim`` (0 by default)."""
    axis = spelled(dim, axis, 0)
    tensors = list(tensors)
    shapes = _shapes_of_same_ndim(tensors, "stack")
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"stack expects tensors of the same shape, got {shapes}")
    return Stack.apply(*tensors, axis=_axis("stack", axis, shapes[0], new_axis=True))


def split(x, split_size_or_sections, dim=None, *, axis=None):
    """PyTorch's ``split`` along ``dim`` (0 by default): an int is the size of each chunk
    (the last may be smaller); a list gives each chunk's size and must sum to the axis length."""
    axis = _axis("split", spelled(dim, axis, 0), x.shape)
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


def squeeze(x, dim=None, *, axis=None):
    """Drop axis ``dim`` if its length is 1 (PyTorch leaves it otherwise), or every
    length-1 axis when ``dim`` is None."""
    axis = spelled(dim, axis, None)
    if axis is None:
        return Reshape.apply(x, shape=tuple(n for n in x.shape if n != 1))
    axis = _axis("squeeze", axis, x.shape)
    if x.shape[axis] != 1:
        return x  # PyTorch leaves an axis that is not of size 1 alone
    return Reshape.apply(x, shape=x.shape[:axis] + x.shape[axis + 1:])


def unsqueeze(x, dim=None, *, axis=None):
    """A new axis of length 1 at position ``dim`` (negative counts from the end)."""
    axis = spelled(dim, axis, None)
    if axis is None:
        raise TypeError("unsqueeze() missing the position of the new axis: dim")
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
