"""``RMSprop``: divide each coordinate's step by a moving root-mean-square of its gradients."""

from __future__ import annotations

from ..backend.device import array_module
from .optimizer import Optimizer, check_nonnegative, decayed_gradient


class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012), PyTorch's rule step for step.

    For a parameter ``θ`` with gradient ``g``, with ``γ = lr``, ``α = alpha``,
    ``λ = weight_decay``, ``μ = momentum``::

        g ← -g                            if maximize
        g ← g + λ θ                       if λ ≠ 0
        v ← α v + (1 - α) g²              (v = 0 before the first step)
        ḡ ← α ḡ + (1 - α) g               if centered (ḡ = 0 before the first step)
        d = √(v - ḡ²) + ε  if centered,   √v + ε  otherwise
        b ← μ b + g / d;  θ ← θ - γ b     if μ > 0   (b = 0 before the first step)
        θ ← θ - γ g / d                   otherwise

    ``state[p]``: ``step``, ``square_avg`` (v), and ``momentum_buffer`` (b) when ``μ > 0``,
    ``grad_avg`` (ḡ) when centered -- PyTorch's names.
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False, *, maximize: bool = False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        for name in ("alpha", "eps", "weight_decay", "momentum"):
            check_nonnegative(group, name)

    def _update(self, param, grad, group: dict) -> None:
        alpha, momentum = group["alpha"], group["momentum"]
        xp = array_module(param.data)
        state = self.state.get(param)
        if state is None:
            state = self.state[param] = {"step": 0, "square_avg": xp.zeros_like(param.data)}
            if momentum > 0:
                state["momentum_buffer"] = xp.zeros_like(param.data)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(param.data)
        grad = decayed_gradient(param, grad, group)
        state["step"] += 1
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg += (1 - alpha) * (grad - grad_avg)
            denominator = xp.sqrt(square_avg - grad_avg * grad_avg) + group["eps"]
        else:
            denominator = xp.sqrt(square_avg) + group["eps"]
        if momentum > 0:
            buffer = state["momentum_buffer"]
            buffer *= momentum
            buffer += grad / denominator
            param.data -= group["lr"] * buffer
        else:
            param.data -= group["lr"] * grad / denominator
