"""The fused transformer kernels (Numba) against the NumPy reference, in float32 and float64."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minift import backend, contract
from minift.backend import threads
from minift.reference import transformer as reference

from fused_kernels import DTYPES, TOLERANCE, assert_bad_call_fails_alike, assert_contract_dispatches, values

fused = pytest.importorskip("minift.kernels.numba.transformer")


shapes = hnp.array_shapes(min_dims=1, max_dims=5, min_side=1, max_side=7)


def assert_close(actual, expected, dtype):
    assert actual.dtype == expected.dtype == dtype
    assert actual.flags.c_contiguous
    np.testing.assert_allclose(actual, expected, **TOLERANCE[dtype])


def test_exp_approx_matches_exp_to_float64_rounding():
    x = np.concatenate([np.linspace(-708, 709, 100_003), np.linspace(-1, 1, 1001)])
    got = np.array([fused.exp_approx(v) for v in x])
    np.testing.assert_allclose(got, np.exp(x), rtol=4e-16 * 4)
    assert fused.exp_approx(-np.inf) == 0.0 and fused.exp_approx(-1e4) == 0.0
    assert np.isnan(fused.exp_approx(np.nan))


@pytest.mark.parametrize("dtype", DTYPES)
@settings(deadline=None, max_examples=40)
@given(data=st.data(), shape=shapes)
def test_softmax_with_a_mask_matches_the_reference(data, shape, dtype):
    x = data.draw(values(dtype, shape, scale=30.0))
    # a mask of some broadcastable shape: each axis either kept or 1; entries 0 or -inf
    mask_shape = tuple(side if data.draw(st.booleans()) else 1 for side in shape)[data.draw(st.integers(0, len(shape))):]
    allowed = data.draw(hnp.arrays(np.bool_, mask_shape))
    bias = np.where(allowed, 0, -np.inf).astype(dtype) if data.draw(st.booleans()) else None
    expected = reference.softmax_forward(x, bias)
    got = fused.softmax_forward(x, bias)
    assert np.array_equal(np.isnan(got), np.isnan(expected))  # a row masked everywhere is NaN in both
    finite = ~np.isnan(expected)
    assert_close(np.where(finite, got, 0), np.where(finite, expected, 0), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(deadline=None, max_examples=40)
@given(data=st.data(), shape=shapes)
def test_softmax_backward_matches_the_reference(data, shape, dtype):
    z = reference.softmax_forward(data.draw(values(dtype, shape)))
    g = data.draw(values(dtype, shape))
    assert_close(fused.softmax_backward(g, z), reference.softmax_backward(g, z), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(deadline=None, max_examples=40)
@given(data=st.data(), shape=shapes, affine=st.booleans(), eps=st.sampled_from([1e-12, 1e-5, 0.1]))
def test_layer_norm_forward_and_backward_match_the_reference(data, shape, dtype, affine, eps):
    x = data.draw(values(dtype, shape))
    x = x + data.draw(values(dtype, shape[-1:], scale=100.0))  # rows far from zero mean
    weight, bias = (data.draw(values(dtype, shape[-1:])) for _ in range(2)) if affine else (None, None)
    expected = reference.layer_norm_forward(x, weight, bias, eps)
    got = fused.layer_norm_forward(x, weight, bias, eps)
    # x - mean loses the low bits of x, and rstd (up to 1/sqrt(eps)) magnifies what is left:
    # both implementations round there, so they may differ by this much (times |w| and |g|)
    x_noise = 8 * np.finfo(dtype).eps * float(np.abs(x).max())
    rstd_max = float(expected[2].max(initial=0))
    noise = x_noise * rstd_max
    # and a row of (nearly) equal values has a variance made of that rounding alone, up to
    # x_noise**2, against eps: rstd = 1/sqrt(var + eps) moves by up to rstd**3 * x_noise**2 / 2
    rstd_noise = rstd_max ** 3 * x_noise ** 2 / 2
    w_size = 1.0 if weight is None else 1.0 + float(np.abs(weight).max())
    for actual, wanted, extra in zip(got, expected, (noise * w_size, noise, noise + rstd_noise)):
        assert actual.dtype == dtype
        np.testing.assert_allclose(actual, wanted, rtol=TOLERANCE[dtype]["rtol"],
                                   atol=TOLERANCE[dtype]["atol"] + extra)
    g = data.draw(values(dtype, shape))
    mean, rstd = expected[1], expected[2]
    expected_grads = reference.layer_norm_backward(g, x, mean, rstd, weight)
    got_grads = fused.layer_norm_backward(g, x, mean, rstd, weight)
    rows = g.size // g.shape[-1]
    for actual, wanted, size in zip(got_grads, expected_grads, (w_size * float(expected[2].max(initial=0)), rows, rows)):
        if wanted is None:
            assert actual is None
            continue
        assert actual.dtype == dtype
        # sums of terms as large as |g| * size cancel: compare on that scale
        scale = 4.0 * max(1.0, size)
        np.testing.assert_allclose(actual, wanted, rtol=TOLERANCE[dtype]["rtol"],
                                   atol=scale * (TOLERANCE[dtype]["atol"] + noise * w_size))


@pytest.mark.parametrize("dtype", DTYPES)
@settings(deadline=None, max_examples=40)
@given(data=st.data(), shape=shapes)
def test_gelu_forward_and_backward_match_the_reference(data, shape, dtype):
    x = data.draw(values(dtype, shape, scale=12.0))
    y, cdf = fused.gelu_forward(x)
    expected_y, expected_cdf = reference.gelu_forward(x)
    assert_close(y, expected_y, dtype)
    assert_close(cdf, expected_cdf, dtype)
    g = data.draw(values(dtype, shape))
    assert_close(fused.gelu_backward(g, x, cdf), reference.gelu_backward(g, x, expected_cdf), dtype)


def test_float32_normal_cdf_keeps_its_relative_precision_in_the_tails():
    x = np.linspace(-14, 14, 28_001).astype(np.float32)  # past 13.5, where the fit ends and 0 takes over
    _, cdf = fused.gelu_forward(x)
    exact = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x.astype(np.float64)])  # no cancellation
    tiny = np.finfo(np.float32).tiny  # below it float32 has fewer digits
    np.testing.assert_allclose(cdf, exact.astype(np.float32), rtol=3e-7, atol=tiny)
    assert cdf.min() >= 0 and cdf.max() <= 1


def test_float32_gelu_of_infinities_and_nan_matches_the_reference():
    x = np.array([np.inf, -np.inf, np.nan, 0.0, 1e30, -1e30], np.float32)
    g = np.ones_like(x)
    with np.errstate(all="ignore"):  # the reference's inf * 0 and overflowing x * x
        expected = reference.gelu_forward(x)
        expected_grad = reference.gelu_backward(g, x, expected[1])
    got = fused.gelu_forward(x)
    for actual, wanted in zip(got, expected):
        np.testing.assert_array_equal(actual, wanted)
    np.testing.assert_array_equal(fused.gelu_backward(g, x, got[1]), expected_grad)


def test_the_float32_normal_cdf_polynomial_is_the_fit_it_says_it_is():
    pytest.importorskip("scipy", reason="the fit uses scipy.special.erfcx")
    from minift.kernels.numba import normal_cdf_fit

    coefficients, error = normal_cdf_fit.fit_coefficients()
    np.testing.assert_allclose(np.array(coefficients), np.array(fused.NORMAL_CDF_FIT), rtol=1e-5, atol=1e-7)
    assert error < 5e-8


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias_shape", [(1, 3, 1, 1, 6), (2, 1, 1, 1, 6), (2, 3, 1, 4, 1), (4, 6), (1,)])
def test_softmax_bias_of_five_axes_broadcast_every_way(bias_shape, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 4, 6)).astype(dtype)
    bias = rng.standard_normal(bias_shape).astype(dtype)
    assert_close(fused.softmax_forward(x, bias), reference.softmax_forward(x, bias), dtype)


def test_layer_norm_gradients_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(0)
    x, g, w = rng.standard_normal((64, 48)), rng.standard_normal((64, 48)), rng.standard_normal(48)
    _, mean, rstd = fused.layer_norm_forward(x, w, None, 1e-5)
    results = []
    try:
        for count in (1, 2):
            threads.set_num_threads(count)
            results.append(fused.layer_norm_backward(g, x, mean, rstd, w))
    finally:
        threads.set_num_threads(None)
    for first, second in zip(*results):
        assert np.array_equal(first, second)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_inputs(dtype):
    x = np.zeros((0, 5), dtype)
    assert fused.softmax_forward(x).shape == (0, 5)
    y, mean, rstd = fused.layer_norm_forward(x, None, None, 1e-5)
    assert (y.shape, mean.shape, rstd.shape) == ((0, 5), (0,), (0,))
    grad_x, grad_w, grad_b = fused.layer_norm_backward(x, x, mean, rstd, np.ones(5, dtype))
    assert grad_x.shape == (0, 5) and np.array_equal(grad_w, np.zeros(5)) and np.array_equal(grad_b, np.zeros(5))
    assert fused.gelu_forward(x)[0].shape == (0, 5)


BAD_CALLS = [
    ("softmax_forward", lambda x: contract.softmax_forward(x, np.zeros((3,))), ValueError, "broadcast"),
    ("softmax_forward", lambda x: contract.softmax_forward(x, np.zeros((4,), np.float32)), TypeError, "share one dtype"),
    ("softmax_forward", lambda x: contract.softmax_forward(x.astype(np.int64)), TypeError, "float32 or float64"),
    ("softmax_backward", lambda x: contract.softmax_backward(x[:1], x), ValueError, "grad_z must have shape (2, 4)"),
    ("layer_norm_forward", lambda x: contract.layer_norm_forward(x, np.ones(3)), ValueError,
     "weight must have shape (4,)"),
    ("layer_norm_forward", lambda x: contract.layer_norm_forward(x, None, None, -1.0), ValueError, "eps"),
    ("layer_norm_forward", lambda x: contract.layer_norm_forward(x[0, 0]), ValueError, "at least one axis"),
    ("layer_norm_backward", lambda x: contract.layer_norm_backward(x, x, np.zeros(3), np.zeros(2)), ValueError,
     "mean must have shape (2,)"),
    ("gelu_backward", lambda x: contract.gelu_backward(x, x, x[:, :2]), ValueError, "cdf must have shape (2, 4)"),
    ("attention_forward", lambda x: contract.attention_forward(x, x[:, :3], x, None, 1.0), ValueError,
     "k must have shape (4,) (q's last axis (D) as its last axis), got (3,)"),
    ("attention_forward", lambda x: contract.attention_forward(x, x, x[:1], None, 1.0), ValueError,
     "v must have shape (2,) (k's key axis (S) as its second-to-last axis), got (1,)"),
    ("attention_forward", lambda x: contract.attention_forward(x[None], x[None], x[None, None], None, 1.0), ValueError,
     "one number of axes"),
    ("attention_forward", lambda x: contract.attention_forward(x[None], np.stack([x, x]), np.stack([x, x]), None, 1.0),
     ValueError, "one batch shape"),
    ("attention_forward", lambda x: contract.attention_forward(x, x, x, np.zeros(3), 1.0), ValueError,
     "bias of shape (3,) must broadcast to the scores' shape (..., L, S) (2, 2)"),
    ("attention_forward", lambda x: contract.attention_forward(x, x, x, None, "1"), ValueError, "scale must be a real"),
    ("attention_forward", lambda x: contract.attention_forward(x, x.astype(np.float32), x, None, 1.0), TypeError,
     "share one dtype"),
    ("attention_forward", lambda x: contract.attention_forward(x, x[:0], x[:0], None, 1.0), ValueError,
     "attention needs at least one key (S >= 1), got k of shape (0, 4)"),
]


@pytest.mark.parametrize("kernel, call, error, fragment", BAD_CALLS)
def test_bad_calls_fail_alike_on_both_backends_and_change_nothing(kernel, call, error, fragment):
    assert_bad_call_fails_alike(kernel, call, np.arange(8.0).reshape(2, 4), error, fragment)


@pytest.mark.parametrize("name", ["numpy", "numba"])
def test_the_contract_dispatches_the_row_kernels(name):
    assert_contract_dispatches(contract.ROW_KERNELS, name, reference, fused)


# --------------------------------------------------------------------------- attention_forward

attention = pytest.importorskip("minift.kernels.numba.attention")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("thread_count", [1, 2])
@settings(deadline=None, max_examples=30)
@given(data=st.data(), batch=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=5),
       sizes=st.tuples(*[st.integers(1, 6)] * 4), heads_view=st.booleans())
def test_attention_forward_matches_the_reference(data, batch, sizes, heads_view, dtype, thread_count):
    """Any batch shape (as samples and heads: whole samples or single heads per task), masks
    broadcast every way and masking whole rows (NaN in both), q, k, v as strided views."""
    length, keys, width, value_width = sizes
    if heads_view and len(batch) == 2:  # BERT's heads: (N, L, A * D) viewed as (N, A, L, D)
        q, k, v = (data.draw(values(dtype, (batch[0], rows, batch[1], columns))).transpose(0, 2, 1, 3)
                   for rows, columns in ((length, width), (keys, width), (keys, value_width)))
    else:
        q, k, v = (data.draw(values(dtype, (*batch, rows, columns)))
                   for rows, columns in ((length, width), (keys, width), (keys, value_width)))
    scores = (*batch, length, keys)
    mask_shape = tuple(side if data.draw(st.booleans()) else 1 for side in scores)[data.draw(st.integers(0, len(scores))):]
    bias = np.where(data.draw(hnp.arrays(np.bool_, mask_shape)), -np.inf, 0).astype(dtype) if data.draw(st.booleans()) else None
    scale = data.draw(st.floats(0.1, 2.0))
    expected = reference.attention_forward(q, k, v, bias, scale)
    try:
        threads.set_num_threads(thread_count)
        got = attention.attention_forward(q, k, v, bias, scale)
    finally:
        threads.set_num_threads(None)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    finite = ~np.isnan(expected)
    assert_close(np.where(finite, got, 0), np.where(finite, expected, 0), dtype)


@pytest.mark.parametrize("q_shape, k_shape, v_shape", [((0, 3, 4), (0, 5, 4), (0, 5, 2)), ((2, 0, 4), (2, 5, 4), (2, 5, 2)),
                                                       ((2, 3, 0), (2, 5, 0), (2, 5, 2)), ((2, 3, 4), (2, 5, 4), (2, 5, 0))])
def test_attention_forward_of_empty_sizes(q_shape, k_shape, v_shape):
    q, k, v = (np.ones(shape) for shape in (q_shape, k_shape, v_shape))
    expected = reference.attention_forward(q, k, v, None, 0.5)  # D = 0: every score 0, the mean of v's rows
    np.testing.assert_array_equal(attention.attention_forward(q, k, v, None, 0.5), expected)
    assert expected.shape == (*q_shape[:-1], v_shape[-1])


@pytest.mark.parametrize("name", ["numpy", "numba"])
def test_the_contract_dispatches_attention_forward(name):
    assert_contract_dispatches(["attention_forward"], name, reference, attention)


# --------------------------------------------------------------------------- the ops that call them

@pytest.mark.parametrize("name", ["numpy", "numba"])
@settings(deadline=None, max_examples=15)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=5))
def test_softmax_with_an_additive_mask_is_softmax_of_the_sum_and_has_its_gradient(name, data, shape):
    import minift
    from minift import functional as F

    x = data.draw(values(np.float64, shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    moved = np.moveaxis(x, axis, -1)  # the mask broadcasts against x with `axis` last
    mask = np.where(data.draw(hnp.arrays(np.bool_, moved.shape[-1:])), -np.inf, 0.0)
    mask[0] = 0.0  # every row keeps one allowed entry
    with backend.use_backend(name):
        got = F.softmax(minift.tensor(x), axis, additive_mask=mask).numpy()
        np.testing.assert_allclose(np.moveaxis(got, axis, -1), reference.softmax_forward(moved, mask), rtol=1e-12)
        x_tensor = minift.tensor(x, requires_grad=True)
        assert minift.gradcheck(lambda t: F.softmax(t, axis, additive_mask=mask) * minift.tensor(x), [x_tensor])


def test_exp_approx_float32_matches_exp_to_float32_precision():
    x = np.concatenate([np.linspace(-87, 88, 100_003), np.linspace(-1, 1, 1001)]).astype(np.float32)
    got = np.array([fused.exp_approx_float32(v) for v in x])
    np.testing.assert_allclose(got, np.exp(x.astype(np.float64)), rtol=2e-7)
    assert fused.exp_approx_float32(np.float32(-np.inf)) == 0 and fused.exp_approx_float32(np.float32(-100)) == 0
    assert np.isnan(fused.exp_approx_float32(np.float32(np.nan)))
