"""The learning-rate range test (Smith 2015, "Cyclical Learning Rates"; fastai's ``lr_find``).

Train for a few batches while the learning rate grows exponentially, from ``start_lr``
to ``end_lr`` over ``num_iter`` steps::

    lr_i = start_lr · (end_lr / start_lr) ^ (i / (num_iter − 1))

and watch the loss. At tiny rates it barely moves; then it falls, faster and faster; past
some rate it turns and explodes. A good rate for training sits where the loss is still
falling steeply, well before the minimum. The sweep stops early once the smoothed loss
exceeds 4 × its best value (it has diverged). Afterwards the model, the optimizer, the
random generator and the loader are put back exactly as they were: the test is free.

The suggestion is fastai's classic ``lr_min``: the rate at the minimum of the smoothed
loss, divided by 10 (at the minimum the loss is about to blow up). ``lr_steep``, the rate
where the smoothed loss falls fastest against ``log(lr)``, is reported too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..engine.random import get_rng_state, set_rng_state


@dataclass
class LRFindResult:
    """The sweep: ``lrs[i]``, the raw ``losses[i]`` and their exponential moving average
    ``smoothed[i]`` (bias-corrected, β = 0.98); ``suggestion`` (= ``lr_min``) and ``lr_steep``."""

    lrs: list
    losses: list
    smoothed: list
    lr_min: float
    lr_steep: float

    @property
    def suggestion(self) -> float:
        return self.lr_min

    def plot(self, ax=None):
        from .plots import plot_lr_find

        return plot_lr_find(self, ax=ax)

    def __repr__(self) -> str:
        return (f"LRFindResult({len(self.lrs)} steps from {self.lrs[0]:.2e} to {self.lrs[-1]:.2e}; "
                f"suggestion (lr_min) {self.lr_min:.2e}, lr_steep {self.lr_steep:.2e})")


def lr_find(learner, start_lr: float = 1e-7, end_lr: float = 10.0, num_iter: int = 100,
            stop_div: bool = True, beta: float = 0.98) -> LRFindResult:
    """Run the range test on ``learner`` (every param group gets the same lr, as in fastai)
    and restore it afterwards; see the module docstring."""
    if not (0 < start_lr < end_lr and math.isfinite(end_lr)):
        raise ValueError(f"lr_find needs 0 < start_lr < end_lr < inf, got start_lr={start_lr!r}, end_lr={end_lr!r}")
    if not isinstance(num_iter, int) or num_iter < 2:
        raise ValueError(f"lr_find needs num_iter >= 2 steps, got {num_iter!r}")
    if not 0 <= beta < 1:
        raise ValueError(f"lr_find smoothing beta must be in [0, 1), got {beta!r}")
    if len(learner.train_loader) == 0:
        raise ValueError("lr_find: the train_loader has no batches")
    saved = _snapshot(learner)
    lrs, losses, smoothed = [], [], []
    average, best = 0.0, math.inf
    try:
        learner.model.train()
        for i, batch in zip(range(num_iter), _batches_forever(learner.train_loader)):
            lr = start_lr * (end_lr / start_lr) ** (i / (num_iter - 1))
            for group in learner.optimizer.param_groups:
                group["lr"] = lr
            loss = learner.compute_loss(batch)
            value = loss.item()
            average = beta * average + (1 - beta) * value
            smooth = average / (1 - beta ** (i + 1))
            lrs.append(lr)
            losses.append(value)
            smoothed.append(smooth)
            if not math.isfinite(smooth) or (stop_div and smooth > 4 * best):
                break
            best = min(best, smooth)
            loss.backward()
            learner.optimizer.step()
            learner.optimizer.zero_grad()
    finally:
        _restore(learner, saved)
    return LRFindResult(lrs, losses, smoothed, *_suggestions(lrs, smoothed))


def _batches_forever(loader):
    """The loader's batches, epoch after epoch (a sweep may be longer than one epoch)."""
    while True:
        yield from loader


def _suggestions(lrs: list, smoothed: list) -> tuple[float, float]:
    """``(lr at the smoothed minimum / 10, lr of the steepest descent)``, finite values only."""
    finite = [(lr, loss) for lr, loss in zip(lrs, smoothed) if math.isfinite(loss)]
    if not finite:
        raise FloatingPointError("lr_find: every loss was NaN or infinite, even at start_lr; check the data and the model")
    rates, values = np.array(finite).T
    lr_min = float(rates[np.argmin(values)]) / 10
    if len(values) < 3:
        return lr_min, lr_min
    slopes = np.gradient(values, np.log(rates))
    return lr_min, float(rates[np.argmin(slopes)])


def _snapshot(learner) -> dict:
    loader = learner.train_loader
    return {
        "model": learner.model.state_dict(),
        "optimizer": learner.optimizer.state_dict(),
        "rng": get_rng_state(),
        "loader": loader.state_dict() if hasattr(loader, "state_dict") else None,
        "modes": [(module, module.training) for module in learner.model.modules()],
    }


def _restore(learner, saved: dict) -> None:
    learner.optimizer.zero_grad()
    learner.model.load_state_dict(saved["model"])
    learner.optimizer.load_state_dict(saved["optimizer"])
    set_rng_state(saved["rng"])
    if saved["loader"] is not None:
        learner.train_loader.load_state_dict(saved["loader"])
    for module, training in saved["modes"]:
        module.training = training
