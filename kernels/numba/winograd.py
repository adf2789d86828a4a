"""3x3 convolution by Winograd's minimal filtering F(2x2, 3x3): forward, backward input, backward weight.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016). Used by
``grouped.py`` for dense (groups 1), 3x3, stride-1, undilated convolutions with padding
0, 1 or 2 on each axis, when ``applies`` says so; every other convolution stays on
``conv.py``'s im2col + GEMM.

**The idea.** One 2x2 block of outputs of a 3x3 filter g reads a 4x4 tile d of the
(padded) input. Directly that is 2*2*9 = 36 multiplications; Winograd computes it with 16::

    Y (2x2) = A^T [ (G g G^T) * (B^T d B) ] A          (* elementwise on 4x4)

        B^T = [1  0 -1  0]      G = [  1    0    0 ]     A^T = [1  1  1  0]
              [0  1  1  0]          [ 1/2  1/2  1/2]           [0  1 -1 -1]
              [0 -1  1  0]          [ 1/2 -1/2  1/2]
              [0  1  0 -1]          [  0    0    1 ]

Summed over the input channels c, the elementwise product becomes 16 matrix products,
one per position xi = 4a + b of the 4x4 transformed tile:

    U[xi] (O, C) = (G g[o, c] G^T)[xi]       the weight, transformed once per call
    V[xi] (C, T) = (B^T d[c, t] B)[xi]       every input tile t (T tiles of 2x2 outputs)
    M[xi] (O, T) = U[xi] @ V[xi]             16 GEMMs
    y tile (o, t) = A^T M[:, o, t] A         (M[:, o, t] seen as 4x4)

so the GEMMs do 16*O*C*T multiply-adds where im2col's does 9*O*C*4T: 2.25x fewer.
Tile t = (image, ti, tj) covers outputs (2ti, 2tj) .. (2ti+1, 2tj+1) and reads the padded
input rows 2ti .. 2ti+3 and columns 2tj .. 2tj+3 (``TH x TW = ceil(Ho/2) x ceil(Wo/2)``
tiles per image). An odd Ho or Wo makes the last tiles overhang the output: their extra
outputs are computed and dropped; what they read beyond x is zero, like the padding.

**Backward input** (stride 1, no dilation): ``dL/dx`` is the forward convolution of
``dL/dy`` with the weight flipped in both spatial axes and its channels swapped,
``w'[c, o, p, q] = w[o, c, 2-p, 2-q]``, padding ``2 - p`` -- the same code as the forward pass.

**Backward weight**, by the adjoint of the bilinear map above: ``dL/dM[xi] (O, T) =
(A dY A^T)[xi]`` for each 2x2 tile dY of ``dL/dy`` (zero where it overhangs), then

    dL/dU[xi] (O, C) = sum over tiles dL/dM[xi] @ V[xi]^T     16 GEMMs (O, T) @ (T, C)
    dL/dg[o, c] (3x3) = G^T dL/dU[:, o, c] G

**How it runs** (as ``conv.py``): the transforms are compiled loops with ``uint64``
indices, one (image, channel) plane per task, reading and writing through flat views; each
input plane is first copied into a zeroed padded plane so that the tile loop has no bounds
test. The output transform and its adjoint run in two passes through Q (4, O, T), each
tile's 2x2 outputs in four planes: M <-> Q is one long unit-stride loop that LLVM
vectorises, Q <-> y a move into (or out of) y's 2x2 blocks (``output_transform``). Each
transform is one compiled call per chunk, its steps inside it: a call takes and hands back
Python's GIL, and with two threads each convolving their share of the images, every
handover can wait for the other thread (S2 fwd+bwd on two threads 10.1 -> 8.4 ms when the
padding and the input transform, and each pair of output passes, became one call each).
Images go in chunks whose V and M buffers are about half of ``conv.CHUNK_BYTES``
(``chunk_bytes_per_image``), so memory does not grow with the batch; the GEMMs run on
``gemm.matmul_into`` (``MINIFT_NUMBA_GEMM``); on several threads each thread takes its
share of the images (``conv.image_shares``, ``parallel.split``), and the weight gradient
adds the shares' sums in order. Accumulation is in the input's dtype.
"""

from __future__ import annotations

import numpy as np

from minift.kernels.numba import env as numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before Numba loads)
from minift.kernels.numba.conv import image_chunks, image_shares, workspace
from minift.kernels.numba.gemm import matmul_into
from numba import njit, prange, uint64
from minift.kernels.numba.parallel import parallel_kernel, split

# Winograd from this many input and output channels (see ``applies``); tests set both to 1.
MIN_INPUT_CHANNELS = 8
MIN_OUTPUT_CHANNELS = 4


def applies(g) -> bool:
    """Whether the convolution of geometry g runs here: 3x3, stride 1, no dilation, one group,
    padding 0..2 per axis, at least ``MIN_INPUT_CHANNELS`` in and ``MIN_OUTPUT_CHANNELS`` out.

    Measured (one thread, float32, batch 64, fwd / bwd input / bwd weight in ms, im2col ->
    Winograd): the transforms cost about 16*(C + O) per tile against the GEMMs' 16*O*C, so
    Winograd pays with enough input channels. 16x16 images: C=O=4 0.46/0.51/0.58 ->
    0.37/0.37/0.41; C=32, O=4 3.8/2.7/4.4 -> 1.6/1.5/1.7; C=O=8 1.1/1.1/1.4 -> 1.0/1.0/1.1;
    C=32, O=64 (``minift bench`` S2) 7.0/5.9/7.4 -> 4.4/4.8/6.2; 8x8, C=64, O=128 (S3)
    6.1/5.7/6.3 -> 3.9/4.3/4.4. But C=4, O=32: 0.91/0.85/1.14 -> 1.37/1.56/1.45, and S1
    (32x32, C=3, O=32) 1.7/2.1/2.1 -> 4.3/4.8/5.2: with few input channels im2col's GEMM is
    cheap and Winograd's 16 planes of M (4x y's size) dominate.
    """
    return (g.kernel_size == (3, 3) and g.stride == (1, 1) and g.dilation == (1, 1) and g.groups == 1
            and all(0 <= p <= 2 for p in g.padding) and g.c >= MIN_INPUT_CHANNELS and g.o >= MIN_OUTPUT_CHANNELS)


def tile_counts(out_hw):
    """(TH, TW): tiles of 2x2 outputs covering an (Ho, Wo) output."""
    return (out_hw[0] + 1) // 2, (out_hw[1] + 1) // 2


@njit(cache=True)
def _combine_filter(g0, g1, g2, half):
    """The four entries of G (g0, g1, g2); ``half`` is 0.5 in the dtype (a literal would be float64)."""
    mean = (g0 + g2) * half
    return g0, mean + g1 * half, mean - g1 * half, g2


@njit(cache=True, error_model="numpy")
def _filter_transform(taps, half, u):
    """u[4a+b, i] = (G g G^T)[a, b] for each 3x3 filter g = taps[i] (taps (F, 9), u (16, F)); half = 0.5 in u's dtype.

    One loop over the filters per row a, writing u's four planes 4a .. 4a+3: LLVM vectorises
    each (with all 16 planes written in one loop it did not; a loop over (o, c) writing
    u[:, o, c] took 385 us for S3's 128 x 64 filters, these four loops 44).
    """
    for a in range(4):
        for i in range(taps.shape[0]):
            r0 = _combine_filter(taps[i, 0], taps[i, 3], taps[i, 6], half)[a]  # row a of G g
            r1 = _combine_filter(taps[i, 1], taps[i, 4], taps[i, 7], half)[a]
            r2 = _combine_filter(taps[i, 2], taps[i, 5], taps[i, 8], half)[a]
            u[4 * a, i], u[4 * a + 1, i], u[4 * a + 2, i], u[4 * a + 3, i] = _combine_filter(r0, r1, r2, half)  # (.) G^T


@njit(cache=True)
def _gather_filter(a0, a1, a2, a3, half):
    """The three entries of G^T (a0, a1, a2, a3): the adjoint of ``_combine_filter``."""
    mean = (a1 + a2) * half
    return a0 + mean, (a1 - a2) * half, mean + a3


@njit(cache=True)
def _filter_gradient(grad_u, half, grad_w):
    """grad_w[o, c] (3x3) = G^T grad_u[:, o, c] G for grad_u (16, O, C), grad_w (O, C, 3, 3); half = 0.5."""
    outs, channels = grad_w.shape[0], grad_w.shape[1]
    for o in range(outs):
        for c in range(channels):
            d = grad_u[:, o, c]
            columns = (_gather_filter(d[0], d[4], d[8], d[12], half), _gather_filter(d[1], d[5], d[9], d[13], half),
                       _gather_filter(d[2], d[6], d[10], d[14], half),
                       _gather_filter(d[3], d[7], d[11], d[15], half))  # G^T dU
            for p in range(3):
                entries = _gather_filter(columns[0][p], columns[1][p], columns[2][p], columns[3][p], half)  # (.) G
                for q in range(3):
                    grad_w[o, c, p, q] = entries[q]


def transform_weight(weight):
    """U (16, O, C) = G g G^T for each 3x3 filter g of weight (O, C, 3, 3) (any strides), in weight's dtype."""
    outs, channels = weight.shape[0], weight.shape[1]
    u = np.empty((16, outs * channels), dtype=weight.dtype)
    _filter_transform(np.ascontiguousarray(weight).reshape(outs * channels, 9), u.dtype.type(0.5), u)
    return u.reshape(16, outs, channels)


def weight_gradient(grad_u):
    """dL/dg (O, C, 3, 3) = G^T dL/dU G, from dL/dU (16, O, C): the adjoint of ``transform_weight``."""
    grad_w = np.empty((grad_u.shape[1], grad_u.shape[2], 3, 3), dtype=grad_u.dtype)
    _filter_gradient(grad_u, grad_w.dtype.type(0.5), grad_w)
    return grad_w


@njit(cache=True)
def _combine_input(d0, d1, d2, d3):
    """The four entries of (B^T d) for a column (d0, d1, d2, d3) of a tile."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@njit(cache=True)
def _column(flat, at, pitch):
    """flat[at + k*pitch] for k = 0..3: a column of a tile, rows ``pitch`` apart."""
    return flat[at], flat[at + pitch], flat[at + uint64(2) * pitch], flat[at + uint64(3) * pitch]


@njit(cache=True)
def _store_four(flat, at, plane, values):
    """flat[at + k*plane] = values[k] for k = 0..3: one tile's entries in four consecutive planes."""
    flat[at], flat[at + plane], flat[at + uint64(2) * plane], flat[at + uint64(3) * plane] = values


@parallel_kernel(cache=True)
def transform_planes(x, padding, padded, v):
    """v[xi, c*count + t] = (B^T d B)[xi] for each 4x4 tile d at (2ti, 2tj) of x[n, c] padded,
    t = (n*TH + ti)*TW + tj, count = B*TH*TW.

    x (B, C, H, W) -> v (16, stride) planes, through padded (B*C, 2TH+2, 2TW+2), all C-contiguous
    and read and written through flat views made once (a view made per row updates a
    reference count each time). One (image, channel) plane per task: zeroed, x's plane
    copied in at offset padding (rows or columns past it dropped), its tiles transformed.
    """
    height, width, channels = x.shape[2], x.shape[3], x.shape[1]
    plane_count, rows_padded, columns_padded = padded.shape
    th, tw = (rows_padded - 2) // 2, (columns_padded - 2) // 2
    ph, pw = padding
    rows, columns = min(height, rows_padded - ph), min(width, columns_padded - pw)
    count, pitch, plane = plane_count // channels * th * tw, uint64(columns_padded), uint64(v.shape[1])
    size = uint64(rows_padded * columns_padded)
    image_flat, padded_flat, target_flat = x.reshape(x.size), padded.reshape(padded.size), v.reshape(v.size)
    for task in prange(plane_count):
        start = uint64(task) * size
        for i in range(size):
            padded_flat[start + i] = 0
        for r in range(rows):
            source = uint64((task * height + r) * width)
            row = start + uint64((r + ph) * columns_padded + pw)
            for j in range(uint64(columns)):
                padded_flat[row + j] = image_flat[source + j]
        n, c = task // channels, task % channels
        for ti in range(th):
            top_left = start + uint64(2 * ti * columns_padded)
            first = uint64(c * count + (n * th + ti) * tw)
            for tj in range(uint64(tw)):
                k0 = top_left + uint64(2) * tj  # uint64 + uint64: a literal 1 would make the sum float64
                e00, e10, e20, e30 = _combine_input(*_column(padded_flat, k0, pitch))  # B^T d, column 0
                e01, e11, e21, e31 = _combine_input(*_column(padded_flat, k0 + uint64(1), pitch))
                e02, e12, e22, e32 = _combine_input(*_column(padded_flat, k0 + uint64(2), pitch))
                e03, e13, e23, e33 = _combine_input(*_column(padded_flat, k0 + uint64(3), pitch))
                t = first + tj
                _store_four(target_flat, t, plane, _combine_input(e00, e01, e02, e03))  # (.) B
                _store_four(target_flat, t + uint64(4) * plane, plane, _combine_input(e10, e11, e12, e13))
                _store_four(target_flat, t + uint64(8) * plane, plane, _combine_input(e20, e21, e22, e23))
                _store_four(target_flat, t + uint64(12) * plane, plane, _combine_input(e30, e31, e32, e33))


def input_transform(x, padding, tiles, v):
    """v[xi, c*count + n*TH*TW + ti*TW + tj] = (B^T d B)[xi] for the tile (ti, tj) of image n,
    channel c (count = B*TH*TW).

    x (B, C, H, W) C-contiguous -> v (16, stride) planes. Each (image, channel) plane is first
    copied into a zeroed padded plane, so that the tile loop has no bounds test.
    """
    batch, channels = x.shape[0], x.shape[1]
    th, tw = tiles
    padded = workspace("winograd_padded", (batch * channels, 2 * th + 2, 2 * tw + 2), x.dtype)
    transform_planes(x, padding, padded, v)


@njit(cache=True)
def _combine_output(m0, m1, m2, m3):
    """The two entries of (A^T m) for a column (m0, m1, m2, m3)."""
    return m0 + m1 + m2, m1 - m2 - m3


@parallel_kernel(cache=True)
def combine_and_place(m, q, bias, y):
    """``output_transform``'s two passes, one parallel loop each, in one call.

    q[2u+v, i] = (A^T M[:, i] A)[u, v] for each entry i = o*count + t of m (16, stride) into
    q (4, stride'), then y[n, o, 2ti+u, 2tj+v] = bias[o] + q[2u+v, o*count + t] for
    t = (n*TH + ti)*TW + tj, outputs past Ho or Wo dropped (count = B*TH*TW), one
    (image, output channel) plane per task. q and y C-contiguous, read and written through
    flat views made once: a view made per row (a row of q or y) updates a reference count
    each time, 3-4x slower.
    """
    batch, outs, ho, wo = y.shape
    th, tw = (ho + 1) // 2, (wo + 1) // 2
    count, pairs, plane = batch * th * tw, uint64(wo // 2), uint64(q.shape[1])
    for i in prange(outs * count):
        s00, s10 = _combine_output(m[0, i], m[4, i], m[8, i], m[12, i])  # A^T m
        s01, s11 = _combine_output(m[1, i], m[5, i], m[9, i], m[13, i])
        s02, s12 = _combine_output(m[2, i], m[6, i], m[10, i], m[14, i])
        s03, s13 = _combine_output(m[3, i], m[7, i], m[11, i], m[15, i])
        q[0, i], q[1, i] = _combine_output(s00, s01, s02, s03)  # (.) A
        q[2, i], q[3, i] = _combine_output(s10, s11, s12, s13)
    source_flat, target_flat = q.reshape(q.size), y.reshape(y.size)
    for task in prange(batch * outs):
        n, o = task // outs, task % outs
        shift = bias[o]
        for r in range(ho):
            even = uint64(2 * (r % 2)) * plane + uint64(o * count + (n * th + r // 2) * tw)  # q[2u, t]
            odd = even + plane  # q[2u + 1, t]
            target = uint64((task * ho + r) * wo)
            for tj in range(pairs):  # tiles whose two columns are inside
                target_flat[target + uint64(2) * tj] = source_flat[even + tj] + shift
                target_flat[target + uint64(2) * tj + uint64(1)] = source_flat[odd + tj] + shift
            if wo % 2:
                target_flat[target + uint64(wo - 1)] = source_flat[even + pairs] + shift


def output_transform(m, bias, y):
    """y[n, o, 2ti+u, 2tj+v] = bias[o] + (A^T M[:, o, t] A)[u, v], outputs past Ho or Wo dropped.

    m (16, stride) planes of (O, B*TH*TW) (``planes``), bias (O,) -> y (B, O, Ho, Wo) C-contiguous.
    Two passes through Q (4, O*B*TH*TW): each tile's four outputs computed into four planes,
    a loop over (o, t) that LLVM vectorises, then moved into y's 2x2 blocks. In one pass (a
    tile's outputs computed and stored where y keeps them) the loop over tiles stores two
    entries per row at stride 2 and runs TW iterations per row (8 for 16x16 images), too few
    to vectorise: 79 us per chunk of S2 (5 images, 64 channels) against 19 + 22 us in two.
    """
    batch, outs, ho, wo = y.shape
    th, tw = tile_counts((ho, wo))
    q = planes("winograd_q", 4, outs * batch * th * tw, y.dtype)
    combine_and_place(m, q, bias, y)


@njit(cache=True)
def _spread(y0, y1):
    """The four entries of A (y0, y1): the adjoint of ``_combine_output``."""
    return y0, y0 + y1, y0 - y1, -y1


@parallel_kernel(cache=True)
def gather_and_spread(grad_y, q, dm):
    """``output_gradient_transform``'s two passes, one parallel loop each, in one call.

    First q[2u+v, t*O + o] = grad_y[n, o, 2ti+u, 2tj+v] for t = (n*TH + ti)*TW + tj, zero past
    Ho or Wo: the second pass of ``combine_and_place`` run backwards, but tile-major (t, o),
    the layout in which the weight gradient's GEMMs read dL/dM (``conv2d_backward_weight``);
    one row of tiles per task, o innermost (the writes run along q, the reads step from plane
    to plane of grad_y), through flat views. Then dm[xi, i] = (A dY A^T)[xi] for each
    dY = q[:, i], one loop per row a of A dY writing its four planes 4a .. 4a+3: with all 16
    planes written in one loop, LLVM did not vectorise it (88 against 30 us on a chunk of
    S2's 64 x 320 tiles). grad_y (B, O, Ho, Wo), q (4, stride'), dm (16, stride) C-contiguous.
    """
    batch, outs, ho, wo = grad_y.shape
    th, tw = (ho + 1) // 2, (wo + 1) // 2
    plane, plane_size = uint64(q.shape[1]), uint64(ho * wo)
    source_flat, target_flat = grad_y.reshape(grad_y.size), q.reshape(q.size)
    zero = q.dtype.type(0)
    for task in prange(batch * th):
        n, ti = task // th, task % th
        below = 2 * ti + 1 < ho  # the tiles' bottom row is inside
        for tj in range(tw):
            right = 2 * tj + 1 < wo
            target = uint64(((n * th + ti) * tw + tj) * outs)
            source = uint64((n * outs * ho + 2 * ti) * wo + 2 * tj)
            for o in range(uint64(outs)):
                top_left = source + o * plane_size
                target_flat[target + o] = source_flat[top_left]
                target_flat[plane + target + o] = source_flat[top_left + uint64(1)] if right else zero
                target_flat[uint64(2) * plane + target + o] = source_flat[top_left + uint64(wo)] if below else zero
                target_flat[uint64(3) * plane + target + o] = (source_flat[top_left + uint64(wo + 1)]
                                                               if right and below else zero)
    for a in range(4):
        for i in prange(outs * batch * th * tw):
            c0, c1 = _spread(q[0, i], q[2, i])[a], _spread(q[1, i], q[3, i])[a]  # row a of A dY
            dm[4 * a, i], dm[4 * a + 1, i], dm[4 * a + 2, i], dm[4 * a + 3, i] = _spread(c0, c1)  # (.) A^T


def output_gradient_transform(grad_y, dm):
    """dm[xi, t, o] = (A dY A^T)[xi] for each 2x2 tile dY of grad_y, zero past Ho or Wo.

    grad_y (B, O, Ho, Wo) C-contiguous -> dm (16, stride) planes of (B*TH*TW, O): dL/dM,
    tile-major, from the adjoints of ``output_transform``'s two passes.
    """
    batch, outs, ho, wo = grad_y.shape
    th, tw = tile_counts((ho, wo))
    q = planes("winograd_q", 4, outs * batch * th * tw, grad_y.dtype)
    gather_and_spread(grad_y, q, dm)


def planes(name, count, size, dtype):
    """A work array (count, stride) whose rows -- V's or M's 16 planes (a (rows, tiles) matrix
    each, ``matrices``), or Q's 4, of ``size`` entries each -- lie an odd number of 64-byte
    cache lines apart.

    Why: the transforms write (or read) one entry of each of the 16 planes per tile, 16
    streams at once. Planes a multiple of 4 KiB apart (e.g. 32 x 320 float32) map the 16
    streams onto the same few sets of the L1 cache, which then evicts a line at nearly every
    store: the input transform of a chunk of S2 took 480 us so, 60 us with the planes an
    odd number of lines apart (their 16 streams then fall in 16 different sets).
    """
    line = 64 // np.dtype(dtype).itemsize
    stride = -(-size // line) * line
    stride += line * (1 - (stride // line) % 2)  # an odd number of lines
    return workspace(name, (count, stride), dtype)


def matrices(work, rows, columns):
    """The (16, rows, columns) view of the 16 planes of ``work`` (from ``planes``): the GEMMs' operands."""
    return work[:, :rows * columns].reshape(len(work), rows, columns)


def chunk_bytes_per_image(channels, outs, tiles, itemsize):
    """What one image counts against ``conv.CHUNK_BYTES``: twice its V and M, 2 * 16 * (C + O) * TH*TW entries.

    Why twice: a chunk also touches its images, their padded planes, Q and y (about half as
    much again), and runs fastest when all of it stays in one core's L2 cache (2 MiB here).
    One thread, fwd + bwd in ms, V and M of a chunk at most 2 MiB -> 1 MiB: S2 (2 images
    instead of 5) 14.6-16.3 -> 12.7-13.2, S3 (5 instead of 10) 11.6-12.4 -> 11.2-11.4.
    """
    return 2 * 16 * (channels + outs) * tiles[0] * tiles[1] * itemsize


def convolve(x, weight, bias, padding):
    """y (N, O, Ho, Wo) = the 3x3, stride-1 convolution of x (N, C, H, W) with weight (O, C, 3, 3)
    (any strides), plus bias (O,) or None; Ho = H + 2*ph - 2, Wo = W + 2*pw - 2."""
    n, c, h, w = x.shape
    o = weight.shape[0]
    ho, wo = h + 2 * padding[0] - 2, w + 2 * padding[1] - 2
    x = np.ascontiguousarray(x)
    u = transform_weight(weight)
    shift = np.zeros(o, x.dtype) if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)
    th, tw = tile_counts((ho, wo))
    y = np.empty((n, o, ho, wo), dtype=x.dtype)

    def forward(images):
        for start, stop in image_chunks(images, chunk_bytes_per_image(c, o, (th, tw), x.itemsize)):
            count = (stop - start) * th * tw
            v, m = planes("winograd_v", 16, c * count, x.dtype), planes("winograd_m", 16, o * count, x.dtype)
            input_transform(x[start:stop], padding, (th, tw), v)
            matmul_into(u, matrices(v, c, count), matrices(m, o, count))
            output_transform(m, shift, y[start:stop])

    split(forward, image_shares(n))
    return y


def conv2d_forward(x, weight, bias, g):
    """The contract's ``conv2d_forward`` for a geometry g that ``applies``: x (N, C, H, W) -> y (N, O, Ho, Wo)."""
    return convolve(x, weight, bias, g.padding)


def conv2d_backward_input(grad_y, weight, g):
    """The contract's ``conv2d_backward_input`` where ``applies``: the forward convolution of
    grad_y (N, O, Ho, Wo) with w'[c, o] = w[o, c] flipped, padding 2 - p -> grad_x (N, C, H, W)."""
    flipped = weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    return convolve(grad_y, flipped, None, (2 - g.padding[0], 2 - g.padding[1]))


def conv2d_backward_weight(grad_y, x, g):
    """The contract's ``conv2d_backward_weight`` where ``applies``: grad_y (N, O, Ho, Wo),
    x (N, C, H, W) -> grad_w (O, C, 3, 3) = G^T (sum over tiles V[xi] @ dL/dM[xi])^T G.

    dL/dM is tile-major, (T, O), so that each GEMM V[xi] (C, T) @ dL/dM[xi] (T, O) reads both
    operands row by row: (O, T) @ (T, C) with V transposed ran at half the speed in OpenBLAS
    (one thread, a chunk of S2's 128 tiles: 83 against 44 us for the 16 products).
    """
    n, c, o = g.n, g.c, g.o
    th, tw = tile_counts((g.ho, g.wo))
    x, grad_y = np.ascontiguousarray(x), np.ascontiguousarray(grad_y)
    shares = image_shares(n)
    share_sums = np.zeros((max(1, len(shares)), 16, c, o), dtype=x.dtype)

    def backward_weight(share):
        total = share_sums[share]
        for start, stop in image_chunks(shares[share], chunk_bytes_per_image(c, o, (th, tw), x.itemsize)):
            count = (stop - start) * th * tw
            v, dm = planes("winograd_v", 16, c * count, x.dtype), planes("winograd_m", 16, o * count, x.dtype)
            input_transform(x[start:stop], g.padding, (th, tw), v)
            output_gradient_transform(grad_y[start:stop], dm)
            product = workspace("winograd_u", (16, c, o), x.dtype)
            matmul_into(matrices(v, c, count), matrices(dm, count, o), product)
            total += product

    split(backward_weight, range(len(shares)))
    return weight_gradient(share_sums.sum(axis=0).transpose(0, 2, 1))
