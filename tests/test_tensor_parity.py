"""What a PyTorch user types on tensors: one-element conversions, ``dim``/``keepdim``,
dtype promotion, ``max(dim)`` / ``argmax``, ``gather``, ``masked_fill``, ``clone`` and
``register_hook`` — each behaviour checked, and against PyTorch where it imports."""

from __future__ import annotations

import operator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minift
import minift.functional as F
from strategies import DISTINCT, Sides, arrays, shapes


def numpy_of(t):
    return t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)


def raised(call):
    """``(exception type, message)`` of ``call()``, or None when it returns."""
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the type is what is compared
        return type(error), str(error)
    return None


# ------------------------------------------------------------------ one-element conversions

def test_one_element_tensors_convert_to_python_numbers():
    loss, best = minift.tensor(0.25), 0.5
    assert loss < best  # bool() of a one-element comparison
    assert float(minift.tensor([1.5])) == 1.5 and int(minift.tensor([[2.7]])) == 2
    assert operator.index(minift.tensor(3)) == 3 and [10, 20, 30][minift.tensor(1)] == 20
    assert f"{minift.tensor(2.0):.2f}" == "2.00" and f"{minift.tensor(3)}" == "3"


CONVERSIONS = {
    "float of two": lambda lib: float(lib.ones(2)),
    "int of none": lambda lib: int(lib.ones(0)),
    "bool of two": lambda lib: bool(lib.ones(2)),
    "bool of none": lambda lib: bool(lib.ones(0)),
    "index of a float": lambda lib: operator.index(lib.tensor(1.5)),
    "index of two ints": lambda lib: operator.index(lib.tensor([1, 2])),
    "format of one 1-d element": lambda lib: f"{lib.ones(1):.2f}",
    "format of two": lambda lib: f"{lib.ones(2):.2f}",
    "format of a 0-d": lambda lib: f"{lib.tensor(1.25):.1f}",
    "bool of one": lambda lib: bool(lib.tensor([0.0])),
    "int of one float": lambda lib: int(lib.tensor([-2.5])),
}


@pytest.mark.parametrize("name", CONVERSIONS)
def test_conversions_return_or_raise_as_pytorch(name):
    torch = pytest.importorskip("torch")
    call = CONVERSIONS[name]
    theirs, ours = raised(lambda: call(torch)), raised(lambda: call(minift))
    assert ours == theirs
    if theirs is None:
        assert call(minift) == call(torch)


# ------------------------------------------------------------------ dim / keepdim

SPELLED = {
    "sum": lambda x, d, k: x.sum(**d, **k),
    "mean": lambda x, d, k: x.mean(**d, **k),
    "var": lambda x, d, k: x.var(**d, **k),
    "std": lambda x, d, k: x.std(**d, **k),
    "logsumexp": lambda x, d, k: x.logsumexp(**d, **k),
    "amax": lambda x, d, k: x.amax(**d, **k),
    "max": lambda x, d, k: x.max(**d, **k).values,
    "min": lambda x, d, k: x.min(**d, **k).values,
    "argmax": lambda x, d, k: x.argmax(**d, **k),
    "argmin": lambda x, d, k: x.argmin(**d, **k),
    "softmax": lambda x, d, k: F.softmax(x, **d),
    "log_softmax": lambda x, d, k: x.log_softmax(**d),
    "cat": lambda x, d, k: minift.cat([x, x], **d),
    "stack": lambda x, d, k: F.stack([x, x], **d),
    "squeeze": lambda x, d, k: x.unsqueeze(**d).squeeze(**d),
    "split": lambda x, d, k: x.split(1, **d)[0],
}


@pytest.mark.parametrize("name", SPELLED)
@given(shape=shapes(Sides(2, 4), min_dims=2, max_dims=3), data=st.data())
def test_pytorch_and_numpy_spellings_give_the_same_result(name, shape, data):
    x = minift.Tensor(data.draw(arrays(shape, DISTINCT, unique=True)))
    dim, keep = data.draw(st.integers(-len(shape), len(shape) - 1)), data.draw(st.booleans())
    op = SPELLED[name]
    torch_spelling = op(x, {"dim": dim}, {"keepdim": keep})
    np.testing.assert_array_equal(torch_spelling.numpy(), op(x, {"axis": dim}, {"keepdims": keep}).numpy())
    with pytest.raises(TypeError, match="got both dim=.* and axis="):
        op(x, {"dim": dim, "axis": dim}, {})


def test_reductions_match_pytorch_with_dim_and_keepdim():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    for name in ("sum", "mean", "var", "std", "logsumexp", "amax", "amin", "argmax", "argmin"):
        for dim, keepdim in ((1, True), (-1, False), ((0, 2), False)):
            if name.startswith("arg") and isinstance(dim, tuple):
                continue
            ours = getattr(minift.Tensor(x), name)(dim=dim, keepdim=keepdim)
            theirs = getattr(torch.from_numpy(x), name)(dim=dim, keepdim=keepdim)
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, err_msg=name)
    assert minift.Tensor(x).argmax().item() == torch.from_numpy(x).argmax().item()


# ------------------------------------------------------------------ dtype promotion

DTYPES = ["bool", "uint8", "int8", "int32", "int64", "float16", "float32", "float64"]
SCALARS = [True, 3, 2.5]


@pytest.mark.parametrize("op", [operator.add, operator.mul, operator.truediv, operator.sub], ids=lambda o: o.__name__)
@given(left=st.sampled_from(DTYPES), right=st.sampled_from(DTYPES), left_0d=st.booleans(), right_0d=st.booleans())
def test_tensor_tensor_promotion_matches_pytorch(op, left, right, left_0d, right_0d):
    torch = pytest.importorskip("torch")
    results = []
    for lib in (torch, minift):
        a = lib.ones(() if left_0d else (2,), dtype=getattr(lib, left) if lib is torch else left)
        b = lib.ones(() if right_0d else (2,), dtype=getattr(lib, right) if lib is torch else right)
        results.append(raised(lambda: op(a, b)) or str(op(a, b).dtype).replace("torch.", ""))
    if isinstance(results[0], str):  # PyTorch refuses bool - bool, which minift allows
        assert results[1] == results[0]


@pytest.mark.parametrize("op", [operator.add, operator.mul, operator.truediv, operator.pow], ids=lambda o: o.__name__)
@pytest.mark.parametrize("scalar", SCALARS, ids=repr)
@pytest.mark.parametrize("dtype", DTYPES)
def test_tensor_scalar_promotion_matches_pytorch(op, scalar, dtype):
    """Both orders (``t * 2.5`` and ``2.5 * t``); where PyTorch refuses, nothing to compare."""
    torch = pytest.importorskip("torch")
    for ordered in (op, lambda t, s: op(s, t)):
        theirs = raised(lambda: ordered(torch.ones(2, dtype=getattr(torch, dtype)), scalar))
        if theirs is None:
            expected = str(ordered(torch.ones(2, dtype=getattr(torch, dtype)), scalar).dtype).replace("torch.", "")
            assert str(ordered(minift.ones(2, dtype=dtype), scalar).dtype) == expected


def test_integer_tensors_promote_to_the_default_float():
    assert minift.tensor([1, 2]).dtype == np.int64
    assert (minift.tensor([1, 2]) / 2).dtype == np.float32
    assert (minift.tensor([1, 2]) * 2.5).dtype == np.float32
    assert (minift.tensor([1, 2]) + 1).dtype == np.int64
    assert (minift.ones(2) + minift.tensor(1.0, dtype=minift.float64)).dtype == np.float32


# ------------------------------------------------------------------ max(dim), argmax, gather, masked_fill, clone

@given(shape=shapes(Sides(1, 4), min_dims=1, max_dims=3), data=st.data())
def test_max_and_min_along_a_dim_match_pytorch_values_indices_and_gradient(shape, data):
    torch = pytest.importorskip("torch")
    x = data.draw(arrays(shape, st.sampled_from([-1.0, 0.0, 2.0])))  # ties: the gradient goes to one index
    dim, keepdim = data.draw(st.integers(-len(shape), len(shape) - 1)), data.draw(st.booleans())
    for name in ("max", "min"):
        ours_x = minift.tensor(x, dtype=minift.float64, requires_grad=True)
        theirs_x = torch.tensor(x.copy(), requires_grad=True)
        ours, theirs = getattr(ours_x, name)(dim, keepdim), getattr(theirs_x, name)(dim, keepdim)
        np.testing.assert_array_equal(ours.values.numpy(), numpy_of(theirs.values))
        assert ours.indices.shape == tuple(theirs.indices.shape) and ours.indices.dtype == np.int64
        np.testing.assert_array_equal(np.take_along_axis(x, ours.indices.numpy().reshape(
            theirs.indices.shape if keepdim else np.expand_dims(theirs.indices.numpy(), dim).shape), dim),
            np.take_along_axis(x, theirs.indices.numpy().reshape(
                theirs.indices.shape if keepdim else np.expand_dims(theirs.indices.numpy(), dim).shape), dim))
        ours.values.sum().backward()
        theirs.values.sum().backward()
        assert ours_x.grad.numpy().sum(axis=dim).tolist() == theirs_x.grad.numpy().sum(axis=dim).tolist()


def test_max_without_dim_is_a_0d_tensor_and_shares_the_gradient_of_ties():
    torch = pytest.importorskip("torch")
    for lib in (torch, minift):
        x = lib.tensor([1.0, 3.0, 3.0], requires_grad=True)
        top = x.max()
        assert tuple(top.shape) == ()
        top.backward()
        np.testing.assert_array_equal(numpy_of(x.grad), [0.0, 0.5, 0.5])


@given(data=st.data())
def test_gather_and_masked_fill_match_pytorch(data):
    torch = pytest.importorskip("torch")
    shape = data.draw(shapes(Sides(1, 4), min_dims=1, max_dims=3))
    x = data.draw(arrays(shape))
    dim = data.draw(st.integers(0, len(shape) - 1))
    index = data.draw(hnp.arrays(np.int64, tuple(data.draw(st.integers(1, n)) for n in shape),
                                 elements=st.integers(0, shape[dim] - 1)))
    mask = data.draw(hnp.arrays(np.bool_, shape))
    for lib in (torch, minift):
        t = lib.tensor(x.copy(), requires_grad=True)
        picked = t.gather(dim, lib.tensor(index))
        filled = t.masked_fill(lib.tensor(mask), -7.0)
        (picked.sum() * 2 + (filled * filled).sum()).backward()
        if lib is torch:
            expected = numpy_of(picked), numpy_of(filled), numpy_of(t.grad)
        else:
            for ours, theirs in zip((picked.numpy(), filled.numpy(), t.grad.numpy()), expected):
                np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_clone_copies_memory_and_passes_the_gradient_as_pytorch():
    torch = pytest.importorskip("torch")
    for lib in (torch, minift):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x.clone()
        assert not np.shares_memory(numpy_of(x), numpy_of(y)) and y.grad_fn is not None
        y.add_(1)  # a clone may change in place: x is untouched
        (y * x).sum().backward()
        np.testing.assert_array_equal(numpy_of(x.grad), [2 * 1.0 + 1, 2 * 2.0 + 1])  # d/dx (x + 1) x
        np.testing.assert_array_equal(numpy_of(x), [1.0, 2.0])


def test_masked_fill_refuses_a_non_boolean_mask_and_keeps_the_dtype():
    with pytest.raises(RuntimeError, match="only supports boolean masks, but got mask with dtype float32"):
        minift.ones(2).masked_fill(minift.ones(2), 0.0)
    assert minift.tensor([1, 2]).masked_fill(minift.tensor([True, False]), 5.5).tolist() == [5, 2]


# ------------------------------------------------------------------ register_hook and grad_fn

def test_register_hook_sees_and_may_replace_the_gradient_as_in_pytorch():
    torch = pytest.importorskip("torch")
    for lib in (torch, minift):
        seen = []
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x * 3
        y.register_hook(lambda g: seen.append(numpy_of(g).copy()))
        handle = y.register_hook(lambda g: g * 10)
        x.register_hook(lambda g: g + 1)
        y.sum().backward()
        assert [s.tolist() for s in seen] == [[1.0, 1.0]]
        np.testing.assert_array_equal(numpy_of(x.grad), [31.0, 31.0])
        handle.remove()
        x.grad = None
        (x * 3).sum().backward()
        np.testing.assert_array_equal(numpy_of(x.grad), [4.0, 4.0])
        with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that doesn't require gradient"):
            lib.ones(2).register_hook(print)


def test_grad_fn_names_the_op_that_made_the_tensor():
    x = minift.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).sum()
    assert x.grad_fn is None and y.grad_fn.name() == "Sum" and repr(y.grad_fn) == "<Sum>"
    assert "grad_fn=<Sum>" in repr(y)
    assert y.grad_fn.inputs[0].grad_fn.name() == "Mul"


def test_accuracy_idioms_and_mask_logic_match_pytorch():
    """``(pred.argmax(1) == y).type(torch.float).sum().item()`` and ``~mask & other``."""
    torch = pytest.importorskip("torch")
    logits = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2])
    correct = []
    for lib in (torch, minift):
        pred, y = lib.tensor(logits), lib.tensor(labels)
        correct.append((pred.argmax(1) == y).type(lib.float32).sum().item())
        mask = pred > 0
        assert ((~mask & (pred < 1)) | (pred > 2)).tolist() == ((~(logits > 0) & (logits < 1)) | (logits > 2)).tolist()
    assert correct[0] == correct[1]
