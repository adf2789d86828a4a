"""2-D max and average pooling, forward and backward.

Pooling works plane by plane, with the same windows as a convolution (see ``im2col``).
Fixing a kernel offset (p, q), the elements that offset reads in all Ho x Wo windows form
one strided slice of the padded plane -- a *view*, no copy. So a pool over a KH x KW window
is an elementwise reduction of KH*KW views: the maximum of the views for max pooling,
their sum for average pooling. No window is ever copied, which makes a 2x2 max pool many
times faster than gathering the windows and calling ``max`` on them.

The arguments were checked, and the sizes computed, by the contract entry of the same name
(``minift.contract``), which hands each function the ``PoolGeometry`` g.
"""

from __future__ import annotations

import numpy as np

from minift.reference.im2col import col2im, offset_slices, pad_planes


def _offset_views(xpad, kernel_size, out_hw, stride, dilation):
    """The KH*KW strided views of xpad, one per kernel offset (p, q) in row-major order."""
    views = []
    for p, q in np.ndindex(*kernel_size):
        rows, columns = offset_slices(p, q, out_hw, stride, dilation)
        views.append(xpad[:, :, rows, columns])
    return views


def max_pool2d_forward(x, g):
    """y = max over each window, with the flat index of the maximum.

    ``y[n, c, i, j] = max_{p,q} xpad[n, c, i*sh + p*dh, j*sw + q*dw]`` (xpad: padded with -inf)
    ``indices[n, c, i, j] = h * W + w``, the position of that maximum in the *unpadded* plane.

    x (N, C, H, W) -> (y, indices), both (N, C, Ho, Wo); indices int64. Among equal maxima
    the first in row-major window order wins, and a NaN counts as the maximum (both as
    in PyTorch, which reports the last NaN where this reports the first).

    How: y is the elementwise maximum of the KH*KW offset views. The offset k of the
    maximum is then found by walking the views in order and counting, per window, how
    many were passed before the first one equal to y: ``not_found`` stays True until the
    window's maximum is met, and each step adds it to the count.
    """
    h, w, ho, wo = g.h, g.w, g.ho, g.wo
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = g.kernel_size, g.stride, g.padding, g.dilation

    xpad = pad_planes(x, g, value=-np.inf)
    views = _offset_views(xpad, g.kernel_size, (ho, wo), g.stride, g.dilation)
    y = views[0].copy()
    for view in views[1:]:
        np.maximum(y, view, out=y)  # propagates NaN

    has_nan = bool(np.isnan(y).any())  # a NaN is the maximum of every window that holds one
    is_real = pad_planes(np.ones((1, 1, h, w), dtype=bool), g, value=False)
    real_views = _offset_views(is_real, g.kernel_size, (ho, wo), g.stride, g.dilation)
    not_found = np.ones(y.shape, dtype=bool)
    offset = np.zeros(y.shape, dtype=np.min_scalar_type(kh * kw))  # small ints: cheap to add
    for view, real in zip(views[:-1], real_views):  # the last offset is the only one left
        is_max = view == y
        if has_nan:
            is_max |= np.isnan(view)
        is_max &= real  # a padded -inf never ties with a real -inf
        not_found &= ~is_max
        offset += not_found

    # h * W + w = (window corner in the flat plane) + (where offset (p, q) lies from the corner)
    from_corner = np.array([p * dh * w + q * dw for p, q in np.ndindex(kh, kw)], dtype=np.int64)
    indices = from_corner.take(offset.astype(np.int64))
    indices += (np.arange(ho)[:, None] * sh - ph) * w + (np.arange(wo) * sw - pw)  # in place: no new array
    return y, indices


def max_pool2d_backward(grad_y, indices, input_shape):
    """dL/dx of max pooling: each grad_y[n, c, i, j] goes to the input element that won window (i, j).

    ``grad_x[n, c].flat[indices[n, c, i, j]] += grad_y[n, c, i, j]``, added, because
    overlapping windows may pick the same element. grad_y, indices (N, C, Ho, Wo) ->
    grad_x of ``input_shape`` (N, C, H, W).
    """
    n, c, h, w = input_shape

    grad_x = np.zeros((n, c, h * w), dtype=grad_y.dtype)
    plane = np.arange(n * c).reshape(n, c, 1, 1)
    np.add.at(grad_x.reshape(-1), (plane * (h * w) + indices).reshape(-1), grad_y.reshape(-1))
    return grad_x.reshape(n, c, h, w)


def _divisors(g):
    """(Ho, Wo): the divisor of each window's sum (``PoolGeometry.divisors``)."""
    rows, columns = g.divisors()
    return np.outer(rows, columns)


def avg_pool2d_forward(x, g):
    """y = the mean over each window: ``y[n, c, i, j] = sum_{p,q} xpad[n, c, i*sh + p, j*sw + q] / divisor[i, j]``.

    x (N, C, H, W) -> y (N, C, Ho, Wo): the sum of the KH*KW offset views, divided
    (``divisor = KH*KW`` unless ceil mode or ``count_include_pad=False`` say otherwise).
    """
    views = _offset_views(pad_planes(x, g), g.kernel_size, (g.ho, g.wo), g.stride, (1, 1))
    y = views[0].copy()
    for view in views[1:]:
        y += view
    y /= _divisors(g).astype(y.dtype)
    return y


def avg_pool2d_backward(grad_y, g):
    """dL/dx of average pooling: each grad_y[n, c, i, j] / divisor[i, j] added to every element of window (i, j).

    That is col2im of that share repeated at every kernel offset (a broadcast view,
    nothing copied). grad_y (N, C, Ho, Wo) -> grad_x (N, C, H, W).
    """
    share = grad_y / _divisors(g).astype(grad_y.dtype)
    # col2im wants (N, C, KH, KW, Ho, Wo): the same share at every offset (p, q).
    cols = np.broadcast_to(share[:, :, None, None], (g.n, g.c, g.kh, g.kw, g.ho, g.wo))
    return col2im(cols, g)
