"""In CI only the documented GPU cases may skip (tests/skip_policy.py, tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import skip_policy

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("reason, allowed", [
    ("backend 'cupy' is not available: No module named 'cupy'", True),
    ("cupy backend unavailable: libnvrtc.so.12: cannot open shared object file", True),
    ("nvcc is not installed (the CUDA toolkit's compiler)", True),
    ("libnvrtc not found (pip install nvidia-cuda-nvrtc)", True),
    ("could not import 'torch': No module named 'torch'", False),
    ("fashion-mnist is not installed here: sudo apt-get install dataset-fashion-mnist", False),
    ("could not build a wheel here: invalid command 'bdist_wheel'", False),
])
def test_only_gpu_reasons_are_allowed(reason, allowed):
    assert skip_policy.is_allowed(reason) == allowed


@pytest.mark.parametrize("value, ci", [("true", True), ("1", True), ("yes-please", True), ("", False),
                                       ("false", False), ("0", False)])
def test_ci_is_any_value_but_off(value, ci):
    assert skip_policy.in_ci({"CI": value}) == ci
    assert not skip_policy.in_ci({})


def _pytest_in(folder: Path, ci: str) -> subprocess.CompletedProcess:
    for name in ("conftest.py", "skip_policy.py"):
        shutil.copy(HERE / name, folder / name)
    env = {**os.environ, "CI": ci}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=600)


def test_a_non_gpu_skip_fails_a_ci_run_and_a_gpu_skip_does_not(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_data():\n    pytest.skip('fashion-mnist is not installed here')\n"
        "def test_gpu():\n    pytest.skip(\"backend 'cupy' is not available: no GPU\")\n"
        "def test_fine():\n    assert True\n")
    failed = _pytest_in(tmp_path, "true")
    assert failed.returncode == 1, failed.stdout
    assert "test_data: fashion-mnist is not installed here" in failed.stdout
    assert "test_gpu" not in failed.stdout.split("skips that CI does not allow")[-1]
    assert _pytest_in(tmp_path, "false").returncode == 0


def test_gpu_skips_alone_pass_a_ci_run(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n@pytest.mark.skipif(True, reason='nvcc is not installed')\ndef test_compile():\n    pass\n")
    passed = _pytest_in(tmp_path, "true")
    assert passed.returncode == 0, passed.stdout
