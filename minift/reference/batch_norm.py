"""Batch normalisation in NumPy: the oracle for the fused kernels.

Written as NumPy expressions, a BatchNorm's forward and backward passes are chains of
full-size temporaries (centred x, its square, x_hat, g * x_hat, ...), about ten passes
over each activation; ``minift.kernels.numba.batch_norm`` fuses them into three passes
forward and two backward, and is tested against the functions below.

Shapes: ``x (N, C, ...)`` is viewed as ``(N, C, L)``, L = the product of the trailing
axes (L = 1 for BatchNorm1d on ``(N, C)``). Statistics are per channel c, over the
M = N * L values ``x[:, c, :]``; weight, bias, mean, var and rstd are ``(C,)``.

``batch_norm_forward(x, weight, bias, eps, mean, var)``  with mean and var None (training),
the batch statistics, in two passes (the mean first, then the mean of squared deviations:
no cancellation as in E[x**2] - E[x]**2)::

    mean_c = sum_{n,l} x[n,c,l] / M,   var_c = sum_{n,l} (x[n,c,l] - mean_c)**2 / M   (biased)

  otherwise the given (C,) statistics (inference: the running ones). Then::

    y[n,c,l] = (x[n,c,l] - mean_c) / sqrt(var_c + eps) * w_c + b_c

  returns ``(y, mean, var)``, mean and var (C,) in x's dtype (the ones used); weight and
  bias (C,) or None (then 1 and 0).
``batch_norm_backward(grad_y, x, mean, rstd, weight, training)``  with
  rstd = 1 / sqrt(var + eps), x_hat = (x - mean) * rstd, g = grad_y::

    dL/dw_c = sum_{n,l} g * x_hat,   dL/db_c = sum_{n,l} g
    training:   dL/dx = rstd * w * (g - mean(g) - x_hat * mean(g * x_hat))   (means over n, l)
    inference:  dL/dx = g * w * rstd                     (mean and var are constants)

  The two means in training are the paths through the batch mean and variance. Returns
  ``(grad_x, grad_weight, grad_bias)`` (grad_weight None when weight is None).

The contract entries (``minift.contract``) check the arguments; these functions hold only
the computation. Every function returns new arrays of its inputs' dtype (float32 or float64).
"""

from __future__ import annotations

import math

import numpy as np


def _channels(x):
    """``x (N, C, ...)`` as ``(N, C, L)`` (a view where the strides allow)."""
    return x.reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]))


def batch_norm_forward(x, weight, bias, eps, mean=None, var=None):
    x3 = _channels(x)
    if mean is None:
        mean = x3.mean(axis=(0, 2))
        centred = x3 - mean[:, None]
        var = (centred * centred).mean(axis=(0, 2))
    else:
        centred = x3 - mean[:, None]
    y = centred / np.sqrt(var[:, None] + x.dtype.type(eps))
    if weight is not None:
        y = y * weight[:, None]
    if bias is not None:
        y = y + bias[:, None]
    return np.ascontiguousarray(y.reshape(x.shape)), np.array(mean), np.array(var)


def batch_norm_backward(grad_y, x, mean, rstd, weight, training):
    x3, g = _channels(x), _channels(grad_y)
    x_hat = (x3 - mean[:, None]) * rstd[:, None]
    sum_g, sum_gx = g.sum(axis=(0, 2)), (g * x_hat).sum(axis=(0, 2))
    scale = rstd if weight is None else rstd * weight
    if training:
        count = max(x3.shape[0] * x3.shape[2], 1)  # an empty batch: no terms, and no 0 / 0
        dx = scale[:, None] * (g - (sum_g / count)[:, None] - x_hat * (sum_gx / count)[:, None])
    else:
        dx = g * scale[:, None]
    return np.ascontiguousarray(dx.reshape(x.shape)), None if weight is None else sum_gx, sum_g
