"""The benchmark: one table, every backend, measured in one run (``minift bench``).

The table is a list of named rows. A ``Row`` is a workload -- a matmul, a convolution's
forward and backward passes, a pooling, or (added later as more rows) a whole training
step -- that knows how to build its minift step and, optionally, its PyTorch twin.
``run_benchmarks`` times every row on every implementation that is available:

- ``numpy``: the NumPy reference backend (``MINIFT_BACKEND=numpy``);
- ``numba``: the Numba backend, with the GEMM ``MINIFT_NUMBA_GEMM`` selects;
- ``numba blocked``: the Numba backend with its own blocked GEMM (rows that are a GEMM);
- ``torch``: PyTorch on the CPU, with as many threads as minift's pools use.

Each cell is the median time of ``repeat`` calls after ``warmup`` calls (the first call
compiles the Numba kernels), its GFLOP/s where the row counts its floating-point
operations, and its speed relative to the ``numpy`` and ``torch`` cells of the same row
(``2.0`` = twice as fast, ``0.5`` = half as fast). Speed is measured here, never asserted by
a test. Timings on a machine shared with other work are noisy: the header reports the load.

To add a row, append to ``ROWS`` or to ``minift.bench.steps.STEP_ROWS`` (or pass ``rows=``):
``Row(name, flops, make_step, make_torch_step)``, where ``make_step()`` builds the data and returns a function of no
arguments that runs one step through ``minift`` (it runs under each backend in turn), and
``make_torch_step(torch)`` does the same with PyTorch.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import numpy as np

from minift import backend, contract
from minift.backend import threads
from minift.bench.row import Row, Step
from minift.contract.geometry import conv_output_size


# --------------------------------------------------------------------------- the rows

def _random(*shape):
    return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)


def matmul_row(n: int) -> Row:
    """An (n x n) @ (n x n) float32 product: 2 n^3 flops."""

    def make_step():
        a, b = _random(n, n), _random(n, n)
        return lambda: contract.matmul(a, b)

    def make_torch_step(torch):
        a, b = torch.from_numpy(_random(n, n)), torch.from_numpy(_random(n, n))
        return lambda: torch.matmul(a, b)

    return Row(f"matmul {n}", 2.0 * n**3, make_step, make_torch_step, gemm=True)


def conv_row(label: str, n: int, c: int, size: int, o: int, kernel: int = 3, padding: int = 1, groups: int = 1) -> Row:
    """conv2d forward + backward_input + backward_weight, stride 1: 3 x 2*N*O*Ho*Wo*(C/groups)*KH*KW flops."""
    x_shape, w_shape = (n, c, size, size), (o, c // groups, kernel, kernel)
    geometry = ((1, 1), (padding, padding), (1, 1), groups)
    out = conv_output_size(size, kernel, 1, padding, 1)
    flops = 3 * 2.0 * n * o * out * out * (c // groups) * kernel * kernel

    def make_step():
        x, w, grad_y = _random(*x_shape), _random(*w_shape), _random(n, o, out, out)

        def step():
            contract.conv2d_forward(x, w, None, *geometry)
            contract.conv2d_backward_input(grad_y, w, x_shape, *geometry)
            contract.conv2d_backward_weight(grad_y, x, w_shape, *geometry)

        return step

    def make_torch_step(torch):
        x = torch.from_numpy(_random(*x_shape)).requires_grad_()
        w = torch.from_numpy(_random(*w_shape)).requires_grad_()
        grad_y = torch.from_numpy(_random(n, o, out, out))

        def step():
            y = torch.nn.functional.conv2d(x, w, None, 1, padding, 1, groups)
            torch.autograd.grad(y, (x, w), grad_y)

        return step

    grouping = "" if groups == 1 else f", groups={groups}"
    name = f"conv2d {label} ({n}x{c}x{size}x{size} -> {o}{grouping}) fwd+bwd"
    return Row(name, flops, make_step, make_torch_step)


def max_pool_row(n: int, c: int, size: int) -> Row:
    """2x2 max pooling, stride 2, forward + backward (memory-bound: no flop count)."""
    shape = (n, c, size, size)
    pool = ((2, 2), (2, 2), (0, 0), (1, 1))

    def make_step():
        x = _random(*shape)
        grad_y = _random(n, c, size // 2, size // 2)

        def step():
            _, indices = contract.max_pool2d_forward(x, *pool)
            contract.max_pool2d_backward(grad_y, indices, shape)

        return step

    def make_torch_step(torch):
        x = torch.from_numpy(_random(*shape)).requires_grad_()
        grad_y = torch.from_numpy(_random(n, c, size // 2, size // 2))

        def step():
            y = torch.nn.functional.max_pool2d(x, 2, 2)
            torch.autograd.grad(y, x, grad_y)

        return step

    return Row(f"max_pool2d 2x2 ({n}x{c}x{size}x{size}) fwd+bwd", None, make_step, make_torch_step)


ROWS: list[Row] = [
    matmul_row(512),
    matmul_row(1024),
    matmul_row(2048),
    conv_row("S1", 64, 3, 32, 32),
    conv_row("S2", 64, 32, 16, 64),
    conv_row("S3", 64, 64, 8, 128),
    conv_row("depthwise 3x3", 64, 96, 28, 96, groups=96),
    max_pool_row(64, 32, 32),
]


def default_rows() -> list[Row]:
    """The kernel rows above, then the whole training steps of ``minift.bench.steps``."""
    from minift.bench.steps import STEP_ROWS  # imports minift.nn and minift.optim

    return [*ROWS, *STEP_ROWS]


# --------------------------------------------------------------------------- the runner

def _load() -> float:
    """The 1-minute load average (NaN where the OS has none): above the core count, timings suffer."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def measure(step: Step, repeat: int, warmup: int) -> float:
    """Median seconds of ``repeat`` calls of ``step``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@contextmanager
def _environment(name: str, value: str):
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            del os.environ[name]
        else:
            os.environ[name] = saved


@contextmanager
def _numba_blocked_gemm():
    with backend.use_backend("numba"), _environment("MINIFT_NUMBA_GEMM", "blocked"):
        yield


def implementations() -> dict[str, Callable[[], object]]:
    """Column name -> the context in which a row's minift step runs (torch is handled apart)."""
    columns = {"numpy": lambda: backend.use_backend("numpy")}
    if backend.available_backends()["numba"][0]:
        columns["numba"] = lambda: backend.use_backend("numba")
        columns["numba blocked"] = _numba_blocked_gemm
    return columns


def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads.cores())
    return torch


def run_benchmarks(rows: Sequence[Row] | None = None, repeat: int = 7, warmup: int = 2, print_table: bool = True):
    """Time every row on every available implementation; print one table and return its cells.

    Returns a list of dicts with keys ``row``, ``implementation``, ``ms``, ``gflops``,
    ``vs_numpy`` and ``vs_torch`` (None where not applicable).
    """
    rows = default_rows() if rows is None else rows
    columns = implementations()
    torch = _import_torch()
    load_before = _load()
    cells = []
    for row in rows:
        seconds = {}
        for name, context in columns.items():
            if name == "numba blocked" and not row.gemm:
                continue
            with context():
                seconds[name] = measure(row.make_step(), repeat, warmup)
        if torch is not None and row.make_torch_step is not None:
            seconds["torch"] = measure(row.make_torch_step(torch), repeat, warmup)
        for name, t in seconds.items():
            cells.append(
                {
                    "row": row.name,
                    "implementation": name,
                    "ms": 1e3 * t,
                    "gflops": None if row.flops is None else row.flops / t / 1e9,
                    "vs_numpy": seconds["numpy"] / t if "numpy" in seconds else None,
                    "vs_torch": seconds["torch"] / t if "torch" in seconds else None,
                }
            )
    if print_table:
        print(_header(torch, load_before, _load()))
        print(format_table(cells))
    return cells


def _header(torch, load_before: float, load_after: float) -> str:
    lines = [f"minift bench: {threads.cores()} cores, load average {load_before:.1f} before / {load_after:.1f} after"]
    if backend.available_backends()["numba"][0]:
        from minift.kernels.numba import backend as numba_cpu

        import numba

        lines.append(
            f"numba: GEMM {numba_cpu.gemm_implementation()} (matmul and conv2d), {numba.get_num_threads()} threads "
            f"({numba.threading_layer()}); BLAS and Numba threads take turns: {threads.pools_take_turns()}"
        )
    lines.append(f"BLAS: {_blas_description()}")
    lines.append(f"torch: {f'{torch.__version__}, {torch.get_num_threads()} threads' if torch else 'not installed'}")
    return "\n".join(lines)


def _blas_description() -> str:
    """NumPy's BLAS library, kernel family and threads (what the numpy rows run on)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (install threadpoolctl to see it)"
    found = [info for info in threadpool_info() if info.get("user_api") == "blas"]
    return "; ".join(
        f"{info['internal_api']} {info.get('version')}, {info.get('architecture')} kernels, "
        f"{info['num_threads']} threads"
        for info in found
    ) or "none found"


def format_table(cells) -> str:
    """The cells as a fixed-width text table, one line per (row, implementation)."""

    def number(value, digits):
        return f"{'-':>8}" if value is None else f"{value:8.{digits}f}"

    width = max([len("workload")] + [len(c["row"]) for c in cells])
    lines = [f"{'workload':<{width}}  {'implementation':<14} {'ms':>9} {'GFLOP/s':>8} {'vs numpy':>8} {'vs torch':>8}"]
    lines.append("-" * len(lines[0]))
    for cell in cells:
        lines.append(
            f"{cell['row']:<{width}}  {cell['implementation']:<14} {cell['ms']:>9.2f} "
            f"{number(cell['gflops'], 1)} {number(cell['vs_numpy'], 2)} {number(cell['vs_torch'], 2)}"
        )
    return "\n".join(lines)

