"""Run under ``mpiexec -n K``: one scenario of minift.distributed, checked on every rank.

    mpiexec -n 2 python tests/mpi/worker_script.py equivalence

Each scenario asserts on every rank; rank 0 prints ``OK <scenario>`` at the end. Several
scenarios may be given, comma-separated; ``argv[2]`` is a directory for those that write.
``tests/test_distributed_mpi.py`` launches them (and the fault scenarios, which must
end the job with an error instead).

Equivalence: N ranks with batch B against one process with batch N*B over the same
examples, in float64. Rank 0 also trains the one-process reference itself. The two
differ only in the order of the sums (a mean of N means of B, against one mean of N*B;
MPI's reduction order), so the weights agree to round-off: we ask ``rtol=1e-10,
atol=1e-12`` after a dozen steps, about a million times float64's epsilon -- room for the
round-off to grow through the steps, far too little for any real difference (one
example left out, or a gradient averaged twice, moves the weights by more than 1e-4).
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np

import minift
import minift.distributed as dist
from minift import nn, optim
import minift.functional as F
from minift.data import ArrayDataset, DataLoader
from minift.finetune import freeze_to, layer_groups, param_groups

RTOL, ATOL = 1e-10, 1e-12
N_EXAMPLES, PER_RANK_BATCH = 48, 4  # 48 examples: whole steps for 1, 2, 3 and 4 ranks


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_EXAMPLES, 6))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    return ArrayDataset(x, y)


class Float64(nn.Module):
    """The loaders make float32 inputs; the models here compute in float64."""

    def forward(self, x):
        return x.double()


def make_model(batchnorm=False, seed=0):
    minift.manual_seed(seed + dist.get_rank())  # different on purpose: DDP must broadcast rank 0's
    layers = [Float64(), nn.Linear(6, 8), *( [nn.BatchNorm1d(8)] if batchnorm else []), nn.Tanh(),
              nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3)]
    return nn.Sequential(*layers).double()


def train(model, loader, make_optimizer, epochs=2, clip=None, schedule=None):
    """A plain loop: forward, backward, (clip), step; returns the final state."""
    optimizer = make_optimizer(model)
    scheduler = None if schedule is None else schedule(optimizer, epochs * len(loader))
    for _ in range(epochs):
        for batch in loader:
            x, y = batch
            F.cross_entropy(model(x), y).backward()
            if clip is not None:
                optim.clip_grad_norm_(model.parameters(), clip)  # on the averaged gradient
            optimizer.step()
            optimizer.zero_grad()
            if scheduler is not None:
                scheduler.step()
    return model.state_dict()


def assert_states_close(got, expected, what):
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=RTOL, atol=ATOL, err_msg=f"{what}: {name}")


def same_on_every_rank(state, what):
    for name, value in state.items():
        reference = value.copy()
        dist.broadcast(reference, src=0)
        np.testing.assert_array_equal(value, reference, err_msg=f"{what}: {name} differs between ranks")


CONFIGS = {
    "sgd_momentum": dict(make_optimizer=lambda m: optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)),
    "adamw_schedule_clip": dict(
        make_optimizer=lambda m: optim.AdamW(m.parameters(), lr=1e-2, weight_decay=1e-2),
        schedule=lambda opt, total: optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=total),
        clip=0.5),
}


def discriminative_frozen(model):
    """Three layer groups, lrs 1e-3 / 1e-2 / 1e-1, the first group frozen."""
    groups = layer_groups(model)
    freeze_to(model, 1, groups)
    return optim.SGD(param_groups(model, [1e-3, 1e-2, 1e-1], groups), momentum=0.9)


CONFIGS["discriminative_frozen"] = dict(make_optimizer=discriminative_frozen)


def scenario_equivalence():
    world = dist.get_world_size()
    data = make_data()
    for name, config in CONFIGS.items():
        model = dist.DistributedDataParallel(make_model())
        frozen_before = model.module[1].weight.numpy().copy()
        loader = dist.DistributedLoader(data, batch_size=PER_RANK_BATCH, shuffle=True, seed=7)
        got = train(model, loader, **config)
        same_on_every_rank(got, name)
        if name == "discriminative_frozen":
            np.testing.assert_array_equal(got["1.weight"], frozen_before)
        if dist.get_rank() == 0:
            big = DataLoader(data, batch_size=world * PER_RANK_BATCH, shuffle=True, seed=7)
            minift.manual_seed(0)
            expected = train(make_model(), big, **config)
            assert_states_close(got, expected, name)


def scenario_sync_batchnorm():
    """SyncBatchNorm: N ranks equal one big batch, BatchNorm's statistics included."""
    world = dist.get_world_size()
    data = make_data()
    model = dist.SyncBatchNorm.convert_sync_batchnorm(make_model(batchnorm=True))
    got = train(dist.DistributedDataParallel(model), dist.DistributedLoader(data, PER_RANK_BATCH, shuffle=True, seed=3),
                CONFIGS["sgd_momentum"]["make_optimizer"])
    if dist.get_rank() == 0:
        minift.manual_seed(0)
        big = DataLoader(data, batch_size=world * PER_RANK_BATCH, shuffle=True, seed=3)
        expected = train(make_model(batchnorm=True), big, CONFIGS["sgd_momentum"]["make_optimizer"])
        assert_states_close(got, expected, "SyncBatchNorm")


def scenario_no_sync():
    """Two micro-batches, the first under no_sync: the same as one step on both together."""
    data = make_data()
    model = dist.DistributedDataParallel(make_model())
    loader = dist.DistributedLoader(data, PER_RANK_BATCH, shuffle=False)
    batches = [b for b, _ in zip(loader, range(2))]
    with model.no_sync():
        F.cross_entropy(model(batches[0][0]), batches[0][1]).backward()
    local = [p.grad.numpy().copy() for p in model.parameters()]
    differs = np.zeros(1)
    for g in local:  # not averaged yet: some rank's gradient differs from rank 0's
        reference = g.copy()
        dist.broadcast(reference, src=0)
        differs[0] = max(differs[0], float(not np.array_equal(g, reference)))
    dist.all_reduce(differs, op="max")
    assert differs[0] == (dist.get_world_size() > 1)
    F.cross_entropy(model(batches[1][0]), batches[1][1]).backward()
    accumulated = [p.grad.numpy().copy() for p in model.parameters()]
    # the reference: each rank's summed micro-batch gradients, averaged once
    model.module.zero_grad()
    for x, y in batches:
        F.cross_entropy(model.module(x), y).backward()
    for p, g in zip(model.parameters(), accumulated):
        mean = p.grad.numpy().copy()
        dist.all_reduce(mean)
        np.testing.assert_allclose(g, mean / dist.get_world_size(), rtol=RTOL, atol=ATOL)


def scenario_buckets():
    """Bucket plan and frozen parameters: one all-reduce per bucket; frozen grads stay None."""
    model = dist.DistributedDataParallel(make_model(), bucket_cap_mb=8 * 8 * 8 / 2**20)  # 512 bytes
    model.module[1].requires_grad_(False)
    buckets = model.buckets()
    assert all(sum(p.data.nbytes for p in b) <= 512 or len(b) == 1 for b in buckets), buckets
    assert not any(p is model.module[1].weight for b in buckets for p in b)
    x, y = (next(iter(dist.DistributedLoader(make_data(), PER_RANK_BATCH))))
    F.cross_entropy(model(x), y).backward()
    assert model.module[1].weight.grad is None
    for p in model.parameters():
        if p.grad is not None:
            same_on_every_rank({"grad": p.grad.numpy()}, "averaged gradient")


def learner_for(model, train_loader):
    """The Learner of the Learner scenario (the test builds the one-process reference with it)."""
    from minift.train import Learner

    return Learner(model, train_loader, DataLoader(make_data(1), 8), opt="sgd", progress="lines", metrics=())


def scenario_learner():
    """The Learner unchanged: DDP and sharded loaders by itself, metrics over all ranks,
    rank 0 alone prints and writes. Rank 0 saves the final weights and metrics into
    ``argv[2]/final.npz`` for the test to compare with one process and batch N*B."""
    from minift.train import Checkpointing

    directory = sys.argv[2]
    learner = learner_for(make_model(), DataLoader(make_data(), PER_RANK_BATCH, shuffle=True, seed=5))
    learner.callbacks.append(Checkpointing(directory))
    learner.fit_one_cycle(2, 0.05)
    got = learner.model.state_dict()
    same_on_every_rank(got, "Learner")
    metrics = {key: learner.history.epochs[-1][key] for key in ("train_loss", "valid_loss")}
    every = [None] * dist.get_world_size()
    dist.all_gather_object(every, metrics)
    assert all(m == metrics for m in every), every
    if dist.get_rank() == 0:
        np.savez(os.path.join(directory, "final.npz"), **got, **metrics)


class KillAt:
    """Rank 1 kills itself (SIGKILL: no cleanup, no excepthook) after optimizer step ``iteration``."""

    def __new__(cls, iteration):
        from minift.train import Callback

        class KillAtStep(Callback):
            order = 95  # after Checkpointing

            def after_batch(self, learner):
                if learner.iteration == iteration and dist.get_rank() == 1:
                    os.kill(os.getpid(), signal.SIGKILL)

        return KillAtStep()


def scenario_resume():
    """``argv[3]`` = "kill": checkpoints every 3 steps, rank 1 is killed after step 7.
    "resume": the same fit from the checkpoint, to the end; rank 0 saves final.npz."""
    from minift.train import Checkpointing

    directory, phase = sys.argv[2], sys.argv[3]
    learner = learner_for(make_model(), DataLoader(make_data(), PER_RANK_BATCH, shuffle=True, seed=5))
    checkpoints = Checkpointing(directory, every_n_steps=3)
    learner.callbacks += [checkpoints, KillAt(7 if phase == "kill" else -1)]
    learner.fit_one_cycle(2, 0.05, resume_from=None if phase == "kill" else checkpoints.path)
    same_on_every_rank(learner.model.state_dict(), "resumed Learner")
    if dist.get_rank() == 0:
        np.savez(os.path.join(directory, "final.npz"), **learner.model.state_dict(),
                 **{key: learner.history.epochs[-1][key] for key in ("train_loss", "valid_loss")})


def scenario_ring():
    """The ring all-reduce equals MPI.Allreduce: hypothesis draws shapes, dtypes and a world
    of 1..size ranks (a sub-communicator), the same draws on every rank (derandomised)."""
    from hypothesis import given, settings, strategies as st
    from mpi4py import MPI

    from minift.distributed.ring import ring_all_reduce

    world = MPI.COMM_WORLD

    @settings(derandomize=True, max_examples=40, deadline=None, database=None)
    @given(st.integers(1, world.Get_size()), st.lists(st.integers(0, 7), min_size=0, max_size=3),
           st.sampled_from([np.float64, np.float32, np.int64]), st.integers(0, 2**31))
    def ring_equals_allreduce(size, shape, dtype, seed):
        comm = world.Split(0 if world.Get_rank() < size else MPI.UNDEFINED, world.Get_rank())
        problem = ""
        if comm != MPI.COMM_NULL:
            rng = np.random.default_rng([seed, comm.Get_rank()])
            array = np.array(rng.normal(size=shape) * 100).astype(dtype)
            expected = np.empty_like(array)
            comm.Allreduce(array, expected)
            try:
                ring_all_reduce(comm, array)
            except Exception as error:  # every rank must reach the allgather below, or the others wait forever
                problem = f"rank {world.Get_rank()}: ring_all_reduce raised {type(error).__name__}: {error}"
            comm.Free()
            tolerance = {np.int64: 0, np.float32: 1e-5, np.float64: 1e-12}[dtype]  # the same sums, another order
            if not problem and not np.allclose(array, expected, rtol=tolerance, atol=tolerance * 1e3):
                problem = f"rank {world.Get_rank()}: ring {array} != Allreduce {expected}"
        problems = world.allgather(problem)  # every rank fails together, so hypothesis stays in step
        assert not any(problems), problems

    ring_equals_allreduce()


def scenario_raise_on_rank_1():
    """Rank 1 raises; every rank must end (the others are waiting in a collective)."""
    dist.init_process_group()
    if dist.get_rank() == 1:
        raise ValueError("rank 1 could not read its shard")
    dist.barrier()
    dist.barrier()


def scenario_mismatched_model():
    """Rank 1 builds a head with one class more: the wrapper must say so, on every rank."""
    minift.manual_seed(0)
    classes = 3 + (dist.get_rank() == 1)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, classes))
    dist.DistributedDataParallel(model)


if __name__ == "__main__":
    dist.init_process_group()
    for scenario in sys.argv[1].split(","):
        globals()[f"scenario_{scenario}"]()
        if dist.get_rank() == 0:
            print(f"OK {scenario} on {dist.get_world_size()} processes", flush=True)
