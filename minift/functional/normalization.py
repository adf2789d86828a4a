"""Normalisation: layer_norm, rms_norm, group_norm and batch_norm (training and inference)."""

from __future__ import annotations

import math

import numpy as np

from .. import contract
from ..engine.autograd import Function
from ..backend.device import array_module


class LayerNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last ``k`` axes.

    Statistics are per sample (biased variance). Shapes: ``x (..., *S)``, ``weight, bias
    S`` (optional). dL/dweight = sum(g * x_hat), dL/dbias = sum(g) over the leading axes.
    Both passes are the contract's fused ``layer_norm_forward`` / ``layer_norm_backward``
    kernels, on x viewed as rows ``(..., prod S)``; the backward pass recomputes x_hat from
    x and the saved mean and rstd (one row value each) instead of keeping x_hat.
    """

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, k=1, eps=1e-5):
        features = math.prod(x.shape[x.ndim - k:])
        rows = x.reshape(*x.shape[:x.ndim - k], features)
        flat_weight = None if weight is None else weight.reshape(features)
        y, mean, rstd = contract.layer_norm_forward(rows, flat_weight, None if bias is None else bias.reshape(features), eps)
        ctx.save_for_backward(rows, mean, rstd, flat_weight)
        ctx.shape = x.shape
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, g):
        rows, mean, rstd, flat_weight = ctx.saved
        dx, dweight, dbias = contract.layer_norm_backward(g.reshape(rows.shape), rows, mean, rstd, flat_weight)
        normalized = ctx.shape[len(rows.shape) - 1:]
        grads = (dx.reshape(ctx.shape), None if dweight is None else dweight.reshape(normalized), dbias.reshape(normalized))
        return grads[: len(ctx.needs_input_grad)]


class RMSNorm(Function):
    """y = x / sqrt(mean(x**2) + eps) * weight over the last ``k`` axes (Zhang & Sennrich 2019).

    No centring: with ``r = 1 / sqrt(mean(x**2) + eps)``, ``x_hat = x r`` and
    ``g_hat = g * weight``, dL/dx = r * (g_hat - x_hat * mean(g_hat * x_hat)) (the one path
    through the mean square), dL/dweight = sum(g * x_hat) over the leading axes.
    """

    @staticmethod
    def forward(ctx, x, weight=None, k=1, eps=1e-5):
        xp = array_module(x)
        axes = tuple(range(x.ndim - k, x.ndim))
        rstd = 1 / xp.sqrt((x * x).mean(axis=axes, keepdims=True) + eps)
        x_hat = x * rstd
        ctx.save_for_backward(x_hat, rstd, weight)
        ctx.axes = axes
        return x_hat if weight is None else x_hat * weight

    @staticmethod
    def backward(ctx, g):
        x_hat, rstd, weight = ctx.saved
        g_hat = g if weight is None else g * weight
        dx = rstd * (g_hat - x_hat * (g_hat * x_hat).mean(axis=ctx.axes, keepdims=True))
        if weight is None:
            return (dx,)
        return dx, (g * x_hat).sum(axis=tuple(range(g.ndim - len(ctx.axes))))


class BatchNorm(Function):
    """Batch normalisation over every axis but the channel axis 1: ``x (N, C, ...)``.

    training: y = (x - mean_B) / sqrt(var_B + eps) * weight + bias with batch statistics,
        and the running statistics move: ``r = (1 - momentum) r + momentum * stat`` (the
        running variance uses the unbiased batch variance, as PyTorch does);
    inference: the same with the running statistics, so y is an affine map of x and
        dL/dx = g * weight / sqrt(running_var + eps).

    Both passes are the contract's fused ``batch_norm_forward`` / ``batch_norm_backward``
    kernels (formulas in ``minift.reference.batch_norm``); the backward pass recomputes
    x_hat from x and the (C,) mean and rstd instead of keeping a full-size x_hat (so, as
    in PyTorch, changing x in place before ``backward()`` is refused). The running
    statistics are updated here, on (C,) vectors.
    """

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, running_mean=None, running_var=None,
                training=True, momentum=0.1, eps=1e-5):
        xp = array_module(x)
        given = (None, None) if training else (running_mean, running_var)
        # The kernels take one dtype; mixed inputs promote as NumPy's arithmetic did before them.
        arrays = (x, weight, bias, *given)
        dtype = np.result_type(*(a.dtype for a in arrays if a is not None))
        x, weight, bias, mean, var = (None if a is None else a.astype(dtype, copy=False) for a in arrays)
        y, mean, var = contract.batch_norm_forward(x, weight, bias, eps, mean, var)
        if training and running_mean is not None:
            n = x.size // x.shape[1]
            unbiased = var.reshape(-1) * (n / max(n - 1, 1))
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * unbiased
        rstd = 1 / xp.sqrt(var + eps)
        ctx.save_for_backward(x, mean, rstd, weight)
        ctx.training = bool(training)
        return y

    @staticmethod
    def backward(ctx, g):
        x, mean, rstd, weight = ctx.saved
        dx, dweight, dbias = contract.batch_norm_backward(g.astype(x.dtype, copy=False), x, mean, rstd, weight,
                                                          ctx.training)
        dx = dx if ctx.needs_input_grad[0] else None
        return (dx,) if weight is None else (dx, dweight, dbias)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """PyTorch's ``F.layer_norm``: normalise over the trailing ``normalized_shape`` axes."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(normalized_shape)
    if x.shape[x.ndim - k:] != normalized_shape:
        raise ValueError(f"layer_norm over {normalized_shape} needs input (..., {normalized_shape}), got {x.shape}")
    if (weight is None) != (bias is None):
        raise ValueError("layer_norm takes both weight and bias, or neither")
    if weight is None:
        return LayerNorm.apply(x, k=k, eps=eps)
    return LayerNorm.apply(x, weight, bias, k=k, eps=eps)


def rms_norm(x, normalized_shape, weight=None, eps=None):
    """PyTorch's ``F.rms_norm`` over the trailing ``normalized_shape`` axes; ``eps=None``
    means the machine epsilon of ``x``'s dtype, as in PyTorch."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(normalized_shape)
    if tuple(x.shape[x.ndim - k:]) != normalized_shape or k > x.ndim:
        raise ValueError(f"rms_norm over {normalized_shape} needs input (..., {normalized_shape}), got {x.shape}")
    if weight is not None and tuple(weight.shape) != normalized_shape:
        raise ValueError(f"rms_norm weight must have shape {normalized_shape}, got {weight.shape}")
    eps = float(np.finfo(x.dtype).eps) if eps is None else eps
    if weight is None:
        return RMSNorm.apply(x, k=k, eps=eps)
    return RMSNorm.apply(x, weight, k=k, eps=eps)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """PyTorch's ``F.group_norm`` (Wu & He 2018) on ``x (N, C, ...)``: the channels are split
    into ``num_groups`` groups of ``C / num_groups``, each sample's group is normalised
    over its channels and positions (layer_norm of ``x (N, G, C/G · ...)``), then each
    channel gets its own ``weight`` and ``bias (C,)``. ``num_groups=1`` is a layer norm
    over ``(C, ...)``, ``num_groups=C`` an instance norm."""
    if x.ndim < 2 or not isinstance(num_groups, int) or num_groups < 1 or x.shape[1] % num_groups:
        raise ValueError(
            f"group_norm expects input (N, C, ...) with C divisible by num_groups, got shape {x.shape} and "
            f"num_groups={num_groups!r}"
        )
    if (weight is None) != (bias is None):
        raise ValueError("group_norm takes both weight and bias, or neither")
    n, channels = x.shape[:2]
    normalised = LayerNorm.apply(x.reshape(n, num_groups, -1), k=1, eps=eps).reshape(x.shape)
    if weight is None:
        return normalised
    per_channel = (1, channels) + (1,) * (x.ndim - 2)
    return normalised * weight.reshape(per_channel) + bias.reshape(per_channel)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """PyTorch's ``F.batch_norm`` on ``x (N, C, ...)``.

    ``running_mean``/``running_var`` are arrays (or Tensors) of shape ``(C,)`` updated in
    place when ``training``; they may be None in training (no running statistics).
    """
    from ..engine.tensor import Tensor

    if x.ndim < 2:
        raise ValueError(f"batch_norm expects input (N, C, ...), got shape {x.shape}")
    raw = [r.data if isinstance(r, Tensor) else r for r in (running_mean, running_var)]
    if not training and raw[0] is None:
        raise ValueError("batch_norm in inference mode needs running_mean and running_var")
    if training and x.numel() // x.shape[1] <= 1:
        raise ValueError(
            f"batch_norm in training needs more than one value per channel, got input shape {x.shape}"
        )
    constants = dict(running_mean=raw[0], running_var=raw[1], training=training, momentum=momentum, eps=eps)
    if weight is not None:
        if bias is None:  # a weight without a bias, as PyTorch allows: a constant zero bias
            data = weight.data if isinstance(weight, Tensor) else weight
            bias = Tensor(array_module(data).zeros(data.shape, data.dtype))
        return BatchNorm.apply(x, weight, bias, **constants)
    normalised = BatchNorm.apply(x, **constants)
    if bias is None:
        return normalised
    return normalised + bias.reshape((1, x.shape[1]) + (1,) * (x.ndim - 2))  # a bias without a weight
