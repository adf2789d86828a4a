"""What every checkpoint module shares: the one error, the checks, the array conversion.

A checkpoint is data from outside the program. Whatever is wrong with it — truncated,
corrupted, written by another tool, or crafted to attack the reader — loading it raises
``CheckpointError`` (a ``ValueError``), whose message names the file, the entry and the
fault. No other exception escapes the readers; the fuzz tests in ``tests/test_io_fuzz.py``
hold them to that.
"""

from __future__ import annotations

import math

import numpy as np

from minift.engine.tensor import Tensor

# numpy cannot hold an array of more than 64 dimensions, or of more bytes than an intp counts.
MAX_NDIM = 64
MAX_NBYTES = np.iinfo(np.intp).max


class CheckpointError(ValueError):
    """A checkpoint file (or a state to save) that minift cannot read (or write) safely."""


def check_shape(shape, itemsize: int, where: str) -> int:
    """Validate a shape read from a file header; return the number of elements.

    ``shape`` must be a list or tuple of ints >= 0 that numpy can represent. ``where``
    starts the error message (``"model.safetensors: tensor 'fc.weight'"``). Nothing is
    allocated: the caller compares ``count * itemsize`` with the bytes the file really has.
    """
    if not isinstance(shape, (list, tuple)) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) for dim in shape
    ):
        raise CheckpointError(f"{where}: shape must be a list of ints, got {shape!r:.200}")
    if len(shape) > MAX_NDIM:
        raise CheckpointError(f"{where}: shape has {len(shape)} dimensions, numpy allows at most {MAX_NDIM}")
    if any(dim < 0 for dim in shape):
        raise CheckpointError(f"{where}: shape {list(shape)} has a negative dimension")
    # numpy refuses a shape whose nonzero dimensions multiply past intp, even for a size-0 array.
    if math.prod(dim for dim in shape if dim) * max(itemsize, 1) > MAX_NBYTES:
        raise CheckpointError(f"{where}: shape {list(shape)} is larger than numpy can address")
    return math.prod(shape)


def check_bool_values(array: np.ndarray, where: str) -> None:
    """A bool tensor must hold bytes 0 and 1 only; numpy would show any other byte as a
    ``True`` that compares unequal to ``True``."""
    if array.dtype == np.bool_ and array.size and array.view(np.uint8).max() > 1:
        raise CheckpointError(f"{where}: bool tensor holds bytes other than 0 and 1")


def to_numpy(value, where: str) -> np.ndarray:
    """A value to save, as a numpy array on the CPU.

    numpy arrays pass as they are and numpy scalars become 0-d arrays; a minift
    ``Tensor`` gives its ``.data``; a CuPy array (``__cuda_array_interface__``) is copied
    to the host with ``.get()``. Anything else raises CheckpointError.
    """
    if isinstance(value, Tensor):
        value = value.data
    if hasattr(value, "__cuda_array_interface__") and hasattr(value, "get"):
        value = value.get()
    if not isinstance(value, (np.ndarray, np.generic)):
        raise CheckpointError(f"{where}: expected an array (numpy, CuPy or minift Tensor), got {type(value).__name__}")
    return np.asarray(value)
