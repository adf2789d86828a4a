"""THE op table: every differentiable op of ``minift.functional``, once.

Each entry says how minift calls the op, what it computes written directly in NumPy, and
which inputs to draw (the domain of the values is in the case strategy: ``log`` draws
positive numbers, ``relu`` numbers away from 0, ``max`` numbers that never tie). The
forward tests compare minift with the NumPy formula; the gradient tests compare backward
with central differences of minift's own forward; entries with ``kernel=True`` run a
backend kernel (matmul, convolution, pooling) and are tested under every backend.

A formula here is the definition of the op as its docstring states it, written the
obvious way (loops over kernel offsets, explicit masks), never a copy of minift's code.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minift
import minift.functional as F
from strategies import (DISTINCT, NEAR_LATTICE, NONZERO, OFF_LATTICE, POSITIVE, REALS, UNIT, Case, Sides,
                        arrays, broadcast_shapes, ceil_output_length, clip_bounds, conv2d_oracle, elementwise, reduction,
                        shapes)


@dataclass(frozen=True)
class Op:
    """One op: ``forward(*tensors, **params)`` in minift, ``reference(*arrays, **params)``
    in NumPy (each returns one result or a list of them), and ``cases(sides)``, a strategy
    of ``Case`` whose dimensions have lengths in ``sides``."""

    name: str
    forward: Callable
    reference: Callable
    cases: Callable
    kernel: bool = False

    def __str__(self) -> str:
        return self.name

    def outputs(self, tensors, params) -> list:
        out = self.forward(*tensors, **params)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def expected(self, arrays_, params) -> list:
        out = self.reference(*arrays_, **params)
        return [np.asarray(a) for a in out] if isinstance(out, (list, tuple)) else [np.asarray(out)]

    def as_function(self, params) -> Callable:
        """The op as a function of its tensors alone, returning one Tensor (several outputs,
        as from ``split``, are flattened and joined) — the form ``gradcheck`` takes."""

        def function(*tensors):
            outputs = self.outputs(tensors, params)
            return outputs[0] if len(outputs) == 1 else F.cat([o.reshape(-1) for o in outputs])

        return function


def pairs(value) -> tuple:
    return (value, value) if isinstance(value, int) else tuple(value)


# ------------------------------------------------------------------ element-wise

def scalar_arithmetic(x, operation, scalar, scalar_first):
    """``scalar (op) x`` or ``x (op) scalar`` with a Python float: the same code for both."""
    return operation(scalar, x) if scalar_first else operation(x, scalar)


SCALAR_ARITHMETIC = st.fixed_dictionaries({
    "operation": st.sampled_from([operator.add, operator.sub, operator.mul, operator.truediv, operator.pow]),
    "scalar": st.floats(0.5, 2.0),
    "scalar_first": st.booleans(),
})


@st.composite
def where_cases(draw, sides: Sides) -> Case:
    condition_shape, x_shape, y_shape = draw(broadcast_shapes(sides, 3))
    condition = draw(hnp.arrays(np.bool_, condition_shape))
    return Case((draw(arrays(x_shape)), draw(arrays(y_shape))), {"condition": condition})


def erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def gelu_reference(x, approximate):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


OFF_INTEGERS = OFF_LATTICE.map(lambda value: 4 * value)  # in [-8, 8), never within 0.2 of an integer


def hardswish_reference(x):
    return x * np.minimum(np.maximum(x + 3, 0), 6) / 6


def softplus_reference(x, beta, threshold):
    return np.where(beta * x > threshold, x, np.log1p(np.exp(beta * x)) / beta)


def mish_reference(x):
    return x * np.tanh(np.log1p(np.exp(x)))


# ------------------------------------------------------------------ reductions and softmax

@st.composite
def softmax_cases(draw, sides: Sides) -> Case:
    shape = draw(shapes(sides, min_dims=1, min_side=1))
    return Case((draw(arrays(shape)),), {"axis": draw(st.integers(-len(shape), len(shape) - 1))})


def softmax_reference(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax_reference(x, axis):
    return np.log(softmax_reference(x, axis))


def logsumexp_reference(x, axis, keepdims):
    return np.log(np.exp(x).sum(axis=axis, keepdims=keepdims))


# ------------------------------------------------------------------ matmul

@st.composite
def matmul_cases(draw, sides: Sides) -> Case:
    """Batched and 1-D operands as ``numpy.matmul`` defines them: a 1-D first operand is a
    row, a 1-D second operand a column; batch dimensions broadcast."""
    m, k, n = (draw(st.integers(sides.low, sides.high)) for _ in range(3))
    x_batch, y_batch = draw(broadcast_shapes(Sides(sides.low, min(sides.high, 3)), 2, max_dims=2))
    x_shape = (k,) if draw(st.booleans()) else x_batch + (m, k)
    y_shape = (k,) if draw(st.booleans()) else y_batch + (k, n)
    return Case((draw(arrays(x_shape)), draw(arrays(y_shape))))


@st.composite
def linear_cases(draw, sides: Sides) -> Case:
    """``x (..., in)``, ``weight (out, in)`` and, half the time, ``bias (out,)``."""
    lead = draw(shapes(sides, max_dims=2))
    n_in, n_out = draw(st.integers(sides.low, sides.high)), draw(st.integers(sides.low, sides.high))
    inputs = (draw(arrays(lead + (n_in,))), draw(arrays((n_out, n_in))))
    if draw(st.booleans()):
        inputs += (draw(arrays((n_out,))),)
    return Case(inputs)


def linear_reference(x, weight, bias=None):
    y = x @ weight.T
    return y if bias is None else y + bias


# ------------------------------------------------------------------ shape ops

@st.composite
def reshape_cases(draw, sides: Sides) -> Case:
    """The new shape: the old lengths permuted, some neighbours merged, maybe a 1 inserted
    and maybe one length spelled -1."""
    shape = draw(shapes(sides))
    lengths = []
    for n in draw(st.permutations(shape)):
        if lengths and draw(st.booleans()):
            lengths[-1] *= n
        else:
            lengths.append(n)
    if draw(st.booleans()):
        lengths.insert(draw(st.integers(0, len(lengths))), 1)
    if lengths and 0 not in lengths and draw(st.booleans()):
        lengths[draw(st.integers(0, len(lengths) - 1))] = -1
    return Case((draw(arrays(shape)),), {"shape": tuple(lengths)})


@st.composite
def permute_cases(draw, sides: Sides) -> Case:
    shape = draw(shapes(sides))
    order = draw(st.permutations(range(len(shape))))
    spelled = tuple(draw(st.sampled_from([a, a - len(shape)])) for a in order)
    return Case((draw(arrays(shape)),), {"axes": spelled})


@st.composite
def transpose_cases(draw, sides: Sides) -> Case:
    shape = draw(shapes(sides, min_dims=2))
    dims = st.integers(-len(shape), len(shape) - 1)
    return Case((draw(arrays(shape)),), {"dim0": draw(dims), "dim1": draw(dims)})


@st.composite
def basic_index_cases(draw, sides: Sides) -> Case:
    """Integers, slices (negative steps too), None and Ellipsis: each element picked once."""
    shape = draw(shapes(sides))
    return Case((draw(arrays(shape)),), {"index": draw(hnp.basic_indices(shape, allow_newaxis=True))})


@st.composite
def advanced_index_cases(draw, sides: Sides) -> Case:
    """Integer arrays (negative and repeated entries included: a repeated pick must get the
    *sum* of its gradients), on one axis or on all of them, or a boolean mask."""
    shape = draw(shapes(sides, min_dims=1, min_side=1))
    kind = draw(st.sampled_from(["one axis", "every axis", "mask"]))
    if kind == "one axis":
        axis = draw(st.integers(0, len(shape) - 1))
        picks = draw(hnp.arrays(np.int64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=4),
                                elements=st.integers(-shape[axis], shape[axis] - 1)))
        index = (slice(None),) * axis + (picks,)
    elif kind == "every axis":
        picked_shapes = hnp.array_shapes(min_dims=1, max_dims=2, max_side=4)
        index = draw(hnp.integer_array_indices(shape, result_shape=picked_shapes))
    else:
        index = draw(hnp.arrays(np.bool_, shape))
    return Case((draw(arrays(shape)),), {"index": index})


@st.composite
def concatenate_cases(draw, sides: Sides) -> Case:
    shape = draw(shapes(sides, min_dims=1, max_dims=3))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    lengths = draw(st.lists(st.integers(sides.low, sides.high), min_size=1, max_size=3))
    pieces = [shape[:axis % len(shape)] + (n,) + shape[axis % len(shape) + 1:] for n in lengths]
    return Case(tuple(draw(arrays(p)) for p in pieces), {"axis": axis})


@st.composite
def stack_cases(draw, sides: Sides) -> Case:
    shape = draw(shapes(sides, max_dims=3))
    count = draw(st.integers(1, 3))
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    return Case(tuple(draw(arrays(shape)) for _ in range(count)), {"axis": axis})


@st.composite
def split_cases(draw, sides: Sides) -> Case:
    """Either one chunk size (the last chunk may be shorter) or the list of chunk sizes."""
    shape = draw(shapes(sides, min_dims=1, max_dims=3, min_side=1))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    length = shape[axis]
    if draw(st.booleans()):
        sizes = draw(st.integers(1, length + 1))
    else:
        cuts = sorted(draw(st.lists(st.integers(0, length), max_size=3)))
        sizes = [b - a for a, b in zip([0, *cuts], [*cuts, length])]
    return Case((draw(arrays(shape)),), {"sizes": sizes, "axis": axis})


def split_reference(x, sizes, axis):
    length = x.shape[axis]
    if isinstance(sizes, int):
        sizes = [min(sizes, length - start) for start in range(0, length, sizes)]
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


@st.composite
def pad_cases(draw, sides: Sides) -> Case:
    shape = draw(shapes(sides, min_dims=1))
    padded_axes = draw(st.integers(0, len(shape)))
    pad = tuple(draw(st.lists(st.integers(0, 2), min_size=2 * padded_axes, max_size=2 * padded_axes)))
    return Case((draw(arrays(shape)),), {"pad": pad, "value": draw(st.one_of(st.just(0.0), REALS))})


def pad_reference(x, pad, value):
    """``pad`` lists (before, after) pairs from the LAST axis backwards (PyTorch's order)."""
    before, after = [0] * x.ndim, [0] * x.ndim
    for k in range(len(pad) // 2):
        before[x.ndim - 1 - k], after[x.ndim - 1 - k] = pad[2 * k], pad[2 * k + 1]
    out = np.full([b + n + a for b, n, a in zip(before, x.shape, after)], value)
    out[tuple(slice(b, b + n) for b, n in zip(before, x.shape))] = x
    return out


@st.composite
def expand_cases(draw, sides: Sides, allow_minus_one: bool) -> Case:
    """A target shape: new leading axes, and any length where ``x`` has length 1 (with
    ``allow_minus_one``, a kept length may be spelled -1, as ``Tensor.expand`` allows)."""
    shape = draw(shapes(sides, max_dims=3))
    lengths = st.integers(sides.low, sides.high)
    target = draw(st.lists(lengths, max_size=2))
    for n in shape:
        if n == 1:
            target.append(draw(lengths))
        else:
            target.append(-1 if allow_minus_one and draw(st.booleans()) else n)
    return Case((draw(arrays(shape)),), {"shape": tuple(target)})


def expand_reference(x, shape):
    lead = len(shape) - x.ndim
    return np.broadcast_to(x, tuple(x.shape[i - lead] if n == -1 else n for i, n in enumerate(shape)))


@st.composite
def squeeze_cases(draw, sides: Sides) -> Case:
    shape = list(draw(shapes(sides, max_dims=3)))
    for _ in range(draw(st.integers(0, 2))):
        shape.insert(draw(st.integers(0, len(shape))), 1)
    axis = st.none() if not shape else st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1))
    return Case((draw(arrays(tuple(shape))),), {"axis": draw(axis)})


def squeeze_reference(x, axis):
    if axis is None:
        return np.squeeze(x)
    return np.squeeze(x, axis) if x.shape[axis] == 1 else x


@st.composite
def unsqueeze_cases(draw, sides: Sides) -> Case:
    shape = draw(shapes(sides))
    return Case((draw(arrays(shape)),), {"axis": draw(st.integers(-len(shape) - 1, len(shape)))})


@st.composite
def flatten_cases(draw, sides: Sides) -> Case:
    shape = draw(shapes(sides, min_dims=1))
    dims = st.integers(-len(shape), len(shape) - 1)
    start, end = draw(dims), draw(dims)
    assume(start % len(shape) <= end % len(shape))
    return Case((draw(arrays(shape)),), {"start_dim": start, "end_dim": end})


def flatten_reference(x, start_dim, end_dim):
    start, end = start_dim % x.ndim, end_dim % x.ndim
    return x.reshape(x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:])


@st.composite
def along_dim_cases(draw, sides: Sides) -> Case:
    """One ``dim`` of a tensor with no ties (``max(x, dim)`` / ``min(x, dim)``)."""
    shape = draw(shapes(sides, min_dims=1, max_dims=3, min_side=1))
    params = {"dim": draw(st.integers(-len(shape), len(shape) - 1)), "keepdim": draw(st.booleans())}
    return Case((draw(arrays(shape, DISTINCT, unique=True)),), params)


@st.composite
def gather_cases(draw, sides: Sides) -> Case:
    """An int64 ``index`` with ``x``'s number of dimensions, no longer than ``x`` on the
    axes other than ``dim``, and any length (repeats included) along ``dim``."""
    shape = draw(shapes(sides, min_dims=1, max_dims=3, min_side=1))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    index_shape = tuple(draw(st.integers(0, 4)) if a == dim % len(shape) else draw(st.integers(0, n))
                        for a, n in enumerate(shape))
    index = draw(hnp.arrays(np.int64, index_shape, elements=st.integers(0, shape[dim] - 1)))
    return Case((draw(arrays(shape)),), {"dim": dim, "index": index})


def gather_reference(x, dim, index):
    """out[i_0, ..., i_k] = x[i_0, ..., index[i_0, ..., i_k], ..., i_k] (the index at ``dim``)."""
    out = np.zeros(index.shape)
    for position in np.ndindex(*index.shape):
        source = list(position)
        source[dim] = index[position]
        out[position] = x[tuple(source)]
    return out


@st.composite
def setitem_cases(draw, sides: Sides) -> Case:
    """A basic index (each element written at most once) and a value of the picked shape,
    or one that broadcasts to it."""
    shape = draw(shapes(sides))
    index = draw(hnp.basic_indices(shape))
    picked = np.empty(shape)[index].shape
    value_shape = picked[draw(st.integers(0, len(picked))):]
    return Case((draw(arrays(shape)), draw(arrays(value_shape))), {"index": index})


def setitem_reference(x, value, index):
    out = x.copy()
    out[index] = value
    return out


@st.composite
def masked_fill_cases(draw, sides: Sides) -> Case:
    shape = draw(shapes(sides))
    mask_shape = shape[draw(st.integers(0, len(shape))):]
    mask = draw(hnp.arrays(np.bool_, mask_shape))
    return Case((draw(arrays(shape)),), {"mask": mask, "value": draw(REALS)})


# ------------------------------------------------------------------ losses

@st.composite
def cross_entropy_cases(draw, sides: Sides) -> Case:
    """Logits (N, C) or (N, C, d1, ...), integer targets, some equal to ``ignore_index``
    (at least one not), every reduction, label smoothing."""
    n = draw(st.integers(1, max(sides.high, 1)))
    classes = draw(st.integers(1, max(sides.high, 1) + 1))
    spatial = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    ignore_index = draw(st.sampled_from([-100, 0]))
    target = draw(hnp.arrays(np.int64, (n,) + spatial, elements=st.integers(0, classes - 1)))
    ignored = draw(hnp.arrays(np.bool_, target.shape))
    target = np.where(ignored, ignore_index, target)
    assume((target != ignore_index).any())
    params = {
        "target": target,
        "ignore_index": ignore_index,
        "reduction": draw(st.sampled_from(["mean", "sum", "none"])),
        "label_smoothing": draw(st.one_of(st.just(0.0), UNIT)),
    }
    return Case((draw(arrays((n, classes) + spatial)),), params)


def cross_entropy_reference(x, target, ignore_index, reduction, label_smoothing):
    """-[(1 - e) log p[target] + e * mean_c log p[c]] per sample, 0 where ignored."""
    classes = x.shape[1]
    logits = np.moveaxis(x, 1, -1).reshape(-1, classes)
    t = target.reshape(-1)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    kept = t != ignore_index
    picked = logp[np.arange(len(t)), np.where(kept, t, 0)]
    losses = np.where(kept, -(1 - label_smoothing) * picked - label_smoothing * logp.mean(axis=1), 0.0)
    if reduction == "none":
        return losses.reshape(target.shape)
    return losses.sum() if reduction == "sum" else losses.sum() / kept.sum()


@st.composite
def weighted_class_cases(draw, sides: Sides, smoothing: bool) -> Case:
    """``cross_entropy_cases`` with a positive class ``weight (C,)`` (and, for cross-entropy,
    label smoothing), the inputs of ``nll_loss`` and of a weighted cross-entropy."""
    case = draw(cross_entropy_cases(sides))
    params = {key: value for key, value in case.params.items() if smoothing or key != "label_smoothing"}
    params["weight"] = draw(hnp.arrays(np.float64, case.arrays[0].shape[1], elements=POSITIVE))
    return Case(case.arrays, params)


def weighted_nll_reference(logp, target, weight, ignore_index, reduction, label_smoothing=0.0):
    """PyTorch's rule: ``w[y] (1 - e)(-logp[y]) + e/C sum_c w[c](-logp[c])`` per sample, 0
    where ignored; the mean divides by the summed ``w[y]`` of the samples kept."""
    classes = logp.shape[1]
    flat = np.moveaxis(logp, 1, -1).reshape(-1, classes)
    t = target.reshape(-1)
    kept = t != ignore_index
    safe = np.where(kept, t, 0)
    picked = flat[np.arange(len(t)), safe]
    losses = np.where(kept, weight[safe] * (1 - label_smoothing) * -picked
                      + label_smoothing / classes * -(flat * weight).sum(axis=1), 0.0)
    if reduction == "none":
        return losses.reshape(target.shape)
    return losses.sum() if reduction == "sum" else losses.sum() / np.where(kept, weight[safe], 0).sum()


def weighted_cross_entropy_reference(x, **params):
    shifted = x - x.max(axis=1, keepdims=True)
    return weighted_nll_reference(shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)), **params)


@st.composite
def difference_cases(draw, sides: Sides, beta: bool) -> Case:
    """``input`` and ``target`` of one shape whose difference stays off the lattice, so away
    from the kinks of |d| at 0 and of smooth L1 at |d| = beta (a multiple of the lattice)."""
    shape = draw(shapes(sides, min_side=1))
    x, d = draw(arrays(shape)), draw(arrays(shape, OFF_LATTICE))
    params = {"reduction": draw(st.sampled_from(["mean", "sum", "none"]))}
    if beta:
        params["beta"] = draw(st.sampled_from([0.0, 0.25, 0.5, 1.0]))
    return Case((x, x - d), params)


def smooth_l1_reference(x, target, reduction, beta):
    d = np.abs(x - target)
    return REDUCE[reduction](np.where(d < beta, 0.5 * d**2 / max(beta, 1e-300), d - 0.5 * beta))


@st.composite
def mse_cases(draw, sides: Sides) -> Case:
    shape = draw(shapes(sides, min_side=1))
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    return Case((draw(arrays(shape)), draw(arrays(shape))), {"reduction": reduction})


REDUCE = {"mean": np.mean, "sum": np.sum, "none": np.asarray}


def mse_reference(x, target, reduction):
    return REDUCE[reduction]((x - target) ** 2)


@st.composite
def bce_cases(draw, sides: Sides) -> Case:
    """Logits, targets in [0, 1] and, maybe, a positive ``pos_weight`` per class (last axis)."""
    shape = draw(shapes(sides, min_dims=1, min_side=1))
    inputs = (draw(arrays(shape)), draw(arrays(shape, UNIT)))
    if draw(st.booleans()):
        inputs += (draw(arrays(shape[-1:], POSITIVE)),)
    return Case(inputs, {"reduction": draw(st.sampled_from(["mean", "sum", "none"]))})


def bce_reference(x, target, pos_weight=None, reduction="mean"):
    """-[w t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))], with log sigmoid(x) = -log(1 + e^-x)."""
    weight = 1.0 if pos_weight is None else pos_weight
    losses = weight * target * np.logaddexp(0, -x) + (1 - target) * np.logaddexp(0, x)
    return REDUCE[reduction](losses)


@st.composite
def embedding_cases(draw, sides: Sides) -> Case:
    vocab = draw(st.integers(1, max(sides.high, 1) + 1))
    weight = draw(arrays((vocab, draw(st.integers(sides.low, sides.high)))))
    indices = draw(hnp.arrays(np.int64, hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4),
                              elements=st.integers(0, vocab - 1)))
    return Case((weight,), {"indices": indices})


# ------------------------------------------------------------------ normalisation

@st.composite
def layer_norm_cases(draw, sides: Sides) -> Case:
    lead = draw(shapes(sides, max_dims=2))
    normalized = draw(shapes(sides, min_dims=1, max_dims=2, min_side=1))
    inputs = (draw(arrays(lead + normalized, DISTINCT, unique=True)),)
    if draw(st.booleans()):
        inputs += (draw(arrays(normalized)), draw(arrays(normalized)))
    return Case(inputs, {"normalized_shape": normalized})


def layer_norm_reference(x, weight=None, bias=None, normalized_shape=(), eps=1e-5):
    axes_ = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    y = (x - x.mean(axis=axes_, keepdims=True)) / np.sqrt(x.var(axis=axes_, keepdims=True) + eps)
    return y if weight is None else y * weight + bias


@st.composite
def batch_norm_cases(draw, sides: Sides, training: bool) -> Case:
    """``x (N, C, ...)``; in training at least two values per channel; in inference the
    running statistics are constants (variance positive)."""
    n, channels = draw(st.integers(1, max(sides.high, 1))), draw(st.integers(1, 3))
    spatial = draw(shapes(sides, max_dims=2, min_side=1))
    assume(not training or n * math.prod(spatial) >= 2)
    inputs = (draw(arrays((n, channels) + spatial, DISTINCT, unique=True)),)
    if draw(st.booleans()):
        inputs += (draw(arrays((channels,))), draw(arrays((channels,))))
    params = {"training": training}
    if not training:
        params["running_mean"] = draw(hnp.arrays(np.float64, channels, elements=REALS))
        params["running_var"] = draw(hnp.arrays(np.float64, channels, elements=POSITIVE))
    return Case(inputs, params)


@st.composite
def rms_norm_cases(draw, sides: Sides) -> Case:
    lead = draw(shapes(sides, max_dims=2))
    normalized = draw(shapes(sides, min_dims=1, max_dims=2, min_side=1))
    inputs = (draw(arrays(lead + normalized)),)
    if draw(st.booleans()):
        inputs += (draw(arrays(normalized)),)
    # eps large enough to keep the curvature near x = 0 within central differences (eps=None: parity tests)
    return Case(inputs, {"normalized_shape": normalized, "eps": draw(st.sampled_from([0.1, 1.0]))})


def rms_norm_reference(x, weight=None, normalized_shape=(), eps=None):
    eps = np.finfo(x.dtype).eps if eps is None else eps
    axes_ = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    y = x / np.sqrt((x * x).mean(axis=axes_, keepdims=True) + eps)
    return y if weight is None else y * weight


@st.composite
def group_norm_cases(draw, sides: Sides) -> Case:
    """``x (N, G·c, ...)`` with at least two distinct values per group, and maybe weight and bias."""
    n, groups, per_group = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    spatial = draw(shapes(sides, max_dims=2, min_side=1))
    assume(per_group * math.prod(spatial) >= 2)
    channels = groups * per_group
    inputs = (draw(arrays((n, channels) + spatial, DISTINCT, unique=True)),)
    if draw(st.booleans()):
        inputs += (draw(arrays((channels,))), draw(arrays((channels,))))
    return Case(inputs, {"num_groups": groups})


def group_norm_reference(x, weight=None, bias=None, num_groups=1, eps=1e-5):
    grouped = x.reshape(x.shape[0], num_groups, -1)
    y = ((grouped - grouped.mean(axis=2, keepdims=True)) / np.sqrt(grouped.var(axis=2, keepdims=True) + eps))
    y = y.reshape(x.shape)
    channel = (1, -1) + (1,) * (x.ndim - 2)
    return y if weight is None else y * weight.reshape(channel) + bias.reshape(channel)


def batch_norm_forward(x, weight=None, bias=None, training=True, running_mean=None, running_var=None):
    """The running statistics are buffers of the model's dtype, so they take the dtype of ``x``."""
    if running_mean is not None:
        running_mean, running_var = running_mean.astype(x.dtype), running_var.astype(x.dtype)
    return F.batch_norm(x, running_mean, running_var, weight, bias, training=training)


def batch_norm_reference(x, weight=None, bias=None, training=True, running_mean=None, running_var=None, eps=1e-5):
    """Statistics over every axis but the channel axis 1: of the batch in training (biased
    variance), the running ones in inference."""
    over = (0,) + tuple(range(2, x.ndim))
    channel = (1, -1) + (1,) * (x.ndim - 2)
    if training:
        mean, var = x.mean(axis=over, keepdims=True), x.var(axis=over, keepdims=True)
    else:
        mean, var = running_mean.reshape(channel), running_var.reshape(channel)
    y = (x - mean) / np.sqrt(var + eps)
    return y if weight is None else y * weight.reshape(channel) + bias.reshape(channel)


# ------------------------------------------------------------------ convolution and pooling

def fitting_length(draw, sides: Sides, reach: int, padding: int) -> int:
    """An input length that a window reaching ``reach`` elements fits, after padding."""
    shortest = max(reach - 2 * padding, 1)
    return draw(st.integers(shortest, shortest + max(sides.high - 1, 0)))


@st.composite
def conv2d_cases(draw, sides: Sides) -> Case:
    n, c, o = draw(st.integers(min(sides.low, 1), 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride, padding, dilation = ((draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                                 (draw(st.integers(0, 2)), draw(st.integers(0, 2))),
                                 (draw(st.integers(1, 2)), draw(st.integers(1, 2))))
    h, w = (fitting_length(draw, sides, dilation[a] * (kernel[a] - 1) + 1, padding[a]) for a in (0, 1))
    inputs = (draw(arrays((n, c, h, w))), draw(arrays((o, c) + kernel)))
    if draw(st.booleans()):
        inputs += (draw(arrays((o,))),)
    spell = lambda pair: st.sampled_from([pair, pair[0]]) if pair[0] == pair[1] else st.just(pair)  # noqa: E731
    params = {"stride": draw(spell(stride)), "padding": draw(spell(padding)), "dilation": draw(spell(dilation))}
    return Case(inputs, params)


def windows(padded, kernel, stride, dilation, out_hw):
    """Yield ``((p, q), view)``: for each kernel offset, the strided view of ``padded``
    (N, C, H, W) that the offset reads in every output position, (N, C, Ho, Wo)."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out_hw
    for p in range(kh):
        for q in range(kw):
            yield (p, q), padded[:, :, p * dh: p * dh + sh * (ho - 1) + 1: sh, q * dw: q * dw + sw * (wo - 1) + 1: sw]


def output_hw(x_shape, kernel, stride, padding, dilation) -> tuple:
    return tuple((x_shape[2 + a] + 2 * padding[a] - dilation[a] * (kernel[a] - 1) - 1) // stride[a] + 1
                 for a in (0, 1))


def conv2d_reference(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """y[n, o, i, j] = bias[o] + sum_{c,p,q} weight[o, c, p, q] * xpad[n, c, i*sh + p*dh, j*sw + q*dw]
    (within o's group): the kernel tests' oracle, ``strategies.conv2d_oracle``."""
    return conv2d_oracle(x, weight, bias, pairs(stride), pairs(padding), pairs(dilation), groups)


def every_window_touches_the_input(length, kernel, stride, padding, dilation) -> bool:
    """A dilated window can fall entirely on padding (kernel 2, dilation 2, padding 1 over one
    pixel): it has no maximum, and the kernels refuse such a geometry."""
    count = (length + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    return all(any(0 <= i * stride - padding + k * dilation < length for k in range(kernel)) for i in range(count))


@st.composite
def pool_cases(draw, sides: Sides, dilated: bool) -> Case:
    """Pooling windows with stride (default: the kernel size), padding at most half the
    kernel (PyTorch's rule) and, for max pooling, dilation; values never tie."""
    n, c = draw(st.integers(min(sides.low, 1), 2)), draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilated else (1, 1)
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    h, w = (fitting_length(draw, sides, dilation[a] * (kernel[a] - 1) + 1, padding[a]) for a in (0, 1))
    for length, a in ((h, 0), (w, 1)):
        assume(every_window_touches_the_input(length, kernel[a], (stride or kernel)[a], padding[a], dilation[a]))
    params = {"kernel_size": kernel, "stride": stride, "padding": padding}
    if dilated:
        params["dilation"] = dilation
    return Case((draw(arrays((n, c, h, w), DISTINCT, unique=True)),), params)


def pool_reference(x, kernel_size, stride, padding, dilation=(1, 1), reduce="max"):
    """The maximum of each window (padding with -inf), or its sum over KH*KW (zero padding)."""
    stride = kernel_size if stride is None else stride
    out_hw = output_hw(x.shape, kernel_size, stride, padding, dilation)
    fill = -np.inf if reduce == "max" else 0.0
    padded = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2), constant_values=fill)
    views = [view for _, view in windows(padded, kernel_size, stride, dilation, out_hw)]
    if reduce == "max":
        return np.max(views, axis=0)
    return np.sum(views, axis=0) / (kernel_size[0] * kernel_size[1])


@st.composite
def grouped_conv2d_cases(draw, sides: Sides) -> Case:
    """conv2d with ``groups`` (1 to 3), often depthwise (one input channel per group)."""
    groups = draw(st.integers(1, 3))
    c_group, o_group = draw(st.sampled_from([1, 1, 2])), draw(st.integers(1, 2))
    n = draw(st.integers(min(sides.low, 1), 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride, padding, dilation = ((draw(st.integers(1, 2)),) * 2, (draw(st.integers(0, 1)),) * 2, (draw(st.integers(1, 2)),) * 2)
    h, w = (fitting_length(draw, sides, dilation[a] * (kernel[a] - 1) + 1, padding[a]) for a in (0, 1))
    inputs = (draw(arrays((n, groups * c_group, h, w))), draw(arrays((groups * o_group, c_group) + kernel)))
    if draw(st.booleans()):
        inputs += (draw(arrays((groups * o_group,))),)
    return Case(inputs, {"stride": stride, "padding": padding[0], "dilation": dilation, "groups": groups})


@st.composite
def conv_transpose2d_cases(draw, sides: Sides) -> Case:
    """conv_transpose2d: x (N, C_in, H, W), weight (C_in, C_out/groups, KH, KW), with an output of at least 1x1."""
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    n = draw(st.integers(min(sides.low, 1), 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    output_padding = tuple(draw(st.integers(0, s - 1)) for s in stride)
    h, w = draw(st.integers(1, max(sides.high, 1))), draw(st.integers(1, max(sides.high, 1)))
    assume(all(out >= 1 for out in conv_transpose_hw((h, w), kernel, stride, padding, dilation, output_padding)))
    inputs = (draw(arrays((n, c_in, h, w))), draw(arrays((c_in, c_out // groups) + kernel)))
    if draw(st.booleans()):
        inputs += (draw(arrays((c_out,))),)
    return Case(inputs, {"stride": stride, "padding": padding, "output_padding": output_padding, "groups": groups,
                         "dilation": dilation})


def conv_transpose_hw(hw, kernel, stride, padding, dilation, output_padding) -> tuple:
    """(Ho, Wo) = (H - 1)*s - 2p + d*(k - 1) + output_padding + 1 along each axis."""
    return tuple((size - 1) * s - 2 * p + d * (k - 1) + extra + 1
                 for size, k, s, p, d, extra in zip(hw, kernel, stride, padding, dilation, output_padding))


def conv_transpose2d_reference(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Each input pixel scatters its weighted kernel: for ci in group g and co < C_out/G,
    ``ypad[n, g*C_out/G + co, i*sh + p*dh, j*sw + q*dw] += x[n, ci, i, j] * weight[ci, co, p, q]``;
    y is ypad without the padding (output_padding adds rows and columns at the end)."""
    (n, c_in, h, w), (_, co_group, kh, kw) = x.shape, weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ho, wo = conv_transpose_hw((h, w), (kh, kw), stride, padding, dilation, output_padding)
    ypad = np.zeros((n, co_group * groups, ho + 2 * ph, wo + 2 * pw))
    ci_group = c_in // groups
    for ci, p, q in np.ndindex(c_in, kh, kw):
        outputs = slice(ci // ci_group * co_group, (ci // ci_group + 1) * co_group)
        rows = slice(p * dh, p * dh + (h - 1) * sh + 1, sh)
        cols = slice(q * dw, q * dw + (w - 1) * sw + 1, sw)
        ypad[:, outputs, rows, cols] += x[:, ci, None] * weight[ci, :, p, q][None, :, None, None]
    y = ypad[:, :, ph: ph + ho, pw: pw + wo]
    return y if bias is None else y + bias[None, :, None, None]


@st.composite
def conv1d_cases(draw, sides: Sides) -> Case:
    groups = draw(st.integers(1, 2))
    c, o = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    n, kernel = draw(st.integers(min(sides.low, 1), 2)), draw(st.integers(1, 3))
    stride, padding, dilation = draw(st.integers(1, 2)), draw(st.integers(0, 1)), draw(st.integers(1, 2))
    length = fitting_length(draw, sides, dilation * (kernel - 1) + 1, padding)
    inputs = (draw(arrays((n, c, length))), draw(arrays((o, c // groups, kernel))))
    if draw(st.booleans()):
        inputs += (draw(arrays((o,))),)
    return Case(inputs, {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups})


def conv1d_reference(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """y[n, o, i] = bias[o] + sum_{c,k} weight[o, c, k] * xpad[n, c, i*s + k*d]: conv2d's formula over height 1."""
    y = conv2d_oracle(x[:, :, None], weight[:, :, None], bias, (1, stride), (0, padding), (1, dilation), groups)
    return y[:, :, 0]


@st.composite
def ceil_pool_cases(draw, sides: Sides, average: bool) -> Case:
    """Pooling in ceil mode (with, for the average, ``count_include_pad`` drawn)."""
    case = draw(pool_cases(sides, dilated=not average))
    params = {**case.params, "ceil_mode": True}
    if average:
        params["count_include_pad"] = draw(st.booleans())
    return Case(case.arrays, params)


def ceil_pool_reference(x, kernel_size, stride, padding, dilation=(1, 1), ceil_mode=True, count_include_pad=True,
                        reduce="max"):
    """The maximum of each window, or its sum over its divisor: the number of its positions
    inside the padded input (``count_include_pad``) or on the input alone; windows in ceil
    mode may run past the padded input, where they read nothing."""
    stride = kernel_size if stride is None else stride
    out_hw = tuple(ceil_output_length(*args) for args in zip(x.shape[2:], kernel_size, stride, padding, dilation))
    past = tuple(max(0, (out - 1) * s + d * (k - 1) + 1 - (size + 2 * p))
                 for out, size, k, s, p, d in zip(out_hw, x.shape[2:], kernel_size, stride, padding, dilation))
    spread = ((0, 0), (0, 0), (padding[0], padding[0] + past[0]), (padding[1], padding[1] + past[1]))
    if reduce == "max":
        padded = np.pad(x, spread, constant_values=-np.inf)
        return np.max([view for _, view in windows(padded, kernel_size, stride, dilation, out_hw)], axis=0)
    (h, w), (ph, pw) = x.shape[2:], padding
    counted = np.zeros((1, 1, h + 2 * ph + past[0], w + 2 * pw + past[1]))  # 1 where a position counts
    if count_include_pad:
        counted[:, :, : h + 2 * ph, : w + 2 * pw] = 1.0
    else:
        counted[:, :, ph: ph + h, pw: pw + w] = 1.0
    sums = np.sum([view for _, view in windows(np.pad(x, spread), kernel_size, stride, dilation, out_hw)], axis=0)
    divisors = np.sum([view for _, view in windows(counted, kernel_size, stride, dilation, out_hw)], axis=0)
    return sums / divisors


@st.composite
def adaptive_pool_cases(draw, sides: Sides) -> Case:
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, sides.high + 2)), draw(st.integers(1, sides.high + 2))
    output_size = draw(st.one_of(st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    return Case((draw(arrays((n, c, h, w))),), {"output_size": output_size})


def adaptive_pool_reference(x, output_size):
    """Bin i of an axis of length L covers [floor(i L / out), ceil((i + 1) L / out))."""
    (out_h, out_w), (h, w) = pairs(output_size), x.shape[2:]
    y = np.zeros(x.shape[:2] + (out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            rows = slice(math.floor(i * h / out_h), math.ceil((i + 1) * h / out_h))
            cols = slice(math.floor(j * w / out_w), math.ceil((j + 1) * w / out_w))
            y[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
    return y


@st.composite
def image_cases(draw, sides: Sides) -> Case:
    shape = (draw(st.integers(sides.low, 2)), draw(st.integers(1, 3)),
             draw(st.integers(max(sides.low, 1), sides.high)), draw(st.integers(max(sides.low, 1), sides.high)))
    return Case((draw(arrays(shape)),))


# ------------------------------------------------------------------ the table

def unary(domain):
    return lambda sides: elementwise(sides, domain)


def binary(x_domain, y_domain):
    return lambda sides: elementwise(sides, x_domain, y_domain)


OPS = [
    # element-wise arithmetic: Tensor operators, NumPy operators
    Op("add", operator.add, operator.add, binary(REALS, REALS)),
    Op("sub", operator.sub, operator.sub, binary(REALS, REALS)),
    Op("mul", operator.mul, operator.mul, binary(REALS, REALS)),
    Op("div", operator.truediv, operator.truediv, binary(REALS, NONZERO)),
    Op("pow", operator.pow, operator.pow, binary(POSITIVE, REALS)),
    Op("neg", operator.neg, operator.neg, unary(REALS)),
    Op("scalar arithmetic", scalar_arithmetic, scalar_arithmetic,
       lambda sides: elementwise(sides, POSITIVE, params=SCALAR_ARITHMETIC)),
    # element-wise functions
    Op("exp", F.exp, np.exp, unary(REALS)),
    Op("log", F.log, np.log, unary(POSITIVE)),
    Op("sqrt", F.sqrt, np.sqrt, unary(POSITIVE)),
    Op("abs", F.abs, np.abs, unary(OFF_LATTICE)),
    Op("maximum", F.maximum, np.maximum, binary(OFF_LATTICE, NEAR_LATTICE)),
    Op("minimum", F.minimum, np.minimum, binary(NEAR_LATTICE, OFF_LATTICE)),
    Op("clip", F.clip, lambda x, min, max: np.clip(x, min, max),  # noqa: A006
       lambda sides: elementwise(sides, OFF_LATTICE, params=clip_bounds())),
    Op("where", lambda x, y, condition: minift.where(condition, x, y),
       lambda x, y, condition: np.where(condition, x, y), where_cases),
    # reductions
    Op("sum", F.sum, np.sum, lambda sides: reduction(sides, min_side=0)),
    Op("mean", F.mean, np.mean, reduction),
    Op("amax", F.amax, np.max, lambda sides: reduction(sides, DISTINCT, unique=True)),
    Op("amin", F.amin, np.min, lambda sides: reduction(sides, DISTINCT, unique=True)),
    Op("max (along dim)", lambda x, dim, keepdim: F.max(x, dim, keepdim).values,
       lambda x, dim, keepdim: np.max(x, axis=dim, keepdims=keepdim), lambda sides: along_dim_cases(sides)),
    Op("min (along dim)", lambda x, dim, keepdim: F.min(x, dim, keepdim).values,
       lambda x, dim, keepdim: np.min(x, axis=dim, keepdims=keepdim), lambda sides: along_dim_cases(sides)),
    Op("var", F.var, lambda x, correction, **kw: np.var(x, ddof=correction, **kw),
       lambda sides: reduction(sides, min_count=2, correction=True)),
    Op("std", F.std, lambda x, correction, **kw: np.std(x, ddof=correction, **kw),
       lambda sides: reduction(sides, DISTINCT, unique=True, min_count=2, correction=True)),
    Op("logsumexp", F.logsumexp, logsumexp_reference, reduction),
    # linear algebra (a backend kernel)
    Op("matmul", operator.matmul, operator.matmul, matmul_cases, kernel=True),
    Op("linear", F.linear, linear_reference, linear_cases, kernel=True),
    # shape ops
    Op("reshape", lambda x, shape: x.reshape(shape), lambda x, shape: x.reshape(shape), reshape_cases),
    Op("permute", lambda x, axes: x.permute(*axes), np.transpose, permute_cases),
    Op("transpose", F.transpose, lambda x, dim0, dim1: np.swapaxes(x, dim0, dim1), transpose_cases),
    Op("getitem (basic)", lambda x, index: x[index], lambda x, index: x[index], basic_index_cases),
    Op("getitem (advanced)", lambda x, index: x[index], lambda x, index: x[index], advanced_index_cases),
    Op("concatenate", lambda *xs, axis: F.concatenate(xs, axis), lambda *xs, axis: np.concatenate(xs, axis),
       concatenate_cases),
    Op("stack", lambda *xs, axis: F.stack(xs, axis), lambda *xs, axis: np.stack(xs, axis), stack_cases),
    Op("split", lambda x, sizes, axis: x.split(sizes, axis), split_reference, split_cases),
    Op("pad", F.pad, pad_reference, pad_cases),
    Op("expand", lambda x, shape: x.expand(*shape), expand_reference,
       lambda sides: expand_cases(sides, allow_minus_one=True)),
    Op("broadcast_to", F.broadcast_to, np.broadcast_to, lambda sides: expand_cases(sides, allow_minus_one=False)),
    Op("squeeze", F.squeeze, squeeze_reference, squeeze_cases),
    Op("unsqueeze", F.unsqueeze, np.expand_dims, unsqueeze_cases),
    Op("flatten", F.flatten, flatten_reference, flatten_cases),
    Op("gather", lambda x, dim, index: F.gather(x, dim, index), gather_reference, gather_cases),
    Op("setitem", lambda x, value, index: F.setitem(x, index, value), setitem_reference, setitem_cases),
    Op("copy_into", lambda src, shape: F.copy_into(minift.zeros(shape, dtype=src.dtype), src),
       lambda src, shape: np.broadcast_to(src, shape), lambda sides: expand_cases(sides, allow_minus_one=False)
       .map(lambda case: Case(case.arrays, {"shape": case.params["shape"]}))),
    Op("clone", F.clone, np.copy, unary(REALS)),
    Op("masked_fill", F.masked_fill, lambda x, mask, value: np.where(mask, value, x), masked_fill_cases),
    # activations
    Op("relu", F.relu, lambda x: np.maximum(x, 0), unary(OFF_LATTICE)),
    Op("leaky_relu", F.leaky_relu, lambda x, negative_slope: np.where(x > 0, x, negative_slope * x),
       lambda sides: elementwise(sides, OFF_LATTICE, params=st.fixed_dictionaries({"negative_slope": UNIT}))),
    Op("gelu (erf)", F.gelu, gelu_reference,
       lambda sides: elementwise(sides, REALS, params=st.just({"approximate": "none"}))),
    Op("gelu (tanh)", F.gelu, gelu_reference,
       lambda sides: elementwise(sides, REALS, params=st.just({"approximate": "tanh"}))),
    Op("sigmoid", F.sigmoid, lambda x: 1 / (1 + np.exp(-x)), unary(REALS)),
    Op("tanh", F.tanh, np.tanh, unary(REALS)),
    Op("relu6", F.relu6, lambda x: np.minimum(np.maximum(x, 0), 6), unary(OFF_INTEGERS)),
    Op("hardsigmoid", F.hardsigmoid, lambda x: np.minimum(np.maximum(x + 3, 0), 6) / 6, unary(OFF_INTEGERS)),
    Op("hardswish", F.hardswish, hardswish_reference, unary(OFF_INTEGERS)),
    Op("silu", F.silu, lambda x: x / (1 + np.exp(-x)), unary(REALS)),
    Op("softplus", F.softplus, softplus_reference,
       lambda sides: elementwise(sides, REALS, params=st.fixed_dictionaries(
           {"beta": st.sampled_from([0.5, 1.0, 3.0]), "threshold": st.just(20.0)}))),
    Op("mish", F.mish, mish_reference, unary(REALS)),
    Op("softmax", F.softmax, softmax_reference, softmax_cases),
    Op("log_softmax", F.log_softmax, log_softmax_reference, softmax_cases),
    # losses
    Op("cross_entropy", F.cross_entropy, cross_entropy_reference, cross_entropy_cases),
    Op("cross_entropy (weighted)", F.cross_entropy, weighted_cross_entropy_reference,
       lambda sides: weighted_class_cases(sides, smoothing=True)),
    Op("nll_loss", F.nll_loss, weighted_nll_reference, lambda sides: weighted_class_cases(sides, smoothing=False)),
    Op("mse_loss", F.mse_loss, mse_reference, mse_cases),
    Op("l1_loss", F.l1_loss, lambda x, t, reduction: REDUCE[reduction](np.abs(x - t)),
       lambda sides: difference_cases(sides, beta=False)),
    Op("smooth_l1_loss", F.smooth_l1_loss, smooth_l1_reference, lambda sides: difference_cases(sides, beta=True)),
    Op("binary_cross_entropy_with_logits",
       lambda x, t, pos_weight=None, reduction="mean": F.binary_cross_entropy_with_logits(x, t, reduction, pos_weight),
       bce_reference, bce_cases),
    Op("embedding", lambda weight, indices: F.embedding(indices, weight), lambda weight, indices: weight[indices],
       embedding_cases),
    # normalisation
    Op("layer_norm",
       lambda x, weight=None, bias=None, normalized_shape=(): F.layer_norm(x, normalized_shape, weight, bias),
       layer_norm_reference, layer_norm_cases),
    Op("rms_norm",
       lambda x, weight=None, normalized_shape=(), eps=None: F.rms_norm(x, normalized_shape, weight, eps),
       rms_norm_reference, rms_norm_cases),
    Op("group_norm", lambda x, weight=None, bias=None, num_groups=1: F.group_norm(x, num_groups, weight, bias),
       group_norm_reference, group_norm_cases),
    Op("batch_norm (training)", batch_norm_forward, batch_norm_reference,
       lambda sides: batch_norm_cases(sides, training=True)),
    Op("batch_norm (inference)", batch_norm_forward, batch_norm_reference,
       lambda sides: batch_norm_cases(sides, training=False)),
    # convolution and pooling (backend kernels, except the adaptive and global averages)
    Op("conv2d", F.conv2d, conv2d_reference, conv2d_cases, kernel=True),
    Op("max_pool2d", F.max_pool2d, pool_reference, lambda sides: pool_cases(sides, dilated=True), kernel=True),
    Op("avg_pool2d", F.avg_pool2d, lambda x, **p: pool_reference(x, reduce="mean", **p),
       lambda sides: pool_cases(sides, dilated=False), kernel=True),
    Op("conv2d (groups)", F.conv2d, conv2d_reference, grouped_conv2d_cases, kernel=True),
    Op("conv_transpose2d", F.conv_transpose2d, conv_transpose2d_reference, conv_transpose2d_cases, kernel=True),
    Op("conv1d", F.conv1d, conv1d_reference, conv1d_cases, kernel=True),
    Op("max_pool2d (ceil_mode)", F.max_pool2d, ceil_pool_reference, lambda sides: ceil_pool_cases(sides, False),
       kernel=True),
    Op("avg_pool2d (ceil_mode, count_include_pad)", F.avg_pool2d,
       lambda x, **p: ceil_pool_reference(x, reduce="mean", **p), lambda sides: ceil_pool_cases(sides, True),
       kernel=True),
    Op("adaptive_avg_pool2d", F.adaptive_avg_pool2d, adaptive_pool_reference, adaptive_pool_cases),
    Op("global_avg_pool2d", F.global_avg_pool2d, lambda x: x.mean(axis=(2, 3)), image_cases),
]

OPS_BY_NAME = {op.name: op for op in OPS}
BACKENDS = tuple(minift.backend.BACKEND_MODULES)


def op_backend_params(ops=OPS) -> list:
    """``(op, backend)`` pytest parameters: kernel ops under every backend (the ``backend``
    fixture skips the unavailable ones), the others once, under ``numpy``."""
    return [
        pytest.param(op, name, id=f"{op.name}-{name}" if op.kernel else op.name)
        for op in ops
        for name in (BACKENDS if op.kernel else ("numpy",))
    ]
