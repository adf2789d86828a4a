"""GradualUnfreezing: which groups train in which epoch, fresh optimizer state for newly
unfrozen parameters, and composition with per-group learning rates and schedules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minift
from minift.finetune import discriminative_lrs
from minift.train import GradualUnfreezing
from minift.optim import SGD, AdamW
from minift.train import Callback
from test_train_helpers import TrainableLog, group_params, make_learner, same_bytes
from test_train_learner import reference_lrs


@settings(max_examples=20)
@given(every=st.integers(1, 3), epochs=st.integers(1, 7), start=st.integers(1, 4))
def test_one_more_group_from_the_head_down_every_few_epochs(every, epochs, start):
    log = TrainableLog()
    learner = make_learner(train_samples=8, callbacks=[log], bn_policy="keras")
    learner.unfreeze()
    unfreezing = GradualUnfreezing(every=every, start=start)
    learner.fit(epochs, 1e-3, unfreeze_schedule=unfreezing)
    for epoch, trainable in enumerate(log.per_epoch):
        count = min(3, start + epoch // every)
        assert trainable == [index >= 3 - count for index in range(3)]
    assert [count for _, count in unfreezing.unfrozen_at] == sorted({min(3, start + e // every) for e in range(epochs)})


class FirstStepCheck(Callback):
    """At the first step of ``epoch`` (when ``group`` was just unfrozen): its parameters
    have no optimizer state yet, and their update equals one step of a brand-new optimizer
    of the same kind and hyperparameters on the same gradient."""

    order = 40  # after GradualUnfreezing's before_epoch

    def __init__(self, epoch: int, group: int, fresh_optimizer):
        self.epoch, self.group, self.fresh_optimizer = epoch, group, fresh_optimizer
        self.checked = False

    def _first_step(self, learner) -> bool:
        return learner.epoch == self.epoch and learner.batch_index == 0

    def before_step(self, learner):
        if not self._first_step(learner):
            return
        group = learner.optimizer.param_groups[self.group]
        params = group["params"]
        assert all(p.requires_grad and p not in learner.optimizer.state for p in params)
        hyper = {k: v for k, v in group.items() if k not in ("params", "param_names", "name", "initial_lr")}
        self.clones = [minift.Tensor(p.data.copy(), requires_grad=True) for p in params]
        for clone, p in zip(self.clones, params):
            clone.grad = minift.Tensor(p.grad.data.copy())
        self.fresh = self.fresh_optimizer([{"params": self.clones, **hyper}])

    def after_step(self, learner):
        if not self._first_step(learner):
            return
        self.fresh.step()
        for clone, p in zip(self.clones, learner.optimizer.param_groups[self.group]["params"]):
            assert clone.data.tobytes() == p.data.tobytes()
        self.checked = True


@pytest.mark.parametrize("fresh_optimizer, opt", [
    (lambda groups: AdamW(groups), "adamw"),
    (lambda groups: SGD(groups, momentum=0.9), "sgd"),
])
@pytest.mark.parametrize("earlier_training", [False, True])
def test_a_newly_unfrozen_parameter_starts_with_fresh_optimizer_state(fresh_optimizer, opt, earlier_training):
    checks = [FirstStepCheck(1, 1, fresh_optimizer), FirstStepCheck(2, 0, fresh_optimizer)]
    learner = make_learner(opt=opt, callbacks=checks, bn_policy="keras")
    if earlier_training:  # every parameter gets state first; unfreezing must drop it
        learner.unfreeze()
        learner.fit(1, 1e-2)
        assert all(p in learner.optimizer.state for p in learner.model.parameters())
    learner.fit(3, slice(1e-3, 1e-2), schedule="one_cycle", unfreeze_schedule=GradualUnfreezing())
    assert all(check.checked for check in checks)


def test_parameters_that_stay_trainable_keep_their_state():
    learner = make_learner(bn_policy="keras")
    learner.fit(3, 1e-2, unfreeze_schedule=GradualUnfreezing())
    head_weight = learner.model.head.weight
    assert learner.optimizer.state[head_weight]["step"] == 3 * len(learner.train_loader)
    first = learner.groups[0].parameters()[0]
    assert learner.optimizer.state[first]["step"] == len(learner.train_loader)  # unfrozen for the last epoch


@settings(max_examples=10)
@given(schedule=st.sampled_from(["one_cycle", "slanted_triangular", "cosine", "constant"]),
       lr=st.sampled_from([slice(1e-4, 1e-2), slice(1e-2), [1e-4, 3e-3, 1e-2]]))
def test_composes_with_discriminative_lrs_and_schedules(schedule, lr):
    snapshots = []

    class Snap(Callback):
        def after_epoch(self, learner):
            snapshots.append([group_params(learner, g) for g in range(3)])

    learner = make_learner(callbacks=[Snap()], bn_policy="keras", train_samples=80, batch_size=8)
    initial = [group_params(learner, g) for g in range(3)]
    learner.fit(3, lr, schedule=schedule, unfreeze_schedule=GradualUnfreezing(every=1))
    expected = reference_lrs(schedule, discriminative_lrs(lr, 3), 3 * len(learner.train_loader))
    np.testing.assert_allclose(learner.history.lr_per_group(), expected, rtol=1e-12)
    # group 0 waits two epochs, group 1 one epoch; then each moves
    assert same_bytes(snapshots[1][0], initial[0]) and same_bytes(snapshots[0][1], initial[1])
    assert not same_bytes(snapshots[2][0], initial[0]) and not same_bytes(snapshots[1][1], initial[1])


def test_every_and_start_must_be_positive_ints():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=r"every=.*positive int"):
            GradualUnfreezing(every=bad)
        with pytest.raises(ValueError, match=r"start=.*positive int"):
            GradualUnfreezing(start=bad)
