r"""``minift.functional`` (also ``minift.nn.functional``): every differentiable op.

Grouped by family, one file each; PyTorch's names and argument conventions (NCHW images,
``weight (out, in, kh, kw)``). Each op is a ``Function`` whose docstring states its
forward formula and its gradient.

The gradient an op's ``backward`` returns is a vector-Jacobian product: given the
upstream gradient $\bar z = \partial L / \partial z$ of its output $z = f(x)$, it returns

$$\bar x_i = \frac{\partial L}{\partial x_i} = \sum_j \bar z_j \, \frac{\partial z_j}{\partial x_i},$$

without ever forming the Jacobian: for $z = x \odot y$ that is $\bar x = \bar z \odot y$.
"""

from .activation import (gelu, hardsigmoid, hardswish, leaky_relu, log_softmax, mish, relu, relu6, sigmoid, silu,
                         softmax, softplus, tanh)
from .conv import conv1d, conv2d, conv_transpose2d
from .elementwise import (abs, add, clamp, clip, clone, div, exp, log, masked_fill, maximum, minimum,
                          mul, neg, pow, sqrt, sub, where)
from .linalg import linear, matmul
from .loss import binary_cross_entropy_with_logits, cross_entropy, l1_loss, mse_loss, nll_loss, smooth_l1_loss
from .normalization import batch_norm, group_norm, layer_norm, rms_norm
from .pool import adaptive_avg_pool2d, avg_pool2d, global_avg_pool2d, max_pool2d
from .reduction import amax, amin, argmax, argmin, logsumexp, max, mean, min, std, sum, var
from .shape import (broadcast_to, cat, concatenate, copy_into, expand, flatten, gather, getitem, pad,
                    permute, reshape, setitem, split, squeeze, stack, transpose, unsqueeze)
from .sparse import dropout, embedding

__all__ = [
    "abs", "adaptive_avg_pool2d", "amax", "amin", "argmax", "argmin", "clone", "copy_into", "gather",
    "masked_fill", "setitem", "add", "avg_pool2d", "batch_norm", "binary_cross_entropy_with_logits",
    "broadcast_to", "cat", "clamp", "clip", "concatenate", "conv1d", "conv2d", "conv_transpose2d", "cross_entropy",
    "div", "dropout",
    "embedding", "exp", "expand", "flatten", "gelu", "getitem", "global_avg_pool2d", "layer_norm",
    "leaky_relu", "linear", "log", "log_softmax", "logsumexp", "matmul", "max", "max_pool2d", "maximum", "mean",
    "min", "minimum", "mse_loss", "mul", "neg", "pad", "permute", "pow", "relu", "reshape", "sigmoid",
    "softmax", "split", "sqrt", "squeeze", "stack", "std", "sub", "sum", "tanh", "transpose",
    "unsqueeze", "var", "where",
    "relu6", "hardsigmoid", "hardswish", "silu", "softplus", "mish", "nll_loss", "l1_loss", "smooth_l1_loss",
    "group_norm", "rms_norm",
]
