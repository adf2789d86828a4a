"""``wide_vectors()``: let LLVM vectorise the function it is called in with 512-bit vectors.

On CPUs with AVX-512, LLVM's tuning for Intel's server cores (Skylake-X and later) prefers
256-bit vectors: on the first of them a core running 512-bit instructions lowered its clock,
which could cost scalar code around it more than the wider vectors gained. So Numba's
loops, vectorised by LLVM, use AVX-512's instructions at half their width. A kernel whose
loop is all arithmetic (GELU's normal CDF, the softmax's exponential, dropout's hash) does
twice the work per instruction at full width; and the matrix products around these kernels,
OpenBLAS's AVX-512 ones, run at full width anyway.

``NUMBA_CPU_FEATURES=...,-prefer-256-bit`` would change every function Numba compiles in
the process, the user's own too. ``wide_vectors()`` instead sets LLVM's function attribute
``"prefer-vector-width"="512"`` on the one function being compiled -- for a ``prange``
loop, the function Numba outlines the loop body into, so it is called inside the loop. It
generates no code. Without AVX-512 the attribute changes nothing (the widest vectors are
narrower). Element-wise results are bitwise the same; a sum that may be reordered
(``fastmath`` "reassoc") is added in 16 lanes instead of 8, so its rounding can differ.

Measured on the 2-core development machine (AVX-512, one thread, MiniLM's shapes, 256-bit
and 512-bit builds of the kernels taking turns in one process, medians of 15, three runs):
GELU backward on 2048 x 1536 values 4.2-4.9 -> 2.9-3.0 ms in float32 and 11.7-12.4 ->
7.7-9.0 ms in float64; GELU forward 6.1 -> 4.5 ms (float32, outputs allocated once; with
fresh outputs each call the difference was inside the noise); layer norm forward on
2048 x 384 0.80 -> 0.59 ms; softmax forward on 16 x 12 x 128 x 128 4.6-4.7 -> 4.0-4.2 ms.
MiniLM at batch 16 on two threads, the two builds alternating: inference 0.711 and 0.722 ->
0.726 and 0.729 of PyTorch's tokens per second, training step 0.908 and 0.926 -> 0.932 and 0.954.
"""

from __future__ import annotations

from minift.kernels.numba import env as numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before Numba loads)
from numba import types
from numba.extending import intrinsic

PREFER_512_BITS = '"prefer-vector-width"="512"'


@intrinsic
def wide_vectors(typingctx):
    """Mark the function being compiled for 512-bit vectors (see the module docstring)."""

    def codegen(context, builder, signature, args):
        # llvmlite's FunctionAttributes.add accepts only attributes without values; this one
        # is a string attribute, which LLVM's textual IR takes as it is.
        set.add(builder.function.attributes, PREFER_512_BITS)
        return context.get_dummy_value()

    return types.none(), codegen
