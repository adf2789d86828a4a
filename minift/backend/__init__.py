"""Backend selection: which implementation of the kernel contract runs the hot paths.

The kernel contract (``minift.contract``) checks each call and then asks ``implementation``
here for the kernel to run. A *backend* is a module that implements every entry of
``minift.contract.CONTRACT``:

================  ==========================================  =========================
backend           module                                       arrays
================  ==========================================  =========================
``numpy``         ``minift.reference`` (the oracle)            NumPy
``numba``         ``minift.kernels.numba.backend`` (@njit)     NumPy
``cupy``          ``minift.kernels.cupy.backend`` (CUDA C)     CuPy (on an NVIDIA GPU)
================  ==========================================  =========================

Choose with the environment variable ``MINIFT_BACKEND=numpy|numba|cupy|auto`` (read at
import; default ``auto``) or in code::

    with minift.backend.use_backend("numba"):
        loss = model(x).sum()

``auto`` picks the fastest backend that imports (numba, else numpy) and never fails.
Asking for an unavailable backend by name raises ``BackendUnavailableError`` with the
install command. CuPy arrays always run on the CuPy kernels (device placement follows the
data); ``MINIFT_BACKEND=cupy`` also makes ``"cuda"`` the default device for new tensors.

This package never imports NumPy: ``threads.py`` configures the thread pools before NumPy
loads, and the backend modules are imported only when first selected.
"""

from __future__ import annotations

import importlib
import os
from contextlib import contextmanager

from . import threads

BACKEND_MODULES = {
    "numpy": "minift.reference",
    "numba": "minift.kernels.numba.backend",
    "cupy": "minift.kernels.cupy.backend",
}

INSTALL_HINTS = {
    "numpy": "numpy is minift's only hard dependency; reinstall minift",
    "numba": "pip install 'minift[numba]'   (or: pip install numba)",
    "cupy": "pip install 'minift[cuda]'    (an NVIDIA GPU and a CUDA 12 driver; 'minift[cuda13]' for CUDA 13)",
}


class BackendUnavailableError(RuntimeError):
    """Raised when a backend is asked for by name and cannot be used here."""


_loaded: dict[str, object] = {}
_failures: dict[str, str] = {}


def _load(name: str):
    """Import a backend module once; remember why it failed if it did."""
    if name in _loaded:
        return _loaded[name]
    if name in _failures:
        return None
    try:
        module = importlib.import_module(BACKEND_MODULES[name])
        check = getattr(module, "check_available", None)
        if check is not None:
            check()  # raises with a reason, e.g. cupy imports but no GPU is usable
    except Exception as exc:  # an optional backend may fail in many ways; keep the why
        _failures[name] = f"{type(exc).__name__}: {exc}"
        return None
    _loaded[name] = module
    return module


def available_backends() -> dict[str, tuple[bool, str]]:
    """Map each backend name to ``(available, reason)``; imports each at most once."""
    report = {}
    for name in BACKEND_MODULES:
        ok = _load(name) is not None
        report[name] = (ok, "ok" if ok else _failures[name])
    return report


def _resolve(name: str) -> str:
    """Turn a requested name into a usable CPU backend name, or raise."""
    name = name.strip().lower()
    if name == "auto":
        return "numba" if _load("numba") is not None else _resolve("numpy")
    if name not in BACKEND_MODULES:
        raise ValueError(
            f"unknown backend {name!r}: expected one of "
            f"{', '.join([*BACKEND_MODULES, 'auto'])}"
        )
    if _load(name) is None:
        raise BackendUnavailableError(
            f"backend {name!r} is not available ({_failures[name]}). "
            f"To install it: {INSTALL_HINTS[name]}"
        )
    return name


_state = {"requested": None, "cpu": None, "default_device": "cpu"}


def set_backend(name: str) -> None:
    """Select the backend for the hot paths (``numpy``, ``numba``, ``cupy`` or ``auto``).

    ``cupy`` makes ``"cuda"`` the default device for new tensors; CPU arrays then run on
    the fastest CPU backend. Nothing changes if the name is bad or unavailable.
    """
    resolved = _resolve(name)
    if resolved == "cupy":
        _state.update(requested="cupy", cpu=_resolve("auto"), default_device="cuda")
    else:
        _state.update(requested=resolved, cpu=resolved, default_device="cpu")


def get_backend() -> str:
    """The backend in use: ``numpy``, ``numba`` or ``cupy``."""
    if _state["requested"] is None:
        set_backend(os.environ.get("MINIFT_BACKEND", "auto"))
    return _state["requested"]


def default_device() -> str:
    """``"cuda"`` under the cupy backend, else ``"cpu"``."""
    get_backend()
    return _state["default_device"]


@contextmanager
def use_backend(name: str):
    """Run a block on another backend, then restore the previous one."""
    get_backend()
    saved = dict(_state)
    set_backend(name)
    try:
        yield
    finally:
        _state.update(saved)


def _is_cupy(array) -> bool:
    return type(array).__module__.startswith("cupy")


def implementation(kernel: str, array):
    """The kernel named ``kernel`` (an entry of ``minift.contract.CONTRACT``) of the backend
    that runs data like ``array`` now: the CuPy backend for a CuPy array, else the selected one.

    Also lets ``threads`` re-fit the CPU thread count to the free cores (every 0.3 s at most).
    """
    threads.tick()
    if _is_cupy(array):
        module = _load("cupy")
        if module is None:
            raise BackendUnavailableError(f"got a CuPy array but the cupy backend is unusable: {_failures['cupy']}")
    else:
        get_backend()
        module = _loaded[_state["cpu"]]
    return getattr(module, kernel)
