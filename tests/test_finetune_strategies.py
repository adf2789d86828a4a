"""Hypothesis strategies shared by the fine-tuning tests: random models and optimizers.

``layer_stacks()`` draws an ``nn.Sequential`` of Conv2d / BatchNorm2d / ReLU layers, a
Flatten, then Linear / BatchNorm1d / ReLU layers, ending in a Linear; the tests below
check that every drawn model runs forward and backward, so the other tests can rely on it.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import minift
from minift import nn
from minift.optim import SGD, Adam, AdamW

BATCH = 4  # BatchNorm needs more than one sample per channel in training mode


@st.composite
def layer_stacks(draw):
    """``(model, input_shape)``: a random Sequential and the shape of one input sample."""
    minift.manual_seed(draw(st.integers(0, 2**16)))
    channels, size = draw(st.integers(1, 3)), draw(st.integers(2, 4))
    layers, width = [], channels
    for _ in range(draw(st.integers(0, 2))):
        out, kernel = draw(st.integers(1, 4)), draw(st.sampled_from([1, 3]))
        layers.append(nn.Conv2d(width, out, kernel, padding=kernel // 2, bias=draw(st.booleans())))
        if draw(st.booleans()):
            layers.append(nn.BatchNorm2d(out))
        if draw(st.booleans()):
            layers.append(nn.ReLU())
        width = out
    layers.append(nn.Flatten())
    features = width * size * size
    for _ in range(draw(st.integers(0, 2))):
        out = draw(st.integers(1, 6))
        layers.append(nn.Linear(features, out))
        if draw(st.booleans()):
            layers.append(nn.BatchNorm1d(out))
        if draw(st.booleans()):
            layers.append(nn.Tanh())
        features = out
    layers.append(nn.Linear(features, draw(st.integers(1, 3))))
    return nn.Sequential(*layers), (channels, size, size)


#: Optimizers with every kind of state and decay switched on: momentum + Nesterov + L2
#: decay, Adam with L2 decay, AdamW with decoupled decay.
OPTIMIZERS = {
    "sgd-nesterov": lambda groups: SGD(groups, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda groups: Adam(groups, weight_decay=0.01),
    "adamw": lambda groups: AdamW(groups, weight_decay=0.1),
}


def mse_loss_of(model, input_shape, seed: int = 0):
    """A fixed random regression loss for ``model``: ``mean((model(x) - t)**2)``."""
    rng = np.random.default_rng(seed)
    x = minift.Tensor(rng.standard_normal((BATCH, *input_shape)).astype(np.float32))
    out = model(x)
    target = minift.Tensor(rng.standard_normal(out.shape).astype(np.float32))
    return ((out - target) ** 2).mean()


@settings(max_examples=30)
@given(layer_stacks())
def test_drawn_models_run_forward_and_backward(drawn):
    model, input_shape = drawn
    mse_loss_of(model, input_shape).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.shape == param.shape
        assert np.all(np.isfinite(param.grad.data)), name
