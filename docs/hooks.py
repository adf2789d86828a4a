"""MkDocs hooks for minift's course website (``mkdocs.yml`` names this file under ``hooks``).

Four jobs, all at build time, all offline:

1. **Tutorials run in fast mode.** mkdocs-jupyter executes ``tutorials/NN_*.py`` in a
   Jupyter kernel that inherits this process's environment: ``MINIFT_FAST=1`` unless the
   caller set it (``MINIFT_FAST=0 mkdocs build`` renders them at full size), figures
   inline (``MPLBACKEND`` set to the inline backend, whatever CI exported), and the files
   the tutorials save in a temporary ``MINIFT_OUT``. A tutorial whose optional files are
   not installed (MiniLM's weights for tutorial 10) is shown without outputs, and the log
   says why.
2. **MathJax comes from a pip package** (``django-static-mathjax``, in the ``docs`` extra),
   copied into the site as ``assets/mathjax/``: no CDN, so the site works offline.
3. **Pages include repository files by reference**, so the site and the repository never
   disagree: a line ``{{ include("README.md", "Two commands") }}`` is replaced by that
   section of the README (its ``##`` heading and everything up to the next ``##``), and
   ``{{ include("ARCHITECTURE.md") }}`` by the whole file. Relative links in the included
   text are rewritten for the page: to the site's own page when the target is one
   (``tutorials/...``, ``docs/...``, ``ARCHITECTURE.md``), to the API reference for a
   documented module (``minift/engine/tensor.py``), else to plain text; a link to a file
   that does not exist fails the build.
4. **Docstrings' reST literal blocks read right**: on the API pages a paragraph's closing
   ``::`` (which introduces the indented code under it) shows as one colon.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import posixpath
import re
import shutil
import tempfile
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.minift")

REPO = Path(__file__).resolve().parent.parent
INCLUDE = re.compile(r'^\{\{ include\("([^"]+)"(?:, "([^"]+)")?\) \}\}[ \t]*$', re.MULTILINE)
LINK = re.compile(r"(!?)\[([^\]\n]+)\]\(([^)\s]+)\)")
API_DIRECTIVE = re.compile(r"^::: ([\w.]+)", re.MULTILINE)
SITE_PAGES = {"ARCHITECTURE.md": "architecture.md"}        # repository file -> docs page
SITE_FOLDERS = ("tutorials/", "docs/")                      # folders the site shows (docs/tutorials is a link)
MATHJAX_FILES = ("tex-chtml-full.js", "output/chtml/fonts/woff-v2/*.woff")
MINILM_TUTORIAL = "*/tutorials/10_finetune_minilm.py"

_documented_modules: set = set()
_scratch: dict = {}  # the MINIFT_OUT folder this hook made, removed after the build


def on_config(config):
    os.environ.setdefault("MINIFT_FAST", "1")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    if not os.environ.get("MINIFT_OUT") or os.environ["MINIFT_OUT"] == _scratch.get("out"):
        _scratch["out"] = os.environ["MINIFT_OUT"] = tempfile.mkdtemp(prefix="minift-docs-out-")
    _skip_tutorials_without_their_files(config)
    _execute_only(config, os.environ.get("MINIFT_DOCS_EXECUTE"))
    _documented_modules.clear()
    for page in Path(config["docs_dir"]).glob("api/*.md"):
        _documented_modules.update(API_DIRECTIVE.findall(page.read_text(encoding="utf-8")))
    return config


def _skip_tutorials_without_their_files(config) -> None:
    from minift.text import load_r8, locate_minilm_l6_v2

    try:
        locate_minilm_l6_v2()
        load_r8()
    except FileNotFoundError as missing:
        log.info("tutorial 10 is shown without outputs: %s", str(missing).splitlines()[0])
        config["plugins"]["mkdocs-jupyter"].config["execute_ignore"].append(MINILM_TUTORIAL)
    try:
        import skimage  # noqa: F401  (tutorial 11's photographs)
        from minift.models.efficientnet import find_weights

        find_weights()
    except (ImportError, FileNotFoundError) as missing:
        log.info("tutorial 11 is shown without outputs: %s", str(missing).splitlines()[0])
        config["plugins"]["mkdocs-jupyter"].config["execute_ignore"].append("*/tutorials/11_imagenet_efficientnet.py")


def _execute_only(config, pattern: str | None) -> None:
    """``MINIFT_DOCS_EXECUTE=01_*``: execute only the tutorials matching the glob, show the
    others without outputs. The site test builds so: the tutorials' own test runs them all."""
    if not pattern:
        return
    ignore = config["plugins"]["mkdocs-jupyter"].config["execute_ignore"]
    for path in sorted((REPO / "tutorials").glob("[0-9][0-9]_*.py")):
        if not fnmatch.fnmatch(path.name, pattern):
            ignore.append(f"*/tutorials/{path.name}")


def on_post_build(config):
    if _scratch.get("out"):
        shutil.rmtree(_scratch["out"], ignore_errors=True)


def on_files(files, config):
    try:
        import mathjax
    except ImportError as missing:
        raise PluginError("the site needs MathJax from PyPI: pip install -e '.[docs]'") from missing
    root = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    for pattern in MATHJAX_FILES:
        found = sorted(root.glob(pattern))
        if not found:
            raise PluginError(f"MathJax file {pattern} not found under {root}")
        for path in found:
            uri = "assets/mathjax/" + path.relative_to(root).as_posix()
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown, page, config, files):
    page_dir = posixpath.dirname(page.file.src_uri)
    return INCLUDE.sub(lambda m: _included(m.group(1), m.group(2), page_dir), markdown)


def on_page_content(html, page, config, files):
    """Docstrings follow reST's "literal block" rule: a paragraph ending in ``::`` introduces
    the indented code below it, and the reader sees a single colon."""
    if page.file.src_uri.startswith("api/"):
        html = html.replace("::</p>", ":</p>")
    return html


def _included(name: str, section: str | None, page_dir: str) -> str:
    path = REPO / name
    if not path.is_file():
        raise PluginError(f"include: {name} does not exist in the repository")
    text = path.read_text(encoding="utf-8")
    if section is not None:
        text = _section(text, section, name)
    source_dir = posixpath.dirname(name)
    return LINK.sub(lambda m: _link(m, source_dir, page_dir, name), text)


def _section(text: str, heading: str, name: str) -> str:
    """The ``## heading`` section of ``text``, up to the next heading of level 1 or 2."""
    match = re.search(rf"^## {re.escape(heading)}[ \t]*$", text, re.MULTILINE)
    if match is None:
        headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
        raise PluginError(f"include: {name} has no section '## {heading}'; its sections: {headings}")
    end = re.compile(r"^#{1,2} ", re.MULTILINE).search(text, match.end())
    return text[match.start():end.start() if end else len(text)].rstrip() + "\n"


def _link(match, source_dir: str, page_dir: str, name: str) -> str:
    bang, text, target = match.groups()
    if re.match(r"^([a-z]+:|#|/)", target):
        return match.group(0)
    target_path, _, anchor = target.partition("#")
    repo_path = posixpath.normpath(posixpath.join(source_dir, target_path))
    if not (REPO / repo_path).exists():
        raise PluginError(f"include: {name} links to {target}, which does not exist")
    page = SITE_PAGES.get(repo_path) or next(
        (repo_path.removeprefix("docs/") for folder in SITE_FOLDERS if repo_path.startswith(folder)), None)
    if page is not None:
        relative = posixpath.relpath(page, page_dir or ".")
        return f"{bang}[{text}]({relative}{'#' + anchor if anchor else ''})"
    module = _module_name(repo_path)
    if module and any(module == m or module.startswith(m + ".") for m in _documented_modules):
        return f"[{text}][{module}]"
    return text


def _module_name(repo_path: str) -> str | None:
    """``minift/engine/tensor.py`` -> ``minift.engine.tensor``; ``kernels/x.py`` -> ``minift.kernels.x``."""
    parts = repo_path.removesuffix(".py").split("/")
    if parts[0] == "kernels":
        parts[0:1] = ["minift", "kernels"]
    return ".".join(parts) if parts[0] == "minift" else None
