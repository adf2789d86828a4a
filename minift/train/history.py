"""What happened during training: ``History`` and the update-to-weight ratio recorder.

``learner.history`` is a ``History``, always installed. Across every ``fit`` of a
learner (the phases of a fine-tuning recipe follow one another) it records

- per optimizer step: ``losses[t]`` (the training loss of the batch), ``lrs[t][g]``
  (the learning rate of param group ``g`` used by that step);
- per epoch: ``epochs[k]``, a dict of the epoch metrics (``epoch``, ``train_loss``,
  ``valid_loss``, ``accuracy``, ..., ``time`` in seconds) plus ``step``, the number of
  steps recorded when the epoch ended (where it sits on a per-step axis);
- ``fit_starts``: the step at which each ``fit`` began (the recipes' phase boundaries);
- ``update_ratios[t][g]``: filled only with the ``UpdateToWeightRatio`` callback.

``minift.train.plots`` draws them.
"""

from __future__ import annotations

import math

import numpy as np

from .callbacks import Callback


class History(Callback):
    """Records losses, learning rates and metrics (see the module docstring)."""

    order = 10

    def __init__(self):
        self.losses: list[float] = []
        self.lrs: list[list[float]] = []
        self.epochs: list[dict] = []
        self.fit_starts: list[int] = []
        self.update_ratios: list[list[float]] = []
        self.group_names: list[str] = []

    def before_fit(self, learner):
        self.fit_starts.append(len(self.losses))
        self.group_names = [str(group.get("name", index)) for index, group in enumerate(learner.optimizer.param_groups)]

    def after_step(self, learner):
        self.losses.append(learner.loss_value)
        self.lrs.append([group["lr"] for group in learner.optimizer.param_groups])

    def after_epoch(self, learner):
        self.epochs.append({**learner.epoch_metrics, "step": len(self.losses)})

    def metric(self, name: str) -> list[float]:
        """One epoch metric over all recorded epochs, e.g. ``history.metric("valid_loss")``."""
        known = {key for record in self.epochs for key in record}
        if name not in known:
            raise KeyError(f"no epoch metric {name!r}; recorded: {sorted(known)}")
        return [record.get(name, math.nan) for record in self.epochs]

    def lr_per_group(self) -> np.ndarray:
        """The learning rates as an array ``(steps, groups)``."""
        return self._table(self.lrs)

    def _table(self, rows: list) -> np.ndarray:
        """Per-step rows of per-group values as a float64 array ``(steps, groups)``."""
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(self.group_names))

    def state_dict(self) -> dict:
        return {
            "losses": np.array(self.losses, dtype=np.float64),
            "lrs": self.lr_per_group(),
            "update_ratios": self._table(self.update_ratios),
            "epochs": [dict(record) for record in self.epochs],
            "fit_starts": list(self.fit_starts),
            "group_names": list(self.group_names),
        }

    def load_state_dict(self, state: dict) -> None:
        self.losses = [float(value) for value in state["losses"]]
        self.lrs = np.asarray(state["lrs"]).tolist()
        self.update_ratios = np.asarray(state["update_ratios"]).tolist()
        self.epochs = [dict(record) for record in state["epochs"]]
        self.fit_starts = list(state["fit_starts"])
        self.group_names = list(state["group_names"])

    def __repr__(self) -> str:
        return f"History({len(self.losses)} steps, {len(self.epochs)} epochs, {len(self.fit_starts)} fits)"


class UpdateToWeightRatio(Callback):
    """Record ``‖Δw‖ / ‖w‖`` per param group at every step into ``learner.history.update_ratios``.

    For group ``g`` with weights ``w`` (all its parameters as one vector) before the step
    and ``w'`` after: ``ratio_g = ‖w' − w‖₂ / ‖w‖₂``. A healthy rate of learning moves
    weights by roughly 1e-3 of their size per step (Karpathy's rule of thumb); a frozen
    group shows 0. It copies the trainable weights before every step, so it costs a little
    time and memory: add it when you want the plot, ``Learner(callbacks=[UpdateToWeightRatio()])``.
    """

    order = 20

    def before_step(self, learner):
        self._before = []
        for group in learner.optimizer.param_groups:
            weight_sq = sum(_squared_norm(param.data) for param in group["params"])
            copies = [(param, param.data.copy()) for param in group["params"] if param.requires_grad]
            self._before.append((weight_sq, copies))

    def after_step(self, learner):
        ratios = []
        for weight_sq, copies in self._before:
            update_sq = sum(_squared_norm(param.data - old) for param, old in copies)
            ratios.append(math.sqrt(update_sq / weight_sq) if weight_sq > 0 else 0.0)
        self._before = None
        learner.history.update_ratios.append(ratios)


def _squared_norm(array) -> float:
    """``‖a‖₂²`` accumulated in float64 (NumPy or CuPy array)."""
    return float((array.astype("float64") ** 2).sum())
