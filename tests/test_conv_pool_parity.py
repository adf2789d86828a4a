"""Grouped, depthwise, transposed and 1-D convolutions and ceil-mode / count_include_pad
pooling against PyTorch: the same modules (PyTorch's names, argument order, weight shapes
and state_dict keys), the same outputs, input gradients and parameter gradients, under
every available backend. Skipped without torch."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minift import nn
from test_nn_layers import F64, SEEDS, assert_same_as_torch, distinct_values, from_torch, rng_arrays

pytestmark = pytest.mark.parametrize("backend", ["numpy", "numba"], indirect=True)


@st.composite
def channel_groups(draw):
    """(in_channels, out_channels, groups), depthwise about half the time."""
    groups = draw(st.integers(1, 4))
    per_group_in = 1 if draw(st.booleans()) else draw(st.integers(1, 3))
    return groups * per_group_in, groups * draw(st.integers(1, 3)), groups


@settings(max_examples=15)
@given(channel_groups(), st.integers(1, 3), st.integers(1, 2), st.integers(0, 2), st.integers(1, 2), st.booleans(), SEEDS)
def test_grouped_and_depthwise_conv2d_match_torch(backend, channels, kernel, stride, padding, dilation, bias, seed):
    torch = pytest.importorskip("torch")
    c_in, c_out, groups = channels
    size = dilation * (kernel - 1) + 3
    theirs = torch.nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, groups, bias, dtype=torch.float64)
    ours = nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, groups, bias, dtype=F64)
    assert ours.weight.shape == tuple(theirs.weight.shape)  # (O, C/groups, KH, KW)
    from_torch(theirs, ours)
    assert_same_as_torch(torch, theirs, ours, rng_arrays(seed, (2, c_in, size, size + 1)))


@settings(max_examples=15)
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(0, 1), st.integers(1, 2), st.data(), SEEDS)
def test_conv_transpose2d_matches_torch(backend, groups, kernel, stride, padding, dilation, data, seed):
    torch = pytest.importorskip("torch")
    c_in, c_out = groups * data.draw(st.integers(1, 2)), groups * data.draw(st.integers(1, 2))
    output_padding = data.draw(st.integers(0, stride - 1))
    size = data.draw(st.integers(1, 4))
    assume((size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1 >= 1)
    arguments = (c_in, c_out, kernel, stride, padding, output_padding, groups, True, dilation)
    theirs = torch.nn.ConvTranspose2d(*arguments, dtype=torch.float64)
    ours = nn.ConvTranspose2d(*arguments, dtype=F64)
    assert ours.weight.shape == tuple(theirs.weight.shape)  # (C_in, C_out/groups, KH, KW)
    from_torch(theirs, ours)
    assert_same_as_torch(torch, theirs, ours, rng_arrays(seed, (2, c_in, size, size + 1)))


@settings(max_examples=15)
@given(channel_groups(), st.integers(1, 3), st.integers(1, 2), st.integers(0, 2), st.integers(1, 2), SEEDS)
def test_conv1d_matches_torch(backend, channels, kernel, stride, padding, dilation, seed):
    torch = pytest.importorskip("torch")
    c_in, c_out, groups = channels
    theirs = torch.nn.Conv1d(c_in, c_out, kernel, stride, padding, dilation, groups, dtype=torch.float64)
    ours = nn.Conv1d(c_in, c_out, kernel, stride, padding, dilation, groups, dtype=F64)
    from_torch(theirs, ours)
    assert_same_as_torch(torch, theirs, ours, rng_arrays(seed, (2, c_in, dilation * (kernel - 1) + 4)))


@settings(max_examples=25)
@given(st.integers(1, 4), st.integers(1, 3), st.booleans(), st.integers(2, 9), st.integers(2, 9), SEEDS, st.data())
def test_ceil_mode_and_count_include_pad_pooling_match_torch(backend, kernel, stride, count_include_pad, h, w, seed,
                                                            data):
    torch = pytest.importorskip("torch")
    padding = data.draw(st.integers(0, kernel // 2))
    assume(min(h, w) + 2 * padding >= kernel)
    x = distinct_values(seed, (2, 2, h, w))
    assert_same_as_torch(torch, torch.nn.MaxPool2d(kernel, stride, padding, ceil_mode=True),
                         nn.MaxPool2d(kernel, stride, padding, ceil_mode=True), [x])
    for ceil_mode in (False, True):
        theirs = torch.nn.AvgPool2d(kernel, stride, padding, ceil_mode, count_include_pad)
        ours = nn.AvgPool2d(kernel, stride, padding, ceil_mode, count_include_pad)
        assert_same_as_torch(torch, theirs, ours, [x])
