"""Resuming a killed run continues bit-identically; checkpoints are never left corrupt.

In-process: a run "crashes" (an exception) right after a checkpoint, at any step or
epoch end; a new learner resumes and must end with the uninterrupted run's bytes.
For real: a training subprocess is SIGKILLed mid-epoch, a new process resumes, and the
final weights are compared byte for byte; and a process killed at random moments while
checkpointing every step must always leave a loadable checkpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minift
from minift.backend import use_backend
from minift.io import load, load_checkpoint
from minift.train import Callback, Checkpointing, EarlyStopping, GradualUnfreezing
from test_train_helpers import make_learner, same_bytes, weights

EPOCHS = 3  # of 6 batches each


class Crash(Exception):
    pass


class CrashAfter(Callback):
    """Raise ``Crash`` at ``event`` of step ``iteration`` (after the checkpoint of that event)."""

    order = 95

    def __init__(self, event: str, iteration: int):
        self.event, self.iteration = event, iteration

    def after_batch(self, learner):
        if self.event == "after_batch" and learner.iteration == self.iteration:
            raise Crash

    def after_epoch(self, learner):
        if self.event == "after_epoch" and learner.iteration == self.iteration:
            raise Crash


def build(directory, schedule, opt, unfreezing, extra=()):
    """A learner whose run draws from the global generator (dropout), shuffles, cycles
    momentum, unfreezes gradually and stops early: all of it must resume exactly."""
    callbacks = [Checkpointing(directory, every_n_steps=1), EarlyStopping(patience=5, restore_best_weights=True), *extra]
    learner = make_learner(dropout=0.3, opt=opt, callbacks=callbacks)
    fit = dict(epochs=EPOCHS, lr=slice(1e-3, 1e-2), schedule=schedule,
               unfreeze_schedule=GradualUnfreezing(every=1) if unfreezing else None)
    return learner, fit


@settings(max_examples=15)
@given(
    crash_step=st.integers(1, 6 * EPOCHS),
    event=st.sampled_from(["after_batch", "after_epoch"]),
    schedule=st.sampled_from(["one_cycle", "cosine", None]),
    opt=st.sampled_from(["adamw", "sgd"]),
    unfreezing=st.booleans(),
)
def test_a_crashed_run_resumes_bit_identically(tmp_path_factory, crash_step, event, schedule, opt, unfreezing):
    if event == "after_epoch":
        crash_step = 6 * (1 + crash_step % (EPOCHS - 1))  # the end of an epoch, not the last one
    with use_backend("numpy"):
        reference, fit = build(tmp_path_factory.mktemp("reference"), schedule, opt, unfreezing)
        reference.fit(**fit)
        reference_rng = minift.get_rng_state()

        directory = tmp_path_factory.mktemp("crashed")
        crashed, fit = build(directory, schedule, opt, unfreezing, extra=[CrashAfter(event, crash_step)])
        with pytest.raises(Crash):
            crashed.fit(**fit)

        resumed, fit = build(directory, schedule, opt, unfreezing, extra=[CrashAfter(event, -1)])  # same callbacks
        resumed.fit(**fit, resume_from=directory / "checkpoint.safetensors")

    assert same_bytes(weights(resumed.model), weights(reference.model))
    assert resumed.history.losses == reference.history.losses
    assert resumed.history.lrs == reference.history.lrs
    assert repr(resumed.optimizer.state_dict()) == repr(reference.optimizer.state_dict())
    assert minift.get_rng_state() == reference_rng


def test_resume_refuses_another_fit_call_and_changes_nothing(tmp_path):
    learner = make_learner(callbacks=[Checkpointing(tmp_path)])
    learner.fit(2, 1e-2, schedule="one_cycle")
    before = weights(learner.model)
    state = repr(learner.optimizer.state_dict())
    path = tmp_path / "checkpoint.safetensors"
    with pytest.raises(ValueError, match=r"epochs: the checkpoint has 2, this fit call 3"):
        learner.fit(3, 1e-2, schedule="one_cycle", resume_from=path)
    with pytest.raises(ValueError, match=r"schedule: the checkpoint has 'OneCycleLR\(.*\)', this fit call 'constant'"):
        learner.fit(2, 1e-2, resume_from=path)
    with pytest.raises(ValueError, match=r"lrs"):
        learner.fit(2, 1e-3, schedule="one_cycle", resume_from=path)
    assert same_bytes(before, weights(learner.model)) and state == repr(learner.optimizer.state_dict())


@pytest.mark.parametrize("filename", ["checkpoint.safetensors", "checkpoint.npz"])
def test_a_checkpoint_at_the_end_of_fit_resumes_to_nothing_more(tmp_path, filename):
    def learner():
        if filename.endswith(".safetensors"):  # the default file of Learner(checkpoint_dir=...)
            return make_learner(checkpoint_dir=tmp_path)
        return make_learner(callbacks=[Checkpointing(tmp_path, filename=filename)])

    first = learner()
    first.fit(2, 1e-2)
    again = learner()
    again.fit(2, 1e-2, resume_from=tmp_path / filename)
    assert same_bytes(weights(first.model), weights(again.model))
    assert again.history.losses == first.history.losses and len(again.history.epochs) == 2


def test_the_checkpoint_holds_every_part(tmp_path):
    learner = make_learner(callbacks=[Checkpointing(tmp_path, every_n_steps=4, at_epoch_end=False)])
    learner.fit(1, 1e-2, schedule="one_cycle")
    state = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert state["loop"]["iteration"] == 4 and state["loop"]["batch_index"] == 4 and state["loop"]["epoch"] == 0
    assert state["loaders"]["train"]["position"] == 4
    assert set(state) >= {"model", "trainable", "optimizer", "scheduler", "callbacks", "rng", "loaders", "fit"}
    assert state["scheduler"]["last_epoch"] == 4


# ------------------------------------------------------------------ for real: SIGKILL

SCRIPT = textwrap.dedent('''
    import sys, time
    import minift
    from minift.backend import use_backend
    from minift.io import save
    from minift.train import Callback, Checkpointing
    sys.path.insert(0, {tests!r})
    from test_train_helpers import make_learner

    mode, directory, out = sys.argv[1], sys.argv[2], sys.argv[3]
    pause_at = int(sys.argv[4]) if len(sys.argv) > 4 else -1

    class Marker(Callback):
        order = 95  # after Checkpointing wrote the file

        def after_batch(self, learner):
            print("CHECKPOINT", learner.iteration, learner.batch_index, flush=True)
            if learner.iteration == pause_at:
                time.sleep(120)  # the parent kills us here

    with use_backend("numpy"):
        learner = make_learner(dropout=0.3, train_samples={samples},
                               callbacks=[Checkpointing(directory, every_n_steps=1), Marker()])
        learner.fit({epochs}, slice(1e-3, 1e-2), schedule="one_cycle",
                    resume_from=directory + "/checkpoint.safetensors" if mode == "resume" else None)
    save(learner.model.state_dict(), out)
    print("DONE", flush=True)
''')


def _script(tmp_path, samples=48, epochs=3):
    path = tmp_path / "train.py"
    path.write_text(SCRIPT.format(tests=os.path.dirname(__file__), samples=samples, epochs=epochs))
    return path


def _start(script, *args):
    env = dict(os.environ, MINIFT_BACKEND="numpy")
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(process, marker: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"the training process ended early: {process.stderr.read()}")
        if line.startswith(marker):
            return line
    raise AssertionError(f"no {marker!r} within {timeout} s")


def _run(script, *args):
    process = _start(script, *args)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out


def test_a_sigkilled_run_resumes_bit_identically_in_a_new_process(tmp_path):
    script = _script(tmp_path)
    _run(script, "plain", tmp_path / "plain", tmp_path / "plain.safetensors")

    pause_at = 9  # epoch 1, batch 3 of 6: mid-epoch
    process = _start(script, "train", tmp_path / "killed", tmp_path / "unused.safetensors", pause_at)
    _wait_for(process, f"CHECKPOINT {pause_at} ")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    state = load_checkpoint(tmp_path / "killed" / "checkpoint.safetensors")
    assert (state["loop"]["epoch"], state["loop"]["batch_index"], state["loop"]["iteration"]) == (1, 3, pause_at)

    _run(script, "resume", tmp_path / "killed", tmp_path / "resumed.safetensors")
    plain, resumed = load(tmp_path / "plain.safetensors"), load(tmp_path / "resumed.safetensors")
    assert same_bytes(plain, resumed)


def test_a_kill_while_checkpointing_never_leaves_a_corrupt_checkpoint(tmp_path):
    """Kill a process that checkpoints after every step at random moments; each time the
    checkpoint must load (the old one or the new one, never a mix)."""
    script = _script(tmp_path, samples=400, epochs=50)
    rng = np.random.default_rng(0)
    for attempt in range(5):
        directory = tmp_path / f"run{attempt}"
        process = _start(script, "train", directory, tmp_path / "unused.safetensors")
        _wait_for(process, "CHECKPOINT 1 ")
        time.sleep(rng.uniform(0.0, 0.5))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        state = load_checkpoint(directory / "checkpoint.safetensors")
        assert state["loop"]["iteration"] >= 1
        leftovers = [name for name in os.listdir(directory) if name.endswith(".tmp")]
        assert all(name.startswith(".checkpoint.safetensors.") for name in leftovers)
