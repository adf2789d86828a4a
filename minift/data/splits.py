"""Choosing which samples go where: random splits and few-shot selections.

Both functions take a ``seed`` and draw from their own ``np.random.Generator``, so the
same seed gives the same split on every machine (``seed=None``: see ``seeds.py``).
"""

from __future__ import annotations

import math

import numpy as np

from .dataset import Subset
from .seeds import resolve_seed


def _split_lengths(total: int, lengths) -> list[int]:
    """Integer lengths summing to ``total``, from ints or from fractions summing to 1.

    Fractions follow PyTorch: ``floor(total * f)`` each, then the remainder is handed
    out one by one to the first splits.
    """
    lengths = list(lengths)
    if not lengths:
        raise ValueError("lengths must name at least one split")
    if all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in lengths):
        if any(n < 0 for n in lengths) or sum(lengths) != total:
            raise ValueError(f"lengths {lengths} must be non-negative and sum to the dataset size {total}")
        return [int(n) for n in lengths]
    if any(not isinstance(f, (int, float)) or isinstance(f, bool) or not 0 <= f <= 1 for f in lengths) \
            or not math.isclose(sum(lengths), 1.0):
        raise ValueError(f"lengths {lengths} must be ints summing to {total} or fractions in [0, 1] summing to 1")
    sizes = [math.floor(total * f) for f in lengths]
    for i in range(total - sum(sizes)):
        sizes[i % len(sizes)] += 1
    return sizes


def random_split(dataset, lengths, seed=None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random ``Subset``s of the given lengths.

    ``lengths`` are ints summing to ``len(dataset)`` or fractions summing to 1, as in
    ``torch.utils.data.random_split``; every sample lands in exactly one subset.
    """
    sizes = _split_lengths(len(dataset), lengths)
    order = np.random.default_rng(resolve_seed(seed)).permutation(len(dataset))
    bounds = np.cumsum([0, *sizes])
    return [Subset(dataset, order[start:stop]) for start, stop in zip(bounds[:-1], bounds[1:])]


def take_per_class(labels, k: int, seed=None) -> np.ndarray:
    """Indices of ``k`` randomly chosen samples of every class in ``labels``, sorted.

    ``labels (N,)`` ints; returns ``k * num_classes`` distinct indices into it. This is how
    a few-shot training set is drawn: ``Subset(train, take_per_class(y_train, 10, seed=0))``.
    Classes are visited in increasing order, so the result depends only on the labels,
    ``k`` and ``seed``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be a 1-D array of ints, got dtype {labels.dtype} and shape {labels.shape}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    classes, counts = np.unique(labels, return_counts=True)
    too_small = {int(c): int(n) for c, n in zip(classes, counts) if n < k}
    if too_small:
        raise ValueError(f"k={k} per class, but these classes have fewer samples (class: count): {too_small}")
    generator = np.random.default_rng(resolve_seed(seed))
    chosen = [generator.choice(np.flatnonzero(labels == c), size=k, replace=False) for c in classes]
    return np.sort(np.concatenate(chosen)).astype(np.int64)
