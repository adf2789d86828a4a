"""The geometry of the contract's kernels: every size of a call, and the checks of its arguments.

The contract entries (``minift.contract``) call these functions once per call, before they
dispatch, and hand the result -- a ``MatmulGeometry``, ``ConvGeometry`` or ``PoolGeometry``
-- to the backend's kernel, which then only runs its loops. So the same bad call fails
with the same message, word for word, whichever backend would have run it, and a call
that fails here has done no work.

Along one axis, a window of k taps spaced d apart (the dilation) spans ``d*(k-1) + 1``
positions; window i starts at ``i*s - p`` (s: stride, p: padding) and reads the input at
``i*s - p + t*d`` for ``t < k``. The windows that fit in the padded input number

    out = (size + 2*p - d*(k-1) - 1) // s + 1        (``conv_output_size``)

and a call is refused when ``out < 1`` along either axis. Pooling adds two rules:
``p <= k // 2`` (PyTorch's), and no window may lie wholly on the padding, where it would
have no maximum.

The shapes passed to ``conv2d_geometry`` and ``pool2d_geometry`` are four ints each: a
caller first checks its arrays (``check_ndim``) and shape arguments (``check_shape_argument``),
whose messages name the argument. ``max_pool2d_backward_shape`` checks the arrays of
max pooling's backward pass itself (it has no window to size).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace

from minift.contract.checks import check_ndim, check_pair, check_same_shape, check_shape_argument


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution or pooling window along one axis (floor mode).

    ``(size + 2*padding - dilation*(kernel-1) - 1) // stride + 1``: the windows that fit.
    """
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class MatmulGeometry:
    """The sizes of ``a (..., M, K) @ b (..., K, N)``: the broadcast batch shape and M, K, N."""

    batch_shape: tuple[int, ...]
    m: int
    k: int
    n: int

    @property
    def batch(self) -> int:
        """How many matrix products: the product of the batch shape."""
        return math.prod(self.batch_shape)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (*self.batch_shape, self.m, self.n)

    @property
    def multiply_adds(self) -> int:
        """The products' size, ``batch * M * K * N``: what decides whether BLAS gets more threads."""
        return self.batch * self.m * self.k * self.n


def broadcast_batch_shapes(kernel: str, a_batch, b_batch) -> tuple[int, ...]:
    """NumPy's broadcasting of two batch shapes (aligned on the right; 1 stretches)."""
    width = max(len(a_batch), len(b_batch))
    a_sizes = (1,) * (width - len(a_batch)) + tuple(a_batch)
    b_sizes = (1,) * (width - len(b_batch)) + tuple(b_batch)
    if any(x != y and 1 not in (x, y) for x, y in zip(a_sizes, b_sizes)):
        raise ValueError(f"{kernel}: the batch dimensions {tuple(a_batch)} and {tuple(b_batch)} do not broadcast")
    return tuple(y if x == 1 else x for x, y in zip(a_sizes, b_sizes))


def matmul_geometry(kernel: str, a_shape, b_shape) -> MatmulGeometry:
    """Check the shapes of ``a @ b`` (both at least 2-D, inner sizes equal, batches
    broadcastable) and size the product."""
    a_shape, b_shape = tuple(a_shape), tuple(b_shape)
    if len(a_shape) < 2 or len(b_shape) < 2:
        raise ValueError(f"{kernel}: both operands must be at least 2-D, got shapes {a_shape} and {b_shape}")
    (m, k), (k_b, n) = a_shape[-2:], b_shape[-2:]
    if k != k_b:
        raise ValueError(
            f"{kernel}: a (..., M, K) and b (..., K, N) must agree on K, got shapes {a_shape} and {b_shape}"
        )
    return MatmulGeometry(broadcast_batch_shapes(kernel, a_shape[:-2], b_shape[:-2]), m, k, n)


def ceil_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length in ceil mode (pooling's ``ceil_mode=True``), PyTorch's rule.

    ``ceil((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1`` windows: a last,
    partial window may run past the padded input -- but is dropped if it would start on
    the right padding, ``(out-1)*stride - padding >= size``, so every window starts on
    the input or the left padding.
    """
    out = -(-(size + 2 * padding - dilation * (kernel - 1) - 1) // stride) + 1
    return out - 1 if (out - 1) * stride >= size + padding else out


def output_size(kernel: str, input_hw, kernel_size, stride, padding, dilation, ceil_mode=False) -> tuple[int, int]:
    """(Ho, Wo) of a sliding window over an (H, W) plane; raises if no window fits.

    ``kernel`` names the caller in the message; the four window arguments are checked pairs.
    """
    if any(size + 2 * p < d * (k - 1) + 1 for size, k, p, d in zip(input_hw, kernel_size, padding, dilation)):
        ho = wo = 0  # the window does not fit, in floor or ceil mode
    else:
        size_along = ceil_output_size if ceil_mode else conv_output_size
        ho, wo = (
            size_along(size, k, s, p, d) for size, k, s, p, d in zip(input_hw, kernel_size, stride, padding, dilation)
        )
    if ho < 1 or wo < 1:
        span = tuple(d * (k - 1) + 1 for k, d in zip(kernel_size, dilation))
        padded = tuple(size + 2 * p for size, p in zip(input_hw, padding))
        raise ValueError(
            f"{kernel}: the padded input {padded[0]}x{padded[1]} is smaller than the window "
            f"span {span[0]}x{span[1]} (kernel {tuple(kernel_size)}, dilation {tuple(dilation)}); "
            f"use a larger input, more padding or a smaller kernel"
        )
    return ho, wo


@dataclass(frozen=True)
class WindowGeometry:
    """The sizes every sliding-window op shares: x (n, c, h, w), window (kh, kw), output
    planes (ho, wo), and the checked stride, padding and dilation pairs."""

    n: int
    c: int
    h: int
    w: int
    kh: int
    kw: int
    ho: int
    wo: int
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]

    @property
    def kernel_size(self) -> tuple[int, int]:
        return (self.kh, self.kw)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)


@dataclass(frozen=True)
class ConvGeometry(WindowGeometry):
    """Every size of one 2-D convolution: x (n, c, h, w), weight (o, c/groups, kh, kw),
    y (n, o, ho, wo). With ``groups`` g, the channels form g groups: output channel o sees
    only the ``c/g`` input channels of its group ``o // (o/g)`` (g = c: depthwise)."""

    o: int
    groups: int = 1

    @property
    def c_group(self) -> int:
        """Input channels per group: ``C / groups``."""
        return self.c // self.groups

    @property
    def o_group(self) -> int:
        """Output channels per group: ``O / groups``."""
        return self.o // self.groups

    @property
    def depthwise(self) -> bool:
        """One input channel per group: each output plane filters one input plane."""
        return self.c_group == 1

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.o, self.c_group, self.kh, self.kw)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.o, self.ho, self.wo)

    @property
    def taps(self) -> int:
        """Rows of one group's im2col matrix, columns of its weight matrix: ``C/groups * KH * KW``.

        Every backend orders them (c, p, q), channel first: tap ``(c*KH + p)*KW + q``
        multiplies ``weight[o, c, p, q]``, so the weight matrix ``W_mat (O, C/groups*KH*KW)``
        is ``weight.reshape(O, taps)`` -- no copy of a contiguous weight -- and
        ``cols[(c*KH + p)*KW + q, i*Wo + j] = xpad[c, i*sh + p*dh, j*sw + q*dw]``.
        """
        return self.c_group * self.kh * self.kw

    @property
    def multiply_adds(self) -> int:
        """Multiply-adds of the convolution, as of each of its two backward passes: ``N*O*Ho*Wo * taps``."""
        return self.n * self.o * self.ho * self.wo * self.taps

    def one_group(self) -> "ConvGeometry":
        """The geometry of one group's convolution: C/groups channels in, O/groups out, groups=1."""
        return replace(self, c=self.c_group, o=self.o_group, groups=1)


def conv2d_geometry(kernel: str, x_shape, weight_shape, stride, padding, dilation, groups=1) -> ConvGeometry:
    """Check a convolution's arguments and size its output.

    x_shape (N, C, H, W) and weight_shape (O, C/groups, KH, KW): ``groups`` a positive int
    dividing C and O, the weight's channels C/groups, the kernel at least 1x1; stride >= 1,
    padding >= 0 and dilation >= 1 are pairs of ints; at least one window must fit:
    ``Ho, Wo >= 1``.
    """
    n, c, h, w = (int(size) for size in x_shape)
    o, weight_c, kh, kw = (int(size) for size in weight_shape)
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{kernel}: groups must be a positive int, got {groups!r}")
    groups = int(groups)
    if c % groups or o % groups:
        raise ValueError(
            f"{kernel}: groups={groups} must divide the input channels ({c}) and the output "
            f"channels ({o}) of weight (O, C/groups, KH, KW) = {tuple(weight_shape)}"
        )
    if weight_c != c // groups:
        per_group = "" if groups == 1 else f" (C/groups with groups={groups})"
        raise ValueError(
            f"{kernel}: the input has {c} channels but the weight (O, C/groups, KH, KW) = "
            f"{tuple(weight_shape)} expects {weight_c * groups}{per_group}"
        )
    if kh < 1 or kw < 1:
        raise ValueError(f"{kernel}: the kernel must be at least 1x1, got weight shape {tuple(weight_shape)}")
    stride = check_pair(kernel, "stride", stride, 1)
    padding = check_pair(kernel, "padding", padding, 0)
    dilation = check_pair(kernel, "dilation", dilation, 1)
    ho, wo = output_size(kernel, (h, w), (kh, kw), stride, padding, dilation)
    return ConvGeometry(n, c, h, w, kh, kw, ho, wo, stride, padding, dilation, o=o, groups=groups)


@dataclass(frozen=True)
class PoolGeometry(WindowGeometry):
    """Every size of one 2-D pooling: x (n, c, h, w), window (kh, kw), y (n, c, ho, wo).

    ``ceil_mode``: (ho, wo) were counted in ceil mode, so the last window along an axis
    may run past the padded input (its taps there read nothing). ``count_include_pad``:
    for average pooling, whether a window's padding counts in its divisor.
    """

    ceil_mode: bool = False
    count_include_pad: bool = True

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.ho, self.wo)

    def divisors(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Average pooling's divisor of window (i, j) is ``rows[i] * cols[j]`` (PyTorch's rule).

        Along an axis, window i starts at ``start = i*s - p`` and is cut at the end of the
        padded input, ``end = min(start + k, size + p)``; it divides by ``end - start``
        with ``count_include_pad``, else by its positions on the input alone,
        ``min(end, size) - max(start, 0)``. (Without ceil mode and with
        ``count_include_pad`` that is always k: every window lies in the padded input.)
        """
        per_axis = []
        for size, out, k, s, p in zip((self.h, self.w), (self.ho, self.wo), self.kernel_size, self.stride, self.padding):
            counts = []
            for i in range(out):
                start = i * s - p
                end = min(start + k, size + p)
                counts.append(end - start if self.count_include_pad else min(end, size) - max(start, 0))
            per_axis.append(tuple(counts))
        return per_axis[0], per_axis[1]


def pool2d_geometry(kernel: str, x_shape, kernel_size, stride, padding, dilation=(1, 1), ceil_mode=False,
                    count_include_pad=True) -> PoolGeometry:
    """Check a pooling's arguments and size its output.

    x_shape (N, C, H, W); kernel_size and stride >= 1, padding >= 0, dilation >= 1 are
    pairs of ints, with ``padding <= kernel_size // 2``; ``ceil_mode`` and
    ``count_include_pad`` are bools; at least one window must fit, and none may cover only
    padding (possible with dilation: kernel 2, dilation 2 and padding 1 over a 1-pixel
    input read positions -1 and 1).
    """
    for name, flag in (("ceil_mode", ceil_mode), ("count_include_pad", count_include_pad)):
        if not isinstance(flag, bool):
            raise TypeError(f"{kernel}: {name} must be a bool, got {flag!r}")
    n, c, h, w = (int(size) for size in x_shape)
    kernel_size = check_pair(kernel, "kernel_size", kernel_size, 1)
    stride = check_pair(kernel, "stride", stride, 1)
    padding = check_pair(kernel, "padding", padding, 0)
    dilation = check_pair(kernel, "dilation", dilation, 1)
    if padding[0] > kernel_size[0] // 2 or padding[1] > kernel_size[1] // 2:
        raise ValueError(
            f"{kernel}: padding must be at most half the kernel size, got padding {padding} "
            f"for kernel_size {kernel_size}"
        )
    out_hw = output_size(kernel, (h, w), kernel_size, stride, padding, dilation, ceil_mode)
    for axis, window in enumerate(zip((h, w), out_hw, kernel_size, stride, padding, dilation)):
        _check_windows_reach_the_input(kernel, ("height", "width")[axis], *window)
    return PoolGeometry(n, c, h, w, *kernel_size, *out_hw, stride, padding, dilation, ceil_mode, count_include_pad)


def _check_windows_reach_the_input(kernel, axis, size, out, k, s, p, d) -> None:
    """Raise if one of the ``out`` windows along ``axis`` reads no input position.

    Only a window that starts on the padding, at ``start = i*s - p < 0``, can: one that
    starts at ``start >= 0`` reads the input there, since no window starts on the right
    padding (in floor mode every window ends within ``size + p`` and spans more than
    ``p <= k // 2`` positions; ceil mode drops a window that would start there). The first of its taps at or
    past 0 is ``t = ceil(-start / d)``; the window misses the input when there is no such
    tap (``t >= k``) or it already lies past the end (``start + t*d >= size``).
    """
    for start in range(-p, min(0, out * s - p), s):
        t = -(start // d)
        if t >= k or start + t * d >= size:
            raise ValueError(
                f"{kernel}: along the {axis}, a window with kernel {k}, dilation {d} and "
                f"padding {p} covers only padding of the {size}-long input; use less "
                f"padding or dilation, or a larger input"
            )


def max_pool2d_backward_shape(kernel: str, grad_y, indices, input_shape) -> tuple[int, int, int, int]:
    """Check the arguments of ``max_pool2d_backward`` against each other; return (N, C, H, W).

    grad_y (N, C, Ho, Wo) and indices of its shape, integers; input_shape (N, C, H, W)
    with the same N and C; every index a flat position ``h * W + w`` in ``[0, H*W)``.
    The arrays may be NumPy or CuPy arrays (on a GPU the range check waits for the result).
    """
    check_ndim(kernel, "grad_y", grad_y, 4, "(N, C, Ho, Wo)")
    check_same_shape(kernel, "indices", indices.shape, grad_y.shape, "one index per grad_y element")
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{kernel}: indices must be integers (int64), got {indices.dtype}")
    n, c, h, w = check_shape_argument(kernel, "input_shape", input_shape, "(N, C, H, W)")
    check_same_shape(kernel, "grad_y", grad_y.shape[:2], (n, c), "its (N, C) must match input_shape")
    if indices.size and (indices.min() < 0 or indices.max() >= h * w):
        raise ValueError(f"{kernel}: indices must lie in [0, H*W) = [0, {h * w}) for input_shape {input_shape}")
    return n, c, h, w
