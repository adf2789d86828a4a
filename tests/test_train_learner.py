"""The Learner's fit loop: events, learning rates per group and per step, freezing,
validation, bad input, NaN losses, early stopping, progress output."""

from __future__ import annotations

import io
from functools import partial
import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minift
import minift.functional as F
from minift.finetune import evaluate_accuracy
from minift.optim import SGD, Adam, AdamW
from minift.optim.lr_scheduler import CosineWarmupLR, OneCycleLR, SlantedTriangularLR
from minift.train import (Callback, EarlyStopping, Learner, NonFiniteLossError, ProgressBar,
                          accuracy)
from test_train_helpers import EventLog, TinyNet, make_learner, same_bytes, weights


def test_events_run_in_order_with_counters_of_work_done():
    log = EventLog()
    learner = make_learner(callbacks=[log], train_samples=16, batch_size=8)
    learner.fit(2, 1e-3)
    batch = ["before_batch", "before_backward", "after_backward", "before_step", "after_step"]
    expected = [("before_fit", 0, 0, 0)]
    for epoch in range(2):
        expected.append(("before_epoch", epoch, 0, 2 * epoch))
        for b in range(2):
            expected += [(name, epoch, b, 2 * epoch + b) for name in batch]
            expected.append(("after_batch", epoch, b + 1, 2 * epoch + b + 1))
        expected.append(("after_epoch", epoch, 2, 2 * epoch + 2))
    expected.append(("after_fit", 1, 2, 4))
    assert log.events == expected


def test_training_learns_the_task():
    learner = make_learner(train_samples=96, batchnorm=False)
    before = learner.validate()
    learner.fit_one_cycle(6, 1e-2)
    after = learner.history.epochs[-1]
    assert after["valid_loss"] < before["valid_loss"]
    assert after["accuracy"] > before["accuracy"]


def reference_lrs(name: str, base_lrs: list, total_steps: int) -> np.ndarray:
    """The lr of every group before each step, from a scheduler built directly on a
    throwaway optimizer: the oracle for "each group follows the schedule from its own base lr"."""
    groups = [{"params": [minift.zeros(1, requires_grad=True)], "lr": lr} for lr in base_lrs]
    optimizer = AdamW(groups)
    scheduler = {
        "constant": lambda: None,
        "one_cycle": lambda: OneCycleLR(optimizer, max_lr=base_lrs, total_steps=total_steps, pct_start=0.25,
                                        div_factor=25.0, final_div_factor=1e5 / 25.0),
        "slanted_triangular": lambda: SlantedTriangularLR(optimizer, total_steps=total_steps),
        "cosine": lambda: CosineWarmupLR(optimizer, warmup_steps=math.floor(total_steps * 0.1), total_steps=total_steps),
    }[name]()
    rows = []
    for _ in range(total_steps):
        rows.append([group["lr"] for group in optimizer.param_groups])
        if scheduler is not None:
            scheduler.step()
    return np.array(rows)


lr_values = st.floats(1e-5, 1e-1)


@settings(max_examples=25)
@given(
    schedule=st.sampled_from(["constant", "one_cycle", "slanted_triangular", "cosine"]),
    lr=st.one_of(lr_values, st.builds(slice, lr_values), st.builds(lambda a, r: slice(a, a * r), lr_values, st.floats(1.5, 100)),
                 st.lists(lr_values, min_size=3, max_size=3)),
    epochs=st.integers(2, 3),
)
def test_every_group_follows_the_schedule_from_its_own_base_lr(schedule, lr, epochs):
    learner = make_learner(batchnorm=False)
    learner.fit(epochs, lr, schedule=schedule)
    base = minift.finetune.discriminative_lrs(lr, 3)
    expected = reference_lrs(schedule, base, epochs * len(learner.train_loader))
    np.testing.assert_allclose(learner.history.lr_per_group(), expected, rtol=1e-12)


def test_recorded_lr_is_the_lr_the_step_used():
    """With plain SGD, w ← w − lr · grad: the recorded lr of the head group is the one applied
    (to the last bit: the same float32 arithmetic as SGD's)."""
    class Check(Callback):
        def after_backward(self, learner):
            self.before = [(p.data.copy(), p.grad.data.copy()) for p in learner.optimizer.param_groups[2]["params"]]

        def after_step(self, learner):
            lr = learner.history.lrs[-1][2]
            for p, (old, grad) in zip(learner.optimizer.param_groups[2]["params"], self.before):
                np.testing.assert_array_equal(p.data, old - lr * grad)
                self.checked = True

    check = Check()
    check.order = 20  # after the History recorded the step
    learner = make_learner(opt=SGD, weight_decay=0.0, batchnorm=False, callbacks=[check])
    learner.fit(2, slice(1e-3, 1e-1), schedule="cosine")  # one_cycle would switch SGD's momentum on
    assert check.checked


@settings(max_examples=12)
@given(opt=st.sampled_from(["sgd", "adam", "adamw"]), n=st.integers(1, 2), schedule=st.sampled_from([None, "one_cycle"]))
def test_frozen_groups_stay_bit_identical_with_momentum_and_weight_decay(opt, n, schedule):
    learner = make_learner(opt=opt, weight_decay=0.1, bn_policy="keras")
    learner.freeze_to(n)
    frozen_before = [weights(group_module) for group_module in _group_modules(learner)[:n]]
    trainable_before = [weights(group_module) for group_module in _group_modules(learner)[n:]]
    learner.fit(2, 1e-2, schedule=schedule)
    assert all(same_bytes(before, weights(m)) for before, m in zip(frozen_before, _group_modules(learner)[:n]))
    assert not any(same_bytes(before, weights(m)) for before, m in zip(trainable_before, _group_modules(learner)[n:]))


def test_fit_with_every_group_frozen_says_so():
    learner = make_learner(bn_policy="keras")
    learner.freeze_to(3)
    with pytest.raises(RuntimeError, match="every layer group is frozen"):
        learner.fit(1, 1e-3)


def _group_modules(learner):
    return [group.modules[0] for group in learner.groups]


def test_fastai_policy_keeps_batchnorm_of_frozen_groups_trainable():
    learner = make_learner(bn_policy="fastai")
    learner.freeze()
    bn = learner.model.body.block1[1]
    linear = learner.model.body.block1[0]
    assert bn.weight.requires_grad and not linear.weight.requires_grad
    learner = make_learner(bn_policy="keras")
    learner.freeze()
    assert not learner.model.body.block1[1].weight.requires_grad


def test_validate_matches_whole_set_loss_and_accuracy_and_restores_modes():
    learner = make_learner(dropout=0.5)
    learner.fit(1, 1e-2)
    learner.model.train()
    result = learner.validate()
    assert all(module.training for module in learner.model.modules())
    x, y = learner.valid_loader.dataset.arrays
    learner.model.eval()
    with minift.no_grad():
        output = learner.model(minift.tensor(x))
    assert result["valid_loss"] == pytest.approx(F.cross_entropy(output, minift.tensor(y)).item(), rel=1e-5)
    assert result["accuracy"] == pytest.approx(evaluate_accuracy(learner.model, learner.valid_loader), abs=1e-12)
    assert result["accuracy"] == pytest.approx(accuracy(output, minift.tensor(y)), abs=1e-12)


def test_regularizer_is_added_to_the_loss():
    plain = make_learner(batchnorm=False)
    plain.fit(1, 1e-2)
    constant = make_learner(batchnorm=False, regularizer=lambda: minift.tensor(0.5))
    constant.fit(1, 1e-2)  # a constant has no gradient: the same training, losses 0.5 higher
    np.testing.assert_allclose(np.array(constant.history.losses) - plain.history.losses, 0.5, rtol=1e-5)
    assert same_bytes(weights(plain.model), weights(constant.model))


def test_a_callable_optimizer_gets_the_param_groups():
    seen = {}

    def make(groups):
        seen["names"] = [group["name"] for group in groups]
        return Adam(groups, betas=(0.8, 0.9))

    learner = make_learner(opt=make)
    assert seen["names"] == [group.name for group in learner.groups]
    assert learner.optimizer.param_groups[0]["betas"] == (0.8, 0.9)


# ------------------------------------------------------------------ bad input


def _state(learner):
    return (weights(learner.model), repr(learner.optimizer.state_dict()), list(learner.history.losses),
            [p.requires_grad for p in learner.model.parameters()])


@pytest.mark.parametrize("call, error, words", [
    (lambda l: l.fit(0, 1e-3), ValueError, "positive int number of epochs, got 0"),
    (lambda l: l.fit(-2, 1e-3), ValueError, "epochs"),
    (lambda l: l.fit(1.5, 1e-3), ValueError, "epochs"),
    (lambda l: l.fit(1, 0.0), ValueError, "> 0, got 0.0"),
    (lambda l: l.fit(1, -1e-3), ValueError, "> 0"),
    (lambda l: l.fit(1, slice(-1e-3)), ValueError, "slice stop"),
    (lambda l: l.fit(1, [1e-3, 1e-2]), ValueError, "2 learning rates for 3 layer groups"),
    (lambda l: l.fit(1, 1e-3, schedule="cosine_annealing"), ValueError, "unknown schedule 'cosine_annealing'"),
    (lambda l: l.fit(1, 1e-3, schedule=3), TypeError, "schedule must be"),
    (lambda l: l.fit(1, 1e-3, unfreeze_schedule=2), TypeError, "unfreeze_schedule"),
    (lambda l: l.fit(1, 1e-3, schedule=partial(OneCycleLR, pct_start=1.5)), ValueError, "pct_start"),
])
def test_bad_fit_arguments_raise_clearly_and_change_nothing(call, error, words):
    learner = make_learner(train_samples=8, batch_size=8)  # one batch per epoch
    learner.fit(1, 1e-2, schedule="one_cycle")
    before = _state(learner)
    lrs = [(g["lr"], g.get("initial_lr")) for g in learner.optimizer.param_groups]
    with pytest.raises(error, match=words.replace("(", r"\(").replace("*", r"\*").replace(")", r"\)")):
        call(learner)
    after = _state(learner)
    assert same_bytes(before[0], after[0]) and before[1:] == after[1:]
    assert lrs == [(g["lr"], g.get("initial_lr")) for g in learner.optimizer.param_groups]


@pytest.mark.parametrize("kwargs, error, words", [
    ({"opt": "rmsprop"}, ValueError, "unknown optimizer 'rmsprop'"),
    ({"opt": lambda groups: "not an optimizer"}, TypeError, "expected a minift.optim.Optimizer"),
    ({"lr": 0}, ValueError, "> 0"),
    ({"bn_policy": "torch"}, ValueError, "unknown bn_policy"),
    ({"weight_decay": -1.0}, ValueError, "weight_decay"),
    ({"metrics": ["f1"]}, ValueError, "unknown metric 'f1'"),
    ({"callbacks": [print]}, TypeError, "Callback objects"),
    ({"progress": "yes"}, ValueError, "progress"),
])
def test_bad_learner_arguments_raise_clearly(kwargs, error, words):
    with pytest.raises(error, match=words):
        make_learner(**kwargs)


def test_learner_refuses_a_non_module_and_an_empty_loader():
    learner = make_learner()
    with pytest.raises(TypeError, match="nn.Module"):
        Learner(lambda x: x, learner.train_loader)
    with pytest.raises(ValueError, match="at least one batch"):
        Learner(learner.model, [])


# ------------------------------------------------------------------ NaN


class NanAt:
    """A loss that is ``value`` at call number ``at`` (and cross-entropy otherwise)."""

    def __init__(self, at: int, value: float):
        self.at, self.value, self.calls = at, value, 0

    def __call__(self, output, target):
        loss = F.cross_entropy(output, target)
        self.calls += 1
        return loss * self.value if self.calls == self.at + 1 else loss


class Snapshots(Callback):
    def __init__(self):
        self.after_each_step = []

    def after_step(self, learner):
        self.after_each_step.append(weights(learner.model))


@settings(max_examples=10)
@given(at=st.integers(0, 11), value=st.sampled_from([math.nan, math.inf, -math.inf]))
def test_a_non_finite_loss_stops_training_naming_the_step_and_the_loss(at, value):
    snapshots = Snapshots()
    # (without BatchNorm: its running statistics do move in the forward pass of the bad batch)
    learner = make_learner(loss_fn=NanAt(at, value), callbacks=[snapshots], valid=False, batchnorm=False)
    initial = weights(learner.model)
    with pytest.raises(NonFiniteLossError) as raised:
        learner.fit(2, 1e-2)
    message = str(raised.value)
    assert f"is {value} at step {at} " in message
    assert f"epoch {at // 6}, batch {at % 6}" in message
    assert len(snapshots.after_each_step) == at
    last_good = snapshots.after_each_step[-1] if at else initial
    assert same_bytes(weights(learner.model), last_good)


# ------------------------------------------------------------------ early stopping


class ScriptedLoss(Callback):
    """Replaces the epoch's valid_loss with scripted values (runs before EarlyStopping)."""

    order = 55

    def __init__(self, values):
        self.values = values

    def after_epoch(self, learner):
        learner.epoch_metrics["valid_loss"] = self.values[learner.epoch]


@settings(max_examples=25)
@given(values=st.lists(st.floats(0, 10), min_size=6, max_size=6), patience=st.integers(0, 3),
       min_delta=st.sampled_from([0.0, 0.5]))
def test_early_stopping_stops_after_patience_epochs_without_improvement(values, patience, min_delta):
    stopper = EarlyStopping(patience=patience, min_delta=min_delta, restore_best_weights=True)
    snapshots = {}

    class Keep(Callback):
        order = 70

        def after_epoch(self, learner):
            snapshots[learner.epoch] = weights(learner.model)

    learner = make_learner(train_samples=8, callbacks=[ScriptedLoss(values), stopper, Keep()])
    learner.fit(6, 1e-2)
    best, best_epoch, wait, stop = math.inf, None, 0, None
    for epoch, value in enumerate(values):
        if best_epoch is None or value < best - min_delta:
            best, best_epoch, wait = value, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                stop = epoch
                break
    epochs_run = len(learner.history.epochs)
    assert epochs_run == (6 if stop is None else stop + 1)
    assert stopper.best_epoch == best_epoch
    assert same_bytes(weights(learner.model), snapshots[best_epoch])


def test_early_stopping_names_the_metrics_it_can_monitor():
    learner = make_learner(valid=False, callbacks=[EarlyStopping("valid_loss")])
    with pytest.raises(KeyError, match="train_loss"):
        learner.fit(1, 1e-3)
    assert EarlyStopping("accuracy").mode == "max"


# ------------------------------------------------------------------ progress


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_quiet_when_stderr_is_not_a_terminal(capsys):
    make_learner(progress=True).fit(1, 1e-3)
    assert capsys.readouterr() == ("", "")


def test_progress_lines_print_one_line_per_epoch(capsys):
    make_learner(progress="lines").fit(2, 1e-3)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("train_loss" in line and "valid_loss" in line and "accuracy" in line for line in lines)


def test_progress_on_a_terminal_draws_a_tqdm_bar():
    pytest.importorskip("tqdm")
    stream = FakeTerminal()
    bar = ProgressBar(stream=stream)
    counts = []

    class Spy(Callback):
        order = 85  # after the bar

        def after_batch(self, learner):
            counts.append(bar.bar.n)

    make_learner(progress=False, callbacks=[bar, Spy()]).fit(1, 1e-3)
    text = stream.getvalue()
    assert "epoch 1/1:" in text and "0/6" in text and "epoch 1/1  train_loss" in text
    assert counts == [1, 2, 3, 4, 5, 6] and bar.bar is None


def test_progress_without_tqdm_falls_back_to_plain_lines(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails
    stream = FakeTerminal()
    make_learner(progress=False, callbacks=[ProgressBar(stream=stream)]).fit(1, 1e-3)
    assert stream.getvalue().startswith("epoch 1/1  train_loss")
    assert "6/6" not in stream.getvalue()


def test_repr_names_the_pieces():
    text = repr(make_learner())
    assert "TinyNet" in text and "3 layer groups" in text and "AdamW" in text and "History" in text


def test_tiny_net_groups():
    assert [g.name for g in make_learner().groups] == ["body.block1", "body.block2", "head"]
    assert isinstance(make_learner().model, TinyNet)
