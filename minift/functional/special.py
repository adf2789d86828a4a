"""The error function, which NumPy lacks (GELU needs it).

``erf(x) = 2/sqrt(pi) * integral_0^x exp(-t**2) dt``. With SciPy installed we use
``scipy.special.erf`` (exact to float64 rounding). Without it, the rational approximation
of Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7, below float32 resolution), which is
five coefficients and one exponential::

    erf(x) = 1 - (a1 t + a2 t^2 + a3 t^3 + a4 t^4 + a5 t^5) exp(-x^2),  t = 1 / (1 + p x),  x >= 0
"""

from __future__ import annotations

from ..backend.device import array_module, is_cuda_array

try:
    from scipy.special import erf as _scipy_erf
except ImportError:  # SciPy is optional
    _scipy_erf = None

_P = 0.3275911
_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf_approx(x):
    """Abramowitz & Stegun 7.1.26, odd-extended to negative x."""
    xp = array_module(x)
    a = abs(x)
    t = 1 / (1 + _P * a)
    poly = t * (_A[0] + t * (_A[1] + t * (_A[2] + t * (_A[3] + t * _A[4]))))
    return xp.sign(x) * (1 - poly * xp.exp(-a * a))


def erf(x):
    if is_cuda_array(x):
        import cupyx.scipy.special

        return cupyx.scipy.special.erf(x)
    if _scipy_erf is not None:
        return _scipy_erf(x).astype(x.dtype, copy=False)
    return erf_approx(x).astype(x.dtype, copy=False)
