"""A cache-blocked matrix multiply (GEMM) in Numba: how a fast matmul is built.

Implements ``C += A @ B`` (``minift.reference.matmul`` is the oracle of the ``matmul``
built on it). The naive triple loop ``for i, j, k: C[i, j] += A[i, k] * B[k, j]`` runs
at a few GFLOP/s: for every multiply-add it loads two numbers, one of them from a
far-away row of B, and it cannot use the vector units. This file reaches a good share of
BLAS speed with three ideas, each a loop level:

1. **Vectorise the innermost loop.** The innermost loop walks ``j``, along a row of B
   and of C, with unit stride, so LLVM turns it into SIMD instructions (16 float32 per
   AVX-512 instruction). Each step of it does 4 x 4 multiply-adds: 4 rows of C
   (``MICRO_ROWS``) times 4 values of ``k`` (``MICRO_DEPTH``). The 16 numbers of A it
   needs are loop constants held in registers; per SIMD step it loads 4 vectors of B and
   4 of C and stores 4 of C for 16 fused multiply-adds -- enough arithmetic per memory
   access to keep the multiply units busy.
2. **Block for the caches.** The columns of B are cut into tiles of ``TILE_N`` and the
   depth into panels of ``TILE_K``. A ``TILE_K x TILE_N`` tile of B (256 KiB in float32)
   stays in the 1-2 MiB L2 cache while every group of 4 rows of A sweeps over it; the
   4 rows of C being updated (4 KiB) stay in the 48 KiB L1 cache.
3. **Pack.** Before use, the tile of B and each 4-row strip of A are copied into small
   contiguous buffers, zero-padded to whole micro-steps. The inner loops then never meet
   an edge case, and any memory layout of A and B (transposed, sliced, broadcast) costs
   only this copy -- which is how BLAS libraries handle their transpose flags too.

``gemm_accumulate`` is serial; ``matmul_blocked`` runs one per output tile on every core
(``prange``). ``matmul_into`` runs either it or BLAS, as ``MINIFT_NUMBA_GEMM`` says.

**What limits it** (read ``_micro_kernel.inspect_asm()``): LLVM keeps 14 of the 16 A
values in registers and reloads the other 2, folds each B load into its multiply-add
instead of reusing one register across the 4 rows, and chains each row's 4
multiply-adds one after the other. So every SIMD step waits on memory loads and on
that chain, where a BLAS micro-kernel (hand-written assembly) keeps a whole block of C
in registers across the entire depth and never stores it until the end. Numba gives no
way to hold an array in registers, so this is about as far as plain loops go:
``python -m minift.bench`` shows it next to BLAS and PyTorch.
"""

from __future__ import annotations

import os

import numpy as np

from minift.kernels.numba import env as numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before Numba loads)
from numba import njit, prange
from minift.kernels.numba.batched import matmul_stack
from minift.kernels.numba.parallel import parallel_kernel

# Safe fast-math: allow fused multiply-add ("contract") and reordering sums ("reassoc"),
# which vectorisation needs; never assume there are no NaN or inf.
FAST_MATH = {"contract", "reassoc"}

MICRO_ROWS = 4  # rows of C updated together by the micro-kernel
MICRO_DEPTH = 4  # steps of k done together by the micro-kernel
TILE_M = 64  # rows of C per parallel task
TILE_N = 256  # columns of C per tile: one packed row of B is 1 KiB (float32)
TILE_K = 256  # depth of one panel: a packed B tile is TILE_K x TILE_N (256 KiB float32)


@njit(cache=True)
def _round_up(n, multiple):
    """The smallest multiple of ``multiple`` that is >= n."""
    return (n + multiple - 1) // multiple * multiple


@njit(cache=True)
def _pack_b_tile(b, k0, depth, j0, width, b_tile):
    """b_tile[:depth, :width] = b[k0:k0+depth, j0:j0+width]; rows up to a whole micro-step are zeroed."""
    source = b[k0 : k0 + depth, j0 : j0 + width]
    for k in range(depth):
        for j in range(width):
            b_tile[k, j] = source[k, j]
    for k in range(depth, _round_up(depth, MICRO_DEPTH)):
        for j in range(width):
            b_tile[k, j] = 0


@njit(cache=True)
def _pack_a_strip(a, i0, rows, k0, depth, a_strip):
    """a_strip[:rows, :depth] = a[i0:i0+rows, k0:k0+depth], zero elsewhere (edges of A)."""
    source = a[i0 : i0 + rows, k0 : k0 + depth]
    a_strip[:] = 0
    for r in range(rows):
        for k in range(depth):
            a_strip[r, k] = source[r, k]


@njit(cache=True, fastmath=FAST_MATH)
def _micro_kernel(a_strip, b_tile, padded_depth, width, c_strip):
    """c_strip[0:4, :width] += a_strip[0:4, :padded_depth] @ b_tile[:padded_depth, :width].

    Loop order k (by 4), then j: for 4 steps of k the 16 entries of A are scalars
    (registers), and the j loop streams unit-stride rows of B and C -- vectorised.
    """
    c0, c1, c2, c3 = c_strip[0], c_strip[1], c_strip[2], c_strip[3]
    for k in range(0, padded_depth, MICRO_DEPTH):
        b0, b1, b2, b3 = b_tile[k], b_tile[k + 1], b_tile[k + 2], b_tile[k + 3]
        a00, a01, a02, a03 = a_strip[0, k], a_strip[0, k + 1], a_strip[0, k + 2], a_strip[0, k + 3]
        a10, a11, a12, a13 = a_strip[1, k], a_strip[1, k + 1], a_strip[1, k + 2], a_strip[1, k + 3]
        a20, a21, a22, a23 = a_strip[2, k], a_strip[2, k + 1], a_strip[2, k + 2], a_strip[2, k + 3]
        a30, a31, a32, a33 = a_strip[3, k], a_strip[3, k + 1], a_strip[3, k + 2], a_strip[3, k + 3]
        for j in range(width):
            c0[j] += a00 * b0[j] + a01 * b1[j] + a02 * b2[j] + a03 * b3[j]
            c1[j] += a10 * b0[j] + a11 * b1[j] + a12 * b2[j] + a13 * b3[j]
            c2[j] += a20 * b0[j] + a21 * b1[j] + a22 * b2[j] + a23 * b3[j]
            c3[j] += a30 * b0[j] + a31 * b1[j] + a32 * b2[j] + a33 * b3[j]


@njit(cache=True, fastmath=FAST_MATH)
def gemm_accumulate(a, b, c):
    """c += a @ b on one core, for a (M, K), b (K, N), c (M, N) of any strides.

    Loop order: depth panels (k0) > column tiles (j0) > 4-row strips of A (i0) >
    the micro-kernel (k, then the vectorised j). Each B tile is packed once and then
    reused by all M/4 strips while it sits in L2; C is touched once per depth panel.
    """
    m, k_total = a.shape
    n = b.shape[1]
    b_tile = np.empty((_round_up(min(TILE_K, k_total), MICRO_DEPTH), min(TILE_N, n)), dtype=c.dtype)
    a_strip = np.empty((MICRO_ROWS, b_tile.shape[0]), dtype=c.dtype)
    c_strip = np.empty((MICRO_ROWS, b_tile.shape[1]), dtype=c.dtype)
    for k0 in range(0, k_total, TILE_K):
        depth = min(TILE_K, k_total - k0)
        for j0 in range(0, n, TILE_N):
            width = min(TILE_N, n - j0)
            _pack_b_tile(b, k0, depth, j0, width, b_tile)
            for i0 in range(0, m, MICRO_ROWS):
                rows = min(MICRO_ROWS, m - i0)
                _pack_a_strip(a, i0, rows, k0, depth, a_strip)
                c_block = c[i0 : i0 + rows, j0 : j0 + width]
                c_strip[:] = 0
                for r in range(rows):
                    for j in range(width):
                        c_strip[r, j] = c_block[r, j]
                _micro_kernel(a_strip, b_tile, _round_up(depth, MICRO_DEPTH), width, c_strip)
                for r in range(rows):
                    for j in range(width):
                        c_block[r, j] = c_strip[r, j]


@parallel_kernel(cache=True, fastmath=FAST_MATH)
def matmul_blocked(a, b, c):
    """c = a @ b for stacks a (B, M, K), b (B, K, N) of any strides, into c (B, M, N).

    The output is cut into TILE_M x TILE_N tiles; ``prange`` hands the (batch, tile)
    pairs to the cores, and each runs ``gemm_accumulate`` over the whole depth. Tiles
    never share output, so no locks are needed.
    """
    batch, m, _ = a.shape
    n = b.shape[2]
    tiles_m = (m + TILE_M - 1) // TILE_M
    tiles_n = (n + TILE_N - 1) // TILE_N
    for task in prange(batch * tiles_m * tiles_n):
        index = task // (tiles_m * tiles_n)
        tile = task % (tiles_m * tiles_n)
        i0 = (tile // tiles_n) * TILE_M
        j0 = (tile % tiles_n) * TILE_N
        c_tile = c[index, i0 : i0 + TILE_M, j0 : j0 + TILE_N]
        c_tile[:] = 0
        gemm_accumulate(a[index, i0 : i0 + TILE_M], b[index, :, j0 : j0 + TILE_N], c_tile)


# Which GEMM runs: BLAS or the blocked one above.

GEMM_CHOICES = ("blas", "blocked")


def gemm_implementation() -> str:
    """``"blas"`` (the default) or ``"blocked"``: the GEMM in use now, from ``MINIFT_NUMBA_GEMM``."""
    choice = os.environ.get("MINIFT_NUMBA_GEMM", "blas").strip().lower()
    if choice not in GEMM_CHOICES:
        raise ValueError(f"MINIFT_NUMBA_GEMM must be one of {', '.join(GEMM_CHOICES)}, got {choice!r}")
    return choice


def matmul_into(a, b, out):
    """out[:] = a @ b for stacks a (B, M, K) and b (B, K, N) of any strides; out (B, M, N) C-contiguous.

    ``blas``: NumPy's matmul, which hands each product to BLAS, the stack split between the
    threads (``batched.matmul_stack``); ``blocked``: ``matmul_blocked``.
    """
    if gemm_implementation() == "blas":
        matmul_stack(a, b, out)
    else:
        matmul_blocked(a, b, out)
    return out
