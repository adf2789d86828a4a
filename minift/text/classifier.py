"""A pretrained sentence encoder under a new head, and the text batches it trains on.

The model is the pretrained encoder, mean pooling, and a new linear head::

    input_ids (N, L) -> BertModel -> hidden (N, L, 384) -> mean over real tokens (N, 384)
                     -> dropout -> head: Linear(384, classes) -> logits (N, classes)

Two things keep a NumPy transformer fast enough to fine-tune on a laptop CPU. The
attention mask is ``input_ids != [PAD]`` and padding columns shared by the whole batch
are cut off before the encoder runs (that changes no output: padding is masked
anyway); and ``SortishLoader`` batches texts of similar length together (fastai's
``SortishSampler``), so there are few such columns left. R8's training texts have a median
of 83 WordPiece tokens and 28 % reach ``max_length=128``: an epoch in random batches of 16
computes 1.57 token positions per real token, in sortish batches 1.01.

What to train, and the comparison of the ways to do it: ``minift.text.strategies``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import ArrayDataset, DataLoader
from ..engine.autograd import no_grad
from ..engine.tensor import Tensor
from ..nn import Dropout, Linear, Module
from ..nn.bert import BertModel, mean_pool
from .datasets import TextClassificationData
from .tokenizer import BertTokenizer


class SentenceClassifier(Module):
    """``head(dropout(mean_pool(encoder(input_ids))))``: ``input_ids (N, L)`` int -> logits ``(N, C)``.

    The attention mask is ``input_ids != pad_token_id`` ([PAD] never occurs in real text),
    so the model takes one input and fits any ``DataLoader`` and ``Learner``. Trailing
    columns that are padding in every row are dropped first.
    Layer groups: the encoder's (embeddings, each layer), then the head.
    """

    def __init__(self, encoder: BertModel, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = Dropout(dropout)
        self.head = Linear(encoder.config.hidden_size, num_classes, dtype=encoder.embeddings.word_embeddings.weight.dtype)

    def embed(self, input_ids) -> Tensor:
        """The mean-pooled sentence vectors ``(N, H)``, before dropout and head."""
        ids = input_ids.data if isinstance(input_ids, Tensor) else np.asarray(input_ids)
        mask = ids != self.encoder.config.pad_token_id
        used = np.flatnonzero(mask.any(axis=0))
        length = int(used[-1]) + 1 if used.size else 1  # columns after it are padding in every row
        ids, mask = ids[:, :length], mask[:, :length]
        return mean_pool(self.encoder(ids, mask).last_hidden_state, mask)

    def forward(self, input_ids) -> Tensor:
        return self.head(self.dropout(self.embed(input_ids)))

    def layer_groups(self) -> list:
        return [*self.encoder.layer_groups(), [self.dropout, self.head]]


class SortishLoader(DataLoader):
    """A ``DataLoader`` whose batches hold texts of similar length (fastai's ``SortishSampler``).

    With ``shuffle``, each epoch: a seeded permutation, cut into chunks of 50 batches; each
    chunk sorted by length, cut into batches; the full batches in a seeded random order,
    then the short one if the size does not divide evenly. The
    batches stay random (a new mix every epoch) but their rows have similar lengths, so
    little padding is left once each batch is trimmed. Without ``shuffle``: sorted by length.
    ``lengths[i]``: the number of tokens of sample ``i``.
    """

    chunk_batches = 50

    def __init__(self, dataset, lengths, batch_size: int = 1, shuffle: bool = False, seed=None):
        super().__init__(dataset, batch_size=batch_size, shuffle=shuffle, seed=seed)
        self.lengths = np.asarray(lengths)
        if self.lengths.shape != (len(dataset),):
            raise ValueError(f"lengths must give one length per sample ({len(dataset)}), got shape {self.lengths.shape}")

    def epoch_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.argsort(-self.lengths, kind="stable").astype(np.int64)
        rng = np.random.default_rng([self.seed, 2, epoch])  # a stream of its own (DataLoader uses 0 and 1)
        order = rng.permutation(len(self.lengths))
        chunk = self.batch_size * self.chunk_batches
        order = np.concatenate([part[np.argsort(-self.lengths[part], kind="stable")]
                                for part in np.split(order, range(chunk, len(order), chunk))])
        # The loader cuts the order into consecutive slices of batch_size, so only whole
        # batches are shuffled; the short one, if any, stays at the end.
        whole = len(order) // self.batch_size
        batches = np.split(order[:whole * self.batch_size], whole) if whole else []
        shuffled = [batches[i] for i in rng.permutation(whole)]
        return np.concatenate([*shuffled, order[whole * self.batch_size:]]).astype(np.int64)


@dataclass
class EncodedText:
    """Token ids ``(n, max_length)`` (right-padded with [PAD]) and labels, for train and test."""

    train_ids: np.ndarray
    train_labels: np.ndarray
    test_ids: np.ndarray
    test_labels: np.ndarray
    classes: tuple
    pad_token_id: int

    def lengths(self, ids: np.ndarray) -> np.ndarray:
        return (ids != self.pad_token_id).sum(axis=1)


def sample_split(data: TextClassificationData, train_size: int, test_size: int, seed: int):
    """Seeded random samples (without replacement) of the official train and test sets;
    ``0`` means the whole set. Returns ``(train_texts, train_labels, test_texts, test_labels)``."""
    rng = np.random.default_rng(seed)

    def take(texts, labels, size, what):
        if size < 0 or size > len(texts):
            raise ValueError(f"{what} must be between 0 (all) and {len(texts)}, got {size}")
        chosen = np.sort(rng.permutation(len(texts))[:size]) if size else np.arange(len(texts))
        return [texts[i] for i in chosen], labels[chosen]

    return (*take(data.train_texts, data.train_labels, train_size, "train_size"),
            *take(data.test_texts, data.test_labels, test_size, "test_size"))


def encode(tokenizer: BertTokenizer, data: TextClassificationData, train_size: int, test_size: int,
           max_length: int, seed: int) -> EncodedText:
    """Sample the split (``sample_split``) and tokenize it, truncating to ``max_length``."""
    train_texts, train_labels, test_texts, test_labels = sample_split(data, train_size, test_size, seed)

    def ids(texts):
        return tokenizer(texts, max_length=max_length, padding="max_length")["input_ids"]

    return EncodedText(ids(train_texts), train_labels, ids(test_texts), test_labels, data.classes,
                       tokenizer.pad_token_id)


def load_pretrained_classifier(model_dir, num_classes: int, dropout: float) -> SentenceClassifier:
    """all-MiniLM-L6-v2 (without its unused pooler) under a new head."""
    encoder = BertModel.from_pretrained(model_dir, add_pooling_layer=False)
    return SentenceClassifier(encoder, num_classes, dropout)


def embed_all(model: SentenceClassifier, ids: np.ndarray, lengths: np.ndarray, batch_size: int) -> np.ndarray:
    """Mean-pooled vectors of every row of ``ids`` ``(n, H)``, in eval mode, without a graph."""
    loader = SortishLoader(ArrayDataset(ids, np.zeros(len(ids))), lengths, batch_size)
    order = loader.epoch_order(0)
    was_training = model.training
    model.eval()
    vectors = np.empty((len(ids), model.encoder.config.hidden_size), dtype=np.float32)
    try:
        with no_grad():
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                vectors[rows] = model.embed(ids[rows]).numpy()
    finally:
        model.train(was_training)
    return vectors
