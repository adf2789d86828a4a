"""Bad input raises a clear error that names what was expected and what came, and changes
nothing: every tensor involved keeps its data, its gradient and its ``requires_grad``."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minift
import minift.functional as F


def leaf(*shape) -> minift.Tensor:
    """A float64 leaf that requires grad and already holds a gradient, so that a failed call
    could visibly change either."""
    t = minift.randn(*shape, dtype=minift.float64, requires_grad=True)
    t.grad = minift.randn(*shape, dtype=minift.float64)
    return t


def snapshot(tensors) -> list:
    return [(t.numpy().copy(), None if t.grad is None else t.grad.numpy().copy(), t.requires_grad) for t in tensors]


def assert_unchanged(tensors, before) -> None:
    for t, (data, grad, requires_grad) in zip(tensors, before):
        np.testing.assert_array_equal(t.numpy(), data)
        if grad is None:
            assert t.grad is None
        else:
            np.testing.assert_array_equal(t.grad.numpy(), grad)
        assert t.requires_grad == requires_grad


def assert_clear_error(call, tensors, error, *fragments) -> None:
    """``call()`` raises ``error`` whose message holds every fragment, and ``tensors`` are as before."""
    before = snapshot(tensors)
    with pytest.raises(error) as raised:
        call()
    for fragment in fragments:
        assert fragment in str(raised.value), f"{fragment!r} is missing from the message: {raised.value}"
    assert_unchanged(tensors, before)


# ------------------------------------------------------------------ shapes, drawn by hypothesis

BINARY_OPS = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow, F.maximum, F.minimum]


@st.composite
def clashing_shapes(draw) -> tuple:
    """Two shapes that do not broadcast: aligned from the end, one axis has two different
    lengths, neither of them 1."""
    first = list(draw(hnp.array_shapes(min_dims=1, max_side=4)))
    axis = draw(st.integers(1, len(first)))  # counted from the end
    first[-axis] = draw(st.integers(2, 4))
    second = list(draw(hnp.broadcastable_shapes(tuple(first), min_dims=axis, max_side=4)))
    second[-axis] = draw(st.sampled_from([n for n in (0, 2, 3, 4, 5) if n != first[-axis]]))
    return tuple(draw(st.permutations([tuple(first), tuple(second)])))


@given(shapes=clashing_shapes(), op=st.sampled_from(BINARY_OPS))
def test_binary_ops_name_both_shapes_when_they_do_not_broadcast(shapes, op):
    x, y = leaf(*shapes[0]), leaf(*shapes[1])
    assert_clear_error(lambda: op(x, y), [x, y], ValueError, str(shapes[0]), str(shapes[1]), "broadcast")


@given(batch=hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),
       sizes=st.lists(st.integers(1, 4), min_size=4, max_size=4))
def test_matmul_names_both_shapes_when_the_inner_sizes_differ(batch, sizes):
    m, k, other_k, n = sizes
    assume(k != other_k)
    x, y = leaf(*batch, m, k), leaf(other_k, n)
    assert_clear_error(lambda: x @ y, [x, y], ValueError, str(x.shape), str(y.shape), f"({k})", f"({other_k})")


@given(shape=hnp.array_shapes(min_dims=0, max_side=4), target=hnp.array_shapes(min_dims=1, max_side=5))
def test_reshape_names_both_sizes_when_the_element_counts_differ(shape, target):
    assume(math.prod(shape) != math.prod(target))
    x = leaf(*shape)
    assert_clear_error(lambda: x.reshape(target), [x], ValueError,
                       str(shape), str(target), f"{math.prod(shape)} elements")


# ------------------------------------------------------------------ one bad call each

@dataclass
class BadCall:
    """``call(*make())`` must raise ``error`` with every fragment of ``says`` in its message."""

    what: str
    make: Callable
    call: Callable
    error: type
    says: tuple

    def __str__(self) -> str:
        return self.what


BAD_CALLS = [
    BadCall("cross_entropy: target rows differ", lambda: (leaf(4, 3),),
            lambda x: F.cross_entropy(x, np.zeros(5, dtype=np.int64)), ValueError, ("(4, 3)", "(5,)")),
    BadCall("cross_entropy: float targets", lambda: (leaf(4, 3), minift.zeros(4)),
            F.cross_entropy, TypeError, ("integer", "float32")),
    BadCall("cross_entropy: class out of range", lambda: (leaf(2, 3),),
            lambda x: F.cross_entropy(x, np.array([0, 3])), IndexError, ("3", "[0, 3)")),
    # "conv2d_forward:" names the contract entry that refused the call, before any backend ran.
    BadCall("conv2d: channel mismatch", lambda: (leaf(1, 3, 5, 5), leaf(2, 4, 3, 3)),
            F.conv2d, ValueError, ("conv2d_forward:", "3 channels", "(2, 4, 3, 3)", "expects 4")),
    BadCall("conv2d: kernel larger than the padded input", lambda: (leaf(1, 1, 2, 2), leaf(1, 1, 5, 5)),
            lambda x, w: F.conv2d(x, w, padding=1), ValueError, ("conv2d_forward:", "padded input 4x4", "span 5x5")),
    BadCall("conv2d: bias of the wrong length", lambda: (leaf(1, 1, 4, 4), leaf(2, 1, 3, 3), leaf(3)),
            F.conv2d, ValueError, ("conv2d_forward:", "bias", "(2,)", "(3,)")),
    BadCall("conv2d: a 3-D input", lambda: (leaf(3, 5, 5), leaf(2, 3, 3, 3)),
            F.conv2d, ValueError, ("conv2d_forward:", "4-D (N, C, H, W)", "(3, 5, 5)")),
    BadCall("conv2d: stride 0", lambda: (leaf(1, 1, 4, 4), leaf(1, 1, 3, 3)),
            lambda x, w: F.conv2d(x, w, stride=0), ValueError, ("conv2d_forward:", "stride", ">= 1", "(0, 0)")),
    BadCall("conv2d: a bool stride", lambda: (leaf(1, 1, 4, 4), leaf(1, 1, 3, 3)),
            lambda x, w: F.conv2d(x, w, stride=True), TypeError, ("conv2d_forward:", "stride", "pair of ints", "True")),
    BadCall("conv2d: a float dilation", lambda: (leaf(1, 1, 4, 4), leaf(1, 1, 3, 3)),
            lambda x, w: F.conv2d(x, w, dilation=1.5), TypeError, ("conv2d_forward:", "dilation", "pair of ints", "1.5")),
    BadCall("max_pool2d: padding over half the kernel", lambda: (leaf(1, 1, 4, 4),),
            lambda x: F.max_pool2d(x, 2, padding=2), ValueError, ("max_pool2d_forward:", "padding (2, 2)", "half")),
    BadCall("max_pool2d: a window wholly on the padding", lambda: (leaf(1, 1, 1, 1),),
            lambda x: F.max_pool2d(x, 2, padding=1, dilation=2), ValueError, ("max_pool2d_forward:", "only padding", "1-long")),
    BadCall("avg_pool2d: kernel larger than the input", lambda: (leaf(1, 1, 4, 4),),
            lambda x: F.avg_pool2d(x, 5), ValueError, ("avg_pool2d_forward:", "padded input 4x4", "span 5x5")),
    BadCall("avg_pool2d: a 3-D input", lambda: (leaf(1, 4, 4),),
            lambda x: F.avg_pool2d(x, 2), ValueError, ("avg_pool2d_forward:", "4-D (N, C, H, W)", "(1, 4, 4)")),
    BadCall("avg_pool2d: a non-int kernel_size", lambda: (leaf(1, 1, 4, 4),),
            lambda x: F.avg_pool2d(x, (2, "2")), TypeError, ("avg_pool2d_forward:", "kernel_size", "(2, '2')")),
    BadCall("backward of a non-scalar without a gradient", lambda: (leaf(2, 3),),
            lambda x: (x * 2).backward(), RuntimeError, ("(2, 3)", "gradient")),
    BadCall("backward with a gradient of the wrong shape", lambda: (leaf(2, 3),),
            lambda x: (x * 2).backward(np.ones(3)), ValueError, ("(3,)", "(2, 3)")),
    BadCall("backward of a tensor that does not require grad", lambda: (minift.ones(2),),
            lambda x: x.sum().backward(), RuntimeError, ("does not require grad",)),
    BadCall("integer tensor asked to require grad", lambda: (minift.arange(3),),
            lambda x: x.requires_grad_(), TypeError, ("floating", "int64")),
    BadCall("unknown dtype in a cast", lambda: (leaf(2),), lambda x: x.to("float8"), TypeError,
            ("float8", "float32")),
    BadCall("stack of different shapes", lambda: (leaf(2, 3), leaf(3, 2)), lambda a, b: F.stack([a, b]),
            ValueError, ("(2, 3)", "(3, 2)")),
    BadCall("concatenate with other axes unequal", lambda: (leaf(2, 3), leaf(2, 4)),
            lambda a, b: F.concatenate([a, b], axis=0), ValueError, ("(2, 3)", "(2, 4)")),
    BadCall("split sizes that do not add up", lambda: (leaf(5),), lambda x: x.split([2, 2]), ValueError,
            ("[2, 2]", "4", "5")),
    BadCall("broadcast_to a shape that does not fit", lambda: (leaf(2, 3),),
            lambda x: x.broadcast_to((4, 3)), ValueError, ("(2, 3)", "(4, 3)")),
    BadCall("expand with -1 for a new leading axis", lambda: (leaf(3),), lambda x: x.expand(-1, 3), ValueError,
            ("-1", "(-1, 3)", "(3,)")),
    BadCall("permute with a repeated axis", lambda: (leaf(2, 3),), lambda x: x.permute(0, 0), ValueError,
            ("(0, 0)", "range(2)")),
    BadCall("squeeze of an axis that is not there", lambda: (leaf(2, 1),), lambda x: x.squeeze(2), IndexError,
            ("axis 2", "(2, 1)", "-2 <= axis < 2")),
    BadCall("unsqueeze past the end", lambda: (leaf(2, 1),), lambda x: x.unsqueeze(4), IndexError,
            ("axis 4", "(2, 1)", "-3 <= axis < 3")),
    BadCall("permute with an axis that is not there", lambda: (leaf(2, 3),), lambda x: x.permute(0, 3),
            IndexError, ("axis 3", "(2, 3)")),
    BadCall("transpose with an axis that is not there", lambda: (leaf(2, 3),), lambda x: x.transpose(0, 4),
            IndexError, ("axis 4", "(2, 3)")),
    BadCall("flatten up to an axis that is not there", lambda: (leaf(2, 3),), lambda x: x.flatten(0, 5),
            IndexError, ("axis 5", "(2, 3)")),
    BadCall("flatten with start after end", lambda: (leaf(2, 3),), lambda x: x.flatten(1, 0), ValueError,
            ("start_dim 1", "end_dim 0", "(2, 3)")),
    BadCall("concatenate along an axis that is not there", lambda: (leaf(2, 3), leaf(2, 3)),
            lambda a, b: F.concatenate([a, b], axis=2), IndexError, ("axis 2", "(2, 3)")),
    BadCall("concatenate of 0-d tensors", lambda: (leaf(), leaf()),
            lambda a, b: F.concatenate([a, b]), IndexError, ("axis 0", "()")),
    BadCall("stack along an axis that is not there", lambda: (leaf(2, 3), leaf(2, 3)),
            lambda a, b: F.stack([a, b], axis=4), IndexError, ("axis 4", "(2, 3)", "-3 <= axis < 3")),
    BadCall("split along an axis that is not there", lambda: (leaf(2, 3),), lambda x: x.split(1, axis=3),
            IndexError, ("axis 3", "(2, 3)")),
    BadCall("reduction over an axis that is not there", lambda: (leaf(2, 3),), lambda x: x.sum(axis=2),
            IndexError, ("axis 2", "2 dimensions")),
    BadCall("layer_norm over the wrong trailing shape", lambda: (leaf(2, 3),),
            lambda x: F.layer_norm(x, (4,)), ValueError, ("(4,)", "(2, 3)")),
    BadCall("batch_norm in training with one value per channel", lambda: (leaf(1, 3),),
            lambda x: F.batch_norm(x, None, None, training=True), ValueError, ("more than one", "(1, 3)")),
    BadCall("embedding index outside the table", lambda: (leaf(3, 2),),
            lambda w: F.embedding(np.array([0, 3]), w), IndexError, ("[0, 3]", "3 rows")),
    BadCall("where with a non-boolean condition", lambda: (leaf(2), leaf(2)),
            lambda x, y: minift.where(np.array([1, 0]), x, y), TypeError, ("boolean", "int64")),
    BadCall("where with shapes that do not broadcast", lambda: (leaf(2), leaf(2)),
            lambda x, y: minift.where(np.array([True, False, True]), x, y), ValueError, ("(2,)", "(3,)")),
    BadCall("clip without bounds", lambda: (leaf(2),), lambda x: x.clip(), ValueError, ("min", "max")),
    BadCall("gelu with an unknown approximation", lambda: (leaf(2),), lambda x: F.gelu(x, "fast"),
            ValueError, ("'fast'", "'tanh'")),
    BadCall("loss with an unknown reduction", lambda: (leaf(2), leaf(2)),
            lambda x, y: F.mse_loss(x, y, reduction="avg"), ValueError, ("'avg'", "mean")),
    BadCall("dropout probability above one", lambda: (leaf(2),), lambda x: F.dropout(x, p=1.5),
            ValueError, ("[0, 1]", "1.5")),
]


@pytest.mark.parametrize("bad", BAD_CALLS, ids=str)
def test_bad_call_raises_a_clear_error_and_changes_nothing(bad):
    tensors = bad.make()
    assert_clear_error(lambda: bad.call(*tensors), tensors, bad.error, *bad.says)


# ------------------------------------------------------------------ errors at construction

@pytest.mark.parametrize("make", [
    lambda: minift.tensor([1, 2], requires_grad=True),
    lambda: minift.Tensor(np.arange(3), requires_grad=True),
    lambda: minift.zeros(2, dtype=minift.int64, requires_grad=True),
], ids=["tensor", "Tensor", "zeros"])
def test_integer_tensors_cannot_require_grad(make):
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients, got dtype int64"):
        make()


@pytest.mark.parametrize("dtype", ["float8", "complex64", "object", "not a dtype"])
def test_an_unknown_dtype_is_named_with_the_supported_ones(dtype):
    with pytest.raises(TypeError) as raised:
        minift.tensor([1.0], dtype=dtype)
    assert repr(dtype) in str(raised.value) and "float32" in str(raised.value) and "int64" in str(raised.value)


def test_a_failed_backward_leaves_the_graph_usable():
    """Changing nothing includes the graph: after a refused backward, a correct one works."""
    x = leaf(2, 3)
    y = x * 3
    with pytest.raises(RuntimeError):
        y.backward()
    before = x.grad.numpy().copy()
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), before + 3)
