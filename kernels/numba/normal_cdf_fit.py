"""Where float32 GELU's polynomial comes from: a fit of the normal CDF's tail, reproducible.

``transformer.normal_cdf_float32`` computes the lower tail of the normal distribution as

    Phi(-a) = erfc(a / sqrt 2) / 2 = t/2 * exp(-a**2 / 2 + P(t - 1/2)),    t = 1 / (1 + a/2),  a >= 0

(the form of Numerical Recipes' ``erfcc``, whose fit in ``z = a / sqrt 2`` has a relative
error of 1.2e-7). ``t`` maps [0, inf) onto (0, 1], and ``P`` is a degree-10 polynomial
fitted to ``F(t) = ln(erfcx(z)) - ln t`` (``erfcx(z) = exp(z**2) erfc(z)``, SciPy's, exact to
float64), which is smooth on (0, 1]. Only ``|x| <= 13.5`` matters in float32 (beyond it
``Phi(-|x|)`` is below float32's smallest normal number), so the fit covers ``t`` in
[1/7.75, 1]: ``fit_coefficients`` minimises the largest error (Lawson's iteration: least
squares, reweighted by each point's error, tends to the minimax polynomial) on Chebyshev
points, and rounds the coefficients to float32 one at a time from the constant term up,
refitting the others after each rounding, so that the rounding costs almost nothing.
An error in ``P`` is a relative error in ``Phi``: the fit's is 3e-8.

Run ``python -m minift.kernels.numba.normal_cdf_fit`` to print the coefficients (highest
degree first, as ``transformer.NORMAL_CDF_FIT`` holds them). Needs SciPy (installed with
scikit-learn); nothing imports this module at run time.
"""

from __future__ import annotations

import numpy as np

DEGREE = 10
CENTER = 0.5  # P is a polynomial in t - 1/2: smaller coefficients than in t (|c| < 1.4, not 5), less float32 rounding
LARGEST_ABS_X = 13.5
POINTS = 4000
LAWSON_STEPS = 300


def fitted_function(t: np.ndarray) -> np.ndarray:
    """F(t) = ln(erfcx(z)) - ln t with ``z = a / sqrt 2`` and ``a = 2/t - 2`` (so that ``t = 1 / (1 + a/2)``)."""
    from scipy.special import erfcx

    z = (2 / t - 2) / np.sqrt(2)
    return np.log(erfcx(z)) - np.log(t)


def _minimax(columns: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Coefficients c minimising max |columns @ c - target| (approximately: Lawson's iteration)."""
    weights = np.full(len(target), 1 / len(target))
    for _ in range(LAWSON_STEPS):
        root = np.sqrt(weights)
        coefficients = np.linalg.lstsq(columns * root[:, None], target * root, rcond=None)[0]
        weights *= np.abs(columns @ coefficients - target)
        weights /= weights.sum()
    return coefficients


def fit_coefficients() -> tuple[tuple[float, ...], float]:
    """(the float32 coefficients of P, highest degree first; the largest error |P - F| on the points)."""
    t_min = 1 / (1 + LARGEST_ABS_X / 2)
    t = (1 + t_min) / 2 + (1 - t_min) / 2 * np.cos(np.linspace(0, np.pi, POINTS))  # Chebyshev points
    target = fitted_function(t)
    powers = np.vander((t - CENTER).astype(np.float32).astype(np.float64), DEGREE + 1, increasing=True)
    rounded: list[float] = []
    for degree in range(DEGREE + 1):
        rest = target - powers[:, :degree] @ np.array(rounded) if rounded else target
        rounded.append(float(np.float32(_minimax(powers[:, degree:], rest)[0])))
    error = float(np.abs(powers @ np.array(rounded) - target).max())
    return tuple(rounded[::-1]), error


if __name__ == "__main__":
    coefficients, error = fit_coefficients()
    print("largest error of the fit:", f"{error:.2e}")
    print("NORMAL_CDF_FIT =", ", ".join(repr(float(c)) for c in coefficients))
