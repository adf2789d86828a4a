"""The Tensor itself: dtypes, constructors, seeding, conversions, operators with Python
numbers, ``repr``, and the edge shapes (0-d, zero-size)."""

from __future__ import annotations

import json
import operator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minift
from minift.engine.tensor import DTYPES
from strategies import Sides, arrays, shapes

SHAPES = shapes(Sides(0, 4))
FLOAT_TYPES = [np.float32, np.float64]


# ------------------------------------------------------------------ dtypes

@given(values=SHAPES.flatmap(arrays).map(lambda a: a.tolist()))  # a float, or nested lists of floats
def test_python_floats_become_float32(values):
    for t in (minift.Tensor(values), minift.tensor(values)):
        assert t.dtype == np.float32
        np.testing.assert_array_equal(t.numpy(), np.asarray(values, dtype=np.float32))


def test_python_ints_become_int64_and_bools_bool():
    assert minift.tensor([1, 2]).dtype == np.int64
    assert minift.tensor(3).dtype == np.int64
    assert minift.tensor([True, False]).dtype == np.bool_


@pytest.mark.parametrize("spelling", [minift.float64, np.float64, "float64"], ids=["minift", "numpy", "str"])
def test_float64_on_request(spelling):
    for make in (minift.tensor, minift.Tensor, lambda v, dtype: minift.zeros(3, dtype=dtype)):
        assert make([1.5, 2.5, 3.5], dtype=spelling).dtype == np.float64


@given(array=st.sampled_from(sorted(DTYPES)).flatmap(lambda name: hnp.arrays(name, SHAPES)))
def test_numpy_arrays_keep_their_dtype(array):
    for t in (minift.Tensor(array), minift.tensor(array)):
        assert t.dtype == array.dtype
        np.testing.assert_array_equal(t.numpy(), array)


def test_tensor_copies_its_data_and_Tensor_shares_it():
    """``minift.tensor`` is ``torch.tensor`` (a copy); ``Tensor(array)`` is ``torch.as_tensor``."""
    array = np.zeros(3)
    copied, shared = minift.tensor(array), minift.Tensor(array)
    array[0] = 1
    assert copied.numpy()[0] == 0 and shared.numpy()[0] == 1


# ------------------------------------------------------------------ constructors

@given(shape=SHAPES, fill=st.floats(-10, 10))
def test_constant_constructors(shape, fill):
    for t, value in ((minift.zeros(*shape), 0), (minift.ones(shape), 1), (minift.full(shape, fill), fill)):
        assert t.shape == shape and t.dtype == np.float32 and not t.requires_grad
        np.testing.assert_array_equal(t.numpy(), np.full(shape, value, dtype=np.float32))


@given(n=st.integers(0, 5), m=st.one_of(st.none(), st.integers(0, 5)))
def test_eye(n, m):
    t = minift.eye(n, m)
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), np.eye(n, m))


@given(start=st.integers(-5, 5), length=st.integers(0, 6), step=st.integers(1, 3))
def test_arange_is_int64_for_ints_and_float32_for_floats(start, length, step):
    end = start + length * step
    ints, floats_ = minift.arange(start, end, step), minift.arange(float(start), float(end), step / 2)
    assert ints.dtype == np.int64 and floats_.dtype == np.float32
    np.testing.assert_array_equal(ints.numpy(), np.arange(start, end, step))
    np.testing.assert_allclose(floats_.numpy(), np.arange(start, end, step / 2), rtol=1e-6)
    np.testing.assert_array_equal(minift.arange(length).numpy(), np.arange(length))


@given(shape=SHAPES, seed=st.integers(0, 2**32))
def test_random_constructors_repeat_after_manual_seed(shape, seed):
    for make in (minift.randn, minift.rand):
        minift.manual_seed(seed)
        first = make(*shape)
        minift.manual_seed(seed)
        again = make(*shape)
        assert first.shape == shape and first.dtype == np.float32
        np.testing.assert_array_equal(again.numpy(), first.numpy())
    assert ((0 <= first.numpy()) & (first.numpy() < 1)).all()


def test_different_seeds_draw_differently():
    minift.manual_seed(1)
    first = minift.randn(20)
    minift.manual_seed(2)
    assert not np.array_equal(first.numpy(), minift.randn(20).numpy())


@given(seed=st.integers(0, 2**32), skip=st.integers(0, 5))
def test_the_rng_state_survives_a_json_round_trip(seed, skip):
    minift.manual_seed(seed)
    minift.randn(skip)
    state = json.loads(json.dumps(minift.get_rng_state()))
    expected = minift.randn(5).numpy()
    minift.randn(3)
    minift.set_rng_state(state)
    np.testing.assert_array_equal(minift.randn(5).numpy(), expected)


@given(x=SHAPES.flatmap(arrays), dtype=st.sampled_from(FLOAT_TYPES))
def test_like_constructors_copy_shape_and_dtype(x, dtype):
    other = minift.Tensor(x.astype(dtype))
    for make in (minift.zeros_like, minift.ones_like, minift.randn_like, minift.rand_like,
                 lambda t: minift.full_like(t, 7.0)):
        made = make(other)
        assert made.shape == other.shape and made.dtype == other.dtype


def test_constructors_can_require_grad():
    for t in (minift.zeros(2, requires_grad=True), minift.randn(2, requires_grad=True),
              minift.tensor([1.0], requires_grad=True)):
        assert t.requires_grad and t.is_leaf


# ------------------------------------------------------------------ conversions and properties

@given(x=SHAPES.flatmap(arrays))
def test_numpy_and_array_protocol(x):
    t = minift.Tensor(x)
    np.testing.assert_array_equal(t.numpy(), x)
    np.testing.assert_array_equal(np.asarray(t), x)
    assert np.asarray(t, dtype=np.float32).dtype == np.float32
    assert (t.shape, t.ndim, t.numel(), t.dtype) == (x.shape, x.ndim, x.size, x.dtype)


@given(value=st.floats(-1e6, 1e6), shape=st.sampled_from([(), (1,), (1, 1)]))
def test_item_of_a_single_element(value, shape):
    item = minift.tensor(np.full(shape, value)).item()
    assert isinstance(item, float) and item == value


def test_item_of_several_elements_raises():
    with pytest.raises(ValueError, match=r"one element, got shape \(2,\)"):
        minift.zeros(2).item()


# ------------------------------------------------------------------ operators with Python numbers

SCALAR_OPS = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow]


@given(dtype=st.sampled_from(FLOAT_TYPES), op=st.sampled_from(SCALAR_OPS), scalar_first=st.booleans(),
       scalar=st.one_of(st.integers(1, 3), st.floats(0.5, 2), st.floats(0.5, 2).map(np.float64)))
def test_operators_with_python_numbers_keep_the_tensor_dtype(dtype, op, scalar_first, scalar):
    """The number is taken in the tensor's dtype (PyTorch's rule), even a NumPy float64."""
    t = minift.Tensor(np.array([0.5, 1.5, 2.5], dtype=dtype))
    out = op(scalar, t) if scalar_first else op(t, scalar)
    same_dtype = dtype(scalar)
    expected = op(same_dtype, t.numpy()) if scalar_first else op(t.numpy(), same_dtype)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)


def test_an_ndarray_on_the_left_gives_a_tensor():
    t = minift.tensor([1.0, 2.0], requires_grad=True)
    out = np.ones(2, dtype=np.float32) * t
    assert isinstance(out, minift.Tensor) and out.requires_grad


@given(x=SHAPES.flatmap(arrays))
def test_comparisons_give_boolean_tensors_without_gradient(x):
    t = minift.Tensor(x, requires_grad=True)
    for op in (operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne):
        out = op(t, 0.5)
        assert out.dtype == np.bool_ and not out.requires_grad
        np.testing.assert_array_equal(out.numpy(), op(x, 0.5))


# ------------------------------------------------------------------ repr

@pytest.mark.parametrize("make, expected", [
    (lambda: minift.tensor([1.0, 2.0]), "tensor([1., 2.])"),
    (lambda: minift.tensor([1.5], dtype=minift.float64), "tensor([1.5], dtype=float64)"),
    (lambda: minift.tensor(3), "tensor(3, dtype=int64)"),
    (lambda: minift.tensor([[1.0, 2.0]], requires_grad=True), "tensor([[1., 2.]], requires_grad=True)"),
    (lambda: minift.tensor([1.0], requires_grad=True) * 2, "tensor([2.], grad_fn=<Mul>)"),
    (lambda: minift.zeros(0), "tensor([])"),
    (lambda: minift.zeros(0, 3), "tensor([], size=(0, 3))"),
], ids=["float32", "float64", "int64", "requires_grad", "grad_fn", "empty", "empty 2-d"])
def test_repr_looks_like_pytorch(make, expected):
    assert repr(make()) == expected


# ------------------------------------------------------------------ edge shapes

def test_a_0d_tensor_computes_and_differentiates():
    x = minift.tensor(3.0, requires_grad=True)
    y = x * x + 1
    assert y.shape == () and y.ndim == 0 and y.item() == 10.0
    y.backward()
    assert x.grad.shape == () and x.grad.item() == 6.0


@given(shape=shapes(Sides(0, 3), min_dims=1).filter(lambda s: 0 in s))
def test_zero_size_tensors_reduce_and_differentiate(shape):
    x = minift.zeros(*shape, dtype=minift.float64, requires_grad=True)
    total = (x * 2).sum()
    assert total.item() == 0.0
    total.backward()
    assert x.grad.shape == shape
    assert x.sum(axis=0).shape == shape[1:]


def test_indexing_with_an_integer_tensor_and_the_transpose_property():
    x = minift.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    picked = x[minift.tensor([1, 1, 0])]
    np.testing.assert_array_equal(picked.numpy(), np.arange(6.0).reshape(2, 3)[[1, 1, 0]])
    np.testing.assert_array_equal(x.T.numpy(), np.arange(6.0).reshape(2, 3).T)
    picked.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1, 1, 1], [2, 2, 2]])


def test_a_cast_is_differentiable_and_the_gradient_keeps_the_leaf_dtype():
    x = minift.tensor([1.0, 2.0], requires_grad=True)
    (x.double() * 3).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])
