"""Multi-head attention (Vaswani et al. 2017), with PyTorch's parameters and masks."""

from __future__ import annotations

import math

import numpy as np

from .. import contract
from .. import functional as F
from ..engine.autograd import is_grad_enabled
from ..engine.creation import empty_parameter
from ..backend.device import array_module
from ..engine.tensor import Tensor
from . import init
from .linear import Linear
from .module import Module


def _additive(mask, dtype, xp):
    """A bool mask (True = not allowed) as 0 / -inf; a float mask as it is (added to the scores)."""
    mask = mask.data if isinstance(mask, Tensor) else xp.asarray(mask)
    if mask.dtype == np.bool_:
        return xp.where(mask, -np.inf, 0).astype(dtype)
    if mask.dtype.kind != "f":
        raise TypeError(f"attention masks must be bool (True = not allowed) or float (added), got dtype {mask.dtype}")
    return mask.astype(dtype)


def attention_bias(scores_shape, dtype, key_padding_mask=None, attn_mask=None, xp=np):
    """The additive mask for scores ``(N, H, L, S)``: 0 where attention is allowed, -inf
    where it is not, or the values of a float mask (as in PyTorch, both masks may be
    bool or float).

    ``key_padding_mask (N, S)``: True marks padding keys (ignored by every query).
    ``attn_mask (L, S)`` or ``(N*H, L, S)``: bool (True = not allowed) or float (added).
    Returns None when there is no mask.
    """
    n, h, length, source = scores_shape
    bias = None
    if attn_mask is not None:
        bias = _additive(attn_mask, dtype, xp)
        if bias.shape not in ((length, source), (n * h, length, source)):
            raise ValueError(f"attn_mask must have shape ({length}, {source}) or ({n * h}, {length}, {source}), got {bias.shape}")
        bias = bias.reshape(n, h, length, source) if bias.ndim == 3 else bias
    if key_padding_mask is not None:
        pad_bias = _additive(key_padding_mask, dtype, xp)
        if pad_bias.shape != (n, source):
            raise ValueError(f"key_padding_mask must have shape (batch, source) = ({n}, {source}), got {pad_bias.shape}")
        pad_bias = pad_bias[:, None, None, :]
        bias = pad_bias if bias is None else bias + pad_bias
    return bias


def scaled_dot_product_attention(q, k, v, bias=None, dropout_p=0.0, training=False):
    """softmax(Q K^T / sqrt(d) + bias) V for ``q (..., L, d)``, ``k, v (..., S, d)``.

    Returns the output ``(..., L, d)`` and the attention weights ``(..., L, S)`` that
    multiplied V — after dropout in training, as PyTorch returns them.
    """
    scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)  # scaling q: L*d products, not L*S
    weights = F.dropout(F.softmax(scores, axis=-1, additive_mask=bias), dropout_p, training)  # mask added in the kernel
    return weights @ v, weights


def attention_output(q, k, v, bias=None, dropout_p=0.0, training=False):
    """The output of ``scaled_dot_product_attention`` alone, for callers that drop the weights.

    When there is no dropout to apply and no gradient to record (inference, or a frozen
    layer), it is one contract call, ``attention_forward``, which on the Numba backend keeps
    each sample's scores in its core's cache; otherwise the recorded ops above.
    """
    records_graph = is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    if records_graph or (training and dropout_p > 0):
        return scaled_dot_product_attention(q, k, v, bias, dropout_p, training)[0]
    mask = bias.data if isinstance(bias, Tensor) else bias
    return q._from_array(contract.attention_forward(q.data, k.data, v.data, mask, 1.0 / math.sqrt(q.shape[-1])))


class MultiheadAttention(Module):
    """``torch.nn.MultiheadAttention`` with ``kdim = vdim = embed_dim``.

    Parameters: ``in_proj_weight (3E, E)`` (the query, key and value projections stacked),
    ``in_proj_bias (3E,)``, ``out_proj`` (Linear E -> E). Each of ``num_heads`` heads
    attends in its own ``E / num_heads`` dimensions; their outputs are concatenated and
    projected. Inputs are ``(L, N, E)``, or ``(N, L, E)`` with ``batch_first=True``.
    ``forward`` returns ``(output, weights)``; weights ``(N, L, S)`` are averaged over heads
    unless ``average_attn_weights=False`` (then ``(N, H, L, S)``), None if not needed.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False, dtype=None):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.dropout, self.batch_first = dropout, batch_first
        self.in_proj_weight = empty_parameter((3 * embed_dim, embed_dim), dtype)
        self.in_proj_bias = empty_parameter((3 * embed_dim,), dtype) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        init.xavier_uniform_(self.in_proj_weight)
        if bias:
            init.zeros_(self.out_proj.bias)

    def _project(self, x, which: int):
        e = self.embed_dim
        y = x @ self.in_proj_weight[which * e:(which + 1) * e].T
        if self.in_proj_bias is not None:
            y = y + self.in_proj_bias[which * e:(which + 1) * e]
        n, length, _ = y.shape
        return y.reshape(n, length, self.num_heads, self.head_dim).permute(0, 2, 1, 3)  # (N, H, L, D)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True):
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        if query.ndim != 3 or query.shape[-1] != self.embed_dim or key.shape != value.shape:
            raise ValueError(f"MultiheadAttention({self.embed_dim}) expects 3-D inputs with last size "
                             f"{self.embed_dim} and key/value of one shape; got {query.shape}, {key.shape}, {value.shape}")
        q, k, v = self._project(query, 0), self._project(key, 1), self._project(value, 2)
        n, h, length, _ = q.shape
        bias = attention_bias((n, h, length, k.shape[2]), q.dtype, key_padding_mask, attn_mask, array_module(q.data))
        if need_weights:
            out, weights = scaled_dot_product_attention(q, k, v, bias, self.dropout, self.training)
        else:
            out = attention_output(q, k, v, bias, self.dropout, self.training)
        out = self.out_proj(out.permute(0, 2, 1, 3).reshape(n, length, self.embed_dim))
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, (weights.mean(axis=1) if average_attn_weights else weights)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"
