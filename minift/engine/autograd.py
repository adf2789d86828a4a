"""Reverse-mode automatic differentiation: ``Function``, its context, and ``no_grad``.

Every differentiable op is a ``Function`` with a ``forward`` on raw arrays and a
``backward`` that maps the upstream gradient ``dL/d(out)`` to one gradient per input::

    class Mul(Function):
        @staticmethod
        def forward(ctx, x, y):
            ctx.save_for_backward(x, y)
            return x * y

        @staticmethod
        def backward(ctx, g):
            x, y = ctx.saved
            return g * y, g * x       # dL/dx = g * y, dL/dy = g * x

``Mul.apply(a, b)`` runs ``forward`` on ``a.data`` and ``b.data`` and, when gradients are
being tracked, records a ``Node`` on the output tensor: which function made it, its
context, and its input tensors. ``Tensor.backward`` (in ``tensor.py``) walks those nodes.

Broadcasting is undone in ONE place: a backward may return a gradient with the
broadcast shape of the output, and the engine sums it back to each input's shape with
``unbroadcast``. No op has to think about it.
"""

from __future__ import annotations

import functools

_grad_enabled = True


def is_grad_enabled() -> bool:
    """Whether ops currently record the graph."""
    return _grad_enabled


class no_grad:
    """Context manager (and decorator) that stops recording the graph, like ``torch.no_grad``.

    Inside it, ops still compute, but their outputs have ``requires_grad=False`` and keep
    no reference to their inputs: evaluation uses less memory and time.
    """

    def __enter__(self):
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = False

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._previous

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)

        return wrapper


class enable_grad(no_grad):
    """Context manager that turns recording back on inside a ``no_grad`` block."""

    def __enter__(self):
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = True


class Context:
    """What a forward leaves for its backward: saved arrays and any attributes it sets.

    ``needs_input_grad[i]`` tells backward whether input ``i`` wants a gradient, so it can
    skip work (e.g. ``dL/dW`` of a frozen layer is never computed).
    """

    def save_for_backward(self, *arrays) -> None:
        self.saved = arrays

    def free(self) -> None:
        """Drop everything saved: the graph has been used and its memory goes back."""
        self.__dict__.clear()


class Node:
    """The record of one op in the graph: ``fn`` made this tensor from ``inputs``."""

    __slots__ = ("fn", "ctx", "inputs")

    def __init__(self, fn, ctx, inputs):
        self.fn = fn
        self.ctx = ctx
        self.inputs = inputs


class _FreedNode:
    """Placed on a tensor whose graph was freed by ``backward()`` without ``retain_graph``."""

    __slots__ = ()
    inputs = ()


FREED = _FreedNode()


def unbroadcast(grad, shape: tuple):
    """Sum ``grad`` down to ``shape``: the adjoint of NumPy broadcasting.

    A broadcast input was (1) padded with leading axes and (2) stretched along its size-1
    axes; its gradient sums over exactly those axes. E.g. ``(4, 3)`` -> ``(3,)`` sums axis
    0, and ``(4, 3)`` -> ``(4, 1)`` sums axis 1 keeping it.
    """
    if grad.shape == shape:
        return grad
    leading = grad.ndim - len(shape)
    stretched = tuple(
        leading + i for i, n in enumerate(shape) if n == 1 and grad.shape[leading + i] != 1
    )
    axes = tuple(range(leading)) + stretched
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


class Function:
    """Base class of differentiable ops; subclasses define ``forward`` and ``backward``.

    Positional arguments of ``apply`` are the differentiable inputs (Tensors); keyword
    arguments are constants (axes, strides, ...) passed to ``forward`` unchanged.
    ``backward`` returns one gradient (or ``None``) per positional input.
    """

    @staticmethod
    def forward(ctx, *arrays, **constants):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **constants):
        from .tensor import Tensor  # tensor.py imports this module; import here to avoid a cycle

        if len(inputs) > 1:
            _check_same_device(inputs)
        ctx = Context()
        out = Tensor._from_array(cls.forward(ctx, *[t.data for t in inputs], **constants))
        if _grad_enabled and any(t.requires_grad for t in inputs):
            ctx.needs_input_grad = tuple(t.requires_grad for t in inputs)
            out.requires_grad = True
            out._node = Node(cls, ctx, inputs)
        return out


def _check_same_device(inputs) -> None:
    """Mixing NumPy (cpu) and CuPy (cuda) arrays in one op is an error, never a silent copy."""
    kinds = {type(t.data).__module__.split(".")[0] for t in inputs}
    if len(kinds) > 1:
        devices = [t.device for t in inputs]
        raise RuntimeError(
            f"expected all tensors on the same device, got {devices}; "
            "move them first with .to('cuda') or .to('cpu')"
        )
