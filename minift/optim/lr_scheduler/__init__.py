"""Learning-rate schedules (``minift.optim.lr_scheduler``, PyTorch's module and names).

A scheduler sets every param group's ``lr`` before each optimizer step. Every schedule
but ``ReduceLROnPlateau`` is stepped once per batch::

    scheduler = OneCycleLR(optimizer, max_lr=1e-2, total_steps=epochs * len(loader))
    for epoch in range(epochs):
        for x, y in loader:
            loss_fn(model(x), y).backward()
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()

and is in *closed form*: the lr of group ``i`` at step ``t`` depends only on ``t`` and
that group's own base lr, ``base_lrs[i]`` (its ``group["initial_lr"]``, which the first
scheduler attached to the optimizer copies from ``group["lr"]``). So per-group,
discriminative learning rates keep their ratios through any schedule, and a schedule can
be resumed or jumped to any step. Some of PyTorch's schedulers instead multiply the
current lr ("chainable"); the values are the same, but here two schedulers do not compose
by stepping both -- put them one after the other in a ``SequentialLR``.

One file per kind:

- ``base.py``: ``LRScheduler``, the base class (the step count, ``step()``, saving);
- ``closed_form.py``: ``LambdaLR``, ``StepLR``, ``MultiStepLR``, ``ExponentialLR``,
  ``CosineAnnealingLR``, ``LinearLR``, ``PolynomialLR``, and ``SequentialLR``;
- ``warmup.py``: the fine-tuning schedules that warm up then anneal, ``OneCycleLR``,
  ``SlantedTriangularLR``, ``CosineWarmupLR``;
- ``cyclic.py``: the repeating ones, ``CyclicLR``, ``CosineAnnealingWarmRestarts``;
- ``plateau.py``: ``ReduceLROnPlateau``, stepped with a metric once per epoch.
"""

from .base import LRScheduler
from .closed_form import (CosineAnnealingLR, ExponentialLR, LambdaLR, LinearLR, MultiStepLR, PolynomialLR,
                          SequentialLR, StepLR)
from .cyclic import CosineAnnealingWarmRestarts, CyclicLR
from .plateau import ReduceLROnPlateau
from .warmup import CosineWarmupLR, OneCycleLR, SlantedTriangularLR

__all__ = [
    "LRScheduler", "LambdaLR", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR",
    "PolynomialLR", "SequentialLR", "OneCycleLR", "SlantedTriangularLR", "CosineWarmupLR", "CyclicLR",
    "CosineAnnealingWarmRestarts", "ReduceLROnPlateau",
]
