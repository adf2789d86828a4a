"""im2col and col2im: a convolution as one matrix product.

A convolution slides a KH x KW window over each input plane and, at each of the Ho x Wo
window positions, takes a dot product between the window and the weight. Done one window
at a time in Python that is hopelessly slow. im2col ("image to columns") instead *copies*
every window into a column of a matrix, so that all those dot products become one matrix
product, which BLAS runs at full speed::

    cols[n]  (C*KH*KW, Ho*Wo)   column i*Wo + j holds the window under output pixel (i, j)
    y[n]     = W_mat @ cols[n]   W_mat = weight.reshape(O, C*KH*KW)

The price is memory: each input element is copied into up to KH*KW columns.

**Kernel offsets.** Window (i, j) reads the padded plane at rows ``i*sh + p*dh`` and columns
``j*sw + q*dw`` for the kernel offsets ``p < KH``, ``q < KW`` (s: stride, d: dilation). Fix
one offset (p, q): across all windows it reads a regular grid of the plane, the strided
slice ``rows p*dh, p*dh + sh, ..., p*dh + (Ho-1)*sh`` (columns likewise). So im2col is a loop
over the KH*KW offsets, each copying one strided slice (all images and channels at once)
-- a few large array copies instead of N*Ho*Wo small ones. The rows of ``cols`` are
ordered (c, p, q), channel first, as in every backend (``ConvGeometry.taps``): then the
weight (O, C, KH, KW) is the matrix W_mat by a reshape, without a copy.

**col2im** is the adjoint (the transpose) of im2col, and what the backward pass needs: it
runs the same loop but *adds* each block back onto its slice of the plane, because windows
overlap -- an input element that was copied into several columns collects a contribution
from each. Adding whole slices is a few large additions, several times faster than
scattering element by element with ``numpy.add.at``.

Every NumPy call here exists under the same name in CuPy.
"""

from __future__ import annotations

import numpy as np



def overhang(g):
    """(rows, columns) that the last windows of ``g`` read past the padded input: zero,
    except for a pooling in ceil mode, whose last window may run over the end."""
    return tuple(
        max(0, (out - 1) * s + d * (k - 1) + 1 - (size + 2 * p))
        for size, out, k, s, p, d in zip((g.h, g.w), (g.ho, g.wo), g.kernel_size, g.stride, g.padding, g.dilation)
    )


def pad_planes(x, g, value=0.0):
    """x (N, C, H, W) -> (N, C, H + 2*ph + eh, W + 2*pw + ew), the border filled with ``value``.

    (ph, pw): the padding of the windows ``g``; (eh, ew): their ``overhang``, at the end.
    Returns ``x`` itself when there is no border: callers only read the result.
    """
    (ph, pw), (eh, ew) = g.padding, overhang(g)
    if ph == pw == eh == ew == 0:
        return x
    n, c, h, w = x.shape
    padded = np.full((n, c, h + 2 * ph + eh, w + 2 * pw + ew), value, dtype=x.dtype)
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


def im2col(x, g):
    """Copy every window of x into columns.

    x (N, C, H, W) -> cols (N, C, KH, KW, Ho, Wo) with
    ``cols[n, c, p, q, i, j] = xpad[n, c, i*sh + p*dh, j*sw + q*dw]`` (xpad: zero-padded x),
    for the windows of ``g`` (a ``WindowGeometry``). ``cols[n].reshape(C*KH*KW, Ho*Wo)``
    is the im2col matrix of image n.
    """
    n, c = x.shape[:2]
    xpad = pad_planes(x, g)
    cols = np.empty((n, c, g.kh, g.kw, g.ho, g.wo), dtype=x.dtype)
    for p, q in np.ndindex(g.kh, g.kw):
        rows, columns = offset_slices(p, q, (g.ho, g.wo), g.stride, g.dilation)
        cols[:, :, p, q] = xpad[:, :, rows, columns]
    return cols


def col2im(cols, g):
    """The adjoint of im2col: add every column entry back where it was copied from.

    cols (N, C, KH, KW, Ho, Wo) -> x (N, C, H, W) with
    ``x[n, c, h, w] = sum of cols[n, c, p, q, i, j] over all (p, q, i, j) with
    i*sh + p*dh - ph == h and j*sw + q*dw - pw == w``; positions no window reads get zero.
    ``cols`` may be any strided (even broadcast) array.
    """
    n, c = cols.shape[:2]
    (ph, pw), (eh, ew), h, w = g.padding, overhang(g), g.h, g.w
    xpad = np.zeros((n, c, h + 2 * ph + eh, w + 2 * pw + ew), dtype=cols.dtype)
    for p, q in np.ndindex(g.kh, g.kw):
        rows, columns = offset_slices(p, q, (g.ho, g.wo), g.stride, g.dilation)
        xpad[:, :, rows, columns] += cols[:, :, p, q]
    return np.ascontiguousarray(xpad[:, :, ph : ph + h, pw : pw + w])
