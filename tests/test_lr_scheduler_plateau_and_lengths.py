"""ReduceLROnPlateau against torch and its rule; every schedule at every length from 1 step;
``Learner.fit_one_cycle`` with few batches (issue 17.1)."""

import math
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minift import Tensor
from minift.optim import SGD, Adam
from minift.optim import lr_scheduler
from minift.train.schedules import SCHEDULES, build_scheduler
from test_train_helpers import make_learner

PLATEAU_SETTINGS = st.fixed_dictionaries({
    "mode": st.sampled_from(["min", "max"]),
    "factor": st.floats(0.1, 0.9),
    "patience": st.integers(0, 3),
    "threshold": st.floats(0, 0.1),
    "threshold_mode": st.sampled_from(["rel", "abs"]),
    "cooldown": st.integers(0, 2),
    "min_lr": st.sampled_from([0.0, 1e-3]),
})


@settings(max_examples=40, deadline=None)
@given(PLATEAU_SETTINGS, st.lists(st.floats(0.1, 2.0), min_size=1, max_size=25))
def test_reduce_lr_on_plateau_matches_torch(options, metrics):
    torch = pytest.importorskip("torch")
    torch_optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    optimizer = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=0.1)
    torch_scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(torch_optimizer, **options)
    scheduler = lr_scheduler.ReduceLROnPlateau(optimizer, **options)
    for metric in metrics:
        torch_scheduler.step(metric)
        scheduler.step(Tensor(np.float64(metric)))
        assert scheduler.get_last_lr() == pytest.approx(torch_scheduler.get_last_lr(), rel=1e-12)
        assert scheduler.num_bad_epochs == torch_scheduler.num_bad_epochs
        assert scheduler.best == torch_scheduler.best


def test_reduce_lr_on_plateau_waits_patience_epochs_then_divides():
    optimizer = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    scheduler = lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
    lrs = []
    for metric in [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]:
        scheduler.step(metric)
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25]


def test_reduce_lr_on_plateau_state_dict_round_trip():
    optimizer = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    scheduler = lr_scheduler.ReduceLROnPlateau(optimizer, patience=1)
    for metric in [3.0, 2.0, 2.5]:
        scheduler.step(metric)
    resumed = lr_scheduler.ReduceLROnPlateau(SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0), patience=1)
    resumed.load_state_dict(scheduler.state_dict())
    assert (resumed.best, resumed.num_bad_epochs, resumed.last_epoch) == (2.0, 1, 3)


@pytest.mark.parametrize("bad, message", [({"factor": 1.0}, "factor"), ({"mode": "up"}, "mode"),
                                          ({"min_lr": [0.1, 0.2]}, "min_lr must have the same length")])
def test_reduce_lr_on_plateau_refuses_bad_settings(bad, message):
    optimizer = SGD([Tensor(np.zeros(1), requires_grad=True)], lr=1.0)
    with pytest.raises(ValueError, match=message):
        lr_scheduler.ReduceLROnPlateau(optimizer, **bad)


# ---------------------------------------------------------------- any length >= 1
def one_group(momentum=True):
    params = [Tensor(np.zeros(1), requires_grad=True)]
    return SGD(params, lr=0.1, momentum=0.9) if momentum else Adam(params, lr=0.1)


FIT_SCHEDULES = {name: schedule for name, schedule in SCHEDULES.items() if schedule is not None}
FIT_SCHEDULES.update({
    "OneCycleLR three_phase": partial(lr_scheduler.OneCycleLR, three_phase=True),
    "OneCycleLR pct_start=1": partial(lr_scheduler.OneCycleLR, pct_start=1.0),
    "CosineAnnealingLR": lr_scheduler.CosineAnnealingLR,
    "PolynomialLR": lr_scheduler.PolynomialLR,
    "LinearLR": lr_scheduler.LinearLR,
})


@pytest.mark.parametrize("schedule", FIT_SCHEDULES.values(), ids=FIT_SCHEDULES.keys())
@pytest.mark.parametrize("total_steps", range(1, 11))
@pytest.mark.parametrize("momentum", [True, False], ids=["sgd", "adam"])
def test_every_schedule_runs_for_any_number_of_steps(schedule, total_steps, momentum):
    optimizer = one_group(momentum)
    scheduler = build_scheduler(schedule, optimizer, total_steps)
    lrs = [scheduler.get_last_lr()[0]]
    for _ in range(total_steps - 1):
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    assert all(math.isfinite(lr) and 0 <= lr <= 0.1 * (1 + 1e-12) for lr in lrs)
    assert scheduler.last_epoch == total_steps - 1


@pytest.mark.parametrize("epochs, samples", [(1, 8), (4, 8), (3, 16)])
def test_fit_one_cycle_works_at_few_shot_sizes(epochs, samples):
    """The README's case: 4 epochs of one batch gave 'a phase of zero steps' before."""
    learner = make_learner(train_samples=samples, batch_size=8)
    learner.fit_one_cycle(epochs, slice(1e-5, 1e-3))
    assert len(learner.history.epochs) == epochs


def test_reduce_lr_on_plateau_is_refused_as_a_fit_schedule_with_the_reason():
    with pytest.raises(ValueError, match="stepped with a metric once per epoch"):
        build_scheduler(lr_scheduler.ReduceLROnPlateau, one_group(), 10)
