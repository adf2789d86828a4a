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
applies it again on import (for Numba, which it loads later).

3. If NumPy was imported before minift (and ``OPENBLAS_THREAD_TIMEOUT`` was not set),
   OpenBLAS keeps spinning and nothing can change that any more. Then Numba's kernels
   step aside instead: ``numba_thread_count()`` gives them only the cores that BLAS's
   spinning workers leave free (one, on a 2-core machine), so the two pools never want
   the same core. Matrix products keep BLAS's full speed; the Numba kernels (im2col,
   pooling) run on fewer cores. ``pools_take_turns()`` tells which case you are in. To
   get every core for both, import minift before NumPy, or export
   ``OPENBLAS_THREAD_TIMEOUT=4``.

Other BLAS libraries (MKL, Accelerate) are not configured here.

Measured on the 2-core development machine with ``python -m minift.backend.threads`` (a loop of
two 256 x 256 matmuls and two small Numba kernels, alternating; median per loop):

    library defaults               40.7 ms
    policy (points 1 and 2)         0.67 ms
    NumPy imported first (3)        0.5-0.9 ms

(the first two on a quiet machine, the third with other jobs running; with other jobs
running the defaults take 85-160 ms, and all timings scatter widely).
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


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def blas_thread_count() -> int:
    """Threads NumPy's BLAS runs a product on (all cores unless limited; threadpoolctl knows)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return cores()
    counts = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
    return max(counts, default=cores())


def numba_thread_count() -> int:
    """Threads for Numba's parallel kernels: every core, or, while BLAS's idle workers spin
    (point 3 above), only the cores those workers leave free."""
    configure_thread_pools()
    if not _applied["blas_spins"]:
        return cores()
    return max(1, cores() - (blas_thread_count() - 1))


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
    """Print the alternation benchmark under the libraries' defaults and under the policy.

    Each case runs in a fresh interpreter, since the settings act only when the
    libraries load: the library defaults; the policy in place before NumPy loads
    (points 1 and 2); NumPy imported first, so Numba keeps to the free cores (point 3).
    """
    import subprocess

    measure = "from minift.backend.threads import _alternation_benchmark as b; print(f'{b():.2f}')"
    numpy_first = (
        "import numpy, numba\n"
        "from minift.backend import threads\n"
        "threads.configure_thread_pools()\n"
        "numba.set_num_threads(threads.numba_thread_count())\n"
    )
    unset = {k: v for k, v in os.environ.items() if k not in POLICY}
    cases = (
        ("library defaults", {**unset, **LIBRARY_DEFAULTS}, measure),
        ("minift policy", {**unset, **POLICY}, measure),
        ("NumPy imported first", unset, numpy_first + measure),
    )
    for label, env, code in cases:
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        print(f"{label:21s} {result.stdout.strip():>8s} ms per loop (median)")


if __name__ == "__main__":
    main()
