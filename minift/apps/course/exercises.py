"""The exercise list (``exercises.toml``), read and checked, and where its files live.

An ``Exercise`` names the function whose body the student writes by its module and
qualified name, ``"minift.functional.elementwise:Mul.backward"``; ``source_path`` turns the
module into its file inside a source tree (``minift.kernels.*`` lives in the top-level
``kernels/`` folder, as in the repository).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

EXERCISES_FILE = Path(__file__).with_name("exercises.toml")
ID_PATTERN = re.compile(r"^\d+\.\d+$")
FIELDS = {"id": str, "title": str, "target": str, "points": int, "tests": list, "hint": str, "taught": str}


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    target: str  # "module:Qualified.name"
    points: int
    tests: tuple[str, ...]  # pytest node ids, relative to the repository root
    hint: str
    taught: str  # the tutorial that teaches it

    @property
    def module(self) -> str:
        return self.target.split(":")[0]

    @property
    def qualname(self) -> str:
        return self.target.split(":")[1]

    @property
    def stub_message(self) -> str:
        """What the student's stub raises: which exercise, what to write, a hint."""
        return f"Exercise {self.id} - {self.title}: {self.hint}"


def source_path(root: Path, module: str) -> Path:
    """The file of ``module`` in the source tree at ``root`` (``minift.kernels`` is ``kernels/``)."""
    parts = module.split(".")
    if parts[:2] == ["minift", "kernels"]:
        parts = ["kernels", *parts[2:]]
    base = Path(root, *parts)
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _exercise(entry: dict, index: int) -> Exercise:
    where = f"{EXERCISES_FILE.name}: exercise {index + 1}"
    missing = [name for name in FIELDS if name not in entry]
    unknown = sorted(set(entry) - set(FIELDS))
    if missing or unknown:
        raise ValueError(f"{where}: missing fields {missing}, unknown fields {unknown}")
    for name, kind in FIELDS.items():
        if not isinstance(entry[name], kind) or isinstance(entry[name], bool):
            raise ValueError(f"{where}: {name} must be a {kind.__name__}, got {entry[name]!r}")
    if not ID_PATTERN.match(entry["id"]):
        raise ValueError(f"{where}: id must look like '2.3', got {entry['id']!r}")
    if entry["target"].count(":") != 1 or not entry["target"].startswith("minift."):
        raise ValueError(f"{where}: target must be 'minift.<module>:<Qualified.name>', got {entry['target']!r}")
    if entry["points"] < 1 or not entry["tests"] or not all(isinstance(t, str) for t in entry["tests"]):
        raise ValueError(f"{where}: points must be >= 1 and tests a non-empty list of pytest node ids")
    return Exercise(**{**entry, "tests": tuple(entry["tests"])})


def load_exercises(path: Path = EXERCISES_FILE) -> list[Exercise]:
    """Every exercise, in course order; raises ValueError naming a malformed entry."""
    entries = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("exercise", [])
    exercises = [_exercise(entry, index) for index, entry in enumerate(entries)]
    ids = [exercise.id for exercise in exercises]
    targets = [exercise.target for exercise in exercises]
    for name, values in (("id", ids), ("target", targets)):
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:
            raise ValueError(f"{Path(path).name}: each {name} must appear once, repeated: {repeated}")
    return exercises


def select(exercises: list[Exercise], ids: str | None) -> list[Exercise]:
    """The exercises named in ``ids`` ("1.1,2.3", or "1" for a whole part); all when None."""
    if ids is None:
        return exercises
    wanted = [item.strip() for item in ids.split(",") if item.strip()]
    chosen = [e for e in exercises if any(e.id == w or e.id.split(".")[0] == w for w in wanted)]
    unknown = [w for w in wanted if not any(e.id == w or e.id.split(".")[0] == w for e in exercises)]
    if unknown or not chosen:
        known = ", ".join(e.id for e in exercises)
        raise ValueError(f"unknown exercise ids {unknown or wanted}: expected some of {known} (or a part number)")
    return chosen
