"""The course website builds with ``mkdocs build --strict`` and reads right in a real browser.

The build (once per run, in a temporary folder) executes tutorial 01 in fast mode (the
others are shown without outputs here: ``tests/test_tutorials.py`` runs every one) and
fails on any broken link, missing page, unresolved reference or failing tutorial cell.
Then headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by Selenium
with no download) opens the site from a local HTTP server and checks that a tutorial page
shows its figures and that the API page shows a docstring's math typeset by MathJax, with
every file the pages load coming from the site itself (no CDN: CI has no network).

Skips, with the reason, when the ``docs`` extra is not installed (``pip install -e
".[docs]"``) or, for the browser tests, when Chromium or its driver is missing;
``.ci/run`` installs all of them.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

for _module in ("mkdocs", "material", "mkdocstrings_handlers.python", "mkdocs_jupyter", "mathjax"):
    pytest.importorskip(_module, reason=f"the docs extra is not installed ({_module}): pip install -e '.[docs]'")

REPO = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT_S = 2400  # a safety net against a hung kernel, not a speed check (idle: ~4 min)
TAIL_CHARS = 6000
ASSET = re.compile(r"<(?:script|img|link|iframe)\b[^>]*?\b(?:src|href)=\"(https?:)?//", re.IGNORECASE)
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,2000")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built by ``mkdocs build --strict``, tutorial 01 executed in fast mode."""
    out = tmp_path_factory.mktemp("site")
    # Only tutorial 01 runs here (its figures are checked below): tests/test_tutorials.py runs them all.
    env = {**os.environ, "MINIFT_FAST": "1", "MINIFT_DOCS_CACHE": "false", "NO_MKDOCS_2_WARNING": "1",
           "MINIFT_DOCS_EXECUTE": "01_*",
           "MINIFT_OUT": str(tmp_path_factory.mktemp("tutorial-files"))}
    build = subprocess.Popen([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)  # its own process group: the kernels go with it
    try:
        log, _ = build.communicate(timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(build.pid, signal.SIGKILL)
        log, _ = build.communicate()
        pytest.fail(f"mkdocs build ran longer than {BUILD_TIMEOUT_S} s; the end of its log:\n{log[-TAIL_CHARS:]}")
    assert build.returncode == 0, f"mkdocs build --strict failed; the end of its log:\n{log[-TAIL_CHARS:]}"
    return out


def test_every_page_is_built(site):
    tutorials = sorted(p.stem for p in (REPO / "tutorials").glob("[0-9][0-9]_*.py"))
    pages = ["index.html", "getting-started/index.html", "fine-tuning/index.html", "speed/index.html",
             "architecture/index.html", "pytorch-differences/index.html", "tutorials/index.html",
             *[f"tutorials/{name}/index.html" for name in tutorials],
             *[f"api/{name}/index.html" for name in
               ("engine", "functional", "nn", "optim", "finetune", "train", "io", "data")]]
    missing = [page for page in pages if not (site / page).is_file()]
    assert not missing, f"pages not built: {missing}"


def test_no_page_loads_anything_from_another_host(site):
    offenders = {str(page.relative_to(site)): ASSET.findall(page.read_text(encoding="utf-8"))
                 for page in site.rglob("*.html")}
    offenders = {page: len(found) for page, found in offenders.items() if found}
    assert not offenders, f"pages loading scripts, styles or images from other hosts: {offenders}"


def test_the_tutorials_are_rendered_with_their_outputs(site):
    html = (site / "tutorials/01_autograd_from_scratch/index.html").read_text(encoding="utf-8")
    assert "all checks passed" in html                    # the output of its last code cell
    assert "data:image/png;base64," in html               # a figure, inline


# ---------------------------------------------------------------- in a real browser

@pytest.fixture(scope="module")
def server(site):
    """The built site over HTTP on the loopback interface; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("Chromium and its driver are not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[docs]'")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _open_and_wait_for(driver, url: str, script: str, what: str, timeout_s: float = 60):
    """Open ``url`` and return ``script``'s first truthy result (polled), failing after ``timeout_s``."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.2).until(lambda d: d.execute_script(script))
    except TimeoutException:
        pytest.fail(f"the page at {driver.current_url} never showed {what} within {timeout_s} s")


def _foreign_resources(driver, base: str) -> list:
    names = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    return [name for name in names if not name.startswith(base) and not name.startswith("data:")]


def test_a_tutorial_page_shows_its_figures(browser, server):
    figures = _open_and_wait_for(
        browser, server + "tutorials/01_autograd_from_scratch/",
        "const imgs = [...document.querySelectorAll('.jupyter-wrapper img')];"
        "return imgs.length && imgs.every(i => i.complete) ? imgs.map(i => [i.naturalWidth, i.naturalHeight]) : null;",
        "its figures loaded")
    assert len(figures) >= 2, f"tutorial 01 draws two matplotlib figures, the page shows {figures}"
    assert all(width > 0 and height > 0 for width, height in figures), f"a figure did not load: {figures}"
    assert _foreign_resources(browser, server) == []


def test_the_api_page_shows_a_docstrings_math_typeset(browser, server):
    count, width = _open_and_wait_for(
        browser, server + "api/functional/",
        "const m = document.querySelectorAll('.doc-contents .arithmatex mjx-container');"
        "return m.length ? [m.length, m[0].getBoundingClientRect().width] : null;",
        "a docstring's math typeset by MathJax")
    assert count >= 1 and width > 0, (count, width)
    errors = browser.execute_script("return document.querySelectorAll('mjx-merror').length")
    assert errors == 0, "MathJax reported errors in the page's math"
    assert _foreign_resources(browser, server) == []


# ---------------------------------------------------------------- docs/hooks.py: includes by reference

@pytest.fixture
def hooks(tmp_path, monkeypatch):
    """docs/hooks.py, reading a small repository made in ``tmp_path``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("minift_docs_hooks", REPO / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "tutorials").mkdir()
    (tmp_path / "tutorials" / "01_first.py").write_text("# %%\n", encoding="utf-8")
    (tmp_path / "minift" / "engine").mkdir(parents=True)
    (tmp_path / "minift" / "engine" / "tensor.py").write_text("", encoding="utf-8")
    (tmp_path / "LICENSE").write_text("MIT", encoding="utf-8")
    (tmp_path / "README.md").write_text(
        "# minift\n\nintro\n\n## Two commands\n\nSee [the course](tutorials/01_first.py), "
        "[the tensor](minift/engine/tensor.py), [the licence](LICENSE) and [PyTorch](https://pytorch.org).\n\n"
        "### A subsection\n\nkept\n\n## Next\n\nnot included\n", encoding="utf-8")
    monkeypatch.setattr(module, "REPO", tmp_path)
    monkeypatch.setattr(module, "_documented_modules", {"minift.engine"})
    return module


def test_an_included_section_runs_to_the_next_section_with_links_made_for_the_page(hooks):
    text = hooks._included("README.md", "Two commands", page_dir="guide")
    assert text.startswith("## Two commands\n") and "### A subsection\n\nkept" in text
    assert "not included" not in text and "intro" not in text
    assert "[the course](../tutorials/01_first.py)" in text          # a page of the site, from docs/guide/
    assert "[the tensor][minift.engine.tensor]" in text             # the API reference, by autorefs
    assert "the licence" in text and "(LICENSE)" not in text         # not on the site: plain text
    assert "[PyTorch](https://pytorch.org)" in text


def test_a_missing_section_or_file_or_link_target_fails_the_build(hooks):
    from mkdocs.exceptions import PluginError

    with pytest.raises(PluginError, match=r"no section '## Three commands'; its sections: \['Two commands', 'Next'\]"):
        hooks._included("README.md", "Three commands", page_dir="")
    with pytest.raises(PluginError, match="ARCHITECTURE.md does not exist"):
        hooks._included("ARCHITECTURE.md", None, page_dir="")
    (hooks.REPO / "NOTES.md").write_text("see [gone](gone.md)\n", encoding="utf-8")
    with pytest.raises(PluginError, match="NOTES.md links to gone.md, which does not exist"):
        hooks._included("NOTES.md", None, page_dir="")
