"""Every layer of ``minift.nn`` against a NumPy formula written plainly here, its gradients by
``minift.gradcheck`` in float64, BatchNorm's two modes and running statistics, the
containers, and parity with PyTorch (weights copied through ``state_dict``) where torch
is installed.
"""

import math
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minift
from minift import nn

SEEDS = st.integers(0, 2**32 - 1)
F64 = "float64"


def rng_arrays(seed, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in shapes]


def leaf(array):
    return minift.Tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


def check_gradients(layer, *inputs):
    """gradcheck over the inputs and every parameter of a float64 layer (the first output if a tuple)."""
    def run(*args):
        out = layer(*args[:len(inputs)])
        return out[0] if isinstance(out, tuple) else out

    assert minift.gradcheck(run, [*inputs, *layer.parameters()])


# ---------------------------------------------------------------- NumPy formulas

def np_linear(x, weight, bias):
    return x @ weight.T + bias


def windows(x, kernel, stride, dilation, out_size):
    """Yield ``(i, j, patch)`` with ``patch (N, C, KH, KW)`` the window of output (i, j) of a padded x."""
    for i in range(out_size[0]):
        for j in range(out_size[1]):
            rows = slice(i * stride[0], i * stride[0] + dilation[0] * (kernel[0] - 1) + 1, dilation[0])
            cols = slice(j * stride[1], j * stride[1] + dilation[1] * (kernel[1] - 1) + 1, dilation[1])
            yield i, j, x[:, :, rows, cols]


def out_size(size, kernel, stride, padding, dilation):
    """(n + 2p - d(k - 1) - 1) // s + 1 along each axis."""
    return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in zip(size, kernel, stride, padding, dilation))


def pad(x, padding, value=0.0):
    return np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2), constant_values=value)


def np_conv2d(x, weight, bias, stride, padding, dilation):
    """y[n, o, i, j] = b[o] + sum over c, k, l of x_padded[n, c, i*s + k*d, j*s + l*d] * w[o, c, k, l]."""
    size = out_size(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    y = np.zeros((x.shape[0], weight.shape[0], *size))
    for i, j, patch in windows(pad(x, padding), weight.shape[2:], stride, dilation, size):
        y[:, :, i, j] = np.einsum("nckl,ockl->no", patch, weight)
    return y if bias is None else y + bias[None, :, None, None]


def np_max_pool2d(x, kernel, stride, padding, dilation):
    size = out_size(x.shape[2:], kernel, stride, padding, dilation)
    y = np.zeros(x.shape[:2] + size)
    for i, j, patch in windows(pad(x, padding, -np.inf), kernel, stride, dilation, size):
        y[:, :, i, j] = patch.max(axis=(2, 3))
    return y


def np_avg_pool2d(x, kernel, stride, padding):
    """The mean of each window, zero padding counted (PyTorch's count_include_pad=True)."""
    size = out_size(x.shape[2:], kernel, stride, padding, (1, 1))
    y = np.zeros(x.shape[:2] + size)
    for i, j, patch in windows(pad(x, padding), kernel, stride, (1, 1), size):
        y[:, :, i, j] = patch.sum(axis=(2, 3)) / (kernel[0] * kernel[1])
    return y


def np_adaptive_avg_pool2d(x, output_size):
    """Bin i of an axis of length n covers [floor(i n / out), ceil((i + 1) n / out))."""
    (h, w), (oh, ow) = x.shape[2:], output_size
    y = np.zeros(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            rows = slice(math.floor(i * h / oh), math.ceil((i + 1) * h / oh))
            cols = slice(math.floor(j * w / ow), math.ceil((j + 1) * w / ow))
            y[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
    return y


def np_batch_norm(x, mean, var, weight, bias, eps):
    """(x - mean) / sqrt(var + eps) * weight + bias, per channel (axis 1)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return y if weight is None else y * weight.reshape(shape) + bias.reshape(shape)


def batch_statistics(x):
    """Per-channel mean, biased variance (for normalising), unbiased variance (for the running average)."""
    axes = (0,) + tuple(range(2, x.ndim))
    n = x.size // x.shape[1]
    return x.mean(axis=axes), x.var(axis=axes), x.var(axis=axes) * n / (n - 1)


def np_layer_norm(x, k, weight, bias, eps):
    axes = tuple(range(x.ndim - k, x.ndim))
    y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    return y if weight is None else y * weight + bias


def np_gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def np_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ---------------------------------------------------------------- Linear, Identity, Flatten

@given(st.integers(1, 5), st.integers(1, 5), st.lists(st.integers(1, 3), max_size=2), st.booleans(), SEEDS)
def test_linear_is_x_times_weight_transposed_plus_bias(in_features, out_features, batch, bias, seed):
    layer = nn.Linear(in_features, out_features, bias=bias, dtype=F64)
    assert layer.weight.shape == (out_features, in_features)
    (x,) = rng_arrays(seed, (*batch, in_features))
    expected = np_linear(x, layer.weight.numpy(), layer.bias.numpy() if bias else 0)
    np.testing.assert_allclose(layer(minift.Tensor(x)).numpy(), expected, rtol=1e-12, atol=1e-12)
    check_gradients(layer, leaf(x))


def test_linear_names_the_expected_input_size():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\).*\(2, 4\)"):
        nn.Linear(3, 2)(minift.ones(2, 4))


@given(st.lists(st.integers(1, 3), min_size=1, max_size=5), st.data())
def test_flatten_merges_the_axes_from_start_to_end(shape, data):
    start = data.draw(st.integers(-len(shape), len(shape) - 1))
    end = data.draw(st.integers(start % len(shape) - len(shape), -1))
    first, last = start % len(shape), end % len(shape)
    x = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    expected = x.reshape(x.shape[:first] + (-1,) + x.shape[last + 1:])
    np.testing.assert_array_equal(nn.Flatten(start, end)(minift.Tensor(x)).numpy(), expected)


def test_identity_returns_its_input():
    x = minift.randn(2, 3)
    assert nn.Identity()(x) is x


# ---------------------------------------------------------------- Conv2d and pooling

@st.composite
def conv_geometry(draw):
    kernel = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    stride = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    padding = draw(st.tuples(st.integers(0, 2), st.integers(0, 2)))
    dilation = draw(st.tuples(st.integers(1, 2), st.integers(1, 2)))
    size = tuple(max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, 3)) for k, p, d in zip(kernel, padding, dilation))
    return kernel, stride, padding, dilation, size


@settings(max_examples=15)
@given(conv_geometry(), st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.booleans(), SEEDS)
def test_conv2d_is_the_sum_over_each_window(geometry, n, c_in, c_out, bias, seed):
    kernel, stride, padding, dilation, size = geometry
    layer = nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, bias=bias, dtype=F64)
    assert layer.weight.shape == (c_out, c_in, *kernel)
    (x,) = rng_arrays(seed, (n, c_in, *size))
    expected = np_conv2d(x, layer.weight.numpy(), layer.bias.numpy() if bias else None, stride, padding, dilation)
    np.testing.assert_allclose(layer(minift.Tensor(x)).numpy(), expected, rtol=1e-10, atol=1e-12)
    check_gradients(layer, leaf(x))


def every_window_reaches_the_input(kernel, stride, padding, dilation, size):
    """minift refuses a max-pool window that lies wholly on the padding (it has no maximum)."""
    starts = range(-padding, size + padding - dilation * (kernel - 1), stride)
    return all(any(0 <= start + t * dilation < size for t in range(kernel)) for start in starts)


@st.composite
def pool_geometry(draw, dilation=True):
    """PyTorch's rule: padding at most half the kernel."""
    kernel = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    stride = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilate = draw(st.tuples(st.integers(1, 2), st.integers(1, 2))) if dilation else (1, 1)
    size = tuple(max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, 3)) for k, p, d in zip(kernel, padding, dilate))
    assume(all(map(every_window_reaches_the_input, kernel, stride, padding, dilate, size)))
    return kernel, stride, padding, dilate, size


def distinct_values(seed, shape):
    """A permutation of evenly spaced values: no ties, so the maximum of a window is unique."""
    return np.random.default_rng(seed).permutation(math.prod(shape)).reshape(shape) / 7.0


@given(pool_geometry(), SEEDS)
def test_max_pool2d_takes_each_window_s_maximum(geometry, seed):
    kernel, stride, padding, dilation, size = geometry
    x = distinct_values(seed, (2, 2, *size))
    layer = nn.MaxPool2d(kernel, stride, padding, dilation)
    np.testing.assert_array_equal(layer(minift.Tensor(x)).numpy(), np_max_pool2d(x, kernel, stride, padding, dilation))
    check_gradients(layer, leaf(x))


@pytest.mark.parametrize("layer", [nn.MaxPool2d, nn.AvgPool2d])
def test_pool_layers_default_stride_to_the_kernel_but_refuse_stride_zero(layer):
    x = minift.Tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    assert layer(2)(x).shape == (1, 1, 2, 2)
    with pytest.raises(ValueError, match=r"stride must be >= 1 .*\(0, 0\)"):
        layer(2, stride=0)(x)


@given(pool_geometry(dilation=False), SEEDS)
def test_avg_pool2d_takes_each_window_s_mean_counting_padding(geometry, seed):
    kernel, stride, padding, _, size = geometry
    (x,) = rng_arrays(seed, (2, 2, *size))
    layer = nn.AvgPool2d(kernel, stride, padding)
    np.testing.assert_allclose(layer(minift.Tensor(x)).numpy(), np_avg_pool2d(x, kernel, stride, padding), rtol=1e-12, atol=1e-14)
    check_gradients(layer, leaf(x))


def test_pooling_stride_defaults_to_the_kernel_size():
    x = distinct_values(0, (1, 1, 6, 6))
    np.testing.assert_array_equal(nn.MaxPool2d(2)(minift.Tensor(x)).numpy(), np_max_pool2d(x, (2, 2), (2, 2), (0, 0), (1, 1)))
    np.testing.assert_allclose(nn.AvgPool2d(3)(minift.Tensor(x)).numpy(), np_avg_pool2d(x, (3, 3), (3, 3), (0, 0)))


@given(st.tuples(st.integers(1, 7), st.integers(1, 7)), st.tuples(st.integers(1, 4), st.integers(1, 4)), SEEDS)
def test_adaptive_avg_pool2d_averages_pytorch_s_bins(size, output_size, seed):
    (x,) = rng_arrays(seed, (2, 3, *size))
    layer = nn.AdaptiveAvgPool2d(output_size)
    np.testing.assert_allclose(layer(minift.Tensor(x)).numpy(), np_adaptive_avg_pool2d(x, output_size), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d(1)(minift.Tensor(x)).numpy(), x.mean(axis=(2, 3), keepdims=True))
    check_gradients(layer, leaf(x))


# ---------------------------------------------------------------- BatchNorm

BATCHNORM_SHAPES = st.one_of(
    st.tuples(st.just(nn.BatchNorm1d), st.tuples(st.integers(2, 5), st.integers(1, 3))),
    st.tuples(st.just(nn.BatchNorm1d), st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(2, 4))),
    st.tuples(st.just(nn.BatchNorm2d), st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(2, 3))),
)


def randomise_affine(layer, seed):
    """Weights away from 1 and biases away from 0, so a formula that forgets them fails."""
    rng = np.random.default_rng(seed)
    layer.weight.data[...] = rng.uniform(0.5, 2, layer.weight.shape)
    layer.bias.data[...] = rng.standard_normal(layer.bias.shape)


@given(BATCHNORM_SHAPES, st.floats(1e-5, 1.0), st.sampled_from([0.1, 0.5, 1.0, None]), st.integers(1, 4), SEEDS)
def test_batchnorm_training_uses_batch_statistics_and_moves_the_running_ones(kind, eps, momentum, steps, seed):
    layer_class, shape = kind
    layer = layer_class(shape[1], eps=eps, momentum=momentum, dtype=F64)
    randomise_affine(layer, seed)
    running_mean, running_var, batch_means, batch_vars = np.zeros(shape[1]), np.ones(shape[1]), [], []
    for step, x in enumerate(rng_arrays(seed, *[shape] * steps), start=1):
        y = layer(minift.Tensor(x * 3 + 1)).numpy()
        mean, var, unbiased = batch_statistics(x * 3 + 1)
        np.testing.assert_allclose(y, np_batch_norm(x * 3 + 1, mean, var, layer.weight.numpy(), layer.bias.numpy(), eps),
                                   rtol=1e-9, atol=1e-10)
        rate = 1 / step if momentum is None else momentum
        running_mean, running_var = (1 - rate) * running_mean + rate * mean, (1 - rate) * running_var + rate * unbiased
        batch_means.append(mean)
        batch_vars.append(unbiased)
    np.testing.assert_allclose(layer.running_mean.numpy(), running_mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.running_var.numpy(), running_var, rtol=1e-10)
    assert layer.num_batches_tracked.item() == steps
    if momentum is None:  # the cumulative average: the plain mean of the batches' statistics
        np.testing.assert_allclose(layer.running_mean.numpy(), np.mean(batch_means, axis=0), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(layer.running_var.numpy(), np.mean(batch_vars, axis=0), rtol=1e-9)


@given(BATCHNORM_SHAPES, st.floats(1e-5, 1.0), SEEDS)
def test_batchnorm_in_eval_uses_the_running_statistics_and_leaves_them_alone(kind, eps, seed):
    layer_class, shape = kind
    layer = layer_class(shape[1], eps=eps, dtype=F64)
    randomise_affine(layer, seed)
    rng = np.random.default_rng(seed)
    layer.running_mean.data[...] = rng.standard_normal(shape[1])
    layer.running_var.data[...] = rng.uniform(0.5, 2, shape[1])
    before = layer.state_dict()
    (x,) = rng_arrays(seed + 1, shape)
    y = layer.eval()(minift.Tensor(x)).numpy()
    np.testing.assert_allclose(y, np_batch_norm(x, before["running_mean"], before["running_var"], before["weight"],
                                                before["bias"], eps), rtol=1e-10, atol=1e-12)
    assert all(np.array_equal(before[k], v) for k, v in layer.state_dict().items())


@settings(max_examples=10)
@given(BATCHNORM_SHAPES, st.booleans(), st.booleans(), SEEDS)
def test_batchnorm_gradients_in_both_modes(kind, training, affine, seed):
    layer_class, shape = kind
    layer = layer_class(shape[1], affine=affine, dtype=F64).train(training)
    if affine:
        randomise_affine(layer, seed)
    (x,) = rng_arrays(seed, shape)
    check_gradients(layer, leaf(x))


@given(BATCHNORM_SHAPES, st.booleans(), SEEDS)
def test_batchnorm_without_running_statistics_always_uses_the_batch(kind, training, seed):
    layer_class, shape = kind
    layer = layer_class(shape[1], affine=False, track_running_stats=False, dtype=F64).train(training)
    assert layer.state_dict() == {} and list(layer.parameters()) == []
    (x,) = rng_arrays(seed, shape)
    mean, var, _ = batch_statistics(x)
    np.testing.assert_allclose(layer(minift.Tensor(x)).numpy(), np_batch_norm(x, mean, var, None, None, 1e-5),
                               rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("layer, shape", [
    (nn.BatchNorm1d(3), (4, 3, 2, 2)), (nn.BatchNorm1d(3), (4,)), (nn.BatchNorm1d(3), (4, 5)),
    (nn.BatchNorm2d(3), (4, 3, 2)), (nn.BatchNorm2d(3), (4, 2, 2, 2)),
], ids=str)
def test_batchnorm_names_the_input_it_expected(layer, shape):
    with pytest.raises(ValueError, match=r"3 channels on axis 1, got shape"):
        layer(minift.ones(*shape))
    assert layer.num_batches_tracked.item() == 0


# ---------------------------------------------------------------- LayerNorm

@given(st.lists(st.integers(1, 3), min_size=1, max_size=2), st.lists(st.integers(2, 4), min_size=1, max_size=2),
       st.floats(1e-5, 1.0), st.booleans(), SEEDS)
def test_layer_norm_normalises_each_sample_over_the_trailing_axes(batch, normalized, eps, affine, seed):
    layer = nn.LayerNorm(normalized if len(normalized) > 1 else normalized[0], eps=eps, elementwise_affine=affine, dtype=F64)
    assert layer.normalized_shape == tuple(normalized)
    x, weight, bias = rng_arrays(seed, (*batch, *normalized), normalized, normalized)
    if affine:
        layer.weight.data[...], layer.bias.data[...] = weight, bias
    expected = np_layer_norm(x, len(normalized), weight if affine else None, bias, eps)
    np.testing.assert_allclose(layer(minift.Tensor(x)).numpy(), expected, rtol=1e-9, atol=1e-10)
    check_gradients(layer, leaf(x))


# ---------------------------------------------------------------- Dropout

@given(st.floats(0.05, 0.95), SEEDS)
def test_dropout_zeroes_a_fraction_p_and_scales_the_rest(p, seed):
    minift.manual_seed(seed)
    layer = nn.Dropout(p)
    x = np.full((200, 100), 2.0)
    y = layer(minift.Tensor(x)).numpy()
    dropped = (y == 0).mean()
    assert abs(dropped - p) < 6 * math.sqrt(p * (1 - p) / x.size)
    np.testing.assert_allclose(y[y != 0], 2.0 / (1 - p))
    inputs = minift.Tensor(x)
    assert layer.eval()(inputs) is inputs


@given(st.floats(0.1, 0.9), SEEDS)
def test_dropout_gradient_is_the_same_mask_scaled(p, seed):
    layer = nn.Dropout(p)

    def with_fixed_mask(x):
        minift.manual_seed(seed)  # the same mask at every call, so central differences are valid
        return layer(x)

    (x,) = rng_arrays(seed, (3, 4))
    assert minift.gradcheck(with_fixed_mask, [leaf(x)])


def test_dropout_extremes_and_bad_probabilities():
    x = minift.randn(3, 4)
    assert nn.Dropout(0.0)(x) is x
    assert not nn.Dropout(1.0)(x).numpy().any()
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="probability"):
            nn.Dropout(p)


# ---------------------------------------------------------------- Embedding

@given(st.integers(2, 8), st.integers(1, 4), st.lists(st.integers(1, 3), max_size=2), st.data())
def test_embedding_looks_up_rows_and_scatters_gradients_back(rows, dim, index_shape, data):
    padding_idx = data.draw(st.one_of(st.none(), st.integers(-rows, rows - 1)))
    layer = nn.Embedding(rows, dim, padding_idx=padding_idx, dtype=F64)
    indices = np.asarray(data.draw(st.lists(st.integers(0, rows - 1), min_size=math.prod(index_shape),
                                            max_size=math.prod(index_shape)))).reshape(index_shape)
    y = layer(minift.Tensor(indices))
    np.testing.assert_array_equal(y.numpy(), layer.weight.numpy()[indices])
    g = np.random.default_rng(rows).standard_normal(y.shape)
    y.backward(g)
    expected = np.zeros((rows, dim))
    np.add.at(expected, indices.reshape(-1), g.reshape(-1, dim))  # a row used twice gets both gradients
    if padding_idx is not None:
        expected[padding_idx] = 0  # the padding row never learns
    np.testing.assert_allclose(layer.weight.grad.numpy(), expected, rtol=1e-12, atol=1e-14)


def test_embedding_gradcheck_away_from_the_padding_row():
    layer = nn.Embedding(5, 3, padding_idx=0, dtype=F64)
    indices = np.array([[1, 2, 2], [4, 3, 1]])
    assert minift.gradcheck(lambda weight: layer(indices), [layer.weight])


@pytest.mark.parametrize("indices, error", [(np.array([0, 5]), IndexError), (np.array([-1, 0]), IndexError),
                                            (np.array([0.0, 1.0]), TypeError)])
def test_embedding_refuses_bad_indices(indices, error):
    with pytest.raises(error):
        nn.Embedding(5, 2)(indices)


# ---------------------------------------------------------------- activations

AWAY_FROM_ZERO = st.floats(0.05, 4).flatmap(lambda v: st.sampled_from([v, -v]))


@given(st.lists(AWAY_FROM_ZERO, min_size=1, max_size=12), st.floats(0, 1), st.integers(-1, 1))
def test_activations_match_their_formulas_and_gradients(values, slope, dim):
    x = np.asarray(values).reshape(len(values), 1) if dim == 0 else np.asarray(values).reshape(1, len(values))
    formulas = [
        (nn.ReLU(), np.maximum(x, 0)),
        (nn.LeakyReLU(slope), np.where(x > 0, x, slope * x)),
        (nn.GELU(), np_gelu(x)),
        (nn.GELU("tanh"), np_gelu_tanh(x)),
        (nn.Tanh(), np.tanh(x)),
        (nn.Sigmoid(), 1 / (1 + np.exp(-x))),
        (nn.Softmax(dim), np_softmax(x, dim)),
    ]
    for layer, expected in formulas:
        np.testing.assert_allclose(layer(minift.Tensor(x)).numpy(), expected, rtol=1e-10, atol=1e-12, err_msg=repr(layer))
        check_gradients(layer, leaf(x))


def test_leaky_relu_default_slope_is_pytorch_s():
    np.testing.assert_allclose(nn.LeakyReLU()(minift.Tensor(np.array([-2.0]))).numpy(), [-0.02])


# ---------------------------------------------------------------- containers

def test_sequential_indexing_slicing_length_iteration():
    layers = [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)]
    model = nn.Sequential(*layers)
    assert len(model) == 3 and list(model) == layers
    assert model[0] is layers[0] and model[-1] is layers[2]
    body = model[:-1]
    assert isinstance(body, nn.Sequential) and list(body) == layers[:2]
    assert body[0].weight is layers[0].weight  # a slice shares the layers
    assert list(model[1:].state_dict()) == ["2.weight", "2.bias"]  # and keeps their names
    with pytest.raises(IndexError):
        model[3]
    x = minift.randn(5, 3)
    np.testing.assert_array_equal(model(x).numpy(), layers[2](layers[1](layers[0](x))).numpy())


def test_sequential_from_an_ordered_dict_keeps_names_and_setitem_replaces():
    model = nn.Sequential(OrderedDict(body=nn.Linear(3, 4), act=nn.ReLU(), head=nn.Linear(4, 2)))
    assert [name for name, _ in model.named_children()] == ["body", "act", "head"] and model.head is model[2]
    new_head = nn.Linear(4, 7)
    model[-1] = new_head
    assert model.head is new_head and model(minift.randn(2, 3)).shape == (2, 7)
    model.append(nn.Tanh())
    assert len(model) == 4 and isinstance(model[3], nn.Tanh)


def test_module_list_registers_indexes_and_slices():
    blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    blocks.append(nn.Linear(2, 1)).extend([nn.ReLU()])
    assert len(blocks) == 5 and isinstance(blocks[-1], nn.ReLU)
    assert [id(m) for m in blocks] == [id(blocks[i]) for i in range(5)]
    assert len(list(blocks.parameters())) == 8
    assert [id(m) for m in blocks[1:3]] == [id(blocks[1]), id(blocks[2])]


def test_module_dict_registers_by_name():
    heads = nn.ModuleDict({"source": nn.Linear(4, 10), "target": nn.Linear(4, 3)})
    heads["extra"] = nn.Linear(4, 1)
    assert list(heads) == list(heads.keys()) == ["source", "target", "extra"]
    assert "target" in heads and "other" not in heads and len(heads) == 3
    assert heads["target"].out_features == 3 and dict(heads.items())["extra"] is heads["extra"]
    assert list(heads.state_dict()) == [f"{n}.{p}" for n in ("source", "target", "extra") for p in ("weight", "bias")]


# ---------------------------------------------------------------- ResidualBlock

def np_residual_block(block, x):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), BatchNorm with batch statistics."""
    def conv(layer, x):
        return np_conv2d(x, layer.weight.numpy(), None, layer.stride, layer.padding, layer.dilation)

    def bn(layer, x):
        mean, var, _ = batch_statistics(x)
        return np_batch_norm(x, mean, var, layer.weight.numpy(), layer.bias.numpy(), layer.eps)

    y = np.maximum(bn(block.bn1, conv(block.conv1, x)), 0)
    y = bn(block.bn2, conv(block.conv2, y))
    shortcut = x if isinstance(block.shortcut, nn.Identity) else bn(block.shortcut[1], conv(block.shortcut[0], x))
    return np.maximum(y + shortcut, 0)


@pytest.mark.parametrize("in_channels, out_channels, stride", [(2, 2, 1), (2, 3, 1), (2, 2, 2)])
@settings(max_examples=2)
@given(SEEDS)
def test_residual_block_adds_the_shortcut_before_the_last_relu(in_channels, out_channels, stride, seed):
    minift.manual_seed(seed)
    block = nn.ResidualBlock(in_channels, out_channels, stride).double()
    for bn in (m for m in block.modules() if isinstance(m, nn.BatchNorm2d)):
        randomise_affine(bn, seed)
    assert isinstance(block.shortcut, nn.Identity) == (in_channels == out_channels and stride == 1)
    (x,) = rng_arrays(seed, (2, in_channels, 3, 3))
    np.testing.assert_allclose(block(minift.Tensor(x)).numpy(), np_residual_block(block, x), rtol=1e-9, atol=1e-10)
    check_gradients(block, leaf(x))


# ---------------------------------------------------------------- parity with PyTorch

def from_torch(torch_module, module):
    """Load a torch module's state into a minift one, strictly: the names must be PyTorch's."""
    assert list(module.state_dict()) == list(torch_module.state_dict())
    module.load_state_dict({key: value.detach().numpy() for key, value in torch_module.state_dict().items()})


def assert_same_as_torch(torch, torch_module, module, inputs, rtol=1e-9, atol=1e-10, **kwargs):
    """Run both modules on the same float64 inputs (integer inputs pass through) and keyword
    arguments, backpropagate the same random cotangent, and compare the outputs, the input
    gradients and every parameter's gradient (by PyTorch's names)."""
    theirs_in = [torch.tensor(x, requires_grad=x.dtype.kind == "f") for x in inputs]
    ours_in = [minift.Tensor(x, requires_grad=x.dtype.kind == "f") for x in inputs]
    theirs_kw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    as_tuple = lambda out: out if isinstance(out, tuple) else (out,)  # noqa: E731
    theirs, ours = as_tuple(torch_module(*theirs_in, **theirs_kw)), as_tuple(module(*ours_in, **kwargs))
    assert len(theirs) == len(ours)
    rng = np.random.default_rng(0)
    theirs_loss, ours_loss = 0, 0
    for t, o in zip(theirs, ours):
        assert (t is None) == (o is None)
        if t is not None:
            np.testing.assert_allclose(o.numpy(), t.detach().numpy(), rtol=rtol, atol=atol)
            cotangent = rng.standard_normal(o.shape)
            theirs_loss = theirs_loss + (t * torch.tensor(cotangent)).sum()
            ours_loss = ours_loss + (o * minift.Tensor(cotangent)).sum()
    theirs_loss.backward()
    ours_loss.backward()
    for t, o in zip(theirs_in, ours_in):
        if t.requires_grad:
            np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol)
    torch_params = dict(torch_module.named_parameters())
    assert [name for name, _ in module.named_parameters()] == list(torch_params)
    for name, param in module.named_parameters():
        np.testing.assert_allclose(param.grad.numpy(), torch_params[name].grad.numpy(), rtol=rtol, atol=atol, err_msg=name)
    module.zero_grad()
    torch_module.zero_grad()


@given(st.integers(1, 5), st.integers(1, 5), st.booleans(), SEEDS)
def test_linear_matches_torch(in_features, out_features, bias, seed):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Linear(in_features, out_features, bias=bias, dtype=torch.float64)
    ours = nn.Linear(in_features, out_features, bias=bias, dtype=F64)
    from_torch(theirs, ours)
    assert_same_as_torch(torch, theirs, ours, rng_arrays(seed, (2, 3, in_features)))


@settings(max_examples=15)
@given(conv_geometry(), st.integers(1, 3), st.integers(1, 3), st.booleans(), SEEDS)
def test_conv2d_matches_torch(geometry, c_in, c_out, bias, seed):
    torch = pytest.importorskip("torch")
    kernel, stride, padding, dilation, size = geometry
    theirs = torch.nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, bias=bias, dtype=torch.float64)
    ours = nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, bias=bias, dtype=F64)
    from_torch(theirs, ours)
    assert_same_as_torch(torch, theirs, ours, rng_arrays(seed, (2, c_in, *size)))


@given(pool_geometry(), SEEDS)
def test_pooling_matches_torch(geometry, seed):
    torch = pytest.importorskip("torch")
    kernel, stride, padding, dilation, size = geometry
    x = distinct_values(seed, (2, 2, *size))
    assert_same_as_torch(torch, torch.nn.MaxPool2d(kernel, stride, padding, dilation), nn.MaxPool2d(kernel, stride, padding, dilation), [x])
    assert_same_as_torch(torch, torch.nn.AvgPool2d(kernel, stride, padding), nn.AvgPool2d(kernel, stride, padding), [x])
    out = (max(1, size[0] - 1), size[1] + 1)
    assert_same_as_torch(torch, torch.nn.AdaptiveAvgPool2d(out), nn.AdaptiveAvgPool2d(out), [x])


@settings(max_examples=10)
@given(st.sampled_from([0.1, 0.7, None]), st.booleans(), st.integers(1, 3), SEEDS)
def test_batchnorm2d_matches_torch_in_training_and_eval(momentum, affine, steps, seed):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.BatchNorm2d(3, momentum=momentum, affine=affine, dtype=torch.float64)
    ours = nn.BatchNorm2d(3, momentum=momentum, affine=affine, dtype=F64)
    if affine:
        with torch.no_grad():
            theirs.weight.uniform_(0.5, 2)
            theirs.bias.normal_()
    from_torch(theirs, ours)
    for x in rng_arrays(seed, *[(2, 3, 3, 2)] * steps):
        assert_same_as_torch(torch, theirs, ours, [x * 2 + 1])
    for key, value in theirs.state_dict().items():  # running statistics and the batch count
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-12, err_msg=key)
    theirs.eval()
    assert_same_as_torch(torch, theirs, ours.eval(), rng_arrays(seed + 1, (2, 3, 3, 2)))


@given(st.lists(st.integers(2, 4), min_size=1, max_size=2), st.floats(1e-5, 0.1), SEEDS)
def test_layer_norm_matches_torch(normalized, eps, seed):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.LayerNorm(normalized, eps=eps, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.normal_()
        theirs.bias.normal_()
    ours = nn.LayerNorm(normalized, eps=eps, dtype=F64)
    from_torch(theirs, ours)
    assert_same_as_torch(torch, theirs, ours, rng_arrays(seed, (2, 3, *normalized)))


@given(st.integers(2, 8), st.integers(1, 4), st.one_of(st.none(), st.integers(-2, 1)), SEEDS)
def test_embedding_matches_torch(rows, dim, padding_idx, seed):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Embedding(rows, dim, padding_idx=padding_idx, dtype=torch.float64)
    ours = nn.Embedding(rows, dim, padding_idx=padding_idx, dtype=F64)
    from_torch(theirs, ours)
    indices = np.random.default_rng(seed).integers(0, rows, (3, 4))
    assert_same_as_torch(torch, theirs, ours, [indices])
