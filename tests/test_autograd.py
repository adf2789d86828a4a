"""The autograd engine: how gradients flow, add up, and are kept or freed — independent of
any one op (the op table proves each op's own gradient)."""

from __future__ import annotations

import gc
import sys
import weakref

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minift
import minift.functional as F
from strategies import REALS, Sides, arrays, floats, shapes

ARRAYS = shapes(Sides(0, 4)).flatmap(arrays)


def leaf(values) -> minift.Tensor:
    return minift.Tensor(np.array(values, dtype=np.float64), requires_grad=True)


# ------------------------------------------------------------------ seeds

@given(x=ARRAYS)
def test_backward_of_a_scalar_starts_from_one(x):
    t = leaf(x)
    (t * t).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), 2 * x, rtol=1e-12)


@given(x=ARRAYS, c=REALS, data=st.data())
def test_backward_with_an_explicit_upstream_gradient(x, c, data):
    upstream = data.draw(arrays(x.shape), label="upstream")
    t = leaf(x)
    (t * c).backward(upstream)
    np.testing.assert_allclose(t.grad.numpy(), c * upstream, rtol=1e-12)


# ------------------------------------------------------------------ accumulation and sharing

@given(x=ARRAYS, a=REALS, b=REALS)
def test_gradients_accumulate_into_leaves_across_backward_calls(x, a, b):
    t = leaf(x)
    (t * a).sum().backward()
    (t * b).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), np.full(x.shape, a + b), rtol=1e-12, atol=1e-12)


@given(x=ARRAYS)
def test_a_tensor_used_twice_in_one_op_gets_both_gradients(x):
    t = leaf(x)
    (t * t).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), 2 * x, rtol=1e-12)


@given(x=ARRAYS, uses=st.integers(1, 20))
def test_a_tensor_used_many_times_gets_the_sum_of_its_gradients(x, uses):
    t = leaf(x)
    total = t
    for _ in range(uses - 1):
        total = total + t
    total.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.full(x.shape, float(uses)))


@given(x=ARRAYS)
def test_a_diamond_graph_sums_both_paths(x):
    """a = 2x feeds two branches that meet again: d/dx [(a + 1)(3a)] = 24x + 6."""
    t = leaf(x)
    a = t * 2
    ((a + 1) * (a * 3)).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), 24 * x + 6, rtol=1e-12, atol=1e-12)


def test_a_deep_chain_does_not_hit_the_recursion_limit():
    depth = 5000
    assert depth > sys.getrecursionlimit() // 2  # deep enough that a recursive walk would fail
    t = leaf(1.0)
    y = t
    for _ in range(depth):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(t.grad.item(), 1.0001**depth, rtol=1e-9)


def test_only_inputs_that_require_grad_get_a_gradient():
    x, constant = leaf([1.0, 2.0]), minift.tensor([3.0, 4.0], dtype=minift.float64)
    (x * constant).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])
    assert constant.grad is None and not constant.requires_grad


# ------------------------------------------------------------------ the graph is freed after backward

def test_a_second_backward_through_a_freed_graph_raises():
    t = leaf([1.0, 2.0])
    loss = (t.exp() * 2).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        loss.backward()


@given(x=ARRAYS)
def test_retain_graph_allows_a_second_backward_with_the_same_gradients(x):
    t = leaf(x)
    loss = (t.exp() * t).sum()
    loss.backward(retain_graph=True)
    first = t.grad.numpy().copy()
    t.grad = None
    loss.backward()
    np.testing.assert_array_equal(t.grad.numpy(), first)


@pytest.mark.parametrize("retain_graph", [False, True])
def test_backward_frees_intermediate_tensors_unless_asked_to_retain(retain_graph):
    t = leaf([1.0, 2.0, 3.0])
    middle = t * 2
    alive = weakref.ref(middle)
    loss = middle.log().sum()
    del middle
    loss.backward(retain_graph=retain_graph)
    gc.collect()
    assert (alive() is not None) == retain_graph


# ------------------------------------------------------------------ recording on and off

@given(x=ARRAYS)
def test_no_grad_records_nothing(x):
    t = leaf(x)
    with minift.no_grad():
        assert not minift.is_grad_enabled()
        y = (t * 2).exp().sum()
    assert minift.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_no_grad_restores_recording_after_an_exception_and_works_as_a_decorator():
    with pytest.raises(ZeroDivisionError), minift.no_grad():
        1 / 0
    assert minift.is_grad_enabled()

    @minift.no_grad()
    def double(t):
        return t * 2

    assert not double(leaf([1.0])).requires_grad
    assert minift.is_grad_enabled()


def test_enable_grad_records_again_inside_no_grad():
    t = leaf([1.0, 2.0])
    with minift.no_grad(), minift.enable_grad():
        y = t * 3
    assert y.requires_grad
    y.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [3.0, 3.0])


@given(x=shapes(Sides(1, 4)).flatmap(arrays))
def test_detach_shares_data_but_stops_the_gradient(x):
    t = leaf(x)
    d = t.detach()
    assert not d.requires_grad and d.is_leaf and np.shares_memory(d.data, t.data)
    (d * t).sum().backward()  # only the path through t counts
    np.testing.assert_allclose(t.grad.numpy(), x, rtol=1e-12)


@given(x=ARRAYS, c=floats(-3, 3))
def test_retain_grad_keeps_the_gradient_of_a_non_leaf(x, c):
    t = leaf(x)
    kept, dropped = t * c, t * c
    kept.retain_grad()
    (kept * 3 + dropped * 5).sum().backward()
    np.testing.assert_array_equal(kept.grad.numpy(), np.full(x.shape, 3.0))
    assert dropped.grad is None
    np.testing.assert_allclose(t.grad.numpy(), np.full(x.shape, 8 * c), rtol=1e-12)


# ------------------------------------------------------------------ gradients never alias

GRAPHS = {
    "x + y": lambda x, y: x + y,
    "x - y": lambda x, y: x - y,
    "x + y, y broadcast": lambda x, y: x + y[0],
    "reshaped twice": lambda x, y: (x + y).reshape(-1).reshape(x.shape),
    "each reshaped": lambda x, y: x.reshape(-1).reshape(x.shape) + y.T.T,
    "stacked and split": lambda x, y: F.stack([x, y]).sum(axis=0),
    "x alone": lambda x, y: x,
}


@pytest.mark.parametrize("graph", GRAPHS.values(), ids=GRAPHS.keys())
def test_gradients_never_alias_each_other_or_the_upstream_gradient(graph):
    """Changing one .grad in place changes no other .grad, and not the caller's gradient."""
    x, y = leaf(np.ones((2, 3))), leaf(np.ones((2, 3)))
    upstream = np.ones((2, 3))
    out = graph(x, y)
    out.backward(upstream)
    holders = [t.grad.data for t in (x, y) if t.grad is not None] + [upstream]
    for i, changed in enumerate(holders):
        before = [h.copy() for h in holders]
        changed += 100
        for j, other in enumerate(holders):
            if j != i:
                np.testing.assert_array_equal(other, before[j])
        changed -= 100


def test_grad_fn_outlives_backward_but_its_saved_arrays_do_not():
    t = leaf([1.0, 2.0])
    loss = (t * t).sum()
    loss.backward()
    assert loss.grad_fn.name() == "Sum" and loss.grad_fn.ctx is None and loss.grad_fn.inputs == ()
    assert "grad_fn=<Sum>" in repr(loss)


def test_enable_grad_works_as_a_decorator_inside_no_grad():
    @minift.enable_grad()
    def triple(t):
        return t * 3

    with minift.no_grad():
        assert triple(leaf([1.0])).requires_grad
