"""Check analytic gradients against central differences, in float64.

For a function ``f`` of tensors ``x_1..x_k`` with output ``y``, draw a random cotangent
``v`` of ``y``'s shape and look at the scalar ``s(x) = sum(v * f(x))``. Backward gives
``ds/dx_i`` analytically (a vector-Jacobian product); the numeric estimate of one entry is

    ds/dx[j] ~= (s(x + eps e_j) - s(x - eps e_j)) / (2 eps)        error O(eps**2)

``gradcheck`` compares every entry (2 forward passes each: fine for small inputs).
``gradcheck_directional`` compares one random direction ``d`` over all inputs at once,

    <grad s, d>  ~=  (s(x + eps d) - s(x - eps d)) / (2 eps)

which costs two forward passes whatever the size — the check to use on large inputs.
"""

from __future__ import annotations

import numpy as np

from .autograd import no_grad
from ..backend.device import array_module
from .tensor import Tensor


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with its numeric estimate."""


def _prepare(inputs):
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck needs at least one input Tensor with requires_grad=True")
    for t in checked:
        if t.dtype != np.float64:
            raise TypeError(
                f"gradcheck needs float64 inputs (float32 rounding swamps the differences), "
                f"got {t.dtype}; make them with dtype=minift.float64"
            )
    return inputs, checked


def _weighted_output(fn, inputs, cotangent):
    out = fn(*inputs)
    return float((np.asarray(out.numpy(), dtype=np.float64) * cotangent).sum())


def _analytic(fn, inputs, checked, rng):
    for t in checked:
        t.grad = None
    out = fn(*inputs)
    cotangent = rng.standard_normal(out.shape)
    out.backward(cotangent)
    grads = [np.zeros(t.shape) if t.grad is None else t.grad.numpy().astype(np.float64) for t in checked]
    for t in checked:
        t.grad = None
    return cotangent, grads


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, raise_exception=True) -> bool:
    """Compare every entry of every input's gradient with a central difference.

    ``fn(*inputs)`` must return a Tensor. Returns True, or raises ``GradcheckError``
    naming the input, the index, both values and the tolerance (or returns False with
    ``raise_exception=False``).
    """
    inputs, checked = _prepare(inputs)
    cotangent, analytic = _analytic(fn, inputs, checked, np.random.default_rng(seed))
    with no_grad():
        for position, (t, grad) in enumerate(zip(checked, analytic)):
            for index in np.ndindex(t.shape):  # nudge one entry in place (works for views too)
                original = t.data[index]
                t.data[index] = original + eps
                plus = _weighted_output(fn, inputs, cotangent)
                t.data[index] = original - eps
                minus = _weighted_output(fn, inputs, cotangent)
                t.data[index] = original
                numeric = (plus - minus) / (2 * eps)
                exact = grad[index]
                if not abs(exact - numeric) <= atol + rtol * abs(numeric):
                    if not raise_exception:
                        return False
                    raise GradcheckError(
                        f"gradient mismatch for input {position} (shape {t.shape}) at index {index}: "
                        f"analytic {exact:.6g} vs numeric {numeric:.6g} "
                        f"(|diff| {abs(exact - numeric):.3g} > atol {atol} + rtol {rtol} * |numeric|)"
                    )
    return True


def gradcheck_directional(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, directions=2,
                          raise_exception=True) -> bool:
    """Compare the gradient along ``directions`` random unit directions (cheap for large inputs)."""
    inputs, checked = _prepare(inputs)
    rng = np.random.default_rng(seed)
    cotangent, analytic = _analytic(fn, inputs, checked, rng)
    originals = [t.data.copy() for t in checked]
    with no_grad():
        for k in range(directions):
            steps = [rng.standard_normal(t.shape) for t in checked]
            norm = np.sqrt(sum(float((d * d).sum()) for d in steps)) or 1.0
            steps = [d / norm for d in steps]
            exact = sum(float((g * d).sum()) for g, d in zip(analytic, steps))
            values = []
            for sign in (1, -1):
                for t, base, d in zip(checked, originals, steps):
                    t.data[...] = base + sign * eps * array_module(base).asarray(d)  # d is on the host
                values.append(_weighted_output(fn, inputs, cotangent))
            for t, base in zip(checked, originals):
                t.data[...] = base
            numeric = (values[0] - values[1]) / (2 * eps)
            if not abs(exact - numeric) <= atol + rtol * abs(numeric):
                if not raise_exception:
                    return False
                raise GradcheckError(
                    f"directional derivative mismatch along random direction {k}: analytic "
                    f"{exact:.6g} vs numeric {numeric:.6g} (|diff| {abs(exact - numeric):.3g} > "
                    f"atol {atol} + rtol {rtol} * |numeric|)"
                )
    return True
