"""Where Numba keeps its compiled kernels, decided before Numba is imported.

Every kernel is compiled with ``@njit(cache=True)``: the machine code is written to disk on
first use and loaded in later runs, so only the first run pays the seconds of compiling.
Numba writes that cache next to the source (``kernels/__pycache__``), or, when that folder
is read-only (a system-wide or container install), under the home directory. When neither
is writable, *importing* a module with ``cache=True`` fails. So, when ``NUMBA_CACHE_DIR``
is unset and this package's folder is not writable, we point ``NUMBA_CACHE_DIR`` at the
first writable one of:

1. ``$XDG_CACHE_HOME/minift/numba`` (default ``~/.cache/minift/numba``);
2. ``<temp dir>/minift-numba-<user id>``.

A ``NUMBA_CACHE_DIR`` you set yourself always wins. Every ``kernels/numba_*.py`` module
imports this one before it imports Numba.
"""

from __future__ import annotations

import os
import sys
import tempfile

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def is_writable_dir(path: str) -> bool:
    """True if ``path`` is (or can be made) a directory we can create files in."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".minift-probe-")
    except OSError:
        return False
    probe.close()
    return True


def user_cache_candidates() -> list[str]:
    """The fallback cache folders, in order of preference."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return [
        os.path.join(cache_home, "minift", "numba"),
        os.path.join(tempfile.gettempdir(), f"minift-numba-{user}"),
    ]


def choose_cache_dir() -> str | None:
    """The folder to give Numba as ``NUMBA_CACHE_DIR``, or None to keep Numba's default."""
    if os.environ.get("NUMBA_CACHE_DIR") or is_writable_dir(os.path.join(PACKAGE_DIR, "__pycache__")):
        return None
    return next((path for path in user_cache_candidates() if is_writable_dir(path)), None)


def configure_cache_dir() -> None:
    """Set ``NUMBA_CACHE_DIR`` if needed (also in Numba's config, if Numba is already loaded)."""
    path = choose_cache_dir()
    if path is None:
        return
    os.environ["NUMBA_CACHE_DIR"] = path
    config = sys.modules.get("numba.core.config")
    if config is not None:  # Numba read its environment already; tell it directly
        config.CACHE_DIR = path


configure_cache_dir()
