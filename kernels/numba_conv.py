"""2-D convolution in Numba: im2col, one GEMM and col2im per image, all cores busy.

Implements ``minift.reference.conv2d_forward``, ``conv2d_backward_input`` and
``conv2d_backward_weight`` (read ``minift/reference/conv.py`` first: the three passes are
the three products of ``Y[n] = W_mat @ cols[n]``). The NumPy reference builds the columns
of the *whole batch* at once and hands them to BLAS; that matrix is KH*KW times larger than
the input (19 MB for a 64 x 32 x 16 x 16 batch and a 3 x 3 kernel), so it is written to
and read back from main memory. Here each core instead takes one image at a time
(``prange`` over the batch) and runs, for that image alone:

    im2col  ->  GEMM (numba_gemm.gemm_accumulate)  ->  col2im (backward input only)

The columns of one image (a few hundred KiB) are built in the core's L2 cache and consumed
by the GEMM while they are still there, no memory is shared between cores, and Numba runs
the whole pass in one parallel region (no hand-over between thread pools).

The rows of ``cols`` are ordered (c, p, q) -- channel first -- so the weight
``(O, C, KH, KW)`` is already the matrix ``W_mat (O, C*KH*KW)`` without a copy
(the reference orders them (p, q, c); the products are the same).
"""

from __future__ import annotations

import numpy as np

from minift.kernels import numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before Numba loads)
from minift.kernels.numba_gemm import FAST_MATH, gemm_accumulate
from minift.kernels.numba_checks import conv_geometry
from minift.reference.checks import check_float_arrays, check_ndim, check_same_shape, check_shape
from numba import get_num_threads, njit, prange


@njit(cache=True)
def _valid_range(offset, stride, size, count):
    """The j in [0, count) with 0 <= j*stride + offset < size, as (first, stop).

    Window positions outside it fall on the zero padding.
    """
    first = max(0, (stride - 1 - offset) // stride)
    stop = min(count, (size - offset + stride - 1) // stride)
    return first, max(first, stop)


@njit(cache=True)
def im2col_image(x, kernel_size, stride, padding, dilation, out_hw, cols):
    """cols[(c*KH + p)*KW + q, i*Wo + j] = xpad[c, i*sh + p*dh, j*sw + q*dw] for one image.

    x (C, H, W) -> cols (C*KH*KW, Ho*Wo), zero where the window lies on the padding.
    Loop order c, p, q, i, then j: the innermost loop writes one contiguous row segment
    of ``cols`` and reads one row of x (contiguous when the stride is 1).
    """
    channels, height, width = x.shape
    kh, kw = kernel_size
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    ho, wo = out_hw
    for c in range(channels):
        for p in range(kh):
            for q in range(kw):
                row = cols[(c * kh + p) * kw + q]
                column_offset = q * dw - pw
                first, stop = _valid_range(column_offset, sw, width, wo)
                for i in range(ho):
                    segment = row[i * wo : (i + 1) * wo]
                    h = i * sh + p * dh - ph
                    if h < 0 or h >= height:
                        segment[:] = 0
                        continue
                    segment[:first] = 0
                    segment[stop:] = 0
                    for j in range(first, stop):
                        segment[j] = x[c, h, j * sw + column_offset]


@njit(cache=True)
def col2im_image(cols, kernel_size, stride, padding, dilation, out_hw, x):
    """The adjoint of ``im2col_image``: x[c, h, w] += every cols entry copied from (c, h, w).

    cols (C*KH*KW, Ho*Wo) added into x (C, H, W); entries on the padding are dropped.
    Same loop order as im2col, so the innermost loop again walks contiguous rows.
    """
    channels, height, width = x.shape
    kh, kw = kernel_size
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    ho, wo = out_hw
    for c in range(channels):
        for p in range(kh):
            for q in range(kw):
                row = cols[(c * kh + p) * kw + q]
                column_offset = q * dw - pw
                first, stop = _valid_range(column_offset, sw, width, wo)
                for i in range(ho):
                    h = i * sh + p * dh - ph
                    if h < 0 or h >= height:
                        continue
                    for j in range(first, stop):
                        x[c, h, j * sw + column_offset] += row[i * wo + j]


@njit(parallel=True, cache=True, fastmath=FAST_MATH)
def conv2d_forward_kernel(x, w_mat, bias, kernel_size, stride, padding, dilation, out_hw):
    """y[n] = w_mat @ im2col(x[n]) + bias, one image per task.

    x (N, C, H, W), w_mat (O, C*KH*KW), bias (O,) or None -> y (N, O, Ho*Wo).
    """
    batch = x.shape[0]
    out_channels, rows = w_mat.shape
    positions = out_hw[0] * out_hw[1]
    y = np.zeros((batch, out_channels, positions), dtype=x.dtype)
    for n in prange(batch):
        cols = np.empty((rows, positions), dtype=x.dtype)
        im2col_image(x[n], kernel_size, stride, padding, dilation, out_hw, cols)
        if bias is not None:
            for o in range(out_channels):
                y[n, o, :] = bias[o]
        gemm_accumulate(w_mat, cols, y[n])
    return y


@njit(parallel=True, cache=True, fastmath=FAST_MATH)
def conv2d_backward_input_kernel(grad_y, w_mat, input_shape, kernel_size, stride, padding, dilation, out_hw):
    """grad_x[n] = col2im(w_mat.T @ grad_y[n]), one image per task.

    grad_y (N, O, Ho*Wo), w_mat (O, C*KH*KW) -> grad_x of input_shape (N, C, H, W).
    ``w_mat.T`` is a transposed view: the GEMM's packing step absorbs the strides.
    """
    batch, _, positions = grad_y.shape
    rows = w_mat.shape[1]
    grad_x = np.zeros(input_shape, dtype=grad_y.dtype)
    for n in prange(batch):
        grad_cols = np.zeros((rows, positions), dtype=grad_y.dtype)
        gemm_accumulate(w_mat.T, grad_y[n], grad_cols)
        col2im_image(grad_cols, kernel_size, stride, padding, dilation, out_hw, grad_x[n])
    return grad_x


@njit(parallel=True, cache=True, fastmath=FAST_MATH)
def conv2d_backward_weight_kernel(grad_y, x, kernel_size, stride, padding, dilation, out_hw, tasks):
    """grad_w_mat = sum_n grad_y[n] @ im2col(x[n]).T, the batch split into ``tasks`` parts.

    grad_y (N, O, Ho*Wo), x (N, C, H, W) -> grad_w_mat (O, C*KH*KW).
    Task t sums the images n = t, t + T, t + 2T, ... (T = tasks, one per thread) into its
    own partial matrix, and the T partials are added at the end: no two cores ever write
    the same memory, and the result does not depend on timing.
    """
    batch, out_channels, positions = grad_y.shape
    rows = x.shape[1] * kernel_size[0] * kernel_size[1]
    partials = np.zeros((tasks, out_channels, rows), dtype=x.dtype)
    for t in prange(tasks):
        cols = np.empty((rows, positions), dtype=x.dtype)
        for n in range(t, batch, tasks):
            im2col_image(x[n], kernel_size, stride, padding, dilation, out_hw, cols)
            gemm_accumulate(grad_y[n], cols.T, partials[t])
    grad_w_mat = partials[0].copy()
    for t in range(1, tasks):
        grad_w_mat += partials[t]
    return grad_w_mat


# The contract functions: check the arguments exactly as the reference does, then run a kernel.


def _weight_matrix(weight):
    """weight (O, C, KH, KW) -> W_mat (O, C*KH*KW), rows of cols ordered (c, p, q); no copy if contiguous."""
    o, c, kh, kw = weight.shape
    return np.ascontiguousarray(weight).reshape(o, c * kh * kw)


def conv2d_forward(x, weight, bias, stride, padding, dilation):
    """The contract's ``conv2d_forward`` (see ``minift/backend.py``) with ``conv2d_forward_kernel``.

    x (N, C, H, W), weight (O, C, KH, KW), bias (O,) or None -> y (N, O, Ho, Wo).
    A non-contiguous x is copied once, so the kernel reads rows with unit stride.
    """
    kernel = "conv2d_forward"
    check_float_arrays(kernel, x=x, weight=weight, **({} if bias is None else {"bias": bias}))
    check_ndim(kernel, "x", x, 4, "(N, C, H, W)")
    check_ndim(kernel, "weight", weight, 4, "(O, C, KH, KW)")
    (n, o, ho, wo), (kernel_size, stride, padding, dilation) = conv_geometry(
        kernel, x.shape, weight.shape, stride, padding, dilation
    )
    if bias is not None:
        check_same_shape(kernel, "bias", bias.shape, (o,), "one entry per output channel")
        bias = np.ascontiguousarray(bias)
    w_mat = _weight_matrix(weight)
    y = conv2d_forward_kernel(
        np.ascontiguousarray(x), w_mat, bias, kernel_size, stride, padding, dilation, (ho, wo)
    )
    return y.reshape(n, o, ho, wo)


def conv2d_backward_input(grad_y, weight, input_shape, stride, padding, dilation):
    """The contract's ``conv2d_backward_input`` with ``conv2d_backward_input_kernel``.

    grad_y (N, O, Ho, Wo), weight (O, C, KH, KW) -> grad_x of ``input_shape`` (N, C, H, W).
    """
    kernel = "conv2d_backward_input"
    check_float_arrays(kernel, grad_y=grad_y, weight=weight)
    check_ndim(kernel, "weight", weight, 4, "(O, C, KH, KW)")
    input_shape = check_shape(kernel, "input_shape", input_shape, "(N, C, H, W)")
    y_shape, (kernel_size, stride, padding, dilation) = conv_geometry(
        kernel, input_shape, weight.shape, stride, padding, dilation
    )
    check_same_shape(kernel, "grad_y", grad_y.shape, y_shape, "the output shape of this convolution")
    n, o, ho, wo = y_shape
    w_mat = _weight_matrix(weight)
    grad_y = np.ascontiguousarray(grad_y).reshape(n, o, ho * wo)
    return conv2d_backward_input_kernel(
        grad_y, w_mat, input_shape, kernel_size, stride, padding, dilation, (ho, wo)
    )


def conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation):
    """The contract's ``conv2d_backward_weight`` with ``conv2d_backward_weight_kernel``.

    grad_y (N, O, Ho, Wo), x (N, C, H, W) -> grad_w of ``weight_shape`` (O, C, KH, KW).
    """
    kernel = "conv2d_backward_weight"
    check_float_arrays(kernel, grad_y=grad_y, x=x)
    check_ndim(kernel, "x", x, 4, "(N, C, H, W)")
    weight_shape = check_shape(kernel, "weight_shape", weight_shape, "(O, C, KH, KW)")
    y_shape, (kernel_size, stride, padding, dilation) = conv_geometry(
        kernel, x.shape, weight_shape, stride, padding, dilation
    )
    check_same_shape(kernel, "grad_y", grad_y.shape, y_shape, "the output shape of this convolution")
    n, o, ho, wo = y_shape
    grad_y = np.ascontiguousarray(grad_y).reshape(n, o, ho * wo)
    tasks = max(1, min(n, get_num_threads()))
    grad_w_mat = conv2d_backward_weight_kernel(
        grad_y, np.ascontiguousarray(x), kernel_size, stride, padding, dilation, (ho, wo), tasks
    )
    return grad_w_mat.reshape(weight_shape)
