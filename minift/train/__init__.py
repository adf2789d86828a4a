"""``minift.train``: the Learner, its fit loop, and what plugs into it.

- ``Learner`` (learner.py): model + data + optimizer over layer groups; ``fit``,
  ``fit_one_cycle``, ``lr_find``, ``validate``, ``freeze`` / ``unfreeze``;
- callbacks (callbacks.py): ``Callback`` and its events, ``EarlyStopping``,
  ``Checkpointing``, ``TerminateOnNaN``, ``ProgressBar``;
- ``History`` and ``UpdateToWeightRatio`` (history.py): what training recorded;
- schedules by name (schedules.py), metrics (metrics.py);
- resumable checkpoints (resume.py), the lr range test (lr_find.py), and plots
  (plots.py, needs matplotlib; imported on use: ``minift.train.plots``).

- the fine-tuning recipes that drive a Learner (recipes.py: ``fine_tune``,
  ``keras_recipe``, ``ulmfit``, ``lp_ft``) and ``GradualUnfreezing`` (unfreezing.py).

``minift.train`` builds on ``minift.finetune`` (layer groups, freezing, per-group learning
rates); ``minift.finetune`` never imports ``minift.train``.
"""

from .callbacks import (EVENTS, Callback, Checkpointing, EarlyStopping, NonFiniteLossError, ProgressBar,
                        TerminateOnNaN)
from .history import History, UpdateToWeightRatio
from .learner import OPTIMIZERS, Learner, build_optimizer
from .lr_find import LRFindResult, lr_find
from .metrics import accuracy, error_rate
from .recipes import fine_tune, keras_recipe, lp_ft, ulmfit
from .schedules import SCHEDULES
from .unfreezing import GradualUnfreezing

__all__ = [
    "Learner", "build_optimizer", "OPTIMIZERS", "Callback", "EVENTS", "EarlyStopping", "Checkpointing",
    "TerminateOnNaN", "NonFiniteLossError", "ProgressBar", "History", "UpdateToWeightRatio", "lr_find",
    "LRFindResult", "accuracy", "error_rate", "SCHEDULES",
    "fine_tune", "keras_recipe", "ulmfit", "lp_ft", "GradualUnfreezing",
]
