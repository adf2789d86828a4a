"""``DistributedSampler`` and ``DistributedLoader``: each rank its own share of every epoch.

Data parallelism splits every epoch between the N ranks. ``DistributedSampler`` does it
with PyTorch's exact rule (``torch.utils.data.DistributedSampler``)::

    order   = a permutation of 0..len-1 for this epoch (or 0, 1, 2, ... without shuffle)
    padded  = order + order[:pad]        (drop_last=False: repeat from the start until
                                          N divides the length; torch repeats the same way)
            = order[:N * (len // N)]     (drop_last=True: the tail is dropped)
    rank r  = padded[r::N]               (interleaved: rank 0 takes 0, N, 2N, ...)

One difference, on purpose: the permutation is the one ``minift.data.DataLoader`` uses for
the same ``seed`` and ``epoch`` (``np.random.default_rng([seed, 0, epoch])``), where torch
draws ``torch.randperm`` from ``seed + epoch``. So N ranks with batch B take, at step b,
together exactly the examples that one ``DataLoader(batch_size=N*B, seed=seed)`` puts in
its batch b -- the premise of the equivalence "N processes = one big batch":

    rank r, step b: padded[r::N][b*B : (b+1)*B] = padded at b*N*B + r + N*k, k < B
    union over r:   padded[b*N*B : (b+1)*N*B]

``DistributedLoader`` is a ``DataLoader`` over one rank's share: its epochs follow the
sampler (``set_epoch`` happens by itself, as each ``iter`` starts the next epoch), and it
saves and resumes like any ``DataLoader``.
"""

from __future__ import annotations

import math

import numpy as np

from ..data.dataloader import SHUFFLE_STREAM, DataLoader
from .process_group import broadcast_object, get_rank, get_world_size


class DistributedSampler:
    """The indices of ``dataset`` that rank ``rank`` of ``num_replicas`` visits in an epoch.

    ``num_replicas`` and ``rank`` default to the process group's. ``len(sampler)`` is
    ``num_samples``: ``ceil(len / N)`` (``drop_last=False``) or ``floor(len / N)``
    (``drop_last=True``). Call ``set_epoch(e)`` before each epoch when shuffling, or every
    epoch repeats the first one's order (as in PyTorch).
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        num_replicas = get_world_size() if num_replicas is None else num_replicas
        rank = get_rank() if rank is None else rank
        if not isinstance(num_replicas, int) or num_replicas < 1:
            raise ValueError(f"num_replicas must be a positive int, got {num_replicas!r}")
        if not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(f"invalid rank {rank!r}: expected an int in [0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if drop_last and n % num_replicas:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)  # torch's formula: floor(n / N)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` (every rank must call it with the same value)."""
        self.epoch = int(epoch)

    def permutation(self) -> np.ndarray:
        """This epoch's order of the whole dataset, the same on every rank."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        return np.random.default_rng([self.seed, SHUFFLE_STREAM, self.epoch]).permutation(n)

    def indices(self) -> np.ndarray:
        """This rank's indices for this epoch (padded or cut as the module docstring says)."""
        order = self.permutation()
        if self.drop_last:
            order = order[: self.total_size]
        elif self.total_size > len(order):
            repeats = math.ceil(self.total_size / len(order))
            order = np.tile(order, repeats)[: self.total_size]
        return order[self.rank: self.total_size: self.num_replicas]

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples


class DistributedLoader(DataLoader):
    """A ``DataLoader`` over this rank's share of ``dataset`` (see ``DistributedSampler``).

    Same arguments as ``DataLoader``, plus ``num_replicas`` and ``rank`` (default: the
    process group's); ``drop_last`` applies to both the sampler (no padding) and the last
    short batch. Every rank must use the same ``seed`` (an int; ``None`` takes rank 0's).
    Augmentations draw from ``(seed, epoch, batch)`` as in ``DataLoader``: each rank
    transforms its own images with the same random stream, so they are not the
    augmentations one big-batch loader would draw.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 collate_fn=None, seed=None, transform=None, num_replicas=None, rank=None):
        super().__init__(dataset, batch_size, shuffle, drop_last, collate_fn, seed, transform)
        if seed is None:
            self.seed = broadcast_object(self.seed)
        self.sampler = DistributedSampler(dataset, num_replicas, rank, shuffle, self.seed, drop_last)

    @classmethod
    def from_loader(cls, loader: DataLoader, num_replicas=None, rank=None) -> "DistributedLoader":
        """This rank's share of what ``loader`` would load: same dataset, batch size, and rank 0's seed."""
        return cls(loader.dataset, loader.batch_size, loader.shuffle, loader.drop_last, loader.collate_fn,
                   broadcast_object(loader.seed), loader.transform, num_replicas, rank)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        self.sampler.set_epoch(epoch)
        return self.sampler.indices()

    def _layout(self) -> dict:
        """The world size is part of the layout; the rank is not: every rank resumes from the
        state rank 0 saved (the same seed, epoch and position on all ranks)."""
        return {**super()._layout(), "num_replicas": self.sampler.num_replicas}
