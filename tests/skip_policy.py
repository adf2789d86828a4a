"""Which skips CI accepts: the README's promise is that in CI only the GPU cases skip.

``.ci/run`` installs every optional dataset, weight file and PyTorch, so on a CI machine
(``CI`` set to anything but ``0`` / ``false``) a test that skips for any reason other than
one of ``GPU_REASONS`` fails the run (``tests/conftest.py`` checks every skip against this
list). To add a reason, it must be a GPU reason and the README's list of skips must say so.
"""

from __future__ import annotations

import os
import re

GPU_REASONS = (
    r"backend 'cupy' is not available",  # the backend fixture: no CuPy or no GPU
    r"cupy backend unavailable",  # tests/test_cupy_kernels.py
    r"nvcc is not installed",  # the CUDA toolkit's compiler (tests/test_cuda_sources.py)
    r"libnvrtc not found",  # CUDA's runtime compiler
    r"cupy is available here",  # a CPU-only check that skips on a GPU machine
)


def in_ci(environ=os.environ) -> bool:
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def is_allowed(reason: str) -> bool:
    """Whether a skip with this reason is one of the documented GPU skips."""
    return any(re.search(pattern, reason) for pattern in GPU_REASONS)


def skip_reason(report) -> str:
    """The reason of a skipped test report (pytest stores ``(file, line, "Skipped: why")``)."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")
