"""``Optimizer``: parameters in groups, each group with its own hyperparameters.

An optimizer holds ``param_groups``, a list of dicts. Each has ``"params"`` (a list of
tensors) and a value for every hyperparameter (``lr``, ``momentum``, ...): what a group
does not say is taken from the keyword arguments the optimizer was built with
(``defaults``). Giving each group its own ``lr`` is how fine-tuning trains the new head
faster than the pretrained body (discriminative learning rates), and learning-rate
schedulers work by rewriting ``group["lr"]`` between steps::

    SGD([{"params": body.parameters(), "lr": 1e-4},
         {"params": head.parameters()}], lr=1e-2, momentum=0.9)

``state`` maps a parameter to what its update rule remembers (a momentum buffer, Adam's
moments, a step count). It is created at the first step in which the parameter has a
gradient. A parameter whose ``grad`` is ``None`` or whose ``requires_grad`` is ``False``
is skipped entirely: no state, no momentum, no weight decay. That is what makes freezing
work -- a frozen parameter stays bit-identical however many steps are taken.
"""

from __future__ import annotations

import copy
import math
import numbers

import numpy as np

from ..engine.autograd import enable_grad
from ..backend.device import array_module, device_of, is_cuda_array, to_device
from ..engine.tensor import Tensor


class _Required:
    """The default of a hyperparameter that every param group must give itself."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


def check_nonnegative(group: dict, name: str) -> None:
    """Raise ``ValueError`` unless ``group[name]`` is a finite real number ``>= 0``."""
    value = group[name]
    if not (is_real_number(value) and math.isfinite(value) and value >= 0):
        raise ValueError(f"invalid {name}: expected a finite number >= 0, got {value!r}")


def check_betas(group: dict) -> None:
    """Raise ``ValueError`` unless ``group["betas"]`` is a pair of numbers in [0, 1)."""
    betas = group["betas"]
    if not (
        isinstance(betas, (tuple, list))
        and len(betas) == 2
        and all(is_real_number(beta) and 0 <= beta < 1 for beta in betas)
    ):
        raise ValueError(f"invalid betas: expected a pair (beta1, beta2), each in [0, 1), got {betas!r}")


def decayed_gradient(param, grad, group: dict):
    """The gradient an update rule uses, after ``maximize`` and weight decay (PyTorch's order)::

        g ← -g                 if maximize
        θ ← θ (1 - γ λ)        if λ ≠ 0 and group["decoupled_weight_decay"]  (AdamW's, in place)
        g ← g + λ θ            if λ ≠ 0 otherwise                           (L2, into the gradient)

    ``grad`` itself is never modified (it is ``param.grad.data``).
    """
    if group.get("maximize"):
        grad = -grad
    weight_decay = group.get("weight_decay", 0)
    if weight_decay != 0:
        if group.get("decoupled_weight_decay"):
            param.data *= 1 - group["lr"] * weight_decay
        else:
            grad = grad + weight_decay * param.data
    return grad


def is_real_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_array(value) -> bool:
    return isinstance(value, np.ndarray) or is_cuda_array(value)


def _describe(group: dict, index: int) -> str:
    """A parameter's name if the group has ``param_names``, else its position and shape."""
    if "param_names" in group:
        return repr(group["param_names"][index])
    return f"params[{index}] (shape {group['params'][index].shape})"


class Optimizer:
    """Base class: param groups, ``zero_grad``, ``step``'s loop, and saving state.

    ``Optimizer(params, defaults)``: ``params`` is an iterable of Tensors, of
    ``(name, Tensor)`` pairs (e.g. ``model.named_parameters()``), or of dicts (param
    groups) whose entries override ``defaults``. A subclass implements
    ``_update(param, grad, group)`` -- the rule for one parameter -- and may extend
    ``_validate(group)``.
    """

    def __init__(self, params, defaults: dict):
        if isinstance(params, Tensor):
            raise TypeError(
                "params must be an iterable of Tensors or of dicts (param groups), "
                "got a single Tensor; wrap it in a list: [tensor]"
            )
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict = {}
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyperparameters (e.g. when unfreezing).

        Missing hyperparameters come from ``defaults``. The dict given is not modified;
        on any error the optimizer is left as it was.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"a param group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("a param group must have a 'params' entry (a list of Tensors)")
        group = dict(param_group)
        group["params"], names = self._split_params(group["params"])
        if names is not None:
            group["param_names"] = names
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(
                    f"parameter group didn't specify a value of required optimization "
                    f"parameter {name}"
                )
            group.setdefault(name, default)
        self._check_not_duplicated(group)
        self._validate(group)
        self.param_groups.append(group)

    @staticmethod
    def _split_params(params):
        """A list of leaf Tensors, and their names if they came as ``(name, tensor)`` pairs."""
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs; use a list instead"
            )
        items = list(params)
        named = [isinstance(item, tuple) for item in items]
        if any(named) and not all(named):
            raise ValueError("give either all parameters of a group with names or none")
        names = [name for name, _ in items] if items and all(named) else None
        tensors = [tensor for _, tensor in items] if names is not None else items
        for tensor in tensors:
            if not isinstance(tensor, Tensor):
                raise TypeError(
                    f"optimizer can only optimize Tensors, but one of the params is "
                    f"{type(tensor).__name__}"
                )
            if not tensor.is_leaf:
                raise ValueError(
                    "can't optimize a non-leaf Tensor (one computed by an op); "
                    "optimize the parameters it was computed from"
                )
        return tensors, names

    def _check_not_duplicated(self, group: dict) -> None:
        """A parameter may appear once, in one group: otherwise it would be stepped twice."""
        seen = {}
        for index, other in enumerate(self.param_groups):
            for param in other["params"]:
                seen[id(param)] = f"param group {index}"
        for index, param in enumerate(group["params"]):
            if id(param) in seen:
                raise ValueError(
                    f"parameter {_describe(group, index)} of the new group is already in "
                    f"{seen[id(param)]}; some parameters appear in more than one parameter group"
                )
            seen[id(param)] = "this group"

    def _validate(self, group: dict) -> None:
        """Raise ``ValueError`` for a hyperparameter outside its domain (subclasses extend)."""
        if "lr" in group:
            check_nonnegative(group, "lr")

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {index}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines) + "\n)"

    # ------------------------------------------------------------------ stepping
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``grad = None`` (default), or fill them with zeros in place.

        After ``set_to_none=True`` a parameter that gets no gradient in the next backward
        is skipped by ``step``; after zero-filling it is stepped with a zero gradient
        (which momentum and weight decay still move).
        """
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if set_to_none:
                    param.grad = None
                else:
                    param.grad.data[...] = 0

    def step(self, closure=None):
        """Update every parameter that has a gradient; return ``closure()`` if one is given.

        ``closure`` re-evaluates the model and returns the loss (it runs with gradient
        recording on). Parameters with ``grad is None`` or ``requires_grad=False`` are
        not touched, and get no state.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None or not param.requires_grad:
                    continue
                self._update(param, param.grad.data, group)
        return loss

    def _update(self, param: Tensor, grad, group: dict) -> None:
        """Apply the update rule to one parameter in place (``param.data``), given its gradient.

        ``grad`` is the raw gradient array; it must not be modified (it is ``param.grad.data``).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement _update")

    # ------------------------------------------------------------------ saving
    def state_dict(self) -> dict:
        """The optimizer's state in PyTorch's layout, with parameters replaced by indices.

        ``{"state": {index: {"momentum_buffer": array, ...}},
           "param_groups": [{"lr": ..., ..., "params": [index, ...]}]}``

        Parameters are numbered in order across groups. Arrays are copies: later steps do
        not change a state dict already taken.
        """
        index_of = {}
        param_groups = []
        for group in self.param_groups:
            packed = copy.deepcopy({key: value for key, value in group.items() if key != "params"})
            packed["params"] = []
            for param in group["params"]:
                index_of[id(param)] = len(index_of)
                packed["params"].append(index_of[id(param)])
            param_groups.append(packed)
        state = {
            index_of[id(param)]: copy.deepcopy(param_state)
            for param, param_state in self.state.items()
        }
        return {"state": state, "param_groups": param_groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a ``state_dict()``: hyperparameters of every group and per-parameter state.

        The saved groups must match this optimizer's in number and sizes, every saved
        group must carry every hyperparameter, every state entry must name a parameter,
        and every array in it must have that parameter's shape; otherwise ``ValueError``
        and nothing changes. Arrays are copied and cast to their parameter's dtype and
        device (except ``step``, a count).
        """
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(
                f"expected a dict with keys 'state' and 'param_groups' (from "
                f"Optimizer.state_dict()), got {got}"
            )
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has a different number of parameter groups: "
                f"{len(saved_groups)} saved, {len(self.param_groups)} in this optimizer"
            )
        param_of = {}
        new_groups = []
        for index, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"loaded state dict contains a parameter group that doesn't match the "
                    f"size of optimizer's group: group {index} has {len(saved['params'])} "
                    f"parameters saved, {len(group['params'])} here"
                )
            missing = [name for name in self.defaults if name not in saved]
            if missing:
                raise ValueError(f"saved param group {index} lacks hyperparameters {missing}")
            new_group = copy.deepcopy({key: value for key, value in saved.items() if key != "params"})
            new_group["params"] = group["params"]
            if "param_names" in group and "param_names" not in new_group:
                new_group["param_names"] = group["param_names"]
            self._validate(new_group)
            new_groups.append(new_group)
            param_of.update(zip(saved["params"], group["params"]))
        new_state = {}
        for key, saved_state in state_dict["state"].items():
            if key not in param_of:
                raise ValueError(
                    f"state entry {key!r} names no parameter of the saved param groups "
                    f"(their indices are {sorted(param_of)})"
                )
            new_state[param_of[key]] = self._state_like(param_of[key], saved_state, key)
        self.param_groups = new_groups
        self.state = new_state

    @staticmethod
    def _state_like(param: Tensor, saved_state: dict, key) -> dict:
        """Copies of one parameter's saved state, arrays on its device and in its dtype."""
        restored = {}
        for name, value in saved_state.items():
            if not _is_array(value) or name == "step":
                restored[name] = copy.deepcopy(value)
                continue
            if value.shape != param.shape:
                raise ValueError(
                    f"state {name!r} of parameter {key} has shape {value.shape}, but the "
                    f"parameter has shape {param.shape}"
                )
            on_device = to_device(value, device_of(param.data))
            restored[name] = array_module(param.data).array(on_device, dtype=param.dtype, copy=True)
        return restored
