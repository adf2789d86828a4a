"""Plots of a training ``History`` and of an lr range test (needs matplotlib).

Each function draws on ``ax`` (a matplotlib Axes; a new figure when ``None``) and returns
the Axes, so plots can be combined, saved (``ax.figure.savefig(path)``) or shown. In a
script without a display, choose matplotlib's file-only backend first:
``import matplotlib; matplotlib.use("Agg")``.

- ``plot_loss``: the loss of every step (faint), its moving average, and the epoch
  ``train_loss`` / ``valid_loss``; dashed lines mark where each ``fit`` began;
- ``plot_lr``: the learning rate of each param group at every step (log scale) -- the
  schedule, and the discriminative ratios between groups;
- ``plot_update_ratios``: ``‖Δw‖ / ‖w‖`` per group per step (log scale), recorded by the
  ``UpdateToWeightRatio`` callback; around 1e-3 is the usual healthy value;
- ``plot_lr_find``: smoothed loss against lr (log scale) with the suggestion marked.
"""

from __future__ import annotations

import numpy as np


def _axes(ax):
    if ax is not None:
        return ax
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("minift.train.plots needs matplotlib: pip install 'minift[plot]'") from None
    _, ax = plt.subplots(figsize=(7, 4))
    return ax


def _mark_fits(ax, history) -> None:
    for start in history.fit_starts[1:]:
        ax.axvline(start, color="grey", linestyle="--", linewidth=0.8)


def moving_average(values, window: int) -> np.ndarray:
    """The mean of each run of ``window`` consecutive values (shorter at the start)."""
    values = np.asarray(values, dtype=np.float64)
    sums = np.cumsum(values)
    averages = sums.copy()
    averages[window:] = sums[window:] - sums[:-window]
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return averages / counts


def plot_loss(history, ax=None, window: int = 20):
    """Per-step loss, its moving average over ``window`` steps, and the epoch losses."""
    ax = _axes(ax)
    steps = np.arange(1, len(history.losses) + 1)
    ax.plot(steps, history.losses, color="C0", alpha=0.25, linewidth=0.8, label="batch loss")
    if history.losses:
        ax.plot(steps, moving_average(history.losses, window), color="C0", label=f"batch loss ({window}-step mean)")
    ends = [record["step"] for record in history.epochs]
    for name, color in (("train_loss", "C1"), ("valid_loss", "C2")):
        values = [record.get(name) for record in history.epochs]
        if any(value is not None for value in values):
            ax.plot(ends, [np.nan if v is None else v for v in values], "o-", color=color, label=f"{name} (epoch)")
    _mark_fits(ax, history)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    return ax


def plot_lr(history, ax=None):
    """The learning rate of every param group at every step."""
    ax = _axes(ax)
    lrs = history.lr_per_group()
    steps = np.arange(1, len(lrs) + 1)
    for index in range(lrs.shape[1]):
        name = history.group_names[index] if index < len(history.group_names) else str(index)
        ax.plot(steps, lrs[:, index], label=f"group {name}")
    _mark_fits(ax, history)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.legend()
    return ax


def plot_update_ratios(history, ax=None):
    """``‖Δw‖ / ‖w‖`` of every param group at every step (zeros, frozen steps, are not drawn)."""
    if not history.update_ratios:
        raise ValueError("no update ratios recorded: train with the UpdateToWeightRatio callback first")
    ax = _axes(ax)
    ratios = np.array(history.update_ratios, dtype=np.float64)
    ratios[ratios == 0] = np.nan  # a frozen group: nothing to draw on a log scale
    steps = np.arange(1, len(ratios) + 1)
    for index in range(ratios.shape[1]):
        name = history.group_names[index] if index < len(history.group_names) else str(index)
        ax.plot(steps, ratios[:, index], label=f"group {name}")
    ax.axhline(1e-3, color="grey", linestyle=":", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("‖Δw‖ / ‖w‖")
    ax.legend()
    return ax


def plot_lr_find(result, ax=None):
    """The lr range test: smoothed loss against learning rate, with the suggestion."""
    ax = _axes(ax)
    ax.plot(result.lrs, result.smoothed, color="C0")
    ax.axvline(result.suggestion, color="C3", linestyle="--", label=f"suggestion {result.suggestion:.1e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed loss")
    ax.legend()
    return ax
