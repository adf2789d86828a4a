"""History (per-step losses and lrs, per-epoch metrics, fit boundaries), the
update-to-weight ratio recorder, and the plots drawn from them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minift.io import load_checkpoint, save_checkpoint
from minift.train import Callback, History, UpdateToWeightRatio
from test_train_helpers import make_learner


@settings(max_examples=10)
@given(phases=st.lists(st.integers(1, 3), min_size=1, max_size=3), valid=st.booleans())
def test_history_records_every_step_epoch_and_fit(phases, valid):
    learner = make_learner(valid=valid)
    steps_per_epoch = len(learner.train_loader)
    losses = []

    class Losses(Callback):
        def after_step(self, learner):
            losses.append(learner.loss_value)

    learner.callbacks.append(Losses())
    for epochs in phases:
        learner.fit(epochs, 1e-2, schedule="one_cycle")
    history = learner.history
    total_epochs = sum(phases)
    assert history.losses == losses and len(losses) == total_epochs * steps_per_epoch
    assert history.lr_per_group().shape == (len(losses), 3)
    assert history.fit_starts == [steps_per_epoch * sum(phases[:i]) for i in range(len(phases))]
    assert [record["step"] for record in history.epochs] == [steps_per_epoch * (k + 1) for k in range(total_epochs)]
    expected_keys = {"epoch", "train_loss", "time", "step"} | ({"valid_loss", "accuracy"} if valid else set())
    assert all(set(record) == expected_keys for record in history.epochs)
    assert [record["epoch"] for record in history.epochs] == [e for n in phases for e in range(n)]


def test_train_loss_is_the_sample_weighted_mean_of_the_batch_losses():
    learner = make_learner(train_samples=44, batch_size=8)  # the last batch has 4 samples
    learner.fit(1, 1e-2)
    sizes = [8] * 5 + [4]
    expected = sum(loss * size for loss, size in zip(learner.history.losses, sizes)) / 44
    assert learner.history.epochs[0]["train_loss"] == pytest.approx(expected, rel=1e-12)


def test_history_metric_lookup():
    learner = make_learner()
    learner.fit(2, 1e-2)
    assert learner.history.metric("accuracy") == [r["accuracy"] for r in learner.history.epochs]
    with pytest.raises(KeyError, match="valid_loss"):
        learner.history.metric("f1")


def test_history_state_survives_a_checkpoint_file(tmp_path):
    learner = make_learner(callbacks=[UpdateToWeightRatio()])
    learner.fit(2, slice(1e-3, 1e-2), schedule="cosine")
    path = tmp_path / "history.safetensors"
    save_checkpoint(path, history=learner.history.state_dict())
    restored = History()
    restored.load_state_dict(load_checkpoint(path)["history"])
    for name in ("losses", "lrs", "update_ratios", "epochs", "fit_starts", "group_names"):
        assert getattr(restored, name) == getattr(learner.history, name)


class WeightSnapshots(Callback):
    order = 15  # around UpdateToWeightRatio's own snapshot

    def __init__(self):
        self.pairs = []

    def before_step(self, learner):
        self.before = [[p.data.astype(np.float64) for p in g["params"]] for g in learner.optimizer.param_groups]

    def after_step(self, learner):
        after = [[p.data.astype(np.float64) for p in g["params"]] for g in learner.optimizer.param_groups]
        self.pairs.append((self.before, after))


@settings(max_examples=8)
@given(freeze_to=st.integers(0, 2), opt=st.sampled_from(["adamw", "sgd"]))
def test_update_to_weight_ratio_is_the_norm_of_the_update_over_the_norm_of_the_weights(freeze_to, opt):
    snapshots = WeightSnapshots()
    learner = make_learner(opt=opt, bn_policy="keras", callbacks=[UpdateToWeightRatio(), snapshots])
    learner.freeze_to(freeze_to)
    learner.fit(1, 1e-2)
    ratios = np.array(learner.history.update_ratios)
    assert ratios.shape == (len(learner.train_loader), 3)
    for step, (before, after) in enumerate(snapshots.pairs):
        for g in range(3):
            update = math.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(after[g], before[g])))
            weight = math.sqrt(sum((b ** 2).sum() for b in before[g]))
            assert ratios[step, g] == pytest.approx(update / weight, rel=1e-6, abs=1e-12)
    assert (ratios[:, :freeze_to] == 0).all() and (ratios[:, freeze_to:] > 0).all()


# ------------------------------------------------------------------ plots

plt = pytest.importorskip("matplotlib.pyplot")


@pytest.fixture(autouse=True)
def agg_backend():
    import matplotlib

    matplotlib.use("Agg")
    yield
    plt.close("all")


def trained_learner():
    learner = make_learner(callbacks=[UpdateToWeightRatio()])
    learner.freeze()
    learner.fit(1, 1e-2)
    learner.unfreeze()
    learner.fit(2, slice(1e-4, 1e-2), schedule="one_cycle")
    return learner


def test_plots_draw_the_recorded_series(tmp_path):
    from minift.train import plots

    learner = trained_learner()
    history = learner.history
    ax = plots.plot_loss(history)
    batch, average, train, valid = ax.get_lines()[:4]
    assert list(batch.get_ydata()) == history.losses
    np.testing.assert_allclose(average.get_ydata(), plots.moving_average(history.losses, 20))
    assert list(valid.get_ydata()) == history.metric("valid_loss")
    assert list(train.get_xdata()) == [r["step"] for r in history.epochs]
    fit_markers = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert [line.get_xdata()[0] for line in fit_markers] == history.fit_starts[1:]

    ax = plots.plot_lr(history)
    lines = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
    assert len(lines) == 3
    for g, line in enumerate(lines):
        assert list(line.get_ydata()) == list(history.lr_per_group()[:, g])

    ax = plots.plot_update_ratios(history)
    assert len([line for line in ax.get_lines() if line.get_linestyle() == "-"]) == 3
    ax.figure.savefig(tmp_path / "ratios.png")
    assert (tmp_path / "ratios.png").stat().st_size > 0

    result = learner.lr_find(num_iter=20)
    ax = result.plot()
    assert list(ax.get_lines()[0].get_xdata()) == result.lrs


def test_moving_average_is_the_mean_of_the_last_window_values():
    from minift.train.plots import moving_average

    values = np.arange(10.0) ** 2
    expected = [values[max(0, i - 2):i + 1].mean() for i in range(10)]
    np.testing.assert_allclose(moving_average(values, 3), expected)


def test_update_ratio_plot_needs_the_callback():
    from minift.train import plots

    learner = make_learner()
    learner.fit(1, 1e-3)
    with pytest.raises(ValueError, match="UpdateToWeightRatio"):
        plots.plot_update_ratios(learner.history)
