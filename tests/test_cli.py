"""The ``minift`` command line: help texts, ``info``, the commands at a tiny size, and errors.

Every bad input must give exit status 2 (1 for a training failure), exactly one line on
stderr that names the problem, no traceback, and no file written.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minift
from minift import io
from minift.apps import cli, demo
from minift.data import DATASETS


def run(capsys, *argv):
    """``(status, stdout, stderr)`` of ``minift argv``, in this process."""
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status, err, expected_status, *fragments):
    assert status == expected_status
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("minift") and "error" in lines[0]
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(autouse=True)
def restore_backend():
    """Commands may switch the backend; put it back after each test."""
    with minift.backend.use_backend(minift.backend.get_backend()):
        yield


# --------------------------------------------------------------------------- help

COMMANDS = ("demo", "pretrain", "finetune", "info", "bench", "finetune-text", "finetune-image")


def test_top_level_help_lists_every_command(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0
    for command in COMMANDS:
        assert f"    {command} " in out
    assert "--backend" in out and "minift demo" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(capsys, command):
    status, out, err = run(capsys, command, "--help")
    assert status == 0 and err == ""
    assert out.startswith(f"usage: minift {command}")
    assert "--backend" in out


@pytest.mark.parametrize("command, options", [
    ("demo", ("--out", "--labels-per-class", "--seed", "Example")),
    ("pretrain", ("--dataset", "--model", "--width", "--epochs", "--lr", "--out", "--seed", "Example")),
    ("finetune", ("--checkpoint", "--dataset", "--strategy", "--labels-per-class", "--epochs", "--lr",
                  "--source-dataset", "--out", "--seed", "Example", *demo.STRATEGIES)),
    ("bench", ("--repeat", "--warmup")),
])
def test_help_names_the_options_and_gives_an_example(capsys, command, options):
    _, out, _ = run(capsys, command, "--help")
    for option in options:
        assert option in out, option


def test_no_command_prints_help_and_fails(capsys):
    status, out, _ = run(capsys)
    assert status == 2 and "COMMAND" in out


def test_version(capsys):
    status, out, _ = run(capsys, "--version")
    assert status == 0 and out.strip() == f"minift {minift.__version__}"


# --------------------------------------------------------------------------- info

def test_info_reports_version_backends_datasets_and_threads(capsys):
    status, out, err = run(capsys, "info")
    assert status == 0 and err == ""
    assert f"minift {minift.__version__}" in out
    assert f"backend in use: {minift.backend.get_backend()}" in out
    for name, (available, reason) in minift.backend.available_backends().items():
        line = next(line for line in out.splitlines() if line.strip().startswith(name + " "))
        assert ("not available" not in line) == available
        assert available or reason in line
    for name, (found, _) in minift.data.available_datasets().items():
        line = next(line for line in out.splitlines() if line.strip().startswith(name + " "))
        assert line.split()[1] == ("found:" if found else "not")
    assert "threads:" in out and "NUMBA_THREADING_LAYER" in out


@pytest.mark.parametrize("where", ["before", "after"])
def test_backend_option_before_or_after_the_command(capsys, where):
    argv = ["--backend", "numpy", "info"] if where == "before" else ["info", "--backend", "numpy"]
    status, out, _ = run(capsys, *argv)
    assert status == 0 and "backend in use: numpy" in out


# --------------------------------------------------------------------------- usage errors

@pytest.mark.parametrize("argv, fragments", [
    (["finetune", "--dataset", "imagenet"], ["--dataset", "invalid choice", "'imagenet'"]),
    (["pretrain", "--dataset", "cifar10"], ["--dataset", "'cifar10'"]),
    (["finetune", "--strategy", "magic"], ["--strategy", "'magic'"]),
    (["finetune", "--model", "vgg"], ["--model", "'vgg'"]),
    (["finetune", "--source-dataset", "nope"], ["--source-dataset", "'nope'"]),
    (["--backend", "tpu", "info"], ["--backend", "'tpu'"]),
    (["frobnicate"], ["invalid choice", "'frobnicate'"]),
    (["finetune-text", "--backend", "tpu"], ["unknown backend", "'tpu'"]),
    (["finetune-text", "--strategies", "everything"], ["strategies", "everything"]),
])
def test_unknown_names_are_one_line_usage_errors(capsys, argv, fragments):
    status, out, err = run(capsys, *argv)
    assert_one_line_error(status, err, 2, *fragments)
    assert out == ""


@given(text=st.one_of(st.integers(-10**6, 0).map(str), st.text(min_size=1).filter(lambda t: not t.strip().isdigit())))
def test_counts_must_be_positive_integers(text):
    with pytest.raises(Exception) as caught:
        cli.positive_int(text)
    assert "positive integer" in str(caught.value)


@given(value=st.integers(1, 10**9))
def test_positive_integers_parse(value):
    assert cli.positive_int(str(value)) == value


@given(text=st.sampled_from(["0", "-1e-3", "nan", "inf", "fast"]))
def test_learning_rates_must_be_positive_and_finite(text):
    with pytest.raises(Exception, match="learning rate"):
        cli.learning_rate(text)


@pytest.mark.parametrize("argv, fragment", [
    (["finetune", "--epochs", "0"], "--epochs"),
    (["finetune", "--lr", "-1"], "--lr"),
    (["pretrain", "--width", "two"], "--width"),
    (["finetune", "--labels-per-class", "some"], "--labels-per-class"),
])
def test_bad_numbers_are_one_line_usage_errors(capsys, argv, fragment):
    status, _, err = run(capsys, *argv)
    assert_one_line_error(status, err, 2, fragment)


@pytest.mark.skipif(minift.backend.available_backends()["cupy"][0], reason="cupy is available here")
def test_an_unavailable_backend_says_how_to_install_it(capsys):
    status, _, err = run(capsys, "--backend", "cupy", "info")
    assert_one_line_error(status, err, 2, "cupy", "pip install")


# --------------------------------------------------------------------------- input errors, nothing written

def test_a_missing_checkpoint(capsys, tmp_path):
    status, _, err = run(capsys, "finetune", "--checkpoint", str(tmp_path / "none.safetensors"),
                         "--out", str(tmp_path / "out.safetensors"))
    assert_one_line_error(status, err, 2, "none.safetensors", "does not exist")
    assert list(tmp_path.iterdir()) == []


def test_a_pretrained_strategy_without_checkpoint(capsys, tmp_path):
    status, _, err = run(capsys, "finetune", "--strategy", "full", "--out", str(tmp_path / "out.safetensors"))
    assert_one_line_error(status, err, 2, "--checkpoint")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_checkpoint(capsys, tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00hello")
    status, _, err = run(capsys, "finetune", "--checkpoint", str(junk), "--out", str(tmp_path / "out.safetensors"))
    assert_one_line_error(status, err, 2, "cannot read checkpoint", "junk.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.safetensors"]


@pytest.mark.parametrize("model, width", [("digit-cnn", 8), ("tiny-resnet", 16)])
def test_a_checkpoint_for_another_architecture(capsys, tmp_path, model, width):
    minift.manual_seed(0)
    checkpoint = tmp_path / "other.safetensors"
    io.save(demo.build_model(model, 10, width).state_dict(), checkpoint)
    status, _, err = run(capsys, "finetune", "--checkpoint", str(checkpoint), "--model", "digit-cnn",
                         "--width", "16", "--out", str(tmp_path / "out.safetensors"))
    assert_one_line_error(status, err, 2, "does not fit", "--model or --width")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.safetensors"]


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_an_unwritable_output_file(capsys, tmp_path, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    status, _, err = run(capsys, command, "--strategy" if command == "finetune" else "--seed",
                         "scratch" if command == "finetune" else "0", "--out", str(blocker / "model.safetensors"))
    assert_one_line_error(status, err, 2, "cannot write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_an_output_file_with_an_unknown_format(capsys, tmp_path):
    status, _, err = run(capsys, "pretrain", "--out", str(tmp_path / "model.pt"))
    assert_one_line_error(status, err, 2, ".safetensors or .npz")
    assert list(tmp_path.iterdir()) == []


def test_demo_checks_its_output_directory_first(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    status, out, err = run(capsys, "demo", "--out", str(blocker / "demo"))
    assert_one_line_error(status, err, 2, "cannot write to the output directory")
    assert out == ""


# --------------------------------------------------------------------------- the commands, tiny

def test_pretrain_then_finetune(capsys, tmp_path):
    checkpoint, tuned = tmp_path / "mnist.safetensors", tmp_path / "digits.npz"
    status, out, _ = run(capsys, "--backend", "numpy", "pretrain", "--width", "4", "--epochs", "1",
                         "--batch-size", "250", "--out", str(checkpoint))
    assert status == 0 and f"saved {checkpoint}" in out
    status, out, _ = run(capsys, "finetune", "--backend", "numpy", "--checkpoint", str(checkpoint), "--width", "4",
                         "--strategy", "feature-extraction", "--epochs", "1", "--repeats", "1",
                         "--labels-per-class", "1", "--source-dataset", "mnist-bundled", "--out", str(tuned))
    assert status == 0
    assert "transplant:" in out and "digits test accuracy" in out and "mnist-bundled accuracy after" in out
    pretrained, finetuned = io.load(checkpoint), io.load(tuned)
    for name in pretrained:
        if name.startswith("body."):  # feature extraction leaves the body as it was
            np.testing.assert_array_equal(pretrained[name], finetuned[name])
    assert finetuned["head.weight"].shape == pretrained["head.weight"].shape


def test_bench_passes_its_options_through(capsys, monkeypatch):
    bench = pytest.importorskip("minift.bench")
    calls = []
    monkeypatch.setattr(bench, "run_benchmarks", lambda **options: calls.append(options))
    status, _, _ = run(capsys, "bench", "--repeat", "3", "--warmup", "0")
    assert status == 0 and calls == [{"repeat": 3, "warmup": 0, "thread_counts": (1, 2, None)}]
    status, _, _ = run(capsys, "bench", "--threads", "default,1")
    assert status == 0 and calls[-1]["thread_counts"] == (None, 1)


def test_bench_refuses_a_bad_thread_sweep(capsys, monkeypatch):
    bench = pytest.importorskip("minift.bench")
    calls = []
    monkeypatch.setattr(bench, "run_benchmarks", lambda **options: calls.append(options))
    status, _, err = run(capsys, "bench", "--threads", "1,0")
    assert_one_line_error(status, err, 2, "1,2,default", "'0'")
    assert calls == []


def test_the_demo_command_passes_its_options(capsys, monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(demo, "run_demo", lambda out, config: calls.append((out, config)))
    status, _, _ = run(capsys, "demo", "--out", str(tmp_path), "--labels-per-class", "3", "--seed", "7",
                       "--seeds", "2")
    assert status == 0
    (out, config), = calls
    assert out == str(tmp_path) and (config.labels_per_class, config.seed, config.seeds) == (3, 7, 2)
    assert config.runs == demo.DEMO_RUNS


# --------------------------------------------------------------------------- as a program

def test_python_dash_m_minift_reports_errors_without_traceback():
    result = subprocess.run([sys.executable, "-m", "minift", "finetune", "--strategy", "ulmfit2"],
                            capture_output=True, text=True, env={**os.environ, "MINIFT_BACKEND": "numpy"})
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "'ulmfit2'" in result.stderr


def test_python_dash_m_minift_info():
    result = subprocess.run([sys.executable, "-m", "minift", "info"], capture_output=True, text=True)
    assert result.returncode == 0 and f"minift {minift.__version__}" in result.stdout
    assert set(DATASETS) <= set(result.stdout.split())
