"""BatchNorm while frozen: the one switch between fastai's rule and Keras's.

A BatchNorm layer holds two kinds of state: affine parameters (``weight``, ``bias``),
which the optimizer learns, and running statistics (``running_mean``, ``running_var``),
which are *not* learned but averaged from the batches the layer sees in training mode.
Freezing a layer (``requires_grad = False``) stops the first kind only. What should the
running statistics of a frozen BatchNorm do under ``model.train()``?

``"keras"`` -- a frozen BatchNorm runs in inference mode: it normalises with its running
statistics and leaves them alone, exactly as in ``model.eval()``. This is Keras's rule
(since TF 2.0, ``layer.trainable = False`` on BatchNormalization means inference mode).
The reason: the pretrained statistics were averaged over a large source dataset; a small
target dataset, seen in small batches, gives noisy means and variances, and averaging
them in would wreck the statistics the frozen layers after it were trained against. A
frozen layer should compute the same function in training and at test time.

``"fastai"`` -- (minift's default) a frozen BatchNorm still normalises with the batch's
statistics and keeps updating its running statistics, as PyTorch does for any layer in
training mode. The statistics follow the new data, which helps when the target images
differ in brightness or contrast from the source (fastai goes further and, by default,
keeps BatchNorm's affine parameters trainable too: ``freeze(..., train_bn=True)``).

The switch is ``eval_when_frozen`` on each ``nn.BatchNorm1d/2d`` layer (see
``minift/nn/normalization.py``); ``set_bn_policy`` sets it on all of them. It acts only
on layers whose affine parameters are frozen, and only while they are frozen:
unfreezing a layer puts it back in ordinary training mode.
"""

from __future__ import annotations

from ..nn import BatchNorm1d, BatchNorm2d, Module

BN_POLICIES = ("fastai", "keras")


def set_bn_policy(model: Module, policy: str) -> int:
    """Set how every frozen BatchNorm in ``model`` behaves under ``model.train()``:
    ``"keras"`` (inference mode, running statistics fixed) or ``"fastai"`` (batch
    statistics, running statistics updated). Returns the number of BatchNorm layers set."""
    if policy not in BN_POLICIES:
        raise ValueError(f"unknown BatchNorm policy {policy!r}: expected one of {BN_POLICIES}")
    layers = [m for m in model.modules() if isinstance(m, (BatchNorm1d, BatchNorm2d))]
    for layer in layers:
        layer.eval_when_frozen = policy == "keras"
    return len(layers)
