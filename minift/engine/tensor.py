"""``Tensor``: an array that remembers how it was made, and ``backward`` that walks it back.

A tensor holds ``data`` (a NumPy array, or a CuPy array on the GPU), ``requires_grad``,
and ``grad`` (a ``Tensor`` or ``None``). A tensor made by an op also holds ``_node``: the
``Function`` that made it, its saved context, and its input tensors (see ``autograd.py``).

``loss.backward()`` does reverse-mode differentiation in three steps:

1. order every tensor that leads to ``loss`` so that each comes after all tensors it
   depends on (a topological sort, done with an explicit stack so that a graph thousands
   of ops deep cannot hit Python's recursion limit);
2. visit them from ``loss`` back to the inputs; each node receives ``dL/d(out)``, summed
   over all its uses, and its ``Function.backward`` turns it into ``dL/d(input)``;
3. leaves (tensors made by the user, such as parameters) accumulate into ``.grad``.

Afterwards the graph's saved arrays are freed; a second ``backward`` through it raises
unless the first one passed ``retain_graph=True``.

minift differs from PyTorch on purpose in one place: ``Tensor.data`` is the raw array
(in PyTorch it is another Tensor), so that optimizers read like the math on the page.
"""

from __future__ import annotations

import numpy as np

from . import autograd
from .autograd import FREED, unbroadcast
from ..backend.device import array_module, check_device, device_of, to_device

DTYPES = {
    "float16": np.float16,
    "float32": np.float32,
    "float64": np.float64,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "bool": np.bool_,
}
float32, float64, int64, int32, bool_ = np.float32, np.float64, np.int64, np.int32, np.bool_


def as_dtype(dtype) -> np.dtype:
    """Turn ``"float32"``, ``np.float32`` or ``minift.float32`` into a supported NumPy dtype."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in DTYPES:
        raise TypeError(f"unknown dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    return resolved


def _default_dtype(array) -> np.dtype:
    """Python floats become float32 (PyTorch's default); arrays keep their own dtype."""
    return np.dtype(np.float32) if array.dtype == np.float64 else array.dtype


class Tensor:
    """An n-dimensional array with reverse-mode automatic differentiation.

    ``Tensor(data, dtype=None, requires_grad=False, device=None)``: ``data`` is a number,
    a nested list, a NumPy/CuPy array or another Tensor. Python floats and lists become
    float32; NumPy arrays keep their dtype (as ``torch.as_tensor`` does). Only floating
    tensors can require gradients.
    """

    __slots__ = ("data", "grad", "requires_grad", "_node", "_retains_grad", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operator

    def __init__(self, data, dtype=None, requires_grad=False, device=None):
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

    @property
    def device(self) -> str:
        return device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        """True for tensors made by the user, not by an op that tracked gradients."""
        return self._node is None

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
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (shares memory, like PyTorch)."""
        return Tensor._from_array(self.data)

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
        _run_backward(self, seed, retain_graph)

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
        if self._node is not None and self._node is not FREED:
            extras.append(f"grad_fn=<{self._node.fn.__name__}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    __hash__ = object.__hash__  # tensors are dict keys by identity (optimizer state)


def _topological_order(root: Tensor) -> list:
    """Tensors reachable from ``root`` through ops that require grad, inputs first.

    An iterative depth-first search: a tensor is appended after all of its inputs.
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        tensor, inputs_done = stack.pop()
        if inputs_done:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        if tensor._node is not None:
            for parent in tensor._node.inputs:
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def _run_backward(root: Tensor, seed, retain_graph: bool) -> None:
    # grads maps id(tensor) -> (dL/d(tensor), borrowed). "borrowed" marks a gradient that
    # is a view of, or the same array as, a gradient held elsewhere: it is copied before a
    # leaf keeps it, so that changing one .grad in place can never change another. The seed
    # is borrowed too: it may be the caller's own array, passed as backward(gradient).
    grads = {id(root): (seed, True)}
    for tensor in reversed(_topological_order(root)):
        entry = grads.pop(id(tensor), None)
        if entry is None:
            continue
        grad, borrowed = entry
        node = tensor._node
        if node is None or tensor._retains_grad:
            _accumulate(tensor, grad, borrowed)
        if node is None:
            continue
        if node is FREED:
            raise RuntimeError(
                "trying to backward through the graph a second time: its saved arrays were "
                "freed by the first backward(); pass retain_graph=True to the first call"
            )
        input_grads = node.fn.backward(node.ctx, grad)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        returned = []
        for parent, parent_grad in zip(node.inputs, input_grads):
            if parent_grad is None or not parent.requires_grad:
                continue
            if parent_grad.shape != parent.shape:
                parent_grad = unbroadcast(parent_grad, parent.shape)
            key = id(parent)
            if key in grads:
                grads[key] = (grads[key][0] + parent_grad, False)
            else:
                aliased = (
                    parent_grad is grad
                    or getattr(parent_grad, "base", None) is not None
                    or any(parent_grad is other for other in returned)
                )
                grads[key] = (parent_grad, aliased)
            returned.append(parent_grad)
        if not retain_graph:
            node.ctx.free()
            tensor._node = FREED


def _accumulate(tensor: Tensor, grad, borrowed: bool) -> None:
    """``tensor.grad += grad``, never keeping an array that something else holds."""
    if borrowed or grad.dtype != tensor.dtype:
        grad = grad.astype(tensor.dtype, copy=True)
    if tensor.grad is None:
        tensor.grad = Tensor._from_array(grad)
    else:
        tensor.grad.data = tensor.grad.data + grad


def _install_methods() -> None:
    """Give Tensor its operators and methods, each a thin call into ``minift.functional``.

    Done after the class so that ``functional`` (which builds Tensors) can import this
    module; the methods are listed here in one table instead of forty one-line defs.
    """
    from .. import functional as F

    def compare(op):
        return lambda self, other: Tensor._from_array(op(self.data, getattr(other, "data", other)))

    def reflected(fn):
        return lambda self, other: fn(other, self)

    methods = {
        "__add__": F.add, "__radd__": reflected(F.add),
        "__sub__": F.sub, "__rsub__": reflected(F.sub),
        "__mul__": F.mul, "__rmul__": reflected(F.mul),
        "__truediv__": F.div, "__rtruediv__": reflected(F.div),
        "__pow__": F.pow, "__rpow__": reflected(F.pow),
        "__matmul__": F.matmul, "__rmatmul__": reflected(lambda a, b: F.matmul(Tensor(a), b)),
        "__neg__": F.neg, "__getitem__": F.getitem, "__abs__": F.abs,
        "__lt__": compare(np.less), "__le__": compare(np.less_equal),
        "__gt__": compare(np.greater), "__ge__": compare(np.greater_equal),
        "__eq__": compare(np.equal), "__ne__": compare(np.not_equal),
        "exp": F.exp, "log": F.log, "sqrt": F.sqrt, "abs": F.abs, "neg": F.neg,
        "maximum": F.maximum, "minimum": F.minimum, "clip": F.clip, "clamp": F.clip,
        "sum": F.sum, "mean": F.mean, "max": F.max, "min": F.min, "var": F.var, "std": F.std,
        "logsumexp": F.logsumexp, "matmul": F.matmul,
        "reshape": F.reshape, "view": F.reshape, "permute": F.permute, "transpose": F.transpose,
        "flatten": F.flatten, "squeeze": F.squeeze, "unsqueeze": F.unsqueeze,
        "expand": F.expand, "broadcast_to": F.broadcast_to, "split": F.split,
        "relu": F.relu, "sigmoid": F.sigmoid, "tanh": F.tanh, "gelu": F.gelu,
        "softmax": F.softmax, "log_softmax": F.log_softmax,
    }
    for name, fn in methods.items():
        setattr(Tensor, name, fn)
    Tensor.T = property(lambda self: F.permute(self, tuple(range(self.ndim))[::-1]))
    Tensor.argmax = lambda self, axis=None, keepdims=False: Tensor._from_array(
        self.data.argmax(axis=axis, keepdims=keepdims))


_install_methods()
