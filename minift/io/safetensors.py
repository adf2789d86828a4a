"""The safetensors format, read and written by hand.

Layout (https://github.com/huggingface/safetensors, byte-compatible both ways)::

    [8 bytes]  N, the header length: unsigned 64-bit little-endian
    [N bytes]  UTF-8 JSON, padded with spaces to a multiple of 8 bytes:
               {"__metadata__": {"format": "pt"},                      (optional, str -> str)
                "fc.bias":   {"dtype": "F32", "shape": [10],      "data_offsets": [0, 40]},
                "fc.weight": {"dtype": "F32", "shape": [10, 784], "data_offsets": [40, 31400]}}
    [rest]     the byte buffer: every tensor's bytes, little-endian, C order, back to back;
               ``data_offsets`` are ``[begin, end)`` relative to the buffer's first byte
               (a big-endian array is stored, and comes back, little-endian).

A valid file's tensors tile the buffer exactly: sorted by offset, each begins where the
previous one ended, the first at 0 and the last at the end of the file — no holes, no
overlaps, no trailing bytes — and each holds exactly ``prod(shape) * itemsize`` bytes.
The reader checks all of that against the file's real size *before* it allocates
anything, so a header claiming a terabyte tensor costs nothing but an error.

The writer orders tensors as the reference implementation does — by dtype, larger items
first, then by name — so every tensor starts at a multiple of its item size and the file
is byte-for-byte the one ``safetensors.numpy.save_file`` writes.

Tensors are read with ``readinto`` straight into a freshly allocated array: the file's
bytes are copied exactly once (90 MB of MiniLM weights cost 90 MB), and the arrays own
their memory (writable, and the file may be replaced while they live). Unlike a memory
map, a file truncated behind the reader's back gives an error, not a crash (SIGBUS).

BF16 is read and widened to float32 exactly (numpy has no bfloat16: the 16 bits are the
high half of a float32). minift never writes BF16.
"""

from __future__ import annotations

import json
import os

import numpy as np

from minift.io.common import CheckpointError, check_bool_values, check_shape

# safetensors dtype code -> numpy dtype, little-endian as stored; in the reference
# implementation's ranking, which its writer sorts by (highest first).
DTYPES = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"),
    "F16": np.dtype("<f2"),
    "I32": np.dtype("<i4"),
    "U32": np.dtype("<u4"),
    "F32": np.dtype("<f4"),
    "C64": np.dtype("<c8"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"),
}
RANK = {code: rank for rank, code in enumerate(DTYPES)}
BF16_BITS = np.dtype("<u2")  # read-only: stored as the top 16 bits of a float32
CODE_OF_DTYPE = {(dtype.kind, dtype.itemsize): code for code, dtype in DTYPES.items()}

METADATA_KEY = "__metadata__"
HEADER_LENGTH_BYTES = 8
MAX_HEADER_BYTES = 100_000_000  # the reference implementation's limit


def dtype_code(array: np.ndarray, where: str) -> str:
    """The safetensors code for ``array.dtype`` (``float32 -> "F32"``), or CheckpointError."""
    code = CODE_OF_DTYPE.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise CheckpointError(
            f"{where}: dtype {array.dtype} cannot be stored in safetensors; "
            f"expected one of {', '.join(dtype.name for dtype in DTYPES.values())} (or save as .npz)"
        )
    return code


def write_safetensors(file, arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Write ``arrays`` (name -> numpy array, dtypes checked by ``dtype_code``) to a binary file."""
    codes = {name: dtype_code(array, f"tensor {name!r}") for name, array in arrays.items()}
    order = sorted(arrays, key=lambda name: (-RANK[codes[name]], name))
    header = {METADATA_KEY: metadata} if metadata else {}
    offset = 0
    for name in order:
        array = arrays[name]
        header[name] = {
            "dtype": codes[name],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    file.write(len(text).to_bytes(HEADER_LENGTH_BYTES, "little"))
    file.write(text)
    for name in order:
        array = arrays[name]
        little_endian = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        file.write(little_endian.reshape(-1).view(np.uint8))


def _reject_duplicate_keys(pairs):
    """A JSON object hook: Python's json keeps the last of two equal keys; we refuse them."""
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r:.100}")
        result[key] = value
    return result


def _parse_header(file, path) -> tuple[dict, int]:
    """Read and validate the header of an open file; return ``(header, buffer_start)``.

    ``header`` maps each tensor name to ``{"dtype", "shape", "data_offsets"}`` in offset
    order, plus ``"__metadata__"`` when the file has one.
    """
    file_size = os.fstat(file.fileno()).st_size
    raw_length = file.read(HEADER_LENGTH_BYTES)
    if len(raw_length) < HEADER_LENGTH_BYTES:
        raise CheckpointError(f"{path}: file has {file_size} bytes, too short for the 8-byte header length")
    length = int.from_bytes(raw_length, "little")
    if length > file_size - HEADER_LENGTH_BYTES:
        raise CheckpointError(
            f"{path}: header length {length} is larger than the file's remaining "
            f"{file_size - HEADER_LENGTH_BYTES} bytes (truncated, or not a safetensors file)"
        )
    if length > MAX_HEADER_BYTES:
        raise CheckpointError(f"{path}: header length {length} exceeds the limit of {MAX_HEADER_BYTES} bytes")
    try:
        header = json.loads(file.read(length).decode("utf-8"), object_pairs_hook=_reject_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise CheckpointError(f"{path}: header is not valid UTF-8 JSON ({error})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: header must be a JSON object, got {type(header).__name__}")
    metadata = header.pop(METADATA_KEY, None)
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(value, str) for value in metadata.values())
    ):
        raise CheckpointError(f"{path}: {METADATA_KEY} must map strings to strings, got {metadata!r:.200}")
    buffer_size = file_size - HEADER_LENGTH_BYTES - length
    entries = {name: _check_entry(name, entry, path, buffer_size) for name, entry in header.items()}
    _check_tiling(entries, path, buffer_size)
    ordered = dict(sorted(entries.items(), key=lambda item: item[1]["data_offsets"]))
    if metadata is not None:
        ordered[METADATA_KEY] = metadata
    return ordered, HEADER_LENGTH_BYTES + length


def _check_entry(name: str, entry, path, buffer_size: int) -> dict:
    where = f"{path}: tensor {name!r}"
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise CheckpointError(f"{where}: expected an object with dtype, shape and data_offsets, got {entry!r:.200}")
    code = entry["dtype"]
    if code != "BF16" and code not in DTYPES:
        raise CheckpointError(f"{where}: unknown dtype {code!r:.50}; expected one of BF16, {', '.join(DTYPES)}")
    itemsize = BF16_BITS.itemsize if code == "BF16" else DTYPES[code].itemsize
    count = check_shape(entry["shape"], itemsize, where)
    offsets = entry["data_offsets"]
    well_formed = (isinstance(offsets, list) and len(offsets) == 2
                   and all(isinstance(offset, int) and not isinstance(offset, bool) for offset in offsets))
    if not (well_formed and 0 <= offsets[0] <= offsets[1] <= buffer_size):
        truncated = well_formed and 0 <= offsets[0] <= offsets[1]  # only the end is past the data
        raise CheckpointError(
            f"{where}: data_offsets {offsets!r:.100} must be [begin, end] with "
            f"0 <= begin <= end <= {buffer_size} (the buffer's size)"
            + (": the file is truncated (or its header is wrong)" if truncated else "")
        )
    begin, end = offsets
    if end - begin != count * itemsize:
        raise CheckpointError(
            f"{where}: shape {entry['shape']} of {code} needs {count * itemsize} bytes, "
            f"but data_offsets {offsets} hold {end - begin}"
        )
    return {"dtype": code, "shape": list(entry["shape"]), "data_offsets": [begin, end]}


def _check_tiling(entries: dict, path, buffer_size: int) -> None:
    """The tensors must cover the buffer exactly: no hole, no overlap, nothing left over."""
    expected_begin = 0
    for name, entry in sorted(entries.items(), key=lambda item: item[1]["data_offsets"]):
        begin, end = entry["data_offsets"]
        if begin != expected_begin:
            fault = "overlaps the previous tensor" if begin < expected_begin else "leaves a hole before it"
            raise CheckpointError(f"{path}: tensor {name!r} starts at byte {begin} of the buffer and {fault} (expected {expected_begin})")
        expected_begin = end
    if expected_begin != buffer_size:
        raise CheckpointError(f"{path}: the tensors cover {expected_begin} bytes but the buffer has {buffer_size}")


def safetensors_header(path) -> dict:
    """The validated header of a safetensors file, without reading any tensor.

    Returns ``{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...}``
    in offset order, plus ``"__metadata__": {str: str}`` if the file has metadata.
    """
    with open(path, "rb") as file:
        header, _ = _parse_header(file, path)
    return header


def read_safetensors(path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file: ``(arrays, metadata)``, BF16 widened to float32."""
    with open(path, "rb") as file:
        header, buffer_start = _parse_header(file, path)
        metadata = header.pop(METADATA_KEY, {})
        arrays = {
            name: _read_tensor(file, buffer_start, entry, f"{path}: tensor {name!r}")
            for name, entry in header.items()
        }
    return arrays, metadata


def _read_tensor(file, buffer_start: int, entry: dict, where: str) -> np.ndarray:
    """Read one tensor's bytes (already checked to lie inside the file) into a new array."""
    begin, end = entry["data_offsets"]
    stored = BF16_BITS if entry["dtype"] == "BF16" else DTYPES[entry["dtype"]]
    flat = np.empty((end - begin) // stored.itemsize, dtype=stored)
    file.seek(buffer_start + begin)
    if file.readinto(flat.view(np.uint8)) != end - begin:
        raise CheckpointError(f"{where}: the file ended early (was it truncated while being read?)")
    if entry["dtype"] == "BF16":
        flat = (flat.astype(np.uint32) << 16).view(np.float32)
    array = flat.reshape(entry["shape"])
    check_bool_values(array, where)
    return array
