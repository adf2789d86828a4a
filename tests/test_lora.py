"""LoRA: the adapter's formula and gradients, an unchanged output at the start, exact
merge / unmerge, ``apply_lora`` on BERT and on any model, and frozen base weights that
stay bit-identical while the adapters train."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minift
from minift.finetune.lora import LoRALinear, apply_lora, lora_layers, lora_state_dict, merge_lora, unmerge_lora
from minift.nn import LayerNorm, Linear, Module, ReLU, Sequential
from minift.nn.bert import BertConfig, BertModel
from minift.optim import AdamW

shapes = st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 3), st.integers(0, 2**16))


def adapter(in_features, out_features, r, seed, alpha=4.0, random_b=True):
    minift.manual_seed(seed)
    layer = LoRALinear(Linear(in_features, out_features, dtype="float64"), r=min(r, in_features, out_features), alpha=alpha)
    if random_b:  # B starts at zero; give it values so that the adapter path is exercised
        layer.lora_B.data[...] = np.random.default_rng(seed).normal(size=layer.lora_B.shape)
    return layer


def tiny_bert(seed=0, layers=2) -> BertModel:
    minift.manual_seed(seed)
    config = BertConfig(vocab_size=40, hidden_size=8, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=12, max_position_embeddings=12, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    return BertModel(config, dtype="float64")


@settings(max_examples=30)
@given(shapes)
def test_forward_is_base_plus_scaled_low_rank_product(shape):
    n_in, n_out, r, seed = shape
    layer = adapter(n_in, n_out, r, seed)
    x = np.random.default_rng(seed + 1).normal(size=(3, n_in))
    A, B, W, b = layer.lora_A.numpy(), layer.lora_B.numpy(), layer.base.weight.numpy(), layer.base.bias.numpy()
    expected = x @ W.T + b + (layer.alpha / layer.r) * x @ A.T @ B.T
    np.testing.assert_allclose(layer(minift.Tensor(x)).numpy(), expected, atol=1e-12)


@settings(max_examples=30)
@given(shapes)
def test_a_new_adapter_changes_nothing(shape):
    n_in, n_out, r, seed = shape
    layer = adapter(n_in, n_out, r, seed, random_b=False)
    x = minift.Tensor(np.random.default_rng(seed).normal(size=(2, 3, n_in)))
    assert (layer(x).numpy() == layer.base(x).numpy()).all()
    assert (layer.lora_B.numpy() == 0).all()
    bound = 1 / math.sqrt(n_in)  # kaiming-uniform with a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in))
    assert np.abs(layer.lora_A.numpy()).max() <= bound


@settings(max_examples=20)
@given(shapes)
def test_gradients_match_central_differences_and_the_base_gets_none(shape):
    n_in, n_out, r, seed = shape
    layer = adapter(n_in, n_out, r, seed)
    x = minift.Tensor(np.random.default_rng(seed).normal(size=(2, n_in)), requires_grad=True)
    assert minift.gradcheck(lambda x, a, b: layer(x), [x, layer.lora_A, layer.lora_B])
    layer(x).sum().backward()
    assert layer.base.weight.grad is None and layer.base.bias.grad is None


@settings(max_examples=30)
@given(shapes)
def test_merge_keeps_the_output_and_unmerge_restores_the_weight_exactly(shape):
    n_in, n_out, r, seed = shape
    layer = adapter(n_in, n_out, r, seed)
    x = minift.Tensor(np.random.default_rng(seed).normal(size=(4, n_in)))
    before, weight = layer(x).numpy(), layer.base.weight.numpy().copy()
    layer.merge()
    np.testing.assert_allclose(layer(x).numpy(), before, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.base.weight.numpy(), weight + layer.delta_weight(), atol=0)
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()
    layer.unmerge()
    assert (layer.base.weight.numpy() == weight).all()
    assert (layer(x).numpy() == before).all()
    with pytest.raises(RuntimeError, match="not merged"):
        layer.unmerge()


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="nn.Linear"):
        LoRALinear(LayerNorm(4))
    for r in (0, 5, 2.0, True):
        with pytest.raises(ValueError, match="rank r"):
            LoRALinear(Linear(4, 6), r=r)
    with pytest.raises(ValueError, match="alpha"):
        LoRALinear(Linear(4, 6), r=2, alpha=0)


def test_apply_lora_on_bert_wraps_every_query_and_value():
    model = tiny_bert(layers=3)
    ids = np.random.default_rng(0).integers(1, 40, (2, 5))
    before = model(ids).last_hidden_state.numpy()
    report = apply_lora(model, r=2, alpha=4)
    assert report.replaced == [f"encoder.layer.{i}.attention.self.{w}" for i in range(3) for w in ("query", "value")]
    assert report.trainable == 3 * 2 * 2 * (8 + 8) == model.num_parameters(trainable_only=True)
    assert report.total == model.num_parameters()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{name}.lora_{m}" for name in report.replaced for m in "AB"}
    assert (model(ids).last_hidden_state.numpy() == before).all()
    assert "6 Linear layers" in str(report) and "trainable 192 of" in str(report)


def test_apply_lora_refuses_bad_targets_and_changes_nothing():
    model = tiny_bert()
    state = model.state_dict()
    for targets, r, message in ((("query", "nonexistent"), 2, "matches no module"),
                                (("LayerNorm",), 2, "is a LayerNorm, not a Linear"),
                                (("query", "intermediate.dense"), 9, r"query \(8 -> 8\): LoRA rank r")):
        with pytest.raises(ValueError, match=message):
            apply_lora(model, targets, r=r)
        assert lora_layers(model) == [] and all(p.requires_grad for p in model.parameters())
        assert list(model.state_dict()) == list(state)
    apply_lora(model, ("key",))
    with pytest.raises(ValueError, match="already has a LoRA adapter"):
        apply_lora(model, ("key",))


class TwoLayers(Module):
    def __init__(self):
        super().__init__()
        self.hidden, self.out = Linear(3, 5), Linear(5, 2)

    def forward(self, x):
        return self.out(self.hidden(x).relu())


def test_apply_lora_works_on_any_model_and_can_leave_the_rest_trainable():
    minift.manual_seed(0)
    model = TwoLayers()
    x = minift.randn(4, 3)
    before = model(x).numpy()
    report = apply_lora(model, ("hidden",), r=1, freeze_others=False)
    assert report.replaced == ["hidden"] and isinstance(model.hidden, LoRALinear)
    assert model.out.weight.requires_grad and not model.hidden.base.weight.requires_grad
    assert (model(x).numpy() == before).all()


def test_apply_lora_keeps_the_order_of_a_sequential():
    minift.manual_seed(0)
    model = Sequential(Linear(3, 5), ReLU(), Linear(5, 2))
    x = minift.randn(4, 3)
    before = model(x).numpy()
    apply_lora(model, ("0",), r=1)
    assert [type(m).__name__ for m in model] == ["LoRALinear", "ReLU", "Linear"]
    assert (model(x).numpy() == before).all()


def test_training_moves_only_the_adapters_and_they_save_alone():
    model = tiny_bert(seed=1)
    apply_lora(model, r=2, alpha=4)
    frozen = {name: value for name, value in model.state_dict().items() if "lora_" not in name}
    optimizer = AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    ids = np.random.default_rng(0).integers(1, 40, (3, 6))
    for _ in range(3):
        loss = (model(ids).last_hidden_state ** 2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    for name, value in model.state_dict().items():
        if name in frozen:
            assert (value == frozen[name]).all(), name
    adapters = lora_state_dict(model)
    assert sorted(adapters) == sorted(f"{n}.lora_{m}" for n, _ in lora_layers(model) for m in "AB")
    assert all(np.abs(adapters[n]).max() > 0 for n in adapters if n.endswith("lora_B"))  # B has learned

    fresh = tiny_bert(seed=1)
    apply_lora(fresh, r=2, alpha=4)
    fresh.load_state_dict(adapters, strict=False)
    np.testing.assert_array_equal(fresh(ids).last_hidden_state.numpy(), model(ids).last_hidden_state.numpy())


def test_merge_lora_merges_all_or_none():
    model = tiny_bert(seed=2)
    apply_lora(model, r=2)
    for _, layer in lora_layers(model):
        layer.lora_B.data[...] = np.random.default_rng(0).normal(size=layer.lora_B.shape)
    ids = np.random.default_rng(1).integers(1, 40, (2, 4))
    before, weights = model(ids).last_hidden_state.numpy(), model.state_dict()
    lora_layers(model)[1][1].merge()
    with pytest.raises(RuntimeError, match="1 adapters are already merged"):
        merge_lora(model)
    assert [layer.merged for _, layer in lora_layers(model)] == [False, True, False, False]
    lora_layers(model)[1][1].unmerge()
    assert merge_lora(model) == 4
    np.testing.assert_allclose(model(ids).last_hidden_state.numpy(), before, atol=1e-12)
    assert unmerge_lora(model) == 4
    for name, value in model.state_dict().items():
        assert (value == weights[name]).all(), name
