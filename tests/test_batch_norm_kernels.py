"""The fused batch-norm kernels (Numba) against the NumPy reference, in float32 and float64,
in both of their loop orders; the contract's checks and dispatch; and ``F.batch_norm``,
which runs on them, against central differences and PyTorch."""

import math
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minift
from minift import backend, contract
from minift import functional as F
from minift.backend import threads
from minift.reference import batch_norm as reference

from fused_kernels import DTYPES, TOLERANCE, assert_bad_call_fails_alike, assert_contract_dispatches, values

fused = pytest.importorskip("minift.kernels.numba.batch_norm")

ORDERS = ("channels", "columns")

# (N, C, ...): 2-D (L = 1), 3-D and 4-D
shapes = hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=6)


@contextmanager
def loop_order(order):
    """Make the Numba kernels walk x by ``order`` whatever its shape (``fused.LONG_RUN``)."""
    saved = fused.LONG_RUN
    fused.LONG_RUN = 1 if order == "channels" else 2**62
    try:
        yield
    finally:
        fused.LONG_RUN = saved


def channel_vector(shape, dtype, data, scale=4.0, low=None):
    return data.draw(values(dtype, shape[1:2], scale, low))


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", DTYPES)
@settings(deadline=None, max_examples=40)
@given(data=st.data(), shape=shapes, affine=st.booleans(), training=st.booleans(),
       eps=st.sampled_from([1e-12, 1e-5, 0.1]))
def test_forward_and_backward_match_the_reference(data, shape, dtype, order, affine, training, eps):
    x = data.draw(values(dtype, shape))
    x = x + channel_vector(shape, dtype, data, scale=100.0).reshape((1, -1) + (1,) * (len(shape) - 2))  # far from 0
    weight, bias = (channel_vector(shape, dtype, data) for _ in range(2)) if affine else (None, None)
    given_stats = (None, None) if training else (channel_vector(shape, dtype, data, scale=100.0),
                                                 channel_vector(shape, dtype, data, scale=10.0, low=0.125))
    expected = reference.batch_norm_forward(x, weight, bias, eps, *given_stats)
    with loop_order(order):
        got = fused.batch_norm_forward(x, weight, bias, eps, *given_stats)
    rstd = (1 / np.sqrt(expected[2] + dtype(eps))).astype(dtype)
    # x - mean loses the low bits of x, and rstd (up to 1/sqrt(eps)) magnifies what is left:
    # both implementations round there, so they may differ by this much (times |w| and |g|)
    scale = float(np.abs(x).max())
    noise = 8 * np.finfo(dtype).eps * scale * float(rstd.max(initial=0))
    w_size = 1.0 if weight is None else 1.0 + float(np.abs(weight).max())
    spread = float(np.sqrt(expected[2].max(initial=0)))
    sizes = (noise * w_size, 8 * np.finfo(dtype).eps * scale, 16 * np.finfo(dtype).eps * scale * (spread + 1))
    for actual, wanted, size in zip(got, expected, sizes):
        assert actual.dtype == dtype and actual.shape == wanted.shape and actual.flags.c_contiguous
        np.testing.assert_allclose(actual, wanted, rtol=TOLERANCE[dtype]["rtol"], atol=TOLERANCE[dtype]["atol"] + size)

    g = data.draw(values(dtype, shape))
    mean = expected[1]
    expected_grads = reference.batch_norm_backward(g, x, mean, rstd, weight, training)
    with loop_order(order):
        got_grads = fused.batch_norm_backward(g, x, mean, rstd, weight, training)
    count = g.size // g.shape[1]
    for actual, wanted, size in zip(got_grads, expected_grads, (w_size * float(rstd.max()), count, count)):
        if wanted is None:
            assert actual is None
            continue
        assert actual.dtype == dtype and actual.shape == wanted.shape
        # sums of terms as large as |g| * size cancel: compare on that scale
        tolerance = 4.0 * max(1.0, size)
        np.testing.assert_allclose(actual, wanted, rtol=TOLERANCE[dtype]["rtol"],
                                   atol=tolerance * (TOLERANCE[dtype]["atol"] + noise * w_size))


@pytest.mark.parametrize("order", ORDERS)
def test_results_do_not_depend_on_the_thread_count(order):
    rng = np.random.default_rng(0)
    shape = (16, 600, 3) if order == "columns" else (8, 6, 9, 9)  # more than one task's worth of channels
    x, g, w = rng.standard_normal(shape), rng.standard_normal(shape), rng.standard_normal(shape[1])
    results = []
    try:
        with loop_order(order):
            for count in (1, 2):
                threads.set_num_threads(count)
                y, mean, var = fused.batch_norm_forward(x, w, w, 1e-5)
                rstd = 1 / np.sqrt(var + 1e-5)
                results.append((y, mean, var, *fused.batch_norm_backward(g, x, mean, rstd, w, True),
                                *fused.batch_norm_backward(g, x, mean, rstd, w, False)))
    finally:
        threads.set_num_threads(None)
    for first, second in zip(*results):
        assert np.array_equal(first, second)


@pytest.mark.parametrize("name", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_an_empty_batch_in_inference(name, dtype):
    x = np.zeros((0, 3, 4), dtype)
    mean, var = np.arange(3, dtype=dtype), np.ones(3, dtype)
    with backend.use_backend(name):
        y, got_mean, got_var = contract.batch_norm_forward(x, None, None, 1e-5, mean, var)
        assert y.shape == (0, 3, 4) and np.array_equal(got_mean, mean) and np.array_equal(got_var, var)
        assert got_mean is not mean and got_mean.dtype == dtype
        for training in (True, False):
            grad_x, grad_w, grad_b = contract.batch_norm_backward(x, x, mean, var, np.ones(3, dtype), training)
            assert grad_x.shape == (0, 3, 4) and grad_w.dtype == dtype
            assert np.array_equal(grad_w, np.zeros(3)) and np.array_equal(grad_b, np.zeros(3))


X = np.arange(8.0).reshape(2, 4)  # C = 4 channels, L = 1
BAD_CALLS = [
    ("batch_norm_forward", lambda x: contract.batch_norm_forward(x, np.ones(4, np.float32)), TypeError,
     "all arrays must share one dtype, got x float64, weight float32"),
    ("batch_norm_forward", lambda x: contract.batch_norm_forward(x.astype(np.int64)), TypeError, "float32 or float64"),
    ("batch_norm_forward", lambda x: contract.batch_norm_forward(x, np.ones(3)), ValueError,
     "weight must have shape (4,) (one entry per channel, axis 1 of x), got (3,)"),
    ("batch_norm_forward", lambda x: contract.batch_norm_forward(x, None, np.ones((4, 1))), ValueError,
     "bias must have shape (4,)"),
    ("batch_norm_forward", lambda x: contract.batch_norm_forward(x, None, None, 1e-5, np.zeros(4), np.ones(5)),
     ValueError, "var must have shape (4,)"),
    ("batch_norm_forward", lambda x: contract.batch_norm_forward(x, None, None, -1.0), ValueError,
     "eps must be a number >= 0, got -1.0"),
    ("batch_norm_forward", lambda x: contract.batch_norm_forward(x[0]), ValueError, "(N, C, ...)"),
    ("batch_norm_forward", lambda x: contract.batch_norm_forward(x, None, None, 1e-5, np.zeros(4)), ValueError,
     "both mean and var"),
    ("batch_norm_forward", lambda x: contract.batch_norm_forward(x[:0]), ValueError,
     "at least one value per channel, got x of shape (0, 4)"),
    ("batch_norm_backward", lambda x: contract.batch_norm_backward(x[:1], x, np.zeros(4), np.ones(4)), ValueError,
     "grad_y must have shape (2, 4) (the shape of x), got (1, 4)"),
    ("batch_norm_backward", lambda x: contract.batch_norm_backward(x, x, np.zeros(2), np.ones(4)), ValueError,
     "mean must have shape (4,)"),
    ("batch_norm_backward", lambda x: contract.batch_norm_backward(x, x, np.zeros(4), np.ones(4, np.float32)),
     TypeError, "rstd float32"),
    ("batch_norm_backward", lambda x: contract.batch_norm_backward(x, x, np.zeros(4), np.ones(4), None, 1), TypeError,
     "training must be True or False, got 1"),
]


@pytest.mark.parametrize("kernel, call, error, fragment", BAD_CALLS)
def test_bad_calls_fail_alike_on_both_backends_and_change_nothing(kernel, call, error, fragment):
    assert_bad_call_fails_alike(kernel, call, X, error, fragment)


@pytest.mark.parametrize("name", ["numpy", "numba"])
def test_the_contract_dispatches_the_batch_norm_kernels(name):
    assert_contract_dispatches(contract.BATCH_NORM_KERNELS, name, reference, fused)


# --------------------------------------------------------------------------- F.batch_norm, which calls them


def batch_norm_of(running, training, shape):
    """F.batch_norm of (x, weight, bias) with copies of ``running`` as the running statistics."""

    def function(x, weight, bias):
        stats = [None if r is None else r.copy() for r in running]
        out = F.batch_norm(x, *stats, weight, bias, training=training)
        return out * minift.tensor(np.linspace(-1, 2, math.prod(shape)).reshape(shape))  # no symmetry to hide an error

    return function


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("name", ["numpy", "numba"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 4), (2, 3, 2, 3)])
def test_f_batch_norm_gradients_match_central_differences(shape, training, name, order):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape) * 2 + 1
    weight, bias = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    running = (rng.standard_normal(shape[1]), rng.random(shape[1]) + 0.5)
    inputs = [minift.tensor(a, requires_grad=True) for a in (x, weight, bias)]
    with backend.use_backend(name), loop_order(order):
        assert minift.gradcheck(batch_norm_of(running, training, shape), inputs)


@pytest.mark.parametrize("name", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6, 3), (4, 5, 7), (3, 4, 6, 6), (2, 3, 40)])  # L = 1, 7, 36, 40: both orders
@pytest.mark.parametrize("affine", ["weight and bias", "weight", "bias", "neither"])
def test_f_batch_norm_matches_torch_in_training_and_inference(shape, dtype, affine, name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(len(shape) * 10 + shape[1])
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    upstream = rng.standard_normal(shape).astype(dtype)
    channels = shape[1]
    params = {name: rng.standard_normal(channels).astype(dtype) for name in ("weight", "bias") if name in affine}
    running = [rng.standard_normal(channels).astype(dtype), (rng.random(channels) + 0.5).astype(dtype)]
    tolerance = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for training in (True, False):
        ours_in = {key: minift.tensor(a, requires_grad=True) for key, a in {"x": x, **params}.items()}
        ours_running = [r.copy() for r in running]
        with backend.use_backend(name):
            ours = F.batch_norm(ours_in["x"], *ours_running, ours_in.get("weight"), ours_in.get("bias"),
                                training=training, momentum=0.3, eps=1e-3)
            (ours * minift.tensor(upstream)).sum().backward()
        theirs_in = {key: torch.tensor(a, requires_grad=True) for key, a in {"x": x, **params}.items()}
        theirs_running = [torch.tensor(r) for r in running]
        theirs = torch.nn.functional.batch_norm(theirs_in["x"], *theirs_running, theirs_in.get("weight"),
                                                theirs_in.get("bias"), training=training, momentum=0.3, eps=1e-3)
        (theirs * torch.tensor(upstream)).sum().backward()
        pairs = [(ours.numpy(), theirs.detach().numpy())]
        pairs += [(ours_in[key].grad.numpy(), theirs_in[key].grad.numpy()) for key in ours_in]
        pairs += [(a, b.numpy()) for a, b in zip(ours_running, theirs_running)]
        for mine, torch_value in pairs:
            assert mine.dtype == dtype and mine.shape == torch_value.shape
            np.testing.assert_allclose(mine, torch_value, **tolerance)
