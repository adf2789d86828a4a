"""The kernel contract: which implementation runs each hot path.

minift's ops never call a convolution or a matmul directly; they call the functions
below, which dispatch to one *backend* — a module that implements every entry of
``CONTRACT`` with exactly the signature and semantics documented here:

================  ==========================================  =========================
backend           module                                       arrays
================  ==========================================  =========================
``numpy``         ``minift.reference`` (the oracle)            NumPy
``numba``         ``minift.kernels.numba.backend`` (@njit)  NumPy
``cupy``          ``minift.kernels.cupy.backend`` (CUDA C)   CuPy (on an NVIDIA GPU)
================  ==========================================  =========================

Choose with the environment variable ``MINIFT_BACKEND=numpy|numba|cupy|auto`` (read at
import; default ``auto``) or in code::

    with minift.backend.use_backend("numba"):
        loss = model(x).sum()

``auto`` picks the fastest backend that imports (numba, else numpy) and never fails.
Asking for an unavailable backend by name raises ``BackendUnavailableError`` with the
install command. CuPy arrays always run on the CuPy kernels (device placement follows the
data); ``MINIFT_BACKEND=cupy`` also makes ``"cuda"`` the default device for new tensors.

The contract (every kernel reads any strided input, never writes to its inputs, and
returns new C-contiguous arrays of the input's floating dtype, float32 or float64; all
floating inputs of one call share that dtype, anything else is a TypeError, never a silent
upcast; an empty batch, N = 0, is allowed):

``matmul(a, b)``
    ``a (..., M, K) @ b (..., K, N) -> (..., M, N)``; batch dimensions broadcast as in
    ``numpy.matmul``. Both operands are at least 2-D (the op layer handles 1-D cases).

``conv2d_forward(x, weight, bias, stride, padding, dilation)``
    ``x (N, C, H, W)``, ``weight (O, C, KH, KW)``, ``bias (O,)`` or ``None``; ``stride``,
    ``padding``, ``dilation`` are ``(int, int)`` pairs for (height, width). Zero padding.
    ``Ho = (H + 2*ph - dh*(KH-1) - 1) // sh + 1`` (likewise ``Wo``), and::

        y[n, o, i, j] = bias[o] + sum_{c,p,q} weight[o, c, p, q] * xpad[n, c, i*sh + p*dh, j*sw + q*dw]

    returns ``y (N, O, Ho, Wo)``.

``conv2d_backward_input(grad_y, weight, input_shape, stride, padding, dilation)``
    ``dL/dx`` of the above: ``grad_y (N, O, Ho, Wo)``, returns ``grad_x`` of
    ``input_shape = (N, C, H, W)`` (the transposed convolution; rows and columns of the
    input that no window reaches get zero).

``conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation)``
    ``dL/dW``: returns ``grad_w`` of ``weight_shape = (O, C, KH, KW)``,
    ``grad_w[o,c,p,q] = sum_{n,i,j} grad_y[n,o,i,j] * xpad[n, c, i*sh + p*dh, j*sw + q*dw]``.
    (``dL/dbias = grad_y.sum((0, 2, 3))`` is computed by the op, not by a kernel.)

``max_pool2d_forward(x, kernel_size, stride, padding, dilation)``
    ``x (N, C, H, W)``, pairs of ints as above; padding is with ``-inf`` and
    ``padding <= kernel_size // 2`` (PyTorch's rule). Returns ``(y, indices)``, both
    ``(N, C, Ho, Wo)``; ``indices`` is int64, the flat index ``h * W + w`` into the
    *unpadded* input plane of the maximum. Among equal maxima the first in row-major
    window order wins (PyTorch's rule); a NaN in a window wins over numbers (the first
    NaN). A window made only of padding (possible with dilation) is refused with a
    ValueError rather than returning -inf with an out-of-range index.

``max_pool2d_backward(grad_y, indices, input_shape)``
    Returns ``grad_x`` of ``input_shape``: zeros, then ``grad_y`` scatter-*added* at
    ``indices`` (overlapping windows may pick the same element).

``avg_pool2d_forward(x, kernel_size, stride, padding)``
    Zero padding with ``padding <= kernel_size // 2``, ``count_include_pad=True``
    (PyTorch's default): every window sum is divided by ``KH * KW``. Returns ``y (N, C, Ho, Wo)``.

``avg_pool2d_backward(grad_y, input_shape, kernel_size, stride, padding)``
    Returns ``grad_x`` of ``input_shape``: each ``grad_y[n,c,i,j] / (KH*KW)`` added to
    every input element of its window.
"""

from __future__ import annotations

import importlib
import os
from contextlib import contextmanager

from . import threads

CONTRACT = (
    "matmul",
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
)

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


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution or pooling window along one axis (floor mode).

    ``(size + 2*padding - dilation*(kernel-1) - 1) // stride + 1``; every backend uses this,
    through ``minift.contract.geometry``, which also checks the window arguments.
    """
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


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
    """The function that runs ``kernel`` for data like ``array`` under the current backend.

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


# The dispatching entry points that ops call. Signatures and semantics: see the module docstring.

def matmul(a, b):
    return implementation("matmul", a)(a, b)


def conv2d_forward(x, weight, bias, stride, padding, dilation):
    return implementation("conv2d_forward", x)(x, weight, bias, stride, padding, dilation)


def conv2d_backward_input(grad_y, weight, input_shape, stride, padding, dilation):
    return implementation("conv2d_backward_input", grad_y)(grad_y, weight, input_shape, stride, padding, dilation)


def conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation):
    return implementation("conv2d_backward_weight", grad_y)(grad_y, x, weight_shape, stride, padding, dilation)


def max_pool2d_forward(x, kernel_size, stride, padding, dilation):
    return implementation("max_pool2d_forward", x)(x, kernel_size, stride, padding, dilation)


def max_pool2d_backward(grad_y, indices, input_shape):
    return implementation("max_pool2d_backward", grad_y)(grad_y, indices, input_shape)


def avg_pool2d_forward(x, kernel_size, stride, padding):
    return implementation("avg_pool2d_forward", x)(x, kernel_size, stride, padding)


def avg_pool2d_backward(grad_y, input_shape, kernel_size, stride, padding):
    return implementation("avg_pool2d_backward", grad_y)(grad_y, input_shape, kernel_size, stride, padding)
