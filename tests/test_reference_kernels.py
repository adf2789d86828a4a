"""The NumPy reference kernels against the definitions of the kernel contract.

Each kernel is checked against a plain loop that spells out its formula one output element
at a time (small sizes, float64), and each backward kernel against central differences of
its forward and through the adjoint identity

    <conv(x, w), g> == <x, conv_backward_input(g, w)> == <w, conv_backward_weight(g, x)>

(a convolution is linear in x and in w, so its backward passes are its adjoints).
Shapes, strides, paddings, dilations and memory layouts are drawn by hypothesis; array
values come from a drawn seed. Every input is made read-only, so a kernel that wrote to
its input would fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minift.backend as backend
import minift.reference as ref

SETTINGS = settings(max_examples=40, deadline=None)

LAYOUTS = ("contiguous", "transposed", "sliced", "reversed")


def with_layout(array, layout):
    """The values of ``array``, stored with another memory layout, read-only.

    transposed: Fortran order (all axes reversed in memory); sliced: every other element
    of a larger buffer whose gaps hold NaN (a kernel that reads a gap fails); reversed:
    negative strides on every axis.
    """
    if layout == "transposed":
        out = np.ascontiguousarray(array.T).T
    elif layout == "sliced":
        every_other = tuple(slice(None, None, 2) for _ in range(array.ndim))
        buffer = np.full(tuple(2 * s for s in array.shape), np.nan, dtype=array.dtype)
        buffer[every_other] = array
        out = buffer[every_other]
    elif layout == "reversed":
        flip = tuple(slice(None, None, -1) for _ in range(array.ndim))
        out = np.ascontiguousarray(array[flip])[flip]
    else:
        out = array.copy()
    out.flags.writeable = False
    return out


def assert_fresh_output(out, shape, dtype):
    """A new C-contiguous array of the expected shape and dtype (writeable: not a view of an input)."""
    assert out.shape == tuple(shape)
    assert out.flags.writeable
    assert out.dtype == dtype
    assert out.flags.c_contiguous


def output_length(size, kernel, stride, padding, dilation):
    """Number of window starts 0, s, 2s, ... whose span fits in the padded axis."""
    return len(range(0, size + 2 * padding - dilation * (kernel - 1), stride))


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


@dataclass
class ConvCase:
    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple
    padding: tuple
    dilation: tuple

    @property
    def geometry(self):
        return self.stride, self.padding, self.dilation

    @property
    def output_shape(self):
        n, _, h, w = self.x.shape
        o, _, kh, kw = self.weight.shape
        return (
            n,
            o,
            output_length(h, kh, self.stride[0], self.padding[0], self.dilation[0]),
            output_length(w, kw, self.stride[1], self.padding[1], self.dilation[1]),
        )


def axis_geometry(draw, max_dilation=2, pool=False):
    """(kernel, stride, padding, dilation, size) along one axis, with at least one window.

    Pooling follows PyTorch's rule: padding at most half the kernel.
    """
    kernel = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    padding = draw(st.integers(0, kernel // 2 if pool else 2))
    dilation = draw(st.integers(1, max_dilation))
    span = dilation * (kernel - 1) + 1
    size = draw(st.integers(max(1, span - 2 * padding), span + 5))  # odd and even sizes
    return kernel, stride, padding, dilation, size


@st.composite
def conv_cases(draw, batch=st.integers(1, 3)):
    kh, sh, ph, dh, h = axis_geometry(draw)
    kw, sw, pw, dw, w = axis_geometry(draw)
    n = draw(batch)
    c = draw(st.integers(1, 3))
    o = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = with_layout(rng.standard_normal((n, c, h, w)), draw(st.sampled_from(LAYOUTS)))
    weight = with_layout(rng.standard_normal((o, c, kh, kw)), draw(st.sampled_from(LAYOUTS)))
    bias = with_layout(rng.standard_normal(o), "sliced") if draw(st.booleans()) else None
    return ConvCase(x, weight, bias, (sh, sw), (ph, pw), (dh, dw))


def loop_conv2d(x, weight, bias, stride, padding, dilation):
    """The contract's formula, one output element at a time; positions outside x read as zero."""
    n_images, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ho = output_length(height, kh, sh, ph, dh)
    wo = output_length(width, kw, sw, pw, dw)
    y = np.zeros((n_images, out_channels, ho, wo))
    for n, o, i, j in np.ndindex(y.shape):
        total = 0.0 if bias is None else bias[o]
        for c, p, q in np.ndindex(channels, kh, kw):
            row, col = i * sh + p * dh - ph, j * sw + q * dw - pw
            if 0 <= row < height and 0 <= col < width:
                total += weight[o, c, p, q] * x[n, c, row, col]
        y[n, o, i, j] = total
    return y


@SETTINGS
@given(conv_cases())
def test_conv2d_forward_matches_the_loop_definition(case):
    y = ref.conv2d_forward(case.x, case.weight, case.bias, *case.geometry)
    assert_fresh_output(y, case.output_shape, np.float64)
    np.testing.assert_allclose(y, loop_conv2d(case.x, case.weight, case.bias, *case.geometry), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(conv_cases(), st.integers(0, 2**32 - 1), st.sampled_from(LAYOUTS))
def test_conv2d_backward_passes_are_adjoints_of_forward(case, seed, grad_layout):
    g = with_layout(np.random.default_rng(seed).standard_normal(case.output_shape), grad_layout)
    y = ref.conv2d_forward(case.x, case.weight, None, *case.geometry)
    grad_x = ref.conv2d_backward_input(g, case.weight, case.x.shape, *case.geometry)
    grad_w = ref.conv2d_backward_weight(g, case.x, case.weight.shape, *case.geometry)
    assert_fresh_output(grad_x, case.x.shape, np.float64)
    assert_fresh_output(grad_w, case.weight.shape, np.float64)

    through_y = np.vdot(y, g)
    scale = np.abs(y).sum() * np.abs(g).max() + 1.0
    assert np.vdot(case.x, grad_x) == pytest.approx(through_y, abs=1e-12 * scale)
    assert np.vdot(case.weight, grad_w) == pytest.approx(through_y, abs=1e-12 * scale)


@settings(SETTINGS, max_examples=25)
@given(conv_cases(), st.integers(0, 2**32 - 1))
def test_conv2d_backward_passes_match_central_differences(case, seed):
    g = np.random.default_rng(seed).standard_normal(case.output_shape)
    stride, padding, dilation = case.geometry

    def loss_of_x(x):
        return np.vdot(ref.conv2d_forward(x, case.weight, None, stride, padding, dilation), g)

    def loss_of_weight(weight):
        return np.vdot(ref.conv2d_forward(case.x, weight, None, stride, padding, dilation), g)

    np.testing.assert_allclose(
        ref.conv2d_backward_input(g, case.weight, case.x.shape, *case.geometry),
        numerical_gradient(loss_of_x, case.x),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        ref.conv2d_backward_weight(g, case.x, case.weight.shape, *case.geometry),
        numerical_gradient(loss_of_weight, case.weight),
        atol=1e-6,
    )


# --------------------------------------------------------------------------- pooling


@dataclass
class PoolCase:
    x: np.ndarray
    kernel_size: tuple
    stride: tuple
    padding: tuple
    dilation: tuple

    @property
    def output_shape(self):
        n, c, h, w = self.x.shape
        return (n, c) + tuple(
            output_length(size, k, s, p, d)
            for size, k, s, p, d in zip((h, w), self.kernel_size, self.stride, self.padding, self.dilation)
        )


VALUE_KINDS = ("distinct", "ties", "ties with -inf")


def pool_values(rng, shape, kind):
    """distinct: a permutation with gaps of 0.5 (safe for central differences);
    ties: only the values 0, 1, 2; ties with -inf: only -inf and 0."""
    if kind == "distinct":
        return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.5
    if kind == "ties":
        return rng.integers(0, 3, shape).astype(np.float64)
    return np.where(rng.random(shape) < 0.7, -np.inf, 0.0)


@st.composite
def pool_cases(draw, values=VALUE_KINDS, max_dilation=2):
    kernel, stride, padding, dilation, size = zip(
        *(axis_geometry(draw, max_dilation=max_dilation, pool=True) for _ in range(2))
    )
    # A dilated window can lie wholly on padding; max pooling refuses that (tested below).
    for k, s, pad, d, length in zip(kernel, stride, padding, dilation, size):
        window_starts = range(-pad, length + pad - d * (k - 1), s)
        assume(all(any(0 <= start + q * d < length for q in range(k)) for start in window_starts))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = pool_values(rng, (n, c, *size), draw(st.sampled_from(values)))
    return PoolCase(with_layout(x, draw(st.sampled_from(LAYOUTS))), kernel, stride, padding, dilation)


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


def loop_avg_pool2d(case):
    """Sum of each window's real elements divided by the full window size (padding counts as 0)."""
    kh, kw = case.kernel_size
    y = np.zeros(case.output_shape)
    for n, c, i, j in np.ndindex(y.shape):
        y[n, c, i, j] = sum(case.x[n, c, row, col] for row, col in window_positions(i, j, case)) / (kh * kw)
    return y


@SETTINGS
@given(pool_cases())
def test_max_pool2d_forward_matches_the_loop_definition_first_maximum_wins(case):
    y, indices = ref.max_pool2d_forward(case.x, case.kernel_size, case.stride, case.padding, case.dilation)
    assert_fresh_output(y, case.output_shape, np.float64)
    assert_fresh_output(indices, case.output_shape, np.int64)
    expected_y, expected_indices = loop_max_pool2d(case)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(indices, expected_indices)


@SETTINGS
@given(pool_cases(values=("distinct",)), st.integers(0, 2**32 - 1))
def test_max_pool2d_backward_matches_central_differences(case, seed):
    geometry = (case.kernel_size, case.stride, case.padding, case.dilation)
    g = with_layout(np.random.default_rng(seed).standard_normal(case.output_shape), "sliced")
    _, indices = ref.max_pool2d_forward(case.x, *geometry)
    grad_x = ref.max_pool2d_backward(g, indices, case.x.shape)
    assert_fresh_output(grad_x, case.x.shape, np.float64)

    def loss(x):
        return np.vdot(ref.max_pool2d_forward(x, *geometry)[0], g)

    # Values are 0.5 apart, so a step of 1e-3 never changes which element wins a window.
    np.testing.assert_allclose(grad_x, numerical_gradient(loss, case.x, eps=1e-3), atol=1e-9)


def test_max_pool2d_nan_is_the_maximum_and_its_index_points_at_a_nan():
    x = np.arange(2 * 16, dtype=np.float64).reshape(1, 2, 4, 4)
    x[0, 0, 1, 1] = x[0, 1, 2, 3] = np.nan
    y, indices = ref.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1))
    assert np.isnan(y[0, 0, 0, 0]) and np.isnan(y[0, 1, 1, 1])
    assert indices[0, 0, 0, 0] == 1 * 4 + 1 and indices[0, 1, 1, 1] == 2 * 4 + 3
    assert np.isnan(y).sum() == 2


@SETTINGS
@given(pool_cases(values=("distinct", "ties"), max_dilation=1))
def test_avg_pool2d_forward_matches_the_loop_definition(case):
    y = ref.avg_pool2d_forward(case.x, case.kernel_size, case.stride, case.padding)
    assert_fresh_output(y, case.output_shape, np.float64)
    np.testing.assert_allclose(y, loop_avg_pool2d(case), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(pool_cases(values=("distinct",), max_dilation=1), st.integers(0, 2**32 - 1), st.sampled_from(LAYOUTS))
def test_avg_pool2d_backward_is_the_adjoint_of_forward(case, seed, grad_layout):
    geometry = (case.kernel_size, case.stride, case.padding)
    g = with_layout(np.random.default_rng(seed).standard_normal(case.output_shape), grad_layout)
    grad_x = ref.avg_pool2d_backward(g, case.x.shape, *geometry)
    assert_fresh_output(grad_x, case.x.shape, np.float64)
    y = ref.avg_pool2d_forward(case.x, *geometry)
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
    st.integers(0, 2**32 - 1),
)
def test_matmul_matches_einsum_with_broadcast_batch_dimensions(batch, m, k, n, layout_a, layout_b, seed):
    rng = np.random.default_rng(seed)
    a = with_layout(rng.standard_normal((*batch.input_shapes[0], m, k)), layout_a)
    b = with_layout(rng.standard_normal((*batch.input_shapes[1], k, n)), layout_b)
    c = ref.matmul(a, b)
    assert_fresh_output(c, (*batch.result_shape, m, n), np.float64)
    np.testing.assert_allclose(c, np.einsum("...mk,...kn->...mn", a, b), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- float32, N = 0


def run_every_kernel(case: ConvCase, grad_y):
    """Call all eight contract kernels on one case; name -> output array."""
    pool = ((2, 2), (1, 1), (1, 1))  # kernel_size, stride, padding
    pooled, indices = ref.max_pool2d_forward(case.x, *pool, (1, 1))
    return {
        "matmul": ref.matmul(case.x, case.x.swapaxes(-1, -2)),
        "conv2d_forward": ref.conv2d_forward(case.x, case.weight, case.bias, *case.geometry),
        "conv2d_backward_input": ref.conv2d_backward_input(grad_y, case.weight, case.x.shape, *case.geometry),
        "conv2d_backward_weight": ref.conv2d_backward_weight(grad_y, case.x, case.weight.shape, *case.geometry),
        "max_pool2d_forward": pooled,
        "max_pool2d_backward": ref.max_pool2d_backward(pooled, indices, case.x.shape),
        "avg_pool2d_forward": ref.avg_pool2d_forward(case.x, *pool),
        "avg_pool2d_backward": ref.avg_pool2d_backward(
            ref.avg_pool2d_forward(case.x, *pool), case.x.shape, *pool
        ),
    }


def as_float32(case: ConvCase) -> ConvCase:
    def cast(a):
        return None if a is None else with_layout(a.astype(np.float32), "transposed")

    return ConvCase(cast(case.x), cast(case.weight), cast(case.bias), case.stride, case.padding, case.dilation)


@settings(SETTINGS, max_examples=20)
@given(conv_cases(), st.integers(0, 2**32 - 1))
def test_float32_in_float32_out_and_close_to_float64(case, seed):
    grad_y = np.random.default_rng(seed).standard_normal(case.output_shape)
    in64 = run_every_kernel(case, grad_y)
    in32 = run_every_kernel(as_float32(case), grad_y.astype(np.float32))
    assert set(in32) == set(backend.CONTRACT)
    for name, out in in32.items():
        assert_fresh_output(out, in64[name].shape, np.float32)
        np.testing.assert_allclose(out, in64[name], rtol=1e-4, atol=1e-4, err_msg=name)


@SETTINGS
@given(conv_cases(batch=st.just(0)))
def test_an_empty_batch_gives_empty_results_and_a_zero_weight_gradient(case):
    grad_y = np.zeros(case.output_shape)
    outputs = run_every_kernel(case, grad_y)
    for name, out in outputs.items():
        if name == "conv2d_backward_weight":
            assert_fresh_output(out, case.weight.shape, np.float64)
            assert not out.any()
        else:
            assert out.shape[0] == 0


# --------------------------------------------------------------------------- the backend table


def test_the_numpy_backend_dispatches_to_these_kernels():
    with backend.use_backend("numpy"):
        for name in backend.CONTRACT:
            assert backend.implementation(name, np.zeros(1)) is getattr(ref, name)


# --------------------------------------------------------------------------- bad input

X = np.zeros((2, 3, 5, 5))
W = np.zeros((4, 3, 3, 3))
ONES = ((1, 1), (0, 0), (1, 1))  # stride, padding, dilation

BAD_CALLS = {
    "channels differ": (lambda: ref.conv2d_forward(X, np.zeros((4, 2, 3, 3)), None, *ONES), ValueError, "3 channels"),
    "mixed dtypes": (lambda: ref.conv2d_forward(X, W.astype(np.float32), None, *ONES), TypeError, "one dtype"),
    "integer input": (lambda: ref.conv2d_forward(X.astype(int), W, None, *ONES), TypeError, "float32 or float64"),
    "float16 input": (lambda: ref.matmul(np.ones((2, 2), np.float16), np.ones((2, 2), np.float16)), TypeError, "float16"),
    "list input": (lambda: ref.matmul([[1.0]], np.ones((1, 1))), TypeError, "must be an array"),
    "3-D input": (lambda: ref.conv2d_forward(X[0], W, None, *ONES), ValueError, "(N, C, H, W)"),
    "bias shape": (lambda: ref.conv2d_forward(X, W, np.zeros(3), *ONES), ValueError, "bias"),
    "stride zero": (lambda: ref.conv2d_forward(X, W, None, (0, 1), (0, 0), (1, 1)), ValueError, "stride"),
    "stride an int": (lambda: ref.conv2d_forward(X, W, None, 1, (0, 0), (1, 1)), TypeError, "pair of ints"),
    "negative padding": (lambda: ref.conv2d_forward(X, W, None, (1, 1), (0, -1), (1, 1)), ValueError, "padding"),
    "input too small": (lambda: ref.conv2d_forward(X, np.zeros((4, 3, 6, 6)), None, *ONES), ValueError, "smaller"),
    "grad_y shape": (lambda: ref.conv2d_backward_input(np.zeros((2, 4, 4, 4)), W, X.shape, *ONES), ValueError, "grad_y"),
    "input_shape": (lambda: ref.conv2d_backward_input(np.zeros((2, 4, 3, 3)), W, (2, 3, 5), *ONES), ValueError, "input_shape"),
    "weight_shape": (lambda: ref.conv2d_backward_weight(np.zeros((2, 4, 3, 3)), X, (4, 3, -3, 3), *ONES), ValueError, "weight_shape"),
    "pool padding too big": (lambda: ref.max_pool2d_forward(X, (2, 2), (2, 2), (2, 0), (1, 1)), ValueError, "half the kernel"),
    "window all padding": (
        lambda: ref.max_pool2d_forward(np.zeros((1, 1, 1, 1)), (2, 1), (1, 1), (1, 0), (2, 1)),
        ValueError,
        "covers only padding",
    ),
    "avg pool padding too big": (lambda: ref.avg_pool2d_forward(X, (3, 3), (1, 1), (2, 2)), ValueError, "half the kernel"),
    "indices out of the plane": (
        lambda: ref.max_pool2d_backward(np.ones((2, 3, 1, 1)), np.full((2, 3, 1, 1), 25), X.shape),
        ValueError,
        "[0, 25)",
    ),
    "float indices": (lambda: ref.max_pool2d_backward(np.ones((2, 3, 1, 1)), np.ones((2, 3, 1, 1)), X.shape), TypeError, "integers"),
    "matmul inner sizes": (lambda: ref.matmul(np.ones((2, 3)), np.ones((4, 2))), ValueError, "agree on K"),
    "matmul batch": (lambda: ref.matmul(np.ones((2, 2, 3)), np.ones((3, 3, 2))), ValueError, "do not broadcast"),
    "matmul 1-D": (lambda: ref.matmul(np.ones(3), np.ones((3, 2))), ValueError, "at least 2-D"),
}


@pytest.mark.parametrize("call, error, fragment", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_bad_input_raises_a_clear_error(call, error, fragment):
    with pytest.raises(error) as raised:
        call()
    assert fragment in str(raised.value)
