"""Freezing: fastai's freeze_to semantics, set_trainable, the report, and the invariant that
a frozen parameter gets no gradient and stays bit-identical under any optimizer."""

from __future__ import annotations

import fnmatch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minift import nn
from minift.finetune import (freeze, freeze_to, layer_groups, param_groups, set_trainable,
                             trainable_report, unfreeze)
from minift.models import SmallCNN
from minift.optim import Adam
from test_finetune_strategies import OPTIMIZERS, layer_stacks, mse_loss_of


def trainable_flags(model) -> dict:
    return {name: p.requires_grad for name, p in model.named_parameters()}


def random_flags(model, data) -> None:
    """Put the model in an arbitrary frozen / trainable state drawn by hypothesis."""
    for param in model.parameters():
        param.requires_grad_(data.draw(st.booleans()))


# ---------------------------------------------------------------- the invariant
@settings(max_examples=40)
@given(st.data())
def test_frozen_parameters_get_no_gradient_and_stay_bit_identical(data):
    model, input_shape = data.draw(layer_stacks())
    groups = layer_groups(model)
    names = [name for name, _ in model.named_parameters()]
    if data.draw(st.booleans(), label="by group"):
        n = data.draw(st.integers(-len(groups), len(groups) - 1), label="freeze_to")
        freeze_to(model, n, train_bn=data.draw(st.booleans(), label="train_bn"))
    else:
        chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names) - 1, unique=True)
                           if len(names) > 1 else st.just([]), label="frozen names")
        if chosen:
            set_trainable(model, chosen, False)
    lr = data.draw(st.sampled_from([1e-2, slice(1e-2)] + ([slice(1e-3, 1e-2)] if len(groups) > 1 else [])))
    optimizer = OPTIMIZERS[data.draw(st.sampled_from(sorted(OPTIMIZERS)))](param_groups(model, lr))
    params = dict(model.named_parameters())
    frozen = {name for name, p in params.items() if not p.requires_grad}
    before = {name: p.data.tobytes() for name, p in params.items()}

    # A trainable parameter must move unless nothing pushes it: a zero gradient at every
    # step (a bias followed by BatchNorm) and zero values (so that decay does nothing).
    pushed = {name: bool(np.any(p.data != 0)) for name, p in params.items()}
    for step in range(data.draw(st.integers(1, 4), label="steps")):
        optimizer.zero_grad()
        mse_loss_of(model, input_shape, seed=step).backward()
        assert all(params[name].grad is None for name in frozen)
        for name in params.keys() - frozen:
            pushed[name] |= bool(np.any(params[name].grad.data != 0))
        optimizer.step()

    for name, param in params.items():
        if name in frozen:
            assert param.data.tobytes() == before[name], f"frozen {name} moved"
            assert param.grad is None and param not in optimizer.state
        elif pushed[name]:
            assert param.data.tobytes() != before[name], f"trainable {name} did not move"


def test_an_unfrozen_parameter_starts_with_fresh_optimizer_state():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    freeze(model)
    optimizer = Adam(param_groups(model, slice(1e-2)))
    for step in range(3):
        optimizer.zero_grad()
        mse_loss_of(model, (3,), seed=step).backward()
        optimizer.step()
    unfreeze(model)
    optimizer.zero_grad()
    mse_loss_of(model, (3,), seed=9).backward()
    optimizer.step()
    assert optimizer.state[model[0].weight]["step"] == 1
    assert optimizer.state[model[2].weight]["step"] == 4


# ---------------------------------------------------------------- freeze_to semantics
@settings(max_examples=40)
@given(st.data())
def test_freeze_to_freezes_the_first_n_groups(data):
    model, _ = data.draw(layer_stacks())
    groups = layer_groups(model)
    random_flags(model, data)
    n = data.draw(st.integers(-len(groups), len(groups)))
    freeze_to(model, n)
    first_trainable = n if n >= 0 else len(groups) + n
    for index, group in enumerate(groups):
        assert all(p.requires_grad == (index >= first_trainable) for p in group.parameters())


@settings(max_examples=20)
@given(st.data())
def test_freeze_and_unfreeze(data):
    model, _ = data.draw(layer_stacks())
    groups = layer_groups(model)
    random_flags(model, data)
    freeze(model)
    assert [all(p.requires_grad for p in g.parameters()) for g in groups] == [False] * (len(groups) - 1) + [True]
    assert not any(p.requires_grad for g in groups[:-1] for p in g.parameters())
    unfreeze(model)
    assert all(trainable_flags(model).values())


def test_train_bn_keeps_batchnorm_trainable_in_frozen_groups():
    model = SmallCNN(width=4)
    freeze(model, train_bn=True)
    for name, trainable in trainable_flags(model).items():
        assert trainable == (name.startswith("head.") or ".bn." in name), name
    freeze(model)
    assert [n for n, t in trainable_flags(model).items() if t] == ["head.weight", "head.bias"]


@settings(max_examples=20)
@given(st.data())
def test_freeze_to_out_of_range_is_an_error_and_changes_nothing(data):
    model, _ = data.draw(layer_stacks())
    count = len(layer_groups(model))
    random_flags(model, data)
    flags = trainable_flags(model)
    n = data.draw(st.one_of(st.integers(count + 1, count + 50), st.integers(-count - 50, -count - 1)))
    with pytest.raises(IndexError, match=f"out of range for {count} layer groups"):
        freeze_to(model, n)
    with pytest.raises(TypeError, match="int"):
        freeze_to(model, data.draw(st.sampled_from([1.0, True, "1", None])))
    assert trainable_flags(model) == flags


def test_freezing_a_model_whose_head_changed_since_the_groups_were_made_is_an_error():
    model = SmallCNN(width=4)
    groups = layer_groups(model)
    model.head = nn.Linear(model.num_features, 3)
    flags = trainable_flags(model)
    with pytest.raises(ValueError, match="not in the model"):
        freeze(model, groups)
    assert trainable_flags(model) == flags


# ---------------------------------------------------------------- set_trainable
@settings(max_examples=30)
@given(st.data())
def test_set_trainable_sets_exactly_the_matching_names(data):
    model, _ = data.draw(layer_stacks())
    random_flags(model, data)
    names = list(trainable_flags(model))
    patterns = data.draw(st.lists(st.sampled_from(names + ["*.bias", "*weight", "1.*"]), min_size=1, max_size=3))
    patterns = [p for p in patterns if any(fnmatch.fnmatchcase(n, p) for n in names)] or [names[0]]
    trainable = data.draw(st.booleans())
    before = trainable_flags(model)
    matched = set_trainable(model, patterns, trainable)
    expected = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    assert matched == expected
    assert trainable_flags(model) == {n: (trainable if n in expected else before[n]) for n in names}


@settings(max_examples=20)
@given(st.data())
def test_a_pattern_matching_nothing_is_an_error_and_changes_nothing(data):
    model, _ = data.draw(layer_stacks())
    random_flags(model, data)
    flags = trainable_flags(model)
    good = data.draw(st.lists(st.sampled_from(list(flags)), max_size=2))
    with pytest.raises(ValueError, match="no_such_layer"):
        set_trainable(model, good + ["no_such_layer.*"], data.draw(st.booleans()))
    assert trainable_flags(model) == flags


def test_set_trainable_rejects_bad_arguments():
    model = nn.Sequential(nn.Linear(2, 2))
    for patterns, trainable in [([], True), ([3], True), ("0.*", 1), ("0.*", "yes")]:
        with pytest.raises(TypeError):
            set_trainable(model, patterns, trainable)


# ---------------------------------------------------------------- the report
@settings(max_examples=20)
@given(st.data())
def test_trainable_report_counts_every_group(data):
    model, _ = data.draw(layer_stacks())
    random_flags(model, data)
    report = trainable_report(model).splitlines()
    groups = layer_groups(model)
    for group, line in zip(groups, report[1:]):
        trainable = sum(p.numel() for p in group.parameters() if p.requires_grad)
        assert line.split()[:3] == [group.name, f"{trainable:,}", f"{group.numel():,}"]
    total_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert report[-1].split()[:3] == ["total", f"{total_trainable:,}", f"{model.num_parameters():,}"]
    assert len(report) == len(groups) + 3
