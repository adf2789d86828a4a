"""Parallel kernels with a serial twin: on one thread, a kernel runs in the calling thread.

A ``@njit(parallel=True)`` function hands its ``prange`` loop to Numba's thread pool even
when the pool is set to one thread: the calling thread waits while a pool thread runs the
loop, on whichever core the scheduler picks. In an idle process free to use two cores that
is often the *other* core, so what the kernel writes -- im2col's columns -- lands in the
other core's cache just before the calling thread's matrix product reads it: ``minift
bench``'s conv2d S1 forward + backward took 10.4 ms on one thread of an idle 2-core machine
against 5.7 ms pinned to one core. ``parallel_kernel`` compiles each kernel twice --
parallel, and serial (``prange`` is then ``range``) -- and calls the serial twin whenever
the thread policy (``minift.backend.threads``) runs one thread.

Not the pooling kernels (``pool.py``): there the serial twin measured 2.5x *slower* than
the parallel kernel on one thread (4.7 against 1.9 ms for the 2x2 max-pool), for a reason
not yet understood, so they stay ``@njit(parallel=True)``.
"""

from __future__ import annotations

import functools
import types

from minift.kernels.numba import env as numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before Numba loads)
from minift.backend import threads
from numba import njit


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
        serial = njit(**options)(_twin(function))

        @functools.wraps(function)
        def kernel(*args):
            return (serial if threads.get_num_threads() == 1 else parallel)(*args)

        kernel.parallel, kernel.serial, kernel.py_func = parallel, serial, function
        return kernel

    return compile_both
