"""``minift.distributed``: data-parallel training on MPI, with PyTorch's names.

A script written for one process runs on N when started by ``mpiexec -n N``::

    import minift.distributed as dist
    dist.init_process_group()                      # MPI under mpiexec, a world of one alone
    model = dist.DistributedDataParallel(model)    # same weights everywhere; averaged gradients
    loader = dist.DistributedLoader(dataset, batch_size=B, shuffle=True, seed=0)
    for x, y in loader:                            # this rank's share of each global batch
        loss = F.cross_entropy(model(x), y)
        loss.backward()                            # ... gradients averaged over the ranks
        optimizer.step(); optimizer.zero_grad()

The pieces: ``process_group.py`` (rank, world size, the collectives, abort on error),
``sampler.py`` (each rank its share of every epoch), ``ddp.py`` (the wrapper and its
gradient buckets), ``sync_batchnorm.py`` (BatchNorm over all ranks' batches), ``ring.py``
(the ring all-reduce written out, for the course), ``metrics.py`` (rank 0 speaks, metrics
averaged) -- and ``minift.bench.distributed`` measures it all.
"""

from .ddp import DistributedDataParallel
from .process_group import (ReduceOp, all_gather_object, all_reduce, barrier, broadcast, broadcast_object,
                            get_rank, get_world_size, init_process_group, is_distributed, is_initialized,
                            launched_by_mpi)
from .sampler import DistributedLoader, DistributedSampler
from .sync_batchnorm import SyncBatchNorm

__all__ = [
    "init_process_group", "is_initialized", "is_distributed", "launched_by_mpi", "get_rank", "get_world_size",
    "barrier", "all_reduce", "broadcast", "all_gather_object", "broadcast_object", "ReduceOp",
    "DistributedSampler", "DistributedLoader", "DistributedDataParallel", "SyncBatchNorm",
]
