"""``minift.contract.geometry``: the sizes and argument checks of every contract entry.

Output sizes are checked against a brute-force count of the windows that fit, and the
pooling rule "no window wholly on padding" against a walk over every tap of every window.
That the contract entries call them before any backend runs is tested in
``test_reference_kernels.py`` (``test_bad_input_raises_a_clear_error_before_any_backend_runs``).
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import numpy as np

from minift.contract.geometry import conv2d_geometry, matmul_geometry, pool2d_geometry


def windows_that_fit(size, kernel, stride, padding, dilation):
    """Brute force: how many window positions i*stride fit inside the padded input."""
    span = dilation * (kernel - 1) + 1
    return sum(1 for i in range(size + 2 * padding + 1) if i * stride + span <= size + 2 * padding)


pairs = st.tuples(st.integers(1, 4), st.integers(1, 4))


@settings(max_examples=60)
@given(h=st.integers(0, 20), w=st.integers(0, 20), kernel=pairs, stride=pairs, dilation=pairs,
       padding=st.tuples(st.integers(0, 3), st.integers(0, 3)))
def test_conv2d_geometry_output_size_counts_the_windows_that_fit(h, w, kernel, stride, dilation, padding):
    expected = tuple(windows_that_fit(*args) for args in zip((h, w), kernel, stride, padding, dilation))
    x_shape, weight_shape = (2, 3, h, w), (5, 3, *kernel)
    if min(expected) < 1:
        with pytest.raises(ValueError, match="smaller than the window span"):
            conv2d_geometry("conv", x_shape, weight_shape, stride, padding, dilation)
        return
    g = conv2d_geometry("conv", x_shape, weight_shape, stride, padding, dilation)
    assert (g.ho, g.wo) == expected
    assert g.output_shape == (2, 5, *expected) and g.taps == 3 * kernel[0] * kernel[1]
    assert g.input_shape == x_shape and g.weight_shape == weight_shape and g.kernel_size == kernel
    assert (g.stride, g.padding, g.dilation) == (stride, padding, dilation)


@pytest.mark.parametrize(
    "x_shape, weight_shape, stride, padding, dilation, error, words",
    [
        ((1, 3, 8, 8), (4, 2, 3, 3), (1, 1), (0, 0), (1, 1), ValueError,
         "the input has 3 channels but the weight (O, C/groups, KH, KW) = (4, 2, 3, 3) expects 2"),
        ((1, 3, 8, 8), (4, 3, 0, 3), (1, 1), (0, 0), (1, 1), ValueError, "at least 1x1, got weight shape (4, 3, 0, 3)"),
        ((1, 3, 8, 8), (4, 3, 3, 3), (0, 1), (0, 0), (1, 1), ValueError,
         "stride must be >= 1 in both entries, got (0, 1)"),
        ((1, 3, 8, 8), (4, 3, 3, 3), (1, 1), (-1, 0), (1, 1), ValueError, "padding must be >= 0"),
        ((1, 3, 8, 8), (4, 3, 3, 3), (1, 1), (0, 0), (1, 0), ValueError, "dilation must be >= 1"),
        ((1, 3, 8, 8), (4, 3, 3, 3), (1.0, 1), (0, 0), (1, 1), TypeError, "stride must be a pair of ints"),
        ((1, 3, 8, 8), (4, 3, 3, 3), 1, (0, 0), (1, 1), TypeError,
         "stride must be a pair of ints (height, width), got 1"),
        ((1, 3, 8, 8), (4, 3, 3, 3), (True, 1), (0, 0), (1, 1), TypeError, "pair of ints"),
        ((1, 3, 2, 8), (4, 3, 3, 3), (1, 1), (0, 0), (1, 1), ValueError,
         "the padded input 2x8 is smaller than the window span 3x3"),
    ],
)
def test_conv2d_geometry_rejects_bad_arguments_with_a_clear_message(  # groups=1
    x_shape, weight_shape, stride, padding, dilation, error, words
):
    with pytest.raises(error) as raised:
        conv2d_geometry("conv2d_forward", x_shape, weight_shape, stride, padding, dilation)
    assert str(raised.value).startswith("conv2d_forward: ") and words in str(raised.value)


@settings(max_examples=100)
@given(size=st.integers(0, 12), kernel=st.integers(1, 6), stride=st.integers(1, 3),
       dilation=st.integers(1, 4), data=st.data())
def test_pool2d_geometry_refuses_exactly_the_windows_made_only_of_padding(size, kernel, stride, dilation, data):
    padding = data.draw(st.integers(0, kernel // 2))
    out = windows_that_fit(size, kernel, stride, padding, dilation)
    assume(out >= 1)
    all_padding = any(
        all(not 0 <= i * stride - padding + t * dilation < size for t in range(kernel)) for i in range(out)
    )
    args = ((1, 1, size, 5), (kernel, 1), (stride, 1), (padding, 0), (dilation, 1))
    if all_padding:
        with pytest.raises(ValueError, match=f"along the height, a window with kernel {kernel}, dilation "
                                             f"{dilation} and padding {padding} covers only padding"):
            pool2d_geometry("max_pool2d_forward", *args)
    else:
        g = pool2d_geometry("max_pool2d_forward", *args)
        assert g.output_shape == (1, 1, out, 5) and g.input_shape == (1, 1, size, 5)
        assert g.kernel_size == (kernel, 1) and g.dilation == (dilation, 1)


def test_pool2d_geometry_follows_pytorchs_padding_rule():
    with pytest.raises(ValueError, match=r"padding must be at most half the kernel size, got padding \(2, 1\)"):
        pool2d_geometry("avg_pool2d_forward", (1, 1, 8, 8), (3, 3), (1, 1), (2, 1))
    assert pool2d_geometry("avg_pool2d_forward", (1, 1, 8, 8), (3, 3), (1, 1), (1, 1)).ho == 8


def test_a_huge_dilated_window_is_judged_without_walking_its_taps():
    """Kernel 2**40 over an empty plane: one window, all padding, refused at once."""
    with pytest.raises(ValueError, match="covers only padding of the 0-long input"):
        pool2d_geometry("max_pool2d_forward", (1, 1, 0, 1), (2**40, 1), (1, 1), (2**39, 0))


@given(shapes=mutually_broadcastable_shapes(signature="(m,k),(k,n)->(m,n)", max_dims=5, max_side=4))
def test_matmul_geometry_agrees_with_numpy(shapes):
    a_shape, b_shape = shapes.input_shapes
    g = matmul_geometry("matmul", a_shape, b_shape)
    assert g.output_shape == np.matmul(np.zeros(a_shape), np.zeros(b_shape)).shape
    assert g.k == a_shape[-1] and g.batch == int(np.prod(g.batch_shape))


@pytest.mark.parametrize(
    "a_shape, b_shape, words",
    [((2, 3), (4, 5), "must agree on K, got shapes (2, 3) and (4, 5)"),
     ((2, 3, 4), (3, 4, 5), "the batch dimensions (2,) and (3,) do not broadcast"),
     ((3,), (3, 4), "at least 2-D")],
)
def test_matmul_geometry_rejects_mismatched_shapes(a_shape, b_shape, words):
    with pytest.raises(ValueError) as raised:
        matmul_geometry("matmul", a_shape, b_shape)
    assert str(raised.value).startswith("matmul: ") and words in str(raised.value)


@pytest.mark.parametrize(
    "x_shape, weight_shape, groups, words",
    [
        ((1, 4, 8, 8), (4, 2, 3, 3), 0, "groups must be a positive int, got 0"),
        ((1, 4, 8, 8), (4, 2, 3, 3), True, "groups must be a positive int, got True"),
        ((1, 6, 8, 8), (4, 2, 3, 3), 3, "groups=3 must divide the input channels (6) and the output channels (4) of weight "
                                         "(O, C/groups, KH, KW) = (4, 2, 3, 3)"),
        ((1, 6, 8, 8), (6, 1, 3, 3), 3, "the input has 6 channels but the weight (O, C/groups, KH, KW) = (6, 1, 3, 3) "
                                         "expects 3 (C/groups with groups=3)"),
    ],
)
def test_conv2d_geometry_checks_groups(x_shape, weight_shape, groups, words):
    with pytest.raises(ValueError) as raised:
        conv2d_geometry("conv2d_forward", x_shape, weight_shape, (1, 1), (0, 0), (1, 1), groups)
    assert str(raised.value) == f"conv2d_forward: {words}"


@settings(max_examples=30)
@given(groups=st.integers(1, 4), c_group=st.integers(1, 3), o_group=st.integers(1, 3))
def test_a_grouped_geometry_splits_into_groups_of_one_group_each(groups, c_group, o_group):
    g = conv2d_geometry("conv2d_forward", (2, groups * c_group, 5, 5), (groups * o_group, c_group, 3, 3),
                        (1, 1), (1, 1), (1, 1), groups)
    assert (g.c_group, g.o_group, g.taps, g.depthwise) == (c_group, o_group, c_group * 9, c_group == 1)
    one = g.one_group()
    assert (one.c, one.o, one.groups, one.output_shape) == (c_group, o_group, 1, (2, o_group, 5, 5))


@settings(max_examples=60)
@given(size=st.integers(1, 12), kernel=st.integers(1, 5), stride=st.integers(1, 4), data=st.data())
def test_ceil_mode_counts_the_windows_as_pytorch_does(size, kernel, stride, data):
    torch = pytest.importorskip("torch")
    padding = data.draw(st.integers(0, kernel // 2))
    assume(size + 2 * padding >= kernel)
    g = pool2d_geometry("max_pool2d_forward", (1, 1, size, 3), (kernel, 1), (stride, 1), (padding, 0), ceil_mode=True)
    pooled = torch.nn.functional.max_pool2d(torch.zeros(1, 1, size, 3), (kernel, 1), (stride, 1), (padding, 0),
                                            ceil_mode=True)
    assert g.output_shape == tuple(pooled.shape)


@settings(max_examples=60)
@given(size=st.integers(1, 10), kernel=st.integers(1, 4), stride=st.integers(1, 3), ceil_mode=st.booleans(),
       count_include_pad=st.booleans(), data=st.data())
def test_average_divisors_are_pytorchs(size, kernel, stride, ceil_mode, count_include_pad, data):
    """Over ones, a window's sum (torch with ``divisor_override=1``) over its mean is its divisor."""
    torch = pytest.importorskip("torch")
    padding = data.draw(st.integers(0, kernel // 2))
    assume(size + 2 * padding >= kernel)
    g = pool2d_geometry("avg_pool2d_forward", (1, 1, size, 1), (kernel, 1), (stride, 1), (padding, 0),
                        ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    ones = torch.ones(1, 1, size, 1, dtype=torch.float64)
    means = torch.nn.functional.avg_pool2d(ones, (kernel, 1), (stride, 1), (padding, 0), ceil_mode, count_include_pad)
    sums = torch.nn.functional.avg_pool2d(ones, (kernel, 1), (stride, 1), (padding, 0), ceil_mode, True,
                                          divisor_override=1)
    rows, columns = g.divisors()
    assert columns == (1,)
    np.testing.assert_allclose(np.asarray(rows, np.float64), (sums / means).reshape(-1).numpy())


def test_pool2d_geometry_refuses_flags_that_are_not_bools():
    with pytest.raises(TypeError, match="avg_pool2d_forward: count_include_pad must be a bool, got 0"):
        pool2d_geometry("avg_pool2d_forward", (1, 1, 4, 4), (2, 2), (2, 2), (0, 0), count_include_pad=0)
