"""``minift course student OUT``: a student edition of minift.

The edition is an installable copy of the repository (``pyproject.toml``, ``minift/``,
``kernels/``, ``tests/``, ``tutorials/``, the README and the licence) in which the body of
each selected exercise's function is replaced, by parsing, with::

    raise NotImplementedError("Exercise 2.3 - <title>: <hint>")

Signatures and docstrings stay, so the student reads what to write; everything else imports
and runs, so once an exercise passes the rest of minift (the demo, the tutorials) runs on the
student's own code. What only graders need stays out: the kit's own tests (they hold planted
bugs made from the reference's lines) and the repository's history.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import source
from .exercises import Exercise, source_path

COPIED = ("pyproject.toml", "README.md", "LICENSE", "NOTICE", "minift", "kernels", "tests", "tutorials", "docs")
GRADER_ONLY = ("tests/test_course_kit.py",)
SKIPPED_NAMES = ("__pycache__", ".ipynb_checkpoints", "out", ".hypothesis", ".pytest_cache")


def repository_root() -> Path:
    """The source checkout this minift runs from (the folder above the ``minift`` package)."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "pyproject.toml").is_file() or not (root / "tests").is_dir():
        raise FileNotFoundError(
            f"the course kit needs a source checkout of minift (pyproject.toml and tests/ beside "
            f"the package), not an installed wheel; looked in {root}. Clone the repository and "
            f"`pip install -e .` it"
        )
    return root


def write_student_edition(out: Path, exercises: list[Exercise], root: Path | None = None) -> list[Path]:
    """Copy the repository at ``root`` to ``out`` and stub every exercise; return the files changed.

    ``out`` must not exist yet (nothing is overwritten); on any error nothing is left behind.
    """
    root = root or repository_root()
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} already exists: choose a new folder for the student edition")
    try:
        for name in COPIED:
            if (root / name).is_dir():
                shutil.copytree(root / name, out / name, ignore=shutil.ignore_patterns(*SKIPPED_NAMES))
            elif (root / name).is_file():
                out.mkdir(parents=True, exist_ok=True)
                shutil.copy2(root / name, out / name)
        for name in GRADER_ONLY:
            (out / name).unlink(missing_ok=True)
        changed = stub_exercises(out, exercises)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return changed


def stub_exercises(tree: Path, exercises: list[Exercise]) -> list[Path]:
    """Replace each exercise's body in the source tree at ``tree``; return the files changed."""
    by_file: dict[Path, list[Exercise]] = {}
    for exercise in exercises:
        by_file.setdefault(source_path(tree, exercise.module), []).append(exercise)
    for path, items in by_file.items():
        text = path.read_text(encoding="utf-8")
        for exercise in items:
            text = source.stub_body(text, exercise.qualname, exercise.stub_message, where=str(path))
        path.write_text(text, encoding="utf-8")
    return sorted(by_file)
