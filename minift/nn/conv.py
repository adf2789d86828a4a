"""Convolution layers (Conv1d, Conv2d, ConvTranspose2d) and the pooling layers MaxPool2d,
AvgPool2d, AdaptiveAvgPool2d."""

from __future__ import annotations

from .. import functional as F
from ..contract.checks import check_pair
from ..engine.creation import empty_parameter
from ..functional.conv import pair
from . import init
from .module import Module


def _window_pairs(layer: str, kernel_size, stride, padding, dilation) -> tuple:
    """The (height, width) pairs of a 2-D window, checked: an int stands for both."""
    return (check_pair(layer, "kernel_size", pair(kernel_size), 1), check_pair(layer, "stride", pair(stride), 1),
            check_pair(layer, "padding", pair(padding), 0), check_pair(layer, "dilation", pair(dilation), 1))


def _check_groups(layer: str, in_channels, out_channels, groups) -> int:
    """``groups`` a positive int dividing both channel counts (PyTorch's rule), else a ValueError."""
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{layer}: groups must be a positive int, got {groups!r}")
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"{layer}: groups={groups} must divide in_channels ({in_channels}) and out_channels ({out_channels})"
        )
    return groups


class Conv2d(Module):
    """2-D convolution, NCHW: ``x (N, C, H, W)`` -> ``y (N, O, Ho, Wo)``, with
    ``weight (O, C/groups, KH, KW)`` and ``Ho = (H + 2p - d(KH-1) - 1) // s + 1``.

    ``groups`` splits the channels into groups that never meet; ``groups=in_channels``
    is a depthwise convolution (MobileNet, EfficientNet). Same state_dict as PyTorch."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 dtype=None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.dilation = _window_pairs(
            "Conv2d", kernel_size, stride, padding, dilation)
        self.groups = _check_groups("Conv2d", in_channels, out_channels, groups)
        self.weight = empty_parameter((out_channels, in_channels // groups, *self.kernel_size), dtype)
        self.bias = empty_parameter((out_channels,), dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        extras = "" if self.padding == (0, 0) else f", padding={self.padding}"
        extras += "" if self.dilation == (1, 1) else f", dilation={self.dilation}"
        extras += "" if self.groups == 1 else f", groups={self.groups}"
        extras += "" if self.bias is not None else ", bias=False"
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}{extras}"


class Conv1d(Module):
    """1-D convolution over sequences: ``x (N, C, L)`` -> ``y (N, O, Lo)``, with
    ``weight (O, C/groups, K)`` and ``Lo = (L + 2p - d(K-1) - 1) // s + 1`` (a conv2d on height 1)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 dtype=None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        self.groups = _check_groups("Conv1d", in_channels, out_channels, groups)
        self.weight = empty_parameter((out_channels, in_channels // groups, kernel_size), dtype)
        self.bias = empty_parameter((out_channels,), dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, x):
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        extras = "" if self.groups == 1 else f", groups={self.groups}"
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}{extras}")


class ConvTranspose2d(Module):
    """The transposed 2-D convolution (the gradient of a Conv2d with respect to its input):
    ``x (N, C_in, H, W)`` -> ``y (N, C_out, Ho, Wo)``, ``weight (C_in, C_out/groups, KH, KW)``,
    ``Ho = (H-1)*s - 2p + d*(KH-1) + output_padding + 1``. Upsamples by the stride."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, dtype=None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.dilation = _window_pairs(
            "ConvTranspose2d", kernel_size, stride, padding, dilation)
        self.output_padding = check_pair("ConvTranspose2d", "output_padding", pair(output_padding), 0)
        self.groups = _check_groups("ConvTranspose2d", in_channels, out_channels, groups)
        self.weight = empty_parameter((in_channels, out_channels // groups, *self.kernel_size), dtype)
        self.bias = empty_parameter((out_channels,), dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)

    def extra_repr(self) -> str:
        extras = "" if self.padding == (0, 0) else f", padding={self.padding}"
        extras += "" if self.output_padding == (0, 0) else f", output_padding={self.output_padding}"
        extras += "" if self.groups == 1 else f", groups={self.groups}"
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}{extras}"


class MaxPool2d(Module):
    """Maximum over each window; ``stride`` defaults to ``kernel_size``; ``ceil_mode``
    counts the windows with ceil instead of floor."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.padding, self.dilation, self.ceil_mode = kernel_size, padding, dilation, ceil_mode
        self.stride = kernel_size if stride is None else stride  # 0 stays 0, and is refused

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self) -> str:
        extras = ", ceil_mode=True" if self.ceil_mode else ""
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}{extras}"


class AvgPool2d(Module):
    """Mean over each window (zero padding counted, as PyTorch's default; with
    ``count_include_pad=False`` only the window's elements on the input count)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self.kernel_size, self.padding = kernel_size, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.stride = kernel_size if stride is None else stride

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self) -> str:
        extras = ", ceil_mode=True" if self.ceil_mode else ""
        extras += "" if self.count_include_pad else ", count_include_pad=False"
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}{extras}"


class AdaptiveAvgPool2d(Module):
    """Mean over an ``output_size`` grid of bins, whatever the input size (1 = global)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
