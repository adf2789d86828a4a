"""Image transforms on whole batches: ``x (N, C, H, W)`` floating point in, same out.

minift transforms a batch at once (torchvision transforms one image at a time), because
on a small CPU one vectorised call per batch is much cheaper than N Python calls. The
random transforms still draw independently for every image.

A transform is a callable ``transform(images, generator=None) -> images``. Random ones
draw from ``generator`` (an ``np.random.Generator``) or, when it is ``None``, from
minift's global generator; a ``DataLoader`` passes its own per-batch generator, which
makes augmentation reproducible and resumable. Inputs are never modified.
"""

from __future__ import annotations

import numpy as np


def _check_batch(images, who: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"{who} expects a float batch of shape (N, C, H, W), got dtype {images.dtype} "
            f"and shape {images.shape}"
        )
    return images


def _pair(size, what: str) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(pair) != 2 or any(not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 1 for s in pair):
        raise ValueError(f"{what} must be a positive int or a pair (height, width) of them, got {size!r}")
    return int(pair[0]), int(pair[1])


def _generator_or_global(generator) -> np.random.Generator:
    if generator is not None:
        return generator
    from ..engine import random

    return random.generator()


class Compose:
    """Apply ``transforms`` in order, all drawing from the same generator."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose expects callables, got {type(t).__name__}")

    def __call__(self, images, generator=None):
        generator = _generator_or_global(generator)
        for transform in self.transforms:
            images = transform(images, generator=generator)
        return images

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class Normalize:
    """``out[:, c] = (x[:, c] - mean[c]) / std[c]``; ``mean``/``std`` are numbers or one per channel."""

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError(f"mean and std must be numbers or 1-D sequences, got {mean!r} and {std!r}")
        if np.any(self.std <= 0):
            raise ValueError(f"std must be positive, got {std!r}")

    def __call__(self, images, generator=None):
        images = _check_batch(images, "Normalize")
        channels = images.shape[1]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values.size not in (1, channels):
                raise ValueError(f"{name} has {values.size} values but the images have {channels} channels")
        mean = self.mean.astype(images.dtype).reshape(1, -1, 1, 1)
        std = self.std.astype(images.dtype).reshape(1, -1, 1, 1)
        return (images - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomCrop:
    """Zero-pad each side by ``padding``, then cut a random ``size`` window from each image.

    ``size`` is an int or ``(height, width)``. With ``padding=p`` and ``size`` equal to the
    input size, this shifts every image by up to ``p`` pixels (the classic augmentation).
    """

    def __init__(self, size, padding: int = 0):
        self.size = _pair(size, "size")
        if not isinstance(padding, (int, np.integer)) or isinstance(padding, bool) or padding < 0:
            raise ValueError(f"padding must be a non-negative int, got {padding!r}")
        self.padding = int(padding)

    def __call__(self, images, generator=None):
        images = _check_batch(images, "RandomCrop")
        p, (height, width) = self.padding, self.size
        padded = np.pad(images, ((0, 0), (0, 0), (p, p), (p, p)))
        room_y, room_x = padded.shape[2] - height, padded.shape[3] - width
        if room_y < 0 or room_x < 0:
            raise ValueError(f"crop size {self.size} is larger than the padded image {padded.shape[2:]}")
        generator = _generator_or_global(generator)
        tops = generator.integers(0, room_y + 1, size=len(images))
        lefts = generator.integers(0, room_x + 1, size=len(images))
        out = np.empty((*images.shape[:2], height, width), dtype=images.dtype)
        for n, (top, left) in enumerate(zip(tops, lefts)):
            out[n] = padded[n, :, top:top + height, left:left + width]
        return out

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``, independently."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, images, generator=None):
        images = _check_batch(images, "RandomHorizontalFlip")
        flip = _generator_or_global(generator).random(len(images)) < self.p
        out = images.copy()
        out[flip] = images[flip, :, :, ::-1]
        return out

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


def _bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """``R (out_size, in_size)``: row ``i`` holds the two linear-interpolation weights of output ``i``.

    Pixel centres are aligned as in PyTorch's ``interpolate(..., align_corners=False)``:
    output ``i`` samples the input at ``s = (i + 0.5) * in_size / out_size - 0.5``, clamped
    to ``[0, in_size - 1]``, with weight ``1 - frac(s)`` on ``floor(s)`` and ``frac(s)`` on the next.
    """
    source = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    source = np.clip(source, 0, in_size - 1)
    lower = np.floor(source).astype(np.int64)
    upper = np.minimum(lower + 1, in_size - 1)
    frac = source - lower
    matrix = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    np.add.at(matrix, (rows, lower), 1 - frac)
    np.add.at(matrix, (rows, upper), frac)
    return matrix


def resize_bilinear(images, size) -> np.ndarray:
    """Resize ``images (N, C, H, W)`` to ``(N, C, *size)`` by bilinear interpolation.

    Bilinear interpolation is separable: ``out[n, c] = R_h @ x[n, c] @ R_w.T`` with the
    matrices of ``_bilinear_matrix``. It matches PyTorch's
    ``F.interpolate(x, size, mode="bilinear", align_corners=False)``, also when shrinking
    (where, as there by default, no anti-aliasing filter is applied).
    Every output is a convex combination of inputs, so values stay in the input's range.
    """
    images = _check_batch(images, "resize_bilinear")
    height, width = _pair(size, "size")
    rows = _bilinear_matrix(images.shape[2], height)
    cols = _bilinear_matrix(images.shape[3], width)
    # float64 throughout, so that rounding cannot push a value outside the input's range
    return (rows @ images.astype(np.float64) @ cols.T).astype(images.dtype)
