"""``Adagrad``: each coordinate's step shrinks with the sum of its squared gradients."""

from __future__ import annotations

from ..backend.device import array_module
from .optimizer import Optimizer, check_nonnegative, decayed_gradient


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011), PyTorch's rule step for step.

    For a parameter ``θ`` with gradient ``g``, with ``γ = lr``, ``η = lr_decay``,
    ``λ = weight_decay`` and ``t`` the parameter's own step count (1 at its first step)::

        g ← -g                           if maximize
        g ← g + λ θ                      if λ ≠ 0
        γ_t = γ / (1 + (t - 1) η)
        s ← s + g²                       (s = initial_accumulator_value before step 1)
        θ ← θ - γ_t g / (√s + ε)

    ``state[p]``: ``step`` and ``sum`` (s), PyTorch's names. Unlike PyTorch, which fills
    the state of every parameter when the optimizer is built, minift creates it at the
    parameter's first step with a gradient, as for every optimizer here (a frozen
    parameter has no state); the values are the same.
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, maximize: bool = False):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        super()._validate(group)
        for name in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            check_nonnegative(group, name)

    def _update(self, param, grad, group: dict) -> None:
        xp = array_module(param.data)
        state = self.state.get(param)
        if state is None:
            start = xp.full_like(param.data, group["initial_accumulator_value"])
            state = self.state[param] = {"step": 0, "sum": start}
        grad = decayed_gradient(param, grad, group)
        state["step"] += 1
        lr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        state["sum"] += grad * grad
        param.data -= lr * grad / (xp.sqrt(state["sum"]) + group["eps"])
