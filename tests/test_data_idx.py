"""The idx parser: round trips, the header layout, and every kind of damage."""

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from minift.data import IdxFormatError, encode_idx, parse_idx
from minift.data.idx import IDX_DTYPES

native_dtypes = st.sampled_from([dtype.newbyteorder("=") for dtype in IDX_DTYPES.values()])
idx_arrays = native_dtypes.flatmap(
    lambda dtype: arrays(dtype, array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
)


@settings(max_examples=60)
@given(idx_arrays)
def test_round_trip_keeps_values_shape_and_dtype(array):
    decoded = parse_idx(encode_idx(array))
    assert decoded.shape == array.shape
    assert decoded.dtype == array.dtype
    np.testing.assert_array_equal(decoded, array)
    assert decoded.flags.writeable


@settings(max_examples=30)
@given(arrays(np.uint8, array_shapes(min_dims=1, max_dims=3, max_side=6)))
def test_header_is_the_documented_layout(array):
    data = encode_idx(array)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    assert data[: len(header)] == header
    assert data[len(header):] == array.tobytes()


def test_big_endian_values_are_decoded():
    values = np.array([1, -2, 300], dtype=np.int16)
    data = bytes([0, 0, 0x0B, 1]) + struct.pack(">I", 3) + struct.pack(">3h", *values)
    np.testing.assert_array_equal(parse_idx(data), values)


@settings(max_examples=40)
@given(arrays(np.uint8, array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6)), st.data())
def test_truncated_or_padded_data_is_rejected(array, data):
    encoded = encode_idx(array)
    header_size = 4 + 4 * array.ndim
    cut = data.draw(st.integers(1, len(encoded) - header_size), label="bytes cut")
    with pytest.raises(IdxFormatError, match="truncated"):
        parse_idx(encoded[:-cut])
    extra = data.draw(st.binary(min_size=1, max_size=8), label="extra bytes")
    with pytest.raises(IdxFormatError, match="trailing"):
        parse_idx(encoded + extra)


@settings(max_examples=30)
@given(st.integers(1, 255), st.integers(0, 1))
def test_nonzero_leading_bytes_are_rejected(bad, position):
    data = bytearray(encode_idx(np.zeros((2, 3), np.uint8)))
    data[position] = bad
    with pytest.raises(IdxFormatError, match="two zero bytes"):
        parse_idx(bytes(data))


@settings(max_examples=30)
@given(st.integers(0, 255).filter(lambda code: code not in IDX_DTYPES))
def test_unknown_type_code_is_rejected(code):
    data = bytearray(encode_idx(np.zeros(4, np.uint8)))
    data[2] = code
    with pytest.raises(IdxFormatError, match="unknown idx type code"):
        parse_idx(bytes(data))


def test_zero_dimensions_and_short_headers_are_rejected():
    with pytest.raises(IdxFormatError, match="at least one dimension"):
        parse_idx(bytes([0, 0, 0x08, 0]))
    with pytest.raises(IdxFormatError, match="4-byte magic"):
        parse_idx(b"\x00\x00")
    with pytest.raises(IdxFormatError, match="declares 3 dimensions"):
        parse_idx(bytes([0, 0, 0x08, 3]) + struct.pack(">I", 2))


def test_encode_rejects_what_idx_cannot_store():
    with pytest.raises(TypeError, match="dtype bool"):
        encode_idx(np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="ndim=0"):
        encode_idx(np.uint8(3))
