"""Geometry checks of the numba kernels: the reference's rules, from its public helpers.

A bad call must fail before any work, with the same message as the NumPy reference
(``minift/reference/conv.py`` and ``pool.py`` check the same rules in private helpers);
``tests/test_numba_kernels.py`` holds the two to the same errors. Each function returns
the checked sizes and the window pairs as plain int tuples, which is what the kernels take.
"""

from __future__ import annotations

from minift.reference.checks import check_pair
from minift.reference.im2col import output_size


def window_pairs(kernel, kernel_size, stride, padding, dilation=(1, 1)):
    """Checked (kernel_size, stride, padding, dilation), each a pair of ints."""
    return (
        check_pair(kernel, "kernel_size", kernel_size, 1),
        check_pair(kernel, "stride", stride, 1),
        check_pair(kernel, "padding", padding, 0),
        check_pair(kernel, "dilation", dilation, 1),
    )


def conv_geometry(kernel, x_shape, weight_shape, stride, padding, dilation):
    """((N, O, Ho, Wo), (kernel_size, stride, padding, dilation)) of a convolution, checked."""
    n, c, h, w = x_shape
    o, weight_c, kh, kw = weight_shape
    if weight_c != c:
        raise ValueError(
            f"{kernel}: the input has {c} channels but the weight (O, C, KH, KW) = "
            f"{tuple(weight_shape)} expects {weight_c}"
        )
    if kh < 1 or kw < 1:
        raise ValueError(f"{kernel}: the kernel must be at least 1x1, got weight shape {tuple(weight_shape)}")
    pairs = window_pairs(kernel, (kh, kw), stride, padding, dilation)
    ho, wo = output_size(kernel, (h, w), *pairs)
    return (n, o, ho, wo), pairs


def pool_geometry(kernel, input_hw, kernel_size, stride, padding, dilation=(1, 1)):
    """((Ho, Wo), (kernel_size, stride, padding, dilation)) of a pooling, checked.

    PyTorch's rule, padding at most half the kernel; and every window must reach the
    input (a dilated window could otherwise lie wholly on the padding and have no maximum).
    """
    pairs = window_pairs(kernel, kernel_size, stride, padding, dilation)
    kernel_size, stride, padding, dilation = pairs
    if padding[0] > kernel_size[0] // 2 or padding[1] > kernel_size[1] // 2:
        raise ValueError(
            f"{kernel}: padding must be at most half the kernel size, got padding {padding} "
            f"for kernel_size {kernel_size}"
        )
    out_hw = output_size(kernel, input_hw, *pairs)
    for axis, name in enumerate(("height", "width")):
        k, s, p, d, size = kernel_size[axis], stride[axis], padding[axis], dilation[axis], input_hw[axis]
        # Only a window that starts on the padding can miss the input; the first ones do.
        for start in range(-p, min(0, out_hw[axis] * s - p), s):
            if not any(0 <= start + t * d < size for t in range(k)):
                raise ValueError(
                    f"{kernel}: along the {name}, a window with kernel {k}, dilation {d} and "
                    f"padding {p} covers only padding of the {size}-long input; use less "
                    f"padding or dilation, or a larger input"
                )
    return out_hw, pairs
