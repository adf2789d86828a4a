"""Metrics reported after each epoch, computed on the validation set.

A metric is a function ``metric(output, target) -> float`` of one batch (``output`` the
model's output Tensor, ``target`` the labels Tensor). The Learner averages it over the
validation batches weighted by batch size, which is exact for any metric that is a mean
over samples (accuracy, error rate). It is reported under its ``__name__``. The names
``"accuracy"`` and ``"error_rate"`` stand for the functions below.
"""

from __future__ import annotations


def accuracy(output, target) -> float:
    """Fraction of samples whose arg-max over the last axis is the label."""
    predictions = output.data.argmax(axis=-1)
    return float((predictions == target.data).mean())


def error_rate(output, target) -> float:
    """``1 - accuracy`` (fastai's default metric)."""
    return 1.0 - accuracy(output, target)


METRICS = {"accuracy": accuracy, "error_rate": error_rate}


def resolve_metrics(metrics) -> dict:
    """``{name: function}`` from a list of names and functions."""
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]
    resolved = {}
    for metric in metrics:
        if isinstance(metric, str):
            if metric not in METRICS:
                raise ValueError(
                    f"unknown metric {metric!r}: expected one of {sorted(METRICS)} or a function (output, target) -> float"
                )
            metric = METRICS[metric]
        if not callable(metric):
            raise TypeError(f"a metric must be a name or a function (output, target) -> float, got {type(metric).__name__}")
        name = getattr(metric, "__name__", type(metric).__name__)
        if name in resolved or name in ("epoch", "train_loss", "valid_loss", "time", "step"):
            raise ValueError(f"two metrics, or a metric and a loss, share the name {name!r}")
        resolved[name] = metric
    return resolved
