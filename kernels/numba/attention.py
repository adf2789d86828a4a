"""Attention's output for inference on the Numba backend: each thread takes whole samples.

Implements the contract's ``attention_forward``, ``softmax(scale * q k^T + bias) v``
(``minift.reference.transformer``). Called one step at a time -- ``q * scale``, the stack of
products ``q k^T``, the softmax kernel, the stack ``P v`` -- each step is split between the
threads on its own, and between the steps every array makes a trip through memory: for
MiniLM at batch 16 the scores are 16 x 12 x 128 x 128 floats, 12.6 MB, written by one step
and read by the next, and the scaling and the heads' layout cost a copy each. On two threads
the steps together ran only 1.2x faster than on one.

Here, as a convolution does (``parallel.split``), each thread takes a sample at a time and
runs every step on it: the scaled queries, ``q k^T`` with one BLAS thread, the softmax
kernel's serial twin, and ``P v`` written straight into the output. One sample's scores
(12 x 128 x 128 floats, 0.8 MB) stay in its core's cache from one step to the next. MiniLM's
attention at batch 16 (mask included), per layer: 8.4-8.8 ms -> 4.9-5.2 ms on two threads,
9.4-10.4 ms both ways on one (the same products and kernels, in another order).

Where there are fewer samples than twice the threads, the tasks are single heads instead.
"""

from __future__ import annotations

import numpy as np

from minift.kernels.numba.parallel import split, thread_count
from minift.kernels.numba.transformer import _compact_four_axes, _four_axes, softmax_rows, softmax_rows_float32


def _as_four_axes(array):
    """``array (..., rows, columns)`` as 4-D: leading axes merged (a copy only where they cannot be), or 1s in front."""
    return array.reshape(_four_axes(array.shape))


def attention_forward(q, k, v, bias, scale):
    """The contract's ``attention_forward``: out = softmax(scale * q k^T + bias) v, sample by sample."""
    out = np.empty((*q.shape[:-1], v.shape[-1]), q.dtype)
    if out.size == 0:
        return out
    scores_shape = (*q.shape[:-1], k.shape[-2])
    q4, k4, v4, out4 = (_as_four_axes(a) for a in (q, k, v, out))
    bias4 = _compact_four_axes(np.zeros(1, q.dtype) if bias is None else bias, scores_shape)
    samples, heads = q4.shape[:2]
    softmax = softmax_rows_float32 if q.dtype == np.float32 else softmax_rows
    scale = q.dtype.type(scale)

    def run(task):
        sample, head = task  # head: all the sample's heads, or one
        scores = np.matmul(q4[sample, head] * scale, np.swapaxes(k4[sample, head], -1, -2))
        probabilities = np.empty_like(scores)
        mask = bias4[sample % bias4.shape[0], head if bias4.shape[1] > 1 else slice(None)]
        softmax(scores[None], mask[None], probabilities[None])
        np.matmul(probabilities, v4[sample, head], out=out4[sample, head])

    whole_samples = samples >= 2 * thread_count() or heads == 1
    split(run, [(n, slice(None)) for n in range(samples)] if whole_samples
          else [(n, slice(h, h + 1)) for n in range(samples) for h in range(heads)])
    return out
