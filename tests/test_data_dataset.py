"""Datasets, subsets, random_split, take_per_class and select_classes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minift.data import (
    ArrayDataset,
    Dataset,
    Subset,
    random_split,
    select_classes,
    stack_samples,
    take_per_class,
)


def make_arrays(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 3, 3)).astype(np.float32), rng.integers(0, 5, size=n)


class SquaresDataset(Dataset):
    """A dataset with no arrays behind it: sample i is (i*i as a vector, i)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        return np.full(2, index * index, dtype=np.float64), index


def assert_fields_equal(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)


@settings(max_examples=40)
@given(st.integers(1, 30), st.data())
def test_array_dataset_rows_and_batches(n, data):
    x, y = make_arrays(n)
    dataset = ArrayDataset(x, y)
    assert len(dataset) == n
    indices = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=12)))
    batch = dataset.get_batch(indices)
    assert_fields_equal(batch, (x[indices], y[indices]))
    assert_fields_equal(batch, stack_samples(dataset[int(i)] for i in indices))


@settings(max_examples=40)
@given(st.integers(1, 30), st.data())
def test_subset_maps_indices_through(n, data):
    x, y = make_arrays(n)
    indices = np.array(data.draw(st.lists(st.integers(0, n - 1), max_size=20)), dtype=np.int64)
    for parent in (ArrayDataset(x, y), SquaresDataset(n), [(x[i], y[i]) for i in range(n)]):
        subset = Subset(parent, indices)
        assert len(subset) == len(indices)
        for i, j in enumerate(indices):
            assert_fields_equal(subset[i], parent[j])
        if len(indices):
            picks = np.arange(len(indices))[::-1]
            assert_fields_equal(subset.get_batch(picks), stack_samples(parent[int(indices[p])] for p in picks))


def test_generic_get_batch_stacks_items():
    batch = SquaresDataset(6).get_batch(np.array([4, 1]))
    assert_fields_equal(batch, (np.array([[16.0, 16.0], [1.0, 1.0]]), np.array([4, 1])))


def test_bad_construction_is_a_clear_error():
    with pytest.raises(ValueError, match="at least one array"):
        ArrayDataset()
    with pytest.raises(ValueError, match="same first dimension"):
        ArrayDataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(IndexError, match=r"\[0, 3\)"):
        Subset(ArrayDataset(np.zeros(3)), [0, 3])
    with pytest.raises(TypeError, match="1-D array of ints"):
        Subset(ArrayDataset(np.zeros(3)), [0.5])
    with pytest.raises(TypeError, match="tuple of fields"):
        stack_samples([np.zeros(2), np.zeros(2)])
    with pytest.raises(ValueError, match="same number of fields"):
        stack_samples([(1, 2), (1,)])


@settings(max_examples=40)
@given(st.lists(st.integers(0, 12), min_size=1, max_size=5), st.integers(0, 2**32))
def test_random_split_partitions_the_dataset(lengths, seed):
    dataset = ArrayDataset(np.arange(sum(lengths)))
    parts = random_split(dataset, lengths, seed=seed)
    assert [len(p) for p in parts] == lengths
    every = np.concatenate([p.indices for p in parts])
    np.testing.assert_array_equal(np.sort(every), np.arange(sum(lengths)))
    again = random_split(dataset, lengths, seed=seed)
    for a, b in zip(parts, again):
        np.testing.assert_array_equal(a.indices, b.indices)


@settings(max_examples=40)
@given(st.integers(0, 100), st.lists(st.integers(1, 10), min_size=1, max_size=4))
def test_random_split_fractions_cover_everything(n, weights):
    fractions = [w / sum(weights) for w in weights]
    parts = random_split(ArrayDataset(np.arange(n)), fractions, seed=0)
    sizes = [len(p) for p in parts]
    assert sum(sizes) == n
    for size, fraction in zip(sizes, fractions):
        assert abs(size - n * fraction) < 1 + 1e-9 * n


def test_random_split_rejects_bad_lengths():
    with pytest.raises(ValueError, match="sum to the dataset size 5"):
        random_split(ArrayDataset(np.arange(5)), [2, 2], seed=0)
    with pytest.raises(ValueError, match="fractions"):
        random_split(ArrayDataset(np.arange(5)), [0.5, 0.6], seed=0)
    with pytest.raises(ValueError, match="seed"):
        random_split(ArrayDataset(np.arange(5)), [5], seed=-1)


@settings(max_examples=40)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=80), st.integers(1, 4), st.integers(0, 2**32))
def test_take_per_class_takes_k_of_every_class(labels, k, seed):
    labels = np.array(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < k:
        with pytest.raises(ValueError, match="fewer samples"):
            take_per_class(labels, k, seed)
        return
    chosen = take_per_class(labels, k, seed)
    assert len(np.unique(chosen)) == len(chosen) == k * len(classes)
    assert np.all(np.diff(chosen) > 0)
    np.testing.assert_array_equal(np.unique(labels[chosen], return_counts=True)[1], np.full(len(classes), k))
    np.testing.assert_array_equal(chosen, take_per_class(labels, k, seed))


def test_take_per_class_names_the_short_class():
    with pytest.raises(ValueError, match=r"\{7: 1\}"):
        take_per_class(np.array([0, 0, 7]), 2, seed=0)
    with pytest.raises(TypeError, match="1-D array of ints"):
        take_per_class(np.array([0.0, 1.0]), 1, seed=0)


ends = st.one_of(st.none(), st.integers(-8, 8))


@st.composite
def class_selections(draw):
    """(x, y, classes, rows): x holds each row's own index, classes a shuffled subset of y's labels."""
    y = np.array(draw(st.lists(st.integers(0, 6), min_size=1, max_size=60)))
    x = np.arange(len(y))[:, None] * np.ones(2, dtype=np.int64)  # (N, 2): row i is (i, i)
    classes = draw(st.lists(st.sampled_from(sorted(set(y.tolist()))), min_size=1, max_size=7, unique=True))
    rows = slice(draw(ends), draw(ends), draw(st.sampled_from([None, 1, 2, 3])))
    return x, y, classes, rows


@settings(max_examples=60)
@given(class_selections())
def test_select_classes_keeps_the_rows_of_each_class_in_order_and_relabels_them(selection):
    x, y, classes, rows = selection
    x_subset, y_subset = select_classes(x, y, classes, rows)
    kept = x_subset[:, 0]  # the original row index of each kept row
    assert y_subset.dtype == np.int64 and len(x_subset) == len(y_subset)
    assert np.all((0 <= y_subset) & (y_subset < len(classes)))
    np.testing.assert_array_equal(y[kept], np.array(classes)[y_subset])  # every kept row has its class
    assert np.all(np.diff(y_subset) >= 0)  # the classes come in the order of `classes`
    for j, c in enumerate(classes):
        occurrences = np.flatnonzero(y == c)
        mine = kept[y_subset == j]
        assert len(mine) == len(range(len(occurrences))[rows])  # min(len(rows), occurrences) for a plain slice
        np.testing.assert_array_equal(mine, occurrences[rows])  # the slice of the class's rows, in order


def test_select_classes_takes_the_first_and_last_rows_of_each_class():
    y = np.array([5, 7, 5, 5, 7, 5])
    x = np.arange(6) * 10
    np.testing.assert_array_equal(select_classes(x, y, [7, 5], slice(0, 2))[0], [10, 40, 0, 20])
    np.testing.assert_array_equal(select_classes(x, y, [7, 5], slice(-1, None))[0], [40, 50])
    np.testing.assert_array_equal(select_classes(x, y, [7, 5], slice(0, 2))[1], [0, 0, 1, 1])


LABELS = [0, 1, 0, 1]


@pytest.mark.parametrize("x, y, classes, rows, error, words", [
    (np.zeros(4), LABELS, [2], slice(None), ValueError, "classes [2] do not occur in y, whose labels are [0, 1]"),
    (np.zeros(4), LABELS, [1, 0, 1], slice(None), ValueError, "[1, 0, 1] with [1] repeated"),
    (np.zeros(3), LABELS, [0], slice(None), ValueError, "x of shape (3,) and 4 labels"),
    (np.zeros(4), [0.0, 1.0, 0.0, 1.0], [0], slice(None), TypeError,
     "y must be a 1-D array of ints, got dtype float64"),
    (np.zeros(4), LABELS, [], slice(None), TypeError, "classes must be a non-empty list of int labels, got []"),
    (np.zeros(4), LABELS, 0, slice(None), TypeError, "classes must be a non-empty list of int labels, got 0"),
    (np.zeros(4), LABELS, [0], 2, TypeError, "rows must be a slice of each class's rows"),
])
def test_select_classes_names_what_is_wrong_and_changes_nothing(x, y, classes, rows, error, words):
    y = np.array(y)
    before = (x.copy(), y.copy())
    with pytest.raises(error) as raised:
        select_classes(x, y, classes, rows)
    assert words in str(raised.value)
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(y, before[1])
