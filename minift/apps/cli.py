"""The ``minift`` command (also ``python -m minift``).

    minift demo                 pretrain, save, transplant, fine-tune five ways, compare
    minift pretrain             train a model on a source dataset and save it
    minift finetune             put a saved model's body under a new head and fine-tune it
    minift info                 version, backends, datasets, threading
    minift bench                time the kernels on every backend
    minift finetune-image       ImageNet EfficientNet-Lite0 on few Fashion-MNIST labels (or --bench)
    minift course student OUT   write a student edition (exercise bodies removed); ``grade DIR`` grades one

``minift COMMAND --help`` explains each command's options. ``--backend`` (before or after
the command) chooses the kernels: ``numpy``, ``numba``, ``cupy`` or ``auto``.

Exit status: 0 on success; 2 when an argument cannot be used (an unknown name, a missing
or unfitting checkpoint, an output that cannot be written), with a one-line message on
stderr and nothing written; 1 when training fails (a loss that became NaN); 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

from .. import __version__, backend
from ..distributed.process_group import abort_if_distributed
from ..distributed.training import announce_data_parallel, is_main_process
from ..data import DATASETS

BACKENDS = (*backend.BACKEND_MODULES, "auto")


class UsageError(Exception):
    """Raised by the argument parser instead of printing usage and exiting."""


class Parser(argparse.ArgumentParser):
    """argparse, except that a bad argument becomes one line on stderr and exit status 2
    (argparse's own output is the whole usage text, then the message)."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def int_at_least(minimum: int, expected: str):
    """An argparse ``type``: the text as an int ``>= minimum``, else "expected <expected>, got ..."."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


positive_int = int_at_least(1, "a positive integer")
non_negative_int = int_at_least(0, "an integer >= 0")


def learning_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a learning rate such as 1e-3, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a learning rate > 0, got {text!r}")
    return value


def labels_per_class(text: str):
    return None if text == "all" else positive_int(text)


# --------------------------------------------------------------------------- commands

def run_demo_command(args) -> None:
    from .demo import DemoConfig, run_demo

    config = DemoConfig(labels_per_class=args.labels_per_class, pretrain_epochs=args.pretrain_epochs,
                        finetune_epochs=args.finetune_epochs, seed=args.seed, seeds=args.seeds)
    run_demo(args.out, config)


def run_pretrain_command(args) -> None:
    from .. import io
    from .demo import DemoConfig, check_output_file, load_images, output_directory, pretrain, test_loader
    from ..finetune import evaluate_accuracy

    config = DemoConfig(source=args.dataset, model=args.model, width=args.width, pretrain_epochs=args.epochs,
                        pretrain_lr=args.lr, batch_size=args.batch_size, seed=args.seed).check()
    out = check_output_file(args.out)
    source = load_images(args.dataset)
    with output_directory(out.parent):
        model, _ = pretrain(config, source)
        accuracy = evaluate_accuracy(model, test_loader(source))
        if is_main_process():  # under mpiexec, rank 0 writes
            io.save(model.state_dict(), out)
    print(f"{source.name} test accuracy {accuracy:.3f}; saved {out}")
    print(f"next: minift finetune --checkpoint {out} --model {args.model} --width {args.width} "
          f"--source-dataset {args.dataset} --dataset digits")


def run_finetune_command(args) -> None:
    from .. import io
    from .demo import (DemoConfig, DemoRun, InputError, build_model, check_output_file, few_shot_indices,
                       finetune_run, load_checkpoint, load_images, load_pretrained_body, output_directory, strategy)

    run = DemoRun(args.strategy, args.strategy, args.lr)
    config = DemoConfig(target=args.dataset, labels_per_class=args.labels_per_class, model=args.model,
                        width=args.width, finetune_epochs=args.epochs, finetune_batch_size=args.batch_size,
                        repeats=args.repeats, seed=args.seed, runs=(run,)).check()
    out = check_output_file(args.out)
    pretrained = strategy(args.strategy).pretrained
    if pretrained and args.checkpoint is None:
        raise InputError(f"--strategy {args.strategy} starts from a pretrained model: give --checkpoint PATH "
                         "(made by minift pretrain), or use --strategy scratch")
    state = load_checkpoint(args.checkpoint) if pretrained else None
    target = load_images(args.dataset)
    source = load_images(args.source_dataset) if args.source_dataset and pretrained else None
    indices = few_shot_indices(target, config.labels_per_class, config.seed)
    print(f"{target.name}: training on {len(indices)} labelled images, testing on {len(target.y_test)}")
    if pretrained:
        print(load_pretrained_body(build_model(args.model, target.num_classes, args.width), state, args.model))
    with output_directory(out.parent):
        result = finetune_run(run, config, target, indices, state, source)
        if is_main_process():  # under mpiexec, rank 0 writes
            io.save(result.model.state_dict(), out)
    kept = "" if result.source_accuracy is None else f"; {source.name} accuracy after {result.source_accuracy:.3f}"
    print(f"{target.name} test accuracy {result.target_accuracy:.3f}{kept}; "
          f"{result.trainable:,} of {result.total:,} parameters trainable at the end; saved {out}")


def run_info_command(args) -> None:
    from ..data import available_datasets

    print(f"minift {__version__} (Python {sys.version.split()[0]})")
    print(f"backend in use: {backend.get_backend()}   (choose with --backend or MINIFT_BACKEND)")
    print("backends:")
    for name, (available, reason) in backend.available_backends().items():
        print(f"  {name:6s} {'available' if available else 'not available: ' + reason}"
              f"{'' if available else '  -> ' + backend.INSTALL_HINTS[name]}")
    print("datasets:")
    for name, (found, where) in available_datasets().items():
        print(f"  {name:22s} {'found: ' if found else 'not found: '}{' '.join(where.split())}")
    print(f"threads: {thread_settings()}")


def thread_settings() -> str:
    """How minift's thread pools are set up (see ``minift.backend.threads``)."""
    import os

    from ..backend import threads

    settings = ", ".join(f"{name}={os.environ.get(name, 'unset')}" for name in threads.POLICY)
    return f"{settings}; BLAS and Numba pools take turns: {threads.pools_take_turns()}; {os.cpu_count()} CPUs"


def thread_sweep(text: str) -> tuple:
    """'1,2,default' -> (1, 2, None): the thread counts ``minift bench`` sweeps (None: the policy)."""
    counts = []
    for item in text.split(","):
        item = item.strip()
        if item == "default":
            counts.append(None)
        elif item.isdigit() and int(item) >= 1:
            counts.append(int(item))
        else:
            raise argparse.ArgumentTypeError(f"expected thread counts like 1,2,default; got {item!r} in {text!r}")
    return tuple(counts)


def run_bench_command(args) -> None:
    if args.distributed:  # 1 and 2 processes under mpiexec (minift.bench.distributed)
        from ..bench.distributed import report

        report(args.repeat)
        return
    from ..bench import run_benchmarks

    run_benchmarks(repeat=args.repeat, warmup=args.warmup, thread_counts=args.threads)


def run_finetune_image_command(args) -> int:
    from .demo import InputError
    from .finetune_image import finetune_image

    try:
        return finetune_image(args)
    except ValueError as error:  # an unknown strategy
        raise InputError(str(error)) from None


def run_finetune_text_command(args) -> int:
    from .demo import InputError
    from .finetune_text import finetune_text

    try:
        return finetune_text(args)
    except ValueError as error:  # a bad option value, found when the text config is built
        raise InputError(str(error)) from None


# --------------------------------------------------------------------------- the parser

def _common(parser, *, model: bool = False, seed: bool = True) -> None:
    """Options several commands share."""
    parser.add_argument("--backend", choices=BACKENDS, default=argparse.SUPPRESS,
                        help="kernels to run on (default: $MINIFT_BACKEND, else auto: numba if installed, else numpy)")
    if model:
        from .demo import MODELS

        parser.add_argument("--model", choices=list(MODELS), default="digit-cnn",
                            help="architecture, a class of minift.models (default %(default)s: DigitCNN, whose "
                                 "head reads the whole 7x7 feature map; small-cnn: SmallCNN, global average "
                                 "pooling; tiny-resnet: TinyResNet)")
        parser.add_argument("--width", type=positive_int, default=16, metavar="W",
                            help="channels of the first convolution (default %(default)s); "
                                 "pretrain and finetune must use the same --model and --width")
    if seed:
        parser.add_argument("--seed", type=non_negative_int, default=0, metavar="S",
                            help="random seed: the same seed gives the same numbers (default %(default)s)")


def build_parser() -> Parser:
    from .demo import STRATEGIES, DemoConfig

    defaults = DemoConfig()
    parser = Parser(
        prog="minift", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="minift: a fine-tuning engine written from scratch in NumPy, for reading and for courses.",
        epilog="Start with:\n"
               "  minift demo                 pretrain, transplant, fine-tune five ways, compare (about 30 s)\n"
               "  minift info                 what this installation has: backends, datasets, threads\n"
               "Each command has its own --help, e.g. 'minift finetune --help'.",
    )
    parser.add_argument("--version", action="version", version=f"minift {__version__}")
    parser.add_argument("--backend", choices=BACKENDS, default=None, dest="global_backend",
                        help="kernels to run on (default: $MINIFT_BACKEND, else auto: numba if installed, else numpy)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    datasets = list(DATASETS)

    demo = commands.add_parser(
        "demo", help="the whole transfer-learning story in about 30 seconds",
        description=(
            "Pretrain a DigitCNN (minift.models) on MNIST digits, save it, put its body under a new head for the UCI optical "
            "digits with 2 labelled images per class, and fine-tune it five ways: from scratch (the baseline), "
            "feature extraction, full fine-tuning, full fine-tuning with too high a learning rate, and gradual "
            "unfreezing with discriminative learning rates. Prints a table (target accuracy, source accuracy "
            "kept, trainable parameters, time) and writes it, the checkpoint and a plot of the learning curves "
            "into --out."),
        epilog="Example: minift demo --out /tmp/demo   (MINIFT_BACKEND=numpy minift demo: the pure NumPy kernels)")
    demo.add_argument("--out", default="minift-demo", metavar="DIR",
                      help="directory for pretrained.safetensors, results.txt, results.json, "
                           "learning_curves.png (default ./%(default)s/)")
    demo.add_argument("--labels-per-class", type=positive_int, default=defaults.labels_per_class, metavar="K",
                      help="labelled target images per class (default %(default)s)")
    demo.add_argument("--pretrain-epochs", type=positive_int, default=defaults.pretrain_epochs, metavar="N",
                      help="epochs on the source task (default %(default)s)")
    demo.add_argument("--finetune-epochs", type=positive_int, default=defaults.finetune_epochs, metavar="N",
                      help="epochs of each fine-tuning run (default %(default)s)")
    demo.add_argument("--seeds", type=positive_int, default=defaults.seeds, metavar="N",
                      help="fine-tune each way with N seeds (other labelled images, head, batch order) and "
                           "report the mean and spread (default %(default)s)")
    _common(demo)
    demo.set_defaults(run=run_demo_command)

    pretrain = commands.add_parser(
        "pretrain", help="train a model on a source dataset and save it",
        description="Train a model from scratch on every training image of DATASET (each shifted at random by up "
                    "to 2 pixels), print its test accuracy, and save its state dict to --out.",
        epilog="Example: minift pretrain --dataset fashion-mnist-bundled --epochs 5 --out fashion.safetensors")
    pretrain.add_argument("--dataset", choices=datasets, default=defaults.source, metavar="DATASET",
                          help=f"the source task (default %(default)s); one of: {', '.join(datasets)}")
    pretrain.add_argument("--epochs", type=positive_int, default=defaults.pretrain_epochs, metavar="N",
                          help="passes over the data (default %(default)s)")
    pretrain.add_argument("--lr", type=learning_rate, default=defaults.pretrain_lr,
                          help="peak learning rate of the 1cycle schedule (default %(default)s)")
    pretrain.add_argument("--batch-size", type=positive_int, default=defaults.batch_size, metavar="B",
                          help="images per step (default %(default)s)")
    pretrain.add_argument("--out", default="pretrained.safetensors", metavar="PATH",
                          help="where to save the model, .safetensors or .npz (default %(default)s)")
    _common(pretrain, model=True)
    pretrain.set_defaults(run=run_pretrain_command)

    strategies = "\n".join(f"  {name:19s} {s.summary} (lr {s.lr:g})" for name, s in STRATEGIES.items() if name != "ulmfit")
    finetune = commands.add_parser(
        "finetune", help="fine-tune a pretrained model on a new task", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build a new model for DATASET, load the body of --checkpoint into it (the head stays new),\n"
                    "and train it on K labelled images per class with one strategy. Prints its test accuracy\n"
                    "and, with --source-dataset, how much of the source task the body still knows (forgetting).\n\n"
                    f"strategies (default learning rate):\n{strategies}\n  ulmfit              another name for gradual",
        epilog="Example:\n  minift pretrain --out mnist.safetensors\n  minift finetune --checkpoint mnist.safetensors "
               "--dataset digits --strategy gradual --source-dataset mnist-bundled")
    finetune.add_argument("--checkpoint", metavar="PATH",
                          help="a model saved by 'minift pretrain' (every strategy but scratch needs one)")
    finetune.add_argument("--dataset", choices=datasets, default=defaults.target, metavar="DATASET",
                          help=f"the target task (default %(default)s); one of: {', '.join(datasets)}")
    finetune.add_argument("--strategy", choices=list(STRATEGIES), default="gradual", metavar="STRATEGY",
                          help=f"how to fine-tune (default %(default)s); one of: {', '.join(STRATEGIES)}")
    finetune.add_argument("--labels-per-class", type=labels_per_class, default=defaults.labels_per_class,
                          metavar="K", help="labelled training images per class, or 'all' (default %(default)s)")
    finetune.add_argument("--epochs", type=positive_int, default=defaults.finetune_epochs, metavar="N",
                          help="epochs (default %(default)s)")
    finetune.add_argument("--repeats", type=positive_int, default=defaults.repeats, metavar="R",
                          help="passes over the labelled images per epoch: a few-shot set is tiny "
                               "(default %(default)s; use 1 with --labels-per-class all)")
    finetune.add_argument("--lr", type=learning_rate, default=None,
                          help="learning rate (the head's where layer groups differ; default: the strategy's own)")
    finetune.add_argument("--batch-size", type=positive_int, default=defaults.finetune_batch_size, metavar="B",
                          help="images per step (default %(default)s)")
    finetune.add_argument("--source-dataset", choices=datasets, default=None, metavar="DATASET",
                          help="the checkpoint's source task: measure the accuracy on it that the body keeps")
    finetune.add_argument("--out", default="finetuned.safetensors", metavar="PATH",
                          help="where to save the fine-tuned model (default %(default)s)")
    _common(finetune, model=True)
    finetune.set_defaults(run=run_finetune_command)

    info = commands.add_parser("info", help="version, backends, datasets and threading of this installation",
                               description="Print minift's version, which backends work here (and why not), which "
                                           "one is in use, which datasets are installed, and the thread settings.")
    _common(info, seed=False)
    info.set_defaults(run=run_info_command)

    bench = commands.add_parser("bench", help="time matmul, convolution and pooling on every backend",
                                description="Time each kernel workload on every available backend (and PyTorch, "
                                            "if installed) and print one table. Timings on a busy machine are noisy.")
    bench.add_argument("--repeat", type=positive_int, default=7, help="timed calls per cell; their median and mean are shown "
                                                                      "(default %(default)s)")
    bench.add_argument("--warmup", type=non_negative_int, default=2,
                       help="untimed calls first, which compile the Numba kernels (default %(default)s)")
    bench.add_argument("--distributed", action="store_true",
                       help="instead: the small CNN's and MiniLM's training steps with 1 and 2 processes under "
                            "mpiexec, and MPI's all-reduce bandwidth beside the copy bandwidth (needs minift[mpi])")
    bench.add_argument("--threads", type=thread_sweep, default=(1, 2, None), metavar="LIST",
                       help="thread counts to sweep, comma-separated, 'default' for minift's policy "
                            "(default: 1,2,default)")
    _common(bench, seed=False)
    bench.set_defaults(run=run_bench_command)

    from . import finetune_text

    text = commands.add_parser(
        "finetune-text", help="fine-tune a pretrained sentence encoder (MiniLM) to classify news texts (R8)",
        description=finetune_text.DESCRIPTION + " Compares the strategies in one table.")
    finetune_text.add_arguments(text)  # its own --backend, --seed and the rest
    text.set_defaults(run=run_finetune_text_command)

    from . import finetune_image

    image = commands.add_parser(
        "finetune-image", help="fine-tune ImageNet-pretrained EfficientNet-Lite0 on few Fashion-MNIST labels",
        description=finetune_image.DESCRIPTION + " Compares the strategies; --bench times the model instead.")
    finetune_image.add_arguments(image)
    _common(image, seed=False)
    image.set_defaults(run=run_finetune_image_command)

    from .course import commands as course_commands

    course = commands.add_parser("course", help="the course kit: write a student edition, grade one",
                                 description=course_commands.__doc__.split("\n")[0])
    course_commands.add_arguments(course)
    course.set_defaults(run=course_commands.run)
    return parser


def choose_backend(args) -> None:
    """Apply the backend asked for after the command (``args.backend``) or before it
    (``args.global_backend``). finetune-text has its own ``--backend`` whose default is
    ``auto``: a backend named before the command replaces that default. Without either,
    ``$MINIFT_BACKEND`` is checked here, so that a bad value is one line that says it came
    from the environment."""
    command_choice = getattr(args, "backend", None)
    if args.global_backend is not None and command_choice in (None, "auto"):
        command_choice = args.global_backend
    if command_choice is None and os.environ.get("MINIFT_BACKEND"):
        value = os.environ["MINIFT_BACKEND"]
        try:
            backend.set_backend(value)
        except (ValueError, backend.BackendUnavailableError) as error:
            raise UsageError(f"minift {args.command}: error: the environment variable MINIFT_BACKEND={value!r}: "
                             f"{error} (unset it, or choose with --backend)") from None
    if command_choice is not None:
        try:
            backend.set_backend(command_choice)
        except ValueError as unknown:  # finetune-text's --backend takes any text
            raise UsageError(f"minift {args.command}: error: {unknown}") from None
        if hasattr(args, "backend"):
            args.backend = command_choice


def main(argv=None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    from ..data import DatasetNotFoundError
    from .demo import InputError
    from ..train import NonFiniteLossError

    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as done:  # --help and --version print, then exit
            return done.code
        if args.command is None:
            parser.print_help()
            return 2
        choose_backend(args)
        if args.command in ("pretrain", "finetune"):  # under mpiexec: data-parallel, said in the first line
            announce_data_parallel(args.command, args.batch_size)
        status = args.run(args)
    except UsageError as error:
        return _fail(error, 2)
    except (InputError, DatasetNotFoundError, backend.BackendUnavailableError) as error:
        return _fail(error, 2, args.command)
    except NonFiniteLossError as error:
        return _fail(error, 1, args.command)
    except KeyboardInterrupt:
        print("minift: interrupted", file=sys.stderr)
        return 130
    return status or 0


def _fail(error: Exception, status: int, command: str | None = None) -> int:
    """Print ``error`` as one line on stderr; return ``status``."""
    message = " ".join(str(error).split())
    if not message.startswith("minift"):
        message = f"minift {command}: error: {message}"
    print(message, file=sys.stderr)
    abort_if_distributed(status)  # under mpiexec: end every rank, none left waiting for this one
    return status


if __name__ == "__main__":
    sys.exit(main())
