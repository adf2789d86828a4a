"""The dtypes a Tensor may have, and PyTorch's rules for the dtype of a mixed operation.

**Promotion** (``result_type``), as PyTorch does it: the kinds rank bool < integer <
floating. Operands come in three tiers -- tensors with dimensions, 0-d tensors, Python
numbers -- and a lower tier changes the result only when its kind ranks higher than
everything above it:

- ``int64 tensor + 1`` -> int64;  ``int64 tensor * 2.5`` -> float32 (the default float);
- ``float32 tensor + float64 0-d tensor`` -> float32;  ``int64 tensor + float64 0-d`` -> float64;
- within a tier, ``promote_types``: the higher kind wins (``int64 + float16`` -> float16),
  within a kind the wider type (``uint8 + int8`` -> int16, as NumPy).

True division of integers gives the default float (``tensor([1, 2]) / 2`` -> float32).
"""

from __future__ import annotations

import numpy as np

DTYPES = {
    "float16": np.float16,
    "float32": np.float32,
    "float64": np.float64,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "bool": np.bool_,
}
float32, float64, int64, int32, bool_ = np.float32, np.float64, np.int64, np.int32, np.bool_

DEFAULT_FLOAT = np.dtype(np.float32)
_RANK = {"b": 0, "u": 1, "i": 1, "f": 2}
_DEFAULT_OF_RANK = {0: np.dtype(np.bool_), 1: np.dtype(np.int64), 2: DEFAULT_FLOAT}


def as_dtype(dtype) -> np.dtype:
    """Turn ``"float32"``, ``np.float32`` or ``minift.float32`` into a supported NumPy dtype."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in DTYPES:
        raise TypeError(f"unknown dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    return resolved


def promote_types(a: np.dtype, b: np.dtype) -> np.dtype:
    """``torch.promote_types``: the higher kind wins; within a kind, the wider type."""
    rank_a, rank_b = _RANK[a.kind], _RANK[b.kind]
    if rank_a != rank_b:
        return a if rank_a > rank_b else b
    return np.promote_types(a, b)


def _number_dtype(value) -> np.dtype:
    """A Python number's own kind, at the default width: bool, int64 or float32."""
    return _DEFAULT_OF_RANK[_RANK[np.asarray(value).dtype.kind]]


def result_type(*operands) -> np.dtype:
    """The dtype of an element-wise op on ``operands`` (Tensors, arrays or Python numbers)."""
    tiers = ([], [], [])  # with dimensions, 0-d, Python numbers
    for value in operands:
        if isinstance(value, np.generic) or not hasattr(value, "dtype"):
            tiers[2].append(_number_dtype(value))
        else:
            tiers[0 if value.ndim else 1].append(np.dtype(value.dtype))
    result = None
    for tier in tiers:
        if not tier:
            continue
        dtype = tier[0]
        for other in tier[1:]:
            dtype = promote_types(dtype, other)
        if result is None:
            result = dtype
        elif _RANK[dtype.kind] > _RANK[result.kind]:
            result = dtype
    return result


def can_store(result: np.dtype, target: np.dtype) -> bool:
    """Whether an in-place op may write a ``result`` into a ``target`` tensor: never a
    float into an integer one, nor a number into a bool one (PyTorch's rule)."""
    return _RANK[result.kind] <= _RANK[target.kind]
