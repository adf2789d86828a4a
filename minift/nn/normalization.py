"""BatchNorm1d / BatchNorm2d, LayerNorm, GroupNorm and RMSNorm."""

from __future__ import annotations

from .. import functional as F
from ..engine.creation import empty_parameter, ones, tensor, zeros
from . import init
from .module import Module


class _BatchNorm(Module):
    """Batch normalisation with PyTorch's semantics (see ``functional.batch_norm``).

    In training the batch statistics normalise and the running statistics move by
    ``momentum`` (``momentum=None``: a cumulative average over ``num_batches_tracked``);
    in ``eval()`` the running statistics normalise. Buffers: ``running_mean``,
    ``running_var``, ``num_batches_tracked`` — all saved in the ``state_dict``.

    ``eval_when_frozen`` is the switch for fine-tuning (set by ``minift.finetune``): when
    True and this layer's affine parameters are frozen, it runs in inference mode even
    under ``model.train()`` — Keras's rule. When False (the default, fastai's), a frozen
    BatchNorm still normalises with batch statistics and updates its running statistics.
    """

    expected_ndim = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, dtype=None):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.eval_when_frozen = False
        self.weight = empty_parameter((num_features,), dtype) if affine else None
        self.bias = empty_parameter((num_features,), dtype) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", tensor(0, dtype="int64"))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _complete_state_dict(self, state_dict: dict, prefix: str, metadata: dict) -> None:
        """PyTorch's BatchNorm version rule: a checkpoint written before ``num_batches_tracked``
        existed (no version, or version < 2) loads with this layer's current count."""
        key = prefix + "num_batches_tracked"
        version = metadata.get("version")
        if self.track_running_stats and key not in state_dict and (version is None or version < 2):
            state_dict[key] = self.num_batches_tracked.data.copy()

    def frozen(self) -> bool:
        """True when this layer's affine parameters do not require gradients."""
        return self.affine and not self.weight.requires_grad

    def uses_batch_statistics(self) -> bool:
        if not self.training:
            return not self.track_running_stats
        return not (self.eval_when_frozen and self.frozen() and self.track_running_stats)

    def forward(self, x):
        if x.ndim not in self.expected_ndim or x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}) expects input with {' or '.join(map(str, self.expected_ndim))} "
                f"dimensions and {self.num_features} channels on axis 1, got shape {x.shape}"
            )
        batch_stats = self.uses_batch_statistics()
        momentum = self.momentum
        if batch_stats and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if momentum is None:
                momentum = 1.0 / int(self.num_batches_tracked.item())
        update = batch_stats and self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean if update or not batch_stats else None,
            self.running_var if update or not batch_stats else None,
            self.weight, self.bias, training=batch_stats, momentum=momentum or 0.0, eps=self.eps,
        )

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Over ``(N, C)`` or ``(N, C, L)``."""

    expected_ndim = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Over ``(N, C, H, W)``: one mean and variance per channel."""

    expected_ndim = (4,)


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` axes of each sample; learnable
    ``weight`` (ones) and ``bias`` (zeros) of that shape when ``elementwise_affine``."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, dtype=None):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = empty_parameter(self.normalized_shape, dtype) if elementwise_affine else None
        self.bias = empty_parameter(self.normalized_shape, dtype) if elementwise_affine else None
        if elementwise_affine:
            init.ones_(self.weight)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.weight is not None}"


class GroupNorm(Module):
    """Normalise each sample's ``num_groups`` groups of channels (see ``F.group_norm``);
    learnable ``weight`` (ones) and ``bias`` (zeros) of shape ``(num_channels,)`` when
    ``affine``. Independent of the batch size, so it fine-tunes well with small batches."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, dtype=None):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"num_channels must be divisible by num_groups, got {num_channels} and {num_groups}")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        self.weight = empty_parameter((num_channels,), dtype) if affine else None
        self.bias = empty_parameter((num_channels,), dtype) if affine else None
        if affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class RMSNorm(Module):
    """``x / sqrt(mean(x²) + eps) * weight`` over the trailing ``normalized_shape`` axes
    (LLaMA's normalisation: no centring, no bias); ``eps=None`` is the dtype's epsilon."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine: bool = True, dtype=None):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = empty_parameter(self.normalized_shape, dtype) if elementwise_affine else None
        if elementwise_affine:
            init.ones_(self.weight)

    def forward(self, x):
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.weight is not None}"
