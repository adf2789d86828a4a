"""Choosing which samples go where: random splits, few-shot selections and class subsets.

``random_split`` and ``take_per_class`` take a ``seed`` and draw from their own
``np.random.Generator``, so the same seed gives the same split on every machine
(``seed=None``: see ``seeds.py``). ``select_classes`` draws nothing: it keeps rows in order.
"""

from __future__ import annotations

import math

import numpy as np

from .dataset import Subset
from .seeds import resolve_seed


def _int_labels(labels, name: str) -> np.ndarray:
    """``labels`` as a 1-D NumPy array of ints; raises TypeError naming ``name`` otherwise."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{name} must be a 1-D array of ints, got dtype {labels.dtype} and shape {labels.shape}")
    return labels


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
    labels = _int_labels(labels, "labels")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    classes, counts = np.unique(labels, return_counts=True)
    too_small = {int(c): int(n) for c, n in zip(classes, counts) if n < k}
    if too_small:
        raise ValueError(f"k={k} per class, but these classes have fewer samples (class: count): {too_small}")
    generator = np.random.default_rng(resolve_seed(seed))
    chosen = [generator.choice(np.flatnonzero(labels == c), size=k, replace=False) for c in classes]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def select_classes(x, y, classes, rows=slice(None)) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``x, y`` whose label is in ``classes``, relabelled ``0 .. len(classes) - 1``.

    ``x (N, ...)`` and ``y (N,)`` ints. For each class ``classes[j]``, in the order of
    ``classes``, its rows are taken in their order in ``y`` and cut with the slice ``rows``
    (``slice(0, 50)``: the first 50 of the class; ``slice(-50, None)``: the last 50), then
    labelled ``j``. Returns ``(x_subset, y_relabelled)``: ``x_subset (M, ...)`` and
    ``y_relabelled (M,)`` int64, with ``M = sum_j len(range(n_j)[rows])`` for ``n_j``
    occurrences of ``classes[j]`` (``min(k, n_j)`` for ``slice(0, k)``). This is how one
    dataset becomes several tasks::

        >>> x, y = np.arange(6) * 10, np.array([3, 1, 3, 2, 1, 3])
        >>> select_classes(x, y, [3, 1])
        (array([ 0, 20, 50, 10, 40]), array([0, 0, 0, 1, 1]))
        >>> select_classes(x, y, [3, 1], rows=slice(0, 2))
        (array([ 0, 20, 10, 40]), array([0, 0, 1, 1]))

    Every class must occur in ``y``, once in ``classes``; nothing is copied or changed
    when a check fails.
    """
    x, y = np.asarray(x), _int_labels(y, "y")
    if x.ndim == 0 or len(x) != len(y):
        raise ValueError(f"x must have one row per label of y, got x of shape {x.shape} and {len(y)} labels")
    wanted = list(classes) if isinstance(classes, (list, tuple, range, np.ndarray)) else []
    if not wanted or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in wanted):
        raise TypeError(f"classes must be a non-empty list of int labels, got {classes!r}")
    wanted = [int(c) for c in wanted]
    repeated = sorted({c for c in wanted if wanted.count(c) > 1})
    if repeated:
        raise ValueError(f"classes must name each label once, got {wanted} with {repeated} repeated")
    present = set(np.unique(y).tolist())
    missing = [c for c in wanted if c not in present]
    if missing:
        raise ValueError(f"classes {missing} do not occur in y, whose labels are {sorted(present)}")
    if not isinstance(rows, slice):
        raise TypeError(f"rows must be a slice of each class's rows, e.g. slice(0, 50), got {rows!r}")
    keep = [np.flatnonzero(y == c)[rows] for c in wanted]
    relabelled = np.repeat(np.arange(len(wanted), dtype=np.int64), [len(k) for k in keep])
    return x[np.concatenate(keep)], relabelled
