"""Module features a PyTorch user reaches for (issue 14.2-14.3): ParameterList/Dict,
Embedding.from_pretrained, non-persistent buffers, get_submodule, and load_state_dict from
anything array-like, with BatchNorm's missing ``num_batches_tracked`` filled as PyTorch does."""

from collections import OrderedDict

import numpy as np
import pytest

import minift
import minift.nn as nn
from minift.optim import SGD


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.scales = nn.ParameterList([np.ones(2), minift.zeros(3)])
        self.shifts = nn.ParameterDict({"a": np.zeros(2)})
        self.register_buffer("mask", minift.ones(2), persistent=False)
        self.register_buffer("count", minift.zeros(1))

    def forward(self, x):
        return x * self.scales[0] * self.mask + self.shifts["a"]


def test_parameter_containers_register_parameters_that_optimizers_step():
    model = Scaled()
    assert [name for name, _ in model.named_parameters()] == ["scales.0", "scales.1", "shifts.a"]
    assert all(isinstance(p, nn.Parameter) for p in model.parameters())
    optimizer = SGD(model.parameters(), lr=0.5)
    model(minift.ones(2)).sum().backward()
    optimizer.step()
    np.testing.assert_array_equal(model.scales[0].numpy(), [0.5, 0.5])
    np.testing.assert_array_equal(model.shifts["a"].numpy(), [-0.5, -0.5])
    model.scales.append(minift.ones(1))
    model.shifts["b"] = np.ones(1)
    assert len(model.scales) == 3 and "b" in model.shifts and len(list(model.parameters())) == 5


def test_a_non_persistent_buffer_moves_but_is_not_saved():
    model = Scaled()
    assert list(model.state_dict()) == ["count", "scales.0", "scales.1", "shifts.a"]  # own state first
    assert [name for name, _ in model.named_buffers()] == ["mask", "count"]
    model.to(np.float32)
    assert model.mask.dtype == np.float32
    model.load_state_dict(model.state_dict())  # strict: the mask is neither missing nor expected


def test_non_persistent_buffers_are_pytorchs():
    torch = pytest.importorskip("torch")
    module = torch.nn.Module()
    module.register_buffer("mask", torch.ones(2), persistent=False)
    module.register_buffer("count", torch.zeros(1))
    ours = nn.Module()
    ours.register_buffer("mask", minift.ones(2), persistent=False)
    ours.register_buffer("count", minift.zeros(1))
    assert list(ours.state_dict()) == list(module.state_dict())


def test_get_submodule_follows_the_dotted_path_and_names_what_is_missing():
    model = nn.Sequential(OrderedDict(body=nn.Sequential(nn.Linear(2, 3), nn.ReLU()), head=nn.Linear(3, 1)))
    assert model.get_submodule("body.0") is model.body[0]
    assert model.get_submodule("") is model
    with pytest.raises(AttributeError, match=r"has no submodule 'conv' \(looking for 'body.conv'\).*\['0', '1'\]"):
        model.get_submodule("body.conv")


def test_embedding_from_pretrained_copies_and_freezes():
    table = np.arange(6.0).reshape(3, 2)
    frozen = nn.Embedding.from_pretrained(minift.tensor(table))
    assert not frozen.weight.requires_grad
    np.testing.assert_array_equal(frozen(np.array([[2, 0]])).numpy(), table[[[2, 0]]])
    table[0, 0] = 99.0
    assert frozen.weight.numpy()[0, 0] == 0.0  # a copy
    trainable = nn.Embedding.from_pretrained(table, freeze=False, padding_idx=1)
    assert trainable.weight.requires_grad and trainable.padding_idx == 1
    with pytest.raises(ValueError, match="2-dimensional"):
        nn.Embedding.from_pretrained(np.zeros(3))


def test_embedding_from_pretrained_matches_torch():
    torch = pytest.importorskip("torch")
    table = torch.randn(4, 3)
    theirs = torch.nn.Embedding.from_pretrained(table, padding_idx=2)
    ours = nn.Embedding.from_pretrained(table, padding_idx=2)
    indices = np.array([[0, 2], [3, 1]])
    np.testing.assert_array_equal(ours(indices).numpy(), theirs(torch.tensor(indices)).numpy())
    assert ours.weight.requires_grad == theirs.weight.requires_grad


# ---------------------------------------------------------------- loading from PyTorch
def small_cnn(library):
    return library.Sequential(library.Conv2d(1, 2, 3), library.BatchNorm2d(2), library.ReLU(), library.Flatten(),
                              library.Linear(8, 3))


def test_a_dict_of_torch_tensors_loads_even_those_requiring_grad():
    torch = pytest.importorskip("torch")
    theirs = small_cnn(torch.nn)
    ours = small_cnn(nn)
    state = theirs.state_dict()
    state["4.weight"] = theirs[4].weight  # a Parameter that requires grad, as people pass them
    ours.load_state_dict(state)
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    theirs.eval(), ours.eval()
    np.testing.assert_allclose(ours(minift.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_array_likes_load_numpy_lists_and_minift_tensors():
    layer = nn.Linear(2, 1)
    layer.load_state_dict({"weight": [[1.0, 2.0]], "bias": minift.tensor([3.0])})
    np.testing.assert_array_equal(layer.weight.numpy(), [[1.0, 2.0]])
    assert layer.weight.dtype == np.float32 and layer.bias.numpy()[0] == 3.0


def test_cupy_arrays_load():
    import minift.backend

    available, reason = minift.backend.available_backends()["cupy"]
    if not available:  # the GPU skip that tests/skip_policy.py allows in CI
        pytest.skip(f"backend 'cupy' is not available: {reason}")
    import cupy

    values = cupy.asarray([[1.0, 2.0]])
    layer = nn.Linear(2, 1)
    layer.load_state_dict({"weight": values, "bias": cupy.zeros(1)})
    np.testing.assert_array_equal(layer.weight.numpy(), [[1.0, 2.0]])


def test_a_batchnorm_checkpoint_without_num_batches_tracked_loads_strictly_as_in_torch():
    torch = pytest.importorskip("torch")
    theirs, ours = small_cnn(torch.nn), small_cnn(nn)
    ours[1].num_batches_tracked.data[...] = 5
    old = {key: value for key, value in theirs.state_dict().items() if not key.endswith("num_batches_tracked")}
    theirs_result = theirs.load_state_dict(dict(old), strict=True)
    ours_result = ours.load_state_dict(dict(old), strict=True)
    assert list(ours_result.missing_keys) == list(theirs_result.missing_keys) == []
    assert int(ours[1].num_batches_tracked.item()) == 5  # PyTorch keeps the layer's own count


def test_a_versioned_torch_checkpoint_without_num_batches_tracked_is_refused_as_in_torch():
    torch = pytest.importorskip("torch")
    theirs, ours = small_cnn(torch.nn), small_cnn(nn)
    state = theirs.state_dict()  # carries _metadata: BatchNorm version 2
    del state["1.num_batches_tracked"]
    with pytest.raises(RuntimeError, match="num_batches_tracked"):
        theirs.load_state_dict(state)
    with pytest.raises(RuntimeError, match="missing key: 1.num_batches_tracked"):
        ours.load_state_dict(state)
