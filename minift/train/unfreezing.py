"""Gradual unfreezing (ULMFiT, Howard & Ruder 2018): unfreeze the model from the head down.

Unfreezing everything at once lets the large, noisy gradients of a still-poor head
reach every pretrained layer at the same time. ULMFiT instead trains the last layer
group first, then unfreezes one more group (the next one down) each epoch, so that each
layer starts learning only once the layers above it have settled::

    stage s (epochs s·every .. (s+1)·every − 1):  the last start + s groups are trainable

``start`` (default 1: the head alone) is how many groups train from the first epoch. When
the head has already been trained on frozen features (LP-FT's linear probe), ULMFiT's
first stage is done: ``start=2`` begins with the head and the group below it.

``GradualUnfreezing(every=1)`` is a callback for one ``fit`` call:
``learner.fit(n, lr, unfreeze_schedule=GradualUnfreezing(every=1))``. It composes with
per-group learning rates and any schedule: the schedule runs over the whole fit, and a
frozen group's lr is simply not used until its group is unfrozen.

**Optimizer state of a newly unfrozen parameter — the deliberate choice.** The optimizer
holds every parameter from the start (``minift.finetune.param_groups``), so nothing is
rebuilt when a group is unfrozen. A frozen parameter has no gradient, so the optimizer
never created state for it; and if it had some from an earlier phase, it is dropped at
the moment of unfreezing. Either way a newly unfrozen parameter starts *fresh*: no
momentum buffer, no Adam moments, step count 0 -- its first update is exactly a first
step from scratch, made with the lr its group has at that step. (Carrying old moments
over would apply a stale direction, computed for other weights of the layers above, to
a layer that has not moved since.) Parameters that stay trainable keep their state.
"""

from __future__ import annotations

from .callbacks import Callback


class GradualUnfreezing(Callback):
    """Start with the last ``start`` layer groups trainable; unfreeze one more group, from
    the head down, every ``every`` epochs. Newly unfrozen parameters get fresh optimizer state.

    ``unfrozen_at`` records ``(epoch, number of trainable groups)`` at each change.
    """

    order = 5  # before the History and the schedule-driven callbacks look at the groups

    def __init__(self, every: int = 1, start: int = 1):
        for name, value in (("every", every), ("start", start)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GradualUnfreezing({name}=...) must be a positive int, got {value!r}")
        self.every, self.start = every, start
        self.unfrozen_at: list[tuple[int, int]] = []

    def trainable_groups(self, epoch: int, n_groups: int) -> int:
        """How many groups, counted from the head, are trainable during ``epoch``."""
        return min(n_groups, self.start + epoch // self.every)

    def before_fit(self, learner):
        self.unfrozen_at = []

    def before_epoch(self, learner):
        n_groups = len(learner.groups)
        count = self.trainable_groups(learner.epoch, n_groups)
        if self.unfrozen_at and self.unfrozen_at[-1][1] == count:
            return
        frozen_before = {id(p) for group in learner.groups for p in group.parameters() if not p.requires_grad}
        learner.freeze_to(n_groups - count)
        for group in learner.groups:
            for param in group.parameters():
                if id(param) in frozen_before and param.requires_grad:
                    learner.optimizer.state.pop(param, None)
        self.unfrozen_at.append((learner.epoch, count))

    def state_dict(self) -> dict:
        return {"unfrozen_at": [list(change) for change in self.unfrozen_at]}

    def load_state_dict(self, state: dict) -> None:
        self.unfrozen_at = [tuple(change) for change in state["unfrozen_at"]]

    def __repr__(self) -> str:
        return f"GradualUnfreezing(every={self.every}, start={self.start})"
