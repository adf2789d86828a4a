"""The CUDA sources compile, and agree with the host code that launches them.

No GPU is needed: the sources are compiled ahead of time, exactly as ``cupy_gpu`` hands them
to the compiler (``launch.cuda_source``: headers inlined; ``compile_options``:
``-Dscalar_t=float`` or ``double``), for every architecture minift supports:

* with ``nvcc`` down to machine code (cubin, through ptxas), checking that no kernel spills
  registers to local memory -- skipped when nvcc is not installed;
* with NVRTC, the runtime compiler that ``cupy.RawModule`` uses, which has no host headers
  -- skipped when libnvrtc cannot be found (``pip install nvidia-cuda-nvrtc`` provides it).
"""

import ctypes
import ctypes.util
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

from minift.kernels.cupy import launch

SOURCES = ("gemm.cu", "conv.cu", "pool.cu", "depthwise.cu", "transformer.cu", "batch_norm.cu", "dropout.cu")
DTYPES = ("float32", "float64")
# Turing, Ampere, Hopper. sm_70 (Volta) is no longer supported by CUDA 13's nvcc.
ARCHITECTURES = ("sm_75", "sm_80", "sm_90")

NVCC = shutil.which("nvcc")
# How a kernel is defined in the sources: extern "C" (CuPy finds it by this plain name).
KERNEL_DEFINITION = r'extern "C" __global__ void(?: __launch_bounds__\(\w+\))? {name}\('


def _write_source(tmp_path, filename):
    path = tmp_path / filename
    path.write_text(launch.cuda_source(filename))
    return path


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed (the CUDA toolkit's compiler)")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("filename", SOURCES)
def test_compiles_with_nvcc_for_every_architecture_without_spills(tmp_path, filename, dtype):
    source = _write_source(tmp_path, filename)
    targets = [f"--generate-code=arch=compute_{arch[3:]},code={arch}" for arch in ARCHITECTURES]
    command = [NVCC, "--fatbin", *targets, *launch.compile_options(dtype),
               "-Werror", "all-warnings", "-Xptxas", "-v", "-o", str(tmp_path / "out.fatbin"), str(source)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = result.stdout + result.stderr  # ptxas -v: one "spill stores" line per kernel per arch
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", report)
    kernels = re.findall(KERNEL_DEFINITION.format(name=r"(\w+)"), source.read_text())
    assert len(spills) == len(kernels) * len(ARCHITECTURES)
    assert all(stores == loads == "0" for stores, loads in spills), report


def _find_nvrtc():
    """libnvrtc from the system, the CUDA toolkit or an ``nvidia-*`` wheel; None if absent."""
    candidates = [ctypes.util.find_library("nvrtc")]
    roots = [*sys.path, os.environ.get("CUDA_PATH", "/usr/local/cuda")]
    for root in roots:
        candidates += sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib", "libnvrtc.so*")))
        candidates += sorted(glob.glob(os.path.join(root, "lib64", "libnvrtc.so*")))
    for candidate in filter(None, candidates):
        # NVRTC dlopens its builtins library by name; load it first from beside libnvrtc.
        for builtins in glob.glob(os.path.join(os.path.dirname(candidate), "libnvrtc-builtins.so*")):
            ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)
        try:
            return ctypes.CDLL(candidate)
        except OSError:
            continue
    return None


def _nvrtc_compile(nvrtc, source: str, options) -> tuple[int, str]:
    """(result code, log) of compiling ``source`` with NVRTC; 0 means success."""
    program = ctypes.c_void_p()
    assert nvrtc.nvrtcCreateProgram(ctypes.byref(program), source.encode(), b"source.cu", 0, None, None) == 0
    encoded = [option.encode() for option in options]
    result = nvrtc.nvrtcCompileProgram(program, len(encoded), (ctypes.c_char_p * len(encoded))(*encoded))
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(program, log)
    nvrtc.nvrtcDestroyProgram(ctypes.byref(program))
    return result, log.value.decode(errors="replace")


NVRTC = _find_nvrtc()


@pytest.mark.skipif(NVRTC is None, reason="libnvrtc not found (pip install nvidia-cuda-nvrtc)")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("filename", SOURCES)
def test_compiles_with_nvrtc_like_cupy_rawmodule(filename, dtype):
    for arch in ARCHITECTURES:
        options = [*launch.compile_options(dtype), f"-arch={arch}"]
        result, log = _nvrtc_compile(NVRTC, launch.cuda_source(filename), options)
        assert result == 0, f"{filename} ({dtype}, {arch}):\n{log}"


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed (the CUDA toolkit's compiler)")
def test_a_source_without_scalar_t_is_refused_with_a_reason(tmp_path):
    """The header's #error tells whoever compiles a source by hand what to define."""
    source = _write_source(tmp_path, "pool.cu")
    result = subprocess.run([NVCC, "--ptx", "-o", os.devnull, str(source)], capture_output=True, text=True)
    assert result.returncode != 0 and "-Dscalar_t=float" in result.stderr


def test_cuda_source_inlines_local_headers():
    text = launch.cuda_source("gemm.cu")
    assert '#include "' not in text
    assert text.count("grid_thread_index()\n{") == 1  # the header's definition, once
    assert (launch.KERNELS_DIR / "gemm.cu").read_text().count('#include "cuda_common.cuh"') == 1


def test_gemm_tiling_constants_match_the_python_model():
    text = (launch.KERNELS_DIR / "gemm.cu").read_text()
    constants = {name: int(value) for name, value in re.findall(r"constexpr int (\w+) = (\d+);", text)}
    tiling = launch.GEMM_TILING
    assert constants["BLOCK_M"] == tiling.block_m and constants["BLOCK_N"] == tiling.block_n
    assert constants["BLOCK_K"] == tiling.block_k and constants["RUN"] == tiling.run
    assert constants["THREAD_M"] == tiling.thread_m and constants["THREAD_N"] == tiling.thread_n


@pytest.mark.parametrize("filename", ["depthwise.cu", "batch_norm.cu"])
def test_the_reduction_blocks_match_their_launch(filename):
    text = (launch.KERNELS_DIR / filename).read_text()
    threads = int(re.search(r"constexpr int REDUCTION_THREADS = (\d+);", text).group(1))
    assert threads == launch.REDUCTION_THREADS and threads & (threads - 1) == 0  # halving needs a power of two


def test_every_kernel_the_host_launches_is_defined_in_its_source():
    host = (launch.KERNELS_DIR / "backend.py").read_text()
    launched = set(re.findall(r'_kernel\("(\w+\.cu)", "(\w+)"', host))
    assert {filename for filename, _ in launched} == set(SOURCES)
    for filename, name in launched:
        source = launch.cuda_source(filename)
        assert re.search(KERNEL_DEFINITION.format(name=name), source), (filename, name)
