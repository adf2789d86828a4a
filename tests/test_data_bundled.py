"""The datasets shipped in the wheel, the checksum that guards them, and the registry."""

import shutil
from functools import partial

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minift.data import (DATASETS, ChecksumError, DatasetNotFoundError, ImageData, available_datasets,
                         load_dataset)
from minift.data.bundled import (BUNDLED_DIR, BUNDLED_SHA256, FASHION_TEST_PER_CLASS, FASHION_TRAIN_PER_CLASS,
                                 MNIST_TRAIN_PER_CLASS, read_bundled)
from minift.data.images import image_data_from_raw
from minift.data.sources import DIGITS_TEST_PER_CLASS, MNIST_5K_TEST_PER_CLASS

BUNDLED = {
    # name: (file, image side, train count per class or None when the classes differ in size, test per class)
    "fashion-mnist-bundled": ("fashion_mnist_subset.npz", 28, FASHION_TRAIN_PER_CLASS, FASHION_TEST_PER_CLASS),
    "mnist-bundled": ("mnist_subset.npz", 28, MNIST_TRAIN_PER_CLASS, MNIST_5K_TEST_PER_CLASS),
    "digits": ("digits.npz", 8, None, DIGITS_TEST_PER_CLASS),
}


@pytest.fixture(scope="module", params=sorted(BUNDLED))
def bundled(request):
    return request.param, load_dataset(request.param)


def test_images_labels_and_classes(bundled):
    name, data = bundled
    _, side, _, _ = BUNDLED[name]
    assert isinstance(data, ImageData) and data.name == name
    assert data.num_classes == len(data.classes) == 10
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape == (len(y), 1, side, side)
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert x.max() == 1.0  # scaled by the format's maximum grey level, which occurs
        assert set(np.unique(y)) == set(range(10))


def test_classes_are_balanced(bundled):
    name, data = bundled
    _, _, train_per_class, test_per_class = BUNDLED[name]
    np.testing.assert_array_equal(np.bincount(data.y_test), np.full(10, test_per_class))
    if train_per_class is not None:
        np.testing.assert_array_equal(np.bincount(data.y_train), np.full(10, train_per_class))


def test_train_and_test_rows_are_distinct_and_sorted(bundled):
    name, _ = bundled
    arrays = read_bundled(BUNDLED[name][0])
    for rows in (arrays["train_rows"], arrays["test_rows"]):
        assert np.all(np.diff(rows) > 0)
    if name != "fashion-mnist-bundled":  # the others split one source table
        assert not set(arrays["train_rows"]) & set(arrays["test_rows"])


def test_loading_is_deterministic(bundled):
    name, data = bundled
    again = load_dataset(name)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(again, field), getattr(data, field))


def test_train_and_test_are_datasets(bundled):
    _, data = bundled
    image, label = data.train[3]
    np.testing.assert_array_equal(image, data.x_train[3])
    assert label == data.y_train[3] and len(data.test) == len(data.y_test)


def test_digits_resized_to_28():
    small, large = load_dataset("digits"), load_dataset("digits", image_size=28)
    assert large.x_train.shape == (len(small.y_train), 1, 28, 28) and large.x_train.dtype == np.float32
    assert 0.0 <= large.x_train.min() and large.x_train.max() <= 1.0
    np.testing.assert_array_equal(large.y_train, small.y_train)


def test_files_are_small_enough_to_ship():
    sizes = {name: (BUNDLED_DIR / name).stat().st_size for name in BUNDLED_SHA256}
    assert sum(sizes.values()) <= 6 * 1024 * 1024, sizes


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(BUNDLED)), st.data())
def test_a_corrupted_copy_fails_its_checksum(tmp_path, name, data):
    filename = BUNDLED[name][0]
    copy = tmp_path / filename
    shutil.copyfile(BUNDLED_DIR / filename, copy)
    content = bytearray(copy.read_bytes())
    position = data.draw(st.integers(0, len(content) - 1), label="corrupted byte")
    content[position] ^= data.draw(st.integers(1, 255), label="xor mask")
    copy.write_bytes(bytes(content))
    with pytest.raises(ChecksumError, match=f"{filename}.*SHA-256.*expected {BUNDLED_SHA256[filename]}"):
        load_dataset(name, root=tmp_path)


def test_an_intact_copy_elsewhere_loads(tmp_path):
    shutil.copyfile(BUNDLED_DIR / "digits.npz", tmp_path / "digits.npz")
    np.testing.assert_array_equal(load_dataset("digits", root=tmp_path).x_test, load_dataset("digits").x_test)


def test_a_missing_file_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="python -m minift.data.make_bundled"):
        load_dataset("mnist-bundled", root=tmp_path)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError) as error:
        load_dataset("cifar-10")
    for name in DATASETS:
        assert name in str(error.value)


def test_available_datasets_reports_the_bundled_ones():
    report = available_datasets()
    assert set(report) == set(DATASETS)
    for name, (filename, *_) in BUNDLED.items():
        found, where = report[name]
        assert found and where.endswith(filename)
    for found, where in report.values():
        assert where  # a location, or how to get the data


def test_the_raw_layout_is_checked_before_conversion():
    raw = {"x_train": np.zeros((4, 2, 2), np.uint8), "y_train": np.array([0, 1, 2, 1]),
           "x_test": np.zeros((2, 2, 2), np.uint8), "y_test": np.array([0, 2])}
    convert = partial(image_data_from_raw, "toy", classes=("a", "b", "c"), image_size=(2, 2), sizes=(4, 2), max_value=16)
    data = convert(raw)
    assert data.x_train.shape == (4, 1, 2, 2) and data.y_test.dtype == np.int64
    bad_inputs = {
        "shape": {**raw, "x_test": np.zeros((3, 2, 2), np.uint8)},
        "uint8": {**raw, "x_train": np.zeros((4, 2, 2), np.float32)},
        "0..16": {**raw, "x_train": np.full((4, 2, 2), 17, np.uint8)},
        "0..2": {**raw, "y_train": np.array([0, 1, 3, 1])},
        "lacks": {k: v for k, v in raw.items() if k != "y_test"},
    }
    for message, bad in bad_inputs.items():
        with pytest.raises(ValueError, match=message):
            convert(bad)
