"""The transformer's element-wise and row-wise kernels, in NumPy: the oracle for the fused ones.

A transformer layer spends its time in matrix products and, between them, in three
row-wise or element-wise functions and their derivatives. Written as NumPy expressions each
is a chain of full-size temporaries; ``minift.kernels.numba.transformer`` fuses each into
one or two passes over memory and is tested against the functions below.

Rows are the last axis: ``x (..., S)`` or ``x (..., D)``, R = the product of the leading axes.

``softmax_forward(x, bias)``  z = softmax(x + bias) along the last axis::

    z_j = exp(x_j + b_j - m) / sum_k exp(x_k + b_k - m),   m = max_k (x_k + b_k)

  ``bias`` (None, or broadcastable to x) is an additive mask: 0 where attention is
  allowed, -inf where it is not. A row masked everywhere gives NaN (as in PyTorch).
``softmax_backward(grad_z, z)``  the attention-probabilities backward, dL/dx from dL/dz::

    dL/dx_j = z_j * (g_j - sum_k g_k z_k)

``layer_norm_forward(x, weight, bias, eps)``  over the last axis of size D::

    mean = sum_j x_j / D,   rstd = 1 / sqrt(sum_j (x_j - mean)**2 / D + eps)
    y_j = (x_j - mean) * rstd * w_j + b_j

  returns ``(y, mean, rstd)``, mean and rstd of shape ``x.shape[:-1]``; weight and bias
  (D,) or None (then 1 and 0).
``layer_norm_backward(grad_y, x, mean, rstd, weight)``  with x_hat = (x - mean) * rstd, g_hat = g * w::

    dL/dx_j = rstd * (g_hat_j - mean(g_hat) - x_hat_j * mean(g_hat * x_hat))
    dL/dw = sum over rows of g * x_hat,   dL/db = sum over rows of g

  returns ``(grad_x, grad_weight, grad_bias)`` (grad_weight None when weight is None).
``gelu_forward(x)``  GELU with the exact normal CDF: ``y = x * cdf``, ``cdf = (1 + erf(x / sqrt 2)) / 2``;
  returns ``(y, cdf)`` (cdf is kept for the backward pass: erf is the costly part).
``gelu_backward(grad_y, x, cdf)``  ``dL/dx = g * (cdf + x * exp(-x**2 / 2) / sqrt(2 pi))``.
``attention_forward(q, k, v, bias, scale)``  attention's output without its weights, for inference::

    out = softmax(scale * q k^T + bias) v,   q (..., L, D), k (..., S, D), v (..., S, Dv) -> (..., L, Dv)

  (the scores along the last axis, with ``softmax_forward``; bias as there, broadcast to (..., L, S)).

The contract entries (``minift.contract``) check the arguments; these functions hold only
the computation. Every function returns new arrays of its inputs' dtype (float32 or float64).
"""

from __future__ import annotations

import math

import numpy as np

def softmax_forward(x, bias=None):
    scores = x if bias is None else x + bias
    with np.errstate(invalid="ignore"):  # a row masked everywhere: -inf - -inf, NaN on purpose
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(grad_z, z):
    return z * (grad_z - (grad_z * z).sum(axis=-1, keepdims=True))


def attention_forward(q, k, v, bias, scale):
    scores = (q * q.dtype.type(scale)) @ np.swapaxes(k, -1, -2)  # scaling q: L*D products, not L*S
    return np.asarray(softmax_forward(scores, bias) @ v)


def layer_norm_forward(x, weight, bias, eps):
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    rstd = 1 / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + x.dtype.type(eps))
    y = centred * rstd
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, mean[..., 0], rstd[..., 0]


def layer_norm_backward(grad_y, x, mean, rstd, weight):
    x_hat = (x - mean[..., None]) * rstd[..., None]
    g_hat = grad_y if weight is None else grad_y * weight
    dx = rstd[..., None] * (g_hat - g_hat.mean(axis=-1, keepdims=True)
                            - x_hat * (g_hat * x_hat).mean(axis=-1, keepdims=True))
    rows = tuple(range(x.ndim - 1))
    grad_weight = None if weight is None else (grad_y * x_hat).sum(axis=rows)
    return dx, grad_weight, grad_y.sum(axis=rows)


def gelu_forward(x):
    from ..functional.special import erf  # scipy's erf where installed

    cdf = np.asarray(0.5 * (1 + erf(x / x.dtype.type(math.sqrt(2)))))  # asarray: a 0-d x gives scalars
    return np.asarray(x * cdf), cdf


def gelu_backward(grad_y, x, cdf):
    pdf = np.exp(-0.5 * x * x) * x.dtype.type(1 / math.sqrt(2 * math.pi))
    return np.asarray(grad_y * (cdf + x * pdf))
