"""Memory a training step frees stays for the next step: glibc's malloc, told not to give it back.

A training step allocates its activations and gradients -- NumPy arrays of 0.1 to 47 MB for
MiniLM at batch 16 x 128 -- and frees them when it ends. glibc's ``malloc`` serves an array
above its *mmap threshold* with a fresh mapping, and hands the top of its heap back to the
operating system when more than its *trim threshold* is free there (128 KiB each, raised on
the fly up to 32 and 64 MiB). Either way the next step writes to pages the kernel must map
and zero first, 4 KiB at a time. Measured on the 2-core development machine, MiniLM's
training step (random weights, batch 16 x 128, float32, the Numba backend, a fresh process:
one warm-up step, then the mean of two steps, on one thread and then on two; two runs)::

                                                  page faults a step   ms a step
    glibc's defaults                              95,000 / 28,000      2,304-2,365 / 1,357-1,363
    mmap threshold 64 MiB, trim threshold 1 GiB      255 / 130         1,539-1,644 / 1,066-1,081

with the same peak resident size (1.19 GB). A trim threshold of 256 MiB (mmap threshold
32 MiB) left the 28,000: the step frees more than that at its end. So
``configure_allocator`` sets those two thresholds with ``mallopt``. The price: memory a
step freed stays in the process, so its resident size stays at its peak -- which the next
step needs again anyway, as PyTorch's CUDA allocator keeps freed GPU memory for the next step.

It applies only where the C library is glibc, and only when you have not tuned malloc
yourself (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``GLIBC_TUNABLES`` in the
environment: yours win); ``MINIFT_MALLOC=default`` keeps glibc's defaults.

``peak_rss_mb`` reports what a run held at its peak (the benchmarks' memory columns).
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
MMAP_THRESHOLD = 64 << 20  # arrays up to 64 MiB come from the heap and are reused
TRIM_THRESHOLD = 1 << 30  # the heap keeps up to 1 GiB of free memory at its top
YOURS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def wanted(environ=os.environ, libc_name: str | None = None) -> bool:
    """Whether minift should set malloc's thresholds here (see the module docstring)."""
    if environ.get("MINIFT_MALLOC", "").lower() == "default" or any(name in environ for name in YOURS):
        return False
    return (libc_name if libc_name is not None else platform.libc_ver()[0]) == "glibc"


def configure_allocator(environ=os.environ, libc=None) -> bool:
    """Set glibc's mmap and trim thresholds (``MMAP_THRESHOLD``, ``TRIM_THRESHOLD``) if
    ``wanted``; True if both were set. ``libc``: the C library (for tests), else this process's."""
    if not wanted(environ, "glibc" if libc is not None else None):
        return False
    try:
        libc = libc if libc is not None else ctypes.CDLL(None)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) & bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):  # no mallopt in this C library
        return False


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (``getrusage``: Linux reports KiB, macOS bytes)."""
    kilobytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kilobytes / 1024 if sys.platform != "darwin" else kilobytes / 2**20
