"""minift.io.load against hostile and corrupted PyTorch checkpoints.

The files are assembled opcode by opcode (no torch needed): a valid state dict in both
formats, then the attacks — code execution through GLOBAL + REDUCE, storage types and
opcodes outside the whitelist, sizes that lie, truncation, deep nesting. Each must raise
CheckpointError naming the fault, run nothing, and allocate nothing near what it claims.
"""

import io
import os
import pickle
import sys
import tracemalloc
import zipfile

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

import minift.io as mio
from minift.io import CheckpointError, torch_pickle

SMALL_PEAK = 1 << 20  # 1 MiB, far below the sizes the hostile files claim
MAGIC = 0x1950A86A20F9469CFC6C


# -- assembling pickles by hand ----------------------------------------------------------
def text(value: str) -> bytes:
    data = value.encode()
    return b"X" + len(data).to_bytes(4, "little") + data


def integer(value: int) -> bytes:
    data = value.to_bytes(9, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def global_(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def tuple_(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


EMPTY_ORDERED_DICT = global_("collections", "OrderedDict") + b")R"


def tensor(key="0", numel=4, offset=0, size=(4,), stride=(1,), storage="FloatStorage", legacy=False) -> bytes:
    """``_rebuild_tensor_v2(persistent storage, offset, size, stride, False, OrderedDict())``."""
    pid = tuple_(text("storage"), global_("torch", storage), text(key), text("cpu"), integer(numel),
                 *([b"N"] if legacy else []))
    args = tuple_(pid + b"Q", integer(offset), tuple_(*map(integer, size)), tuple_(*map(integer, stride)),
                  b"\x89", EMPTY_ORDERED_DICT)
    return global_("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def state_dict(*entries: tuple[str, bytes]) -> bytes:
    return b"\x80\x02" + EMPTY_ORDERED_DICT + b"(" + b"".join(text(k) + v for k, v in entries) + b"u."


def legacy_file(obj: bytes, keys=("0",), storages=b"") -> bytes:
    head = b"".join(pickle.dumps(x, protocol=2) for x in (
        MAGIC, 1001, {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}))
    return head + obj + pickle.dumps(list(keys), protocol=2) + storages


def legacy_storage(values: np.ndarray) -> bytes:
    return values.size.to_bytes(8, "little") + values.tobytes()


def zip_file(obj: bytes, members=(), compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        archive.writestr("archive/data.pkl", obj)
        archive.writestr("archive/byteorder", b"little")
        for key, data in members:
            archive.writestr(f"archive/data/{key}", data)
    return buffer.getvalue()


VALUES = np.arange(4, dtype=np.float32)


def valid_files() -> dict[str, bytes]:
    return {
        "zip": zip_file(state_dict(("w", tensor())), [("0", VALUES.tobytes())]),
        "legacy": legacy_file(state_dict(("w", tensor(legacy=True))), storages=legacy_storage(VALUES)),
    }


def wrap(fmt: str, obj: bytes) -> bytes:
    """A pickle with one float storage of 4 elements beside it, in the format ``fmt``."""
    if fmt == "zip":
        return zip_file(obj, [("0", VALUES.tobytes())])
    return legacy_file(obj, storages=legacy_storage(VALUES))


# -- running a load under watch ----------------------------------------------------------
@pytest.fixture
def watched(tmp_path, monkeypatch):
    """``load(data) -> (result or CheckpointError, peak bytes)``, with ``os.system`` replaced
    by a recorder and a marker file that any executed payload would create."""
    calls = []
    monkeypatch.setattr(os, "system", lambda *args: calls.append(args))
    marker = tmp_path / "executed"
    path = tmp_path / "checkpoint.pth"
    modules = set(sys.modules)

    def load(data: bytes):
        path.write_bytes(data)
        tracemalloc.start()
        try:
            try:
                outcome = mio.load(path)
            except CheckpointError as error:
                outcome = error
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert not calls and not marker.exists(), "the file ran code"
        new = {name for name in set(sys.modules) - modules if not name.startswith(("encodings.", "hypothesis."))}
        assert not new, f"the file imported {new}"
        return outcome, peak

    load.marker = str(marker)
    return load


def refused(watched, data: bytes, message: str) -> None:
    outcome, peak = watched(data)
    assert isinstance(outcome, CheckpointError), f"loaded: {outcome!r:.200}"
    assert message in str(outcome), str(outcome)
    assert peak < SMALL_PEAK


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_the_hand_made_files_are_valid(watched, fmt):
    outcome, _ = watched(valid_files()[fmt])
    assert list(outcome) == ["w"]
    np.testing.assert_array_equal(outcome["w"], VALUES)


# -- code execution ----------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("module, name, argument", [
    ("os", "system", "touch {marker}"),
    ("posix", "system", "touch {marker}"),
    ("builtins", "eval", "open({marker!r}, 'w')"),
    ("builtins", "exec", "open({marker!r}, 'w')"),
    ("builtins", "getattr", "system"),
    ("builtins", "open", "{marker}"),
    ("subprocess", "call", "touch {marker}"),
    ("torch", "load", "{marker}"),
])
def test_global_and_reduce_of_anything_else_is_refused_before_it_runs(watched, fmt, module, name, argument):
    payload = global_(module, name) + tuple_(text(argument.format(marker=watched.marker))) + b"R"
    for attack in (b"\x80\x02" + payload + b".", state_dict(("w", payload))):
        refused(watched, wrap(fmt, attack), f"global {module}.{name} is not allowed")


def test_stack_global_of_builtins_eval_is_refused(watched):
    attack = b"\x80\x04" + text("builtins") + text("eval") + b"\x93" + tuple_(text("1+1")) + b"R."
    refused(watched, wrap("zip", attack), "global builtins.eval is not allowed")


def test_a_real_pickle_attack_is_refused(watched):
    class CreatesMarker:
        def __reduce__(self):
            return open, (watched.marker, "w")

    refused(watched, wrap("zip", pickle.dumps({"w": CreatesMarker()}, protocol=2)), "is not allowed")


@pytest.mark.parametrize("opcode, name", [
    (b"i", "INST"), (b"o", "OBJ"), (b"\x81", "NEWOBJ"), (b"\x92", "NEWOBJ_EX"), (b"\x82", "EXT1"), (b"P", "PERSID"),
    (b"I", "INT"), (b"2", "DUP"), (b"\x8f", "EMPTY_SET"), (b"\x97", "NEXT_BUFFER"), (b"\xff", "unknown"),
])
def test_opcodes_outside_the_whitelist_are_named(watched, opcode, name):
    refused(watched, wrap("zip", b"\x80\x02" + EMPTY_ORDERED_DICT + opcode + b"."), f"pickle opcode {name}")


def test_reduce_may_not_call_a_storage_type(watched):
    attack = state_dict(("w", global_("torch", "FloatStorage") + tuple_(integer(10**12)) + b"R"))
    refused(watched, wrap("zip", attack), "REDUCE calls torch.FloatStorage")


@pytest.mark.parametrize("storage", ["UntypedStorage", "ComplexFloatStorage", "QInt8Storage"])
def test_unknown_storage_types_are_refused(watched, storage):
    refused(watched, wrap("zip", state_dict(("w", tensor(storage=storage)))), f"global torch.{storage} is not allowed")


# -- sizes that lie ----------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("numel", [5, 10**9, 2**60])
def test_storages_claiming_more_than_the_file_holds_allocate_nothing(watched, fmt, numel):
    obj = state_dict(("w", tensor(numel=numel, size=(numel,), legacy=fmt == "legacy")))
    if fmt == "zip":
        refused(watched, zip_file(obj, [("0", VALUES.tobytes())]), "its member holds 16")
    else:
        prefix = numel.to_bytes(8, "little")
        refused(watched, legacy_file(obj, storages=prefix + VALUES.tobytes()), "truncated")


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("offset, size, stride, message", [
    (0, (2**20, 2**20), (1, 1), "past storage"),
    (3, (2,), (1,), "past storage"),
    (0, (2, 3), (3, 1), "past storage"),
    (-1, (1,), (1,), "negative"),
    (0, (2,), (-1,), "negative"),
    (0, (2, 2), (1,), "differ in length"),
    (0, (2**40,) * 4, (0,) * 4, "larger than numpy can address"),
    (0, (-2,), (1,), "negative dimension"),
])
def test_views_outside_their_storage_are_refused(watched, fmt, offset, size, stride, message):
    obj = state_dict(("w", tensor(offset=offset, size=size, stride=stride, legacy=fmt == "legacy")))
    refused(watched, wrap(fmt, obj), message)


def test_a_legacy_prefix_that_disagrees_with_the_pickle_is_refused(watched):
    obj = state_dict(("w", tensor(legacy=True)))
    refused(watched, legacy_file(obj, storages=(3).to_bytes(8, "little") + VALUES.tobytes()), "its prefix 3")


def test_legacy_keys_must_match_the_storages_used(watched):
    obj = state_dict(("w", tensor(legacy=True)))
    refused(watched, legacy_file(obj, keys=("0", "1"), storages=legacy_storage(VALUES) * 2), "must be the same set")


def patch_central_size(data: bytes, member: str, size: int) -> bytes:
    """Make the central directory claim ``size`` bytes (compressed and not) for ``member``."""
    start = data.index(b"PK\x01\x02")
    while not data[start + 46:].startswith(member.encode()):
        start = data.index(b"PK\x01\x02", start + 4)
    fields = size.to_bytes(4, "little") * 2
    return data[:start + 20] + fields + data[start + 28:]


@pytest.mark.parametrize("size, message", [(2**32 - 1, "past the end of the file"), (32, "its member holds 32"),
                                           (8, "its member holds 8")])
def test_zip_members_that_lie_about_their_size_are_refused(watched, size, message):
    refused(watched, patch_central_size(valid_files()["zip"], "archive/data/0", size), message)


def test_a_member_whose_size_and_pickle_agree_on_a_lie_fails_its_crc(watched):
    data = zip_file(state_dict(("w", tensor(numel=8, size=(8,)))), [("0", VALUES.tobytes())])
    refused(watched, patch_central_size(data, "archive/data/0", 32), "broken zip")


def test_a_compressed_member_is_refused(watched):
    data = zip_file(state_dict(("w", tensor())), [("0", VALUES.tobytes())], compression=zipfile.ZIP_DEFLATED)
    refused(watched, data, "compressed")


# -- truncation, nesting, bounds ----------------------------------------------------------
@given(fmt=st.sampled_from(["zip", "legacy"]), data=st.data())
def test_every_truncation_is_refused(watched, fmt, data):
    whole = valid_files()[fmt]
    cut = data.draw(st.integers(0, len(whole) - 1))
    outcome, peak = watched(whole[:cut])
    assert isinstance(outcome, CheckpointError) and peak < SMALL_PEAK


@given(fmt=st.sampled_from(["zip", "legacy"]), data=st.data())
def test_mutated_files_load_or_raise_checkpoint_error(watched, fmt, data):
    whole = bytearray(valid_files()[fmt])
    for _ in range(data.draw(st.integers(1, 4))):
        whole[data.draw(st.integers(0, len(whole) - 1))] = data.draw(st.integers(0, 255))
    outcome, peak = watched(bytes(whole))
    assert isinstance(outcome, (CheckpointError, dict)) and peak < SMALL_PEAK


def test_deeply_nested_marks_tuples_and_lists_are_refused(watched):
    refused(watched, wrap("zip", b"\x80\x02" + b"(" * 10_000 + b"."), "MARKs nest deeper")
    refused(watched, wrap("zip", b"\x80\x02)" + b"\x85" * 10_000 + b"."), "tuples nest deeper")
    lists = b"]q\x00" + b"0]h\x00aq\x00" * 10_000  # memo 0 := [memo 0], ten thousand times
    refused(watched, wrap("zip", state_dict(("w", lists))), "containers nest deeper")
    cycle = b"]q\x00h\x00a"  # a list that contains itself
    refused(watched, wrap("zip", state_dict(("w", cycle))), "met twice")


def test_the_stack_and_the_memo_are_bounded(watched, monkeypatch):
    monkeypatch.setattr(torch_pickle, "MAX_STACK", 100)
    refused(watched, wrap("zip", b"\x80\x02" + b"N" * 200 + b"."), "stack grows past 100")
    monkeypatch.setattr(torch_pickle, "MAX_MEMO", 100)
    refused(watched, wrap("zip", b"\x80\x04N" + b"\x94" * 200 + b"0."), "memo grows past 100")


@pytest.mark.parametrize("attack, message", [
    (b"\x80\x02X\xff\xff\xff\x7f.", "truncated"),
    (b"\x80\x02\x8b\xff\xff\xff\x7f.", "an integer of"),
    (b"\x80\x02h\x05.", "memo entry 5"),
    (b"\x80\x02a.", "pops an empty stack"),
    (b"\x80\x02}N]s.", "dict key must be str or int"),
    (b"\x80\x02T\xff\xff\xff\xff.", "negative length"),
])
def test_malformed_streams_are_refused(watched, attack, message):
    refused(watched, wrap("zip", attack), message)


def test_not_a_checkpoint(watched):
    refused(watched, b"hello", "not a PyTorch checkpoint")
