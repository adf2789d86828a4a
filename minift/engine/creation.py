"""Constructors: ``tensor``, ``zeros``, ``ones``, ``full``, ``arange``, ``eye``, ``randn``,
``rand`` and their ``*_like`` forms.

Floating results are float32 unless ``dtype`` says otherwise; random draws come from the
global generator (``minift.manual_seed``); ``device`` defaults to the backend's default
device (``"cpu"``, or ``"cuda"`` under ``MINIFT_BACKEND=cupy``).
"""

from __future__ import annotations

import numpy as np

from ..backend import default_device
from ..backend.device import check_device, to_device
from .random import generator
from .tensor import Tensor, as_dtype


def _shape(shape) -> tuple:
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    if not all(isinstance(n, (int, np.integer)) and n >= 0 for n in shape):
        raise ValueError(f"a shape is a sequence of non-negative ints, got {tuple(shape)}")
    return tuple(int(n) for n in shape)


def _make(array, dtype, requires_grad, device) -> Tensor:
    device = check_device(device) if device is not None else default_device()
    array = array.astype(as_dtype(dtype) if dtype is not None else np.float32, copy=False)
    return Tensor(to_device(array, device), requires_grad=requires_grad)


def empty_parameter(shape, dtype=None):
    """A zero-filled ``Parameter`` for a layer to initialise (``torch.empty``'s role)."""
    from ..nn.module import Parameter

    return Parameter(_make(np.zeros(_shape((shape,))), dtype, False, None))


def tensor(data, dtype=None, requires_grad=False, device=None) -> Tensor:
    """A new tensor holding a copy of ``data`` (like ``torch.tensor``)."""
    data = data.data if isinstance(data, Tensor) else data
    array = np.array(data) if not hasattr(data, "get") else data.copy()
    if dtype is None and not hasattr(data, "dtype") and array.dtype == np.float64:
        dtype = np.float32
    return Tensor(array, dtype=dtype, requires_grad=requires_grad, device=device or default_device())


def zeros(*shape, dtype=None, requires_grad=False, device=None) -> Tensor:
    return _make(np.zeros(_shape(shape)), dtype, requires_grad, device)


def ones(*shape, dtype=None, requires_grad=False, device=None) -> Tensor:
    return _make(np.ones(_shape(shape)), dtype, requires_grad, device)


def full(shape, fill_value, dtype=None, requires_grad=False, device=None) -> Tensor:
    return _make(np.full(_shape((shape,)), fill_value), dtype, requires_grad, device)


def eye(n, m=None, dtype=None, requires_grad=False, device=None) -> Tensor:
    return _make(np.eye(n, m), dtype, requires_grad, device)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device=None) -> Tensor:
    """Like ``torch.arange``: int64 for integer arguments, float32 otherwise."""
    array = np.arange(start, end, step) if end is not None else np.arange(start)
    if dtype is None and array.dtype.kind in "iu":
        dtype = np.int64
    return _make(array, dtype, requires_grad, device)


def randn(*shape, dtype=None, requires_grad=False, device=None) -> Tensor:
    """Standard normal samples from the global generator."""
    return _make(generator().standard_normal(_shape(shape)), dtype, requires_grad, device)


def rand(*shape, dtype=None, requires_grad=False, device=None) -> Tensor:
    """Uniform samples in [0, 1) from the global generator."""
    return _make(generator().random(_shape(shape)), dtype, requires_grad, device)


def _like(maker):
    def like(other, dtype=None, requires_grad=False, device=None, **kwargs):
        return maker(other.shape, dtype=dtype or other.dtype, requires_grad=requires_grad,
                     device=device or other.device, **kwargs)

    like.__name__ = maker.__name__ + "_like"
    like.__doc__ = f"``{maker.__name__}`` with the shape, dtype and device of ``other``."
    return like


zeros_like, ones_like, randn_like, rand_like = (_like(f) for f in (zeros, ones, randn, rand))


def full_like(other, fill_value, dtype=None, requires_grad=False, device=None) -> Tensor:
    return full(other.shape, fill_value, dtype=dtype or other.dtype, requires_grad=requires_grad,
                device=device or other.device)
