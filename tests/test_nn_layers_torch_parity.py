"""The activations, normalisations and loss modules of issue 14 against PyTorch: the same
outputs, input gradients, parameter gradients and state_dict keys."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minift
import minift.nn as nn

torch = pytest.importorskip("torch")

values = hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=4),
                    elements=st.floats(-30, 30))


def run_both(make, arrays, *constants):
    """Build the module ``make(library)`` in both libraries with torch's initial state, run it
    on ``arrays`` (float64, requiring grad), backpropagate the sum of the output times fixed
    weights; return ``(minift_module, torch_module, [(ours, theirs) for output and every grad])``."""
    theirs_module = make(torch.nn).double()
    ours_module = make(nn).double()
    ours_module.load_state_dict(theirs_module.state_dict())
    ours_in = [minift.tensor(a, requires_grad=True) for a in arrays]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    ours_out = ours_module(*ours_in, *[minift.tensor(c) for c in constants])
    theirs_out = theirs_module(*theirs_in, *[torch.tensor(c) for c in constants])
    upstream = np.cos(np.arange(max(ours_out.numel(), 1))).reshape(ours_out.shape)
    (ours_out * minift.tensor(upstream)).sum().backward()
    (theirs_out * torch.tensor(upstream)).sum().backward()
    pairs = [(ours_out.numpy(), theirs_out.detach().numpy())]
    pairs += [(o.grad.numpy(), t.grad.numpy()) for o, t in zip(ours_in, theirs_in)]
    pairs += [(p.grad.numpy(), q.grad.numpy()) for p, q in zip(ours_module.parameters(), theirs_module.parameters())]
    return ours_module, theirs_module, pairs


def assert_pairs_close(pairs):
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-12)  # torch: some constants in float32


ACTIVATIONS = {
    "ReLU6": lambda m: m.ReLU6(),
    "Hardsigmoid": lambda m: m.Hardsigmoid(),
    "Hardswish": lambda m: m.Hardswish(),
    "SiLU": lambda m: m.SiLU(),
    "Mish": lambda m: m.Mish(),
    "Softplus": lambda m: m.Softplus(),
    "Softplus beta=2 threshold=5": lambda m: m.Softplus(beta=2.0, threshold=5.0),
}


@pytest.mark.parametrize("make", ACTIVATIONS.values(), ids=ACTIVATIONS.keys())
@settings(max_examples=25, deadline=None)
@given(x=values)
def test_activations_match_torch(make, x):
    assert_pairs_close(run_both(make, [x])[2])


NORMS = {
    "GroupNorm(2, 4)": (lambda m: m.GroupNorm(2, 4), (3, 4, 5)),
    "GroupNorm(1, 3) no affine": (lambda m: m.GroupNorm(1, 3, eps=1e-3, affine=False), (2, 3, 2, 2)),
    "GroupNorm(6, 6)": (lambda m: m.GroupNorm(6, 6), (2, 6, 3)),
    "RMSNorm(5)": (lambda m: m.RMSNorm(5), (3, 5)),
    "RMSNorm((2, 3), eps=1e-3)": (lambda m: m.RMSNorm((2, 3), eps=1e-3), (4, 2, 3)),
    "RMSNorm(4) no affine": (lambda m: m.RMSNorm(4, elementwise_affine=False), (2, 4)),
}


@pytest.mark.parametrize("make, shape", NORMS.values(), ids=NORMS.keys())
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_norms_match_torch_with_trained_affine_parameters(make, shape, seed):
    rng = np.random.default_rng(seed)

    def make_trained(library):
        """torch's module with random affine parameters (run_both copies them into minift's)."""
        module = make(library)
        if library is torch.nn:
            with torch.no_grad():
                for param in module.parameters():
                    param.copy_(torch.tensor(rng.standard_normal(tuple(param.shape))))
        return module

    ours, theirs, pairs = run_both(make_trained, [rng.standard_normal(shape)])
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert_pairs_close(pairs)


LOSSES = {
    "CrossEntropyLoss()": lambda m, w: m.CrossEntropyLoss(),
    "CrossEntropyLoss(weight, smoothing)": lambda m, w: m.CrossEntropyLoss(weight=w(m), label_smoothing=0.2),
    "CrossEntropyLoss(ignore_index=1, sum)": lambda m, w: m.CrossEntropyLoss(ignore_index=1, reduction="sum"),
    "CrossEntropyLoss(weight, none)": lambda m, w: m.CrossEntropyLoss(w(m), reduction="none"),
    "NLLLoss()": lambda m, w: m.NLLLoss(),
    "NLLLoss(weight, ignore_index=0)": lambda m, w: m.NLLLoss(weight=w(m), ignore_index=0),
}


@pytest.mark.parametrize("make", LOSSES.values(), ids=LOSSES.keys())
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), spatial=st.sampled_from([(), (3,), (2, 2)]))
def test_class_losses_match_torch(make, seed, spatial):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((4, 3) + spatial)
    target = rng.integers(0, 3, (4,) + spatial)
    target.flat[0] = 2  # at least one row is kept whatever the ignore_index
    weight = rng.uniform(0.1, 2, 3)

    def make_with_weight(m):
        return make(m, lambda lib: minift.tensor(weight) if lib is nn else torch.tensor(weight))

    ours, theirs, pairs = run_both(make_with_weight, [logits], target)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert_pairs_close(pairs)


REGRESSION = {
    "MSELoss()": lambda m: m.MSELoss(),
    "MSELoss(sum)": lambda m: m.MSELoss(reduction="sum"),
    "L1Loss()": lambda m: m.L1Loss(),
    "L1Loss(none)": lambda m: m.L1Loss(reduction="none"),
    "SmoothL1Loss()": lambda m: m.SmoothL1Loss(),
    "SmoothL1Loss(beta=0.5, sum)": lambda m: m.SmoothL1Loss(reduction="sum", beta=0.5),
    "SmoothL1Loss(beta=0)": lambda m: m.SmoothL1Loss(beta=0.0),
}


@pytest.mark.parametrize("make", REGRESSION.values(), ids=REGRESSION.keys())
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_regression_losses_match_torch(make, seed):
    rng = np.random.default_rng(seed)
    assert_pairs_close(run_both(make, [rng.standard_normal((3, 4)) * 2, rng.standard_normal((3, 4))])[2])


def test_a_bad_reduction_is_refused_by_name():
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.MSELoss(reduction="avg")


def test_group_norm_refuses_channels_not_divisible_by_groups():
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match="divisible by num_groups, got shape \\(2, 6\\)"):
        nn.functional.group_norm(minift.zeros(2, 6), 4)
