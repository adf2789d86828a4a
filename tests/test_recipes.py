"""The fine-tuning recipes, by their invariants: which groups train in which phase, the
learning rate of every group in each phase, and a body left bit-identical while frozen."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minift.finetune import ulmfit_lrs
from minift.train import fine_tune, keras_recipe, lp_ft, ulmfit
from minift.nn import BatchNorm1d
from minift.train import Callback
from test_train_helpers import TrainableLog, make_learner, same_bytes, weights
from test_train_learner import reference_lrs


class Phases(Callback):
    """Per fit call: trainable flags of every parameter, the scheduler, the lrs of every
    step, and the body's state (parameters and buffers) before and after."""

    order = 40

    def __init__(self):
        self.phases = []

    def before_fit(self, learner):
        self.phases.append({
            "trainable": {n: p.requires_grad for n, p in learner.model.named_parameters()},
            "scheduler": learner.scheduler,
            "body_before": weights(learner.model.body),
            "head_before": weights(learner.model.head),
            "first_step": len(learner.history.losses),
        })

    def after_fit(self, learner):
        phase = self.phases[-1]
        phase["body_after"] = weights(learner.model.body)
        phase["head_after"] = weights(learner.model.head)
        phase["lrs"] = learner.history.lr_per_group()[phase["first_step"]:]


def trainable_groups(phase) -> list[bool]:
    """Per layer group (block1, block2, head): are its Linear weights trainable?"""
    flags = phase["trainable"]
    return [flags["body.block1.0.weight"], flags["body.block2.0.weight"], flags["head.weight"]]


def batchnorm_trainable(phase) -> bool:
    return phase["trainable"]["body.block1.1.weight"]


@settings(max_examples=8)
@given(base_lr=st.sampled_from([1e-3, 2e-3, 1e-2]), lr_mult=st.sampled_from([10, 100]),
       epochs=st.integers(1, 2), policy=st.sampled_from(["fastai", "keras"]))
def test_fine_tune_follows_fastai(base_lr, lr_mult, epochs, policy):
    log = Phases()
    learner = make_learner(callbacks=[log], bn_policy=policy, train_samples=80, batch_size=8)
    fine_tune(learner, epochs, base_lr=base_lr, lr_mult=lr_mult)
    frozen, unfrozen = log.phases
    assert trainable_groups(frozen) == [False, False, True] and trainable_groups(unfrozen) == [True] * 3
    assert batchnorm_trainable(frozen) == (policy == "fastai")  # fastai's train_bn

    # phase 1: fit_one_cycle(1, slice(base_lr), pct_start=0.99): peaks base_lr/10 below the head
    scheduler = frozen["scheduler"]
    np.testing.assert_allclose(scheduler.max_lrs, [base_lr / 10, base_lr / 10, base_lr], rtol=1e-12)
    steps = len(frozen["lrs"])
    assert scheduler.phases[0]["end_step"] == pytest.approx(0.99 * steps - 1)
    np.testing.assert_allclose(frozen["lrs"][0], np.array(scheduler.max_lrs) / 25, rtol=1e-12)

    # phase 2: base_lr halved, slice(base_lr / lr_mult, base_lr), div=5, pct_start=0.3
    scheduler = unfrozen["scheduler"]
    half = base_lr / 2
    np.testing.assert_allclose(scheduler.max_lrs, np.geomspace(half / lr_mult, half, 3), rtol=1e-12)
    np.testing.assert_allclose(unfrozen["lrs"][0], np.array(scheduler.max_lrs) / 5, rtol=1e-12)
    assert scheduler.phases[0]["end_step"] == pytest.approx(0.3 * len(unfrozen["lrs"]) - 1)

    # the frozen phase leaves the body alone (BatchNorm too, under the Keras policy)
    before, after = frozen["body_before"], frozen["body_after"]
    if policy == "fastai":  # BatchNorm parameters and statistics adapt, the rest does not
        before = {k: v for k, v in before.items() if ".1." not in k}
        after = {k: v for k, v in after.items() if ".1." not in k}
    assert same_bytes(before, after)
    assert not same_bytes(frozen["head_before"], frozen["head_after"])
    assert not same_bytes(unfrozen["body_before"], unfrozen["body_after"])


def test_keras_recipe_trains_the_head_then_everything_at_a_low_rate_with_batchnorm_frozen():
    log = Phases()
    learner = make_learner(callbacks=[log])  # a fastai-policy learner: the recipe switches to Keras's rule
    bn = learner.model.body.block1[1]
    statistics = (bn.running_mean.data.copy(), bn.running_var.data.copy())
    keras_recipe(learner, head_epochs=1, finetune_epochs=2, head_lr=1e-3, finetune_lr=1e-5)
    head, everything = log.phases
    assert trainable_groups(head) == [False, False, True] and trainable_groups(everything) == [True] * 3
    assert not batchnorm_trainable(head) and not batchnorm_trainable(everything)
    assert (head["lrs"] == 1e-3).all() and (everything["lrs"] == 1e-5).all()
    assert head["scheduler"] is None and everything["scheduler"] is None
    assert same_bytes(head["body_before"], head["body_after"])
    assert bn.running_mean.data.tobytes() == statistics[0].tobytes()
    assert bn.running_var.data.tobytes() == statistics[1].tobytes()
    assert not same_bytes(everything["body_before"], everything["body_after"])


@settings(max_examples=6)
@given(epochs_per_stage=st.integers(1, 2), factor=st.sampled_from([2.6, 4.0]))
def test_ulmfit_unfreezes_gradually_with_lrs_divided_per_group_and_stlr(epochs_per_stage, factor):
    log, trainable = Phases(), TrainableLog()
    learner = make_learner(callbacks=[log, trainable], bn_policy="keras", train_samples=32, batch_size=8)
    ulmfit(learner, epochs_per_stage, 1e-2, factor=factor)
    (phase,) = log.phases
    stages = [[False, False, True], [False, True, True], [True, True, True]]
    assert trainable.per_epoch == [stage for stage in stages for _ in range(epochs_per_stage)]
    expected = reference_lrs("slanted_triangular", ulmfit_lrs(1e-2, 3, factor), len(phase["lrs"]))
    np.testing.assert_allclose(phase["lrs"], expected, rtol=1e-12)
    np.testing.assert_allclose(phase["lrs"][:, 1] / phase["lrs"][:, 2], 1 / factor, rtol=1e-12)


@pytest.mark.parametrize("policy", ["fastai", "keras"])
def test_lp_ft_probes_a_fixed_body_then_fine_tunes_everything_at_one_rate(policy):
    log = Phases()
    learner = make_learner(callbacks=[log], bn_policy=policy, dropout=0.2, train_samples=80)
    lp_ft(learner, probe_epochs=1, ft_epochs=2, probe_lr=1e-2, ft_lr=1e-4)
    probe, finetune = log.phases
    assert trainable_groups(probe) == [False, False, True] and not batchnorm_trainable(probe)
    assert trainable_groups(finetune) == [True] * 3 and batchnorm_trainable(finetune)
    # a linear probe: the features are fixed, BatchNorm statistics included
    assert same_bytes(probe["body_before"], probe["body_after"])
    assert not same_bytes(probe["head_before"], probe["head_after"])
    assert same_bytes(finetune["head_before"], probe["head_after"])  # fine-tuning starts from the probed head
    np.testing.assert_allclose(probe["lrs"], reference_lrs("cosine", [1e-2] * 3, len(probe["lrs"])), rtol=1e-12)
    np.testing.assert_allclose(finetune["lrs"], reference_lrs("cosine", [1e-4] * 3, len(finetune["lrs"])), rtol=1e-12)
    assert learner.bn_policy == policy
    assert all(m.eval_when_frozen == (policy == "keras") for m in learner.model.modules() if isinstance(m, BatchNorm1d))
