"""``minift.nn.init`` and the layers' default initialisation, checked statistically.

Every sampler is compared with the distribution it promises by the Kolmogorov-Smirnov
distance (the largest gap between the empirical and the exact CDF), against the bound
that a correct sampler exceeds with probability 1e-7; uniform samplers must also fill
their range; normal ones must have the promised standard deviation within 8% (several
standard errors at these sample sizes). Seeds come from ``minift.manual_seed``, so a
failure replays exactly.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minift
from minift import nn
from minift.nn import init

ALPHA = 1e-7
SEEDS = st.integers(0, 2**32 - 1)
_erf = np.vectorize(math.erf)


def normal_cdf(x, mean=0.0, std=1.0):
    return 0.5 * (1 + _erf((np.asarray(x) - mean) / (std * math.sqrt(2))))


def uniform_cdf(a, b):
    return lambda x: np.clip((np.asarray(x) - a) / (b - a), 0, 1)


def ks_distance(samples, cdf) -> float:
    """sup |F_n(x) - F(x)| for the empirical CDF F_n of ``samples``."""
    x = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    n = x.size
    exact = cdf(x)
    return max(float((np.arange(1, n + 1) / n - exact).max()), float((exact - np.arange(n) / n).max()))


def ks_bound(n: int, m: int = None) -> float:
    """The distance a correct sampler exceeds with probability ALPHA (two-sample form if m)."""
    size = n if m is None else n * m / (n + m)
    return math.sqrt(-math.log(ALPHA / 2) / (2 * size))


def assert_uniform(samples, bound):
    samples = np.asarray(samples, dtype=np.float64)
    assert np.abs(samples).max() <= bound * (1 + 1e-6)
    assert np.abs(samples).max() >= bound * 0.95  # fills its range (P(miss) < 0.95**n)
    assert ks_distance(samples, uniform_cdf(-bound, bound)) < ks_bound(samples.size)


def assert_normal(samples, mean, std):
    samples = np.asarray(samples, dtype=np.float64)
    assert abs(samples.std() / std - 1) < 0.08
    assert ks_distance(samples, lambda x: normal_cdf(x, mean, std)) < ks_bound(samples.size)


# Weight shapes (out, in, *kernel) with at least 4096 entries and rarely square.
WEIGHT_SHAPES = st.tuples(st.integers(64, 128), st.integers(64, 128), st.sampled_from([(), (1, 1), (3, 3), (2, 5)])).map(
    lambda t: (t[0], t[1], *t[2]))


def fans(shape):
    """fan_in, fan_out of a weight ``(out, in, *kernel)``, written out."""
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def empty(shape, dtype="float32"):
    return minift.zeros(*shape, dtype=dtype)


# ---------------------------------------------------------------- gains and fans

@given(st.floats(0, 3))
def test_calculate_gain_follows_pytorch_table(slope):
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("selu") == pytest.approx(3 / 4)
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", slope) == pytest.approx(math.sqrt(2 / (1 + slope**2)))
    for name in ("linear", "sigmoid", "conv2d", "identity"):
        assert init.calculate_gain(name) == 1
    with pytest.raises(ValueError, match="swish"):
        init.calculate_gain("swish")


@pytest.mark.parametrize("call", [init.kaiming_uniform_, init.kaiming_normal_, init.xavier_uniform_, init.xavier_normal_])
def test_fan_based_inits_need_two_dimensions_and_change_nothing_otherwise(call):
    bias = minift.ones(5)
    with pytest.raises(ValueError, match="2 dimensions"):
        call(bias)
    assert (bias.numpy() == 1).all()


def test_kaiming_refuses_an_unknown_mode():
    weight = minift.ones(3, 4)
    with pytest.raises(ValueError, match="fan_avg"):
        init.kaiming_normal_(weight, mode="fan_avg")
    assert (weight.numpy() == 1).all()


# ---------------------------------------------------------------- samplers

@given(WEIGHT_SHAPES, st.sampled_from(["fan_in", "fan_out"]), st.sampled_from(["relu", "leaky_relu", "tanh"]),
       st.floats(0, 1), SEEDS)
def test_kaiming_normal_std_is_gain_over_sqrt_fan(shape, mode, nonlinearity, a, seed):
    minift.manual_seed(seed)
    weight = init.kaiming_normal_(empty(shape), a=a, mode=mode, nonlinearity=nonlinearity)
    fan = dict(zip(("fan_in", "fan_out"), fans(shape)))[mode]
    assert_normal(weight.numpy(), 0.0, init.calculate_gain(nonlinearity, a) / math.sqrt(fan))


@given(WEIGHT_SHAPES, st.sampled_from(["fan_in", "fan_out"]), st.floats(0, 3), SEEDS)
def test_kaiming_uniform_bound_is_gain_times_sqrt_3_over_fan(shape, mode, a, seed):
    minift.manual_seed(seed)
    weight = init.kaiming_uniform_(empty(shape), a=a, mode=mode)
    fan = dict(zip(("fan_in", "fan_out"), fans(shape)))[mode]
    assert_uniform(weight.numpy(), math.sqrt(2 / (1 + a**2)) * math.sqrt(3 / fan))


@given(WEIGHT_SHAPES, st.floats(0.1, 3), SEEDS)
def test_xavier_uniform_and_normal_balance_fan_in_and_fan_out(shape, gain, seed):
    minift.manual_seed(seed)
    fan_in, fan_out = fans(shape)
    assert_uniform(init.xavier_uniform_(empty(shape), gain=gain).numpy(), gain * math.sqrt(6 / (fan_in + fan_out)))
    assert_normal(init.xavier_normal_(empty(shape), gain=gain).numpy(), 0.0, gain * math.sqrt(2 / (fan_in + fan_out)))


@given(st.floats(-5, 5), st.floats(0.01, 5), st.floats(-5, 5), st.floats(0.01, 5), SEEDS)
def test_normal_and_uniform_draw_what_they_are_asked(mean, std, low, width, seed):
    minift.manual_seed(seed)
    samples = init.normal_(empty((100, 50)), mean, std).numpy()
    assert_normal(samples - mean, 0.0, std)
    assert abs(samples.mean() - mean) < 6 * std / math.sqrt(samples.size)
    uniform = init.uniform_(empty((100, 50), "float64"), low, low + width).numpy()
    assert ks_distance(uniform, uniform_cdf(low, low + width)) < ks_bound(uniform.size)
    assert low <= uniform.min() and uniform.max() <= low + width


@given(st.floats(-2, 2), st.floats(0.1, 3), st.floats(-2.5, 2.5), st.floats(0.3, 3), SEEDS)
def test_trunc_normal_is_the_normal_restricted_to_its_absolute_bounds(mean, std, lower_z, width_z, seed):
    a, b = mean + lower_z * std, mean + (lower_z + width_z) * std
    minift.manual_seed(seed)
    samples = init.trunc_normal_(empty((80, 60), "float64"), mean, std, a, b).numpy()
    assert a <= samples.min() and samples.max() <= b
    low, high = normal_cdf(a, mean, std), normal_cdf(b, mean, std)
    truncated_cdf = lambda x: np.clip((normal_cdf(x, mean, std) - low) / (high - low), 0, 1)  # noqa: E731
    assert ks_distance(samples, truncated_cdf) < ks_bound(samples.size)


@given(st.floats(-10, 10), st.sampled_from(["float32", "float64"]))
def test_constant_inits_fill_in_place_keeping_dtype(value, dtype):
    tensor = minift.randn(3, 4, dtype=dtype)
    data = tensor.data
    assert init.constant_(tensor, value) is tensor and tensor.data is data and tensor.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(tensor.numpy(), np.full((3, 4), value, dtype=dtype))
    assert not init.zeros_(tensor).numpy().any()
    assert (init.ones_(tensor).numpy() == 1).all()


# ---------------------------------------------------------------- the layers' defaults (PyTorch's)

@given(st.integers(64, 300), st.integers(64, 128), SEEDS)
def test_linear_default_is_uniform_within_one_over_sqrt_fan_in(in_features, out_features, seed):
    minift.manual_seed(seed)
    layer = nn.Linear(in_features, out_features)
    bound = 1 / math.sqrt(in_features)
    assert_uniform(layer.weight.numpy(), bound)
    assert np.abs(layer.bias.numpy()).max() <= bound
    assert ks_distance(layer.bias.numpy(), uniform_cdf(-bound, bound)) < ks_bound(out_features)


@given(st.integers(4, 16), st.integers(32, 64), st.integers(1, 5), st.integers(1, 5), SEEDS)
def test_conv2d_default_is_uniform_within_one_over_sqrt_fan_in(in_channels, out_channels, kh, kw, seed):
    minift.manual_seed(seed)
    layer = nn.Conv2d(in_channels, out_channels, (kh, kw))
    bound = 1 / math.sqrt(in_channels * kh * kw)
    if layer.weight.numel() >= 1000:
        assert_uniform(layer.weight.numpy(), bound)
    assert np.abs(layer.weight.numpy()).max() <= bound and np.abs(layer.bias.numpy()).max() <= bound


@given(st.integers(100, 300), st.integers(20, 40), st.one_of(st.none(), st.integers(-100, 99)), SEEDS)
def test_embedding_default_is_standard_normal_with_a_zero_padding_row(rows, dim, padding_idx, seed):
    minift.manual_seed(seed)
    weight = nn.Embedding(rows, dim, padding_idx=padding_idx).weight.numpy()
    others = np.delete(weight, [] if padding_idx is None else [padding_idx], axis=0)
    assert_normal(others, 0.0, 1.0)
    if padding_idx is not None:
        assert not weight[padding_idx].any()


@pytest.mark.parametrize("layer", [nn.LayerNorm(7), nn.BatchNorm1d(7), nn.BatchNorm2d(7)], ids=repr)
def test_normalisation_layers_start_as_the_identity_map(layer):
    assert (layer.weight.numpy() == 1).all() and not layer.bias.numpy().any()
    if isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d):
        assert not layer.running_mean.numpy().any() and (layer.running_var.numpy() == 1).all()
        assert layer.num_batches_tracked.item() == 0


@given(st.sampled_from([(32, 1), (64, 4), (96, 8)]), SEEDS)
def test_multihead_attention_default_is_xavier_in_projection_and_zero_biases(sizes, seed):
    embed_dim, heads = sizes
    minift.manual_seed(seed)
    attention = nn.MultiheadAttention(embed_dim, heads)
    assert_uniform(attention.in_proj_weight.numpy(), math.sqrt(6 / (embed_dim + 3 * embed_dim)))
    assert_uniform(attention.out_proj.weight.numpy(), 1 / math.sqrt(embed_dim))
    assert not attention.in_proj_bias.numpy().any() and not attention.out_proj.bias.numpy().any()


def build_every_layer():
    return nn.ModuleList([
        nn.Linear(5, 3), nn.Conv2d(2, 3, 3), nn.Embedding(6, 4, padding_idx=0), nn.LayerNorm(4),
        nn.BatchNorm2d(3), nn.MultiheadAttention(4, 2), nn.TransformerEncoderLayer(4, 2, dim_feedforward=8),
    ])


@given(SEEDS, SEEDS)
def test_the_same_seed_gives_the_same_weights(seed, other):
    minift.manual_seed(seed)
    first = build_every_layer().state_dict()
    minift.manual_seed(seed)
    again = build_every_layer().state_dict()
    minift.manual_seed(other)
    different = build_every_layer().state_dict()
    assert all(np.array_equal(first[key], again[key]) for key in first)
    assert (seed == other) == all(np.array_equal(first[key], different[key]) for key in first)


# ---------------------------------------------------------------- the same distributions as torch

def torch_layers(torch):
    """Pairs of (torch weight, minift weight) that should be identically distributed."""
    t_linear, m_linear = torch.nn.Linear(150, 120), nn.Linear(150, 120)
    t_conv, m_conv = torch.nn.Conv2d(12, 40, (3, 4)), nn.Conv2d(12, 40, (3, 4))
    t_embed, m_embed = torch.nn.Embedding(200, 30), nn.Embedding(200, 30)
    t_mha, m_mha = torch.nn.MultiheadAttention(48, 4), nn.MultiheadAttention(48, 4)
    return {
        "Linear.weight": (t_linear.weight, m_linear.weight), "Conv2d.weight": (t_conv.weight, m_conv.weight),
        "Embedding.weight": (t_embed.weight, m_embed.weight),
        "MultiheadAttention.in_proj_weight": (t_mha.in_proj_weight, m_mha.in_proj_weight),
        "MultiheadAttention.out_proj.weight": (t_mha.out_proj.weight, m_mha.out_proj.weight),
    }


def test_default_weights_are_distributed_as_torch_s():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    minift.manual_seed(0)
    for name, (theirs, ours) in torch_layers(torch).items():
        theirs, ours = np.sort(theirs.detach().numpy().ravel()), np.sort(ours.numpy().ravel())
        # two-sample KS: the largest gap between the two empirical CDFs
        grid = np.concatenate([theirs, ours])
        gap = np.abs(np.searchsorted(theirs, grid, "right") / theirs.size - np.searchsorted(ours, grid, "right") / ours.size)
        assert gap.max() < ks_bound(theirs.size, ours.size), name
        assert abs(np.abs(ours).max() / np.abs(theirs).max() - 1) < 0.5, name
