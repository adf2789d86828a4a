"""MultiheadAttention and the Transformer encoder against per-head NumPy formulas, their
gradients by ``minift.gradcheck``, and parity with PyTorch (weights copied through
``state_dict``, so the parameter names must be PyTorch's) where torch is installed.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minift
from minift import nn
from test_nn_layers import (F64, SEEDS, assert_same_as_torch, from_torch, leaf, np_gelu, np_layer_norm, np_linear,
                            np_softmax)

# ---------------------------------------------------------------- NumPy formulas


def additive(mask):
    """A bool mask (True = not allowed) as 0 / -inf, a float mask as it is."""
    return np.where(mask, -np.inf, 0.0) if mask.dtype == np.bool_ else mask


def np_multihead_attention(state, num_heads, query, key, value, key_padding_mask=None, attn_mask=None):
    """Batch-first ``query (N, L, E)``, ``key, value (N, S, E)`` -> output ``(N, L, E)`` and
    the weights of every head ``(N, H, L, S)``, one batch element and one head at a time:

        head h of sample n:  softmax(q_h k_h^T / sqrt(D) + masks) v_h   on columns h*D..(h+1)*D
        output:              concat(heads) W_o^T + b_o
    """
    n, length, e = query.shape
    d = e // num_heads
    w, b = state["in_proj_weight"], state["in_proj_bias"]
    q, k, v = np_linear(query, w[:e], b[:e]), np_linear(key, w[e:2 * e], b[e:2 * e]), np_linear(value, w[2 * e:], b[2 * e:])
    concat = np.zeros((n, length, e))
    weights = np.zeros((n, num_heads, length, key.shape[1]))
    for i in range(n):
        for h in range(num_heads):
            cols = slice(h * d, (h + 1) * d)
            scores = q[i][:, cols] @ k[i][:, cols].T / math.sqrt(d)
            if attn_mask is not None:
                scores = scores + additive(attn_mask if attn_mask.ndim == 2 else attn_mask[i * num_heads + h])
            if key_padding_mask is not None:
                scores = scores + additive(key_padding_mask[i])[None, :]
            weights[i, h] = np_softmax(scores, axis=-1)
            concat[i][:, cols] = weights[i, h] @ v[i][:, cols]
    return np_linear(concat, state["out_proj.weight"], state["out_proj.bias"]), weights


def np_encoder_layer(state, num_heads, x, norm_first, activation, eps, key_padding_mask=None, attn_mask=None):
    """The Transformer encoder layer on batch-first ``x (N, L, E)`` (dropout off)."""
    def norm(name, y):
        return np_layer_norm(y, 1, state[f"{name}.weight"], state[f"{name}.bias"], eps)

    def attend(y):
        attention = {key[len("self_attn."):]: value for key, value in state.items() if key.startswith("self_attn.")}
        return np_multihead_attention(attention, num_heads, y, y, y, key_padding_mask, attn_mask)[0]

    def feed_forward(y):
        hidden = np_linear(y, state["linear1.weight"], state["linear1.bias"])
        hidden = np.maximum(hidden, 0) if activation == "relu" else np_gelu(hidden)
        return np_linear(hidden, state["linear2.weight"], state["linear2.bias"])

    if norm_first:
        x = x + attend(norm("norm1", x))
        return x + feed_forward(norm("norm2", x))
    x = norm("norm1", x + attend(x))
    return norm("norm2", x + feed_forward(x))


# ---------------------------------------------------------------- drawing cases

@st.composite
def attention_cases(draw, self_attention=False, most=3):
    """Sizes (heads, head size, batch at most ``most``; sequences at most ``most + 1``),
    batch-first inputs and masks for one attention call.

    Key 0 is never masked, so no query is left with nothing to attend to (softmax of an
    all -inf row is NaN, in PyTorch too). Float masks hold finite values and some -inf.
    """
    num_heads = draw(st.integers(1, most))
    embed_dim = num_heads * draw(st.integers(1, most))
    n, length = draw(st.integers(1, most)), draw(st.integers(1, most + 1))
    source = length if self_attention else draw(st.integers(1, most + 1))
    rng = np.random.default_rng(draw(SEEDS))
    query = rng.standard_normal((n, length, embed_dim))
    key = query if self_attention else rng.standard_normal((n, source, embed_dim))
    value = query if self_attention else rng.standard_normal((n, source, embed_dim))

    def mask(shape, kind):
        if kind == "none":
            return None
        blocked = rng.random(shape) < 0.4
        blocked[..., 0] = False
        if kind == "bool":
            return blocked
        return np.where(blocked, -np.inf, rng.standard_normal(shape))

    padding = mask((n, source), draw(st.sampled_from(["none", "bool", "float"])))
    attn_shape = draw(st.sampled_from([(length, source), (n * num_heads, length, source)]))
    attn_mask = mask(attn_shape, draw(st.sampled_from(["none", "bool", "float"])))
    return dict(num_heads=num_heads, embed_dim=embed_dim, query=query, key=key, value=value,
                key_padding_mask=padding, attn_mask=attn_mask)


def randomise(module, seed):
    """Every parameter drawn from N(0, 0.5^2): biases and norms away from their 0 / 1 defaults."""
    rng = np.random.default_rng(seed)
    for param in module.parameters():
        param.data[...] = rng.standard_normal(param.shape) * 0.5
    return module


def randomise_torch(torch, module, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.normal_(0, 0.5)
    return module


def sequence_first(x):
    return None if x is None else np.ascontiguousarray(x.transpose(1, 0, 2))


def masks_of(case):
    return {name: case[name] for name in ("key_padding_mask", "attn_mask")}


# ---------------------------------------------------------------- MultiheadAttention

@given(attention_cases(), st.booleans(), st.booleans(), SEEDS)
def test_multihead_attention_is_softmax_attention_per_head(case, batch_first, average, seed):
    attention = randomise(nn.MultiheadAttention(case["embed_dim"], case["num_heads"], batch_first=batch_first, dtype=F64), seed)
    expected_out, expected_weights = np_multihead_attention(
        attention.state_dict(), case["num_heads"], case["query"], case["key"], case["value"], **masks_of(case))
    inputs = [case[name] if batch_first else sequence_first(case[name]) for name in ("query", "key", "value")]
    out, weights = attention(*map(minift.Tensor, inputs), average_attn_weights=average, **masks_of(case))
    out = out.numpy() if batch_first else sequence_first(out.numpy())
    np.testing.assert_allclose(out, expected_out, rtol=1e-9, atol=1e-11)
    expected_weights = expected_weights.mean(axis=1) if average else expected_weights
    np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-9, atol=1e-12)
    assert attention(*map(minift.Tensor, inputs), need_weights=False, **masks_of(case))[1] is None


@settings(max_examples=10)
@given(attention_cases(most=2), st.booleans(), SEEDS)
def test_multihead_attention_gradients(case, batch_first, seed):
    attention = randomise(nn.MultiheadAttention(case["embed_dim"], case["num_heads"], batch_first=batch_first, dtype=F64), seed)
    inputs = [leaf(case[name] if batch_first else sequence_first(case[name])) for name in ("query", "key", "value")]
    for which in (0, 1):  # the output and the attention weights

        def run(query, key, value, *parameters):
            return attention(query, key, value, **masks_of(case))[which]

        assert minift.gradcheck(run, [*inputs, *attention.parameters()])


@settings(max_examples=15)
@given(attention_cases(), SEEDS)
def test_inference_without_weights_is_one_attention_forward_call_with_the_same_output(case, seed):
    """Under no_grad with need_weights=False the heads' output comes from the contract's
    ``attention_forward``; it equals the recorded path's, which a gradient still takes."""
    from minift import contract

    calls, real = [], contract.attention_forward

    def counted(*args):
        calls.append(args)
        return real(*args)

    attention = randomise(nn.MultiheadAttention(case["embed_dim"], case["num_heads"], batch_first=True, dtype=F64), seed)
    inputs = [minift.Tensor(case[name]) for name in ("query", "key", "value")]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(contract, "attention_forward", counted)
        recorded, _ = attention(*inputs, need_weights=False, **masks_of(case))
        assert not calls and recorded.requires_grad
        with minift.no_grad():
            inferred, weights = attention(*inputs, need_weights=False, **masks_of(case))
    assert len(calls) == 1 and weights is None and not inferred.requires_grad
    np.testing.assert_allclose(inferred.numpy(), recorded.numpy(), rtol=1e-12, atol=1e-14)


@given(st.floats(0.2, 0.8), SEEDS)
def test_attention_dropout_acts_on_the_returned_weights_in_training_only(p, seed):
    attention = nn.MultiheadAttention(4, 2, dropout=p, batch_first=True, dtype=F64)
    x = minift.Tensor(np.random.default_rng(seed).standard_normal((2, 5, 4)))
    minift.manual_seed(seed)
    out, weights = attention(x, x, x, average_attn_weights=False)
    # the output is made from exactly the weights returned (after dropout, as in PyTorch)
    v = (x.numpy() @ attention.in_proj_weight.numpy()[8:].T + attention.in_proj_bias.numpy()[8:]).reshape(2, 5, 2, 2)
    heads = np.einsum("nhls,nshd->nlhd", weights.numpy(), v).reshape(2, 5, 4)
    np.testing.assert_allclose(out.numpy(), np_linear(heads, attention.out_proj.weight.numpy(), attention.out_proj.bias.numpy()),
                               rtol=1e-9, atol=1e-12)
    assert (weights.numpy() == 0).any()
    eval_weights = attention.eval()(x, x, x, average_attn_weights=False)[1].numpy()
    np.testing.assert_allclose(eval_weights.sum(axis=-1), 1.0)


def test_multihead_attention_refuses_bad_sizes_and_masks():
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(6, 4)
    attention = nn.MultiheadAttention(4, 2, batch_first=True)
    x = minift.randn(2, 3, 4)
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(3, 3\) or \(4, 3, 3\)"):
        attention(x, x, x, attn_mask=np.zeros((3, 4), dtype=bool))
    with pytest.raises(ValueError, match=r"key_padding_mask .* \(2, 3\)"):
        attention(x, x, x, key_padding_mask=np.zeros((3, 2), dtype=bool))
    with pytest.raises(TypeError, match="bool .* or float"):
        attention(x, x, x, key_padding_mask=np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="last size 4"):
        attention(minift.randn(2, 3, 5), x, x)


# ---------------------------------------------------------------- the Transformer encoder

@settings(max_examples=15)
@given(attention_cases(self_attention=True), st.booleans(), st.sampled_from(["relu", "gelu"]), st.booleans(),
       st.integers(1, 6), SEEDS)
def test_encoder_layer_is_attention_then_feed_forward_each_residual(case, norm_first, activation, batch_first, hidden, seed):
    layer = nn.TransformerEncoderLayer(case["embed_dim"], case["num_heads"], dim_feedforward=hidden, dropout=0.3,
                                       activation=activation, batch_first=batch_first, norm_first=norm_first, dtype=F64)
    randomise(layer, seed).eval()  # eval: dropout off
    expected = np_encoder_layer(layer.state_dict(), case["num_heads"], case["query"], norm_first, activation, 1e-5,
                                **masks_of(case))
    x = case["query"] if batch_first else sequence_first(case["query"])
    out = layer(minift.Tensor(x), src_mask=case["attn_mask"], src_key_padding_mask=case["key_padding_mask"]).numpy()
    np.testing.assert_allclose(out if batch_first else sequence_first(out), expected, rtol=1e-8, atol=1e-10)


@settings(max_examples=8)
@given(attention_cases(self_attention=True, most=2), st.booleans(), st.sampled_from(["relu", "gelu"]), SEEDS)
def test_encoder_layer_gradients(case, norm_first, activation, seed):
    layer = nn.TransformerEncoderLayer(case["embed_dim"], case["num_heads"], dim_feedforward=3, dropout=0.0,
                                       activation=activation, batch_first=True, norm_first=norm_first, dtype=F64)
    randomise(layer, seed)

    def run(x, *parameters):
        return layer(x, src_mask=case["attn_mask"], src_key_padding_mask=case["key_padding_mask"])

    assert minift.gradcheck(run, [leaf(case["query"]), *layer.parameters()])


def test_encoder_layer_refuses_an_unknown_activation():
    with pytest.raises(ValueError, match="'relu' or 'gelu'.*'swish'"):
        nn.TransformerEncoderLayer(4, 2, activation="swish")


def test_encoder_stacks_independent_copies_then_the_norm():
    minift.manual_seed(0)
    layer = randomise(nn.TransformerEncoderLayer(4, 2, dim_feedforward=6, dropout=0.0, batch_first=True, dtype=F64), 1)
    encoder = nn.TransformerEncoder(layer, num_layers=2, norm=nn.LayerNorm(4, dtype=F64))
    first, second = encoder.layers
    assert first is not layer and first.linear1.weight is not second.linear1.weight
    assert "layers.1.self_attn.in_proj_weight" in encoder.state_dict() and "norm.weight" in encoder.state_dict()
    second.linear1.weight.data[...] += 1  # the copies train apart
    x = minift.randn(2, 3, 4, dtype=F64)
    np.testing.assert_allclose(encoder(x).numpy(), encoder.norm(second(first(x))).numpy(), rtol=1e-12)


# ---------------------------------------------------------------- parity with PyTorch

def torch_masks(torch, case):
    return {name: None if mask is None else torch.tensor(mask) for name, mask in masks_of(case).items()}


@pytest.mark.filterwarnings("ignore:Support for mismatched")  # torch warns when one mask is bool, the other float
@given(attention_cases(), st.booleans(), st.booleans(), st.booleans(), SEEDS)
def test_multihead_attention_matches_torch(case, batch_first, need_weights, average, seed):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.MultiheadAttention(case["embed_dim"], case["num_heads"], batch_first=batch_first, dtype=torch.float64)
    ours = nn.MultiheadAttention(case["embed_dim"], case["num_heads"], batch_first=batch_first, dtype=F64)
    from_torch(randomise_torch(torch, theirs, seed), ours)
    inputs = [case[name] if batch_first else sequence_first(case[name]) for name in ("query", "key", "value")]
    assert_same_as_torch(torch, theirs, ours, inputs, need_weights=need_weights, average_attn_weights=average,
                         **masks_of(case))


@pytest.mark.filterwarnings("ignore:Support for mismatched", "ignore:enable_nested_tensor")
@settings(max_examples=15)
@given(attention_cases(self_attention=True), st.booleans(), SEEDS)
def test_encoder_layer_inference_matches_torch(case, norm_first, seed):
    """minift in eval mode under no_grad (its attention_forward) against PyTorch's eval mode
    with gradients on (its "slow path": the fast one refuses some of these masks, and gave
    NaN for a float mask on a one-token sequence)."""
    torch = pytest.importorskip("torch")
    settings_ = dict(dim_feedforward=5, dropout=0.1, batch_first=True, norm_first=norm_first)
    theirs = torch.nn.TransformerEncoderLayer(case["embed_dim"], case["num_heads"], dtype=torch.float64, **settings_)
    ours = nn.TransformerEncoderLayer(case["embed_dim"], case["num_heads"], dtype=F64, **settings_)
    from_torch(randomise_torch(torch, theirs, seed), ours)
    theirs.eval(), ours.eval()
    masks = dict(src_mask=case["attn_mask"], src_key_padding_mask=case["key_padding_mask"])
    want = theirs(torch.tensor(case["query"]), **{k: None if v is None else torch.tensor(v) for k, v in masks.items()})
    with minift.no_grad():
        got = ours(minift.Tensor(case["query"]), **masks)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-8, atol=1e-10)


@pytest.mark.filterwarnings("ignore:Support for mismatched", "ignore:enable_nested_tensor")
@settings(max_examples=15)
@given(attention_cases(self_attention=True), st.booleans(), st.sampled_from(["relu", "gelu"]), st.booleans(), SEEDS)
def test_encoder_layer_and_encoder_match_torch(case, norm_first, activation, batch_first, seed):
    torch = pytest.importorskip("torch")
    settings_ = dict(dim_feedforward=5, dropout=0.0, activation=activation, batch_first=batch_first, norm_first=norm_first)
    theirs = torch.nn.TransformerEncoderLayer(case["embed_dim"], case["num_heads"], dtype=torch.float64, **settings_)
    ours = nn.TransformerEncoderLayer(case["embed_dim"], case["num_heads"], dtype=F64, **settings_)
    from_torch(randomise_torch(torch, theirs, seed), ours)
    x = case["query"] if batch_first else sequence_first(case["query"])
    masks = dict(src_mask=case["attn_mask"], src_key_padding_mask=case["key_padding_mask"])
    assert_same_as_torch(torch, theirs, ours, [x], rtol=1e-8, atol=1e-10, **masks)
    theirs_stack, ours_stack = torch.nn.TransformerEncoder(theirs, 2), nn.TransformerEncoder(ours, 2)
    from_torch(theirs_stack, ours_stack)
    assert_same_as_torch(torch, theirs_stack, ours_stack, [x], rtol=1e-8, atol=1e-10,
                         mask=masks["src_mask"], src_key_padding_mask=masks["src_key_padding_mask"])
