"""2-D convolution (NCHW, weight (out, in, kh, kw)), computed by the selected backend."""

from __future__ import annotations

from .. import backend
from ..autograd import Function


def pair(value, name: str) -> tuple:
    """``3`` -> ``(3, 3)``; ``(1, 2)`` stays; anything else is a clear error."""
    if isinstance(value, int):
        value = (value, value)
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    return tuple(value)


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
    """PyTorch's ``F.conv2d`` (groups=1): ``input (N, C, H, W)``, ``weight (O, C, KH, KW)``."""
    stride, padding, dilation = pair(stride, "stride"), pair(padding, "padding"), pair(dilation, "dilation")
    if input.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"conv2d expects input (N, C, H, W) and weight (O, C, KH, KW), got {input.shape} and {weight.shape}")
    if input.shape[1] != weight.shape[1]:
        raise ValueError(
            f"conv2d: input has {input.shape[1]} channels but the weight {weight.shape} expects {weight.shape[1]}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"conv2d: bias must have shape ({weight.shape[0]},), got {bias.shape}")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ValueError(f"conv2d needs stride >= 1, dilation >= 1, padding >= 0; got {stride}, {dilation}, {padding}")
    for axis, name in ((0, "height"), (1, "width")):
        padded = input.shape[2 + axis] + 2 * padding[axis]
        reach = dilation[axis] * (weight.shape[2 + axis] - 1) + 1
        if reach > padded:
            raise ValueError(
                f"conv2d: the kernel reaches {reach} along the {name} but the padded input is only "
                f"{padded} (input {input.shape}, weight {weight.shape}, padding {padding}, dilation {dilation})"
            )
    geometry = dict(stride=stride, padding=padding, dilation=dilation)
    if bias is None:
        return Conv2d.apply(input, weight, **geometry)
    return Conv2d.apply(input, weight, bias, **geometry)
