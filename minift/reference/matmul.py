"""Batched matrix product, the hot path of every linear layer and attention head."""

from __future__ import annotations

import numpy as np

from minift.contract.checks import check_float_arrays


def matmul(a, b):
    """c = a @ b with broadcast batch dimensions, as ``numpy.matmul``.

    ``c[..., m, n] = sum_k a[..., m, k] * b[..., k, n]``

    a (..., M, K), b (..., K, N) -> c (..., M, N), both operands at least 2-D (the op layer
    turns vectors into matrices). NumPy hands each matrix of the batch to BLAS (GEMM).
    """
    kernel = "matmul"
    check_float_arrays(kernel, a=a, b=b)
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"{kernel}: both operands must be at least 2-D, got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(
            f"{kernel}: a (..., M, K) and b (..., K, N) must agree on K, got shapes {a.shape} and {b.shape}"
        )
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(
            f"{kernel}: the batch dimensions {a.shape[:-2]} and {b.shape[:-2]} do not broadcast"
        ) from None
    return np.ascontiguousarray(np.matmul(a, b))
