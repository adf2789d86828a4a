"""``NAdam``: Adam with Nesterov momentum."""

from __future__ import annotations

from ..backend.device import array_module
from .adam import check_adam_group, update_moments
from .optimizer import Optimizer, check_nonnegative, decayed_gradient


class NAdam(Optimizer):
    """NAdam (Dozat, 2016), PyTorch's rule step for step.

    For a parameter ``θ`` with gradient ``g``, with ``γ = lr``, ``(β1, β2) = betas``,
    ``ψ = momentum_decay`` and ``t`` the parameter's own step count (1 at its first step)::

        g ← -g; weight decay                  as Adam (L2, or decoupled)
        μ_t = β1 (1 - 0.96^(t ψ) / 2)         the momentum schedule
        Π_t = μ_1 μ_2 ... μ_t                 (state "mu_product")
        m ← β1 m + (1 - β1) g;  v ← β2 v + (1 - β2) g²
        d = √(v / (1 - β2^t)) + ε
        θ ← θ - γ (1 - μ_t) / (1 - Π_t) · g / d - γ μ_{t+1} / (1 - Π_t μ_{t+1}) · m / d

    ``state[p]``: ``step``, ``mu_product``, ``exp_avg`` (m), ``exp_avg_sq`` (v).
    """

    def __init__(self, params, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False,
                 *, maximize: bool = False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        check_adam_group(group)
        check_nonnegative(group, "momentum_decay")

    def _update(self, param, grad, group: dict) -> None:
        lr, (beta1, beta2), psi = group["lr"], group["betas"], group["momentum_decay"]
        xp = array_module(param.data)
        state = self.state.get(param)
        if state is None:
            state = self.state[param] = {"step": 0, "mu_product": 1.0, "exp_avg": xp.zeros_like(param.data),
                                         "exp_avg_sq": xp.zeros_like(param.data)}
        grad = decayed_gradient(param, grad, group)
        state["step"] += 1
        t = state["step"]
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        state["mu_product"] *= mu
        exp_avg, exp_avg_sq = update_moments(state, grad, beta1, beta2)
        denominator = xp.sqrt(exp_avg_sq / (1 - beta2**t)) + group["eps"]
        param.data -= lr * (1 - mu) / (1 - state["mu_product"]) * grad / denominator
        param.data -= lr * mu_next / (1 - state["mu_product"] * mu_next) * exp_avg / denominator
