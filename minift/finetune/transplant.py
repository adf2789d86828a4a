"""Transplant: load a pretrained checkpoint into a model with a different head.

Transfer learning starts here. The pretrained model was a classifier for its own task
(10 kinds of clothing); the new model has the same body and a new head for the new task
(10 digits, or 5 classes). ``model.load_state_dict`` refuses that, rightly: the heads
differ. ``transplant`` loads what fits, by name, and says exactly what it did:

- ``loaded``: the model's entries that got pretrained values (body weights, and BatchNorm
  running statistics, which belong to the body as much as its weights do);
- ``new``: the model's entries the checkpoint did not provide (the new head), left as
  initialised;
- ``skipped``: the checkpoint's entries not used, each with the reason.

It is strict where a silent mistake would cost a fine-tuning run: every checkpoint entry
must either be loaded or be excluded on purpose (by ``skip`` patterns, or by not being
covered by ``prefix_map``), and a shape mismatch is an error unless the key is skipped.
So a checkpoint of another architecture fails loudly instead of loading half a model.
On any error nothing is changed.

``prefix_map`` renames checkpoint keys before matching, checkpoint prefix -> model prefix,
longest prefix first; when it is given, only checkpoint keys under one of its prefixes
are considered. ``{"": "body."}`` loads a bare feature extractor's checkpoint into
``model.body``; ``{"body.": "body."}`` takes the body of a full checkpoint and ignores its
head. ``skip`` holds fnmatch patterns of (renamed) keys not to load, e.g. ``["head.*"]``.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .. import io
from ..nn import Module
from ..engine.tensor import Tensor


@dataclass
class TransplantReport:
    """What ``transplant`` did: model keys ``loaded`` and ``new``; checkpoint keys
    ``skipped`` (a dict key -> reason)."""

    loaded: list = field(default_factory=list)
    new: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"transplant: {len(self.loaded)} entries loaded, {len(self.new)} new, {len(self.skipped)} skipped"]
        lines += [f"  new (kept as initialised): {key}" for key in self.new]
        lines += [f"  skipped {key}: {reason}" for key, reason in self.skipped.items()]
        return "\n".join(lines)


def transplant(model: Module, state_dict, prefix_map: Mapping | None = None, skip=()) -> TransplantReport:
    """Load the entries of ``state_dict`` (a mapping name -> array, or a path for
    ``minift.io.load``) that fit ``model``, by name; see the module docstring.

    Raises ``ValueError`` (and changes nothing) for a shape mismatch on a key not in
    ``skip``, a checkpoint key with no place in the model, two keys renamed onto one, or
    a checkpoint from which nothing would load.
    """
    if isinstance(state_dict, (str, os.PathLike)):
        state_dict = io.load(state_dict)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"transplant expects a state dict (mapping) or a checkpoint path, got {type(state_dict).__name__}")
    if prefix_map is not None and not (
        isinstance(prefix_map, Mapping) and all(isinstance(s, str) for item in prefix_map.items() for s in item)
    ):
        raise TypeError(f"prefix_map must map checkpoint prefixes (str) to model prefixes (str), got {prefix_map!r}")
    skip = [skip] if isinstance(skip, str) else list(skip)
    own = model.state_dict()
    report, selected, renamed_from, problems = TransplantReport(), {}, {}, []
    for key, value in state_dict.items():
        target = _rename(key, prefix_map)
        if target is None:
            report.skipped[key] = "not under any prefix of prefix_map"
            continue
        shape = tuple(np.shape(value.data if isinstance(value, Tensor) else value))
        if any(fnmatch.fnmatchcase(target, pattern) for pattern in skip):
            report.skipped[key] = f"matches skip (checkpoint shape {shape})"
        elif target in renamed_from:
            problems.append(f"  {key} and {renamed_from[target]} both map to {target}")
        elif target not in own:
            problems.append(f"  {key}{_renamed(key, target)}: the model has no such entry")
        elif own[target].shape != shape:
            problems.append(f"  {key}{_renamed(key, target)}: checkpoint shape {shape}, the model's {own[target].shape}")
        else:
            renamed_from[target] = key
            selected[target] = value
    if problems:
        raise ValueError(
            "checkpoint does not fit the model (nothing was changed); skip the entries on "
            "purpose with skip=[patterns], or map names with prefix_map:\n" + "\n".join(problems)
        )
    if not selected:
        raise ValueError(
            f"nothing to load: none of the {len(state_dict)} checkpoint entries fits the model "
            f"(its keys begin {list(state_dict)[:3]}, the model's {list(own)[:3]})"
        )
    model.load_state_dict(selected, strict=False)
    report.loaded = [key for key in own if key in selected]
    report.new = [key for key in own if key not in selected]
    return report


def _rename(key: str, prefix_map: Mapping | None) -> str | None:
    """``key`` with its longest matching prefix replaced; ``None`` if no prefix matches."""
    if prefix_map is None:
        return key
    for prefix in sorted(prefix_map, key=len, reverse=True):
        if key.startswith(prefix):
            return prefix_map[prefix] + key[len(prefix):]
    return None


def _renamed(key: str, target: str) -> str:
    return "" if key == target else f" (as {target})"
