"""Hypothesis strategies for the op tests (minitorch's ``tests/tensor_strategies.py`` is the model).

Three things are drawn separately, so that a failure shrinks to something readable:

- **shapes**: 0-d tensors and zero-size dimensions included, and tuples of shapes that
  broadcast together;
- **values**: each op draws from a *domain* of finite float64 numbers that keeps away
  from the points where it has a kink (relu and abs at 0, clip at its bounds, ties of a
  maximum) or no value (log of a negative number), so central differences are valid;
- **memory layout**: the same values stored contiguously, transposed, as every other
  element of a larger buffer whose gaps hold NaN (a kernel that ignores strides reads a
  NaN and fails loudly), or with negative strides -- one meaning of each layout, for the
  op tests and the kernel tests alike, on NumPy or (``xp=cupy``) on the GPU.

The kernel tests (``test_reference_kernels.py``, ``test_numba_kernels.py``,
``test_cupy_kernels.py``) share the last part: one set of convolution and pooling cases,
and one convolution oracle, ``conv2d_oracle``.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


class Sides(NamedTuple):
    """The range of every dimension's length in the drawn shapes."""

    low: int
    high: int


@dataclass
class Case:
    """One drawn input to an op: the differentiable float ``arrays``, then the constant
    ``params`` (axes, strides, integer targets, ...) passed as keyword arguments."""

    arrays: tuple
    params: dict = field(default_factory=dict)


# ------------------------------------------------------------------ value domains

def floats(low: float, high: float) -> st.SearchStrategy:
    """Finite float64 numbers in [low, high] (no NaN, no infinity, no subnormals)."""
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)


REALS = floats(-3, 3)
POSITIVE = floats(0.1, 3)  # log, sqrt, the base of a power
NONZERO = st.builds(operator.mul, st.sampled_from([-1.0, 1.0]), floats(0.2, 3))  # divisors
UNIT = floats(0, 1)  # probabilities, targets of a binary cross-entropy

LATTICE = 0.25
"""Kinks are placed on multiples of LATTICE: relu and abs at 0, clip at the bounds drawn by
``clip_bounds``. ``OFF_LATTICE`` values stay at least 0.05 from every multiple, and
``NEAR_LATTICE`` values at most 0.02 from one, so maximum(x, y) of the two never ties."""
OFF_LATTICE = st.builds(lambda k, offset: LATTICE * k + offset, st.integers(-8, 7), floats(0.05, 0.2))
NEAR_LATTICE = st.builds(lambda k, offset: LATTICE * k + offset, st.integers(-8, 8), floats(-0.02, 0.02))

DISTINCT = st.integers(-300, 300).map(lambda k: k / 50)
"""Multiples of 0.02 in [-6, 6]; drawn with ``unique=True`` they never tie (max, min,
max-pooling) and a group of two or more has a variance bounded away from 0 (std, norms)."""


# ------------------------------------------------------------------ memory layouts

def contiguous(values, xp=np):
    """A C-contiguous copy."""
    return xp.array(values, order="C")


def transposed(values, xp=np):
    """Fortran order (all axes reversed in memory): the transpose of a C-contiguous array, transposed back."""
    return xp.array(values.T, order="C").T


def every_other(values, xp=np):
    """A view of every other element along the last axis of a buffer twice as long; the
    elements in between are NaN."""
    if values.ndim == 0:
        return values.copy()
    buffer = xp.full(values.shape[:-1] + (2 * values.shape[-1],), np.nan, dtype=values.dtype)
    buffer[..., ::2] = values
    return buffer[..., ::2]


def reversed_strides(values, xp=np):
    """A view with negative strides along every axis."""
    if values.ndim == 0:
        return values.copy()
    return xp.flip(xp.flip(values).copy())


LAYOUTS = (contiguous, transposed, every_other, reversed_strides)


@st.composite
def arrays(draw, shape: tuple, elements=REALS, unique: bool = False) -> np.ndarray:
    """A float64 array of ``shape``, every element drawn from ``elements``, in a drawn layout."""
    values = draw(hnp.arrays(np.float64, shape, elements=elements, fill=st.nothing(), unique=unique))
    return draw(st.sampled_from(LAYOUTS))(values)


# ------------------------------------------------------------------ shapes and axes

def shapes(sides: Sides, min_dims: int = 0, max_dims: int = 4, min_side: int = 0) -> st.SearchStrategy:
    """Shapes of ``min_dims`` to ``max_dims`` dimensions (0: a 0-d tensor); every length is
    in ``sides`` and at least ``min_side`` (0 allows zero-size dimensions)."""
    low = max(sides.low, min_side)
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=low, max_side=max(sides.high, low))


def broadcast_shapes(sides: Sides, count: int, min_side: int = 0, max_dims: int = 4) -> st.SearchStrategy:
    """``count`` shapes that broadcast together (NumPy's rules), e.g. (3, 1), (4, 1, 5)."""
    low = max(sides.low, min_side)
    return hnp.mutually_broadcastable_shapes(
        num_shapes=count, min_dims=0, max_dims=max_dims, min_side=low, max_side=max(sides.high, low)
    ).map(lambda drawn: drawn.input_shapes)


@st.composite
def axes(draw, ndim: int):
    """An ``axis`` argument: None, one axis, or a tuple of distinct axes; each may be
    negative (counted from the end)."""
    if ndim == 0:
        return None
    signed = lambda a: st.sampled_from([a, a - ndim])  # noqa: E731 - one axis, either spelling
    one = st.integers(0, ndim - 1).flatmap(signed)
    several = st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim).flatmap(
        lambda picked: st.tuples(*map(signed, picked))
    )
    return draw(st.one_of(st.none(), one, several))


def reduced_count(shape: tuple, axis) -> int:
    """How many elements a reduction over ``axis`` combines into each output element."""
    if axis is None:
        return math.prod(shape)
    picked = (axis,) if isinstance(axis, int) else axis
    return math.prod(shape[a] for a in picked)


# ------------------------------------------------------------------ cases of the common families

def elementwise(sides: Sides, *domains, params=st.just({}), min_side: int = 0) -> st.SearchStrategy:
    """A Case for an element-wise op with one input per domain; several inputs get shapes
    that broadcast together."""
    if len(domains) == 1:
        drawn_shapes = shapes(sides, min_side=min_side).map(lambda shape: (shape,))
    else:
        drawn_shapes = broadcast_shapes(sides, len(domains), min_side=min_side)
    inputs = drawn_shapes.flatmap(lambda shs: st.tuples(*(arrays(s, d) for s, d in zip(shs, domains))))
    return st.builds(Case, inputs, params)


@st.composite
def reduction(draw, sides: Sides, domain=REALS, unique=False, min_side=1, min_count=1, correction=False):
    """A Case for a reduction: ``x`` with ``axis`` and ``keepdims`` (and ``correction`` for
    var / std); ``min_count`` elements at least go into each output element."""
    shape = draw(shapes(sides, max_dims=3, min_side=min_side))
    params = {"axis": draw(axes(len(shape))), "keepdims": draw(st.booleans())}
    count = reduced_count(shape, params["axis"])
    assume(count >= min_count)
    if correction:
        params["correction"] = draw(st.integers(0, 1))
    return Case((draw(arrays(shape, domain, unique)),), params)


@st.composite
def clip_bounds(draw) -> dict:
    """``min`` and ``max`` for clip: multiples of LATTICE, or None (not both)."""
    low = draw(st.one_of(st.none(), st.integers(-8, 4).map(lambda k: k * LATTICE)))
    high = draw(st.one_of(st.none(), st.integers(-4, 8).map(lambda k: k * LATTICE)))
    assume(low is not None or high is not None)
    assume(low is None or high is None or low <= high)
    return {"min": low, "max": high}


@st.composite
def with_nonfinite(draw, values: np.ndarray) -> np.ndarray:
    """A copy of ``values`` with some elements replaced by NaN, +inf or -inf."""
    out = np.array(values, dtype=np.float64)
    if out.size == 0:
        return out
    flat = out.reshape(-1)
    specials = st.sampled_from([np.nan, np.inf, -np.inf])
    for position in draw(st.lists(st.integers(0, flat.size - 1), min_size=1, max_size=flat.size)):
        flat[position] = draw(specials)
    return out


# ------------------------------------------------------------------ kernel cases (the kernel tests)

SEEDS = st.integers(0, 2**32 - 1)
KERNEL_DTYPES = (np.float32, np.float64)


def read_only(values: np.ndarray, layout=contiguous) -> np.ndarray:
    """``values`` stored in ``layout``, read-only: a kernel that wrote to its input would fail."""
    out = layout(values)
    out.flags.writeable = False
    return out


def output_length(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """How many window starts 0, s, 2s, ... have their whole span inside the padded axis."""
    return len(range(0, size + 2 * padding - dilation * (kernel - 1), stride))


@st.composite
def axis_geometry(draw, pool=False, max_dilation=2):
    """(kernel, stride, padding, dilation, size) along one axis, with at least one window.

    Pooling follows PyTorch's rule: padding at most half the kernel.
    """
    kernel = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    padding = draw(st.integers(0, kernel // 2 if pool else 2))
    dilation = draw(st.integers(1, max_dilation))
    span = dilation * (kernel - 1) + 1
    size = draw(st.integers(max(1, span - 2 * padding), span + 5))  # odd and even sizes
    return kernel, stride, padding, dilation, size


@dataclass
class ConvCase:
    """A convolution: x (N, C, H, W), weight (O, C/groups, KH, KW), bias (O,) or None, its
    (stride, padding, dilation) pairs and groups, and a gradient of its output."""

    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple
    padding: tuple
    dilation: tuple
    grad_y: np.ndarray
    groups: int = 1

    @property
    def geometry(self) -> tuple:
        """(stride, padding, dilation, groups): the trailing arguments of every conv2d contract entry."""
        return self.stride, self.padding, self.dilation, self.groups

    @property
    def output_shape(self) -> tuple:
        return self.grad_y.shape


def conv_output_shape(x_shape, weight_shape, stride, padding, dilation) -> tuple:
    (n, _, h, w), (o, _, kh, kw) = x_shape, weight_shape
    return (n, o, output_length(h, kh, stride[0], padding[0], dilation[0]),
            output_length(w, kw, stride[1], padding[1], dilation[1]))


@st.composite
def conv_cases(draw, batch=st.integers(1, 3), dtypes=(np.float64,), groups=st.integers(1, 3)):
    """One ConvCase, every array in a drawn layout (read-only) and dtype; values from a drawn seed.

    ``groups``: a strategy for the number of groups (channels in and out are multiples of
    it); half the grouped cases are depthwise (one input channel per group).
    """
    kh, sh, ph, dh, h = draw(axis_geometry())
    kw, sw, pw, dw, w = draw(axis_geometry())
    n, count = draw(batch), draw(groups)
    depthwise = count > 1 and draw(st.booleans())
    c, o = count * (1 if depthwise else draw(st.integers(1, 3))), count * draw(st.integers(1, 3))
    dtype = draw(st.sampled_from(dtypes))
    rng = np.random.default_rng(draw(SEEDS))

    def array(shape):
        return read_only(rng.standard_normal(shape).astype(dtype), draw(st.sampled_from(LAYOUTS)))

    x, weight = array((n, c, h, w)), array((o, c // count, kh, kw))
    bias = array((o,)) if draw(st.booleans()) else None
    window = ((sh, sw), (ph, pw), (dh, dw))
    return ConvCase(x, weight, bias, *window, array(conv_output_shape(x.shape, weight.shape, *window)), count)


def conv2d_oracle(x, weight, bias, stride, padding, dilation, groups=1):
    """The contract's formula, in float64, one kernel offset (p, q) at a time::

        y[n, o, i, j] = bias[o] + sum_{c in o's group, p, q} weight[o, c, p, q] * xpad[n, c, i*sh + p*dh, j*sw + q*dw]

    where output channel o sees the input channels ``c = group*C/groups + c'`` of its group
    ``o // (O/groups)``, ``c' < C/groups`` (groups=1: every channel).
    """
    x, weight = np.asarray(x, np.float64), np.asarray(weight, np.float64)
    (n, c, _, _), (o, c_group, kh, kw) = x.shape, weight.shape
    _, _, ho, wo = conv_output_shape(x.shape, (o, c, kh, kw), stride, padding, dilation)
    (sh, sw), (dh, dw), o_group = stride, dilation, o // groups
    xpad = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    y = np.zeros((n, o, ho, wo))
    for p, q in np.ndindex(kh, kw):
        view = xpad[:, :, p * dh: p * dh + sh * (ho - 1) + 1: sh, q * dw: q * dw + sw * (wo - 1) + 1: sw]
        for group in range(groups):
            inputs = view[:, group * c_group: (group + 1) * c_group]
            outputs = slice(group * o_group, (group + 1) * o_group)
            y[:, outputs] += np.einsum("nchw,oc->nohw", inputs, weight[outputs, :, p, q])
    return y if bias is None else y + np.asarray(bias, np.float64)[None, :, None, None]


@dataclass
class PoolCase:
    """A pooling: x (N, C, H, W), its (kernel_size, stride, padding, dilation) pairs, and
    the flags ``ceil_mode`` and (for the average) ``count_include_pad``."""

    x: np.ndarray
    kernel_size: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    ceil_mode: bool = False
    count_include_pad: bool = True

    @property
    def window(self) -> tuple:
        """(kernel_size, stride, padding): the window arguments of every pooling entry."""
        return self.kernel_size, self.stride, self.padding

    @property
    def max_args(self) -> tuple:
        """The arguments of ``max_pool2d_forward`` after x."""
        return (*self.window, self.dilation, self.ceil_mode)

    @property
    def avg_args(self) -> tuple:
        """The arguments of ``avg_pool2d_forward`` after x (and of ``avg_pool2d_backward`` after input_shape)."""
        return (*self.window, self.ceil_mode, self.count_include_pad)

    @property
    def output_shape(self) -> tuple:
        n, c, h, w = self.x.shape
        length = ceil_output_length if self.ceil_mode else output_length
        return (n, c) + tuple(
            length(size, k, s, p, d)
            for size, k, s, p, d in zip((h, w), self.kernel_size, self.stride, self.padding, self.dilation)
        )


def ceil_output_length(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Windows in ceil mode: starts i*s (in the padded axis) up to the last that leaves some
    of its span inside, and that start on the input or its left padding (PyTorch's rule)."""
    room = size + 2 * padding - dilation * (kernel - 1) - 1
    return sum(1 for i in range(size + 2 * padding) if i * stride < room + stride and i * stride - padding < size)


POOL_VALUES = ("distinct", "ties", "-inf")


def pool_values(rng, shape, kind) -> np.ndarray:
    """distinct: a permutation with gaps of 0.5 (no ties; safe for central differences);
    ties: only 0, 1, 2 (the first maximum must win); -inf: mostly -inf, else 0;
    nan: normal numbers, the largest replaced by NaN."""
    if kind == "distinct":
        return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.5
    if kind == "ties":
        return rng.integers(0, 3, shape).astype(np.float64)
    if kind == "nan":
        values = rng.standard_normal(shape)
        return np.where(values > 1.0, np.nan, values)
    return np.where(rng.random(shape) < 0.7, -np.inf, 0.0)


def windows_reach_the_input(kernel, stride, padding, dilation, size) -> bool:
    """No window along this axis lies wholly on the padding (the contract refuses those)."""
    starts = range(-padding, size + padding - dilation * (kernel - 1), stride)
    return all(any(0 <= start + t * dilation < size for t in range(kernel)) for start in starts)


@st.composite
def pool_cases(draw, kinds=POOL_VALUES, max_dilation=2, dtypes=(np.float64,)):
    """One PoolCase every window of which reaches x; x read-only, in a drawn layout and
    dtype; ``ceil_mode`` and ``count_include_pad`` drawn."""
    axes_ = [draw(axis_geometry(pool=True, max_dilation=max_dilation)) for _ in range(2)]
    assume(all(windows_reach_the_input(*axis) for axis in axes_))
    kernel_size, stride, padding, dilation, size = (tuple(values) for values in zip(*axes_))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(SEEDS))
    values = pool_values(rng, (n, c, *size), draw(st.sampled_from(kinds))).astype(draw(st.sampled_from(dtypes)))
    return PoolCase(read_only(values, draw(st.sampled_from(LAYOUTS))), kernel_size, stride, padding, dilation,
                    draw(st.booleans()), draw(st.booleans()))
