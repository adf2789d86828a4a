"""Conv2d, and the pooling layers MaxPool2d, AvgPool2d, AdaptiveAvgPool2d."""

from __future__ import annotations

from .. import functional as F
from ..engine.creation import empty_parameter
from ..functional.conv import pair
from ..contract.checks import check_pair
from . import init
from .module import Module


class Conv2d(Module):
    """2-D convolution, NCHW: ``x (N, C, H, W)`` -> ``y (N, O, Ho, Wo)``, with
    ``weight (O, C, KH, KW)`` and ``Ho = (H + 2p - d(KH-1) - 1) // s + 1``."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True, dtype=None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = check_pair("Conv2d", "kernel_size", pair(kernel_size), 1)
        self.stride = check_pair("Conv2d", "stride", pair(stride), 1)
        self.padding = check_pair("Conv2d", "padding", pair(padding), 0)
        self.dilation = check_pair("Conv2d", "dilation", pair(dilation), 1)
        self.weight = empty_parameter((out_channels, in_channels, *self.kernel_size), dtype)
        self.bias = empty_parameter((out_channels,), dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        extras = "" if self.padding == (0, 0) else f", padding={self.padding}"
        extras += "" if self.dilation == (1, 1) else f", dilation={self.dilation}"
        extras += "" if self.bias is not None else ", bias=False"
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}{extras}"


class MaxPool2d(Module):
    """Maximum over each window; ``stride`` defaults to ``kernel_size``."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1):
        super().__init__()
        self.kernel_size, self.padding, self.dilation = kernel_size, padding, dilation
        self.stride = kernel_size if stride is None else stride  # 0 stays 0, and is refused

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Mean over each window (zero padding counted, as PyTorch's default)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Mean over an ``output_size`` grid of bins, whatever the input size (1 = global)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
