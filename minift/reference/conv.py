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

**Groups.** With G groups, the channels split into G blocks that never meet: the rows of
``cols`` split into G blocks of C/G*KH*KW (channel first keeps each group's rows
together), the weight into G matrices ``(O/G, C/G*KH*KW)``, and each group's output is its
own product. So the group is one more batch dimension of the same matmuls: cols is viewed
(N, G, taps, Ho*Wo), the weight (G, O/G, taps), and G = 1 is the ordinary convolution.

The arguments were checked, and the sizes computed, by the contract entry of the same name
(``minift.contract``), which hands each function the ``ConvGeometry`` g.
"""

from __future__ import annotations

from minift.reference.im2col import col2im, im2col


def _weight_matrices(weight, g):
    """weight (O, C/G, KH, KW) -> (G, O/G, taps): each group's W_mat, columns in tap order (c, p, q)."""
    return weight.reshape(g.groups, g.o_group, g.taps)


def conv2d_forward(x, weight, bias, g):
    """y = conv2d(x, weight) + bias: x (N, C, H, W) -> y (N, O, Ho, Wo), as ``W_mat[group] @ cols[n, group]``."""
    cols = im2col(x, g).reshape(g.n, g.groups, g.taps, g.ho * g.wo)
    y = (_weight_matrices(weight, g) @ cols).reshape(g.n, g.o, g.ho * g.wo)
    if bias is not None:
        y += bias[:, None]
    return y.reshape(g.output_shape)


def conv2d_backward_input(grad_y, weight, g):
    """dL/dx (N, C, H, W) of conv2d, the transposed convolution: ``col2im(W_mat[group].T @ grad_y[n, group])``."""
    grad_y = grad_y.reshape(g.n, g.groups, g.o_group, g.ho * g.wo)
    grad_cols = _weight_matrices(weight, g).transpose(0, 2, 1) @ grad_y  # (N, G, taps, Ho*Wo)
    return col2im(grad_cols.reshape(g.n, g.c, g.kh, g.kw, g.ho, g.wo), g)


def conv2d_backward_weight(grad_y, x, g):
    """dL/dweight (O, C/G, KH, KW) of conv2d: ``sum_n grad_y[n, group] @ cols[n, group].T``."""
    cols = im2col(x, g).reshape(g.n, g.groups, g.taps, g.ho * g.wo)
    grad_y = grad_y.reshape(g.n, g.groups, g.o_group, g.ho * g.wo)
    grad_w_matrices = (grad_y @ cols.transpose(0, 1, 3, 2)).sum(axis=0)  # (G, O/G, taps)
    return grad_w_matrices.reshape(g.weight_shape)
