"""Dropout with a counter-based mask, in NumPy: the oracle for the Numba and CUDA kernels.

``dropout(x, p, key)``  inverted dropout, ``y = x * keep / (1 - p)``, where element i of x
(counted in C order) is kept iff its uniform draw is at least p::

    u_i = (splitmix64(key, i) >> 11) / 2**53        keep_i = u_i >= p
                                                    <=> (splitmix64(key, i) >> 11) >= ceil(p * 2**53)

``splitmix64(key, i)`` is output i + 1 of Steele, Lea and Flood's SplitMix64 generator
seeded with ``key`` (the generator ``java.util.SplittableRandom`` uses, and the one that
seeds the xoshiro family): the counter ``key + (i + 1) * gamma`` (mod 2**64), gamma the odd
integer nearest 2**64 / golden ratio, scrambled by two xor-shift-multiply rounds. Output i
needs no output before it, so every thread -- or every GPU thread -- computes the draws
of its own elements, and the mask is the same on any thread count and any backend.

Why not NumPy's ``Generator.random``: its draws form one sequence, so one thread makes
them all -- 1.6 ns each on the development machine, 97 ms of a MiniLM training step's 880
(19 dropout layers, 29 million draws). The hash takes 0.4 ns per element on one core and
vectorises.

The mask is a function of ``(key, i)`` alone, so nothing needs saving for the backward pass:
``dL/dx = dropout(g, p, key)``, the same call on the gradient.
"""

from __future__ import annotations

import math

import numpy as np

GAMMA = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio, made odd
MIX_1, MIX_2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
SHIFT_1, SHIFT_2, SHIFT_3 = np.uint64(30), np.uint64(27), np.uint64(31)
DRAW_SHIFT = np.uint64(11)  # 64 - 11 = 53 bits: a float64's worth
"""Shifts as ``np.uint64``: Numba, which compiles ``splitmix64`` for its kernels, would turn
a uint64 shifted by a plain (signed) int into a float."""


def splitmix64(key, index):
    """Output ``index + 1`` of SplitMix64 seeded with ``key``: uint64 in, uint64 out.

    Plain uint64 arithmetic (it wraps modulo 2**64), so it runs on NumPy arrays of indices
    here and, compiled by Numba, on one index at a time in ``kernels/numba/dropout.py``.
    """
    z = key + (index + np.uint64(1)) * GAMMA
    z = (z ^ (z >> SHIFT_1)) * MIX_1
    z = (z ^ (z >> SHIFT_2)) * MIX_2
    return z ^ (z >> SHIFT_3)


def keep_threshold(p: float) -> int:
    """``ceil(p * 2**53)``: element i is kept iff ``splitmix64(key, i) >> 11`` reaches it.
    (``p * 2**53`` is exact in float64: a power of two only moves the exponent.)"""
    return math.ceil(p * 2.0**53)


def dropout(x, p, key):
    index = np.arange(x.size, dtype=np.uint64)  # 1-D even for a 0-d x: array arithmetic wraps silently
    keep = splitmix64(np.uint64(key), index) >> DRAW_SHIFT >= np.uint64(keep_threshold(p))
    return np.where(keep.reshape(x.shape), x * x.dtype.type(1 / (1 - p)), x.dtype.type(0))
