"""GPU benchmarks: the tiled GEMM against cuBLAS, and conv2d against cuDNN (via PyTorch).

Run on a machine with an NVIDIA GPU and CuPy::

    python -m minift.bench.cupy                      # GEMM 1024..8192, four convolutions
    python -m minift.bench.cupy --gemm-sizes 1024 --skip-conv

What is measured:

* **GEMM**: ``cupy_gpu.matmul`` (``gemm.cu``) against ``cupy.matmul`` (cuBLAS) on square
  float32 matrices, in GFLOP/s (``2 * n**3`` flops) and as a percentage of cuBLAS.
* **conv2d**: forward, and forward + both backward passes, of ``cupy_gpu`` (im2col + the
  tiled GEMM) against PyTorch's CUDA convolution (cuDNN) on the same arrays, when a
  PyTorch with CUDA imports; without it only minift's times are printed.

Each time is the median over ``--repeats`` calls, each bracketed by two CUDA events on the
default stream, after ``--warmup`` calls (the first call also compiles the kernels). Both
sides compute in IEEE float32: CuPy uses tensor-core TF32 only when ``CUPY_TF32=1`` (a
warning is printed if so), and PyTorch's TF32 is switched off here. Every result is also
compared with the other side's, so a fast but wrong kernel shows up in the table.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

import numpy as np

GEMM_SIZES = (1024, 2048, 4096, 8192)


@dataclass(frozen=True)
class ConvCase:
    """One convolution layer: x (n, c, size, size), weight (o, c, kernel, kernel)."""

    name: str
    n: int
    c: int
    size: int
    o: int
    kernel: int
    stride: int
    padding: int

    def flops(self) -> float:
        """Multiply-adds x 2 of the forward pass; each backward pass costs the same."""
        out = (self.size + 2 * self.padding - self.kernel) // self.stride + 1
        return 2.0 * self.n * self.o * out * out * self.c * self.kernel * self.kernel


CONV_CASES = (
    ConvCase("ResNet 3x3, 56x56, 64 ch", 32, 64, 56, 64, 3, 1, 1),
    ConvCase("ResNet 3x3 stride 2, 56->28, 128 ch", 32, 64, 56, 128, 3, 2, 1),
    ConvCase("ResNet 3x3, 14x14, 256 ch", 32, 256, 14, 256, 3, 1, 1),
    ConvCase("ResNet 1x1, 14x14, 1024->256 ch", 32, 1024, 14, 256, 1, 1, 0),
)


def gpu_time_ms(run, repeats: int, warmup: int) -> float:
    """Median milliseconds of one ``run()``, timed with CUDA events on the default stream."""
    import cupy

    for _ in range(warmup):
        run()
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    for _ in range(repeats):
        start.record()
        run()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop))
    return float(np.median(times))


def relative_error(ours, theirs) -> float:
    """``max |ours - theirs| / max |theirs|``, on the GPU."""
    import cupy

    return float(cupy.abs(ours - theirs).max() / cupy.abs(theirs).max())


def bench_gemm(sizes=GEMM_SIZES, repeats: int = 10, warmup: int = 3) -> list[dict]:
    """The tiled GEMM against cuBLAS on ``n x n`` float32 matrices; one dict per size."""
    import cupy

    from minift.kernels.cupy import backend as cupy_gpu

    rows = []
    for n in sizes:
        generator = cupy.random.default_rng(n)
        a = generator.standard_normal((n, n), dtype=cupy.float32)
        b = generator.standard_normal((n, n), dtype=cupy.float32)
        error = relative_error(cupy_gpu.matmul(a, b), cupy.matmul(a, b))
        ours = gpu_time_ms(lambda: cupy_gpu.matmul(a, b), repeats, warmup)
        cublas = gpu_time_ms(lambda: cupy.matmul(a, b), repeats, warmup)
        flops = 2.0 * n**3
        rows.append({
            "n": n,
            "minift GFLOP/s": flops / ours / 1e6,
            "cuBLAS GFLOP/s": flops / cublas / 1e6,
            "% of cuBLAS": 100.0 * cublas / ours,
            "max rel. error": error,
        })
        del a, b
        cupy.get_default_memory_pool().free_all_blocks()
    return rows


def _torch_cuda():
    """PyTorch, with TF32 off, if it imports with CUDA and shares CuPy's default stream; else None."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    # The CUDA events are recorded on CuPy's default stream; PyTorch must launch there too.
    if torch.cuda.current_stream().cuda_stream != 0:
        return None
    return torch


def bench_conv(cases=CONV_CASES, repeats: int = 10, warmup: int = 3) -> list[dict]:
    """minift's im2col + GEMM convolution against cuDNN (when available), float32."""
    import cupy

    from minift.kernels.cupy import backend as cupy_gpu

    torch = _torch_cuda()
    rows = []
    for case in cases:
        generator = cupy.random.default_rng(0)
        x = generator.standard_normal((case.n, case.c, case.size, case.size), dtype=cupy.float32)
        weight = generator.standard_normal((case.o, case.c, case.kernel, case.kernel), dtype=cupy.float32)
        pairs = ((case.stride,) * 2, (case.padding,) * 2, (1, 1))
        y = cupy_gpu.conv2d_forward(x, weight, None, *pairs)
        grad_y = generator.standard_normal(y.shape, dtype=cupy.float32)

        def minift_forward():
            return cupy_gpu.conv2d_forward(x, weight, None, *pairs)

        def minift_training_step():
            return (
                cupy_gpu.conv2d_forward(x, weight, None, *pairs),
                cupy_gpu.conv2d_backward_input(grad_y, weight, x.shape, *pairs),
                cupy_gpu.conv2d_backward_weight(grad_y, x, weight.shape, *pairs),
            )

        row = {
            "layer": case.name,
            "minift fwd ms": gpu_time_ms(minift_forward, repeats, warmup),
            "minift fwd+bwd ms": gpu_time_ms(minift_training_step, repeats, warmup),
        }
        if torch is not None:
            tx, tw, tgy = (torch.from_dlpack(array) for array in (x, weight, grad_y))
            stride, padding, dilation = ([*pair] for pair in pairs)

            def torch_forward():
                return torch.nn.functional.conv2d(tx, tw, None, stride, padding, dilation)

            def torch_training_step():
                return torch_forward(), torch.ops.aten.convolution_backward(
                    tgy, tx, tw, None, stride, padding, dilation, False, [0, 0], 1, [True, True, False]
                )

            grad_x, grad_w, _ = torch_training_step()[1]
            ours = minift_training_step()
            theirs = (torch_forward(), grad_x, grad_w)
            row["cuDNN fwd ms"] = gpu_time_ms(torch_forward, repeats, warmup)
            row["cuDNN fwd+bwd ms"] = gpu_time_ms(torch_training_step, repeats, warmup)
            row["% of cuDNN (fwd+bwd)"] = 100.0 * row["cuDNN fwd+bwd ms"] / row["minift fwd+bwd ms"]
            row["max rel. error"] = max(relative_error(a, cupy.from_dlpack(b)) for a, b in zip(ours, theirs))
        row["minift fwd+bwd GFLOP/s"] = 3 * case.flops() / row["minift fwd+bwd ms"] / 1e6
        rows.append(row)
    return rows


def markdown_table(rows: list[dict]) -> str:
    """Rows of equal keys as a Markdown table (floats to 3 significant digits)."""
    if not rows:
        return ""
    header = list(rows[0])
    cell = (lambda v: f"{v:.3g}" if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(row.get(key, "")) for key in header) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minift.bench.cupy", description=__doc__.split("\n")[0])
    parser.add_argument("--gemm-sizes", type=int, nargs="+", default=list(GEMM_SIZES))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--skip-gemm", action="store_true")
    parser.add_argument("--skip-conv", action="store_true")
    args = parser.parse_args(argv)

    try:
        import cupy

        from minift.kernels.cupy import backend as cupy_gpu

        cupy_gpu.check_available()
    except Exception as exc:  # no CuPy, no driver, no GPU, no NVRTC: say which
        print(f"cannot benchmark the GPU kernels here: {type(exc).__name__}: {exc}")
        return 1

    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
    print(f"device: {name.decode() if isinstance(name, bytes) else name}, CuPy {cupy.__version__}")
    if os.environ.get("CUPY_TF32") == "1":
        print("warning: CUPY_TF32=1 lets cuBLAS use TF32 tensor cores; unset it for an FP32 comparison")
    if not args.skip_gemm:
        print("\nSGEMM, square float32 matrices\n")
        print(markdown_table(bench_gemm(args.gemm_sizes, args.repeats, args.warmup)))
    if not args.skip_conv:
        if _torch_cuda() is None:
            print("\n(PyTorch with CUDA not available: no cuDNN comparison)")
        print("\nconv2d, float32, forward and forward + backward (input and weight)\n")
        print(markdown_table(bench_conv(CONV_CASES, args.repeats, args.warmup)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
