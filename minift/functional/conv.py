"""2-D convolution (NCHW, weight (out, in, kh, kw)), computed by the selected backend."""

from __future__ import annotations

import numbers

from .. import backend
from ..engine.autograd import Function
from ..contract.checks import check_ndim, check_same_shape
from ..contract.geometry import conv2d_geometry


def pair(value):
    """``3`` -> ``(3, 3)``: an int (not a bool) stands for both height and width.

    Anything else comes back as it came, to be checked by ``check_pair`` (which the
    geometry functions call): a pair of ints passes; a bool, a float, a string or a pair
    of anything else is a TypeError that shows the value given.
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value), int(value)
    return value


class Conv2d(Function):
    """y = conv2d(x, W) + b — the formula is the kernel contract's (see ``minift.backend``).

    dL/dx = conv2d_backward_input(g, W)     (a transposed convolution)
    dL/dW = conv2d_backward_weight(g, x)    (correlate the input with the gradient)
    dL/db = sum of g over (N, Ho, Wo)
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, padding, dilation)
        return backend.conv2d_forward(x, weight, bias, stride, padding, dilation)

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved
        needs = ctx.needs_input_grad
        dx = backend.conv2d_backward_input(g, weight, x.shape, *ctx.geometry) if needs[0] else None
        dw = backend.conv2d_backward_weight(g, x, weight.shape, *ctx.geometry) if needs[1] else None
        if len(needs) == 2:
            return dx, dw
        return dx, dw, g.sum(axis=(0, 2, 3)) if needs[2] else None


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):  # noqa: A002
    """PyTorch's ``F.conv2d`` (groups=1): ``input (N, C, H, W)``, ``weight (O, C, KH, KW)``.

    Checked here, before any work, by the checks every backend shares (``minift.reference``).
    """
    check_ndim("conv2d", "input", input, 4, "(N, C, H, W)")
    check_ndim("conv2d", "weight", weight, 4, "(O, C, KH, KW)")
    g = conv2d_geometry("conv2d", input.shape, weight.shape, pair(stride), pair(padding), pair(dilation))
    if bias is not None:
        check_same_shape("conv2d", "bias", bias.shape, (g.o,), "one entry per output channel")
    geometry = dict(stride=g.stride, padding=g.padding, dilation=g.dilation)
    if bias is None:
        return Conv2d.apply(input, weight, **geometry)
    return Conv2d.apply(input, weight, bias, **geometry)
