"""Helpers shared by the tutorials in ``tutorials/``: sizes by mode, where figures go, tables.

Every tutorial runs at two sizes: the full one (under 2 minutes on a 2-core CPU) and a
fast one for CI and quick checks (under 30 s), chosen by the environment::

    MINIFT_FAST=1 python tutorials/02_layers_and_training.py      # fast mode
    MINIFT_OUT=/tmp/figures python tutorials/02_...py             # figures go there

- ``fast_mode()``: whether ``MINIFT_FAST=1``;
- ``pick(full, fast)``: the value for the current mode, e.g. ``epochs = pick(8, 2)``;
- ``output_dir()``: where figures and files go (created): ``MINIFT_OUT`` when set, else
  ``tutorials/out/`` when the tutorial runs from the repository, else ``./minift-out/``;
- ``savefig(fig, name)``: save a matplotlib figure there and say where;
- ``print_table(rows, headers)``: a plain-text table, columns aligned.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FAST_ENV, OUT_ENV = "MINIFT_FAST", "MINIFT_OUT"


def fast_mode() -> bool:
    """True when the environment variable ``MINIFT_FAST`` is ``1`` (CI runs every tutorial so)."""
    value = os.environ.get(FAST_ENV, "")
    if value not in ("", "0", "1"):
        raise ValueError(f"{FAST_ENV} must be 1 (fast mode) or 0 / unset (full size), got {value!r}")
    return value == "1"


def pick(full, fast):
    """``fast`` in fast mode, ``full`` otherwise."""
    return fast if fast_mode() else full


def _tutorials_dir() -> Path | None:
    """The ``tutorials/`` directory this runs from: the running script's directory (as a
    script), or the working directory or its ``tutorials/`` child (as a notebook)."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    candidates = [Path(main_file).resolve().parent] if main_file else []
    candidates += [Path.cwd(), Path.cwd() / "tutorials"]
    return next((path for path in candidates if path.name == "tutorials" and path.is_dir()), None)


def output_dir() -> Path:
    """The directory for figures and files (created if needed); see the module docstring."""
    if os.environ.get(OUT_ENV):
        path = Path(os.environ[OUT_ENV])
    else:
        tutorials = _tutorials_dir()
        path = tutorials / "out" if tutorials is not None else Path.cwd() / "minift-out"
    path.mkdir(parents=True, exist_ok=True)
    return path


def savefig(fig, name: str) -> Path:
    """Save the matplotlib figure ``fig`` as ``output_dir() / name`` and return the path.

    The figure stays open, so a notebook still shows it below the cell.
    """
    if not name or Path(name).name != name:
        raise ValueError(f"savefig needs a file name without directories, e.g. 'curve.png', got {name!r}")
    path = output_dir() / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"saved {path}")
    return path


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def print_table(rows, headers) -> None:
    """Print ``rows`` (sequences as long as ``headers``) as aligned columns; floats get 3 decimals."""
    headers = [str(h) for h in headers]
    cells = [[_cell(value) for value in row] for row in rows]
    for index, row in enumerate(cells):
        if len(row) != len(headers):
            raise ValueError(f"row {index} has {len(row)} values for {len(headers)} headers: {row}")
    widths = [max(len(row[i]) for row in [headers, *cells]) for i in range(len(headers))]
    lines = [headers, ["-" * width for width in widths], *cells]
    for row in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
