# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Layers and training
#
# **Reproduces in miniature:** S. Ioffe and C. Szegedy, "Batch Normalization: Accelerating
# Deep Network Training by Reducing Internal Covariate Shift", *Proceedings of the 32nd
# International Conference on Machine Learning* (ICML), PMLR 37:448–456 (2015). Their
# claim: with BatchNorm a network trains at learning rates far higher than the same
# network without it can bear, and trains faster. We train one small CNN with and without
# BatchNorm at three learning rates on real images (Fashion-MNIST: H. Xiao, K. Rasul and
# R. Vollgraf, arXiv:1708.07747, 2017).
#
# **What you will learn**
#
# 1. the layers a CNN is made of — `nn.Linear`, `nn.Conv2d`, `nn.BatchNorm2d` — their
#    shapes, and what each computes, checked against NumPy;
# 2. what an optimizer step is (`SGD` with momentum, `AdamW`), checked by hand;
# 3. learning-rate schedules, stepped once per batch: one-cycle (L. N. Smith and
#    N. Topin, "Super-Convergence", 2019) and its relatives, plotted;
# 4. training a CNN with `minift.train.Learner` and reading its training curve;
# 5. what BatchNorm does for the learning rate you can use.
#
# **Runtime:** about 43 s on an idle 2-core CPU (16 s with `MINIFT_FAST=1`, which
# trains on fewer images: the same conclusions, lower accuracies); `tutorials/README.md`
# lists the measurements. The assert cells at the end check the claims.

# %%
import minift  # first: it sets up the CPU thread pools before NumPy loads (minift/threads.py)

from collections import OrderedDict

import matplotlib.pyplot as plt
import numpy as np

from minift import nn, optim
from minift.apps import course
from minift.data import DataLoader, Subset, load_dataset
from minift.optim import lr_scheduler
from minift.train import Learner
from minift.train.plots import plot_loss, plot_lr

minift.manual_seed(0)
print("backend:", minift.backend.get_backend(), "| fast mode:", course.fast_mode())

# %% [markdown]
# ## 1. `nn.Linear`: `y = x Wᵀ + b`
#
# A layer is a `Module` that owns `Parameter`s (tensors with `requires_grad=True`). As in
# PyTorch, `Linear(in, out)` stores `weight` as `(out, in)`: row `j` holds the weights of
# output `j`. A batch `x (N, in)` becomes `y (N, out)`.

# %%
linear = nn.Linear(3, 2)
x = minift.randn(4, 3)
y = linear(x)
print("weight", linear.weight.shape, "bias", linear.bias.shape, "->", "y", y.shape)
print([name for name, _ in linear.named_parameters()])
linear_by_hand = x.data @ linear.weight.data.T + linear.bias.data

# %% [markdown]
# ## 2. `nn.Conv2d`: the same weights at every position
#
# A convolution slides `out_channels` small filters `(in_channels, 3, 3)` over the image
# and takes a dot product at every position. Its input and output are `(N, C, H, W)`; with
# `padding=1` a 3×3 filter keeps `H` and `W` (`H_out = H + 2·padding − 3 + 1`). One output
# pixel, worked out by hand:

# %%
conv = nn.Conv2d(1, 4, kernel_size=3, padding=1)
images = minift.rand(2, 1, 28, 28)
features = conv(images)
print("input", images.shape, "-> output", features.shape, "| weight", conv.weight.shape)

padded = np.pad(images.data, ((0, 0), (0, 0), (1, 1), (1, 1)))
n, o, i, j = 1, 2, 10, 17                       # image, filter, row, column
window = padded[n, :, i:i + 3, j:j + 3]          # the 3x3 patch that output (i, j) sees
pixel_by_hand = (window * conv.weight.data[o]).sum() + conv.bias.data[o]
print(f"output[{n}, {o}, {i}, {j}] = {features.data[n, o, i, j]:.6f}, by hand {pixel_by_hand:.6f}")

# %% [markdown]
# A `Linear` layer from 784 pixels to 4 outputs would need 3,136 weights; the convolution
# has `4 · 1 · 3 · 3 = 36` and is, by construction, the same detector at every position.
#
# ## 3. `nn.BatchNorm2d`: normalise each channel over the batch
#
# In training mode BatchNorm computes, for each channel `c`, the mean `μ_c` and variance
# `σ²_c` over the batch and the positions (axes N, H, W), and outputs
# `γ_c (x − μ_c) / √(σ²_c + ε) + β_c`. It also keeps running averages of the statistics,
# `running ← (1 − 0.1)·running + 0.1·batch`, which replace the batch statistics in `eval()`
# mode: a trained model's output must not depend on which other images share its batch.

# %%
bn = nn.BatchNorm2d(4)
scaled = features * 3.0 + 5.0                   # channels far from mean 0, std 1
normalised = bn(scaled)                           # training mode: batch statistics
per_channel_mean = normalised.data.mean(axis=(0, 2, 3))
per_channel_std = normalised.data.std(axis=(0, 2, 3))
print("after BatchNorm, per channel: mean", per_channel_mean.round(4), "std", per_channel_std.round(4))
print("running_mean after one batch:", bn.running_mean.data.round(3),
      "= 0.1 × batch mean", (0.1 * scaled.data.mean(axis=(0, 2, 3))).round(3))
bn.eval()
in_eval_mode = bn(scaled)
print("in eval() mode the output is not normalised yet (running stats have seen one batch):",
      in_eval_mode.data.mean().round(2))
bn.train()

# %% [markdown]
# ## 4. Optimizers: what `step()` does
#
# An optimizer holds the parameters (in *param groups*, each with its own `lr`) and, at
# `step()`, moves each parameter using its `.grad`. SGD with momentum `μ` keeps a velocity
# `b ← μ·b + g` and moves `θ ← θ − lr·b` (PyTorch's form; tutorial 01 wrote the same rule
# by hand). Two steps, by hand and by `optim.SGD`:

# %%
theta = nn.Parameter(minift.tensor([1.0, -2.0, 3.0]))
sgd = optim.SGD([theta], lr=0.1, momentum=0.9)
by_hand, velocity = theta.data.copy(), np.zeros(3, dtype=np.float32)
for step in range(2):
    loss = (theta ** 2).sum()                      # gradient 2θ
    sgd.zero_grad()
    loss.backward()
    sgd.step()
    velocity = 0.9 * velocity + 2 * by_hand
    by_hand = by_hand - 0.1 * velocity
print("optim.SGD:", theta.data, "| by hand:", by_hand)

# %% [markdown]
# Adam divides each parameter's step by a running estimate of its gradient's size, so on
# the first step every parameter moves by almost exactly `lr`, whatever the scale of its
# gradient — here gradients of sizes 0.001 and 1000:

# %%
weights = nn.Parameter(minift.tensor([1.0, 1.0]))
adamw = optim.AdamW([weights], lr=0.01, weight_decay=0.0)
(weights * minift.tensor([0.001, 1000.0])).sum().backward()
before = weights.data.copy()
adamw.step()
first_adam_step = before - weights.data
print("first AdamW step:", first_adam_step)

# %% [markdown]
# ## 5. Learning-rate schedules
#
# A schedule sets every param group's `lr` before each step. The one-cycle policy warms up
# from `max_lr/25` to `max_lr` over the first quarter of training, then anneals to almost 0;
# the warm-up lets a high peak rate be reached without the first steps blowing up, and the
# long anneal settles the weights. Here it is next to its relatives, over 200 steps:

# %%
def lr_curve(make_scheduler, steps=200):
    """The lr at each of ``steps`` optimizer steps under a scheduler (lr 1.0 as the base)."""
    optimizer = optim.SGD([nn.Parameter(minift.zeros(1))], lr=1.0, momentum=0.9)
    scheduler = make_scheduler(optimizer, steps)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(rates)


schedules = {
    "one-cycle (Smith & Topin)": lambda opt, T: lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=T, pct_start=0.25),
    "slanted triangular (ULMFiT)": lambda opt, T: lr_scheduler.SlantedTriangularLR(opt, total_steps=T),
    "cosine with warm-up": lambda opt, T: lr_scheduler.CosineWarmupLR(opt, warmup_steps=T // 10, total_steps=T),
    "step decay ×0.1 every 80": lambda opt, T: lr_scheduler.StepLR(opt, step_size=80, gamma=0.1),
}
curves = {name: lr_curve(make) for name, make in schedules.items()}
fig, ax = plt.subplots(figsize=(7, 3.6))
for name, rates in curves.items():
    ax.plot(rates, label=name)
ax.set_xlabel("optimizer step")
ax.set_ylabel("lr / max lr")
ax.set_title("learning-rate schedules, stepped once per batch")
ax.legend()
course.savefig(fig, "02_schedules.png")

# %% [markdown]
# ## 6. Real images: Fashion-MNIST
#
# minift bundles 10,000 training and 2,000 test images of Fashion-MNIST (28×28 grey,
# 10 classes, 1,000 and 200 per class), so this runs without a download.

# %%
fashion = load_dataset("fashion-mnist-bundled")
print(fashion, fashion.classes)
fig, axes = plt.subplots(2, 10, figsize=(10, 2.3))
for label in range(10):
    rows = np.flatnonzero(fashion.y_train == label)[:2]
    for row, index in enumerate(rows):
        axes[row, label].imshow(fashion.x_train[index, 0], cmap="gray_r")
        axes[row, label].axis("off")
    axes[0, label].set_title(fashion.classes[label], fontsize=7)
course.savefig(fig, "02_fashion_samples.png")

# %% [markdown]
# ## 7. A small CNN, built from layers
#
# Three blocks of convolution → (BatchNorm) → ReLU, two of them followed by 2×2 max
# pooling, then global average pooling and one `Linear` layer to the 10 classes:
# `(N, 1, 28, 28) → (N, w, 14, 14) → (N, 2w, 7, 7) → (N, 2w, 7, 7) → (N, 2w) → (N, 10)`.
# With BatchNorm the convolution needs no bias: BatchNorm's `β` does its job.
# (`minift.models.SmallCNN` is this network with BatchNorm, split into body and head.)

# %%
def make_cnn(batch_norm: bool, width: int = 16) -> nn.Sequential:
    def block(c_in, c_out, pool):
        layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm)]
        layers += [nn.BatchNorm2d(c_out)] if batch_norm else []
        layers += [nn.ReLU()] + ([nn.MaxPool2d(2)] if pool else [])
        return nn.Sequential(*layers)

    return nn.Sequential(OrderedDict(
        block1=block(1, width, pool=True), block2=block(width, 2 * width, pool=True),
        block3=block(2 * width, 2 * width, pool=False),
        pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), head=nn.Linear(2 * width, 10),
    ))


model = make_cnn(batch_norm=True)
print(model)
print(f"{sum(p.numel() for p in model.parameters()):,} parameters")

# %% [markdown]
# `Learner` runs the loop of tutorial 01 for us: for every batch, forward, loss
# (`cross_entropy`), `backward()`, `optimizer.step()`, `zero_grad()`, one schedule step;
# after every epoch it evaluates on the validation loader. We train with AdamW and the
# one-cycle schedule (`fit_one_cycle`, peak lr 0.01).

# %%
train_size, epochs = course.pick(10_000, 2_000), course.pick(3, 2)
train_loader = DataLoader(Subset(fashion.train, np.arange(train_size)), batch_size=64, shuffle=True, seed=0)
test_loader = DataLoader(fashion.test, batch_size=500)
learner = Learner(model, train_loader, test_loader, opt="adamw", progress=False)
learner.fit_one_cycle(epochs, 1e-2)
course.print_table([(r["epoch"] + 1, r["train_loss"], r["valid_loss"], r["accuracy"]) for r in learner.history.epochs],
                   ["epoch", "train loss", "test loss", "test accuracy"])

fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(11, 3.6))
plot_loss(learner.history, ax=ax_loss)
plot_lr(learner.history, ax=ax_lr)
ax_loss.set_title(f"SmallCNN on {train_size:,} Fashion-MNIST images")
ax_lr.set_title("one-cycle learning rate")
course.savefig(fig, "02_training_curve.png")

# %% [markdown]
# Read the left panel: the batch loss (faint) is noisy because every batch holds other
# images; its moving average and the per-epoch losses show the trend. While the lr climbs
# (right panel), the loss falls fast but bumpily; as it anneals, the loss settles. A test
# loss far above the train loss would mean overfitting — here they stay close.
#
# ## 8. BatchNorm and the learning rate (Ioffe & Szegedy 2015)
#
# Now the experiment: the same CNN with and without BatchNorm, trained with plain SGD
# (momentum 0.9) under one-cycle at three peak learning rates, from the same seed, on the
# same batches.

# %%
peak_lrs = [0.05, 0.25, 1.0]
sweep_size, sweep_epochs = course.pick(3_000, 1_500), course.pick(3, 2)
sweep_loader = DataLoader(Subset(fashion.train, np.arange(sweep_size)), batch_size=64, shuffle=True, seed=1)
sweep_test = DataLoader(Subset(fashion.test, np.arange(1_000)), batch_size=500)
sweep = {}
for batch_norm in (True, False):
    for peak_lr in peak_lrs:
        minift.manual_seed(1)
        run = Learner(make_cnn(batch_norm), sweep_loader, sweep_test, opt="sgd", weight_decay=0.0, progress=False)
        run.fit_one_cycle(sweep_epochs, peak_lr)
        sweep[batch_norm, peak_lr] = run.history
course.print_table(
    [("yes" if with_bn else "no", lr, history.epochs[-1]["train_loss"], history.epochs[-1]["accuracy"])
     for (with_bn, lr), history in sweep.items()],
    ["BatchNorm", "peak lr", "final train loss", "test accuracy"])

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
for ax, batch_norm in zip(axes, (True, False)):
    for peak_lr in peak_lrs:
        losses = sweep[batch_norm, peak_lr].losses
        ax.plot(np.convolve(losses, np.ones(10) / 10, mode="valid"), label=f"peak lr {peak_lr}")
    ax.axhline(np.log(10), color="grey", linestyle=":", linewidth=0.8)  # loss of a uniform guess
    ax.set_title(("with" if batch_norm else "without") + " BatchNorm")
    ax.set_xlabel("step")
axes[0].set_ylabel("training loss (10-step mean)")
axes[0].legend()
course.savefig(fig, "02_batchnorm_lr.png")

# %% [markdown]
# With BatchNorm every rate trains, and the higher rates train best. Without it, the loss
# hangs near the dotted line `ln 10` — the loss of a uniform guess — for a long time at
# every rate: the signal shrinks or grows from layer to layer, and the first steps are
# spent finding a usable scale. Given enough steps (full mode), the middle rate gets going
# and the lowest barely, but the highest never does: its loss stays at `ln 10`, the
# network died in its first steps (its ReLUs went silent and pass no gradient). BatchNorm
# rescales every channel at every step, so a large step cannot push the activations out
# of range for long: that is the "higher learning rates" and the "accelerating" of the
# paper's title, in miniature. (The paper's *explanation*, "internal covariate shift", has
# been questioned since — see S. Santurkar, D. Tsipras, A. Ilyas and A. Madry, "How Does
# Batch Normalization Help Optimization?", NeurIPS 2018 — but the effect you just measured
# is not in dispute.)
#
# ## Checks

# %%
assert np.allclose(y.data, linear_by_hand, atol=1e-6)
assert np.isclose(features.data[n, o, i, j], pixel_by_hand, atol=1e-5)
assert np.allclose(per_channel_mean, 0, atol=1e-4) and np.allclose(per_channel_std, 1, atol=1e-3)
assert np.allclose(bn.running_mean.data, 0.1 * scaled.data.mean(axis=(0, 2, 3)), rtol=1e-5)
assert np.allclose(theta.data, by_hand), "optim.SGD is the momentum rule written by hand"
assert np.allclose(np.abs(first_adam_step), 0.01, rtol=1e-3), "Adam's first step is ±lr whatever the gradient's scale"
one_cycle = curves["one-cycle (Smith & Topin)"]
assert np.argmax(one_cycle) == 49 and np.isclose(one_cycle[0], 1 / 25) and one_cycle[-1] < 1e-3

final_accuracy = learner.history.epochs[-1]["accuracy"]
assert final_accuracy > course.pick(0.8, 0.6), f"the CNN should learn Fashion-MNIST, got {final_accuracy:.3f}"
assert learner.history.epochs[-1]["train_loss"] < learner.history.epochs[0]["train_loss"]


def accuracy(batch_norm, peak_lr):
    return sweep[batch_norm, peak_lr].epochs[-1]["accuracy"]


def final_loss(batch_norm, peak_lr):
    return sweep[batch_norm, peak_lr].epochs[-1]["train_loss"]


assert all(accuracy(True, lr) > 0.45 for lr in peak_lrs), "with BatchNorm every rate trains"
assert all(final_loss(True, lr) < final_loss(False, lr) - 0.3 for lr in peak_lrs), "BatchNorm trains faster"
assert max(accuracy(True, lr) for lr in peak_lrs) > max(accuracy(False, lr) for lr in peak_lrs) + 0.1
assert accuracy(True, peak_lrs[0]) < max(accuracy(True, lr) for lr in peak_lrs[1:]), "BatchNorm profits from high rates"
if not course.fast_mode():  # fast mode's few steps cannot tell a dead network from a slow one
    assert accuracy(False, max(peak_lrs)) < 0.2, "without BatchNorm the highest rate fails"
print("all checks passed")

# %% [markdown]
# ## Exercises
#
# 1. Add `nn.Dropout(0.2)` before the head of `make_cnn`. Does the gap between train and
#    test loss change at 3 epochs? At 12?
# 2. Extend `peak_lrs` to `[0.005, ..., 2.0]`. Where does the BatchNorm network finally fail?
# 3. Train the main model with `opt="sgd"` at its best peak lr from section 8, and compare
#    the curve with AdamW's.
# 4. Replace `fit_one_cycle` by `fit(epochs, 1e-2)` (a constant rate). What happens to the
#    end of the loss curve, and to the test accuracy?
# 5. Plot the 16 filters of `model.block1[0].weight` as 3×3 images. Which look like edge
#    detectors?
