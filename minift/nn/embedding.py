"""Embedding: a learnable lookup table."""

from __future__ import annotations

from .. import functional as F
from ..engine.creation import empty_parameter
from . import init
from .module import Module


class Embedding(Module):
    """``weight (num_embeddings, embedding_dim)``, initialised N(0, 1); ``indices (...)`` ->
    ``(..., embedding_dim)``. The ``padding_idx`` row starts at zero and gets no gradient."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None, dtype=None):
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"padding_idx must be within the {num_embeddings} embeddings, got {padding_idx}")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.weight = empty_parameter((num_embeddings, embedding_dim), dtype)
        self.reset_parameters()

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx=None) -> "Embedding":
        """An Embedding whose weight is a copy of ``embeddings (num_embeddings, embedding_dim)``
        (a Tensor or anything array-like), frozen (``requires_grad=False``) unless
        ``freeze=False``. The ``padding_idx`` row is kept as given (and gets no gradient)."""
        from .module import as_array

        array = as_array(embeddings)
        if array.ndim != 2:
            raise ValueError(f"Embeddings parameter is expected to be 2-dimensional, got shape {tuple(array.shape)}")
        embedding = cls(*array.shape, padding_idx=padding_idx, dtype=array.dtype)
        embedding.weight.data[...] = array
        embedding.weight.requires_grad_(not freeze)
        return embedding

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, indices):
        return F.embedding(indices, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
