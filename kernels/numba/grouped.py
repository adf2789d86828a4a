"""Grouped and depthwise 2-D convolution in Numba: the contract's conv2d kernels for every ``groups``.

The contract's ``conv2d_forward``, ``conv2d_backward_input`` and ``conv2d_backward_weight``
(``minift.contract``) come here with their ``ConvGeometry`` g, and go one of three ways:

- ``groups == 1``: the dense kernels of ``conv.py`` (im2col + one GEMM per chunk), or for
  3x3 stride-1 convolutions with enough channels ``winograd.py`` (``winograd.applies``).
- **depthwise** (one input channel per group, ``C/groups == 1``, as in MobileNet and
  EfficientNet; O = C * multiplier): the direct loops below. im2col would copy every
  input KH*KW times to feed a GEMM with a single row per group -- all memory traffic, no
  reuse. A depthwise convolution does only KH*KW multiply-adds per output, so it is
  limited by memory: the fast way reads each plane once, from cache, and adds the KH*KW
  shifted copies of it that the window makes.
- any other ``groups``: ``conv.py``'s dense kernels once per group, on that group's
  channels (copied contiguous: C/groups input and O/groups output channels).

**The direct loops.** Output channel o of a depthwise convolution filters input plane
``c = o // multiplier`` with its own KH x KW kernel. For each kernel offset (p, q) the
window reads a shifted (and, with stride, strided) copy of the plane; the rows and
columns of the output that would read the padding are cut off once per offset
(``valid_range``), so the innermost loop -- along an output row, over a row of the plane
-- has no test in it, and with stride 1 both rows are unit-stride and LLVM vectorises it.
Indices are ``uint64`` (see ``conv.py``: no negative-index check in the loop). The forward
and backward-input loops mirror each other (one the adjoint of the other); they stay two
functions because Numba types every branch, and the forward pass must accept read-only
inputs, which one shared loop writing either way would not compile for.

- forward: one (image, output channel) plane per task, ``y[n, o] += w[o, p, q] * shifted x[n, c]``;
- backward input: one (image, input channel) plane per task -- the adjoint, the shifted
  copies *added* into ``dL/dx[n, c]`` -- over the ``multiplier`` output channels that read
  it, so no two tasks write one plane;
- backward weight: one output channel per task, ``dL/dw[o, p, q] = sum_{n,i,j} dL/dy[n, o, i, j] *
  shifted x[n, c]``, each image's two planes read while in cache for all KH*KW offsets;
  each row's dot product in the input's dtype (vectorised), the sums of rows in float64.
"""

from __future__ import annotations

import numpy as np

from minift.kernels.numba import conv as dense, winograd
from minift.kernels.numba import env as numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before Numba loads)
from minift.kernels.numba.conv import valid_range
from minift.kernels.numba.gemm import FAST_MATH
from numba import njit, prange, uint64
from minift.kernels.numba.parallel import parallel_kernel


@njit(cache=True)
def _offset_window(p, q, stride, padding, dilation, in_hw, out_hw):
    """For kernel offset (p, q): the output rows [i0, i1) and columns [j0, j1) that read the
    input (not the padding), and the input row and column read by output (i0, j0)... as
    ``(i0, i1, j0, j1, row_shift, column0)``: output row i reads input row ``i*sh + row_shift``,
    output column j0 + t reads input column ``column0 + t*sw``."""
    row_shift, column_shift = p * dilation[0] - padding[0], q * dilation[1] - padding[1]
    i0, i1 = valid_range(row_shift, stride[0], in_hw[0], out_hw[0])
    j0, j1 = valid_range(column_shift, stride[1], in_hw[1], out_hw[1])
    return i0, i1, j0, j1, row_shift, j0 * stride[1] + column_shift


@parallel_kernel(cache=True, fastmath=FAST_MATH)
def depthwise_forward_kernel(x, weight, stride, padding, dilation, y):
    """y (N, O, Ho, Wo) += depthwise conv of x (N, C, H, W) with weight (O, KH, KW); y holds the bias (or 0)."""
    n_images, channels, height, width = x.shape
    outs, kh, kw = weight.shape
    ho, wo = y.shape[2], y.shape[3]
    multiplier = outs // channels
    step = uint64(stride[1])
    for task in prange(n_images * outs):
        n, o = task // outs, task % outs
        plane, out = x[n, o // multiplier], y[n, o]
        for p in range(kh):
            for q in range(kw):
                i0, i1, j0, j1, row_shift, column0 = _offset_window(p, q, stride, padding, dilation, (height, width), (ho, wo))
                tap = weight[o, p, q]
                for i in range(i0, i1):
                    source, target = plane[i * stride[0] + row_shift], out[i]
                    for t in range(uint64(j1 - j0)):
                        target[uint64(j0) + t] += tap * source[uint64(column0) + t * step]


@parallel_kernel(cache=True, fastmath=FAST_MATH)
def depthwise_backward_input_kernel(grad_y, weight, stride, padding, dilation, grad_x):
    """grad_x (N, C, H, W), zeroed, += the adjoint of ``depthwise_forward_kernel`` applied to grad_y (N, O, Ho, Wo)."""
    n_images, channels, height, width = grad_x.shape
    outs, kh, kw = weight.shape
    ho, wo = grad_y.shape[2], grad_y.shape[3]
    multiplier = outs // channels
    step = uint64(stride[1])
    for task in prange(n_images * channels):
        n, c = task // channels, task % channels
        plane = grad_x[n, c]
        for o in range(c * multiplier, (c + 1) * multiplier):
            gradient = grad_y[n, o]
            for p in range(kh):
                for q in range(kw):
                    i0, i1, j0, j1, row_shift, column0 = _offset_window(p, q, stride, padding, dilation, (height, width), (ho, wo))
                    tap = weight[o, p, q]
                    for i in range(i0, i1):
                        source, target = gradient[i], plane[i * stride[0] + row_shift]
                        for t in range(uint64(j1 - j0)):
                            target[uint64(column0) + t * step] += tap * source[uint64(j0) + t]


@parallel_kernel(cache=True, fastmath=FAST_MATH)
def depthwise_backward_weight_kernel(grad_y, x, stride, padding, dilation, grad_w):
    """grad_w (O, KH, KW) = sum over images and output positions of grad_y (N, O, Ho, Wo) times shifted x (N, C, H, W)."""
    n_images, channels, height, width = x.shape
    outs, kh, kw = grad_w.shape
    ho, wo = grad_y.shape[2], grad_y.shape[3]
    multiplier = outs // channels
    step = uint64(stride[1])
    for o in prange(outs):
        sums = np.zeros(kh * kw)  # float64: the sum of N*Ho*Wo products
        for n in range(n_images):
            plane, gradient = x[n, o // multiplier], grad_y[n, o]
            for p in range(kh):
                for q in range(kw):
                    i0, i1, j0, j1, row_shift, column0 = _offset_window(p, q, stride, padding, dilation, (height, width), (ho, wo))
                    for i in range(i0, i1):
                        source, outgoing = plane[i * stride[0] + row_shift], gradient[i]
                        row_sum = outgoing[0] * 0  # zero of the input's dtype: the dot product vectorises
                        for t in range(uint64(j1 - j0)):
                            row_sum += outgoing[uint64(j0) + t] * source[uint64(column0) + t * step]
                        sums[p * kw + q] += row_sum
        for p in range(kh):
            for q in range(kw):
                grad_w[o, p, q] = sums[p * kw + q]


def _window(g):
    return g.stride, g.padding, g.dilation


def _groups(g):
    """(input channels, output channels) slices of each group."""
    return [(slice(k * g.c_group, (k + 1) * g.c_group), slice(k * g.o_group, (k + 1) * g.o_group))
            for k in range(g.groups)]


def conv2d_forward(x, weight, bias, g):
    """The contract's ``conv2d_forward`` (see ``minift.contract``), for any ``groups``."""
    if g.groups == 1:
        return (winograd if winograd.applies(g) else dense).conv2d_forward(x, weight, bias, g)
    if g.depthwise:
        y = np.zeros(g.output_shape, dtype=x.dtype)
        if bias is not None:
            y += bias[:, None, None]
        taps = np.ascontiguousarray(weight).reshape(g.o, g.kh, g.kw)
        depthwise_forward_kernel(np.ascontiguousarray(x), taps, *_window(g), y)
        return y
    y = np.empty(g.output_shape, dtype=x.dtype)
    for inputs, outputs in _groups(g):
        y[:, outputs] = dense.conv2d_forward(np.ascontiguousarray(x[:, inputs]), weight[outputs],
                                             None if bias is None else bias[outputs], g.one_group())
    return y


def conv2d_backward_input(grad_y, weight, g):
    """The contract's ``conv2d_backward_input``, for any ``groups``."""
    if g.groups == 1:
        return (winograd if winograd.applies(g) else dense).conv2d_backward_input(grad_y, weight, g)
    if g.depthwise:
        grad_x = np.zeros(g.input_shape, dtype=grad_y.dtype)
        taps = np.ascontiguousarray(weight).reshape(g.o, g.kh, g.kw)
        depthwise_backward_input_kernel(np.ascontiguousarray(grad_y), taps, *_window(g), grad_x)
        return grad_x
    grad_x = np.empty(g.input_shape, dtype=grad_y.dtype)
    for inputs, outputs in _groups(g):
        grad_x[:, inputs] = dense.conv2d_backward_input(np.ascontiguousarray(grad_y[:, outputs]), weight[outputs],
                                                        g.one_group())
    return grad_x


def conv2d_backward_weight(grad_y, x, g):
    """The contract's ``conv2d_backward_weight``, for any ``groups``."""
    if g.groups == 1:
        return (winograd if winograd.applies(g) else dense).conv2d_backward_weight(grad_y, x, g)
    if g.depthwise:
        grad_w = np.empty((g.o, g.kh, g.kw), dtype=x.dtype)
        depthwise_backward_weight_kernel(np.ascontiguousarray(grad_y), np.ascontiguousarray(x), *_window(g), grad_w)
        return grad_w.reshape(g.weight_shape)
    grad_w = np.empty(g.weight_shape, dtype=x.dtype)
    for inputs, outputs in _groups(g):
        grad_w[outputs] = dense.conv2d_backward_weight(np.ascontiguousarray(grad_y[:, outputs]),
                                                       np.ascontiguousarray(x[:, inputs]), g.one_group())
    return grad_w
