"""Shared by the minift.train tests: a tiny body/head model, its data, and a Learner on them.

(No tests here; the name keeps it among the train tests.) The data are random Gaussian
inputs labelled by a random linear map: learnable, and tiny enough that every test fits
in well under a second on the NumPy backend.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

import minift
from minift import nn
from minift.data import ArrayDataset, DataLoader
from minift.models import BodyHeadClassifier
from minift.train import Callback, Learner

FEATURES, HIDDEN, CLASSES = 6, 12, 3


class TinyNet(BodyHeadClassifier):
    """body: block1 (Linear, BatchNorm1d?, ReLU), block2 (Linear, ReLU, Dropout?); head: Linear.
    Layer groups: block1, block2, head."""

    def __init__(self, batchnorm: bool = True, dropout: float = 0.0):
        super().__init__()
        block1 = [nn.Linear(FEATURES, HIDDEN)] + ([nn.BatchNorm1d(HIDDEN)] if batchnorm else []) + [nn.ReLU()]
        block2 = [nn.Linear(HIDDEN, HIDDEN), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
        self.body = nn.Sequential(OrderedDict(block1=nn.Sequential(*block1), block2=nn.Sequential(*block2)))
        self.head = nn.Linear(HIDDEN, CLASSES)
        self.num_features = HIDDEN


def tiny_data(samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, FEATURES)).astype(np.float32)
    y = (x @ rng.normal(size=(FEATURES, CLASSES))).argmax(axis=1)
    return x, y


def make_learner(seed: int = 0, batchnorm: bool = True, dropout: float = 0.0, train_samples: int = 48,
                 batch_size: int = 8, valid: bool = True, **learner_kwargs) -> Learner:
    """A Learner on TinyNet; the same ``seed`` gives the same weights and data order."""
    minift.manual_seed(seed)
    model = TinyNet(batchnorm=batchnorm, dropout=dropout)
    x, y = tiny_data(train_samples + 24, seed)
    train = DataLoader(ArrayDataset(x[:train_samples], y[:train_samples]), batch_size=batch_size, shuffle=True, seed=seed)
    valid_loader = DataLoader(ArrayDataset(x[train_samples:], y[train_samples:]), batch_size=10) if valid else None
    learner_kwargs.setdefault("progress", False)
    return Learner(model, train, valid_loader, **learner_kwargs)


def weights(model) -> dict:
    """Copies of every parameter and buffer."""
    return {name: value.copy() for name, value in model.state_dict().items()}


def same_bytes(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes() for k in a)


def group_params(learner, index: int) -> dict:
    """``{name: array copy}`` of the parameters of layer group ``index``."""
    names = {id(p): n for n, p in learner.model.named_parameters()}
    return {names[id(p)]: p.data.copy() for p in learner.groups[index].parameters()}


class EventLog(Callback):
    """Records ``(event, epoch, batch_index, iteration)`` at every event."""

    order = 1

    def __init__(self):
        self.events = []

    def _log(self, name, learner):
        self.events.append((name, learner.epoch, learner.batch_index, learner.iteration))


for _event in ("before_fit", "before_epoch", "before_batch", "before_backward", "after_backward",
               "before_step", "after_step", "after_batch", "after_epoch", "after_fit"):
    setattr(EventLog, _event, lambda self, learner, _name=_event: self._log(_name, learner))


class TrainableLog(Callback):
    """Records, at the first batch of each epoch, which layer groups are trainable (by the
    group's first parameter, a Linear weight: BatchNorm may stay trainable in frozen groups)."""

    order = 30

    def __init__(self):
        self.per_epoch = []

    def before_batch(self, learner):
        if learner.batch_index == 0:
            self.per_epoch.append([g.parameters()[0].requires_grad for g in learner.groups])
