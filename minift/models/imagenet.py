"""ImageNet-1k: its class names, and the evaluation-time crop every ImageNet model expects.

``imagenet_classes()`` reads ``imagenet_classes.txt`` (shipped with minift): the 1000
ILSVRC-2012 classes in the order of the models' output units, with the simplified
WordNet names of github.com/anishathalye/imagenet-simple-labels (public domain; the file's
header gives the commit). ``center_crop(images, size)`` is the standard evaluation
transform: resize so the shorter side is ``size * 256 / 224``, then cut the central
``size x size`` square (TensorFlow's EfficientNet evaluation crops the same fraction,
``size / (size + 32)``, of the shorter side).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..data.transforms import resize_bilinear

CLASSES_FILE = Path(__file__).with_name("imagenet_classes.txt")
NUM_CLASSES = 1000


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 class names; ``imagenet_classes()[k]`` names output unit ``k``."""
    lines = CLASSES_FILE.read_text(encoding="utf-8").splitlines()
    names = tuple(line for line in lines if line and not line.startswith("#"))
    if len(names) != NUM_CLASSES:
        raise RuntimeError(f"{CLASSES_FILE} holds {len(names)} class names, expected {NUM_CLASSES}: reinstall minift")
    return names


def center_crop(images, size: int = 224) -> np.ndarray:
    """``images``: one ``(H, W, 3)`` RGB image or a list of them, any sizes (uint8 0..255
    or float) -> ``(N, 3, size, size)`` float32 on the same 0..255 scale.

    Each image is resized bilinearly so that its shorter side is ``round(size * 256 / 224)``,
    then its central ``size x size`` square is kept.
    """
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = [images]
    short = round(size * 256 / 224)
    out = []
    for image in images:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"center_crop expects RGB images (H, W, 3), got shape {image.shape}")
        height, width = image.shape[:2]
        scale = short / min(height, width)
        new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
        chw = image.transpose(2, 0, 1)[None].astype(np.float32)
        resized = resize_bilinear(chw, (new_h, new_w))[0]
        top, left = (new_h - size) // 2, (new_w - size) // 2
        out.append(resized[:, top:top + size, left:left + size])
    return np.stack(out).astype(np.float32)


def top_k(logits, k: int = 5) -> list[list[tuple[str, float]]]:
    """For each row of ``logits (N, 1000)``: the ``k`` most probable ``(class name, probability)``."""
    logits = np.asarray(logits, dtype=np.float64)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    names = imagenet_classes()
    order = np.argsort(-probabilities, axis=1)[:, :k]
    return [[(names[j], float(row[j])) for j in top] for row, top in zip(probabilities, order)]
