"""PyTorch's two checkpoint formats (``.pth`` / ``.pt`` / ``.bin``), read without running them.

Both hold one pickle (read by ``torch_pickle``, which runs nothing) whose tensors point,
through persistent ids, at raw storages kept beside it. Sources: ``torch/serialization.py``
(``_legacy_save`` / ``_legacy_load``, ``_save`` / ``_load``) and ``torch/_utils.py``.

**Zip** (``torch.save`` since PyTorch 1.6; Hugging Face's ``pytorch_model.bin``)::

    <name>/data.pkl       the pickle; a persistent id is ("storage", type, key, location, numel)
    <name>/data/<key>     each storage's bytes, numel * itemsize of them, stored uncompressed
    <name>/byteorder      "little" or "big" (absent in files older than PyTorch 2.1: little)
    <name>/version, ...   ignored

**Legacy** (before 1.6, or ``_use_new_zipfile_serialization=False``): five pickles and the
storages, back to back in one stream::

    pickle  MAGIC_NUMBER (0x1950A86A20F9469CFC6C)
    pickle  PROTOCOL_VERSION (1001)
    pickle  sys_info: {"protocol_version": 1001, "little_endian": bool,
                       "type_sizes": {"short": 2, "int": 4, "long": 4 or 8}}
    pickle  the object; a persistent id is ("storage", type, key, location, numel, None)
    pickle  the storage keys, sorted
    then, for each key in that order: numel as an 8-byte integer, then numel * itemsize bytes

``type_sizes["long"]`` is the C ``long`` of the machine that wrote the file (4 on Windows:
the EfficientNet-Lite0 file says 4); the storage's numel prefix is an ``int64_t`` whatever
it says (``THPStorage_writeFileRaw``), and the reader checks each prefix against the numel
the pickle claimed.

**Order of checks.** The pickle is interpreted first (its memory is bounded by its own
length), then every tensor's offset, shape and strides are checked against its storage's
claimed numel, and every storage's claimed size against the bytes the file really has.
Only then is anything allocated, each storage once (tensors sharing it share the read),
and each tensor copied out of it into an array of its own (C order, native byte order).
"""

from __future__ import annotations

import io
import os
import struct
import zipfile

import numpy as np

from minift.io.common import CheckpointError, check_bool_values, check_shape
from minift.io.torch_pickle import MAX_DEPTH, StorageRef, TensorRef, TorchUnpickler

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
ZIP_MAGIC = b"PK\x03\x04"
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, struct.error, NotImplementedError,
              KeyError, OverflowError, UnicodeDecodeError, ValueError)


def read_torch(path) -> dict[str, np.ndarray]:
    """``{name: array}`` from a PyTorch checkpoint: every tensor of the pickled object,
    named by its path of dict keys and list indices joined with ``"."`` (a state dict's own
    names). Other values (ints, strings, ``None``) are not arrays and are left out."""
    where = os.fspath(path)
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        head = file.read(4)
        file.seek(0)
        if head == ZIP_MAGIC:
            return _read_zip(file, size, where)
        if head[:2] == b"\x80\x02":
            return _read_legacy(file, size, where)
    raise CheckpointError(
        f"{where}: not a PyTorch checkpoint: it starts with {head!r}, neither a zip archive "
        "(PyTorch >= 1.6) nor the legacy pickle stream (b'\\x80\\x02')"
    )


# -- the legacy stream ------------------------------------------------------------------
def _read_legacy(file, size: int, where: str) -> dict[str, np.ndarray]:
    def one_pickle():
        return TorchUnpickler(file, size, where).load()

    if one_pickle() != LEGACY_MAGIC:
        raise CheckpointError(f"{where}: legacy stream with a wrong magic number (corrupt file?)")
    if one_pickle() != LEGACY_PROTOCOL:
        raise CheckpointError(f"{where}: legacy stream protocol is not {LEGACY_PROTOCOL}")
    sys_info = one_pickle()
    if not isinstance(sys_info, dict) or not isinstance(sys_info.get("little_endian"), bool):
        raise CheckpointError(f"{where}: legacy sys_info must be a dict with a bool 'little_endian'")
    order = "<" if sys_info["little_endian"] else ">"
    unpickler = TorchUnpickler(file, size, where)
    obj = unpickler.load()
    keys = one_pickle()
    if not (isinstance(keys, list) and all(isinstance(key, str) for key in keys)) or len(set(keys)) != len(keys):
        raise CheckpointError(f"{where}: legacy storage keys must be a list of distinct str")
    if set(keys) != set(unpickler.storages):
        raise CheckpointError(
            f"{where}: the stream stores storages {sorted(keys)[:5]}... but the pickle uses "
            f"{sorted(unpickler.storages)[:5]}...: they must be the same set"
        )
    tensors = _tensors(obj, where)
    # First pass: walk the numel prefixes and check every size against the file; no allocation.
    offsets = {}
    position = file.tell()
    for key in keys:
        ref = unpickler.storages[key]
        if size - position < 8:
            raise CheckpointError(f"{where}: truncated: storage {key!r}'s size prefix is past the end of the file")
        file.seek(position)
        numel = int.from_bytes(file.read(8), "little" if order == "<" else "big", signed=True)
        if numel != ref.numel:
            raise CheckpointError(f"{where}: storage {key!r}: the pickle claims {ref.numel} elements, its prefix {numel}")
        nbytes = ref.numel * ref.dtype.itemsize
        if nbytes > size - position - 8:
            raise CheckpointError(
                f"{where}: truncated: storage {key!r} claims {nbytes} bytes at offset {position + 8}, "
                f"the file has {size - position - 8} left"
            )
        offsets[key] = position + 8
        position += 8 + nbytes
    if position != size:
        raise CheckpointError(f"{where}: {size - position} bytes after the last storage")

    def read_storage(ref: StorageRef) -> np.ndarray:
        file.seek(offsets[ref.key])
        return _read_exactly(file, ref, order, where)

    return _materialize(tensors, read_storage, where)


# -- the zip archive --------------------------------------------------------------------
def _read_zip(file, size: int, where: str) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(file) as archive:
            return _read_archive(archive, size, where)
    except CheckpointError:
        raise
    except ZIP_ERRORS as error:
        raise CheckpointError(f"{where}: a broken zip archive ({type(error).__name__}: {error})") from None


def _member(archive: zipfile.ZipFile, name: str, size: int, where: str) -> zipfile.ZipInfo:
    """The member ``name``, checked: stored uncompressed (PyTorch never compresses), and
    its claimed size inside the archive's real size."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise CheckpointError(f"{where}: the archive has no member {name!r}") from None
    if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
        raise CheckpointError(f"{where}: member {name!r} is compressed; PyTorch stores members uncompressed")
    if info.header_offset + info.file_size > size:
        raise CheckpointError(f"{where}: member {name!r} claims {info.file_size} bytes, past the end of the file")
    return info


def _read_archive(archive: zipfile.ZipFile, size: int, where: str) -> dict[str, np.ndarray]:
    pickles = [name for name in archive.namelist() if name.endswith("data.pkl") and name.count("/") == 1]
    if len(pickles) != 1:
        raise CheckpointError(f"{where}: a PyTorch zip holds one '<name>/data.pkl', this one holds {len(pickles)}")
    prefix = pickles[0][: -len("data.pkl")]
    info = _member(archive, pickles[0], size, where)
    data = archive.read(info)  # read whole: its size was checked against the file
    unpickler = TorchUnpickler(io.BytesIO(data), len(data), f"{where}: {pickles[0]}")
    obj = unpickler.load()
    order = "<"
    if prefix + "byteorder" in archive.namelist():
        byteorder = archive.read(_member(archive, prefix + "byteorder", size, where))
        if byteorder not in (b"little", b"big"):
            raise CheckpointError(f"{where}: byteorder is {byteorder[:20]!r}, expected b'little' or b'big'")
        order = "<" if byteorder == b"little" else ">"
    tensors = _tensors(obj, where)
    members = {}
    for key, ref in unpickler.storages.items():
        members[key] = info = _member(archive, f"{prefix}data/{key}", size, where)
        if info.file_size != ref.numel * ref.dtype.itemsize:
            raise CheckpointError(
                f"{where}: storage {key!r}: the pickle claims {ref.numel} x {ref.dtype.itemsize} bytes, "
                f"its member holds {info.file_size}"
            )

    def read_storage(ref: StorageRef) -> np.ndarray:
        with archive.open(members[ref.key]) as member:  # checks the CRC at the end
            return _read_exactly(member, ref, order, where)

    return _materialize(tensors, read_storage, where)


# -- storages and tensors -----------------------------------------------------------------
def _read_exactly(file, ref: StorageRef, order: str, where: str) -> np.ndarray:
    """Read the storage's bytes into a fresh array of its dtype (sizes already checked)."""
    array = np.empty(ref.numel, ref.dtype.newbyteorder(order) if ref.dtype.itemsize > 1 else ref.dtype)
    got = file.readinto(memoryview(array).cast("B"))
    if got != array.nbytes:
        raise CheckpointError(f"{where}: truncated: storage {ref.key!r} has {got} of {array.nbytes} bytes")
    return array


def _tensors(obj, where: str) -> dict[str, TensorRef]:
    """The tensors of ``obj`` by dotted name, each checked against its storage's numel."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{where}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}")
    found: dict[str, TensorRef] = {}
    seen: set[int] = set()  # containers already walked: a cycle or a shared container is refused
    pending = [(obj, "", 0)]
    while pending:
        value, name, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise CheckpointError(f"{where}: containers nest deeper than {MAX_DEPTH} (at {name[:100]!r})")
        if isinstance(value, TensorRef):
            if name in found:
                raise CheckpointError(f"{where}: two tensors are both named {name!r}")
            _check_view(value, f"{where}: tensor {name!r}")
            found[name] = value
            continue
        if isinstance(value, (dict, list, tuple)) and value:
            if id(value) in seen:
                raise CheckpointError(f"{where}: {name[:100]!r} is a container met twice (shared or cyclic)")
            seen.add(id(value))
        if isinstance(value, dict):
            items = value.items()
        elif isinstance(value, (list, tuple)):
            items = enumerate(value)
        else:
            continue
        # reversed onto the stack, so that tensors come out in the file's order
        pending.extend(reversed([(item, f"{name}.{key}" if name else str(key), depth + 1) for key, item in items]))
    return found


def _check_view(ref: TensorRef, where: str) -> None:
    """A non-empty view must lie inside its storage: ``offset + sum((n - 1) * stride) < numel``."""
    if len(ref.shape) != len(ref.stride):
        raise CheckpointError(f"{where}: size {list(ref.shape)} and stride {list(ref.stride)} differ in length")
    count = check_shape(list(ref.shape), ref.storage.dtype.itemsize, where)
    if ref.offset < 0 or any(stride < 0 for stride in ref.stride):
        raise CheckpointError(f"{where}: negative storage offset or stride ({ref.offset}, {list(ref.stride)})")
    if count == 0:  # an empty view reads nothing, wherever it starts (PyTorch writes such offsets)
        return
    last = ref.offset + sum((n - 1) * stride for n, stride in zip(ref.shape, ref.stride))
    if last >= ref.storage.numel:
        raise CheckpointError(
            f"{where}: offset {ref.offset}, size {list(ref.shape)}, stride {list(ref.stride)} reach element {last}, "
            f"past storage {ref.storage.key!r} of {ref.storage.numel} elements"
        )


def _materialize(tensors: dict[str, TensorRef], read_storage, where: str) -> dict[str, np.ndarray]:
    """Read each storage once, and copy each tensor out of it (C order, native byte order)."""
    storages: dict[str, np.ndarray] = {}
    arrays = {}
    for name, ref in tensors.items():
        if ref.storage.key not in storages:
            storages[ref.storage.key] = read_storage(ref.storage)
        storage = storages[ref.storage.key]
        itemsize = storage.dtype.itemsize
        strides = [stride * itemsize if n > 1 else 0 for n, stride in zip(ref.shape, ref.stride)]
        view = np.lib.stride_tricks.as_strided(storage[ref.offset:], ref.shape, strides, writeable=False)
        array = np.array(view, dtype=storage.dtype.newbyteorder("="), order="C")
        if ref.storage.storage_type == "BFloat16Storage":  # the top 16 bits of a float32
            bits = array.astype(np.uint32)
            bits <<= 16
            array = bits.view(np.float32)
        check_bool_values(array, f"{where}: tensor {name!r}")
        arrays[name] = array
    return arrays
