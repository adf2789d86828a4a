"""``minift finetune-image``: the textbook transfer-learning example, for real — an
ImageNet-pretrained EfficientNet-Lite0 fine-tuned on a small labelled set — compared with
training from scratch and with a small in-domain CNN; or, with ``--bench``, its speed.

The target is Fashion-MNIST (minift's bundled subset: real photographs of clothing,
28x28 grey), resized to ``--image-size`` (96) and repeated to three channels. It is the
one real image set that is on every machine minift runs on; it is also far from ImageNet
(grey, centred, no background), which makes it an honest test of what ImageNet features
buy. Each strategy sees ``k`` labelled images per class (``--labels-per-class 10,100``, a
fresh random draw per seed) and is scored on the first ``--test-per-class`` test images
of each class:

================  =============================================================================
scratch           EfficientNet-Lite0 with random weights, everything trains (Adam 1e-3)
frozen            ImageNet body frozen, BatchNorm in inference mode, a new head trains (Adam 1e-3)
keras             the Keras guide: ``frozen``, then everything at Adam 1e-5, BatchNorm kept in
                  inference mode (``minift.train.keras_recipe``)
keras-bn-train    the same, but BatchNorm trains once the base unfreezes (phase 2: batch statistics,
                  moving running statistics): what the Keras guide warns about
torch-freeze      the same two phases with PyTorch's (and minift's default) freezing: only
                  ``requires_grad``, so BatchNorm trains in *both* phases, the frozen base's too
fine-tune         fastai's ``fine_tune``: 1 frozen epoch, then everything, ``slice`` lrs, 1cycle
gradual           ULMFiT-style gradual unfreezing, one more of 4 groups per epoch, lr / 2.6 per group
small-cnn         in-domain: ``SmallCNN`` pretrained on MNIST digits (28x28), new head, ``fine_tune``
================  =============================================================================

Reported per run: test accuracy, trainable parameters (at the end), seconds, the process's
peak RSS so far, and ImageNet *retention*: how often the original 1000-way prediction on
held-out images (the target's test images and scikit-image's photographs when installed)
survives when the fine-tuned body is read by the original ImageNet classifier — a
forgetting measure that needs no ImageNet data.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import backend
from ..backend.allocator import peak_rss_mb
from ..data import ArrayDataset, DataLoader
from ..data.bundled import load_fashion_mnist_bundled, load_mnist_bundled
from ..data.transforms import resize_bilinear
from ..engine import random as mrandom
from ..engine.tensor import Tensor
from ..engine.autograd import no_grad
from ..finetune import LayerGroup, evaluate_accuracy
from ..models import SmallCNN
from ..models.efficientnet import INPUT_MEAN, INPUT_STD, EfficientNetLite0, efficientnet_lite0, find_weights
from ..train import Learner
from ..train.recipes import fine_tune, keras_recipe

DESCRIPTION = "Fine-tune ImageNet-pretrained EfficientNet-Lite0 on few Fashion-MNIST labels, the textbook way."
STRATEGIES = ("scratch", "frozen", "keras", "keras-bn-train", "torch-freeze", "fine-tune", "gradual", "small-cnn")


@dataclass
class ImageFinetuneConfig:
    labels_per_class: tuple = (10, 100)
    seeds: tuple = (0, 1, 2)
    strategies: tuple = STRATEGIES
    image_size: int = 96
    test_per_class: int = 30
    epochs: int = 4
    batch_size: int = 32


@dataclass
class RunResult:
    strategy: str
    labels_per_class: int
    seed: int
    accuracy: float
    trainable: int
    seconds: float
    peak_rss_mb: float
    imagenet_retention: float | None = field(default=None)


def to_rgb(x_grey01: np.ndarray, size: int) -> np.ndarray:
    """Grey images ``(N, 1, 28, 28)`` in [0, 1] -> the model's input ``(N, 3, size, size)``:
    resized bilinearly, repeated to three channels, scaled as TensorFlow's Lite models expect."""
    resized = resize_bilinear(x_grey01, size) * np.float32(255)
    return ((np.repeat(resized, 3, axis=1) - INPUT_MEAN) / INPUT_STD).astype(np.float32)


def few_labels(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` random images of each class (sorted), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)]))


def first_per_class(y: np.ndarray, per_class: int) -> np.ndarray:
    return np.sort(np.concatenate([np.flatnonzero(y == c)[:per_class] for c in np.unique(y)]))


def coarse_groups(model: EfficientNetLite0) -> list[LayerGroup]:
    """Four groups for gradual unfreezing: stem..stage3, stage4..stage5, stage6..top, head."""
    groups = model.layer_groups()
    merged = [groups[0:4], groups[4:6], groups[6:9], groups[9:]]
    return [LayerGroup("+".join(g.name for g in part), [m for g in part for m in g.modules]) for part in merged]


def loaders(x, y, batch_size: int, seed: int):
    return DataLoader(ArrayDataset(x, y), batch_size=batch_size, shuffle=True, seed=seed)


class Experiment:
    """The data of one comparison, prepared once: the target set at the model's input size,
    the in-domain CNN's 28x28 view of it, the held-out images for retention, and the
    pretrained ImageNet classifier that retention reads the fine-tuned bodies with."""

    def __init__(self, config: ImageFinetuneConfig):
        self.config = config
        data = load_fashion_mnist_bundled()
        test = first_per_class(data.y_test, config.test_per_class)
        self.x_train_grey, self.y_train = data.x_train, data.y_train
        self.x_test_grey, self.y_test = data.x_test[test], data.y_test[test]
        self.x_test = to_rgb(self.x_test_grey, config.image_size)
        self.retention_images = np.concatenate([self.x_test[: 5 * 10], _photos(config.image_size)])
        base = efficientnet_lite0()
        self.pretrained_state = base.state_dict()
        self.imagenet_fc = (base._fc.weight.data.copy(), base._fc.bias.data.copy())
        self.original_top1 = self._imagenet_top1(base)
        self.mnist_cnn_state = None

    def _imagenet_top1(self, model: EfficientNetLite0) -> np.ndarray:
        model.eval()
        with no_grad():
            features = model.features(Tensor(self.retention_images)).data
        weight, bias = self.imagenet_fc
        return np.argmax(features @ weight.T + bias, axis=1)

    def pretrained(self) -> EfficientNetLite0:
        model = EfficientNetLite0()
        model.load_state_dict(self.pretrained_state)
        model.reset_classifier(10)
        return model

    def run(self, strategy: str, per_class: int, seed: int) -> RunResult:
        mrandom.manual_seed(seed)
        rows = few_labels(self.y_train, per_class, seed)
        epochs, batch = self.config.epochs, self.config.batch_size
        start = time.perf_counter()
        if strategy == "small-cnn":
            model = self._small_cnn(seed)
            train = loaders(self.x_train_grey[rows], self.y_train[rows], batch, seed)
            learner = Learner(model, train, opt="adam", weight_decay=0.0, progress=False)
            fine_tune(learner, epochs, base_lr=2e-3)
            test = DataLoader(ArrayDataset(self.x_test_grey, self.y_test), batch_size=100)
        else:
            model = EfficientNetLite0(num_classes=10) if strategy == "scratch" else self.pretrained()
            train = loaders(to_rgb(self.x_train_grey[rows], self.config.image_size), self.y_train[rows], batch, seed)
            splitter = coarse_groups if strategy == "gradual" else None
            learner = Learner(model, train, opt="adam", weight_decay=0.0, progress=False, splitter=splitter,
                              bn_policy=bn_policy(strategy))
            _train(strategy, learner, epochs)
            test = DataLoader(ArrayDataset(self.x_test, self.y_test), batch_size=50)
        accuracy = evaluate_accuracy(model, test)
        seconds = time.perf_counter() - start
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        retention = None
        if strategy not in ("scratch", "small-cnn"):
            retention = float(np.mean(self._imagenet_top1(model) == self.original_top1))
        return RunResult(strategy, per_class, seed, float(accuracy), int(trainable), round(seconds, 1),
                         round(peak_rss_mb(), 1), retention)

    def _small_cnn(self, seed: int) -> SmallCNN:
        """SmallCNN pretrained once on the bundled MNIST digits (2,000 images, 3 epochs),
        then given a new head for the 10 clothing classes."""
        if self.mnist_cnn_state is None:
            mrandom.manual_seed(1000)
            mnist = load_mnist_bundled()
            source = SmallCNN(num_classes=10)
            Learner(source, loaders(mnist.x_train, mnist.y_train, 64, 1000), opt="adam", weight_decay=0.0,
                    progress=False).fit(3, 2e-3)
            self.mnist_cnn_state = source.state_dict()
        mrandom.manual_seed(seed)
        model = SmallCNN(num_classes=10)
        model.load_state_dict(self.mnist_cnn_state)
        model.head = type(model.head)(model.num_features, 10)
        return model


def bn_policy(strategy: str) -> str:
    """How a frozen BatchNorm behaves in ``strategy`` (``minift.finetune.batchnorm``): ``"fastai"``
    (batch statistics, running statistics moving: PyTorch's behaviour) or ``"keras"`` (inference mode)."""
    return "fastai" if strategy in ("scratch", "torch-freeze", "fine-tune") else "keras"


def _train(strategy: str, learner: Learner, epochs: int) -> None:
    """The strategies' training schedules (see the module docstring)."""
    if strategy == "scratch":
        learner.fit(epochs, 1e-3)
    elif strategy == "frozen":
        learner.freeze()
        learner.fit(epochs, 1e-3)
    elif strategy == "keras":
        keras_recipe(learner, head_epochs=epochs, finetune_epochs=epochs, head_lr=1e-3, finetune_lr=1e-5)
    elif strategy in ("keras-bn-train", "torch-freeze"):  # they differ in the BatchNorm policy only
        learner.freeze()
        learner.fit(epochs, 1e-3)
        learner.unfreeze()
        learner.fit(epochs, 1e-5)
    elif strategy == "fine-tune":
        fine_tune(learner, epochs, base_lr=2e-3)
    elif strategy == "gradual":
        from ..train.recipes import ulmfit

        ulmfit(learner, epochs_per_stage=max(1, epochs // 2), lr=2e-3)
    else:
        raise ValueError(f"unknown strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")


def _photos(size: int) -> np.ndarray:
    """scikit-image's sample photographs (a cat, coffee, a rocket) as model input, or none."""
    try:
        from skimage import data
    except ImportError:
        return np.zeros((0, 3, size, size), np.float32)
    from ..models.efficientnet import preprocess

    return preprocess([data.chelsea(), data.coffee(), data.rocket()], size)


def compare_strategies(config: ImageFinetuneConfig, report=print) -> list[RunResult]:
    """Run every strategy at every label count and seed; ``report`` sees each result."""
    experiment = Experiment(config)
    results = []
    for per_class in config.labels_per_class:
        for seed in config.seeds:
            for strategy in config.strategies:
                result = experiment.run(strategy, per_class, seed)
                report(result)
                results.append(result)
    return results


def summarize(results: list[RunResult]) -> list[dict]:
    """Mean and spread over seeds, one row per (labels per class, strategy)."""
    rows = []
    keys = sorted({(r.labels_per_class, STRATEGIES.index(r.strategy)) for r in results})
    for per_class, index in keys:
        runs = [r for r in results if r.labels_per_class == per_class and r.strategy == STRATEGIES[index]]
        accuracy = np.array([r.accuracy for r in runs])
        retention = [r.imagenet_retention for r in runs if r.imagenet_retention is not None]
        rows.append({"labels_per_class": per_class, "strategy": STRATEGIES[index], "seeds": len(runs),
                     "accuracy": round(float(accuracy.mean()), 3), "accuracy_std": round(float(accuracy.std()), 3),
                     "trainable": runs[-1].trainable, "seconds": round(float(np.mean([r.seconds for r in runs])), 1),
                     "peak_rss_mb": max(r.peak_rss_mb for r in runs),
                     "imagenet_retention": round(float(np.mean(retention)), 3) if retention else None})
    return rows


# -- speed --------------------------------------------------------------------------------
def measure_images_per_s(model: EfficientNetLite0, size: int, batch_size: int = 32, repeats: int = 2,
                         implementation: str = "minift") -> dict:
    """Images per second of ``model`` for ``inference`` (eval, no graph) and ``train_step``
    (train mode, forward, cross-entropy, backward to every parameter), best of ``repeats``
    after one warm-up, under the current backend or (``"torch"``) through the PyTorch
    reference with the same weights."""
    x = np.random.default_rng(0).normal(0, 1, (batch_size, 3, size, size)).astype(np.float32)
    y = np.arange(batch_size) % 10
    if implementation == "torch":
        steps = _torch_steps(model, x, y)
    else:
        from .. import functional as F

        def inference():
            model.eval()
            with no_grad():
                model(Tensor(x))

        def train_step():
            model.train()
            model.zero_grad()
            F.cross_entropy(model(Tensor(x)), Tensor(y)).backward()

        steps = {"inference": inference, "train_step": train_step}
    result = {}
    for name, step in steps.items():
        step()
        best = min(_timed(step) for _ in range(repeats))
        result[name] = round(batch_size / best, 2)
    return result


def _timed(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def _torch_steps(model: EfficientNetLite0, x: np.ndarray, y: np.ndarray) -> dict:
    import torch

    from ..models.torch_efficientnet import torch_efficientnet_lite0, torch_state

    state = torch_state(model.state_dict(), requires_grad=True)
    inputs, labels = torch.tensor(x), torch.tensor(y)

    def inference():
        with torch.no_grad():
            torch_efficientnet_lite0(state, inputs)

    def train_step():
        for tensor in state.values():
            tensor.grad = None
        torch.nn.functional.cross_entropy(torch_efficientnet_lite0(state, inputs, training=True), labels).backward()

    return {"inference": inference, "train_step": train_step}


@contextlib.contextmanager
def one_thread():
    """BLAS, Numba and PyTorch on one thread each, for a like-for-like speed comparison."""
    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(1))
        except ImportError:
            pass
        for module in ("numba", "torch"):
            try:
                library = __import__(module)
            except ImportError:
                continue
            before = library.get_num_threads()
            library.set_num_threads(1)
            stack.callback(library.set_num_threads, before)
        yield


def bench(sizes=(96, 224), batch_size: int = 32, repeats: int = 2) -> dict:
    """Images/s per backend (numpy, numba where installed) and PyTorch, one thread each."""
    model = efficientnet_lite0(num_classes=10)
    results = {}
    with one_thread():
        for size in sizes:
            for name in ("numpy", "numba"):
                if not backend.available_backends()[name][0]:
                    continue
                with backend.use_backend(name):
                    results[f"{name} {size}px"] = measure_images_per_s(model, size, batch_size, repeats)
            if importlib.util.find_spec("torch") is not None:
                results[f"torch {size}px"] = measure_images_per_s(model, size, batch_size, repeats, "torch")
    results["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return results


# -- the command --------------------------------------------------------------------------
def _ints(text: str) -> tuple:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    defaults = ImageFinetuneConfig()
    parser.add_argument("--labels-per-class", type=_ints, default=defaults.labels_per_class,
                        help="labelled training images per class, comma-separated (default 10,100)")
    parser.add_argument("--seeds", type=lambda t: tuple(int(s) for s in t.split(",")), default=defaults.seeds,
                        help="seeds, comma-separated: each draws its own labelled images (default 0,1,2)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help=f"comma-separated, from {', '.join(STRATEGIES)} (default all)")
    for name in ("image_size", "test_per_class", "epochs", "batch_size"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name),
                            help=f"(default {getattr(defaults, name)})")
    parser.add_argument("--bench", action="store_true",
                        help="measure images/s of inference and of a training step at 96 and 224 px, batch 32, "
                             "on each backend and PyTorch (one thread each), instead of fine-tuning")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    return parser


def finetune_image(args) -> int:
    """Run ``minift finetune-image`` from parsed ``args``; 0, or 1 when the weights are absent."""
    try:
        find_weights()
    except FileNotFoundError as missing:
        print(missing, file=sys.stderr)
        return 1
    if args.bench:
        results = bench(batch_size=args.batch_size)
    else:
        strategies = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
        unknown = [s for s in strategies if s not in STRATEGIES]
        if unknown:
            raise ValueError(f"unknown strategies {unknown}: expected some of {', '.join(STRATEGIES)}")
        config = ImageFinetuneConfig(tuple(args.labels_per_class), tuple(args.seeds), strategies,
                                     args.image_size, args.test_per_class, args.epochs, args.batch_size)
        runs = compare_strategies(config, report=lambda r: print(json.dumps(asdict(r)), flush=True))
        results = {"config": asdict(config), "runs": [asdict(r) for r in runs], "summary": summarize(runs)}
        for row in results["summary"]:
            print(json.dumps(row))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)
    if args.bench:
        print(json.dumps(results, indent=2))
    return 0


def main(argv=None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="minift finetune-image", description=DESCRIPTION))
    return finetune_image(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
