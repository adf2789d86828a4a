"""Backward: every op of the table has the gradient its forward implies, checked against
central differences in float64 (``minift.gradcheck`` entry by entry on small inputs,
``gradcheck_directional`` along random directions on larger ones). Then the gradient
rules that central differences cannot see: ties, kinks, padding rows, repeated indices,
dropout's mask, and a comparison with PyTorch where it imports."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minift
import minift.functional as F
from op_table import OPS_BY_NAME, op_backend_params
from strategies import POSITIVE, REALS, UNIT, Sides, arrays, floats, shapes

SMALL = Sides(0, 3)  # every entry of the gradient, two forward passes per entry
LARGE = Sides(2, 7)  # two random directions, whatever the size


def leaves(arrays_) -> list:
    device = minift.backend.default_device()
    return [minift.Tensor(a, requires_grad=True, device=device) for a in arrays_]


@pytest.mark.parametrize("op, backend", op_backend_params(), indirect=["backend"])
@given(data=st.data())
def test_gradient_matches_central_differences(op, backend, data):
    case = data.draw(op.cases(SMALL), label="case")
    function, inputs = op.as_function(case.params), leaves(case.arrays)
    out = function(*inputs)
    out.backward(np.ones(out.shape))
    for t in inputs:
        assert t.grad is not None and t.grad.shape == t.shape and t.grad.dtype == t.dtype
    assert minift.gradcheck(function, inputs)


@pytest.mark.parametrize("op, backend", op_backend_params(), indirect=["backend"])
@given(data=st.data())
def test_gradient_along_random_directions_on_larger_inputs(op, backend, data):
    case = data.draw(op.cases(LARGE), label="case")
    assert minift.gradcheck_directional(op.as_function(case.params), leaves(case.arrays))


# ------------------------------------------------------------------ rules at ties and kinks (PyTorch's)

@given(x=shapes(Sides(1, 4)).flatmap(arrays))
def test_maximum_and_minimum_of_equal_inputs_split_the_gradient(x):
    a, b = leaves([x, x.copy()])
    (F.maximum(a, b) + F.minimum(a, b) * 3).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full(x.shape, 2.0))
    np.testing.assert_array_equal(b.grad.numpy(), np.full(x.shape, 2.0))


@given(shape=shapes(Sides(1, 4), min_dims=1), value=REALS)
def test_max_of_equal_elements_shares_the_gradient_equally(shape, value):
    (x,) = leaves([np.full(shape, value)])
    x.max().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(shape, 1 / np.prod(shape)))


def test_relu_and_abs_have_zero_gradient_at_zero():
    (x,) = leaves([np.zeros(3)])
    (F.relu(x) + F.abs(x)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros(3))


@given(x=shapes(Sides(1, 4)).flatmap(lambda s: arrays(s, st.sampled_from([0.0, -1.5, 2.0]))), data=st.data())
def test_bce_with_logits_gradient_is_sigmoid_minus_target_even_at_zero(x, data):
    """dL/dx = (sigmoid(x) - t) / n for the mean, also at x = 0 (where the kinks of the
    stable formula's pieces cancel): sigmoid(0) = 1/2."""
    t = data.draw(arrays(x.shape, UNIT), label="target")
    (logits,) = leaves([x])
    F.binary_cross_entropy_with_logits(logits, minift.Tensor(t)).backward()
    np.testing.assert_allclose(logits.grad.numpy(), (1 / (1 + np.exp(-x)) - t) / x.size, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ indexing and lookups

@given(data=st.data())
def test_repeated_indices_accumulate_their_gradients(data):
    n = data.draw(st.integers(1, 6), label="n")
    picks = data.draw(hnp.arrays(np.int64, st.integers(0, 12), elements=st.integers(-n, n - 1)), label="picks")
    (x,) = leaves([np.zeros(n)])
    x[picks].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.bincount(picks % n, minlength=n))


@given(data=st.data())
def test_embedding_padding_row_gets_no_gradient_and_the_others_are_unchanged(data):
    vocab, dim = data.draw(st.integers(1, 5), label="vocab"), data.draw(st.integers(1, 4), label="dim")
    weight = data.draw(arrays((vocab, dim)), label="weight")
    indices = data.draw(hnp.arrays(np.int64, hnp.array_shapes(max_dims=2), elements=st.integers(0, vocab - 1)),
                        label="indices")
    padding_idx = data.draw(st.integers(0, vocab - 1), label="padding_idx")
    padded, plain = leaves([weight, weight.copy()])
    upstream = np.random.default_rng(0).standard_normal(indices.shape + (dim,))
    F.embedding(indices, padded, padding_idx=padding_idx).backward(upstream)
    F.embedding(indices, plain).backward(upstream)
    expected = plain.grad.numpy().copy()
    expected[padding_idx] = 0
    np.testing.assert_allclose(padded.grad.numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(F.embedding(indices, padded, padding_idx).numpy(), weight[indices])


# ------------------------------------------------------------------ dropout

@given(x=shapes(Sides(1, 4)).flatmap(lambda s: arrays(s, POSITIVE)), p=floats(0.05, 0.9), seed=st.integers(0, 2**32))
def test_dropout_backward_reuses_the_forward_mask(x, p, seed):
    """dL/dx = mask / (1 - p) with the SAME mask: zero exactly where the output is zero."""
    (t,) = leaves([x])
    minift.manual_seed(seed)
    out = F.dropout(t, p=p)
    out.backward(np.ones(x.shape))
    np.testing.assert_allclose(t.grad.numpy(), (out.numpy() != 0) / (1 - p), rtol=1e-12)


@given(x=shapes(Sides(1, 3)).flatmap(arrays), p=floats(0.05, 0.9), seed=st.integers(0, 2**32))
def test_dropout_gradient_matches_central_differences_with_a_fixed_seed(x, p, seed):
    def seeded_dropout(t):
        minift.manual_seed(seed)  # the same mask in every forward pass of the check
        return F.dropout(t, p=p)

    assert minift.gradcheck(seeded_dropout, leaves([x]))


# ------------------------------------------------------------------ PyTorch as a second oracle

@given(data=st.data())
def test_cross_entropy_matches_torch_in_value_and_gradient(data):
    torch = pytest.importorskip("torch")
    case = data.draw(OPS_BY_NAME["cross_entropy"].cases(Sides(1, 4)), label="case")
    (x,), params = case.arrays, case.params
    (ours,) = leaves([x])
    loss = F.cross_entropy(ours, **params)
    theirs = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    expected = torch.nn.functional.cross_entropy(theirs, torch.from_numpy(params["target"]), **{
        k: v for k, v in params.items() if k != "target"})
    np.testing.assert_allclose(loss.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    upstream = np.random.default_rng(0).standard_normal(loss.shape)
    loss.backward(upstream)
    expected.backward(torch.from_numpy(upstream))
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-12)
