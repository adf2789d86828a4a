"""``Learner``: a model, its data, an optimizer over its layer groups, and the fit loop.

fastai's ``Learner`` in a few hundred readable lines::

    learner = Learner(model, train_loader, valid_loader, opt="adamw", metrics=["accuracy"])
    learner.freeze()                              # only the head learns
    learner.fit_one_cycle(1, 2e-3)
    learner.unfreeze()
    learner.fit_one_cycle(3, slice(1e-5, 1e-3))   # discriminative lrs, input side lowest
    learner.history.epochs[-1]["accuracy"]

The model is cut into layer groups (``minift.finetune.layer_groups``), and the optimizer
gets one param group per layer group, **frozen parameters included**: an optimizer skips
a parameter without a gradient, so freezing and unfreezing never rebuild it, and a
parameter unfrozen later starts with empty optimizer state. ``fit`` sets each group's
base lr from ``lr`` (a float, ``slice(a, b)``, ``slice(b)`` or a list, see
``minift.finetune.discriminative_lrs``) and steps the schedule once per batch.

One training step (``_train_batch``), with the callback events around it::

    loss = loss_fn(model(x), y) [+ regularizer()]     before_batch ... before_backward
    loss.backward()                                   ... after_backward
    optimizer.step()                                  before_step ... after_step
    optimizer.zero_grad(); scheduler.step()           ... after_batch

BatchNorm: ``bn_policy="fastai"`` (default) keeps BatchNorm layers training normally and,
as fastai's Learner does (``train_bn=True``), keeps their affine parameters trainable
when their group is frozen; ``"keras"`` freezes them with their group and runs a frozen
BatchNorm in inference mode (see ``minift.finetune.batchnorm``).
"""

from __future__ import annotations

import math
import time

from .. import functional as F
from ..engine.autograd import no_grad
from ..finetune.batchnorm import BN_POLICIES, set_bn_policy
from ..finetune.freezing import freeze_to
from ..finetune.groups import layer_groups
from ..finetune.lrs import discriminative_lrs, param_groups
from ..io import save_checkpoint
from ..nn import Module
from ..optim import SGD, Adam, AdamW, Optimizer
from ..engine.tensor import Tensor
from ..distributed.training import data_parallel, is_main_process, progress_stream, sum_over_ranks
from .callbacks import Callback, Checkpointing, ProgressBar, TerminateOnNaN, event_handlers
from .history import History
from .metrics import resolve_metrics
from .resume import fit_signature, load_training_state, restore_training_state, training_state
from .schedules import build_scheduler, describe_schedule, fastai_one_cycle, resolve_schedule

OPTIMIZERS = {
    "adamw": AdamW,
    "adam": Adam,
    "sgd": lambda groups: SGD(groups, momentum=0.9),  # fastai's default momentum
}


def build_optimizer(opt, groups: list[dict]) -> Optimizer:
    """An optimizer over ``groups`` from a name in ``OPTIMIZERS`` or a callable ``groups -> Optimizer``."""
    if isinstance(opt, str):
        if opt not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {opt!r}: expected one of {sorted(OPTIMIZERS)} or a callable param_groups -> Optimizer"
            )
        opt = OPTIMIZERS[opt]
    elif not callable(opt):
        raise TypeError(
            f"opt must be a name ({sorted(OPTIMIZERS)}) or a callable param_groups -> Optimizer, got {type(opt).__name__}"
        )
    optimizer = opt(groups)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"opt returned a {type(optimizer).__name__}, expected a minift.optim.Optimizer")
    return optimizer


class Learner:
    """Trains ``model`` on ``train_loader`` (batches ``(inputs, targets)``).

    - ``valid_loader``: evaluated after every epoch (``valid_loss`` and ``metrics``);
    - ``loss_fn(output, targets) -> Tensor``; ``regularizer() -> Tensor`` is added to the
      loss at every step (e.g. ``L2SP(...).penalty``);
    - ``opt``: ``"adamw"``, ``"adam"``, ``"sgd"`` (momentum 0.9) or ``param_groups -> Optimizer``;
      ``weight_decay`` goes into every param group (decoupled for AdamW, L2 otherwise);
    - ``lr``: the learning rate ``fit`` uses when it is given none (fastai's ``Learner.lr``);
    - ``metrics``: names (``"accuracy"``, ``"error_rate"``) or functions ``(output, target) -> float``;
    - ``callbacks``: ``Callback`` objects; a ``History`` (``learner.history``), a
      ``TerminateOnNaN`` and, unless ``progress=False``, a ``ProgressBar`` are added
      (``progress="lines"``: plain lines even when stderr is not a terminal);
    - ``splitter``: how to cut the model into layer groups (``minift.finetune.layer_groups``);
    - ``bn_policy``: ``"fastai"`` or ``"keras"`` (see the module docstring);
    - ``checkpoint_dir``: adds ``Checkpointing(checkpoint_dir)`` (a checkpoint after each
      epoch) unless a ``Checkpointing`` callback is given.

    Bad arguments raise before anything is built.
    """

    def __init__(self, model, train_loader, valid_loader=None, loss_fn=F.cross_entropy, opt="adamw", lr=1e-3,
                 metrics=("accuracy",), callbacks=(), splitter=None, bn_policy="fastai", weight_decay=1e-2,
                 progress=True, regularizer=None, checkpoint_dir=None):
        if not isinstance(model, Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        for name, loader in (("train_loader", train_loader), ("valid_loader", valid_loader)):
            if loader is not None and not (hasattr(loader, "__iter__") and hasattr(loader, "__len__")):
                raise TypeError(f"{name} must be iterable with a length (a DataLoader), got {type(loader).__name__}")
        if train_loader is None or len(train_loader) == 0:
            raise ValueError("train_loader must yield at least one batch")
        for name, function in (("loss_fn", loss_fn), ("regularizer", regularizer)):
            if function is not None and not callable(function):
                raise TypeError(f"{name} must be callable, got {type(function).__name__}")
        if bn_policy not in BN_POLICIES:
            raise ValueError(f"unknown bn_policy {bn_policy!r}: expected one of {BN_POLICIES}")
        if not (isinstance(weight_decay, (int, float)) and math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        if progress not in (True, False, "lines"):
            raise ValueError(f"progress must be True, False or 'lines', got {progress!r}")
        callbacks = list(callbacks)
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be Callback objects, got {type(callback).__name__}")
        # under mpiexec: DistributedDataParallel and each rank its share of the data (alone: unchanged)
        model, train_loader, valid_loader = data_parallel(model, train_loader, valid_loader)
        groups = layer_groups(model, splitter)
        discriminative_lrs(lr, len(groups))
        self.metrics = resolve_metrics(metrics)

        self.model = model
        self.train_loader = train_loader
        self.valid_loader = valid_loader
        self.loss_fn = loss_fn
        self.regularizer = regularizer
        self.lr = lr
        self.groups = groups
        self.optimizer = build_optimizer(opt, param_groups(model, lr, groups, weight_decay=weight_decay))
        self.bn_policy = bn_policy
        set_bn_policy(model, bn_policy)  # after the last check that can fail: a bad Learner leaves the model alone
        self.scheduler = None
        self.fit_signature = None
        self.history = History()
        callbacks = [self.history, TerminateOnNaN(), *callbacks]
        if progress:  # under mpiexec, on every rank (the same callbacks), but only rank 0's prints
            callbacks.append(ProgressBar(lines=progress == "lines", stream=progress_stream()))
        self.checkpoint_dir = checkpoint_dir
        if checkpoint_dir is not None and not any(isinstance(c, Checkpointing) for c in callbacks):
            callbacks.append(Checkpointing(checkpoint_dir))
        self.callbacks = callbacks
        self.fit_callbacks = callbacks
        self._reset_loop()

    def _reset_loop(self, epochs: int = 0) -> None:
        """The loop's counters: all count what is done (0-based epoch and batch indices)."""
        self.epochs = epochs
        self.epoch = 0
        self.batch_index = 0        # batches of this epoch done
        self.iteration = 0          # optimizer steps of this fit done
        self.epoch_finished = False
        self.stop_training = False
        self.train_loss_sum = 0.0   # sum of batch loss * batch size over this epoch
        self.train_samples = 0
        self.epoch_metrics = {}
        self.loss = self.loss_value = None

    # ------------------------------------------------------------ freezing
    @property
    def train_bn(self) -> bool:
        """Whether BatchNorm parameters stay trainable in frozen groups (fastai: yes, Keras: no)."""
        return self.bn_policy == "fastai"

    def set_bn_policy(self, policy: str) -> None:
        """Switch every BatchNorm of the model to ``"fastai"`` or ``"keras"`` behaviour when frozen."""
        set_bn_policy(self.model, policy)
        self.bn_policy = policy

    def freeze_to(self, n: int) -> None:
        """Freeze layer groups ``[:n]``, train ``[n:]`` (negative ``n`` counts from the head)."""
        freeze_to(self.model, n, self.groups, train_bn=self.train_bn)

    def freeze(self) -> None:
        """Train only the last layer group (the head)."""
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        """Train every layer group."""
        self.freeze_to(0)

    # ------------------------------------------------------------ fitting
    def fit(self, epochs: int, lr=None, schedule=None, unfreeze_schedule=None, resume_from=None) -> "Learner":
        """Train for ``epochs`` epochs with base lrs ``lr`` (default ``self.lr``).

        ``schedule``: ``None``/``"constant"``, ``"one_cycle"``, ``"slanted_triangular"``,
        ``"cosine"``, a scheduler class (or ``partial`` of one), or a callable
        ``(optimizer, total_steps) -> scheduler`` (see ``minift.train.schedules``); stepped once per batch, each group from its own base lr.
        ``unfreeze_schedule``: a callback active during this fit only, e.g.
        ``GradualUnfreezing(every=1)``. ``resume_from``: a checkpoint written by this same
        call, to continue from (see ``minift.train.resume``).
        """
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ValueError(f"fit needs a positive int number of epochs, got {epochs!r}")
        lrs = discriminative_lrs(self.lr if lr is None else lr, len(self.optimizer.param_groups))
        make_scheduler = resolve_schedule(schedule)
        if unfreeze_schedule is not None and not isinstance(unfreeze_schedule, Callback):
            raise TypeError(
                f"unfreeze_schedule must be a Callback such as GradualUnfreezing(), got {type(unfreeze_schedule).__name__}"
            )
        callbacks = [*self.callbacks, *([unfreeze_schedule] if unfreeze_schedule is not None else [])]
        callbacks.sort(key=lambda callback: callback.order)
        steps_per_epoch = len(self.train_loader)
        signature = fit_signature(epochs, steps_per_epoch, lrs, describe_schedule(schedule), callbacks)
        saved = None if resume_from is None else load_training_state(resume_from, self, signature)

        self.scheduler = self._start_schedule(lrs, make_scheduler, epochs * steps_per_epoch)
        self.fit_signature = signature
        self.fit_callbacks = callbacks
        self._handlers = event_handlers(callbacks)
        self._reset_loop(epochs)
        try:
            self._event("before_fit")
            if saved is not None:
                restore_training_state(self, saved)
            self._run_epochs()
        finally:
            self._event("after_fit")
        return self

    def fit_one_cycle(self, epochs: int, lr_max=None, pct_start: float = 0.25, div: float = 25.0,
                      div_final: float = 1e5, moms=(0.95, 0.85), unfreeze_schedule=None, resume_from=None) -> "Learner":
        """``fit`` with the 1cycle policy, fastai's defaults (see ``schedules.fastai_one_cycle``)."""
        schedule = fastai_one_cycle(pct_start=pct_start, div=div, div_final=div_final, moms=tuple(moms))
        return self.fit(epochs, lr_max, schedule=schedule, unfreeze_schedule=unfreeze_schedule, resume_from=resume_from)

    def _start_schedule(self, lrs: list, make_scheduler, total_steps: int):
        """Set every group's base lr, then build the scheduler; if that fails, undo."""
        before = [(group["lr"], group.get("initial_lr")) for group in self.optimizer.param_groups]
        try:
            for group, lr in zip(self.optimizer.param_groups, lrs):
                group["lr"] = group["initial_lr"] = lr  # initial_lr: the base lr schedules start from
            return build_scheduler(make_scheduler, self.optimizer, total_steps)
        except BaseException:
            for group, (lr, initial_lr) in zip(self.optimizer.param_groups, before):
                group["lr"] = lr
                if initial_lr is None:
                    group.pop("initial_lr", None)
                else:
                    group["initial_lr"] = initial_lr
            raise

    def _event(self, name: str) -> None:
        for handler in self._handlers[name]:
            handler(self)

    def _run_epochs(self) -> None:
        first_epoch, resumed_mid_epoch = self.epoch, self.batch_index > 0
        for epoch in range(first_epoch, self.epochs):
            if self.stop_training:
                break
            self.epoch, self.epoch_finished = epoch, False
            if not resumed_mid_epoch:
                self.batch_index, self.train_loss_sum, self.train_samples = 0, 0.0, 0
                self._event("before_epoch")
            resumed_mid_epoch = False
            started = time.perf_counter()
            self.model.train()
            if self.batch_index < len(self.train_loader):  # a resume after the last batch has none left
                for batch in self.train_loader:
                    self._train_batch(batch)
            loss_sum, samples = sum_over_ranks(self.train_loss_sum, self.train_samples)  # all ranks' examples
            self.epoch_metrics = {"epoch": epoch, "train_loss": loss_sum / samples}
            if self.valid_loader is not None:
                self.epoch_metrics.update(self.validate())
            self.epoch_metrics["time"] = time.perf_counter() - started
            self.epoch_finished = True
            self._event("after_epoch")

    def to_model_device(self, batch) -> tuple:
        """The batch with its Tensors on the device of the model's parameters (a loader
        yields CPU tensors; a model moved with ``model.to("cuda")`` needs them on the GPU)."""
        device = self.optimizer.param_groups[0]["params"][0].device  # Module.to moves parameters in place
        return tuple(item.to(device) if isinstance(item, Tensor) and item.device != device else item for item in batch)

    def compute_loss(self, batch):
        """``loss_fn(model(inputs), targets)`` plus the regularizer, for one batch; sets ``output``."""
        inputs, targets = self.to_model_device(batch)[:2]
        self.output = self.model(inputs)
        loss = self.loss_fn(self.output, targets)
        if self.regularizer is not None:
            loss = loss + self.regularizer()
        return loss

    def _train_batch(self, batch) -> None:
        self.batch = batch
        self._event("before_batch")
        self.loss = self.compute_loss(self.batch)
        self.loss_value = self.loss.item()
        self._event("before_backward")
        if not self.loss.requires_grad:
            raise RuntimeError(
                "the loss does not depend on any trainable parameter: every layer group is frozen. "
                "Unfreeze some first, e.g. learner.freeze() trains the head, learner.unfreeze() everything"
            )
        self.loss.backward()
        self._event("after_backward")
        self._event("before_step")
        self.optimizer.step()
        self._event("after_step")
        self.optimizer.zero_grad()
        if self.scheduler is not None:
            self.scheduler.step()
        size = len(self.batch[1])
        self.train_loss_sum += self.loss_value * size
        self.train_samples += size
        self.batch_index += 1
        self.iteration += 1
        self._event("after_batch")

    def validate(self, loader=None) -> dict:
        """``{"valid_loss": ..., metric: ...}`` over ``loader`` (default ``valid_loader``),
        under ``no_grad`` and in ``eval()`` mode; each module's mode is restored afterwards."""
        loader = self.valid_loader if loader is None else loader
        if loader is None:
            raise ValueError("validate needs a loader: this learner has no valid_loader")
        modes = [(module, module.training) for module in self.model.modules()]
        sums = dict.fromkeys(["valid_loss", *self.metrics], 0.0)
        count = 0
        self.model.eval()
        try:
            with no_grad():
                for batch in loader:
                    inputs, targets = self.to_model_device(batch)[:2]
                    output = self.model(inputs)
                    size = len(targets)
                    sums["valid_loss"] += self.loss_fn(output, targets).item() * size
                    for name, metric in self.metrics.items():
                        sums[name] += metric(output, targets) * size
                    count += size
        finally:
            for module, training in modes:
                module.training = training
        *totals, count = sum_over_ranks(*sums.values(), count)  # under mpiexec: over every rank's share
        if count == 0:
            raise ValueError("validate: the loader yielded no samples")
        return {name: total / count for name, total in zip(sums, totals)}

    # ------------------------------------------------------------ tools
    def lr_find(self, start_lr: float = 1e-7, end_lr: float = 10.0, num_iter: int = 100, stop_div: bool = True):
        """The learning-rate range test; leaves the learner as it was (see ``minift.train.lr_find``)."""
        from .lr_find import lr_find

        return lr_find(self, start_lr=start_lr, end_lr=end_lr, num_iter=num_iter, stop_div=stop_div)

    def save_checkpoint(self, path) -> None:
        """Save the whole training state atomically; continue with ``fit(..., resume_from=path)``."""
        if is_main_process():  # under mpiexec rank 0 writes, the others hold the same state
            save_checkpoint(path, **training_state(self))

    def __repr__(self) -> str:
        names = ", ".join(type(callback).__name__ for callback in self.callbacks)
        return (f"Learner({type(self.model).__name__}, {len(self.groups)} layer groups, "
                f"{type(self.optimizer).__name__}, callbacks=[{names}])")
