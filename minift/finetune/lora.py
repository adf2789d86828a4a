"""LoRA: low-rank adaptation of a frozen Linear layer (Hu et al. 2021).

Fine-tuning changes a pretrained weight ``W (out, in)`` by some ``Delta W``. Hu et al.
observed that the useful ``Delta W`` has low rank, so they learn it in factored form and
leave ``W`` frozen::

    y = x W^T + b  +  (alpha / r) * x A^T B^T         A (r, in),  B (out, r),  r << in, out

Only ``A`` and ``B`` learn: ``r * (in + out)`` values instead of ``in * out`` -- for a
384 x 384 projection and ``r = 8``, 6,144 instead of 147,456. ``B`` starts at zero, so at
the start the layer computes exactly what the pretrained one did; ``A`` starts
kaiming-uniform (as in Microsoft's ``loralib`` and Hugging Face's PEFT), so the gradient
of ``B``, ``dL/dB = (alpha/r) * g^T (x A^T)``, is not zero and learning can begin.
``alpha / r`` keeps the size of the update about the same when ``r`` changes, so a
learning rate tuned at one rank still works at another.

After training, ``merge()`` folds the update into the weight, ``W' = W + (alpha/r) B A``:
the layer is again one matrix product, as fast as the original. ``unmerge()`` brings
back the original ``W`` exactly (it is kept while merged: subtracting the update again
would leave float rounding behind).

``apply_lora(model)`` puts adapters on the Linear layers of any model whose names match
(by default the attention ``query`` and ``value`` projections, as in the paper) and
freezes everything else; unfreeze a new head afterwards (``set_trainable(model,
"head.*", True)``). ``lora_state_dict(model)`` is what to save: only the adapters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..engine.creation import empty_parameter
from ..nn import Dropout, Linear, Module, init


class LoRALinear(Module):
    """``base(x) + (alpha / r) * dropout(x) A^T B^T``, with ``base`` (a ``Linear``) frozen.

    ``lora_A (r, in)`` ~ kaiming-uniform (a = sqrt 5), ``lora_B (out, r)`` = 0, in the
    base's dtype. ``dropout`` applies to the adapter's input only (as in PEFT).
    Shapes: ``x (..., in)`` -> ``(..., out)``.
    """

    def __init__(self, base: Linear, r: int = 8, alpha: float = 16, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base, Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        problem = argument_problem(base, r, alpha)
        if problem:
            raise ValueError(problem)
        self.base = base
        self.base.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        dtype = base.weight.dtype
        self.lora_A = empty_parameter((r, base.in_features), dtype)
        self.lora_B = empty_parameter((base.out_features, r), dtype)
        init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_dropout = Dropout(dropout)
        self.merged = False
        self._unmerged_weight = None

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self):
        """``(alpha / r) * B A``, shape ``(out, in)``: what the adapter adds to ``W`` (an array)."""
        return self.scaling * (self.lora_B.data @ self.lora_A.data)

    def forward(self, x):
        y = self.base(x)
        if self.merged:
            return y
        low_rank = (self.lora_dropout(x) @ self.lora_A.T) * self.scaling  # (..., r): scaling here is cheapest
        return y + low_rank @ self.lora_B.T

    def merge(self) -> None:
        """Fold the adapter into the base weight (``W += (alpha/r) B A``); the forward is
        then one product. Merging twice is an error."""
        if self.merged:
            raise RuntimeError("this LoRALinear is already merged; unmerge() first")
        self._unmerged_weight = self.base.weight.data.copy()
        self.base.weight.data[...] = self.base.weight.data + self.delta_weight()
        self.merged = True

    def unmerge(self) -> None:
        """Restore the base weight exactly as it was before ``merge()``."""
        if not self.merged:
            raise RuntimeError("this LoRALinear is not merged; there is nothing to unmerge")
        self.base.weight.data[...] = self._unmerged_weight
        self._unmerged_weight = None
        self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, merged={self.merged}"


def argument_problem(base: Linear, r, alpha) -> str | None:
    """Why ``LoRALinear(base, r, alpha)`` cannot be made, or None if it can."""
    if isinstance(r, bool) or not isinstance(r, int) or not 0 < r <= min(base.in_features, base.out_features):
        return f"LoRA rank r must be an int in [1, min(in, out) = {min(base.in_features, base.out_features)}], got {r!r}"
    if isinstance(alpha, bool) or not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        return f"LoRA alpha must be a finite number > 0, got {alpha!r}"
    return None


@dataclass
class LoRAReport:
    """What ``apply_lora`` did: the Linear layers it wrapped, and the parameter counts after."""

    replaced: list
    r: int
    alpha: float
    trainable: int
    total: int

    def __str__(self) -> str:
        share = 100 * self.trainable / self.total if self.total else 0.0
        lines = [f"LoRA (r={self.r}, alpha={self.alpha}) on {len(self.replaced)} Linear layers; "
                 f"trainable {self.trainable:,} of {self.total:,} parameters ({share:.2f}%)"]
        lines += [f"  {name}" for name in self.replaced]
        return "\n".join(lines)


def _matches(qualified_name: str, target: str) -> bool:
    """PEFT's rule: a target names a module by its full name or by its last components."""
    return qualified_name == target or qualified_name.endswith("." + target)


def apply_lora(model: Module, target_names=("query", "value"), r: int = 8, alpha: float = 16,
               dropout: float = 0.0, freeze_others: bool = True) -> LoRAReport:
    """Replace every ``Linear`` whose qualified name ends with one of ``target_names``
    (``"query"`` matches ``encoder.layer.0.attention.self.query``) by a ``LoRALinear``.

    With ``freeze_others`` every parameter but the adapters is frozen. Raises, changing
    nothing, when a target matches no module, matches a module that is not a ``Linear``
    or one that already has an adapter, or when ``r`` or ``alpha`` does not fit a layer.
    """
    if isinstance(target_names, str):
        target_names = (target_names,)
    target_names = tuple(target_names)
    if not target_names or not all(isinstance(t, str) and t for t in target_names):
        raise TypeError(f"target_names must be a non-empty list of module names, got {target_names!r}")
    modules = list(model.named_modules())
    hits = [(name, module) for name, module in modules if name and any(_matches(name, t) for t in target_names)]
    problems = []
    for target in target_names:
        if not any(_matches(name, target) for name, _ in hits):
            endings = sorted({name.rsplit(".", 1)[-1] for name, m in modules if isinstance(m, Linear)})
            problems.append(f"  {target!r} matches no module (the Linear layers end in: {', '.join(endings)})")
    for name, module in hits:
        if isinstance(module, LoRALinear):
            problems.append(f"  {name} already has a LoRA adapter")
        elif not isinstance(module, Linear):
            problems.append(f"  {name} is a {type(module).__name__}, not a Linear")
        elif argument_problem(module, r, alpha):
            problems.append(f"  {name} ({module.in_features} -> {module.out_features}): {argument_problem(module, r, alpha)}")
    if problems:
        raise ValueError("apply_lora cannot adapt these targets (nothing was changed):\n" + "\n".join(problems))
    adapters = [(name, LoRALinear(module, r, alpha, dropout)) for name, module in hits]
    if freeze_others:
        model.requires_grad_(False)
    owners = dict(modules)
    for name, adapter in adapters:
        parent, _, attribute = name.rpartition(".")
        setattr(owners[parent], attribute, adapter)
        adapter.lora_A.requires_grad_(True)
        adapter.lora_B.requires_grad_(True)
    return LoRAReport(
        replaced=[name for name, _ in adapters], r=r, alpha=alpha,
        trainable=model.num_parameters(trainable_only=True), total=model.num_parameters(),
    )


def lora_layers(model: Module) -> list:
    """``(name, LoRALinear)`` for every adapter in ``model``."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LoRALinear)]


def lora_state_dict(model: Module) -> dict:
    """Only the adapters' weights (``...lora_A`` and ``...lora_B``), as NumPy copies: a few
    hundred kB to save instead of the whole model. Load them back with
    ``model.load_state_dict(adapters, strict=False)`` into a model with the same adapters."""
    return {key: value for key, value in model.state_dict().items()
            if key.endswith((".lora_A", ".lora_B"))}


def merge_lora(model: Module) -> int:
    """Merge every adapter of ``model`` into its base weight; returns how many. Raises,
    changing nothing, if any adapter is merged already."""
    return _switch_all(model, merge=True)


def unmerge_lora(model: Module) -> int:
    """Undo ``merge_lora``: every base weight back to its value before merging. Raises,
    changing nothing, if any adapter is not merged."""
    return _switch_all(model, merge=False)


def _switch_all(model: Module, merge: bool) -> int:
    layers = lora_layers(model)
    wrong = [name for name, layer in layers if layer.merged == merge]
    if wrong:
        state = "already merged" if merge else "not merged"
        raise RuntimeError(f"{len(wrong)} adapters are {state} (e.g. {wrong[0]}); nothing was changed")
    for _, layer in layers:
        if merge:
            layer.merge()
        else:
            layer.unmerge()
    return len(layers)
