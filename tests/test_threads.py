"""The thread policy of ``minift.backend.threads``: free cores, the core watch, stepping down and up.

No timing is asserted here: the watch reads a fake ``/proc/stat`` on a fake clock, and the policy's
decisions are fed explicit times.
"""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minift import contract
from minift.backend import threads
from minift.bench.threads import conv_benchmark


@given(st.integers(1, 64), st.floats(0, 64), st.floats(0, 64))
def test_free_cores_is_at_least_one_at_most_all_and_falls_as_other_work_grows(total, others, more):
    free = threads.free_cores(total, others)
    assert 1 <= free <= total
    assert threads.free_cores(total, others + more) <= free


def test_free_cores_on_two_cores():
    assert threads.free_cores(2, 0.0) == 2
    assert threads.free_cores(2, threads.TOLERANCE / 2) == 2  # a daemon's wake-ups leave the core free
    assert threads.free_cores(2, 0.5) == 1
    assert threads.free_cores(2, 1.0) == 1  # another process on one core
    assert threads.free_cores(2, 2.0) == 1  # never zero


def fake_stat(path, busy_ticks, idle_ticks):
    """A /proc/stat with cpu0 .. cpuN: user, nice, system, idle, iowait, irq, softirq, steal."""
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    for cpu, (busy, idle) in enumerate(zip(busy_ticks, idle_ticks)):
        lines.append(f"cpu{cpu} {busy // 2} 0 {busy - busy // 2 - 1} {idle} 0 0 0 1 0 0")
    path.write_text("\n".join(lines) + "\n")


def test_core_watch_counts_other_work_on_our_cores_only(tmp_path, monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    stat, now, own = tmp_path / "stat", [100.0], [5.0]
    fake_stat(stat, [1000, 1000, 1000], [0, 0, 0])
    watch = threads.CoreWatch(str(stat), clock=lambda: now[0], own_seconds=lambda: own[0])
    watch.ticks_per_second = 100
    # 2 s later: cpu0 was busy 2 s, cpu1 1 s (cpu2 is not ours); this process used 1.5 s of CPU.
    now[0], own[0] = 102.0, 6.5
    fake_stat(stat, [1200, 1100, 1200], [0, 100, 0])
    assert watch.others() == pytest.approx((3.0 - 1.5) / 2.0)
    now[0] += 1.0  # a quiet second: only this process ran
    own[0] += 1.0
    fake_stat(stat, [1250, 1150, 1200], [50, 150, 0])
    assert watch.others() == pytest.approx(0.0)


def test_core_watch_without_proc_stat_knows_nothing(tmp_path):
    watch = threads.CoreWatch(str(tmp_path / "missing"))
    assert not watch.available()
    assert watch.others() is None


def decisions(policy, free_by_look):
    """The thread counts the policy chooses, one look every INTERVAL seconds."""
    chosen = []
    for look, free in enumerate(free_by_look):
        policy.chosen = policy.decide(free, look * threads.INTERVAL)
        chosen.append(policy.chosen)
    return chosen


@pytest.mark.parametrize("free", [1, 2, 3])
def test_the_first_look_takes_the_free_cores_as_they_are(free):
    policy = threads.ThreadPolicy()
    assert policy.threads in (1, policy.fixed)  # before any look: one thread (or a fixed count)
    assert decisions(policy, [free]) == [free]


def test_policy_steps_down_at_once_and_up_after_patience():
    policy = threads.ThreadPolicy()
    patience = policy.BASE_PATIENCE
    chosen = decisions(policy, [1] + [2] * patience + [1] + [2] * patience)[1:]  # the first look: one core free
    assert chosen[:patience - 1] == [1] * (patience - 1)  # waits
    assert chosen[patience - 1] == 2  # steps up at the `patience`-th free look in a row
    assert chosen[patience] == 1  # steps down at the first busy look
    # that probe did not last: twice the patience before the next one
    assert policy.patience == 2 * patience
    assert 2 not in chosen[patience + 1:]


def test_policy_patience_returns_after_a_probe_that_lasts():
    policy = threads.ThreadPolicy()
    policy.patience = 4 * policy.BASE_PATIENCE
    looks_to_settle = int(policy.SETTLE / threads.INTERVAL) + 2
    chosen = decisions(policy, [1] + [2] * (policy.patience + looks_to_settle))
    assert chosen[-1] == 2
    assert policy.patience == 2 * policy.BASE_PATIENCE


def test_policy_patience_is_bounded():
    policy = threads.ThreadPolicy()
    for _ in range(20):  # every probe up fails
        decisions(policy, [2] * policy.patience + [1])
    assert policy.patience == policy.MAX_PATIENCE


@pytest.fixture
def restore_policy():
    yield
    threads.set_num_threads(None)


def test_set_num_threads_sets_numba_to_the_count_and_blas_to_it_for_large_products_only(restore_policy):
    numba = pytest.importorskip("numba")
    pytest.importorskip("threadpoolctl")
    large = threads.PARALLEL_MIN_MULTIPLY_ADDS
    threads.set_num_threads(1)
    with threads.kernel_threads("matmul", large):
        assert (threads.get_num_threads(), threads.blas_thread_count(), numba.get_num_threads()) == (1, 1, 1)
    if threads.cores() >= 2 and numba.config.NUMBA_NUM_THREADS >= 2 and threads.pools_take_turns():
        threads.set_num_threads(2)
        assert (threads.get_num_threads(), threads.blas_thread_count(), numba.get_num_threads()) == (2, 1, 2)
        with threads.kernel_threads("matmul", large - 1):
            assert threads.blas_thread_count() == 1
        with threads.kernel_threads("matmul", large):
            assert threads.blas_thread_count() == 2
        assert threads.blas_thread_count() == 1  # back at rest


@pytest.mark.parametrize("backend_name", ["numpy", "numba"])
def test_a_kernel_runs_its_products_on_one_blas_thread_when_small_and_on_the_count_when_large(
        backend_name, restore_policy, monkeypatch):
    """Through the contract, on each CPU backend: the size summed over a stack of products decides."""
    from minift import backend

    pytest.importorskip("threadpoolctl")
    if not backend.available_backends()[backend_name][0]:
        pytest.skip(f"the {backend_name} backend is not installed")
    seen, matmul = [], np.matmul

    def counting_matmul(*args, **kwargs):
        seen.append(threads.blas_thread_count())
        return matmul(*args, **kwargs)

    monkeypatch.setattr(np, "matmul", counting_matmul)
    threads.set_num_threads(2)
    if threads.policy.blas_cap < 2:
        pytest.skip("OpenBLAS is capped at one thread here (OPENBLAS_NUM_THREADS=1)")
    side = round(threads.PARALLEL_MIN_MULTIPLY_ADDS ** (1 / 3))
    with backend.use_backend(backend_name):
        for n in (side - 1, side + 1):
            a = np.ones((n, n), np.float32)
            assert np.array_equal(contract.matmul(a, a), np.full((n, n), n, np.float32))
        assert threads.blas_thread_count() == 1  # back at rest after the large one
    assert seen == [1, 2]


@pytest.mark.parametrize("bad", [0, -1, "two", 1.5])
def test_a_bad_thread_count_is_refused_and_changes_nothing(bad, restore_policy):
    threads.set_num_threads(1)
    with pytest.raises(ValueError, match="at least 1"):
        threads.set_num_threads(bad)
    assert threads.policy.fixed == 1


def test_each_kernel_call_lets_the_policy_look(restore_policy):
    threads.set_num_threads(None)
    threads.policy.next_look = 0.0
    contract.matmul(np.ones((2, 2)), np.ones((2, 2)))
    assert threads.policy.next_look > 0.0


def test_a_fixed_spell_does_not_postpone_the_policys_next_look(restore_policy):
    """minift bench alternates fixed counts with the policy call by call: the looks must still come."""
    threads.set_num_threads(None)
    threads.policy.next_look = 0.0
    threads.set_num_threads(1)
    contract.matmul(np.ones((2, 2)), np.ones((2, 2)))  # a kernel call while fixed
    assert threads.policy.next_look == 0.0
    threads.set_num_threads(None)
    contract.matmul(np.ones((2, 2)), np.ones((2, 2)))
    assert threads.policy.next_look > 0.0


def test_the_thread_benchmark_times_each_setting_and_names_what_the_policy_chose(restore_policy):
    """``python -m minift.bench.threads``' measurement, shortened: three timed cells, then the counts."""
    line = conv_benchmark(rounds=1, seconds=0.01)
    cells = re.findall(r"(\d+\.\d) \(\s*(\d+)\)", line)
    assert len(cells) == 3, line
    assert all(float(median) <= float(slowest) + 0.5 for median, slowest in cells), line
    chose = re.search(r"chose \[([\d, ]+)\], ended on (\d+)", line)
    assert chose, line
    assert all(1 <= int(count) <= threads.cores() for count in chose.group(1).split(", ")), line
    assert threads.policy.fixed is None  # the benchmark leaves the policy in charge
