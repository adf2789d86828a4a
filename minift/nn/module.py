"""``Module`` and ``Parameter``: PyTorch's way of organising a model.

A module registers what it is assigned: a ``Parameter`` becomes a learnable weight, a
``Module`` a child, and ``register_buffer`` adds state that is saved but not learned
(BatchNorm's running statistics; ``persistent=False``: not saved either). Everything else is an ordinary attribute. From that
registry come ``parameters()``, ``named_modules()``, ``state_dict()`` and the rest.

Two deliberate differences from PyTorch, both to save learners from classic bugs:
``state_dict()`` returns *copies* as NumPy arrays (a saved "best" state does not change
as training continues), and ``load_state_dict`` checks everything before it writes
anything (a failed load leaves the model exactly as it was).
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np

from ..backend.device import check_device, is_cuda_array, to_device
from ..engine.tensor import DTYPES, Tensor, as_dtype

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A Tensor that a Module registers as learnable; ``requires_grad=True`` by default."""

    def __init__(self, data, requires_grad: bool = True, dtype=None):
        super().__init__(data, dtype=dtype, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model: subclasses set attributes in ``__init__`` and
    define ``forward``; calling the module calls ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------ registration
    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() is called")
        if isinstance(value, Parameter):
            self._discard(name, keep=self._parameters)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._discard(name, keep=self._modules)
            self._modules[name] = value
        elif name in self._parameters:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} (Parameter or None expected)")
            self._parameters[name] = None
        elif name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} (Tensor or None expected)")
            self._buffers[name] = value
        elif name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} (Module or None expected)")
            self._modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def _discard(self, name: str, keep=None) -> None:
        """Forget ``name`` everywhere except in the registry ``keep`` (where it is about to be
        reassigned in place, so that a replaced child keeps its position, as in PyTorch)."""
        self.__dict__.pop(name, None)
        if keep is not self._buffers:
            self._non_persistent_buffers.discard(name)
        for registry in (self._parameters, self._buffers, self._modules):
            if registry is not keep:
                registry.pop(name, None)

    def __getattr__(self, name: str):
        # Only called when normal lookup fails: look in the registries.
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        if any(name in r for r in (self._parameters, self._buffers, self._modules)):
            self._discard(name)
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name: str, param) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter expects a Parameter or None, got {type(param).__name__}")
        self._discard(name, keep=self._parameters)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Register state that ``to()`` moves but no optimizer updates; ``state_dict`` saves it
        unless ``persistent=False`` (e.g. a cached mask or position table that is rebuilt)."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer expects a Tensor or None, got {type(tensor).__name__}")
        self._discard(name, keep=self._buffers)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module expects a Module, got {type(module).__name__}")
        self._discard(name, keep=self._modules)
        self._modules[name] = module

    register_module = add_module

    # ------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = "", remove_duplicate: bool = True):
        """Yield ``(qualified_name, module)`` for this module and every descendant, depth
        first; a module reachable by several names is yielded once, under the first
        (``remove_duplicate=False``: under every name, as ``state_dict`` needs)."""
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate and id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{n}" if name else n, m) for n, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def get_submodule(self, target: str) -> "Module":
        """The descendant at the dotted path ``target`` (``"layer1.0.conv1"``); ``""`` is self."""
        module = self
        for depth, name in enumerate(target.split(".") if target else []):
            child = module._modules.get(name)
            if child is None:
                where = ".".join(target.split(".")[:depth]) or "the model"
                raise AttributeError(
                    f"{type(module).__name__} ({where}) has no submodule {name!r} (looking for {target!r}); "
                    f"its submodules are {list(module._modules)}"
                )
            module = child
        return module

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry: str, recurse: bool):
        seen = set()
        modules = self.named_modules() if recurse else [("", self)]
        for prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))  # a shared (tied) weight is listed once
                yield (f"{prefix}.{name}" if prefix else name), value

    def named_parameters(self, recurse: bool = True):
        yield from self._named_members("_parameters", recurse)

    def parameters(self, recurse: bool = True):
        for _, param in self.named_parameters(recurse):
            yield param

    def named_buffers(self, recurse: bool = True):
        yield from self._named_members("_buffers", recurse)

    def buffers(self, recurse: bool = True):
        for _, buffer in self.named_buffers(recurse):
            yield buffer

    # ------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> "Module":
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Freeze (False) or unfreeze (True) every parameter of this module."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.parameters():
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad.data[...] = 0

    def apply(self, fn) -> "Module":
        """Call ``fn(module)`` on every descendant, children first, then on self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def to(self, target) -> "Module":
        """Move every parameter and buffer to a device (``"cpu"``/``"cuda"``) or cast floating
        ones to a dtype, in place: the Parameter objects stay the same, so an optimizer
        built before still holds them."""
        is_device = isinstance(target, str) and target not in DTYPES
        device = check_device(target) if is_device else None
        dtype = None if is_device else as_dtype(target)
        for tensor in [*self.parameters(), *self.buffers()]:
            if device is not None:
                tensor.data = to_device(tensor.data, device)
                if tensor.grad is not None:
                    tensor.grad.data = to_device(tensor.grad.data, device)
            elif tensor.dtype.kind == "f":
                tensor.data = tensor.data.astype(dtype)
                tensor.grad = None
        return self

    def cuda(self) -> "Module":
        return self.to("cuda")

    def cpu(self) -> "Module":
        return self.to("cpu")

    def float(self) -> "Module":
        return self.to(np.float32)

    def double(self) -> "Module":
        return self.to(np.float64)

    # ------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    def register_forward_hook(self, hook):
        """Call ``hook(module, inputs, output)`` after every forward; returns a handle with
        ``.remove()``. A hook that returns a value replaces the output."""
        key = object()
        self._forward_hooks[key] = hook
        return _HookHandle(self._forward_hooks, key)

    # ------------------------------------------------------------ state
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Every parameter and buffer by qualified name, as a NumPy copy (host memory).

        As in PyTorch, a shared module or a tied weight appears under each of its names."""
        return OrderedDict((key, np.array(tensor.numpy(), copy=True)) for key, tensor in self._state_tensors().items())

    def _state_tensors(self) -> "OrderedDict[str, Tensor]":
        tensors = OrderedDict()
        for prefix, module in self.named_modules(remove_duplicate=False):
            for registry in (module._parameters, module._buffers):
                for name, tensor in registry.items():
                    if tensor is not None and not (registry is module._buffers and name in module._non_persistent_buffers):
                        tensors[f"{prefix}.{name}" if prefix else name] = tensor
        return tensors

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values into parameters and buffers by name (in place, keeping dtype and device).

        The values may be anything array-like (see ``as_array``): NumPy or CuPy arrays,
        minift Tensors, PyTorch tensors (CPU through DLPack or ``__array__``, CUDA through
        DLPack to CuPy), nested lists. A module may complete the dict first, as PyTorch's
        ``_load_from_state_dict`` does (BatchNorm fills a missing ``num_batches_tracked``).
        Every key is checked next: a shape mismatch, a value that is not numbers, or (with
        ``strict``) a missing or unexpected key, raises one error that lists every bad key —
        and nothing is changed.
        Returns ``(missing_keys, unexpected_keys)``.
        """
        metadata = getattr(state_dict, "_metadata", None) or {}
        state_dict = {key: as_array(value) for key, value in state_dict.items()}
        for prefix, module in self.named_modules(remove_duplicate=False):
            module._complete_state_dict(state_dict, f"{prefix}." if prefix else "", metadata.get(prefix, {}))
        own = self._state_tensors()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        for key, tensor in own.items():
            if key in state_dict:
                value = state_dict[key]
                shape = tuple(np.shape(value))
                dtype = value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype
                if shape != tensor.shape:
                    problems.append(f"  {key}: checkpoint has shape {shape}, the model expects {tensor.shape}")
                elif np.dtype(dtype).kind not in "biuf":
                    problems.append(f"  {key}: checkpoint holds {dtype}, the model expects numbers ({tensor.dtype})")
        if strict:
            problems += [f"  missing key: {k}" for k in missing]
            problems += [f"  unexpected key: {k}" for k in unexpected]
        if problems:
            raise RuntimeError(
                f"error loading state_dict into {type(self).__name__} (nothing was changed):\n"
                + "\n".join(problems)
            )
        for key, tensor in own.items():
            if key in state_dict:
                tensor.data[...] = to_device(state_dict[key], tensor.device)
        return IncompatibleKeys(missing, unexpected)

    def _complete_state_dict(self, state_dict: dict, prefix: str, metadata: dict) -> None:
        """Add to ``state_dict`` (a copy) what an older checkpoint of this module lacks;
        ``metadata`` is PyTorch's ``state_dict._metadata[prefix]`` (e.g. ``{"version": 2}``)
        when the dict came from PyTorch. Nothing by default."""

    # ------------------------------------------------------------ display
    def extra_repr(self) -> str:
        return ""

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def __repr__(self) -> str:
        lines = []
        for name, child in self.named_children():
            child_lines = repr(child).split("\n")
            lines.append(f"({name}): " + "\n  ".join(child_lines))
        head = f"{type(self).__name__}({self.extra_repr()}"
        own = sum(p.numel() for p in self.parameters())
        count = f"  # {own:,} params" if own and lines else ""
        if not lines:
            return head + ")"
        return head + count + "\n  " + "\n  ".join(lines) + "\n)"


def as_array(value):
    """``value`` as a NumPy or CuPy array, without a copy where possible.

    minift Tensors give their array; NumPy and CuPy arrays are kept; a PyTorch tensor (or
    any array with ``__dlpack__``) is detached and shared through DLPack -- to NumPy on the
    CPU, to CuPy on a GPU; anything else goes through ``numpy.asarray`` (``__array__``,
    lists, numbers).
    """
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, np.ndarray) or is_cuda_array(value):
        return value
    if hasattr(value, "detach"):
        value = value.detach()  # a torch tensor that requires grad refuses DLPack and __array__
    if hasattr(value, "__dlpack__") and hasattr(value, "__dlpack_device__"):
        on_cpu = int(value.__dlpack_device__()[0]) == 1  # DLPack's kDLCPU
        if not on_cpu:
            import cupy

            return cupy.from_dlpack(value)
        try:
            return np.from_dlpack(value)
        except (BufferError, TypeError, RuntimeError):  # e.g. a dtype NumPy lacks (bfloat16)
            pass
    return np.asarray(value)


class _HookHandle:
    def __init__(self, hooks, key):
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)
