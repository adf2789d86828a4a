# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · The accelerated core
#
# **Reproduces in miniature:** K. Chellapilla, S. Puri and P. Simard, "High Performance
# Convolutional Neural Networks for Document Processing", *Tenth International Workshop on
# Frontiers in Handwriting Recognition* (IWFHR 2006). The paper *unrolled* each
# convolution into one matrix product (what is now called **im2col**) and ran it on an
# optimised BLAS, and found it several times faster on a CPU than the direct loops of a
# convolution. minift's Numba backend does the same; we write the direct loops ourselves
# and measure the difference.
#
# **What you will learn**
#
# 1. the kernel contract: the hot paths that every backend implements, and how to
#    switch backend without changing a line of model code;
# 2. that the backends compute the same numbers — up to rounding, and why only up to it;
# 3. how fast each backend trains (`minift.bench`), and why you must read such numbers
#    with the machine's load in mind;
# 4. how a Numba kernel is written, checked against the NumPy reference, and debugged
#    with `NUMBA_DISABLE_JIT=1`.
#
# Without Numba installed, the parts that need it say why and skip; the rest runs on NumPy.
# CuPy (an NVIDIA GPU) joins the comparison where it is available.
#
# **Runtime:** about 9 s on an idle 2-core CPU with the default settings (7 s
# with `MINIFT_FAST=1`); `tutorials/README.md` lists the measurements.
# Every number is recomputed when you run it; the assert cells at the end check the claims.
# No assert is about speed: timings vary from machine to machine and from minute to minute.

# %%
import minift  # first: it sets up the CPU thread pools before NumPy loads (minift/backend/threads.py)

import copy
import inspect
import os
import subprocess
import sys
import time

import numpy as np

from minift import bench
from minift.apps import course
from minift import functional as F
from minift import contract, reference
from minift.backend import available_backends, use_backend
from minift.contract.geometry import conv2d_geometry
from minift.data import load_dataset
from minift.models import SmallCNN
from minift.optim import AdamW

started_cpu, started_wall = time.process_time(), time.perf_counter()
print("backend:", minift.backend.get_backend(), "| fast mode:", course.fast_mode())

# %% [markdown]
# ## 1. The kernel contract
#
# minift's ops never run a convolution or a matrix product themselves: they call one of
# the entries of `minift.contract.CONTRACT`. Each entry checks its arguments, works out
# the sizes of the call (its *geometry*), and hands the arrays and that geometry to the
# kernel of the same name in the backend in use. Each backend is a module that
# implements all of them with the same semantics (documented once, in
# `minift/contract/__init__.py`), so its kernels hold only their loops:

# %%
print("the contract:", ", ".join(contract.CONTRACT))
backends = available_backends()
for name, (ok, reason) in backends.items():
    print(f"  {name:6} {'available' if ok else 'not available'}: {reason}")
numba_ok, cupy_ok = backends["numba"][0], backends["cupy"][0]

# %% [markdown]
# `MINIFT_BACKEND=numpy|numba|cupy|auto` chooses one for a whole run; `auto` (the
# default) takes Numba when it imports. Inside a program, `use_backend(name)` switches
# for a block. The model code is the same in every case.
#
# ## 2. The same numbers
#
# One forward and backward pass of a `SmallCNN` (three conv-BatchNorm-ReLU blocks and a
# head) on 64 Fashion-MNIST images, from the same weights, under each backend. We compare
# the logits and every parameter's gradient with those of the NumPy reference.

# %%
fashion = load_dataset("fashion-mnist-bundled")
images, labels = minift.Tensor(fashion.x_train[:64]), minift.Tensor(fashion.y_train[:64])
minift.manual_seed(0)
model = SmallCNN(width=16)


def logits_and_gradients(backend, dtype=minift.float32, device="cpu"):
    """Logits and parameter gradients (NumPy arrays) of one pass of a copy of ``model``."""
    with use_backend(backend):
        net = copy.deepcopy(model).to(dtype).to(device)
        logits = net(images.to(dtype).to(device))
        F.cross_entropy(logits, labels.to(device)).backward()
        return {"logits": logits.numpy(), **{name: p.grad.numpy() for name, p in net.named_parameters()}}


def largest_difference(results, reference_results):
    """max |a - b| / max |b| over all arrays: the difference relative to the values' size."""
    return max(float(np.abs(results[k] - reference_results[k]).max() / np.abs(reference_results[k]).max())
               for k in reference_results)


compared = [name for name in ("numba", "cupy") if backends[name][0]]
for name in ("numba", "cupy"):
    if name not in compared:
        print(f"{name} is not available here, skipped: {backends[name][1].splitlines()[0][:120]}")
agreement = {}
for dtype in (minift.float32, minift.float64):
    expected = logits_and_gradients("numpy", dtype)
    for backend in compared:
        device = "cuda" if backend == "cupy" else "cpu"
        results = logits_and_gradients(backend, dtype, device)
        agreement[backend, np.dtype(dtype).name] = largest_difference(results, expected)
if agreement:
    course.print_table([(b, d, f"{v:.1e}") for (b, d), v in agreement.items()],
                       ["backend", "dtype", "largest relative difference from numpy"])

# %% [markdown]
# The backends agree, but not to the last bit. A matrix product sums many terms, and the
# Numba kernels sum them in another order than NumPy's (blocked, in parallel, with fused
# multiply-adds): floating-point addition is not associative, so each order rounds a
# little differently. The differences are a few units of the dtype's precision
# (`np.finfo(np.float32).eps ≈ 1.2e-7`, `float64 ≈ 2.2e-16`) times the number of terms —
# that is why the tests compare kernels with a tolerance scaled to the dtype, and why
# `gradcheck` works in float64.
#
# ## 3. How fast?
#
# `minift.bench` times workloads on every available backend, and on PyTorch when it is
# installed. A workload is a `bench.Row`: a name, its floating-point operations (or
# `None`) and a function that builds one step. We add a row of our own — one AdamW
# training step of the `SmallCNN` above — to two of the bench's built-in rows: the
# convolution of the SmallCNN's second block, forward and both gradients, and a matrix
# product. The NumPy cells are the slow ones, so fast mode uses a batch of 16.

# %%
BATCH = course.pick(64, 16)


def make_training_step():
    """Build one SmallCNN training step on BATCH images: forward, loss, backward, AdamW."""
    minift.manual_seed(0)
    net = SmallCNN(width=16)
    optimizer = AdamW(net.parameters(), lr=1e-3)
    x, y = images[:BATCH], labels[:BATCH]

    def step():
        optimizer.zero_grad()
        F.cross_entropy(net(x), y).backward()
        optimizer.step()

    return step


rows = [
    bench.Row(f"SmallCNN(16) training step, {BATCH} x 1x28x28", None, make_training_step),
    bench.conv_row("block2", BATCH, 16, 14, 32),
    bench.matmul_row(512),
]
cells = bench.run_benchmarks(rows, repeat=course.pick(7, 3), warmup=course.pick(2, 1))

# %% [markdown]
# Read the `vs numpy` column: how many times faster than the NumPy reference each
# implementation ran (`numba blocked` is the Numba backend with its own matrix product
# instead of OpenBLAS's; `vs torch` compares with PyTorch's kernels). Only the hot paths
# of the contract differ between backends: the rest of a training step — element-wise
# ops, the optimizer, the autograd bookkeeping — is NumPy in every backend.
#
# Then read the header. The load average counts the jobs that want a core; above the
# number of cores, the timings say as much about the other jobs as about the kernels,
# and multi-threaded calls suffer most, since each waits until all of its threads have
# a core. On the shared development machine we have seen the same cell change tenfold
# from one run to the next. Run it twice, on a quiet machine, before you believe a number.
#
# ## 4. Writing a kernel: a direct convolution in Numba
#
# Here is the contract's `conv2d_forward`, simplified to stride 1 and no dilation, written
# the direct way: for every output value, a sum over channels and the kernel window.
# `@njit` compiles the function to machine code the first time it is called with new
# argument types; `prange` marks a loop whose iterations are independent, so Numba runs
# them on all cores. Each iteration computes one (image, output channel) plane, so no
# two threads ever write the same element.
#
# Everything inside is plain Python with NumPy arrays — which means the same function
# also runs *without* Numba, as Python, only slower. That is how kernels are debugged.

# %%
try:
    from numba import njit, prange
except ImportError:     # the plain-Python version below still runs, with prange = range
    njit, prange = None, range


def conv2d_direct(x, weight, padding):
    """y[n, o, i, j] = sum_{c,p,q} weight[o, c, p, q] * xpad[n, c, i + p, j + q] (stride 1).

    x (N, C, H, W), weight (O, C, KH, KW) -> y (N, O, H + 2 padding - KH + 1, likewise W).
    """
    n_images, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    out_h, out_w = height + 2 * padding - kh + 1, width + 2 * padding - kw + 1
    y = np.zeros((n_images, out_channels, out_h, out_w), dtype=x.dtype)
    for plane in prange(n_images * out_channels):      # one (image, output channel) per task
        n, o = plane // out_channels, plane % out_channels
        for c in range(channels):
            for p in range(kh):
                for q in range(kw):
                    w = weight[o, c, p, q]
                    for i in range(max(0, padding - p), min(out_h, height + padding - p)):
                        for j in range(max(0, padding - q), min(out_w, width + padding - q)):
                            y[n, o, i, j] += w * x[n, c, i + p - padding, j + q - padding]
    return y


conv2d_direct_jit = njit(parallel=True)(conv2d_direct) if njit is not None else None

# %% [markdown]
# The loop bounds of `i` and `j` skip the rows and columns that would read the zero
# padding, so the innermost loop has no test in it. First, is it right? The NumPy
# reference is the oracle; a tiny input runs the pure-Python version too.

# %%
rng = np.random.default_rng(0)
x = rng.standard_normal((BATCH, 16, 14, 14), dtype=np.float32)  # the input of SmallCNN's block2
weight = rng.standard_normal((32, 16, 3, 3), dtype=np.float32)
geometry = ((1, 1), (1, 1), (1, 1))   # stride, padding, dilation as (height, width) pairs
g = conv2d_geometry("conv2d_forward", x.shape, weight.shape, *geometry)  # what the contract hands a kernel
print(g)
expected = reference.conv2d_forward(x, weight, None, g)

tiny_x, tiny_w = x[:1, :2, :5, :5], weight[:3, :2]
tiny_expected = contract.conv2d_forward(tiny_x, tiny_w, None, *geometry)  # checked, then the selected backend
python_difference = float(np.abs(conv2d_direct(tiny_x, tiny_w, 1) - tiny_expected).max())
print(f"pure Python, tiny input: max |difference| = {python_difference:.1e}")
if conv2d_direct_jit is not None:
    jit_difference = float(np.abs(conv2d_direct_jit(x, weight, 1) - expected).max() / np.abs(expected).max())
    print(f"Numba, block2-sized input: max relative difference = {jit_difference:.1e}")

# %% [markdown]
# Now the race, on the same block2-sized input: the NumPy reference (im2col with NumPy,
# then one matrix product on OpenBLAS), our direct loops, and minift's Numba kernel
# (im2col in compiled loops, then the same kind of matrix product; on several threads,
# each thread runs both steps on its own share of the images). The two backends run through
# the contract, as training calls them, so that each gets the threads minift gives it.
# `bench.measure` returns the median time of several calls after warm-up calls, which
# also keep the compile time out of the measurement.

# %%
repeat, warmup = course.pick(7, 3), 1


def through_the_contract(backend):
    """conv2d forward as training runs it: checked by the contract, with the threads its size
    pays for (NumPy's BLAS gets more than one only around large products), on ``backend``."""
    def forward():
        with use_backend(backend):
            return contract.conv2d_forward(x, weight, None, *geometry)
    return forward


contenders = {"numpy reference (im2col + BLAS)": through_the_contract("numpy")}
if numba_ok:
    contenders["our direct loops (Numba)"] = lambda: conv2d_direct_jit(x, weight, 1)
    contenders["minift numba (im2col + GEMM)"] = through_the_contract("numba")
else:
    print("numba is not available, only the reference runs:", backends["numba"][1])
seconds = {name: bench.measure(step, repeat, warmup) for name, step in contenders.items()}
flops = 2 * expected.size * weight[0].size   # each output sums C*KH*KW products: a multiply and an add each
course.print_table([(name, f"{1e3 * t:.2f}", f"{flops / t / 1e9:.1f}") for name, t in seconds.items()],
                   [f"conv2d forward, {BATCH}x16x14x14 -> 32", "ms", "GFLOP/s"])

# %% [markdown]
# The direct loops are correct, and compiled, and parallel — and yet im2col with a good
# matrix product usually beats them, as Chellapilla et al. found in 2006. The direct loop
# reads each input value `KH·KW·O` times from scattered places; im2col copies the input
# once into a matrix (`C·KH·KW` rows, one column per output pixel) and then a GEMM does
# all the arithmetic in cache-sized blocks with vector instructions
# (`kernels/numba/gemm.py` explains how a fast GEMM is built). The price is memory: the
# column matrix is `KH·KW` = 9 times as large as the input, which is why minift's kernel
# processes the batch in chunks (`kernels/numba/conv.py`). How large the gap is depends
# on the machine and its load; on a busy machine any of these can lose a round.
#
# ## 5. Reading and debugging the real kernels
#
# The real kernels look like ours, with more care for speed. Here is minift's average
# pooling, whole:

# %%
if numba_ok:
    from minift.kernels.numba import pool as numba_pool

    print(inspect.getsource(numba_pool.avg_pool2d_forward_kernel.py_func))
else:
    print("numba is not available; read kernels/numba/pool.py instead")

# %% [markdown]
# The `uint64(...)` casts tell Numba the indices are never negative, so it can drop the
# check for Python's negative indexing and vectorise the inner loop — one of the
# tricks each kernel file explains in its docstring.
#
# One more trick, from max pooling in the same file: **constants at compile time**.
# `max_pool2d_forward_kernel` takes the window and the stride as arguments, so the
# compiled code loops over a window of unknown size. `fixed_window_kernel((2, 2), (2, 2))`
# builds the same loops (both call one per-window function, `window_max`) with the 2s
# frozen into the code — Numba compiles a closure's variables as constants — and LLVM can
# then unroll the window and vectorise across the output columns. Same numbers, another
# speed:

# %%
if numba_ok:
    pool_planes = rng.standard_normal((BATCH * 32, 32, 32)).astype(np.float32)
    window = ((2, 2), (2, 2))
    fixed_pool = numba_pool.fixed_window_kernel(*window)
    pool_kernels = {
        "general kernel (window as arguments)":
            lambda: numba_pool.max_pool2d_forward_kernel(pool_planes, *window, (0, 0), (1, 1), (16, 16)),
        "fixed_window_kernel (window as constants)": lambda: fixed_pool(pool_planes, (16, 16)),
    }
    pool_results = [kernel() for kernel in pool_kernels.values()]
    same_pooling = all(np.array_equal(a, b) for a, b in zip(*pool_results))
    course.print_table([(name, f"{1e3 * bench.measure(kernel, repeat, warmup):.2f}")
                        for name, kernel in pool_kernels.items()],
                       [f"max_pool2d 2x2, {BATCH * 32} planes of 32x32", "ms"])
    print("same maxima and indices:", same_pooling)
else:
    print("numba is not available; read kernels/numba/pool.py instead")

# %% [markdown]
# **To debug a kernel**, set `NUMBA_DISABLE_JIT=1` before Numba is imported: every `@njit`
# function is then the plain Python function it was written as (`prange` becomes
# `range`), so `print`, `pdb` and tracebacks with line numbers all work inside it — at
# Python speed, so use tiny inputs. (For a single function, call its `.py_func`, as we did
# above with the undecorated `conv2d_direct`.) Each parallel kernel is compiled twice
# (`kernels/numba/parallel.py`): `.parallel` for several threads and `.serial`, which the
# calling thread runs itself when the thread policy says one thread. A fresh interpreter
# shows the difference:

# %%
probe = "from minift.kernels.numba import conv; print(type(conv.im2col_batch.parallel).__name__)"
kernel_kind = {}
if numba_ok:
    for setting in ("0", "1"):
        environment = {**os.environ, "NUMBA_DISABLE_JIT": setting}
        result = subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True, text=True,
                                check=True)
        kernel_kind[setting] = result.stdout.strip()
        print(f"NUMBA_DISABLE_JIT={setting}: conv.im2col_batch.parallel is a {kernel_kind[setting]}")
else:
    print("numba is not available: nothing to compile or to disable")

# %%
elapsed_cpu, elapsed_wall = time.process_time() - started_cpu, time.perf_counter() - started_wall
print(f"this notebook took {elapsed_cpu:.0f} s of CPU time in this process, {elapsed_wall:.0f} s of wall time")

# %% [markdown]
# ## Checks
#
# These asserts are what this notebook claims; CI runs them on every change. None of
# them is about speed.

# %%
precision = {"float32": np.finfo(np.float32).eps, "float64": np.finfo(np.float64).eps}
for (backend, dtype), difference in agreement.items():
    assert difference < 1e3 * precision[dtype], f"{backend} {dtype}: relative difference {difference:.1e}"
if numba_ok:
    assert ("numba", "float32") in agreement and ("numba", "float64") in agreement
    assert agreement["numba", "float64"] < 1e-3 * agreement["numba", "float32"], \
        "float64 agrees far more closely than float32: the differences are rounding"
    assert jit_difference < 1e-5, "the direct convolution computes the reference's numbers"
    assert kernel_kind == {"0": "CPUDispatcher", "1": "function"}, kernel_kind
    assert same_pooling, "a window compiled in as constants computes the same maxima and indices"
assert python_difference < 1e-5, "the pure-Python kernel computes the reference's numbers"
assert {cell["row"] for cell in cells} == {row.name for row in rows}, "every bench row was measured"
print("all checks passed")

# %% [markdown]
# ## Exercises
#
# 1. Run this notebook with `MINIFT_BACKEND=numpy` and then `MINIFT_BACKEND=numba`. Which
#    numbers change, which do not?
# 2. Make `conv2d_direct` faster: move the `c` loop inside the `i`, `j` loops (so each
#    output value is summed in a register), or give each task a block of rows. Check it
#    against the reference after every change, and time it with `bench.measure`.
# 3. Add `stride` to `conv2d_direct` (the contract's formula is in `minift/contract/__init__.py`).
#    Test it on small odd sizes against `reference.conv2d_forward` — the edge cases are
#    where kernels go wrong.
# 4. Put a `print(plane)` inside the `prange` loop and run with `NUMBA_DISABLE_JIT=1`. In
#    what order do the planes come? And with the JIT on (Numba can print, too)?
# 5. Run `python -m minift.bench` for the full table, and `python -m minift.bench.cupy`
#    on a machine with an NVIDIA GPU.
