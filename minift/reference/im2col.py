"""im2col and col2im: a convolution as one matrix product.

A convolution slides a KH x KW window over each input plane and, at each of the Ho x Wo
window positions, takes a dot product between the window and the weight. Done one window
at a time in Python that is hopelessly slow. im2col ("image to columns") instead *copies*
every window into a column of a matrix, so that all those dot products become one matrix
product, which BLAS runs at full speed::

    cols[n]  (KH*KW*C, Ho*Wo)   column i*Wo + j holds the window under output pixel (i, j)
    y[n]     = W_mat @ cols[n]   W_mat: the weight rearranged to (O, KH*KW*C)

The price is memory: each input element is copied into up to KH*KW columns.

**Kernel offsets.** Window (i, j) reads the padded plane at rows ``i*sh + p*dh`` and columns
``j*sw + q*dw`` for the kernel offsets ``p < KH``, ``q < KW`` (s: stride, d: dilation). Fix
one offset (p, q): across all windows it reads a regular grid of the plane, the strided
slice ``rows p*dh, p*dh + sh, ..., p*dh + (Ho-1)*sh`` (columns likewise). So im2col is a loop
over the KH*KW offsets, each copying one strided slice -- a few large array copies instead
of N*Ho*Wo small ones. This is why the rows of ``cols`` are ordered (p, q, c), offset first:
the rows of one offset form one block, written by one copy.

**col2im** is the adjoint (the transpose) of im2col, and what the backward pass needs: it
runs the same loop but *adds* each block back onto its slice of the plane, because windows
overlap -- an input element that was copied into several columns collects a contribution
from each. Adding whole slices is a few large additions, several times faster than
scattering element by element with ``numpy.add.at``.

Every NumPy call here exists under the same name in CuPy.
"""

from __future__ import annotations

import numpy as np

from minift.contract.geometry import output_size


def pad_planes(x, padding, value=0.0):
    """x (N, C, H, W) -> (N, C, H + 2*ph, W + 2*pw), the border filled with ``value``.

    Returns ``x`` itself when there is no padding: callers only read the result.
    """
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    padded = np.full((n, c, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    padded[:, :, ph : ph + h, pw : pw + w] = x
    return padded


def offset_slices(p: int, q: int, out_hw, stride, dilation) -> tuple[slice, slice]:
    """The (rows, columns) of the padded plane that kernel offset (p, q) reads in all windows.

    Rows ``p*dh + i*sh`` for ``i < Ho`` and columns ``q*dw + j*sw`` for ``j < Wo``.
    """
    (ho, wo), (sh, sw), (dh, dw) = out_hw, stride, dilation
    rows = slice(p * dh, p * dh + (ho - 1) * sh + 1, sh)
    columns = slice(q * dw, q * dw + (wo - 1) * sw + 1, sw)
    return rows, columns


def im2col(x, kernel_size, stride, padding, dilation):
    """Copy every window of x into columns.

    x (N, C, H, W) -> cols (N, KH, KW, C, Ho, Wo) with
    ``cols[n, p, q, c, i, j] = xpad[n, c, i*sh + p*dh, j*sw + q*dw]`` (xpad: zero-padded x).
    ``cols[n].reshape(KH*KW*C, Ho*Wo)`` is the im2col matrix of image n.
    """
    n, c, h, w = x.shape
    kh, kw = kernel_size
    out_hw = output_size("im2col", (h, w), kernel_size, stride, padding, dilation)
    xpad = pad_planes(x, padding)
    cols = np.empty((n, kh, kw, c, *out_hw), dtype=x.dtype)
    for p, q in np.ndindex(kh, kw):
        rows, columns = offset_slices(p, q, out_hw, stride, dilation)
        cols[:, p, q] = xpad[:, :, rows, columns]
    return cols


def col2im(cols, input_shape, stride, padding, dilation):
    """The adjoint of im2col: add every column entry back where it was copied from.

    cols (N, KH, KW, C, Ho, Wo) -> x (input_shape = (N, C, H, W)) with
    ``x[n, c, h, w] = sum of cols[n, p, q, c, i, j] over all (p, q, i, j) with
    i*sh + p*dh - ph == h and j*sw + q*dw - pw == w``; positions no window reads get zero.
    ``cols`` may be any strided (even broadcast) array.
    """
    n, kh, kw, c, ho, wo = cols.shape
    h, w = input_shape[2], input_shape[3]
    ph, pw = padding
    xpad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for p, q in np.ndindex(kh, kw):
        rows, columns = offset_slices(p, q, (ho, wo), stride, dilation)
        xpad[:, :, rows, columns] += cols[:, p, q]
    return np.ascontiguousarray(xpad[:, :, ph : ph + h, pw : pw + w])
