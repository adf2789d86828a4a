"""What the fused-kernel tests (``test_transformer_kernels.py``, ``test_batch_norm_kernels.py``)
share: the dtypes and tolerances, drawn values, and the two checks every group of contract
entries gets -- a bad call fails with the same message on both backends and changes nothing,
and the contract dispatches each entry to the backend's own module.
"""

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minift import backend

DTYPES = (np.float32, np.float64)
TOLERANCE = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def values(dtype, shape, scale=4.0, low=None):
    """Arrays of ``dtype`` drawn from [low, scale] (low = -scale by default)."""
    low = -scale if low is None else low
    return hnp.arrays(dtype, shape, elements=st.floats(low, scale, width=np.dtype(dtype).itemsize * 8))


def assert_bad_call_fails_alike(kernel, call, x, error, fragment):
    """``call(copy of x)`` raises ``error`` naming ``kernel`` and ``fragment`` on the NumPy and the
    Numba backends, with one message, and leaves the copy as it was."""
    messages = []
    for name in ("numpy", "numba"):
        copy = x.copy()
        with backend.use_backend(name), pytest.raises(error) as caught:
            call(copy)
        assert np.array_equal(copy, x)
        assert kernel in str(caught.value) and fragment in str(caught.value)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]


def assert_contract_dispatches(kernels, name, reference, fused):
    """Under backend ``name`` the contract runs each of ``kernels`` from ``reference`` (numpy) or ``fused``."""
    module = reference if name == "numpy" else fused
    with backend.use_backend(name):
        for kernel in kernels:
            assert backend.implementation(kernel, np.zeros(1)) is getattr(module, kernel)
