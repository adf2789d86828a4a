"""BERT's basic tokenization: from raw text to words and punctuation marks.

The first of BERT's two tokenization stages (the second, WordPiece, is in
``wordpiece.py``). It follows Google's original ``tokenization.py`` and Hugging Face's
``BasicTokenizer`` rule for rule:

1. cut the special tokens (``[CLS]``, ``[MASK]``, ...) out of the raw text, untouched;
2. clean the rest: drop NUL, U+FFFD and control characters, and turn every whitespace
   character into a plain space;
3. put a space on both sides of every CJK ideograph, so each is a word of its own;
4. split on whitespace into *chunks*;
5. in each chunk: lower-case, then strip accents (decompose with NFD, drop the
   nonspacing marks: ``"é" -> "e" + U+0301 -> "e"``);
6. split every punctuation character off into a word of its own.

>>> BasicTokenizer(never_split=["[MASK]"]).tokenize("Héllo, WÖRLD![MASK]")
['hello', ',', 'world', '!', '[MASK]']

Steps 5 and 6 see one chunk at a time, so the result for a chunk never depends on its
neighbours; ``BertTokenizer`` uses that to memoise chunk -> ids.

Hugging Face's Rust library ``tokenizers`` gives the same ids on real text (the tests
check thousands of documents), but differs from BERT at a few edges, where minift keeps
BERT's rule: it keeps code points that Unicode has not assigned (BERT drops them as
"other"); its Unicode tables predate some accents and punctuation marks; its CJK
Extension E starts at U+2B920, not U+2B820; and it lower-cases a final capital sigma to
``σ``, where Python's ``str.lower`` writes ``ς``.
"""

from __future__ import annotations

import functools
import itertools
import re
import string
import unicodedata
from collections.abc import Iterable

CJK_RANGES = (
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0x3400, 0x4DBF),  # Extension A
    (0x20000, 0x2A6DF),  # Extension B
    (0x2A700, 0x2B73F),  # Extension C
    (0x2B740, 0x2B81F),  # Extension D
    (0x2B820, 0x2CEAF),  # Extension E
    (0xF900, 0xFAFF),  # Compatibility Ideographs
    (0x2F800, 0x2FA1F),  # Compatibility Ideographs Supplement
)
"""BERT's "Chinese characters": the CJK ideograph blocks. Japanese kana and Korean
Hangul are not among them (they are written with spaces, or split by WordPiece)."""

_CJK_PATTERN = re.compile("([" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in CJK_RANGES) + "])")


def is_whitespace(char: str) -> bool:
    """Space, tab, newline, carriage return, or a Unicode space separator (category Zs)."""
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def is_control(char: str) -> bool:
    """A Unicode "other" character (categories Cc, Cf, Cn, Co, Cs), except tab, newline
    and carriage return, which BERT counts as whitespace."""
    return char not in "\t\n\r" and unicodedata.category(char).startswith("C")


def is_punctuation(char: str) -> bool:
    """Unicode punctuation (categories P*), and every ASCII character that is neither a
    letter, a digit nor a space: BERT also splits off ``$ + < = > ^ ` | ~``, which Unicode
    calls symbols."""
    return char in string.punctuation or unicodedata.category(char).startswith("P")


@functools.cache
def _clean_character(char: str) -> str:
    if char in "\x00\ufffd" or is_control(char):
        return ""
    return " " if is_whitespace(char) else char


def clean_text(text: str) -> str:
    """Step 2: drop NUL, U+FFFD and control characters; every whitespace becomes a space."""
    return "".join(map(_clean_character, text))


def space_cjk_characters(text: str) -> str:
    """Step 3: ``"我爱NLP"`` -> ``" 我  爱 NLP"``, so each ideograph becomes its own word."""
    return _CJK_PATTERN.sub(r" \1 ", text)


def remove_accents(text: str) -> str:
    """Step 5: decompose (NFD) and drop the nonspacing marks (category Mn): ``"né" -> "ne"``."""
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(char for char in decomposed if unicodedata.category(char) != "Mn")


def split_on_punctuation(chunk: str) -> list[str]:
    """Step 6: ``"don't!"`` -> ``["don", "'", "t", "!"]``; each punctuation character
    becomes a word of its own, the runs between them stay whole."""
    words = []
    for punctuation, run in itertools.groupby(chunk, is_punctuation):
        if punctuation:
            words.extend(run)
        else:
            words.append("".join(run))
    return words


class BasicTokenizer:
    """Raw text -> words and punctuation marks (steps 1-6 in the module docstring).

    ``do_lower_case``: lower-case every chunk (uncased BERT models).
    ``strip_accents``: ``None`` follows ``do_lower_case`` (Hugging Face's rule).
    ``tokenize_chinese_chars``: step 3 on or off.
    ``never_split``: tokens cut out of the raw text before anything else and kept whole.
    """

    def __init__(
        self,
        do_lower_case: bool = True,
        never_split: Iterable[str] = (),
        tokenize_chinese_chars: bool = True,
        strip_accents: bool | None = None,
    ):
        self.do_lower_case = do_lower_case
        self.strip_accents = do_lower_case if strip_accents is None else strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.never_split = frozenset(never_split)
        self._never_split_pattern = None
        if self.never_split:
            # Longest first, so that of two overlapping special tokens the longer one wins.
            longest_first = sorted(self.never_split, key=len, reverse=True)
            self._never_split_pattern = re.compile("(" + "|".join(map(re.escape, longest_first)) + ")")

    def tokenize(self, text: str) -> list[str]:
        """All six steps: ``text`` -> list of words and punctuation marks."""
        return [word for chunk in self.chunks(text) for word in self.split_chunk(chunk)]

    def chunks(self, text: str) -> list[str]:
        """Steps 1-4: the special tokens and the whitespace-separated chunks, in order."""
        if not isinstance(text, str):
            raise TypeError(f"expected text as a str, got {type(text).__name__}: {text!r:.80}")
        if self._never_split_pattern is None:
            return self._chunks_of_plain_text(text)
        chunks = []
        # re.split with a group: the special tokens land at the odd positions.
        for position, part in enumerate(self._never_split_pattern.split(text)):
            if position % 2 == 1:
                chunks.append(part)
            else:
                chunks.extend(self._chunks_of_plain_text(part))
        return chunks

    def _chunks_of_plain_text(self, text: str) -> list[str]:
        text = clean_text(text)
        if self.tokenize_chinese_chars:
            text = space_cjk_characters(text)
        return text.split()

    def split_chunk(self, chunk: str) -> list[str]:
        """Steps 5-6 on one chunk: case, accents, punctuation. Special tokens stay whole."""
        if chunk in self.never_split:
            return [chunk]
        if self.do_lower_case:
            chunk = chunk.lower()
        if self.strip_accents:
            chunk = remove_accents(chunk)
        return split_on_punctuation(chunk)
