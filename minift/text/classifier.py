"""Fine-tune a pretrained sentence encoder to classify text: all-MiniLM-L6-v2 on Reuters R8.

The model is the pretrained encoder, mean pooling, and a new linear head::

    input_ids (N, L) -> BertModel -> hidden (N, L, 384) -> mean over real tokens (N, 384)
                     -> dropout -> head: Linear(384, classes) -> logits (N, classes)

and the question is what to train. Four answers, from the cheapest:

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
test accuracy, trainable parameters, time and the process's peak memory; ``finetune_text``
is the command line behind ``minift finetune-text``.

Two things keep a NumPy transformer fast enough to fine-tune on a laptop CPU. The
attention mask is ``input_ids != [PAD]`` and padding columns shared by the whole batch
are cut off before the encoder runs (that changes no output: padding is masked
anyway); and ``SortishLoader`` batches texts of similar length together (fastai's
``SortishSampler``), so there are few such columns left. R8's training texts have a median
of 83 WordPiece tokens and 28 % reach ``max_length=128``: an epoch in random batches of 16
computes 1.57 token positions per real token, in sortish batches 1.01.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import sys
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from .. import backend
from ..backend import threads
from ..engine.autograd import no_grad
from ..data import ArrayDataset, DataLoader
from ..finetune.freezing import freeze, freeze_to, set_trainable, trainable_report
from ..finetune.forgetting import evaluate_accuracy
from ..finetune.lora import apply_lora
from ..finetune.lrs import layerwise_lrs
from ..finetune.unfreezing import GradualUnfreezing
from ..nn import Dropout, Linear, Module, Sequential
from ..nn.bert import BertModel, mean_pool
from ..engine.random import manual_seed
from ..engine.tensor import Tensor
from ..train import Learner
from .datasets import TextClassificationData, load_r8
from .pretrained import locate_minilm_l6_v2
from .tokenizer import BertTokenizer

STRATEGIES = ("frozen", "top_k", "gradual", "lora")


class SentenceClassifier(Module):
    """``head(dropout(mean_pool(encoder(input_ids))))``: ``input_ids (N, L)`` int -> logits ``(N, C)``.

    The attention mask is ``input_ids != pad_token_id`` ([PAD] never occurs in real text),
    so the model takes one input and fits any ``DataLoader`` and ``Learner``. Trailing
    columns that are padding in every row are dropped first.
    Layer groups: the encoder's (embeddings, each layer), then the head.
    """

    def __init__(self, encoder: BertModel, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = Dropout(dropout)
        self.head = Linear(encoder.config.hidden_size, num_classes, dtype=encoder.embeddings.word_embeddings.weight.dtype)

    def embed(self, input_ids) -> Tensor:
        """The mean-pooled sentence vectors ``(N, H)``, before dropout and head."""
        ids = input_ids.data if isinstance(input_ids, Tensor) else np.asarray(input_ids)
        mask = ids != self.encoder.config.pad_token_id
        used = np.flatnonzero(mask.any(axis=0))
        length = int(used[-1]) + 1 if used.size else 1  # columns after it are padding in every row
        ids, mask = ids[:, :length], mask[:, :length]
        return mean_pool(self.encoder(ids, mask).last_hidden_state, mask)

    def forward(self, input_ids) -> Tensor:
        return self.head(self.dropout(self.embed(input_ids)))

    def layer_groups(self) -> list:
        return [*self.encoder.layer_groups(), [self.dropout, self.head]]


class SortishLoader(DataLoader):
    """A ``DataLoader`` whose batches hold texts of similar length (fastai's ``SortishSampler``).

    With ``shuffle``, each epoch: a seeded permutation, cut into chunks of 50 batches; each
    chunk sorted by length, cut into batches; the full batches in a seeded random order,
    then the short one if the size does not divide evenly. The
    batches stay random (a new mix every epoch) but their rows have similar lengths, so
    little padding is left once each batch is trimmed. Without ``shuffle``: sorted by length.
    ``lengths[i]``: the number of tokens of sample ``i``.
    """

    chunk_batches = 50

    def __init__(self, dataset, lengths, batch_size: int = 1, shuffle: bool = False, seed=None):
        super().__init__(dataset, batch_size=batch_size, shuffle=shuffle, seed=seed)
        self.lengths = np.asarray(lengths)
        if self.lengths.shape != (len(dataset),):
            raise ValueError(f"lengths must give one length per sample ({len(dataset)}), got shape {self.lengths.shape}")

    def epoch_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.argsort(-self.lengths, kind="stable").astype(np.int64)
        rng = np.random.default_rng([self.seed, 2, epoch])  # a stream of its own (DataLoader uses 0 and 1)
        order = rng.permutation(len(self.lengths))
        chunk = self.batch_size * self.chunk_batches
        order = np.concatenate([part[np.argsort(-self.lengths[part], kind="stable")]
                                for part in np.split(order, range(chunk, len(order), chunk))])
        # The loader cuts the order into consecutive slices of batch_size, so only whole
        # batches are shuffled; the short one, if any, stays at the end.
        whole = len(order) // self.batch_size
        batches = np.split(order[:whole * self.batch_size], whole) if whole else []
        shuffled = [batches[i] for i in rng.permutation(whole)]
        return np.concatenate([*shuffled, order[whole * self.batch_size:]]).astype(np.int64)


@dataclass
class EncodedText:
    """Token ids ``(n, max_length)`` (right-padded with [PAD]) and labels, for train and test."""

    train_ids: np.ndarray
    train_labels: np.ndarray
    test_ids: np.ndarray
    test_labels: np.ndarray
    classes: tuple
    pad_token_id: int

    def lengths(self, ids: np.ndarray) -> np.ndarray:
        return (ids != self.pad_token_id).sum(axis=1)


def sample_split(data: TextClassificationData, train_size: int, test_size: int, seed: int):
    """Seeded random samples (without replacement) of the official train and test sets;
    ``0`` means the whole set. Returns ``(train_texts, train_labels, test_texts, test_labels)``."""
    rng = np.random.default_rng(seed)

    def take(texts, labels, size, what):
        if size < 0 or size > len(texts):
            raise ValueError(f"{what} must be between 0 (all) and {len(texts)}, got {size}")
        chosen = np.sort(rng.permutation(len(texts))[:size]) if size else np.arange(len(texts))
        return [texts[i] for i in chosen], labels[chosen]

    return (*take(data.train_texts, data.train_labels, train_size, "train_size"),
            *take(data.test_texts, data.test_labels, test_size, "test_size"))


def encode(tokenizer: BertTokenizer, data: TextClassificationData, train_size: int, test_size: int,
           max_length: int, seed: int) -> EncodedText:
    """Sample the split (``sample_split``) and tokenize it, truncating to ``max_length``."""
    train_texts, train_labels, test_texts, test_labels = sample_split(data, train_size, test_size, seed)

    def ids(texts):
        return tokenizer(texts, max_length=max_length, padding="max_length")["input_ids"]

    return EncodedText(ids(train_texts), train_labels, ids(test_texts), test_labels, data.classes,
                       tokenizer.pad_token_id)


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


def peak_rss_mb() -> float:
    """The peak resident memory of this process so far (``getrusage``; Linux reports kB)."""
    kilobytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kilobytes / 1024 if sys.platform != "darwin" else kilobytes / 2**20


def load_pretrained_classifier(model_dir, num_classes: int, dropout: float) -> SentenceClassifier:
    """all-MiniLM-L6-v2 (without its unused pooler) under a new head."""
    encoder = BertModel.from_pretrained(model_dir, add_pooling_layer=False)
    return SentenceClassifier(encoder, num_classes, dropout)


def embed_all(model: SentenceClassifier, ids: np.ndarray, lengths: np.ndarray, batch_size: int) -> np.ndarray:
    """Mean-pooled vectors of every row of ``ids`` ``(n, H)``, in eval mode, without a graph."""
    loader = SortishLoader(ArrayDataset(ids, np.zeros(len(ids))), lengths, batch_size)
    order = loader.epoch_order(0)
    was_training = model.training
    model.eval()
    vectors = np.empty((len(ids), model.encoder.config.hidden_size), dtype=np.float32)
    try:
        with no_grad():
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                vectors[rows] = model.embed(ids[rows]).numpy()
    finally:
        model.train(was_training)
    return vectors


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


def measure_throughput(model: BertModel, batch_size: int = 16, length: int = 128, repeats: int = 2, seed: int = 0,
                       implementation: str = "minift") -> dict:
    """Tokens per second of ``model`` on random ids without padding, for ``inference``
    (forward, no graph, eval mode) and ``train_step`` (forward and backward to every
    parameter, train mode): ``{step: {"tokens_per_s": ..., "tokens_per_cpu_s": ...}}``, the
    best of ``repeats`` timings after one warm-up. ``implementation="minift"`` runs the model
    under the current backend; ``"torch"`` runs the same weights through the PyTorch
    reference (``minift.text.torch_bert``). Tokens per CPU-second (all threads) is the
    figure that survives a machine shared with other jobs."""
    if implementation not in ("minift", "torch"):
        raise ValueError(f"implementation must be 'minift' or 'torch', got {implementation!r}")
    ids = np.random.default_rng(seed).integers(1, model.config.vocab_size, (batch_size, length))  # never [PAD] (0)
    steps = _torch_steps(model, ids) if implementation == "torch" else _minift_steps(model, ids)
    timings = {}
    for name, step in steps.items():
        step()
        wall, cpu = zip(*(_seconds(step) for _ in range(repeats)))
        timings[name] = {"tokens_per_s": ids.size / min(wall), "tokens_per_cpu_s": ids.size / min(cpu)}
    return timings


def _minift_steps(model: BertModel, ids: np.ndarray) -> dict:
    mask = np.ones_like(ids)

    def inference():
        model.eval()
        with no_grad():
            model(ids, mask)

    def train_step():
        model.train()
        hidden = model(ids, mask).last_hidden_state
        (hidden * hidden).mean().backward()
        model.zero_grad()

    return {"inference": inference, "train_step": train_step}


def _torch_steps(model: BertModel, ids: np.ndarray) -> dict:
    """The same two steps in PyTorch (as many threads as minift's pools), without dropout:
    the reference has none, a few per cent of the work."""
    import torch

    from .torch_bert import torch_bert, torch_state

    torch.set_num_threads(threads.cores())
    state = torch_state(model.state_dict(), requires_grad=True)
    ids, mask = torch.from_numpy(ids), torch.ones(ids.shape, dtype=torch.int64)

    def inference():
        with torch.no_grad():
            torch_bert(state, model.config, ids, mask, pooler=False)

    def train_step():
        hidden, _ = torch_bert(state, model.config, ids, mask, pooler=False)
        (hidden * hidden).mean().backward()
        for tensor in state.values():
            tensor.grad = None

    return {"inference": inference, "train_step": train_step}


def _seconds(step) -> tuple:
    """(wall, CPU) seconds that ``step()`` takes."""
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - wall, time.process_time() - cpu


# ---------------------------------------------------------------- command line

def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``minift finetune-text``, one per field of ``TextFinetuneConfig``
    (``--train-size 1000``, ``--strategies frozen,lora``), plus ``--bench`` and ``--json``."""
    defaults = TextFinetuneConfig()
    for option in fields(TextFinetuneConfig):
        flag = "--" + option.name.replace("_", "-")
        default = getattr(defaults, option.name)
        text = option.metadata["help"] + ("" if default is None else f" (default: {default})")
        if option.name == "strategies":
            parser.add_argument(flag, default=",".join(default), help=text.replace(str(default), "all"))
        elif isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        else:
            parser.add_argument(flag, type=str if default is None else type(default), default=default, help=text)
    parser.add_argument("--bench", action="store_true",
                        help="measure tokens/s of MiniLM (inference and train step, length --max-length, "
                             "batch --batch-size) under numpy and numba, and PyTorch if installed, "
                             "instead of fine-tuning")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    return parser


def finetune_text(args) -> int:
    """``minift finetune-text``: compare the fine-tuning strategies on R8 (or, with
    ``--bench``, measure throughput) and print a table. ``args``: an ``argparse.Namespace``
    from a parser set up by ``add_arguments``. Returns the exit status: 0, or 1 when
    the pretrained weights or the R8 files are not installed (the message says how)."""
    options = {f.name: getattr(args, f.name) for f in fields(TextFinetuneConfig) if hasattr(args, f.name)}
    if isinstance(options.get("strategies"), str):
        options["strategies"] = tuple(s.strip() for s in options["strategies"].split(",") if s.strip())
    config = TextFinetuneConfig(**options)
    try:
        if getattr(args, "bench", False):
            results = _bench(config)
            print(json.dumps(results, indent=2))
        else:
            results = [r.summary() for r in compare_strategies(config)]
    except FileNotFoundError as missing:
        print(f"minift finetune-text: {missing}", file=sys.stderr)
        return 1
    if getattr(args, "json", None):
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump({"config": asdict(config), "results": results}, file, indent=2)
    return 0


def _bench(config: TextFinetuneConfig) -> dict:
    files = locate_minilm_l6_v2(config.model_dir)
    model = BertModel.from_pretrained(files.directory, add_pooling_layer=False)
    results = {}
    for name, (available, _) in backend.available_backends().items():
        if available and name != "cupy":
            with backend.use_backend(name):
                results[name] = measure_throughput(model, config.batch_size, config.max_length, repeats=3,
                                                   seed=config.seed)
    if importlib.util.find_spec("torch") is not None:
        results["torch"] = measure_throughput(model, config.batch_size, config.max_length, repeats=3,
                                              seed=config.seed, implementation="torch")
    results["peak_rss_mb"] = peak_rss_mb()
    return results


def main(argv=None) -> int:
    """``python -m minift.text.classify [options]``: the same as ``minift finetune-text``."""
    parser = add_arguments(argparse.ArgumentParser(prog="minift finetune-text", description=__doc__.split("\n")[0]))
    return finetune_text(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
