"""Transplant: a pretrained body into a model with a new head, by name; strict, readable,
and all-or-nothing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minift
from minift import io, nn
from minift.finetune import transplant
from minift.models import MLP, SmallCNN


def models(seed: int = 0, new_classes: int = 5):
    """A "pretrained" 10-class SmallCNN (with moved BatchNorm statistics) and a fresh 5-class one."""
    minift.manual_seed(seed)
    pretrained = SmallCNN(width=4, image_size=8)
    rng = np.random.default_rng(seed)
    for tensor in [*pretrained.parameters(), *pretrained.buffers()]:
        tensor.data[...] = rng.integers(1, 100, tensor.shape)
    return pretrained, SmallCNN(num_classes=new_classes, width=4, image_size=8)


def snapshot(model) -> dict:
    return {name: value.tobytes() for name, value in model.state_dict().items()}


@settings(max_examples=20)
@given(st.integers(0, 1000), st.integers(1, 9))
def test_the_body_is_loaded_and_the_new_head_kept(seed, classes):
    pretrained, model = models(seed, classes)
    head_before = {k: v for k, v in model.state_dict().items() if k.startswith("head.")}
    report = transplant(model, pretrained.state_dict(), skip=["head.*"])
    source, target = pretrained.state_dict(), model.state_dict()
    body_keys = [k for k in target if not k.startswith("head.")]
    assert report.loaded == body_keys
    assert report.new == ["head.weight", "head.bias"]
    assert set(report.skipped) == {"head.weight", "head.bias"}
    for key in body_keys:  # weights and BatchNorm statistics, cast to the model's dtype
        assert np.array_equal(target[key], source[key]) and target[key].dtype == source[key].dtype
    for key, value in head_before.items():
        assert np.array_equal(target[key], value)


def test_a_head_of_another_shape_is_an_error_unless_skipped_and_changes_nothing():
    pretrained, model = models()
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"head.weight: checkpoint shape \(10, 8\), the model's \(5, 8\)"):
        transplant(model, pretrained.state_dict())
    assert snapshot(model) == before


@pytest.mark.parametrize("extension", [".safetensors", ".npz"])
def test_a_checkpoint_path_is_loaded(tmp_path, extension):
    pretrained, model = models()
    path = tmp_path / f"pretrained{extension}"
    io.save(pretrained.state_dict(), path)
    report = transplant(model, str(path), skip="head.*")
    assert np.array_equal(model.body.block2.conv.weight.data, pretrained.body.block2.conv.weight.data)
    assert report.new == ["head.weight", "head.bias"]


def test_prefix_map_loads_a_bare_body_and_filters():
    pretrained, model = models()
    body_only = {k[len("body."):]: v for k, v in pretrained.state_dict().items() if k.startswith("body.")}
    report = transplant(model, body_only, prefix_map={"": "body."})
    assert np.array_equal(model.body.block3.bn.running_var.data, pretrained.body.block3.bn.running_var.data)
    assert report.skipped == {}
    _, other = models()
    report = transplant(other, pretrained.state_dict(), prefix_map={"body.": "body."})
    assert report.skipped == {key: "not under any prefix of prefix_map" for key in ("head.weight", "head.bias")}
    assert report.new == ["head.weight", "head.bias"]


def test_the_longest_prefix_wins():
    pretrained, model = models()
    renamed = {k.replace("body.block1.", "features.first.").replace("body.", "features."): v
               for k, v in pretrained.state_dict().items()}
    transplant(model, renamed, prefix_map={"features.": "body.", "features.first.": "body.block1."}, skip=["head.*"])
    assert np.array_equal(model.body.block1.conv.weight.data, pretrained.body.block1.conv.weight.data)


def test_another_architecture_is_an_error_and_changes_nothing():
    _, model = models()
    before = snapshot(model)
    with pytest.raises(ValueError, match="layer1.0.weight: the model has no such entry"):
        transplant(model, MLP([64, 16, 5]).state_dict())
    wider = SmallCNN(num_classes=5, width=8, image_size=8).state_dict()
    with pytest.raises(ValueError, match=r"body.block1.conv.weight: checkpoint shape \(8, 1, 3, 3\)"):
        transplant(model, wider, skip=["head.*"])
    with pytest.raises(ValueError, match="nothing to load"):
        transplant(model, {"head.weight": np.zeros((10, 8))}, skip=["head.*"])
    assert snapshot(model) == before


def test_two_keys_renamed_onto_one_is_an_error():
    model = nn.Sequential(nn.Linear(2, 2))
    state = {"a.weight": np.ones((2, 2)), "b.weight": np.ones((2, 2)), "a.bias": np.ones(2)}
    with pytest.raises(ValueError, match="both map to 0.weight"):
        transplant(model, state, prefix_map={"a.": "0.", "b.": "0."})


@pytest.mark.parametrize("state, prefix_map", [([1, 2], None), ({"0.weight": np.ones((2, 2))}, {"": 0})])
def test_bad_arguments_are_type_errors(state, prefix_map):
    with pytest.raises(TypeError):
        transplant(nn.Sequential(nn.Linear(2, 2)), state, prefix_map)


@settings(max_examples=20)
@given(st.data())
def test_entries_missing_from_the_checkpoint_stay_new(data):
    pretrained, model = models(data.draw(st.integers(0, 100)))
    keys = [k for k in pretrained.state_dict() if not k.startswith("head.")]
    kept = data.draw(st.lists(st.sampled_from(keys), min_size=1, unique=True))
    before = model.state_dict()
    state = {k: v for k, v in pretrained.state_dict().items() if k in kept}
    report = transplant(model, state)
    assert set(report.loaded) == set(kept) and set(report.new) == set(before) - set(kept)
    for key, value in model.state_dict().items():
        assert np.array_equal(value, state[key] if key in kept else before[key])


def test_the_report_prints_readably():
    pretrained, model = models()
    text = str(transplant(model, pretrained.state_dict(), skip=["head.*"]))
    lines = text.splitlines()
    assert lines[0] == f"transplant: {len(model.state_dict()) - 2} entries loaded, 2 new, 2 skipped"
    assert "  new (kept as initialised): head.weight" in lines
    assert "  skipped head.weight: matches skip (checkpoint shape (10, 8))" in lines
