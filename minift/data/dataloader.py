"""``DataLoader``: a dataset in batches, shuffled reproducibly, resumable mid-epoch.

One epoch is one pass over the dataset in an order fixed by the loader's ``seed`` and
the epoch number alone::

    order(epoch) = np.random.default_rng([seed, 0, epoch]).permutation(len(dataset))
    batch b      = dataset samples at order[b*batch_size : (b+1)*batch_size]
    augmentation of batch b draws from np.random.default_rng([seed, 1, epoch, b])

(without ``shuffle`` the order is ``0, 1, 2, ...``). Because nothing depends on how
many random numbers were drawn before, the whole state of the loader is three ints —
``seed``, ``epoch`` and ``position`` (batches of the epoch already handed out) — and a
run restored from ``state_dict()`` continues with exactly the batches, and the exact
augmentations, it would have seen.

Each ``iter(loader)`` starts the next epoch, as in PyTorch; the one exception is the
first ``iter`` after ``load_state_dict``, which finishes the saved epoch from its saved
position. Run one iteration at a time: two live iterators share the position.
"""

from __future__ import annotations

import math

import numpy as np

from .dataset import Dataset, stack_samples
from .seeds import resolve_seed

SHUFFLE_STREAM = 0  # the second word of the seed, so shuffling and augmentation
AUGMENT_STREAM = 1  # draw from unrelated random streams


def to_tensors(fields) -> tuple:
    """NumPy arrays -> minift Tensors: floating -> float32 (inputs), integer or bool -> int64 (labels)."""
    import minift  # lazily: minift.data does not need the autograd engine to be imported

    tensors = []
    for field in fields:
        field = np.asarray(field)
        if np.issubdtype(field.dtype, np.floating):
            dtype = np.float32
        elif np.issubdtype(field.dtype, np.integer) or field.dtype == np.bool_:
            dtype = np.int64
        else:
            raise TypeError(f"cannot batch a field of dtype {field.dtype}: expected floating, integer or bool values")
        tensors.append(minift.Tensor(field, dtype=dtype))
    return tuple(tensors)


def default_collate(samples) -> tuple:
    """``[(x0, y0), (x1, y1), ...]`` -> ``(Tensor X, Tensor Y)``, stacked along a new first axis.

    Unlike PyTorch, which keeps each dtype, floating fields become float32 and integer
    fields int64: the dtypes minift's layers and losses expect.
    """
    return to_tensors(stack_samples(samples))


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size`` samples.

    - ``shuffle``: a new permutation each epoch, reproducible from ``seed`` (an int; ``None``
      draws one from ``minift.engine.random``, so ``manual_seed`` fixes it).
    - ``drop_last``: drop the final batch when it would be smaller than ``batch_size``.
    - ``transform``: applied to the first field (the images, ``(N, C, H, W)``) of every
      batch, with a generator that is a function of ``(seed, epoch, batch)``; see
      ``minift.data.transforms``.
    - ``collate_fn``: turns the list of samples of a batch into the batch. The default
      stacks each field and makes minift Tensors (``default_collate``); when the dataset
      has ``get_batch`` (an ``ArrayDataset`` or a ``Subset`` of one) it indexes the arrays
      once per batch instead of sample by sample. With a custom ``collate_fn`` there is
      no ``transform``: apply it inside your ``collate_fn``.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 collate_fn=None, seed=None, transform=None):
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"dataset must define __len__ and __getitem__, got {type(dataset).__name__}")
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if collate_fn is not None and transform is not None:
            raise ValueError("pass either collate_fn or transform, not both: apply the transform inside collate_fn")
        for name, value in (("collate_fn", collate_fn), ("transform", transform)):
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be callable, got {type(value).__name__}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.transform = transform
        self.seed = resolve_seed(seed)
        self.epoch = 0  # the epoch being run, or the next one to run
        self.position = 0  # batches of that epoch already handed out
        self._resuming = False

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The order in which epoch ``epoch`` visits the samples (an int64 permutation)."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        return np.random.default_rng([self.seed, SHUFFLE_STREAM, epoch]).permutation(n)

    def __iter__(self):
        if self.position > 0 and not self._resuming:  # the last epoch was left unfinished
            self.epoch, self.position = self.epoch + 1, 0
        self._resuming = False
        epoch = self.epoch
        order = self.epoch_order(epoch)
        for b in range(self.position, len(self)):
            indices = order[b * self.batch_size:(b + 1) * self.batch_size]
            batch = self._load(indices, np.random.default_rng([self.seed, AUGMENT_STREAM, epoch, b]))
            self.position = b + 1
            yield batch
        self.epoch, self.position = epoch + 1, 0

    def _load(self, indices, generator):
        if self.collate_fn is not None:
            return self.collate_fn([self.dataset[int(i)] for i in indices])
        if isinstance(self.dataset, Dataset):
            fields = self.dataset.get_batch(indices)
        else:
            fields = stack_samples(self.dataset[int(i)] for i in indices)
        if self.transform is not None:
            fields = (self.transform(fields[0], generator=generator), *fields[1:])
        return to_tensors(fields)

    def _layout(self) -> dict:
        """What, besides the seed, decides which samples batch ``b`` of an epoch holds."""
        return {"num_samples": len(self.dataset), "batch_size": self.batch_size,
                "shuffle": self.shuffle, "drop_last": self.drop_last}

    def state_dict(self) -> dict:
        """Where the next batch comes from, as a JSON-serialisable dict.

        Taken inside ``for batch in loader:``, it counts the current batch as done.
        """
        epoch, position = self.epoch, self.position
        if position == len(self) and position > 0:
            epoch, position = epoch + 1, 0
        return {"seed": self.seed, "epoch": epoch, "position": position, **self._layout()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state``: the next ``iter`` yields the rest of the saved epoch.

        The dataset size, batch size, ``shuffle`` and ``drop_last`` must be those of the
        loader that saved it; if anything does not fit, nothing changes.
        """
        missing = {"seed", "epoch", "position", *self._layout()} - set(state)
        if missing:
            raise KeyError(f"DataLoader state is missing {sorted(missing)}")
        mismatched = {k: (state[k], v) for k, v in self._layout().items() if state[k] != v}
        if mismatched:
            detail = ", ".join(f"{k}: saved {saved!r}, this loader {mine!r}" for k, (saved, mine) in mismatched.items())
            raise ValueError(f"the saved state belongs to a loader with a different layout ({detail})")
        for key in ("seed", "epoch", "position"):
            if not _is_int(state[key]) or state[key] < 0:
                raise ValueError(f"state[{key!r}] must be a non-negative int, got {state[key]!r}")
        if state["position"] > len(self):
            raise ValueError(f"state['position'] is {state['position']} but an epoch has only {len(self)} batches")
        self.seed, self.epoch, self.position = int(state["seed"]), int(state["epoch"]), int(state["position"])
        self._resuming = True
