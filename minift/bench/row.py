"""``Row``: one workload of the benchmark table (``minift.bench`` times it, ``minift.bench.steps``
and ``minift.bench`` define the rows)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Step = Callable[[], object]


@dataclass(frozen=True)
class Row:
    """One workload of the table.

    ``flops``: floating-point operations of one step (None where it is not the measure);
    ``make_step()`` -> the minift step; ``make_torch_step(torch)`` -> the PyTorch step;
    ``gemm``: the row is a matrix product, also timed with the blocked Numba GEMM.
    """

    name: str
    flops: float | None
    make_step: Callable[[], Step]
    make_torch_step: Callable[[object], Step] | None = None
    gemm: bool = False
