"""Host-side arithmetic for the CUDA kernels: launch geometry, shapes, strides, sources.

Everything the GPU backend (``cupy_gpu``) decides before a kernel runs lives here, in
plain Python that never imports CuPy, so it is tested on machines without a GPU:

* how many blocks and threads each kernel gets, and which elements each thread owns
  (the GEMM tiling is modelled in NumPy, so a test can check that the threads of a
  launch cover every output element exactly once);
* the shape, stride, padding and dilation arithmetic of convolution and pooling, with
  the errors that bad arguments raise;
* how broadcast batch dimensions of a matmul become one batch stride;
* which text the CUDA compiler sees for each ``.cu`` file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minift.backend import conv_output_size

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


# ----------------------------------------------------------------------------------------
# Argument checks and convolution / pooling geometry
# ----------------------------------------------------------------------------------------

def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def int_pair(op: str, name: str, value, minimum: int) -> tuple[int, int]:
    """``value`` as a ``(height, width)`` pair of ints, each at least ``minimum``.

    Raises TypeError when it is not a pair of ints, ValueError when an entry is too small
    (as the reference kernels do).
    """
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value)):
        raise TypeError(f"{op}: {name} must be a pair of ints (height, width), got {value!r}")
    if min(value) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum} in both entries, got {tuple(value)}")
    return int(value[0]), int(value[1])


def check_shape(op: str, name: str, shape, expected) -> None:
    """Raise unless ``shape == expected``."""
    if tuple(shape) != tuple(expected):
        raise ValueError(f"{op}: {name} must have shape {tuple(expected)}, got {tuple(shape)}")


def nchw_shape(op: str, name: str, shape) -> tuple[int, int, int, int]:
    """``shape`` as four ints (N, C, H, W), small enough for the kernels' 32-bit int arithmetic.

    The kernels index within one (H, W) plane, and count planes N * C, with ``int``.
    """
    shape = tuple(shape)
    if len(shape) != 4 or not all(_is_int(s) and s >= 0 for s in shape):
        raise ValueError(f"{op}: {name} must be 4-D (N, C, H, W) of non-negative ints, got shape {shape!r}")
    n, c, h, w = (int(s) for s in shape)
    if n * c > INT32_MAX or h * w > INT32_MAX:
        raise ValueError(f"{op}: {name} {shape} is too large: N*C and H*W must be below 2**31")
    return n, c, h, w


def _output_size(op, axis, size, kernel, stride, padding, dilation) -> int:
    out = conv_output_size(size, kernel, stride, padding, dilation)
    if out < 1:
        span = dilation * (kernel - 1) + 1
        raise ValueError(
            f"{op}: the window ({kernel} taps, dilation {dilation}: {span} wide) does not fit "
            f"in the {axis} of the input ({size}, padded to {size + 2 * padding}); "
            f"use a smaller kernel or dilation, or more padding"
        )
    return out


@dataclass(frozen=True)
class ConvGeometry:
    """Every size of one 2-D convolution: x (n, c, h, w), weight (o, c, kh, kw), y (n, o, ho, wo)."""

    n: int
    c: int
    h: int
    w: int
    o: int
    kh: int
    kw: int
    ho: int
    wo: int
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.o, self.ho, self.wo)

    @property
    def taps(self) -> int:
        """Rows of the im2col matrix: ``C * KH * KW``."""
        return self.c * self.kh * self.kw


def conv2d_geometry(op, x_shape, weight_shape, stride, padding, dilation) -> ConvGeometry:
    """Check a convolution's arguments and work out its output size (the contract's formula)."""
    n, c, h, w = nchw_shape(op, "the input", x_shape)
    o, wc, kh, kw = nchw_shape(op, "the weight", weight_shape)
    if kh < 1 or kw < 1:
        raise ValueError(f"{op}: the weight's kernel must be at least 1x1, got shape {tuple(weight_shape)}")
    if wc != c:
        raise ValueError(
            f"{op}: the weight {tuple(weight_shape)} expects {wc} input channels, "
            f"but the input {tuple(x_shape)} has {c}"
        )
    stride = int_pair(op, "stride", stride, 1)
    padding = int_pair(op, "padding", padding, 0)
    dilation = int_pair(op, "dilation", dilation, 1)
    ho = _output_size(op, "height", h, kh, stride[0], padding[0], dilation[0])
    wo = _output_size(op, "width", w, kw, stride[1], padding[1], dilation[1])
    return ConvGeometry(n, c, h, w, o, kh, kw, ho, wo, stride, padding, dilation)


@dataclass(frozen=True)
class PoolGeometry:
    """Every size of one 2-D pooling: x (n, c, h, w), window (kh, kw), y (n, c, ho, wo)."""

    n: int
    c: int
    h: int
    w: int
    kh: int
    kw: int
    ho: int
    wo: int
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.ho, self.wo)


def pool2d_geometry(op, x_shape, kernel_size, stride, padding, dilation=(1, 1)) -> PoolGeometry:
    """Check a pooling's arguments and size its output.

    Two rules: PyTorch's ``padding <= kernel_size // 2``, and (as the reference) no window
    may lie wholly in the padding -- possible only with dilation, e.g. kernel 2,
    dilation 2, padding 1 over a 1-pixel input -- since it would have no maximum.
    """
    n, c, h, w = nchw_shape(op, "the input", x_shape)
    kh, kw = int_pair(op, "kernel_size", kernel_size, 1)
    stride = int_pair(op, "stride", stride, 1)
    padding = int_pair(op, "padding", padding, 0)
    dilation = int_pair(op, "dilation", dilation, 1)
    if padding[0] > kh // 2 or padding[1] > kw // 2:
        raise ValueError(
            f"{op}: padding {padding} must be at most half the kernel_size {(kh, kw)} "
            f"(at most {(kh // 2, kw // 2)})"
        )
    ho = _output_size(op, "height", h, kh, stride[0], padding[0], dilation[0])
    wo = _output_size(op, "width", w, kw, stride[1], padding[1], dilation[1])
    for axis, size, out, k, s, p, d in zip(
        ("height", "width"), (h, w), (ho, wo), (kh, kw), stride, padding, dilation
    ):
        taps = np.arange(out)[:, None] * s - p + np.arange(k) * d  # (window, tap) -> input row
        if not ((taps >= 0) & (taps < size)).any(axis=1).all():
            raise ValueError(
                f"{op}: along the {axis}, a window with kernel {k}, dilation {d} and padding {p} "
                f"covers only padding of the {size}-long input; use less padding or dilation"
            )
    return PoolGeometry(n, c, h, w, kh, kw, ho, wo, stride, padding, dilation)


def sample_chunks(samples: int, bytes_per_sample: int, budget: int):
    """``(start, stop)`` ranges that split ``samples`` into chunks whose im2col fits ``budget``.

    Every chunk holds as many samples as fit (at least one, even if that one does not).
    """
    size = max(1, budget // max(1, bytes_per_sample))
    return [(start, min(start + size, samples)) for start in range(0, samples, size)]


# ----------------------------------------------------------------------------------------
# dtypes, strides and matmul batching
# ----------------------------------------------------------------------------------------

def common_float_dtype(op: str, **dtypes) -> np.dtype:
    """The one dtype, float32 or float64, of the named arrays (``None`` entries are skipped)."""
    named = {name: np.dtype(d) for name, d in dtypes.items() if d is not None}
    for name, dtype in named.items():
        if dtype.name not in FLOAT_TYPES:
            raise TypeError(f"{op}: {name} must be float32 or float64, got {dtype}")
    if len(set(named.values())) > 1:
        listed = ", ".join(f"{name} is {dtype}" for name, dtype in named.items())
        raise TypeError(f"{op}: all arrays must have one dtype, but {listed}; convert with .astype()")
    return next(iter(named.values()))


def element_strides(byte_strides, itemsize: int) -> tuple[int, ...]:
    """CuPy/NumPy strides (bytes) as strides in elements, which the kernels use."""
    if any(s % itemsize for s in byte_strides):
        raise ValueError(f"strides {tuple(byte_strides)} are not whole multiples of the item size {itemsize}")
    return tuple(s // itemsize for s in byte_strides)


def matmul_geometry(a_shape, b_shape) -> tuple[tuple[int, ...], int, int, int]:
    """``(batch_shape, M, K, N)`` of ``a (..., M, K) @ b (..., K, N)``, batch broadcast as numpy."""
    a_shape, b_shape = tuple(a_shape), tuple(b_shape)
    if len(a_shape) < 2 or len(b_shape) < 2:
        raise ValueError(f"matmul: both operands must be at least 2-D, got shapes {a_shape} and {b_shape}")
    (m, k), (k_b, n) = a_shape[-2:], b_shape[-2:]
    if k != k_b:
        raise ValueError(
            f"matmul: a {a_shape} has {k} columns but b {b_shape} has {k_b} rows; "
            f"the inner sizes must match"
        )
    if max(m, n, k) > INT32_MAX:
        raise ValueError(f"matmul: M, K and N must be below 2**31, got {m}, {k}, {n}")
    try:
        batch_shape = np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    except ValueError:
        raise ValueError(
            f"matmul: the batch dimensions {a_shape[:-2]} of a and {b_shape[:-2]} of b "
            f"do not broadcast"
        ) from None
    return tuple(batch_shape), m, k, n


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
