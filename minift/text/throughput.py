"""Tokens per second of a BERT encoder: inference and a training step, minift against PyTorch.

``measure_throughput`` times the same model under minift's backends and, through the
PyTorch re-implementation from the formulas (``minift.text.torch_bert``), with PyTorch,
taking turns; ``minift finetune-text --bench`` prints one such table.
"""

from __future__ import annotations

import time

import numpy as np

from ..backend import threads
from ..engine.autograd import no_grad
from ..nn.bert import BertModel


def measure_throughput(model: BertModel, implementations=("numba", "torch"), batch_size: int = 16, length: int = 128,
                       repeats: int = 3, seed: int = 0) -> dict:
    """Tokens per second of ``model`` on random ids without padding, for ``inference``
    (forward, no graph, eval mode) and ``train_step`` (forward and backward to every
    parameter, train mode, dropout on): ``{implementation: {step: {"tokens_per_s": ...,
    "tokens_per_cpu_s": ...}}}``, the best of ``repeats`` timings after one warm-up each.

    An implementation is a backend name (``"numpy"``, ``"numba"``: the model under that
    backend) or ``"torch"`` (the same weights through the PyTorch re-implementation from the
    formulas, ``minift.text.torch_bert``). They **take turns**, one timed call each per
    round, so that all of them meet the same machine: run one after the other, the same
    PyTorch step measured 4,700 or 6,200 tokens/s depending on what ran before it. Tokens
    per CPU-second (all threads) is the figure that survives a machine shared with other jobs.
    """
    from .. import backend

    unknown = [name for name in implementations if name != "torch" and name not in backend.BACKEND_MODULES]
    if unknown:
        raise ValueError(f"implementations must be backend names or 'torch', got {unknown[0]!r}")
    ids = np.random.default_rng(seed).integers(1, model.config.vocab_size, (batch_size, length))  # never [PAD] (0)
    runs = {}  # (implementation, step) -> (backend to run under, step function)
    for name in implementations:
        steps = _torch_steps(model, ids) if name == "torch" else _minift_steps(model, ids)
        for step, function in steps.items():
            runs[name, step] = ("numpy" if name == "torch" else name, function)
    timings = {key: [] for key in runs}
    for round_ in range(repeats + 1):
        for key, (backend_name, function) in runs.items():
            with backend.use_backend(backend_name):
                seconds = _seconds(function)
            if round_:  # round 0 warms up (and compiles)
                timings[key].append(seconds)
    result = {name: {} for name in implementations}
    for (name, step), seconds in timings.items():
        wall, cpu = zip(*seconds)
        result[name][step] = {"tokens_per_s": ids.size / min(wall), "tokens_per_cpu_s": ids.size / min(cpu)}
    return result


def _minift_steps(model: BertModel, ids: np.ndarray) -> dict:
    mask = np.ones_like(ids)

    def inference():
        model.eval()
        with no_grad():
            model(ids, mask)

    def train_step():
        model.train()
        hidden = model(ids, mask).last_hidden_state
        (hidden * hidden).mean().backward()
        model.zero_grad()

    return {"inference": inference, "train_step": train_step}


def _torch_steps(model: BertModel, ids: np.ndarray) -> dict:
    """The same two steps in PyTorch (as many threads as minift's pools), dropout in training
    as in minift's step (it is about a sixth of a NumPy training step's time)."""
    import torch

    from .torch_bert import torch_bert, torch_state

    torch.set_num_threads(threads.cores())
    state = torch_state(model.state_dict(), requires_grad=True)
    ids, mask = torch.from_numpy(ids), torch.ones(ids.shape, dtype=torch.int64)

    def inference():
        with torch.no_grad():
            torch_bert(state, model.config, ids, mask, pooler=False)

    def train_step():
        hidden, _ = torch_bert(state, model.config, ids, mask, pooler=False, training=True)
        (hidden * hidden).mean().backward()
        for tensor in state.values():
            tensor.grad = None

    return {"inference": inference, "train_step": train_step}


def _seconds(step) -> tuple:
    """(wall, CPU) seconds that ``step()`` takes."""
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - wall, time.process_time() - cpu
