"""``minift finetune-text``: compare the ways to fine-tune MiniLM on Reuters R8, or time it.

The options are the fields of ``minift.text.strategies.TextFinetuneConfig``;
``python -m minift.apps.finetune_text`` is the same command.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from dataclasses import asdict, fields

from .. import backend
from ..backend.allocator import peak_rss_mb
from ..nn.bert import BertModel
from ..text.pretrained import locate_minilm_l6_v2
from ..text.strategies import TextFinetuneConfig, compare_strategies
from ..text.throughput import measure_throughput

DESCRIPTION = "Fine-tune a pretrained sentence encoder to classify text: all-MiniLM-L6-v2 on Reuters R8."


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
    implementations = [name for name, (available, _) in backend.available_backends().items()
                       if available and name != "cupy"]
    if importlib.util.find_spec("torch") is not None:
        implementations.append("torch")
    results = measure_throughput(model, implementations, config.batch_size, config.max_length, seed=config.seed)
    results["peak_rss_mb"] = peak_rss_mb()
    return results


def main(argv=None) -> int:
    """``python -m minift.apps.finetune_text [options]``: the same as ``minift finetune-text``."""
    parser = add_arguments(argparse.ArgumentParser(prog="minift finetune-text", description=DESCRIPTION))
    return finetune_text(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
