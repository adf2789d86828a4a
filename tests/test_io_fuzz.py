"""minift.io against hostile, corrupted and random files.

The contract: loading any file raises ``CheckpointError`` (naming the file, the entry and
the fault) or returns arrays; no other exception escapes, and memory use stays bounded by
the file's real size, whatever its headers claim.
"""

import io
import json
import pickle
import re
import tracemalloc
import zipfile

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import minift.io as mio
from minift.io import checkpoint as io_checkpoint, safetensors as io_safetensors
from minift.io import CheckpointError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SMALL_PEAK = 1 << 20  # 1 MiB: far below any size the hostile headers below claim


def run_measured(loader, path):
    """``(result or CheckpointError, peak bytes allocated)`` of ``loader(path)``; any other
    exception propagates and fails the test."""
    tracemalloc.start()
    try:
        try:
            outcome = loader(path)
        except CheckpointError as error:
            outcome = error
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def safetensors_file(header, buffer=b"", length=None) -> bytes:
    """A safetensors file from a header (a dict, or raw JSON bytes) and a byte buffer."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return (len(text) if length is None else length).to_bytes(8, "little") + text + buffer


def f32_entry(shape, begin, end):
    return {"dtype": "F32", "shape": shape, "data_offsets": [begin, end]}


def npy_bytes(shape, dtype, data=b"", version=(1, 0)) -> bytes:
    """A .npy member whose header claims ``shape`` and ``dtype``, followed by ``data``."""
    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    raw = bytearray(buffer.getvalue())
    raw[6:8] = bytes(version)
    return bytes(raw) + data


def zip_file(members, compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def patch_central_directory(data: bytes, offset: int, value: int, size: int) -> bytes:
    """Overwrite a field of the first central directory record (offsets per the zip spec)."""
    start = data.index(b"PK\x01\x02") + offset
    return data[:start] + value.to_bytes(size, "little") + data[start + size:]


def zip64_header_offset(data: bytes, offset: int) -> bytes:
    """Move the first member's local-header offset into a zip64 extra field set to ``offset``."""
    start, end_record = data.index(b"PK\x01\x02"), data.index(b"PK\x05\x06")
    name_length = int.from_bytes(data[start + 28:start + 30], "little")
    extra = (1).to_bytes(2, "little") + (8).to_bytes(2, "little") + offset.to_bytes(8, "little")
    record = (data[start:start + 30] + len(extra).to_bytes(2, "little") + data[start + 32:start + 42]
              + b"\xff" * 4 + data[start + 46:start + 46 + name_length] + extra)
    end = data[end_record:end_record + 12] + len(record).to_bytes(4, "little") + data[end_record + 16:]
    return data[:start] + record + end


class CreatesFileWhenUnpickled:
    """A pickle attack in miniature: unpickling this calls ``open(marker, "w")``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


valid_f32 = f32_entry([2], 0, 8)

HOSTILE_SAFETENSORS = {
    "empty file": (b"", "too short"),
    "header length past the end": (safetensors_file(b"{}", length=10_000), "larger than the file"),
    "header length 2**64-1": (safetensors_file(b"{}", length=2**64 - 1), "larger than the file"),
    "invalid JSON": (safetensors_file(b"{not json"), "not valid UTF-8 JSON"),
    "not UTF-8": (safetensors_file(b'{"\xff": 1}'), "not valid UTF-8 JSON"),
    "JSON nested 100000 deep": (safetensors_file(b"[" * 100_000), "not valid UTF-8 JSON"),
    "JSON array": (safetensors_file([1, 2]), "must be a JSON object"),
    "duplicate name": (safetensors_file(b'{"a": %s, "a": %s}' % ((json.dumps(valid_f32).encode(),) * 2), bytes(8)), "duplicate key 'a'"),
    "entry not an object": (safetensors_file({"a": 5}), "'a': expected an object"),
    "unknown dtype": (safetensors_file({"a": {**valid_f32, "dtype": "F8_E4M3"}}, bytes(8)), "'a': unknown dtype 'F8_E4M3'"),
    "dtype not a string": (safetensors_file({"a": {**valid_f32, "dtype": 3}}, bytes(8)), "'a': unknown dtype 3"),
    "negative dimension": (safetensors_file({"a": f32_entry([-1, -2], 0, 8)}, bytes(8)), "'a': shape \\[-1, -2\\] has a negative"),
    "float dimension": (safetensors_file({"a": f32_entry([2.0], 0, 8)}, bytes(8)), "'a': shape must be a list of ints"),
    "65 dimensions": (safetensors_file({"a": f32_entry([1] * 65, 0, 4)}, bytes(4)), "65 dimensions"),
    "dimension of 5000 digits": (safetensors_file(b'{"a": {"dtype": "F32", "shape": [%s], "data_offsets": [0, 4]}}' % (b"9" * 5000)), "not valid UTF-8 JSON"),
    "huge claimed shape": (safetensors_file({"a": f32_entry([10**6, 10**6], 0, 8)}, bytes(8)), "'a': shape .* needs 4000000000000 bytes"),
    "claimed 1 GiB": (safetensors_file({"a": f32_entry([2**28], 0, 2**30)}, bytes(8)), "'a': data_offsets .* <= 8"),
    "shape larger than numpy": (safetensors_file({"a": f32_entry([0, 2**62, 2**62], 0, 0)}), "larger than numpy can address"),
    "shape does not match bytes": (safetensors_file({"a": f32_entry([3], 0, 8)}, bytes(8)), "'a': shape \\[3\\] of F32 needs 12 bytes"),
    "offsets past the buffer": (safetensors_file({"a": f32_entry([2], 8, 16)}, bytes(8)), "'a': data_offsets \\[8, 16\\]"),
    "offsets reversed": (safetensors_file({"a": f32_entry([0], 8, 0)}, bytes(8)), "'a': data_offsets \\[8, 0\\]"),
    "offsets not a pair": (safetensors_file({"a": {**valid_f32, "data_offsets": [0]}}, bytes(8)), "'a': data_offsets \\[0\\]"),
    "overlapping tensors": (safetensors_file({"a": f32_entry([2], 0, 8), "b": f32_entry([2], 4, 12)}, bytes(12)), "'b' starts at byte 4 .* overlaps"),
    "hole between tensors": (safetensors_file({"a": f32_entry([2], 0, 8), "b": f32_entry([2], 12, 20)}, bytes(20)), "'b' starts at byte 12 .* hole"),
    "trailing bytes": (safetensors_file({"a": valid_f32}, bytes(16)), "cover 8 bytes but the buffer has 16"),
    "metadata not strings": (safetensors_file({"__metadata__": {"epoch": 3}}), "__metadata__ must map strings to strings"),
    "bool byte that is no bool": (safetensors_file({"a": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x02"), "'a': bool tensor holds bytes other than 0 and 1"),
}


@pytest.mark.parametrize("data, message", HOSTILE_SAFETENSORS.values(), ids=HOSTILE_SAFETENSORS.keys())
def test_hostile_safetensors_files_raise_checkpoint_error_without_allocating(tmp_path, data, message):
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(data)
    for loader in (mio.load, mio.safetensors_header):
        outcome, peak = run_measured(loader, path)
        if loader is mio.safetensors_header and "bool tensor" in message:
            continue  # the header is valid; only reading the bytes finds the fault
        assert isinstance(outcome, CheckpointError), f"{loader.__name__} accepted it"
        assert str(path) in str(outcome)
        assert re.search(message, str(outcome)), str(outcome)
        assert peak < SMALL_PEAK


def hostile_npz_files(tmp_path):
    valid_member = npy_bytes((2,), "<f4", bytes(8))
    object_array = io.BytesIO()
    np.savez(object_array, a=np.array([CreatesFileWhenUnpickled(str(tmp_path / "pwned"))], dtype=object))
    stored = zip_file([("a.npy", valid_member)])
    with pytest.warns(UserWarning, match="Duplicate name"):
        duplicated = zip_file([("a.npy", valid_member), ("a.npy", valid_member)])
    return {
        "random bytes": (b"\x00not a zip at all", "not a zip archive"),
        "a pickle": (pickle.dumps({"w": [1.0]}), "not a zip archive"),
        "an .npy file": (npy_bytes((2,), "<f4", bytes(8)), "not a zip archive"),
        "truncated archive": (stored[: len(stored) // 2], "corrupted npz archive"),
        "pickled object array": (object_array.getvalue(), "'a.npy': holds Python objects .* never unpickles"),
        "member that is no .npy": (zip_file([("readme.txt", b"hello")]), "'readme.txt': an npz holds only .npy"),
        "member name twice": (duplicated, "'a.npy': the name appears more than once"),
        "member of text": (zip_file([("a.npy", npy_bytes((2,), "<U3", bytes(24)))]), "'a.npy': dtype <U3 is not a numeric"),
        "member not .npy inside": (zip_file([("a.npy", b"garbage that is no npy")]), "'a.npy': invalid .npy header"),
        "npy version 9": (zip_file([("a.npy", npy_bytes((2,), "<f4", bytes(8), version=(9, 0)))]), "'a.npy': .npy format version \\(9, 0\\)"),
        "npy version 3": (zip_file([("a.npy", npy_bytes((2,), "<f4", bytes(8), version=(3, 0)))]), "'a.npy': .npy format version \\(3, 0\\)"),
        "huge claimed shape": (zip_file([("a.npy", npy_bytes((10**6, 10**6), "<f8", bytes(8)))]), "'a.npy': shape .* needs 8000000000000 bytes"),
        "claimed 1 GiB": (zip_file([("a.npy", npy_bytes((2**27,), "<f8", bytes(8)))]), "'a.npy': shape \\[134217728\\] of float64 needs 1073741824 bytes"),
        "negative dimension": (zip_file([("a.npy", npy_bytes((-4,), "<f4", bytes(8)))]), "'a.npy': shape \\[-4\\] has a negative"),
        "trailing bytes in member": (zip_file([("a.npy", valid_member + bytes(8))]), "'a.npy': shape \\[2\\] of float32 needs 8 bytes"),
        "bzip2 member": (zip_file([("a.npy", valid_member)], zipfile.ZIP_BZIP2), "'a.npy': compression method 12"),
        "size field claims 4 GiB": (patch_central_directory(stored, 24, 2**32 - 1, 4), "'a.npy': claims 4294967295 bytes"),
        "compressed size past the file": (patch_central_directory(stored, 20, 2**31, 4), "'a.npy': claims 2147483648 compressed bytes"),
        "encrypted member": (patch_central_directory(stored, 8, 1, 2), "'a.npy': is encrypted"),
        "zip64 offset 2**64-1": (zip64_header_offset(stored, 2**64 - 1), "corrupted npz archive"),
        "bool byte that is no bool": (zip_file([("a.npy", npy_bytes((2,), "|b1", b"\x00\x07"))]), "'a': bool tensor holds bytes"),
    }


def test_hostile_npz_files_raise_checkpoint_error_without_allocating(tmp_path):
    for case, (data, message) in hostile_npz_files(tmp_path).items():
        path = tmp_path / "hostile.npz"
        path.write_bytes(data)
        outcome, peak = run_measured(mio.load, path)
        assert isinstance(outcome, CheckpointError), f"{case}: accepted"
        assert str(path) in str(outcome), case
        assert re.search(message, str(outcome)), f"{case}: {outcome}"
        assert peak < SMALL_PEAK, f"{case}: {peak} bytes"
    assert not (tmp_path / "pwned").exists()  # nothing was unpickled


# --- mutations of valid files ------------------------------------------------------------

small_states = st.dictionaries(
    st.text("abcdefgh./_0", min_size=1, max_size=6),
    hnp.arrays(st.sampled_from(["float32", "float64", "float16", "int64", "int8", "uint8", "bool"]),
               hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3)),
    max_size=4,
)


@st.composite
def mutations(draw, data: bytes) -> bytes:
    """Apply 1-3 random edits, biased towards the header (the start) and, for a zip, the
    central directory (the end), where a single byte changes the most."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        last = len(data) - 1
        position = draw(st.integers(0, last) | st.integers(0, min(last, 80)) | st.integers(max(0, last - 120), last))
        edit = draw(st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate"]))
        if edit == "flip":
            data[position] ^= draw(st.integers(1, 255))
        elif edit == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[position:position + len(chunk)] = chunk
        elif edit == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif edit == "delete":
            del data[position:position + draw(st.integers(1, 8))]
        else:
            del data[position:]
    return bytes(data)


@pytest.mark.parametrize("extension", [".safetensors", ".npz"])
@pytest.mark.parametrize("kind", ["state_dict", "checkpoint"])
@SETTINGS
@given(state=small_states, data=st.data())
def test_mutated_files_load_or_raise_checkpoint_error(tmp_path, extension, kind, state, data):
    valid = tmp_path / f"valid{extension}"
    if kind == "state_dict":
        mio.save(state, valid)
    else:
        mio.save_checkpoint(valid, model=state, optimizer={"state": {0: {"step": 3}}}, epoch=2)
    mutated = tmp_path / f"mutated{extension}"
    mutated.write_bytes(data.draw(mutations(valid.read_bytes())))
    loaders = [mio.load, mio.load_checkpoint]
    if extension == ".safetensors":
        loaders.append(mio.safetensors_header)
    bound = SMALL_PEAK + 1100 * mutated.stat().st_size  # a member turned "deflated" may expand 1032x
    for loader in loaders:
        _, peak = run_measured(loader, mutated)
        assert peak < bound, f"{loader.__name__}: {peak} bytes for a {mutated.stat().st_size}-byte file"


# --- random safetensors headers ----------------------------------------------------------

codes = st.sampled_from([*io_safetensors.DTYPES, "BF16", "F8_E4M3", "f32", ""]) | st.integers() | st.none()
dims = st.integers(-2, 6) | st.sampled_from([2**31, 2**63, 10**20]) | st.floats(0, 4) | st.booleans() | st.text(max_size=2)
wild_entries = st.fixed_dictionaries({
    "dtype": codes,
    "shape": st.lists(dims, max_size=4) | st.integers() | st.none(),
    "data_offsets": st.lists(st.integers(-2, 72) | st.sampled_from([2**64, 10**30]), max_size=3) | st.text(max_size=2),
}) | st.integers() | st.lists(st.integers(), max_size=2)
wild_headers = st.dictionaries(st.text(max_size=4) | st.just("__metadata__"), wild_entries | st.dictionaries(st.text(max_size=3), st.text(max_size=3) | st.integers(), max_size=2), max_size=4)


@SETTINGS
@given(header=wild_headers, buffer=st.binary(max_size=72), length=st.none() | st.integers(0, 2**64 - 1))
def test_random_headers_load_or_raise_checkpoint_error(tmp_path, header, buffer, length):
    path = tmp_path / "random.safetensors"
    path.write_bytes(safetensors_file(header, buffer, length))
    for loader in (mio.load, mio.safetensors_header):
        outcome, peak = run_measured(loader, path)
        assert peak < SMALL_PEAK
        if loader is mio.load and not isinstance(outcome, CheckpointError):
            for name, array in outcome.items():  # accepted: each array is what the header claims
                assert list(array.shape) == header[name]["shape"]


@st.composite
def shuffled_safetensors(draw):
    """A valid safetensors file whose tensors sit in the buffer in a random order (other
    writers need not sort them), with the arrays it holds."""
    state = draw(small_states)
    order = draw(st.permutations(sorted(state)))
    header, buffer = {}, b""
    for name in order:
        array = state[name]
        code = io_safetensors.dtype_code(array, name)
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [len(buffer), len(buffer) + array.nbytes]}
        buffer += array.tobytes()
    return safetensors_file(header, buffer), state


@SETTINGS
@given(file_and_state=shuffled_safetensors())
def test_any_tensor_order_reads_as_the_safetensors_package_reads_it(tmp_path, file_and_state):
    reference = pytest.importorskip("safetensors.numpy")
    data, state = file_and_state
    path = tmp_path / "shuffled.safetensors"
    path.write_bytes(data)
    ours, theirs = mio.load(path), reference.load(data)
    assert ours.keys() == theirs.keys() == state.keys()
    for name, array in state.items():
        assert ours[name].dtype == theirs[name].dtype == array.dtype
        assert ours[name].tobytes() == theirs[name].tobytes() == array.tobytes()


# --- random JSON trees in a training checkpoint ------------------------------------------

json_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4)
json_trees = st.recursive(
    json_leaves | st.sampled_from(["a", "b", "nan"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=3), children, max_size=2)
    | st.builds(lambda tag, content: {tag: content}, st.sampled_from(io_checkpoint.TAGS), children),
    max_leaves=10,
)
documents = (
    st.fixed_dictionaries({"format": st.just(io_checkpoint.FORMAT), "version": st.just(io_checkpoint.VERSION), "state": json_trees})
    | st.fixed_dictionaries({"format": st.sampled_from([io_checkpoint.FORMAT, "other"]), "version": st.sampled_from([99, "1"])})
    | json_trees
)


@SETTINGS
@given(document=documents)
def test_random_checkpoint_trees_load_or_raise_checkpoint_error(tmp_path, document):
    path = tmp_path / "checkpoint.safetensors"
    with open(path, "wb") as file:
        arrays = {"a": np.zeros((), np.float32), "b": np.ones(2)}
        io_safetensors.write_safetensors(file, arrays, {io_checkpoint.TREE_KEY: json.dumps(document)})
    outcome, _ = run_measured(mio.load_checkpoint, path)
    assert isinstance(outcome, (dict, CheckpointError))
