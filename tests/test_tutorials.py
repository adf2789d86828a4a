"""Every tutorial runs, in fast mode, as a script: its own assert cells are the checks.

Each ``tutorials/NN_*.py`` runs in a fresh subprocess with ``MINIFT_FAST=1``,
``MPLBACKEND=Agg`` and ``MINIFT_OUT`` set to a temporary directory; the test passes when
it exits with status 0. A tutorial whose optional data or weights are missing prints why
and exits 0 itself. On failure the tail of its output is shown.

Each file must also be a jupytext percent-format notebook (markdown and code cells),
checked when jupytext is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS_DIR = Path(__file__).resolve().parent.parent / "tutorials"
TUTORIALS = sorted(TUTORIALS_DIR.glob("[0-9][0-9]_*.py"))
TAIL_CHARS = 6000
TIMEOUT_S = 600  # a safety net against a hung run, not a speed check (fast mode takes ~30 s of CPU)


def test_tutorials_are_found():
    assert TUTORIALS, f"no tutorials matching NN_*.py in {TUTORIALS_DIR}"


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_in_fast_mode(path, tmp_path):
    env = {**os.environ, "MINIFT_FAST": "1", "MPLBACKEND": "Agg", "MINIFT_OUT": str(tmp_path / "out")}
    result = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=TIMEOUT_S)
    output = result.stdout + result.stderr
    assert result.returncode == 0, (
        f"{path.name} exited with status {result.returncode}; the end of its output:\n{output[-TAIL_CHARS:]}"
    )


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_is_a_percent_format_notebook(path):
    jupytext = pytest.importorskip("jupytext")
    notebook = jupytext.read(path, fmt="py:percent")
    kinds = [cell.cell_type for cell in notebook.cells]
    assert "markdown" in kinds and "code" in kinds, f"{path.name}: cells are {kinds}"
    assert kinds[0] == "markdown", f"{path.name} must open with a markdown cell (title, paper, runtime)"
    assert notebook.cells[0].source.lstrip().startswith("# "), f"{path.name}: the first cell must start with a '# ' title"
    empty = [index for index, cell in enumerate(notebook.cells) if not cell.source.strip()]
    assert not empty, f"{path.name}: empty cells at {empty}"
