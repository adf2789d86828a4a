"""The Numba backend's Winograd F(2x2, 3x3) convolution (``kernels/numba/winograd.py``) against
the NumPy reference: forward, backward input and backward weight, on hypothesis-drawn shapes
(odd and even sizes, padding 0..2 per axis), float32 and float64, any input layout, on one
and three threads and under both ``MINIFT_NUMBA_GEMM`` settings; the dispatch rule; and
float32 accuracy at a realistic size.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("numba")

from minift.contract.geometry import conv2d_geometry  # noqa: E402
from minift.kernels.numba import conv as numba_conv, grouped, winograd  # noqa: E402
from strategies import KERNEL_DTYPES, LAYOUTS, SEEDS, read_only  # noqa: E402
from test_numba_kernels import assert_same_result, on, on_each_setting  # noqa: E402


@st.composite
def winograd_cases(draw):
    """(x, weight, bias, grad_y, padding): a 3x3 stride-1 convolution Winograd can run."""
    n, c, o = draw(st.integers(0, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h = draw(st.integers(max(1, 3 - 2 * padding[0]), 9))
    w = draw(st.integers(max(1, 3 - 2 * padding[1]), 9))
    dtype = draw(st.sampled_from(KERNEL_DTYPES))
    rng = np.random.default_rng(draw(SEEDS))

    def array(shape):
        return read_only(rng.standard_normal(shape).astype(dtype), draw(st.sampled_from(LAYOUTS)))

    ho, wo = h + 2 * padding[0] - 2, w + 2 * padding[1] - 2
    bias = array((o,)) if draw(st.booleans()) else None
    return array((n, c, h, w)), array((o, c, 3, 3)), bias, array((n, o, ho, wo)), padding


@pytest.fixture
def forced(monkeypatch):
    """Winograd for every qualifying geometry, whatever its channels."""
    monkeypatch.setattr(winograd, "MIN_INPUT_CHANNELS", 1)
    monkeypatch.setattr(winograd, "MIN_OUTPUT_CHANNELS", 1)


def on_each_chunking(run):
    """``run()`` under both GEMMs, on one thread and on three, with the images in one chunk
    and in chunks of one image."""
    return on_each_setting(run, numba_conv, "CHUNK_BYTES", (numba_conv.CHUNK_BYTES, 1))


def window(padding):
    return (1, 1), padding, (1, 1)


WINOGRAD_SETTINGS = settings(max_examples=25, deadline=None)


@WINOGRAD_SETTINGS
@given(winograd_cases())
def test_winograd_forward_matches_reference(forced, case):
    x, weight, bias, _, padding = case
    expected = on("numpy", "conv2d_forward", x, weight, bias, *window(padding))
    for y in on_each_chunking(lambda: on("numba", "conv2d_forward", x, weight, bias, *window(padding))):
        assert_same_result(y, expected)


def test_the_dispatch_picks_winograd_exactly_for_3x3_stride_1_dense_convolutions_with_enough_channels():
    many, outs = winograd.MIN_INPUT_CHANNELS, winograd.MIN_OUTPUT_CHANNELS

    def picks(x_shape, w_shape, stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1):
        return winograd.applies(conv2d_geometry("t", x_shape, w_shape, stride, padding, dilation, groups))

    assert picks((2, many, 8, 8), (many, many, 3, 3))
    assert picks((2, many, 8, 8), (many, many, 3, 3), padding=(0, 2))
    assert picks((2, many, 7, 5), (outs, many, 3, 3), padding=(2, 0))
    assert not picks((2, many - 1, 8, 8), (many, many - 1, 3, 3))  # too few input channels (S1's 3)
    assert not picks((2, 3, 32, 32), (32, 3, 3, 3))  # bench S1, cifar_cnn's first layer
    assert not picks((2, many, 8, 8), (outs - 1, many, 3, 3))  # too few output channels
    assert not picks((2, many, 8, 8), (many, many, 5, 5))
    assert not picks((2, many, 8, 8), (many, many, 3, 1))
    assert not picks((2, many, 8, 8), (many, many, 3, 3), stride=(1, 2))
    assert not picks((2, many, 8, 8), (many, many, 3, 3), dilation=(2, 1))
    assert not picks((2, many, 8, 8), (many, many, 3, 3), padding=(3, 1))
    assert not picks((2, 2 * many, 8, 8), (2 * many, many, 3, 3), groups=2)


def test_the_numba_backend_runs_winograd_where_it_applies(monkeypatch):
    """grouped.py's dense branch calls winograd.py exactly when ``applies`` says so."""
    calls = []
    monkeypatch.setattr(winograd, "convolve", lambda *args: calls.append("winograd") or np.zeros(1))
    g = conv2d_geometry("t", (1, 8, 6, 6), (8, 8, 3, 3), (1, 1), (1, 1), (1, 1))
    x, weight = np.zeros(g.input_shape, np.float32), np.zeros(g.weight_shape, np.float32)
    monkeypatch.setattr(winograd, "MIN_INPUT_CHANNELS", 8)
    grouped.conv2d_forward(x, weight, None, g)
    assert calls == ["winograd"]
    monkeypatch.setattr(winograd, "MIN_INPUT_CHANNELS", 9)
    assert grouped.conv2d_forward(x, weight, None, g).shape == g.output_shape and calls == ["winograd"]


def test_float32_winograd_stays_within_the_kernel_tolerance_at_a_realistic_size(forced):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 32, 16, 16)).astype(np.float32)
    weight = (rng.standard_normal((64, 32, 3, 3)) / np.sqrt(32 * 9)).astype(np.float32)
    grad_y = rng.standard_normal((8, 64, 16, 16)).astype(np.float32)
    geometry = window((1, 1))
    for entry, args in (("conv2d_forward", (x, weight, None)), ("conv2d_backward_input", (grad_y, weight, x.shape)),
                        ("conv2d_backward_weight", (grad_y, x, weight.shape))):
        exact = on("numpy", entry, *(a.astype(np.float64) if isinstance(a, np.ndarray) else a for a in args), *geometry)
        assert_same_result(on("numba", entry, *args, *geometry), exact.astype(np.float32))


@WINOGRAD_SETTINGS
@given(winograd_cases())
def test_winograd_backward_input_matches_reference(forced, case):
    x, weight, _, grad_y, padding = case
    args = (grad_y, weight, x.shape, *window(padding))
    expected = on("numpy", "conv2d_backward_input", *args)
    for grad_x in on_each_chunking(lambda: on("numba", "conv2d_backward_input", *args)):
        assert_same_result(grad_x, expected)


@WINOGRAD_SETTINGS
@given(winograd_cases())
def test_winograd_backward_weight_matches_reference(forced, case):
    x, weight, _, grad_y, padding = case
    args = (grad_y, x, weight.shape, *window(padding))
    expected = on("numpy", "conv2d_backward_weight", *args)
    for grad_w in on_each_chunking(lambda: on("numba", "conv2d_backward_weight", *args)):
        assert_same_result(grad_w, expected)
