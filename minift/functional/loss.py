"""Losses: cross_entropy (fused with log-softmax), nll_loss, mse_loss, l1_loss, smooth_l1_loss,
binary_cross_entropy_with_logits."""

from __future__ import annotations

from ..engine.autograd import Function
from ..backend.device import array_module
from .elementwise import _lift, maximum, where

REDUCTIONS = ("mean", "sum", "none")


class CrossEntropy(Function):
    """Softmax cross-entropy of logits ``x (N, C)`` against integer classes ``y (N,)``.

    With ``p = log_softmax(x)``, smoothing ``e`` and ``C`` classes, each row's loss is
    ``l_i = (1 - e) * -p[i, y_i] + e/C * sum_c -p[i, c]``, i.e. cross-entropy against the
    target ``q_i = (1 - e) onehot(y_i) + e/C``. Rows with ``y_i == ignore_index`` count 0,
    and ``mean`` divides by the number of rows that are not ignored (PyTorch's rule;
    when every row is ignored minift returns 0 where PyTorch returns NaN, on purpose).

    dL/dx_i = (softmax(x_i) - q_i) * g_i   — one subtraction, which is why the fused op
    is both faster and more stable than log_softmax followed by a gather.
    """

    @staticmethod
    def forward(ctx, x, target, ignore_index, reduction, label_smoothing):
        xp = array_module(x)
        n, c = x.shape
        shifted = x - x.max(axis=1, keepdims=True)
        logp = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        kept = target != ignore_index
        safe_target = xp.where(kept, target, 0)
        q = xp.zeros_like(x)
        q[xp.arange(n), safe_target] = 1 - label_smoothing
        q += label_smoothing / c
        q *= kept[:, None]
        losses = -(q * logp).sum(axis=1)
        ctx.save_for_backward(logp, q)
        ctx.reduction = reduction
        ctx.count = max(int(kept.sum()), 1) if reduction == "mean" else 1
        if reduction == "none":
            return losses
        return losses.sum() / ctx.count

    @staticmethod
    def backward(ctx, g):
        logp, q = ctx.saved
        xp = array_module(logp)
        softmax = xp.exp(logp) * (q.sum(axis=1, keepdims=True))  # ignored rows: q = 0 -> 0
        if ctx.reduction == "none":
            return (softmax - q) * g[:, None]
        return (softmax - q) * (g / ctx.count)


def _check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _reduce(losses, reduction):
    _check_reduction(reduction)
    if reduction == "mean":
        return losses.mean()
    return losses.sum() if reduction == "sum" else losses


def _class_targets(name, input, target, ignore_index):  # noqa: A002
    """Check integer class targets against logits ``(N, C, d...)``; return the logits as
    ``(N·d..., C)`` (classes last), the targets flattened, and the shape of per-sample losses."""
    from ..engine.tensor import Tensor

    target = target if isinstance(target, Tensor) else Tensor(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"{name} expects integer class targets, got dtype {target.dtype}")
    if input.ndim < 2 or target.shape != (input.shape[0],) + input.shape[2:]:
        raise ValueError(
            f"{name} expects input (N, C, ...) and target (N, ...), got input {input.shape} "
            f"and target {target.shape}"
        )
    classes = input.shape[1]
    t = target.data
    bad = (t != ignore_index) & ((t < 0) | (t >= classes))
    if bad.any():
        raise IndexError(f"target holds class {int(t[bad][0])}, outside [0, {classes}) (and not ignore_index)")
    if input.ndim > 2:  # move classes last and flatten: (N, C, d...) -> (N*d..., C)
        input = input.permute(0, *range(2, input.ndim), 1).reshape(-1, classes)
        t = t.reshape(-1)
    return input, t, target.shape


def _class_weights(weight, classes, like):
    """``weight (C,)`` as a constant array of ``like``'s dtype and device (ones when None)."""
    from ..engine.tensor import Tensor

    xp = array_module(like)
    if weight is None:
        return xp.ones(classes, dtype=like.dtype)
    array = xp.asarray(weight.data if isinstance(weight, Tensor) else weight, dtype=like.dtype)
    if array.shape != (classes,):
        raise ValueError(f"weight must have one entry per class, shape ({classes},), got {array.shape}")
    return array


def _weighted_nll(logp, t, weight, ignore_index, reduction, label_smoothing=0.0):
    """Per-row ``l_i = w[y_i] (1 - e) (-logp[i, y_i]) + e/C sum_c w[c] (-logp[i, c])``, 0 where
    ``y_i == ignore_index``; ``mean`` divides the sum by ``sum_i w[y_i]`` over kept rows
    (PyTorch's rule). Built from differentiable ops: autograd gives the gradient."""
    xp = array_module(logp.data)
    n, classes = logp.shape
    kept = t != ignore_index
    safe = xp.where(kept, t, 0)
    row_weight = weight[safe] * kept
    losses = -logp[xp.arange(n), safe] * (row_weight * (1 - label_smoothing))
    if label_smoothing:
        losses = losses - (logp * weight).sum(axis=1) * (kept * (label_smoothing / classes)).astype(logp.dtype)
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.sum() / float(row_weight.sum())


def cross_entropy(input, target, ignore_index=-100, reduction="mean", label_smoothing=0.0, weight=None):  # noqa: A002
    """PyTorch's ``F.cross_entropy`` with integer class targets.

    ``input`` is ``(N, C)`` or ``(N, C, d1, ...)`` logits; ``target`` is ``(N,)`` or
    ``(N, d1, ...)`` int64 classes in ``[0, C)`` or ``ignore_index``. ``weight (C,)``
    rescales each class (PyTorch's rule, see ``_weighted_nll``); without it the fused
    ``CrossEntropy`` runs.
    """
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    flat, t, shape = _class_targets("cross_entropy", input, target, ignore_index)
    if weight is None:
        losses = CrossEntropy.apply(
            flat, target=t, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing
        )
    else:
        from .activation import log_softmax

        losses = _weighted_nll(log_softmax(flat, 1), t, _class_weights(weight, flat.shape[1], flat.data),
                               ignore_index, reduction, label_smoothing)
    return losses.reshape(shape) if reduction == "none" and len(shape) > 1 else losses


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):  # noqa: A002
    """PyTorch's ``F.nll_loss``: ``-w[y_i] · input[i, y_i]`` for log-probabilities
    ``input (N, C, ...)`` (e.g. from ``log_softmax``) and classes ``target (N, ...)``;
    ``mean`` divides by the summed weights of the rows not ignored."""
    _check_reduction(reduction)
    flat, t, shape = _class_targets("nll_loss", input, target, ignore_index)
    losses = _weighted_nll(flat, t, _class_weights(weight, flat.shape[1], flat.data), ignore_index, reduction)
    return losses.reshape(shape) if reduction == "none" and len(shape) > 1 else losses


def mse_loss(input, target, reduction="mean"):  # noqa: A002
    """Mean squared error ``(input - target)**2``, reduced."""
    if tuple(input.shape) != tuple(getattr(target, "shape", input.shape)):
        raise ValueError(f"mse_loss expects input and target of the same shape, got {input.shape} and {target.shape}")
    diff = input - _lift(target, input)
    return _reduce(diff * diff, reduction)


def binary_cross_entropy_with_logits(input, target, reduction="mean", pos_weight=None):  # noqa: A002
    """``-[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))]``, computed stably as
    ``max(x, 0) - x t + log(1 + exp(-|x|))`` (built from primitives; autograd does the rest).
    With ``pos_weight`` w: ``(1 - t) x + (1 + (w - 1) t) (log(1 + exp(-|x|)) + max(-x, 0))``.

    ``max(x, 0)`` is ``maximum``, not ``relu``: at x = 0 the pieces have kinks that must
    cancel, and only maximum's tie rule (half the gradient each way) gives the true
    derivative there, ``sigmoid(0) - t = 1/2 - t``; relu's 0 would give ``-t``.
    """
    if tuple(input.shape) != tuple(getattr(target, "shape", input.shape)):
        raise ValueError(f"expected input and target of the same shape, got {input.shape} and {target.shape}")
    target = _lift(target, input)
    softplus_neg = (1 + (-input.abs()).exp()).log()  # log(1 + e^-|x|)
    if pos_weight is None:
        losses = maximum(input, 0.0) - input * target + softplus_neg
    else:
        weight = 1 + (_lift(pos_weight, input) - 1) * target
        losses = (1 - target) * input + weight * (softplus_neg + maximum(-input, 0.0))
    return _reduce(losses, reduction)


def _same_shape(name, input, target):  # noqa: A002
    if tuple(input.shape) != tuple(getattr(target, "shape", input.shape)):
        raise ValueError(f"{name} expects input and target of the same shape, got {input.shape} and {target.shape}")
    return _lift(target, input)


def l1_loss(input, target, reduction="mean"):  # noqa: A002
    """Mean absolute error ``|input - target|``, reduced (gradient ``sign(d)``, 0 at d = 0)."""
    return _reduce((input - _same_shape("l1_loss", input, target)).abs(), reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):  # noqa: A002
    """PyTorch's ``F.smooth_l1_loss``, with ``d = input - target``::

        l = 0.5 d² / beta    where |d| < beta   (quadratic near 0: a gradient that fades)
        l = |d| - 0.5 beta   elsewhere          (linear: robust to outliers)

    ``beta = 0`` is the L1 loss.
    """
    if not beta >= 0:
        raise ValueError(f"smooth_l1_loss beta must be >= 0, got {beta!r}")
    d = input - _same_shape("smooth_l1_loss", input, target)
    if beta == 0:
        return _reduce(d.abs(), reduction)
    small = abs(d.data) < beta
    return _reduce(where(small, d * d * (0.5 / beta), d.abs() - 0.5 * beta), reduction)
