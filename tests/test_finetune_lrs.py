"""Discriminative learning rates against fastai's published rules, ULMFiT's factor,
layer-wise decay, and the param groups built from them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minift.finetune import (describe_param_groups, discriminative_lrs, freeze, layer_groups,
                             layerwise_lrs, param_groups, ulmfit_lrs)
from minift.models import SmallCNN
from minift.optim import SGD, AdamW
from test_finetune_strategies import layer_stacks

rates = st.floats(1e-7, 10.0)
counts = st.integers(1, 12)


def fastai_lr_range(lr: slice, n: int) -> list[float]:
    """fastai's ``Learner.lr_range`` and ``even_mults``, as published (fastai/torch_core.py)."""
    if lr.start:
        step = (lr.stop / lr.start) ** (1 / (n - 1))
        return [lr.start * step**i for i in range(n)]
    return [lr.stop / 10] * (n - 1) + [lr.stop]


def test_fastai_examples():
    assert discriminative_lrs(slice(1e-5, 1e-3), 3) == pytest.approx([1e-5, 1e-4, 1e-3], rel=1e-12)
    assert discriminative_lrs(slice(1e-3), 3) == pytest.approx([1e-4, 1e-4, 1e-3], rel=1e-12)


@given(rates, rates, st.integers(2, 12))
def test_slice_a_b_is_fastais_even_mults(start, stop, n):
    lrs = discriminative_lrs(slice(start, stop), n)
    assert lrs == pytest.approx(fastai_lr_range(slice(start, stop), n), rel=1e-9)
    assert (lrs[0], lrs[-1]) == (start, stop)
    ratios = np.array(lrs[1:]) / np.array(lrs[:-1])
    assert np.allclose(ratios, ratios[0], rtol=1e-9)


@given(rates, counts)
def test_slice_b_gives_a_tenth_below_the_head(stop, n):
    lrs = discriminative_lrs(slice(stop), n)
    assert lrs == fastai_lr_range(slice(stop), n)
    assert lrs[-1] == stop and all(lr == stop / 10 for lr in lrs[:-1])


@given(rates, counts)
def test_a_float_or_a_list_is_taken_as_given(lr, n):
    assert discriminative_lrs(lr, n) == [lr] * n
    values = [lr * (i + 1) for i in range(n)]
    assert discriminative_lrs(values, n) == values
    assert discriminative_lrs(tuple(values), n) == values


def test_ulmfit_factor():
    assert ulmfit_lrs(1e-2, 3) == pytest.approx([1e-2 / 2.6**2, 1e-2 / 2.6, 1e-2], rel=1e-12)


@given(rates, counts, st.floats(1.0, 10.0))
def test_ulmfit_divides_by_the_factor_per_group_down_from_the_head(lr, n, factor):
    lrs = ulmfit_lrs(lr, n, factor)
    assert len(lrs) == n and lrs[-1] == lr
    for lower, upper in zip(lrs, lrs[1:]):
        assert lower * factor == pytest.approx(upper, rel=1e-12)


@given(rates, counts, st.floats(0.01, 1.0))
def test_layerwise_decay(lr, n, decay):
    lrs = layerwise_lrs(lr, n, decay)
    assert lrs == pytest.approx([lr * decay**depth for depth in reversed(range(n))], rel=1e-12)


bad_rates = st.sampled_from([0, 0.0, -1e-3, math.nan, math.inf, -math.inf, True, "1e-3", None])


@given(bad_rates, counts)
def test_non_positive_or_non_numeric_rates_are_errors(bad, n):
    candidates = [bad, slice(1e-5, bad), [bad] * n]
    if bad is not None:  # slice(None, b) is slice(b), and slice(None) is refused below
        candidates += [slice(bad), slice(bad, 1e-3)]
    for lr in candidates:
        with pytest.raises(ValueError):
            discriminative_lrs(lr, max(n, 2))
    with pytest.raises(ValueError):
        ulmfit_lrs(bad, n)
    with pytest.raises(ValueError):
        layerwise_lrs(bad, n, 0.5)


@given(rates, counts, st.integers(1, 3))
def test_more_or_fewer_values_than_groups_are_errors(lr, n, extra):
    with pytest.raises(ValueError, match=f"{n + extra} learning rates for {n} layer groups"):
        discriminative_lrs([lr] * (n + extra), n)
    if n > extra:
        with pytest.raises(ValueError, match="one per group"):
            discriminative_lrs([lr] * (n - extra), n)


def test_a_two_value_slice_needs_two_groups():
    with pytest.raises(ValueError, match="at least 2 groups"):
        discriminative_lrs(slice(1e-5, 1e-3), 1)
    assert discriminative_lrs(slice(1e-3), 1) == [1e-3]


@pytest.mark.parametrize("call", [
    lambda: discriminative_lrs(slice(1e-5, 1e-3, 2), 3),
    lambda: discriminative_lrs(slice(None), 3),
    lambda: discriminative_lrs(1e-3, 0),
    lambda: discriminative_lrs(1e-3, 2.0),
    lambda: ulmfit_lrs(1e-3, 3, factor=0.5),
    lambda: layerwise_lrs(1e-3, 3, decay=0),
    lambda: layerwise_lrs(1e-3, 3, decay=1.5),
])
def test_other_bad_arguments(call):
    with pytest.raises(ValueError):
        call()


# ---------------------------------------------------------------- param groups
@given(layer_stacks(), st.data())
def test_param_groups_follow_the_layer_groups_and_include_frozen_parameters(drawn, data):
    model, _ = drawn
    freeze(model)
    groups = layer_groups(model)
    lr = data.draw(st.sampled_from([1e-3, slice(1e-3)] + ([slice(1e-5, 1e-3)] if len(groups) > 1 else [])))
    built = param_groups(model, lr, weight_decay=0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert [g["name"] for g in built] == [g.name for g in groups]
    assert [g["lr"] for g in built] == discriminative_lrs(lr, len(groups))
    for group, layer_group in zip(built, groups):
        assert [id(p) for p in group["params"]] == [id(p) for p in layer_group.parameters()]
        assert group["param_names"] == [names[id(p)] for p in group["params"]]
        assert group["weight_decay"] == 0.01
    optimizer = SGD(built, lr=0.1)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_param_groups_bad_arguments():
    model = SmallCNN(width=4)
    with pytest.raises(ValueError, match="4 layer groups"):
        param_groups(model, [1e-3] * 5)
    with pytest.raises(TypeError, match="itself"):
        param_groups(model, 1e-3, name="body")
    with pytest.raises(ValueError, match="match no parameter"):
        param_groups(model, 1e-3, groups=["body", "neck"])


def test_describe_param_groups_lists_each_group():
    model = SmallCNN(width=4)
    freeze(model)
    optimizer = AdamW(param_groups(model, slice(1e-5, 1e-3)), weight_decay=0.05)
    lines = describe_param_groups(optimizer).splitlines()
    assert len(lines) == 1 + 4
    for line, group, lr in zip(lines[1:], layer_groups(model), discriminative_lrs(slice(1e-5, 1e-3), 4)):
        trainable = sum(p.numel() for p in group.parameters() if p.requires_grad)
        assert line.split()[1:4] == [group.name, f"{lr:.3g}", "0.05"]
        assert line.endswith(f"{trainable:,} / {group.numel():,}")
