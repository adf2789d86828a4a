"""Dropout and embedding lookup."""

from __future__ import annotations

import numpy as np

from ..engine.autograd import Function
from ..backend.device import array_module, scatter_add
from ..engine.random import generator


class Dropout(Function):
    """In training, zero each element with probability p and scale the rest by 1/(1-p)
    (inverted dropout: the expected value is unchanged, so evaluation needs no rescaling).
    dL/dx = g * mask / (1 - p)."""

    @staticmethod
    def forward(ctx, x, p):
        xp = array_module(x)
        # Uniform draws in float32 for float32 (and narrower) inputs: half the memory traffic
        # of float64 draws, and float32's 2**-24 steps are far finer than any useful p.
        uniform = generator().random(x.shape, dtype=np.float64 if x.dtype.itemsize > 4 else np.float32)
        scale = xp.asarray((uniform >= p) * x.dtype.type(1 / (1 - p)))  # bool * scalar: one pass, x's dtype
        ctx.save_for_backward(scale)
        return x * scale

    @staticmethod
    def backward(ctx, g):
        (scale,) = ctx.saved
        return g * scale


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
