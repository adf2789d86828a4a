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
# # 03 · Feature extraction vs fine-tuning
#
# **Reproduces in miniature:**
#
# - A. S. Razavian, H. Azizpour, J. Sullivan and S. Carlsson, "CNN Features off-the-shelf:
#   an Astounding Baseline for Recognition", *CVPR Workshops* (2014), and J. Donahue, Y. Jia,
#   O. Vinyals, J. Hoffman, N. Zhang, E. Tzeng and T. Darrell, "DeCAF: A Deep Convolutional
#   Activation Feature for Generic Visual Recognition", *ICML* (2014), PMLR 32(1):647–655 —
#   the features of a network trained on one task, read by a new linear classifier, solve
#   a different task;
# - F. Chollet, "Transfer learning & fine-tuning", Keras developer guide (2020),
#   https://keras.io/guides/transfer_learning/ — the recipe: freeze the pretrained base,
#   train a new head, then unfreeze and train everything at a *very low* learning rate,
#   with BatchNorm kept in inference mode.
#
# **What you will learn**
#
# 1. how to pretrain a model, save it, and transplant its body under a new head;
# 2. feature extraction (frozen body) against fine-tuning (everything trains), and a
#    baseline for each: an untrained body, and training from scratch;
# 3. what the learning rate after unfreezing does — to the new task and to the old one
#    (*catastrophic forgetting*, measured on the source task's test set);
# 4. what a frozen BatchNorm should do: the `"keras"` and `"fastai"` policies, measured.
#
# **The set-up.** Fashion-MNIST (H. Xiao, K. Rasul, R. Vollgraf, arXiv:1708.07747) split in
# two: the *source* task is the five kinds of clothing (T-shirt, trouser, pullover, dress,
# coat), 5,000 images; the *target* task is the other five classes (sandal, shirt, sneaker,
# bag, ankle boot) with only **10 labelled images per class**. (Tutorial 05 uses a split
# like this one to measure how transferable each layer is.)
#
# **Runtime:** about 30 s on an idle 2-core CPU (about 18 s with `MINIFT_FAST=1`);
# `tutorials/README.md` lists the measurements. The assert cells at the end check the claims.

# %%
import minift  # first: it sets up the CPU thread pools before NumPy loads (minift/threads.py)

import copy

import matplotlib.pyplot as plt
import numpy as np

from minift import io, nn
from minift.apps import course
from minift.data import ArrayDataset, DataLoader, Subset, load_dataset, select_classes, take_per_class
from minift.finetune import evaluate_accuracy, set_trainable, transplant, trainable_report
from minift.models import SmallCNN
from minift.train import Learner, keras_recipe

print("backend:", minift.backend.get_backend(), "| fast mode:", course.fast_mode())

# %% [markdown]
# ## 1. Two tasks from one dataset
#
# `task` keeps the images of some classes (`minift.data.select_classes`) and renumbers
# their labels `0..4`.

# %%
fashion = load_dataset("fashion-mnist-bundled")
SOURCE_CLASSES, TARGET_CLASSES = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]


def task(classes, split, per_class=None):
    """The images of ``classes`` in ``split`` ("train" or "test"), labelled 0..len(classes)-1."""
    images, labels = getattr(fashion, f"x_{split}"), getattr(fashion, f"y_{split}")
    return ArrayDataset(*select_classes(images, labels, classes, slice(per_class)))


source_train = task(SOURCE_CLASSES, "train", per_class=course.pick(None, 500))
source_test = task(SOURCE_CLASSES, "test", per_class=course.pick(None, 100))
target_pool = task(TARGET_CLASSES, "train")
target_test = task(TARGET_CLASSES, "test", per_class=course.pick(None, 100))
SHOTS = 10
target_train = Subset(target_pool, take_per_class(target_pool.arrays[1], SHOTS, seed=0))
print("source:", [fashion.classes[c] for c in SOURCE_CLASSES], f"{len(source_train)} train / {len(source_test)} test")
print("target:", [fashion.classes[c] for c in TARGET_CLASSES], f"{len(target_train)} train / {len(target_test)} test")

# %% [markdown]
# ## 2. Pretrain on the source task, save the checkpoint
#
# `SmallCNN` is a *body* (three conv-BatchNorm-ReLU blocks and global average pooling: 32
# features per image) and a *head* (`Linear(32, classes)`). We train it on the source task
# with AdamW and one-cycle, as in tutorial 02, and save its `state_dict` as safetensors.

# %%
minift.manual_seed(0)
pretrained = SmallCNN(width=16, num_classes=5)
source_loader = DataLoader(source_train, batch_size=64, shuffle=True, seed=0)
source_test_loader = DataLoader(source_test, batch_size=500)
Learner(pretrained, source_loader, progress=False).fit_one_cycle(course.pick(5, 3), 1e-2)
checkpoint = course.output_dir() / "fashion_clothes_cnn.safetensors"
io.save(pretrained.state_dict(), checkpoint)
pretrained_source_accuracy = evaluate_accuracy(pretrained, source_test_loader)
print(f"source test accuracy of the pretrained model: {pretrained_source_accuracy:.3f}; saved {checkpoint.name}")

# %% [markdown]
# ## 3. Transplant the body under a new head
#
# The target task has its own five classes, so the old head is useless to it. A new
# `SmallCNN` gets the pretrained body and a freshly initialised head: `transplant` loads
# every checkpoint entry that fits, skips the head on purpose, and reports what it did.
#
# To measure forgetting we keep a copy of the **old head**: at any time, the (possibly
# fine-tuned) body followed by the old head is a source-task classifier, and its accuracy on
# the source test set says how much of the source task the body still knows.

# %%
old_head = copy.deepcopy(pretrained.head)
target_test_loader = DataLoader(target_test, batch_size=500)


def new_model(pretrained_body=True):
    """A SmallCNN for the target task: the pretrained body (or a random one) and a new head."""
    minift.manual_seed(1)                     # the same new head in every experiment
    model = SmallCNN(width=16, num_classes=5)
    if pretrained_body:
        transplant(model, checkpoint, skip=["head.*"])
    return model


def target_batches():
    """A new loader over the 50 target images: every experiment sees the same batches."""
    return DataLoader(target_train, batch_size=10, shuffle=True, seed=0)


def measure(model):
    """(target test accuracy, source test accuracy of the model's body with the old head)."""
    source_classifier = nn.Sequential(model.body, old_head)
    return evaluate_accuracy(model, target_test_loader), evaluate_accuracy(source_classifier, source_test_loader)


print(transplant(SmallCNN(width=16, num_classes=5), checkpoint, skip=["head.*"]))

# %% [markdown]
# ## 4. Feature extraction
#
# Freeze the body and train only the head: the body is a fixed function from images to 32
# features, and the head is a linear classifier on them — Razavian et al.'s "off-the-shelf"
# recipe. The `"keras"` BatchNorm policy makes the frozen BatchNorm layers run in inference
# mode, so the body computes exactly the function it computed after pretraining.

# %%
head_epochs, finetune_epochs = 20, 20          # epochs of 5 steps: 50 images in batches of 10
HEAD_LR = 1e-2
results = {}


def feature_extraction(pretrained_body=True, bn_policy="keras"):
    model = new_model(pretrained_body)
    learner = Learner(model, target_batches(), progress=False, bn_policy=bn_policy)
    learner.freeze()
    learner.fit(head_epochs + finetune_epochs, HEAD_LR)
    return model


extractor = feature_extraction()
print(trainable_report(extractor))
results["feature extraction"] = measure(extractor)
body_unchanged = all(np.array_equal(value, extractor.state_dict()[name])
                     for name, value in io.load(checkpoint).items() if name.startswith("body."))
print(f"target accuracy {results['feature extraction'][0]:.3f}; body bit-identical to the checkpoint: {body_unchanged}")

# %% [markdown]
# Two baselines put that number in context. *The same head on an untrained body* shows
# what the pretrained features are worth. *Training everything from scratch* on the 50
# target images shows what transfer is up against — with the same number of steps.

# %%
results["untrained body + head"] = measure(feature_extraction(pretrained_body=False))
scratch = new_model(pretrained_body=False)
Learner(scratch, target_batches(), progress=False).fit_one_cycle(head_epochs + finetune_epochs, 3e-3)
results["from scratch"] = measure(scratch)
course.print_table([(name, *accuracies) for name, accuracies in results.items()],
                   ["model", "target accuracy", "source accuracy"])

# %% [markdown]
# The pretrained features are far better than random ones for a task they were never
# trained on: that is the "off-the-shelf" result. But be honest about the last row: at this
# scale, a 14,000-parameter CNN trained from scratch on 50 images does *as well or better*.
# The target classes are easy, and the network is small enough not to overfit them. Transfer
# pays off when the target data cannot teach the features itself — a network big enough to
# memorise 50 images, a harder task, features the few examples do not show — which is the
# everyday situation with real pretrained models (tutorial 10 uses one). What the miniature
# does show faithfully is the rest of this notebook: what fine-tuning changes, and what it
# costs.
#
# ## 5. Fine-tuning, the Keras way, and the learning rate after unfreezing
#
# `keras_recipe(learner, head_epochs, finetune_epochs, head_lr, finetune_lr)` runs the Keras
# guide's two phases: the body frozen while the new head trains, then everything unfrozen
# and trained at `finetune_lr` — except the BatchNorm layers, which stay frozen and in
# inference mode throughout. We vary `finetune_lr` from the guide's `1e-5` up to `1e-1`.

# %%
finetune_lrs = course.pick([1e-5, 1e-4, 1e-3, 1e-2, 1e-1], [1e-5, 1e-3, 1e-2, 1e-1])
lr_sweep = {}
for lr in finetune_lrs:
    model = new_model()
    keras_recipe(Learner(model, target_batches(), progress=False), head_epochs, finetune_epochs,
                 head_lr=HEAD_LR, finetune_lr=lr)
    lr_sweep[lr] = measure(model)
course.print_table([(f"{lr:.0e}", *accuracies) for lr, accuracies in lr_sweep.items()],
                   ["finetune lr", "target accuracy", "source accuracy"])

fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.semilogx(finetune_lrs, [acc[0] for acc in lr_sweep.values()], "o-", label="target task (new head)")
ax.semilogx(finetune_lrs, [acc[1] for acc in lr_sweep.values()], "s-", label="source task (old head)")
ax.axhline(results["feature extraction"][0], color="C0", linestyle=":", label="target, feature extraction")
ax.axhline(pretrained_source_accuracy, color="C1", linestyle=":", label="source, before fine-tuning")
ax.set_xlabel("learning rate after unfreezing")
ax.set_ylabel("test accuracy")
ax.set_title("Keras recipe: the learning rate after unfreezing")
ax.legend(fontsize=8)
course.savefig(fig, "03_finetune_lr.png")

# %% [markdown]
# Read the figure from left to right. At `1e-5` the body hardly moves: fine-tuning is
# feature extraction. At `1e-3` the target accuracy climbs above feature extraction — the
# body's features adapt to the new classes — while the source accuracy starts to fall. At
# `1e-2` the target may gain a little more, but most of the source task is forgotten: large
# steps driven by 50 images have rewritten what 5,000 images taught. At `1e-1` the source
# task is gone and the target accuracy becomes a lottery: in our runs it landed anywhere
# from about 0.5 to 0.8, depending on the order of the batches and even on the rounding of
# floating-point sums (the number of BLAS threads changes it). A learning rate whose
# result you cannot reproduce is too high, whatever the number says this time.
# That is why the guide says *very low* learning rate: the price of every gain on the new
# task is paid in what the model knew, and the Keras default of `1e-5` pays almost nothing
# (and gains almost nothing here). Choose the rate by what you can afford to forget.
#
# ## 6. BatchNorm while frozen: `"keras"` or `"fastai"`
#
# A frozen BatchNorm layer still has running statistics. Under the `"keras"` policy it runs
# in inference mode: normalises with the statistics from pretraining and leaves them alone.
# Under `"fastai"` (fastai's default) it keeps normalising with each batch's statistics,
# updates its running statistics from the target images, and its affine parameters stay
# trainable. Same recipe, both policies, at `finetune_lr = 1e-3`:

# %%
def freeze_train_unfreeze(bn_policy, finetune_lr=1e-3):
    """The two phases of the Keras recipe, under either BatchNorm policy."""
    model = new_model()
    learner = Learner(model, target_batches(), progress=False, bn_policy=bn_policy)
    learner.freeze()
    learner.fit(head_epochs, HEAD_LR)
    phase_one = measure(model)
    learner.unfreeze()
    if bn_policy == "keras":                   # Keras keeps BatchNorm frozen after unfreezing
        set_trainable(model, "body.*.bn.*", False)
    learner.fit(finetune_epochs, finetune_lr)
    return phase_one, measure(model)


bn_results = {policy: freeze_train_unfreeze(policy) for policy in ("keras", "fastai")}
course.print_table(
    [(policy, phase, *accuracies) for policy, phases in bn_results.items()
     for phase, accuracies in zip(("head only", "then fine-tuned"), phases)],
    ["BN policy", "after", "target accuracy", "source accuracy"])

# %% [markdown]
# With `"keras"`, training the head leaves the source accuracy exactly where pretraining
# left it: nothing in the body changed. With `"fastai"`, the *same* frozen body has already
# lost much of the source task before any of its weights is unfrozen — its running
# statistics now describe shoes and bags, not clothes, so the old head receives features
# on a different scale. On the target task `"fastai"` comes out ahead, by a little or by a
# lot depending on the run: statistics re-estimated on the new images (and BatchNorm
# weights that learn) adapt the body to data that looks different from what it was
# trained on. So the choice is a trade: `"keras"` keeps the pretrained model's function
# intact — choose it to keep the old task, or when target batches are too small for
# reliable statistics; `"fastai"` buys target accuracy with it.
#
# ## Summary

# %%
summary = {**results, "fine-tuned, lr 1e-3 (keras)": bn_results["keras"][1],
           "fine-tuned, lr 1e-3 (fastai BN)": bn_results["fastai"][1], "fine-tuned, lr 1e-1 (keras)": lr_sweep[1e-1]}
course.print_table([(name, *acc) for name, acc in summary.items()], ["model", "target accuracy", "source accuracy"])
print(f"source accuracy before any fine-tuning: {pretrained_source_accuracy:.3f}")

# %% [markdown]
# ## Checks

# %%
feature_target, feature_source = results["feature extraction"]
assert body_unchanged and feature_source == pretrained_source_accuracy, "a keras-frozen body must not change"
assert bn_results["keras"][0][1] == pretrained_source_accuracy
assert feature_target > results["untrained body + head"][0] + 0.1, "pretrained features beat random ones"
assert lr_sweep[1e-5][1] > pretrained_source_accuracy - 0.02, "at 1e-5 the body barely moves"
assert lr_sweep[1e-3][0] > feature_target + 0.02, "fine-tuning at a low rate improves on feature extraction"
assert bn_results["keras"][1] == lr_sweep[1e-3], "freeze_train_unfreeze('keras') is keras_recipe"
sources = [acc[1] for acc in lr_sweep.values()]
assert all(later <= earlier + 0.02 for earlier, later in zip(sources, sources[1:])), "higher lr, more forgetting"
assert lr_sweep[1e-2][1] < pretrained_source_accuracy - 0.25, "a high lr after unfreezing forgets the source task"
assert lr_sweep[1e-1][1] < pretrained_source_accuracy - 0.4, "at 1e-1 the source task is gone"
assert bn_results["fastai"][0][1] < pretrained_source_accuracy - 0.1, "fastai BN statistics drift while frozen"
print("all checks passed")

# %% [markdown]
# ## Exercises
#
# 1. Set `SHOTS = 2`. Does transfer now overtake training from scratch? Guess, then measure.
# 2. Add a row for L2-SP (`minift.finetune.L2SP(model, checkpoint)`, passed as the
#    Learner's `regularizer=...penalty`) at `finetune_lr = 1e-2`: how much of the source
#    task does it save, and at what cost on the target?
# 3. Swap the tasks: pretrain on shoes and bags, transfer to clothing. Which direction
#    transfers better, and why might that be?
# 4. Give the fine-tuning phase a cosine schedule (`learner.fit(..., schedule="cosine")`)
#    instead of a constant rate: does the high-lr end of the figure change?
# 5. Read `minift/finetune/batchnorm.py` and `nn.BatchNorm2d.uses_batch_statistics`: find
#    the one line that implements the Keras rule.
