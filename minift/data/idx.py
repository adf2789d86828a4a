"""The idx file format of MNIST and Fashion-MNIST, read and written by hand.

An idx file is a header followed by the array, all big-endian::

    bytes 0-1   0x00 0x00                  (always zero)
    byte  2     type code                  0x08 uint8, 0x09 int8, 0x0B int16,
                                           0x0C int32, 0x0D float32, 0x0E float64
    byte  3     ndim                       number of dimensions, at least 1
    4*ndim      dims                       each a big-endian uint32
    the rest    prod(dims) values          row-major (C order)

``train-images-idx3-ubyte`` is therefore ``00 00 08 03``, then 60000, 28, 28, then
47,040,000 pixel bytes. The files are usually gzipped: ungzip the bytes first.
"""

from __future__ import annotations

import numpy as np

# type code -> big-endian dtype of the stored values
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxFormatError(ValueError):
    """The bytes are not a well-formed idx file."""


def parse_idx(data: bytes) -> np.ndarray:
    """Decode idx bytes into a new, writable, native-byte-order array of shape ``dims``."""
    if len(data) < 4:
        raise IdxFormatError(f"an idx file starts with a 4-byte magic number; got only {len(data)} bytes")
    zero, type_code, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00":
        raise IdxFormatError(f"an idx magic number starts with two zero bytes, got {zero.hex()}")
    if type_code not in IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in IDX_DTYPES)
        raise IdxFormatError(f"unknown idx type code 0x{type_code:02X}: expected one of {known}")
    if ndim == 0:
        raise IdxFormatError("an idx file needs at least one dimension, the header says 0")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IdxFormatError(f"the header declares {ndim} dimensions ({header_size} bytes) but the file has {len(data)} bytes")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(dims)) * dtype.itemsize
    found = len(data) - header_size
    if found != expected:
        raise IdxFormatError(
            f"dims {dims} of {dtype.name} need {expected} bytes of data, the file has {found} "
            f"({'truncated' if found < expected else 'trailing bytes'})"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(dims)
    return values.astype(dtype.newbyteorder("="))


def encode_idx(array) -> bytes:
    """The idx bytes of ``array`` (the inverse of ``parse_idx``)."""
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        names = ", ".join(d.name for d in codes)
        raise TypeError(f"idx stores {names}; got an array of dtype {array.dtype}")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"idx stores arrays with 1 to 255 dimensions, got ndim={array.ndim}")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"idx dimensions are uint32, got shape {array.shape}")
    header = bytes([0, 0, codes[native], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=native.newbyteorder(">")).tobytes()

