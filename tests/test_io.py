"""minift.io: round trips, compatibility with numpy and safetensors, atomic saves, checkpoints.

Hostile and fuzzed files are in test_io_fuzz.py.
"""

import io
import math
import os
import signal
import struct
import subprocess
import sys
import textwrap
import tracemalloc

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import minift
import minift.io as mio
from minift.io import checkpoint as io_checkpoint, npz as io_npz, safetensors as io_safetensors
from minift.io import CheckpointError

FORMATS = [".safetensors", ".npz"]
# Every dtype both formats store (safetensors: F64 ... BOOL, C64).
DTYPES = ["float64", "float32", "float16", "complex64", "int64", "int32", "int16", "int8",
          "uint64", "uint32", "uint16", "uint8", "bool"]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
plain_arrays = hnp.arrays(dtype=st.sampled_from(DTYPES), shape=shapes)


@st.composite
def arrays_of_any_layout(draw):
    """Arrays that are C-ordered, Fortran-ordered, or strided views."""
    array = draw(plain_arrays)
    layout = draw(st.sampled_from(["C", "F", "strided"]))
    if layout == "F":
        return np.asfortranarray(array)
    if layout == "strided" and array.ndim:
        return np.repeat(array, 2, axis=0)[::2]
    return array


names = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=12).filter(
    lambda name: name != "__metadata__"
)
state_dicts = st.dictionaries(names, arrays_of_any_layout(), max_size=5)


def assert_bit_identical(loaded, original, dtype=None):
    """Same shape, same dtype (``dtype`` if the format normalises it), same bytes."""
    assert isinstance(loaded, np.ndarray)
    assert loaded.shape == original.shape
    assert loaded.dtype == (dtype or original.dtype)
    assert loaded.tobytes() == original.astype(loaded.dtype).tobytes()


def files_in(directory):
    return sorted(os.listdir(directory))


# --- save / load round trips --------------------------------------------------------------

@pytest.mark.parametrize("extension", FORMATS)
@SETTINGS
@given(state=state_dicts)
def test_save_then_load_gives_back_every_array_bit_identical(tmp_path, extension, state):
    path = tmp_path / f"weights{extension}"
    mio.save(state, path)
    loaded = mio.load(path)
    assert loaded.keys() == state.keys()
    for name, array in state.items():
        assert_bit_identical(loaded[name], array)
    assert files_in(tmp_path) == [path.name]  # no temporary file left behind


@pytest.mark.parametrize("extension", FORMATS)
def test_big_endian_arrays_keep_their_values(tmp_path, extension):
    array = np.arange(6, dtype=">f4").reshape(2, 3)
    mio.save({"x": array}, tmp_path / f"w{extension}")
    loaded = mio.load(tmp_path / f"w{extension}")["x"]
    np.testing.assert_array_equal(loaded, array)


@pytest.mark.parametrize("extension", FORMATS)
def test_tensors_and_gpu_arrays_are_saved_as_their_data(tmp_path, extension):
    class FakeCupyArray:
        """What save relies on in a CuPy array: __cuda_array_interface__ and .get()."""

        __cuda_array_interface__ = {}

        def __init__(self, host):
            self.host = host

        def get(self):
            return self.host

    weight = minift.Tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    bias = np.array([1.5, -2.0], dtype=np.float64)
    mio.save({"weight": weight, "bias": FakeCupyArray(bias)}, tmp_path / f"w{extension}")
    loaded = mio.load(tmp_path / f"w{extension}")
    assert_bit_identical(loaded["weight"], weight.data)
    assert_bit_identical(loaded["bias"], bias)


def test_npz_files_are_what_numpy_writes_and_reads(tmp_path):
    state = {"a": np.arange(5.0), "file": np.ones((2, 2), np.int32), "allow_pickle": np.array(True)}
    mio.save(state, tmp_path / "mine.npz")
    with np.load(tmp_path / "mine.npz", allow_pickle=False) as npz:
        for name, array in state.items():
            assert_bit_identical(npz[name], array)
    np.savez(tmp_path / "numpys.npz", x=np.eye(3), y=np.arange(4, dtype=np.uint8))
    np.savez_compressed(tmp_path / "compressed.npz", x=np.eye(3), y=np.zeros(10_000, np.uint8))
    for file in ("numpys.npz", "compressed.npz"):
        loaded = mio.load(tmp_path / file)
        assert_bit_identical(loaded["x"], np.eye(3))


# --- safetensors: the layout, and the safetensors package both ways -----------------------

def _safetensors():
    return pytest.importorskip("safetensors.numpy")


@SETTINGS
@given(state=state_dicts, metadata=st.none() | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=1))
def test_safetensors_files_are_byte_identical_to_the_reference_writer(state, metadata):
    reference = _safetensors()
    contiguous = {name: array.copy(order="C") for name, array in state.items()}
    buffer = io.BytesIO()
    io_safetensors.write_safetensors(buffer, contiguous, metadata)
    assert buffer.getvalue() == reference.save(contiguous, metadata=metadata or None)


@SETTINGS
@given(state=state_dicts)
def test_safetensors_header_is_aligned_and_tensors_start_on_their_item_size(tmp_path, state):
    path = tmp_path / "w.safetensors"
    mio.save(state, path)
    data = path.read_bytes()
    header_length = int.from_bytes(data[:8], "little")
    assert header_length % 8 == 0 and data[8:9] == b"{"
    header = mio.safetensors_header(path)
    for name, entry in header.items():
        assert entry["shape"] == list(state[name].shape)
        assert entry["data_offsets"][0] % state[name].dtype.itemsize == 0


@SETTINGS
@given(state=state_dicts)
def test_the_safetensors_package_reads_our_files_and_we_read_its_files(tmp_path, state):
    reference = _safetensors()
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    mio.save(state, ours)
    for name, array in reference.load_file(str(ours)).items():
        assert_bit_identical(array, state[name])
    reference.save_file({name: a.copy(order="C") for name, a in state.items()}, str(theirs),
                        metadata={"format": "np"})
    for name, array in mio.load(theirs).items():
        assert_bit_identical(array, state[name])
    assert mio.safetensors_header(theirs)["__metadata__"] == {"format": "np"}


def test_bf16_tensors_load_widened_to_float32_exactly(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    values = torch.tensor([[1.0, -2.5, 3.140625], [1e30, -0.0, float("inf")]], dtype=torch.bfloat16)
    safetensors_torch.save_file({"w": values}, str(tmp_path / "bf16.safetensors"))
    loaded = mio.load(tmp_path / "bf16.safetensors")["w"]
    assert loaded.dtype == np.float32
    assert loaded.tobytes() == values.float().numpy().tobytes()
    assert mio.safetensors_header(tmp_path / "bf16.safetensors")["w"]["dtype"] == "BF16"


def test_loading_copies_the_file_once(tmp_path):
    """The readers allocate the arrays and nothing of comparable size besides."""
    state = {f"layer{i}": np.full((256, 1024), i, np.float32) for i in range(16)}  # 16 MiB
    total = sum(array.nbytes for array in state.values())
    for extension in FORMATS:
        path = tmp_path / f"big{extension}"
        mio.save(state, path)
        tracemalloc.start()
        loaded = mio.load(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert loaded.keys() == state.keys()
        assert peak < 1.1 * total, f"{extension}: peak {peak} bytes for {total} bytes of arrays"


def test_safetensors_header_reads_no_tensor(tmp_path):
    mio.save({"big": np.zeros((1024, 1024), np.float32)}, tmp_path / "w.safetensors")
    tracemalloc.start()
    header = mio.safetensors_header(tmp_path / "w.safetensors")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert header == {"big": {"dtype": "F32", "shape": [1024, 1024], "data_offsets": [0, 4 * 1024 * 1024]}}
    assert peak < 64 * 1024


def test_minilm_weights_load_like_the_safetensors_package():
    reference = _safetensors()
    from minift.text import pretrained

    directory = pretrained.package_directory()
    if directory is None:
        pytest.skip(f"all-MiniLM-L6-v2 is not installed ({pretrained.INSTALL_COMMAND})")
    path = directory / "model.safetensors"
    tracemalloc.start()
    loaded = mio.load(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1.05 * path.stat().st_size
    expected = reference.load_file(str(path))
    assert loaded.keys() == expected.keys()
    for name, array in expected.items():
        assert_bit_identical(loaded[name], array)


# --- bad input to save: a clear error, and nothing changes --------------------------------

BAD_STATES = [
    ({"w": [1.0, 2.0]}, "expected an array"),
    ({"w": np.array([object()], dtype=object)}, "dtype object"),
    ({"w": np.array(["a", "b"])}, "dtype <U1"),
    ({0: np.ones(2)}, "names must be str"),
    ({"__metadata__": np.ones(2)}, "not allowed"),
    ({"a\0b": np.ones(2)}, "not allowed"),
    ({"\ud800": np.ones(2)}, "not valid UTF-8"),
]


@pytest.mark.parametrize("extension", FORMATS)
@pytest.mark.parametrize("state, message", BAD_STATES)
def test_bad_state_raises_before_the_file_is_touched(tmp_path, extension, state, message):
    path = tmp_path / f"w{extension}"
    mio.save({"previous": np.arange(3.0)}, path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=message):
        mio.save(state, path)
    assert path.read_bytes() == before
    assert files_in(tmp_path) == [path.name]


def test_safetensors_refuses_dtypes_it_cannot_store(tmp_path):
    with pytest.raises(CheckpointError, match=r"'w'.*complex128.*or save as \.npz"):
        mio.save({"w": np.ones(2, np.complex128)}, tmp_path / "w.safetensors")
    mio.save({"w": np.ones(2, np.complex128)}, tmp_path / "w.npz")


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"\.pt.*expected a path ending in \.safetensors or \.npz"):
        mio.save({"w": np.ones(2)}, tmp_path / "w.pt")
    with pytest.raises(FileNotFoundError):
        mio.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="unknown device"):
        mio.load(tmp_path / "missing.npz", device="tpu")


# --- atomic saving ----------------------------------------------------------------------

@pytest.mark.parametrize("extension, module, writer", [
    (".safetensors", io_safetensors, "write_safetensors"),
    (".npz", io_npz, "write_npz"),
])
def test_a_crash_halfway_through_writing_leaves_the_previous_file_whole(tmp_path, monkeypatch, extension, module, writer):
    path = tmp_path / f"w{extension}"
    previous = {"w": np.arange(100.0)}
    mio.save(previous, path)
    before = path.read_bytes()
    real_writer = getattr(module, writer)

    def write_half_then_crash(file, arrays, *rest):
        complete = io.BytesIO()
        real_writer(complete, arrays, *rest)
        file.write(complete.getvalue()[: len(complete.getvalue()) // 2])
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(module, writer, write_half_then_crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        mio.save({"w": np.ones(1000)}, path)
    assert path.read_bytes() == before
    assert_bit_identical(mio.load(path)["w"], previous["w"])
    assert files_in(tmp_path) == [path.name]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failing_fsync_or_rename_leaves_the_previous_file_whole(tmp_path, monkeypatch, failing):
    path = tmp_path / "w.safetensors"
    mio.save({"w": np.arange(10.0)}, path)
    before = path.read_bytes()

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, disk_full)
    with pytest.raises(OSError, match="No space left"):
        mio.save({"w": np.ones(10)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert files_in(tmp_path) == [path.name]


CHILD_KILLED_MIDWAY = textwrap.dedent("""
    import sys, time
    import numpy as np
    import minift.io as mio

    writes = 0

    def pause_midway(frame, event, function):
        # Count the file writes the saver makes; halfway, tell the parent and wait to be killed.
        global writes
        if event == "c_call" and function.__name__ == "write":
            writes += 1
            if writes == 10:
                print("midway", flush=True)
                time.sleep(60)

    state = {f"layer{i}": np.full(1 << 18, i, np.float32) for i in range(16)}  # 16 MiB
    sys.setprofile(pause_midway)
    mio.save(state, sys.argv[1])
    sys.setprofile(None)
    print("finished", flush=True)
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("extension", FORMATS)
def test_a_process_killed_while_saving_leaves_the_previous_file_whole(tmp_path, extension):
    path = tmp_path / f"w{extension}"
    previous = {"w": np.arange(1000.0)}
    mio.save(previous, path)
    before = path.read_bytes()
    child = subprocess.Popen([sys.executable, "-c", CHILD_KILLED_MIDWAY, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "midway\n"
        temporaries = [name for name in files_in(tmp_path) if name.endswith(".tmp")]
        assert len(temporaries) == 1 and (tmp_path / temporaries[0]).stat().st_size > 0
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    assert_bit_identical(mio.load(path)["w"], previous["w"])


def test_an_unwritable_path_gives_an_error_naming_it(tmp_path):
    missing_directory = tmp_path / "no" / "such" / "w.npz"
    with pytest.raises(FileNotFoundError, match="no/such/w.npz"):
        mio.save({"w": np.ones(2)}, missing_directory)
    a_file = tmp_path / "plain_file"
    a_file.write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="plain_file/w.safetensors"):
        mio.save({"w": np.ones(2)}, a_file / "w.safetensors")
    (tmp_path / "a_directory.npz").mkdir()
    with pytest.raises(IsADirectoryError, match="a_directory.npz"):
        mio.save({"w": np.ones(2)}, tmp_path / "a_directory.npz")
    assert sorted(files_in(tmp_path)) == ["a_directory.npz", "plain_file"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_saved_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        mio.save({"w": np.ones(2)}, tmp_path / "w.npz")
    finally:
        os.umask(umask)
    assert (tmp_path / "w.npz").stat().st_mode & 0o777 == 0o644


# --- training checkpoints ---------------------------------------------------------------

def assert_identical(loaded, saved, where="state"):
    """Equal in value *and* type: int keys stay ints, tuples stay tuples, arrays are
    bit-identical with their dtype, floats equal to the last bit (nan is nan)."""
    assert type(loaded) is type(saved), f"{where}: {type(loaded).__name__} != {type(saved).__name__}"
    if isinstance(saved, dict):
        assert [(type(k), k) for k in loaded] == [(type(k), k) for k in saved], where
        for key in saved:
            assert_identical(loaded[key], saved[key], f"{where}/{key!r}")
    elif isinstance(saved, (list, tuple)):
        assert len(loaded) == len(saved), where
        for index, (a, b) in enumerate(zip(loaded, saved)):
            assert_identical(a, b, f"{where}/{index}")
    elif isinstance(saved, (np.ndarray, np.generic)):
        assert loaded.dtype == saved.dtype and loaded.shape == saved.shape, where
        assert loaded.tobytes() == saved.tobytes(), where
    elif isinstance(saved, float) and math.isnan(saved):
        assert math.isnan(loaded), where
    elif isinstance(saved, float):
        assert struct.pack("<d", loaded) == struct.pack("<d", saved), where
    else:
        assert loaded == saved, where


any_text = st.text(st.characters(exclude_categories=[]), max_size=8)  # lone surrogates included
tricky_keys = st.sampled_from([*io_checkpoint.TAGS, io_checkpoint.TREE_KEY, "a/b", "a", "b", "0", ""])
keys = st.integers() | any_text | tricky_keys
leaves = (
    st.none() | st.booleans() | st.integers() | st.floats() | any_text
    | plain_arrays | hnp.arrays(st.sampled_from(DTYPES), ()).map(lambda array: array[()])
)
nested = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=3)
    | st.lists(children, max_size=3).map(tuple)
    | st.dictionaries(keys, children, max_size=3),
    max_leaves=12,
)
checkpoint_parts = st.dictionaries(any_text | tricky_keys, nested, max_size=4)


@pytest.mark.parametrize("extension", FORMATS)
@SETTINGS
@given(parts=checkpoint_parts)
def test_checkpoint_round_trip_is_exact(tmp_path, extension, parts):
    path = tmp_path / f"checkpoint{extension}"
    mio.save_checkpoint(path, **parts)
    assert_identical(mio.load_checkpoint(path), parts)


@pytest.mark.parametrize("extension", FORMATS)
def test_a_training_checkpoint_restores_optimizer_state_and_random_stream(tmp_path, extension):
    minift.manual_seed(7)
    minift.engine.random.generator().random(5)  # move the stream somewhere
    optimizer = {
        "state": {0: {"momentum_buffer": np.ones((3, 2), np.float32), "step": 12}, 1: {"step": 12}},
        "param_groups": [{"lr": 0.1, "momentum": 0.9, "betas": (0.9, 0.999), "params": [0, 1]}],
    }
    path = tmp_path / f"checkpoint{extension}"
    mio.save_checkpoint(path, model={"fc.weight": minift.randn(3, 2)}, optimizer=optimizer, epoch=4,
                        rng=minift.get_rng_state())
    expected_draws = minift.engine.random.generator().random(4)
    checkpoint = mio.load_checkpoint(path)
    assert_identical(checkpoint["optimizer"], optimizer)
    assert checkpoint["epoch"] == 4
    minift.set_rng_state(checkpoint["rng"])
    np.testing.assert_array_equal(minift.engine.random.generator().random(4), expected_draws)
    assert "optimizer/state/0/momentum_buffer" in mio.load(path)


@pytest.mark.parametrize("extension", FORMATS)
@pytest.mark.parametrize("value, message", [
    pytest.param({1, 2}, "expected an array", id="set"),
    pytest.param({(1, 2): 3}, "keys must be str or int", id="tuple-key"),
    pytest.param({True: 3}, "keys must be str or int", id="bool-key"),
    pytest.param(10 ** 5000, "cannot be written as JSON", id="int-of-5001-digits"),
])
def test_unstorable_checkpoint_values_raise_before_the_file_is_touched(tmp_path, extension, value, message):
    path = tmp_path / f"checkpoint{extension}"
    mio.save_checkpoint(path, epoch=1)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=message):
        mio.save_checkpoint(path, epoch=2, extra=value)
    assert path.read_bytes() == before


@pytest.mark.parametrize("extension", FORMATS)
def test_load_checkpoint_of_a_plain_state_dict_says_what_to_use(tmp_path, extension):
    mio.save({"w": np.ones(2)}, tmp_path / f"w{extension}")
    with pytest.raises(CheckpointError, match="use minift.io.load"):
        mio.load_checkpoint(tmp_path / f"w{extension}")
