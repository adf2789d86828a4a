"""The wheel: ``kernels/`` ships as ``minift.kernels``, never as a top-level ``kernels``;
every subpackage, the bundled data and the LICENSE ship.

The wheel is built from a copy of the tracked files with the test venv's own setuptools
(``--no-build-isolation``: no network needed), which the ``test`` extra makes recent
enough to build wheels by itself (``setuptools>=70.1``, plus ``wheel`` for older pips).
Outside a git checkout it skips; in CI a skip here fails the run (tests/skip_policy.py).
"""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to archive the sources")
    work = tmp_path_factory.mktemp("wheel")
    archive = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True).stdout
    for name in filter(None, archive.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (work / "src" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, work / "src" / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(work / "dist"), str(work / "src")],
        capture_output=True, text=True,
    )
    if built.returncode != 0:
        pytest.skip(f"could not build a wheel here: {built.stderr.strip()[-300:]}")
    (wheel,) = (work / "dist").glob("minift-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def test_kernels_are_a_subpackage_of_minift(wheel_names):
    assert "minift/kernels/__init__.py" in wheel_names
    assert "minift/kernels/numba/backend.py" in wheel_names
    assert "minift/kernels/cupy/backend.py" in wheel_names
    assert any(n.startswith("minift/kernels/cupy/") and n.endswith(".cu") for n in wheel_names)
    top_level = {n.split("/")[0] for n in wheel_names}
    assert "kernels" not in top_level
    assert top_level <= {"minift", next(n for n in top_level if n.endswith(".dist-info"))}


def test_every_subpackage_and_the_bundled_data_ship(wheel_names):
    source_packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "minift").rglob("__init__.py")}
    source_packages |= {"minift/" + str(p.parent.relative_to(ROOT)) for p in (ROOT / "kernels").rglob("__init__.py")}
    for package in source_packages:
        assert f"{package}/__init__.py" in wheel_names, f"{package} is missing from the wheel (pyproject packages list)"
    assert any(n.startswith("minift/data/bundled/") and n.endswith(".npz") for n in wheel_names)
    for data in ("minift/models/imagenet_classes.txt", "minift/apps/course/exercises.toml"):
        assert data in wheel_names, f"{data} is missing from the wheel (pyproject package-data)"


def test_the_licence_ships_in_the_wheel(wheel_names):
    licences = [n for n in wheel_names if ".dist-info/" in n and n.rsplit("/", 1)[-1] == "LICENSE"]
    assert licences, f"no LICENSE in the wheel's metadata: {sorted(n for n in wheel_names if '.dist-info/' in n)}"
