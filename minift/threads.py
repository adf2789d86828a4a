"""Thread pools that take turns on the cores instead of fighting over them.

The numba backend runs two pools of worker threads in one process: OpenBLAS's (NumPy's
matrix products) and Numba's (the parallel kernels). By default both keep their idle
workers *spinning* for a while after each job, to start the next job a little sooner:
OpenBLAS for 2**28 CPU cycles (about 0.1 s), Numba's default OpenMP layer for GNU
OpenMP's spin count. When the two alternate -- a matmul, a convolution, a matmul... --
every job starts while the other pool still spins on the same cores. On a 2-core machine a
2-thread job then waits for the scheduler's next time slice (4 ms), over and over:
timings come out in 4 ms steps, tens of times too slow.

The policy, applied by ``configure_thread_pools()``:

1. ``NUMBA_THREADING_LAYER=workqueue``: Numba's own simple pool, whose idle threads
   sleep at once (it does not support nested parallelism or two Python threads
   launching Numba kernels at the same time, which minift never does);
2. ``OPENBLAS_THREAD_TIMEOUT=4``: OpenBLAS workers sleep after 2**4 cycles.

Both are *defaults*: a value you set in the environment wins. Both must be in place before
the library reads them -- OpenBLAS reads its variable once, when NumPy is imported -- so
``import minift`` applies the policy before it imports NumPy, and the numba backend
applies it again on import (for Numba, which it loads later). If NumPy was imported before
minift (and ``OPENBLAS_THREAD_TIMEOUT`` was not set), OpenBLAS keeps spinning:
``pools_take_turns()`` is then False and the numba backend keeps to its own GEMM instead
of BLAS (see ``MINIFT_NUMBA_GEMM`` in ``minift.kernels.numba_cpu``), so the pools never
alternate. Other BLAS libraries (MKL, Accelerate) are not configured here.

Measured on the 2-core development machine with ``python -m minift.threads`` (a loop of
two 256 x 256 matmuls and two small Numba kernels, alternating; median per loop):

                       quiet machine    other jobs running
    library defaults      40.7 ms           85.0 ms
    this policy            0.67 ms           1.05 ms
"""

from __future__ import annotations

import os
import sys

POLICY = {"NUMBA_THREADING_LAYER": "workqueue", "OPENBLAS_THREAD_TIMEOUT": "4"}
LIBRARY_DEFAULTS = {"NUMBA_THREADING_LAYER": "default", "OPENBLAS_THREAD_TIMEOUT": "28"}  # for comparison

_applied: dict[str, bool] = {}


def configure_thread_pools() -> None:
    """Apply the policy above; later calls do nothing. Call before NumPy and Numba load."""
    if _applied:
        return
    _applied["blas_spins"] = "numpy" in sys.modules and "OPENBLAS_THREAD_TIMEOUT" not in os.environ
    for name, value in POLICY.items():
        os.environ.setdefault(name, value)
    config = sys.modules.get("numba.core.config")
    if config is not None and config.THREADING_LAYER == "default":
        # Numba is loaded but has not read the variable for its pool yet (it does on first launch).
        config.THREADING_LAYER = os.environ["NUMBA_THREADING_LAYER"]


def numba_threading_layer() -> str:
    """The layer Numba's pool runs on, or will start on at its first parallel kernel."""
    numba = sys.modules.get("numba")
    if numba is not None:
        try:
            return numba.threading_layer()
        except ValueError:  # the pool has not started yet: it will read the setting
            pass
    return os.environ.get("NUMBA_THREADING_LAYER", "default")


def pools_take_turns() -> bool:
    """True when idle OpenBLAS and Numba threads sleep at once, so the pools can alternate."""
    configure_thread_pools()
    return not _applied["blas_spins"] and numba_threading_layer() == "workqueue"


def _alternation_benchmark(steps: int = 50) -> float:
    """Median milliseconds of one loop of matmul, Numba kernel, matmul, Numba kernel."""
    import time

    import numpy as np
    from numba import njit, prange

    @njit(parallel=True)
    def double(x, out):
        for i in prange(x.shape[0]):
            out[i] = 2 * x[i]

    a = np.random.default_rng(0).random((256, 256), dtype=np.float32)
    x = np.ones((2048, 256), np.float32)
    out = np.empty_like(x)
    times = []
    for step in range(steps + 5):
        start = time.perf_counter()
        double(x, out)
        a @ a
        double(x, out)
        a @ a
        if step >= 5:  # the first loops compile and warm up
            times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main() -> None:
    """Print the alternation benchmark under the libraries' own defaults and under this policy.

    Each runs in a fresh interpreter with the settings in its environment, since they
    only act when the libraries load.
    """
    import subprocess

    code = "from minift.threads import _alternation_benchmark as b; print(f'{b():.2f}')"
    for label, settings in (("library defaults", LIBRARY_DEFAULTS), ("minift policy", POLICY)):
        result = subprocess.run(
            [sys.executable, "-c", code], env={**os.environ, **settings}, capture_output=True, text=True, check=True
        )
        print(f"{label:17s} {result.stdout.strip():>8s} ms per loop (median)   {settings}")


if __name__ == "__main__":
    main()
