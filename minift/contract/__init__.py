"""The kernel contract: the hot paths every backend implements, checked once, then dispatched.

minift's ops never run a convolution or a matmul themselves; they call the entries below.
Each entry checks its arguments -- once, here, with ``checks`` and ``geometry`` -- sizes
the call (a ``MatmulGeometry``, ``ConvGeometry`` or ``PoolGeometry``), and hands the
arrays and that geometry to the kernel of the same name in the backend that
``minift.backend`` selects:

================  ==========================================  =========================
backend           module                                       arrays
================  ==========================================  =========================
``numpy``         ``minift.reference`` (the oracle)            NumPy
``numba``         ``minift.kernels.numba.backend`` (@njit)     NumPy
``cupy``          ``minift.kernels.cupy.backend`` (CUDA C)     CuPy (on an NVIDIA GPU)
================  ==========================================  =========================

A kernel therefore holds only its loops: it may assume what the entry checked. A bad call
fails here, before any backend runs, with the same message on every backend.

The contract (every entry reads any strided input, never writes to its inputs, and
returns new C-contiguous arrays of the input's floating dtype, float32 or float64; all
floating inputs of one call share that dtype and one device, anything else is a
TypeError, never a silent upcast; an empty batch, N = 0, is allowed).

Each entry's docstring below is the one definition of what it computes; each backend's
kernel of that name computes exactly that, from the checked geometry.
"""

from __future__ import annotations

from minift import backend
from minift.contract.checks import check_float_arrays, check_ndim, check_same_shape, check_shape_argument
from minift.contract.geometry import conv2d_geometry, matmul_geometry, max_pool2d_backward_shape, pool2d_geometry

CONTRACT = (
    "matmul",
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
)
"""The names of the contract's entries: every backend module defines a kernel of each name."""


def matmul(a, b):
    """``a (..., M, K) @ b (..., K, N) -> (..., M, N)``; batch dimensions broadcast as in
    ``numpy.matmul``. Both operands are at least 2-D (the op layer handles 1-D cases).
    Kernel: ``matmul(a, b, g: MatmulGeometry)``.
    """
    check_float_arrays("matmul", a=a, b=b)
    g = matmul_geometry("matmul", a.shape, b.shape)
    return backend.implementation("matmul", a)(a, b, g)


def conv2d_forward(x, weight, bias, stride, padding, dilation):
    """``y = conv2d(x, weight) + bias``. ``x (N, C, H, W)``, ``weight (O, C, KH, KW)``, ``bias (O,)`` or ``None``; ``stride``,
    ``padding``, ``dilation`` are ``(int, int)`` pairs for (height, width). Zero padding.
    ``Ho = (H + 2*ph - dh*(KH-1) - 1) // sh + 1`` (likewise ``Wo``), and::

        y[n, o, i, j] = bias[o] + sum_{c,p,q} weight[o, c, p, q] * xpad[n, c, i*sh + p*dh, j*sw + q*dw]

    returns ``y (N, O, Ho, Wo)``. Kernel: ``conv2d_forward(x, weight, bias, g: ConvGeometry)``.
    """
    name = "conv2d_forward"
    check_float_arrays(name, x=x, weight=weight, **({} if bias is None else {"bias": bias}))
    check_ndim(name, "x", x, 4, "(N, C, H, W)")
    check_ndim(name, "weight", weight, 4, "(O, C, KH, KW)")
    g = conv2d_geometry(name, x.shape, weight.shape, stride, padding, dilation)
    if bias is not None:
        check_same_shape(name, "bias", bias.shape, (g.o,), "one entry per output channel")
    return backend.implementation(name, x)(x, weight, bias, g)


def conv2d_backward_input(grad_y, weight, input_shape, stride, padding, dilation):
    """``dL/dx`` of ``conv2d_forward``: ``grad_y (N, O, Ho, Wo)``, returns ``grad_x`` of
    ``input_shape = (N, C, H, W)`` (the transposed convolution; rows and columns of the
    input that no window reaches get zero). Kernel: ``conv2d_backward_input(grad_y, weight, g)``.
    """
    name = "conv2d_backward_input"
    check_float_arrays(name, grad_y=grad_y, weight=weight)
    check_ndim(name, "weight", weight, 4, "(O, C, KH, KW)")
    input_shape = check_shape_argument(name, "input_shape", input_shape, "(N, C, H, W)")
    g = conv2d_geometry(name, input_shape, weight.shape, stride, padding, dilation)
    check_same_shape(name, "grad_y", grad_y.shape, g.output_shape, "the output shape of this convolution")
    return backend.implementation(name, grad_y)(grad_y, weight, g)


def conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation):
    """``dL/dW`` of ``conv2d_forward``: returns ``grad_w`` of ``weight_shape = (O, C, KH, KW)``,
    ``grad_w[o,c,p,q] = sum_{n,i,j} grad_y[n,o,i,j] * xpad[n, c, i*sh + p*dh, j*sw + q*dw]``.
    (``dL/dbias = grad_y.sum((0, 2, 3))`` is computed by the op, not by a kernel.)
    Kernel: ``conv2d_backward_weight(grad_y, x, g)``.
    """
    name = "conv2d_backward_weight"
    check_float_arrays(name, grad_y=grad_y, x=x)
    check_ndim(name, "x", x, 4, "(N, C, H, W)")
    weight_shape = check_shape_argument(name, "weight_shape", weight_shape, "(O, C, KH, KW)")
    g = conv2d_geometry(name, x.shape, weight_shape, stride, padding, dilation)
    check_same_shape(name, "grad_y", grad_y.shape, g.output_shape, "the output shape of this convolution")
    return backend.implementation(name, grad_y)(grad_y, x, g)


def max_pool2d_forward(x, kernel_size, stride, padding, dilation):
    """``y, indices``: the maximum of each window and where it is. ``x (N, C, H, W)``;
    ``kernel_size``, ``stride``, ``padding``, ``dilation`` pairs of ints; padding is with ``-inf`` and
    ``padding <= kernel_size // 2`` (PyTorch's rule). Returns ``(y, indices)``, both
    ``(N, C, Ho, Wo)``; ``indices`` is int64, the flat index ``h * W + w`` into the
    *unpadded* input plane of the maximum. Among equal maxima the first in row-major
    window order wins (PyTorch's rule); a NaN in a window wins over numbers (the first
    NaN). A window made only of padding (possible with dilation) is refused with a
    ValueError rather than returning -inf with an out-of-range index.
    Kernel: ``max_pool2d_forward(x, g: PoolGeometry)``.
    """
    name = "max_pool2d_forward"
    check_float_arrays(name, x=x)
    check_ndim(name, "x", x, 4, "(N, C, H, W)")
    g = pool2d_geometry(name, x.shape, kernel_size, stride, padding, dilation)
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


def avg_pool2d_forward(x, kernel_size, stride, padding):
    """The mean of each window. Zero padding with ``padding <= kernel_size // 2``, ``count_include_pad=True``
    (PyTorch's default): every window sum is divided by ``KH * KW``. Returns ``y (N, C, Ho, Wo)``.
    Kernel: ``avg_pool2d_forward(x, g: PoolGeometry)``.
    """
    name = "avg_pool2d_forward"
    check_float_arrays(name, x=x)
    check_ndim(name, "x", x, 4, "(N, C, H, W)")
    g = pool2d_geometry(name, x.shape, kernel_size, stride, padding)
    return backend.implementation(name, x)(x, g)


def avg_pool2d_backward(grad_y, input_shape, kernel_size, stride, padding):
    """``dL/dx`` of ``avg_pool2d_forward``: ``grad_x`` of ``input_shape``, each ``grad_y[n,c,i,j] / (KH*KW)`` added to
    every input element of its window. Kernel: ``avg_pool2d_backward(grad_y, g: PoolGeometry)``.
    """
    name = "avg_pool2d_backward"
    check_float_arrays(name, grad_y=grad_y)
    input_shape = check_shape_argument(name, "input_shape", input_shape, "(N, C, H, W)")
    g = pool2d_geometry(name, input_shape, kernel_size, stride, padding)
    check_same_shape(name, "grad_y", grad_y.shape, g.output_shape, "the pooled shape of input_shape")
    return backend.implementation(name, grad_y)(grad_y, g)
