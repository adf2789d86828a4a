"""Dependencies between packages go one way (issue 13.3): ``minift.train`` builds on
``minift.finetune``, never the reverse; ``minift.bench.steps`` takes ``Row`` from
``minift.bench.row``, not from the package that imports it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "minift"


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the minift modules a file imports (relative imports resolved)."""
    package = ["minift", *path.relative_to(PACKAGE).parent.parts]  # the package the file is in
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - (node.level - 1)] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names |= {module} | {f"{module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return {name for name in names if name.startswith("minift")}


@pytest.mark.parametrize("path", sorted((PACKAGE / "finetune").glob("*.py")), ids=lambda p: p.name)
def test_finetune_never_imports_train(path):
    assert not [name for name in imported_modules(path) if name.startswith("minift.train")]


def test_importing_finetune_does_not_load_train():
    code = "import sys, minift.finetune; print('minift.train' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_the_bench_steps_import_the_row_not_the_bench_package():
    bench = {name for name in imported_modules(PACKAGE / "bench" / "steps.py") if name.startswith("minift.bench")}
    assert bench <= {"minift.bench.row", "minift.bench.row.Row"}, bench
