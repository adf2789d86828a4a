"""2-D max and average pooling in Numba: one (image, channel) plane per task.

Implements ``minift.reference.max_pool2d_forward`` / ``max_pool2d_backward`` /
``avg_pool2d_forward`` / ``avg_pool2d_backward``. The reference reduces KH*KW strided
views of the padded plane, one full pass over memory per kernel offset. Here each output
element is computed in one go by a loop over its window, so every input element is read
once (pooling is limited by memory traffic, not arithmetic), and no padded copy of the
input is made: positions outside the plane are simply skipped.

Loop order: planes (``prange``, N*C tasks, independent) > output rows i > output
columns j > window rows p > window columns q. A plane (H*W values) stays in L1/L2 while its
task works on it, and the backward passes of different planes never touch the same memory,
so they add without locks. No fast-math: max pooling must compare NaN exactly.
"""

from __future__ import annotations

import numpy as np

from minift.kernels import numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before Numba loads)
from minift.kernels.numba_checks import pool_geometry
from minift.reference.checks import check_float_arrays, check_ndim, check_same_shape, check_shape
from numba import njit, prange


@njit(parallel=True, cache=True)
def max_pool2d_forward_kernel(x, kernel_size, stride, padding, dilation, out_hw):
    """y = window maximum, indices = its flat position h*W + w in the unpadded plane.

    x (N, C, H, W) -> y (N, C, Ho, Wo), indices (N, C, Ho, Wo) int64. The window is walked in
    row-major order and only a strictly larger value (or the first NaN) takes over, so the
    first of equal maxima wins, as in the reference and PyTorch.
    """
    batch, channels, height, width = x.shape
    kh, kw = kernel_size
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    ho, wo = out_hw
    y = np.empty((batch, channels, ho, wo), dtype=x.dtype)
    indices = np.empty((batch, channels, ho, wo), dtype=np.int64)
    for plane in prange(batch * channels):
        n, c = plane // channels, plane % channels
        for i in range(ho):
            for j in range(wo):
                best = -np.inf
                best_index = -1  # the padding rule guarantees every window a real element
                for p in range(kh):
                    h = i * sh + p * dh - ph
                    if h < 0 or h >= height:
                        continue
                    for q in range(kw):
                        w = j * sw + q * dw - pw
                        if w < 0 or w >= width:
                            continue
                        value = x[n, c, h, w]
                        if best_index < 0 or value > best or (value != value and best == best):
                            best = value
                            best_index = h * width + w
                y[n, c, i, j] = best
                indices[n, c, i, j] = best_index
    return y, indices


@njit(parallel=True, cache=True)
def max_pool2d_backward_kernel(grad_y, indices, input_shape):
    """grad_x[n, c].flat[indices[n, c, i, j]] += grad_y[n, c, i, j], one plane per task."""
    batch, channels, height, width = input_shape
    ho, wo = grad_y.shape[2], grad_y.shape[3]
    grad_x = np.zeros((batch, channels, height * width), dtype=grad_y.dtype)
    for plane in prange(batch * channels):
        n, c = plane // channels, plane % channels
        for i in range(ho):
            for j in range(wo):
                grad_x[n, c, indices[n, c, i, j]] += grad_y[n, c, i, j]
    return grad_x.reshape(input_shape)


@njit(parallel=True, cache=True)
def avg_pool2d_forward_kernel(x, kernel_size, stride, padding, out_hw):
    """y = window sum / (KH*KW), padding counted as zeros (count_include_pad=True)."""
    batch, channels, height, width = x.shape
    kh, kw = kernel_size
    sh, sw = stride
    ph, pw = padding
    ho, wo = out_hw
    y = np.empty((batch, channels, ho, wo), dtype=x.dtype)
    for plane in prange(batch * channels):
        n, c = plane // channels, plane % channels
        for i in range(ho):
            for j in range(wo):
                total = 0.0
                for h in range(max(0, i * sh - ph), min(height, i * sh - ph + kh)):
                    for w in range(max(0, j * sw - pw), min(width, j * sw - pw + kw)):
                        total += x[n, c, h, w]
                y[n, c, i, j] = total / (kh * kw)
    return y


@njit(parallel=True, cache=True)
def avg_pool2d_backward_kernel(grad_y, input_shape, kernel_size, stride, padding):
    """grad_x[window of (i, j)] += grad_y[n, c, i, j] / (KH*KW), one plane per task."""
    batch, channels, height, width = input_shape
    kh, kw = kernel_size
    sh, sw = stride
    ph, pw = padding
    ho, wo = grad_y.shape[2], grad_y.shape[3]
    grad_x = np.zeros(input_shape, dtype=grad_y.dtype)
    for plane in prange(batch * channels):
        n, c = plane // channels, plane % channels
        for i in range(ho):
            for j in range(wo):
                share = grad_y[n, c, i, j] / (kh * kw)
                for h in range(max(0, i * sh - ph), min(height, i * sh - ph + kh)):
                    for w in range(max(0, j * sw - pw), min(width, j * sw - pw + kw)):
                        grad_x[n, c, h, w] += share
    return grad_x


# The contract functions: check the arguments exactly as the reference does, then run a kernel.


def max_pool2d_forward(x, kernel_size, stride, padding, dilation):
    """The contract's ``max_pool2d_forward`` (see ``minift/backend.py``): ``(y, indices)``."""
    kernel = "max_pool2d_forward"
    check_float_arrays(kernel, x=x)
    check_ndim(kernel, "x", x, 4, "(N, C, H, W)")
    out_hw, pairs = pool_geometry(kernel, x.shape[2:], kernel_size, stride, padding, dilation)
    return max_pool2d_forward_kernel(np.ascontiguousarray(x), *pairs, out_hw)


def max_pool2d_backward(grad_y, indices, input_shape):
    """The contract's ``max_pool2d_backward``: grad_y scatter-added at indices."""
    kernel = "max_pool2d_backward"
    check_float_arrays(kernel, grad_y=grad_y)
    check_ndim(kernel, "grad_y", grad_y, 4, "(N, C, Ho, Wo)")
    check_same_shape(kernel, "indices", indices.shape, grad_y.shape, "one index per grad_y element")
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{kernel}: indices must be integers (int64), got {indices.dtype}")
    n, c, h, w = check_shape(kernel, "input_shape", input_shape, "(N, C, H, W)")
    check_same_shape(kernel, "grad_y", grad_y.shape[:2], (n, c), "its (N, C) must match input_shape")
    if indices.size and (indices.min() < 0 or indices.max() >= h * w):
        raise ValueError(f"{kernel}: indices must lie in [0, H*W) = [0, {h * w}) for input_shape {input_shape}")
    return max_pool2d_backward_kernel(
        np.ascontiguousarray(grad_y), np.ascontiguousarray(indices, dtype=np.int64), (n, c, h, w)
    )


def avg_pool2d_forward(x, kernel_size, stride, padding):
    """The contract's ``avg_pool2d_forward``: window means, zero padding counted."""
    kernel = "avg_pool2d_forward"
    check_float_arrays(kernel, x=x)
    check_ndim(kernel, "x", x, 4, "(N, C, H, W)")
    out_hw, pairs = pool_geometry(kernel, x.shape[2:], kernel_size, stride, padding)
    return avg_pool2d_forward_kernel(np.ascontiguousarray(x), *pairs[:3], out_hw)


def avg_pool2d_backward(grad_y, input_shape, kernel_size, stride, padding):
    """The contract's ``avg_pool2d_backward``: each grad_y / (KH*KW) added over its window."""
    kernel = "avg_pool2d_backward"
    check_float_arrays(kernel, grad_y=grad_y)
    n, c, h, w = check_shape(kernel, "input_shape", input_shape, "(N, C, H, W)")
    (ho, wo), pairs = pool_geometry(kernel, (h, w), kernel_size, stride, padding)
    check_same_shape(kernel, "grad_y", grad_y.shape, (n, c, ho, wo), "the pooled shape of input_shape")
    return avg_pool2d_backward_kernel(np.ascontiguousarray(grad_y), (n, c, h, w), *pairs[:3])
