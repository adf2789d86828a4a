"""Shared test configuration: hypothesis profiles and the ``backend`` fixture.

Hypothesis profiles (choose with ``HYPOTHESIS_PROFILE=name``; ``ci`` is the default):

- ``ci``: few examples per test, so the whole suite stays fast on a small machine;
- ``thorough``: many more examples, for a long run before a release.

Both set ``deadline=None``: the first call of a Numba kernel compiles it, and a deadline
would report that one-off compilation as a failure.

In CI (``CI`` set), a skip whose reason is not one of the GPU reasons of
``tests/skip_policy.py`` fails the run: CI installs everything else.

``demo_outputs(backend, threads)`` runs ``minift demo`` once per session and setting (it
takes about half a minute), for the tests of the demo's claims and of the README.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import minift.backend
import skip_policy

# The backend fixture is entered once per test, not once per example: that is what we want.
_quiet = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
settings.register_profile("ci", max_examples=20, deadline=None, suppress_health_check=_quiet)
settings.register_profile("thorough", max_examples=300, deadline=None, suppress_health_check=_quiet)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(params=list(minift.backend.BACKEND_MODULES))
def backend(request):
    """Run the test under each backend (``numpy``, ``numba``, ``cupy``); skip the ones that
    are not available here. Parametrise with ``indirect=["backend"]`` to choose names."""
    name = request.param
    available, reason = minift.backend.available_backends()[name]
    if not available:
        pytest.skip(f"backend {name!r} is not available: {reason}")
    with minift.backend.use_backend(name):
        yield name


# ---------------------------------------------------------------- only GPU cases skip in CI

_unexpected_skips: list[tuple[str, str]] = []


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail") and skip_policy.in_ci():
        reason = skip_policy.skip_reason(report)
        if not skip_policy.is_allowed(reason):
            _unexpected_skips.append((report.nodeid, reason))


def pytest_terminal_summary(terminalreporter):
    if _unexpected_skips:
        terminalreporter.section("skips that CI does not allow (tests/skip_policy.py)", red=True)
        for nodeid, reason in _unexpected_skips:
            terminalreporter.line(f"{nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus):
    if _unexpected_skips and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# ---------------------------------------------------------------- the demo, run once per setting

def default_demo_setting() -> tuple[str, int]:
    """What ``minift demo`` uses here without settings: auto (numba if it works) and every core."""
    numba = minift.backend.available_backends()["numba"][0]
    return ("numba" if numba else "numpy"), minift.backend.threads.cores()


@pytest.fixture(scope="session")
def demo_outputs(tmp_path_factory):
    """``demo_outputs(backend, threads)`` -> the folder ``minift demo --out DIR`` filled when
    run in a fresh process with ``MINIFT_BACKEND=backend`` and ``threads`` threads per pool."""
    made: dict[tuple[str, int], Path] = {}

    def run(backend: str, threads: int) -> Path:
        if (backend, threads) not in made:
            available, reason = minift.backend.available_backends()[backend]
            if not available:
                pytest.skip(f"backend {backend!r} is not available: {reason}")
            out = tmp_path_factory.mktemp(f"demo-{backend}-{threads}") / "minift-demo"
            env = {**os.environ, "MINIFT_BACKEND": backend, "MINIFT_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
                   "NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads), "MPLBACKEND": "Agg"}
            done = subprocess.run([sys.executable, "-m", "minift", "demo", "--out", str(out)], env=env,
                                  capture_output=True, text=True, timeout=3600)
            assert done.returncode == 0, f"minift demo failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            made[backend, threads] = out
        return made[backend, threads]

    return run
