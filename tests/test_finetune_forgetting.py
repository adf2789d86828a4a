"""L2-SP (value and gradient against its formula) and evaluate_accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minift
from minift import io, nn
from minift.data import ArrayDataset, DataLoader
from minift.finetune import L2SP, evaluate_accuracy, transplant
from minift.models import SmallCNN


def fine_tuned_pair(seed: int):
    """A pretrained 10-class model's state, and a 4-class model transplanted from it whose
    weights have then moved (as fine-tuning would move them)."""
    minift.manual_seed(seed)
    pretrained = SmallCNN(width=2, image_size=4).state_dict()
    model = SmallCNN(num_classes=4, width=2, image_size=4)
    transplant(model, pretrained, skip=["head.*"])
    rng = np.random.default_rng(seed)
    for param in model.parameters():
        param.data += rng.standard_normal(param.shape).astype(np.float32)
    return model, pretrained


@settings(max_examples=30)
@given(st.integers(0, 1000), st.floats(0, 10), st.floats(0, 10))
def test_penalty_and_gradient_follow_li_et_al(seed, alpha, beta):
    model, pretrained = fine_tuned_pair(seed)
    regulariser = L2SP(model, pretrained, alpha=alpha, beta=beta)
    body = {n: p.data.astype(np.float64) for n, p in model.named_parameters() if not n.startswith("head.")}
    head = {n: p.data.astype(np.float64) for n, p in model.named_parameters() if n.startswith("head.")}
    expected = (alpha / 2 * sum(np.sum((w - pretrained[n]) ** 2) for n, w in body.items())
                + beta / 2 * sum(np.sum(w**2) for w in head.values()))
    penalty = regulariser.penalty()
    assert penalty.shape == ()
    assert penalty.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    penalty.backward()
    for name, param in model.named_parameters():
        expected_grad = alpha * (body[name] - pretrained[name]) if name in body else beta * head[name]
        np.testing.assert_allclose(param.grad.data, expected_grad, rtol=1e-5, atol=1e-5)


def test_the_penalty_is_zero_at_the_pretrained_weights_without_head_decay():
    minift.manual_seed(0)
    model = SmallCNN(width=2, image_size=4)
    assert L2SP(model, model.state_dict(), alpha=1.0, beta=0.0).penalty().item() == 0.0


def test_the_pretrained_values_are_a_copy_and_load_from_a_path(tmp_path):
    model, pretrained = fine_tuned_pair(1)
    io.save(pretrained, tmp_path / "pretrained.safetensors")
    from_path = L2SP(model, str(tmp_path / "pretrained.safetensors")).penalty().item()
    regulariser = L2SP(model, pretrained)
    for value in pretrained.values():
        value[...] = 0
    assert regulariser.penalty().item() == pytest.approx(from_path, rel=1e-6)


@pytest.mark.parametrize("change, message", [
    (dict(alpha=-1.0), "alpha must be a finite number >= 0"),
    (dict(beta=float("nan")), "beta must be a finite number >= 0"),
    (dict(head_prefixes=("fc.",)), r"head_prefixes \['fc.'\] match no parameter"),
    (dict(head_prefixes=("body.block3.", "head.")), None),
])
def test_bad_arguments_are_clear_errors(change, message):
    model, pretrained = fine_tuned_pair(2)
    if message is None:  # a body block declared new is fine: it is decayed toward zero
        assert len(L2SP(model, pretrained, **change).head) == 5
        return
    with pytest.raises(ValueError, match=message):
        L2SP(model, pretrained, **change)


def test_a_body_parameter_without_a_pretrained_value_is_an_error():
    model, pretrained = fine_tuned_pair(3)
    del pretrained["body.block2.bn.weight"]
    pretrained["body.block1.conv.weight"] = np.zeros((3, 1, 3, 3))
    with pytest.raises(ValueError) as error:
        L2SP(model, pretrained)
    assert "body.block2.bn.weight: not in the pretrained state" in str(error.value)
    assert "body.block1.conv.weight: pretrained shape (3, 1, 3, 3), the model's (2, 1, 3, 3)" in str(error.value)


# ---------------------------------------------------------------- evaluate_accuracy
class Threshold(nn.Module):
    """Predicts class 1 where x[:, 0] > 0; has a BatchNorm to show that eval() is used."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(1)
        self.inner = nn.Identity()

    def forward(self, x):
        x = self.bn(x[:, 0:1])
        return minift.cat([-x, x], axis=1)


@settings(max_examples=20)
@given(st.integers(0, 1000), st.integers(1, 40), st.integers(1, 16), st.data())
def test_evaluate_accuracy_counts_correct_arg_max_in_eval_mode(seed, count, batch_size, data):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((count, 3)).astype(np.float32)
    y = rng.integers(0, 2, count)
    model = Threshold()
    modes = {"": data.draw(st.booleans()), "bn": data.draw(st.booleans()), "inner": data.draw(st.booleans())}
    for name, module in model.named_modules():
        module.training = modes[name]
    accuracy = evaluate_accuracy(model, DataLoader(ArrayDataset(x, y), batch_size=batch_size))
    assert accuracy == pytest.approx(np.mean((x[:, 0] > 0) == y))
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert model.bn.num_batches_tracked.item() == 0
    assert all(p.grad is None for p in model.parameters())


def test_evaluate_accuracy_restores_the_modes_when_the_model_fails():
    model = SmallCNN(width=2, image_size=4).train()
    loader = [(minift.zeros(2, 1, 5, 5), minift.tensor([0, 1]))]
    with pytest.raises(ValueError, match="SmallCNN expects images"):
        evaluate_accuracy(model, loader)
    assert all(m.training for m in model.modules())


def test_evaluate_accuracy_of_an_empty_loader_is_an_error():
    with pytest.raises(ValueError, match="no samples"):
        evaluate_accuracy(SmallCNN(width=2), [])
