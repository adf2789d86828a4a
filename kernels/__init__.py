"""minift.kernels: the accelerated core (Numba CPU kernels, CuPy GPU kernels)."""
