"""Training checkpoints that resume bit-identically.

A run killed halfway and resumed from its last checkpoint must end with exactly the
weights an uninterrupted run ends with. Everything that decides the next step is saved:

==============  ==============================================================
``model``       parameters and buffers (BatchNorm running statistics)
``trainable``   ``requires_grad`` of every parameter (what is frozen right now)
``optimizer``   its state dict: per-group hyperparameters, momentum / Adam moments
``scheduler``   its state dict (the step count), or ``None`` for a constant lr
``callbacks``   each callback's ``state_dict()``, by position and class name
``rng``         the global generator (dropout masks, ...)
``loaders``     the loaders' data-order state: seed, epoch, batches already done
``loop``        epoch and batch to continue from, steps done, the partial epoch loss
``fit``         the ``fit`` call that wrote it: epochs, steps per epoch, lrs, schedule
==============  ==============================================================

**How to resume**: make the learner as before (same model class, loaders, callbacks),
then repeat the *same* ``fit`` call with ``resume_from=path``::

    learner.fit(5, 1e-3, schedule="one_cycle", resume_from="ckpt/checkpoint.safetensors")

``fit`` first checks that the checkpoint was written by that call (a clear error names
what differs), sets itself up as usual (``before_fit`` runs), then replaces everything
above with the saved state and continues with the next batch. Events that ran before
the checkpoint was written are not repeated: a resume in the middle of an epoch does not
run ``before_epoch`` again. The file is read and checked before anything is changed.
"""

from __future__ import annotations

from .. import io
from ..engine.random import get_rng_state, set_rng_state

FORMAT = "minift.train/1"


def fit_signature(epochs: int, steps_per_epoch: int, lrs: list, schedule: str, callbacks) -> dict:
    """What identifies a ``fit`` call, for the check that a checkpoint belongs to it."""
    return {"epochs": epochs, "steps_per_epoch": steps_per_epoch, "lrs": list(lrs), "schedule": schedule,
            "callbacks": [type(callback).__name__ for callback in callbacks]}


def training_state(learner) -> dict:
    """The nested state to pass to ``minift.io.save_checkpoint`` (see the module docstring)."""
    epoch, batch_index = learner.epoch, learner.batch_index
    if learner.epoch_finished:  # saved at the end of an epoch: continue with the next one
        epoch, batch_index = epoch + 1, 0
    return {
        "format": FORMAT,
        "fit": learner.fit_signature,
        "loop": {"epoch": epoch, "batch_index": batch_index, "iteration": learner.iteration,
                 "train_loss_sum": learner.train_loss_sum, "train_samples": learner.train_samples,
                 "stop_training": learner.stop_training},
        "model": dict(learner.model.state_dict()),
        "trainable": {name: param.requires_grad for name, param in learner.model.named_parameters()},
        "optimizer": learner.optimizer.state_dict(),
        "scheduler": None if learner.scheduler is None else learner.scheduler.state_dict(),
        "callbacks": [callback.state_dict() for callback in learner.fit_callbacks],
        "rng": get_rng_state(),
        "loaders": {name: loader.state_dict() for name, loader in _loaders(learner).items()},
    }


def load_training_state(path, learner, signature: dict) -> dict:
    """Read the checkpoint at ``path`` and check that it belongs to this learner and this
    ``fit`` call; return the state (nothing is changed yet)."""
    state = io.load_checkpoint(path)
    if state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a minift training checkpoint (written by Learner.save_checkpoint)")
    differences = [
        f"  {key}: the checkpoint has {state['fit'].get(key)!r}, this fit call {value!r}"
        for key, value in signature.items() if state["fit"].get(key) != value
    ]
    saved_names = set(state["trainable"])
    model_names = {name for name, _ in learner.model.named_parameters()}
    if saved_names != model_names:
        differences.append(
            f"  model parameters: only in the checkpoint {sorted(saved_names - model_names)[:5]}, "
            f"only in this model {sorted(model_names - saved_names)[:5]}"
        )
    if set(state["loaders"]) != set(_loaders(learner)):
        differences.append(f"  loaders: the checkpoint has {sorted(state['loaders'])}, this learner {sorted(_loaders(learner))}")
    if differences:
        raise ValueError(
            f"cannot resume from {path}: it was written by another fit call or another learner; "
            "repeat the exact call that wrote it:\n" + "\n".join(differences)
        )
    return state


def restore_training_state(learner, state: dict) -> None:
    """Put the saved state into the learner (after ``before_fit`` ran)."""
    learner.model.load_state_dict(state["model"])
    for name, param in learner.model.named_parameters():
        param.requires_grad_(state["trainable"][name])
    learner.optimizer.load_state_dict(state["optimizer"])
    if learner.scheduler is not None:
        learner.scheduler.load_state_dict(state["scheduler"])
    for callback, saved in zip(learner.fit_callbacks, state["callbacks"]):
        callback.load_state_dict(saved)
    for name, loader in _loaders(learner).items():
        loader.load_state_dict(state["loaders"][name])
    set_rng_state(state["rng"])
    loop = state["loop"]
    learner.epoch, learner.batch_index, learner.iteration = loop["epoch"], loop["batch_index"], loop["iteration"]
    learner.train_loss_sum, learner.train_samples = loop["train_loss_sum"], loop["train_samples"]
    learner.stop_training = loop["stop_training"]


def _loaders(learner) -> dict:
    """The loaders whose position can be saved (a minift DataLoader has ``state_dict``)."""
    loaders = {"train": learner.train_loader, "valid": learner.valid_loader}
    return {name: loader for name, loader in loaders.items() if hasattr(loader, "state_dict")}
