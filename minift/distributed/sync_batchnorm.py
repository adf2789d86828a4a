"""``SyncBatchNorm``: BatchNorm whose batch statistics are taken over every rank's batch.

Under ``DistributedDataParallel`` a plain BatchNorm normalises each rank's B examples
with their own mean and variance. ``SyncBatchNorm`` all-reduces the per-channel sums
instead, so that N ranks normalise with the statistics of all N*B examples -- what one
process with the whole batch computes. Per channel, with n_r values on rank r::

    forward    n = sum_r n_r,   mean = sum_r sum(x_r) / n          (all-reduce 1)
               var = sum_r sum((x_r - mean)^2) / n                (all-reduce 2)
               x_hat = (x - mean) / sqrt(var + eps),   y = x_hat * weight + bias
    backward   g_hat = g * weight
               dL/dx = rstd * (g_hat - M(g_hat) - x_hat * M(g_hat * x_hat))
               with M the mean over all ranks' values             (all-reduce 3)
               dL/dweight = sum(g * x_hat), dL/dbias = sum(g)    (this rank's; DDP averages)

Two passes for the variance (mean first, then squared deviations) cost one more small
all-reduce than PyTorch's one-pass sums, and avoid cancelling E[x^2] - E[x]^2.
Each rank's ``g`` is the gradient of its own loss (a mean over B, N times the share of
the mean over N*B); the means M and the DDP average undo that factor N exactly, as in
PyTorch's SyncBatchNorm.
"""

from __future__ import annotations

import numpy as np

from ..backend.device import array_module
from ..engine.autograd import Function
from ..nn import Module
from ..nn.normalization import _BatchNorm
from . import process_group as dist


def _global_sums(*local_sums):
    """Per-channel sums over every rank: one all-reduce for all the given (C,) arrays."""
    stacked = np.stack([np.asarray(s.get() if hasattr(s, "get") else s, dtype=np.float64) for s in local_sums])
    dist.all_reduce(stacked, op="sum")
    return stacked


class SyncBatchNormFunction(Function):
    """Batch normalisation of ``x (N, C, ...)`` with statistics over all ranks (see the module)."""

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, running_mean=None, running_var=None, momentum=0.1, eps=1e-5):
        xp = array_module(x)
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        count = x.size // x.shape[1]
        total, n = _global_sums(x.sum(axis=axes), np.full(x.shape[1], count))
        mean = xp.asarray(total / n, dtype=x.dtype).reshape(shape)
        centred = x - mean
        (squares,) = _global_sums((centred * centred).sum(axis=axes))
        var = xp.asarray(squares / n, dtype=x.dtype).reshape(shape)
        if running_mean is not None:
            size = n[0]
            running_mean *= 1 - momentum
            running_mean += momentum * mean.reshape(-1)
            running_var *= 1 - momentum
            running_var += momentum * var.reshape(-1) * (size / max(size - 1, 1))
        rstd = 1 / xp.sqrt(var + eps)
        x_hat = centred * rstd
        ctx.save_for_backward(x_hat, rstd, weight)
        ctx.axes, ctx.shape, ctx.n = axes, shape, n[0]
        return x_hat if weight is None else x_hat * weight.reshape(shape) + bias.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        x_hat, rstd, weight = ctx.saved
        xp = array_module(g)
        g_hat = g if weight is None else g * weight.reshape(ctx.shape)
        sum_g, sum_gx = _global_sums(g_hat.sum(axis=ctx.axes), (g_hat * x_hat).sum(axis=ctx.axes))
        mean_g = xp.asarray(sum_g / ctx.n, dtype=g.dtype).reshape(ctx.shape)
        mean_gx = xp.asarray(sum_gx / ctx.n, dtype=g.dtype).reshape(ctx.shape)
        dx = rstd * (g_hat - mean_g - x_hat * mean_gx)
        if weight is None:
            return (dx,)
        return dx, (g * x_hat).sum(axis=ctx.axes), g.sum(axis=ctx.axes)


class SyncBatchNorm(_BatchNorm):
    """``BatchNorm1d``/``BatchNorm2d`` with batch statistics over all ranks (``(N, C)``,
    ``(N, C, L)`` or ``(N, C, H, W)``). In ``eval()``, and alone, it is a plain BatchNorm."""

    expected_ndim = (2, 3, 4)

    def forward(self, x):
        if not (self.uses_batch_statistics() and dist.is_distributed()):
            return super().forward(x)
        if x.ndim not in self.expected_ndim or x.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm({self.num_features}) expects input (N, {self.num_features}, ...), "
                             f"got shape {x.shape}")
        momentum = self.momentum
        running = (None, None)
        if self.track_running_stats:
            self.num_batches_tracked.data += 1
            if momentum is None:
                momentum = 1.0 / int(self.num_batches_tracked.item())
            running = (self.running_mean.data, self.running_var.data)
        constants = dict(running_mean=running[0], running_var=running[1], momentum=momentum, eps=self.eps)
        if self.weight is None:
            return SyncBatchNormFunction.apply(x, **constants)
        return SyncBatchNormFunction.apply(x, self.weight, self.bias, **constants)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module) -> Module:
        """Replace every ``BatchNorm1d``/``BatchNorm2d`` in ``module`` by a ``SyncBatchNorm``
        holding the same parameters and buffers (the same objects: an optimizer built
        before still trains them). Returns the module (a new one if it was a BatchNorm)."""
        if isinstance(module, _BatchNorm) and not isinstance(module, cls):
            converted = cls.__new__(cls)
            Module.__init__(converted)
            for name, value in vars(module).items():
                if name not in ("_parameters", "_buffers", "_modules", "_forward_hooks"):
                    object.__setattr__(converted, name, value)
            converted._parameters.update(module._parameters)
            converted._buffers.update(module._buffers)
            return converted
        for name, child in list(module.named_children()):
            replacement = cls.convert_sync_batchnorm(child)
            if replacement is not child:
                setattr(module, name, replacement)
        return module
