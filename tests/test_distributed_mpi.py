"""minift.distributed under a real ``mpiexec``: 1, 2 and 3 processes (4 for the ring).

Each test launches ``mpiexec -n K python tests/mpi/worker_script.py SCENARIO`` with a
timeout, so a hang fails the test instead of the suite. Skipped without ``mpiexec`` and
``mpi4py`` (``pip install "minift[mpi]"``). One BLAS thread per process: the ranks share
the machine's cores.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minift
from minift.bench.distributed import mpiexec_path
from minift.data import DataLoader

WORKER = Path(__file__).parent / "mpi" / "worker_script.py"
MPIEXEC = mpiexec_path()

pytestmark = [
    pytest.mark.skipif(MPIEXEC is None, reason='mpiexec not found: pip install "minift[mpi]"'),
    pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None, reason='mpi4py missing: pip install "minift[mpi]"'),
]


def mpirun(processes: int, *arguments, timeout: float = 120, expect_ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
           "MINIFT_BACKEND": "numpy"}
    for name in ("PMI_RANK", "PMI_SIZE", "PMI_FD", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK"):
        env.pop(name, None)  # a test run itself under mpiexec must not pass its own rank on
    command = [MPIEXEC, "-n", str(processes), sys.executable, str(WORKER), *map(str, arguments)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if expect_ok:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def load_worker():
    spec = importlib.util.spec_from_file_location("worker_script", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_n_processes_equal_one_big_batch(processes):
    """SGD+momentum, AdamW+OneCycle+clipping, discriminative lrs with a frozen group, SyncBatchNorm,
    no_sync accumulation, buckets without frozen parameters (asserted inside, to round-off)."""
    scenarios = ["equivalence", "sync_batchnorm", "no_sync", "buckets"]
    out = mpirun(processes, ",".join(scenarios)).stdout
    for scenario in scenarios:
        assert f"OK {scenario} on {processes} processes" in out


def test_ring_all_reduce_equals_mpi_allreduce():
    """Hypothesis: shapes, dtypes and worlds of 1-4 ranks (see scenario_ring)."""
    assert "OK ring on 4 processes" in mpirun(4, "ring", timeout=240).stdout


def reference_learner(worker, processes):
    """The one-process Learner with batch N*B over the same examples."""
    minift.manual_seed(0)
    loader = DataLoader(worker.make_data(), processes * worker.PER_RANK_BATCH, shuffle=True, seed=5)
    learner = worker.learner_for(worker.make_model(), loader)
    learner.fit_one_cycle(2, 0.05)
    return learner


def assert_matches_reference(saved, processes):
    worker = load_worker()
    alone = reference_learner(worker, processes)
    for name, value in alone.model.state_dict().items():
        np.testing.assert_allclose(saved[name], value, rtol=worker.RTOL, atol=worker.ATOL, err_msg=name)
    for key in ("train_loss", "valid_loss"):
        np.testing.assert_allclose(saved[key], alone.history.epochs[-1][key], rtol=1e-9)


@pytest.mark.parametrize("processes", [2, 3])
def test_learner_unchanged_under_mpiexec(processes, tmp_path):
    """Rank 0 alone prints and writes; the metrics and weights are those of one process, batch N*B."""
    out = mpirun(processes, "learner", tmp_path)
    assert out.stderr.count("epoch 2/2") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors", "final.npz"]
    assert_matches_reference(np.load(tmp_path / "final.npz"), processes)


def test_resume_after_a_kill_continues_identically(tmp_path):
    """Rank 1 is SIGKILLed after step 7; the job ends; the resumed job ends where one process would."""
    killed = mpirun(2, "resume", tmp_path, "kill", expect_ok=False)
    assert killed.returncode != 0
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["checkpoint.safetensors"]
    mpirun(2, "resume", tmp_path, "resume")
    assert_matches_reference(np.load(tmp_path / "final.npz"), 2)


def test_an_exception_on_one_rank_ends_every_rank_with_its_message():
    result = mpirun(2, "raise_on_rank_1", expect_ok=False, timeout=60)
    assert result.returncode != 0
    assert "[rank 1] ValueError: rank 1 could not read its shard" in result.stderr
    assert "aborting every rank" in result.stderr


def test_mismatched_models_are_named_at_wrap_time():
    result = mpirun(2, "mismatched_model", expect_ok=False, timeout=60)
    assert result.returncode != 0
    assert "rank 1's model differs from rank 0's" in result.stderr
    assert "2.weight of shape (3, 8)" in result.stderr and "(4, 8)" in result.stderr


def test_cli_trains_data_parallel_and_says_so_first(tmp_path):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MINIFT_BACKEND": "numpy"}
    command = [MPIEXEC, "-n", "2", sys.executable, "-m", "minift", "finetune", "--strategy", "scratch",
               "--epochs", "1", "--out", tmp_path / "model.safetensors"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "minift finetune: data-parallel on 2 processes (MPI): batch 20 per process, 40 per step"
    assert sum("test accuracy" in line for line in lines) == 1  # rank 0 alone prints
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_cli_error_under_mpiexec_ends_every_rank_with_its_status(tmp_path):
    command = [MPIEXEC, "-n", "2", sys.executable, "-m", "minift", "finetune", "--checkpoint",
               str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "out.safetensors")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "checkpoint" in done.stderr and "does not exist" in done.stderr
    assert not list(tmp_path.iterdir())
