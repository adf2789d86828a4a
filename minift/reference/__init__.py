"""The NumPy reference kernels: minift's ``numpy`` backend and the oracle of the kernel contract.

Every function of ``minift.backend.CONTRACT`` is implemented here in plain NumPy, with the
signature and semantics documented in ``minift/backend.py``; the Numba and CuPy kernels are
tested against these. Read them in this order:

- ``matmul.py``  the batched matrix product;
- ``geometry.py`` the output sizes of conv2d and pool2d, and the checks of their arguments
  (shared by every backend, so a bad call fails alike on all of them);
- ``im2col.py``  how a convolution becomes a matrix product (im2col) and back (col2im);
- ``conv.py``    conv2d forward and its two gradients, three products of one equation;
- ``pool.py``    max and average pooling as reductions over strided views.

Every kernel reads any strided input, never writes to its inputs, keeps float32 in
float32, and rejects bad arguments with a message before doing any work. A batch of zero
images (N = 0) is allowed and gives empty results (zeros for ``conv2d_backward_weight``).
"""

from minift.reference.conv import conv2d_backward_input, conv2d_backward_weight, conv2d_forward
from minift.reference.matmul import matmul
from minift.reference.pool import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward

__all__ = [
    "matmul",
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
]
