"""Layer groups: a model cut into ordered slices, from the input side to the head.

Why cut a model at all? A network trained on a large source task learns general
features in its early layers (edges, strokes, textures) and task-specific ones near its
output (which combination of parts means "sandal"). Fine-tuning on a new task treats the
two ends differently: the head is new and must learn fast; the early layers are already
good and should move little, or not at all. Layer groups are the unit of that different
treatment: ``freeze_to(model, n)`` freezes the first ``n`` groups, and each group gets
its own learning rate in the optimizer (``param_groups``).

How a model is cut (``layer_groups(model, splitter=None)``), first rule that applies:

1. ``splitter``, a function ``model -> list of groups`` where a group is a list of modules
   (or one module, or a ``LayerGroup``), or a list of parameter-name prefixes, one group
   per prefix (``["body.block1", "body.block2", "head"]``; a prefix matches whole name
   components, so ``"body.1"`` does not match ``"body.10.weight"``);
2. the model's own ``layer_groups()`` method, which returns what a splitter returns (the
   bundled architectures of ``minift.models`` define one: one group per block, then the head);
3. for an ``nn.Sequential``: one group per child with parameters; a parameterless child
   (ReLU, pooling) joins the group before it;
4. otherwise: one group per top-level child with parameters.

Whatever the rule, every parameter of the model must be in exactly one group: a
parameter in two groups would be frozen by one and trained by the other, and one in no
group would escape freezing. Both are errors that name the parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..nn import Module, Sequential
from ..engine.tensor import Tensor


class LayerGroup:
    """A named slice of a model: ``modules`` (whole modules in the group) and their
    parameters, plus ``extra_params`` for groups cut by parameter name (a prefix such as
    ``"head.weight"`` names a parameter, not a module).

    ``parameters()`` lists each parameter once, even when modules share it.
    """

    def __init__(self, name: str, modules: Sequence[Module] = (), extra_params: Sequence[Tensor] = ()):
        if not isinstance(name, str):
            raise TypeError(f"a LayerGroup's name must be a str, got {type(name).__name__}")
        self.name = name
        self.modules = list(modules)
        self.extra_params = list(extra_params)
        for module in self.modules:
            if not isinstance(module, Module):
                raise TypeError(f"layer group {name!r}: expected Modules, got {type(module).__name__}")

    def parameters(self) -> list[Tensor]:
        params, seen = [], set()
        for param in [p for m in self.modules for p in m.parameters()] + self.extra_params:
            if id(param) not in seen:
                seen.add(id(param))
                params.append(param)
        return params

    def numel(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def __repr__(self) -> str:
        return f"LayerGroup({self.name!r}, {len(self.parameters())} tensors, {self.numel():,} values)"


def layer_groups(model: Module, splitter=None) -> list[LayerGroup]:
    """Cut ``model`` into ordered layer groups, input side first (see the module docstring).

    Raises ``ValueError`` when a parameter is in two groups or in none, or a group is empty.
    """
    if not isinstance(model, Module):
        raise TypeError(f"layer_groups expects an nn.Module, got {type(model).__name__}")
    if splitter is not None:
        if isinstance(splitter, str):
            raise TypeError(f"splitter must be a list of prefixes, not one str; did you mean [{splitter!r}]?")
        if isinstance(splitter, Sequence) and all(isinstance(p, str) for p in splitter):
            groups = _split_by_prefixes(model, list(splitter))
        elif callable(splitter):
            groups = _as_groups(model, splitter(model), f"splitter {getattr(splitter, '__name__', splitter)!r}")
        else:
            raise TypeError(
                f"splitter must be a function model -> list of lists of modules, or a list of "
                f"parameter-name prefixes; got {type(splitter).__name__}"
            )
    elif callable(getattr(model, "layer_groups", None)):
        groups = _as_groups(model, model.layer_groups(), f"{type(model).__name__}.layer_groups()")
    elif isinstance(model, Sequential):
        groups = _as_groups(model, _split_sequential(model), "the Sequential default")
    else:
        children = [[child] for child in model.children() if _has_parameters(child)]
        groups = _as_groups(model, children, "the default (one group per child with parameters)")
    check_groups(model, groups)
    return groups


def resolve_groups(model: Module, groups=None) -> list[LayerGroup]:
    """The groups a toolkit function works on: ``None`` -> ``layer_groups(model)``; a list
    of ``LayerGroup`` -> checked against the model as it is now (a head replaced since the
    groups were made is caught); anything else is taken as a splitter."""
    if groups is None:
        return layer_groups(model)
    if isinstance(groups, Sequence) and groups and all(isinstance(g, LayerGroup) for g in groups):
        groups = list(groups)
        check_groups(model, groups)
        return groups
    return layer_groups(model, groups)


def check_groups(model: Module, groups: list[LayerGroup]) -> None:
    """Every parameter of ``model`` in exactly one group, and no group empty or foreign."""
    if not groups:
        raise ValueError(f"{type(model).__name__} has no parameters to put in layer groups")
    names = {id(p): name for name, p in model.named_parameters()}
    owner, problems = {}, []
    for group in groups:
        params = group.parameters()
        if not params:
            problems.append(f"  group {group.name!r} holds no parameters")
        for param in params:
            if id(param) not in names:
                problems.append(
                    f"  group {group.name!r} holds a parameter {param.shape} that is not in the model "
                    "(was a layer replaced after the groups were made? make them again)"
                )
            elif id(param) in owner:
                problems.append(f"  {names[id(param)]} is in both group {owner[id(param)]!r} and group {group.name!r}")
            else:
                owner[id(param)] = group.name
    problems += [f"  {name} is in no group" for key, name in names.items() if key not in owner]
    if problems:
        raise ValueError(
            "layer groups must hold every parameter of the model exactly once:\n" + "\n".join(problems)
        )


def _has_parameters(module: Module) -> bool:
    return next(iter(module.parameters()), None) is not None


def _split_sequential(model: Sequential) -> list[list[Module]]:
    """One group per child with parameters; parameterless children join the group before
    them (those before the first such child join the first group)."""
    groups, leading = [], []
    for child in model.children():
        if _has_parameters(child):
            groups.append(leading + [child])
            leading = []
        elif groups:
            groups[-1].append(child)
        else:
            leading.append(child)
    return groups


def _as_groups(model: Module, raw, source: str) -> list[LayerGroup]:
    """Turn what a splitter returned (LayerGroups, modules, or lists of modules) into
    LayerGroups named after the modules' qualified names in ``model``."""
    if isinstance(raw, (Module, LayerGroup)) or not isinstance(raw, Sequence):
        raise TypeError(f"{source} must return a list of groups (lists of modules), got {type(raw).__name__}")
    module_names = {id(m): name or "(model)" for name, m in model.named_modules()}
    groups = []
    for index, item in enumerate(raw):
        if isinstance(item, LayerGroup):
            groups.append(item)
            continue
        modules = [item] if isinstance(item, Module) else item
        if not isinstance(modules, Sequence) or not all(isinstance(m, Module) for m in modules):
            raise TypeError(f"{source}: group {index} must be a module or a list of modules, got {item!r}")
        with_params = [m for m in modules if _has_parameters(m)] or list(modules)
        name = "+".join(module_names.get(id(m), type(m).__name__) for m in with_params) or f"group{index}"
        groups.append(LayerGroup(name, modules))
    return groups


def _matches_prefix(name: str, prefix: str) -> bool:
    """``prefix`` covers ``name`` at a component boundary: "body" and "body." cover
    "body.0.weight"; "body.1" covers "body.1.weight" but not "body.10.weight"."""
    prefix = prefix.rstrip(".")
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def _split_by_prefixes(model: Module, prefixes: list[str]) -> list[LayerGroup]:
    if not prefixes:
        raise ValueError("splitter is an empty list of prefixes; give one prefix per group")
    named = list(model.named_parameters())
    groups, unmatched = [], []
    for prefix in prefixes:
        params = [p for name, p in named if _matches_prefix(name, prefix)]
        if not params:
            unmatched.append(prefix)
        groups.append(LayerGroup(prefix.rstrip(".") or "(all)", extra_params=params))
    if unmatched:
        some = ", ".join(name for name, _ in named[:6])
        raise ValueError(f"splitter prefixes {unmatched} match no parameter name; the names begin: {some}, ...")
    return groups
