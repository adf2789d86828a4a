"""Element-wise ops: arithmetic, exp / log / sqrt / abs, maximum / minimum, clip, where,
masked_fill, clone.

Binary ops broadcast as NumPy does; their backward returns gradients of the broadcast
shape and the engine sums them back to each input's shape (``autograd.unbroadcast``).
Mixed dtypes promote as PyTorch's do (``engine/dtypes.py``): ``int tensor * 2.5`` is
float32, ``int tensor / 2`` too.
"""

from __future__ import annotations

import numpy as np

from ..engine.autograd import Function
from ..engine.dtypes import DEFAULT_FLOAT, result_type
from ..backend.device import array_module, to_device


class Add(Function):
    """z = x + y.   dL/dx = g,  dL/dy = g."""

    @staticmethod
    def forward(ctx, x, y):
        return x + y

    @staticmethod
    def backward(ctx, g):
        return g, g


class Sub(Function):
    """z = x - y.   dL/dx = g,  dL/dy = -g."""

    @staticmethod
    def forward(ctx, x, y):
        return x - y

    @staticmethod
    def backward(ctx, g):
        return g, -g


class Mul(Function):
    """z = x * y.   dL/dx = g * y,  dL/dy = g * x.

    Only what backward reads is saved: ``x`` only if ``y`` wants a gradient (then
    ``loss *= 2`` may change ``loss`` in place: its old value is not needed)."""

    @staticmethod
    def forward(ctx, x, y):
        needs_x, needs_y = ctx.needs_input_grad
        ctx.save_for_backward(x if needs_y else None, y if needs_x else None)
        return x * y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved
        dx = g * y if ctx.needs_input_grad[0] else None
        dy = g * x if ctx.needs_input_grad[1] else None
        return dx, dy


class Div(Function):
    """z = x / y.   dL/dx = g / y,  dL/dy = -g * x / y**2  (``x`` saved only for dL/dy)."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, y)
        return x / y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved
        dx = g / y if ctx.needs_input_grad[0] else None
        dy = -g * x / (y * y) if ctx.needs_input_grad[1] else None
        return dx, dy


class Pow(Function):
    """z = x ** y.   dL/dx = g * y * x**(y-1),  dL/dy = g * z * log(x)  (only if asked)."""

    @staticmethod
    def forward(ctx, x, y):
        z = (x**y).astype(x.dtype, copy=False)  # NumPy makes bool ** bool int8
        ctx.save_for_backward(x, y, z)
        return z

    @staticmethod
    def backward(ctx, g):
        x, y, z = ctx.saved
        dx = g * y * x ** (y - 1) if ctx.needs_input_grad[0] else None
        dy = g * z * array_module(x).log(x) if ctx.needs_input_grad[1] else None
        return dx, dy


class Neg(Function):
    """z = -x.   dL/dx = -g."""

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, g):
        return -g


class Exp(Function):
    """z = e**x.   dL/dx = g * z."""

    @staticmethod
    def forward(ctx, x):
        z = array_module(x).exp(x)
        ctx.save_for_backward(z)
        return z

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved
        return g * z


class Log(Function):
    """z = ln x.   dL/dx = g / x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return array_module(x).log(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g / x


class Sqrt(Function):
    """z = sqrt(x).   dL/dx = g / (2 z)."""

    @staticmethod
    def forward(ctx, x):
        z = array_module(x).sqrt(x)
        ctx.save_for_backward(z)
        return z

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved
        return g / (2 * z)


class Abs(Function):
    """z = |x|.   dL/dx = g * sign(x)  (0 at x = 0, as in PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return array_module(x).abs(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * array_module(x).sign(x)


class Maximum(Function):
    """z = max(x, y) element-wise.  The gradient goes to the larger input; ties split it
    half and half (PyTorch's rule)."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return array_module(x).maximum(x, y)

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved
        share = (x > y) + 0.5 * (x == y)
        return g * share.astype(g.dtype), g * (1 - share).astype(g.dtype)


class Minimum(Function):
    """z = min(x, y) element-wise.  The gradient goes to the smaller input; ties split it."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return array_module(x).minimum(x, y)

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved
        share = (x < y) + 0.5 * (x == y)
        return g * share.astype(g.dtype), g * (1 - share).astype(g.dtype)


class Clip(Function):
    """z = min(max(x, low), high).  dL/dx = g where low <= x <= high, else 0 (PyTorch's clamp)."""

    @staticmethod
    def forward(ctx, x, low=None, high=None):
        xp = array_module(x)
        inside = xp.ones(x.shape, dtype=bool)
        if low is not None:
            inside &= x >= low
        if high is not None:
            inside &= x <= high
        ctx.save_for_backward(inside)
        return xp.clip(x, low, high)

    @staticmethod
    def backward(ctx, g):
        (inside,) = ctx.saved
        return g * inside


class Where(Function):
    """z = x where condition else y  (``condition`` is a constant boolean array).

    dL/dx = g * condition,  dL/dy = g * (not condition).
    """

    @staticmethod
    def forward(ctx, x, y, condition):
        ctx.condition = condition
        return array_module(x).where(condition, x, y)

    @staticmethod
    def backward(ctx, g):
        zero = g.dtype.type(0)
        xp = array_module(g)
        return xp.where(ctx.condition, g, zero), xp.where(ctx.condition, zero, g)


class Clone(Function):
    """z = a copy of x (its own memory).   dL/dx = g."""

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, g):
        return g


class Cast(Function):
    """z = x converted to another floating dtype.  dL/dx = g converted back."""

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.dtype)


class ToDevice(Function):
    """z = x copied to another device.  dL/dx = g copied back."""

    @staticmethod
    def forward(ctx, x, device):
        ctx.device = "cuda" if device == "cpu" else "cpu"
        return to_device(x, device)

    @staticmethod
    def backward(ctx, g):
        return to_device(g, ctx.device)


def _operands(x, y, true_division=False):
    """Both operands as Tensors of the dtype PyTorch's promotion gives (``result_type``):
    a Python number takes the other's dtype unless its kind ranks higher (``int tensor *
    2.5`` is float32). ``true_division`` of integers gives the default float."""
    from ..engine.tensor import Tensor

    if isinstance(x, Tensor) and isinstance(y, Tensor) and x.dtype == y.dtype and (
            x.dtype.kind == "f" or not true_division):
        return x, y  # the common case, decided without the rules
    like = x if isinstance(x, Tensor) else y
    if like.dtype.kind == "f" and type(y if like is x else x) in (float, int):
        dtype = like.dtype  # a Python number never changes a float tensor's dtype
    else:
        dtype = result_type(x, y)
        if true_division and dtype.kind != "f":
            dtype = DEFAULT_FLOAT
    return _as_tensor(x, dtype, like), _as_tensor(y, dtype, like)


def _lift(value, like):
    """A constant operand beside ``like``: a Tensor as it is, a number with the dtype
    promotion gives it, an array as a Tensor of its own dtype on ``like``'s device."""
    from ..engine.tensor import Tensor

    if isinstance(value, Tensor):
        return value
    if not hasattr(value, "dtype") or isinstance(value, np.generic):
        return _as_tensor(value, result_type(like, value), like)
    return Tensor(value, device=like.device)


def _as_tensor(value, dtype, like):
    """``value`` (a Tensor, array or number) as a Tensor of ``dtype`` on ``like``'s device."""
    from ..engine.tensor import Tensor

    if isinstance(value, Tensor):
        return value if value.dtype == dtype else value.to(dtype)
    return Tensor._from_array(array_module(like.data).asarray(value, dtype=dtype))


def _broadcast_error(name: str, *shapes) -> ValueError | None:
    """The error to raise if ``shapes`` do not broadcast, naming the first clashing axis."""
    try:
        np.broadcast_shapes(*shapes)
        return None
    except ValueError:
        pass
    for axis in range(1, max(len(s) for s in shapes) + 1):
        sizes = sorted({s[-axis] for s in shapes if len(s) >= axis} - {1})
        if len(sizes) > 1:
            break
    listed = " and ".join(str(tuple(s)) for s in shapes)
    return ValueError(
        f"{name}: shapes {listed} do not broadcast: axis -{axis} (counting from the end) has sizes "
        f"{', '.join(map(str, sizes))}; aligned from the end, each axis must be equal or 1"
    )


def _apply(function, name, *inputs, **constants):
    """``function.apply(*inputs, **constants)``; if NumPy refuses to broadcast the arrays,
    an error naming every shape instead. Checked only after NumPy raised: a correct call
    pays nothing."""
    try:
        return function.apply(*inputs, **constants)
    except ValueError:
        shapes = [t.shape for t in inputs] + [c.shape for c in constants.values() if hasattr(c, "shape")]
        error = _broadcast_error(name, *shapes)
        if error is None:
            raise
        raise error from None


def add(x, y):
    return _apply(Add, "add", *_operands(x, y))


def sub(x, y):
    return _apply(Sub, "sub", *_operands(x, y))


def mul(x, y):
    return _apply(Mul, "mul", *_operands(x, y))


def div(x, y):
    return _apply(Div, "div", *_operands(x, y, true_division=True))


def pow(x, y):
    return _apply(Pow, "pow", *_operands(x, y))


def neg(x):
    return Neg.apply(x)


def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


def sqrt(x):
    return Sqrt.apply(x)


def abs(x):  # noqa: A001 - PyTorch's name
    return Abs.apply(x)


def maximum(x, y):
    return _apply(Maximum, "maximum", *_operands(x, y))


def minimum(x, y):
    return _apply(Minimum, "minimum", *_operands(x, y))


def clip(x, min=None, max=None):  # noqa: A002 - PyTorch's argument names
    """Clamp every element into [min, max]; either bound may be None."""
    if min is None and max is None:
        raise ValueError("clip needs at least one of min and max")
    return Clip.apply(x, low=min, high=max)


clamp = clip


def clone(x):
    """A copy of ``x`` in its own memory, still connected to the graph (``dL/dx = g``)."""
    return Clone.apply(x)


def masked_fill(x, mask, value):
    """``x`` with ``value`` wherever the boolean ``mask`` (broadcast to ``x``'s shape) is
    true; ``value`` is cast to ``x``'s dtype.   dL/dx = g where the mask is false."""
    from ..engine.tensor import Tensor

    cond = mask.data if isinstance(mask, Tensor) else array_module(x.data).asarray(mask)
    if cond.dtype != np.bool_:
        raise RuntimeError(f"masked_fill only supports boolean masks, but got mask with dtype {cond.dtype}")
    if np.broadcast_shapes(cond.shape, x.shape) != x.shape:
        raise RuntimeError(f"masked_fill: a mask of shape {cond.shape} does not broadcast to the tensor's shape {x.shape}")
    return Where.apply(_as_tensor(value, x.dtype, x), x, condition=cond)


def where(condition, x, y):
    """``x`` where ``condition`` is true, else ``y`` (condition: bool Tensor or array)."""
    from ..engine.tensor import Tensor

    x, y = _operands(x, y)
    cond = condition.data if isinstance(condition, Tensor) else array_module(x.data).asarray(condition)
    if cond.dtype != np.bool_:
        raise TypeError(f"where expects a boolean condition, got dtype {cond.dtype}")
    return _apply(Where, "where (x, y, condition)", x, y, condition=cond)
