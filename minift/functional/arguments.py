"""PyTorch and NumPy spell two arguments differently: ``dim`` / ``axis`` and ``keepdim`` /
``keepdims``. Every op takes both spellings (PyTorch's positionally or by keyword, NumPy's
by keyword) and resolves them here, in one place; giving both is an error."""

from __future__ import annotations


def spelled(torch_value, numpy_value, default, names=("dim", "axis")):
    """The value of an argument passed as PyTorch's ``names[0]`` or NumPy's ``names[1]``
    (None when not passed), or ``default`` when neither was given."""
    if numpy_value is None:
        return default if torch_value is None else torch_value
    if torch_value is not None:
        raise TypeError(
            f"got both {names[0]}={torch_value!r} and {names[1]}={numpy_value!r}: they are one "
            f"argument (PyTorch's and NumPy's spelling of it); pass only one"
        )
    return numpy_value


def dim_and_keepdim(dim, keepdim, axis, keepdims) -> tuple:
    """``(dim, keepdim)`` of a reduction from either spelling; ``keepdim`` defaults to False."""
    return spelled(dim, axis, None), spelled(keepdim, keepdims, False, ("keepdim", "keepdims"))
