"""The demo's results: one row per strategy over the seeds, the claims checked, the plots.

Each row of the table is the mean over the seeds, with the spread (lowest-highest) beside
it: with 20 labelled images, which 20 matters, and a single draw could rank the
strategies differently from another draw. ``CLAIMS`` holds every sentence the README says
about the results; ``check_claims`` tests each on a run, and the demo prints which held
(``tests/test_demo.py`` requires all of them on the NumPy and Numba backends, 1 and 2
threads).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write
from ..train.plots import moving_average

SCRATCH, EXTRACTION, FULL, HIGH_LR, GRADUAL = (
    "from scratch (baseline)", "feature extraction", "full fine-tuning", "full fine-tuning at 30x the lr",
    "gradual unfreezing + discr. lr + STLR")


@dataclass
class RowSummary:
    """One row over its seeds: mean, lowest and highest target accuracy and source accuracy
    after fine-tuning (None: the body never saw the source), parameters, mean seconds."""

    label: str
    strategy: str
    lr: float
    seeds: int
    target_mean: float
    target_min: float
    target_max: float
    source_mean: float | None
    source_min: float | None
    source_max: float | None
    trainable: int
    total: int
    seconds: float


def summarize(rows, runs) -> list[RowSummary]:
    """One ``RowSummary`` per ``DemoRun`` of ``runs``, from its ``RunResult``s in ``rows``."""
    summaries = []
    for run in runs:
        mine = [row for row in rows if row.label == run.label]
        target = np.array([row.target_accuracy for row in mine])
        source = None if mine[0].source_accuracy is None else np.array([row.source_accuracy for row in mine])
        summaries.append(RowSummary(
            run.label, run.strategy, mine[0].lr, len(mine), float(target.mean()), float(target.min()),
            float(target.max()), *(None,) * 3 if source is None else (float(source.mean()), float(source.min()),
                                                                       float(source.max())),
            mine[-1].trainable, mine[-1].total, float(np.mean([row.seconds for row in mine]))))
    return summaries


def _high_lr_forgets_most(rows, pretrained):
    high = rows[HIGH_LR].source_mean
    return all(row.source_mean > high for label, row in rows.items()
               if row.source_mean is not None and label != HIGH_LR)


CLAIMS = {
    "Feature extraction beats training from scratch.":
        (lambda rows, pretrained: rows[EXTRACTION].target_mean > rows[SCRATCH].target_mean, (EXTRACTION, SCRATCH)),
    "Full fine-tuning at a low learning rate beats training from scratch.":
        (lambda rows, pretrained: rows[FULL].target_mean > rows[SCRATCH].target_mean, (FULL, SCRATCH)),
    "Feature extraction leaves the source task exactly as it was.":
        (lambda rows, pretrained: rows[EXTRACTION].source_min == rows[EXTRACTION].source_max == pretrained,
         (EXTRACTION,)),
    "Too high a learning rate forgets the most: ×30 leaves the lowest source accuracy of all.":
        (_high_lr_forgets_most, (HIGH_LR, EXTRACTION, FULL, GRADUAL)),
}
"""Each sentence the README says about the demo's results -> (test on the row summaries by
label and the pretrained source accuracy, the rows it needs)."""


def check_claims(summaries, pretrained_accuracy: float) -> dict:
    """``{sentence: True/False}`` for each claim whose rows this run has."""
    rows = {row.label: row for row in summaries}
    return {sentence: bool(test(rows, pretrained_accuracy))
            for sentence, (test, needs) in CLAIMS.items() if all(label in rows for label in needs)}


def format_claims(claims: dict) -> str:
    lines = ["claims (the README's sentences about these results; the mean over the seeds):"]
    lines += [f"  [{'holds' if held else 'FAILS'}] {sentence}" for sentence, held in claims.items()]
    return "\n".join(lines)


def _spread(mean, low, high) -> str:
    return "-" if mean is None else f"{mean:.3f} ({low:.3f}-{high:.3f})"


def format_table(summaries, source, target, pretrained_accuracy: float, seeds: int, environment: dict) -> str:
    """The comparison table, as text, headed by where it came from."""
    from .provenance import describe

    rows = [(f"{row.label}, lr {row.lr:g}", _spread(row.target_mean, row.target_min, row.target_max),
             _spread(row.source_mean, row.source_min, row.source_max),
             f"{row.trainable:,} / {row.total:,}", f"{row.seconds:.1f}s") for row in summaries]
    headers = ("strategy", "target acc", "source acc after", "trainable params", "time")
    widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(headers)]

    def line(cells):
        return "  ".join(f"{cell:<{w}}" if i == 0 else f"{cell:>{w}}" for i, (cell, w) in enumerate(zip(cells, widths)))

    return "\n".join([
        describe(environment),
        f"target: {target.name} test set ({len(target.y_test)} images); source: {source.name} test set "
        f"({len(source.y_test)} images): {pretrained_accuracy:.3f} before fine-tuning",
        f"each cell: mean over {seeds} seeds (lowest-highest); time: mean seconds of one run",
        line(headers), "-" * len(line(headers)), *map(line, rows)])



def _error_bars(lowest: float, mean: float, highest: float) -> list[list[float]]:
    """Error-bar lengths below and above the mean; never negative (three equal runs can
    give a mean one rounding above its highest value, which matplotlib refuses)."""
    return [[max(0.0, mean - lowest)], [max(0.0, highest - mean)]]

def plot_results(rows, summaries, pretrained_accuracy: float, path) -> Path | None:
    """Three panels: target test accuracy per epoch and smoothed training loss per step for
    the first seed (one line per strategy, its learning rate in the legend), and
    forgetting: target accuracy against source accuracy after fine-tuning, one point per
    strategy (mean over the seeds, bars from lowest to highest). ``None`` (nothing written)
    when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (accuracy_axes, loss_axes, forgetting_axes) = plt.subplots(1, 3, figsize=(18, 5))
    first_seed = min(row.seed for row in rows)
    for row in (row for row in rows if row.seed == first_seed):
        label = f"{row.label} (lr {row.lr:g})"
        accuracy = row.history.metric("accuracy")
        accuracy_axes.plot(range(1, len(accuracy) + 1), accuracy, marker="o", markersize=3, label=label)
        loss_axes.plot(moving_average(row.history.losses, 10), label=label)
    accuracy_axes.set(xlabel="epoch", ylabel="target test accuracy", title=f"Accuracy on the target task (seed {first_seed})")
    loss_axes.set(xlabel="step", ylabel="training loss (10-step mean)", yscale="log", title="Training loss")
    accuracy_axes.legend(fontsize=8)
    for row in summaries:
        if row.source_mean is None:
            forgetting_axes.axhline(row.target_mean, color="grey", linestyle="--", label=f"{row.label} (lr {row.lr:g})")
            continue
        forgetting_axes.errorbar(
            row.source_mean, row.target_mean, fmt="o", capsize=3, label=f"{row.label} (lr {row.lr:g})",
            xerr=_error_bars(row.source_min, row.source_mean, row.source_max),
            yerr=_error_bars(row.target_min, row.target_mean, row.target_max))
    forgetting_axes.axvline(pretrained_accuracy, color="black", linestyle=":", label="source acc before fine-tuning")
    forgetting_axes.set(xlabel="source test accuracy after fine-tuning (forgetting: further left)",
                        ylabel="target test accuracy", title=f"Forgetting (mean of {summaries[0].seeds} seeds)")
    forgetting_axes.legend(fontsize=8)
    figure.tight_layout()
    with atomic_write(path) as file:  # the plot appears whole or not at all
        figure.savefig(file, format="png", dpi=100)
    plt.close(figure)
    return Path(path)
