"""Fused batch normalisation in Numba: forward (training and inference) and backward.

Implements ``minift.reference.batch_norm`` (read it first: the formulas and shapes are
there). Written in NumPy, a BatchNorm's forward and backward passes make about ten
full-size temporaries between them; here the forward pass reads x three times in
training (the mean, the squared deviations, then y) and once in inference, and the
backward pass reads g and x twice in training (the two sums, then dL/dx) and once in
inference, writing each output once. Sums are accumulated in float64 (float32 inputs
too); float32 outputs are rounded once, at the store.

x ``(N, C, ...)`` is viewed as ``(N, C, L)``, C-contiguous, and walked in one of two orders:

1. **Channels** (``L >= LONG_RUN``, e.g. BatchNorm2d on feature maps): one task per
   channel (``prange`` over C); within channel c the loop runs over n, then over the
   contiguous run ``x[n, c, :]`` of L values, unit stride. A channel's sums are one
   task's, in a fixed order.
2. **Columns** (shorter runs, e.g. BatchNorm1d on ``(N, C)``, L = 1): runs of a few values
   strided by C * L are slow to walk a channel at a time (BatchNorm1d(512) on 256 rows
   took 3 times longer than in this order), so x is read as it lies, row after row of the
   ``(N, C * L)`` view. Each task takes whole channels, about ``COLUMN_BLOCK`` columns,
   adds every row into float64 sums per column (vectorised across the columns), adds up
   each channel's L columns in order, and finishes its channels itself.

Each channel's sums are one task's, in a fixed order: they do not depend on the number
of threads. ``LONG_RUN`` is where the two orders took equal time on one thread (L = 32
to 49). The per-channel sums of order 1 are small helpers compiled with ``SUMS``
(reordering lets LLVM vectorise a sum); the element-wise loops are compiled without it:
with ``reassoc`` LLVM compiled the float32 loop ``y = (x - mean) * scale + shift`` to run
at half the speed of a copy.
"""

from __future__ import annotations

import math

import numpy as np

from minift.kernels.numba import env as numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before Numba loads)
from numba import njit, prange
from minift.kernels.numba.parallel import parallel_kernel
from minift.kernels.numba.transformer import SUMS

LONG_RUN = 32  # runs of at least this many values per (n, c): the channel order; shorter: the column order
COLUMN_BLOCK = 256  # columns per task in the column order (their float64 sums stay in the L1 cache)


# --------------------------------------------------------------------------- 1. channels


@njit(cache=True, fastmath=SUMS)
def channel_sum(x, c):
    """sum over n, l of x[n, c, l], in float64."""
    total = 0.0
    for i in range(x.shape[0]):
        xs = x[i, c]
        for j in range(x.shape[2]):
            total += xs[j]
    return total


@njit(cache=True, fastmath=SUMS)
def channel_squares(x, c, mu):
    """sum over n, l of (x[n, c, l] - mu)**2, in float64."""
    total = 0.0
    for i in range(x.shape[0]):
        xs = x[i, c]
        for j in range(x.shape[2]):
            d = xs[j] - mu
            total += d * d
    return total


@njit(cache=True, fastmath=SUMS)
def channel_gradient_sums(grad_y, x, c, mu):
    """(sum of g, sum of g * (x - mu)) over n, l of channel c, in float64."""
    sum_g = 0.0
    sum_gd = 0.0
    for i in range(x.shape[0]):
        gs, xs = grad_y[i, c], x[i, c]
        for j in range(x.shape[2]):
            g = np.float64(gs[j])
            sum_g += g
            sum_gd += g * (xs[j] - mu)
    return sum_g, sum_gd


@parallel_kernel(cache=True)
def batch_norm_channels(x, weight, bias, eps, training, mean, var, y):
    """y[:, c, :] = (x[:, c, :] - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c] for x, y (N, C, L);
    in training, the channel's mean and biased variance are computed first (two passes) and
    stored in ``mean``, ``var`` (C,) float64; otherwise they are read from there."""
    n, channels, length = x.shape
    count = n * length
    for c in prange(channels):
        if training:
            mu = channel_sum(x, c) / count
            mean[c], var[c] = mu, channel_squares(x, c, mu) / count
        mu = mean[c]
        scale = np.float64(weight[c]) / math.sqrt(var[c] + eps)
        shift = np.float64(bias[c])
        for i in range(n):
            xs, ys = x[i, c], y[i, c]
            for j in range(length):
                ys[j] = (xs[j] - mu) * scale + shift


@parallel_kernel(cache=True)
def batch_norm_backward_channels(grad_y, x, mean, rstd, weight, training, grad_x, sums):
    """dL/dx for grad_y, x, grad_x (N, C, L) (``minift.reference.batch_norm``), and per channel
    sum(g) and sum(g * x_hat) into ``sums`` (2, C) float64."""
    n, channels, length = x.shape
    inv_count = 1.0 / max(n * length, 1)  # an empty batch: no terms, and no 0 / 0
    for c in prange(channels):
        mu, r = np.float64(mean[c]), np.float64(rstd[c])
        scale = r * weight[c]
        sum_g, sum_gd = channel_gradient_sums(grad_y, x, c, mu)  # sum_gd * r: sum(g * x_hat)
        if training:  # dL/dx = scale * (g - mean(g) - x_hat * mean(g * x_hat)) = scale * (g - mean_g - (x - mu) * slope)
            mean_g = sum_g * inv_count
            slope = sum_gd * inv_count * r * r
            for i in range(n):
                gs, xs, dx = grad_y[i, c], x[i, c], grad_x[i, c]
                for j in range(length):
                    dx[j] = scale * (gs[j] - mean_g - (xs[j] - mu) * slope)
        else:
            for i in range(n):
                gs, dx = grad_y[i, c], grad_x[i, c]
                for j in range(length):
                    dx[j] = gs[j] * scale
        sums[0, c] = sum_g
        sums[1, c] = sum_gd * r


# --------------------------------------------------------------------------- 2. columns


# Each task takes whole channels, columns [start, stop), as slices and loops from 0: with
# ``range(start, stop)`` Numba cannot tell that an index is never negative, keeps its
# wraparound test on every access, and LLVM does not vectorise the loop (6 times slower).


@njit(cache=True)
def _add_rows(x, start, stop, centre, squares, totals):
    """totals[k] += sum over rows i of (x[i, start + k] - centre[k]), or of its square if ``squares``."""
    for i in range(x.shape[0]):
        xs = x[i, start:stop]
        if squares:
            for k in range(totals.shape[0]):
                d = xs[k] - centre[k]
                totals[k] += d * d
        else:
            for k in range(totals.shape[0]):
                totals[k] += xs[k] - centre[k]


@njit(cache=True)
def _channel_totals(totals, length, out):
    """out[c] = the sum of the L columns totals[c * L : (c + 1) * L], in order."""
    for c in range(out.shape[0]):
        total = 0.0
        for j in range(length):
            total += totals[c * length + j]
        out[c] = total


@njit(cache=True)
def _spread(values, length, out):
    """out[c * L + j] = values[c]: one value per column from one per channel."""
    for c in range(values.shape[0]):
        for j in range(length):
            out[c * length + j] = values[c]


@parallel_kernel(cache=True)
def batch_norm_columns(x, length, weight, bias, eps, training, mean, var, y):
    """``batch_norm_channels`` in the column order: x, y (N, C * L), column c * L + j of channel c."""
    rows, width = x.shape
    channels = width // length
    per_task = max(COLUMN_BLOCK // length, 1)
    count = rows * length
    for block in prange((channels + per_task - 1) // per_task):
        first, last = block * per_task, min((block + 1) * per_task, channels)
        start, stop = first * length, last * length
        centre = np.zeros(stop - start)
        if training:
            totals = np.zeros(stop - start)
            _add_rows(x, start, stop, centre, False, totals)
            _channel_totals(totals, length, mean[first:last])
            mean[first:last] /= count
            _spread(mean[first:last], length, centre)
            totals[:] = 0.0
            _add_rows(x, start, stop, centre, True, totals)
            _channel_totals(totals, length, var[first:last])
            var[first:last] /= count
        _spread(mean[first:last], length, centre)
        scale, shift = np.empty(stop - start), np.empty(stop - start)
        _spread(weight[first:last] / np.sqrt(var[first:last] + eps), length, scale)
        _spread(bias[first:last].astype(np.float64), length, shift)
        for i in range(rows):
            xr, yr = x[i, start:stop], y[i, start:stop]
            for k in range(stop - start):
                yr[k] = (xr[k] - centre[k]) * scale[k] + shift[k]


@parallel_kernel(cache=True)
def batch_norm_backward_columns(grad_y, x, length, mean, rstd, weight, training, grad_x, sums):
    """``batch_norm_backward_channels`` in the column order: grad_y, x, grad_x (N, C * L)."""
    rows, width = x.shape
    channels = width // length
    per_task = max(COLUMN_BLOCK // length, 1)
    inv_count = 1.0 / max(rows * length, 1)
    for block in prange((channels + per_task - 1) // per_task):
        first, last = block * per_task, min((block + 1) * per_task, channels)
        start, stop = first * length, last * length
        span = stop - start
        centre, total_g, total_gd = np.empty(span), np.zeros(span), np.zeros(span)
        _spread(mean[first:last].astype(np.float64), length, centre)
        for i in range(rows):
            gr, xr = grad_y[i, start:stop], x[i, start:stop]
            for k in range(span):
                g = np.float64(gr[k])
                total_g[k] += g
                total_gd[k] += g * (xr[k] - centre[k])
        sum_g, sum_gd = sums[0, first:last], sums[1, first:last]
        _channel_totals(total_g, length, sum_g)
        _channel_totals(total_gd, length, sum_gd)  # times r below: sum(g * x_hat)
        r = rstd[first:last].astype(np.float64)
        scale = np.empty(span)
        _spread(r * weight[first:last], length, scale)
        if training:  # as in batch_norm_backward_channels
            offset, slope = np.empty(span), np.empty(span)
            _spread(sum_g * inv_count, length, offset)
            _spread(sum_gd * inv_count * r * r, length, slope)
            for i in range(rows):
                gr, xr, dx = grad_y[i, start:stop], x[i, start:stop], grad_x[i, start:stop]
                for k in range(span):
                    dx[k] = scale[k] * (gr[k] - offset[k] - (xr[k] - centre[k]) * slope[k])
        else:
            for i in range(rows):
                gr, dx = grad_y[i, start:stop], grad_x[i, start:stop]
                for k in range(span):
                    dx[k] = gr[k] * scale[k]
        sum_gd *= r


# --------------------------------------------------------------------------- the contract's entries


def _channels(array):
    """``(N, C, ...)`` as a C-contiguous ``(N, C, L)`` (copied only if not contiguous)."""
    return np.ascontiguousarray(array).reshape(array.shape[0], array.shape[1], math.prod(array.shape[2:]))


def _vector(vector, channels, dtype, fill):
    return np.full(channels, fill, dtype) if vector is None else np.ascontiguousarray(vector)


def batch_norm_forward(x, weight, bias, eps, mean=None, var=None):
    """The contract's ``batch_norm_forward``: (y, mean, var), per channel of x (N, C, ...)."""
    channels, length = x.shape[1], math.prod(x.shape[2:])
    y = np.empty(x.shape, x.dtype)
    training = mean is None
    stats = np.empty((2, channels)) if training else np.stack([mean, var]).astype(np.float64)
    if y.size:
        x3, y3 = _channels(x), _channels(y)
        weight, bias = _vector(weight, channels, x.dtype, 1), _vector(bias, channels, x.dtype, 0)
        if length >= LONG_RUN:
            batch_norm_channels(x3, weight, bias, eps, training, stats[0], stats[1], y3)
        else:
            flat = (x.shape[0], channels * length)
            batch_norm_columns(x3.reshape(flat), length, weight, bias, eps, training, stats[0], stats[1], y3.reshape(flat))
    return y, stats[0].astype(x.dtype), stats[1].astype(x.dtype)


def batch_norm_backward(grad_y, x, mean, rstd, weight, training):
    """The contract's ``batch_norm_backward``: (grad_x, grad_weight or None, grad_bias)."""
    channels, length = x.shape[1], math.prod(x.shape[2:])
    grad_x = np.empty(x.shape, x.dtype)
    sums = np.zeros((2, channels))
    if x.size:
        g3, x3, grad_x3 = _channels(grad_y), _channels(x), _channels(grad_x)
        mean, rstd = np.ascontiguousarray(mean), np.ascontiguousarray(rstd)
        weight_or_ones = _vector(weight, channels, x.dtype, 1)
        if length >= LONG_RUN:
            batch_norm_backward_channels(g3, x3, mean, rstd, weight_or_ones, training, grad_x3, sums)
        else:
            flat = (x.shape[0], channels * length)
            batch_norm_backward_columns(g3.reshape(flat), x3.reshape(flat), length, mean, rstd, weight_or_ones, training,
                                        grad_x3.reshape(flat), sums)
    grad_bias, grad_weight = sums.astype(x.dtype)
    return grad_x, None if weight is None else grad_weight, grad_bias
