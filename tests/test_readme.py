"""Every Python block of the README and of the docs pages runs, as written, in a test.

For each page (``README.md``, then ``docs/*.md`` when the site's sources exist) the fenced
``python`` blocks run in order, in one fresh interpreter and one namespace, as a reader
pasting them one after the other would, in an empty folder. Before them, the commands
the text tells the reader to run first: a page that uses ``minift-demo/`` gets the folder
that ``minift demo --out minift-demo`` writes (the real demo's outputs, run once per
session by the ``demo_outputs`` fixture of ``tests/conftest.py``). The install commands
of the ``bash`` blocks are the test environment itself.

A block that is not meant to run (a fragment, an illustration of a signature) is marked by
an HTML comment on the line just before its fence, which neither GitHub nor mkdocs shows::

    <!-- not-run: why it does not run -->

Every other ``python`` block must run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import default_demo_setting

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent> *)```+ *(?P<info>[\w+-]*)[^\n]*$")
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<why>.+?)\s*-->")
DEMO_FOLDER = "minift-demo"


@dataclass
class Block:
    language: str
    line: int  # 1-based line of the opening fence
    code: str
    not_run: str | None  # the reason, when marked


def code_blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, with the ``not-run`` mark of the line before each."""
    lines, blocks, index = text.splitlines(), [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, body, end = len(opening["indent"]), [], index + 1
        while end < len(lines) and not re.match(r"^ *```+ *$", lines[end]):
            body.append(lines[end][indent:])
            end += 1
        mark = NOT_RUN.search(lines[index - 1]) if index else None
        blocks.append(Block(opening["info"].lower(), index + 1, "\n".join(body) + "\n", mark and mark["why"]))
        index = end + 1
    return blocks


def runnable(page: Path) -> list[Block]:
    return [b for b in code_blocks(page.read_text(encoding="utf-8")) if b.language == "python" and not b.not_run]


RUNNER = """
import json, sys, traceback
blocks = json.load(open(sys.argv[1], encoding="utf-8"))
namespace = {"__name__": "__main__"}
for line, code in blocks:
    try:
        exec(compile(code, f"{sys.argv[2]}, the block at line {line}", "exec"), namespace)
    except BaseException:
        traceback.print_exc()
        print(f"FAILED: the block at line {line} of {sys.argv[2]}", file=sys.stderr)
        sys.exit(1)
"""


def test_the_block_parser_reads_fences_and_marks():
    text = "x\n```python\na = 1\n```\n<!-- not-run: a fragment -->\n```python\nb(\n```\n  ```bash\n  ls\n  ```\n"
    blocks = code_blocks(text)
    assert [(b.language, b.line, b.code, b.not_run) for b in blocks] == [
        ("python", 2, "a = 1\n", None), ("python", 6, "b(\n", "a fragment"), ("bash", 9, "ls\n", None)]


def test_every_page_has_runnable_blocks_or_says_why_not():
    assert runnable(ROOT / "README.md"), "the README has no runnable python block"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_python_block_runs_in_order(page, tmp_path, demo_outputs):
    blocks = runnable(page)
    if not blocks:
        return  # nothing to run on this page: every block is marked not-run or is not python
    if any(DEMO_FOLDER in block.code for block in blocks):  # the text says: run minift demo first
        shutil.copytree(demo_outputs(*default_demo_setting()), tmp_path / DEMO_FOLDER)
    (tmp_path / "blocks.json").write_text(json.dumps([(b.line, b.code) for b in blocks]), encoding="utf-8")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", RUNNER, "blocks.json", page.name], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"{page.name}:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
