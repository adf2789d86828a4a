"""Whole training steps for ``minift bench``: the rows that say how fast a model trains.

Each step is forward, loss, backward and an optimizer update through the public API —
``minift.nn``, ``minift.functional``, ``minift.optim`` — so it measures the autograd
engine's overhead as well as the kernels. Its PyTorch twin is the same model, loss,
optimizer and batch, with the same initial weights.

- ``cnn step`` (``cifar_cnn``): batch 64 of 3x32x32, conv3->32 3x3 pad 1 - relu - maxpool 2 -
  conv32->64 3x3 pad 1 - relu - maxpool 2 - linear 4096->10, cross-entropy, SGD with momentum;
- ``mlp step``: batch 128 of 784, linear 784-256-256-10 with relu, cross-entropy, plain SGD.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import nn, optim
from .row import Row
from ..engine.random import manual_seed
from ..engine.tensor import Tensor


def _batch(shape, classes: int):
    rng = np.random.default_rng(0)
    return rng.standard_normal(shape, dtype=np.float32), rng.integers(0, classes, shape[0])


def cifar_cnn() -> nn.Sequential:
    """conv3->32, pool, conv32->64, pool, linear 4096->10 for 3x32x32 (CIFAR-sized) images;
    not ``minift.models.SmallCNN`` (no BatchNorm, two blocks), hence its own name."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 10),
    )


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def _training_row(name, make_model, x_shape, momentum, flops):
    def make_step():
        manual_seed(0)
        model = make_model()
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=momentum)
        x, y = _batch(x_shape, 10)
        x, y = Tensor(x), Tensor(y)

        def step():
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()

        return step

    def make_torch_step(torch):
        manual_seed(0)
        reference = make_model()
        layers = []
        for layer in reference:
            kind = type(layer).__name__
            if kind == "Conv2d":
                layers.append(torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, padding=layer.padding))
            elif kind == "Linear":
                layers.append(torch.nn.Linear(layer.in_features, layer.out_features))
            else:
                layers.append({"ReLU": torch.nn.ReLU, "MaxPool2d": lambda: torch.nn.MaxPool2d(2),
                               "Flatten": torch.nn.Flatten}[kind]())
        model = torch.nn.Sequential(*layers)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in reference.state_dict().items()})
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=momentum)
        x, y = _batch(x_shape, 10)
        x, y = torch.from_numpy(x), torch.from_numpy(y)

        def step():
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

        return step

    return Row(name, flops, make_step, make_torch_step)


def _cnn_flops(n=64):
    conv1 = 2.0 * n * 32 * 32 * 32 * 3 * 9
    conv2 = 2.0 * n * 64 * 16 * 16 * 32 * 9
    linear = 2.0 * n * 4096 * 10
    return 3 * (conv1 + conv2 + linear)


STEP_ROWS = [
    _training_row("cnn step (64x3x32x32, SGD momentum)", cifar_cnn, (64, 3, 32, 32), 0.9, _cnn_flops()),
    _training_row("mlp step (128x784, 784-256-256-10, SGD)", mlp, (128, 784), 0.0,
                  3 * 2.0 * 128 * (784 * 256 + 256 * 256 + 256 * 10)),
]
