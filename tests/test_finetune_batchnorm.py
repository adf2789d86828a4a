"""BatchNorm while frozen: Keras's rule (inference mode, statistics fixed) and fastai's
(batch statistics, running statistics updated)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minift
from minift import nn
from minift.finetune import freeze, set_bn_policy, unfreeze
from minift.models import SmallCNN

SIZE = 8


def batchnorms(model) -> list:
    return [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]


def statistics(model) -> dict:
    return {name: b.data.tobytes() for name, b in model.named_buffers()}


def images(seed: int, scale: float = 1.0, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    return minift.Tensor((scale * rng.standard_normal((6, 1, SIZE, SIZE)) + shift).astype(np.float32))


def pretrained_model(seed: int) -> SmallCNN:
    """A SmallCNN whose running statistics have moved away from their initial 0 and 1."""
    minift.manual_seed(seed)
    model = SmallCNN(width=4, image_size=SIZE)
    with minift.no_grad():
        for step in range(3):
            model(images(seed + step))
    return model


def eval_output(model, x) -> np.ndarray:
    model.eval()
    with minift.no_grad():
        out = model(x).data.copy()
    model.train()
    return out


@settings(max_examples=20)
@given(st.integers(0, 1000), st.floats(0.2, 5.0), st.floats(-3.0, 3.0))
def test_keras_a_frozen_batchnorm_runs_in_inference_mode(seed, scale, shift):
    model = pretrained_model(seed)
    set_bn_policy(model, "keras")
    freeze(model)
    model.train()
    x = images(seed + 100, scale, shift)  # a small target batch with other statistics
    before = statistics(model)
    out = model(x).data
    assert statistics(model) == before
    assert np.array_equal(out, eval_output(model, x))


@settings(max_examples=20)
@given(st.integers(0, 1000), st.floats(0.2, 5.0), st.floats(-3.0, 3.0))
def test_fastai_a_frozen_batchnorm_keeps_updating_its_statistics(seed, scale, shift):
    model = pretrained_model(seed)
    set_bn_policy(model, "fastai")
    freeze(model)
    model.train()
    x = images(seed + 100, scale, shift)
    before = statistics(model)
    out = model(x).data
    for bn in batchnorms(model):
        assert bn.num_batches_tracked.item() == 4
    changed = {name for name, value in statistics(model).items() if value != before[name]}
    assert changed == set(before)
    assert not np.allclose(out, eval_output(model, x))


def test_keras_policy_leaves_trainable_batchnorms_in_training_mode():
    model = pretrained_model(0)
    set_bn_policy(model, "keras")
    freeze(model)
    unfreeze(model)
    before = statistics(model)
    model(images(7))
    assert all(statistics(model)[name] != value for name, value in before.items())


def test_keras_policy_acts_only_on_frozen_groups():
    model = pretrained_model(1)
    set_bn_policy(model, "keras")
    model.body.block1.requires_grad_(False)
    before = statistics(model)
    model(images(8))
    after = statistics(model)
    moved = {name.split(".")[1] for name in before if after[name] != before[name]}
    assert moved == {"block2", "block3"}


def test_set_bn_policy_sets_every_batchnorm_and_counts_them():
    model = nn.Sequential(SmallCNN(width=2), nn.BatchNorm1d(10))
    assert set_bn_policy(model, "keras") == 4
    assert all(bn.eval_when_frozen for bn in batchnorms(model))
    assert set_bn_policy(model, "fastai") == 4
    assert not any(bn.eval_when_frozen for bn in batchnorms(model))


@pytest.mark.parametrize("policy", ["tf", "Keras", None, True])
def test_an_unknown_policy_is_an_error_and_changes_nothing(policy):
    model = SmallCNN(width=2)
    set_bn_policy(model, "keras")
    with pytest.raises(ValueError, match="fastai"):
        set_bn_policy(model, policy)
    assert all(bn.eval_when_frozen for bn in batchnorms(model))
