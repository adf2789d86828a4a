"""Host-side arithmetic for the CUDA kernels: launch geometry, shapes, strides, sources.

Everything the GPU backend (``backend.py``) decides before a kernel runs lives here, in
plain Python that never imports CuPy, so it is tested on machines without a GPU:

* how many blocks and threads each kernel gets, and which elements each thread owns
  (the GEMM tiling is modelled in NumPy, so a test can check that the threads of a
  launch cover every output element exactly once);
* the 32-bit index limits of the convolution and pooling kernels, and how a large batch
  is cut into chunks whose im2col fits a workspace (the output sizes and the argument
  checks are ``minift.contract.geometry``'s, shared by every backend);
* how broadcast batch dimensions of a matmul become one batch stride;
* which text the CUDA compiler sees for each ``.cu`` file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KERNELS_DIR = Path(__file__).resolve().parent

THREADS_PER_BLOCK = 256
MAX_GRID_X = 2**31 - 1
MAX_GRID_YZ = 65535
# Elementwise kernels loop over their elements (grid-stride), so the grid can stay small.
MAX_ELEMENTWISE_BLOCKS = 65535
INT32_MAX = 2**31 - 1

# im2col materialises a (C*KH*KW, S*Ho*Wo) matrix; convolutions of large batches are
# done S samples at a time so that this workspace stays under this many bytes.
IM2COL_WORKSPACE_BYTES = 256 * 2**20

FLOAT_TYPES = {"float32": "float", "float64": "double"}


# ----------------------------------------------------------------------------------------
# GEMM tiling (gemm.cu)
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GemmTiling:
    """The tile sizes of ``gemm.cu`` (a test checks that the CUDA constants agree).

    A block of ``threads`` threads computes a ``block_m x block_n`` tile of C, walking K
    ``block_k`` at a time through shared memory; each thread computes a
    ``thread_m x thread_n`` micro-tile made of runs of ``run`` consecutive rows and
    columns. The three ``*_slab_loads`` / ``thread_outputs`` methods say, for thread
    ids ``tid`` (an int array), which elements each thread touches: the same formulas
    as the CUDA source, in NumPy.
    """

    block_m: int = 128
    block_n: int = 128
    block_k: int = 8
    thread_m: int = 8
    thread_n: int = 8
    run: int = 4

    @property
    def threads_m(self) -> int:
        return self.block_m // self.thread_m

    @property
    def threads_n(self) -> int:
        return self.block_n // self.thread_n

    @property
    def threads(self) -> int:
        return self.threads_m * self.threads_n

    def a_slab_loads(self, tid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, k) inside the ``block_m x block_k`` slab of A, each ``(len(tid), run)``."""
        runs_per_row = self.block_k // self.run
        row = np.repeat((tid // runs_per_row)[:, None], self.run, axis=1)
        k = (tid % runs_per_row)[:, None] * self.run + np.arange(self.run)
        return row, k

    def b_slab_loads(self, tid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(k, col) inside the ``block_k x block_n`` slab of B, each ``(len(tid), run)``."""
        runs_per_row = self.block_n // self.run
        k = np.repeat((tid // runs_per_row)[:, None], self.run, axis=1)
        col = (tid % runs_per_row)[:, None] * self.run + np.arange(self.run)
        return k, col

    def thread_outputs(self, tid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) inside the block tile of C, each ``(len(tid), thread_m, thread_n)``.

        Register ``acc[i][j]`` of thread ``(ty, tx)`` holds row
        ``(i // run) * threads_m * run + ty * run + i % run`` and likewise the column.
        """
        tx, ty = tid % self.threads_n, tid // self.threads_n
        i, j = np.arange(self.thread_m), np.arange(self.thread_n)
        rows = (i // self.run) * self.threads_m * self.run + ty[:, None] * self.run + i % self.run
        cols = (j // self.run) * self.threads_n * self.run + tx[:, None] * self.run + j % self.run
        shape = (len(tid), self.thread_m, self.thread_n)
        return np.broadcast_to(rows[:, :, None], shape), np.broadcast_to(cols[:, None, :], shape)


GEMM_TILING = GemmTiling()


def gemm_launch(m: int, n: int, batch: int, tiling: GemmTiling = GEMM_TILING):
    """``(grid, block)`` for ``gemm_tiled``: one block per tile of C per batch entry.

    grid = (column tiles, row tiles, batch entries). grid.z is capped at 65535; the
    kernel then loops ``z += gridDim.z`` over the remaining batch entries.
    """
    row_tiles = math.ceil(m / tiling.block_m)
    col_tiles = math.ceil(n / tiling.block_n)
    if row_tiles > MAX_GRID_YZ or col_tiles > MAX_GRID_X:
        raise ValueError(
            f"matmul: a ({m}, {n}) result needs a grid of {col_tiles} x {row_tiles} tiles; "
            f"CUDA allows at most {MAX_GRID_X} x {MAX_GRID_YZ}. Split the matmul into "
            f"fewer than {MAX_GRID_YZ * tiling.block_m} rows."
        )
    return (col_tiles, row_tiles, min(batch, MAX_GRID_YZ)), (tiling.threads, 1, 1)


def elementwise_launch(total: int, threads: int = THREADS_PER_BLOCK):
    """``(grid, block)`` for a grid-stride kernel over ``total`` elements (grid may be 0)."""
    blocks = min(math.ceil(total / threads), MAX_ELEMENTWISE_BLOCKS)
    return (blocks, 1, 1), (threads, 1, 1)


REDUCTION_THREADS = 256  # REDUCTION_THREADS in depthwise.cu: a power of two, its shared-memory size


def reduction_launch(outputs: int):
    """``(grid, block)`` for a kernel that reduces with one block per output element.

    Block b computes output b: its ``REDUCTION_THREADS`` threads stride over the terms of
    the sum (thread t takes terms t, t + T, t + 2T, ...) and then add their partial sums
    in shared memory, halving the active threads at each step.
    """
    if outputs > MAX_GRID_X:
        raise ValueError(f"a reduction over {outputs} outputs needs more than CUDA's {MAX_GRID_X} blocks")
    return (outputs, 1, 1), (REDUCTION_THREADS, 1, 1)


ROW_THREADS = 256  # transformer.cu's ROW_THREADS: the threads of one row's block


def row_launch(rows: int, op: str):
    """``(grid, block)`` for the row kernels of ``transformer.cu``: one block of ``ROW_THREADS`` per row.

    grid.x may reach 2**31 - 1; more rows than that are refused with the op's name.
    """
    if rows > MAX_GRID_X:
        raise ValueError(f"{op}: {rows} rows need {rows} blocks; CUDA allows at most {MAX_GRID_X}. Split the batch.")
    return (rows, 1, 1), (ROW_THREADS, 1, 1)


# ----------------------------------------------------------------------------------------
# Index limits and im2col chunks of convolution and pooling
# ----------------------------------------------------------------------------------------

def check_int32_planes(op: str, **shapes) -> None:
    """Raise unless the kernels' 32-bit ``int`` arithmetic can index every named (N, C, H, W) shape.

    The kernels count planes, N * C, and index within one (H, W) plane with ``int``. The
    shapes have passed the contract's checks (``minift.contract.geometry``) already;
    this is the GPU's own limit.
    """
    for name, shape in shapes.items():
        n, c, h, w = shape
        if n * c > INT32_MAX or h * w > INT32_MAX:
            raise ValueError(
                f"{op}: {name} {tuple(shape)} is too large for the GPU kernels: N*C and H*W must be below 2**31"
            )


def check_int32_channels(op: str, shape) -> None:
    """Raise unless ``batch_norm.cu``'s 32-bit ``int`` sizes hold ``x (N, C, ...)`` viewed as (N, C, L).

    Its reductions count a channel's N * L values with ``int``; C and L are ``int`` too.
    The shape has passed the contract's checks; this is the GPU's own limit.
    """
    samples, channels, length = shape[0], shape[1], math.prod(shape[2:])
    if samples * length > INT32_MAX or channels > INT32_MAX:
        raise ValueError(
            f"{op}: x {tuple(shape)} is too large for the GPU kernels: N times the trailing sizes, and C, "
            f"must be below 2**31"
        )


def sample_chunks(samples: int, bytes_per_sample: int, budget: int):
    """``(start, stop)`` ranges that split ``samples`` into chunks whose im2col fits ``budget``.

    Every chunk holds as many samples as fit (at least one, even if that one does not).
    """
    size = max(1, budget // max(1, bytes_per_sample))
    return [(start, min(start + size, samples)) for start in range(0, samples, size)]


# ----------------------------------------------------------------------------------------
# strides and matmul batching
# ----------------------------------------------------------------------------------------

def element_strides(byte_strides, itemsize: int) -> tuple[int, ...]:
    """CuPy/NumPy strides (bytes) as strides in elements, which the kernels use."""
    if any(s % itemsize for s in byte_strides):
        raise ValueError(f"strides {tuple(byte_strides)} are not whole multiples of the item size {itemsize}")
    return tuple(s // itemsize for s in byte_strides)


def check_int32_matrix(op: str, m: int, k: int, n: int) -> None:
    """Raise unless the GEMM's 32-bit ``int`` sizes can hold M, K and N (the shapes were
    checked by the contract, ``minift.contract.geometry.matmul_geometry``)."""
    if max(m, n, k) > INT32_MAX:
        raise ValueError(f"{op}: M, K and N must be below 2**31, got {m}, {k}, {n}")


def broadcast_batch_strides(batch_shape, shape, strides) -> tuple[int, ...]:
    """An operand's strides over the full ``batch_shape``: 0 where it is broadcast.

    ``shape``/``strides`` are the operand's batch dimensions only (right-aligned with
    ``batch_shape``, as in numpy broadcasting).
    """
    missing = len(batch_shape) - len(shape)
    aligned = [0] * missing
    for size, stride in zip(shape, strides):
        aligned.append(0 if size == 1 else stride)
    return tuple(aligned)


def flat_batch_stride(batch_shape, strides) -> int | None:
    """The one stride ``s`` with ``offset(index) == s * flat_index(index)``, if there is one.

    The GEMM kernel finds batch entry ``z`` at ``z * batch_stride``; that works when the
    operand's batch dimensions (sizes 1 skipped) nest like a C-contiguous array's:
    each stride is the next one times the next size. Otherwise ``None`` (the host then
    copies the operand, broadcast, into a contiguous array).
    """
    dims = [(size, stride) for size, stride in zip(batch_shape, strides) if size != 1]
    for (_, outer), (inner_size, inner) in zip(dims, dims[1:]):
        if outer != inner * inner_size:
            return None
    return dims[-1][1] if dims else 0


# ----------------------------------------------------------------------------------------
# CUDA sources
# ----------------------------------------------------------------------------------------

_LOCAL_INCLUDE = re.compile(r'^#include "([\w.]+)"[ \t]*$', re.MULTILINE)


def cuda_source(filename: str) -> str:
    """The text of ``kernels/<filename>`` with its local ``#include "x.cuh"`` lines inlined.

    CuPy caches compiled modules by their source text, not by the headers they include;
    inlining makes an edit to a header recompile everything that uses it.
    """
    text = (KERNELS_DIR / filename).read_text()
    return _LOCAL_INCLUDE.sub(lambda match: cuda_source(match.group(1)), text)


def compile_options(dtype) -> tuple[str, ...]:
    """Compiler options for one dtype's build of the sources: ``-Dscalar_t=float`` or ``=double``."""
    return (f"-Dscalar_t={FLOAT_TYPES[np.dtype(dtype).name]}", "--std=c++17")
