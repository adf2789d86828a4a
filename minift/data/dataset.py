"""Map-style datasets: anything with ``__len__`` and ``__getitem__(i) -> (x, y, ...)``.

As in PyTorch, a sample is a tuple of fields, usually ``(image, label)``. minift adds
one method, ``get_batch(indices)``, which returns the samples at ``indices`` already
stacked, one array per field. The base class does it item by item; ``ArrayDataset``
does it with one fancy index per array, which is what makes a ``DataLoader`` over
in-memory arrays fast. (PyTorch's analogous hook, ``__getitems__``, returns a list of
samples; minift returns stacked arrays so that nothing is split only to be re-stacked.)
"""

from __future__ import annotations

import numpy as np


def stack_samples(samples) -> tuple:
    """``[(x0, y0), (x1, y1), ...]`` -> ``(stack([x0, x1, ...]), stack([y0, y1, ...]))``.

    Each field becomes one NumPy array with the batch as its first axis.
    """
    samples = list(samples)
    if not samples:
        raise ValueError("cannot stack an empty list of samples")
    for sample in samples:
        if not isinstance(sample, tuple):
            raise TypeError(
                f"expected each sample to be a tuple of fields such as (image, label), got "
                f"{type(sample).__name__}; return a tuple from __getitem__ or pass a collate_fn"
            )
    widths = {len(sample) for sample in samples}
    if len(widths) != 1:
        raise ValueError(f"all samples must have the same number of fields, got {sorted(widths)}")
    return tuple(np.stack([np.asarray(field) for field in fields]) for fields in zip(*samples))


class Dataset:
    """The map-style dataset interface: subclass and define ``__len__`` and ``__getitem__``."""

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index) -> tuple:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def get_batch(self, indices) -> tuple:
        """The samples at ``indices`` (an int array), stacked into one array per field."""
        return stack_samples(self[int(i)] for i in indices)


class ArrayDataset(Dataset):
    """Samples are rows of arrays: ``dataset[i] == (arrays[0][i], arrays[1][i], ...)``.

    ``ArrayDataset(x, y)`` with ``x (N, C, H, W)`` and ``y (N,)``. The arrays are kept
    as given (NumPy arrays, or anything ``np.asarray`` accepts, minift Tensors included).
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("ArrayDataset needs at least one array, e.g. ArrayDataset(x, y)")
        arrays = tuple(np.asarray(a) for a in arrays)
        if any(a.ndim == 0 for a in arrays):
            raise ValueError("every array needs a first (sample) axis; got a 0-d array")
        lengths = [len(a) for a in arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"all arrays must have the same first dimension, got lengths {lengths}")
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index) -> tuple:
        return tuple(a[index] for a in self.arrays)

    def get_batch(self, indices) -> tuple:
        return tuple(a[indices] for a in self.arrays)


TensorDataset = ArrayDataset  # PyTorch's name; minift datasets hold arrays


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order: ``subset[i] == dataset[indices[i]]``."""

    def __init__(self, dataset, indices):
        indices = np.asarray(indices)
        if indices.ndim != 1 or not (indices.size == 0 or np.issubdtype(indices.dtype, np.integer)):
            raise TypeError(f"indices must be a 1-D array of ints, got dtype {indices.dtype} and shape {indices.shape}")
        size = len(dataset)
        if indices.size and (indices.min() < 0 or indices.max() >= size):
            raise IndexError(f"indices must lie in [0, {size}), got min {indices.min()} and max {indices.max()}")
        self.dataset = dataset
        self.indices = indices.astype(np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index) -> tuple:
        return self.dataset[int(self.indices[index])]

    def get_batch(self, indices) -> tuple:
        if isinstance(self.dataset, Dataset):
            return self.dataset.get_batch(self.indices[indices])
        return super().get_batch(indices)
