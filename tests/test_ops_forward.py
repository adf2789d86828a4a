"""Forward: every op of the table computes what its NumPy formula says, in float64 and float32,
for any shape, broadcast and memory layout the strategies draw, without touching its inputs.
Then the edge cases the table does not reach by itself: NaN and infinity, dropout."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minift
import minift.functional as F
from op_table import OPS, OPS_BY_NAME, op_backend_params
from strategies import POSITIVE, Sides, arrays, floats, shapes, with_nonfinite

FORWARD_SIDES = Sides(0, 4)
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-4}


def as_tensors(arrays_, dtype, requires_grad=False) -> list:
    """The arrays as Tensors of ``dtype`` on the backend's device (float64 keeps each layout)."""
    device = minift.backend.default_device()
    return [minift.Tensor(a.astype(dtype, copy=False), requires_grad=requires_grad, device=device) for a in arrays_]


def assert_outputs_match(outputs, expected, dtype) -> None:
    assert len(outputs) == len(expected)
    for out, want in zip(outputs, expected):
        assert out.dtype == dtype, f"the output is {out.dtype}, the inputs were {np.dtype(dtype)}"
        assert out.shape == want.shape
        np.testing.assert_allclose(out.numpy(), want, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


def test_the_table_covers_every_op_of_minift_functional():
    """A new op in ``minift.functional.__all__`` needs an entry in the table (dropout, being
    random, has its own tests below)."""
    aliases = {"cat": "concatenate", "clamp": "clip"}
    not_differentiable = {"argmax", "argmin"}  # integer results: tests of their own
    in_table = {op.name.split(" (")[0] for op in OPS} | {"dropout"} | not_differentiable
    assert {aliases.get(name, name) for name in F.__all__} - in_table == set()


@pytest.mark.parametrize("op, backend", op_backend_params(), indirect=["backend"])
@given(data=st.data())
def test_forward_matches_the_numpy_formula(op, backend, data):
    case = data.draw(op.cases(FORWARD_SIDES), label="case")
    originals = [a.copy() for a in case.arrays]
    expected = op.expected(case.arrays, case.params)
    for dtype in (np.float64, np.float32):
        tensors = as_tensors(case.arrays, dtype, requires_grad=True)
        assert_outputs_match(op.outputs(tensors, case.params), expected, dtype)
    for before, after in zip(originals, case.arrays):
        np.testing.assert_array_equal(after, before, err_msg="the op wrote into its input")


NONFINITE_OPS = ["add", "sub", "mul", "div", "neg", "exp", "log", "sqrt", "abs", "maximum", "minimum",
                 "sum", "mean", "amax", "amin", "logsumexp", "relu", "sigmoid", "tanh", "softmax", "matmul"]


@pytest.mark.parametrize("op, backend", op_backend_params([OPS_BY_NAME[n] for n in NONFINITE_OPS]),
                         indirect=["backend"])
@given(data=st.data())
def test_nan_and_infinity_propagate_as_in_numpy(op, backend, data):
    case = data.draw(op.cases(Sides(1, 3)), label="case")
    inputs = [data.draw(with_nonfinite(a), label="input") for a in case.arrays]
    with np.errstate(all="ignore"):
        expected = op.expected(inputs, case.params)
        outputs = op.outputs(as_tensors(inputs, np.float64), case.params)
    for out, want in zip(outputs, expected):
        np.testing.assert_array_equal(np.isnan(out.numpy()), np.isnan(want))
        np.testing.assert_allclose(out.numpy(), want, rtol=1e-10, atol=1e-10)  # infinities: same sign, same place


# ------------------------------------------------------------------ dropout (random, so not in the table)

PROBABILITIES = floats(0.05, 0.9)


@given(x=shapes(Sides(0, 4)).flatmap(lambda s: arrays(s, POSITIVE)), p=PROBABILITIES, seed=st.integers(0, 2**32))
def test_dropout_zeroes_elements_and_scales_the_rest_by_one_over_keep(x, p, seed):
    minift.manual_seed(seed)
    out = F.dropout(minift.Tensor(x), p=p).numpy()
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / (1 - p), rtol=1e-12)


@given(p=PROBABILITIES, seed=st.integers(0, 2**32))
def test_dropout_preserves_the_mean(p, seed):
    """Each element is x / (1 - p) with probability 1 - p and 0 otherwise: its expected
    value is x. The mean of n ones is 1 within 5 standard deviations, sqrt(p / ((1 - p) n))."""
    n = 100_000
    minift.manual_seed(seed)
    mean = F.dropout(minift.ones(n, dtype=minift.float64), p=p).mean().item()
    assert abs(mean - 1) < 5 * np.sqrt(p / ((1 - p) * n))


@given(x=shapes(Sides(0, 4)).flatmap(arrays), p=floats(0, 1))
def test_dropout_in_evaluation_is_the_identity(x, p):
    t = minift.Tensor(x)
    np.testing.assert_array_equal(F.dropout(t, p=p, training=False).numpy(), x)


@given(seed=st.integers(0, 2**32), p=PROBABILITIES)
def test_dropout_masks_repeat_after_manual_seed(seed, p):
    x = minift.ones(50, dtype=minift.float64)
    minift.manual_seed(seed)
    first = F.dropout(x, p=p).numpy()
    minift.manual_seed(seed)
    np.testing.assert_array_equal(F.dropout(x, p=p).numpy(), first)


def test_dropout_with_p_one_drops_everything_and_p_zero_nothing():
    x = minift.randn(4, 5)
    np.testing.assert_array_equal(F.dropout(x, p=1.0).numpy(), np.zeros((4, 5)))
    np.testing.assert_array_equal(F.dropout(x, p=0.0).numpy(), x.numpy())


# ------------------------------------------------------------------ batch norm's running statistics

@given(data=st.data(), momentum=floats(0, 1))
def test_batch_norm_training_moves_running_statistics_with_momentum_and_unbiased_variance(data, momentum):
    shape = data.draw(shapes(Sides(1, 4), min_dims=2, max_dims=4, min_side=1).filter(
        lambda s: s[0] * int(np.prod(s[2:])) >= 2), label="shape")
    x = data.draw(arrays(shape), label="x")
    channels = shape[1]
    running_mean = data.draw(arrays((channels,)), label="running_mean").copy()
    running_var = data.draw(arrays((channels,), POSITIVE), label="running_var").copy()
    over = (0,) + tuple(range(2, x.ndim))
    expected_mean = (1 - momentum) * running_mean + momentum * x.mean(axis=over)
    expected_var = (1 - momentum) * running_var + momentum * x.var(axis=over, ddof=1)
    F.batch_norm(minift.Tensor(x), running_mean, running_var, training=True, momentum=momentum)
    np.testing.assert_allclose(running_mean, expected_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(running_var, expected_var, rtol=1e-12, atol=1e-12)


@given(data=st.data())
def test_batch_norm_inference_leaves_running_statistics_alone(data):
    shape = data.draw(shapes(Sides(1, 4), min_dims=2, max_dims=4), label="shape")
    running_mean = minift.Tensor(data.draw(arrays((shape[1],)), label="running_mean").copy())
    running_var = minift.Tensor(data.draw(arrays((shape[1],), POSITIVE), label="running_var").copy())
    before = running_mean.numpy().copy(), running_var.numpy().copy()
    F.batch_norm(minift.Tensor(data.draw(arrays(shape), label="x")), running_mean, running_var, training=False)
    np.testing.assert_array_equal(running_mean.numpy(), before[0])
    np.testing.assert_array_equal(running_var.numpy(), before[1])
