"""What a newcomer meets first (issue 17, point 3): each defect found by trying minift as a
new user would, checked by the substance of the message it now gives.

- a bad ``MINIFT_BACKEND`` is one line that says the value came from the environment;
- ``--strategy gradual --epochs N`` runs N epochs;
- a failed command leaves no half-made output directory;
- a checkpoint truncated inside its data says "truncated";
- ``F.linear`` with a transposed weight suggests the transpose.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import minift
from minift import io
from minift import functional as F
from minift.apps import cli, demo
from minift.io import CheckpointError


@pytest.fixture(autouse=True)
def restore_backend():
    with minift.backend.use_backend(minift.backend.get_backend()):
        yield


def test_a_bad_backend_in_the_environment_is_one_line_naming_the_environment():
    env = {**os.environ, "MINIFT_BACKEND": "torch"}
    result = subprocess.run([sys.executable, "-m", "minift", "info"], env=env, capture_output=True, text=True,
                            timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "environment variable MINIFT_BACKEND='torch'" in lines[0] and "unknown backend" in lines[0]
    assert "numpy" in lines[0]  # the names it accepts


def test_a_backend_named_on_the_command_line_wins_over_the_environment(capsys, monkeypatch):
    monkeypatch.setenv("MINIFT_BACKEND", "torch")
    assert cli.main(["info", "--backend", "numpy"]) == 0
    assert "backend in use: numpy" in capsys.readouterr().out


@pytest.mark.parametrize("epochs", [1, 3, 5])
def test_gradual_runs_exactly_the_epochs_asked_for(epochs):
    source = demo.limit_images(demo.load_images("mnist-bundled"), 40, 0)
    target = demo.limit_images(demo.load_images("digits"), 40, 0)
    config = demo.DemoConfig(width=2, finetune_epochs=epochs, finetune_batch_size=10, repeats=10,
                             runs=(demo.DemoRun("gradual", "gradual"),)).check()
    minift.manual_seed(0)
    state = demo.build_model("digit-cnn", 10, 2).state_dict()
    with minift.backend.use_backend("numpy"):
        result = demo.finetune_run(config.runs[0], config, target, demo.few_shot_indices(target, 1, 0), state,
                                   source, log=lambda *_: None)
    assert len(result.history.metric("accuracy")) == epochs  # one validation per epoch run


def test_the_help_says_how_gradual_counts_epochs(capsys):
    assert cli.main(["finetune", "--help"]) == 0
    assert "all --epochs run" in " ".join(capsys.readouterr().out.split())


def test_a_failed_demo_leaves_no_output_directory(capsys, tmp_path):
    out = tmp_path / "d2"
    assert cli.main(["demo", "--labels-per-class", "1000", "--out", str(out)]) == 2
    assert "fewer samples" in capsys.readouterr().err
    assert not out.exists()


def test_a_failure_mid_run_removes_only_the_folders_it_made(tmp_path):
    kept = tmp_path / "existing"
    kept.mkdir()
    with pytest.raises(KeyboardInterrupt):
        with demo.output_directory(kept / "new" / "deeper") as folder:
            (folder / "half-written.safetensors").write_bytes(b"x")
            raise KeyboardInterrupt
    assert kept.is_dir() and not (kept / "new").exists()
    with demo.output_directory(kept / "ok") as folder:
        (folder / "done.txt").write_text("done")
    assert (kept / "ok" / "done.txt").is_file()


def test_a_checkpoint_truncated_inside_its_data_says_truncated(tmp_path):
    path = tmp_path / "model.safetensors"
    io.save({"w": np.ones((40, 40), np.float32), "b": np.zeros(3, np.float32)}, path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - 1000])
    with pytest.raises(CheckpointError, match="truncated") as caught:
        io.load(path)
    assert "data_offsets" in str(caught.value)


def test_linear_with_a_transposed_weight_suggests_the_transpose():
    x, weight = minift.randn(2, 3), minift.randn(3, 5)  # (in, out): the transpose of (out, in)
    with pytest.raises(ValueError, match=r"transposed.*weight\.T"):
        F.linear(x, weight)
    with pytest.raises(ValueError) as caught:
        F.linear(x, minift.randn(5, 4))  # wrong either way: no suggestion
    assert "transposed" not in str(caught.value)
