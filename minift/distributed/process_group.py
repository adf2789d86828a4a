"""The process group: who am I, how many are we, and the collectives, on MPI.

A data-parallel job is N copies of one script, started together by a launcher::

    mpiexec -n 2 python train.py          # one machine, two processes
    mpiexec -f hosts -n 8 python train.py  # several machines (see the README)

Each copy is a *rank* ``0 .. N-1`` in a *world* of size N. The copies talk only through
collectives, every rank calling the same one in the same order:

- ``barrier()``: nobody leaves until everybody has arrived;
- ``all_reduce(x, op="sum")``: every rank's ``x`` becomes the element-wise sum (max, min,
  product) over all ranks -- in place, like ``torch.distributed.all_reduce``;
- ``broadcast(x, src=0)``: every rank's ``x`` becomes rank ``src``'s, in place;
- ``all_gather_object(out, obj)``: ``out[r]`` becomes rank r's (picklable) ``obj``.

MPI does the work, through ``mpi4py`` (``pip install "minift[mpi]"`` brings mpi4py and the
MPICH library with its ``mpiexec``). Without a launcher -- plain ``python train.py`` --
the world is one process and every collective is the identity, so the same script runs
alone, without MPI installed.

Faults: MPI has no way to tell the other ranks that one raised an exception; they would
wait forever in their next collective. ``init_process_group`` therefore installs a
``sys.excepthook`` that prints the traceback, labelled with the rank, and calls
``MPI.COMM_WORLD.Abort(1)``, which ends every rank of the job.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

import numpy as np

from ..backend.device import array_module
from ..engine.tensor import Tensor

# Variables that the launchers set in each process they start: MPICH's hydra and Slurm's
# PMI-2 (PMI_RANK / PMI_SIZE), Open MPI (OMPI_COMM_WORLD_SIZE), PMIx launchers (PMIX_RANK).
LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")
ABORT_GRACE_SECONDS = 0.5  # the launcher's time to pass on an aborting rank's last output (``_abort``)


class ReduceOp:
    """The reductions ``all_reduce`` knows (torch's ``ReduceOp`` names, lower-case strings)."""

    SUM, PRODUCT, MIN, MAX = "sum", "product", "min", "max"
    ALL = (SUM, PRODUCT, MIN, MAX)


class _WorldOfOne:
    """The communicator of a process running alone, with the few ``mpi4py`` methods that
    minift calls on it (the collectives on arrays return early in a world of one)."""

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1

    def Barrier(self):
        pass

    def allgather(self, obj):
        return [obj]

    def bcast(self, obj, root=0):
        return obj


_world = {"comm": None, "mpi": None}


def launched_by_mpi() -> bool:
    """True when an MPI launcher (mpiexec, srun) started this process."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


def init_process_group(backend: str = "mpi") -> None:
    """Join the job's world: MPI when started by ``mpiexec``/``srun``, else a world of one.

    Calling it again does nothing (``torch`` raises; a script that calls it twice -- e.g. the
    CLI and the user's code -- is harmless here). Under a launcher without ``mpi4py``
    installed it raises, naming the extra to install.
    """
    if backend != "mpi":
        raise ValueError(f"backend {backend!r} is not available: expected 'mpi' (the only one minift has)")
    if _world["comm"] is not None:
        return
    if not launched_by_mpi():
        _world["comm"] = _WorldOfOne()
        return
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(
            "this process was started by an MPI launcher, but mpi4py is not installed; "
            'install it with: pip install "minift[mpi]"'
        ) from error
    _world["comm"], _world["mpi"] = MPI.COMM_WORLD, MPI
    if MPI.COMM_WORLD.Get_size() > 1:
        install_abort_on_exception()


def is_initialized() -> bool:
    return _world["comm"] is not None


def is_distributed() -> bool:
    """True when more than one process takes part (the group is initialised on demand)."""
    return get_world_size() > 1


def _comm():
    if _world["comm"] is None:
        init_process_group()
    return _world["comm"]


def get_rank() -> int:
    """This process's rank, ``0 .. world_size - 1`` (0 when running alone)."""
    return _comm().Get_rank()


def get_world_size() -> int:
    """How many processes take part (1 when running alone)."""
    return _comm().Get_size()


def barrier() -> None:
    """Wait until every rank has called ``barrier()``."""
    _comm().Barrier()


def _mpi_op(op: str):
    if op not in ReduceOp.ALL:
        raise ValueError(f"unknown reduction {op!r}: expected one of {', '.join(ReduceOp.ALL)}")
    mpi = _world["mpi"]
    return None if mpi is None else {"sum": mpi.SUM, "product": mpi.PROD, "min": mpi.MIN, "max": mpi.MAX}[op]


def _array_of(target):
    """The array of ``target`` (a Tensor, a NumPy or a CuPy array)."""
    array = target.data if isinstance(target, Tensor) else target
    if not hasattr(array, "flags"):
        raise TypeError(f"expected a Tensor or an array, got {type(target).__name__}")
    return array


def _in_place(array, collective) -> None:
    """Run ``collective(host_array)`` on ``array``, in place.

    MPI reads and writes contiguous host memory: a non-contiguous or GPU array is copied
    to a contiguous host array, and the result copied back into the original.
    """
    xp = array_module(array)
    if xp is np and array.flags.c_contiguous:
        collective(array)
        return
    host = np.ascontiguousarray(array if xp is np else array.get())
    collective(host)
    array[...] = host if xp is np else xp.asarray(host)


def all_reduce(tensor, op: str = ReduceOp.SUM) -> None:
    """Replace ``tensor`` (a Tensor or an array) on every rank by its reduction over all ranks.

    In place, like ``torch.distributed.all_reduce``; every rank must pass the same shape
    and dtype. With ``op="sum"`` the result is the same on every rank: MPI sums in one
    order for all of them (not necessarily 0, 1, 2, ...).
    """
    comm, mpi_op, array = _comm(), _mpi_op(op), _array_of(tensor)
    if comm.Get_size() == 1:
        return
    mpi = _world["mpi"]
    _in_place(array, lambda host: comm.Allreduce(mpi.IN_PLACE, host, op=mpi_op))


def broadcast(tensor, src: int = 0) -> None:
    """Replace ``tensor`` (a Tensor or an array) on every rank by rank ``src``'s, in place."""
    comm, array = _comm(), _array_of(tensor)
    if not 0 <= src < comm.Get_size():
        raise ValueError(f"src={src} is not a rank of this world of {comm.Get_size()} processes")
    if comm.Get_size() > 1:
        _in_place(array, lambda host: comm.Bcast(host, root=src))


def all_gather_object(object_list: list, obj) -> None:
    """``object_list[r]`` becomes rank r's ``obj`` (small Python values: shapes, metrics)."""
    if len(object_list) != get_world_size():
        raise ValueError(f"object_list has {len(object_list)} entries, expected one per rank ({get_world_size()})")
    object_list[:] = _comm().allgather(obj)


def broadcast_object(obj, src: int = 0):
    """Return rank ``src``'s ``obj`` on every rank (a small Python value)."""
    return _comm().bcast(obj, root=src)


def abort_if_distributed(code: int) -> None:
    """Under mpiexec, end every rank now with exit status ``code`` (a rank that stops on an
    error it handled itself must not leave the others waiting in a collective); alone, return."""
    if _world["comm"] is not None and is_distributed():
        _abort(code)


def _abort(code: int) -> None:
    """Flush this rank's output, give the launcher time to pass it on, and end every rank.

    MPICH's launcher forwards each rank's output from a pipe, and ``Abort`` has it kill the
    job at once: what was still in the pipe was lost, the failing rank's message too (about
    one run in six of ``tests/test_distributed_mpi.py``'s exception test).
    """
    sys.stderr.flush()
    sys.stdout.flush()
    time.sleep(ABORT_GRACE_SECONDS)
    _comm().Abort(code)


def install_abort_on_exception() -> None:
    """Make an uncaught exception on any rank end the whole job, with that rank's message.

    Without it, the other ranks block forever in their next collective. The hook prints
    ``[rank r] Traceback ...`` to stderr and calls ``_abort``: the launcher then stops every
    rank and exits non-zero.
    """
    def abort_the_world(kind, value, trace):
        rank = get_rank()
        text = "".join(traceback.format_exception(kind, value, trace))
        sys.stderr.write("".join(f"[rank {rank}] {line}\n" for line in text.rstrip("\n").split("\n")))
        sys.stderr.write(f"[rank {rank}] minift.distributed: aborting every rank of the job\n")
        _abort(1)
        os._exit(1)  # MPICH's Abort may return before the launcher ends this process

    sys.excepthook = abort_the_world
