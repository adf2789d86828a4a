"""How many threads minift's CPU kernels use: as many as there are *free* cores, never more.

The numba backend runs two pools of worker threads in one process: OpenBLAS's (NumPy's
matrix products, on both backends) and Numba's (the parallel kernels). Two things go wrong
with pools of threads on a small machine, and this module handles both.

**1. The two pools fight over the cores.** By default both keep their idle workers
*spinning* after each job: OpenBLAS for 2**28 CPU cycles (about 0.1 s), Numba's default
OpenMP layer for GNU OpenMP's spin count. When the two alternate -- a matmul, a
convolution, a matmul... -- every job starts while the other pool still spins on the same
cores, and waits for the scheduler's next time slice (4 ms), over and over. The fix,
applied by ``configure_thread_pools()`` (``import minift`` calls it before NumPy loads):

- ``NUMBA_THREADING_LAYER=workqueue``: Numba's own simple pool, whose idle threads sleep
  at once (no nested parallelism, which minift never uses);
- ``OPENBLAS_THREAD_TIMEOUT=4``: OpenBLAS workers sleep after 2**4 cycles.

Both are defaults: a value you set in the environment wins. If NumPy was imported before
minift (and ``OPENBLAS_THREAD_TIMEOUT`` was not set), OpenBLAS keeps spinning; Numba's
kernels then get only the cores BLAS's spinning workers leave free (``numba_thread_count``),
and ``pools_take_turns()`` is False.

**2. A busy machine stalls every parallel job.** A parallel kernel splits its work evenly
between its threads and waits at the end for the slowest. When another process holds one
of two cores -- a browser, another job, a neighbour on the same virtual-machine host --
one of our two threads waits for a time slice, and the other waits for it (OpenBLAS's
workers even spin while they wait, taking the very core the late one needs). Then two
threads are much *slower* than one. Measured on the 2-core development machine (AVX-512,
OpenBLAS 0.3.30 SkylakeX kernels, Numba 0.68), median ms of conv2d forward + backward and
of a 512 x 512 matmul, pools at 1 / 2 threads each::

                              matmul 512   conv S1   conv S2   conv S3
    machine at load 1.5        1.9 / 1.2    17 / 13   40 / 27   33 / 21
    another process on a core  1.8 / 32     12 / 77   25 / 41   20 / 41

(and a 2-thread matmul at 36 ms against 1.9 on one thread while other engineers' jobs
used about one core). No fixed thread count is right on both lines, and the second line
comes and goes with whatever else the machine runs.

**The policy**: the thread count follows the *free* cores. Every ``INTERVAL`` seconds at
most, at the next kernel call (``minift.backend`` calls ``tick()`` on each dispatch),
``CoreWatch`` reads how much CPU time the cores this process may run on spent on work
that is not this process's (``/proc/stat``, including the time a virtual machine's
host gave to other guests, "steal") and sets both pools (BLAS's for large products,
below) to ``free_cores = cores - others`` (rounded down, with ``TOLERANCE`` of a core forgiven, at
least 1). When another process takes a core, the next look sees it and both pools step
down to one thread; when it ends, they step back up. Why measure the other work instead of
our own step times: a step-time detector would have to know what a "step" is and keep a
baseline that moves whenever the workload does (a new layer, a new batch size), while the
CPU-time accounts measure the cause directly, cost one small file read per interval, and
need no warm-up. It starts at one thread, so a program never runs with more threads than
it has seen free cores; its first look, ``INTERVAL`` after ``import minift``, sets the count
to the free cores at once (there is no earlier choice to protect), later looks step up one
thread at a time.

Measured with ``python -m minift.bench.threads`` (conv2d S2 forward + backward, median ms
(max), the three settings taking turns), on the same machine shared with seven other
engineers' jobs (load average 17)::

                                   1 thread     2 threads     policy (chose)
    the machine as it was          45 (887)     2044 (3670)   36 (947), 1
    pinned to one core             28 (267)       28 (310)    28 (288), 1
    another process on core 1      29 (1072)    3322 (5031)   37 (706), 1

``minift bench --threads 1,2,default`` shows the same for every row.

**Matrix products: BLAS rests at one thread.** The count goes to Numba's pool as it is, but
OpenBLAS runs a product on more than one thread only inside ``kernel_threads`` -- the
contract wraps every CPU kernel that multiplies matrices in it -- and only when the
kernel's products come to ``PARALLEL_MIN_MULTIPLY_ADDS`` (2**25) multiply-adds or more
(M*K*N summed over the batch); between them, and around smaller ones, it rests at one
thread. Alone, a second BLAS thread pays from far smaller products (OpenBLAS splits from
64^3; 128 x 784 @ 784 x 256: 300 against 213 us). But in a training step the NumPy code
after each product (activations, the optimizer) then reads the half of the result the
other core wrote, from that core's cache: ``minift bench``'s MLP step (products of 128 x
784 x 256 and smaller) took 1.92-1.96 ms with two BLAS threads against 1.74-1.76 on one.
And a thread count set around each small product costs more than it looks: OpenBLAS's
``set_num_threads`` took 3 us in a loop, but dropping to one thread and back around each of
the MLP step's eight products made the step 1.87 ms against 1.77 with BLAS resting at one
(the same products, measured taking turns). Raising it around a large product costs 7-15 us
(a 512 x 512 matmul on two threads: 857 against 844 us). Inside a ``split``
(``minift.kernels.numba.parallel``) each share's products run on one BLAS thread, whatever
their size. A BLAS call minift does not make (your own NumPy code) runs on one thread.

**Large kernels under contention are measured.** Counting a busy core as taken is right
for most work, but a thread of ours that sleeps between kernels still gets a share of it,
and a long enough kernel may gain from it: while the policy leaves cores to other work,
each kernel of ``PARALLEL_MIN_MULTIPLY_ADDS`` or more that takes 30 ms or more runs on the
free-core count or on all cores, whichever its recent calls ran faster on, on average
(``minift.backend.contended``).

Choose a fixed count with ``MINIFT_NUM_THREADS=n`` or ``set_num_threads(n)`` (for
reproducible runs: float32 sums may come out in another order on another thread count);
``OPENBLAS_NUM_THREADS`` and ``NUMBA_NUM_THREADS`` still cap their pools. Without
``/proc/stat`` (not Linux) the policy keeps one thread per pool unless a count is chosen.
Other BLAS libraries than OpenBLAS are limited through threadpoolctl where it knows them.
"""

from __future__ import annotations

import math
import os
import sys
import time
from contextlib import contextmanager

from minift.backend.contended import ContendedChoice

POLICY = {"NUMBA_THREADING_LAYER": "workqueue", "OPENBLAS_THREAD_TIMEOUT": "4"}
LIBRARY_DEFAULTS = {"NUMBA_THREADING_LAYER": "default", "OPENBLAS_THREAD_TIMEOUT": "28"}  # for comparison

INTERVAL = 0.3  # seconds between two looks at the cores
PARALLEL_MIN_MULTIPLY_ADDS = 2**25  # products smaller than this stay on BLAS's resting thread (docstring)
TOLERANCE = 0.2  # cores' worth of other work that still leaves a core counted free

_applied: dict[str, bool] = {}


def configure_thread_pools() -> None:
    """Apply the environment settings above; later calls do nothing. Call before NumPy and Numba load."""
    if _applied:
        return
    _applied["blas_spins"] = "numpy" in sys.modules and "OPENBLAS_THREAD_TIMEOUT" not in os.environ
    for name, value in POLICY.items():
        os.environ.setdefault(name, value)
    config = sys.modules.get("numba.core.config")
    if config is not None and config.THREADING_LAYER == "default":
        # Numba is loaded but has not read the variable for its pool yet (it does on first launch).
        config.THREADING_LAYER = os.environ["NUMBA_THREADING_LAYER"]


def numba_threading_layer() -> str:
    """The layer Numba's pool runs on, or will start on at its first parallel kernel."""
    numba = sys.modules.get("numba")
    if numba is not None:
        try:
            return numba.threading_layer()
        except ValueError:  # the pool has not started yet: it will read the setting
            pass
    return os.environ.get("NUMBA_THREADING_LAYER", "default")


def pools_take_turns() -> bool:
    """True when idle OpenBLAS and Numba threads sleep at once, so the pools can alternate."""
    configure_thread_pools()
    return not _applied["blas_spins"] and numba_threading_layer() == "workqueue"


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _blas_libraries():
    """threadpoolctl's controllers of the BLAS libraries loaded now ([] without threadpoolctl)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return []
    return ThreadpoolController().select(user_api="blas").lib_controllers


def blas_thread_count() -> int:
    """Threads NumPy's BLAS runs a product on now: 1 at rest, more inside ``kernel_threads``
    (all cores if threadpoolctl cannot tell)."""
    return max((library.num_threads for library in _blas_libraries()), default=cores())


# --------------------------------------------------------------------------- free cores


class CoreWatch:
    """How many of this process's cores other work kept busy since the last look.

    Reads the per-CPU time counters of ``/proc/stat`` (busy = user, nice, system, irq,
    softirq and steal) for the CPUs in this process's affinity mask, and this process's
    own CPU time (``os.times``, all its threads); the difference, over the wall-clock time
    between two looks, is the other work in cores (1.0 = one core kept busy).
    """

    def __init__(self, path: str = "/proc/stat", clock=time.monotonic, own_seconds=None):
        self.path, self.clock = path, clock
        self.own_seconds = own_seconds or (lambda: sum(os.times()[:2]))
        self.cpus = {f"cpu{i}" for i in os.sched_getaffinity(0)} if hasattr(os, "sched_getaffinity") else set()
        self.ticks_per_second = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.last = self._sample()

    def available(self) -> bool:
        return self.last is not None

    def _sample(self):
        """(wall seconds, busy seconds of our CPUs, our own CPU seconds), or None where unreadable."""
        try:
            with open(self.path) as stat:
                lines = stat.read().splitlines()
        except OSError:
            return None
        busy = 0
        for line in lines:
            fields = line.split()
            if fields and fields[0] in self.cpus:
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
                busy += user + nice + system + irq + softirq + steal
        return self.clock(), busy / self.ticks_per_second, self.own_seconds()

    def others(self) -> float | None:
        """Cores' worth of other work since the last call (None where unknown); starts a new window."""
        now = self._sample()
        if now is None or self.last is None:
            return None
        (wall0, busy0, own0), (wall1, busy1, own1) = self.last, now
        self.last = now
        if wall1 - wall0 <= 0:
            return None
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / (wall1 - wall0))


def free_cores(total: int, others: float) -> int:
    """Threads to run when ``others`` cores' worth of other work shares ``total`` cores: at least 1."""
    return max(1, min(total, math.floor(total - others + TOLERANCE)))


class ThreadPolicy:
    """The thread count of both pools: fixed, or following the free cores (see the module docstring).

    The first look takes the free cores as they are; after it, steps down at once when a
    look finds fewer free cores, and steps up one thread after ``patience`` looks in a row
    found more. A step up that a step down follows within
    ``SETTLE`` seconds doubles the patience (up to ``MAX_PATIENCE``): the machine's other
    work comes and goes, and each probe costs slow steps while it lasts. A step up that
    lasts halves it again.
    """

    BASE_PATIENCE, MAX_PATIENCE, SETTLE = 3, 48, 3.0

    def __init__(self):
        chosen = os.environ.get("MINIFT_NUM_THREADS")
        self.fixed: int | None = _positive(chosen, "MINIFT_NUM_THREADS") if chosen else None
        self.chosen = 1  # the policy's own choice, kept while a fixed count overrides it
        self.threads = self.fixed or self.chosen
        self.watch = CoreWatch()  # the first look's window starts now, at import
        self.looked = False
        self.next_look = time.monotonic() + INTERVAL
        self.next_apply = 0.0
        self._blas = None  # threadpoolctl's controllers, once found
        self.contended = ContendedChoice()
        self.blas_cap: int | None = None
        self.patience, self.quiet_looks, self.raised_at = self.BASE_PATIENCE, 0, None
        self.history: list[tuple[float, int]] = []  # (monotonic time, threads) at each change

    def tick(self) -> None:
        """Look at the cores if ``INTERVAL`` has passed, and set the pools' threads to fit."""
        now = time.monotonic()
        if self.fixed is not None:  # re-applied now and then (Numba's count is per calling thread); no look
            if now >= self.next_apply:
                self.next_apply = now + INTERVAL
                self.apply(self.fixed)
            return
        if now < self.next_look:  # looks keep their own schedule, so that a fixed spell cannot postpone them
            return
        self.next_look = now + INTERVAL
        others = self.watch.others()
        if others is not None:
            self.chosen = self.decide(free_cores(cores(), others), now)
        self.apply(self.chosen)

    def decide(self, free: int, now: float) -> int:
        """The next thread count, given ``free`` cores at time ``now``."""
        if not self.looked:
            self.looked = True
            return free
        settled = self.raised_at is not None and now - self.raised_at > self.SETTLE
        if settled:
            self.patience, self.raised_at = max(self.BASE_PATIENCE, self.patience // 2), None
        if free < self.chosen:
            if self.raised_at is not None:  # the last probe up did not last
                self.patience, self.raised_at = min(self.MAX_PATIENCE, 2 * self.patience), None
            self.quiet_looks = 0
            return free
        self.quiet_looks = self.quiet_looks + 1 if free > self.chosen else 0
        if self.quiet_looks < self.patience:
            return self.chosen
        self.quiet_looks, self.raised_at = 0, now
        return self.chosen + 1

    def apply(self, threads: int) -> None:
        """Set the count to ``threads``: Numba's pool (for the calling thread) to it, and
        OpenBLAS's (process-wide) to its resting one thread (``kernel_threads`` raises it)."""
        if self.fixed is None and (threads != self.threads or not self.history):
            self.history.append((time.monotonic(), threads))
        for library in self.blas_libraries(refresh=True):
            library.set_num_threads(1)
        self.use(threads)

    def blas_libraries(self, refresh: bool = False):
        """threadpoolctl's controllers of the BLAS libraries loaded (NumPy's, and SciPy's if
        it is loaded), as found at the last ``apply`` (searching the loaded libraries takes
        0.4 ms: not for every product); notes their cap, the first time, before any is set."""
        if (self._blas is None or refresh) and "numpy" in sys.modules:
            self._blas = _blas_libraries()
            if self.blas_cap is None:  # OPENBLAS_NUM_THREADS, or all cores
                self.blas_cap = max((library.num_threads for library in self._blas), default=1)
        return self._blas or []

    def kernel_count(self, kernel: str, multiply_adds: int) -> tuple[int, bool]:
        """The count for one call of ``kernel`` (``multiply_adds`` in its products), and whether
        it is a measured choice: while the policy leaves cores to other work, a large kernel's
        count is measured between the free cores and all (``minift.backend.contended``)."""
        if self.fixed is None and multiply_adds >= PARALLEL_MIN_MULTIPLY_ADDS:  # cheap tests first: a hot path
            everything = cores()
            if self.threads < everything:
                return self.contended.choose(kernel, multiply_adds, self.threads, everything), True
        return self.threads, False

    def blas_count(self, count: int, multiply_adds: int) -> int:
        """BLAS threads for products of ``multiply_adds`` in all, in a call on ``count`` threads:
        ``count`` (capped) if they pay for it, else 1."""
        if multiply_adds < PARALLEL_MIN_MULTIPLY_ADDS:
            return 1
        self.blas_libraries()  # finds the cap, if no kernel has run yet
        return min(count, self.blas_cap or 1)

    def use(self, threads: int) -> None:
        """Run the calling thread's next kernels on ``threads`` (Numba's pool, ``get_num_threads``)
        without a new choice: for one kernel call."""
        self.threads = threads
        numba = sys.modules.get("numba")
        if numba is not None and hasattr(numba, "set_num_threads"):
            numba.set_num_threads(min(numba.config.NUMBA_NUM_THREADS, numba_thread_count(threads)))

    def set_fixed(self, threads: int | None) -> None:
        """Fix the count (or, with None, return to the policy's own choice, without a new look)."""
        self.fixed = None if threads is None else _positive(threads, "threads")
        self.apply(self.fixed or self.chosen)


def _positive(value, name: str) -> int:
    text = str(value).strip()
    count = int(text) if text.isdigit() else 0
    if count < 1 or isinstance(value, float):
        raise ValueError(f"{name} must be a whole number of threads, at least 1; got {value!r}")
    return count


policy = ThreadPolicy()


def tick() -> None:
    """Called by ``minift.backend`` before each kernel: re-fits the thread count every ``INTERVAL`` s."""
    policy.tick()


def set_num_threads(threads: int | None) -> None:
    """Fix the count at ``threads`` (Numba's pool, and BLAS's for large products), or, with
    None, let it follow the free cores again."""
    policy.set_fixed(threads)


def get_num_threads() -> int:
    """The pools' thread count now (the fixed count, or the policy's last choice)."""
    return policy.threads


@contextmanager
def kernel_threads(kernel: str, multiply_adds: int):
    """The threads for one call of ``kernel``, whose products come to ``multiply_adds``: the
    policy's count (measured between the free cores and all for a large kernel while other
    work holds cores), and NumPy's BLAS on it for a large kernel, on one thread otherwise
    (module docstring, "Matrix products"); at rest again after the block. The contract
    runs each CPU kernel that multiplies matrices in it."""
    policy.tick()
    resting = policy.threads
    count, measured = policy.kernel_count(kernel, multiply_adds)
    blas = policy.blas_count(count, multiply_adds)
    if count != resting:
        policy.use(count)
    libraries = policy.blas_libraries() if blas > 1 else []
    for library in libraries:
        library.set_num_threads(blas)
    start = time.perf_counter()
    try:
        yield
        if measured:
            policy.contended.record(kernel, multiply_adds, count, time.perf_counter() - start)
    finally:
        for library in libraries:
            library.set_num_threads(1)
        if count != resting:
            policy.use(resting)


def numba_thread_count(threads: int | None = None) -> int:
    """Threads for Numba's kernels: the policy's count, or, while BLAS's idle workers spin
    (NumPy imported before minift), only the cores those workers leave free after a product."""
    configure_thread_pools()
    threads = policy.threads if threads is None else threads
    if not _applied["blas_spins"]:
        return threads
    return max(1, threads - (min(threads, policy.blas_cap or threads) - 1))
