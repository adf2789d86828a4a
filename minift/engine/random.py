"""One global random generator, so that ``manual_seed`` makes a whole run reproducible.

Every random draw in minift (``randn``, weight initialisation, dropout masks, data
shuffling unless a loader has its own generator) comes from ``generator()``. Its state is
a JSON-serialisable dict, so a training checkpoint can save and restore it exactly.
"""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator (PCG64) and return it, like ``torch.manual_seed``."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"manual_seed expects a non-negative int, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def generator() -> np.random.Generator:
    """The global generator that minift draws from."""
    return _generator


def get_rng_state() -> dict:
    """The global generator's state as a JSON-serialisable dict."""
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by ``get_rng_state`` (the next draws repeat exactly)."""
    bit_generator = np.random.PCG64()
    bit_generator.state = state
    global _generator
    _generator = np.random.Generator(bit_generator)
