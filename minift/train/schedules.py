"""Learning-rate schedules for ``Learner.fit``: a name, or a scheduler class and its settings.

``fit(epochs, lr, schedule=...)`` sets each param group's base lr from ``lr``, then builds
a scheduler over the fit's ``total_steps`` batches; the Learner steps it once per batch.
Every group follows the schedule from its *own* base lr, so discriminative learning
rates keep their ratios all the way. ``schedule`` is one of

- ``None`` or ``"constant"``: no scheduler, the base lrs throughout;
- ``"one_cycle"``: ``OneCycleLR`` with fastai's ``fit_one_cycle`` defaults;
- ``"slanted_triangular"``: ``SlantedTriangularLR``, ULMFiT's STLR;
- ``"cosine"``: ``CosineWarmupLR``, a linear warm-up over 10 % of the steps, then a cosine to 0;
- a scheduler class of ``minift.optim.lr_scheduler``, or ``functools.partial`` of one
  with its settings, e.g. ``partial(OneCycleLR, pct_start=0.99)``: ``fit`` fills in what
  it knows and the settings leave out -- the length (``total_steps``, ``T_max`` or
  ``total_iters``), ``max_lr`` (each group's base lr) and ``cycle_momentum`` (whether
  the optimizer has a momentum);
- any other callable ``(optimizer, total_steps) -> scheduler``.

The schedulers are the ones of ``minift.optim.lr_scheduler``, under their PyTorch names;
there is no second name for any of them here. A resumed fit checks that it uses the same
schedule as the one that wrote the checkpoint, by ``describe_schedule``.
"""

from __future__ import annotations

import inspect
from functools import partial

from ..optim.lr_scheduler import CosineWarmupLR, LRScheduler, OneCycleLR, ReduceLROnPlateau, SlantedTriangularLR


def fastai_one_cycle(pct_start=0.25, div=25.0, div_final=1e5, moms=(0.95, 0.85)) -> partial:
    """``OneCycleLR`` with fastai's ``fit_one_cycle`` arguments: from ``lr_max / div`` up to
    ``lr_max`` over the first ``pct_start`` of the steps, then down to ``lr_max / div_final``;
    momentum goes ``moms[0] → moms[1] → moms[0]``. (PyTorch's ``final_div_factor`` is
    relative to the start, so it is ``div_final / div``.)"""
    return partial(OneCycleLR, pct_start=pct_start, div_factor=div, final_div_factor=div_final / div,
                   max_momentum=moms[0], base_momentum=moms[1])


SCHEDULES = {
    "constant": None,
    "one_cycle": fastai_one_cycle(),
    "slanted_triangular": partial(SlantedTriangularLR),
    "cosine": partial(CosineWarmupLR, pct_start=0.1),
}

LENGTH_ARGUMENTS = ("total_steps", "T_max", "total_iters")


def _scheduler_class(schedule):
    """The LRScheduler class a schedule builds (itself or a partial's function), else None."""
    function = schedule.func if isinstance(schedule, partial) else schedule
    return function if isinstance(function, type) and issubclass(function, LRScheduler) else None


def build_scheduler(schedule, optimizer, total_steps: int):
    """A scheduler for ``total_steps`` batches (None for a constant lr), filling in what
    ``fit`` knows for a scheduler class (see the module docstring)."""
    schedule = resolve_schedule(schedule)
    cls = _scheduler_class(schedule)
    if cls is None:
        return None if schedule is None else schedule(optimizer, total_steps)
    if issubclass(cls, ReduceLROnPlateau):
        raise ValueError(
            "ReduceLROnPlateau cannot be a fit schedule: fit steps its scheduler once per batch, and "
            "ReduceLROnPlateau is stepped with a metric once per epoch (call scheduler.step(valid_loss) "
            "from a Callback's after_epoch)"
        )
    given = schedule.keywords if isinstance(schedule, partial) else {}
    known = {name: total_steps for name in LENGTH_ARGUMENTS}
    known["max_lr"] = [group["lr"] for group in optimizer.param_groups]
    known["cycle_momentum"] = "momentum" in optimizer.defaults or "betas" in optimizer.defaults
    accepted = inspect.signature(cls).parameters
    filled = {name: value for name, value in known.items() if name in accepted and name not in given}
    return schedule(optimizer, **filled)


def resolve_schedule(schedule):
    """``None`` or a callable that builds the scheduler, from what ``fit`` got."""
    if schedule is None:
        return None
    if isinstance(schedule, str):
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}: expected one of {sorted(SCHEDULES)}, None, or a callable")
        return SCHEDULES[schedule]
    if not callable(schedule):
        raise TypeError(
            f"schedule must be a name ({sorted(SCHEDULES)}), None, a scheduler class (or a partial of one), or a "
            f"callable (optimizer, total_steps) -> scheduler; got {type(schedule).__name__}"
        )
    return schedule


def describe_schedule(schedule) -> str:
    """A name for the schedule that is the same in every process (saved in checkpoints),
    e.g. ``OneCycleLR(pct_start=0.25, div_factor=25.0, ...)``."""
    schedule = resolve_schedule(schedule)
    if schedule is None:
        return "constant"
    if _scheduler_class(schedule) is not None:
        given = schedule.keywords if isinstance(schedule, partial) else {}
        settings = ", ".join(f"{name}={value!r}" for name, value in given.items())
        return f"{_scheduler_class(schedule).__name__}({settings})"
    return getattr(schedule, "__qualname__", None) or repr(schedule)
