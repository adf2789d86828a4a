"""BERT's forward pass written out in PyTorch from the formulas: the independent reference.

Two users: ``tests/test_bert.py`` compares minift's ``BertModel`` outputs and every gradient
against it, and ``minift finetune-text --bench`` times it as the PyTorch row beside the
NumPy and Numba backends. It is deliberately not a port of ``minift.nn.bert`` (no modules,
no shared code): the formulas, once more, in another library::

    x = LayerNorm(word[ids] + position[:L] + token_type[types])
    per layer:  a = LayerNorm(x + Dense(softmax(Q K^T / sqrt(d) + mask) V))
                x = LayerNorm(a + Dense(GELU(Dense(a))))
    pooled = tanh(Dense(x[:, 0]))

PyTorch is optional for minift: import this module only where torch is installed.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as TF


def torch_state(state_dict: dict, requires_grad: bool = False) -> dict:
    """minift's ``state_dict`` (NumPy arrays) as torch tensors; the buffer ``position_ids`` never needs a gradient."""
    return {name: torch.tensor(np.asarray(array), requires_grad=requires_grad and name != "embeddings.position_ids")
            for name, array in state_dict.items()}


def torch_bert(state: dict, config, ids, mask, types=None, pooler: bool = True, training: bool = False):
    """``(last_hidden_state (N, L, H), pooled (N, H) or None)`` of BERT with weights ``state``
    (Hugging Face names, torch tensors), for ``ids``, ``mask`` and ``types`` ``(N, L)`` tensors.
    ``training=True`` adds dropout where Hugging Face's BERT (and ``minift.nn.bert``) has it."""

    def dropout(x, p):
        return TF.dropout(x, p, training) if training else x

    def linear(x, name):
        return x @ state[f"{name}.weight"].T + state[f"{name}.bias"]

    def norm(x, name):
        return TF.layer_norm(x, (x.shape[-1],), state[f"{name}.weight"], state[f"{name}.bias"], config.layer_norm_eps)

    n, length = ids.shape
    types = torch.zeros_like(ids) if types is None else types
    heads, width = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    x = (state["embeddings.word_embeddings.weight"][ids] + state["embeddings.position_embeddings.weight"][:length]
         + state["embeddings.token_type_embeddings.weight"][types])
    x = dropout(norm(x, "embeddings.LayerNorm"), config.hidden_dropout_prob)
    bias = torch.where(mask[:, None, None, :] == 0, float("-inf"), 0.0)
    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}"
        q, k, v = (linear(x, f"{p}.attention.self.{w}").reshape(n, length, heads, width).transpose(1, 2)
                   for w in ("query", "key", "value"))
        weights = dropout(torch.softmax(q @ k.transpose(-1, -2) / width**0.5 + bias, dim=-1),
                          config.attention_probs_dropout_prob)
        context = (weights @ v).transpose(1, 2).reshape(n, length, heads * width)
        a = norm(x + dropout(linear(context, f"{p}.attention.output.dense"), config.hidden_dropout_prob),
                 f"{p}.attention.output.LayerNorm")
        h = linear(TF.gelu(linear(a, f"{p}.intermediate.dense")), f"{p}.output.dense")
        x = norm(a + dropout(h, config.hidden_dropout_prob), f"{p}.output.LayerNorm")
    return x, torch.tanh(linear(x[:, 0], "pooler.dense")) if pooler else None
