"""BERT (Devlin et al. 2019): the Transformer encoder behind most pretrained text models.

A sentence becomes ``input_ids (N, L)`` (WordPiece ids, see ``minift.text``), and every
token a vector of width ``H`` that has looked at every other token of its sentence::

    x = LayerNorm(word[input_ids] + position[0..L-1] + token_type[token_type_ids])
    for each of the layers (post-LN, as in the original Transformer):
        a = LayerNorm(x + Dense(SelfAttention(x, padding mask)))        # attention block
        x = LayerNorm(a + Dense(GELU(Dense(a))))                        # feed-forward block
    last_hidden_state = x                                               # (N, L, H)
    pooler_output     = tanh(Dense(x[:, 0]))                            # the [CLS] token, (N, H)

Self-attention splits ``H`` into ``A`` heads of width ``D = H / A``; each head mixes the
token vectors with weights ``softmax(Q K^T / sqrt(D) + mask)``, where the mask is ``-inf``
on padding keys, so padding never changes a real token's vector.

The modules and their attribute names are those of Hugging Face's ``BertModel``, so a
checkpoint's names are this model's ``state_dict`` keys with no renaming table::

    embeddings.word_embeddings.weight            (V, H)
    embeddings.position_ids                      (1, P)  int64 buffer: 0, 1, ..., P-1
    encoder.layer.0.attention.self.query.weight  (H, H)   (.key, .value alike)
    encoder.layer.0.attention.output.dense       (H, H)   and .LayerNorm
    encoder.layer.0.intermediate.dense           (I, H)
    encoder.layer.0.output.dense                 (H, I)   and .LayerNorm
    pooler.dense                                 (H, H)

``embeddings.position_ids`` is a buffer because the checkpoints hold it (Hugging Face
saved it until transformers 4.31); registering it lets ``load_state_dict`` stay strict.

Sentence embeddings (sentence-transformers' all-MiniLM-L6-v2) are the *mean* of the
token vectors over real tokens, ``mean_pool``, then L2-normalised.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import functional as F
from .. import io
from ..engine.creation import arange
from ..backend.device import array_module
from ..engine.tensor import Tensor
from . import init
from .activation import Dropout
from .attention import attention_bias, attention_output
from .container import ModuleList
from .embedding import Embedding
from .linear import Linear
from .module import Module
from .normalization import LayerNorm

ACTIVATIONS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}
"""``hidden_act`` of a config -> ``F.gelu``'s ``approximate``: BERT's "gelu" is the exact (erf) one."""


@dataclass
class BertConfig:
    """The architecture, with the names and defaults (BERT-base) of Hugging Face's config.json."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by "
                             f"num_attention_heads ({self.num_attention_heads})")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {sorted(ACTIVATIONS)}, got {self.hidden_act!r}")

    @classmethod
    def from_dict(cls, config: dict) -> BertConfig:
        """The fields this model uses; other keys (``architectures``, ``model_type``...) are
        ignored, except settings that would change the architecture, which are refused."""
        position_type = config.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ValueError(f"only absolute position embeddings are implemented, the config asks for {position_type!r}")
        if config.get("is_decoder") or config.get("add_cross_attention"):
            raise ValueError("this is an encoder; the config describes a decoder (is_decoder / add_cross_attention)")
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in config.items() if key in names})

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> BertConfig:
        """Read a Hugging Face ``config.json``."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def to_dict(self) -> dict:
        return asdict(self)


class BertEmbeddings(Module):
    """x = LayerNorm(word[ids] + position[0..L-1] + token_type[types]), then dropout:
    ``input_ids (N, L)`` -> ``(N, L, H)``."""

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        self.word_embeddings = Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id, dtype=dtype)
        self.position_embeddings = Embedding(config.max_position_embeddings, config.hidden_size, dtype=dtype)
        self.token_type_embeddings = Embedding(config.type_vocab_size, config.hidden_size, dtype=dtype)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.register_buffer("position_ids", arange(config.max_position_embeddings).reshape(1, -1))

    def forward(self, input_ids, token_type_ids):
        length = input_ids.shape[1]
        positions = self.position_ids.data[:, :length]
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(Module):
    """Multi-head self-attention with separate ``query``, ``key``, ``value`` projections
    (H -> H each): ``x (N, L, H)`` -> the heads' outputs concatenated, ``(N, L, H)``."""

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.query = Linear(config.hidden_size, config.hidden_size, dtype=dtype)
        self.key = Linear(config.hidden_size, config.hidden_size, dtype=dtype)
        self.value = Linear(config.hidden_size, config.hidden_size, dtype=dtype)
        self.dropout_p = config.attention_probs_dropout_prob

    def _heads(self, x):
        n, length, _ = x.shape
        return x.reshape(n, length, self.num_heads, self.head_dim).permute(0, 2, 1, 3)  # (N, A, L, D)

    def forward(self, x, bias):
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        context = attention_output(q, k, v, bias, self.dropout_p, self.training)
        n, _, length, _ = context.shape
        return context.permute(0, 2, 1, 3).reshape(n, length, self.num_heads * self.head_dim)


class BertSelfOutput(Module):
    """The attention block's projection and residual: LayerNorm(x + dropout(dense(h)))."""

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size, dtype=dtype)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, h, x):
        return self.LayerNorm(x + self.dropout(self.dense(h)))


class BertAttention(Module):
    """The attention block: ``self`` (the heads) then ``output`` (projection, residual, norm)."""

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        self.self = BertSelfAttention(config, dtype)
        self.output = BertSelfOutput(config, dtype)

    def forward(self, x, bias):
        return self.output(self.self(x, bias), x)


class BertIntermediate(Module):
    """The feed-forward block's expansion: GELU(dense(x)), H -> I (usually I = 4H)."""

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.intermediate_size, dtype=dtype)
        self.approximate = ACTIVATIONS[config.hidden_act]

    def forward(self, x):
        return F.gelu(self.dense(x), self.approximate)


class BertOutput(Module):
    """The feed-forward block's projection and residual: LayerNorm(x + dropout(dense(h))), I -> H."""

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        self.dense = Linear(config.intermediate_size, config.hidden_size, dtype=dtype)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, h, x):
        return self.LayerNorm(x + self.dropout(self.dense(h)))


class BertLayer(Module):
    """One encoder layer: the attention block, then the feed-forward block (post-LN)."""

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        self.attention = BertAttention(config, dtype)
        self.intermediate = BertIntermediate(config, dtype)
        self.output = BertOutput(config, dtype)

    def forward(self, x, bias):
        a = self.attention(x, bias)
        return self.output(self.intermediate(a), a)


class BertEncoder(Module):
    """``layer``: the encoder layers, applied in turn."""

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        self.layer = ModuleList(BertLayer(config, dtype) for _ in range(config.num_hidden_layers))

    def forward(self, x, bias):
        for layer in self.layer:
            x = layer(x, bias)
        return x


class BertPooler(Module):
    """tanh(dense(x[:, 0])): the [CLS] token's vector, as BERT's next-sentence head used it."""

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size, dtype=dtype)

    def forward(self, hidden):
        return F.tanh(self.dense(hidden[:, 0]))


class BertModelOutput(NamedTuple):
    """``last_hidden_state (N, L, H)``; ``pooler_output (N, H)``, or None without a pooler."""

    last_hidden_state: Tensor
    pooler_output: Tensor | None


class BertModel(Module):
    """The BERT encoder: ``embeddings``, ``encoder`` (``config.num_hidden_layers`` layers) and,
    with ``add_pooling_layer``, ``pooler``.

    ``model(input_ids, attention_mask=None, token_type_ids=None)``, each ``(N, L)`` int:
    ``attention_mask`` is 1 for tokens and 0 for padding (None: all tokens),
    ``token_type_ids`` 0/1 for the first/second text (None: all 0). Returns a
    ``BertModelOutput``. Weights start as in BERT: N(0, 0.02), biases 0, LayerNorm 1 and 0.
    """

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True, dtype=None):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config, dtype)
        self.encoder = BertEncoder(config, dtype)
        self.pooler = BertPooler(config, dtype) if add_pooling_layer else None
        self._init_weights()

    def _init_weights(self, std: float = 0.02) -> None:
        for module in self.modules():
            if isinstance(module, (Linear, Embedding)):
                init.normal_(module.weight, 0.0, std)
            if isinstance(module, Linear) and module.bias is not None:
                init.zeros_(module.bias)
            if isinstance(module, LayerNorm):
                init.ones_(module.weight)
                init.zeros_(module.bias)
        padding = self.embeddings.word_embeddings.padding_idx
        self.embeddings.word_embeddings.weight.data[padding] = 0

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, add_pooling_layer: bool = True, dtype=None) -> BertModel:
        """Build the model of ``directory/config.json`` and load ``directory/model.safetensors``
        with minift's reader, strictly: every name in the file must be a name of the model.

        A checkpoint of a task model (``BertForSequenceClassification``) keeps the encoder
        under ``bert.``: that prefix is taken and the task head's entries are left out.
        ``add_pooling_layer=False`` leaves the file's ``pooler.*`` entries out.
        """
        directory = Path(directory)
        model = cls(BertConfig.from_json(directory / "config.json"), add_pooling_layer, dtype)
        state = io.load(directory / "model.safetensors")
        if "bert.embeddings.word_embeddings.weight" in state:
            state = {key[len("bert."):]: value for key, value in state.items() if key.startswith("bert.")}
        if not add_pooling_layer:
            state = {key: value for key, value in state.items() if not key.startswith("pooler.")}
        # transformers >= 4.31 no longer saves this buffer: it is always 0..P-1.
        state.setdefault("embeddings.position_ids", model.embeddings.position_ids.numpy())
        model.load_state_dict(state)
        return model

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> BertModelOutput:
        ids = _int_array(input_ids, "input_ids")
        if ids.ndim != 2:
            raise ValueError(f"input_ids must be (batch, length), got shape {ids.shape}")
        if ids.shape[1] > self.config.max_position_embeddings:
            raise ValueError(f"sequences of {ids.shape[1]} tokens are longer than the "
                             f"{self.config.max_position_embeddings} positions this model has; truncate them")
        types = array_module(ids).zeros_like(ids) if token_type_ids is None else _int_array(token_type_ids, "token_type_ids")
        bias = None
        if attention_mask is not None:
            mask = _int_array(attention_mask, "attention_mask")
            if mask.shape != ids.shape:
                raise ValueError(f"attention_mask {mask.shape} must have the shape of input_ids {ids.shape}")
            xp = array_module(self.embeddings.word_embeddings.weight.data)
            n, length = ids.shape
            dtype = self.embeddings.word_embeddings.weight.dtype
            bias = attention_bias((n, self.config.num_attention_heads, length, length), dtype,
                                  key_padding_mask=xp.asarray(mask) == 0, xp=xp)
        hidden = self.encoder(self.embeddings(ids, types), bias)
        pooled = None if self.pooler is None else self.pooler(hidden)
        return BertModelOutput(hidden, pooled)

    def layer_groups(self) -> list:
        """For fine-tuning (``minift.finetune``): the embeddings, each encoder layer, then
        the pooler (the head) if there is one."""
        groups = [[self.embeddings], *[[layer] for layer in self.encoder.layer]]
        if self.pooler is not None:
            groups.append([self.pooler])
        return groups


def _int_array(value, name: str):
    """The integer array inside a Tensor or array-like; anything else is an error."""
    array = value.data if isinstance(value, Tensor) else np.asarray(value)
    if array.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    return array


def mean_pool(hidden, attention_mask):
    """The mean of the token vectors over real tokens (sentence-transformers' pooling):

        pooled[n] = sum_l mask[n, l] * hidden[n, l] / max(sum_l mask[n, l], 1e-9)

    ``hidden (N, L, H)`` Tensor, ``attention_mask (N, L)`` of 0/1 -> ``(N, H)``.
    """
    mask = _int_array(attention_mask, "attention_mask")
    if mask.shape != hidden.shape[:2]:
        raise ValueError(f"attention_mask {mask.shape} must match the first two axes of hidden {hidden.shape}")
    xp = array_module(hidden.data)
    weights = xp.asarray(mask, dtype=hidden.dtype)[:, :, None]
    counts = xp.maximum(weights.sum(axis=1), 1e-9)
    return (hidden * Tensor._from_array(weights)).sum(axis=1) / Tensor._from_array(counts)


def l2_normalize(x, eps: float = 1e-12):
    """x / max(||x||, eps) along the last axis (``torch.nn.functional.normalize``)."""
    norm = (x * x).sum(axis=-1, keepdims=True).sqrt()
    return x / F.maximum(norm, eps)
