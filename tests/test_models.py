"""The bundled architectures: shapes, body/head structure, layer groups, and that SmallCNN
learns from real images."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minift
from minift import nn
from minift.data import load_dataset
from minift.finetune import layer_groups
from minift.models import MLP, DigitCNN, SmallCNN, TinyResNet
from minift.optim import Adam


def images(n: int, channels: int, size: int, seed: int = 0):
    return minift.Tensor(np.random.default_rng(seed).standard_normal((n, channels, size, size)).astype(np.float32))


def blocks_with_parameters(model) -> list:
    return [child for child in model.body.children() if list(child.parameters())]


def check_structure(model, x, classes: int) -> None:
    """Output shape, forward = head(body(x)), and groups = body blocks then the head."""
    model.eval()
    out = model(x)
    assert out.shape == (x.shape[0], classes)
    features = model.body(x)
    assert features.shape == (x.shape[0], model.num_features)
    assert np.array_equal(out.data, model.head(features).data)
    groups = layer_groups(model)
    assert [g.modules for g in groups] == [[b] for b in blocks_with_parameters(model)] + [[model.head]]


@settings(max_examples=15)
@given(st.integers(1, 3), st.integers(1, 12), st.integers(1, 6), st.integers(4, 12), st.integers(1, 3))
def test_small_cnn_shapes(channels, classes, width, size, n):
    model = SmallCNN(channels, classes, width, size)
    check_structure(model, images(n, channels, size), classes)
    assert model.num_features == 2 * width
    assert [type(m) for m in model.body.block1.children()] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    assert len(layer_groups(model)) == 4


@settings(max_examples=15)
@given(st.integers(1, 3), st.integers(1, 12), st.integers(1, 6), st.integers(4, 12), st.integers(1, 3))
def test_digit_cnn_shapes(channels, classes, width, size, n):
    model = DigitCNN(channels, classes, width, size)
    check_structure(model, images(n, channels, size), classes)
    assert model.num_features == 2 * width * (size // 4) ** 2  # the last feature map, whole
    assert "pool" not in dict(model.body.named_children())
    assert len(layer_groups(model)) == 4


def test_digit_cnn_shares_small_cnns_body_names_and_the_demo_size():
    """Same block names as SmallCNN (a SmallCNN body transplants into it); 29,818 parameters
    at its defaults, the size ``minift demo`` saves and the README quotes."""
    digit, small = DigitCNN().state_dict(), SmallCNN(width=16).state_dict()
    assert {k for k in digit if k.startswith("body.")} == {k for k in small if k.startswith("body.")}
    assert DigitCNN().num_parameters() == 29_818
    with pytest.raises(ValueError, match=r"DigitCNN expects images \(N, 1, 28, 28\)"):
        DigitCNN()(images(1, 1, 32))


@settings(max_examples=15)
@given(st.lists(st.integers(1, 12), min_size=2, max_size=5), st.integers(1, 3))
def test_mlp_shapes(sizes, n):
    model = MLP(sizes)
    check_structure(model, minift.randn(n, sizes[0]), sizes[-1])
    assert len(layer_groups(model)) == len(sizes) - 1


@settings(max_examples=8)
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 4), st.integers(4, 9))
def test_tiny_resnet_shapes(channels, classes, width, size):
    model = TinyResNet(channels, classes, width)
    check_structure(model, images(2, channels, size), classes)
    assert [g.name for g in layer_groups(model)] == ["body.stem", "body.stage1", "body.stage2", "body.stage3", "head"]


@pytest.mark.parametrize("model", [SmallCNN(width=2), MLP([784, 8, 10]), TinyResNet(width=2)], ids=type)
def test_a_new_head_goes_on_the_pretrained_body(model):
    body = list(model.body.parameters())
    model.head = nn.Linear(model.num_features, 3)
    model.eval()
    assert model(images(2, 1, 28)).shape == (2, 3)
    groups = layer_groups(model)
    assert groups[-1].modules == [model.head]
    assert [id(p) for g in groups[:-1] for p in g.parameters()] == [id(p) for p in body]


@pytest.mark.parametrize("model", [SmallCNN(width=2, image_size=8), MLP([64, 8, 10]), TinyResNet(width=2)], ids=type)
def test_every_parameter_gets_a_gradient(model):
    out = model(images(3, 1, 8))
    (out * out).mean().backward()
    assert all(p.grad is not None and np.any(p.grad.data != 0) for p in model.parameters())


def test_small_cnn_names_the_expected_input():
    with pytest.raises(ValueError, match=r"SmallCNN expects images \(N, 1, 28, 28\), got shape \(2, 3, 28, 28\)"):
        SmallCNN()(images(2, 3, 28))


@pytest.mark.parametrize("make", [
    lambda: SmallCNN(in_channels=0), lambda: SmallCNN(num_classes=-1), lambda: SmallCNN(width=2.5),
    lambda: SmallCNN(image_size=3), lambda: SmallCNN(width=True), lambda: MLP([10]), lambda: MLP([10, 0, 3]),
    lambda: TinyResNet(width=0),
])
def test_bad_sizes_are_errors(make):
    with pytest.raises(ValueError):
        make()


def test_small_cnn_learns_real_images():
    data = load_dataset("fashion-mnist-bundled")
    x, y = minift.Tensor(data.x_train[:64]), minift.Tensor(data.y_train[:64])
    minift.manual_seed(0)
    model = SmallCNN(width=8)
    optimizer = Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < 0.75 * losses[0]
