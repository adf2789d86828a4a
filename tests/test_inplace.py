"""In-place ops (``+=``, ``x.zero_()``, ``x[i] = v`` ...): they write into the tensor's own
array; under ``no_grad`` they are the update step; with grad mode on they are refused on a
leaf that requires grad and recorded on any other tensor; a version counter makes backward
refuse an array that was overwritten after an op saved it. Compared with PyTorch where it
imports."""

from __future__ import annotations

import operator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minift
from minift import nn
from strategies import REALS, Sides, arrays, shapes

ARRAYS = shapes(Sides(1, 4)).flatmap(arrays)
INPLACE = {
    "+=": (operator.iadd, operator.add),
    "-=": (operator.isub, operator.sub),
    "*=": (operator.imul, operator.mul),
    "/=": (operator.itruediv, operator.truediv),
    "add_": (lambda t, c: t.add_(c), operator.add),
    "sub_": (lambda t, c: t.sub_(c), operator.sub),
    "mul_": (lambda t, c: t.mul_(c), operator.mul),
    "div_": (lambda t, c: t.div_(c), operator.truediv),
    "fill_": (lambda t, c: t.fill_(c), lambda a, c: np.full_like(a, c)),
    "clamp_": (lambda t, c: t.clamp_(min=c), lambda a, c: np.maximum(a, c)),
    "copy_": (lambda t, c: t.copy_(minift.tensor(c, dtype=t.dtype)), lambda a, c: np.full_like(a, c)),
}


@pytest.mark.parametrize("name", INPLACE)
@given(x=ARRAYS, c=st.floats(0.5, 2.0))
def test_inplace_ops_write_into_the_same_array_and_bump_the_version(name, x, c):
    inplace, reference = INPLACE[name]
    t = minift.Tensor(x.copy())
    array, version = t.data, t._version
    result = inplace(t, c)
    assert result is t and t.data is array and t._version == version + 1
    np.testing.assert_allclose(t.numpy(), reference(x, c), rtol=1e-12)


def test_zero_and_setitem_write_in_place():
    t = minift.tensor([[1.0, 2.0], [3.0, 4.0]])
    array = t.data
    t[0, 1] = 7.0
    t[1] = minift.tensor([5.0, 6.0])
    np.testing.assert_array_equal(array, [[1.0, 7.0], [5.0, 6.0]])
    t.zero_()
    assert t.data is array and not array.any() and t._version == 3


def test_the_manual_sgd_loop_updates_the_layer():
    """The first update every course writes: ``p -= lr * p.grad`` under no_grad."""
    minift.manual_seed(0)
    lin = nn.Linear(3, 2)
    before = {name: p.numpy().copy() for name, p in lin.named_parameters()}
    lin(minift.randn(5, 3)).sum().backward()
    with minift.no_grad():
        for p in lin.parameters():
            p -= 0.1 * p.grad
    for name, p in lin.named_parameters():
        np.testing.assert_allclose(p.numpy(), before[name] - 0.1 * p.grad.numpy(), rtol=1e-6)


def test_inplace_on_a_leaf_that_requires_grad_is_refused_with_pytorchs_message():
    w = minift.tensor([1.0, 2.0], requires_grad=True)
    for change in (lambda: operator.iadd(w, 1), lambda: w.zero_(), lambda: w.__setitem__(0, 3.0)):
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
            change()
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0])
    assert w._version == 0


def test_inplace_on_a_non_leaf_is_recorded():
    """``loss = 0; loss += term; loss /= n`` — the usual accumulation — differentiates."""
    x = minift.tensor([1.0, 2.0, 3.0], dtype=minift.float64, requires_grad=True)
    loss = 0
    for k in (1.0, 2.0, 3.0):
        loss += (x * k).sum()
    loss /= 3
    y = x * 1
    y[1] = x[0] * 5  # setitem on a non-leaf: element 1 now depends on x[0] only
    (loss + y.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0 + 6.0, 2.0, 2.0 + 1.0])


@given(x=ARRAYS)
def test_changing_a_saved_input_after_the_forward_makes_backward_raise(x):
    w = minift.Tensor(x, requires_grad=True)
    loss = (w * w).sum()
    with minift.no_grad():
        w -= 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*version 1; expected version 0"):
        loss.backward()


def test_changing_a_saved_output_or_a_view_of_a_saved_input_makes_backward_raise():
    x = minift.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()  # Exp saves its output
    with minift.no_grad():
        y.mul_(2)
    with pytest.raises(RuntimeError, match="saved by Exp"):
        y.sum().backward()

    constant = minift.tensor([[1.0, 2.0], [3.0, 4.0]])
    loss = (x * constant).sum()  # Mul saves the constant for dL/dx
    constant.reshape(-1)[0] = 10.0  # through a view: the counter is shared
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_changing_an_input_that_no_backward_reads_is_fine():
    x = minift.tensor([1.0, 2.0], requires_grad=True)
    shift = minift.tensor([5.0, 5.0])
    loss = (x + shift).sum()  # Add saves nothing
    shift.add_(1)
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


def test_bad_inplace_changes_nothing():
    ints = minift.tensor([1, 2])
    with pytest.raises(RuntimeError, match="result type float32 can't be cast to the desired output type int64"):
        ints += 1.5
    with pytest.raises(RuntimeError, match=r"output with shape \[2\] doesn't match the broadcast shape \[2, 2\]"):
        ints += minift.tensor([[1, 2], [3, 4]])
    np.testing.assert_array_equal(ints.numpy(), [1, 2])
    assert ints._version == 0


# ------------------------------------------------------------------ PyTorch parity

def test_inplace_behaviour_matches_pytorch():
    torch = pytest.importorskip("torch")
    for lib in (torch, minift):
        w = lib.tensor([1.0, 2.0], requires_grad=True)
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
            w += 1
        loss = (w * w).sum()
        with lib.no_grad():
            w -= 0.5
        assert w._version == 1
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()
    ints = {lib: lib.tensor([1, 2]) for lib in (torch, minift)}
    for lib, t in ints.items():
        with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
            t /= 2


@given(x=shapes(Sides(1, 4), min_dims=1).flatmap(arrays), c=REALS)
def test_accumulating_in_place_gives_pytorchs_gradient(x, c):
    torch = pytest.importorskip("torch")
    grads = []
    for lib in (torch, minift):
        w = lib.tensor(x.copy(), dtype=lib.float64, requires_grad=True)
        total = w * c
        total += w * w
        total *= 2
        total -= w
        total[0] = w[0] * 3  # setitem on a non-leaf
        total.clone().sum().backward()
        grads.append(np.asarray(w.grad.detach().numpy() if lib is torch else w.grad.numpy()))
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-12, atol=1e-12)


def test_inplace_through_a_view_of_a_leaf_that_requires_grad_is_refused_and_changes_nothing():
    torch = pytest.importorskip("torch")
    for lib in (torch, minift):
        w = lib.ones(2, 2, requires_grad=True)
        with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad is being used in an in-place"):
            w[0] += 1
        np.testing.assert_array_equal(numpy_of(w), np.ones((2, 2)))


def numpy_of(t):
    return t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)
