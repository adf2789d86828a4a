"""``DistributedDataParallel``: N copies of a model that take the same steps.

Data parallelism in three rules, each rank running the same script on its own share of
every batch (``DistributedLoader``):

1. **Start equal.** At wrap time every parameter and buffer is broadcast from rank 0, so
   all copies hold the same weights (after checking that all ranks built the same shapes).
2. **Step equal.** After ``loss.backward()`` every trainable parameter's gradient is
   replaced by its average over the ranks. Each rank's loss is the mean over its B
   examples, so the average is the gradient of the mean over all N*B examples: exactly
   what one process with batch N*B computes. The optimizers then take identical steps.
3. **Communicate in buckets.** Gradients are copied into flat buckets of about
   ``bucket_cap_mb`` megabytes, last layers first (as PyTorch, whose buckets follow the
   order in which backward produces gradients), and each bucket is averaged by one
   all-reduce: a few large messages instead of one per parameter, each of which would pay
   MPI's latency. Frozen parameters (``requires_grad=False``) are left out; the buckets are
   re-planned when that set changes (gradual unfreezing).

**How the averaging hooks into ``loss.backward()``.** ``forward`` runs the wrapped module
and returns its output through one more op, ``_AverageGradientsAfterBackward``, whose
forward is the identity. The engine reaches that op first in ``loss.backward()`` (it is
the last op of the model), with ``dL/d(output)``. Its backward then does the rest itself:

    output.backward(dL/d(output))   # a nested backward through the wrapped module:
                                    #   every parameter's .grad is now complete
    average the gradients           # the buckets' all-reduces
    return None                     # nothing more flows: the module's graph is spent

So ``loss.backward()`` is unchanged, and when it returns the gradients are averaged.
A term of the loss that uses parameters outside the forward (a weight penalty such as
``L2SP``) adds its gradient in the outer backward, before or after the averaging; it is
the same on every rank, so either way the sum equals the one-process gradient. The loss
must reach the module's insides only through its output (an activation kept aside and
used in the loss would be backpropagated into a graph the nested backward has freed), and
every rank must freeze the same parameters (the buckets must match).
(PyTorch instead hooks each parameter's gradient accumulator and overlaps the
all-reduces with the rest of backward; with blocking MPI calls there is nothing to
overlap, and one hook at the end is simpler to follow.)

**Gradient accumulation.** Inside ``with ddp.no_sync():`` the forward records that its
backward must not average: gradients accumulate locally, and the first backward outside
``no_sync`` averages the accumulated sums (PyTorch's semantics).

**Buffers and BatchNorm.** Each rank's BatchNorm normalises with its own batch's
statistics (B examples, not N*B), as in PyTorch's DDP; with ``broadcast_buffers=True``
(PyTorch's default) rank 0's running statistics are broadcast before every training
forward. ``SyncBatchNorm.convert_sync_batchnorm(model)`` makes the batch statistics
global instead, so that N ranks equal one big batch exactly, BatchNorm included.

Differences from PyTorch, on purpose: ``state_dict()`` and ``named_parameters()`` are the
wrapped module's, without a ``module.`` prefix, so a checkpoint written under ``mpiexec``
loads into the plain model; and the wrapped module must return one Tensor.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

import numpy as np

from ..backend.device import to_device
from ..engine.autograd import Function, is_grad_enabled
from ..engine.tensor import Tensor
from ..nn import Module
from . import process_group as dist


class _AverageGradientsAfterBackward(Function):
    """y = x in forward; in backward: backpropagate through the wrapped module, then average.

    ``inner`` is the wrapped module's output (whose graph reaches the parameters); ``ddp``
    the wrapper; ``sync`` whether this backward averages (False under ``no_sync``).
    """

    @staticmethod
    def forward(ctx, x, inner=None, ddp=None, sync=True):
        ctx.inner, ctx.ddp, ctx.sync = inner, ddp, sync
        return x

    @staticmethod
    def backward(ctx, g):
        ctx.inner.backward(g)
        if ctx.sync:
            ctx.ddp.average_gradients()
        return None


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training (see the module docstring).

    ``bucket_cap_mb``: the size of a gradient bucket (PyTorch's default, 25 MB);
    ``broadcast_buffers``: rank 0's buffers are copied to every rank before each training
    forward. Outside ``mpiexec`` it works as a world of one and says so once.
    """

    def __init__(self, module: Module, bucket_cap_mb: float = 25.0, broadcast_buffers: bool = True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel wraps an nn.Module, got {type(module).__name__}")
        if not bucket_cap_mb > 0:
            raise ValueError(f"bucket_cap_mb must be positive, got {bucket_cap_mb!r}")
        dist.init_process_group()
        if not dist.launched_by_mpi() and not _noted["world_of_one"]:
            _noted["world_of_one"] = True
            print("minift.distributed: not started by mpiexec; DistributedDataParallel runs as a world "
                  "of one process", file=sys.stderr)
        check_same_model_on_every_rank(module)
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor, src=0)
        self.module = module
        self.bucket_cap_bytes = int(bucket_cap_mb * 2**20)
        self.broadcast_buffers = bool(broadcast_buffers)
        self.require_backward_grad_sync = True
        self.communication_seconds = 0.0  # time spent averaging gradients (the benchmark reads it)
        self._plan = ((), [])

    def forward(self, *inputs, **kwargs):
        if self.broadcast_buffers and self.training and dist.is_distributed():
            for buffer in self.module.buffers():
                dist.broadcast(buffer, src=0)
        output = self.module(*inputs, **kwargs)
        if not isinstance(output, Tensor):
            raise TypeError(
                f"DistributedDataParallel needs the wrapped module to return one Tensor, "
                f"got {type(output).__name__}"
            )
        if not (is_grad_enabled() and output.requires_grad):
            return output
        return _AverageGradientsAfterBackward.apply(
            output, inner=output, ddp=self, sync=self.require_backward_grad_sync)

    @contextmanager
    def no_sync(self):
        """Backwards of forwards run inside this block accumulate gradients without averaging."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # ------------------------------------------------------------ the averaging
    def buckets(self) -> list[list[Tensor]]:
        """The trainable parameters in buckets: last parameters first, one dtype per bucket,
        each at most ``bucket_cap_mb`` (a parameter larger than that is a bucket alone)."""
        params = [p for p in reversed(list(self.module.parameters())) if p.requires_grad]
        key = tuple(id(p) for p in params)
        if self._plan[0] != key:
            self._plan = (key, plan_buckets(params, self.bucket_cap_bytes))
        return self._plan[1]

    def average_gradients(self) -> None:
        """Replace each trainable parameter's ``.grad`` by its mean over the ranks, bucket by bucket.

        A parameter without a gradient on this rank (not used in its forward) contributes
        zeros; one that has none on every rank keeps ``grad=None``, as it would alone.
        """
        world = dist.get_world_size()
        if world == 1:
            return
        started = time.perf_counter()
        buckets = self.buckets()
        params = [p for bucket in buckets for p in bucket]
        has_grad = np.array([p.grad is not None for p in params], dtype=np.uint8)
        dist.all_reduce(has_grad, op="max")
        present = {id(p) for p, flag in zip(params, has_grad) if flag}
        for bucket in buckets:
            bucket = [p for p in bucket if id(p) in present]
            if bucket:
                _average_bucket(bucket, world)
        self.communication_seconds += time.perf_counter() - started

    # ------------------------------------------------------------ the wrapped module's names
    def layer_groups(self):
        """The wrapped module's layer groups (``minift.finetune.layer_groups`` rule 2)."""
        from ..finetune.groups import layer_groups

        return layer_groups(self.module)

    def named_parameters(self, recurse: bool = True):
        return self.module.named_parameters(recurse)

    def named_buffers(self, recurse: bool = True):
        return self.module.named_buffers(recurse)

    def state_dict(self):
        return self.module.state_dict()

    def load_state_dict(self, state_dict, strict: bool = True):
        return self.module.load_state_dict(state_dict, strict)


_noted = {"world_of_one": False}


def plan_buckets(params: list[Tensor], cap_bytes: int) -> list[list[Tensor]]:
    """Consecutive parameters of one dtype, each group's bytes at most ``cap_bytes``."""
    buckets, current, size = [], [], 0
    for param in params:
        nbytes = param.data.nbytes
        if current and (size + nbytes > cap_bytes or param.dtype != current[0].dtype):
            buckets.append(current)
            current, size = [], 0
        current.append(param)
        size += nbytes
    if current:
        buckets.append(current)
    return buckets


def _average_bucket(bucket: list[Tensor], world: int) -> None:
    """Flatten the bucket's gradients into one buffer, all-reduce it once, divide, copy back."""
    buffer = np.empty(sum(p.numel() for p in bucket), dtype=bucket[0].dtype)
    offset = 0
    for param in bucket:
        n = param.numel()
        buffer[offset: offset + n] = 0 if param.grad is None else param.grad.numpy().reshape(-1)
        offset += n
    dist.all_reduce(buffer, op="sum")
    buffer /= world
    offset = 0
    for param in bucket:  # each gradient becomes a view of the buffer (moved back to the GPU if it was there)
        n = param.numel()
        mean = to_device(buffer[offset: offset + n].reshape(param.shape), param.device)
        if param.grad is None:
            param.grad = Tensor._from_array(mean)
        else:
            param.grad.data = mean
        offset += n


def check_same_model_on_every_rank(module: Module) -> None:
    """Raise, on every rank, if any rank's parameters and buffers differ in names, shapes or dtypes.

    A mismatch would otherwise surface later as an all-reduce of the wrong size: a crash
    in MPI, or worse, silently mixed-up numbers.
    """
    if not dist.is_distributed():
        return
    mine = [(name, tuple(t.shape), str(t.dtype)) for name, t in module._state_tensors().items()]
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    for rank, theirs in enumerate(everyone):
        if theirs != everyone[0]:
            first = next((a, b) for a, b in zip(everyone[0] + [None], theirs + [None]) if a != b)
            raise RuntimeError(
                f"DistributedDataParallel: rank {rank}'s model differs from rank 0's: rank 0 has "
                f"{_describe(first[0])}, rank {rank} has {_describe(first[1])}. Every rank must build "
                "the same model (same architecture, same number of classes) before wrapping it"
            )


def _describe(entry) -> str:
    return "nothing more" if entry is None else f"{entry[0]} of shape {entry[1]} ({entry[2]})"
