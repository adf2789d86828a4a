"""The residual block of ResNet (He et al. 2016)."""

from __future__ import annotations

from .. import functional as F
from .container import Sequential
from .conv import Conv2d
from .linear import Identity
from .module import Module
from .normalization import BatchNorm2d


class ResidualBlock(Module):
    """y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)) — ResNet's basic block.

    ``conv1`` is 3x3 with ``stride``; ``conv2`` 3x3. When the shape changes (stride or
    channels), the shortcut is a 1x1 convolution + BatchNorm; otherwise the identity, so
    the block can learn "do nothing" easily, which is what makes deep nets trainable.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(out_channels)
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = Sequential(Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), BatchNorm2d(out_channels))
        else:
            self.shortcut = Identity()

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))
