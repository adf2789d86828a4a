"""The ring all-reduce, written out: how N workers sum their arrays sending only to a neighbour.

The N ranks sit on a ring: rank r sends to ``r + 1`` and receives from ``r - 1`` (mod N).
Each flattens its array and cuts it into N chunks, ``c_0 .. c_{N-1}``.

**Phase 1, reduce-scatter** (N - 1 steps). At step s = 0 .. N-2, rank r sends its
running sum of chunk ``(r - s) mod N`` to the right and adds what arrives from the left
into chunk ``(r - s - 1) mod N``. A chunk travels once around the ring, collecting one
addend per rank: after N - 1 steps rank r holds the complete sum of chunk ``(r + 1) mod N``.

**Phase 2, all-gather** (N - 1 steps). At step s, rank r sends the complete chunk
``(r + 1 - s) mod N`` to the right and stores what arrives as chunk ``(r - s) mod N``.
After N - 1 steps every rank has every complete chunk.

Example, N = 3, arrays a, b, c, chunk k of rank 0 written a_k::

    after reduce-scatter:  rank 0 owns chunk 1 = a1+b1+c1, rank 1 chunk 2, rank 2 chunk 0
    after all-gather:      every rank holds (a0+b0+c0, a1+b1+c1, a2+b2+c2)

**Cost.** With D bytes per array, each rank sends (and receives) N - 1 chunks of D/N in
each phase: ``2 (N - 1) / N * D`` in all -- less than 2D whatever N is, so the time per
step stays nearly flat as workers are added, when bandwidth dominates. Each of the
2 (N - 1) steps also pays one message latency: for small arrays that term wins, and a
tree (log N steps) does better; MPI libraries choose between such algorithms by size.
A naive all-reduce through one root (gather, sum, broadcast) moves (N - 1) D through that
root's link.

``ring_all_reduce`` runs over MPI point-to-point messages (``comm.Sendrecv``: send to the
right and receive from the left in one call, so no rank waits on another's send and the
ring cannot deadlock); ``simulate_ring_all_reduce`` runs the same schedule on N arrays in
one process, for the tutorial. Both are checked against ``MPI.Allreduce``.
"""

from __future__ import annotations

import numpy as np


def reduce_scatter_chunks(rank: int, step: int, world: int) -> tuple[int, int]:
    """Phase 1, step ``step``: (chunk this rank sends, chunk it receives and adds into)."""
    return (rank - step) % world, (rank - step - 1) % world


def all_gather_chunks(rank: int, step: int, world: int) -> tuple[int, int]:
    """Phase 2, step ``step``: (chunk this rank sends, chunk it receives and stores)."""
    return (rank + 1 - step) % world, (rank - step) % world


def _chunks(array, world: int) -> list:
    """Views of ``array`` (contiguous) flattened into ``world`` nearly equal chunks (some may be empty)."""
    return np.array_split(array.reshape(-1), world)


def ring_all_reduce(comm, array: np.ndarray) -> None:
    """Sum ``array`` (contiguous, the same shape and dtype on every rank) over the ranks, in place."""
    if not (isinstance(array, np.ndarray) and array.flags.c_contiguous):
        raise ValueError(f"ring_all_reduce needs a C-contiguous NumPy array (np.ascontiguousarray makes one), "
                         f"got {type(array).__name__}")
    world, rank = comm.Get_size(), comm.Get_rank()
    right, left = (rank + 1) % world, (rank - 1) % world
    chunks = _chunks(array, world)
    incoming = np.empty_like(chunks[0])
    for step in range(world - 1):
        send, receive = reduce_scatter_chunks(rank, step, world)
        got = incoming[: chunks[receive].size]
        comm.Sendrecv(chunks[send], dest=right, recvbuf=got, source=left)
        chunks[receive] += got
    for step in range(world - 1):
        send, receive = all_gather_chunks(rank, step, world)
        comm.Sendrecv(chunks[send], dest=right, recvbuf=chunks[receive], source=left)


def simulate_ring_all_reduce(arrays: list) -> list:
    """The same schedule on N in-process "workers" (one array each); returns their results.

    Each step, every worker's send is taken before any worker adds, as on the real ring
    where all messages of a step travel at once.
    """
    world = len(arrays)
    results = [np.array(a, copy=True) for a in arrays]
    chunks = [_chunks(a, world) for a in results]
    for schedule, combine in ((reduce_scatter_chunks, np.add), (all_gather_chunks, None)):
        for step in range(world - 1):
            messages = [chunks[r][schedule(r, step, world)[0]].copy() for r in range(world)]
            for rank in range(world):
                receive = schedule(rank, step, world)[1]
                arrived = messages[(rank - 1) % world]
                target = chunks[rank][receive]
                target[...] = arrived if combine is None else combine(target, arrived)
    return results


def bytes_sent_per_rank(nbytes: int, world: int) -> float:
    """The cost model: what each rank sends in a ring all-reduce of ``nbytes`` per array."""
    return 2 * (world - 1) / world * nbytes
