"""The argument checks of the kernel contract (``minift.contract``).

Each contract entry calls these once, before it dispatches to a backend, so a bad call
fails here -- before any work is done, on every backend alike -- with a message that
names the entry, what it expected and what it got. Nothing is modified by a call that
fails.
"""

from __future__ import annotations

import numbers

FLOAT_DTYPES = ("float32", "float64")


def _array_kind(array) -> str:
    """``numpy.ndarray`` or ``cupy.ndarray``: which library (and so which device) holds it."""
    return f"{type(array).__module__.split('.')[0]}.{type(array).__name__}"


def check_float_arrays(kernel: str, **arrays) -> None:
    """Every array is float32 or float64, all share one dtype (no silent upcast) and
    one kind (all NumPy or all CuPy: one device)."""
    for name, array in arrays.items():
        dtype = getattr(array, "dtype", None)
        if dtype is None:
            raise TypeError(f"{kernel}: {name} must be an array, got {type(array).__name__}")
        if dtype.name not in FLOAT_DTYPES:
            raise TypeError(f"{kernel}: {name} must be float32 or float64, got {dtype}")
    kinds = {name: _array_kind(array) for name, array in arrays.items()}
    if len(set(kinds.values())) > 1:
        listed = ", ".join(f"{name} is a {kind}" for name, kind in kinds.items())
        raise TypeError(
            f"{kernel}: all arrays must live on one device, but {listed}; "
            f"move them with cupy.asarray(...) or cupy.asnumpy(...)"
        )
    dtypes = {name: array.dtype.name for name, array in arrays.items()}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{name} {dtype}" for name, dtype in dtypes.items())
        raise TypeError(f"{kernel}: all arrays must share one dtype, got {listed}; cast them first")


def check_ndim(kernel: str, name: str, array, ndim: int, layout: str) -> None:
    """``array`` has exactly ``ndim`` dimensions, laid out as ``layout`` (e.g. "(N, C, H, W)")."""
    if array.ndim != ndim:
        raise ValueError(f"{kernel}: {name} must be {ndim}-D {layout}, got shape {tuple(array.shape)}")


def check_pair(kernel: str, name: str, value, minimum: int) -> tuple[int, int]:
    """A pair of ints, each at least ``minimum``, for (height, width)."""
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
    ):
        raise TypeError(f"{kernel}: {name} must be a pair of ints (height, width), got {value!r}")
    if min(value) < minimum:
        raise ValueError(f"{kernel}: {name} must be >= {minimum} in both entries, got {tuple(value)}")
    return int(value[0]), int(value[1])


def check_shape_argument(kernel: str, name: str, shape, layout: str) -> tuple[int, ...]:
    """A shape passed as an argument (e.g. ``input_shape``): a tuple of non-negative ints
    with as many entries as ``layout`` names; returned as a tuple of Python ints."""
    expected = layout.count(",") + 1
    if (
        not isinstance(shape, (tuple, list))
        or len(shape) != expected
        or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        raise ValueError(f"{kernel}: {name} must be {expected} non-negative ints {layout}, got {shape!r}")
    return tuple(int(s) for s in shape)


def check_same_shape(kernel: str, name: str, shape, expected, why: str) -> None:
    """``shape`` equals ``expected``; ``why`` says where the expected shape comes from."""
    if tuple(shape) != tuple(expected):
        raise ValueError(f"{kernel}: {name} must have shape {tuple(expected)} ({why}), got {tuple(shape)}")
