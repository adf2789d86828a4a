"""minift's ``numba`` backend: the kernel contract (``minift.contract``), compiled by Numba.

``minift.backend`` imports this module when the backend is ``numba`` (or ``auto`` and Numba
is installed), and the contract's entries look their kernels up here by name, after they
have checked the arguments: each kernel receives the checked geometry and holds only its
loops. Each is implemented in a module of its own, whose docstring explains its loop
order and why it is fast:

- ``gemm.py``  a cache-blocked, vectorised matrix multiply, and the BLAS/blocked switch;
- ``batched.py`` stacks of small products split between threads, one BLAS thread each;
- ``conv.py``  conv2d forward and backward: im2col + GEMM (+ col2im) per chunk of images;
- ``winograd.py`` conv2d forward and backward for 3x3 stride-1 kernels with enough channels:
  Winograd's F(2x2, 3x3), 16 GEMMs on transformed tiles (2.25x fewer multiplications);
- ``grouped.py`` the conv2d kernels for every ``groups``: for depthwise convolutions one
  vector loop per tap over the input plane split into stride phases, ``winograd.py`` or
  ``conv.py`` otherwise (``conv.py`` per group);
- ``pool.py``  max and average pooling, forward and backward;
- ``transformer.py``  softmax with a mask, layer norm and GELU, fused, forward and backward;
- ``batch_norm.py``  batch normalisation, fused, forward and backward: one task per channel;
- ``env.py``   where compiled kernels are cached (``NUMBA_CACHE_DIR``).

Each kernel is compiled for its input types on first use (a few seconds) and cached on
disk, so later runs start fast. Inputs may have any strides; the kernels copy a
non-contiguous input once where a loop wants unit-stride rows.

**The GEMM behind ``matmul``** (and the convolutions' products) is chosen by
``MINIFT_NUMBA_GEMM``, read at each call:

- ``blas`` (default): NumPy's ``matmul``, i.e. OpenBLAS (hand-tuned assembly; fastest);
- ``blocked``: ``gemm.matmul_blocked``, the Numba GEMM you can read.

**Threads**: importing this module applies ``minift.backend.threads``' policy, so that BLAS's and
Numba's thread pools take turns on the cores; if BLAS was started before minift could
configure it, Numba's kernels run on the cores BLAS's spinning threads leave free (set for
the thread that loads the backend, normally the main thread).

**Debugging a kernel**: run with ``NUMBA_DISABLE_JIT=1`` and every ``@njit`` function is
plain Python (``prange`` becomes ``range``): ``print`` and ``pdb`` work inside it, and
errors point at the offending line -- at a small fraction of the speed, so use tiny inputs.
"""

from __future__ import annotations

from minift.backend import threads

threads.configure_thread_pools()  # before Numba starts its thread pool

import numpy as np  # noqa: E402

from minift.kernels.numba.attention import attention_forward  # noqa: E402
from minift.kernels.numba.batch_norm import batch_norm_backward, batch_norm_forward  # noqa: E402
from minift.kernels.numba.grouped import conv2d_backward_input, conv2d_backward_weight, conv2d_forward  # noqa: E402
from minift.kernels.numba.batched import matmul_stack  # noqa: E402
from minift.kernels.numba.dropout import dropout  # noqa: E402
from minift.kernels.numba.gemm import gemm_implementation, matmul_blocked  # noqa: E402
from minift.kernels.numba.pool import (  # noqa: E402
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from minift.kernels.numba.transformer import (  # noqa: E402
    gelu_backward,
    gelu_forward,
    layer_norm_backward,
    layer_norm_forward,
    softmax_backward,
    softmax_forward,
)
from minift.contract import CONTRACT  # noqa: E402
from numba import config, njit, set_num_threads  # noqa: E402

set_num_threads(min(config.NUMBA_NUM_THREADS, threads.numba_thread_count()))

__all__ = [*CONTRACT, "gemm_implementation", "check_available"]


@njit(cache=True)
def _probe(x):
    return x + 1


def check_available() -> None:
    """Raise unless Numba can compile and run here (``minift.backend`` calls this on load).

    Numba may import and still fail to compile (a broken LLVM, an unsupported CPU); a
    probe compiled now lets ``MINIFT_BACKEND=auto`` fall back to NumPy instead of failing
    in the middle of training.
    """
    if _probe(1) != 2:
        raise RuntimeError("Numba compiled a probe function that gives a wrong result")


def matmul(a, b, g):
    """The contract's ``matmul``: ``a (..., M, K) @ b (..., K, N) -> (..., M, N)``.

    Each operand is viewed as a stack (B, rows, columns) -- a broadcast operand keeps a
    zero batch stride, so nothing is copied -- and the B products run on
    ``batched.matmul_stack`` (NumPy's matmul, the stack split between threads; one product
    is NumPy's matmul as in the reference, on the BLAS threads the contract chose,
    ``threads.kernel_threads``) with ``MINIFT_NUMBA_GEMM=blas``, or on ``matmul_blocked``
    with ``blocked`` (``g``: the checked ``MatmulGeometry``).
    """
    blas = gemm_implementation() == "blas"
    if blas and g.batch == 1:
        return np.ascontiguousarray(np.matmul(a, b))
    stack_a = np.broadcast_to(a, (*g.batch_shape, g.m, g.k)).reshape(g.batch, g.m, g.k)
    stack_b = np.broadcast_to(b, (*g.batch_shape, g.k, g.n)).reshape(g.batch, g.k, g.n)
    out = np.empty((g.batch, g.m, g.n), dtype=a.dtype)
    (matmul_stack if blas else matmul_blocked)(stack_a, stack_b, out)
    return out.reshape(g.output_shape)
