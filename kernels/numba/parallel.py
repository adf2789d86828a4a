"""Parallel work in the Numba backend: kernels with a serial twin, and work split between threads.

Two ways to use several cores, and when each is right.

**1. A parallel kernel** (``@njit(parallel=True)``, a ``prange`` loop) splits one loop
between Numba's thread pool. Right for a kernel that is the whole job -- a softmax, a
layer norm, a depthwise convolution. But a ``prange`` loop is handed to the pool even when
the pool is set to one thread: the calling thread waits while a pool thread runs the loop,
on whichever core the scheduler picks. In an idle process free to use two cores that is
often the *other* core, so what the kernel writes -- im2col's columns -- lands in the other
core's cache just before the calling thread's matrix product reads it: ``minift bench``'s
conv2d S1 forward + backward took 10.4 ms on one thread of an idle 2-core machine against
5.7 ms pinned to one core. ``parallel_kernel`` compiles each kernel twice -- parallel, and
serial (``prange`` is then ``range``; ``nogil``, so that several threads can run it at
once) -- and calls the serial twin whenever ``thread_count()`` is 1. The twin is compiled
with NumPy's error model, as Numba compiles every ``prange`` body: ``1 / 0`` is ``inf``,
not a ZeroDivisionError, and without the check LLVM can vectorise the loop. (With Python's
error model, float32 GELU's serial twin ran 6x slower than the parallel kernel on one
thread: 66 against 11 ms on MiniLM's 16 x 128 x 1536 activations.)

**2. Work split between threads** (``split``): for a job made of a Numba kernel *and*
matrix products -- a convolution is im2col, then a GEMM, per chunk of images -- splitting
each step on its own makes the two pools take turns (Numba's threads write the columns,
OpenBLAS's threads wake up and read them, from the other core's cache), and each step waits
for its slowest thread. ``split`` instead hands whole chunks to the policy's threads: each
thread runs the serial kernels and a one-thread BLAS product on its own chunk, start to
finish, and takes the next chunk when done (so a thread slowed down by another process does
less of the work). Inside a split, ``thread_count()`` is 1: every kernel runs its serial
twin, and nothing splits again.

Not the pooling kernels (``pool.py``): there the serial twin measured 2.6x *slower* than
the parallel kernel on one thread (6.0 against 2.3 ms for the 2x2 max-pool forward and
backward), with either error model, for a reason not yet understood, so they stay
``@njit(parallel=True)``.
"""

from __future__ import annotations

import functools
import threading
import types
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from minift.kernels.numba import env as numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before Numba loads)
from minift.backend import threads
from numba import njit

_local = threading.local()  # .serial: this thread runs a share of a split
_pool: ThreadPoolExecutor | None = None


def thread_count() -> int:
    """Threads a kernel may use here: the policy's count (``minift.backend.threads``), or 1
    inside a share of a ``split``."""
    return 1 if getattr(_local, "serial", False) else threads.get_num_threads()


def _twin(function):
    """A copy of ``function`` under another name, so that Numba caches its compiled code apart."""
    copy = types.FunctionType(function.__code__, function.__globals__, function.__name__ + "_serial",
                              function.__defaults__, function.__closure__)
    copy.__qualname__ = function.__qualname__ + "_serial"
    copy.__doc__ = function.__doc__
    return copy


def parallel_kernel(**options):
    """``@njit(parallel=True, **options)`` that runs its serial twin on one thread (see the module docstring).

    The returned function has ``.parallel`` and ``.serial`` (the two Numba dispatchers) and
    ``.py_func`` (the Python source, as a Numba dispatcher has).
    """

    def compile_both(function):
        parallel = njit(parallel=True, **options)(function)
        serial = njit(nogil=True, error_model="numpy", **options)(_twin(function))

        @functools.wraps(function)
        def kernel(*args):
            return (serial if thread_count() == 1 else parallel)(*args)

        kernel.parallel, kernel.serial, kernel.py_func = parallel, serial, function
        return kernel

    return compile_both


def _workers(count: int) -> ThreadPoolExecutor:
    global _pool
    if _pool is None or _pool._max_workers < count:
        _pool = ThreadPoolExecutor(count, thread_name_prefix="minift-split")
    return _pool


@contextmanager
def one_blas_thread():
    """NumPy's BLAS held at one thread inside the block, then back to its count (about 3 us;
    a product the contract gave more threads, ``threads.kernel_threads``, may run in a split)."""
    libraries = threads.policy.blas_libraries()
    before = [library.num_threads for library in libraries]
    for library in libraries:
        library.set_num_threads(1)
    try:
        yield
    finally:
        for library, count in zip(libraries, before):
            library.set_num_threads(count)


def split(work, items) -> None:
    """``work(item)`` for every item, shared between ``thread_count()`` threads (the calling
    thread is one of them); each thread takes the next item when it is done with one.

    While it runs, NumPy's BLAS is held at one thread and every ``parallel_kernel`` runs its
    serial twin (``thread_count()`` is 1 in each share). ``work`` must write only its own
    item's part of any output. On one thread, or with one item, it is a plain loop.
    """
    items = list(items)
    count = min(thread_count(), len(items))
    if count < 2:
        for item in items:
            work(item)
        return
    queue, lock = iter(items), threading.Lock()

    def share():
        _local.serial = True
        try:
            while True:
                with lock:
                    item = next(queue, queue)  # the iterator itself marks the end
                if item is queue:
                    return
                work(item)
        finally:
            _local.serial = False

    with one_blas_thread():
        pending = [_workers(count - 1).submit(share) for _ in range(count - 1)]
        try:
            share()
        finally:
            for task in pending:
                task.result()
