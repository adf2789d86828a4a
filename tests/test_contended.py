"""The measured thread count for large kernels under contention (``minift.backend.contended``),
and how ``threads.kernel_threads`` uses it. Call times are fed explicitly: nothing is timed."""

import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minift import contract
from minift.backend import threads
from minift.backend.contended import ContendedChoice

LARGE = threads.PARALLEL_MIN_MULTIPLY_ADDS


def run(choice, seconds_on, calls, kernel="matmul", size=LARGE):
    """``calls`` calls of one kernel, each taking ``seconds_on[count]``; the counts chosen."""
    chosen = []
    for _ in range(calls):
        count = choice.choose(kernel, size, 1, 2)
        choice.record(kernel, size, count, seconds_on[count])
        chosen.append(count)
    return chosen


def test_each_count_is_tried_once_then_the_faster_one_runs():
    assert run(ContendedChoice(), {1: 2.0, 2: 1.0}, 5) == [1, 2, 2, 2, 2]
    assert run(ContendedChoice(), {1: 1.0, 2: 2.0}, 5) == [1, 2, 1, 1, 1]


def test_the_other_count_is_tried_again_less_often_after_each_try_that_lost():
    choice = ContendedChoice()
    chosen = run(choice, {1: 1.0, 2: 3.0}, 1200)
    tries = [call for call, count in enumerate(chosen) if count == 2]
    gaps = list(np.diff(tries) - 1)  # calls on the best count between two tries
    settling = choice.RECENT - 1  # tries at the first gap until the record is full
    assert gaps[:settling] == [choice.FIRST_GAP] * settling
    assert all(b == min(2 * a, choice.MAX_GAP) for a, b in zip(gaps[settling - 1:], gaps[settling:]))
    assert gaps[-1] == choice.MAX_GAP


def test_a_try_that_wins_takes_over_and_the_old_best_is_tried_again_after_the_first_gap():
    choice = ContendedChoice()
    run(choice, {1: 1.0, 2: 3.0}, 100)  # two threads lost every try: the gap grew
    state = choice.kernels["matmul", LARGE.bit_length()]
    assert state.best == 1 and state.gap > choice.FIRST_GAP
    for _ in range(1000):  # the other work ends: two threads get faster
        run(choice, {1: 1.0, 2: 0.5}, 1)
        if state.best == 2:
            break
    assert state.best == 2 and state.gap == choice.FIRST_GAP
    assert run(choice, {1: 1.0, 2: 0.5}, choice.FIRST_GAP + 1) == [2] * (choice.FIRST_GAP - 1) + [1, 2]


@given(st.lists(st.sampled_from([(1, 0.5), (2, 0.7)]), min_size=1, max_size=60))
def test_a_choice_is_always_one_of_the_counts_offered_and_kernels_and_sizes_are_kept_apart(calls):
    choice = ContendedChoice()
    for kernel, size in (("matmul", LARGE), ("conv2d_forward", LARGE), ("matmul", 4 * LARGE)):
        times = dict(calls)
        for count in run(choice, {1: times.get(1, 1.0), 2: times.get(2, 1.0)}, len(calls), kernel, size):
            assert count in (1, 2)
    assert len(choice.kernels) == 3


@pytest.fixture
def contended(monkeypatch):
    """The policy as if it had found one of two cores taken by other work."""
    monkeypatch.setattr(threads, "cores", lambda: 2)
    monkeypatch.setattr(threads.policy, "contended", ContendedChoice())
    threads.set_num_threads(None)
    monkeypatch.setattr(threads.policy, "next_look", float("inf"))  # no look changes the count here
    monkeypatch.setattr(threads.policy, "blas_cap", 2)
    threads.policy.use(1)
    yield
    threads.set_num_threads(None)


def test_under_contention_a_large_kernel_tries_all_cores_and_a_small_one_stays_on_the_free_ones(contended):
    pytest.importorskip("threadpoolctl")
    seen = []
    for size in (LARGE - 1, LARGE, LARGE):
        with threads.kernel_threads("matmul", size):
            seen.append((threads.get_num_threads(), threads.blas_thread_count()))
            time.sleep(ContendedChoice.MIN_SECONDS)  # a kernel long enough to be worth a try
        assert (threads.get_num_threads(), threads.blas_thread_count()) == (1, 1)  # at rest after each
    assert seen == [(1, 1), (1, 1), (2, 2)]  # small: free cores; large: free cores first, then all


def test_a_fixed_count_is_never_second_guessed(contended):
    threads.set_num_threads(1)
    for _ in range(3):
        with threads.kernel_threads("matmul", LARGE):
            assert threads.get_num_threads() == 1
    assert threads.policy.contended.kernels == {}


def test_a_kernel_that_fails_is_not_measured_and_leaves_the_count_at_rest(contended):
    a = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError):
        contract.matmul(a, a)  # fails its checks before any kernel runs
    with pytest.raises(RuntimeError):
        with threads.kernel_threads("matmul", LARGE):
            raise RuntimeError("the kernel failed")
    state = threads.policy.contended.kernels["matmul", LARGE.bit_length()]
    assert all(len(times) == 0 for times in state.times.values())
    assert threads.get_num_threads() == 1


def test_a_kernel_too_short_for_a_try_to_pay_stays_on_the_free_cores():
    choice = ContendedChoice()
    short = choice.MIN_SECONDS / 2
    assert run(choice, {1: short, 2: short / 10}, 50) == [1] * 50
