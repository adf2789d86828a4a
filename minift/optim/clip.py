"""Gradient clipping: rescale or clamp the gradients in place, between backward and step.

Both functions take an iterable of parameters (or one Tensor), act on the ``grad`` of
those that have one, and ignore the rest, as in ``torch.nn.utils``. Unlike PyTorch they
reject a negative ``max_norm`` or ``clip_value`` (which would flip or zero the gradients).
"""

from __future__ import annotations

import math

from ..backend.device import array_module
from ..engine.tensor import Tensor


def _gradients(parameters) -> list:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [param.grad.data for param in parameters if param.grad is not None]


def _check_limit(name: str, value) -> float:
    value = float(value)
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return value


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients by one factor so that their joint norm is at most ``max_norm``.

    With ``p = norm_type`` (``inf`` allowed) and gradients ``g_1 ... g_n``::

        total_norm = ‖(‖g_1‖_p, ..., ‖g_n‖_p)‖_p     the p-norm of all entries as one vector
        clip_coef  = min(1, max_norm / (total_norm + 1e-6))
        g_i ← clip_coef · g_i                        for every i, in place

    Returns ``total_norm`` (before clipping) as a 0-d Tensor; ``tensor(0.)`` when no
    parameter has a gradient. With ``error_if_nonfinite=True`` a NaN or infinite total
    norm raises ``RuntimeError`` and leaves the gradients untouched.
    """
    max_norm = _check_limit("max_norm", max_norm)
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"norm_type must be > 0 (or inf), got {norm_type!r}")
    grads = _gradients(parameters)
    if not grads:
        return Tensor(0.0)
    xp = array_module(grads[0])
    norms = [xp.linalg.norm(grad.ravel(), ord=norm_type) for grad in grads]
    total_norm = xp.linalg.norm(xp.stack(norms), ord=norm_type)
    if error_if_nonfinite and not math.isfinite(float(total_norm)):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            f"non-finite, so it cannot be clipped. To disable this error and scale the "
            f"gradients by the non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    clip_coef = xp.minimum(max_norm / (total_norm + 1e-6), 1.0)
    for grad in grads:
        grad *= clip_coef
    return Tensor(total_norm)


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient entry into ``[-clip_value, clip_value]``, in place."""
    clip_value = _check_limit("clip_value", clip_value)
    for grad in _gradients(parameters):
        array_module(grad).clip(grad, -clip_value, clip_value, out=grad)
