"""``ImageData``: what every dataset loader returns, and the one conversion that makes it.

On disk, every dataset minift knows is four arrays, the *raw layout*::

    x_train (N, H, W) uint8    y_train (N,) uint8     grey levels 0..max_value, labels 0..K-1
    x_test  (M, H, W) uint8    y_test  (M,) uint8

Loaders turn it into what a model eats: images ``(N, 1, H, W)`` float32 in ``[0, 1]``
(grey level / max_value) and labels int64, after checking the shapes and label range.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .dataset import ArrayDataset
from .transforms import resize_bilinear

RAW_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True, eq=False)
class ImageData:
    """A labelled image dataset, split into train and test.

    ``x_train (N, 1, H, W)`` float32 in ``[0, 1]``, ``y_train (N,)`` int64 in
    ``[0, len(classes))``, likewise ``x_test``/``y_test``; ``classes[k]`` names label ``k``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def train(self) -> ArrayDataset:
        return ArrayDataset(self.x_train, self.y_train)

    @property
    def test(self) -> ArrayDataset:
        return ArrayDataset(self.x_test, self.y_test)

    def __repr__(self) -> str:
        return (f"ImageData({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
                f"classes={len(self.classes)})")


def image_data_from_raw(name: str, raw: dict, classes, image_size, sizes, max_value: int) -> ImageData:
    """Check ``raw`` (the raw layout) and convert it to ``ImageData``.

    ``image_size`` is ``(H, W)``; ``sizes`` is ``(N, M)``, the number of train and test
    samples; pixels must lie in ``0..max_value``. Any mismatch raises ``ValueError``
    naming what was expected and what was found.
    """
    missing = [k for k in RAW_KEYS if k not in raw]
    if missing:
        raise ValueError(f"{name}: the data lacks the arrays {missing}")
    converted = {}
    for split, count in zip(("train", "test"), sizes):
        x, y = np.asarray(raw[f"x_{split}"]), np.asarray(raw[f"y_{split}"])
        if x.shape != (count, *image_size) or y.shape != (count,):
            raise ValueError(
                f"{name}: expected {split} images of shape {(count, *image_size)} and labels of shape "
                f"{(count,)}, found {x.shape} and {y.shape}"
            )
        if x.dtype != np.uint8 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{name}: expected uint8 {split} images and integer labels, found {x.dtype} and {y.dtype}")
        if x.max(initial=0) > max_value:
            raise ValueError(f"{name}: {split} pixels must lie in 0..{max_value}, found {x.max()}")
        if y.size and (y.min() < 0 or y.max() >= len(classes)):
            raise ValueError(f"{name}: {split} labels must lie in 0..{len(classes) - 1}, found {y.min()}..{y.max()}")
        converted[f"x_{split}"] = (x[:, None, :, :] / np.float32(max_value)).astype(np.float32)
        converted[f"y_{split}"] = y.astype(np.int64)
    return ImageData(name=name, classes=tuple(classes), **converted)


def resize_images(data: ImageData, size: int) -> ImageData:
    """``data`` with every image resized to ``size x size`` by ``transforms.resize_bilinear``."""
    return replace(data, x_train=resize_bilinear(data.x_train, size), x_test=resize_bilinear(data.x_test, size))
