"""The GPU backend: minift's kernel contract on CuPy arrays, with hand-written CUDA C.

Implements the kernels of the contract (``minift.contract``: same shapes, same semantics
as the NumPy reference ``minift.reference``) for arrays on an NVIDIA GPU:

* ``matmul``: the shared-memory tiled GEMM of ``gemm.cu`` (128 x 128 tiles per block,
  8 x 8 outputs per thread), batched over broadcast batch dimensions.
* ``conv2d_*``: im2col (``conv.cu``) turns the convolution into one GEMM per chunk of
  samples; its backward pass is two more GEMMs and a col2im gather. With groups, one
  such convolution per group -- except a depthwise one (one input channel per group),
  which runs direct kernels (``depthwise.cu``): an im2col feeding a GEMM of one row per
  group would be all memory traffic.
* ``max_pool2d_*``, ``avg_pool2d_*``: one thread per output (forward), a scatter with
  atomics (max backward) or a gather (avg backward), in ``pool.cu``.
* ``softmax_*``, ``layer_norm_*``, ``gelu_*``: one block per row, reductions across the
  block in double (softmax, layer norm), or one thread per element (GELU), in ``transformer.cu``.
* ``batch_norm_*``: one block per channel for its statistics or gradient sums (in double,
  added in shared memory), then one thread per element for y or dL/dx, in ``batch_norm.cu``.
* ``dropout``: one thread per element, each hashing its own index for its draw, in ``dropout.cu``.
* ``attention_forward``: the GEMM, the softmax kernel, the GEMM again (no kernel of its own).

Each ``.cu`` file is written once for ``scalar_t`` and compiled by NVRTC (through
``cupy.RawModule``) twice, for float32 and float64, the first time a kernel is needed;
CuPy caches the result on disk. Shapes, dtypes, devices and windows were checked, and
the outputs sized, by the contract entry before a kernel here runs (each receives the
geometry), so a bad call fails with the same message as on the CPU; the only checks left
here are the GPU's own 32-bit index limits. Launch geometry lives in ``launch`` (plain
Python, tested without a GPU).

Kernels read the inputs' own strides where that saves a copy (the GEMM reads transposed
views directly); the convolution and pooling kernels read C-contiguous arrays, so the
host makes an input contiguous first, which copies only when it is not.
"""

from __future__ import annotations

import functools
import math

import cupy
import numpy as np

from minift.contract.geometry import ConvGeometry, MatmulGeometry, PoolGeometry, matmul_geometry
from minift.reference.dropout import keep_threshold

from . import launch


def check_available() -> None:
    """Raise, with the reason, unless CuPy can run minift's kernels on a GPU here.

    Importing CuPy proves little: it imports on a machine without a GPU or driver and
    fails only when the first array is created (``cudaErrorInsufficientDriver``,
    ``cudaErrorNoDevice``). So this allocates and computes a tiny array, then compiles
    one kernel (NVRTC ships separately from CuPy and may be missing).
    """
    try:
        probe = cupy.arange(4, dtype=cupy.float32)
        float((probe * probe).sum())
    except Exception as exc:  # the CUDA runtime raises several types; keep the message
        raise RuntimeError(f"CuPy imports but no CUDA device is usable: {exc}") from exc
    try:
        _kernel("pool.cu", "avg_pool2d_forward", np.float32)
    except Exception as exc:
        raise RuntimeError(f"CuPy runs but cannot compile minift's CUDA sources with NVRTC: {exc}") from exc


# ----------------------------------------------------------------------------------------
# Compiling and launching
# ----------------------------------------------------------------------------------------

@functools.cache
def _module(filename: str, dtype_name: str) -> cupy.RawModule:
    return cupy.RawModule(code=launch.cuda_source(filename), options=launch.compile_options(dtype_name))


def _kernel(filename: str, name: str, dtype) -> cupy.RawKernel:
    """Kernel ``name`` of ``kernels/<filename>``, built for ``dtype`` (float32 or float64)."""
    return _module(filename, np.dtype(dtype).name).get_function(name)


def _launch(kernel, grid_and_block, *args) -> None:
    """Run ``kernel`` (nothing to do when the grid is empty)."""
    grid, block = grid_and_block
    if 0 not in grid:
        kernel(grid, block, args)


# CuPy passes a Python int as a 64-bit `long long`; the kernels take `int` for sizes, so
# every scalar goes in with its exact C type.
def _int32(*values) -> tuple[np.int32, ...]:
    return tuple(np.int32(v) for v in values)


def _int64(*values) -> tuple[np.int64, ...]:
    return tuple(np.int64(v) for v in values)


# ----------------------------------------------------------------------------------------
# matmul
# ----------------------------------------------------------------------------------------

def matmul(a, b, g: MatmulGeometry):
    """``a (..., M, K) @ b (..., K, N) -> (..., M, N)`` with the tiled GEMM of ``gemm.cu``.

    Batch dimensions broadcast as in ``numpy.matmul``. Both operands are read through
    their strides (a transposed view costs no copy); an operand whose broadcast batch
    dimensions cannot be walked with one stride is first copied contiguous.
    float32 and float64 run the same kernel source, compiled for each.
    """
    launch.check_int32_matrix("matmul", g.m, g.k, g.n)
    dtype, batch_shape, m, k, n = a.dtype, g.batch_shape, g.m, g.k, g.n
    a, a_batch_stride = _batched_operand(a, batch_shape)
    b, b_batch_stride = _batched_operand(b, batch_shape)
    a_strides = launch.element_strides(a.strides, a.itemsize)
    b_strides = launch.element_strides(b.strides, b.itemsize)
    batch = math.prod(batch_shape)

    out = cupy.empty((*batch_shape, m, n), dtype)
    _launch(
        _kernel("gemm.cu", "gemm_tiled", dtype),
        launch.gemm_launch(m, n, batch),
        a, b, out,
        *_int32(m, n, k),
        *_int64(a_strides[-2], a_strides[-1], b_strides[-2], b_strides[-1], a_batch_stride, b_batch_stride),
        np.int32(batch),
    )
    return out


def _matrix_product(a, b):
    """``a (M, K) @ b (K, N)``, two matrices, on the tiled GEMM."""
    return matmul(a, b, MatmulGeometry((), a.shape[0], a.shape[1], b.shape[1]))


def _batched_operand(x, batch_shape):
    """``x`` and the stride from one batch matrix to the next (0 when broadcast)."""
    strides = launch.element_strides(x.strides, x.itemsize)
    aligned = launch.broadcast_batch_strides(batch_shape, x.shape[:-2], strides[:-2])
    stride = launch.flat_batch_stride(batch_shape, aligned)
    if stride is None:
        x = cupy.ascontiguousarray(cupy.broadcast_to(x, (*batch_shape, *x.shape[-2:])))
        stride = x.shape[-2] * x.shape[-1]
    return x, stride


# ----------------------------------------------------------------------------------------
# conv2d: im2col + GEMM; depthwise: direct kernels; other groups: im2col + GEMM per group
# ----------------------------------------------------------------------------------------

def conv2d_forward(x, weight, bias, g: ConvGeometry):
    """``y (N, O, Ho, Wo)``, plus bias: ``_dense_forward`` (per group), or ``depthwise_forward``."""
    launch.check_int32_planes("conv2d_forward", x=g.input_shape, weight=g.weight_shape)
    x = cupy.ascontiguousarray(x)
    if g.groups == 1:
        y = _dense_forward(x, weight, g)
    elif g.depthwise:
        y = cupy.empty(g.output_shape, x.dtype)
        _launch(_kernel("depthwise.cu", "depthwise_forward", x.dtype), launch.elementwise_launch(y.size),
                x, cupy.ascontiguousarray(weight), y, *_depthwise_sizes(g))
    else:
        y = cupy.empty(g.output_shape, x.dtype)
        for inputs, outputs in _groups(g):
            y[:, outputs] = _dense_forward(cupy.ascontiguousarray(x[:, inputs]), weight[outputs], g.one_group())
    if bias is not None:
        y += bias.reshape(1, g.o, 1, 1)
    return y


def conv2d_backward_input(grad_y, weight, g: ConvGeometry):
    """``dL/dx`` (N, C, H, W): ``_dense_backward_input`` (per group), or ``depthwise_backward_input``."""
    launch.check_int32_planes("conv2d_backward_input", input_shape=g.input_shape, weight=g.weight_shape)
    if g.groups == 1:
        return _dense_backward_input(grad_y, weight, g)
    grad_x = cupy.empty(g.input_shape, grad_y.dtype)
    if g.depthwise:
        _launch(_kernel("depthwise.cu", "depthwise_backward_input", grad_y.dtype), launch.elementwise_launch(grad_x.size),
                cupy.ascontiguousarray(grad_y), cupy.ascontiguousarray(weight), grad_x, *_depthwise_sizes(g))
        return grad_x
    for inputs, outputs in _groups(g):
        grad_x[:, inputs] = _dense_backward_input(grad_y[:, outputs], weight[outputs], g.one_group())
    return grad_x


def conv2d_backward_weight(grad_y, x, g: ConvGeometry):
    """``dL/dW`` (O, C/groups, KH, KW): ``_dense_backward_weight`` (per group), or
    ``depthwise_backward_weight`` (one block of threads per weight element)."""
    launch.check_int32_planes("conv2d_backward_weight", x=g.input_shape, weight_shape=g.weight_shape)
    x = cupy.ascontiguousarray(x)
    if g.groups == 1:
        return _dense_backward_weight(grad_y, x, g)
    grad_w = cupy.empty(g.weight_shape, x.dtype)
    if g.depthwise:
        _launch(_kernel("depthwise.cu", "depthwise_backward_weight", x.dtype), launch.reduction_launch(grad_w.size),
                cupy.ascontiguousarray(grad_y), x, grad_w, *_depthwise_sizes(g))
        return grad_w
    for inputs, outputs in _groups(g):
        grad_w[outputs] = _dense_backward_weight(grad_y[:, outputs], cupy.ascontiguousarray(x[:, inputs]),
                                                 g.one_group())
    return grad_w


def _groups(g: ConvGeometry):
    """(input channels, output channels) slices of each group."""
    return [(slice(k * g.c_group, (k + 1) * g.c_group), slice(k * g.o_group, (k + 1) * g.o_group))
            for k in range(g.groups)]


def _depthwise_sizes(g: ConvGeometry):
    return _int32(g.n, g.c, g.h, g.w, g.o, g.kh, g.kw, g.ho, g.wo, *g.stride, *g.padding, *g.dilation)


def _dense_forward(x, weight, g: ConvGeometry):
    """``y (N, O, Ho, Wo)`` of one group: for each chunk of samples, ``W (O, C*KH*KW) @ im2col(x)``.

    The GEMM yields ``(O, S*Ho*Wo)`` for the chunk's S samples, copied into ``y``'s
    ``(S, O, Ho, Wo)`` layout. ``x`` is C-contiguous.
    """
    weight_matrix = weight.reshape(g.o, g.taps)
    y = cupy.empty(g.output_shape, x.dtype)
    for start, stop in _sample_chunks(g, x.dtype):
        y_chunk = _matrix_product(weight_matrix, _im2col(x[start:stop], g))
        y[start:stop] = y_chunk.reshape(g.o, stop - start, g.ho, g.wo).transpose(1, 0, 2, 3)
    return y


def _dense_backward_input(grad_y, weight, g: ConvGeometry):
    """``dL/dx`` (N, C, H, W) of one group: ``col2im(W^T @ dY)`` per chunk of samples.

    ``W^T`` is a transposed view of the weight, read by the GEMM without a copy.
    """
    weight_t = weight.reshape(g.o, g.taps).T
    grad_x = cupy.empty(g.input_shape, grad_y.dtype)
    for start, stop in _sample_chunks(g, grad_y.dtype):
        grad_cols = _matrix_product(weight_t, _channel_major(grad_y[start:stop]))
        _col2im(grad_cols, grad_x[start:stop], g)
    return grad_x


def _dense_backward_weight(grad_y, x, g: ConvGeometry):
    """``dL/dW`` (O, C, KH, KW) of one group: the sum over chunks of ``dY (O, S*Ho*Wo) @ im2col(x)^T``.

    ``im2col(x)^T`` is a transposed view; the GEMM's K dimension runs over every output
    pixel of every sample in the chunk. ``x`` is C-contiguous.
    """
    grad_w = cupy.zeros((g.o, g.taps), x.dtype)
    for start, stop in _sample_chunks(g, x.dtype):
        grad_w += _matrix_product(_channel_major(grad_y[start:stop]), _im2col(x[start:stop], g).T)
    return grad_w.reshape(g.weight_shape)


def _sample_chunks(g: ConvGeometry, dtype):
    """Sample ranges whose im2col matrix stays within ``launch.IM2COL_WORKSPACE_BYTES``."""
    bytes_per_sample = g.taps * g.ho * g.wo * np.dtype(dtype).itemsize
    return launch.sample_chunks(g.n, bytes_per_sample, launch.IM2COL_WORKSPACE_BYTES)


def _conv_sizes(samples: int, g: ConvGeometry):
    return _int32(samples, g.c, g.h, g.w, g.kh, g.kw, g.ho, g.wo, *g.stride, *g.padding, *g.dilation)


def _im2col(x, g: ConvGeometry):
    """``cols (C*KH*KW, S*Ho*Wo)`` of a C-contiguous chunk ``x (S, C, H, W)`` (see conv.cu)."""
    samples = x.shape[0]
    cols = cupy.empty((g.taps, samples * g.ho * g.wo), x.dtype)
    _launch(_kernel("conv.cu", "im2col", x.dtype), launch.elementwise_launch(cols.size),
            x, cols, *_conv_sizes(samples, g))
    return cols


def _col2im(cols, grad_x, g: ConvGeometry) -> None:
    """Write into the C-contiguous chunk ``grad_x (S, C, H, W)`` the sums of ``cols`` (see conv.cu)."""
    _launch(_kernel("conv.cu", "col2im", cols.dtype), launch.elementwise_launch(grad_x.size),
            cols, grad_x, *_conv_sizes(grad_x.shape[0], g))


def _channel_major(y):
    """``(S, O, Ho, Wo) -> (O, S*Ho*Wo)`` (a copy): the layout the GEMM reads and writes."""
    return cupy.ascontiguousarray(y.transpose(1, 0, 2, 3)).reshape(y.shape[1], -1)


# ----------------------------------------------------------------------------------------
# Pooling
# ----------------------------------------------------------------------------------------

def _pool_sizes(g: PoolGeometry, with_dilation: bool):
    sizes = (g.n * g.c, g.h, g.w, g.kh, g.kw, g.ho, g.wo, *g.stride, *g.padding)
    return _int32(*sizes, *(g.dilation if with_dilation else ()))


def _divisors(g: PoolGeometry, dtype):
    """The average's window divisors along the rows and the columns (``PoolGeometry.divisors``), on the GPU."""
    return tuple(cupy.asarray(counts, dtype=dtype) for counts in g.divisors())


def max_pool2d_forward(x, g: PoolGeometry):
    """``(y, indices)`` of ``(N, C, Ho, Wo)``: each window's maximum and its flat ``h * W + w``.

    One thread per output scans its window in row-major order (first maximum wins).
    """
    launch.check_int32_planes("max_pool2d_forward", x=g.input_shape)
    dtype = x.dtype
    x = cupy.ascontiguousarray(x)
    y = cupy.empty(g.output_shape, dtype)
    indices = cupy.empty(g.output_shape, cupy.int64)
    _launch(_kernel("pool.cu", "max_pool2d_forward", dtype), launch.elementwise_launch(y.size),
            x, y, indices, *_pool_sizes(g, with_dilation=True))
    return y, indices


def max_pool2d_backward(grad_y, indices, input_shape):
    """``grad_x`` of ``input_shape``: zeros, with each ``grad_y`` atomically added at its index.

    ``indices`` come from ``max_pool2d_forward`` on an input of ``input_shape``
    (integers, read as int64; the contract checked that each lies in the input plane,
    waiting for the GPU's answer, so no write falls out of bounds).
    """
    n, c, h, w = input_shape
    _, _, ho, wo = grad_y.shape
    launch.check_int32_planes("max_pool2d_backward", input_shape=(n, c, h, w), grad_y=grad_y.shape)
    dtype = grad_y.dtype

    grad_y = cupy.ascontiguousarray(grad_y)
    indices = cupy.ascontiguousarray(indices, dtype=cupy.int64)
    grad_x = cupy.zeros((n, c, h, w), dtype)
    _launch(_kernel("pool.cu", "max_pool2d_backward", dtype), launch.elementwise_launch(grad_y.size),
            grad_y, indices, grad_x, np.int64(grad_y.size), *_int32(ho * wo, h * w))
    return grad_x


def avg_pool2d_forward(x, g: PoolGeometry):
    """``y (N, C, Ho, Wo)``: each zero-padded window's sum over its divisor (``KH * KW`` by default)."""
    launch.check_int32_planes("avg_pool2d_forward", x=g.input_shape)
    dtype = x.dtype
    x = cupy.ascontiguousarray(x)
    y = cupy.empty(g.output_shape, dtype)
    _launch(_kernel("pool.cu", "avg_pool2d_forward", dtype), launch.elementwise_launch(y.size),
            x, y, *_divisors(g, dtype), *_pool_sizes(g, with_dilation=False))
    return y


def avg_pool2d_backward(grad_y, g: PoolGeometry):
    """``grad_x`` (N, C, H, W): each input gathers ``grad_y / divisor`` of every window holding it."""
    launch.check_int32_planes("avg_pool2d_backward", input_shape=g.input_shape)
    dtype = grad_y.dtype

    grad_y = cupy.ascontiguousarray(grad_y)
    grad_x = cupy.empty((g.n, g.c, g.h, g.w), dtype)
    _launch(_kernel("pool.cu", "avg_pool2d_backward", dtype), launch.elementwise_launch(grad_x.size),
            grad_y, grad_x, *_divisors(g, dtype), *_pool_sizes(g, with_dilation=False))
    return grad_x


# ----------------------------------------------------------------------------------------
# The transformer's row kernels (transformer.cu): one block per row of the last axis
# ----------------------------------------------------------------------------------------

def _row_count(x) -> int:
    return x.size // x.shape[-1] if x.shape[-1] else 0


def softmax_forward(x, bias):
    """z = softmax(x + bias) along the last axis; a broadcast mask is laid out in full first."""
    x = cupy.ascontiguousarray(x)
    z = cupy.empty_like(x)
    full_bias = x if bias is None else cupy.ascontiguousarray(cupy.broadcast_to(bias, x.shape))
    _launch(_kernel("transformer.cu", "softmax_forward", x.dtype), launch.row_launch(_row_count(x), "softmax_forward"),
            x, full_bias, z, *_int32(x.shape[-1], bias is not None))
    return z


def softmax_backward(grad_z, z):
    """dL/dx = z * (g - sum(g * z)) along the last axis."""
    grad_z, z = cupy.ascontiguousarray(grad_z), cupy.ascontiguousarray(z)
    grad_x = cupy.empty_like(z)
    _launch(_kernel("transformer.cu", "softmax_backward", z.dtype), launch.row_launch(_row_count(z), "softmax_backward"),
            grad_z, z, grad_x, np.int32(z.shape[-1]))
    return grad_x


def attention_forward(q, k, v, bias, scale):
    """softmax(scale * q k^T + bias) v: ``matmul``, ``softmax_forward`` and ``matmul`` in turn
    (on a GPU each step already fills the device; the scores make a trip through its memory)."""
    name = "attention_forward"
    scaled, keys = q * q.dtype.type(scale), cupy.swapaxes(k, -1, -2)
    scores = matmul(scaled, keys, matmul_geometry(name, scaled.shape, keys.shape))
    probabilities = softmax_forward(scores, bias)
    return matmul(probabilities, v, matmul_geometry(name, probabilities.shape, v.shape))


def layer_norm_forward(x, weight, bias, eps):
    """(y, mean, rstd) over the last axis (weight and bias optional)."""
    x = cupy.ascontiguousarray(x)
    width = x.shape[-1]
    y = cupy.empty_like(x)
    mean, rstd = cupy.empty(x.shape[:-1], x.dtype), cupy.empty(x.shape[:-1], x.dtype)
    _launch(_kernel("transformer.cu", "layer_norm_forward", x.dtype),
            launch.row_launch(_row_count(x), "layer_norm_forward"),
            x, x if weight is None else cupy.ascontiguousarray(weight), x if bias is None else cupy.ascontiguousarray(bias),
            y, mean, rstd, np.int32(width), np.float64(1 / max(width, 1)), np.float64(eps),
            *_int32(weight is not None, bias is not None))
    return y, mean, rstd


def layer_norm_backward(grad_y, x, mean, rstd, weight):
    """(grad_x, grad_weight or None, grad_bias): one block per row, then one thread per column."""
    grad_y, x = cupy.ascontiguousarray(grad_y), cupy.ascontiguousarray(x)
    mean, rstd = cupy.ascontiguousarray(mean), cupy.ascontiguousarray(rstd)
    width, rows = x.shape[-1], _row_count(x)
    grad_x = cupy.empty_like(x)
    grad_weight, grad_bias = cupy.empty(width, x.dtype), cupy.empty(width, x.dtype)
    _launch(_kernel("transformer.cu", "layer_norm_backward_input", x.dtype),
            launch.row_launch(rows, "layer_norm_backward"),
            grad_y, x, mean, rstd, x if weight is None else cupy.ascontiguousarray(weight), grad_x,
            np.int32(width), np.float64(1 / max(width, 1)), np.int32(weight is not None))
    _launch(_kernel("transformer.cu", "layer_norm_backward_parameters", x.dtype), launch.elementwise_launch(width),
            grad_y, x, mean, rstd, grad_weight, grad_bias, np.int64(rows), np.int32(width))
    return grad_x, None if weight is None else grad_weight, grad_bias


def gelu_forward(x):
    """(y, cdf), y = x * cdf, cdf = (1 + erf(x / sqrt 2)) / 2, element-wise."""
    x = cupy.ascontiguousarray(x)
    y, cdf = cupy.empty_like(x), cupy.empty_like(x)
    _launch(_kernel("transformer.cu", "gelu_forward", x.dtype), launch.elementwise_launch(x.size),
            x, y, cdf, np.int64(x.size))
    return y, cdf


def gelu_backward(grad_y, x, cdf):
    """dL/dx = g * (cdf + x * exp(-x**2 / 2) / sqrt(2 pi)), element-wise."""
    grad_y, x, cdf = (cupy.ascontiguousarray(a) for a in (grad_y, x, cdf))
    grad_x = cupy.empty_like(x)
    _launch(_kernel("transformer.cu", "gelu_backward", x.dtype), launch.elementwise_launch(x.size),
            grad_y, x, cdf, grad_x, np.int64(x.size))
    return grad_x


# ----------------------------------------------------------------------------------------
# Batch normalisation (batch_norm.cu): one block per channel for the sums, then element-wise
# ----------------------------------------------------------------------------------------

def _channel_sizes(x):
    """(N, C, L) of ``x (N, C, ...)``, L the product of the trailing sizes, as the kernels' ints."""
    return _int32(x.shape[0], x.shape[1], math.prod(x.shape[2:]))


def batch_norm_forward(x, weight, bias, eps, mean=None, var=None):
    """(y, mean, var) per channel: the batch statistics (one block per channel) unless given,
    then y = (x - mean) * scale + shift element-wise, scale = weight / sqrt(var + eps), shift = bias."""
    launch.check_int32_channels("batch_norm_forward", x.shape)
    x = cupy.ascontiguousarray(x)
    samples, channels, length = _channel_sizes(x)
    if mean is None:
        stats = cupy.empty((2, channels), cupy.float64)
        _launch(_kernel("batch_norm.cu", "batch_norm_statistics", x.dtype), launch.reduction_launch(channels),
                x, stats, samples, channels, length, np.float64(1 / max(samples * length, 1)))
        mean, var = stats
    mean, var = mean.astype(np.float64), var.astype(np.float64)
    scale = 1 / cupy.sqrt(var + eps)
    if weight is not None:
        scale *= weight
    shift = cupy.zeros(channels, x.dtype) if bias is None else bias
    y = cupy.empty_like(x)
    _launch(_kernel("batch_norm.cu", "batch_norm_apply", x.dtype), launch.elementwise_launch(x.size),
            x, mean.astype(x.dtype), scale.astype(x.dtype), cupy.ascontiguousarray(shift, x.dtype), y,
            np.int64(x.size), channels, length)
    return y, mean.astype(x.dtype), var.astype(x.dtype)


def batch_norm_backward(grad_y, x, mean, rstd, weight, training):
    """(grad_x, grad_weight or None, grad_bias): the sums of g and g * (x - mean) per channel
    (one block each), then dL/dx element-wise."""
    launch.check_int32_channels("batch_norm_backward", x.shape)
    grad_y, x, mean = cupy.ascontiguousarray(grad_y), cupy.ascontiguousarray(x), cupy.ascontiguousarray(mean)
    samples, channels, length = _channel_sizes(x)
    sums = cupy.zeros((2, channels), cupy.float64)
    _launch(_kernel("batch_norm.cu", "batch_norm_gradient_sums", x.dtype), launch.reduction_launch(channels),
            grad_y, x, mean, sums, samples, channels, length)
    sum_g, sum_gd = sums
    r = rstd.astype(np.float64)
    scale = r if weight is None else r * weight
    grad_x = cupy.empty_like(x)
    if training:
        inv_count = 1 / max(samples * length, 1)
        _launch(_kernel("batch_norm.cu", "batch_norm_backward_input", x.dtype), launch.elementwise_launch(x.size),
                grad_y, x, (sum_g * inv_count).astype(x.dtype), scale.astype(x.dtype), mean,
                (sum_gd * inv_count * r * r).astype(x.dtype), grad_x, np.int64(x.size), channels, length)
    else:
        zeros = cupy.zeros(channels, x.dtype)
        _launch(_kernel("batch_norm.cu", "batch_norm_apply", x.dtype), launch.elementwise_launch(x.size),
                grad_y, zeros, scale.astype(x.dtype), zeros, grad_x, np.int64(x.size), channels, length)
    grad_weight = None if weight is None else (sum_gd * r).astype(x.dtype)
    return grad_x, grad_weight, sum_g.astype(x.dtype)


# ----------------------------------------------------------------------------------------
# Dropout (dropout.cu): one thread per element
# ----------------------------------------------------------------------------------------

def dropout(x, p, key):
    """y = x * keep / (1 - p), keep_i = (splitmix64(key, i) >> 11) >= ceil(p * 2**53), element-wise."""
    x = cupy.ascontiguousarray(x)
    y = cupy.empty_like(x)
    _launch(_kernel("dropout.cu", "dropout", x.dtype), launch.elementwise_launch(x.size),
            x, y, np.uint64(key), np.uint64(keep_threshold(p)), np.float64(1 / (1 - p)), np.int64(x.size))
    return y
