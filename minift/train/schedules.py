"""Learning-rate schedules for ``Learner.fit``, by name or as an object.

``fit(epochs, lr, schedule=...)`` sets each param group's base lr from ``lr`` and then
asks the schedule for a scheduler over the fit's ``total_steps`` batches; the Learner
steps it once per batch. Every group follows the schedule from its *own* base lr, so
discriminative learning rates keep their ratios all the way.

- ``None`` or ``"constant"``: no scheduler, the base lrs throughout;
- ``"one_cycle"``: ``OneCycle()``, fastai's ``fit_one_cycle`` defaults;
- ``"slanted_triangular"``: ``SlantedTriangular()``, ULMFiT's STLR;
- ``"cosine"``: ``CosineWithWarmup()``, linear warm-up then cosine decay to 0;
- an object like those (e.g. ``OneCycle(pct_start=0.99)``), or any callable
  ``(optimizer, total_steps) -> LRScheduler``.

The objects are frozen dataclasses, so their ``repr`` names them exactly; a resumed fit
checks that it uses the same schedule as the one that wrote the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..optim.lr_scheduler import CosineWarmupLR, OneCycleLR, SlantedTriangularLR


@dataclass(frozen=True)
class OneCycle:
    """The 1cycle policy with fastai's defaults (``fit_one_cycle``), each group peaking at
    its own base lr ``lr_max``: from ``lr_max / div`` up to ``lr_max`` (cosine) over the
    first ``pct_start`` of the steps, then down to ``lr_max / div_final``. Momentum (SGD's
    ``momentum`` or Adam's ``β1``) goes the other way, ``moms[0] → moms[1] → moms[0]``.

    Built on ``optim.lr_scheduler.OneCycleLR`` (PyTorch's step-based phases; fastai
    interpolates on the fraction of training done, which differs by under a step).
    """

    pct_start: float = 0.25
    div: float = 25.0
    div_final: float = 1e5
    moms: tuple = (0.95, 0.85)

    def __call__(self, optimizer, total_steps: int):
        cycle_momentum = "momentum" in optimizer.defaults or "betas" in optimizer.defaults
        return OneCycleLR(
            optimizer, max_lr=[group["lr"] for group in optimizer.param_groups], total_steps=total_steps,
            pct_start=self.pct_start, div_factor=self.div, final_div_factor=self.div_final / self.div,
            cycle_momentum=cycle_momentum, max_momentum=self.moms[0], base_momentum=self.moms[1],
        )


@dataclass(frozen=True)
class SlantedTriangular:
    """ULMFiT's slanted triangular lr (Howard & Ruder 2018): a linear rise over the first
    ``cut_frac`` of the steps to the base lr, a long linear decay to ``base_lr / ratio``."""

    cut_frac: float = 0.1
    ratio: float = 32.0

    def __call__(self, optimizer, total_steps: int):
        return SlantedTriangularLR(optimizer, total_steps=total_steps, cut_frac=self.cut_frac, ratio=self.ratio)


@dataclass(frozen=True)
class CosineWithWarmup:
    """Linear warm-up from 0 over ``warmup_pct`` of the steps, then a cosine to 0 (the
    shape of Hugging Face's ``get_cosine_schedule_with_warmup``)."""

    warmup_pct: float = 0.1

    def __call__(self, optimizer, total_steps: int):
        return CosineWarmupLR(optimizer, warmup_steps=int(total_steps * self.warmup_pct), total_steps=total_steps)


SCHEDULES = {
    "constant": None,
    "one_cycle": OneCycle(),
    "slanted_triangular": SlantedTriangular(),
    "cosine": CosineWithWarmup(),
}


def resolve_schedule(schedule):
    """``None`` or a callable ``(optimizer, total_steps) -> scheduler``, from what ``fit`` got."""
    if schedule is None:
        return None
    if isinstance(schedule, str):
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}: expected one of {sorted(SCHEDULES)}, None, or a callable")
        return SCHEDULES[schedule]
    if not callable(schedule):
        raise TypeError(
            f"schedule must be a name ({sorted(SCHEDULES)}), None, or a callable (optimizer, total_steps) "
            f"-> scheduler; got {type(schedule).__name__}"
        )
    return schedule


def describe_schedule(schedule) -> str:
    """A name for the schedule that is the same in every process (saved in checkpoints)."""
    schedule = resolve_schedule(schedule)
    if schedule is None:
        return "constant"
    return getattr(schedule, "__qualname__", None) or repr(schedule)
