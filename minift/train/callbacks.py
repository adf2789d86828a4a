"""Callbacks: code that runs at fixed points of the training loop.

``Learner.fit`` is one loop; everything optional about training (recording, stopping
early, saving checkpoints, printing progress, unfreezing layers) is a callback that the
loop calls at its *events*, in this order::

    before_fit
      before_epoch                      (once per epoch)
        before_batch                    (once per batch)
          loss = loss_fn(model(x), y)
        before_backward                 learner.loss, learner.loss_value are set
          loss.backward()
        after_backward                  the gradients are in param.grad
        before_step
          optimizer.step()
        after_step                      the weights have moved
          optimizer.zero_grad(); scheduler.step(); the counters advance
        after_batch
      (validation)
      after_epoch                       learner.epoch_metrics is set
    after_fit                           also when fit ends with an error

A callback subclasses ``Callback`` and defines the events it needs, each as a method
``event(self, learner)``; it reads and changes the learner's attributes (``model``,
``optimizer``, ``epoch``, ``batch_index``, ``iteration``, ``loss_value``,
``epoch_metrics``, ...). Setting ``learner.stop_training = True`` in any event ends
training after the current epoch (Keras's rule). Callbacks run in increasing ``order``.

A callback that remembers something across batches returns it from ``state_dict()``
and takes it back in ``load_state_dict()``: it is saved in training checkpoints, so a
resumed run continues exactly (see ``minift.train.resume``).
"""

from __future__ import annotations

import math
import os
import sys

EVENTS = (
    "before_fit", "before_epoch", "before_batch", "before_backward", "after_backward",
    "before_step", "after_step", "after_batch", "after_epoch", "after_fit",
)


class Callback:
    """Base class: every event does nothing; ``order`` sorts callbacks (lower runs first)."""

    order = 50

    def before_fit(self, learner): pass
    def before_epoch(self, learner): pass
    def before_batch(self, learner): pass
    def before_backward(self, learner): pass
    def after_backward(self, learner): pass
    def before_step(self, learner): pass
    def after_step(self, learner): pass
    def after_batch(self, learner): pass
    def after_epoch(self, learner): pass
    def after_fit(self, learner): pass

    def state_dict(self) -> dict:
        """What this callback needs to continue after a resume (nothing, by default)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, but got {sorted(state)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def event_handlers(callbacks) -> dict[str, list]:
    """For each event, the bound methods of the callbacks that define it, in ``order``.

    The loop calls only these: a callback costs nothing at the events its class does not
    define, which keeps the per-batch overhead of the loop tiny. (So define events as
    methods of the class; a function assigned to an instance attribute is not seen.)
    """
    ordered = sorted(callbacks, key=lambda callback: callback.order)
    return {
        event: [getattr(c, event) for c in ordered if getattr(type(c), event) is not getattr(Callback, event)]
        for event in EVENTS
    }


class NonFiniteLossError(FloatingPointError):
    """Training stopped because the loss became NaN or infinite."""


class TerminateOnNaN(Callback):
    """Stop training with ``NonFiniteLossError`` as soon as the loss is NaN or infinite.

    The check runs before ``backward``, so the bad loss never reaches the weights: the
    model keeps the values of the last good step. (Keras's ``TerminateOnNaN``, which
    stops quietly; minift raises, naming the step and the loss.) Always installed.
    """

    order = 0

    def before_backward(self, learner):
        if not math.isfinite(learner.loss_value):
            raise NonFiniteLossError(
                f"the training loss is {learner.loss_value} at step {learner.iteration} of this fit "
                f"(epoch {learner.epoch}, batch {learner.batch_index}; all counted from 0). Training "
                f"stopped before this step changed the weights. Common causes: a learning rate too "
                f"high (try learner.lr_find()), inputs with NaN, or a loss of log(0)."
            )


class EarlyStopping(Callback):
    """Stop when ``monitor`` (an epoch metric: ``"valid_loss"``, ``"accuracy"``, ...) has
    not improved by more than ``min_delta`` for ``patience`` epochs in a row.

    ``mode``: ``"min"``, ``"max"``, or ``"auto"`` (``"max"`` for a name containing "acc",
    else ``"min"``, as in Keras). With ``restore_best_weights`` the model gets the weights
    of its best epoch back when fit ends.
    """

    order = 60

    def __init__(self, monitor: str = "valid_loss", mode: str = "auto", patience: int = 3,
                 min_delta: float = 0.0, restore_best_weights: bool = False):
        if mode not in ("min", "max", "auto"):
            raise ValueError(f"EarlyStopping mode must be 'min', 'max' or 'auto', got {mode!r}")
        if not isinstance(patience, int) or isinstance(patience, bool) or patience < 0:
            raise ValueError(f"EarlyStopping patience must be an int >= 0, got {patience!r}")
        if not (isinstance(min_delta, (int, float)) and math.isfinite(min_delta) and min_delta >= 0):
            raise ValueError(f"EarlyStopping min_delta must be a finite number >= 0, got {min_delta!r}")
        self.monitor = monitor
        self.mode = mode if mode != "auto" else ("max" if "acc" in monitor else "min")
        self.patience = patience
        self.min_delta = float(min_delta)
        self.restore_best_weights = restore_best_weights
        self._reset()

    def _reset(self) -> None:
        self.best = None
        self.best_epoch = None
        self.wait = 0
        self.best_weights = None

    def before_fit(self, learner):
        self._reset()

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def after_epoch(self, learner):
        if self.monitor not in learner.epoch_metrics:
            raise KeyError(
                f"EarlyStopping monitors {self.monitor!r}, which is not an epoch metric; the epoch "
                f"metrics are {sorted(learner.epoch_metrics)} (valid_loss needs a valid_loader)"
            )
        value = float(learner.epoch_metrics[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, learner.epoch, 0
            if self.restore_best_weights:
                self.best_weights = learner.model.state_dict()
            return
        self.wait += 1
        if self.wait >= self.patience:
            learner.stop_training = True

    def after_fit(self, learner):
        if self.restore_best_weights and self.best_weights is not None:
            learner.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "best_weights": None if self.best_weights is None else dict(self.best_weights)}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.best_weights = state["best_weights"]

    def __repr__(self) -> str:
        return (f"EarlyStopping(monitor={self.monitor!r}, mode={self.mode!r}, patience={self.patience}, "
                f"min_delta={self.min_delta}, restore_best_weights={self.restore_best_weights})")


class Checkpointing(Callback):
    """Save a training checkpoint to ``directory/filename`` every ``every_n_steps``
    optimizer steps and (``at_epoch_end``) after every epoch.

    Each save replaces the previous file atomically (``minift.io.save_checkpoint``): a run
    killed while saving leaves the previous checkpoint whole. Resume with
    ``learner.fit(..., resume_from=checkpoint.path)``. Runs after the other callbacks,
    so that what they did in the same event is in the file.
    """

    order = 90

    def __init__(self, directory, every_n_steps: int | None = None, at_epoch_end: bool = True,
                 filename: str = "checkpoint.safetensors"):
        if every_n_steps is not None and (not isinstance(every_n_steps, int) or every_n_steps < 1):
            raise ValueError(f"every_n_steps must be a positive int or None, got {every_n_steps!r}")
        if os.path.splitext(filename)[1] not in (".safetensors", ".npz"):
            raise ValueError(f"checkpoint filename must end in .safetensors or .npz, got {filename!r}")
        self.directory = os.fspath(directory)
        self.every_n_steps = every_n_steps
        self.at_epoch_end = at_epoch_end
        self.filename = filename

    @property
    def path(self) -> str:
        return os.path.join(self.directory, self.filename)

    def before_fit(self, learner):
        os.makedirs(self.directory, exist_ok=True)

    def after_batch(self, learner):
        if self.every_n_steps is not None and learner.iteration % self.every_n_steps == 0:
            learner.save_checkpoint(self.path)

    def after_epoch(self, learner):
        if self.at_epoch_end:
            learner.save_checkpoint(self.path)

    def __repr__(self) -> str:
        return f"Checkpointing({self.directory!r}, every_n_steps={self.every_n_steps}, at_epoch_end={self.at_epoch_end})"


def format_metrics(metrics: dict) -> str:
    """``epoch 2/5  train_loss 0.4123  valid_loss 0.3990  accuracy 0.8760  3.1s``."""
    parts = [f"epoch {metrics['epoch'] + 1}/{metrics['epochs']}"]
    for name, value in metrics.items():
        if name in ("epoch", "epochs", "time"):
            continue
        parts.append(f"{name} {value:.4f}")
    parts.append(f"{metrics['time']:.1f}s")
    return "  ".join(parts)


class ProgressBar(Callback):
    """A tqdm bar per epoch and one summary line per epoch, on a terminal.

    Quiet when ``stream`` (default: stderr) is not a terminal, unless ``lines=True``: then
    one plain line per epoch, e.g. in a notebook or a log. Without tqdm installed, a
    terminal gets the plain lines only. The Learner installs one unless ``progress=False``.
    """

    order = 80

    def __init__(self, lines: bool = False, stream=None):
        self.lines = lines
        self.stream = stream
        self.tqdm = None
        self.bar = None

    def _stream(self):
        return self.stream if self.stream is not None else sys.stderr

    def _on_terminal(self) -> bool:
        isatty = getattr(self._stream(), "isatty", None)
        return bool(isatty and isatty())

    def before_fit(self, learner):
        self.tqdm = None
        if self._on_terminal():
            try:
                from tqdm.auto import tqdm
                self.tqdm = tqdm
            except ImportError:
                pass

    def before_epoch(self, learner):
        self._open(learner)

    def _open(self, learner):
        if self.tqdm is not None:
            self.bar = self.tqdm(total=len(learner.train_loader), initial=learner.batch_index, leave=False,
                                 file=self._stream(), desc=f"epoch {learner.epoch + 1}/{learner.epochs}")

    def after_batch(self, learner):
        if self.tqdm is None:
            return
        if self.bar is None:  # resumed in the middle of an epoch, so before_epoch did not run
            self._open(learner)
            return
        self.bar.set_postfix(loss=f"{learner.loss_value:.4f}", refresh=False)
        self.bar.update(1)

    def after_epoch(self, learner):
        self._close()
        if self.lines or self._on_terminal():
            print(format_metrics({**learner.epoch_metrics, "epochs": learner.epochs}), file=self._stream(), flush=True)

    def after_fit(self, learner):
        self._close()

    def _close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
