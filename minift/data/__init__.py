"""Data: datasets, the DataLoader, batch transforms, and real datasets that need no network.

A typical few-shot fine-tuning set-up::

    from minift.data import DataLoader, Subset, load_dataset, take_per_class
    from minift.data.transforms import Compose, Normalize, RandomCrop

    digits = load_dataset("mnist-bundled")                   # ImageData, float32 in [0, 1]
    few = Subset(digits.train, take_per_class(digits.y_train, k=10, seed=0))
    augment = Compose([RandomCrop(28, padding=2), Normalize(0.13, 0.31)])
    loader = DataLoader(few, batch_size=32, shuffle=True, seed=0, transform=augment)
    for images, labels in loader:                            # Tensors (32, 1, 28, 28), (32,)
        ...

The files, one concept each: ``dataset.py`` (Dataset, ArrayDataset, Subset),
``splits.py`` (random_split, take_per_class, select_classes), ``dataloader.py``, ``transforms.py``,
``idx.py`` (the MNIST file format), ``files.py`` (finding and checksumming files),
``images.py`` (ImageData), ``sources.py`` (installed datasets), ``bundled.py`` (datasets
shipped in the wheel, rebuilt by ``make_bundled.py``), ``registry.py`` (by name).
"""

from .dataloader import DataLoader, default_collate
from .dataset import ArrayDataset, Dataset, Subset, TensorDataset, stack_samples
from .files import ChecksumError, DatasetNotFoundError, data_home
from .idx import IdxFormatError, encode_idx, parse_idx
from .images import ImageData
from .registry import DATASETS, available_datasets, load_dataset
from .splits import random_split, select_classes, take_per_class

__all__ = [
    "ArrayDataset", "ChecksumError", "DATASETS", "DataLoader", "Dataset", "DatasetNotFoundError",
    "IdxFormatError", "ImageData", "Subset", "TensorDataset", "available_datasets", "data_home",
    "default_collate", "encode_idx", "load_dataset", "parse_idx", "random_split", "select_classes",
    "stack_samples", "take_per_class",
]
