"""Matrix multiplication, with NumPy's rules for 1-D and batched operands."""

from __future__ import annotations

import math

from .. import contract
from ..engine.autograd import Function


class MatMul(Function):
    """Z = X @ Y for ``X (..., M, K)`` and ``Y (..., K, N)``; batch axes broadcast.

    dL/dX = G @ Y^T  (..., M, K)      dL/dY = X^T @ G  (..., K, N)

    (summed over broadcast batch axes by the engine). A 1-D ``X`` is a row ``(1, K)`` and a
    1-D ``Y`` a column ``(K, 1)`` for the product, and that axis is dropped afterwards,
    exactly as ``numpy.matmul`` does. The product itself is the kernel contract's ``matmul``.
    """

    @staticmethod
    def forward(ctx, x, y):
        ctx.x_vector, ctx.y_vector = x.ndim == 1, y.ndim == 1
        x2 = x[None, :] if ctx.x_vector else x
        y2 = y[:, None] if ctx.y_vector else y
        ctx.save_for_backward(x2, y2)
        z = contract.matmul(x2, y2)
        if ctx.y_vector:
            z = z[..., 0]
        if ctx.x_vector:
            z = z[..., 0, :] if not ctx.y_vector else z[..., 0]
        return z

    @staticmethod
    def backward(ctx, g):
        x2, y2 = ctx.saved
        if ctx.y_vector:
            g = g[..., None]
        if ctx.x_vector:
            g = g[..., None, :]
        dx = dy = None
        if ctx.needs_input_grad[0]:
            dx = contract.matmul(g, y2.swapaxes(-1, -2))
            if ctx.x_vector:
                dx = dx.reshape(dx.shape[:-2] + dx.shape[-1:])
        if ctx.needs_input_grad[1]:
            dy = contract.matmul(x2.swapaxes(-1, -2), g)
            if ctx.y_vector:
                dy = dy[..., 0]
        return dx, dy


def matmul(x, y):
    """``x @ y`` with NumPy's semantics; mismatched inner sizes are a clear error."""
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(f"matmul needs tensors with at least 1 dimension, got shapes {x.shape} and {y.shape}")
    k_x = x.shape[-1]
    k_y = y.shape[0] if y.ndim == 1 else y.shape[-2]
    if k_x != k_y:
        raise ValueError(
            f"matmul shape mismatch: {x.shape} @ {y.shape} needs the last axis of the first "
            f"({k_x}) to equal the {'only' if y.ndim == 1 else 'second-to-last'} axis of the second ({k_y})"
        )
    return MatMul.apply(x, y)


class Linear(Function):
    """Y = X W^T + b for ``X (..., in)``, ``W (out, in)``, ``b (out,)`` — one node, fused.

    With X and G = dL/dY flattened to rows (``(rows, in)``, ``(rows, out)``):

    dL/dX = G @ W   (..., in)        dL/dW = G^T @ X   (out, in)        dL/db = sum of G's rows

    Fusing saves the graph two nodes (the transpose and the bias add) and hands the
    optimizer a contiguous dL/dW in the weight's own layout.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        ctx.save_for_backward(x, weight)
        ctx.rows = math.prod(x.shape[:-1])
        y = contract.matmul(x.reshape(ctx.rows, x.shape[-1]), weight.T)
        if bias is not None:
            y += bias
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved
        g_rows = g.reshape(ctx.rows, weight.shape[0])
        needs = ctx.needs_input_grad
        dx = contract.matmul(g_rows, weight).reshape(x.shape) if needs[0] else None
        dw = contract.matmul(g_rows.T, x.reshape(ctx.rows, x.shape[-1])) if needs[1] else None
        if len(needs) == 2:
            return dx, dw
        return dx, dw, g_rows.sum(axis=0) if needs[2] else None


def linear(x, weight, bias=None):
    """PyTorch's ``F.linear``: ``x (..., in) @ weight (out, in)^T + bias (out,)``."""
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear expects input (..., {weight.shape[-1] if weight.ndim else '?'}) and weight (out, in), "
            f"got input {x.shape} and weight {weight.shape}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got {bias.shape}")
    return Linear.apply(x, weight) if bias is None else Linear.apply(x, weight, bias)
