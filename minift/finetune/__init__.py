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
- recipes (recipes.py: ``fine_tune``, ``keras_recipe``, ``ulmfit``, ``lp_ft``) and
  ``GradualUnfreezing`` (unfreezing.py), which drive ``minift.train.Learner``.

A typical start::

    model = SmallCNN(num_classes=10)
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
    "ulmfit_lrs", "unfreeze", "fine_tune", "keras_recipe", "ulmfit", "lp_ft", "GradualUnfreezing",
]

# The recipes and the unfreezing callback drive minift.train.Learner, which imports this
# package: importing them here eagerly would be circular, so they load on first use.
_LAZY = {
    "fine_tune": "recipes", "keras_recipe": "recipes", "ulmfit": "recipes", "lp_ft": "recipes",
    "GradualUnfreezing": "unfreezing",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
