"""Devices: where an array lives decides which array module (``xp``) computes on it.

minift code that must create arrays asks ``array_module(x)`` for NumPy or CuPy rather
than naming NumPy, so the same op runs on a CPU array or a GPU array (the "xp pattern").
CuPy is imported only when a GPU array is asked for.
"""

from __future__ import annotations

import numpy as np

DEVICES = ("cpu", "cuda")


def is_cuda_array(array) -> bool:
    return type(array).__module__.startswith("cupy")


def array_module(array):
    """``numpy`` for CPU arrays, ``cupy`` for GPU arrays."""
    if type(array) is np.ndarray or not is_cuda_array(array):
        return np
    import cupy

    return cupy


def device_of(array) -> str:
    return "cuda" if is_cuda_array(array) else "cpu"


def check_device(device) -> str:
    """Normalise ``"cpu"``, ``"cuda"``, ``"cuda:0"``; anything else is a clear error."""
    name = str(device).split(":")[0]
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")
    return name


def to_device(array, device: str):
    """Copy ``array`` to ``device`` (no copy if it is already there)."""
    device = check_device(device)
    if device == device_of(array):
        return array
    if device == "cpu":
        return array.get()
    from . import BackendUnavailableError, available_backends

    ok, reason = available_backends()["cupy"]
    if not ok:
        raise BackendUnavailableError(f"cannot move a tensor to 'cuda': {reason}")
    import cupy

    return cupy.asarray(array)


def scatter_add(target, index, values) -> None:
    """``target[index] += values`` with repeated indices accumulating (``np.add.at``)."""
    if is_cuda_array(target):
        import cupyx

        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)
