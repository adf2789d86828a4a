"""Activations: relu, leaky_relu, relu6, hardsigmoid, hardswish, silu, softplus, mish, gelu,
sigmoid, tanh, softmax, log_softmax."""

from __future__ import annotations

import math


from .. import contract
from ..engine.autograd import Function
from ..backend.device import array_module
from .arguments import spelled


class ReLU(Function):
    """z = max(x, 0).   dL/dx = g * (x > 0)."""

    @staticmethod
    def forward(ctx, x):
        z = array_module(x).maximum(x, 0)
        ctx.save_for_backward(z)
        return z

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved
        return g * (z > 0)


class LeakyReLU(Function):
    """z = x if x > 0 else slope * x.   dL/dx = g * (1 if x > 0 else slope)."""

    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        return array_module(x).where(x > 0, x, x * slope)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return array_module(g).where(x > 0, g, g * ctx.slope)


class ReLU6(Function):
    """z = min(max(x, 0), 6) (MobileNet's).   dL/dx = g * (0 < x < 6)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return array_module(x).clip(x, 0, 6)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * ((x > 0) & (x < 6))


class Hardsigmoid(Function):
    """z = relu6(x + 3) / 6, a piecewise-linear sigmoid.   dL/dx = g / 6 where -3 < x < 3, else 0."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return array_module(x).clip(x + 3, 0, 6) / 6

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * ((x > -3) & (x < 3)) / 6


class Hardswish(Function):
    """z = x * relu6(x + 3) / 6 (MobileNetV3's cheap swish).

    dL/dx = g * 0 (x <= -3),   g * (2x + 3) / 6 (-3 < x < 3),   g (x >= 3)   -- PyTorch's
    values at the kinks.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * array_module(x).clip(x + 3, 0, 6) / 6

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        xp = array_module(x)
        return g * xp.where(x <= -3, 0.0, xp.where(x < 3, (2 * x + 3) / 6, 1.0)).astype(x.dtype)


def _sigmoid(xp, x):
    """1 / (1 + e**-x) without overflow for large |x|."""
    e = xp.exp(-abs(x))  # in (0, 1]: never overflows
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(xp, x):
    """log(1 + e**x) = max(x, 0) + log(1 + e**-|x|), without overflow."""
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-abs(x)))


class SiLU(Function):
    """z = x * sigmoid(x) (swish).   dL/dx = g * s (1 + x (1 - s)) with s = sigmoid(x)."""

    @staticmethod
    def forward(ctx, x):
        s = _sigmoid(array_module(x), x)
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, g):
        x, s = ctx.saved
        return g * s * (1 + x * (1 - s))


class Softplus(Function):
    """z = log(1 + e**(beta x)) / beta, and z = x where beta x > threshold (PyTorch's).

    dL/dx = g * sigmoid(beta x), and g where beta x > threshold.
    """

    @staticmethod
    def forward(ctx, x, beta, threshold):
        xp = array_module(x)
        ctx.save_for_backward(x)
        ctx.beta, ctx.threshold = beta, threshold
        return xp.where(beta * x > threshold, x, _softplus(xp, beta * x) / beta)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        xp = array_module(x)
        scaled = ctx.beta * x
        return g * xp.where(scaled > ctx.threshold, 1.0, _sigmoid(xp, scaled)).astype(x.dtype)


class Mish(Function):
    """z = x * tanh(softplus(x)) (Misra 2019).

    dL/dx = g * (t + x * sigmoid(x) * (1 - t**2)) with t = tanh(softplus(x)).
    """

    @staticmethod
    def forward(ctx, x):
        xp = array_module(x)
        t = xp.tanh(_softplus(xp, x))
        ctx.save_for_backward(x, t)
        return x * t

    @staticmethod
    def backward(ctx, g):
        x, t = ctx.saved
        return g * (t + x * _sigmoid(array_module(x), x) * (1 - t * t))


class GELU(Function):
    """Gaussian Error Linear Unit, z = x * Phi(x) with Phi the standard normal CDF.

    exact ("none"):  Phi(x) = (1 + erf(x / sqrt 2)) / 2,
                     dz/dx = Phi(x) + x * exp(-x**2 / 2) / sqrt(2 pi)
                     (Phi(x) is saved for backward: erf is the costly part, worth its memory;
                     both passes are the contract's fused gelu_forward / gelu_backward kernels)
    "tanh":          z = x/2 * (1 + tanh(u)),  u = sqrt(2/pi) * (x + 0.044715 x**3),
                     dz/dx = (1 + tanh u)/2 + x/2 * (1 - tanh(u)**2) * sqrt(2/pi) * (1 + 3*0.044715 x**2)
    """

    @staticmethod
    def forward(ctx, x, approximate):
        xp = array_module(x)
        ctx.approximate = approximate
        if approximate == "tanh":
            ctx.save_for_backward(x)
            u = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
            return 0.5 * x * (1 + xp.tanh(u))
        y, cdf = contract.gelu_forward(x)
        ctx.save_for_backward(x, cdf)
        return y

    @staticmethod
    def backward(ctx, g):
        x = ctx.saved[0]
        xp = array_module(x)
        if ctx.approximate == "tanh":
            c = math.sqrt(2 / math.pi)
            t = xp.tanh(c * (x + 0.044715 * x**3))
            return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x))
        return contract.gelu_backward(g, x, ctx.saved[1])


class Sigmoid(Function):
    """z = 1 / (1 + e**-x), computed without overflow for large |x|.   dL/dx = g * z (1 - z)."""

    @staticmethod
    def forward(ctx, x):
        xp = array_module(x)
        e = xp.exp(-abs(x))  # in (0, 1]: never overflows
        z = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        ctx.save_for_backward(z)
        return z

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved
        return g * z * (1 - z)


class Tanh(Function):
    """z = tanh x.   dL/dx = g * (1 - z**2)."""

    @staticmethod
    def forward(ctx, x):
        z = array_module(x).tanh(x)
        ctx.save_for_backward(z)
        return z

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved
        return g * (1 - z * z)


class Softmax(Function):
    """z_i = exp(x_i + b_i - m) / sum_j exp(x_j + b_j - m) along ``axis`` (m = max, for
    stability; b an optional additive mask, a constant: 0 = allowed, -inf = not).

    dL/dx = z * (g - sum(g * z))   (the Jacobian diag(z) - z z^T applied to g).
    Both passes are the contract's fused ``softmax_forward`` / ``softmax_backward`` kernels,
    which work along the last axis: another axis is moved there (a view) and back.
    """

    @staticmethod
    def forward(ctx, x, axis, mask=None):
        xp = array_module(x)
        rows = x.reshape(1) if axis is None else xp.moveaxis(x, axis, -1)
        z = contract.softmax_forward(rows, mask)
        ctx.save_for_backward(z)
        ctx.axis = axis
        return z.reshape(()) if axis is None else xp.moveaxis(z, -1, axis)

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved
        xp = array_module(z)
        if ctx.axis is None:
            return contract.softmax_backward(g.reshape(1), z).reshape(())
        return xp.moveaxis(contract.softmax_backward(xp.moveaxis(g, ctx.axis, -1), z), -1, ctx.axis)


class LogSoftmax(Function):
    """z = x - logsumexp(x) along ``axis``.   dL/dx = g - softmax(x) * sum(g)."""

    @staticmethod
    def forward(ctx, x, axis):
        xp = array_module(x)
        shifted = x - x.max(axis=axis, keepdims=True)
        z = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(z)
        ctx.axis = axis
        return z

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved
        return g - array_module(z).exp(z) * g.sum(axis=ctx.axis, keepdims=True)


def relu(x):
    return ReLU.apply(x)


def leaky_relu(x, negative_slope=0.01):
    return LeakyReLU.apply(x, slope=negative_slope)


def relu6(x):
    return ReLU6.apply(x)


def hardsigmoid(x):
    return Hardsigmoid.apply(x)


def hardswish(x):
    return Hardswish.apply(x)


def silu(x):
    return SiLU.apply(x)


def softplus(x, beta=1.0, threshold=20.0):
    """PyTorch's ``F.softplus``: ``log(1 + exp(beta x)) / beta``, linear above ``threshold``."""
    if not beta > 0:
        raise ValueError(f"softplus beta must be > 0, got {beta!r}")
    return Softplus.apply(x, beta=beta, threshold=threshold)


def mish(x):
    return Mish.apply(x)


def gelu(x, approximate="none"):
    """GELU; ``approximate="none"`` (erf, BERT's) or ``"tanh"`` (GPT-2's), as in PyTorch."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(x, approximate=approximate)


def sigmoid(x):
    return Sigmoid.apply(x)


def tanh(x):
    return Tanh.apply(x)


def _axis(x, axis):
    if not -x.ndim <= axis < max(x.ndim, 1):
        raise IndexError(f"axis {axis} is out of range for a tensor with {x.ndim} dimensions")
    return axis % max(x.ndim, 1) if x.ndim else None


def softmax(x, dim=None, *, axis=None, additive_mask=None):
    """Softmax along ``dim`` (NumPy spelling: ``axis``), the last axis by default.

    ``additive_mask``: an array (or Tensor, used as a constant) that broadcasts to ``x`` with
    ``dim`` moved last, added to ``x`` inside the kernel -- attention's padding mask (0 =
    allowed, -inf = not) without a full-size ``x + mask`` temporary. Not in PyTorch's
    ``F.softmax``; a row masked everywhere gives NaN, as PyTorch's ``x + mask`` would.
    """
    from ..engine.tensor import Tensor

    mask = additive_mask.data if isinstance(additive_mask, Tensor) else additive_mask
    return Softmax.apply(x, axis=_axis(x, spelled(dim, axis, -1)), mask=mask)


def log_softmax(x, dim=None, *, axis=None):
    """Log-softmax along ``dim`` (NumPy spelling: ``axis``), the last axis by default."""
    return LogSoftmax.apply(x, axis=_axis(x, spelled(dim, axis, -1)))



