"""The NumPy reference kernels: minift's ``numpy`` backend and the oracle of the kernel contract.

Every entry of ``minift.contract.CONTRACT`` is implemented here in plain NumPy, with the
semantics documented there; the Numba and CuPy kernels are tested against these. The
contract entry has checked the arguments and sized the call before a kernel here runs
(``minift.contract.geometry``), so each function holds only its computation. Read them in
this order:

- ``matmul.py``  the batched matrix product;
- ``im2col.py``  how a convolution becomes a matrix product (im2col) and back (col2im);
- ``conv.py``    conv2d forward and its two gradients, three products of one equation;
- ``pool.py``    max and average pooling as reductions over strided views;
- ``transformer.py``  softmax with a mask, layer norm, GELU: the row-wise kernels of a transformer, and attention's output;
- ``batch_norm.py``  batch normalisation, forward and backward: statistics per channel;
- ``dropout.py``  dropout whose mask is a hash of (key, element index): the same on any thread count.

Every kernel reads any strided input, never writes to its inputs and keeps float32 in
float32. A batch of zero images (N = 0) is allowed and gives empty results (zeros for ``conv2d_backward_weight``).
"""

from minift.contract import CONTRACT
from minift.reference.batch_norm import batch_norm_backward, batch_norm_forward
from minift.reference.conv import conv2d_backward_input, conv2d_backward_weight, conv2d_forward
from minift.reference.dropout import dropout
from minift.reference.matmul import matmul
from minift.reference.pool import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward
from minift.reference.transformer import (attention_forward, gelu_backward, gelu_forward, layer_norm_backward,
                                          layer_norm_forward, softmax_backward, softmax_forward)

__all__ = list(CONTRACT)  # every entry of the contract, by its name
