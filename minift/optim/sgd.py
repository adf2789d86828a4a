"""``SGD``: stochastic gradient descent with momentum, Nesterov and weight decay."""

from __future__ import annotations

from ..backend.device import array_module
from .optimizer import Optimizer, check_nonnegative, decayed_gradient


class SGD(Optimizer):
    """Stochastic gradient descent, PyTorch's rule step for step.

    For a parameter ``θ`` with gradient ``g``, with ``γ = lr``, ``λ = weight_decay``,
    ``μ = momentum``, ``τ = dampening``::

        g ← -g                      if maximize
        g ← g + λ θ                 if λ ≠ 0   (L2 penalty, folded into the gradient)
        if μ ≠ 0:
            b ← g                   at the parameter's first step (no dampening)
            b ← μ b + (1 - τ) g     at later steps
            g ← g + μ b             if nesterov
            g ← b                   otherwise
        θ ← θ - γ g

    The momentum buffer ``b`` (``state[p]["momentum_buffer"]``, the shape and dtype of
    ``θ``) exists only when ``μ ≠ 0``. Nesterov needs ``μ > 0`` and ``τ = 0``.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ):
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        check_nonnegative(group, "momentum")
        check_nonnegative(group, "weight_decay")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"Nesterov momentum requires a momentum and zero dampening, got "
                f"momentum={group['momentum']!r} and dampening={group['dampening']!r}"
            )

    def _update(self, param, grad, group: dict) -> None:
        momentum = group["momentum"]
        grad = decayed_gradient(param, grad, group)
        if momentum != 0:
            state = self.state.setdefault(param, {})
            buffer = state.get("momentum_buffer")
            if buffer is None:
                # a new array, not grad.copy(): NumPy returns a 0-d result as an immutable scalar
                buffer = state["momentum_buffer"] = array_module(param.data).array(grad, dtype=param.dtype)
            else:
                buffer *= momentum
                buffer += (1 - group["dampening"]) * grad
            grad = grad + momentum * buffer if group["nesterov"] else buffer
        param.data -= group["lr"] * grad
