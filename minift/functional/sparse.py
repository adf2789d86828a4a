"""Dropout and embedding lookup."""

from __future__ import annotations

import numpy as np

from .. import contract
from ..engine.autograd import Function
from ..backend.device import array_module, scatter_add
from ..engine.random import generator


class Dropout(Function):
    """In training, zero each element with probability p and scale the rest by 1/(1-p)
    (inverted dropout: the expected value is unchanged, so evaluation needs no rescaling).
    dL/dx = g * mask / (1 - p).

    The mask is the contract's ``dropout``: element i is kept by a hash of (key, i) (see
    ``minift.reference.dropout``), with one 64-bit key per call drawn from the global
    generator, so ``manual_seed`` repeats it, any thread count draws the same mask, and the
    backward pass recomputes the mask from the key instead of keeping it.
    """

    @staticmethod
    def forward(ctx, x, p):
        ctx.p, ctx.key = p, int(generator().integers(0, 2**64, dtype=np.uint64))
        return contract.dropout(x, p, ctx.key)

    @staticmethod
    def backward(ctx, g):
        return contract.dropout(g, ctx.p, ctx.key)


class EmbeddingLookup(Function):
    """y = weight[indices]: ``indices (...)`` int, ``weight (V, D)`` -> ``y (..., D)``.

    dL/dweight = scatter-add of g into the rows that were looked up (a row used twice gets
    both gradients); the ``padding_idx`` row gets none, so it stays as initialised.
    """

    @staticmethod
    def forward(ctx, weight, indices, padding_idx):
        ctx.indices, ctx.padding_idx, ctx.shape = indices, padding_idx, weight.shape
        return weight[indices]

    @staticmethod
    def backward(ctx, g):
        xp = array_module(g)
        dweight = xp.zeros(ctx.shape, dtype=g.dtype)
        scatter_add(dweight, ctx.indices.reshape(-1), g.reshape(ctx.indices.size, ctx.shape[1]))
        if ctx.padding_idx is not None:
            dweight[ctx.padding_idx] = 0
        return dweight


def dropout(x, p=0.5, training=True):
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0
    return Dropout.apply(x, p=p)


def embedding(indices, weight, padding_idx=None):
    """Look up rows of ``weight (V, D)``; ``indices`` is an int Tensor or array."""
    from ..engine.tensor import Tensor

    idx = indices.data if isinstance(indices, Tensor) else array_module(weight.data).asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding indices must be integers, got dtype {idx.dtype}")
    vocab = weight.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= vocab):
        raise IndexError(f"embedding index out of range: got values in [{int(idx.min())}, {int(idx.max())}], the table has {vocab} rows")
    return EmbeddingLookup.apply(weight, indices=idx, padding_idx=padding_idx)
