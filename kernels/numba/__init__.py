"""The Numba CPU kernels: ``backend.py`` implements the kernel contract (``minift.contract``)
with the loops of ``gemm.py``, ``conv.py`` and ``pool.py``; ``env.py`` sets the JIT cache."""
