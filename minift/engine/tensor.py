"""``Tensor``: an array that remembers how it was made.

A tensor holds ``data`` (a NumPy array, or a CuPy array on the GPU), ``requires_grad``,
and ``grad`` (a ``Tensor`` or ``None``). A tensor made by an op also holds ``grad_fn``: the
graph node with the ``Function`` that made it, its saved context and its input tensors.
``loss.backward()`` walks those nodes back (``autograd.backward``, in ``autograd.py``).

The methods (``x.sum(dim=1)``, ``x + y``, ``x.relu()``) are one-line calls into
``minift.functional``, where each op and its docstring live. In-place methods (``x += 1``,
``x.zero_()``, ``x[0] = 5``) compute the op and write the result into ``x``'s own array
(``_inplace``): under ``no_grad`` that is how a parameter is updated by hand.

minift differs from PyTorch on purpose in one place: ``Tensor.data`` is the raw array
(in PyTorch it is another Tensor), so that optimizers read like the math on the page.
"""

from __future__ import annotations

import numpy as np

from . import autograd
from .. import functional as F  # functional builds Tensors too: only its attributes are used, at call time
from ..backend.device import array_module, check_device, device_of, to_device
from .dtypes import DTYPES, as_dtype, bool_, can_store, float32, float64, int32, int64  # noqa: F401 - re-exported


def _default_dtype(array) -> np.dtype:
    """Python floats become float32 (PyTorch's default); arrays keep their own dtype."""
    return np.dtype(np.float32) if array.dtype == np.float64 else array.dtype


class HookHandle:
    """What ``register_hook`` returns: ``handle.remove()`` takes the hook off again."""

    def __init__(self, hooks: dict, key: int):
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)


class Tensor:
    """An n-dimensional array with reverse-mode automatic differentiation.

    ``Tensor(data, dtype=None, requires_grad=False, device=None)``: ``data`` is a number,
    a nested list, a NumPy/CuPy array or another Tensor. Python floats and lists become
    float32; NumPy arrays keep their dtype (as ``torch.as_tensor`` does). Only floating
    tensors can require gradients.
    """

    __slots__ = ("data", "grad", "requires_grad", "_node", "_retains_grad", "_hooks",
                 "_version_counter", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operator

    def __init__(self, data, dtype=None, requires_grad=False, device=None):
        source = data
        if isinstance(data, Tensor):
            data = data.data
        from_python = not hasattr(data, "dtype")
        xp = array_module(data)
        array = xp.asarray(data)
        if array.dtype.name not in DTYPES:
            raise TypeError(
                f"cannot make a Tensor from an array of dtype {array.dtype}: "
                f"expected one of {', '.join(DTYPES)}"
            )
        if dtype is not None:
            target = as_dtype(dtype)
        elif from_python:
            target = _default_dtype(array)
        else:
            target = array.dtype
        if array.dtype != target:
            array = array.astype(target)
        if device is not None:
            array = to_device(array, device)
        elif from_python:
            from ..backend import default_device

            array = to_device(array, default_device())
        self.data = array
        self.grad = None
        self.requires_grad = False
        self._node = None
        self._retains_grad = False
        self._hooks = None
        shares_memory = isinstance(source, Tensor) and array is data
        self._version_counter = source._version_counter if shares_memory else [0]
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _from_array(cls, array) -> "Tensor":
        """Wrap an op's output array without copying or converting it (the fast path)."""
        out = object.__new__(Tensor)
        if isinstance(array, np.generic):  # NumPy reductions return scalars, not 0-d arrays
            array = np.asarray(array)
        out.data = array
        out.grad = None
        out.requires_grad = False
        out._node = None
        out._retains_grad = False
        out._hooks = None
        out._version_counter = [0]
        return out

    # ---------------------------------------------------------------- properties
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def dim(self) -> int:
        return self.data.ndim

    @property
    def device(self) -> str:
        return device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        """True for tensors made by the user, not by an op that tracked gradients."""
        return self._node is None

    @property
    def grad_fn(self):
        """The graph node of the op that made this tensor (None for a leaf); ``.name()``
        is the op's name, e.g. ``"Sum"``."""
        return self._node

    @property
    def _version(self) -> int:
        """How many in-place changes this tensor's memory has had (shared with its views)."""
        return self._version_counter[0]

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # ---------------------------------------------------------------- conversion
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied from the GPU if needed); no gradient."""
        return self.data if self.device == "cpu" else self.data.get()

    def __array__(self, dtype=None, copy=None):
        array = self.numpy()
        return array if dtype is None else array.astype(dtype)

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item()

    def _python_scalar(self):
        if self.data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return self.data.reshape(()).item()

    def __float__(self) -> float:
        return float(self._python_scalar())

    def __int__(self) -> int:
        return int(self._python_scalar())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            amount = "no values" if self.data.size == 0 else "more than one value"
            raise RuntimeError(f"Boolean value of Tensor with {amount} is ambiguous")
        return bool(self._python_scalar())

    def __index__(self) -> int:
        if self.data.size != 1 or self.dtype.kind not in "iu":
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self._python_scalar())

    def __format__(self, spec: str) -> str:
        """``f"{loss:.3f}"`` formats a 0-d tensor's value; other tensors only as ``str``."""
        if self.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec)

    def tolist(self):
        return self.numpy().tolist()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (shares memory and version, like PyTorch)."""
        out = Tensor._from_array(self.data)
        out._version_counter = self._version_counter
        return out

    def clone(self) -> "Tensor":
        return F.clone(self)

    def to(self, target) -> "Tensor":
        """``.to("cuda")`` / ``.to("cpu")`` moves data; ``.to(minift.float64)`` casts.

        Both are differentiable: the gradient flows back to the original tensor.
        """
        from ..functional.elementwise import Cast, ToDevice

        if isinstance(target, str) and target.split(":")[0] in ("cpu", "cuda"):
            device = check_device(target)
            return self if device == self.device else ToDevice.apply(self, device=device)
        dtype = as_dtype(target)
        if dtype == self.dtype:
            return self
        if self.requires_grad and dtype.kind != "f":
            return Tensor._from_array(self.data.astype(dtype))
        return Cast.apply(self, dtype=dtype)

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self) -> "Tensor":
        return self.to("cuda")

    def float(self) -> "Tensor":
        return self.to(np.float32)

    def double(self) -> "Tensor":
        return self.to(np.float64)

    def long(self) -> "Tensor":
        return Tensor._from_array(self.data.astype(np.int64))

    def type(self, dtype=None):
        """PyTorch's ``.type``: ``t.type(minift.float)`` is ``t.to(minift.float32)`` (as in
        ``(pred.argmax(1) == y).type(torch.float).sum()``); ``t.type()`` names the dtype."""
        return f"minift.{self.dtype.name}" if dtype is None else self.to(dtype)

    # ---------------------------------------------------------------- autograd
    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Turn gradient tracking on or off for this leaf tensor (in place)."""
        if requires_grad and self.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype {self.dtype}; "
                "convert first with .float()"
            )
        if not requires_grad and not self.is_leaf:
            raise RuntimeError(
                "requires_grad_(False) is only allowed on leaf tensors; use .detach() instead"
            )
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep it)."""
        self._retains_grad = True

    def register_hook(self, hook) -> HookHandle:
        """Call ``hook(grad)`` when this tensor's gradient has been computed, before it is
        used; a hook that returns a Tensor replaces the gradient. Returns a handle whose
        ``remove()`` takes the hook off."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._hooks is None:
            self._hooks = {}
        key = max(self._hooks, default=-1) + 1
        self._hooks[key] = hook
        return HookHandle(self._hooks, key)

    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Accumulate ``d(self)/d(leaf)`` into ``leaf.grad`` for every leaf that requires grad.

        ``gradient`` is ``dL/d(self)``; it may be omitted only when ``self`` has one element
        (then it is 1). Without ``retain_graph=True`` the graph is freed afterwards.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of the ops that "
                "made it had requires_grad=True (or they ran under no_grad())"
            )
        xp = array_module(self.data)
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a single-element output, got shape "
                    f"{self.shape}; reduce it first (e.g. .sum()) or pass gradient= of that shape"
                )
            seed = xp.ones_like(self.data)
        else:
            seed = gradient.data if isinstance(gradient, Tensor) else xp.asarray(gradient)
            if seed.shape != self.shape:
                raise ValueError(
                    f"gradient has shape {seed.shape} but the tensor has shape {self.shape}"
                )
            seed = seed.astype(self.dtype, copy=False)
        autograd.backward(self, seed, retain_graph)

    # ---------------------------------------------------------------- in place
    def _inplace(self, op, *args) -> "Tensor":
        """Every in-place op: ``self = op(self, *args)``, written into ``self``'s own array.

        Under ``no_grad`` (or with nothing requiring grad) the op just computes. With grad
        mode on, in-place on a leaf that requires grad is refused (its value is what the
        gradient is about); on any other tensor the op is recorded on ``before``, a tensor
        that holds the old value's node, and ``self`` takes the new node. The version bump
        lets backward refuse if a saved array was overwritten.
        """
        records = autograd.is_grad_enabled() and (
            self.requires_grad or any(getattr(a, "requires_grad", False) for a in args))
        if records and self.requires_grad and self.is_leaf:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        if records and self._views_a_leaf_that_requires_grad():
            raise RuntimeError("a view of a leaf Variable that requires grad is being used in an in-place operation.")
        if records:
            before = Tensor._from_array(self.data)
            before.requires_grad, before._node = self.requires_grad, self._node
            before._version_counter = self._version_counter
            result = op(before, *args)
        else:
            with autograd.no_grad():
                result = op(self, *args)
        if result.shape != self.shape:
            raise RuntimeError(f"output with shape {list(self.shape)} doesn't match the broadcast shape "
                               f"{list(result.shape)}")
        if not can_store(result.dtype, self.dtype):
            raise RuntimeError(f"result type {result.dtype} can't be cast to the desired output type {self.dtype}")
        self.data[...] = result.data
        self._version_counter[0] += 1
        if records:
            self.requires_grad, self._node = result.requires_grad, result._node
        return self

    def _views_a_leaf_that_requires_grad(self) -> bool:
        """Whether this tensor was made by view ops (reshape, basic indexing ...) from a leaf
        that requires grad: writing into it would change that leaf's memory."""
        owner, t = autograd.memory_owner(self.data), self
        while t._node is not None:
            t = next((i for i in t._node.inputs if autograd.memory_owner(i.data) is owner), None)
            if t is None:
                return False
        return t.is_leaf and t.requires_grad and t is not self

    def add_(self, other, *, alpha=1) -> "Tensor":
        return self._inplace(lambda x, y: F.add(x, y if alpha == 1 else F.mul(y, alpha)), other)

    def sub_(self, other, *, alpha=1) -> "Tensor":
        return self._inplace(lambda x, y: F.sub(x, y if alpha == 1 else F.mul(y, alpha)), other)

    def mul_(self, other) -> "Tensor":
        return self._inplace(F.mul, other)

    def div_(self, other) -> "Tensor":
        return self._inplace(F.div, other)

    def pow_(self, exponent) -> "Tensor":
        return self._inplace(F.pow, exponent)

    def clamp_(self, min=None, max=None) -> "Tensor":  # noqa: A002 - PyTorch's names
        return self._inplace(lambda x: F.clamp(x, min, max))

    clip_ = clamp_

    def copy_(self, src) -> "Tensor":
        """Write ``src`` (broadcast to this shape, cast to this dtype) into this tensor."""
        return self._inplace(lambda x, s: F.copy_into(x, s), src)

    def fill_(self, value) -> "Tensor":
        return self.copy_(value)

    def zero_(self) -> "Tensor":
        return self.copy_(0)

    def masked_fill_(self, mask, value) -> "Tensor":
        return self._inplace(lambda x, v: F.masked_fill(x, mask, v), value)

    def __setitem__(self, index, value) -> None:
        self._inplace(lambda x, v: F.setitem(x, index, v), value)

    def __iadd__(self, other):
        return self._inplace(F.add, other)

    def __isub__(self, other):
        return self._inplace(F.sub, other)

    def __imul__(self, other):
        return self._inplace(F.mul, other)

    def __itruediv__(self, other):
        return self._inplace(F.div, other)

    def __ipow__(self, other):
        return self._inplace(F.pow, other)

    # ---------------------------------------------------------------- operators
    def __add__(self, other):
        return F.add(self, other)

    def __radd__(self, other):
        return F.add(other, self)

    def __sub__(self, other):
        return F.sub(self, other)

    def __rsub__(self, other):
        return F.sub(other, self)

    def __mul__(self, other):
        return F.mul(self, other)

    def __rmul__(self, other):
        return F.mul(other, self)

    def __truediv__(self, other):
        return F.div(self, other)

    def __rtruediv__(self, other):
        return F.div(other, self)

    def __pow__(self, other):
        return F.pow(self, other)

    def __rpow__(self, other):
        return F.pow(other, self)

    def __matmul__(self, other):
        return F.matmul(self, other)

    def __rmatmul__(self, other):
        return F.matmul(Tensor(other), self)

    def __neg__(self):
        return F.neg(self)

    def __abs__(self):
        return F.abs(self)

    def __getitem__(self, index):
        return F.getitem(self, index)

    def _compare(self, other, compare) -> "Tensor":
        """Comparisons and logical ops make a new tensor and record nothing (no gradient)."""
        return Tensor._from_array(compare(self.data, getattr(other, "data", other)))

    def __invert__(self):
        return Tensor._from_array(~self.data)

    def __and__(self, other):
        return self._compare(other, np.bitwise_and)

    def __or__(self, other):
        return self._compare(other, np.bitwise_or)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    __hash__ = object.__hash__  # tensors are dict keys by identity (optimizer state)

    # ---------------------------------------------------------------- element-wise
    def exp(self):
        return F.exp(self)

    def log(self):
        return F.log(self)

    def sqrt(self):
        return F.sqrt(self)

    def abs(self):
        return F.abs(self)

    def neg(self):
        return F.neg(self)

    def maximum(self, other):
        return F.maximum(self, other)

    def minimum(self, other):
        return F.minimum(self, other)

    def clamp(self, min=None, max=None):  # noqa: A002 - PyTorch's names
        return F.clamp(self, min, max)

    clip = clamp

    def masked_fill(self, mask, value):
        return F.masked_fill(self, mask, value)

    def relu(self):
        return F.relu(self)

    def sigmoid(self):
        return F.sigmoid(self)

    def tanh(self):
        return F.tanh(self)

    def gelu(self, approximate="none"):
        return F.gelu(self, approximate)

    def softmax(self, dim=None, *, axis=None):
        return F.softmax(self, dim, axis=axis)

    def log_softmax(self, dim=None, *, axis=None):
        return F.log_softmax(self, dim, axis=axis)

    # ---------------------------------------------------------------- reductions
    def sum(self, dim=None, keepdim=None, *, axis=None, keepdims=None):
        return F.sum(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def mean(self, dim=None, keepdim=None, *, axis=None, keepdims=None):
        return F.mean(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def amax(self, dim=None, keepdim=None, *, axis=None, keepdims=None):
        return F.amax(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def amin(self, dim=None, keepdim=None, *, axis=None, keepdims=None):
        return F.amin(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def max(self, dim=None, keepdim=None, *, axis=None, keepdims=None):
        return F.max(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def min(self, dim=None, keepdim=None, *, axis=None, keepdims=None):
        return F.min(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def argmax(self, dim=None, keepdim=None, *, axis=None, keepdims=None):
        return F.argmax(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def argmin(self, dim=None, keepdim=None, *, axis=None, keepdims=None):
        return F.argmin(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def var(self, dim=None, keepdim=None, *, correction=1, axis=None, keepdims=None):
        return F.var(self, dim, keepdim, correction=correction, axis=axis, keepdims=keepdims)

    def std(self, dim=None, keepdim=None, *, correction=1, axis=None, keepdims=None):
        return F.std(self, dim, keepdim, correction=correction, axis=axis, keepdims=keepdims)

    def logsumexp(self, dim=None, keepdim=None, *, axis=None, keepdims=None):
        return F.logsumexp(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def matmul(self, other):
        return F.matmul(self, other)

    # ---------------------------------------------------------------- shape
    def reshape(self, *shape):
        return F.reshape(self, *shape)

    def view(self, *shape):
        return F.reshape(self, *shape)

    def permute(self, *dims):
        return F.permute(self, *dims)

    def transpose(self, dim0=-2, dim1=-1):
        return F.transpose(self, dim0, dim1)

    @property
    def T(self):
        return F.permute(self, tuple(range(self.ndim))[::-1])

    def flatten(self, start_dim=0, end_dim=-1):
        return F.flatten(self, start_dim, end_dim)

    def squeeze(self, dim=None, *, axis=None):
        return F.squeeze(self, dim, axis=axis)

    def unsqueeze(self, dim=None, *, axis=None):
        return F.unsqueeze(self, dim, axis=axis)

    def expand(self, *shape):
        return F.expand(self, *shape)

    def broadcast_to(self, shape):
        return F.broadcast_to(self, shape)

    def split(self, split_size_or_sections, dim=None, *, axis=None):
        return F.split(self, split_size_or_sections, dim, axis=axis)

    def gather(self, dim, index):
        return F.gather(self, dim, index)

    # ---------------------------------------------------------------- display
    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", precision=4, prefix="tensor(")
        extras = []
        if self.data.size == 0 and self.ndim > 1:  # "[]" alone would hide the shape
            extras.append(f"size={self.shape}")
        if self.dtype != np.float32:
            extras.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self._node is not None:
            extras.append(f"grad_fn={self._node!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"
