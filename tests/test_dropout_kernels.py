"""The contract's ``dropout``: SplitMix64 against its published outputs, the Numba kernel against
the NumPy reference bit for bit (any layout, any thread count), and the mask's statistics."""

import importlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minift import contract
from minift.backend import threads

from fused_kernels import DTYPES, assert_bad_call_fails_alike, assert_contract_dispatches, values

reference = importlib.import_module("minift.reference.dropout")  # minift.reference.dropout is the function
fused = pytest.importorskip("minift.kernels.numba.dropout")

KEYS = st.integers(0, 2**64 - 1)
PROBABILITIES = st.floats(0, 1, exclude_max=True)


def test_splitmix64_gives_the_published_outputs():
    """Rosetta Code's "Pseudo-random numbers/Splitmix64": the first five outputs for seed
    1234567; and the first output for seed 0, which seeds the xoshiro generators' tests."""
    outputs = reference.splitmix64(np.uint64(1234567), np.arange(5, dtype=np.uint64))
    assert outputs.tolist() == [6457827717110365317, 3203168211198807973, 9817491932198370423,
                                4593380528125082431, 16408922859458223821]
    assert reference.splitmix64(np.uint64(0), np.arange(1, dtype=np.uint64)).tolist() == [0xE220A8397B1DCDAF]


@settings(deadline=None, max_examples=30)
@given(key=KEYS, index=st.integers(0, 2**40))
def test_the_compiled_hash_is_the_reference_hash(key, index):
    expected = reference.splitmix64(np.uint64(key), np.array([index], dtype=np.uint64))[0]
    assert fused.splitmix64(np.uint64(key), np.uint64(index)) == expected


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("thread_count", [1, 2])
@settings(deadline=None, max_examples=30)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=9),
       p=PROBABILITIES, key=KEYS, transposed=st.booleans())
def test_the_kernel_makes_the_reference_mask_bit_for_bit(data, shape, p, key, transposed, dtype, thread_count):
    x = data.draw(values(dtype, shape))
    x = x.T if transposed else x  # a strided view: element i is still counted in C order of x's shape
    try:
        threads.set_num_threads(thread_count)
        got = fused.dropout(x, p, key)
    finally:
        threads.set_num_threads(None)
    expected = reference.dropout(x, p, key)
    assert got.dtype == expected.dtype == dtype and got.shape == x.shape and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("implementation", [reference.dropout, fused.dropout], ids=["reference", "numba"])
@settings(deadline=None, max_examples=15)
@given(p=st.floats(0.02, 0.98), key=KEYS, other_key=KEYS)
def test_each_element_is_kept_with_probability_one_minus_p_independently_of_the_key(implementation, p, key, other_key):
    """Over n elements the kept count is Binomial(n, 1 - p); two keys' masks overlap like
    independent draws, Binomial(n, (1 - p)**2). Both within 6 standard deviations (a false
    alarm has probability about 2e-9)."""
    n = 50_000
    ones = np.ones(n)
    kept = implementation(ones, p, key) != 0
    both = kept & (implementation(ones, p, other_key) != 0) if other_key != key else None
    assert abs(kept.sum() - n * (1 - p)) < 6 * math.sqrt(n * p * (1 - p))
    if both is not None:
        q = (1 - p) ** 2
        assert abs(both.sum() - n * q) < 6 * math.sqrt(n * q * (1 - q))


@settings(deadline=None, max_examples=20)
@given(p=PROBABILITIES, key=KEYS)
def test_kept_elements_are_scaled_by_one_over_one_minus_p_and_the_rest_are_zero(p, key):
    x = np.linspace(1, 2, 257, dtype=np.float32)  # no zeros of its own
    y = fused.dropout(x, p, key)
    kept = y != 0
    np.testing.assert_array_equal(y[kept], x[kept] * np.float32(1 / (1 - p)))
    assert p > 0 or kept.all()


def test_the_threshold_is_the_exact_ceiling_of_p_times_two_to_the_53():
    assert reference.keep_threshold(0.0) == 0  # p = 0 keeps every element
    assert reference.keep_threshold(0.5) == 2**52
    assert reference.keep_threshold(0.1) == math.ceil(0.1 * 2**53) == 900719925474100  # 0.1 * 2**53 is not whole
    assert reference.keep_threshold(1 - 2**-53) == 2**53 - 1


BAD_CALLS = [
    ("dropout", lambda x: contract.dropout(x, 1.0, 0), ValueError, "p must be a number in [0, 1), got 1.0"),
    ("dropout", lambda x: contract.dropout(x, -0.1, 0), ValueError, "got -0.1"),
    ("dropout", lambda x: contract.dropout(x, True, 0), ValueError, "got True"),
    ("dropout", lambda x: contract.dropout(x, 0.5, -1), ValueError, "key must be an int in [0, 2**64), got -1"),
    ("dropout", lambda x: contract.dropout(x, 0.5, 2**64), ValueError, "got 18446744073709551616"),
    ("dropout", lambda x: contract.dropout(x, 0.5, 1.5), ValueError, "got 1.5"),
    ("dropout", lambda x: contract.dropout(x.astype(np.int64), 0.5, 1), TypeError, "x must be float32 or float64"),
]


@pytest.mark.parametrize("kernel, call, error, fragment", BAD_CALLS)
def test_bad_calls_fail_alike_on_both_backends_and_change_nothing(kernel, call, error, fragment):
    assert_bad_call_fails_alike(kernel, call, np.arange(8.0).reshape(2, 4), error, fragment)


@pytest.mark.parametrize("name", ["numpy", "numba"])
def test_the_contract_dispatches_dropout(name):
    assert_contract_dispatches(("dropout",), name, reference, fused)
