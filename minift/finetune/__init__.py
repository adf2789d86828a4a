"""``minift.finetune``: the fine-tuning toolkit -- what PyTorch leaves to fastai and Keras.

A pretrained model's early layers hold general features, its last layers task-specific
ones. Fine-tuning reuses the first and replaces or retrains the second, and every tool
here is one way of treating the two ends differently. In the order a run uses them:

- ``transplant`` (transplant.py): load a pretrained checkpoint into a model with a new head;
- ``layer_groups`` (groups.py): cut the model into ordered groups, input side first;
- ``freeze``, ``freeze_to``, ``unfreeze``, ``set_trainable`` (freezing.py): choose what learns;
- ``set_bn_policy`` (batchnorm.py): what a frozen BatchNorm does in training mode (fastai or Keras);
- ``discriminative_lrs``, ``param_groups`` (lrs.py): a learning rate per group, fastai's ``slice``;
- ``L2SP``, ``evaluate_accuracy`` (forgetting.py): measure and fight catastrophic forgetting;
- ``minift.finetune.lora``: low-rank adapters.

These act on a model and its parameters, and import nothing from ``minift.train``. The
recipes that drive a ``minift.train.Learner`` (``fine_tune``, ``keras_recipe``,
``ulmfit``, ``lp_ft``) and the ``GradualUnfreezing`` callback live in ``minift.train``,
which builds on this package: the dependency goes one way, train -> finetune.

A typical start::

    model = DigitCNN(num_classes=10)
    transplant(model, "fashion.safetensors", skip=["head.*"])
    freeze(model)                                    # only the head learns
    optimizer = AdamW(param_groups(model, slice(1e-3)))
"""

from .batchnorm import BN_POLICIES, set_bn_policy
from .forgetting import L2SP, evaluate_accuracy
from .freezing import freeze, freeze_to, set_trainable, trainable_report, unfreeze
from .groups import LayerGroup, check_groups, layer_groups, resolve_groups
from .lrs import describe_param_groups, discriminative_lrs, layerwise_lrs, param_groups, ulmfit_lrs
from .transplant import TransplantReport, transplant

__all__ = [
    "BN_POLICIES", "L2SP", "LayerGroup", "TransplantReport", "check_groups", "describe_param_groups",
    "discriminative_lrs", "evaluate_accuracy", "freeze", "freeze_to", "layer_groups", "layerwise_lrs",
    "param_groups", "resolve_groups", "set_bn_policy", "set_trainable", "trainable_report", "transplant",
    "ulmfit_lrs", "unfreeze",
]

_MOVED_TO_TRAIN = {"fine_tune", "keras_recipe", "ulmfit", "lp_ft", "GradualUnfreezing"}


def __getattr__(name: str):
    """Say where the Learner-driving names went (they lived here before), instead of a bare error."""
    if name in _MOVED_TO_TRAIN:
        raise AttributeError(f"{name} drives a Learner and lives in minift.train: from minift.train import {name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
