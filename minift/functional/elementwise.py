"""Element-wise ops: arithmetic, exp / log / sqrt / abs, maximum / minimum, clip, where.

Binary ops broadcast as NumPy does; their backward returns gradients of the broadcast
shape and the engine sums them back to each input's shape (``autograd.unbroadcast``).
"""

from __future__ import annotations

import numpy as np

from ..engine.autograd import Function
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
    """z = x * y.   dL/dx = g * y,  dL/dy = g * x."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved
        dx = g * y if ctx.needs_input_grad[0] else None
        dy = g * x if ctx.needs_input_grad[1] else None
        return dx, dy


class Div(Function):
    """z = x / y.   dL/dx = g / y,  dL/dy = -g * x / y**2."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
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
        z = x**y
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


def _lift(value, like):
    """A constant operand as a Tensor: Python numbers take ``like``'s dtype and device."""
    from ..engine.tensor import Tensor

    if isinstance(value, Tensor):
        return value
    if isinstance(value, (int, float, bool)) and like.dtype.kind == "f":
        return Tensor._from_array(array_module(like.data).asarray(value, dtype=like.dtype))
    return Tensor(value, device=like.device)


def _operands(x, y):
    """Both operands as Tensors; a number takes the dtype and device of the other."""
    from ..engine.tensor import Tensor

    if isinstance(x, Tensor):
        return x, _lift(y, x)
    return _lift(x, y), y


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
    return _apply(Div, "div", *_operands(x, y))


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


def where(condition, x, y):
    """``x`` where ``condition`` is true, else ``y`` (condition: bool Tensor or array)."""
    from ..engine.tensor import Tensor

    x, y = _operands(x, y)
    cond = condition.data if isinstance(condition, Tensor) else array_module(x.data).asarray(condition)
    if cond.dtype != np.bool_:
        raise TypeError(f"where expects a boolean condition, got dtype {cond.dtype}")
    return _apply(Where, "where (x, y, condition)", x, y, condition=cond)
