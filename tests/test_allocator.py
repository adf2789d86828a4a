"""minift.backend.allocator: glibc's malloc keeps the memory a step frees (and leaves yours alone)."""

import os
import subprocess
import sys

import pytest

from minift.backend import allocator


class RecordingLibc:
    def __init__(self, answer=1):
        self.calls, self.answer = [], answer

    def mallopt(self, parameter, value):
        self.calls.append((parameter, value))
        return self.answer


def test_both_thresholds_are_set_on_glibc():
    libc = RecordingLibc()
    assert allocator.configure_allocator({}, libc)
    assert libc.calls == [(allocator.M_MMAP_THRESHOLD, allocator.MMAP_THRESHOLD),
                          (allocator.M_TRIM_THRESHOLD, allocator.TRIM_THRESHOLD)]


@pytest.mark.parametrize("environ", [{"MINIFT_MALLOC": "default"}, {"MALLOC_TRIM_THRESHOLD_": "4096"},
                                     {"MALLOC_MMAP_THRESHOLD_": "4096"}, {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}])
def test_your_own_malloc_settings_win(environ):
    libc = RecordingLibc()
    assert not allocator.configure_allocator(environ, libc)
    assert libc.calls == []


def test_only_glibc_is_tuned():
    assert allocator.wanted({}, "glibc") and not allocator.wanted({}, "musl") and not allocator.wanted({}, "")


def test_a_refused_setting_is_reported():
    assert not allocator.configure_allocator({}, RecordingLibc(answer=0))


FAULTS = """
import resource, sys
import minift, numpy as np
for _ in range(3):  # a "step": allocate 40 MB in 4 MB arrays, write them, free them all
    arrays = [np.ones(1 << 20, np.float32) for _ in range(10)]
    del arrays
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    arrays = [np.ones(1 << 20, np.float32) for _ in range(10)]
    del arrays
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not allocator.wanted({}), reason="malloc's thresholds are tuned only where the C library is glibc")
def test_steps_that_free_what_they_allocated_stop_page_faulting():
    def faults(**environ):
        mine = {name: value for name, value in os.environ.items() if name not in allocator.YOURS}
        run = subprocess.run([sys.executable, "-c", FAULTS], capture_output=True, text=True, check=True,
                             env={**mine, **environ})
        return int(run.stdout)

    with_defaults, with_minift = faults(MINIFT_MALLOC="default"), faults()
    assert with_defaults > 1000  # 5 steps x 40 MB of fresh 4 KiB pages: ~50,000 with glibc's defaults
    assert with_minift < with_defaults / 20
