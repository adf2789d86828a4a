"""Batch transforms: shapes, reproducibility, the flip involution, crops, resizing."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minift.data.transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip, resize_bilinear

batch_shapes = st.tuples(st.integers(1, 6), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9))


def random_batch(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).random(shape).astype(dtype)


def gen(seed):
    return np.random.default_rng(seed)


@settings(max_examples=40)
@given(batch_shapes, st.floats(0, 1), st.integers(0, 2**32))
def test_flip_is_an_involution_and_flips_only_whole_images(shape, p, seed):
    x = random_batch(shape, seed)
    flip = RandomHorizontalFlip(p)
    once = flip(x, generator=gen(seed))
    assert once.shape == x.shape
    np.testing.assert_array_equal(flip(once, generator=gen(seed)), x)
    for image, result in zip(x, once):
        assert np.array_equal(result, image) or np.array_equal(result, image[:, :, ::-1])


def test_flip_probability_extremes():
    x = random_batch((4, 2, 3, 5))
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(x, generator=gen(0)), x)
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(x, generator=gen(0)), x[..., ::-1])


@settings(max_examples=40)
@given(batch_shapes, st.integers(0, 3), st.integers(0, 2**32))
def test_crop_with_padding_keeps_shape_and_cuts_a_window(shape, padding, seed):
    x = random_batch(shape, seed)
    height, width = shape[2:]
    out = RandomCrop((height, width), padding=padding)(x, generator=gen(seed))
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    for n in range(len(x)):
        windows = [padded[n, :, top:top + height, left:left + width]
                   for top in range(2 * padding + 1) for left in range(2 * padding + 1)]
        assert any(np.array_equal(out[n], window) for window in windows)


@settings(max_examples=30)
@given(batch_shapes, st.data())
def test_crop_smaller_than_the_image(shape, data):
    height = data.draw(st.integers(1, shape[2]))
    width = data.draw(st.integers(1, shape[3]))
    out = RandomCrop((height, width))(random_batch(shape), generator=gen(1))
    assert out.shape == (*shape[:2], height, width)


def test_crop_without_room_is_identity_and_too_big_is_an_error():
    x = random_batch((3, 1, 5, 5))
    np.testing.assert_array_equal(RandomCrop(5)(x, generator=gen(0)), x)
    with pytest.raises(ValueError, match="larger than the padded image"):
        RandomCrop(8, padding=1)(x, generator=gen(0))


@settings(max_examples=30)
@given(batch_shapes, st.integers(0, 2**32))
def test_same_generator_same_augmentation_and_inputs_untouched(shape, seed):
    x = random_batch(shape, seed)
    copy = x.copy()
    augment = Compose([RandomCrop(shape[2:], padding=2), RandomHorizontalFlip()])
    np.testing.assert_array_equal(augment(x, generator=gen(seed)), augment(x, generator=gen(seed)))
    np.testing.assert_array_equal(x, copy)


def test_compose_applies_in_order_with_one_generator():
    x = random_batch((5, 1, 6, 6))
    crop, flip = RandomCrop(6, padding=1), RandomHorizontalFlip()
    shared = gen(4)
    expected = flip(crop(x, generator=shared), generator=shared)
    np.testing.assert_array_equal(Compose([crop, flip])(x, generator=gen(4)), expected)


@settings(max_examples=40)
@given(batch_shapes, st.data())
def test_normalize_standardises_each_channel(shape, data):
    x = random_batch(shape, dtype=np.float64)
    channels = shape[1]
    mean = data.draw(st.lists(st.floats(-2, 2), min_size=channels, max_size=channels))
    std = data.draw(st.lists(st.floats(0.1, 3), min_size=channels, max_size=channels))
    out = Normalize(mean, std)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    for c in range(channels):
        np.testing.assert_allclose(out[:, c] * std[c] + mean[c], x[:, c], atol=1e-12)


def test_normalize_errors():
    with pytest.raises(ValueError, match="std must be positive"):
        Normalize(0.5, 0.0)
    with pytest.raises(ValueError, match="2 values but the images have 3 channels"):
        Normalize([0.1, 0.2], [1.0, 1.0])(random_batch((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\)"):
        Normalize(0.5, 0.5)(random_batch((3, 4, 4)))


@settings(max_examples=40)
@given(batch_shapes, st.integers(1, 12), st.integers(1, 12))
def test_resize_keeps_constants_and_range(shape, height, width):
    x = random_batch(shape)
    out = resize_bilinear(x, (height, width))
    assert out.shape == (*shape[:2], height, width) and out.dtype == x.dtype
    assert out.min() >= x.min() and out.max() <= x.max()
    constant = np.full(shape, 0.7, dtype=np.float64)
    np.testing.assert_allclose(resize_bilinear(constant, (height, width)), 0.7, rtol=1e-12)


@settings(max_examples=20)
@given(batch_shapes)
def test_resize_to_the_same_size_is_identity(shape):
    x = random_batch(shape)
    np.testing.assert_array_equal(resize_bilinear(x, shape[2:]), x)


@settings(max_examples=30, deadline=None)
@given(batch_shapes, st.integers(1, 30), st.integers(1, 30))
def test_resize_matches_pytorch_interpolate(shape, height, width):
    torch = pytest.importorskip("torch")
    x = random_batch(shape, dtype=np.float64)
    expected = torch.nn.functional.interpolate(torch.from_numpy(x), size=(height, width),
                                               mode="bilinear", align_corners=False).numpy()
    np.testing.assert_allclose(resize_bilinear(x, (height, width)), expected, atol=1e-12)
