"""Batched matrix product, the hot path of every linear layer and attention head."""

from __future__ import annotations

import numpy as np


def matmul(a, b, g):
    """c = a @ b with broadcast batch dimensions, as ``numpy.matmul``.

    ``c[..., m, n] = sum_k a[..., m, k] * b[..., k, n]``

    a (..., M, K), b (..., K, N) -> c (..., M, N) (``g``: the checked ``MatmulGeometry``).
    NumPy hands each matrix of the batch to BLAS (GEMM).
    """
    return np.ascontiguousarray(np.matmul(a, b))
