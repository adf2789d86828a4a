"""Reverse-mode automatic differentiation, the whole engine in one file.

Read it top to bottom, in the order the pieces meet:

1. **grad mode** -- ``no_grad`` / ``enable_grad``: whether ops record the graph at all;
2. **Context** -- what a forward leaves for its backward (``ctx.save_for_backward``);
3. **Node** -- one recorded op: the ``Function`` that made a tensor, its context and its
   input tensors. ``tensor.grad_fn`` is this node (``grad_fn=<Mul>`` in the repr);
4. **Function** -- the base class of every op: ``forward`` on raw arrays, ``backward``
   from ``dL/d(out)`` to one gradient per input, and ``apply``, which runs the forward and
   records the node::

       class Mul(Function):
           @staticmethod
           def forward(ctx, x, y):
               ctx.save_for_backward(x, y)
               return x * y

           @staticmethod
           def backward(ctx, g):
               x, y = ctx.saved
               return g * y, g * x       # dL/dx = g * y, dL/dy = g * x

5. **unbroadcast** -- a backward may return a gradient with the broadcast shape of the
   output; the engine sums it back to each input's shape in ONE place, so no op has to;
6. **the backward walk** (``backward``, called by ``Tensor.backward``): sort the graph so
   that every tensor comes after its inputs, then visit it from the output back; each node
   turns ``dL/d(out)`` (summed over all its uses) into ``dL/d(input)``; leaves accumulate
   into ``.grad``; each node's saved arrays are freed once it has been used.

A **version counter** guards the saved arrays: every in-place op (``x += 1``,
``x.zero_()``, ``x[0] = 5``) bumps its tensor's ``_version``; a node notes the versions of
its inputs and output when it is recorded, and the walk refuses to use an array that was
changed since (it would compute a wrong gradient), as PyTorch does.
"""

from __future__ import annotations

import functools

# ------------------------------------------------------------------ 1. grad mode

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
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class enable_grad(no_grad):
    """Context manager that turns recording back on inside a ``no_grad`` block."""

    def __enter__(self):
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = True


# ------------------------------------------------------------------ 2. the context

class Context:
    """What a forward leaves for its backward: saved arrays and any attributes it sets.

    ``needs_input_grad[i]`` says whether input ``i`` wants a gradient from this op. It is
    set before ``forward`` runs, so a forward may save only what its backward will read,
    and a backward may skip work (``dL/dW`` of a frozen layer is never computed).
    """

    def save_for_backward(self, *arrays) -> None:
        self.saved = arrays


# ------------------------------------------------------------------ 3. the graph node

class Node:
    """One recorded op: ``fn`` made a tensor from ``inputs``; ``ctx`` holds what it saved.

    This is ``tensor.grad_fn``. ``versions`` are the ``_version`` of each input and of the
    output when the op ran (see the version counter above). After a backward without
    ``retain_graph`` the node is freed: ``ctx`` becomes None and ``inputs`` empty.
    """

    __slots__ = ("fn", "ctx", "inputs", "versions")

    def __init__(self, fn, ctx, inputs, versions):
        self.fn, self.ctx, self.inputs, self.versions = fn, ctx, inputs, versions

    def name(self) -> str:
        """The op's name, e.g. ``"Mul"`` (``torch.autograd.Node.name``)."""
        return self.fn.__name__

    def __repr__(self) -> str:
        return f"<{self.fn.__name__}>"


# ------------------------------------------------------------------ 4. Function

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
        if len(inputs) > 1:
            _check_same_device(inputs)
        ctx = Context()
        if _grad_enabled:
            ctx.needs_input_grad = tuple(t.requires_grad for t in inputs)
        else:
            ctx.needs_input_grad = (False,) * len(inputs)
        array = cls.forward(ctx, *[t.data for t in inputs], **constants)
        out = inputs[0]._from_array(array)  # a new Tensor (tensor.py imports this module, not back)
        if getattr(out.data, "base", None) is not None:
            _share_version_with_viewed_input(out, inputs)
        if True in ctx.needs_input_grad:
            out.requires_grad = True
            versions = tuple([t._version_counter[0] for t in inputs] + [out._version_counter[0]])
            out._node = Node(cls, ctx, inputs, versions)
        return out


def memory_owner(array):
    """The array that owns ``array``'s memory (NumPy and CuPy views point at it by ``base``)."""
    base = getattr(array, "base", None)
    return array if base is None else base


def _share_version_with_viewed_input(out, inputs) -> None:
    """An output that is a view of an input (reshape, permute, basic indexing) shares its
    version counter: an in-place change through either is a change of both."""
    for t in inputs:
        if memory_owner(t.data) is out.data.base:
            out._version_counter = t._version_counter
            return


def _check_same_device(inputs) -> None:
    """Mixing NumPy (cpu) and CuPy (cuda) arrays in one op is an error, never a silent copy."""
    if len({type(t.data) for t in inputs}) > 1:
        devices = [t.device for t in inputs]
        raise RuntimeError(
            f"expected all tensors on the same device, got {devices}; "
            "move them first with .to('cuda') or .to('cpu')"
        )


# ------------------------------------------------------------------ 5. unbroadcast

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


# ------------------------------------------------------------------ 6. the backward walk

def topological_order(root) -> list:
    """Tensors reachable from ``root`` through ops that require grad, inputs first.

    An iterative depth-first search (a graph thousands of ops deep cannot hit Python's
    recursion limit): a tensor is appended after all of its inputs.
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


def backward(root, seed, retain_graph: bool = False) -> None:
    """Add ``d(root)/d(leaf)`` (with ``dL/d(root) = seed``) into ``leaf.grad`` for every leaf.

    ``grads`` holds, for each tensor not yet visited, the sum of the gradients its uses
    sent back so far; a tensor is visited only after every use of it (the order says so).
    """
    grads = {id(root): seed}
    for tensor in reversed(topological_order(root)):
        grad = grads.pop(id(tensor), None)
        if grad is None:
            continue
        if tensor._hooks:
            grad = _run_hooks(tensor, grad)
        node = tensor._node
        if node is None or tensor._retains_grad:
            _accumulate(tensor, grad)
        if node is None:
            continue
        if node.ctx is None:
            raise RuntimeError(
                "trying to backward through the graph a second time: its saved arrays were "
                "freed by the first backward(); pass retain_graph=True to the first call"
            )
        _check_saved_arrays_unchanged(tensor, node)
        input_grads = node.fn.backward(node.ctx, grad)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for parent, parent_grad in zip(node.inputs, input_grads):
            if parent_grad is None or not parent.requires_grad:
                continue
            parent_grad = unbroadcast(parent_grad, parent.shape)
            key = id(parent)
            grads[key] = grads[key] + parent_grad if key in grads else parent_grad
        if not retain_graph:
            node.ctx, node.inputs = None, ()


def _accumulate(tensor, grad) -> None:
    """``tensor.grad += grad``. The first gradient is copied: the array may also be held
    by another gradient (``Add``'s backward returns ``g`` to both inputs) or by the caller
    (``backward(gradient)``), and changing one ``.grad`` must never change another."""
    if tensor.grad is None:
        tensor.grad = tensor._from_array(grad.astype(tensor.dtype, copy=True))
    else:
        tensor.grad.data = tensor.grad.data + grad.astype(tensor.dtype, copy=False)


def _run_hooks(tensor, grad):
    """Each hook of ``tensor.register_hook`` sees the gradient and may return a new one."""
    for hook in tensor._hooks.values():
        replaced = hook(tensor._from_array(grad))
        if replaced is not None:
            if replaced.shape != tensor.shape:
                raise RuntimeError(
                    f"hook {hook!r} returned a gradient of shape {replaced.shape}; "
                    f"expected the tensor's shape {tensor.shape}"
                )
            grad = replaced.data
    return grad


def _check_saved_arrays_unchanged(tensor, node) -> None:
    """Refuse to run ``node``'s backward if an in-place op changed an array it saved."""
    for t, version in zip((*node.inputs, tensor), node.versions):
        if t._version_counter[0] != version and _holds(node.ctx, t.data):
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by "
                f"an inplace operation: a tensor of shape {tuple(t.shape)} saved by {node.name()} "
                f"is at version {t._version}; expected version {version} instead. Change it "
                "after backward(), or use an out-of-place op (y = y + 1 instead of y += 1)"
            )


def _holds(ctx, array) -> bool:
    """Whether ``ctx`` keeps (a view of) ``array``'s memory among what it saved."""
    kept = []
    for value in vars(ctx).values():
        kept.extend(value if isinstance(value, tuple) else (value,))
    return any(hasattr(v, "shape") and memory_owner(v) is memory_owner(array) for v in kept)
