"""2-D convolution in Numba: im2col and col2im in parallel Numba loops, the products on a GEMM.

Implements the contract's ``conv2d_forward``, ``conv2d_backward_input`` and
``conv2d_backward_weight`` (``minift.contract``, which checks the arguments and hands each
function the ``ConvGeometry`` g). Read ``minift/reference/conv.py`` first: the three passes are
the three products of one matrix equation over the im2col matrix ``cols[n]``::

    forward          y[n]           = W_mat @ cols[n]
    backward_input   dL/dcols[n]    = W_mat.T @ dL/dy[n],   dL/dx[n] = col2im(dL/dcols[n])
    backward_weight  dL/dW_mat      = sum_n dL/dy[n] @ cols[n].T

What this file does differently from the reference, and why it is faster:

1. **im2col and col2im are compiled loops**, one image per task, instead of
   KH*KW NumPy slice copies. Their innermost loop copies one output row of a window
   position, unit stride in ``cols``; for a stride-1 "same" convolution (3x3, padding 1)
   the rows of one window position are consecutive in the input too, and the whole
   block becomes one long copy (see ``im2col_image``).
2. **Unsigned indices.** Numba checks every *signed* index for a negative value (so that
   ``a[-1]`` works as in Python); an index like ``j + offset`` might be negative, so the
   check stays in the loop and LLVM will not vectorise it. Indexing with ``uint64``
   (values we know are never negative) removes the check; the copies run 3-4x faster.
3. **One GEMM per chunk of images, unless the images are large.** The columns of a chunk
   of B images are laid side by side, ``cols (C*KH*KW, B, Ho*Wo)``, so each pass is ONE
   large product per chunk instead of one small product per image. Every BLAS call wakes
   BLAS's threads, which go back to sleep right after (``minift.backend.threads``): fewer,
   larger calls waste less time handing work over, and a large GEMM runs closer to the
   machine's peak. The price is a reordering of y (and of dL/dy) between (B, O, Ho*Wo)
   and (O, B, Ho*Wo), one NumPy copy. (A parallel Numba copy measured no faster: it adds
   one more hand-over between the thread pools.) When an image has at least
   ``PER_IMAGE_POSITIONS`` output positions, each image's product is large enough on its
   own, and B products that read and write y's own layout (the same ``cols`` buffer,
   viewed per image) skip that copy: ``minift bench``'s conv2d S1 (32x32 outputs, 3 input
   channels), one thread, forward + both backward passes went from 10.4 to 5.9 ms (NumPy's
   reference: 7.0 ms; PyTorch 7.9), while on 16x16 and 8x8 outputs (S2, S3) one product per
   chunk stayed 10-25 % faster.
4. **Chunks of about ``CHUNK_BYTES``** of columns (2 MiB), so the columns are written
   and read back while still in cache and memory use stays bounded whatever the batch
   size. One work buffer serves all chunks, and all calls (``workspace``).
5. **The products run on the GEMM ``MINIFT_NUMBA_GEMM`` selects** (``numba_gemm``): BLAS
   by default, or the blocked Numba GEMM.
6. **On several threads, each thread convolves its own share of the images**
   (``image_shares``, run by ``parallel.split``): im2col, the product on one BLAS thread
   and the layout copy, chunk after chunk, so the columns are read by the core that wrote
   them and no step waits for the other pool. (Before, each step was split on its own --
   im2col over Numba's threads, the GEMM over OpenBLAS's -- and two threads lost:
   ``minift bench``'s conv2d S1 took 8.0 ms on two idle cores against 5.5 on one; split
   by images, 4.1 against 6.0 in one run of the same benchmark.) The weight gradient sums
   each share on its own and adds the shares' sums in order, so it is deterministic on a
   given thread count. (Dense 3x3 convolutions with enough channels do not come here:
   ``grouped.py`` sends them to Winograd's algorithm, ``winograd.py``.)

The rows of ``cols`` are ordered (c, p, q) -- channel first, as in every backend
(``ConvGeometry.taps``) -- so the weight ``(O, C, KH, KW)`` is already
``W_mat (O, C*KH*KW)`` without a copy.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from minift.kernels.numba import env as numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before Numba loads)
from minift.kernels.numba.gemm import matmul_into
from numba import njit, prange, uint64
from minift.kernels.numba.parallel import parallel_kernel, split, thread_count

CHUNK_BYTES = 2 * 2**20  # columns of one chunk of images: about the L2 caches of two cores (measured best)
PER_IMAGE_POSITIONS = 512  # output positions per image from which one product per image wins (point 3)


@njit(cache=True)
def valid_range(offset, stride, size, count):
    """The j in [0, count) with 0 <= j*stride + offset < size, as (first, stop).

    Output rows or columns outside it read the zero padding.
    """
    first = min(count, max(0, (stride - 1 - offset) // stride))
    stop = min(count, (size - offset + stride - 1) // stride)
    return first, max(first, stop)


@njit(cache=True)
def im2col_image(x, kernel_size, stride, padding, dilation, out_hw, cols, n):
    """cols[(c*KH + p)*KW + q, n, i*Wo + j] = xpad[c, i*sh + p*dh, j*sw + q*dw] for image n.

    x (C, H, W) -> its columns ``cols[:, n]`` of cols (C*KH*KW, B, Ho*Wo), zero where the
    window lies on the padding.
    Loop order p, q, c, then output rows i and columns j: the window geometry of one
    kernel offset (p, q) -- which rows and columns fall on the padding -- is worked out
    once for all channels, and the innermost loop fills one row segment of ``cols``
    (unit stride) from one row of x (unit stride when sw = 1).

    Fast path, stride 1 with the output as wide as the input (a "same" convolution, e.g.
    3x3 with padding 1): output row i reads input row i + p*dh - ph, so consecutive
    output rows read consecutive input rows and the whole block for one (p, q, c) is ONE
    contiguous copy, shifted; only the few columns that fall on the padding are zeroed
    after it.
    """
    channels, height, width = x.shape
    kh, kw = kernel_size
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    ho, wo = out_hw
    step = uint64(sw)
    flat = sh == 1 and sw == 1 and wo == width
    for p in range(kh):
        row_offset = p * dh - ph
        i_first, i_stop = valid_range(row_offset, sh, height, ho)  # rows not on the padding
        for q in range(kw):
            column_offset = q * dw - pw
            first, stop = valid_range(column_offset, sw, width, wo)
            shift = row_offset * width + column_offset  # fast path: cols index t reads plane[t + shift]
            start = max(i_first * wo, -shift)  # its clipped ends are padding columns, zeroed below
            end = min(i_stop * wo, height * width - shift)
            for c in range(channels):
                plane = x[c].reshape(height * width)  # a view: the contract functions pass contiguous x
                row = cols[(c * kh + p) * kw + q, n]
                for t in range(uint64(i_first * wo)):
                    row[t] = 0
                for t in range(uint64(i_stop * wo), uint64(ho * wo)):
                    row[t] = 0
                if flat:
                    for t in range(uint64(max(0, end - start))):
                        row[uint64(start) + t] = plane[uint64(start + shift) + t]
                for i in range(i_first, i_stop):
                    segment = uint64(i * wo)
                    for j in range(uint64(first)):
                        row[segment + j] = 0
                    for j in range(uint64(stop), uint64(wo)):
                        row[segment + j] = 0
                    if not flat:
                        source = uint64((i * sh + row_offset) * width + first * sw + column_offset)
                        target = segment + uint64(first)
                        for j in range(uint64(stop - first)):
                            row[target + j] = plane[source + j * step]


@njit(cache=True)
def col2im_image(cols, n, kernel_size, stride, padding, dilation, out_hw, x):
    """The adjoint of ``im2col_image``: x[c, h, w] += every cols[:, n] entry copied from (c, h, w).

    cols[:, n] of cols (C*KH*KW, B, Ho*Wo) is added into x (C, H, W); entries that fall on
    the padding are dropped. Same loops and the same fast path as im2col: there, the
    whole block of one (p, q, c) is added in one shifted run after its padding entries
    have been set to zero, so ``cols`` is used as scratch (the contract functions pass
    their own buffer).
    """
    channels, height, width = x.shape
    kh, kw = kernel_size
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    ho, wo = out_hw
    step = uint64(sw)
    flat = sh == 1 and sw == 1 and wo == width
    for p in range(kh):
        row_offset = p * dh - ph
        i_first, i_stop = valid_range(row_offset, sh, height, ho)
        for q in range(kw):
            column_offset = q * dw - pw
            first, stop = valid_range(column_offset, sw, width, wo)
            shift = row_offset * width + column_offset
            start = max(i_first * wo, -shift)
            end = min(i_stop * wo, height * width - shift)
            for c in range(channels):
                plane = x[c].reshape(height * width)
                row = cols[(c * kh + p) * kw + q, n]
                for i in range(i_first, i_stop):
                    segment = uint64(i * wo)
                    if flat:  # silence the padding columns; the shifted run below adds them as zeros
                        for j in range(uint64(first)):
                            row[segment + j] = 0
                        for j in range(uint64(stop), uint64(wo)):
                            row[segment + j] = 0
                    else:
                        source = segment + uint64(first)
                        target = uint64((i * sh + row_offset) * width + first * sw + column_offset)
                        for j in range(uint64(stop - first)):
                            plane[target + j * step] += row[source + j]
                if flat:
                    for t in range(uint64(max(0, end - start))):
                        plane[uint64(start + shift) + t] += row[uint64(start) + t]


@parallel_kernel(cache=True)
def im2col_batch(x, kernel_size, stride, padding, dilation, out_hw, cols):
    """cols (C*KH*KW, B, Ho*Wo) = the columns of the B images of x (B, C, H, W), one image per task."""
    for n in prange(x.shape[0]):
        im2col_image(x[n], kernel_size, stride, padding, dilation, out_hw, cols, n)


@parallel_kernel(cache=True)
def col2im_batch(cols, kernel_size, stride, padding, dilation, out_hw, x):
    """x (B, C, H, W) += col2im of cols (C*KH*KW, B, Ho*Wo), one image per task (no two share memory)."""
    for n in prange(x.shape[0]):
        col2im_image(cols, n, kernel_size, stride, padding, dilation, out_hw, x[n])


def image_shares(batch: int) -> list[range]:
    """The batch cut into ``thread_count()`` contiguous ranges of images, one per thread (point 6)."""
    count = thread_count()
    bounds = [batch * i // count for i in range(count + 1)]
    return [range(start, stop) for start, stop in zip(bounds, bounds[1:]) if stop > start]


def image_chunks(images: range, bytes_per_image: int):
    """(start, stop) ranges that cut a range of images into chunks of about CHUNK_BYTES of work
    arrays (the columns here; V and M in ``winograd.py``), ``bytes_per_image`` each."""
    size = max(1, CHUNK_BYTES // max(1, bytes_per_image))
    return [(start, min(start + size, images.stop)) for start in range(images.start, images.stop, size)]


_workspaces = threading.local()


def workspace(name: str, shape, dtype):
    """A work array of ``shape`` (contents undefined), kept per thread, name and dtype.

    Why keep it: memory freed after a call of a few MiB goes back to the operating system,
    and the next call's fresh memory then costs a page fault per 4 KiB page (microseconds
    each, as much as computing the columns). One buffer per name, grown when too small,
    serves every call -- like the "workspace" of cuDNN or BLAS libraries.
    """
    buffers = _workspaces.__dict__.setdefault("buffers", {})
    key = (name, np.dtype(dtype))
    size = math.prod(shape)
    if key not in buffers or buffers[key].size < size:
        buffers[key] = np.empty(size, dtype=dtype)
    return buffers[key][:size].reshape(shape)


def _batch_inside(grad_y):
    """grad_y (B, O, P) -> an (O, B, P) copy in a workspace, the GEMM's layout."""
    copy = workspace("grad_y", (grad_y.shape[1], grad_y.shape[0], grad_y.shape[2]), grad_y.dtype)
    copy[...] = grad_y.transpose(1, 0, 2)
    return copy


def _gemm(a, b, out):
    """out (M, N) = a (M, K) @ b (K, N), on the GEMM ``MINIFT_NUMBA_GEMM`` selects."""
    matmul_into(a[None], b[None], out[None])


def _weight_matrix(weight, g):
    """W_mat (O, C*KH*KW) = weight.reshape, columns in tap order (c, p, q); no copy if contiguous."""
    return np.ascontiguousarray(weight).reshape(g.o, g.taps)


def conv2d_forward(x, weight, bias, g):
    """The contract's ``conv2d_forward`` (see ``minift.contract``).

    x (N, C, H, W), weight (O, C, KH, KW), bias (O,) or None -> y (N, O, Ho, Wo):
    per chunk of B images, one GEMM ``W_mat (O, C*KH*KW) @ cols (C*KH*KW, B*Ho*Wo)``,
    whose (O, B, Ho*Wo) result is then laid out as y's (B, O, Ho*Wo).
    """
    n, o, ho, wo = g.output_shape
    x = np.ascontiguousarray(x)
    w_mat = _weight_matrix(weight, g)
    rows, positions = w_mat.shape[1], ho * wo
    y = np.empty((n, o, positions), dtype=x.dtype)

    def forward(images):
        for start, stop in image_chunks(images, rows * positions * x.itemsize):
            chunk = stop - start
            cols = workspace("cols", (rows, chunk, positions), x.dtype)
            im2col_batch(x[start:stop], g.kernel_size, g.stride, g.padding, g.dilation, (ho, wo), cols)
            if positions >= PER_IMAGE_POSITIONS:  # y[n] = W_mat @ cols[:, n], straight into y
                matmul_into(np.broadcast_to(w_mat, (chunk, o, rows)), cols.transpose(1, 0, 2), y[start:stop])
            else:
                product = workspace("product", (o, chunk, positions), x.dtype)
                _gemm(w_mat, cols.reshape(rows, chunk * positions), product.reshape(o, chunk * positions))
                y[start:stop] = product.transpose(1, 0, 2)
            if bias is not None:
                y[start:stop] += bias[:, None]

    split(forward, image_shares(n))
    return y.reshape(n, o, ho, wo)


def conv2d_backward_input(grad_y, weight, g):
    """The contract's ``conv2d_backward_input``.

    grad_y (N, O, Ho, Wo), weight (O, C, KH, KW) -> grad_x (N, C, H, W):
    per chunk of B images, ``col2im(W_mat.T @ dL/dy)`` with dL/dy laid out (O, B*Ho*Wo).
    """
    n, o, ho, wo = g.output_shape
    w_mat = _weight_matrix(weight, g)
    rows, positions = w_mat.shape[1], ho * wo
    grad_y = np.ascontiguousarray(grad_y).reshape(n, o, positions)
    grad_x = np.zeros(g.input_shape, dtype=grad_y.dtype)

    def backward_input(images):
        for start, stop in image_chunks(images, rows * positions * grad_y.itemsize):
            chunk = stop - start
            if positions >= PER_IMAGE_POSITIONS:  # dL/dcols[n] = W_mat.T @ dL/dy[n], read in dL/dy's layout
                per_image = workspace("cols", (chunk, rows, positions), grad_y.dtype)
                matmul_into(np.broadcast_to(w_mat.T, (chunk, rows, o)), grad_y[start:stop], per_image)
                grad_cols = per_image.transpose(1, 0, 2)
            else:
                grad_y_t = _batch_inside(grad_y[start:stop])
                grad_cols = workspace("cols", (rows, chunk, positions), grad_y.dtype)
                _gemm(w_mat.T, grad_y_t.reshape(o, chunk * positions), grad_cols.reshape(rows, chunk * positions))
            col2im_batch(grad_cols, g.kernel_size, g.stride, g.padding, g.dilation, (ho, wo), grad_x[start:stop])

    split(backward_input, image_shares(n))
    return grad_x


def conv2d_backward_weight(grad_y, x, g):
    """The contract's ``conv2d_backward_weight``.

    grad_y (N, O, Ho, Wo), x (N, C, H, W) -> grad_w (O, C, KH, KW):
    per chunk of B images, ``dL/dW_mat += dL/dy (O, B*Ho*Wo) @ cols (C*KH*KW, B*Ho*Wo).T``,
    the sum over the images done by the GEMM itself; each thread sums its share of the
    images, and the shares' sums are added in order.
    """
    n, o, ho, wo = g.output_shape
    rows, positions = g.taps, ho * wo
    x = np.ascontiguousarray(x)
    grad_y = np.ascontiguousarray(grad_y).reshape(n, o, positions)
    shares = image_shares(n)
    share_sums = np.zeros((max(1, len(shares)), o, rows), dtype=x.dtype)

    def backward_weight(share):
        images, total = shares[share], share_sums[share]
        for start, stop in image_chunks(images, rows * positions * x.itemsize):
            chunk = stop - start
            cols = workspace("cols", (rows, chunk, positions), x.dtype)
            im2col_batch(x[start:stop], g.kernel_size, g.stride, g.padding, g.dilation, (ho, wo), cols)
            if positions >= PER_IMAGE_POSITIONS:  # one dL/dy[n] @ cols[:, n].T per image, then their sum
                per_image = workspace("product", (chunk, o, rows), x.dtype)
                matmul_into(grad_y[start:stop], cols.transpose(1, 2, 0), per_image)
                total += per_image.sum(axis=0)
                continue
            grad_y_t = _batch_inside(grad_y[start:stop])
            chunk_product = workspace("weight_product", (o, rows), x.dtype)
            _gemm(grad_y_t.reshape(o, chunk * positions), cols.reshape(rows, chunk * positions).T, chunk_product)
            total += chunk_product

    split(backward_weight, range(len(shares)))
    return share_sums.sum(axis=0).reshape(g.weight_shape)
