"""Thread counts for large kernels while other work holds some of the cores: measured, not assumed.

``minift.backend.threads`` sets its count to the *free* cores: with another process busy on
one of two cores, one thread. For most work that is right -- a parallel job that splits
its work evenly waits for its thread on the busy core -- but not for all of it. The
scheduler shares the busy core between the other process and a thread of ours that sleeps
between jobs, and gives a thread just woken its turn soon, so a long kernel may still
finish sooner on two threads. Measured with another process busy on core 1 of the 2-core
development machine (``minift bench``, median ms on one / two threads): the blocked Numba
GEMM at 2048 280-289 / 235-238, every call alike; matmul 1024 11.1 / 9.7, but per call two
threads ran 9.6 or 13.7 by turns after first calls of 24-28, one thread 11.0 every call;
matmul 512 1.5 / 16 in one run and 1.5 / 1.0 (max 15x the median) in the next; conv2d S2,
split by images, 11.8 / 12.1. No rule on sizes fits all of these, so the count is measured.

``ContendedChoice`` keeps, per kernel and size class (the bit length of its multiply-adds),
the last ``RECENT`` call times on each candidate count -- the free cores, and all cores --
and runs the candidate whose mean is lower: the mean, not the median, as a training run
pays every call (two threads have the lower median and the higher mean on matmul 512 and
1024 above). It tries the other count again now and then (the machine's other work comes
and goes): every ``FIRST_GAP`` calls until it has ``RECENT`` calls on record (one unlucky
call decides nothing), then twice as many calls after each try that lost, up to
``MAX_GAP``, and back to ``FIRST_GAP`` when a try wins.

A try that goes wrong costs a few of the scheduler's time slices (4 ms each) whatever the
kernel's size -- matmul 512 and 1024 on two threads both took about 15 ms more on their bad
calls -- so only a kernel that takes ``MIN_SECONDS`` (30 ms) or more on the free cores is
tried on more: then a bad try costs at most about half a call. (Tried on every kernel of
2**25 multiply-adds or more, ``minift bench``'s blocked GEMM at 512, 4 ms a call, had a
default call 3.2x its median.) With it, beside the busy process, the blocked GEMM at 2048
ran 235-242 ms a call at the default (278 before: one thread).
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field


@dataclass
class _Kernel:
    """What is known of one kernel and size class: recent seconds per count, and when to try again."""

    times: dict[int, deque] = field(default_factory=dict)
    best: int | None = None  # the count with the lower mean, as of the last choice
    calls: int = 0  # calls on the best count since the last try
    gap: int = 0


class ContendedChoice:
    """The thread count for each large kernel call while other work holds cores (module docstring)."""

    RECENT, FIRST_GAP, MAX_GAP, MIN_SECONDS = 3, 4, 256, 0.03

    def __init__(self):
        self.kernels: dict[tuple[str, int], _Kernel] = {}

    def choose(self, kernel: str, multiply_adds: int, free: int, everything: int) -> int:
        """The count to run this call of ``kernel`` on: ``free`` (the free cores) or
        ``everything`` (all cores); then call ``record`` with what it took."""
        state = self.kernels.setdefault((kernel, multiply_adds.bit_length()), _Kernel(gap=self.FIRST_GAP))
        for count in (free, everything):
            state.times.setdefault(count, deque(maxlen=self.RECENT))
        if not state.times[free]:
            return free
        if statistics.fmean(state.times[free]) < self.MIN_SECONDS:
            return free  # too short for a try to pay (module docstring)
        if not state.times[everything]:
            return everything
        state.best = min((free, everything), key=lambda count: statistics.fmean(state.times[count]))
        state.calls += 1
        if state.calls <= state.gap:
            return state.best
        state.calls = 0
        return everything if state.best == free else free  # a try of the other count

    def record(self, kernel: str, multiply_adds: int, count: int, seconds: float) -> None:
        """The call ``choose`` gave ``count`` took ``seconds``; a call off the best count was a try."""
        state = self.kernels[kernel, multiply_adds.bit_length()]
        state.times[count].append(seconds)
        if state.best is None or count == state.best:
            return
        if statistics.fmean(state.times[count]) < statistics.fmean(state.times[state.best]):
            state.gap = self.FIRST_GAP  # the try won: the next choice takes it
        elif len(state.times[count]) == self.RECENT:  # lost on a full record, not on one unlucky call
            state.gap = min(self.MAX_GAP, 2 * state.gap)
