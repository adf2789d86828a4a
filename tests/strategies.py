"""Hypothesis strategies for the op tests (minitorch's ``tests/tensor_strategies.py`` is the model).

Three things are drawn separately, so that a failure shrinks to something readable:

- **shapes**: 0-d tensors and zero-size dimensions included, and tuples of shapes that
  broadcast together;
- **values**: each op draws from a *domain* of finite float64 numbers that keeps away
  from the points where it has a kink (relu and abs at 0, clip at its bounds, ties of a
  maximum) or no value (log of a negative number), so central differences are valid;
- **memory layout**: the same values stored contiguously, transposed, as every other
  element of a larger buffer whose gaps hold NaN (a kernel that ignores strides reads a
  NaN and fails loudly), or with negative strides.
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

def contiguous(values: np.ndarray) -> np.ndarray:
    return values.copy()


def transposed(values: np.ndarray) -> np.ndarray:
    """Fortran order: the transpose of a C-contiguous array, transposed back."""
    return np.array(values.T, order="C").T


def every_other(values: np.ndarray) -> np.ndarray:
    """A view of every other element along the last axis of a buffer twice as long; the
    elements in between are NaN."""
    if values.ndim == 0:
        return values.copy()
    buffer = np.full(values.shape[:-1] + (2 * values.shape[-1],), np.nan)
    buffer[..., ::2] = values
    return buffer[..., ::2]


def reversed_strides(values: np.ndarray) -> np.ndarray:
    """A view with negative strides along every axis."""
    if values.ndim == 0:
        return values.copy()
    return np.flip(np.flip(values).copy())


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
