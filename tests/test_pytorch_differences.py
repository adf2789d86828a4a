"""Every row of docs/pytorch-differences.md, tested as written there: minift's behaviour,
and PyTorch's other behaviour where torch imports (so the page stays true of both)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import minift
import minift.functional as F
from minift import nn


def torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


def test_data_is_the_raw_array():
    t = minift.tensor([1.0, 2.0])
    assert isinstance(t.data, np.ndarray)
    torch = torch_or_none()
    if torch is not None:
        assert isinstance(torch.tensor([1.0, 2.0]).data, torch.Tensor)


def test_cross_entropy_with_every_target_ignored_is_zero():
    logits, target = np.random.default_rng(0).standard_normal((2, 3)), np.array([-100, -100])
    assert F.cross_entropy(minift.Tensor(logits), minift.Tensor(target)).item() == 0.0
    torch = torch_or_none()
    if torch is not None:
        assert np.isnan(torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(target)).item())


def test_state_dict_is_a_copy():
    lin = nn.Linear(2, 1)
    saved = lin.state_dict()
    with minift.no_grad():
        lin.weight += 1
    assert isinstance(saved["weight"], np.ndarray)
    np.testing.assert_array_equal(saved["weight"] + 1, lin.weight.numpy())


def test_failed_load_changes_nothing():
    lin = nn.Linear(2, 1)
    before = {k: v.copy() for k, v in lin.state_dict().items()}
    bad = {"weight": np.zeros((1, 2), dtype=np.float32), "bias": np.zeros(3, dtype=np.float32)}
    with pytest.raises(Exception, match="bias"):
        lin.load_state_dict(bad)
    for key, value in lin.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_inplace_that_overwrites_a_needed_value_raises_at_backward():
    x = minift.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.pow_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*saved by Pow"):
        y.sum().backward()
    z = x * 2
    z = z**2  # the out-of-place spelling works
    z.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [8.0, 16.0])
    torch = torch_or_none()
    if torch is not None:
        tx = torch.tensor([1.0, 2.0], requires_grad=True)
        ty = tx * 2
        ty.pow_(2)
        ty.sum().backward()
        np.testing.assert_array_equal(tx.grad.numpy(), [8.0, 16.0])


def test_copying_a_constant_into_a_non_leaf_detaches_it():
    x = minift.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.copy_(minift.zeros(2))
    assert not y.requires_grad and y.grad_fn is None
    torch = torch_or_none()
    if torch is not None:
        ty = torch.tensor([1.0, 2.0], requires_grad=True) * 2
        ty.copy_(torch.zeros(2))
        assert ty.requires_grad


def test_accumulation_replaces_the_grad_array():
    x = minift.tensor([1.0, 2.0], requires_grad=True)
    (x * 2).sum().backward()
    grad, first = x.grad, x.grad.data
    (x * 3).sum().backward()
    assert x.grad is grad and x.grad.data is not first
    np.testing.assert_array_equal(first, [2.0, 2.0])
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 5.0])


def test_max_along_a_dim_returns_values_indices():
    result = minift.tensor([[1.0, 5.0], [7.0, 2.0]]).max(dim=1)
    assert type(result).__name__ == "values_indices"
    values, indices = result
    assert values.tolist() == result.values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]


def test_softmax_without_dim_uses_the_last_axis():
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    np.testing.assert_allclose(F.softmax(minift.Tensor(x)).numpy(), F.softmax(minift.Tensor(x), dim=-1).numpy())
    np.testing.assert_allclose(F.log_softmax(minift.Tensor(x)).numpy(), F.log_softmax(minift.Tensor(x), -1).numpy())


def test_dropout_masks_are_the_same_on_every_backend_and_thread_count():
    from minift import backend
    from minift.backend import threads

    numba_ok, reason = backend.available_backends()["numba"]
    if not numba_ok:
        pytest.skip(f"the numba backend is unavailable: {reason}")
    x = minift.ones(3, 50, 7)
    masks = []
    for name, count in [("numpy", 1), ("numba", 1), ("numba", 2)]:
        try:
            threads.set_num_threads(count)
            with backend.use_backend(name):
                minift.manual_seed(123)
                masks.append(F.dropout(x, p=0.3).numpy())
        finally:
            threads.set_num_threads(None)
    assert 0 < (masks[0] == 0).mean() < 1
    for other in masks[1:]:
        np.testing.assert_array_equal(other, masks[0])


def test_every_row_of_the_page_names_a_test_here_and_every_test_has_a_row():
    page = (Path(__file__).parents[1] / "docs" / "pytorch-differences.md").read_text()
    named = re.findall(r"\| `(test_\w+)` \|", page)
    here = {name for name in globals() if name.startswith("test_") and "every_row" not in name}
    assert named and set(named) == here
