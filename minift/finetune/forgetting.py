"""Against catastrophic forgetting: measure it, and the L2-SP remedy.

Fine-tuning moves the pretrained weights toward whatever helps the new task, and nothing
holds them near what they knew. With a high learning rate or a long run, the model can
become good at the new task while losing the general features that made the pretrained
model worth starting from -- and its accuracy on the source task collapses. That is
*catastrophic forgetting*. To see it, keep a copy of the old head and call
``evaluate_accuracy`` on the source task's test set before and after.

Remedies, all in minift: low learning rates on the early layers (``discriminative_lrs``),
freezing them (``freeze_to``), training the head first (``fine_tune``, ``lp_ft``), and
L2-SP, which adds a spring back to the starting point:

    Ω(w) = α/2 · Σ_body ‖w − w⁰‖²  +  β/2 · Σ_head ‖w‖²          (Li, Grandvalet, Davoine 2018)

``w⁰`` are the pretrained values. Ordinary weight decay (``β/2 ‖w‖²`` everywhere) pulls
every weight toward zero, that is, away from what was learned; L2-SP pulls the body's
weights toward their pretrained values instead, and decays only the new head, which has
no starting point to return to. Its gradient is ``α (w − w⁰)`` on the body and ``β w`` on
the head.
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
import os
from collections.abc import Mapping

import numpy as np

from .. import functional as F
from .. import io
from ..engine.autograd import no_grad
from ..backend.device import device_of, to_device
from ..nn import Module
from ..engine.tensor import Tensor


class L2SP:
    """The L2-SP penalty of ``model`` against ``pretrained_state`` (a state dict or a path).

    Parameters whose names start with one of ``head_prefixes`` are *new* (penalised by
    ``β/2 ‖w‖²``); every other parameter must be in ``pretrained_state`` with its shape (it
    is penalised by ``α/2 ‖w − w⁰‖²``). ``penalty()`` returns the sum as a differentiable
    0-d Tensor, to add to the loss: ``loss = F.cross_entropy(model(x), y) + l2sp.penalty()``.
    """

    def __init__(self, model: Module, pretrained_state, alpha: float = 1e-2, beta: float = 1e-3, head_prefixes=("head.",)):
        if isinstance(pretrained_state, (str, os.PathLike)):
            pretrained_state = io.load(pretrained_state)
        if not isinstance(pretrained_state, Mapping):
            raise TypeError(f"pretrained_state must be a state dict or a checkpoint path, got {type(pretrained_state).__name__}")
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value >= 0):
                raise ValueError(f"L2SP {name} must be a finite number >= 0, got {value!r}")
        head_prefixes = (head_prefixes,) if isinstance(head_prefixes, str) else tuple(head_prefixes)
        named = list(model.named_parameters())
        if not named:
            raise ValueError(f"{type(model).__name__} has no parameters to regularise")
        unmatched = [p for p in head_prefixes if not any(name.startswith(p) for name, _ in named)]
        if unmatched:
            raise ValueError(f"head_prefixes {unmatched} match no parameter of the model; its names begin {[n for n, _ in named[:4]]}")
        self.alpha, self.beta = float(alpha), float(beta)
        self.head = [(name, p) for name, p in named if name.startswith(head_prefixes)]
        self.body, problems = [], []
        for name, param in named:
            if name.startswith(head_prefixes):
                continue
            value = pretrained_state.get(name)
            value = value.data if isinstance(value, Tensor) else value
            if value is None:
                problems.append(f"  {name}: not in the pretrained state (if it is new, add its prefix to head_prefixes)")
            elif tuple(np.shape(value)) != param.shape:
                problems.append(f"  {name}: pretrained shape {tuple(np.shape(value))}, the model's {param.shape}")
            else:
                start = to_device(value, device_of(param.data)).astype(param.dtype, copy=True)
                self.body.append((name, param, start))
        if problems:
            raise ValueError("L2SP needs a pretrained value for every body parameter:\n" + "\n".join(problems))

    def penalty(self) -> Tensor:
        """``α/2 Σ_body ‖w − w⁰‖² + β/2 Σ_head ‖w‖²`` as a 0-d Tensor that backpropagates."""
        terms = [self.alpha / 2 * F.sum((param - Tensor(start)) ** 2) for _, param, start in self.body]
        terms += [self.beta / 2 * F.sum(param ** 2) for _, param in self.head]
        return functools.reduce(operator.add, terms)

    def __repr__(self) -> str:
        return f"L2SP(alpha={self.alpha}, beta={self.beta}, {len(self.body)} body tensors, {len(self.head)} head tensors)"


def evaluate_accuracy(model: Module, loader) -> float:
    """Fraction of samples whose arg-max logit is the label, over one pass of ``loader``
    (batches ``(inputs, labels, ...)``, moved to the model's device), in ``eval()`` mode
    and without recording a graph. Each module's training mode is restored afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    device = next((p.device for p in model.parameters()), "cpu")
    correct = total = 0
    model.eval()
    try:
        with no_grad():
            for batch in loader:
                inputs, labels = batch[0], batch[1]
                inputs = inputs.to(device) if isinstance(inputs, Tensor) else Tensor(inputs, device=device)
                labels = to_device(labels.data if isinstance(labels, Tensor) else np.asarray(labels), device)
                predictions = model(inputs).data.argmax(axis=1)
                correct += int((predictions == labels).sum())
                total += int(predictions.shape[0])
    finally:
        for module, training in modes:
            module.training = training
    if total == 0:
        raise ValueError("evaluate_accuracy got a loader with no samples")
    return correct / total
