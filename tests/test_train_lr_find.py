"""lr_find: the exponential sweep, stopping on divergence, the suggestion, and that it
leaves the learner exactly as it found it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minift
from test_train_helpers import make_learner, same_bytes, weights


@settings(max_examples=10)
@given(num_iter=st.integers(2, 20), fitted_first=st.booleans(), opt=st.sampled_from(["adamw", "sgd"]))
def test_lr_find_leaves_the_learner_as_it_was(num_iter, fitted_first, opt):
    """Model, optimizer, random generator and data order are restored: training after
    lr_find is bit-identical to training without it."""
    def state(learner):
        return (weights(learner.model), repr(learner.optimizer.state_dict()), minift.get_rng_state(),
                learner.train_loader.state_dict(), [m.training for m in learner.model.modules()])

    def run(with_lr_find):
        learner = make_learner(dropout=0.3, opt=opt)
        if fitted_first:
            learner.fit(1, 1e-2, schedule="one_cycle")
        learner.model.eval()  # the modules' modes come back too
        if with_lr_find:
            before = state(learner)
            learner.lr_find(num_iter=num_iter, end_lr=1.0)
            after = state(learner)
            assert same_bytes(before[0], after[0]) and before[1:] == after[1:]
            assert all(p.grad is None for p in learner.model.parameters())
        learner.fit(1, 1e-2)
        return weights(learner.model)

    assert same_bytes(run(True), run(False))


def test_the_lrs_grow_exponentially_from_start_to_end():
    result = make_learner(train_samples=16).lr_find(start_lr=1e-6, end_lr=1e-1, num_iter=11, stop_div=False)
    np.testing.assert_allclose(result.lrs, 1e-6 * 10.0 ** (np.arange(11) / 2), rtol=1e-12)
    assert len(result.losses) == 11  # more steps than one epoch (2 batches): the loader cycles


def test_smoothed_losses_are_the_debiased_moving_average():
    result = make_learner().lr_find(num_iter=15, stop_div=False, end_lr=1e-2)
    average = 0.0
    for i, (raw, smooth) in enumerate(zip(result.losses, result.smoothed)):
        average = 0.98 * average + 0.02 * raw
        assert smooth == pytest.approx(average / (1 - 0.98 ** (i + 1)), rel=1e-12)


def test_the_sweep_stops_when_the_loss_diverges():
    learner = make_learner(opt="sgd", batchnorm=False, train_samples=96)
    result = learner.lr_find(start_lr=1e-4, end_lr=1e4, num_iter=100)
    assert len(result.lrs) < 100
    last = result.smoothed[-1]
    assert not math.isfinite(last) or last > 4 * min(result.smoothed[:-1])


def test_the_suggestion_is_a_tenth_of_the_lr_at_the_smoothed_minimum():
    result = make_learner(batchnorm=False, train_samples=96).lr_find(num_iter=40)
    finite = [(lr, s) for lr, s in zip(result.lrs, result.smoothed) if math.isfinite(s)]
    best_lr = min(finite, key=lambda pair: pair[1])[0]
    assert result.suggestion == result.lr_min == best_lr / 10
    assert result.lrs[0] <= result.lr_steep <= result.lrs[-1]
    assert "suggestion" in repr(result)


@pytest.mark.parametrize("kwargs, words", [
    ({"start_lr": 0.0}, "0 < start_lr < end_lr"),
    ({"start_lr": 1.0, "end_lr": 0.1}, "0 < start_lr < end_lr"),
    ({"end_lr": math.inf}, "0 < start_lr < end_lr"),
    ({"num_iter": 1}, "num_iter >= 2"),
])
def test_bad_arguments_raise(kwargs, words):
    with pytest.raises(ValueError, match=words):
        make_learner().lr_find(**kwargs)
