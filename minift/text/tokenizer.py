"""BertTokenizer: text -> the ``input_ids``, ``attention_mask`` and ``token_type_ids`` of BERT.

It chains the two stages, ``BasicTokenizer`` (words and punctuation) and
``WordpieceTokenizer`` (pieces of words), adds the special tokens, and truncates and
pads a batch into rectangular int64 arrays, with Hugging Face's names and semantics::

    tokenizer(["The cat sat.", "Dogs bark."], max_length=8, padding="max_length")

    input_ids       [CLS] the cat sat  .  [SEP] [PAD] [PAD]      (batch, length)
    attention_mask    1    1   1   1   1    1     0     0        1 = a token, 0 = padding
    token_type_ids    0    0   0   0   0    0     0     0        0 = first text, 1 = second

A pair of texts (a question and its passage, two sentences to compare) is packed as
``[CLS] A [SEP] B [SEP]``: token type 0 up to the first ``[SEP]``, 1 after it.

Pure-Python tokenization is slow, so the ids of each whitespace-separated chunk are
memoised: real text repeats its words all the time (on R8 newswire the memo makes
encoding about four times faster).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .basic_tokenizer import BasicTokenizer
from .wordpiece import WordpieceTokenizer, load_vocab, vocab_from_tokens

MEMO_SIZE = 1 << 16  # chunks whose ids are remembered; a few MB at most


def truncate_longest_first(first: list[int], second: list[int] | None, budget: int):
    """Cut one or two token lists to at most ``budget`` tokens in all ("longest_first").

    One list keeps its first ``budget`` tokens. Of two, the shorter keeps all of its
    tokens if they fit in half the budget, and half the budget (rounded down) if not; the
    longer gets the rest. Of two equally long lists the first counts as the shorter.
    This is the rule of Hugging Face's ``tokenizers``; its older Python tokenizer drops one
    token at a time from the longer list, which can end one token apart on ties.
    """
    if second is None:
        return first[:budget], None
    if len(first) + len(second) <= budget:
        return first, second
    first_is_shorter = len(first) <= len(second)
    shorter, longer = (first, second) if first_is_shorter else (second, first)
    keep = min(len(shorter), budget // 2)
    shorter, longer = shorter[:keep], longer[: budget - keep]
    return (shorter, longer) if first_is_shorter else (longer, shorter)


def padding_strategy(padding: bool | str) -> str:
    """Hugging Face's ``padding`` argument -> ``"longest"``, ``"max_length"`` or ``"do_not_pad"``."""
    if padding is True:
        return "longest"
    if padding is False:
        return "do_not_pad"
    if padding in ("longest", "max_length", "do_not_pad"):
        return padding
    raise ValueError(f'padding must be True, False, "longest", "max_length" or "do_not_pad", got {padding!r}')


class BertTokenizer:
    """BERT's WordPiece tokenizer, as Hugging Face's ``BertTokenizer``.

    ``vocab``: the path of a ``vocab.txt`` (one piece a line, the line number is the id),
    or the list of pieces itself. The five special tokens must be in it.
    The other arguments are those of ``BasicTokenizer`` and ``WordpieceTokenizer``;
    ``never_split`` adds tokens to keep whole besides the special ones.

    >>> tokenizer = BertTokenizer.from_pretrained(locate_minilm_l6_v2().directory)
    >>> tokenizer.tokenize("Tokenizers aren't magic")
    ['token', '##izer', '##s', 'aren', "'", 't', 'magic']
    """

    def __init__(
        self,
        vocab: str | os.PathLike | Sequence[str],
        do_lower_case: bool = True,
        never_split: Iterable[str] = (),
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        cls_token: str = "[CLS]",
        mask_token: str = "[MASK]",
        tokenize_chinese_chars: bool = True,
        strip_accents: bool | None = None,
        max_input_chars_per_word: int = 100,
    ):
        if isinstance(vocab, (str, os.PathLike)):
            self.vocab = load_vocab(vocab)
        else:
            self.vocab = vocab_from_tokens(vocab)
        self.ids_to_tokens = list(self.vocab)  # ids are positions, so this lists them in order
        self.unk_token, self.sep_token, self.pad_token = unk_token, sep_token, pad_token
        self.cls_token, self.mask_token = cls_token, mask_token
        self.all_special_tokens = [cls_token, sep_token, pad_token, unk_token, mask_token]
        kept_whole = [*self.all_special_tokens, *never_split]
        missing = [token for token in kept_whole if token not in self.vocab]
        if missing:
            raise ValueError(f"the special / never_split tokens {missing} are not in the vocabulary "
                             f"of {len(self.vocab)} pieces; each needs an id")
        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case, never_split=kept_whole,
                                              tokenize_chinese_chars=tokenize_chinese_chars,
                                              strip_accents=strip_accents)
        self.wordpiece_tokenizer = WordpieceTokenizer(self.vocab, unk_token, max_input_chars_per_word)
        self._chunk_ids = functools.lru_cache(maxsize=MEMO_SIZE)(self._chunk_ids_uncached)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> BertTokenizer:
        """The tokenizer of a saved model: ``vocab.txt`` and, if there, the casing and
        splitting options in ``tokenizer_config.json`` (Hugging Face's layout)."""
        directory = Path(directory)
        config_path = directory / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
        options = ("do_lower_case", "never_split", "tokenize_chinese_chars", "strip_accents")
        return cls(directory / "vocab.txt", **{key: config[key] for key in options if config.get(key) is not None})

    # -- the vocabulary ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def cls_token_id(self) -> int:
        return self.vocab[self.cls_token]

    @property
    def sep_token_id(self) -> int:
        return self.vocab[self.sep_token]

    @property
    def pad_token_id(self) -> int:
        return self.vocab[self.pad_token]

    @property
    def unk_token_id(self) -> int:
        return self.vocab[self.unk_token]

    @property
    def mask_token_id(self) -> int:
        return self.vocab[self.mask_token]

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        """Pieces -> ids; a piece not in the vocabulary becomes ``unk_token_id``."""
        return [self.vocab.get(token, self.unk_token_id) for token in tokens]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        """Ids (a list or a 1-D array) -> pieces."""
        ids = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids))
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise ValueError(f"expected a 1-D sequence of integer token ids, got shape {ids.shape} "
                             f"of dtype {ids.dtype}; decode one row of a batch at a time")
        out_of_range = ids[(ids < 0) | (ids >= len(self.vocab))]
        if out_of_range.size:
            raise ValueError(f"token ids {out_of_range[:5].tolist()} are outside the vocabulary "
                             f"(ids 0 to {len(self.vocab) - 1})")
        return [self.ids_to_tokens[i] for i in ids.tolist()]

    # -- one text ---------------------------------------------------------------------

    def _chunk_ids_uncached(self, chunk: str) -> tuple[int, ...]:
        words = self.basic_tokenizer.split_chunk(chunk)
        return tuple(self.vocab[piece] for word in words for piece in self.wordpiece_tokenizer.tokenize(word))

    def _text_ids(self, text: str) -> list[int]:
        """Ids of a text's pieces, without special tokens."""
        return [i for chunk in self.basic_tokenizer.chunks(text) for i in self._chunk_ids(chunk)]

    def tokenize(self, text: str) -> list[str]:
        """Text -> WordPiece pieces: ``"Unaffable!"`` -> ``["una", "##ffa", "##ble", "!"]``."""
        return self.convert_ids_to_tokens(self._text_ids(text))

    def build_inputs_with_special_tokens(self, first: list[int], second: list[int] | None = None) -> list[int]:
        """``[CLS] first [SEP]``, or ``[CLS] first [SEP] second [SEP]``."""
        ids = [self.cls_token_id, *first, self.sep_token_id]
        if second is not None:
            ids += [*second, self.sep_token_id]
        return ids

    def create_token_type_ids_from_sequences(self, first: list[int], second: list[int] | None = None) -> list[int]:
        """0 for ``[CLS] first [SEP]``, 1 for ``second [SEP]``."""
        types = [0] * (len(first) + 2)
        if second is not None:
            types += [1] * (len(second) + 1)
        return types

    def encode(self, text: str, text_pair: str | None = None, add_special_tokens: bool = True) -> list[int]:
        """Text (and optionally a second text) -> ids, with ``[CLS]``/``[SEP]``; no truncation."""
        first = self._text_ids(text)
        second = None if text_pair is None else self._text_ids(text_pair)
        if not add_special_tokens:
            return first + (second or [])
        return self.build_inputs_with_special_tokens(first, second)

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Ids -> text: pieces joined by spaces, each ``##`` piece glued to the one before.

        Lower-casing, accents and spacing around punctuation are lost on the way in, so
        ``decode(encode(text))`` gives back the normalised text: ``"Hi, you!"`` ->
        ``"[CLS] hi , you ! [SEP]"``.
        """
        tokens = self.convert_ids_to_tokens(ids)
        if skip_special_tokens:
            tokens = [token for token in tokens if token not in self.all_special_tokens]
        return " ".join(tokens).replace(" ##", "")

    # -- a batch ----------------------------------------------------------------------

    def __call__(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        max_length: int = 128,
        padding: bool | str = True,
        truncation: bool = True,
    ) -> dict[str, np.ndarray]:
        """A batch of texts (or pairs) -> ``input_ids``, ``attention_mask``,
        ``token_type_ids``, each an int64 array of shape ``(batch, length)``.

        ``truncation=True``: each row has at most ``max_length`` tokens, special tokens
        included (pairs are cut with ``truncate_longest_first``).
        ``padding``: ``True`` / ``"longest"`` pads to the longest row of the batch,
        ``"max_length"`` to ``max_length``, ``False`` / ``"do_not_pad"`` pads nothing (so the
        rows must come out equally long). Padding is ``[PAD]`` on the right, mask 0, type 0.
        A single string is a batch of one.
        """
        texts = [text] if isinstance(text, str) else list(text)
        pairs = None if text_pair is None else [text_pair] if isinstance(text_pair, str) else list(text_pair)
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(pairs)} text pairs; give one pair per text")
        strategy = padding_strategy(padding)
        if not isinstance(truncation, bool):
            raise ValueError(f"truncation must be True or False, got {truncation!r}")
        num_special = 2 if pairs is None else 3
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < num_special:
            raise ValueError(f"max_length must be an int of at least {num_special} (room for the special "
                             f"tokens), got {max_length!r}")

        id_rows, type_rows = [], []
        for index, first_text in enumerate(texts):
            first = self._text_ids(first_text)
            second = None if pairs is None else self._text_ids(pairs[index])
            if truncation:
                first, second = truncate_longest_first(first, second, max_length - num_special)
            id_rows.append(self.build_inputs_with_special_tokens(first, second))
            type_rows.append(self.create_token_type_ids_from_sequences(first, second))
        return self._pad(id_rows, type_rows, strategy, max_length)

    def _pad(self, id_rows, type_rows, strategy, max_length) -> dict[str, np.ndarray]:
        lengths = [len(ids) for ids in id_rows]
        longest = max(lengths, default=0)
        if strategy == "max_length":
            if longest > max_length:
                raise ValueError(f"a row of {longest} tokens does not fit in max_length={max_length}; "
                                 "use truncation=True or a larger max_length")
            width = max_length
        elif strategy == "longest":
            width = longest
        else:
            if len(set(lengths)) > 1:
                raise ValueError(f"rows of {min(lengths)} to {longest} tokens cannot form one array without "
                                 "padding; use padding=True")
            width = longest
        input_ids = np.full((len(id_rows), width), self.pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((len(id_rows), width), dtype=np.int64)
        token_type_ids = np.zeros((len(id_rows), width), dtype=np.int64)
        for row, (ids, types) in enumerate(zip(id_rows, type_rows)):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
            token_type_ids[row, : len(ids)] = types
        return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
