"""2-D convolution, forward and both backward passes, as matrix products over im2col.

With ``cols = im2col(x)`` viewed per image as a matrix (KH*KW*C, Ho*Wo) and the weight as
``W_mat`` (O, KH*KW*C) -- columns ordered (p, q, c) like the rows of ``cols`` -- the whole
convolution and its two gradients are the three products of one matrix equation::

    forward          Y[n]     = W_mat @ cols[n]                  (O, Ho*Wo)
    backward_weight  dL/dW    = sum_n dL/dY[n] @ cols[n].T       (O, KH*KW*C)
    backward_input   dL/dcols = W_mat.T @ dL/dY[n],  dL/dx = col2im(dL/dcols)

exactly as for ``Y = W @ X`` in a linear layer (dL/dW = dL/dY @ X.T, dL/dX = W.T @ dL/dY),
because a convolution *is* a linear layer applied to the columns. The batch dimension n is
a broadcast batch of the matmul, so every product is a handful of large BLAS GEMMs.
"""

from __future__ import annotations

from minift.contract.checks import check_float_arrays, check_ndim, check_same_shape, check_shape
from minift.contract.geometry import conv2d_geometry
from minift.reference.im2col import col2im, im2col


def _weight_matrix(weight):
    """weight (O, C, KH, KW) -> W_mat (O, KH*KW*C), columns ordered (p, q, c) like im2col's rows."""
    return weight.transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)


def conv2d_forward(x, weight, bias, stride, padding, dilation):
    """y = conv2d(x, weight) + bias, zero padding.

    ``y[n, o, i, j] = bias[o] + sum_{c,p,q} weight[o, c, p, q] * xpad[n, c, i*sh + p*dh, j*sw + q*dw]``

    x (N, C, H, W), weight (O, C, KH, KW), bias (O,) or None -> y (N, O, Ho, Wo);
    stride, padding, dilation are (height, width) pairs. Computed as ``W_mat @ cols[n]``.
    """
    kernel = "conv2d_forward"
    check_float_arrays(kernel, x=x, weight=weight, **({} if bias is None else {"bias": bias}))
    check_ndim(kernel, "x", x, 4, "(N, C, H, W)")
    check_ndim(kernel, "weight", weight, 4, "(O, C, KH, KW)")
    g = conv2d_geometry(kernel, x.shape, weight.shape, stride, padding, dilation)
    if bias is not None:
        check_same_shape(kernel, "bias", bias.shape, (g.o,), "one entry per output channel")

    cols = im2col(x, g.kernel_size, g.stride, g.padding, g.dilation)  # (N, KH, KW, C, Ho, Wo)
    y = _weight_matrix(weight) @ cols.reshape(g.n, g.taps, g.ho * g.wo)  # (N, O, Ho*Wo)
    if bias is not None:
        y += bias[:, None]
    return y.reshape(g.output_shape)


def conv2d_backward_input(grad_y, weight, input_shape, stride, padding, dilation):
    """dL/dx of conv2d: the transposed convolution of grad_y.

    ``dL/dxpad[n, c, i*sh + p*dh, j*sw + q*dw] += sum_o weight[o, c, p, q] * grad_y[n, o, i, j]``,
    then the padding is cut off. grad_y (N, O, Ho, Wo), weight (O, C, KH, KW) ->
    grad_x of ``input_shape`` (N, C, H, W). Computed as ``col2im(W_mat.T @ grad_y[n])``.
    """
    kernel = "conv2d_backward_input"
    check_float_arrays(kernel, grad_y=grad_y, weight=weight)
    check_ndim(kernel, "weight", weight, 4, "(O, C, KH, KW)")
    input_shape = check_shape(kernel, "input_shape", input_shape, "(N, C, H, W)")
    g = conv2d_geometry(kernel, input_shape, weight.shape, stride, padding, dilation)
    check_same_shape(kernel, "grad_y", grad_y.shape, g.output_shape, "the output shape of this convolution")

    grad_cols = _weight_matrix(weight).T @ grad_y.reshape(g.n, g.o, g.ho * g.wo)  # (N, KH*KW*C, Ho*Wo)
    grad_cols = grad_cols.reshape(g.n, g.kh, g.kw, g.c, g.ho, g.wo)
    return col2im(grad_cols, input_shape, g.stride, g.padding, g.dilation)


def conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation):
    """dL/dweight of conv2d.

    ``grad_w[o, c, p, q] = sum_{n,i,j} grad_y[n, o, i, j] * xpad[n, c, i*sh + p*dh, j*sw + q*dw]``

    grad_y (N, O, Ho, Wo), x (N, C, H, W) -> grad_w of ``weight_shape`` (O, C, KH, KW).
    Computed as ``sum_n grad_y[n] @ cols[n].T``. (dL/dbias = grad_y.sum((0, 2, 3)) is the op's job.)
    """
    kernel = "conv2d_backward_weight"
    check_float_arrays(kernel, grad_y=grad_y, x=x)
    check_ndim(kernel, "x", x, 4, "(N, C, H, W)")
    weight_shape = check_shape(kernel, "weight_shape", weight_shape, "(O, C, KH, KW)")
    g = conv2d_geometry(kernel, x.shape, weight_shape, stride, padding, dilation)
    check_same_shape(kernel, "grad_y", grad_y.shape, g.output_shape, "the output shape of this convolution")

    cols = im2col(x, g.kernel_size, g.stride, g.padding, g.dilation).reshape(g.n, g.taps, g.ho * g.wo)
    grad_y = grad_y.reshape(g.n, g.o, g.ho * g.wo)
    grad_w_matrix = (grad_y @ cols.transpose(0, 2, 1)).sum(axis=0)  # (O, KH*KW*C)
    return grad_w_matrix.reshape(g.o, g.kh, g.kw, g.c).transpose(0, 3, 1, 2).copy()
