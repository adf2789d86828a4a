"""Checkpoints without pickle: ``save`` / ``load`` for state dicts, ``save_checkpoint`` /
``load_checkpoint`` for whole training states.

**Why not pickle.** ``torch.save`` writes a pickle, and loading a pickle runs whatever
code the file asks for: ``pickle`` rebuilds objects by calling functions named in the
file, and ``os.system`` is a function. A checkpoint downloaded from the internet is
then a program. minift's files hold only numbers and JSON: loading one can fail, but it
cannot run code. (``numpy.load`` is always called with ``allow_pickle=False``.)

**Formats**, chosen by the file extension:

``.safetensors`` (see ``io_safetensors``)
    ``[u64 header length][JSON header][tensor bytes]``; Hugging Face's format, read and
    written here by hand and byte-compatible with the ``safetensors`` package both ways.
    Pretrained weights come in it. The header can be inspected alone: ``safetensors_header``.
``.npz`` (see ``io_npz``)
    a zip of ``.npy`` files, what ``numpy.savez`` writes; any numpy can read it.
``.pth``, ``.pt``, ``.bin`` (read only; see ``torch_checkpoint`` and ``torch_pickle``)
    PyTorch's pickles, both the zip archive and the legacy stream, *interpreted* by a
    pickle machine that imports and calls nothing: only the few names a state dict needs
    are accepted, anything else raises CheckpointError (docs/torch-checkpoints.md).

**Plain state dicts**: ``save(model.state_dict(), "model.safetensors")`` stores a flat
``name -> array`` mapping (numpy arrays, minift Tensors or CuPy arrays);
``load(path)`` returns ``{name: numpy array}``.

**Training checkpoints**: ``save_checkpoint(path, model=..., optimizer=..., epoch=3,
rng=minift.get_rng_state())`` stores nested state (see ``io_checkpoint``): the
arrays in the file's tensor table under path-like names (``optimizer/state/0/momentum_buffer``),
everything else in a JSON tree — in the safetensors ``__metadata__`` under the key
``"minift_checkpoint"``, or in the npz as a uint8 array of that name holding the UTF-8
JSON. ``load_checkpoint(path)`` rebuilds the same nested structure.

**Safety.** Every save is atomic (``io_atomic``): a crash leaves the previous file whole.
A bad value to save raises before the file is touched. Loading a truncated, corrupted or
hostile file raises ``CheckpointError`` (a ``ValueError``) naming the file, the entry and
the fault, and never allocates memory a header merely claims.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from minift.io import checkpoint as io_checkpoint, npz as io_npz, safetensors as io_safetensors
from minift.backend.device import check_device, to_device
from minift.io.atomic import atomic_write
from minift.io.common import CheckpointError, to_numpy
from minift.io.safetensors import safetensors_header
from minift.io.torch_checkpoint import read_torch

__all__ = ["save", "load", "save_checkpoint", "load_checkpoint", "safetensors_header", "CheckpointError"]

FORMATS = (".safetensors", ".npz")
TORCH_FORMATS = (".pth", ".pt", ".bin")  # read only: minift never writes a pickle


def _format_of(path, formats=FORMATS) -> str:
    extension = os.path.splitext(os.fspath(path))[1].lower()
    if extension not in formats:
        raise CheckpointError(
            f"{path}: unknown checkpoint format {extension!r}; "
            f"expected a path ending in {', '.join(formats[:-1])} or {formats[-1]}"
            + ("" if extension not in TORCH_FORMATS else " (PyTorch files are read by minift.io.load, never written)")
        )
    return extension


def _check_name(name, path) -> None:
    if not isinstance(name, str):
        raise CheckpointError(f"{path}: array names must be str, got {type(name).__name__} {name!r}")
    if "\0" in name or name == io_safetensors.METADATA_KEY:
        raise CheckpointError(f"{path}: array name {name!r} is not allowed (no NUL characters, not {io_safetensors.METADATA_KEY!r})")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise CheckpointError(f"{path}: array name {name!r} is not valid UTF-8 (it holds a lone surrogate)") from None


def _write(path, arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Check every name and dtype, then write atomically in the format of ``path``."""
    extension = _format_of(path)
    for name, array in arrays.items():
        _check_name(name, path)
        if extension == ".safetensors":
            io_safetensors.dtype_code(array, f"{path}: array {name!r}")
        else:
            io_npz.check_storable(array.dtype, f"{path}: array {name!r}")
    with atomic_write(path) as file:
        if extension == ".safetensors":
            io_safetensors.write_safetensors(file, arrays, metadata)
        else:
            io_npz.write_npz(file, arrays)


def _read(path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read ``(arrays, safetensors metadata or {})`` in the format of ``path``."""
    extension = _format_of(path, FORMATS + TORCH_FORMATS)
    if extension in TORCH_FORMATS:
        return read_torch(path), {}
    if extension == ".safetensors":
        return io_safetensors.read_safetensors(path)
    return io_npz.read_npz(path), {}


def _place(arrays: dict[str, np.ndarray], device: str) -> dict:
    """The one place loaded arrays are put on their device (numpy for "cpu")."""
    return {name: to_device(array, device) for name, array in arrays.items()}


def save(state_dict: Mapping, path) -> None:
    """Save a flat ``{name: array}`` mapping to ``path`` (``.safetensors`` or ``.npz``).

    Values may be numpy arrays, minift Tensors or CuPy arrays. The write is atomic: on
    any error the previous file at ``path`` is untouched.
    """
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{path}: save expects a mapping of names to arrays, got {type(state_dict).__name__}")
    _format_of(path)
    _write(path, {name: to_numpy(value, f"{path}: array {name!r}") for name, value in state_dict.items()})


def load(path, device: str = "cpu") -> dict:
    """Load a file written by ``save`` (or by numpy / safetensors), or a PyTorch
    ``.pth`` / ``.pt`` / ``.bin`` state dict, without running it: ``{name: array}``.

    Arrays are numpy arrays on ``"cpu"``; a BF16 tensor becomes float32.
    """
    device = check_device(device)
    arrays, _ = _read(path)
    return _place(arrays, device)


def save_checkpoint(path, /, **parts) -> None:
    """Save nested training state atomically, e.g.
    ``save_checkpoint("ckpt.safetensors", model=model.state_dict(),
    optimizer=optimizer.state_dict(), epoch=3, rng=minift.get_rng_state())``.

    Parts may nest dicts (str or int keys), lists, tuples, arrays, numpy scalars, and JSON
    values (None, bool, int of any size, float including nan/inf, str). Anything else
    raises CheckpointError naming where it sits, before the file is touched.
    """
    extension = _format_of(path)
    text, arrays = io_checkpoint.flatten(parts)
    if extension == ".npz":
        arrays[io_checkpoint.TREE_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        _write(path, arrays)
    else:
        _write(path, arrays, metadata={io_checkpoint.TREE_KEY: text})


def load_checkpoint(path, device: str = "cpu") -> dict:
    """Load a file written by ``save_checkpoint``: the same nested structure, arrays as
    numpy arrays (bit-identical, same dtype), tuples as tuples, int keys as ints."""
    device = check_device(device)
    arrays, metadata = _read(path)
    if _format_of(path) == ".npz":
        tree = arrays.pop(io_checkpoint.TREE_KEY, None)
        if tree is not None and (tree.dtype != np.uint8 or tree.ndim != 1):
            raise CheckpointError(f"{path}: array {io_checkpoint.TREE_KEY!r} must be 1-d uint8 (UTF-8 JSON)")
        text = None if tree is None else _utf8(tree.tobytes(), path)
    else:
        text = metadata.get(io_checkpoint.TREE_KEY)
    if text is None:
        raise CheckpointError(
            f"{path}: not a minift training checkpoint (no {io_checkpoint.TREE_KEY!r} entry); "
            "for a plain state dict use minift.io.load"
        )
    return io_checkpoint.unflatten(text, _place(arrays, device), path)


def _utf8(data: bytes, path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CheckpointError(f"{path}: the checkpoint's JSON tree is not UTF-8 ({error})") from None
