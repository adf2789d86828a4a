"""Optimizers: update rules against the published algorithms and torch, param groups, freezing, saving."""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minift import Tensor
import minift.optim
from minift.optim import (SGD, Adagrad, Adam, AdamW, NAdam, Optimizer, RAdam, RMSprop, clip_grad_norm_,
                          clip_grad_value_, required)

SETTINGS = settings(max_examples=40, deadline=None)
small_floats = st.floats(-5, 5, allow_nan=False, allow_infinity=False)


# ---------------------------------------------------------------- the published algorithms
def published_sgd(theta, grads, lr, momentum, dampening, weight_decay, nesterov, maximize):
    """PyTorch's SGD algorithm box, line by line; θ after every step."""
    thetas, buffer = [], None
    for t, g in enumerate(grads, start=1):
        if maximize:
            g = -g
        if weight_decay != 0:
            g = g + weight_decay * theta
        if momentum != 0:
            buffer = g if t == 1 else momentum * buffer + (1 - dampening) * g
            g = g + momentum * buffer if nesterov else buffer
        theta = theta - lr * g
        thetas.append(theta)
    return thetas


def published_adam(theta, grads, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled):
    """PyTorch's Adam / AdamW algorithm boxes, line by line; θ after every step."""
    beta1, beta2 = betas
    m = v = v_max = np.zeros_like(theta)
    thetas = []
    for t, g in enumerate(grads, start=1):
        if maximize:
            g = -g
        if weight_decay != 0 and decoupled:
            theta = theta - lr * weight_decay * theta
        elif weight_decay != 0:
            g = g + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t)
        if amsgrad:
            v_max = np.maximum(v_max, v)
            v_hat = v_max / (1 - beta2**t)
        else:
            v_hat = v / (1 - beta2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        thetas.append(theta)
    return thetas


@st.composite
def start_and_gradients(draw, max_steps=6):
    """A parameter value and a sequence of gradients of its shape (float64)."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=4))
    arrays = hnp.arrays(np.float64, shape, elements=small_floats)
    return draw(arrays), draw(st.lists(arrays, min_size=1, max_size=max_steps))


def run_minift(optimizer_class, theta, grads, **hyperparameters):
    """θ after every step of a minift optimizer fed ``grads``; checks grads are left alone."""
    param = Tensor(theta.copy(), requires_grad=True)
    optimizer = optimizer_class([param], **hyperparameters)
    thetas = []
    for g in grads:
        param.grad = Tensor(g.copy())
        optimizer.step()
        np.testing.assert_array_equal(param.grad.data, g)  # the optimizer never writes to grad
        thetas.append(param.data.copy())
    return thetas


sgd_hyperparameters = st.fixed_dictionaries(
    {
        "lr": st.floats(0, 1),
        "momentum": st.sampled_from([0.0]) | st.floats(0.01, 0.99),
        "dampening": st.sampled_from([0.0]) | st.floats(0, 0.9),
        "weight_decay": st.sampled_from([0.0]) | st.floats(0, 0.1),
        "nesterov": st.booleans(),
        "maximize": st.booleans(),
    }
).map(lambda h: {**h, "dampening": 0.0, "momentum": h["momentum"] or 0.5} if h["nesterov"] else h)

adam_hyperparameters = st.fixed_dictionaries(
    {
        "lr": st.floats(0, 0.5),
        "betas": st.tuples(st.floats(0, 0.99), st.floats(0, 0.999)),
        "eps": st.floats(1e-10, 1e-3),
        "weight_decay": st.sampled_from([0.0]) | st.floats(0, 0.1),
        "amsgrad": st.booleans(),
        "maximize": st.booleans(),
        "decoupled_weight_decay": st.booleans(),
    }
)


# ---------------------------------------------------------------- update rules
@SETTINGS
@given(start_and_gradients(), sgd_hyperparameters)
def test_sgd_follows_the_published_rule(data, hyperparameters):
    theta, grads = data
    expected = published_sgd(theta, grads, **hyperparameters)
    for got, want in zip(run_minift(SGD, theta, grads, **hyperparameters), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(start_and_gradients(), adam_hyperparameters)
def test_adam_follows_the_published_rule(data, hyperparameters):
    theta, grads = data
    hyperparameters = dict(hyperparameters)
    decoupled = hyperparameters.pop("decoupled_weight_decay")
    expected = published_adam(theta, grads, decoupled=decoupled, **hyperparameters)
    got = run_minift(Adam, theta, grads, decoupled_weight_decay=decoupled, **hyperparameters)
    for got_theta, want in zip(got, expected):
        np.testing.assert_allclose(got_theta, want, rtol=1e-9, atol=1e-12)


@SETTINGS
@given(start_and_gradients(), adam_hyperparameters)
def test_adamw_decays_decoupled(data, hyperparameters):
    theta, grads = data
    hyperparameters = {k: v for k, v in hyperparameters.items() if k != "decoupled_weight_decay"}
    expected = published_adam(theta, grads, decoupled=True, **hyperparameters)
    for got, want in zip(run_minift(AdamW, theta, grads, **hyperparameters), expected):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_adamw_default_weight_decay_is_pytorchs():
    param = Tensor(np.ones(2), requires_grad=True)
    assert AdamW([param]).param_groups[0]["weight_decay"] == 1e-2
    assert AdamW([param]).param_groups[0]["decoupled_weight_decay"] is True


@pytest.mark.parametrize("optimizer_class", [SGD, Adam, AdamW])
def test_step_updates_in_place_and_keeps_float32(optimizer_class):
    rng = np.random.default_rng(0)
    param = Tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    array = param.data
    optimizer = optimizer_class([param], lr=0.1, weight_decay=0.01, **({"momentum": 0.9} if optimizer_class is SGD else {}))
    before = array.copy()
    for _ in range(3):
        param.grad = Tensor(rng.standard_normal((3, 4)).astype(np.float32))
        optimizer.step()
    assert param.data is array and array.dtype == np.float32
    assert not np.array_equal(array, before)
    for value in optimizer.state[param].values():
        if isinstance(value, np.ndarray):
            assert value.dtype == np.float32 and value.shape == (3, 4)


def test_step_returns_the_closure_loss():
    param = Tensor(np.ones(2), requires_grad=True)
    optimizer = SGD([param], lr=0.5)

    def closure():
        param.grad = Tensor(np.full(2, 2.0))
        return 7.0

    assert optimizer.step(closure) == 7.0
    np.testing.assert_array_equal(param.data, [0.0, 0.0])


# ---------------------------------------------------------------- against torch
def _torch_and_minift_pair(torch, optimizer_name, hyperparameters, values):
    """The same two-group problem in torch and minift: the second group runs at lr / 3."""
    torch_params = [torch.tensor(v.copy(), requires_grad=True) for v in values]
    minift_params = [Tensor(v.copy(), requires_grad=True) for v in values]
    lr = hyperparameters["lr"]
    split = len(values) // 2

    def groups(params):
        return [{"params": params[:split]}, {"params": params[split:], "lr": lr / 3}]

    torch_optimizer = getattr(torch.optim, optimizer_name)(groups(torch_params), **hyperparameters)
    minift_optimizer = getattr(minift.optim, optimizer_name)(groups(minift_params), **hyperparameters)
    return torch_params, minift_params, torch_optimizer, minift_optimizer


@st.composite
def parameters_and_gradient_sequence(draw):
    """3 parameters of various shapes and 1-6 steps of gradients, some None (unused)."""
    shapes = draw(st.lists(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3), min_size=3, max_size=3))
    values = [draw(hnp.arrays(np.float64, shape, elements=small_floats)) for shape in shapes]
    steps = draw(st.integers(1, 6))
    grads = [
        [draw(st.none() | hnp.arrays(np.float64, shape, elements=small_floats)) for shape in shapes]
        for _ in range(steps)
    ]
    return values, grads


def _compare_with_torch(optimizer_name, hyperparameters, data):
    torch = pytest.importorskip("torch")
    values, grads = data
    torch_params, minift_params, torch_optimizer, minift_optimizer = _torch_and_minift_pair(
        torch, optimizer_name, hyperparameters, values
    )
    for step_grads in grads:
        for torch_param, minift_param, g in zip(torch_params, minift_params, step_grads):
            torch_param.grad = None if g is None else torch.tensor(g.copy())
            minift_param.grad = None if g is None else Tensor(g.copy())
        torch_optimizer.step()
        minift_optimizer.step()
        for torch_param, minift_param in zip(torch_params, minift_params):
            np.testing.assert_allclose(minift_param.data, torch_param.detach().numpy(), rtol=1e-9, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(parameters_and_gradient_sequence(), sgd_hyperparameters)
def test_sgd_matches_torch(data, hyperparameters):
    _compare_with_torch("SGD", hyperparameters, data)


@settings(max_examples=30, deadline=None)
@given(parameters_and_gradient_sequence(), adam_hyperparameters)
def test_adam_matches_torch(data, hyperparameters):
    _compare_with_torch("Adam", hyperparameters, data)


@settings(max_examples=20, deadline=None)
@given(parameters_and_gradient_sequence(), adam_hyperparameters)
def test_adamw_matches_torch(data, hyperparameters):
    hyperparameters = {k: v for k, v in hyperparameters.items() if k != "decoupled_weight_decay"}
    _compare_with_torch("AdamW", hyperparameters, data)


weight_decay = st.sampled_from([0.0]) | st.floats(0, 0.1)
betas = st.tuples(st.floats(0, 0.99), st.floats(0, 0.999))
MORE_HYPERPARAMETERS = {
    "RMSprop": st.fixed_dictionaries({
        "lr": st.floats(0, 0.5), "alpha": st.floats(0.1, 0.999), "eps": st.floats(1e-8, 1e-3),
        "weight_decay": weight_decay, "momentum": st.sampled_from([0.0]) | st.floats(0, 0.99),
        "centered": st.booleans(), "maximize": st.booleans()}),
    "Adagrad": st.fixed_dictionaries({
        "lr": st.floats(0, 0.5), "lr_decay": st.sampled_from([0.0]) | st.floats(0, 0.5),
        "weight_decay": weight_decay, "initial_accumulator_value": st.sampled_from([0.0]) | st.floats(0, 1),
        "eps": st.floats(1e-10, 1e-3), "maximize": st.booleans()}),
    "NAdam": st.fixed_dictionaries({
        "lr": st.floats(0, 0.5), "betas": betas, "eps": st.floats(1e-8, 1e-3), "weight_decay": weight_decay,
        "momentum_decay": st.floats(0, 0.01), "decoupled_weight_decay": st.booleans(), "maximize": st.booleans()}),
    "RAdam": st.fixed_dictionaries({
        "lr": st.floats(0, 0.5), "betas": betas, "eps": st.floats(1e-8, 1e-3), "weight_decay": weight_decay,
        "decoupled_weight_decay": st.booleans(), "maximize": st.booleans()}),
}


@pytest.mark.parametrize("optimizer_name", MORE_HYPERPARAMETERS)
@settings(max_examples=30, deadline=None)
@given(data=parameters_and_gradient_sequence(), draw=st.data())
def test_rmsprop_adagrad_nadam_radam_match_torch(optimizer_name, data, draw):
    """Step for step, two param groups, some gradients None (RAdam: long enough to rectify)."""
    torch = pytest.importorskip("torch")
    hyperparameters = draw.draw(MORE_HYPERPARAMETERS[optimizer_name], label="hyperparameters")
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # torch keeps NAdam's mu_product in the default dtype
    try:
        _compare_with_torch(optimizer_name, hyperparameters, data)
    finally:
        torch.set_default_dtype(default_dtype)


@pytest.mark.parametrize("optimizer_name", ["RMSprop", "Adagrad", "NAdam", "RAdam"])
def test_defaults_are_pytorchs(optimizer_name):
    torch = pytest.importorskip("torch")
    param = Tensor(np.zeros(1), requires_grad=True)
    ours = getattr(minift.optim, optimizer_name)([param]).defaults
    theirs = getattr(torch.optim, optimizer_name)([torch.zeros(1, requires_grad=True)]).defaults
    assert {key: theirs[key] for key in ours} == ours


def test_radam_rectifies_after_its_warm_up():
    """With β2 = 0.999, ρ_t > 5 from step 6 on: the first five steps are plain momentum
    steps of size lr·m̂ (= lr for a constant gradient 1), the sixth is adaptive."""
    param = Tensor(np.zeros(1), requires_grad=True)
    optimizer = RAdam([param], lr=0.1)
    moves = []
    for _ in range(6):
        before = float(param.data[0])
        param.grad = Tensor(np.ones(1))
        optimizer.step()
        moves.append(before - float(param.data[0]))
    np.testing.assert_allclose(moves[:5], 0.1, rtol=1e-12)
    assert moves[5] != pytest.approx(0.1, rel=1e-6)


# ---------------------------------------------------------------- freezing
OPTIMIZERS = {
    "sgd momentum + decay": lambda groups: SGD(groups, lr=0.1, momentum=0.9, weight_decay=0.05),
    "sgd nesterov + decay": lambda groups: SGD(groups, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05),
    "adam L2": lambda groups: Adam(groups, lr=0.01, weight_decay=0.1),
    "adam amsgrad maximize": lambda groups: Adam(groups, lr=0.01, amsgrad=True, maximize=True, weight_decay=0.1),
    "adamw": lambda groups: AdamW(groups, lr=0.01, weight_decay=0.1),
    "rmsprop centered momentum + decay": lambda groups: RMSprop(groups, momentum=0.9, centered=True, weight_decay=0.1),
    "adagrad decay": lambda groups: Adagrad(groups, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1),
    "nadam decoupled": lambda groups: NAdam(groups, weight_decay=0.1, decoupled_weight_decay=True),
    "radam L2": lambda groups: RAdam(groups, weight_decay=0.1),
}


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
@pytest.mark.parametrize("how", ["grad is None", "requires_grad=False"])
@settings(max_examples=15, deadline=None)
@given(values=hnp.arrays(np.float32, hnp.array_shapes(max_dims=2, max_side=4), elements=st.floats(-5, 5, width=32)), steps=st.integers(1, 30))
def test_a_frozen_parameter_is_bit_identical_after_any_number_of_steps(make_optimizer, how, values, steps):
    rng = np.random.default_rng(steps)
    frozen = Tensor(values.copy(), requires_grad=True)
    trained = Tensor(values.copy(), requires_grad=True)
    optimizer = make_optimizer([{"params": [trained]}, {"params": [frozen], "lr": 1.0}])
    if how == "requires_grad=False":
        frozen.requires_grad_(False)
    for _ in range(steps):
        trained.grad = Tensor(rng.standard_normal(values.shape).astype(np.float32) + 1)
        frozen.grad = None if how == "grad is None" else Tensor(rng.standard_normal(values.shape).astype(np.float32))
        optimizer.step()
    assert frozen.data.tobytes() == values.tobytes()
    assert frozen not in optimizer.state
    assert not np.array_equal(trained.data, values)


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_an_unfrozen_parameter_starts_its_state_fresh(make_optimizer):
    late, early = Tensor(np.ones(3), requires_grad=True), Tensor(np.ones(3), requires_grad=True)
    alone = Tensor(np.ones(3), requires_grad=True)
    optimizer, reference = make_optimizer([early, late]), make_optimizer([alone])
    for _ in range(5):
        early.grad = Tensor(np.full(3, 0.5))
        optimizer.step()
    for step in range(3):
        g = np.array([1.0, -2.0, 3.0]) * (step + 1)
        late.grad, alone.grad = Tensor(g.copy()), Tensor(g.copy())
        optimizer.step()
        reference.step()
    np.testing.assert_array_equal(late.data, alone.data)


# ---------------------------------------------------------------- param groups
def test_groups_override_defaults_and_keep_their_own_values():
    a, b = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(3), requires_grad=True)
    optimizer = SGD([{"params": [a]}, {"params": [b], "lr": 0.5, "momentum": 0.0}], lr=0.1, momentum=0.9)
    first, second = optimizer.param_groups
    assert (first["lr"], first["momentum"]) == (0.1, 0.9)
    assert (second["lr"], second["momentum"]) == (0.5, 0.0)
    assert first["params"][0] is a and second["params"][0] is b
    a.grad, b.grad = Tensor(np.ones(2)), Tensor(np.ones(3))
    optimizer.step()
    np.testing.assert_allclose(a.data, 0.9)
    np.testing.assert_allclose(b.data, 0.5)


def test_repr_lists_every_group_like_pytorch():
    a, b = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(3), requires_grad=True)
    text = repr(Adam([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1))
    assert text.startswith("Adam (\nParameter Group 0\n") and text.endswith("\n)")
    assert "Parameter Group 1" in text and "    lr: 0.5" in text and "    betas: (0.9, 0.999)" in text
    assert "params" not in text


def test_add_param_group_appends_a_group_stepped_from_then_on():
    a, b = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(2), requires_grad=True)
    optimizer = SGD([a], lr=0.1)
    group = {"params": b, "lr": 1.0}
    optimizer.add_param_group(group)
    assert group == {"params": b, "lr": 1.0}  # the caller's dict is not modified
    assert optimizer.param_groups[1]["params"] == [b] and optimizer.param_groups[1]["momentum"] == 0.0
    b.grad = Tensor(np.ones(2))
    optimizer.step()
    np.testing.assert_array_equal(b.data, [0.0, 0.0])


def test_named_parameters_keep_their_names():
    a, b = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(3), requires_grad=True)
    optimizer = SGD([("body.weight", a), ("head.bias", b)], lr=0.1)
    assert optimizer.param_groups[0]["param_names"] == ["body.weight", "head.bias"]
    assert optimizer.param_groups[0]["params"] == [a, b]
    with pytest.raises(ValueError, match="'head.bias'.*already in param group 0"):
        optimizer.add_param_group({"params": [("head.bias", b)]})


def test_a_parameter_in_two_groups_is_an_error_naming_it():
    a, b = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones((4, 5)), requires_grad=True)
    with pytest.raises(ValueError, match=r"params\[1\] \(shape \(4, 5\)\).*param group 0"):
        SGD([{"params": [a, b]}, {"params": [Tensor(np.ones(1), requires_grad=True), b]}], lr=0.1)
    with pytest.raises(ValueError, match="more than one"):
        SGD([a, a], lr=0.1)


def _snapshot(optimizer):
    return copy.deepcopy(optimizer.state_dict()), [list(group["params"]) for group in optimizer.param_groups]


def assert_same_state_dict(got, want):
    assert got["param_groups"] == want["param_groups"]
    assert got["state"].keys() == want["state"].keys()
    for index, state in want["state"].items():
        assert got["state"][index].keys() == state.keys()
        for name, value in state.items():
            np.testing.assert_array_equal(got["state"][index][name], value)


@pytest.mark.parametrize(
    "bad_group, message",
    [
        ({"lr": -0.1}, "invalid lr"),
        ({"lr": float("nan")}, "invalid lr"),
        ({"lr": float("inf")}, "invalid lr"),
        ({"momentum": -0.5}, "invalid momentum"),
        ({"weight_decay": -1.0}, "invalid weight_decay"),
        ({"nesterov": True, "momentum": 0.0}, "Nesterov"),
        ({"nesterov": True, "dampening": 0.1}, "Nesterov"),
    ],
)
def test_an_invalid_sgd_group_is_refused_and_changes_nothing(bad_group, message):
    a = Tensor(np.ones(2), requires_grad=True)
    optimizer = SGD([a], lr=0.1, momentum=0.9)
    a.grad = Tensor(np.ones(2))
    optimizer.step()
    before = _snapshot(optimizer)
    with pytest.raises(ValueError, match=message):
        optimizer.add_param_group({"params": [Tensor(np.ones(3), requires_grad=True)], **bad_group})
    after = _snapshot(optimizer)
    assert_same_state_dict(after[0], before[0])
    assert after[1] == before[1]
    with pytest.raises(ValueError, match=message):
        SGD([a], **{"lr": 0.1, "momentum": 0.9, **bad_group})


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"betas": (0.9, 1.0)}, "invalid betas"),
        ({"betas": (-0.1, 0.9)}, "invalid betas"),
        ({"betas": (0.9,)}, "invalid betas"),
        ({"eps": -1e-8}, "invalid eps"),
        ({"lr": -1.0}, "invalid lr"),
        ({"weight_decay": float("nan")}, "invalid weight_decay"),
    ],
)
def test_invalid_adam_hyperparameters_are_refused(bad, message):
    a = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match=message):
        Adam([a], **bad)
    optimizer = Adam([a])
    with pytest.raises(ValueError, match=message):
        optimizer.add_param_group({"params": [Tensor(np.ones(1), requires_grad=True)], **bad})
    assert len(optimizer.param_groups) == 1


class ScaledSign(Optimizer):
    """A tiny optimizer with a required hyperparameter: θ ← θ - step_size · sign(g)."""

    def __init__(self, params, step_size=required):
        super().__init__(params, {"step_size": step_size})

    def _update(self, param, grad, group):
        param.data -= group["step_size"] * np.sign(grad)


def test_a_group_missing_a_required_hyperparameter_is_refused():
    a, b = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="required optimization parameter step_size"):
        ScaledSign([a])
    optimizer = ScaledSign([{"params": [a], "step_size": 0.5}])
    with pytest.raises(ValueError, match="step_size"):
        optimizer.add_param_group({"params": [b]})
    a.grad = Tensor(np.array([3.0, -1.0]))
    optimizer.step()
    np.testing.assert_array_equal(a.data, [0.5, 1.5])
    assert len(optimizer.param_groups) == 1


def test_bad_params_get_clear_errors():
    a = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(TypeError, match="single Tensor"):
        SGD(a, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="sets"):
        SGD([{"params": {a}}], lr=0.1)
    with pytest.raises(TypeError, match="ndarray"):
        SGD([np.ones(2)], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([a * 2.0], lr=0.1)
    with pytest.raises(ValueError, match="'params'"):
        SGD([a], lr=0.1).add_param_group({"lr": 0.1})


def test_zero_grad_sets_none_or_zeros_in_place():
    a = Tensor(np.ones(3), requires_grad=True)
    optimizer = SGD([a], lr=0.1)
    a.grad = Tensor(np.full(3, 4.0))
    array = a.grad.data
    optimizer.zero_grad(set_to_none=False)
    assert a.grad.data is array
    np.testing.assert_array_equal(array, 0.0)
    optimizer.zero_grad()
    assert a.grad is None


# ---------------------------------------------------------------- saving and resuming
@pytest.mark.parametrize("make_optimizer", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
@settings(max_examples=10, deadline=None)
@given(steps_before=st.integers(0, 5), steps_after=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_a_state_dict_round_trip_continues_bit_identically(make_optimizer, steps_before, steps_after, seed):
    rng = np.random.default_rng(seed)
    shapes = [(3,), (2, 2), ()]

    def build(values):
        params = [Tensor(v.copy(), requires_grad=True) for v in values]
        return params, make_optimizer([{"params": params[:2]}, {"params": params[2:], "lr": 0.05}])

    def step(params, optimizer, grads):
        for param, g in zip(params, grads):
            param.grad = None if g is None else Tensor(g.copy())
        optimizer.step()

    params, optimizer = build([rng.standard_normal(shape) for shape in shapes])
    for _ in range(steps_before):
        step(params, optimizer, [rng.standard_normal(s) if rng.random() < 0.8 else None for s in shapes])
    saved = optimizer.state_dict()
    snapshot = copy.deepcopy(saved)
    resumed_params, resumed = build([p.data for p in params])
    resumed.load_state_dict(saved)
    for _ in range(steps_after):
        grads = [rng.standard_normal(s) if rng.random() < 0.8 else None for s in shapes]
        step(params, optimizer, grads)
        step(resumed_params, resumed, grads)
        for original, copy_ in zip(params, resumed_params):
            assert original.data.tobytes() == copy_.data.tobytes()
    assert_same_state_dict(saved, snapshot)  # a taken state dict does not follow later steps
    assert_same_state_dict(resumed.state_dict(), optimizer.state_dict())


def test_state_dict_has_pytorchs_layout():
    a, b, c = (Tensor(np.ones(n), requires_grad=True) for n in (1, 2, 3))
    optimizer = SGD([{"params": [a, b]}, {"params": [c], "lr": 0.5}], lr=0.1, momentum=0.9)
    b.grad, c.grad = Tensor(np.ones(2)), Tensor(np.ones(3))
    optimizer.step()
    saved = optimizer.state_dict()
    assert set(saved) == {"state", "param_groups"}
    assert [group["params"] for group in saved["param_groups"]] == [[0, 1], [2]]
    assert saved["param_groups"][1]["lr"] == 0.5 and saved["param_groups"][0]["momentum"] == 0.9
    assert set(saved["state"]) == {1, 2}
    assert set(saved["state"][1]) == {"momentum_buffer"}


def test_loading_casts_state_to_the_parameter_dtype():
    source = Tensor(np.ones(3), requires_grad=True)
    optimizer = Adam([source])
    source.grad = Tensor(np.ones(3))
    optimizer.step()
    target = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    loaded = Adam([target])
    loaded.load_state_dict(optimizer.state_dict())
    assert loaded.state[target]["exp_avg"].dtype == np.float32
    assert loaded.state[target]["step"] == 1


def _trained_adam():
    a, b = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(3), requires_grad=True)
    optimizer = Adam([{"params": [a]}, {"params": [b], "lr": 0.1}])
    a.grad, b.grad = Tensor(np.ones(2)), Tensor(np.ones(3))
    optimizer.step()
    return optimizer


def _mutated(change):
    saved = _trained_adam().state_dict()
    change(saved)
    return saved


@pytest.mark.parametrize(
    "bad_state_dict, message",
    [
        (_mutated(lambda s: s["param_groups"].pop()), "different number of parameter groups"),
        (_mutated(lambda s: s["param_groups"][1]["params"].append(2)), "doesn't match the size"),
        (_mutated(lambda s: s["state"][1].update(exp_avg=np.zeros(4))), r"shape \(4,\)"),
        (_mutated(lambda s: s["param_groups"][0].pop("eps")), r"lacks hyperparameters \['eps'\]"),
        (_mutated(lambda s: s["param_groups"][0].update(lr=-1.0)), "invalid lr"),
        (_mutated(lambda s: s["state"].update({7: {}})), "names no parameter"),
        ({"state": {}}, "keys 'state' and 'param_groups'"),
    ],
)
def test_a_mismatched_state_dict_is_refused_and_changes_nothing(bad_state_dict, message):
    optimizer = _trained_adam()
    before = copy.deepcopy(optimizer.state_dict())
    with pytest.raises(ValueError, match=message):
        optimizer.load_state_dict(bad_state_dict)
    assert_same_state_dict(optimizer.state_dict(), before)


# ---------------------------------------------------------------- gradient clipping
# Entries below 1e-100 are flushed to 0: squaring them underflows, and minift's plain
# sqrt(sum of squares) norm, unlike torch's scaled one, is not built for that range.
gradient_entries = small_floats.map(lambda x: 0.0 if abs(x) < 1e-100 else x)


@st.composite
def gradient_lists(draw):
    shapes = draw(st.lists(hnp.array_shapes(min_dims=0, max_dims=2, max_side=4), min_size=1, max_size=4))
    return [draw(hnp.arrays(np.float64, shape, elements=gradient_entries)) for shape in shapes]


def _params_with(grads):
    params = []
    for g in grads:
        param = Tensor(np.zeros_like(g), requires_grad=True)
        param.grad = Tensor(g.copy())
        params.append(param)
    return params


@SETTINGS
@given(gradient_lists(), st.floats(0, 20), st.sampled_from([1.0, 2.0, 3.0, float("inf")]))
def test_clip_grad_norm_scales_by_the_published_coefficient(grads, max_norm, norm_type):
    params = _params_with(grads) + [Tensor(np.ones(2), requires_grad=True)]  # one without grad
    total = clip_grad_norm_(params, max_norm, norm_type)
    flat = np.concatenate([g.ravel() for g in grads])
    expected_total = np.linalg.norm(flat, ord=norm_type)
    np.testing.assert_allclose(total.item(), expected_total, rtol=1e-12)
    coefficient = min(1.0, max_norm / (expected_total + 1e-6))
    for param, g in zip(params, grads):
        np.testing.assert_allclose(param.grad.data, g * coefficient, rtol=1e-12, atol=1e-300)
    clipped = np.linalg.norm(np.concatenate([p.grad.data.ravel() for p in params[:-1]]), ord=norm_type)
    assert clipped <= max_norm * (1 + 1e-9)
    assert params[-1].grad is None


@settings(max_examples=25, deadline=None)
@given(gradient_lists(), st.floats(0, 20), st.sampled_from([1.0, 2.0, float("inf")]))
def test_clip_grad_norm_matches_torch(grads, max_norm, norm_type):
    torch = pytest.importorskip("torch")
    params = _params_with(grads)
    torch_params = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for torch_param, g in zip(torch_params, grads):
        torch_param.grad = torch.tensor(g.copy())
    total = clip_grad_norm_(params, max_norm, norm_type)
    torch_total = torch.nn.utils.clip_grad_norm_(torch_params, max_norm, norm_type)
    np.testing.assert_allclose(total.item(), torch_total.item(), rtol=1e-12)
    for param, torch_param in zip(params, torch_params):
        np.testing.assert_allclose(param.grad.data, torch_param.grad.numpy(), rtol=1e-12, atol=1e-300)


def test_clip_grad_norm_edge_cases():
    assert clip_grad_norm_([Tensor(np.ones(2), requires_grad=True)], 1.0).item() == 0.0
    param = _params_with([np.array([np.inf, 1.0])])[0]
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(param, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(param.grad.data, [np.inf, 1.0])
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_(param, -1.0)
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm_(param, 1.0, norm_type=0)
    float32 = _params_with([np.array([3.0, 4.0], dtype=np.float32)])[0]
    assert clip_grad_norm_(float32, 1.0).item() == pytest.approx(5.0)
    assert float32.grad.dtype == np.float32


@SETTINGS
@given(gradient_lists(), st.floats(0, 6))
def test_clip_grad_value_clamps_every_entry(grads, clip_value):
    params = _params_with(grads)
    arrays = [p.grad.data for p in params]
    assert clip_grad_value_(params, clip_value) is None
    for param, array, g in zip(params, arrays, grads):
        assert param.grad.data is array
        np.testing.assert_array_equal(array, np.clip(g, -clip_value, clip_value))
    with pytest.raises(ValueError, match="clip_value"):
        clip_grad_value_(params, -1.0)


def test_clip_grad_value_matches_torch():
    torch = pytest.importorskip("torch")
    g = np.random.default_rng(3).standard_normal((4, 5)) * 3
    param = _params_with([g])[0]
    torch_param = torch.zeros((4, 5), dtype=torch.float64, requires_grad=True)
    torch_param.grad = torch.tensor(g.copy())
    clip_grad_value_([param], 1.5)
    torch.nn.utils.clip_grad_value_([torch_param], 1.5)
    np.testing.assert_array_equal(param.grad.data, torch_param.grad.numpy())
