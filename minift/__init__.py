"""minift: a fine-tuning engine written from scratch in NumPy, for reading and for courses.

The pieces, in the order a reader meets them:

- ``minift.Tensor`` and ``backward`` (engine/tensor.py, engine/autograd.py): reverse-mode autodiff;
- ``minift.functional``: every differentiable op, forward and backward side by side;
- ``minift.contract``: the kernel contract, and ``minift.backend``: which implementation runs it
  (NumPy reference, Numba, CuPy);
- ``minift.nn``, ``minift.optim``: layers, optimizers, schedules (PyTorch's names);
- ``minift.finetune``, ``minift.train``: freezing, layer groups, discriminative learning
  rates, gradual unfreezing, remedies for forgetting, and the Learner that trains.
"""

__version__ = "0.1.0"

from .backend import allocator, threads

threads.configure_thread_pools()  # before NumPy starts OpenBLAS's threads (see threads.py)
allocator.configure_allocator()  # freed arrays stay for the next step (see allocator.py)

from . import functional  # noqa: E402
from .engine.autograd import enable_grad, is_grad_enabled, no_grad  # noqa: E402
from .engine.creation import (arange, eye, full, full_like, ones, ones_like, rand, rand_like, randn,
                       randn_like, tensor, zeros, zeros_like)
from .functional import (amax, amin, argmax, argmin, cat, clone, concatenate, gather, masked_fill, max, maximum,
                         min, minimum, stack, where)
from .engine.gradcheck import gradcheck, gradcheck_directional
from .engine.random import get_rng_state, manual_seed, set_rng_state
from .engine.tensor import Tensor, bool_, float32, float64, int32, int64

float, double, long = float32, float64, int64  # PyTorch's aliases: torch.float is torch.float32

__all__ = [
    "Tensor", "tensor", "zeros", "ones", "full", "eye", "arange", "randn", "rand",
    "zeros_like", "ones_like", "full_like", "randn_like", "rand_like",
    "no_grad", "enable_grad", "is_grad_enabled", "manual_seed", "get_rng_state", "set_rng_state",
    "gradcheck", "gradcheck_directional", "functional", "cat", "concatenate", "stack", "where",
    "maximum", "minimum", "float32", "float64", "int32", "int64", "bool_", "float", "double", "long",
    "amax", "amin", "argmax", "argmin", "clone", "gather", "masked_fill", "max", "min",
]
