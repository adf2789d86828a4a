"""The kernel contract: the hot paths every backend implements, checked once, then dispatched.

minift's ops never run a convolution or a matmul themselves; they call the entries below.
Each entry checks its arguments -- once, here, with ``checks`` and ``geometry`` -- sizes
the call (a ``MatmulGeometry``, ``ConvGeometry`` or ``PoolGeometry``), and hands the
arrays and that geometry to the kernel of the same name in the backend that
``minift.backend`` selects (the NumPy reference, the Numba kernels or the CuPy kernels;
its docstring has the table).

The entries that multiply matrices (matmul, the convolutions, attention) also give a CPU
kernel the threads its size pays for, BLAS's among them (``minift.backend.threads.kernel_threads``).

A kernel therefore holds only its loops: it may assume what the entry checked. A bad call
fails here, before any backend runs, with the same message on every backend.

Rules every entry keeps: it reads any strided input, never writes to its inputs, and
returns new C-contiguous arrays of the input's floating dtype, float32 or float64; all
floating inputs of one call share that dtype and one device (anything else is a
TypeError, never a silent upcast); an empty batch, N = 0, is allowed (except for batch
statistics, which need at least one value per channel).

Each entry's docstring below is the one definition of what it computes; each backend's
kernel of that name computes exactly that, from the checked geometry.
"""

from __future__ import annotations

import math
import numbers
from contextlib import nullcontext

import numpy as np

from minift import backend
from minift.backend import threads
from minift.contract.checks import check_float_arrays, check_ndim, check_same_shape, check_shape_argument
from minift.contract.geometry import conv2d_geometry, matmul_geometry, max_pool2d_backward_shape, pool2d_geometry

ROW_KERNELS = (
    "softmax_forward",
    "softmax_backward",
    "layer_norm_forward",
    "layer_norm_backward",
    "gelu_forward",
    "gelu_backward",
)

BATCH_NORM_KERNELS = (
    "batch_norm_forward",
    "batch_norm_backward",
)

CONTRACT = (
    "matmul",
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    *ROW_KERNELS,
    *BATCH_NORM_KERNELS,
    "dropout",
    "attention_forward",
)
"""The names of the contract's entries: every backend module defines a kernel of each name.
``ROW_KERNELS``: the transformer's row-wise and element-wise ones (``minift.reference.transformer``);
``BATCH_NORM_KERNELS``: batch normalisation, per channel (``minift.reference.batch_norm``);
``dropout``: the counter-based mask (``minift.reference.dropout``); ``attention_forward``:
attention's output for inference (``minift.reference.transformer``)."""


def _threads(kernel: str, array, multiply_adds: int):
    """Where a kernel multiplies matrices on the CPU: the threads its size pays for, BLAS's
    among them (``threads.kernel_threads``), at rest again after it."""
    return threads.kernel_threads(kernel, multiply_adds) if isinstance(array, np.ndarray) else nullcontext()


def matmul(a, b):
    """``a (..., M, K) @ b (..., K, N) -> (..., M, N)``; batch dimensions broadcast as in
    ``numpy.matmul``. Both operands are at least 2-D (the op layer handles 1-D cases).
    Kernel: ``matmul(a, b, g: MatmulGeometry)``.
    """
    check_float_arrays("matmul", a=a, b=b)
    g = matmul_geometry("matmul", a.shape, b.shape)
    with _threads("matmul", a, g.multiply_adds):
        return backend.implementation("matmul", a)(a, b, g)


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups=1):
    """``y = conv2d(x, weight) + bias``, grouped.

    ``x (N, C, H, W)``, ``weight (O, C/G, KH, KW)``, ``bias (O,)`` or ``None``; ``stride``,
    ``padding``, ``dilation`` are ``(int, int)`` pairs for (height, width); ``groups`` G
    divides C and O. Zero padding. ``Ho = (H + 2*ph - dh*(KH-1) - 1) // sh + 1`` (likewise
    ``Wo``), and, with ``g = o // (O/G)`` the group of output channel o::

        y[n, o, i, j] = bias[o] + sum_{c<C/G, p, q} weight[o, c, p, q] * xpad[n, g*C/G + c, i*sh + p*dh, j*sw + q*dw]

    returns ``y (N, O, Ho, Wo)``. G = 1 is the ordinary convolution; G = C is depthwise
    (each output plane filters one input plane). Kernel: ``conv2d_forward(x, weight, bias,
    g: ConvGeometry)``.
    """
    name = "conv2d_forward"
    check_float_arrays(name, x=x, weight=weight, **({} if bias is None else {"bias": bias}))
    check_ndim(name, "x", x, 4, "(N, C, H, W)")
    check_ndim(name, "weight", weight, 4, "(O, C/groups, KH, KW)")
    g = conv2d_geometry(name, x.shape, weight.shape, stride, padding, dilation, groups)
    if bias is not None:
        check_same_shape(name, "bias", bias.shape, (g.o,), "one entry per output channel")
    with _threads(name, x, g.multiply_adds):
        return backend.implementation(name, x)(x, weight, bias, g)


def conv2d_backward_input(grad_y, weight, input_shape, stride, padding, dilation, groups=1):
    """``dL/dx`` of ``conv2d_forward``: ``grad_y (N, O, Ho, Wo)``, returns ``grad_x`` of
    ``input_shape = (N, C, H, W)``, the transposed convolution::

        grad_x[n, g*C/G + c, h, w] = sum over o in group g and (i, p), (j, q) with
            i*sh + p*dh - ph == h, j*sw + q*dw - pw == w  of  weight[o, c, p, q] * grad_y[n, o, i, j]

    (rows and columns of the input that no window reaches get zero). It is also
    ``conv_transpose2d``'s forward pass. Kernel: ``conv2d_backward_input(grad_y, weight, g)``.
    """
    name = "conv2d_backward_input"
    check_float_arrays(name, grad_y=grad_y, weight=weight)
    check_ndim(name, "weight", weight, 4, "(O, C/groups, KH, KW)")
    input_shape = check_shape_argument(name, "input_shape", input_shape, "(N, C, H, W)")
    g = conv2d_geometry(name, input_shape, weight.shape, stride, padding, dilation, groups)
    check_same_shape(name, "grad_y", grad_y.shape, g.output_shape, "the output shape of this convolution")
    with _threads(name, grad_y, g.multiply_adds):
        return backend.implementation(name, grad_y)(grad_y, weight, g)


def conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation, groups=1):
    """``dL/dW`` of ``conv2d_forward``: returns ``grad_w`` of ``weight_shape = (O, C/G, KH, KW)``,
    ``grad_w[o,c,p,q] = sum_{n,i,j} grad_y[n,o,i,j] * xpad[n, g*C/G + c, i*sh + p*dh, j*sw + q*dw]``
    (g: the group of o).
    (``dL/dbias = grad_y.sum((0, 2, 3))`` is computed by the op, not by a kernel.)
    Kernel: ``conv2d_backward_weight(grad_y, x, g)``.
    """
    name = "conv2d_backward_weight"
    check_float_arrays(name, grad_y=grad_y, x=x)
    check_ndim(name, "x", x, 4, "(N, C, H, W)")
    weight_shape = check_shape_argument(name, "weight_shape", weight_shape, "(O, C/groups, KH, KW)")
    g = conv2d_geometry(name, x.shape, weight_shape, stride, padding, dilation, groups)
    check_same_shape(name, "grad_y", grad_y.shape, g.output_shape, "the output shape of this convolution")
    with _threads(name, grad_y, g.multiply_adds):
        return backend.implementation(name, grad_y)(grad_y, x, g)


def max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode=False):
    """``y, indices``: the maximum of each window and where it is. ``x (N, C, H, W)``;
    ``kernel_size``, ``stride``, ``padding``, ``dilation`` pairs of ints; padding is with ``-inf`` and
    ``padding <= kernel_size // 2`` (PyTorch's rule). Returns ``(y, indices)``, both
    ``(N, C, Ho, Wo)``; ``indices`` is int64, the flat index ``h * W + w`` into the
    *unpadded* input plane of the maximum. Among equal maxima the first in row-major
    window order wins (PyTorch's rule); a NaN in a window wins over numbers (the first
    NaN). A window made only of padding (possible with dilation) is refused with a
    ValueError rather than returning -inf with an out-of-range index. ``ceil_mode``:
    ``Ho`` counted with ``ceil`` instead of ``floor`` (PyTorch's rule, see
    ``geometry.ceil_output_size``); a last window may run past the padded input.
    Kernel: ``max_pool2d_forward(x, g: PoolGeometry)``.
    """
    name = "max_pool2d_forward"
    check_float_arrays(name, x=x)
    check_ndim(name, "x", x, 4, "(N, C, H, W)")
    g = pool2d_geometry(name, x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    return backend.implementation(name, x)(x, g)


def max_pool2d_backward(grad_y, indices, input_shape):
    """``dL/dx`` of ``max_pool2d_forward``: ``grad_x`` of ``input_shape``, zeros, then ``grad_y`` scatter-*added* at
    ``indices`` (overlapping windows may pick the same element).
    Kernel: ``max_pool2d_backward(grad_y, indices, input_shape)`` with the checked tuple.
    """
    name = "max_pool2d_backward"
    check_float_arrays(name, grad_y=grad_y)
    input_shape = max_pool2d_backward_shape(name, grad_y, indices, input_shape)
    return backend.implementation(name, grad_y)(grad_y, indices, input_shape)


def avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True):
    """The mean of each window: ``y[n, c, i, j] = (sum of the window's input elements) / divisor[i, j]``.

    Zero padding with ``padding <= kernel_size // 2``. The divisor (PyTorch's rule,
    ``PoolGeometry.divisors``) is ``KH * KW`` in floor mode with ``count_include_pad=True``
    (the defaults); the window's part inside the padded input with ``ceil_mode``; only its
    part on the input with ``count_include_pad=False``. Returns ``y (N, C, Ho, Wo)``.
    Kernel: ``avg_pool2d_forward(x, g: PoolGeometry)``.
    """
    name = "avg_pool2d_forward"
    check_float_arrays(name, x=x)
    check_ndim(name, "x", x, 4, "(N, C, H, W)")
    g = pool2d_geometry(name, x.shape, kernel_size, stride, padding, (1, 1), ceil_mode, count_include_pad)
    return backend.implementation(name, x)(x, g)


def avg_pool2d_backward(grad_y, input_shape, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True):
    """``dL/dx`` of ``avg_pool2d_forward``: ``grad_x`` of ``input_shape``, each
    ``grad_y[n,c,i,j] / divisor[i, j]`` added to every input element of its window. Kernel: ``avg_pool2d_backward(grad_y, g: PoolGeometry)``.
    """
    name = "avg_pool2d_backward"
    check_float_arrays(name, grad_y=grad_y)
    input_shape = check_shape_argument(name, "input_shape", input_shape, "(N, C, H, W)")
    g = pool2d_geometry(name, input_shape, kernel_size, stride, padding, (1, 1), ceil_mode, count_include_pad)
    check_same_shape(name, "grad_y", grad_y.shape, g.output_shape, "the pooled shape of input_shape")
    return backend.implementation(name, grad_y)(grad_y, g)


# The transformer's row-wise and element-wise kernels. Rows are the last axis; the formulas,
# and why these are kernels at all, are in ``minift.reference.transformer``. Kernels get the
# checked arrays (and ``eps``) and return new C-contiguous arrays.


def _check_vector(name, label, vector, x):
    if vector is not None:
        check_same_shape(name, label, vector.shape, x.shape[-1:], "one entry per feature of the last axis")


def _check_has_rows(name, x):
    if x.ndim < 1:
        raise ValueError(f"{name}: x must have at least one axis (..., D), got shape {tuple(x.shape)}")


def _check_eps(name, eps):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps >= 0:
        raise ValueError(f"{name}: eps must be a number >= 0, got {eps!r}")


def _check_additive_mask(name, bias, shape, what):
    """``bias`` is None or broadcasts to ``shape`` (``what`` names it) without stretching it."""
    if bias is None:
        return
    try:
        broadcast = tuple(np.broadcast_shapes(bias.shape, shape))
    except ValueError:
        broadcast = None
    if broadcast != tuple(shape):
        raise ValueError(f"{name}: bias of shape {tuple(bias.shape)} must broadcast to {what} {tuple(shape)}")


def softmax_forward(x, bias=None):
    """``z = softmax(x + bias)`` along the last axis of ``x (..., S)``; ``bias`` None or an
    additive mask that broadcasts to x (0 = allowed, -inf = not: a row masked everywhere
    is NaN, as in PyTorch). Kernel: ``softmax_forward(x, bias)``.
    """
    name = "softmax_forward"
    check_float_arrays(name, x=x, **({} if bias is None else {"bias": bias}))
    _check_has_rows(name, x)
    _check_additive_mask(name, bias, x.shape, "x's shape")
    return backend.implementation(name, x)(x, bias)


def softmax_backward(grad_z, z):
    """The attention-probabilities backward: ``dL/dx = z * (g - sum(g * z))`` along the last
    axis, from ``grad_z`` and ``z`` of one shape. Kernel: ``softmax_backward(grad_z, z)``.
    """
    name = "softmax_backward"
    check_float_arrays(name, grad_z=grad_z, z=z)
    check_same_shape(name, "grad_z", grad_z.shape, z.shape, "the shape of z")
    return backend.implementation(name, z)(grad_z, z)


def layer_norm_forward(x, weight=None, bias=None, eps=1e-5):
    """``(y, mean, rstd)``: layer norm over the last axis of ``x (..., D)``, ``weight``,
    ``bias (D,)`` or None, ``eps >= 0``; mean and rstd of shape ``x.shape[:-1]``.
    Kernel: ``layer_norm_forward(x, weight, bias, eps)``.
    """
    name = "layer_norm_forward"
    check_float_arrays(name, x=x, **{k: v for k, v in (("weight", weight), ("bias", bias)) if v is not None})
    _check_has_rows(name, x)
    _check_vector(name, "weight", weight, x)
    _check_vector(name, "bias", bias, x)
    _check_eps(name, eps)
    return backend.implementation(name, x)(x, weight, bias, float(eps))


def layer_norm_backward(grad_y, x, mean, rstd, weight=None):
    """``(grad_x, grad_weight, grad_bias)`` of ``layer_norm_forward`` from its ``mean`` and
    ``rstd``; grad_weight is None when weight is. Kernel: ``layer_norm_backward(grad_y, x, mean, rstd, weight)``.
    """
    name = "layer_norm_backward"
    check_float_arrays(name, grad_y=grad_y, x=x, mean=mean, rstd=rstd, **({} if weight is None else {"weight": weight}))
    _check_has_rows(name, x)
    _check_vector(name, "weight", weight, x)
    check_same_shape(name, "grad_y", grad_y.shape, x.shape, "the shape of x")
    for label, array in (("mean", mean), ("rstd", rstd)):
        check_same_shape(name, label, array.shape, x.shape[:-1], "one per row of x")
    return backend.implementation(name, x)(grad_y, x, mean, rstd, weight)


def gelu_forward(x):
    """``(y, cdf)``: GELU with the exact normal CDF, ``y = x * cdf``, ``cdf = (1 + erf(x / sqrt 2)) / 2``.
    Kernel: ``gelu_forward(x)``.
    """
    check_float_arrays("gelu_forward", x=x)
    return backend.implementation("gelu_forward", x)(x)


def gelu_backward(grad_y, x, cdf):
    """``dL/dx = g * (cdf + x * exp(-x**2 / 2) / sqrt(2 pi))`` from ``gelu_forward``'s cdf.
    Kernel: ``gelu_backward(grad_y, x, cdf)``.
    """
    name = "gelu_backward"
    check_float_arrays(name, grad_y=grad_y, x=x, cdf=cdf)
    check_same_shape(name, "grad_y", grad_y.shape, x.shape, "the shape of x")
    check_same_shape(name, "cdf", cdf.shape, x.shape, "the shape of x")
    return backend.implementation(name, x)(grad_y, x, cdf)


def attention_forward(q, k, v, bias, scale):
    """Attention's output, without its weights: ``out = softmax(scale * q k^T + bias) v`` for
    ``q (..., L, D)``, ``k (..., S, D)``, ``v (..., S, Dv)`` of one batch shape, ``bias`` None or
    an additive mask that broadcasts to the scores ``(..., L, S)`` (as for ``softmax_forward``),
    ``scale`` a real number; returns ``(..., L, Dv)``. For inference: nothing is kept for a
    backward pass. Kernel: ``attention_forward(q, k, v, bias, scale)``.
    """
    name = "attention_forward"
    check_float_arrays(name, q=q, k=k, v=v, **({} if bias is None else {"bias": bias}))
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(f"{name}: q, k and v must have one number of axes, at least 2, got shapes "
                         f"{tuple(q.shape)}, {tuple(k.shape)} and {tuple(v.shape)}")
    if q.shape[:-2] != k.shape[:-2] or q.shape[:-2] != v.shape[:-2]:
        raise ValueError(f"{name}: q, k and v must have one batch shape, got shapes "
                         f"{tuple(q.shape)}, {tuple(k.shape)} and {tuple(v.shape)}")
    check_same_shape(name, "k", k.shape[-1:], q.shape[-1:], "q's last axis (D) as its last axis")
    check_same_shape(name, "v", v.shape[-2:-1], k.shape[-2:-1], "k's key axis (S) as its second-to-last axis")
    if k.shape[-2] == 0:
        raise ValueError(f"{name}: attention needs at least one key (S >= 1), got k of shape {tuple(k.shape)}")
    _check_additive_mask(name, bias, (*q.shape[:-1], k.shape[-2]), "the scores' shape (..., L, S)")
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise ValueError(f"{name}: scale must be a real number, got {scale!r}")
    multiply_adds = math.prod(q.shape[:-1]) * k.shape[-2] * (q.shape[-1] + v.shape[-1])  # q k^T, then P v
    with _threads(name, q, multiply_adds):
        return backend.implementation(name, q)(q, k, v, bias, float(scale))


def dropout(x, p, key):
    """Inverted dropout, ``y = x * keep / (1 - p)``, with the mask a function of ``(key, i)``:
    element i of x (C order) is kept iff ``(splitmix64(key, i) >> 11) >= ceil(p * 2**53)``
    (definitions in ``minift.reference.dropout``). ``p`` a real in [0, 1), ``key`` an int in
    [0, 2**64). The same call on the gradient is the backward pass. Kernel: ``dropout(x, p, key)``.
    """
    name = "dropout"
    check_float_arrays(name, x=x)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
        raise ValueError(f"{name}: p must be a number in [0, 1), got {p!r}")
    if isinstance(key, bool) or not isinstance(key, numbers.Integral) or not 0 <= key < 2**64:
        raise ValueError(f"{name}: key must be an int in [0, 2**64), got {key!r}")
    return backend.implementation(name, x)(x, float(p), int(key))


# Batch normalisation: statistics per channel (axis 1), over the batch and every trailing
# axis. The formulas are in ``minift.reference.batch_norm``. Kernels get the checked arrays
# (and ``eps``) and return new C-contiguous arrays.


def _check_channels(name, x):
    if x.ndim < 2:
        raise ValueError(f"{name}: x must be (N, C, ...) with at least two axes, got shape {tuple(x.shape)}")


def _check_channel_vectors(name, x, **vectors):
    for label, vector in vectors.items():
        if vector is not None:
            check_same_shape(name, label, vector.shape, x.shape[1:2], "one entry per channel, axis 1 of x")


def batch_norm_forward(x, weight=None, bias=None, eps=1e-5, mean=None, var=None):
    """``(y, mean, var)``: batch norm of ``x (N, C, ...)`` per channel, ``weight``, ``bias``
    ``(C,)`` or None, ``eps >= 0``. With ``mean`` and ``var`` None (training) the batch's
    statistics (biased variance; at least one value per channel), else the given ``(C,)``
    ones (inference); returns the ones used, ``(C,)``, in x's dtype.
    Kernel: ``batch_norm_forward(x, weight, bias, eps, mean, var)``.
    """
    name = "batch_norm_forward"
    arrays = {"x": x, "weight": weight, "bias": bias, "mean": mean, "var": var}
    check_float_arrays(name, **{k: v for k, v in arrays.items() if v is not None})
    _check_channels(name, x)
    _check_channel_vectors(name, x, weight=weight, bias=bias, mean=mean, var=var)
    _check_eps(name, eps)
    if (mean is None) != (var is None):
        raise ValueError(f"{name}: pass both mean and var (inference) or neither (training), "
                         f"got mean {'None' if mean is None else 'an array'} and var {'None' if var is None else 'an array'}")
    if mean is None and x.shape[0] * math.prod(x.shape[2:]) == 0:
        raise ValueError(f"{name}: batch statistics need at least one value per channel, got x of shape {tuple(x.shape)}")
    return backend.implementation(name, x)(x, weight, bias, float(eps), mean, var)


def batch_norm_backward(grad_y, x, mean, rstd, weight=None, training=True):
    """``(grad_x, grad_weight, grad_bias)`` of ``batch_norm_forward`` from the ``mean`` it used
    and ``rstd = 1 / sqrt(var + eps)``, both ``(C,)``; ``training``: whether mean and var were
    the batch's (then dL/dx has their paths too). grad_weight is None when weight is.
    Kernel: ``batch_norm_backward(grad_y, x, mean, rstd, weight, training)``.
    """
    name = "batch_norm_backward"
    check_float_arrays(name, grad_y=grad_y, x=x, mean=mean, rstd=rstd, **({} if weight is None else {"weight": weight}))
    _check_channels(name, x)
    check_same_shape(name, "grad_y", grad_y.shape, x.shape, "the shape of x")
    _check_channel_vectors(name, x, mean=mean, rstd=rstd, weight=weight)
    if not isinstance(training, bool):
        raise TypeError(f"{name}: training must be True or False, got {training!r}")
    return backend.implementation(name, x)(grad_y, x, mean, rstd, weight, training)
