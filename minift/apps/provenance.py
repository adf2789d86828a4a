"""Where a result came from: the backend, thread pools, BLAS kernels and versions of a run.

Training in float32 is deterministic on one machine, but a sum computed in another order
(another backend, another number of BLAS threads, another BLAS kernel for the CPU) rounds
differently, and a few hundred steps later training has taken another path. A table of
results therefore says which of these produced it: ``environment()`` collects them, and
``describe`` prints them in two lines.
"""

from __future__ import annotations

import os
import platform
import sys

import numpy as np

from .. import __version__, backend
from ..backend import threads


def blas_pools() -> list[dict]:
    """The BLAS and OpenMP pools loaded in this process, from threadpoolctl: library,
    version, kernel family (OpenBLAS's ``architecture``, e.g. ``Haswell``) and threads.
    Empty when threadpoolctl is not installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("user_api", "internal_api", "version", "architecture", "num_threads")
    return [{key: pool.get(key) for key in keys} for pool in threadpool_info()]


def environment() -> dict:
    """What produced a run: minift's backend and versions, thread settings, BLAS pools, CPU."""
    versions = {"minift": __version__, "python": sys.version.split()[0], "numpy": np.__version__}
    numba_threads = None
    if backend.available_backends()["numba"][0]:
        import numba

        versions["numba"] = numba.__version__
        numba_threads = numba.get_num_threads()  # what its parallel kernels use now
    variables = ("OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_CORETYPE", *threads.POLICY)
    thread_settings = {name: os.environ[name] for name in variables if name in os.environ}
    # BLAS's threads for a large product (smaller ones run on one: threads.kernel_threads)
    large_product_threads = threads.policy.blas_count(threads.get_num_threads(), threads.PARALLEL_MIN_MULTIPLY_ADDS)
    return {
        "backend": backend.get_backend(),
        "versions": versions,
        "threads": {"blas": large_product_threads, "numba": numba_threads, "environment": thread_settings},
        "blas": blas_pools(),
        "cpu": {"count": os.cpu_count(), "machine": platform.machine(), "system": platform.system()},
    }


def describe(env: dict) -> str:
    """Two lines for the head of a results table."""
    versions = ", ".join(f"{name} {version}" for name, version in env["versions"].items())
    pools = "; ".join(f"{pool['internal_api']} {pool['version']} ({pool['architecture'] or 'kernels n/a'}, "
                      f"{pool['num_threads']} threads)" for pool in env["blas"]) or "threadpoolctl not installed"
    settings = " ".join(f"{name}={value}" for name, value in env["threads"]["environment"].items())
    return (f"environment: backend {env['backend']}, threads BLAS {env['threads']['blas']} / Numba "
            f"{env['threads']['numba'] or 'n/a'}, {env['cpu']['count']} CPUs ({env['cpu']['machine']}); {versions}\n"
            f"BLAS: {pools}; {settings}")
