"""Fused transformer kernels in Numba: softmax with a mask, layer norm, GELU, and their backward passes.

Implements ``minift.reference.transformer`` (read it first: the formulas and shapes are
there). Written in NumPy, ``softmax(x + bias)`` makes five full-size temporaries (the sum,
its max, the difference, its exponential, the quotient) and reads memory ten times; each
kernel here reads its inputs once or twice and writes its outputs once, one row per task
(``prange``), accumulating sums in float64.

1. **A vectorisable exponential** (``exp_approx``). Numba calls the C library's ``exp``
   one value at a time, and LLVM cannot vectorise a call: a softmax in Numba with
   ``math.exp`` ran *slower* than NumPy's chain, whose ``np.exp`` uses AVX-512. So the
   exponential is written out: ``exp(x) = 2**k * exp(r)`` with ``k = round(x / ln 2)``,
   ``r = x - k ln 2`` in [-ln2/2, ln2/2] (ln 2 split in two parts, Cody and Waite, so that
   ``r`` is exact), ``exp(r)`` a degree-13 Taylor polynomial (truncation error below 1e-17),
   and ``2**k`` built from its bits (``pow2``: the exponent field is ``k + 1023``). No
   call, no branch: LLVM turns the loop into vector instructions (AVX-512's, 256 bits wide
   as LLVM prefers them). Below -708 it returns 0 (where ``exp`` would give a subnormal number
   below 1e-307), so a -inf mask entry gives exactly 0; NaN stays NaN. For float32 softmax,
   ``exp_approx_float32`` is the same construction in float32 arithmetic (Cephes' ``expf``: a
   degree-5 polynomial on ``r``, relative error below 2e-7), twice the lanes.
   Two more things decide whether the softmax's loops vectorise: the row maximum is a
   ``maxnum`` reduction (an LLVM intrinsic; Numba's ``max`` is a compare-and-select LLVM
   leaves scalar), and every array is C-contiguous -- a broadcast mask is passed with its
   broadcast axes of size 1 (``_compact_four_axes``), not as a zero-stride view, which
   Numba types as "any layout". Together: a BERT attention softmax with its padding mask
   (16 x 12 x 128 x 128, float32) went from 9.0 to 5.5 ms on one thread.
2. **GELU's erf**: in float64, ``math.erf`` (the C library's, exact, one value at a time). In
   float32, ``normal_cdf_float32``: ``Phi(-|x|) = t/2 exp(-x**2/2 + P(t))`` with
   ``t = 1/(1 + |x|/2)`` and a fitted polynomial ``P`` (``normal_cdf_fit.py``), all in float32
   arithmetic, vectorised -- and still to float32's *relative* precision in the tails (below
   2.5e-7 measured on 10 million random values, where ``1 + erf`` would lose every digit below x = -4), because the two
   steps that would lose it are made exact: ``x**2`` is split into ``h + l`` with a fused
   multiply-add (``l = fma(x, x, -h)`` is the rounding error of ``h = x*x``), and the
   exponential's range reduction subtracts ``k ln 2`` from ``-h/2`` before anything else is
   added (``exp_minus_half_square_float32``); ``t`` is corrected by one Newton step. On
   MiniLM's 2048 x 1536 activations, one thread, outputs allocated in the call: the forward
   took 7.7-9.5 ms against 13.5 for the former float64 evaluation (Numerical Recipes'
   ``erfcc``; PyTorch's float32 GELU, which writes no CDF: 2.8), the backward 3.8-4.3
   against 8.0-8.4.
   The CDF is kept for the backward pass, which needs only an exponential.
3. **Sums over rows** (layer norm's dL/dweight and dL/dbias) are split into ``ROW_BLOCKS``
   blocks of rows, one task each, and the block sums are added in a fixed order: the same
   result on any number of threads.
4. **Full-width vectors**: every loop body calls ``wide_vectors()``, so that LLVM uses
   AVX-512's 512-bit vectors, not the 256-bit ones its tuning prefers (``vector_width.py``
   has the reason and the figures: GELU's backward pass 1.4-1.6x faster, layer norm's forward 1.35x).
"""

from __future__ import annotations

import math

import numpy as np

from minift.kernels.numba import env as numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before Numba loads)
from numba import njit, prange, types
from minift.kernels.numba.parallel import parallel_kernel
from minift.kernels.numba.vector_width import wide_vectors
from numba.extending import intrinsic
from llvmlite import ir

SUMS = {"reassoc", "contract"}  # sums may be reordered (and fused), so that LLVM vectorises them; NaN and inf kept
ROW_BLOCKS = 16  # blocks of rows for layer norm's weight and bias gradients

LOG2E = 1.4426950408889634
LN2_HI = 0.693145751953125  # ln 2 = LN2_HI + LN2_LO; LN2_HI has 16 significant bits, so k * LN2_HI is exact
LN2_LO = 1.4286068203094173e-06
EXP_TAYLOR = tuple(1.0 / math.factorial(n) for n in range(13, -1, -1))  # 1/13!, ..., 1/1!, 1/0!: exp(r) to 1e-17
INV_SQRT2 = 1 / math.sqrt(2)
INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _power_of_two(integer, real, bias: int, mantissa_bits: int):
    """An intrinsic ``2.0 ** k`` for an ``integer`` k in the normal range of ``real``: the
    number whose exponent bits are ``k + bias`` and whose mantissa is zero."""

    @intrinsic
    def power(typingctx, k):
        if not isinstance(k, types.Integer):
            return None

        def codegen(context, builder, signature, args):
            (value,) = args
            biased = builder.add(value, context.get_constant(integer, bias))
            bits = builder.shl(biased, context.get_constant(integer, mantissa_bits))
            return builder.bitcast(bits, context.get_value_type(real))

        return real(integer), codegen

    return power


pow2 = _power_of_two(types.int64, types.float64, 1023, 52)  # int64 k in [-1022, 1023]
pow2_float32 = _power_of_two(types.int32, types.float32, 127, 23)  # int32 k in [-126, 127]


# float32 constants: a Python float would turn float32 arithmetic into float64
F32_LOG2E, F32_HALF, F32_ONE = np.float32(LOG2E), np.float32(0.5), np.float32(1.0)
F32_LOWEST = np.float32(-87.3)  # exp below it is under float32's smallest normal number, 1.2e-38
F32_LN2_HI, F32_LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)  # Cephes' split; k*HI exact
F32_EXP = tuple(np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                        4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))


def _llvm_float_intrinsic(name: str, arity: int, doc: str):
    """An intrinsic calling LLVM's ``name`` on ``arity`` (2 or 3) floats of one type (float32 or float64)."""

    def typed(args):
        if not (isinstance(args[0], types.Float) and all(arg == args[0] for arg in args)):
            return None

        def codegen(context, builder, signature, values):
            real = context.get_value_type(args[0])
            function = builder.module.declare_intrinsic(name, [real], ir.FunctionType(real, [real] * arity))
            return builder.call(function, values)

        return args[0](*args), codegen

    if arity == 2:
        def typer(typingctx, a, b):
            return typed((a, b))
    else:
        def typer(typingctx, a, b, c):
            return typed((a, b, c))
    typer.__name__, typer.__doc__ = name.split(".")[-1], doc
    return intrinsic(typer)


fma = _llvm_float_intrinsic("llvm.fma", 3, "fma(a, b, c) = a * b + c rounded once (the CPU's fused multiply-add).")
maxnum = _llvm_float_intrinsic("llvm.maxnum", 2, "maxnum(a, b): the larger, or the other one if one is NaN. "
                               "LLVM vectorises a maxnum reduction; not Numba's max, a compare-and-select.")


@njit(cache=True, inline="always")
def horner(coefficients, x):
    """c[0] x**n + c[1] x**(n-1) + ... + c[n] for ``coefficients`` c (a tuple, highest degree
    first), by Horner's rule: n multiply-adds. The tuple is a compile-time constant, so the
    loop unrolls into the same straight-line code as written out by hand."""
    p = coefficients[0]
    for c in coefficients[1:]:
        p = p * x + c
    return p


@njit(cache=True, inline="always")
def exp_reduced_float32(r, k):
    """exp(r) * 2**k for |r| <= ln(2)/2 and a whole float32 k in [-126, 127] (Cephes' ``expf`` polynomial)."""
    return (horner(F32_EXP, r) * (r * r) + r + F32_ONE) * pow2_float32(np.int32(k) if k == k else np.int32(0))


@njit(cache=True, inline="always")
def exp_approx_float32(x):
    """exp(x) for a float32 x <= 88 in float32 arithmetic (Cephes' ``expf``): 0 below -87.3.

    ``np.floor``, not ``math.floor``: Numba's ``math.floor`` returns an int64, which turns
    ``k * F32_LN2_HI`` into float64 arithmetic (half the lanes, and conversions)."""
    clamped = F32_LOWEST if x < F32_LOWEST else x
    k = np.floor(clamped * F32_LOG2E + F32_HALF)
    y = exp_reduced_float32((clamped - k * F32_LN2_HI) - k * F32_LN2_LO, k)
    return np.float32(0.0) if x < F32_LOWEST else y


@njit(cache=True, inline="always")
def exp_approx(x):
    """exp(x) for a float64 x <= 709 (see point 1 of the module docstring): 0 below -708."""
    clamped = -708.0 if x < -708.0 else x
    k = math.floor(clamped * LOG2E + 0.5)
    r = (clamped - k * LN2_HI) - k * LN2_LO
    y = horner(EXP_TAYLOR, r) * pow2(np.int64(k) if k == k else np.int64(0))
    return 0.0 if x < -708.0 else y


# --------------------------------------------------------------------------- softmax


@parallel_kernel(cache=True, fastmath=SUMS)
def softmax_rows(x, bias, out):
    """out[a, b, c, :] = softmax(x[a, b, c, :] + bias[a % B0, b % B1, c % B2, :]) for x, out (D0, D1, D2, S)
    and bias (B0, B1, B2, S), each Bi 1 or Di (a broadcast bias, without copies of its rows)."""
    d0, d1, d2, length = x.shape
    b0, b1, b2 = bias.shape[0], bias.shape[1], bias.shape[2]
    for row in prange(d0 * d1 * d2):
        wide_vectors()
        a = row // (d1 * d2)
        b = (row // d2) % d1
        c = row % d2
        xs, bs, zs = x[a, b, c], bias[a % b0, b % b1, c % b2], out[a, b, c]
        top = -np.inf
        for j in range(length):
            top = maxnum(top, xs[j] + bs[j])
        total = 0.0
        for j in range(length):
            e = exp_approx(xs[j] + bs[j] - top)
            zs[j] = e
            total += e
        scale = 1.0 / total
        for j in range(length):
            zs[j] = zs[j] * scale


@parallel_kernel(cache=True, fastmath=SUMS)
def softmax_rows_float32(x, bias, out):
    """``softmax_rows`` for float32, its exponentials in float32 (``exp_approx_float32``), sums in float64."""
    d0, d1, d2, length = x.shape
    b0, b1, b2 = bias.shape[0], bias.shape[1], bias.shape[2]
    for row in prange(d0 * d1 * d2):
        wide_vectors()
        a = row // (d1 * d2)
        b = (row // d2) % d1
        c = row % d2
        xs, bs, zs = x[a, b, c], bias[a % b0, b % b1, c % b2], out[a, b, c]
        top = np.float32(-np.inf)
        for j in range(length):
            top = maxnum(top, xs[j] + bs[j])
        total = 0.0
        for j in range(length):
            e = exp_approx_float32(xs[j] + bs[j] - top)
            zs[j] = e
            total += e
        scale = np.float32(1.0 / total)
        for j in range(length):
            zs[j] = zs[j] * scale


@parallel_kernel(cache=True, fastmath=SUMS)
def softmax_backward_rows(grad_z, z, out):
    """out = z * (g - sum(g * z)) per row of (R, S) arrays."""
    for row in prange(z.shape[0]):
        wide_vectors()
        g, zs, dx = grad_z[row], z[row], out[row]
        dot = 0.0
        for j in range(zs.shape[0]):
            dot += np.float64(g[j]) * zs[j]
        for j in range(zs.shape[0]):
            dx[j] = zs[j] * (g[j] - dot)


def _four_axes(shape):
    """``shape`` as 4-D: leading axes merged, or axes of 1 added in front."""
    if len(shape) >= 4:
        return (math.prod(shape[:-3]), *shape[-3:])
    return (1,) * (4 - len(shape)) + tuple(shape)


def _compact_four_axes(bias, shape):
    """``bias`` (broadcastable to ``shape``) as a C-contiguous 4-D array whose first three axes
    are 1 or ``shape``'s (viewed 4-D), and whose last is ``shape[-1]``: the kernel's rows.

    C-contiguous, so that Numba knows the rows have unit stride and vectorises them (a
    zero-stride broadcast view made the float32 softmax twice as slow); the broadcast axes
    stay 1, so that attention's (N, 1, 1, S) padding mask is not copied to (N, H, L, S).
    """
    view = np.broadcast_to(bias, shape)
    compact = view[tuple(slice(0, 1) if step == 0 else slice(None) for step in view.strides[:-1])]
    if compact.shape[:-3] not in (tuple(shape[:-3]), (1,) * (len(shape) - 3)):  # 5-D and more: leading axes
        compact = np.broadcast_to(compact, (*shape[:-3], *compact.shape[-3:]))  # that merge into one of neither size
    compact = np.ascontiguousarray(compact)
    return compact.reshape(_four_axes(compact.shape))


def softmax_forward(x, bias=None):
    """The contract's ``softmax_forward`` (``minift.reference.transformer``): z = softmax(x + bias), last axis."""
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    if x.size == 0:
        return out
    bias = np.zeros(1, x.dtype) if bias is None else bias
    kernel = softmax_rows_float32 if x.dtype == np.float32 else softmax_rows
    kernel(x.reshape(_four_axes(x.shape)), _compact_four_axes(bias, x.shape), out.reshape(_four_axes(x.shape)))
    return out


def softmax_backward(grad_z, z):
    """The contract's ``softmax_backward``: dL/dx = z * (g - sum(g * z)) along the last axis."""
    out = np.empty(z.shape, z.dtype)
    if z.size:
        rows = (-1, z.shape[-1])
        softmax_backward_rows(np.ascontiguousarray(grad_z).reshape(rows), np.ascontiguousarray(z).reshape(rows),
                              out.reshape(rows))
    return out


# --------------------------------------------------------------------------- layer norm


@parallel_kernel(cache=True, fastmath=SUMS)
def layer_norm_rows(x, weight, bias, eps, y, mean, rstd):
    """y = (x - mean) * rstd * weight + bias per row of x (R, D); weight, bias (D,) (ones and zeros if absent)."""
    width = x.shape[1]
    for row in prange(x.shape[0]):
        wide_vectors()
        xs, ys = x[row], y[row]
        total = 0.0
        for j in range(width):
            total += xs[j]
        mu = total / width
        spread = 0.0
        for j in range(width):
            d = xs[j] - mu
            spread += d * d
        r = 1.0 / math.sqrt(spread / width + eps)
        mean[row], rstd[row] = mu, r
        for j in range(width):
            ys[j] = (xs[j] - mu) * r * weight[j] + bias[j]


@parallel_kernel(cache=True, fastmath=SUMS)
def layer_norm_backward_rows(grad_y, x, mean, rstd, weight, grad_x, weight_sums, bias_sums):
    """dL/dx per row of (R, D); the rows' sums of g * x_hat and g per block of rows into
    ``weight_sums``, ``bias_sums`` (blocks, D)."""
    rows, width = x.shape
    blocks = weight_sums.shape[0]
    for block in prange(blocks):
        wide_vectors()
        for row in range(block * rows // blocks, (block + 1) * rows // blocks):
            g, xs, dx = grad_y[row], x[row], grad_x[row]
            mu, r = np.float64(mean[row]), np.float64(rstd[row])
            mean_g = 0.0
            mean_gx = 0.0
            for j in range(width):
                x_hat = (xs[j] - mu) * r
                g_hat = np.float64(g[j]) * weight[j]
                mean_g += g_hat
                mean_gx += g_hat * x_hat
                weight_sums[block, j] += g[j] * x_hat
                bias_sums[block, j] += g[j]
            mean_g /= width
            mean_gx /= width
            for j in range(width):
                x_hat = (xs[j] - mu) * r
                dx[j] = r * (g[j] * weight[j] - mean_g - x_hat * mean_gx)


def _rows(array):
    return np.ascontiguousarray(array).reshape(-1, array.shape[-1])


def layer_norm_forward(x, weight, bias, eps):
    """The contract's ``layer_norm_forward``: (y, mean, rstd) over the last axis."""
    width = x.shape[-1]
    y = np.empty(x.shape, x.dtype)
    mean, rstd = np.empty(x.shape[:-1], x.dtype), np.empty(x.shape[:-1], x.dtype)
    if x.size:
        ones, zeros = np.ones(width, x.dtype), np.zeros(width, x.dtype)
        layer_norm_rows(_rows(x), ones if weight is None else weight, zeros if bias is None else bias, eps,
                        y.reshape(-1, width), mean.reshape(-1), rstd.reshape(-1))
    return y, mean, rstd


def layer_norm_backward(grad_y, x, mean, rstd, weight):
    """The contract's ``layer_norm_backward``: (grad_x, grad_weight or None, grad_bias)."""
    width = x.shape[-1]
    grad_x = np.empty(x.shape, x.dtype)
    sums = np.zeros((2, ROW_BLOCKS, width))
    if x.size:
        layer_norm_backward_rows(_rows(grad_y), _rows(x), mean.reshape(-1), rstd.reshape(-1),
                                 np.ones(width, x.dtype) if weight is None else weight,
                                 grad_x.reshape(-1, width), sums[0], sums[1])
    grad_weight, grad_bias = sums.sum(axis=1).astype(x.dtype)
    return grad_x, None if weight is None else grad_weight, grad_bias


# --------------------------------------------------------------------------- GELU


# P of ``normal_cdf_float32``, highest degree first: ``python -m minift.kernels.numba.normal_cdf_fit`` prints them
NORMAL_CDF_FIT = tuple(np.float32(c) for c in (
    0.1846073865890503, -0.3928200900554657, 0.17149168252944946, 0.26774317026138306, -0.36585289239883423,
    0.034261010587215424, 0.3350721597671509, -0.2865184545516968, -0.3145141303539276, 0.9857248067855835,
    -0.39688998460769653))
F32_FIT_CENTER = np.float32(0.5)  # P is a polynomial in t - 1/2
F32_TAIL_END = np.float32(13.5)  # Phi(-13.5) ~ 1e-41: below float32's normal numbers; the fit ends there
F32_LN_INV_SQRT_2PI = np.float32(-0.5 * math.log(2 * math.pi))

# The float32 GELU below is exact where it must be (see point 2 of the module docstring), so it
# is compiled without fastmath: reassociating (1 - d) + half, say, would lose what it keeps.


@njit(cache=True, inline="always")
def exp_minus_half_square_float32(a, p):
    """exp(p - a*a/2) for a float32 ``a >= 0`` and |p| < 2, to float32's relative precision;
    0 where it is below -87.3 (as ``exp_approx_float32``), ``a`` infinite included.

    ``a*a/2`` reaches 91, where one rounding of it (an ulp is 8e-6) would be a relative error
    of 8e-6 in the result. So ``a*a = h + l`` exactly (``l = fma(a, a, -h)``), the whole
    multiple of ln 2 is taken off ``-h/2`` first (exact: both are multiples of 2**-17 and
    their difference is below 2), and ``p`` and ``-l/2`` are added to the small remainder.
    """
    h = a * a
    l = fma(a, a, -h)
    big = -F32_HALF * h
    argument = big + p
    clamped = F32_LOWEST if argument < F32_LOWEST else argument
    k = np.floor(clamped * F32_LOG2E + F32_HALF)
    r = ((big - k * F32_LN2_HI) + p) - k * F32_LN2_LO - F32_HALF * l
    y = exp_reduced_float32(r, k)
    return np.float32(0.0) if argument < F32_LOWEST else y  # (where r is out of range)


@njit(cache=True, inline="always")
def normal_cdf_float32(x):
    """Phi(x) for a float32 x, to float32's relative precision in both tails (see the module docstring).

    ``Phi(-a) = t/2 * exp(-a*a/2 + P(t - 1/2))`` with ``t = 1/(1 + a/2)``, ``a = |x|``, and
    ``Phi(a) = 1 - Phi(-a)``. An error in t moves the result by up to 2.3 times as much, so
    ``1 + a/2 = d + d_lo`` is kept exactly (Fast2Sum; ``a/2`` is exact) and the reciprocal
    refined by one Newton step, ``t = t0 + t0 (1 - t0 (d + d_lo))``.
    """
    a = abs(x)
    half = F32_HALF * a
    d = F32_ONE + half
    d_lo = (F32_ONE - d) + half if half < F32_ONE else (half - d) + F32_ONE
    t0 = F32_ONE / d
    t = fma(t0, fma(-t0, d, F32_ONE) - t0 * d_lo, t0)
    p = horner(NORMAL_CDF_FIT, t - F32_FIT_CENTER)
    tail = F32_HALF * t * exp_minus_half_square_float32(a, p)
    tail = np.float32(0.0) if a > F32_TAIL_END else tail  # where t is NaN (a = inf): Phi(-inf) = 0, Phi(inf) = 1
    return F32_ONE - tail if x >= 0 else tail


@parallel_kernel(cache=True)
def gelu_flat(x, y, cdf):
    """y = x * Phi(x) with the C library's erf, exact to float64 rounding (one call per value)."""
    for i in prange(x.shape[0]):
        wide_vectors()
        c = 0.5 * (1.0 + math.erf(x[i] * INV_SQRT2))
        cdf[i] = c
        y[i] = x[i] * c


@parallel_kernel(cache=True)
def gelu_flat_float32(x, y, cdf):
    """y = x * Phi(x) with ``normal_cdf_float32``: float32 arithmetic, vectorised."""
    for i in prange(x.shape[0]):
        wide_vectors()
        c = normal_cdf_float32(x[i])
        cdf[i] = c
        y[i] = x[i] * c


@parallel_kernel(cache=True)
def gelu_backward_flat(grad_y, x, cdf, out):
    """dL/dx = g * (Phi(x) + x phi(x)), phi(x) = exp(-x*x/2) / sqrt(2 pi), in float64."""
    for i in prange(x.shape[0]):
        wide_vectors()
        v = x[i]
        out[i] = grad_y[i] * (cdf[i] + v * exp_approx(-0.5 * v * v) * INV_SQRT_2PI)


@parallel_kernel(cache=True)
def gelu_backward_flat_float32(grad_y, x, cdf, out):
    """``gelu_backward_flat`` in float32 arithmetic: phi(x) = exp(-x*x/2 + ln(1/sqrt(2 pi)))."""
    for i in prange(x.shape[0]):
        wide_vectors()
        v = x[i]
        out[i] = grad_y[i] * (cdf[i] + v * exp_minus_half_square_float32(abs(v), F32_LN_INV_SQRT_2PI))


def gelu_forward(x):
    """The contract's ``gelu_forward``: (y, cdf), y = x * cdf, cdf = (1 + erf(x / sqrt 2)) / 2."""
    y, cdf = np.empty(x.shape, x.dtype), np.empty(x.shape, x.dtype)
    kernel = gelu_flat_float32 if x.dtype == np.float32 else gelu_flat
    kernel(np.ascontiguousarray(x).reshape(-1), y.reshape(-1), cdf.reshape(-1))
    return y, cdf


def gelu_backward(grad_y, x, cdf):
    """The contract's ``gelu_backward``: dL/dx = g * (cdf + x * exp(-x**2 / 2) / sqrt(2 pi))."""
    out = np.empty(x.shape, x.dtype)
    flat = [np.ascontiguousarray(a).reshape(-1) for a in (grad_y, x, cdf)]
    kernel = gelu_backward_flat_float32 if x.dtype == np.float32 else gelu_backward_flat
    kernel(*flat, out.reshape(-1))
    return out
