"""WordPiece: split a word into the longest pieces a fixed vocabulary knows.

BERT's second tokenization stage. A vocabulary of ~30,000 pieces covers any English
word: frequent words are pieces of their own, rarer ones are spelled with several. A
piece that continues a word is written with the prefix ``##``:

    "tokenizers" -> ["token", "##izer", "##s"]

The split is greedy, longest match first: from the start of the word, take the longest
prefix in the vocabulary, then the longest ``##`` piece of what is left, and so on. If
at some point no piece fits, the *whole* word becomes ``[UNK]`` (not just the rest of
it), and so does any word longer than ``max_input_chars_per_word`` characters.

The vocabulary file (``vocab.txt``) has one piece per line; the line number is its id.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def load_vocab(path: str | os.PathLike) -> dict[str, int]:
    """Read ``vocab.txt``: piece -> id, where the id is the line number (from 0)."""
    with open(path, encoding="utf-8") as file:
        return vocab_from_tokens(line.rstrip("\n") for line in file)


def vocab_from_tokens(tokens) -> dict[str, int]:
    """Token list -> ``{token: position}``; a token listed twice is an error."""
    vocab: dict[str, int] = {}
    for index, token in enumerate(tokens):
        if token in vocab:
            raise ValueError(f"the vocabulary lists {token!r} twice (ids {vocab[token]} and {index}); "
                             "each piece must appear once")
        vocab[token] = index
    return vocab


class WordpieceTokenizer:
    """One word (no whitespace, already lower-cased and split off from punctuation by
    ``BasicTokenizer``) -> its WordPiece pieces, greedy longest match first."""

    def __init__(
        self,
        vocab: Mapping[str, int],
        unk_token: str = "[UNK]",
        max_input_chars_per_word: int = 100,
        continuing_subword_prefix: str = "##",
    ):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        self.continuing_subword_prefix = continuing_subword_prefix

    def tokenize(self, word: str) -> list[str]:
        """``"tokenizers"`` -> ``["token", "##izer", "##s"]``; ``[unk_token]`` if no split exists."""
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token]
        pieces = []
        start = 0
        while start < len(word):
            prefix = self.continuing_subword_prefix if start > 0 else ""
            end = len(word)
            while end > start and prefix + word[start:end] not in self.vocab:
                end -= 1
            if end == start:  # not even one character fits here
                return [self.unk_token]
            pieces.append(prefix + word[start:end])
            start = end
        return pieces
