"""Convolutions (NCHW): conv2d, grouped and depthwise; conv_transpose2d; conv1d -- through the kernel contract."""

from __future__ import annotations

import numbers

from .. import contract
from ..contract.checks import check_pair
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
    """y = conv2d(x, W) + b, in G groups — the formula is the kernel contract's (``minift.contract``).

    dL/dx = conv2d_backward_input(g, W)     (a transposed convolution)
    dL/dW = conv2d_backward_weight(g, x)    (correlate the input with the gradient)
    dL/db = sum of g over (N, Ho, Wo)
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, padding, dilation, groups)
        return contract.conv2d_forward(x, weight, bias, *ctx.geometry)

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved
        needs = ctx.needs_input_grad
        dx = contract.conv2d_backward_input(g, weight, x.shape, *ctx.geometry) if needs[0] else None
        dw = contract.conv2d_backward_weight(g, x, weight.shape, *ctx.geometry) if needs[1] else None
        if len(needs) == 2:
            return dx, dw
        return dx, dw, g.sum(axis=(0, 2, 3)) if needs[2] else None


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    """PyTorch's ``F.conv2d``: ``input (N, C, H, W)``, ``weight (O, C/groups, KH, KW)``.

    ``groups`` splits the channels into groups that never meet (``groups=C``: depthwise).
    The contract entry ``conv2d_forward`` checks the call before any work.
    """
    geometry = dict(stride=pair(stride), padding=pair(padding), dilation=pair(dilation), groups=groups)
    if bias is None:
        return Conv2d.apply(input, weight, **geometry)
    return Conv2d.apply(input, weight, bias, **geometry)


class ConvTranspose2d(Function):
    """y = conv_transpose2d(x, W) + b: the transposed convolution, i.e. the ``dL/dx`` of the
    conv2d whose weight is W (C_in, C_out/G, KH, KW) and whose input has y's shape.

    y      = conv2d_backward_input(x, W, y's shape) + b
    dL/dx  = conv2d_forward(g, W)                      (the convolution it transposes)
    dL/dW  = conv2d_backward_weight(x, g, W's shape)   (x plays conv2d's dL/dy, g its input)
    dL/db  = sum of g over (N, Ho, Wo)
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None, output_hw=(1, 1), stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                groups=1):
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, padding, dilation, groups)
        output_shape = (x.shape[0], weight.shape[1] * groups, *output_hw)
        y = contract.conv2d_backward_input(x, weight, output_shape, *ctx.geometry)
        if bias is not None:
            y += bias.reshape(1, -1, 1, 1)
        return y

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved
        needs = ctx.needs_input_grad
        dx = contract.conv2d_forward(g, weight, None, *ctx.geometry) if needs[0] else None
        dw = contract.conv2d_backward_weight(x, g, weight.shape, *ctx.geometry) if needs[1] else None
        if len(needs) == 2:
            return dx, dw
        return dx, dw, g.sum(axis=(0, 2, 3)) if needs[2] else None


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,  # noqa: A002
                     dilation=1):
    """PyTorch's ``F.conv_transpose2d``: ``input (N, C_in, H, W)``, ``weight (C_in, C_out/groups, KH, KW)``.

    ``Ho = (H - 1)*sh - 2*ph + dh*(KH - 1) + output_padding_h + 1`` (likewise Wo); the output
    padding (``< stride``) picks among the output sizes that a stride-s convolution maps
    back to H. The contract entry ``conv2d_backward_input`` checks the rest.
    """
    stride, padding, dilation, output_padding = pair(stride), pair(padding), pair(dilation), pair(output_padding)
    if input.ndim != 4 or weight.ndim != 4:
        raise ValueError(
            f"conv_transpose2d: input must be 4-D (N, C_in, H, W) and weight 4-D (C_in, C_out/groups, KH, KW), "
            f"got shapes {tuple(input.shape)} and {tuple(weight.shape)}"
        )
    output_padding = check_pair("conv_transpose2d", "output_padding", output_padding, 0)
    stride = check_pair("conv_transpose2d", "stride", stride, 1)
    if not all(extra < s for extra, s in zip(output_padding, stride)):
        raise ValueError(
            f"conv_transpose2d: output_padding must be smaller than the stride in both entries, "
            f"got output_padding {output_padding} for stride {stride}"
        )
    output_hw = tuple(
        (size - 1) * s - 2 * p + d * (k - 1) + extra + 1
        for size, s, p, d, k, extra in zip(input.shape[2:], stride, padding, dilation, weight.shape[2:], output_padding)
    )
    geometry = dict(output_hw=output_hw, stride=stride, padding=padding, dilation=dilation, groups=groups)
    if bias is None:
        return ConvTranspose2d.apply(input, weight, **geometry)
    return ConvTranspose2d.apply(input, weight, bias, **geometry)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    """PyTorch's ``F.conv1d``: ``input (N, C, L)``, ``weight (O, C/groups, K)`` -> ``(N, O, Lo)``.

    A conv2d over images of height 1: ``x[:, :, None, :]`` and ``weight[:, :, None, :]``,
    with stride, padding and dilation 1, 0, 1 along the height.
    """
    if input.ndim != 3 or weight.ndim != 3:
        raise ValueError(
            f"conv1d: input must be 3-D (N, C, L) and weight 3-D (O, C/groups, K), "
            f"got shapes {tuple(input.shape)} and {tuple(weight.shape)}"
        )
    images = input.reshape(*input.shape[:2], 1, input.shape[2])
    kernels = weight.reshape(*weight.shape[:2], 1, weight.shape[2])
    y = conv2d(images, kernels, bias, _with_height(stride, 1), _with_height(padding, 0), _with_height(dilation, 1), groups)
    return y.reshape(y.shape[0], y.shape[1], y.shape[3])


def _with_height(value, along_height: int):
    """A conv1d argument (an int, or PyTorch's 1-tuple) as conv2d's (height, width) pair."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    return along_height, value
