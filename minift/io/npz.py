"""The ``.npz`` format: a zip archive holding one ``.npy`` file per array.

Layout (what ``numpy.savez`` writes)::

    model.npz  (zip, members stored uncompressed)
      fc.weight.npy   magic b"\\x93NUMPY", version, a header giving dtype, order, shape;
      fc.bias.npy     then the raw bytes of the array
      ...

The writer is ``numpy.savez``'s own loop (``zipfile`` + ``numpy.lib.format.write_array``)
with ``allow_pickle=False``. It is spelled out because ``savez`` takes the names as
keyword arguments, so arrays named ``file`` or ``allow_pickle`` could not be saved.

The reader opens the file once. It first walks the zip directory and every member's
``.npy`` header — without reading any array — and checks: a zip at all; only ``.npy``
members, each name once; no object dtype (numpy would have to *unpickle* it); and a
shape whose byte count is exactly what the member holds. Only then does
``numpy.load(..., allow_pickle=False)`` read the arrays from the same open file, by their
exact member names. (``numpy.load`` alone allocates whatever shape a member's header
claims before noticing the bytes are missing.)

Members compressed with deflate (``numpy.savez_compressed``) are accepted; a member may
claim at most 1032 times its compressed size — deflate's maximum ratio — so a corrupted
size field cannot make the reader allocate more than that.
"""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

from minift.io.common import CheckpointError, check_bool_values, check_shape

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # an archive with members, an empty archive
NUMERIC_KINDS = "biufc"  # bool, signed, unsigned, float, complex
DEFLATE_MAX_RATIO = 1032
MEMBER_SUFFIX = ".npy"
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def check_storable(dtype: np.dtype, where: str) -> None:
    """npz checkpoints hold numeric and bool arrays; anything else would need pickle or is no tensor."""
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None:
        raise CheckpointError(f"{where}: dtype {dtype} is not a numeric or bool dtype")


def write_npz(file, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` (name -> numeric numpy array) to a binary file as an uncompressed npz."""
    with zipfile.ZipFile(file, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(name + MEMBER_SUFFIX, mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def read_npz(path) -> dict[str, np.ndarray]:
    """Read every array of an npz file, after checking the whole archive (see module docstring)."""
    with open(path, "rb") as file:
        file_size = os.fstat(file.fileno()).st_size
        magic = file.read(4)
        if magic not in ZIP_MAGICS:
            raise CheckpointError(f"{path}: not a zip archive (an .npz file starts with b'PK'), starts with {magic!r}")
        file.seek(0)
        try:
            with zipfile.ZipFile(file) as archive:
                names = [_check_member(archive, info, path, file_size) for info in archive.infolist()]
            file.seek(0)
            with np.load(file, allow_pickle=False) as npz:
                arrays = {name[: -len(MEMBER_SUFFIX)]: npz[name] for name in names}
        except CheckpointError:
            raise
        except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError, NotImplementedError) as error:
            raise CheckpointError(f"{path}: corrupted npz archive ({type(error).__name__}: {error})") from None
    for name, array in arrays.items():
        check_bool_values(array, f"{path}: array {name!r}")
    return arrays


def _check_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path, file_size: int) -> str:
    """Validate one member from the directory and its .npy header; return its name."""
    where = f"{path}: member {info.filename!r}"
    if not info.filename.endswith(MEMBER_SUFFIX):
        raise CheckpointError(f"{where}: an npz holds only .npy members")
    if archive.getinfo(info.filename) is not info:
        raise CheckpointError(f"{where}: the name appears more than once")
    if info.flag_bits & 0x1:
        raise CheckpointError(f"{where}: is encrypted")
    if info.compress_size > file_size:
        raise CheckpointError(f"{where}: claims {info.compress_size} compressed bytes, the file has {file_size}")
    if info.compress_type == zipfile.ZIP_STORED:
        largest = info.compress_size
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        largest = DEFLATE_MAX_RATIO * info.compress_size + 1024  # + block headers of tiny streams
    else:
        raise CheckpointError(f"{where}: compression method {info.compress_type} (npz uses stored or deflate)")
    if info.file_size > largest:
        raise CheckpointError(f"{where}: claims {info.file_size} bytes, more than its {info.compress_size} compressed bytes can hold")
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            header = HEADER_READERS[version](member) if version in HEADER_READERS else None
        except ValueError as error:
            raise CheckpointError(f"{where}: invalid .npy header ({error})") from None
        header_size = member.tell()
    if header is None:
        raise CheckpointError(f"{where}: .npy format version {version} is not supported (expected 1.0 or 2.0)")
    shape, _, dtype = header
    if dtype.hasobject:
        raise CheckpointError(f"{where}: holds Python objects (dtype {dtype}), which only pickle can load; minift never unpickles")
    check_storable(dtype, where)
    count = check_shape(shape, dtype.itemsize, where)
    if header_size + count * dtype.itemsize != info.file_size:
        raise CheckpointError(
            f"{where}: shape {list(shape)} of {dtype} needs {count * dtype.itemsize} bytes, "
            f"but the member holds {info.file_size - header_size} after its header"
        )
    return info.filename
