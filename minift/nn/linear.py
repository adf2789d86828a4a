"""Linear, Identity and Flatten."""

from __future__ import annotations

from .. import functional as F
from ..engine.creation import empty_parameter
from . import init
from .module import Module


class Linear(Module):
    """y = x W^T + b.   ``x (..., in)``, ``weight (out, in)``, ``bias (out,)`` -> ``y (..., out)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = empty_parameter((out_features, in_features), dtype)
        self.bias = empty_parameter((out_features,), dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)  # which checks the shapes

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Identity(Module):
    """y = x (a placeholder, e.g. for a removed head)."""

    def forward(self, x):
        return x


class Flatten(Module):
    """Flatten axes ``start_dim..end_dim`` into one (by default all but the batch axis)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
