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
indices, one (image, channel) plane per task; each input plane is first copied into a
zeroed padded plane so that the tile loop has no bounds test. Images go in chunks whose
V and M buffers are about ``conv.CHUNK_BYTES`` (``conv.workspace``), so memory does not grow
with the batch; the GEMMs run on ``gemm.matmul_into`` (``MINIFT_NUMBA_GEMM``); on several
threads each thread takes its share of the images (``conv.image_shares``,
``parallel.split``), and the weight gradient adds the shares' sums in order.
Accumulation is in the input's dtype.
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


@njit(cache=True)
def _filter_transform(weight, half, u):
    """u[xi, o, c] = (G weight[o, c] G^T)[xi] for weight (O, C, 3, 3), u (16, O, C); half = 0.5 in u's dtype."""
    outs, channels = weight.shape[0], weight.shape[1]
    for o in range(outs):
        for c in range(channels):
            g = weight[o, c]
            rows = (_combine_filter(g[0, 0], g[1, 0], g[2, 0], half), _combine_filter(g[0, 1], g[1, 1], g[2, 1], half),
                    _combine_filter(g[0, 2], g[1, 2], g[2, 2], half))  # G g, column by column
            for a in range(4):
                entries = _combine_filter(rows[0][a], rows[1][a], rows[2][a], half)  # (.) G^T
                for b in range(4):
                    u[4 * a + b, o, c] = entries[b]


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
    u = np.empty((16, weight.shape[0], weight.shape[1]), dtype=weight.dtype)
    _filter_transform(weight, u.dtype.type(0.5), u)
    return u


def weight_gradient(grad_u):
    """dL/dg (O, C, 3, 3) = G^T dL/dU G, from dL/dU (16, O, C): the adjoint of ``transform_weight``."""
    grad_w = np.empty((grad_u.shape[1], grad_u.shape[2], 3, 3), dtype=grad_u.dtype)
    _filter_gradient(grad_u, grad_w.dtype.type(0.5), grad_w)
    return grad_w


@njit(cache=True)
def _pad_plane(plane, padding, padded):
    """padded (2*TH+2, 2*TW+2) = zeros, with plane (H, W) at offset padding (rows beyond padded dropped)."""
    height, width = plane.shape
    ph, pw = padding
    padded[:] = 0
    rows = min(height, padded.shape[0] - ph)
    columns = min(width, padded.shape[1] - pw)
    for i in range(uint64(rows)):
        source, target = plane[i], padded[uint64(ph) + i]
        for j in range(uint64(columns)):
            target[uint64(pw) + j] = source[j]


@njit(cache=True)
def _combine_input(d0, d1, d2, d3):
    """The four entries of (B^T d) for a column (d0, d1, d2, d3) of a tile."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@parallel_kernel(cache=True)
def input_transform(x, padding, tiles, v):
    """v[xi, c, n*TH*TW + ti*TW + tj] = (B^T d B)[xi] for the tile (ti, tj) of image n, channel c.

    x (B, C, H, W) -> v (16, C, B*TH*TW); one (image, channel) plane per task.
    """
    batch, channels = x.shape[0], x.shape[1]
    th, tw = tiles
    for task in prange(batch * channels):
        n, c = task // channels, task % channels
        padded = np.empty((2 * th + 2, 2 * tw + 2), dtype=x.dtype)
        _pad_plane(x[n, c], padding, padded)
        rows = v[:, c]
        for ti in range(th):
            r0, r1, r2, r3 = padded[2 * ti], padded[2 * ti + 1], padded[2 * ti + 2], padded[2 * ti + 3]
            for tj in range(uint64(tw)):
                t = uint64((n * th + ti) * tw) + tj
                k0 = uint64(2) * tj  # uint64 + uint64: a literal 1 would make the sum float64
                k1, k2, k3 = k0 + uint64(1), k0 + uint64(2), k0 + uint64(3)
                e00, e10, e20, e30 = _combine_input(r0[k0], r1[k0], r2[k0], r3[k0])  # B^T d, column 0
                e01, e11, e21, e31 = _combine_input(r0[k1], r1[k1], r2[k1], r3[k1])
                e02, e12, e22, e32 = _combine_input(r0[k2], r1[k2], r2[k2], r3[k2])
                e03, e13, e23, e33 = _combine_input(r0[k3], r1[k3], r2[k3], r3[k3])
                rows[0, t], rows[1, t], rows[2, t], rows[3, t] = _combine_input(e00, e01, e02, e03)  # (.) B
                rows[4, t], rows[5, t], rows[6, t], rows[7, t] = _combine_input(e10, e11, e12, e13)
                rows[8, t], rows[9, t], rows[10, t], rows[11, t] = _combine_input(e20, e21, e22, e23)
                rows[12, t], rows[13, t], rows[14, t], rows[15, t] = _combine_input(e30, e31, e32, e33)


@njit(cache=True)
def _combine_output(m0, m1, m2, m3):
    """The two entries of (A^T m) for a column (m0, m1, m2, m3)."""
    return m0 + m1 + m2, m1 - m2 - m3


@parallel_kernel(cache=True)
def output_transform(m, bias, y):
    """y[n, o, 2ti+u, 2tj+v] = bias[o] + (A^T M[:, o, t] A)[u, v], outputs past Ho or Wo dropped.

    m (16, O, B*TH*TW), bias (O,) -> y (B, O, Ho, Wo); one (image, output channel) plane per task.
    """
    batch, outs, ho, wo = y.shape
    th, tw = (ho + 1) // 2, (wo + 1) // 2
    for task in prange(batch * outs):
        n, o = task // outs, task % outs
        planes, out, shift = m[:, o], y[n, o], bias[o]
        for ti in range(th):
            whole_rows = 2 * ti + 1 < ho
            top, bottom = out[2 * ti], out[min(2 * ti + 1, ho - 1)]
            for tj in range(uint64(tw)):
                t = uint64((n * th + ti) * tw) + tj
                s00, s10 = _combine_output(planes[0, t], planes[4, t], planes[8, t], planes[12, t])  # A^T m
                s01, s11 = _combine_output(planes[1, t], planes[5, t], planes[9, t], planes[13, t])
                s02, s12 = _combine_output(planes[2, t], planes[6, t], planes[10, t], planes[14, t])
                s03, s13 = _combine_output(planes[3, t], planes[7, t], planes[11, t], planes[15, t])
                y00, y01 = _combine_output(s00, s01, s02, s03)  # (.) A
                y10, y11 = _combine_output(s10, s11, s12, s13)
                j = uint64(2) * tj
                top[j] = y00 + shift
                if whole_rows:
                    bottom[j] = y10 + shift
                if j + uint64(1) < uint64(wo):
                    top[j + uint64(1)] = y01 + shift
                    if whole_rows:
                        bottom[j + uint64(1)] = y11 + shift


@njit(cache=True)
def _spread(y0, y1):
    """The four entries of A (y0, y1): the adjoint of ``_combine_output``."""
    return y0, y0 + y1, y0 - y1, -y1


@parallel_kernel(cache=True)
def output_gradient_transform(grad_y, dm):
    """dm[xi, o, t] = (A dY A^T)[xi] for each 2x2 tile dY of grad_y, zero past Ho or Wo.

    grad_y (B, O, Ho, Wo) -> dm (16, O, B*TH*TW): dL/dM, the adjoint of ``output_transform``.
    """
    batch, outs, ho, wo = grad_y.shape
    th, tw = (ho + 1) // 2, (wo + 1) // 2
    for task in prange(batch * outs):
        n, o = task // outs, task % outs
        planes, gradient = dm[:, o], grad_y[n, o]
        zero = gradient[0, 0] * 0
        for ti in range(th):
            top = gradient[2 * ti]
            bottom = gradient[min(2 * ti + 1, ho - 1)]
            whole_rows = 2 * ti + 1 < ho
            for tj in range(uint64(tw)):
                t = uint64((n * th + ti) * tw) + tj
                j = uint64(2) * tj
                whole_columns = j + uint64(1) < uint64(wo)
                y00 = top[j]
                y10 = bottom[j] if whole_rows else zero
                y01 = top[j + uint64(1)] if whole_columns else zero
                y11 = bottom[j + uint64(1)] if whole_columns and whole_rows else zero
                a0, a1, a2, a3 = _spread(y00, y10)  # A dY, column 0
                b0, b1, b2, b3 = _spread(y01, y11)  # column 1
                planes[0, t], planes[1, t], planes[2, t], planes[3, t] = _spread(a0, b0)  # (.) A^T
                planes[4, t], planes[5, t], planes[6, t], planes[7, t] = _spread(a1, b1)
                planes[8, t], planes[9, t], planes[10, t], planes[11, t] = _spread(a2, b2)
                planes[12, t], planes[13, t], planes[14, t], planes[15, t] = _spread(a3, b3)


def planes(name, rows, count, dtype):
    """A work array (16, rows, count) -- V or M of one chunk -- whose 16 planes lie an odd number
    of 64-byte cache lines apart.

    Why: the transforms write (or read) one entry of each of the 16 planes per tile, 16
    streams at once. Planes a multiple of 4 KiB apart (e.g. 32 x 320 float32) map the 16
    streams onto the same few sets of the L1 cache, which then evicts a line at nearly every
    store: the input transform of a chunk of S2 took 480 us so, 60 us with the planes an
    odd number of lines apart (their 16 streams then fall in 16 different sets).
    """
    line = 64 // np.dtype(dtype).itemsize
    stride = -(-rows * count // line) * line
    stride += line * (1 - (stride // line) % 2)  # an odd number of lines
    buffer = workspace(name, (16 * stride,), dtype)
    item = buffer.itemsize
    return np.lib.stride_tricks.as_strided(buffer, (16, rows, count), (stride * item, count * item, item))


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
        for start, stop in image_chunks(images, 16 * (c + o) * th * tw * x.itemsize):
            count = (stop - start) * th * tw
            v, m = planes("winograd_v", c, count, x.dtype), planes("winograd_m", o, count, x.dtype)
            input_transform(x[start:stop], padding, (th, tw), v)
            matmul_into(u, v, m)
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
    x (N, C, H, W) -> grad_w (O, C, 3, 3) = G^T (sum over tiles dL/dM[xi] @ V[xi]^T) G."""
    n, c, o = g.n, g.c, g.o
    th, tw = tile_counts((g.ho, g.wo))
    x, grad_y = np.ascontiguousarray(x), np.ascontiguousarray(grad_y)
    shares = image_shares(n)
    share_sums = np.zeros((max(1, len(shares)), 16, o, c), dtype=x.dtype)

    def backward_weight(share):
        total = share_sums[share]
        for start, stop in image_chunks(shares[share], 16 * (c + o) * th * tw * x.itemsize):
            count = (stop - start) * th * tw
            v, dm = planes("winograd_v", c, count, x.dtype), planes("winograd_m", o, count, x.dtype)
            input_transform(x[start:stop], g.padding, (th, tw), v)
            output_gradient_transform(grad_y[start:stop], dm)
            product = workspace("winograd_u", (16, o, c), x.dtype)
            matmul_into(dm, v.transpose(0, 2, 1), product)
            total += product

    split(backward_weight, range(len(shares)))
    return weight_gradient(share_sums.sum(axis=0))
