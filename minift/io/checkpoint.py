"""Nested training state <-> a flat table of arrays plus a JSON tree.

A training checkpoint is nested: ``{"model": {name: array}, "optimizer": {"state":
{0: {"momentum_buffer": array, "step": 3}}, "param_groups": [...]}, "epoch": 4, ...}``.
Both file formats store a flat ``name -> array`` table, so ``flatten`` splits the state
in two:

- every array goes into the table under a path-like key built from where it sits
  (``optimizer/state/0/momentum_buffer``; a ``~2`` suffix if two paths would collide);
- everything else becomes a JSON tree in which each array is replaced by a reference
  to its key.

JSON alone cannot say everything Python can, so a few one-key objects act as tags::

    {"__array__": "model/fc.weight"}   a numpy array: the table entry of that key
    {"__scalar__": "epoch_loss"}       a numpy scalar (np.float32(0.5)): a 0-d table entry
    {"__tuple__": [1, 2]}              a tuple (a JSON list comes back as a list)
    {"__dict__": [[0, v], ["lr", w]]}  a dict whose keys are not all strings (JSON object
                                       keys are), as [key, value] pairs in order
    {"__float__": "nan"}               nan, inf or -inf (not valid JSON numbers)

Any other dict with string keys stays a JSON object (it takes the ``__dict__`` form only
if it would look like a tag). Python ints of any size, floats (to the last bit: ``repr``
round-trips), strings, bools and None are JSON's own. Dict keys must be ``str`` or ``int``.
Arrays come back as numpy arrays, bit-identical with the same dtype; a minift Tensor comes
back as its ``.data``.
"""

from __future__ import annotations

import json
import math

import numpy as np

from minift.io.common import CheckpointError, to_numpy

TREE_KEY = "minift_checkpoint"  # safetensors metadata key / npz array name of the JSON tree
FORMAT = "minift.checkpoint"
VERSION = 1
TAGS = ("__array__", "__scalar__", "__tuple__", "__dict__", "__float__")
NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def flatten(state: dict) -> tuple[str, dict[str, np.ndarray]]:
    """Split nested ``state`` into ``(json_text, arrays)``; raise CheckpointError naming
    the path of any value that cannot be stored."""
    arrays: dict[str, np.ndarray] = {}
    try:
        tree = _encode(state, (), arrays)
        text = json.dumps({"format": FORMAT, "version": VERSION, "state": tree}, allow_nan=False)
    except RecursionError:
        raise CheckpointError("the checkpoint state is nested too deeply to save") from None
    except CheckpointError:
        raise
    except ValueError as error:  # e.g. an int with more digits than Python will print
        raise CheckpointError(f"the checkpoint state cannot be written as JSON: {error}") from None
    return text, arrays


def _array_key(path: tuple, arrays: dict) -> str:
    """A readable table key for the array at ``path``, unique in ``arrays``."""
    # ascii() escapes what a safetensors name or a zip member name cannot hold (NUL, surrogates).
    key = "/".join(ascii(str(part))[1:-1] for part in path)
    candidate, copy = key, 1
    while candidate in arrays or candidate == TREE_KEY:
        copy += 1
        candidate = f"{key}~{copy}"
    return candidate


def _encode(value, path: tuple, arrays: dict):
    where = "/".join(map(str, path))
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic) and not isinstance(value, (np.str_, np.bytes_)):
        key = _array_key(path, arrays)
        arrays[key] = to_numpy(value, where)
        return {"__scalar__": key}
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return {"__float__": repr(float(value))} if not math.isfinite(value) else float(value)
    if isinstance(value, (list, tuple)):
        items = [_encode(item, (*path, index), arrays) for index, item in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise CheckpointError(f"checkpoint key {key!r} at {where!r} is a {type(key).__name__}; keys must be str or int")
        encoded = {key: _encode(item, (*path, key), arrays) for key, item in value.items()}
        if all(isinstance(key, str) for key in encoded) and not (len(encoded) == 1 and next(iter(encoded)) in TAGS):
            return encoded
        return {"__dict__": [[key, item] for key, item in encoded.items()]}
    key = _array_key(path, arrays)
    arrays[key] = to_numpy(value, where)  # raises for anything that is no array either
    return {"__array__": key}


def unflatten(text: str, arrays: dict[str, np.ndarray], path) -> dict:
    """Rebuild the nested state from ``flatten``'s output (as read back from ``path``)."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise CheckpointError(f"{path}: the checkpoint's JSON tree is invalid ({error})") from None
    if not (isinstance(document, dict) and document.get("format") == FORMAT and "state" in document):
        raise CheckpointError(f"{path}: the JSON tree is not a {FORMAT} document")
    if document.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {document.get('version')!r}; this minift reads version {VERSION}")
    used: set[str] = set()
    try:
        state = _decode(document["state"], arrays, used, path, "state")
    except RecursionError:
        raise CheckpointError(f"{path}: the checkpoint's JSON tree is nested too deeply") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: the checkpoint state must be a dict, got {type(state).__name__}")
    unused = arrays.keys() - used
    if unused:
        raise CheckpointError(f"{path}: arrays {sorted(unused)[:5]} are not referenced by the JSON tree")
    return state


def _decode(node, arrays: dict, used: set, path, where: str):
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_decode(item, arrays, used, path, f"{where}/{index}") for index, item in enumerate(node)]
    if len(node) == 1 and next(iter(node)) in TAGS:
        (tag, content), = node.items()
        return _decode_tag(tag, content, arrays, used, path, where)
    return {key: _decode(item, arrays, used, path, f"{where}/{key}") for key, item in node.items()}


def _decode_tag(tag: str, content, arrays: dict, used: set, path, where: str):
    def fail(expected):
        return CheckpointError(f"{path}: at {where!r}, {tag} must hold {expected}, got {content!r:.100}")

    if tag in ("__array__", "__scalar__"):
        if not isinstance(content, str) or content not in arrays or content in used:
            raise fail("the key of an array in the file, used once")
        used.add(content)
        if tag == "__array__":
            return arrays[content]
        if arrays[content].ndim != 0:
            raise fail("the key of a 0-d array")
        return arrays[content][()]
    if tag == "__float__":
        if not isinstance(content, str) or content not in NONFINITE:
            raise fail("'nan', 'inf' or '-inf'")
        return NONFINITE[content]
    if not isinstance(content, list):
        raise fail("a list")
    if tag == "__tuple__":
        return tuple(_decode(item, arrays, used, path, f"{where}/{index}") for index, item in enumerate(content))
    if not all(
        isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (str, int)) and not isinstance(pair[0], bool)
        for pair in content
    ):
        raise fail("[key, value] pairs with str or int keys")
    return {key: _decode(item, arrays, used, path, f"{where}/{key}") for key, item in content}
