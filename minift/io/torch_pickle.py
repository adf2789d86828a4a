"""A pickle interpreter that runs nothing: the opcode stream of a PyTorch checkpoint,
read with a fixed whitelist.

A pickle is a program for a small stack machine. Python's unpickler runs it, and two of its
instructions make it dangerous: ``GLOBAL module name`` imports any module and fetches any
attribute (``os system``, ``builtins eval``), and ``REDUCE`` calls what sits on the stack
with arguments from the file. ``torch.load(weights_only=False)`` runs that program, so a
checkpoint can run any code.

This module interprets the same opcodes itself and never imports, looks up or calls
anything the file names. ``GLOBAL`` yields a ``Global(module, name)`` *token* — a pair of
strings — and only the names in ``ALLOWED_GLOBALS`` are accepted; ``REDUCE`` accepts only
three tokens, each interpreted here by a function of this module:

====================================  ===========================================
``collections.OrderedDict``           ``()`` -> an empty ``OrderedDict``
``torch._utils._rebuild_tensor_v2``   ``(storage, offset, size, stride, requires_grad,
                                      hooks[, metadata])`` -> a ``TensorRef``
``torch._utils._rebuild_parameter``   ``(tensor, requires_grad, hooks)`` -> the tensor
====================================  ===========================================

The storage types (``torch.FloatStorage`` ...) may only appear inside a persistent id
(``BINPERSID``), PyTorch's pointer from the pickle to the raw bytes kept beside it:
``("storage", storage type, key, location, numel)`` becomes a ``StorageRef``. The caller
(``torch_checkpoint``) checks every claimed size against the file before it reads a byte.

Every other opcode — ``INST``, ``OBJ``, ``NEWOBJ``, ``EXT*``, the text-protocol ones —
raises ``CheckpointError`` naming it, as does any ``GLOBAL`` not in the table. Dict keys
must be str or int (nothing else is ever hashed), tuples nest at most ``MAX_DEPTH`` deep,
the stack holds at most ``MAX_STACK`` items and the memo ``MAX_MEMO`` entries, and every
length the stream claims is checked against the bytes left before it is read.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from minift.io.common import CheckpointError

MAX_DEPTH = 100
MAX_STACK = 100_000
MAX_MEMO = 1_000_000
MAX_LINE = 256       # a GLOBAL's module or name
MAX_LONG_BYTES = 64  # LONG1/LONG4 integers (the legacy magic number needs 10)

# PyTorch storage type -> the dtype of its elements, little-endian (``byteorder`` may flip it).
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"), "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # raw bits; widened to float32 by the caller
    "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"), "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"), "BoolStorage": np.dtype("?"),
}
ORDERED_DICT = ("collections", "OrderedDict")
REBUILD_TENSOR = ("torch._utils", "_rebuild_tensor_v2")
REBUILD_PARAMETER = ("torch._utils", "_rebuild_parameter")
ALLOWED_GLOBALS = frozenset({ORDERED_DICT, REBUILD_TENSOR, REBUILD_PARAMETER, *(("torch", s) for s in STORAGE_DTYPES)})

# Every opcode of pickle protocols 0-5, by byte, for the error messages.
OPCODE_NAMES = {
    b"(": "MARK", b".": "STOP", b"0": "POP", b"1": "POP_MARK", b"2": "DUP", b"F": "FLOAT", b"I": "INT",
    b"J": "BININT", b"K": "BININT1", b"L": "LONG", b"M": "BININT2", b"N": "NONE", b"P": "PERSID",
    b"Q": "BINPERSID", b"R": "REDUCE", b"S": "STRING", b"T": "BINSTRING", b"U": "SHORT_BINSTRING",
    b"V": "UNICODE", b"X": "BINUNICODE", b"a": "APPEND", b"b": "BUILD", b"c": "GLOBAL", b"d": "DICT",
    b"}": "EMPTY_DICT", b"e": "APPENDS", b"g": "GET", b"h": "BINGET", b"i": "INST", b"j": "LONG_BINGET",
    b"l": "LIST", b"]": "EMPTY_LIST", b"o": "OBJ", b"p": "PUT", b"q": "BINPUT", b"r": "LONG_BINPUT",
    b"s": "SETITEM", b"t": "TUPLE", b")": "EMPTY_TUPLE", b"u": "SETITEMS", b"G": "BINFLOAT",
    b"\x80": "PROTO", b"\x81": "NEWOBJ", b"\x82": "EXT1", b"\x83": "EXT2", b"\x84": "EXT4", b"\x85": "TUPLE1",
    b"\x86": "TUPLE2", b"\x87": "TUPLE3", b"\x88": "NEWTRUE", b"\x89": "NEWFALSE", b"\x8a": "LONG1",
    b"\x8b": "LONG4", b"B": "BINBYTES", b"C": "SHORT_BINBYTES", b"\x8c": "SHORT_BINUNICODE",
    b"\x8d": "BINUNICODE8", b"\x8e": "BINBYTES8", b"\x8f": "EMPTY_SET", b"\x90": "ADDITEMS",
    b"\x91": "FROZENSET", b"\x92": "NEWOBJ_EX", b"\x93": "STACK_GLOBAL", b"\x94": "MEMOIZE", b"\x95": "FRAME",
    b"\x96": "BYTEARRAY8", b"\x97": "NEXT_BUFFER", b"\x98": "READONLY_BUFFER",
}


@dataclass(frozen=True)
class Global:
    """The name a ``GLOBAL`` opcode gave: two strings, never imported."""

    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class StorageRef:
    """A persistent id: ``numel`` elements of ``dtype`` stored under ``key`` beside the pickle."""

    key: str
    storage_type: str
    dtype: np.dtype
    numel: int


@dataclass
class TensorRef:
    """``_rebuild_tensor_v2``'s arguments: a strided view (in elements) of a storage."""

    storage: StorageRef
    offset: int
    shape: tuple
    stride: tuple


class _Mark:
    """The MARK sentinel on the stack."""


MARK = _Mark()


class TorchUnpickler:
    """Interpret one pickle from ``file`` (a binary file positioned at its start) without
    running anything; ``end`` is the position past which the file has no bytes.

    ``load()`` returns the object: dicts, lists, tuples, str, bytes, int, float, bool,
    None, ``OrderedDict``, ``TensorRef``. ``storages`` maps each key to its ``StorageRef``.
    """

    def __init__(self, file, end: int, where: str):
        self.file, self.end, self.where = file, end, where
        self.stack: list = []
        self.marks: list[int] = []
        self.memo: dict[int, object] = {}
        self.storages: dict[str, StorageRef] = {}
        self.tuple_depth: dict[int, int] = {}  # id(tuple) -> nesting depth, for tuples built here
        self.keep_alive: list = []  # the tuples in tuple_depth, alive so that no id is reused

    def error(self, message: str) -> CheckpointError:
        return CheckpointError(f"{self.where}: {message}")

    # -- reading ------------------------------------------------------------------------
    def read(self, n: int) -> bytes:
        position = self.file.tell()
        if n < 0:
            raise self.error(f"a negative length {n} at offset {position}")
        if n > self.end - position:
            raise self.error(f"truncated: the pickle claims {n} bytes at offset {position}, the file has {self.end - position} left")
        data = self.file.read(n)
        if len(data) != n:
            raise self.error(f"truncated: {len(data)} of {n} bytes read at offset {position}")
        return data

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def readline(self) -> str:
        data = bytearray()
        while (byte := self.read(1)) != b"\n":
            data += byte
            if len(data) > MAX_LINE:
                raise self.error(f"a GLOBAL name longer than {MAX_LINE} bytes")
        return self.text(bytes(data))

    def text(self, data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise self.error(f"a string is not UTF-8 ({error})") from None

    # -- the stack ----------------------------------------------------------------------
    def push(self, value) -> None:
        if len(self.stack) >= MAX_STACK:
            raise self.error(f"the pickle's stack grows past {MAX_STACK} items")
        self.stack.append(value)

    def pop(self):
        if not self.stack or self.stack[-1] is MARK:
            raise self.error("an opcode pops an empty stack")
        return self.stack.pop()

    def pop_mark(self) -> list:
        if not self.marks:
            raise self.error("an opcode needs a MARK and there is none")
        start = self.marks.pop()
        items = self.stack[start + 1:]
        del self.stack[start:]
        return items

    def make_tuple(self, items) -> tuple:
        depth = 1 + max((self.tuple_depth.get(id(item), 1) for item in items if isinstance(item, tuple)), default=0)
        if depth > MAX_DEPTH:
            raise self.error(f"tuples nest deeper than {MAX_DEPTH}")
        value = tuple(items)
        if depth > 1:
            self.tuple_depth[id(value)] = depth
            self.keep_alive.append(value)
        return value

    def memoize(self, index: int) -> None:
        if not self.stack:
            raise self.error("a memo opcode with an empty stack")
        if index not in self.memo and len(self.memo) >= MAX_MEMO:
            raise self.error(f"the memo grows past {MAX_MEMO} entries")
        self.memo[index] = self.stack[-1]

    def recall(self, index: int) -> None:
        if index not in self.memo:
            raise self.error(f"memo entry {index} is read before it is written")
        self.push(self.memo[index])

    # -- containers ---------------------------------------------------------------------
    def set_items(self, target, items: list) -> None:
        if not isinstance(target, dict) or len(items) % 2:
            raise self.error(f"SETITEM(S) on a {type(target).__name__} with {len(items)} values")
        for key, value in zip(items[::2], items[1::2]):
            if not isinstance(key, (str, int)):
                raise self.error(f"a dict key must be str or int, got {type(key).__name__}")
            target[key] = value

    def append_items(self, target, items: list) -> None:
        if not isinstance(target, list):
            raise self.error(f"APPEND(S) on a {type(target).__name__}")
        target.extend(items)

    def top(self):
        if not self.stack or self.stack[-1] is MARK:
            raise self.error("an opcode needs a value on the stack and there is none")
        return self.stack[-1]

    # -- the three callables and the persistent id ---------------------------------------
    def global_token(self, module: str, name: str) -> Global:
        if (module, name) not in ALLOWED_GLOBALS:
            raise self.error(
                f"global {module}.{name} is not allowed: a PyTorch checkpoint needs only "
                "collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter and "
                f"the storage types torch.{'/'.join(STORAGE_DTYPES)}; nothing was imported or called"
            )
        return Global(module, name)

    def reduce(self, function, args):
        if not isinstance(function, Global) or not isinstance(args, tuple):
            raise self.error(f"REDUCE of a {type(function).__name__} with {type(args).__name__} arguments")
        pair = (function.module, function.name)
        if pair == ORDERED_DICT:
            if args:
                raise self.error("collections.OrderedDict is only rebuilt from () (its items follow)")
            return OrderedDict()
        if pair == REBUILD_TENSOR:
            return self.rebuild_tensor(args)
        if pair == REBUILD_PARAMETER:
            if len(args) != 3 or not isinstance(args[0], TensorRef):
                raise self.error("torch._utils._rebuild_parameter expects (tensor, requires_grad, hooks)")
            self.check_hooks(args[2], "_rebuild_parameter")
            return args[0]
        raise self.error(f"REDUCE calls {function}: only OrderedDict and the tensor rebuilders may be called")

    def check_hooks(self, hooks, where: str) -> None:
        if not (isinstance(hooks, OrderedDict) and not hooks):
            raise self.error(f"{where}: backward hooks must be an empty OrderedDict, got {type(hooks).__name__}")

    def rebuild_tensor(self, args: tuple) -> TensorRef:
        """``_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
        backward_hooks[, metadata])``; sizes, strides and offset are checked later, against
        the storage, by ``tensor_view``."""
        if len(args) not in (6, 7):
            raise self.error(f"_rebuild_tensor_v2 expects 6 or 7 arguments, got {len(args)}")
        storage, offset, shape, stride, _, hooks, *metadata = args
        if not isinstance(storage, StorageRef):
            raise self.error(f"_rebuild_tensor_v2's storage is a {type(storage).__name__}, not a persistent storage")
        if not (_is_int(offset) and isinstance(shape, tuple) and isinstance(stride, tuple)
                and all(_is_int(n) for n in shape + stride)):
            raise self.error("_rebuild_tensor_v2 expects an int offset and tuples of ints for size and stride")
        self.check_hooks(hooks, "_rebuild_tensor_v2")
        if metadata and metadata[0] not in (None, {}):
            raise self.error("_rebuild_tensor_v2: tensor metadata (a subclass's state) is not supported")
        return TensorRef(storage, offset, shape, stride)

    def persistent_load(self, pid) -> StorageRef:
        """``("storage", type, key, location, numel)`` (zip), or the same with a sixth
        ``view_metadata`` that must be None (legacy)."""
        if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
            raise self.error("a persistent id must be ('storage', type, key, location, numel[, None])")
        _, storage_type, key, location, numel, *view = pid
        if view and view[0] is not None:
            raise self.error(f"storage {key!r}: storage views (legacy view_metadata) are not supported")
        if not (isinstance(storage_type, Global) and storage_type.module == "torch"
                and storage_type.name in STORAGE_DTYPES):
            raise self.error(f"storage {key!r}: unknown storage type {storage_type}")
        if not isinstance(key, str) or not isinstance(location, str) or not _is_int(numel) or numel < 0:
            raise self.error(f"storage {key!r}: key and location must be str and numel an int >= 0")
        ref = StorageRef(key, storage_type.name, STORAGE_DTYPES[storage_type.name], numel)
        if self.storages.setdefault(key, ref) != ref:
            raise self.error(f"storage {key!r} is claimed twice with different types or sizes")
        return ref

    # -- the interpreter ----------------------------------------------------------------
    def load(self):
        """Run the opcodes up to ``STOP``; return the object on the stack."""
        while True:
            opcode = self.read(1)
            handler = HANDLERS.get(opcode)
            if handler is None:
                name = OPCODE_NAMES.get(opcode, "unknown")
                raise self.error(f"pickle opcode {name} ({opcode!r}) at offset {self.file.tell() - 1} is not allowed")
            if handler(self) is STOP:
                if len(self.stack) != 1 or self.marks:
                    raise self.error("STOP with a stack that does not hold exactly one object")
                return self.stack.pop()


STOP = object()


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _op_proto(u: TorchUnpickler):
    if u.read(1)[0] > 5:
        raise u.error("pickle protocol above 5")


def _op_mark(u: TorchUnpickler):
    if len(u.marks) >= MAX_DEPTH:
        raise u.error(f"MARKs nest deeper than {MAX_DEPTH}")
    u.marks.append(len(u.stack))
    u.push(MARK)


def _op_setitem(u: TorchUnpickler):
    value, key = u.pop(), u.pop()
    u.set_items(u.top(), [key, value])


def _op_setitems(u: TorchUnpickler):
    items = u.pop_mark()
    u.set_items(u.top(), items)


def _op_append(u: TorchUnpickler):
    value = u.pop()
    u.append_items(u.top(), [value])


def _op_appends(u: TorchUnpickler):
    items = u.pop_mark()
    u.append_items(u.top(), items)


def _op_tuple_n(n: int):
    def handler(u: TorchUnpickler):
        items = [u.pop() for _ in range(n)][::-1]
        u.push(u.make_tuple(items))
    return handler


def _op_global(u: TorchUnpickler):
    module = u.readline()
    u.push(u.global_token(module, u.readline()))


def _op_stack_global(u: TorchUnpickler):
    name, module = u.pop(), u.pop()
    if not isinstance(module, str) or not isinstance(name, str):
        raise u.error("STACK_GLOBAL expects two strings")
    u.push(u.global_token(module, name))


def _op_reduce(u: TorchUnpickler):
    args = u.pop()
    u.push(u.reduce(u.pop(), args))


def _op_build(u: TorchUnpickler):
    """``BUILD`` sets an object's state; PyTorch writes it only for a state dict's
    ``_metadata`` (per-module versions), which is checked to be a dict and dropped."""
    state = u.pop()
    if not (isinstance(u.top(), OrderedDict) and isinstance(state, dict)):
        raise u.error(f"BUILD of a {type(u.top()).__name__} with a {type(state).__name__} state")


def _op_long(width: str):
    def handler(u: TorchUnpickler):
        n = u.unpack(width)
        if n > MAX_LONG_BYTES:
            raise u.error(f"an integer of {n} bytes (at most {MAX_LONG_BYTES})")
        u.push(int.from_bytes(u.read(n), "little", signed=True))
    return handler


def _op_unicode(width: str):
    def handler(u: TorchUnpickler):
        u.push(u.text(u.read(u.unpack(width))))
    return handler


def _op_bytes(width: str):
    def handler(u: TorchUnpickler):
        u.push(u.read(u.unpack(width)))
    return handler


def _op_pop(u: TorchUnpickler):
    u.pop()


def _op_persid(u: TorchUnpickler):
    u.push(u.persistent_load(u.pop()))


HANDLERS = {
    b"\x80": _op_proto,
    b"\x95": lambda u: u.read(8),  # FRAME: a length hint, ignored (every read is checked anyway)
    b".": lambda u: STOP,
    b"(": _op_mark,
    b"0": _op_pop,
    b"}": lambda u: u.push({}),
    b"]": lambda u: u.push([]),
    b")": lambda u: u.push(()),
    b"t": lambda u: u.push(u.make_tuple(u.pop_mark())),
    b"\x85": _op_tuple_n(1),
    b"\x86": _op_tuple_n(2),
    b"\x87": _op_tuple_n(3),
    b"a": _op_append,
    b"e": _op_appends,
    b"s": _op_setitem,
    b"u": _op_setitems,
    b"N": lambda u: u.push(None),
    b"\x88": lambda u: u.push(True),
    b"\x89": lambda u: u.push(False),
    b"J": lambda u: u.push(u.unpack("<i")),
    b"K": lambda u: u.push(u.unpack("<B")),
    b"M": lambda u: u.push(u.unpack("<H")),
    b"\x8a": _op_long("<B"),
    b"\x8b": _op_long("<I"),
    b"G": lambda u: u.push(u.unpack(">d")),
    b"X": _op_unicode("<I"),
    b"\x8c": _op_unicode("<B"),
    b"\x8d": _op_unicode("<Q"),
    b"T": _op_unicode("<i"),   # BINSTRING: a Python 2 str, read as UTF-8 text
    b"U": _op_unicode("<B"),   # SHORT_BINSTRING
    b"B": _op_bytes("<I"),
    b"C": _op_bytes("<B"),
    b"q": lambda u: u.memoize(u.unpack("<B")),
    b"r": lambda u: u.memoize(u.unpack("<I")),
    b"\x94": lambda u: u.memoize(len(u.memo)),
    b"h": lambda u: u.recall(u.unpack("<B")),
    b"j": lambda u: u.recall(u.unpack("<I")),
    b"c": _op_global,
    b"\x93": _op_stack_global,
    b"R": _op_reduce,
    b"Q": _op_persid,
    b"b": _op_build,
}
