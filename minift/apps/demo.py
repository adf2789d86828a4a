"""``minift demo``: transfer learning from start to finish, on real data, in about half a minute.

The steps (each is a function here, and ``run_demo`` calls them in order):

1. **Pretrain** a small CNN on the *source task*: the 2,000 bundled MNIST digits (scanned
   handwriting, 28x28), with random-shift augmentation. Save it to ``pretrained.safetensors``.
2. **Transplant** its body under a new head for the *target task*
   (``minift.finetune.transplant``, which reports what it loaded): the UCI optical digits,
   another collection of handwritten digits (other writers, scanned at 32x32 and reduced
   to 8x8 block counts), put in MNIST's frame (20x20, centred in 28x28) -- with only
   **2 labelled images per class**, 20 in all.
3. **Fine-tune** five ways, each from the same seed: from scratch (the baseline),
   feature extraction (frozen body), full fine-tuning, full fine-tuning with a learning
   rate 30 times too high, and ULMFiT's gradual unfreezing with discriminative learning
   rates and a slanted triangular schedule.
4. **Compare**: accuracy on the target's 500 test images; accuracy after fine-tuning on the source
   task (MNIST's test set, read through the *original* head on top of the fine-tuned
   body -- the measure of catastrophic forgetting); trainable parameters; time. The table
   goes to ``results.txt``, the learning curves to ``learning_curves.png``.

Why this pair: transfer helps when the source taught features the target needs and the
target has too few labels to learn them. Fashion-MNIST -> MNIST, the obvious pair, did not
help here (Fashion features read by a linear head scored barely above random features:
0.82 against 0.80 with 10 labels per class), while MNIST -> UCI digits does, most with the
fewest labels. The README lists the measurements.

The model is ``minift.models.DigitCNN``: ``SmallCNN``'s three conv blocks without the global
average pooling, so the head reads *where* each feature fired, which digits need.
Everything is seeded: the table is the same from run to run on a given backend.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .. import io, nn
from ..data import DataLoader, DatasetNotFoundError, Subset, load_dataset, take_per_class
from ..data.images import ImageData, resize_images
from ..data.transforms import RandomCrop
from ..finetune import L2SP, evaluate_accuracy, transplant, ulmfit_lrs
from ..io import CheckpointError
from ..io.atomic import atomic_write
from ..models import DigitCNN, SmallCNN, TinyResNet
from ..engine.random import manual_seed
from ..train import GradualUnfreezing, Learner, fine_tune, lp_ft

IMAGE_SIZE = 28  # every model here takes MNIST-sized images (1, 28, 28)
AUGMENT = RandomCrop(IMAGE_SIZE, padding=2)  # shift each image by up to 2 pixels


class InputError(ValueError):
    """Something the user chose cannot be used (a name, a path, a checkpoint); the message
    says what was expected and what came. The command line turns it into exit status 2."""


# --------------------------------------------------------------------------- models

MODELS: dict[str, Callable[[int, int], nn.Module]] = {
    "digit-cnn": lambda num_classes, width: DigitCNN(num_classes=num_classes, width=width, image_size=IMAGE_SIZE),
    "small-cnn": lambda num_classes, width: SmallCNN(num_classes=num_classes, width=width, image_size=IMAGE_SIZE),
    "tiny-resnet": lambda num_classes, width: TinyResNet(num_classes=num_classes, width=width),
}
"""The ``--model`` names: each builds the ``minift.models`` class of the same name."""


def build_model(name: str, num_classes: int, width: int) -> nn.Module:
    """A fresh model from ``MODELS``, initialised from ``minift.engine.random``."""
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}: expected one of {', '.join(MODELS)}")
    return MODELS[name](num_classes, width)


# --------------------------------------------------------------------------- data

def load_images(name: str) -> ImageData:
    """Dataset ``name`` (see ``minift.data.DATASETS``) with 28x28 images.

    Smaller images (the 8x8 UCI digits) are put in MNIST's frame, as MNIST's makers did
    with theirs: scaled to 20x20 and centred in 28x28 with a 4-pixel border.
    """
    try:
        data = load_dataset(name)
    except DatasetNotFoundError as missing:
        raise InputError(f"dataset {name!r} is not installed here: {' '.join(str(missing).split())}") from None
    except ValueError as unknown:
        raise InputError(str(unknown)) from None
    if data.x_train.shape[-2:] == (IMAGE_SIZE, IMAGE_SIZE):
        return data
    border = (IMAGE_SIZE - 20) // 2
    framed = resize_images(data, 20)
    pad = ((0, 0), (0, 0), (border, border), (border, border))
    return replace(framed, x_train=np.pad(framed.x_train, pad), x_test=np.pad(framed.x_test, pad))


def limit_images(data: ImageData, limit: int | None, seed: int = 0) -> ImageData:
    """``limit`` train and ``limit`` test images drawn at random (all when ``None``), for
    quick runs; the bundled files are sorted by class, so the first ones would not do."""
    if limit is None:
        return data
    generator = np.random.default_rng(seed)
    train = np.sort(generator.permutation(len(data.y_train))[:limit])
    test = np.sort(generator.permutation(len(data.y_test))[:limit])
    return replace(data, x_train=data.x_train[train], y_train=data.y_train[train],
                   x_test=data.x_test[test], y_test=data.y_test[test])


def few_shot_indices(data: ImageData, labels_per_class: int | None, seed: int) -> np.ndarray:
    """Indices of ``labels_per_class`` training images of every class (all when ``None``)."""
    if labels_per_class is None:
        return np.arange(len(data.y_train))
    try:
        return take_per_class(data.y_train, labels_per_class, seed=seed)
    except ValueError as error:
        raise InputError(f"{data.name}: {error}") from None


def train_loader(data: ImageData, indices, batch_size: int, seed: int, repeats: int = 1,
                 augment: bool = True) -> DataLoader:
    """Shuffled batches of the training images at ``indices``, each epoch going ``repeats``
    times over them (a few-shot set is tiny: repeating it makes epochs long enough to be
    worth a validation), each image shifted at random when ``augment``."""
    return DataLoader(Subset(data.train, np.tile(indices, repeats)), batch_size=batch_size, shuffle=True,
                      seed=seed, transform=AUGMENT if augment else None)


def test_loader(data: ImageData, batch_size: int = 500) -> DataLoader:
    return DataLoader(data.test, batch_size=batch_size)


# --------------------------------------------------------------------------- checkpoints

def check_output_dir(path) -> Path:
    """Create directory ``path`` if needed and prove a file can be written there, before
    any long work starts; raise ``InputError`` otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise InputError(f"cannot write to the output directory {path}: {error.strerror or error}") from None
    return path


@contextmanager
def output_directory(path):
    """``check_output_dir(path)`` for the block's outputs; if the block fails (an error,
    Ctrl-C), remove the directories this call created, so that a failed command leaves no
    half-made output directory behind. A directory that existed before is left alone."""
    path = Path(path)
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    try:
        yield check_output_dir(path)
    except BaseException:
        if missing:
            shutil.rmtree(missing[-1], ignore_errors=True)  # the outermost folder this call made
        raise


def check_output_file(path) -> Path:
    """Check that a checkpoint can be saved at ``path`` (its extension; not a directory).
    Its folder is made by ``output_directory(path.parent)``."""
    path = Path(path)
    if path.suffix.lower() not in io.FORMATS:
        raise InputError(f"cannot save to {path}: the name must end in {' or '.join(io.FORMATS)}")
    if path.is_dir():
        raise InputError(f"cannot save to {path}: it is a directory")
    return path


def load_checkpoint(path) -> dict:
    """The state dict saved at ``path``, or ``InputError`` (missing, unreadable, not a checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        return io.load(path)
    except (CheckpointError, OSError) as error:
        raise InputError(f"cannot read checkpoint {path}: {' '.join(str(error).split())}") from None


def load_pretrained_body(model: nn.Module, state: dict, description: str):
    """``transplant`` the checkpoint's body into ``model`` (its head stays new); returns the
    report. A checkpoint of another architecture raises a one-line ``InputError``."""
    try:
        return transplant(model, state, skip=["head.*"])
    except ValueError as error:
        problems = [line.strip() for line in str(error).splitlines()[1:]]
        first = problems[0] if problems else str(error)
        raise InputError(
            f"the checkpoint does not fit {description}: {len(problems) or 1} entries differ, first {first} "
            "-- was it pretrained with another --model or --width?"
        ) from None


def source_accuracy(tuned: nn.Module, pretrained_state: dict, source: ImageData, model_name: str, width: int) -> float:
    """Accuracy on the source test set of the *original* model with its body replaced by
    the fine-tuned one: what the body still knows of the source task (forgetting)."""
    original = build_model(model_name, source.num_classes, width)
    original.load_state_dict(pretrained_state)  # the pretrained model, its own head included
    transplant(original, tuned.state_dict(), skip=["head.*"])  # ... on the fine-tuned body
    return evaluate_accuracy(original, test_loader(source))


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- strategies

@dataclass(frozen=True)
class Strategy:
    """One way to fine-tune: ``train(learner, epochs, lr)`` drives a ``Learner``.

    ``pretrained``: starts from the checkpoint's body; ``lr``: the default learning rate
    (the head's, where groups differ); ``l2sp``: add the L2-SP penalty to the loss.
    """

    summary: str
    pretrained: bool
    lr: float
    train: Callable
    l2sp: bool = False


def _train_everything(learner, epochs, lr):
    learner.unfreeze()
    learner.fit_one_cycle(epochs, lr)


def _feature_extraction(learner, epochs, lr):
    learner.set_bn_policy("keras")  # a frozen BatchNorm runs in inference mode: the body is fixed
    learner.freeze()
    learner.fit_one_cycle(epochs, lr)


def _gradual(learner, epochs, lr):
    """ULMFiT (``minift.train.ulmfit``) over exactly ``epochs`` epochs: one more group every
    ``epochs // groups`` epochs (at least 1), the last stage taking the remainder; with fewer
    epochs than groups, the lowest groups stay frozen."""
    groups = len(learner.groups)
    learner.fit(epochs, ulmfit_lrs(lr, groups), schedule="slanted_triangular",
                unfreeze_schedule=GradualUnfreezing(every=max(1, epochs // groups)))


def _fastai_fine_tune(learner, epochs, lr):
    fine_tune(learner, max(1, epochs - 1), base_lr=lr, freeze_epochs=1)


def _lp_ft(learner, epochs, lr):
    probe_epochs = max(1, epochs // 2)
    lp_ft(learner, probe_epochs, max(1, epochs - probe_epochs), probe_lr=lr, ft_lr=lr / 10)


STRATEGIES: dict[str, Strategy] = {
    "scratch": Strategy("random initialisation, every layer trained (the baseline)", False, 3e-3, _train_everything),
    "feature-extraction": Strategy("pretrained body frozen, BatchNorm too; only the new head learns",
                                   True, 1e-2, _feature_extraction),
    "full": Strategy("every layer trained at one lr, 1cycle schedule", True, 1e-3, _train_everything),
    "gradual": Strategy("ULMFiT: one more group unfrozen every epochs/groups epochs (all --epochs run), "
                        "lr / 2.6 per group down, slanted triangular",
                        True, 1e-2, _gradual),
    "fine-tune": Strategy("fastai: 1 epoch head only, then all with slice(lr/200, lr/2)", True, 2e-3, _fastai_fine_tune),
    "lp-ft": Strategy("linear probe at lr, then every layer at lr / 10 (Kumar et al. 2022)", True, 1e-2, _lp_ft),
    "l2sp": Strategy("full, with L2-SP pulling the body toward its pretrained values", True, 1e-3, _train_everything,
                     l2sp=True),
}
STRATEGIES["ulmfit"] = STRATEGIES["gradual"]


def strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise InputError(f"unknown strategy {name!r}: expected one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def make_learner(model, name: str, loader, valid_loader, pretrained_state=None, progress=None) -> Learner:
    """A ``Learner`` for strategy ``name``; ``progress``: tqdm bars on a terminal, else lines."""
    regularizer = L2SP(model, pretrained_state).penalty if strategy(name).l2sp else None
    if progress is None:
        progress = True if sys.stderr.isatty() else "lines"
    return Learner(model, loader, valid_loader, regularizer=regularizer, progress=progress)


# --------------------------------------------------------------------------- the demo

@dataclass(frozen=True)
class DemoRun:
    """One row of the table: ``strategy`` trained at ``lr`` (None: its default)."""

    label: str
    strategy: str
    lr: float | None = None


DEMO_RUNS = (
    DemoRun("from scratch (baseline)", "scratch"),
    DemoRun("feature extraction", "feature-extraction"),
    DemoRun("full fine-tuning", "full"),
    DemoRun("full fine-tuning at 30x the lr", "full", 3e-2),
    DemoRun("gradual unfreezing + discr. lr + STLR", "gradual"),
)


@dataclass(frozen=True)
class DemoConfig:
    """Everything that sets the demo's numbers; the defaults are the demo. ``limit`` keeps
    only the first ``limit`` source images and test images of both tasks (quick runs).
    The source model is pretrained once (``seed``); each row is fine-tuned ``seeds`` times,
    each time from another sample of labelled target images, head and batch order."""

    source: str = "mnist-bundled"
    target: str = "digits"
    labels_per_class: int | None = 2  # None: every training image
    model: str = "digit-cnn"
    width: int = 16
    pretrain_epochs: int = 15
    pretrain_lr: float = 3e-3
    batch_size: int = 128
    finetune_epochs: int = 12
    finetune_batch_size: int = 20
    repeats: int = 10
    seed: int = 0
    seeds: int = 3  # fine-tune with seeds seed .. seed + seeds - 1: other labelled images, head, batches
    limit: int | None = None
    runs: tuple = DEMO_RUNS

    def check(self) -> "DemoConfig":
        """Return the config if every setting can be used; raise ``InputError`` otherwise."""
        if self.model not in MODELS:
            raise InputError(f"unknown model {self.model!r}: expected one of {', '.join(MODELS)}")
        for run in self.runs:
            strategy(run.strategy)
            if run.lr is not None:
                _check_positive(f"the lr of {run.label!r}", run.lr, float)
        for name in ("width", "pretrain_epochs", "batch_size", "finetune_epochs", "finetune_batch_size", "repeats",
                     "seeds"):
            _check_positive(name, getattr(self, name))
        if self.labels_per_class is not None:
            _check_positive("labels_per_class", self.labels_per_class)
        _check_positive("pretrain_lr", self.pretrain_lr, float)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise InputError(f"seed must be a non-negative int, got {self.seed!r}")
        return self


def _check_positive(name: str, value, kind=int) -> None:
    ok = isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value > 0):
        raise InputError(f"{name.replace('_', '-')} must be a positive {kind.__name__}, got {value!r}")


@dataclass
class RunResult:
    """One fine-tuning run (one row, one seed). ``source_accuracy``: the source test accuracy
    of the fine-tuned body under the original head, *after* fine-tuning (None when the body
    never saw the source task)."""

    label: str
    strategy: str
    lr: float
    seed: int
    target_accuracy: float
    source_accuracy: float | None
    trainable: int
    total: int
    seconds: float
    history: object = field(repr=False)
    model: nn.Module = field(repr=False)


@dataclass
class DemoResult:
    """``runs``: every (row, seed) run; ``summaries``: one ``RowSummary`` per row; ``claims``:
    each sentence of ``demo_report.CLAIMS`` and whether it held in this run."""

    config: DemoConfig
    out_dir: Path
    checkpoint: Path
    pretrained_source_accuracy: float
    runs: list
    summaries: list
    claims: dict
    environment: dict
    table: str
    plot: Path | None
    seconds: float
    cpu_seconds: float


def pretrain(config: DemoConfig, source: ImageData, log=print):
    """Train a fresh model on the whole source training set; returns ``(model, learner)``."""
    manual_seed(config.seed)
    model = build_model(config.model, source.num_classes, config.width)
    loader = train_loader(source, np.arange(len(source.y_train)), config.batch_size, config.seed)
    learner = make_learner(model, "scratch", loader, None)
    log(f"pretraining {config.model} (width {config.width}) on {source.name}: {len(source.y_train)} images, "
        f"{config.pretrain_epochs} epochs, 1cycle to lr {config.pretrain_lr}")
    learner.fit_one_cycle(config.pretrain_epochs, config.pretrain_lr)
    return model, learner


def finetune_run(run: DemoRun, config: DemoConfig, target: ImageData, indices, state: dict | None = None,
                 source: ImageData | None = None, log=print, seed: int | None = None,
                 curves: bool = True) -> RunResult:
    """Train one row of the table from ``seed`` (default ``config.seed``) and measure it: a
    new model for ``target`` (its body transplanted from ``state`` unless the strategy starts
    from scratch), trained on the images at ``indices``; source accuracy when ``source`` is
    given; the target test accuracy after every epoch (the learning curve) when ``curves``."""
    seed = config.seed if seed is None else seed
    chosen = strategy(run.strategy)
    lr = chosen.lr if run.lr is None else run.lr
    if chosen.pretrained and state is None:
        raise InputError(f"strategy {run.strategy!r} starts from a pretrained model: give it a checkpoint")
    log(f"\n== {run.label}: {chosen.summary} (lr {lr:g}, seed {seed})")
    manual_seed(seed + 1)  # the new head starts the same in every pretrained run of a seed
    model = build_model(config.model, target.num_classes, config.width)
    if chosen.pretrained:
        load_pretrained_body(model, state, config.model)
    loader = train_loader(target, indices, config.finetune_batch_size, seed, config.repeats)
    learner = make_learner(model, run.strategy, loader, test_loader(target) if curves else None, state)
    started = time.perf_counter()
    chosen.train(learner, config.finetune_epochs, lr)
    seconds = time.perf_counter() - started
    kept = None
    if chosen.pretrained and source is not None:
        kept = source_accuracy(model, state, source, config.model, config.width)
    return RunResult(
        label=run.label, strategy=run.strategy, lr=lr, seed=seed, target_accuracy=evaluate_accuracy(model, test_loader(target)),
        source_accuracy=kept, trainable=trainable_parameters(model), total=sum(p.numel() for p in model.parameters()),
        seconds=seconds, history=learner.history, model=model,
    )


def write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_write(path) as file:
        file.write(text.encode("utf-8"))


def run_demo(out_dir="minift-demo", config: DemoConfig = DemoConfig(), log=print) -> DemoResult:
    """Pretrain, save, transplant, fine-tune every run of ``config.runs``; write the table
    (``results.txt``, ``results.json``) and the plot into ``out_dir``; return everything."""
    started, cpu_started = time.perf_counter(), time.process_time()
    config.check()
    source = limit_images(load_images(config.source), config.limit, config.seed)
    target = limit_images(load_images(config.target), config.limit, config.seed)
    indices = few_shot_indices(target, config.labels_per_class, config.seed)  # refused before out_dir exists
    with output_directory(out_dir) as out_dir:
        return _run_demo(out_dir, config, source, target, indices, log, started, cpu_started)


def _run_demo(out_dir: Path, config: DemoConfig, source, target, indices, log, started, cpu_started) -> DemoResult:
    from . import demo_report, provenance

    environment = provenance.environment()
    log(provenance.describe(environment))
    log(f"\n[1/4] source task: {source.name}, {len(source.y_train)} training images, {source.num_classes} classes")
    pretrained, _ = pretrain(config, source, log)
    pretrained_accuracy = evaluate_accuracy(pretrained, test_loader(source))
    checkpoint = out_dir / "pretrained.safetensors"
    io.save(pretrained.state_dict(), checkpoint)
    log(f"source test accuracy {pretrained_accuracy:.3f}; saved {checkpoint}")

    log(f"\n[2/4] target task: {target.name}, {len(indices)} labelled images "
        f"({config.labels_per_class} per class), {len(target.y_test)} test images")
    state = load_checkpoint(checkpoint)
    report = load_pretrained_body(build_model(config.model, target.num_classes, config.width), state, config.model)
    log(str(report))

    seeds = range(config.seed, config.seed + config.seeds)
    log(f"\n[3/4] fine-tuning {len(config.runs)} ways, {config.finetune_epochs} epochs of "
        f"{config.repeats} passes over the labelled images each, with {config.seeds} seeds "
        f"({', '.join(map(str, seeds))}: other labelled images, head and batch order each)")
    rows = []
    for seed in seeds:
        labelled = indices if seed == config.seed else few_shot_indices(target, config.labels_per_class, seed)
        rows += [finetune_run(run, config, target, labelled, state, source, log, seed=seed,
                              curves=seed == config.seed) for run in config.runs]

    log("\n[4/4] results")
    summaries = demo_report.summarize(rows, config.runs)
    claims = demo_report.check_claims(summaries, pretrained_accuracy)
    table = demo_report.format_table(summaries, source, target, pretrained_accuracy, config.seeds, environment)
    table += "\n" + demo_report.format_claims(claims)
    write_text(out_dir / "results.txt", table + "\n")
    summary = {"environment": environment,
               "config": {**asdict(config), "runs": [asdict(run) for run in config.runs]},
               "pretrained_source_accuracy": pretrained_accuracy,
               "summaries": [asdict(row) for row in summaries],
               "claims": claims,
               "runs": [{key: getattr(row, key) for key in ("label", "strategy", "lr", "seed", "target_accuracy",
                                                           "source_accuracy", "trainable", "total", "seconds")}
                        for row in rows]}
    write_text(out_dir / "results.json", json.dumps(summary, indent=2) + "\n")
    log(table)
    plot = demo_report.plot_results(rows, summaries, pretrained_accuracy, out_dir / "learning_curves.png")
    log(f"plots: {plot}" if plot else "matplotlib is not installed: no plot (pip install 'minift[plot]')")
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    log(f"demo finished in {seconds:.0f} s ({cpu_seconds:.0f} s of CPU time); outputs in {out_dir}")
    return DemoResult(config, out_dir, checkpoint, pretrained_accuracy, rows, summaries, claims, environment, table,
                      plot, seconds, cpu_seconds)
