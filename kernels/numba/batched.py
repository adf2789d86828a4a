"""Stacks of small matrix products on several cores: the stack split between threads, one BLAS thread each.

NumPy's ``matmul`` on a stack ``(B, M, K) @ (B, K, N)`` makes B BLAS calls one after the
other, and each call splits its one product between BLAS's threads. For small products --
attention's ``Q K^T`` and ``P V`` are 192 products of 128 x 32 by 32 x 128 in MiniLM at batch
16 -- that split costs more than it gains: on the 2-core development machine the stack took
5.4 ms with two BLAS threads, *more* than the 3.5 ms of one (PyTorch: 1.2 ms, because its
``bmm`` splits the *stack* between its threads). So does ``matmul_stack``: each of the
policy's threads (``minift.backend.threads``) runs ``np.matmul`` on its share of the stack
(NumPy releases the GIL inside BLAS) while BLAS is held at one thread (``parallel.split``):
2.1 ms, and ``P V`` 1.85 -> 1.04 ms. MiniLM's training step and inference on two threads gained 20-30 %.

The stack is split only when the shares come out even (B a multiple of the threads, or at
least ``MIN_PER_THREAD`` products per thread); otherwise, and on one thread, it is NumPy's
``matmul`` as before. Each product is computed exactly as before (one BLAS call on one
thread), so the results do not depend on the thread count.
"""

from __future__ import annotations

import numpy as np

from minift.kernels.numba.parallel import split, thread_count

MIN_PER_THREAD = 4  # below it, an uneven split (e.g. 3 products on 2 threads) is left to BLAS


def shares(batch: int, count: int) -> list[slice] | None:
    """``count`` near-equal slices of ``range(batch)``, or None where splitting would not pay."""
    if count < 2 or batch < count or (batch % count and batch < MIN_PER_THREAD * count):
        return None
    bounds = [batch * i // count for i in range(count + 1)]
    return [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]


def matmul_stack(a, b, out):
    """out[:] = a @ b for stacks a (B, M, K), b (B, K, N) of any strides; out (B, M, N) C-contiguous."""
    parts = shares(a.shape[0], thread_count())
    if parts is None:
        np.matmul(a, b, out=out)
        return out
    split(lambda part: np.matmul(a[part], b[part], out=out[part]), parts)
    return out
