"""The benchmark: one table, every backend, measured in one run (``minift bench``).

The table is a list of named rows. A ``Row`` is a workload -- a matmul, a convolution's
forward and backward passes, a pooling, or (added later as more rows) a whole training
step -- that knows how to build its minift step and, optionally, its PyTorch twin.
``run_benchmarks`` times every row on every implementation that is available:

- ``numpy``: the NumPy reference backend (``MINIFT_BACKEND=numpy``);
- ``numba``: the Numba backend, with the GEMM ``MINIFT_NUMBA_GEMM`` selects;
- ``numba blocked``: the Numba backend with its own blocked GEMM (rows that are a GEMM);
- ``torch``: PyTorch on the CPU, on the same thread counts.

Each implementation runs each row at every thread count of the sweep (``minift bench``:
1, 2 and ``default``, minift's policy of ``minift.backend.threads``; PyTorch's default is all
cores), taking turns call by call so that they meet the same load: minift's
implementations and counts all together, then PyTorch's counts. Each cell
is the median time of ``repeat`` calls after ``warmup`` calls (the first call compiles the
Numba kernels), their mean, the slowest call over the median, its GFLOP/s where the row
counts its floating-point operations, its speed relative to the ``numpy`` and ``torch``
cells of the same row and threads (medians: ``2.0`` = twice as fast, ``0.5`` = half as
fast), and, for the default, the best fixed count's mean over the default's.

``vs best`` compares means because a training run pays for every call, and the median
can pick a count that loses the run. Beside a busy process, two threads ran matmul 512 in
1.0 ms on most calls and 16 on some: one run's two-thread cell had the median 1.05 ms and
the mean 3.79 against one thread's 1.58 and 1.55 (the policy's default: 1.56 and 1.56);
in the next run the same cell's median was 16.0 ms. Compared by medians, the default
"lost" to two threads in one run of two (0.67); by means its ``vs best`` was 0.91 or more
on every row of twelve runs (idle, pinned to one core, beside a busy process; four each). The means are of the same few calls, so a cell with one slow call (max/med
above 3) is a noisy one either way.

Speed is measured here, never asserted by a test. Timings on a machine shared with other
work are noisy: the header reports the load, the CPU and the BLAS kernels.

To add a row, append to ``ROWS`` or to ``minift.bench.steps.STEP_ROWS`` (or pass ``rows=``):
``Row(name, flops, make_step, make_torch_step)``, where ``make_step()`` builds the data and returns a function of no
arguments that runs one step through ``minift`` (it runs under each backend in turn), and
``make_torch_step(torch)`` does the same with PyTorch.
"""

from __future__ import annotations

import os
import statistics
import textwrap
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from functools import partial

import numpy as np

from minift import backend, contract
from minift.backend import threads
from minift.backend.contended import ContendedChoice
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
    return statistics.median(measure_settings({None: (nullcontext, step)}, repeat, warmup)[None])


def measure_settings(settings: dict, repeat: int, warmup: int) -> dict:
    """Seconds of each of ``repeat`` calls under each setting, the settings taking turns.

    ``settings`` maps a name to ``(context, step)``: ``step`` runs inside ``context()``, a
    context manager that puts the setting in place (a backend, a thread count). Round after
    round, each setting runs one timed call, so that all meet the same load on a shared
    machine and their ratios hold even when the load changes. With more than one setting,
    an untimed call comes first after each switch: the previous setting's worker threads
    may still be awake (spinning OpenBLAS threads slowed the next setting's call 5x on a
    loaded machine), and the thread policy gets its look at the cores.
    """
    for context, step in settings.values():
        with context():
            for _ in range(warmup):
                step()
    times = {name: [] for name in settings}
    for _ in range(repeat):
        for name, (context, step) in settings.items():
            with context():
                if len(settings) > 1:
                    step()
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
    return times


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
    return torch


THREAD_SWEEP = (1, 2, None)  # ``minift bench``'s default: one thread, two, and the policy (None)

READING_GUIDE = (
    "How to read this: 'ms' is the median of the timed calls, 'mean' their mean (max/med: the slowest call over "
    "the median; above 3, the machine got in the way). 'threads' is both pools' count: 1, 2, or 'default', minift's policy "
    "(as many as there are free cores; PyTorch: its own default, all cores). The minift cells of a row take "
    "turns, then PyTorch's (an untimed call after each switch, then a timed one), so they meet the same load. "
    "'vs numpy' and 'vs torch' compare with the same row and threads "
    "(medians; 2.0 = twice as fast); 'vs best' is the lowest mean of a fixed thread count over the default's mean "
    "(1.00 = the default matched it; 0.80 = the default took 1.25x as long): a run pays for every call, and a "
    "count that is quick on most calls and stalls on some has the lower median and the higher mean."
)


def _thread_label(count) -> str:
    return "default" if count is None else str(count)


@contextmanager
def _minift_setting(select, count, measured: ContendedChoice):
    """Inside ``select()`` (a backend), with both pools at ``count`` threads (None: the
    policy), and ``measured`` the policy's measured counts for large kernels under
    contention: one per implementation, as a program running only it would keep."""
    with select():
        threads.set_num_threads(count)
        saved, threads.policy.contended = threads.policy.contended, measured
        try:
            yield
        finally:
            threads.policy.contended = saved


@contextmanager
def _torch_setting(torch, count):
    """PyTorch at ``count`` threads (None: its default, all cores)."""
    torch.set_num_threads(threads.cores() if count is None else count)
    yield


def run_benchmarks(rows: Sequence[Row] | None = None, repeat: int = 7, warmup: int = 2, print_table: bool = True,
                   thread_counts: Sequence[int | None] = (None,)):
    """Time every row on every available implementation and thread count; print one table; return its cells.

    ``thread_counts``: the thread counts to sweep, None for minift's policy (``minift.backend.threads``)
    and PyTorch's default. Returns a list of dicts with keys ``row``, ``implementation``, ``threads``
    ("1", "2", "default"), ``ms`` (median), ``mean_ms``, ``max_over_median``, ``gflops``, ``vs_numpy``,
    ``vs_torch`` (medians) and ``vs_best`` (means; None where not applicable).
    """
    rows = default_rows() if rows is None else rows
    columns = implementations()
    torch = _import_torch()
    load_before = _load()
    cells = []
    try:
        for row in rows:
            cells.extend(_row_cells(row, columns, torch, repeat, warmup, thread_counts))
    finally:
        threads.set_num_threads(None)
        if torch is not None:
            torch.set_num_threads(threads.cores())
    if print_table:
        print(_header(torch, load_before, _load()))
        print(format_table(cells))
    return cells


def _row_cells(row: Row, columns, torch, repeat: int, warmup: int, thread_counts) -> list[dict]:
    """The cells of one row: minift's implementations at every thread count, all taking turns
    call by call; then PyTorch's thread counts, taking turns among themselves.

    minift's implementations take turns with each other, not only across thread counts:
    timed one after the other, the NumPy and Numba backends' MLP step -- the same BLAS calls
    -- differed by 5-15 % in every run as the load drifted between them; taking turns, by
    1-3 %. PyTorch stays apart: its OpenMP threads spin on after each call, and with another
    process busy on one core that slowed the minift call after it 3x (matmul 512 on one
    thread: 4.9 against 1.6 ms).
    """
    settings = {}
    for name, select in columns.items():
        if name == "numba blocked" and not row.gemm:
            continue
        with select():
            step = row.make_step()
        measured = ContendedChoice()
        for count in thread_counts:
            settings[name, count] = (partial(_minift_setting, select, count, measured), step)
    times = measure_settings(settings, repeat, warmup)
    if torch is not None and row.make_torch_step is not None:
        step = row.make_torch_step(torch)
        settings = {("torch", count): (partial(_torch_setting, torch, count), step) for count in thread_counts}
        times.update(measure_settings(settings, repeat, warmup))
    median = {key: statistics.median(t) for key, t in times.items()}
    mean = {key: statistics.fmean(t) for key, t in times.items()}
    cells = []
    for (name, count), t in median.items():
        fixed = [mean[name, c] for c in thread_counts if c is not None]
        cells.append(
            {
                "row": row.name,
                "implementation": name,
                "threads": _thread_label(count),
                "ms": 1e3 * t,
                "mean_ms": 1e3 * mean[name, count],
                "max_over_median": max(times[name, count]) / t,
                "gflops": None if row.flops is None else row.flops / t / 1e9,
                "vs_numpy": median["numpy", count] / t if ("numpy", count) in median else None,
                "vs_torch": median["torch", count] / t if ("torch", count) in median else None,
                "vs_best": min(fixed) / mean[name, count] if count is None and fixed else None,
            }
        )
    return cells


def _machine() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), or what the platform module knows."""
    import platform

    try:
        with open("/proc/cpuinfo") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def _header(torch, load_before: float, load_after: float) -> str:
    lines = [
        f"minift bench: {_machine()}, {threads.cores()} cores, load average {load_before:.1f} before / "
        f"{load_after:.1f} after",
        f"threads: 'default' = minift's policy (both pools follow the free cores; it ended on "
        f"{threads.policy.chosen}); MINIFT_NUM_THREADS={os.environ.get('MINIFT_NUM_THREADS', 'unset')}",
    ]
    if backend.available_backends()["numba"][0]:
        from minift.kernels.numba import backend as numba_cpu

        import numba

        lines.append(
            f"numba: {numba.__version__}, GEMM {numba_cpu.gemm_implementation()} (matmul and conv2d), "
            f"{numba.threading_layer()} layer; BLAS and Numba threads take turns: {threads.pools_take_turns()}"
        )
    lines.append(f"BLAS: {_blas_description()}")
    lines.append(f"torch: {torch.__version__ if torch else 'not installed'}")
    lines.append(textwrap.fill(READING_GUIDE, 110))
    return "\n".join(lines)


def _blas_description() -> str:
    """NumPy's BLAS library, kernel family and threads (what the numpy rows run on)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (install threadpoolctl to see it)"
    found = [info for info in threadpool_info() if info.get("user_api") == "blas"]
    return "; ".join(
        f"{info['internal_api']} {info.get('version')}, {info.get('architecture')} kernels ({info['filepath'].split('/')[-1]})"
        for info in found
    ) or "none found"


def format_table(cells) -> str:
    """The cells as a fixed-width text table, one line per (row, implementation, threads)."""

    def number(value, digits):
        return f"{'-':>8}" if value is None else f"{value:8.{digits}f}"

    width = max([len("workload")] + [len(c["row"]) for c in cells])
    lines = [
        f"{'workload':<{width}}  {'implementation':<14} {'threads':>7} {'ms':>9} {'mean':>9} {'max/med':>7} {'GFLOP/s':>8} "
        f"{'vs numpy':>8} {'vs torch':>8} {'vs best':>8}"
    ]
    lines.append("-" * len(lines[0]))
    for cell in cells:
        lines.append(
            f"{cell['row']:<{width}}  {cell['implementation']:<14} {cell['threads']:>7} {cell['ms']:>9.2f} {cell['mean_ms']:>9.2f} "
            f"{cell['max_over_median']:>7.1f} {number(cell['gflops'], 1)} {number(cell['vs_numpy'], 2)} "
            f"{number(cell['vs_torch'], 2)} {number(cell['vs_best'], 2)}"
        )
    return "\n".join(lines)
