"""DataLoader: batching, shuffling, drop_last, determinism, collation and resuming."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minift
from minift.data import ArrayDataset, DataLoader, Subset, default_collate
from minift.data.transforms import Compose, RandomCrop, RandomHorizontalFlip

layouts = st.fixed_dictionaries({
    "n": st.integers(0, 60),
    "batch_size": st.integers(1, 16),
    "shuffle": st.booleans(),
    "drop_last": st.booleans(),
    "seed": st.integers(0, 2**32),
})


def index_loader(n, **options):
    """A loader whose samples are their own indices, so batches show the order."""
    return DataLoader(ArrayDataset(np.arange(n)), **options)


def epoch_batches(loader):
    return [labels.numpy() for (labels,) in loader]


@settings(max_examples=60)
@given(layouts)
def test_every_index_once_per_epoch_in_full_batches(layout):
    n = layout.pop("n")
    loader = index_loader(n, **layout)
    for _ in range(2):
        batches = epoch_batches(loader)
        assert len(batches) == len(loader)
        sizes = [len(b) for b in batches]
        assert all(size == layout["batch_size"] for size in sizes[:-1])
        seen = np.concatenate(batches) if batches else np.array([], dtype=np.int64)
        assert len(np.unique(seen)) == len(seen)
        if layout["drop_last"]:
            assert sizes == [layout["batch_size"]] * (n // layout["batch_size"])
        else:
            np.testing.assert_array_equal(np.sort(seen), np.arange(n))
        if not layout["shuffle"]:
            np.testing.assert_array_equal(seen, np.arange(len(seen)))


@settings(max_examples=40)
@given(layouts)
def test_same_seed_same_order(layout):
    n = layout.pop("n")
    first, second = index_loader(n, **layout), index_loader(n, **layout)
    for _ in range(3):
        for a, b in zip(epoch_batches(first), epoch_batches(second), strict=True):
            np.testing.assert_array_equal(a, b)


@settings(max_examples=30)
@given(st.integers(10, 60), st.integers(0, 2**32))
def test_each_epoch_is_a_new_permutation(n, seed):
    loader = index_loader(n, batch_size=n, shuffle=True, seed=seed)
    orders = [np.concatenate(epoch_batches(loader)) for _ in range(3)]
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[1], orders[2])


def test_seed_none_follows_manual_seed():
    minift.manual_seed(7)
    first = epoch_batches(index_loader(40, batch_size=40, shuffle=True))
    minift.manual_seed(7)
    second = epoch_batches(index_loader(40, batch_size=40, shuffle=True))
    np.testing.assert_array_equal(first[0], second[0])


def test_breaking_off_then_iterating_starts_a_new_epoch():
    loader = index_loader(20, batch_size=5, shuffle=True, seed=3)
    reference = index_loader(20, batch_size=5, shuffle=True, seed=3)
    next(iter(loader))  # a peek at epoch 0
    epoch_batches(reference)
    for a, b in zip(epoch_batches(loader), epoch_batches(reference), strict=True):
        np.testing.assert_array_equal(a, b)


def augmented_loader(seed):
    images = np.random.default_rng(0).random((23, 1, 6, 6)).astype(np.float32)
    dataset = ArrayDataset(images, np.arange(23))
    augment = Compose([RandomCrop(6, padding=2), RandomHorizontalFlip(0.5)])
    return DataLoader(dataset, batch_size=4, shuffle=True, seed=seed, transform=augment)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, 2), st.data())
def test_resume_mid_epoch_gives_the_identical_remaining_batches(seed, epoch, data):
    uninterrupted = augmented_loader(seed)
    for _ in range(epoch):
        list(uninterrupted)
    expected = list(uninterrupted) + list(uninterrupted) + list(uninterrupted)  # this epoch and two more

    killed = augmented_loader(seed)
    for _ in range(epoch):
        list(killed)
    stop = data.draw(st.integers(0, len(killed)), label="batches before the kill")
    batches = iter(killed)
    for _ in range(stop):
        next(batches)
    state = json.loads(json.dumps(killed.state_dict()))

    resumed = augmented_loader(seed + 1)  # a fresh process; the seed comes from the state
    resumed.load_state_dict(state)
    remaining = list(resumed) + list(resumed)  # the rest of the saved epoch, then the next
    assert len(remaining) == 2 * len(resumed) - stop % len(resumed)
    for got, want in zip(remaining, expected[stop:stop + len(remaining)], strict=True):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g.numpy(), w.numpy())


def test_state_dict_counts_batches_and_rolls_over():
    loader = index_loader(10, batch_size=4, shuffle=True, seed=1)
    assert loader.state_dict()["epoch"] == 0 and loader.state_dict()["position"] == 0
    positions = []
    for _ in loader:
        positions.append((loader.state_dict()["epoch"], loader.state_dict()["position"]))
    assert positions == [(0, 1), (0, 2), (1, 0)]


def test_a_state_from_another_layout_is_refused_and_changes_nothing():
    saved = index_loader(10, batch_size=4, shuffle=True, seed=1).state_dict()
    loader = index_loader(12, batch_size=4, shuffle=True, seed=2)
    before = loader.state_dict()
    with pytest.raises(ValueError, match="num_samples: saved 10, this loader 12"):
        loader.load_state_dict(saved)
    with pytest.raises(KeyError, match="position"):
        loader.load_state_dict({k: v for k, v in before.items() if k != "position"})
    with pytest.raises(ValueError, match="only 3 batches"):
        loader.load_state_dict({**before, "position": 4})
    assert loader.state_dict() == before


@settings(max_examples=30)
@given(st.integers(1, 40), st.integers(1, 9), st.integers(0, 2**32))
def test_fast_path_equals_item_by_item(n, batch_size, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.random((n, 1, 2, 2)), rng.integers(0, 3, n)
    fast = DataLoader(Subset(ArrayDataset(x, y), np.arange(n)), batch_size, shuffle=True, seed=seed)
    slow = DataLoader([(x[i], y[i]) for i in range(n)], batch_size, shuffle=True, seed=seed)
    custom = DataLoader(ArrayDataset(x, y), batch_size, shuffle=True, seed=seed, collate_fn=default_collate)
    for a, b, c in zip(fast, slow, custom, strict=True):
        for fa, fb, fc in zip(a, b, c, strict=True):
            np.testing.assert_array_equal(fa.numpy(), fb.numpy())
            np.testing.assert_array_equal(fa.numpy(), fc.numpy())


def test_batches_are_float32_images_and_int64_labels():
    images = np.random.default_rng(0).random((5, 1, 3, 3))  # float64, as x / 255.0 gives
    labels = np.array([0, 1, 2, 1, 0], dtype=np.uint8)
    x, y = next(iter(DataLoader(ArrayDataset(images, labels), batch_size=5)))
    assert isinstance(x, minift.Tensor) and isinstance(y, minift.Tensor)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.shape == (5, 1, 3, 3) and y.shape == (5,)
    np.testing.assert_allclose(x.numpy(), images, rtol=1e-6)


def test_bad_arguments_are_clear_errors():
    dataset = ArrayDataset(np.arange(4))
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        DataLoader(dataset, batch_size=0)
    with pytest.raises(ValueError, match="either collate_fn or transform"):
        DataLoader(dataset, collate_fn=default_collate, transform=RandomHorizontalFlip())
    with pytest.raises(TypeError, match="__len__ and __getitem__"):
        DataLoader(iter(range(3)))
    with pytest.raises(ValueError, match="seed"):
        DataLoader(dataset, seed=1.5)


def test_augmentation_differs_between_batches_and_epochs():
    images = np.tile(np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6), (64, 1, 1, 1))
    loader = DataLoader(ArrayDataset(images), batch_size=16, seed=0, transform=RandomCrop(6, padding=3))
    epochs = [[x.numpy() for (x,) in loader] for _ in range(2)]
    assert not np.array_equal(epochs[0][0], epochs[0][1])
    assert not np.array_equal(epochs[0][0], epochs[1][0])
