"""Which part of a pretrained encoder to train: four strategies compared on Reuters R8.

The model is ``minift.text.classifier.SentenceClassifier`` (all-MiniLM-L6-v2, mean pooling,
a new linear head), and the question is what to train. Four answers, from the cheapest:

``frozen``   the encoder is a fixed feature extractor: embed every text once (no graph,
             no backward), then train only the head on the stored vectors -- seconds.
``top_k``    the top ``k`` encoder layers and the head train, the rest is frozen; the
             learning rate decays layer by layer going down (``layerwise_lrs``), so the
             layers nearest the input, whose features are the most general, move least.
``gradual``  gradual unfreezing (ULMFiT): the first epoch trains the head alone (or,
             when LP-FT's probe has trained it already, the head and the top layer),
             each following epoch unfreezes one more layer from the top
             (``GradualUnfreezing``), with the same per-layer rates as ``top_k``.
``lora``     every pretrained weight is frozen; low-rank adapters on the attention query
             and value projections of every layer (``minift.finetune.lora``) and the head
             train -- 0.3 % of the parameters, yet every layer adapts.

``compare_strategies`` runs them on one sample of R8 (the official split) and reports
test accuracy, trainable parameters, time and the process's peak memory. The command
line behind ``minift finetune-text`` is ``minift.apps.finetune_text``; the tokens/s
benchmark is ``minift.text.throughput``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from .. import backend
from ..backend.allocator import peak_rss_mb
from ..data import ArrayDataset, DataLoader
from ..finetune.forgetting import evaluate_accuracy
from ..finetune.freezing import freeze, freeze_to, set_trainable, trainable_report
from ..finetune.lora import apply_lora
from ..finetune.lrs import layerwise_lrs
from ..engine.random import manual_seed
from ..nn import Module, Sequential
from ..train import GradualUnfreezing, Learner
from .classifier import EncodedText, SentenceClassifier, SortishLoader, embed_all, encode, load_pretrained_classifier
from .datasets import load_r8
from .pretrained import locate_minilm_l6_v2
from .tokenizer import BertTokenizer

STRATEGIES = ("frozen", "top_k", "gradual", "lora")


def option(default, text: str):
    """A config field with its command-line help text."""
    return field(default=default, metadata={"help": text})


@dataclass
class TextFinetuneConfig:
    """The options of ``minift finetune-text``; each field is also a flag (``--train-size``)."""

    strategies: tuple = option(STRATEGIES, "comma-separated, some of " + ",".join(STRATEGIES))
    train_size: int = option(1000, "training texts sampled from R8's 5,485 (0: all)")
    test_size: int = option(1000, "test texts sampled from R8's 2,189 (0: all)")
    max_length: int = option(128, "tokens per text, [CLS] and [SEP] included")
    batch_size: int = option(8, "texts per batch")
    epochs: int = option(2, "epochs of every strategy but frozen")
    frozen_epochs: int = option(30, "epochs of the head on the stored vectors (cheap)")
    frozen_lr: float = option(1e-2, "the head's learning rate when the encoder is frozen (AdamW)")
    head_lr: float = option(1e-3, "the head's learning rate in top_k and gradual")
    layer_decay: float = option(0.3, "lr of a layer / lr of the layer above (top_k, gradual)")
    top_k: int = option(2, "encoder layers that top_k trains")
    lora_r: int = option(8, "LoRA rank")
    lora_alpha: float = option(16.0, "LoRA alpha (the update is scaled by alpha / r)")
    lora_lr: float = option(3e-3, "the learning rate of the adapters and the head")
    dropout: float = option(0.1, "dropout before the head")
    lp_ft: bool = option(True, "start fine-tuning from the frozen strategy's head (LP-FT)")
    seed: int = option(0, "seeds the sample, the head, dropout and the batch order")
    backend: str = option("auto", "numpy, numba or auto")
    model_dir: str | None = option(None, "all-MiniLM-L6-v2's folder (default: the installed package)")
    progress: bool = option(False, "print trainable parameters and a line per epoch")

    def __post_init__(self):
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies:
            raise ValueError(f"strategies must be some of {', '.join(STRATEGIES)}, got {list(self.strategies)}")
        for name in ("train_size", "test_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0: the whole set), got {getattr(self, name)}")
        for name in ("batch_size", "epochs", "frozen_epochs", "lora_r", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay}")


@dataclass
class StrategyResult:
    """One strategy's outcome: test ``accuracy``, parameter counts, wall-clock ``seconds``
    and ``cpu_seconds`` (all threads; on a shared machine the honest measure of work) for
    loading, training and testing, the process's peak RSS so far, each step's loss, and
    the trained head's ``state_dict``."""

    strategy: str
    accuracy: float
    trainable: int
    total: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    losses: list = field(default_factory=list, repr=False)
    head: dict = field(default_factory=dict, repr=False)

    def summary(self) -> dict:
        """Everything but the head's weights (what the JSON report holds)."""
        return {key: value for key, value in asdict(self).items() if key != "head"}



SCHEDULE = "cosine"
"""Every strategy's lr schedule (linear warm-up over 10% of the steps, then a cosine to 0):
one schedule for all, so that the comparison is about what trains, not how fast."""


@dataclass
class TrainingPlan:
    """How a strategy trains a prepared model: ``Learner.fit(epochs, lr, SCHEDULE, unfreeze_schedule)``."""

    lr: object
    epochs: int
    unfreeze_schedule: object = None


def prepare(name: str, model: SentenceClassifier, config: TextFinetuneConfig, head_trained: bool = False) -> TrainingPlan:
    """Make ``model`` ready for strategy ``name`` (freeze, add adapters) and say how to train it.

    ``frozen``: only the head is trainable (``run_strategy`` trains it on stored vectors);
    ``top_k``: the head and the top ``config.top_k`` layers, rates ``layerwise_lrs``;
    ``gradual``: the head; ``GradualUnfreezing`` unfreezes one more layer each epoch,
    starting with the top layer at once if ``head_trained`` (the head came from a probe);
    ``lora``: adapters on every query and value projection, and the head.
    """
    n_groups = len(model.layer_groups())
    if name == "frozen":
        model.requires_grad_(False)
        model.head.requires_grad_(True)
        return TrainingPlan(config.frozen_lr, config.frozen_epochs)
    if name == "top_k":
        if not 1 <= config.top_k <= n_groups - 2:
            raise ValueError(f"top_k must be between 1 and {n_groups - 2} encoder layers, got {config.top_k}")
        freeze_to(model, n_groups - 1 - config.top_k)
        return TrainingPlan(layerwise_lrs(config.head_lr, n_groups, config.layer_decay), config.epochs)
    if name == "gradual":
        freeze(model)
        return TrainingPlan(layerwise_lrs(config.head_lr, n_groups, config.layer_decay), config.epochs,
                            GradualUnfreezing(every=1, start=2 if head_trained else 1))
    if name == "lora":
        apply_lora(model.encoder, ("query", "value"), r=config.lora_r, alpha=config.lora_alpha)
        set_trainable(model, "head.*", True)
        return TrainingPlan(config.lora_lr, config.epochs)
    raise ValueError(f"unknown strategy {name!r}: expected one of {', '.join(STRATEGIES)}")


def fit(model: Module, plan: TrainingPlan, train_loader, progress: bool = False) -> Learner:
    """Train with a ``Learner`` (AdamW) as ``plan`` says; returns the learner (its ``history``)."""
    learner = Learner(model, train_loader, opt="adamw", metrics=(), progress="lines" if progress else False)
    if progress:
        print(trainable_report(model, learner.groups))
    learner.fit(plan.epochs, plan.lr, schedule=SCHEDULE, unfreeze_schedule=plan.unfreeze_schedule)
    return learner


def run_strategy(name: str, data: EncodedText, config: TextFinetuneConfig, start_head: dict | None = None) -> StrategyResult:
    """Train and test one strategy from freshly loaded pretrained weights (seeded); the
    head starts from ``start_head`` (a ``state_dict`` of a head) if given, else at random."""
    manual_seed(config.seed)
    started, cpu_started = time.perf_counter(), time.process_time()
    model = load_pretrained_classifier(config.model_dir, len(data.classes), config.dropout)
    if start_head is not None:
        model.head.load_state_dict(start_head)
    plan = prepare(name, model, config, head_trained=start_head is not None)
    train_lengths, test_lengths = data.lengths(data.train_ids), data.lengths(data.test_ids)
    if name == "frozen":  # embed once, then train the head alone on the stored vectors
        train_vectors = embed_all(model, data.train_ids, train_lengths, config.batch_size)
        test_vectors = embed_all(model, data.test_ids, test_lengths, config.batch_size)
        trained = Sequential(model.head)  # the head alone, as a model the Learner can cut into groups
        train_loader = DataLoader(ArrayDataset(train_vectors, data.train_labels), config.batch_size,
                                  shuffle=True, seed=config.seed)
        test_loader = DataLoader(ArrayDataset(test_vectors, data.test_labels), 256)
    else:
        trained = model
        train_loader = SortishLoader(ArrayDataset(data.train_ids, data.train_labels), train_lengths,
                                     config.batch_size, shuffle=True, seed=config.seed)
        test_loader = SortishLoader(ArrayDataset(data.test_ids, data.test_labels), test_lengths, 64)
    learner = fit(trained, plan, train_loader, config.progress)
    accuracy = evaluate_accuracy(trained, test_loader)
    return StrategyResult(name, accuracy, model.num_parameters(trainable_only=True), model.num_parameters(),
                          time.perf_counter() - started, time.process_time() - cpu_started, peak_rss_mb(),
                          list(learner.history.losses), model.head.state_dict())


def compare_strategies(config: TextFinetuneConfig, data: EncodedText | None = None, log=print) -> list:
    """Run ``config.strategies`` on the same R8 sample, in the order of ``STRATEGIES``;
    returns their ``StrategyResult``s.

    With ``config.lp_ft`` ``frozen`` runs first even when not asked for, and every other
    strategy starts from the head it trained (LP-FT, Kumar et al. 2022: a linear probe,
    then fine-tuning). Their times do not include the probe's.
    """
    with backend.use_backend(config.backend):
        if data is None:
            files = locate_minilm_l6_v2(config.model_dir)
            config.model_dir = str(files.directory)
            tokenizer = BertTokenizer.from_pretrained(files.directory)
            data = encode(tokenizer, load_r8(), config.train_size, config.test_size, config.max_length, config.seed)
        names = [name for name in STRATEGIES if name in config.strategies or (name == "frozen" and config.lp_ft)]
        results, start_head = [], None
        for name in names:
            results.append(run_strategy(name, data, config, start_head))
            if name == "frozen" and config.lp_ft:
                start_head = results[-1].head
            log(format_results(results[-1:], header=not results[:-1]))
    return results


def format_results(results: list, header: bool = True) -> str:
    """A table: strategy, accuracy, trainable / total parameters, seconds (wall, CPU), peak RSS."""
    lines = [f"{'strategy':<9} {'accuracy':>8} {'trainable':>11} {'total':>11} {'wall s':>7} {'CPU s':>7} {'peak RSS MB':>11}"] if header else []
    lines += [f"{r.strategy:<9} {r.accuracy:>8.4f} {r.trainable:>11,} {r.total:>11,} {r.seconds:>7.1f} {r.cpu_seconds:>7.1f} "
              f"{r.peak_rss_mb:>11.0f}" for r in results]
    return "\n".join(lines)
