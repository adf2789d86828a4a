"""``RAdam``: Adam whose adaptive step is switched on only once its variance is tractable."""

from __future__ import annotations

import math

from ..backend.device import array_module
from .adam import check_adam_group, update_moments
from .optimizer import Optimizer, decayed_gradient


class RAdam(Optimizer):
    """Rectified Adam (Liu et al., 2020), PyTorch's rule step for step.

    For a parameter ``θ`` with gradient ``g``, with ``γ = lr``, ``(β1, β2) = betas`` and
    ``t`` the parameter's own step count (1 at its first step)::

        g ← -g; weight decay                  as Adam (L2, or decoupled)
        m ← β1 m + (1 - β1) g;  v ← β2 v + (1 - β2) g²;  m̂ = m / (1 - β1^t)
        ρ_∞ = 2 / (1 - β2) - 1;   ρ_t = ρ_∞ - 2 t β2^t / (1 - β2^t)
        if ρ_t > 5:   r = √((ρ_t - 4)(ρ_t - 2) ρ_∞ / ((ρ_∞ - 4)(ρ_∞ - 2) ρ_t))
                      θ ← θ - γ m̂ r √(1 - β2^t) / (√v + ε)
        otherwise:    θ ← θ - γ m̂                (SGD with momentum while v is unreliable)

    ``state[p]``: ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v).
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled_weight_decay: bool = False, *, maximize: bool = False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        check_adam_group(group)

    def _update(self, param, grad, group: dict) -> None:
        lr, (beta1, beta2) = group["lr"], group["betas"]
        xp = array_module(param.data)
        state = self.state.get(param)
        if state is None:
            state = self.state[param] = {"step": 0, "exp_avg": xp.zeros_like(param.data),
                                         "exp_avg_sq": xp.zeros_like(param.data)}
        grad = decayed_gradient(param, grad, group)
        state["step"] += 1
        t = state["step"]
        exp_avg, exp_avg_sq = update_moments(state, grad, beta1, beta2)
        corrected = exp_avg / (1 - beta1**t)
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
        if rho_t > 5.0:
            rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            param.data -= lr * corrected * rect * math.sqrt(1 - beta2**t) / (xp.sqrt(exp_avg_sq) + group["eps"])
        else:
            param.data -= lr * corrected
