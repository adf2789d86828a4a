"""How the data tools turn a ``seed`` argument into an int.

An int is used as given. ``None`` draws a seed from minift's global generator, so that
``minift.manual_seed`` makes even the un-seeded calls reproducible (this advances
the global generator by one draw, as PyTorch's samplers do with ``torch``'s).
"""

from __future__ import annotations

import numpy as np


def resolve_seed(seed) -> int:
    """``seed`` if it is a non-negative int; a fresh draw from ``minift.engine.random`` if ``None``."""
    if seed is None:
        from ..engine import random

        return int(random.generator().integers(2**63))
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    return int(seed)
