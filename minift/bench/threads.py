"""``python -m minift.bench.threads``: the thread policy against fixed thread counts, in three conditions.

conv2d S2 forward + backward (``minift.bench.ROWS``) on 1 thread, 2 threads and minift's
policy (``minift.backend.threads``), the three taking turns so that they meet the same load,
each condition in a fresh interpreter: the machine as it is; pinned to one core; another
process busy on the last core. ``minift bench --threads 1,2,default`` shows the same for
every row of the benchmark.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from minift import backend
from minift.backend.threads import cores, policy, set_num_threads, tick
from minift.bench import ROWS


def conv_benchmark(rounds: int = 12, seconds: float = 0.5) -> str:
    """conv2d S2 fwd+bwd: median ms (max) on 1 thread, 2 threads and the policy, and what it chose.

    The three settings take turns, ``seconds`` each, for ``rounds`` rounds, so that they
    meet the same load (the policy keeps its state across its turns).
    """
    step = next(row for row in ROWS if "S2" in row.name).make_step()
    step()  # compiles
    settings = (1, 2, None)
    times = {threads: [] for threads in settings}
    for _ in range(rounds):
        for threads in settings:
            set_num_threads(threads)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                start = time.perf_counter()
                step()
                tick()
                times[threads].append(time.perf_counter() - start)
    cells = [f"{1e3 * statistics.median(t):6.1f} ({1e3 * max(t):5.0f})" for t in times.values()]
    chose = sorted({count for _, count in policy.history})
    return f"{backend.get_backend():5s} " + " | ".join(cells) + f"   chose {chose}, ended on {policy.chosen}"


def main() -> None:
    """Print conv2d S2 fwd+bwd timings on 1 thread, 2 threads and the policy, in three conditions.

    Each condition runs in a fresh interpreter: the machine as it is; pinned to one core
    (``taskset -c 0``); another process busy on the last core. Columns: median ms (max).
    """
    code = "import minift\nfrom minift.bench.threads import conv_benchmark as b\nprint(b())"
    last = max(os.sched_getaffinity(0))
    pin_first = lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # noqa: E731
    print(f"{cores()} cores, load average {os.getloadavg()[0]:.1f}; conv2d S2 fwd+bwd, median ms (max)")
    print(f"{'condition':28s} {'backend':5s} {'1 thread':>14s} | {'2 threads':>12s} | {'policy':>12s}")
    for label, preexec, busy in (
        ("as it is", None, False),
        ("pinned to one core", pin_first, False),
        (f"another process on core {last}", None, True),
    ):
        hog = None
        if busy:
            spin = f"import os; os.sched_setaffinity(0, {{{last}}})\nwhile True: pass"
            hog = subprocess.Popen([sys.executable, "-c", spin])
        try:
            result = subprocess.run([sys.executable, "-c", code], preexec_fn=preexec, capture_output=True,
                                    text=True, check=True)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
        print(f"{label:28s} {result.stdout.strip()}")


if __name__ == "__main__":
    main()
