"""What the ``Learner`` needs to train data-parallel without its user changing a line.

Under ``mpiexec -n N`` the ``Learner`` calls ``data_parallel`` on what it is given: the
model is wrapped in ``DistributedDataParallel`` and each ``DataLoader`` is replaced by
this rank's share of it (``DistributedLoader.from_loader``: the same batch size per rank,
so the global batch is N times larger). Alone, all three come back unchanged.

Only rank 0 speaks and writes (``is_main_process``): progress lines and checkpoints. The
epoch's metrics are sums over every rank's examples divided by the total count
(``sum_over_ranks``), so they are the metrics of the whole epoch, equal on every rank. A
validation share padded to a multiple of N (``DistributedSampler``) counts its at most
N - 1 repeated examples, as in PyTorch.
"""

from __future__ import annotations

import io
import os
import sys

import numpy as np

from ..data.dataloader import DataLoader
from . import process_group as dist
from .ddp import DistributedDataParallel
from .sampler import DistributedLoader


def data_parallel(model, train_loader, valid_loader=None) -> tuple:
    """``(DDP(model), this rank's train share, this rank's valid share)`` under mpiexec; else unchanged."""
    if not dist.is_distributed():
        return model, train_loader, valid_loader
    if not isinstance(model, DistributedDataParallel):
        model = DistributedDataParallel(model)

    def share(loader):
        plain = isinstance(loader, DataLoader) and not isinstance(loader, DistributedLoader)
        return DistributedLoader.from_loader(loader) if plain else loader

    return model, share(train_loader), None if valid_loader is None else share(valid_loader)


def is_main_process() -> bool:
    """True on rank 0 (and when running alone): the process that prints and writes files."""
    return dist.get_rank() == 0


def progress_stream():
    """Where a ``ProgressBar`` writes: stderr (``None``) on rank 0; elsewhere a stream that is
    not a terminal, where it stays quiet. Every rank keeps the same callbacks, so that a
    checkpoint written by rank 0 resumes on all of them."""
    return None if is_main_process() else io.StringIO()


def sum_over_ranks(*values) -> list[float]:
    """Each value (a number) summed over the ranks, in one all-reduce; the values alone."""
    totals = np.array(values, dtype=np.float64)
    dist.all_reduce(totals, op="sum")
    return totals.tolist()


def announce_data_parallel(command: str, batch_size: int) -> None:
    """For the ``minift`` commands under mpiexec: rank 0 says so in its first line; the
    other ranks' standard output is silenced (their errors still reach stderr)."""
    if not dist.is_distributed():
        return
    world = dist.get_world_size()
    if is_main_process():
        print(f"minift {command}: data-parallel on {world} processes (MPI): batch {batch_size} per process, "
              f"{world * batch_size} per step", flush=True)
    else:
        sys.stdout = open(os.devnull, "w")
