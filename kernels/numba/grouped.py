"""Grouped and depthwise 2-D convolution in Numba: the contract's conv2d kernels for every ``groups``.

The contract's ``conv2d_forward``, ``conv2d_backward_input`` and ``conv2d_backward_weight``
(``minift.contract``) come here with their ``ConvGeometry`` g, and go one of three ways:

- ``groups == 1``: the dense kernels of ``conv.py`` (im2col + one GEMM per chunk), or for
  3x3 stride-1 convolutions with enough channels ``winograd.py`` (``winograd.applies``).
- **depthwise** (one input channel per group, ``C/groups == 1``, as in MobileNet and
  EfficientNet; O = C * multiplier): the loops below. im2col would copy every input
  KH*KW times to feed a GEMM with a single row per group -- all memory traffic, no reuse.
  A depthwise convolution does only KH*KW multiply-adds per output, so it is limited by
  memory: the fast way reads each plane once, from cache, and adds the KH*KW shifted
  copies of it that the window makes.
- any other ``groups``: ``conv.py``'s dense kernels once per group, on that group's
  channels (copied contiguous: C/groups input and O/groups output channels).

**The depthwise loops: one long vector loop per tap.** Output channel o filters input
plane ``c = o // multiplier`` with its own KH x KW kernel. Written row by row, the
innermost loop is an output row: 28 values at EfficientNet's 28 x 28, one 16-float vector
and a scalar remainder of 12 on AVX-512, and a stride-2 row of 14 not vectorised at all.
So each task first copies its input plane, with its zero padding, into a scratch buffer
split into ``sh * sw`` *stride phases*: element (r, c) of the padded plane goes to phase
(r % sh, c % sw), row r // sh, column c // sw, every phase ``rows x pitch``
(``_layout``). Output (i, j) with tap (p, q) reads padded element (i*sh + p*dh, j*sw +
q*dw), which is phase (p*dh % sh, q*dw % sw) at row i + p*dh // sh, column j + q*dw // sw:
laid out at the same pitch, output k = i*pitch + j reads phase position ``start + k`` for
a start that depends only on the tap (``_tap_starts``). Each tap is then one unit-stride
loop over the whole output plane, ``out[k] += w[o, p, q] * phases[start + k]``, which LLVM
vectorises, with no test for the border in it (the padding is in the buffer). The columns
from Wo to the pitch are scratch: computed and not copied out (forward), or held at zero
so that they add nothing (the backward passes; an infinite input or weight there gives
0 * inf = NaN, which the row-by-row loops never computed). With stride 1 there is one phase and the
buffer is the padded plane. One thread, ``minift bench``'s 64 x 96 x 28 x 28 3x3 pad 1,
forward / backward input / backward weight: 10.1 / 10.6 / 11.9 ms row by row, 5.9 / 4.9 /
6.6 with the phases; stride 2 on 56 x 56: 22.8 / 29.8 / 27.5 -> 15.0 / 20.3 / 17.8; 5x5
(EfficientNet's) 2.4x and, at stride 2, 3.0x faster.

- forward: one (image, input channel) plane per task, over its ``multiplier`` outputs;
- backward input: the same tasks, the adjoint -- each tap's loop *adds* ``w * dL/dy``
  into the phases, over the ``multiplier`` output channels that read the plane, and the
  phases go back into ``dL/dx[n, c]`` -- so no two tasks write one plane;
- backward weight: one output channel per task, ``dL/dw[o, p, q] = sum_{n,i,j} dL/dy[n, o, i, j] *
  shifted x[n, c]``, each image's two planes read while in cache for all KH*KW taps; each
  tap's dot product over a plane in the input's dtype (vectorised), the sums over images
  in float64.

The forward and backward-input kernels mirror each other (one the adjoint of the other), as
do the copies in and out (``_plane_into_phases`` / ``_plane_from_phases``, ``_rows_into`` /
``_rows_from``): they stay pairs because Numba types every branch, and the forward pass
must accept read-only inputs, which one function writing either way would not compile for.
Indices are ``uint64`` (see ``conv.py``: no negative-index check in the loop).
"""

from __future__ import annotations

import numpy as np

from minift.kernels.numba import conv as dense, winograd
from minift.kernels.numba import env as numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before Numba loads)
from minift.kernels.numba.gemm import FAST_MATH
from numba import njit, prange, uint64
from minift.kernels.numba.parallel import parallel_kernel


@njit(cache=True)
def _layout(in_hw, out_hw, stride, padding):
    """``(rows, pitch, size, length)``: the rows and pitch of each stride phase of the padded
    input plane, the size of all ``sh * sw`` phases, and the length of the flat output, laid
    out at the same pitch (module docstring)."""
    rows = -(-(in_hw[0] + 2 * padding[0]) // stride[0])
    pitch = -(-(in_hw[1] + 2 * padding[1]) // stride[1])
    return rows, pitch, stride[0] * stride[1] * rows * pitch, (out_hw[0] - 1) * pitch + out_hw[1]


@njit(cache=True)
def _phase_index(r, c, stride, rows, pitch):
    """Where element (r, c) of the padded plane lies in the phases: in phase (r % sh, c % sw),
    at row r // sh and column c // sw."""
    phase = (r % stride[0]) * stride[1] + c % stride[1]
    return phase * rows * pitch + (r // stride[0]) * pitch + c // stride[1]


@njit(cache=True)
def _tap_starts(kh, kw, dilation, stride, rows, pitch):
    """starts[p*KW + q]: where tap (p, q) of output (0, 0) reads the phases; output k reads start + k."""
    starts = np.empty(kh * kw, np.uint64)
    for p in range(kh):
        for q in range(kw):
            starts[p * kw + q] = _phase_index(p * dilation[0], q * dilation[1], stride, rows, pitch)
    return starts


@njit(cache=True)
def _plane_into_phases(plane, padding, stride, rows, pitch, phases):
    """phases[_phase_index(i + ph, j + pw)] = plane[i, j], for one column phase at a time,
    row by row without a division (each row's place from ``_phase_index``, four integer
    divisions, made the forward pass 1.5x slower: 7.9 against 5.1 ms on one thread)."""
    height, width = plane.shape
    for b in range(stride[1]):
        j0 = (b - padding[1]) % stride[1]  # the plane's first column in column phase b
        count = uint64(max(0, width - j0 + stride[1] - 1) // stride[1])
        a, r = padding[0] % stride[0], padding[0] // stride[0]  # row 0's phase row, and row in it
        for i in range(height):
            start = uint64(((a * stride[1] + b) * rows + r) * pitch + (j0 + padding[1]) // stride[1])
            row = plane[i]
            if stride[1] == 1:  # a contiguous copy, which LLVM vectorises
                for t in range(count):
                    phases[start + t] = row[t]
            else:
                for t in range(count):
                    phases[start + t] = row[uint64(j0) + t * uint64(stride[1])]
            a += 1
            if a == stride[0]:
                a, r = 0, r + 1


@njit(cache=True)
def _plane_from_phases(phases, padding, stride, rows, pitch, plane):
    """plane[i, j] = phases[_phase_index(i + ph, j + pw)]: the inverse of ``_plane_into_phases``."""
    height, width = plane.shape
    for b in range(stride[1]):
        j0 = (b - padding[1]) % stride[1]
        count = uint64(max(0, width - j0 + stride[1] - 1) // stride[1])
        a, r = padding[0] % stride[0], padding[0] // stride[0]
        for i in range(height):
            start = uint64(((a * stride[1] + b) * rows + r) * pitch + (j0 + padding[1]) // stride[1])
            row = plane[i]
            if stride[1] == 1:
                for t in range(count):
                    row[t] = phases[start + t]
            else:
                for t in range(count):
                    row[uint64(j0) + t * uint64(stride[1])] = phases[start + t]
            a += 1
            if a == stride[0]:
                a, r = 0, r + 1


@njit(cache=True)
def _rows_into(plane, flat, pitch):
    """flat[i*pitch + j] = plane[i, j]: an output plane laid out at the phases' pitch."""
    for i in range(plane.shape[0]):
        row, start = plane[i], uint64(i * pitch)
        for j in range(uint64(plane.shape[1])):
            flat[start + j] = row[j]


@njit(cache=True)
def _rows_from(flat, pitch, plane):
    """plane[i, j] = flat[i*pitch + j]: the inverse of ``_rows_into``."""
    for i in range(plane.shape[0]):
        row, start = plane[i], uint64(i * pitch)
        for j in range(uint64(plane.shape[1])):
            row[j] = flat[start + j]


@parallel_kernel(cache=True, fastmath=FAST_MATH)
def depthwise_forward_kernel(x, weight, stride, padding, dilation, y):
    """y (N, O, Ho, Wo) += depthwise conv of x (N, C, H, W) with weight (O, KH, KW); y holds the bias (or 0)."""
    n_images, channels, height, width = x.shape
    outs, kh, kw = weight.shape
    multiplier = outs // channels
    rows, pitch, size, length = _layout((height, width), y.shape[2:], stride, padding)
    starts = _tap_starts(kh, kw, dilation, stride, rows, pitch)
    for task in prange(n_images * channels):
        n, c = task // channels, task % channels
        phases = np.zeros(size, x.dtype)
        _plane_into_phases(x[n, c], padding, stride, rows, pitch, phases)
        flat = np.empty(length, y.dtype)
        for o in range(c * multiplier, (c + 1) * multiplier):
            _rows_into(y[n, o], flat, pitch)
            for p in range(kh):
                for q in range(kw):
                    tap, start = weight[o, p, q], starts[p * kw + q]
                    for k in range(uint64(length)):
                        flat[k] += tap * phases[start + k]
            _rows_from(flat, pitch, y[n, o])


@parallel_kernel(cache=True, fastmath=FAST_MATH)
def depthwise_backward_input_kernel(grad_y, weight, stride, padding, dilation, grad_x):
    """grad_x (N, C, H, W) = the adjoint of ``depthwise_forward_kernel`` applied to grad_y (N, O, Ho, Wo)."""
    n_images, channels, height, width = grad_x.shape
    outs, kh, kw = weight.shape
    multiplier = outs // channels
    rows, pitch, size, length = _layout((height, width), grad_y.shape[2:], stride, padding)
    starts = _tap_starts(kh, kw, dilation, stride, rows, pitch)
    for task in prange(n_images * channels):
        n, c = task // channels, task % channels
        phases = np.zeros(size, grad_x.dtype)
        flat = np.zeros(length, grad_y.dtype)  # the columns past Wo stay 0: they add nothing
        for o in range(c * multiplier, (c + 1) * multiplier):
            _rows_into(grad_y[n, o], flat, pitch)
            for p in range(kh):
                for q in range(kw):
                    tap, start = weight[o, p, q], starts[p * kw + q]
                    for k in range(uint64(length)):
                        phases[start + k] += tap * flat[k]
        _plane_from_phases(phases, padding, stride, rows, pitch, grad_x[n, c])


@parallel_kernel(cache=True, fastmath=FAST_MATH)
def depthwise_backward_weight_kernel(grad_y, x, stride, padding, dilation, grad_w):
    """grad_w (O, KH, KW) = sum over images and output positions of grad_y (N, O, Ho, Wo) times shifted x (N, C, H, W)."""
    n_images, channels, height, width = x.shape
    outs, kh, kw = grad_w.shape
    multiplier = outs // channels
    rows, pitch, size, length = _layout((height, width), grad_y.shape[2:], stride, padding)
    starts = _tap_starts(kh, kw, dilation, stride, rows, pitch)
    for o in prange(outs):
        sums = np.zeros(kh * kw)  # float64: the sum of N*Ho*Wo products
        phases = np.zeros(size, x.dtype)
        flat = np.zeros(length, grad_y.dtype)  # the columns past Wo stay 0: they add nothing
        for n in range(n_images):
            _plane_into_phases(x[n, o // multiplier], padding, stride, rows, pitch, phases)
            _rows_into(grad_y[n, o], flat, pitch)
            for p in range(kh):
                for q in range(kw):
                    start = starts[p * kw + q]
                    plane_sum = flat[0] * 0  # zero of the input's dtype: the dot product vectorises
                    for k in range(uint64(length)):
                        plane_sum += flat[k] * phases[start + k]
                    sums[p * kw + q] += plane_sum
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
        y = np.empty(g.output_shape, dtype=x.dtype)
        y[...] = 0 if bias is None else bias[:, None, None]
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
        grad_x = np.empty(g.input_shape, dtype=grad_y.dtype)
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
