"""The NumPy reference kernels against the definitions of the kernel contract.

Each kernel is checked, through its contract entry under the ``numpy`` backend, against
the oracle that spells out its formula (``strategies.conv2d_oracle``, and plain loops for
pooling), and each backward kernel against central differences of its forward and
through the adjoint identity

    <conv(x, w), g> == <x, conv_backward_input(g, w)> == <w, conv_backward_weight(g, x)>

(a convolution is linear in x and in w, so its backward passes are its adjoints).
Shapes, strides, paddings, dilations and memory layouts are drawn by hypothesis
(``strategies``: the cases every kernel test shares); array values come from a drawn
seed. Every input is read-only, so a kernel that wrote to its input would fail. The
contract's argument checks, which run before any backend, are tested at the end.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minift.backend as backend
import minift.reference as ref
from minift import contract
from strategies import LAYOUTS, SEEDS, ConvCase, conv2d_oracle, conv_cases, pool_cases, read_only, transposed

SETTINGS = settings(max_examples=40, deadline=None)


@pytest.fixture(autouse=True)
def numpy_backend():
    """Every contract entry here runs the reference kernels."""
    with backend.use_backend("numpy"):
        yield


def assert_fresh_output(out, shape, dtype):
    """A new C-contiguous array of the expected shape and dtype (writeable: not a view of an input)."""
    assert out.shape == tuple(shape)
    assert out.flags.writeable
    assert out.dtype == dtype
    assert out.flags.c_contiguous


def numerical_gradient(scalar_fn, array, eps=1e-6):
    """Central differences: d f / d a[k] ~ (f(a + eps e_k) - f(a - eps e_k)) / (2 eps), every k."""
    work = np.array(array, dtype=np.float64)
    grad = np.zeros_like(work)
    for k in np.ndindex(work.shape):
        saved = work[k]
        work[k] = saved + eps
        up = scalar_fn(work)
        work[k] = saved - eps
        down = scalar_fn(work)
        work[k] = saved
        grad[k] = (up - down) / (2 * eps)
    return grad


# --------------------------------------------------------------------------- conv


@SETTINGS
@given(conv_cases())
def test_conv2d_forward_matches_the_oracle(case):
    y = contract.conv2d_forward(case.x, case.weight, case.bias, *case.geometry)
    assert_fresh_output(y, case.output_shape, np.float64)
    np.testing.assert_allclose(y, conv2d_oracle(case.x, case.weight, case.bias, *case.geometry), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(conv_cases())
def test_conv2d_backward_passes_are_adjoints_of_forward(case):
    g = case.grad_y
    y = contract.conv2d_forward(case.x, case.weight, None, *case.geometry)
    grad_x = contract.conv2d_backward_input(g, case.weight, case.x.shape, *case.geometry)
    grad_w = contract.conv2d_backward_weight(g, case.x, case.weight.shape, *case.geometry)
    assert_fresh_output(grad_x, case.x.shape, np.float64)
    assert_fresh_output(grad_w, case.weight.shape, np.float64)

    through_y = np.vdot(y, g)
    scale = np.abs(y).sum() * np.abs(g).max() + 1.0
    assert np.vdot(case.x, grad_x) == pytest.approx(through_y, abs=1e-12 * scale)
    assert np.vdot(case.weight, grad_w) == pytest.approx(through_y, abs=1e-12 * scale)


@settings(SETTINGS, max_examples=25)
@given(conv_cases())
def test_conv2d_backward_passes_match_central_differences(case):
    g = case.grad_y

    def loss_of_x(x):
        return np.vdot(contract.conv2d_forward(x, case.weight, None, *case.geometry), g)

    def loss_of_weight(weight):
        return np.vdot(contract.conv2d_forward(case.x, weight, None, *case.geometry), g)

    np.testing.assert_allclose(
        contract.conv2d_backward_input(g, case.weight, case.x.shape, *case.geometry),
        numerical_gradient(loss_of_x, case.x),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        contract.conv2d_backward_weight(g, case.x, case.weight.shape, *case.geometry),
        numerical_gradient(loss_of_weight, case.weight),
        atol=1e-6,
    )


# --------------------------------------------------------------------------- pooling


def window_positions(i, j, case):
    """The (row, col) input positions of window (i, j) in row-major window order, padding skipped."""
    height, width = case.x.shape[2:]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = case.kernel_size, case.stride, case.padding, case.dilation
    for p, q in np.ndindex(kh, kw):
        row, col = i * sh + p * dh - ph, j * sw + q * dw - pw
        if 0 <= row < height and 0 <= col < width:
            yield row, col


def loop_max_pool2d(case):
    """Maximum of each window and the flat index of its first occurrence (padding never wins)."""
    width = case.x.shape[3]
    y = np.zeros(case.output_shape)
    indices = np.zeros(case.output_shape, dtype=np.int64)
    for n, c, i, j in np.ndindex(y.shape):
        positions = list(window_positions(i, j, case))
        values = [case.x[n, c, row, col] for row, col in positions]
        best = max(values)
        row, col = positions[values.index(best)]
        y[n, c, i, j], indices[n, c, i, j] = best, row * width + col
    return y, indices


def window_divisor(i, j, case):
    """How many positions of window (i, j) count: those inside the padded input
    (count_include_pad), else those on the input; a ceil-mode window may run past both."""
    (h, w), (kh, kw), (sh, sw), (ph, pw) = case.x.shape[2:], case.kernel_size, case.stride, case.padding
    low, high = (-ph, -pw), (h + ph, w + pw)
    if not case.count_include_pad:
        low, high = (0, 0), (h, w)
    rows = sum(1 for p in range(kh) if low[0] <= i * sh + p - ph < high[0])
    cols = sum(1 for q in range(kw) if low[1] <= j * sw + q - pw < high[1])
    return rows * cols


def loop_avg_pool2d(case):
    """Sum of each window's real elements (padding counts as 0) divided by its divisor."""
    y = np.zeros(case.output_shape)
    for n, c, i, j in np.ndindex(y.shape):
        total = sum(case.x[n, c, row, col] for row, col in window_positions(i, j, case))
        y[n, c, i, j] = total / window_divisor(i, j, case)
    return y


@SETTINGS
@given(pool_cases())
def test_max_pool2d_forward_matches_the_loop_definition_first_maximum_wins(case):
    y, indices = contract.max_pool2d_forward(case.x, *case.max_args)
    assert_fresh_output(y, case.output_shape, np.float64)
    assert_fresh_output(indices, case.output_shape, np.int64)
    expected_y, expected_indices = loop_max_pool2d(case)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(indices, expected_indices)


@SETTINGS
@given(pool_cases(kinds=("distinct",)), SEEDS, st.sampled_from(LAYOUTS))
def test_max_pool2d_backward_matches_central_differences(case, seed, grad_layout):
    geometry = case.max_args
    g = read_only(np.random.default_rng(seed).standard_normal(case.output_shape), grad_layout)
    _, indices = contract.max_pool2d_forward(case.x, *geometry)
    grad_x = contract.max_pool2d_backward(g, indices, case.x.shape)
    assert_fresh_output(grad_x, case.x.shape, np.float64)

    def loss(x):
        return np.vdot(contract.max_pool2d_forward(x, *geometry)[0], g)

    # Values are 0.5 apart, so a step of 1e-3 never changes which element wins a window.
    np.testing.assert_allclose(grad_x, numerical_gradient(loss, case.x, eps=1e-3), atol=1e-9)


def test_max_pool2d_nan_is_the_maximum_and_its_index_points_at_a_nan():
    x = np.arange(2 * 16, dtype=np.float64).reshape(1, 2, 4, 4)
    x[0, 0, 1, 1] = x[0, 1, 2, 3] = np.nan
    y, indices = contract.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1))
    assert np.isnan(y[0, 0, 0, 0]) and np.isnan(y[0, 1, 1, 1])
    assert indices[0, 0, 0, 0] == 1 * 4 + 1 and indices[0, 1, 1, 1] == 2 * 4 + 3
    assert np.isnan(y).sum() == 2


@SETTINGS
@given(pool_cases(kinds=("distinct", "ties"), max_dilation=1))
def test_avg_pool2d_forward_matches_the_loop_definition(case):
    y = contract.avg_pool2d_forward(case.x, *case.avg_args)
    assert_fresh_output(y, case.output_shape, np.float64)
    np.testing.assert_allclose(y, loop_avg_pool2d(case), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(pool_cases(kinds=("distinct",), max_dilation=1), SEEDS, st.sampled_from(LAYOUTS))
def test_avg_pool2d_backward_is_the_adjoint_of_forward(case, seed, grad_layout):
    g = read_only(np.random.default_rng(seed).standard_normal(case.output_shape), grad_layout)
    grad_x = contract.avg_pool2d_backward(g, case.x.shape, *case.avg_args)
    assert_fresh_output(grad_x, case.x.shape, np.float64)
    y = contract.avg_pool2d_forward(case.x, *case.avg_args)
    assert np.vdot(case.x, grad_x) == pytest.approx(np.vdot(y, g), rel=1e-12, abs=1e-12)


# --------------------------------------------------------------------------- matmul


@SETTINGS
@given(
    hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
    st.integers(1, 5),
    st.integers(1, 5),
    st.integers(1, 5),
    st.sampled_from(LAYOUTS),
    st.sampled_from(LAYOUTS),
    SEEDS,
)
def test_matmul_matches_einsum_with_broadcast_batch_dimensions(batch, m, k, n, layout_a, layout_b, seed):
    rng = np.random.default_rng(seed)
    a = read_only(rng.standard_normal((*batch.input_shapes[0], m, k)), layout_a)
    b = read_only(rng.standard_normal((*batch.input_shapes[1], k, n)), layout_b)
    c = contract.matmul(a, b)
    assert_fresh_output(c, (*batch.result_shape, m, n), np.float64)
    np.testing.assert_allclose(c, np.einsum("...mk,...kn->...mn", a, b), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- float32, N = 0


def run_every_kernel(case: ConvCase, grad_y):
    """Call all eight contract entries on one case; name -> output array."""
    pool = ((2, 2), (1, 1), (1, 1))  # kernel_size, stride, padding
    pooled, indices = contract.max_pool2d_forward(case.x, *pool, (1, 1))
    return {
        "matmul": contract.matmul(case.x, case.x.swapaxes(-1, -2)),
        "conv2d_forward": contract.conv2d_forward(case.x, case.weight, case.bias, *case.geometry),
        "conv2d_backward_input": contract.conv2d_backward_input(grad_y, case.weight, case.x.shape, *case.geometry),
        "conv2d_backward_weight": contract.conv2d_backward_weight(grad_y, case.x, case.weight.shape, *case.geometry),
        "max_pool2d_forward": pooled,
        "max_pool2d_backward": contract.max_pool2d_backward(pooled, indices, case.x.shape),
        "avg_pool2d_forward": contract.avg_pool2d_forward(case.x, *pool),
        "avg_pool2d_backward": contract.avg_pool2d_backward(
            contract.avg_pool2d_forward(case.x, *pool), case.x.shape, *pool
        ),
    }


def as_float32(case: ConvCase) -> ConvCase:
    def cast(a):
        return None if a is None else read_only(a.astype(np.float32), transposed)

    return ConvCase(cast(case.x), cast(case.weight), cast(case.bias), case.stride, case.padding, case.dilation,
                    cast(case.grad_y), case.groups)


@settings(SETTINGS, max_examples=20)
@given(conv_cases())
def test_float32_in_float32_out_and_close_to_float64(case):
    in64 = run_every_kernel(case, case.grad_y)
    case32 = as_float32(case)
    in32 = run_every_kernel(case32, case32.grad_y)
    # the others: tests/test_transformer_kernels.py, test_batch_norm_kernels.py and test_dropout_kernels.py
    others = {*contract.ROW_KERNELS, *contract.BATCH_NORM_KERNELS, "dropout", "attention_forward"}
    assert set(in32) == set(contract.CONTRACT) - others
    for name, out in in32.items():
        assert_fresh_output(out, in64[name].shape, np.float32)
        np.testing.assert_allclose(out, in64[name], rtol=1e-4, atol=1e-4, err_msg=name)


@SETTINGS
@given(conv_cases(batch=st.just(0)))
def test_an_empty_batch_gives_empty_results_and_a_zero_weight_gradient(case):
    outputs = run_every_kernel(case, case.grad_y)
    for name, out in outputs.items():
        if name == "conv2d_backward_weight":
            assert_fresh_output(out, case.weight.shape, np.float64)
            assert not out.any()
        else:
            assert out.shape[0] == 0


# --------------------------------------------------------------------------- the backend table


def test_the_numpy_backend_dispatches_to_these_kernels():
    for name in contract.CONTRACT:
        assert backend.implementation(name, np.zeros(1)) is getattr(ref, name)


# --------------------------------------------------------------------------- bad input

class OtherDeviceArray:
    """Stands for an array of another library (another device): a float64 2x2 that is not NumPy's."""

    dtype, shape, ndim = np.dtype(np.float64), (2, 2), 2


X = np.zeros((2, 3, 5, 5))
W = np.zeros((4, 3, 3, 3))
ONES = ((1, 1), (0, 0), (1, 1))  # stride, padding, dilation

BAD_CALLS = {
    "channels differ": (lambda: contract.conv2d_forward(X, np.zeros((4, 2, 3, 3)), None, *ONES), ValueError, "3 channels"),
    "mixed dtypes": (lambda: contract.conv2d_forward(X, W.astype(np.float32), None, *ONES), TypeError, "one dtype"),
    "integer input": (lambda: contract.conv2d_forward(X.astype(int), W, None, *ONES), TypeError, "float32 or float64"),
    "float16 input": (lambda: contract.matmul(np.ones((2, 2), np.float16), np.ones((2, 2), np.float16)), TypeError, "float16"),
    "list input": (lambda: contract.matmul([[1.0]], np.ones((1, 1))), TypeError, "must be an array"),
    "3-D input": (lambda: contract.conv2d_forward(X[0], W, None, *ONES), ValueError, "(N, C, H, W)"),
    "bias shape": (lambda: contract.conv2d_forward(X, W, np.zeros(3), *ONES), ValueError, "bias"),
    "stride zero": (lambda: contract.conv2d_forward(X, W, None, (0, 1), (0, 0), (1, 1)), ValueError, "stride"),
    "stride an int": (lambda: contract.conv2d_forward(X, W, None, 1, (0, 0), (1, 1)), TypeError, "pair of ints"),
    "negative padding": (lambda: contract.conv2d_forward(X, W, None, (1, 1), (0, -1), (1, 1)), ValueError, "padding"),
    "input too small": (lambda: contract.conv2d_forward(X, np.zeros((4, 3, 6, 6)), None, *ONES), ValueError, "smaller"),
    "grad_y shape": (lambda: contract.conv2d_backward_input(np.zeros((2, 4, 4, 4)), W, X.shape, *ONES), ValueError, "grad_y"),
    "input_shape": (lambda: contract.conv2d_backward_input(np.zeros((2, 4, 3, 3)), W, (2, 3, 5), *ONES), ValueError, "input_shape"),
    "weight_shape": (lambda: contract.conv2d_backward_weight(np.zeros((2, 4, 3, 3)), X, (4, 3, -3, 3), *ONES), ValueError, "weight_shape"),
    "pool padding too big": (lambda: contract.max_pool2d_forward(X, (2, 2), (2, 2), (2, 0), (1, 1)), ValueError, "half the kernel"),
    "window all padding": (
        lambda: contract.max_pool2d_forward(np.zeros((1, 1, 1, 1)), (2, 1), (1, 1), (1, 0), (2, 1)),
        ValueError,
        "covers only padding",
    ),
    "avg pool padding too big": (lambda: contract.avg_pool2d_forward(X, (3, 3), (1, 1), (2, 2)), ValueError, "half the kernel"),
    "indices out of the plane": (
        lambda: contract.max_pool2d_backward(np.ones((2, 3, 1, 1)), np.full((2, 3, 1, 1), 25), X.shape),
        ValueError,
        "[0, 25)",
    ),
    "float indices": (lambda: contract.max_pool2d_backward(np.ones((2, 3, 1, 1)), np.ones((2, 3, 1, 1)), X.shape), TypeError, "integers"),
    "matmul inner sizes": (lambda: contract.matmul(np.ones((2, 3)), np.ones((4, 2))), ValueError, "agree on K"),
    "matmul batch": (lambda: contract.matmul(np.ones((2, 2, 3)), np.ones((3, 3, 2))), ValueError, "do not broadcast"),
    "matmul 1-D": (lambda: contract.matmul(np.ones(3), np.ones((3, 2))), ValueError, "at least 2-D"),
    "two devices": (lambda: contract.matmul(np.ones((2, 2)), OtherDeviceArray()), TypeError, "one device"),
}


@pytest.mark.parametrize("call, error, fragment", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_bad_input_raises_a_clear_error_before_any_backend_runs(call, error, fragment, monkeypatch):
    def no_dispatch(name, array):
        raise AssertionError(f"{name} was dispatched to a backend before its arguments were checked")

    monkeypatch.setattr(backend, "implementation", no_dispatch)
    with pytest.raises(error) as raised:
        call()
    assert fragment in str(raised.value)
