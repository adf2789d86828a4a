"""Losses: cross_entropy (fused with log-softmax), mse_loss, binary_cross_entropy_with_logits."""

from __future__ import annotations

from ..engine.autograd import Function
from ..backend.device import array_module
from .elementwise import _lift, maximum

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


def cross_entropy(input, target, ignore_index=-100, reduction="mean", label_smoothing=0.0):  # noqa: A002
    """PyTorch's ``F.cross_entropy`` with integer class targets.

    ``input`` is ``(N, C)`` or ``(N, C, d1, ...)`` logits; ``target`` is ``(N,)`` or
    ``(N, d1, ...)`` int64 classes in ``[0, C)`` or ``ignore_index``.
    """
    from ..engine.tensor import Tensor

    _check_reduction(reduction)
    target = target if isinstance(target, Tensor) else Tensor(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy expects integer class targets, got dtype {target.dtype}")
    if input.ndim < 2 or target.shape != (input.shape[0],) + input.shape[2:]:
        raise ValueError(
            f"cross_entropy expects input (N, C, ...) and target (N, ...), got input {input.shape} "
            f"and target {target.shape}"
        )
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    classes = input.shape[1]
    t = target.data
    bad = (t != ignore_index) & ((t < 0) | (t >= classes))
    if bad.any():
        raise IndexError(f"target holds class {int(t[bad][0])}, outside [0, {classes}) (and not ignore_index)")
    spatial = input.shape[2:]
    if spatial:  # move classes last and flatten: (N, C, d...) -> (N*d..., C)
        input = input.permute(0, *range(2, input.ndim), 1).reshape(-1, classes)
        t = t.reshape(-1)
    losses = CrossEntropy.apply(
        input, target=t, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing
    )
    return losses.reshape((target.shape[0],) + spatial) if reduction == "none" and spatial else losses


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
