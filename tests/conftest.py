"""Shared test configuration: hypothesis profiles and the ``backend`` fixture.

Hypothesis profiles (choose with ``HYPOTHESIS_PROFILE=name``; ``ci`` is the default):

- ``ci``: few examples per test, so the whole suite stays fast on a small machine;
- ``thorough``: many more examples, for a long run before a release.

Both set ``deadline=None``: the first call of a Numba kernel compiles it, and a deadline
would report that one-off compilation as a failure.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import minift.backend

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
