"""``Adam`` and ``AdamW``: adaptive moments, with L2 or decoupled weight decay."""

from __future__ import annotations

import math

from ..backend.device import array_module
from .optimizer import Optimizer, check_betas, check_nonnegative, decayed_gradient


def check_adam_group(group: dict) -> None:
    """The hyperparameters every Adam variant has: ``eps``, ``weight_decay`` (>= 0), ``betas``."""
    check_nonnegative(group, "eps")
    check_nonnegative(group, "weight_decay")
    check_betas(group)


def update_moments(state: dict, grad, beta1: float, beta2: float) -> tuple:
    """Adam's moving averages, in place: ``m ← β1 m + (1 - β1) g``, ``v ← β2 v + (1 - β2) g²``.
    Returns ``(m, v)``, ``state["exp_avg"]`` and ``state["exp_avg_sq"]``."""
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    exp_avg *= beta1
    exp_avg += (1 - beta1) * grad
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad
    return exp_avg, exp_avg_sq


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), PyTorch's rule step for step.

    For a parameter ``θ`` with gradient ``g``, with ``γ = lr``, ``λ = weight_decay``,
    ``(β1, β2) = betas``, and ``t`` the parameter's own step count (1 at its first step)::

        g ← -g                               if maximize
        θ ← θ - γ λ θ                        if λ ≠ 0 and decoupled_weight_decay  (AdamW)
        g ← g + λ θ                          if λ ≠ 0 otherwise                   (L2)
        m ← β1 m + (1 - β1) g                first moment,  m = 0 before step 1
        v ← β2 v + (1 - β2) g²               second moment, v = 0 before step 1
        m̂ = m / (1 - β1^t)                   bias corrections
        v̂ = v / (1 - β2^t)                   (amsgrad: v_max ← max(v_max, v); v̂ = v_max / (1 - β2^t))
        θ ← θ - γ m̂ / (√v̂ + ε)

    ``state[p]`` holds ``step`` (an int), ``exp_avg`` (m), ``exp_avg_sq`` (v) and, with
    amsgrad, ``max_exp_avg_sq``; the arrays have the shape and dtype of ``θ``. As in
    PyTorch the last line is computed as ``θ ← θ - (γ / (1 - β1^t)) m / (√v / √(1 - β2^t) + ε)``.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ):
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        check_adam_group(group)

    def _update(self, param, grad, group: dict) -> None:
        lr, eps = group["lr"], group["eps"]
        beta1, beta2 = group["betas"]
        xp = array_module(param.data)
        state = self.state.get(param)
        if state is None:
            state = self.state[param] = {
                "step": 0,
                "exp_avg": xp.zeros_like(param.data),
                "exp_avg_sq": xp.zeros_like(param.data),
            }
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(param.data)

        grad = decayed_gradient(param, grad, group)
        state["step"] += 1
        exp_avg, exp_avg_sq = update_moments(state, grad, beta1, beta2)
        second_moment = exp_avg_sq
        if group["amsgrad"]:
            xp.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            second_moment = state["max_exp_avg_sq"]

        bias_correction1 = 1 - beta1 ** state["step"]
        bias_correction2 = 1 - beta2 ** state["step"]
        denominator = xp.sqrt(second_moment) / math.sqrt(bias_correction2) + eps
        param.data -= (lr / bias_correction1) * exp_avg / denominator


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): ``θ ← θ - γ λ θ``.

    The decay shrinks the weights directly instead of entering the gradient, so it is not
    rescaled by Adam's ``1/√v̂``. Same rule as ``Adam(..., decoupled_weight_decay=True)``;
    the default ``weight_decay`` is 1e-2, as in PyTorch.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ):
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad,
            maximize=maximize, decoupled_weight_decay=True,
        )
