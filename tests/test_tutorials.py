"""Every tutorial runs, in fast mode, as a script: its own assert cells are the checks.

Each ``tutorials/NN_*.py`` runs in a fresh subprocess with ``MINIFT_FAST=1``,
``MPLBACKEND=Agg`` and ``MINIFT_OUT`` set to a temporary directory; the test passes when
it exits with status 0. A tutorial whose optional data or weights are missing prints a
line ``SKIPPED: <why>`` and exits with status 77 (automake's "skipped"): the test is then
reported as skipped with that reason, never as passed. On failure the tail of its output
is shown.

Each file must also be a jupytext percent-format notebook (markdown and code cells),
checked when jupytext is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

TUTORIALS_DIR = Path(__file__).resolve().parent.parent / "tutorials"
TUTORIALS = sorted(TUTORIALS_DIR.glob("[0-9][0-9]_*.py"))
TAIL_CHARS = 6000
TIMEOUT_S = 600  # a safety net against a hung run, not a speed check (fast mode takes ~30 s of CPU)
SKIP_STATUS = 77  # a tutorial's "my optional data is missing" (automake's convention)


def test_tutorials_are_found():
    assert TUTORIALS, f"no tutorials matching NN_*.py in {TUTORIALS_DIR}"


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_in_fast_mode(path, tmp_path):
    env = {**os.environ, "MINIFT_FAST": "1", "MPLBACKEND": "Agg", "MINIFT_OUT": str(tmp_path / "out")}
    try:
        result = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"{path.name} ran longer than {TIMEOUT_S} s; the end of its output:\n"
                    f"{_text(expired.stdout)[-TAIL_CHARS:]}{_text(expired.stderr)[-TAIL_CHARS:]}")
    output = result.stdout + result.stderr
    if result.returncode == SKIP_STATUS:
        pytest.skip(skip_reason(path, result.stdout))
    assert result.returncode == 0, (
        f"{path.name} exited with status {result.returncode}; the end of its output:\n{output[-TAIL_CHARS:]}"
    )


def skip_reason(path: Path, stdout: str) -> str:
    """The tutorial's ``SKIPPED: why`` line, without the prefix."""
    reasons = [line.removeprefix("SKIPPED:").strip() for line in stdout.splitlines() if line.startswith("SKIPPED:")]
    return f"{path.stem}: {reasons[-1] if reasons else 'exited with the skip status without a SKIPPED: line'}"


def test_a_tutorial_without_its_data_is_reported_as_skipped_with_the_reason(tmp_path):
    """The convention, run end to end on a stand-in script: status 77 and its reason become a skip."""
    script = tmp_path / "99_needs_data.py"
    script.write_text("import sys\nprint('SKIPPED: needs the moon-rocks dataset')\nsys.exit(77)\n")
    with pytest.raises(pytest.skip.Exception, match="99_needs_data: needs the moon-rocks dataset"):
        test_tutorial_runs_in_fast_mode(script, tmp_path)


def _text(stream) -> str:
    """What a timed-out run printed (bytes, str or None, depending on the platform)."""
    if stream is None:
        return ""
    return stream.decode(errors="replace") if isinstance(stream, bytes) else stream


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_is_a_percent_format_notebook(path):
    jupytext = pytest.importorskip("jupytext")
    from jupytext.formats import guess_format

    detected, _ = guess_format(path.read_text(encoding="utf-8"), ".py")
    assert detected == "percent", f"{path.name} reads as jupytext's {detected!r} format, expected 'percent'"
    notebook = jupytext.read(path)
    kinds = [cell.cell_type for cell in notebook.cells]
    assert "markdown" in kinds and "code" in kinds, f"{path.name}: cells are {kinds}"
    assert kinds[0] == "markdown", f"{path.name} must open with a markdown cell (title, paper, runtime)"
    title = notebook.cells[0].source.lstrip()
    assert title.startswith("# "), f"{path.name}: the first cell must start with a '# ' title, got {title[:40]!r}"
    empty = [index for index, cell in enumerate(notebook.cells) if not cell.source.strip()]
    assert not empty, f"{path.name}: empty cells at {empty}"


# ---------------------------------------------------------------- the helpers in minift.apps.course

def test_fast_mode_and_pick_follow_the_environment(monkeypatch):
    from minift.apps import course

    monkeypatch.delenv("MINIFT_FAST", raising=False)
    assert not course.fast_mode() and course.pick("full", "fast") == "full"
    monkeypatch.setenv("MINIFT_FAST", "1")
    assert course.fast_mode() and course.pick("full", "fast") == "fast"
    monkeypatch.setenv("MINIFT_FAST", "yes")
    with pytest.raises(ValueError, match="MINIFT_FAST must be 1"):
        course.fast_mode()


def test_output_dir_prefers_the_environment_then_the_tutorials_folder(monkeypatch, tmp_path):
    from minift.apps import course

    monkeypatch.setenv("MINIFT_OUT", str(tmp_path / "figures" / "here"))
    assert course.output_dir() == tmp_path / "figures" / "here" and course.output_dir().is_dir()
    monkeypatch.delenv("MINIFT_OUT")
    (tmp_path / "tutorials").mkdir()
    monkeypatch.chdir(tmp_path / "tutorials")
    assert course.output_dir() == tmp_path / "tutorials" / "out"
    monkeypatch.chdir(tmp_path / "figures")
    assert course.output_dir() == tmp_path / "figures" / "minift-out"


def test_savefig_refuses_a_path_and_writes_a_file(monkeypatch, tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minift.apps import course

    monkeypatch.setenv("MINIFT_OUT", str(tmp_path))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    with pytest.raises(ValueError, match="file name without directories"):
        course.savefig(fig, "../outside.png")
    assert not list(tmp_path.parent.glob("outside.png"))
    path = course.savefig(fig, "line.png")
    plt.close(fig)
    assert path == tmp_path / "line.png" and path.read_bytes().startswith(b"\x89PNG")


cell_values = st.one_of(st.integers(-10**6, 10**6), st.floats(-1e3, 1e3, allow_nan=False),
                        st.text(alphabet="abcxyz -", max_size=12))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5).flatmap(lambda width: st.tuples(
    st.lists(st.text(alphabet="ABC", min_size=1, max_size=8), min_size=width, max_size=width),
    st.lists(st.lists(cell_values, min_size=width, max_size=width), max_size=6))))
def test_print_table_aligns_every_column(capsys, table):
    from minift.apps import course

    headers, rows = table
    course.print_table(rows, headers)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(rows) + 2
    rule = lines[1].split("  ")
    starts = [sum(len(cell) + 2 for cell in rule[:i]) for i in range(len(rule))]
    assert len(rule) == len(headers) and all(set(cell) == {"-"} for cell in rule)
    for line, row in zip(lines[2:], rows):
        for start, width, value in zip(starts, map(len, rule), row):
            expected = f"{value:.3f}" if isinstance(value, float) else str(value)
            assert line[start:start + width].rstrip() == expected.rstrip()


def test_print_table_refuses_a_row_of_the_wrong_length(capsys):
    from minift.apps import course

    with pytest.raises(ValueError, match="row 1 has 1 values for 2 headers"):
        course.print_table([(1, 2), (3,)], ["a", "b"])
    assert capsys.readouterr().out == ""
