"""Learning-rate schedules: published formulas, torch's schedulers, per-group base lrs, saving."""

import copy
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minift import Tensor
from minift.optim import SGD, Adam, Optimizer
from minift.optim.lr_scheduler import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    CyclicLR,
    PolynomialLR,
    CosineWarmupLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    MultiStepLR,
    OneCycleLR,
    SequentialLR,
    SlantedTriangularLR,
    StepLR,
)

SETTINGS = settings(max_examples=40, deadline=None)
base_lrs = st.lists(st.floats(1e-4, 1.0), min_size=1, max_size=3)


def sgd(lrs, momentum=0.9):
    """An SGD optimizer with one group per learning rate (discriminative learning rates)."""
    return SGD([{"params": [Tensor(np.zeros(1), requires_grad=True)], "lr": lr} for lr in lrs], lr=0.1, momentum=momentum)


def adam(lrs):
    return Adam([{"params": [Tensor(np.zeros(1), requires_grad=True)], "lr": lr} for lr in lrs], lr=0.1)


def lrs_over(scheduler, steps):
    """The lr of every group at steps 0 .. steps-1, shape (steps, groups)."""
    values = []
    for t in range(steps):
        if t > 0:
            scheduler.step()
        assert scheduler.get_last_lr() == [group["lr"] for group in scheduler.optimizer.param_groups]
        values.append(scheduler.get_last_lr())
    return np.array(values)


def expected_over(lrs, steps, lr_at):
    return np.array([[lr_at(base, t) for base in lrs] for t in range(steps)])


# ---------------------------------------------------------------- published formulas
@SETTINGS
@given(base_lrs, st.integers(1, 5), st.floats(0.01, 1.0), st.integers(1, 30))
def test_step_lr_formula(lrs, step_size, gamma, steps):
    got = lrs_over(StepLR(sgd(lrs), step_size, gamma), steps)
    np.testing.assert_allclose(got, expected_over(lrs, steps, lambda base, t: base * gamma ** (t // step_size)), rtol=1e-12)


@SETTINGS
@given(base_lrs, st.lists(st.integers(0, 30), max_size=4), st.floats(0.01, 1.0), st.integers(1, 30))
def test_multi_step_lr_formula(lrs, milestones, gamma, steps):
    got = lrs_over(MultiStepLR(sgd(lrs), milestones, gamma), steps)
    expected = expected_over(lrs, steps, lambda base, t: base * gamma ** sum(m <= t for m in milestones))
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@SETTINGS
@given(base_lrs, st.floats(0.5, 1.0), st.integers(1, 30))
def test_exponential_lr_formula(lrs, gamma, steps):
    got = lrs_over(ExponentialLR(sgd(lrs), gamma), steps)
    np.testing.assert_allclose(got, expected_over(lrs, steps, lambda base, t: base * gamma**t), rtol=1e-12)


@SETTINGS
@given(base_lrs, st.integers(1, 20), st.floats(0, 1e-3), st.integers(1, 50))
def test_cosine_annealing_lr_formula(lrs, T_max, eta_min, steps):
    got = lrs_over(CosineAnnealingLR(sgd(lrs), T_max, eta_min), steps)
    expected = expected_over(lrs, steps, lambda base, t: eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / T_max)) / 2)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


@SETTINGS
@given(base_lrs, st.floats(0.01, 1.0), st.floats(0, 1.0), st.integers(1, 10), st.integers(1, 20))
def test_linear_lr_formula(lrs, start_factor, end_factor, total_iters, steps):
    got = lrs_over(LinearLR(sgd(lrs), start_factor, end_factor, total_iters), steps)
    expected = expected_over(
        lrs, steps, lambda base, t: base * (start_factor + (end_factor - start_factor) * min(t, total_iters) / total_iters)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_lambda_lr_takes_one_function_or_one_per_group():
    got = lrs_over(LambdaLR(sgd([0.1, 0.2]), lambda t: 1 / (1 + t)), 4)
    np.testing.assert_allclose(got, expected_over([0.1, 0.2], 4, lambda base, t: base / (1 + t)))
    got = lrs_over(LambdaLR(sgd([0.1, 0.2]), [lambda t: 1.0, lambda t: 0.5**t]), 4)
    np.testing.assert_allclose(got[:, 0], 0.1)
    np.testing.assert_allclose(got[:, 1], [0.2 * 0.5**t for t in range(4)])
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 3"):
        LambdaLR(sgd([0.1, 0.2]), [lambda t: 1.0] * 3)


def published_slanted_triangular(lr_max, t, T, cut_frac, ratio):
    """Howard & Ruder (2018), eq. 3."""
    cut = math.floor(T * cut_frac)
    p = t / cut if t < cut else 1 - (t - cut) / (cut * (1 / cut_frac - 1))
    return lr_max * (1 + p * (ratio - 1)) / ratio


@SETTINGS
@given(base_lrs, st.integers(1, 200), st.floats(0.01, 0.99), st.floats(1, 64))
def test_slanted_triangular_follows_eq_3(lrs, total_steps, cut_frac, ratio):
    assume(math.floor(total_steps * cut_frac) >= 1)
    scheduler = SlantedTriangularLR(sgd(lrs), total_steps, cut_frac, ratio)
    cut = scheduler.cut
    descent_ends = cut / cut_frac  # where eq. 3 reaches p = 0 (== total_steps when T·cut_frac is whole)
    steps = total_steps + 5
    got = lrs_over(scheduler, steps)
    for t in range(steps):
        if t <= descent_ends:
            want = [published_slanted_triangular(lr, t, total_steps, cut_frac, ratio) for lr in lrs]
        else:
            want = [lr / ratio for lr in lrs]  # held at the bottom instead of going lower
        np.testing.assert_allclose(got[t], want, rtol=1e-9)
    np.testing.assert_allclose(got[0], np.array(lrs) / ratio, rtol=1e-12)
    np.testing.assert_allclose(got[cut], lrs, rtol=1e-12)


def test_slanted_triangular_with_the_papers_settings():
    # T = 1000, cut_frac = 0.1, ratio = 32: up for 100 steps, down for 900.
    got = lrs_over(SlantedTriangularLR(sgd([0.01]), 1000), 1001)[:, 0]
    np.testing.assert_allclose(got[[0, 100, 1000]], [0.01 / 32, 0.01, 0.01 / 32], rtol=1e-12)
    np.testing.assert_allclose(np.diff(got[:101]), (0.01 - 0.01 / 32) / 100, rtol=1e-9)
    np.testing.assert_allclose(np.diff(got[100:]), -(0.01 - 0.01 / 32) / 900, rtol=1e-9)


@SETTINGS
@given(base_lrs, st.integers(0, 10), st.integers(1, 40), st.floats(0, 1e-4))
def test_cosine_warmup_formula(lrs, warmup_steps, decay_steps, eta_min):
    total_steps = warmup_steps + decay_steps

    def lr_at(base, t):
        if t < warmup_steps:
            return base * t / warmup_steps
        progress = min(1.0, (t - warmup_steps) / (total_steps - warmup_steps))
        return eta_min + (base - eta_min) * (1 + math.cos(math.pi * progress)) / 2

    got = lrs_over(CosineWarmupLR(sgd(lrs), warmup_steps, total_steps, eta_min), total_steps + 3)
    np.testing.assert_allclose(got, expected_over(lrs, total_steps + 3, lr_at), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got[warmup_steps], lrs, rtol=1e-12)
    np.testing.assert_allclose(got[total_steps:], eta_min, atol=1e-15)


@SETTINGS
@given(base_lrs, st.integers(1, 8), st.integers(1, 8))
def test_sequential_lr_restarts_each_schedule_at_its_milestone(lrs, warmup, decay_every):
    optimizer = sgd(lrs)
    warm = LinearLR(optimizer, start_factor=0.1, total_iters=warmup)
    decay = StepLR(optimizer, step_size=decay_every, gamma=0.5)
    got = lrs_over(SequentialLR(optimizer, [warm, decay], milestones=[warmup]), 3 * warmup + 10)

    def lr_at(base, t):
        if t < warmup:
            return base * (0.1 + 0.9 * t / warmup)
        return base * 0.5 ** ((t - warmup) // decay_every)

    np.testing.assert_allclose(got, expected_over(lrs, len(got), lr_at), rtol=1e-12)


def published_one_cycle(max_lr, t, T, pct_start, anneal, div_factor, final_div_factor, three_phase, momenta):
    """(lr, momentum) of the 1cycle policy at step t, written out phase by phase."""
    initial, low = max_lr / div_factor, max_lr / div_factor / final_div_factor
    base_m, max_m = momenta
    if three_phase:
        phases = [(pct_start * T - 1, initial, max_lr, max_m, base_m),
                  (2 * pct_start * T - 2, max_lr, initial, base_m, max_m),
                  (T - 1, initial, low, max_m, max_m)]
    else:
        phases = [(pct_start * T - 1, initial, max_lr, max_m, base_m), (T - 1, max_lr, low, base_m, max_m)]
    start = 0.0
    for index, (end, lr_from, lr_to, m_from, m_to) in enumerate(phases):
        if t <= end or index == len(phases) - 1:
            pct = (t - start) / (end - start) if end != start else 1.0  # a phase of no steps: its end
            break
        start = end
    if anneal == "cos":
        shape = (1 + math.cos(math.pi * pct)) / 2  # 1 at the start of the phase, 0 at its end
        return lr_to + (lr_from - lr_to) * shape, m_to + (m_from - m_to) * shape
    return lr_from + (lr_to - lr_from) * pct, m_from + (m_to - m_from) * pct


one_cycle_settings = st.fixed_dictionaries(
    {
        "total_steps": st.integers(2, 60),
        "pct_start": st.floats(0.0, 1.0),
        "anneal_strategy": st.sampled_from(["cos", "linear"]),
        "div_factor": st.floats(1.0, 100.0),
        "final_div_factor": st.floats(1.0, 1e4),
        "three_phase": st.booleans(),
        "base_momentum": st.floats(0.5, 0.85),
        "max_momentum": st.floats(0.86, 0.99),
    }
)


def _has_a_phase_of_no_steps(settings_) -> bool:
    """Where torch divides by zero (minift jumps to the phase's end instead)."""
    T, p = settings_["total_steps"], settings_["pct_start"]
    ends = [0.0, p * T - 1] + ([2 * p * T - 2] if settings_["three_phase"] else []) + [T - 1]
    return any(end == start for start, end in zip(ends, ends[1:]))


@SETTINGS
@given(base_lrs, one_cycle_settings, st.booleans())
def test_one_cycle_formula_for_lr_and_momentum(max_lrs, settings_, use_adam):
    optimizer = adam(max_lrs) if use_adam else sgd(max_lrs)
    scheduler = OneCycleLR(optimizer, max_lrs, **settings_)
    T = settings_["total_steps"]
    for t in range(T + 1):
        if t > 0:
            scheduler.step()
        for group, max_lr in zip(optimizer.param_groups, max_lrs):
            lr, momentum = published_one_cycle(
                max_lr, t, T, settings_["pct_start"], settings_["anneal_strategy"], settings_["div_factor"],
                settings_["final_div_factor"], settings_["three_phase"], (settings_["base_momentum"], settings_["max_momentum"]),
            )
            assert group["lr"] == pytest.approx(lr, rel=1e-9, abs=1e-15)
            got_momentum = group["betas"][0] if use_adam else group["momentum"]
            assert got_momentum == pytest.approx(momentum, rel=1e-9)
            if use_adam:
                assert group["betas"][1] == 0.999
    with pytest.raises(ValueError, match=f"Tried to step {T + 1} times"):
        scheduler.step()
    assert scheduler.last_epoch == T


def test_one_cycle_landmarks():
    optimizer = sgd([0.1, 1.0])
    got = lrs_over(OneCycleLR(optimizer, [0.1, 1.0], total_steps=100, pct_start=0.25), 100)
    np.testing.assert_allclose(got[0], [0.1 / 25, 1.0 / 25])
    np.testing.assert_allclose(got[24], [0.1, 1.0])
    np.testing.assert_allclose(got[99], [0.1 / 25 / 1e4, 1.0 / 25 / 1e4])
    assert optimizer.param_groups[0]["momentum"] == pytest.approx(0.95)
    assert [group["initial_lr"] for group in optimizer.param_groups] == [0.1 / 25, 1.0 / 25]


# ---------------------------------------------------------------- each group from its own base lr
@SETTINGS
@given(st.lists(st.floats(1e-4, 1.0), min_size=2, max_size=4), st.integers(1, 40))
def test_discriminative_learning_rates_keep_their_ratios(lrs, steps):
    for make in (
        lambda o: StepLR(o, 3),
        lambda o: CosineAnnealingLR(o, 10),
        lambda o: LinearLR(o, 0.2, total_iters=7),
        lambda o: SlantedTriangularLR(o, 40),
        lambda o: CosineWarmupLR(o, 5, 40),
    ):
        got = lrs_over(make(sgd(lrs)), steps)
        factors = got / np.array(lrs)
        np.testing.assert_allclose(factors, factors[:, :1].repeat(len(lrs), axis=1), rtol=1e-12, atol=1e-300)


# ---------------------------------------------------------------- against torch
def _torch_sgd(torch, lrs):
    return torch.optim.SGD(
        [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs], lr=0.1, momentum=0.9
    )


def _torch_lrs_over(optimizer, scheduler, steps):
    values = [scheduler.get_last_lr()]
    for _ in range(steps - 1):
        optimizer.step()  # nothing to update; keeps torch's call-order check quiet
        scheduler.step()
        values.append(scheduler.get_last_lr())
    return np.array(values, dtype=np.float64)


def _sequential(module, optimizer):
    return module.SequentialLR(
        optimizer,
        [module.LinearLR(optimizer, 0.1, total_iters=4), module.ExponentialLR(optimizer, 0.8), module.CosineAnnealingLR(optimizer, 6)],
        milestones=[4, 9],
    )


def _lambda(t):
    return 1.0 / (1 + 0.3 * t)


SAME_AS_TORCH = {
    "LambdaLR": lambda m, o: m.LambdaLR(o, _lambda),
    "StepLR": lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[9, 2, 5, 5], gamma=0.5),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=1e-4),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.1, end_factor=0.9, total_iters=6),
    "SequentialLR": _sequential,
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=6, power=1.5),
    "CosineAnnealingWarmRestarts T_mult=1": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=4, eta_min=1e-3),
    "CosineAnnealingWarmRestarts T_mult=2": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2),
    "CyclicLR triangular": lambda m, o: m.CyclicLR(o, 0.01, [0.1, 0.2, 0.3][: len(o.param_groups)], 3),
    "CyclicLR triangular2": lambda m, o: m.CyclicLR(o, 0.01, 0.1, 2, 5, mode="triangular2"),
    "CyclicLR exp_range": lambda m, o: m.CyclicLR(o, 0.01, 0.1, 4, mode="exp_range", gamma=0.9),
    "CyclicLR scale_fn": lambda m, o: m.CyclicLR(o, 0.01, 0.1, 3, scale_fn=_lambda, scale_mode="iterations"),
}


@pytest.mark.parametrize("make", SAME_AS_TORCH.values(), ids=SAME_AS_TORCH.keys())
@settings(max_examples=15, deadline=None)
@given(lrs=base_lrs, steps=st.integers(1, 30))
def test_schedules_match_torch(make, lrs, steps):
    torch = pytest.importorskip("torch")
    from minift.optim import lr_scheduler

    torch_optimizer = _torch_sgd(torch, lrs)
    expected = _torch_lrs_over(torch_optimizer, make(torch.optim.lr_scheduler, torch_optimizer), steps)
    got = lrs_over(make(lr_scheduler, sgd(lrs)), steps)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-15)


@SETTINGS
@given(base_lrs, one_cycle_settings, st.booleans(), st.booleans(), st.booleans())
def test_one_cycle_matches_torch(max_lrs, settings_, use_adam, per_group_max_lr, cycle_momentum):
    torch = pytest.importorskip("torch")
    max_lr = max_lrs if per_group_max_lr else max_lrs[0]
    settings_ = {**settings_, "cycle_momentum": cycle_momentum}
    optimizer = adam(max_lrs) if use_adam else sgd(max_lrs)
    assume(not _has_a_phase_of_no_steps(settings_))
    scheduler = OneCycleLR(optimizer, max_lr, **settings_)
    torch_params = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in max_lrs]
    torch_optimizer = torch.optim.Adam(torch_params, lr=0.1) if use_adam else torch.optim.SGD(torch_params, lr=0.1, momentum=0.9)
    torch_scheduler = torch.optim.lr_scheduler.OneCycleLR(torch_optimizer, max_lr, **settings_)
    key = "betas" if use_adam else "momentum"
    for t in range(settings_["total_steps"] + 1):
        if t > 0:
            torch_optimizer.step()
            torch_scheduler.step()
            scheduler.step()
        np.testing.assert_allclose(scheduler.get_last_lr(), torch_scheduler.get_last_lr(), rtol=1e-9, atol=1e-15)
        for group, torch_group in zip(optimizer.param_groups, torch_optimizer.param_groups):
            np.testing.assert_allclose(group[key], torch_group[key], rtol=1e-9)
    with pytest.raises(ValueError, match="Tried to step"):
        torch_scheduler.step()
    with pytest.raises(ValueError, match="Tried to step"):
        scheduler.step()


def test_cosine_warmup_matches_the_hugging_face_schedule_in_torch():
    torch = pytest.importorskip("torch")
    warmup, total = 10, 50

    def hugging_face(t):  # transformers.get_cosine_schedule_with_warmup's lambda, num_cycles = 0.5
        if t < warmup:
            return t / max(1, warmup)
        progress = (t - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))

    torch_optimizer = _torch_sgd(torch, [0.1, 0.03])
    expected = _torch_lrs_over(torch_optimizer, torch.optim.lr_scheduler.LambdaLR(torch_optimizer, hugging_face), total)
    got = lrs_over(CosineWarmupLR(sgd([0.1, 0.03]), warmup, total), total)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- saving and resuming
RESUMABLE = {
    "StepLR": lambda o, last_epoch=-1: StepLR(o, 2, 0.7, last_epoch=last_epoch),
    "MultiStepLR": lambda o, last_epoch=-1: MultiStepLR(o, [3, 6], last_epoch=last_epoch),
    "ExponentialLR": lambda o, last_epoch=-1: ExponentialLR(o, 0.9, last_epoch=last_epoch),
    "CosineAnnealingLR": lambda o, last_epoch=-1: CosineAnnealingLR(o, 9, 1e-3, last_epoch=last_epoch),
    "LinearLR": lambda o, last_epoch=-1: LinearLR(o, 0.25, total_iters=5, last_epoch=last_epoch),
    "LambdaLR": lambda o, last_epoch=-1: LambdaLR(o, _lambda, last_epoch=last_epoch),
    "SequentialLR": lambda o, last_epoch=-1: SequentialLR(
        o, [LinearLR(o, 0.1, total_iters=3), CosineAnnealingLR(o, 10)], [3], last_epoch=last_epoch
    ),
    "OneCycleLR": lambda o, last_epoch=-1: OneCycleLR(o, [0.5, 0.05], total_steps=30, three_phase=True, last_epoch=last_epoch),
    "SlantedTriangularLR": lambda o, last_epoch=-1: SlantedTriangularLR(o, 30, cut_frac=0.2, last_epoch=last_epoch),
    "CosineWarmupLR": lambda o, last_epoch=-1: CosineWarmupLR(o, 4, 30, last_epoch=last_epoch),
    "PolynomialLR": lambda o, last_epoch=-1: PolynomialLR(o, 7, 2.0, last_epoch=last_epoch),
    "CyclicLR": lambda o, last_epoch=-1: CyclicLR(o, [0.01, 0.001], 0.1, 3, 5, "triangular2", last_epoch=last_epoch),
    "CosineAnnealingWarmRestarts": lambda o, last_epoch=-1: CosineAnnealingWarmRestarts(o, 3, 2, 1e-3, last_epoch=last_epoch),
}


@pytest.mark.parametrize("make", RESUMABLE.values(), ids=RESUMABLE.keys())
@settings(max_examples=10, deadline=None)
@given(steps_before=st.integers(0, 12), steps_after=st.integers(1, 12))
def test_a_state_dict_round_trip_continues_identically(make, steps_before, steps_after):
    optimizer = sgd([0.1, 0.01])
    scheduler = make(optimizer)
    for _ in range(steps_before):
        scheduler.step()
    saved, saved_optimizer = scheduler.state_dict(), optimizer.state_dict()
    snapshot = copy.deepcopy(saved)
    resumed_optimizer = sgd([0.3, 0.3])
    resumed = make(resumed_optimizer)
    resumed_optimizer.load_state_dict(saved_optimizer)
    resumed.load_state_dict(saved)
    for _ in range(steps_after):
        scheduler.step()
        resumed.step()
        assert resumed.get_last_lr() == scheduler.get_last_lr()
        assert resumed_optimizer.param_groups[0]["momentum"] == optimizer.param_groups[0]["momentum"]
    assert resumed.last_epoch == scheduler.last_epoch == steps_before + steps_after
    assert saved == snapshot  # a taken state dict does not follow later steps


@pytest.mark.parametrize("make", RESUMABLE.values(), ids=RESUMABLE.keys())
@pytest.mark.parametrize("steps", [1, 5, 17])
def test_resuming_with_last_epoch_gives_the_same_lr(make, steps):
    optimizer = sgd([0.1, 0.01])
    scheduler = make(optimizer)
    for _ in range(steps):
        scheduler.step()
    resumed_optimizer = sgd([0.1, 0.01])
    resumed_optimizer.load_state_dict(optimizer.state_dict())
    resumed = make(resumed_optimizer, last_epoch=steps - 1)  # building takes one step
    assert resumed.last_epoch == steps
    assert resumed.get_last_lr() == scheduler.get_last_lr()


def test_resuming_without_initial_lr_is_a_key_error():
    with pytest.raises(KeyError, match="initial_lr"):
        StepLR(sgd([0.1]), 3, last_epoch=4)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.pop("gamma"), "must have keys"),
        (lambda s: s.update(unknown=1), "must have keys"),
        (lambda s: s.update(base_lrs=[0.1]), "for 1 param groups"),
    ],
)
def test_a_mismatched_scheduler_state_dict_is_refused_and_changes_nothing(change, message):
    scheduler = StepLR(sgd([0.1, 0.2]), 2)
    scheduler.step()
    bad = scheduler.state_dict()
    change(bad)
    before = scheduler.state_dict()
    with pytest.raises(ValueError, match=message):
        scheduler.load_state_dict(bad)
    assert scheduler.state_dict() == before


def test_sequential_lr_refuses_a_bad_child_state_before_loading_any():
    optimizer = sgd([0.1])
    scheduler = SequentialLR(optimizer, [LinearLR(optimizer, 0.5, total_iters=2), StepLR(optimizer, 2)], [2])
    for _ in range(4):
        scheduler.step()
    bad = scheduler.state_dict()
    bad["last_epoch"] = 0
    bad["_schedulers"][0]["last_epoch"] = 0
    del bad["_schedulers"][1]["gamma"]
    before = scheduler.state_dict()
    with pytest.raises(ValueError, match="must have keys"):
        scheduler.load_state_dict(bad)
    assert scheduler.state_dict() == before


# ---------------------------------------------------------------- errors
def _groups_without_params(optimizer):
    return [{key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda o: StepLR(o, 0), "step_size"),
        (lambda o: MultiStepLR(o, [1.5]), "milestones"),
        (lambda o: CosineAnnealingLR(o, 0), "T_max"),
        (lambda o: LinearLR(o, start_factor=0.0), "start_factor"),
        (lambda o: LinearLR(o, end_factor=1.5), "end_factor"),
        (lambda o: LambdaLR(o, 3.0), "lr_lambda"),
        (lambda o: OneCycleLR(o, 0.1), "total_steps OR"),
        (lambda o: OneCycleLR(o, 0.1, total_steps=10, pct_start=1.5), "pct_start"),
        (lambda o: OneCycleLR(o, 0.1, total_steps=10, anneal_strategy="exp"), "anneal_strategy"),
        (lambda o: OneCycleLR(o, [0.1, 0.2, 0.3], total_steps=10), "max_lr must have the same length"),
        (lambda o: OneCycleLR(o, 0.1, epochs=2, steps_per_epoch=0), "steps_per_epoch"),
        (lambda o: SlantedTriangularLR(o, 50, ratio=0.5), "ratio"),
        (lambda o: PolynomialLR(o, total_iters=0), "total_iters"),
        (lambda o: CosineAnnealingWarmRestarts(o, T_0=0), "T_0"),
        (lambda o: CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0), "T_mult"),
        (lambda o: CyclicLR(o, 0.01, 0.1, mode="sine"), "mode"),
        (lambda o: CyclicLR(o, [0.01] * 3, 0.1), "base_lr must have the same length"),
        (lambda o: CyclicLR(o, 0.01, 0.1, step_size_up=0), "step_size_up"),
        (lambda o: CosineWarmupLR(o, 10, 10), "total_steps"),
    ],
)
def test_bad_settings_are_refused_and_change_nothing(make, message):
    optimizer = sgd([0.1, 0.2])
    before = _groups_without_params(optimizer)
    with pytest.raises(ValueError, match=message):
        make(optimizer)
    assert _groups_without_params(optimizer) == before


@pytest.mark.parametrize(
    "milestones, other_optimizer, message",
    [([], False, "one milestone fewer"), ([0], False, "strictly increasing"), ([3], True, "same optimizer")],
)
def test_bad_sequences_are_refused_and_change_nothing(milestones, other_optimizer, message):
    optimizer = sgd([0.1, 0.2])
    first = LinearLR(optimizer, 0.5, total_iters=3)
    second = StepLR(sgd([0.1, 0.2]) if other_optimizer else optimizer, 2)
    before = _groups_without_params(optimizer), first.state_dict(), second.state_dict()
    with pytest.raises(ValueError, match=message):
        SequentialLR(optimizer, [first, second], milestones)
    assert (_groups_without_params(optimizer), first.state_dict(), second.state_dict()) == before


def test_a_scheduler_needs_an_optimizer():
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        StepLR([], 2)


def test_a_scheduler_refuses_an_optimizer_whose_groups_changed():
    optimizer = sgd([0.1])
    scheduler = CosineAnnealingLR(optimizer, 10)
    optimizer.add_param_group({"params": [Tensor(np.zeros(1), requires_grad=True)], "lr": 0.5})
    with pytest.raises(ValueError, match="has 2 param groups but this CosineAnnealingLR was built for 1"):
        scheduler.step()
    assert scheduler.last_epoch == 0


def test_one_cycle_without_momentum_leaves_momentum_alone():
    optimizer = sgd([0.1], momentum=0.3)
    scheduler = OneCycleLR(optimizer, 0.1, total_steps=10, cycle_momentum=False)
    scheduler.step()
    assert optimizer.param_groups[0]["momentum"] == 0.3


class PlainDescent(Optimizer):
    """An optimizer with neither momentum nor betas: θ ← θ - lr · g."""

    def __init__(self, params, lr=0.1):
        super().__init__(params, {"lr": lr})

    def _update(self, param, grad, group):
        param.data -= group["lr"] * grad


def test_one_cycle_momentum_needs_an_optimizer_with_momentum():
    optimizer = PlainDescent([Tensor(np.zeros(1), requires_grad=True)])
    with pytest.raises(ValueError, match="momentum or beta1"):
        OneCycleLR(optimizer, 0.1, total_steps=10)
    scheduler = OneCycleLR(optimizer, 0.1, total_steps=10, cycle_momentum=False)
    assert scheduler.get_last_lr() == [pytest.approx(0.1 / 25)]


@settings(max_examples=15, deadline=None)
@given(lrs=base_lrs, steps=st.integers(1, 30), use_adam=st.booleans(), mode=st.sampled_from(["triangular", "triangular2", "exp_range"]))
def test_cyclic_lr_cycles_momentum_as_torch(lrs, steps, use_adam, mode):
    torch = pytest.importorskip("torch")
    optimizer = adam(lrs) if use_adam else sgd(lrs)
    params = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs]
    torch_optimizer = torch.optim.Adam(params, lr=0.1) if use_adam else torch.optim.SGD(params, lr=0.1, momentum=0.9)
    settings_ = dict(base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=2, mode=mode, gamma=0.95)
    scheduler = CyclicLR(optimizer, **settings_)
    torch_scheduler = torch.optim.lr_scheduler.CyclicLR(torch_optimizer, **settings_)
    key = "betas" if use_adam else "momentum"
    for _ in range(steps):
        for group, torch_group in zip(optimizer.param_groups, torch_optimizer.param_groups):
            np.testing.assert_allclose(group[key], torch_group[key], rtol=1e-12)
            assert group["lr"] == pytest.approx(torch_group["lr"], rel=1e-12)
        torch_optimizer.step()
        torch_scheduler.step()
        scheduler.step()
