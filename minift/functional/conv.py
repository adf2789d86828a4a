"""2-D convolution (NCHW, weight (out, in, kh, kw)), through the kernel contract."""

from __future__ import annotations

import numbers

from .. import contract
from ..engine.autograd import Function


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
    """y = conv2d(x, W) + b — the formula is the kernel contract's (``minift.contract``).

    dL/dx = conv2d_backward_input(g, W)     (a transposed convolution)
    dL/dW = conv2d_backward_weight(g, x)    (correlate the input with the gradient)
    dL/db = sum of g over (N, Ho, Wo)
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, padding, dilation)
        return contract.conv2d_forward(x, weight, bias, stride, padding, dilation)

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved
        needs = ctx.needs_input_grad
        dx = contract.conv2d_backward_input(g, weight, x.shape, *ctx.geometry) if needs[0] else None
        dw = contract.conv2d_backward_weight(g, x, weight.shape, *ctx.geometry) if needs[1] else None
        if len(needs) == 2:
            return dx, dw
        return dx, dw, g.sum(axis=(0, 2, 3)) if needs[2] else None


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):  # noqa: A002
    """PyTorch's ``F.conv2d`` (groups=1): ``input (N, C, H, W)``, ``weight (O, C, KH, KW)``.

    The contract entry ``conv2d_forward`` checks the call before any work.
    """
    geometry = dict(stride=pair(stride), padding=pair(padding), dilation=pair(dilation))
    if bias is None:
        return Conv2d.apply(input, weight, **geometry)
    return Conv2d.apply(input, weight, bias, **geometry)
