"""2-D convolution, forward and both backward passes, as matrix products over im2col.

With ``cols = im2col(x)`` viewed per image as a matrix (C*KH*KW, Ho*Wo) and the weight as
``W_mat = weight.reshape(O, C*KH*KW)`` -- its columns ordered (c, p, q) like the rows of
``cols`` (``ConvGeometry.taps``) -- the whole convolution and its two gradients are the
three products of one matrix equation::

    forward          Y[n]     = W_mat @ cols[n]                  (O, Ho*Wo)
    backward_weight  dL/dW    = sum_n dL/dY[n] @ cols[n].T       (O, C*KH*KW)
    backward_input   dL/dcols = W_mat.T @ dL/dY[n],  dL/dx = col2im(dL/dcols)

exactly as for ``Y = W @ X`` in a linear layer (dL/dW = dL/dY @ X.T, dL/dX = W.T @ dL/dY),
because a convolution *is* a linear layer applied to the columns. The batch dimension n is
a broadcast batch of the matmul, so every product is a handful of large BLAS GEMMs.

The arguments were checked, and the sizes computed, by the contract entry of the same name
(``minift.contract``), which hands each function the ``ConvGeometry`` g.
"""

from __future__ import annotations

from minift.reference.im2col import col2im, im2col


def conv2d_forward(x, weight, bias, g):
    """y = conv2d(x, weight) + bias: x (N, C, H, W) -> y (N, O, Ho, Wo), as ``W_mat @ cols[n]``."""
    cols = im2col(x, g).reshape(g.n, g.taps, g.ho * g.wo)
    y = weight.reshape(g.o, g.taps) @ cols  # (N, O, Ho*Wo)
    if bias is not None:
        y += bias[:, None]
    return y.reshape(g.output_shape)


def conv2d_backward_input(grad_y, weight, g):
    """dL/dx (N, C, H, W) of conv2d, the transposed convolution: ``col2im(W_mat.T @ grad_y[n])``."""
    grad_cols = weight.reshape(g.o, g.taps).T @ grad_y.reshape(g.n, g.o, g.ho * g.wo)  # (N, C*KH*KW, Ho*Wo)
    return col2im(grad_cols.reshape(g.n, g.c, g.kh, g.kw, g.ho, g.wo), g)


def conv2d_backward_weight(grad_y, x, g):
    """dL/dweight (O, C, KH, KW) of conv2d: ``sum_n grad_y[n] @ cols[n].T``."""
    cols = im2col(x, g).reshape(g.n, g.taps, g.ho * g.wo)
    grad_w_matrix = (grad_y.reshape(g.n, g.o, g.ho * g.wo) @ cols.transpose(0, 2, 1)).sum(axis=0)
    return grad_w_matrix.reshape(g.weight_shape)
