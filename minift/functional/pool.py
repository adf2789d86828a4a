"""Pooling over NCHW images: max, average, adaptive average, global average."""

from __future__ import annotations

from .. import contract
from ..engine.autograd import Function
from ..backend.device import array_module
from ..contract.checks import check_ndim, check_pair
from .conv import pair


class MaxPool2d(Function):
    """y = the maximum of each window.  dL/dx = g routed to the position of each window's
    maximum (the ``indices`` the forward kernel returns), summed where windows overlap."""

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, dilation, ceil_mode=False):
        y, indices = contract.max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode)
        ctx.save_for_backward(indices)
        ctx.shape = x.shape
        return y

    @staticmethod
    def backward(ctx, g):
        (indices,) = ctx.saved
        return contract.max_pool2d_backward(g, indices, ctx.shape)


class AvgPool2d(Function):
    """y = the mean of each (zero-padded) window.  dL/dx = g / divisor spread over its window
    (the divisor: KH*KW, or less in ceil mode or with count_include_pad=False)."""

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True):
        ctx.shape, ctx.geometry = x.shape, (kernel_size, stride, padding, ceil_mode, count_include_pad)
        return contract.avg_pool2d_forward(x, *ctx.geometry)

    @staticmethod
    def backward(ctx, g):
        return contract.avg_pool2d_backward(g, ctx.shape, *ctx.geometry)


def _adaptive_bins(size: int, out: int) -> list:
    """PyTorch's adaptive bins: bin i covers [floor(i*size/out), ceil((i+1)*size/out))."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


class AdaptiveAvgPool2d(Function):
    """y[..., i, j] = mean of x over bin (i, j); bins may overlap when sizes do not divide.
    dL/dx = each g[..., i, j] / |bin| added over its bin."""

    @staticmethod
    def forward(ctx, x, output_size):
        xp = array_module(x)
        rows, cols = _adaptive_bins(x.shape[2], output_size[0]), _adaptive_bins(x.shape[3], output_size[1])
        ctx.shape, ctx.bins = x.shape, (rows, cols)
        y = xp.empty(x.shape[:2] + tuple(output_size), dtype=x.dtype)
        for i, (r0, r1) in enumerate(rows):
            for j, (c0, c1) in enumerate(cols):
                y[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
        return y

    @staticmethod
    def backward(ctx, g):
        dx = array_module(g).zeros(ctx.shape, dtype=g.dtype)
        rows, cols = ctx.bins
        for i, (r0, r1) in enumerate(rows):
            for j, (c0, c1) in enumerate(cols):
                dx[:, :, r0:r1, c0:c1] += (g[:, :, i, j] / ((r1 - r0) * (c1 - c0)))[:, :, None, None]
        return dx


def _window(kernel_size, stride, padding) -> dict:
    """PyTorch's pooling arguments as pairs; ``stride`` None means the kernel size. The
    contract entries check them, before any work."""
    kernel_size = pair(kernel_size)
    stride = kernel_size if stride is None else pair(stride)
    return dict(kernel_size=kernel_size, stride=stride, padding=pair(padding))


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """PyTorch's ``F.max_pool2d``; ``stride`` defaults to ``kernel_size``; ``ceil_mode``
    counts the windows with ceil instead of floor (a last, partial window)."""
    return MaxPool2d.apply(x, **_window(kernel_size, stride, padding), dilation=pair(dilation), ceil_mode=ceil_mode)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """PyTorch's ``F.avg_pool2d``; ``count_include_pad=False`` divides each window's sum by
    its elements on the input only."""
    return AvgPool2d.apply(x, **_window(kernel_size, stride, padding), ceil_mode=ceil_mode,
                           count_include_pad=count_include_pad)


def adaptive_avg_pool2d(x, output_size):
    """Average over an ``output_size`` grid of bins, whatever the input size."""
    check_ndim("adaptive_avg_pool2d", "x", x, 4, "(N, C, H, W)")
    output_size = check_pair("adaptive_avg_pool2d", "output_size", pair(output_size), 1)
    if output_size == (1, 1):
        return global_avg_pool2d(x).reshape(x.shape[0], x.shape[1], 1, 1)
    return AdaptiveAvgPool2d.apply(x, output_size=output_size)


def global_avg_pool2d(x):
    """Mean over height and width: ``(N, C, H, W) -> (N, C)``."""
    if x.ndim != 4:
        raise ValueError(f"global_avg_pool2d expects input (N, C, H, W), got shape {x.shape}")
    return x.mean(axis=(2, 3))


