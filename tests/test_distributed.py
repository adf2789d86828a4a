"""minift.distributed in one process: the sampler's rule (against torch), the ring's schedule,
DDP and SyncBatchNorm as a world of one, bad input. The multi-process runs are in
test_distributed_mpi.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minift
import minift.distributed as dist
import minift.functional as F
from minift import nn
from minift.data import ArrayDataset, DataLoader
from minift.distributed.ddp import plan_buckets
from minift.distributed.ring import bytes_sent_per_rank, simulate_ring_all_reduce


def dataset(n):
    return ArrayDataset(np.arange(n, dtype=np.float32).reshape(n, 1), np.zeros(n, dtype=np.int64))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.booleans())
def test_sampler_assigns_indices_as_torch_does(n, replicas, drop_last):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DistributedSampler as TorchSampler

    for rank in range(replicas):
        ours = dist.DistributedSampler(dataset(n), replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = TorchSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)
    del torch


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 5), st.booleans(), st.integers(0, 5))
def test_shuffled_shares_split_the_dataloaders_epoch(n, replicas, drop_last, epoch):
    """Shuffled: the ranks interleave DataLoader's own permutation for (seed, epoch)."""
    order = DataLoader(dataset(n), shuffle=True, seed=3).epoch_order(epoch)
    shares = []
    for rank in range(replicas):
        sampler = dist.DistributedSampler(dataset(n), replicas, rank, shuffle=True, seed=3, drop_last=drop_last)
        sampler.set_epoch(epoch)
        shares.append(list(sampler))
    interleaved = [shares[i % replicas][i // replicas] for i in range(replicas * len(shares[0]))]
    padded = np.resize(order, len(interleaved))  # repeats from the start, as torch pads
    assert interleaved == padded.tolist()


@pytest.mark.parametrize("replicas", [2, 3])
def test_distributed_loader_steps_hold_the_big_batch_examples(replicas):
    """Step b of N rank loaders (batch B) holds the examples of step b of one loader with batch N*B."""
    data, per_rank = dataset(36), 3
    big = DataLoader(data, replicas * per_rank, shuffle=True, seed=1)
    loaders = [dist.DistributedLoader(data, per_rank, shuffle=True, seed=1, num_replicas=replicas, rank=r)
               for r in range(replicas)]
    for _ in range(2):  # two epochs: each iter starts the next one
        expected = [sorted(x.numpy().ravel().tolist()) for x, _ in big]
        steps = [[x.numpy().ravel().tolist() for x, _ in loader] for loader in loaders]
        together = [sorted(sum((s[b] for s in steps), [])) for b in range(len(expected))]
        assert all(len(s) == len(expected) for s in steps) and together == expected


def test_sampler_rejects_a_rank_outside_the_world():
    with pytest.raises(ValueError, match=r"invalid rank 2: expected an int in \[0, 1\]"):
        dist.DistributedSampler(dataset(4), num_replicas=2, rank=2)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.lists(st.integers(0, 6), max_size=3), st.integers(0, 2**31))
def test_simulated_ring_sums_like_one_big_sum(workers, shape, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(-1000, 1000, size=shape) for _ in range(workers)]
    for result in simulate_ring_all_reduce(arrays):
        np.testing.assert_array_equal(result, np.sum(arrays, axis=0))


def test_ring_cost_model():
    assert bytes_sent_per_rank(1000, 1) == 0
    assert bytes_sent_per_rank(1000, 2) == 1000
    assert bytes_sent_per_rank(1000, 4) == 1500


def test_world_of_one_collectives_are_the_identity():
    x = minift.tensor([1.0, 2.0])
    dist.all_reduce(x)
    dist.broadcast(x, src=0)
    dist.barrier()
    assert x.tolist() == [1.0, 2.0] and dist.get_rank() == 0 and dist.get_world_size() == 1
    out = [None]
    dist.all_gather_object(out, {"a": 1})
    assert out == [{"a": 1}]


def test_collectives_name_what_they_expected():
    with pytest.raises(ValueError, match="unknown reduction 'mean': expected one of sum, product, min, max"):
        dist.all_reduce(np.zeros(2), op="mean")
    with pytest.raises(ValueError, match="src=1 is not a rank of this world of 1 processes"):
        dist.broadcast(np.zeros(2), src=1)
    with pytest.raises(TypeError, match="expected a Tensor or an array, got list"):
        dist.all_reduce([1.0])
    with pytest.raises(ValueError, match="backend 'nccl' is not available"):
        dist.init_process_group("nccl")


def small_model(seed=0):
    minift.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def batch():
    rng = np.random.default_rng(0)
    return minift.tensor(rng.normal(size=(6, 3)).astype(np.float32)), minift.tensor([0, 1, 0, 1, 1, 0])


def test_ddp_alone_gives_the_plain_gradients_and_says_so_once(capsys, monkeypatch):
    monkeypatch.setitem(dist.ddp._noted, "world_of_one", False)
    x, y = batch()
    model = small_model()
    wrapped = dist.DistributedDataParallel(model)
    dist.DistributedDataParallel(small_model())
    assert capsys.readouterr().err.count("runs as a world of one process") == 1
    F.cross_entropy(wrapped(x), y).backward()
    wrapped_grads = [p.grad.numpy().copy() for p in model.parameters()]
    plain = small_model()
    F.cross_entropy(plain(x), y).backward()
    for got, p in zip(wrapped_grads, plain.parameters()):
        np.testing.assert_array_equal(got, p.grad.numpy())
    assert list(wrapped.state_dict()) == list(plain.state_dict())  # no "module." prefix


def test_ddp_no_sync_accumulates():
    x, y = batch()
    model = dist.DistributedDataParallel(small_model())
    with model.no_sync():
        F.cross_entropy(model(x), y).backward()
    F.cross_entropy(model(x), y).backward()
    plain = small_model()
    for _ in range(2):
        F.cross_entropy(plain(x), y).backward()
    for a, b in zip(model.parameters(), plain.parameters()):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-6)


def test_ddp_refuses_a_module_that_returns_a_tuple():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2)

        def forward(self, x):
            return self.linear(x), x

    with pytest.raises(TypeError, match="to return one Tensor, got tuple"):
        dist.DistributedDataParallel(Pair())(minift.ones(1, 2))


def test_buckets_keep_dtype_and_size_and_skip_frozen():
    params = [nn.Parameter(np.zeros(n, dtype=d)) for n, d in [(10, np.float32), (10, np.float32), (30, np.float32),
                                                              (5, np.float64)]]
    buckets = plan_buckets(params, cap_bytes=80)
    assert [[p.numel() for p in b] for b in buckets] == [[10, 10], [30], [5]]
    model = small_model()
    model[0].requires_grad_(False)
    wrapped = dist.DistributedDataParallel(model)
    listed = [p for b in wrapped.buckets() for p in b]
    assert not any(p is model[0].weight for p in listed) and listed[0] is model[3].bias  # last layers first


def test_convert_sync_batchnorm_keeps_the_parameters_and_alone_equals_batchnorm():
    model = small_model()
    plain = small_model()
    weight = model[1].weight
    converted = dist.SyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(converted[1], dist.SyncBatchNorm) and converted[1].weight is weight
    x, y = batch()
    F.cross_entropy(converted(x), y).backward()
    F.cross_entropy(plain(x), y).backward()
    for a, b in zip(converted.parameters(), plain.parameters()):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())


def test_learner_alone_is_unchanged():
    from minift.distributed.training import data_parallel

    model, loader = small_model(), DataLoader(dataset(4), 2)
    assert data_parallel(model, loader, None) == (model, loader, None)
