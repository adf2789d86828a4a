"""Dropout in Numba: the counter-based mask of ``minift.reference.dropout``, one pass, every core.

Implements the contract's ``dropout``. The reference's ``splitmix64`` is compiled as it is
(plain uint64 arithmetic) and inlined into one loop that hashes each element's index,
compares, and writes ``x * scale`` or 0: it reads x once and writes y once, and LLVM vectorises it at full width (``wide_vectors``; AVX-512 has the
64-bit multiply it needs). The elements are shared between the threads in any order:
element i's draw depends on i alone.

MiniLM's attention dropout (16 x 12 x 128 x 128 float32, p = 0.1): 1.3 ms on one thread
against 7.8 ms for NumPy's ``Generator.random`` draws, comparison and two products.
"""

from __future__ import annotations

import numpy as np

from minift.kernels.numba import env as numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before Numba loads)
from numba import njit, prange
from minift.kernels.numba.parallel import parallel_kernel
from minift.kernels.numba.vector_width import wide_vectors
from minift.reference.dropout import DRAW_SHIFT, keep_threshold
from minift.reference.dropout import splitmix64 as splitmix64_python

splitmix64 = njit(cache=True, inline="always")(splitmix64_python)


@parallel_kernel(cache=True)
def dropout_flat(x, key, threshold, scale, y):
    """y[i] = x[i] * scale if (splitmix64(key, i) >> 11) >= threshold else 0, for flat x and y."""
    zero = x.dtype.type(0)
    for i in prange(x.shape[0]):
        wide_vectors()
        keep = (splitmix64(key, np.uint64(i)) >> DRAW_SHIFT) >= threshold
        y[i] = x[i] * scale if keep else zero


def dropout(x, p, key):
    """The contract's ``dropout``: y = x * keep / (1 - p), keep a function of (key, i)."""
    y = np.empty(x.shape, x.dtype)
    dropout_flat(np.ascontiguousarray(x).reshape(-1), np.uint64(key), np.uint64(keep_threshold(p)),
                 x.dtype.type(1 / (1 - p)), y.reshape(-1))
    return y
