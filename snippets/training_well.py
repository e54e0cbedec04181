# %% [markdown]
# # Chapter 7, part 1: three sets, augmentation, one look at the test set
#
# Chapter 4's CNN on the shifted digits, with only 50 training images per
# class. We cut a validation set out of the training part, watch training on
# it, compare training with and without random shifts, choose on validation,
# and only then look at the test set, once. Finally we measure what choosing
# on the test set would have done to the reported accuracy.

# %%
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

from book import (
    SmallCNN,
    evaluate,
    fit_trials,
    load_splits,
    mini_batches,
    record,
    save_figure,
    setup,
    show_images,
)
from training_well_ops import (
    accuracy_with_batch_statistics,
    per_class_subset,
    selection_gap,
    shift_with_noise,
)

setup()

# %% [markdown]
# ## Train, validation and test

# %%
# --8<-- [start:split]
full = load_splits("shifted_digits")  # validation: 20 % of the digits
data = per_class_subset(full, per_class=50)  # labels are scarce
for part in ("train", "val", "test"):
    print(part, tuple(getattr(data, f"X_{part}").shape))
# --8<-- [end:split]
# The training part holds two placements of each digit: copy k of digit i
# is row k n + i. How many distinct digits did the subset draw?
n = len(full.X_train) // 2
row_of = {x.numpy().tobytes(): i for i, x in enumerate(full.X_train)}
drawn = [row_of[x.numpy().tobytes()] for x in data.X_train]
record(
    num_train_full=len(full.X_train),
    num_train=len(data.X_train),
    num_distinct=len({row % n for row in drawn}),
    per_class=len(data.X_train) // 10,
    num_val=len(data.X_val),
    num_test=len(data.X_test),
    # fit's own cut of an epoch: no remainder dropped, near-equal batches
    steps_per_epoch=len(
        epoch := mini_batches(len(data.X_train), 64, torch.Generator())
    ),
    batch_size_smallest=min(len(batch) for batch in epoch),
    batch_size_largest=max(len(batch) for batch in epoch),
)

# %% [markdown]
# ## Augmentation: random shifts

# %%
# --8<-- [start:shift-examples]
generator = torch.Generator().manual_seed(0)
x = data.X_train[:1].expand(7, -1, -1, -1)  # one digit, seven times
moved = shift_with_noise(x, max_shift=3, generator=generator)
# --8<-- [end:shift-examples]
fig = show_images(
    [x[0], *moved],
    titles=["original"] + [f"shifted {i}" for i in range(1, 8)],
    ncols=4,
    cmap="gray_r",
    size=1.6,
    vmin=0,
    vmax=1,
)
for ax in fig.axes:  # a frame: the edge of the 24 × 24 canvas
    ax.axis("on")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(True)
    ax.spines[:].set_color("0.6")
save_figure(fig, "shifts")

# %% [markdown]
# ## Training with and without augmentation, six seeds each
#
# `peek_at_test` records after each of the last ten epochs which test images
# the network gets right. Nothing is chosen with it: it only lets the last
# section measure what choosing on the test set would have done. For the plain
# runs, `watch` also scores the validation set with batch normalisation in
# training mode, for the curves' first epochs.

# %%
# --8<-- [start:peek]
peeks = {"plain": [], "augmented": []}
# The last ten epochs only: until about epoch 10 the networks are far behind
# and never the best on a half, so peeking at them would only cost time.
NUM_EPOCHS, PEEK_EPOCHS = 20, 10
epochs_done = {"plain": 0, "augmented": 0}


def peek_at_test(net, into):
    """Which test images net gets right now: for the demonstration only."""
    net.eval()
    with torch.no_grad():
        into.append((net(data.X_test).argmax(dim=1) == data.y_test).numpy())


batch_statistics = []  # the plain runs' only: the curves show no other


def watch(net, name):
    """After each epoch: the test peek (the last PEEK_EPOCHS epochs), and for
    the plain runs the validation accuracy with batch normalisation in
    training mode (for the curves)."""
    epochs_done[name] += 1
    epoch = (epochs_done[name] - 1) % NUM_EPOCHS + 1  # of this run, from 1
    if epoch > NUM_EPOCHS - PEEK_EPOCHS:
        peek_at_test(net, into=peeks[name])
    if name == "plain":
        batch_statistics.append(
            accuracy_with_batch_statistics(net, data.X_val, data.y_val)
        )


# --8<-- [end:peek]


# %%
# --8<-- [start:trials]
def make_net():
    return SmallCNN(image_size=24)  # chapter 4's network


seeds = range(6)  # seeds differ by several points here: six, not three
settings = {"num_epochs": NUM_EPOCHS, "lr": 0.003, "batch_size": 64}
plain = fit_trials(
    make_net,
    data,
    seeds,
    on_epoch=partial(watch, name="plain"),
    **settings,
)
augmented = fit_trials(
    make_net,
    data,
    seeds,
    augment=partial(shift_with_noise, max_shift=3),
    on_epoch=partial(watch, name="augmented"),
    **settings,
)
for name, trials in [("plain", plain), ("augmented", augmented)]:
    print(f"{name}: validation {trials['mean']:.3f} ± {trials['std']:.3f}")
# --8<-- [end:trials]


def last_train_accuracy(trials):
    return [h["train_accuracy"][-1] for h in trials["histories"]]


def correct_on_validation(trials):
    """Which validation images each seed's chosen net gets right."""
    rows = []
    for net in trials["nets"]:
        net.eval()
        with torch.no_grad():
            rows.append((net(data.X_val).argmax(dim=1) == data.y_val).tolist())
    return rows


plain_best_epochs = [h["best_epoch"] + 1 for h in plain["histories"]]
record(
    num_epochs=settings["num_epochs"],
    lr=settings["lr"],
    max_shift=3,
    num_seeds=len(plain["nets"]),
    plain_val_correct=correct_on_validation(plain),
    augmented_val_correct=correct_on_validation(augmented),
    plain_val_loss_last_by_seed=[h["val_loss"][-1] for h in plain["histories"]],
    plain_val_by_seed=plain["val_accuracies"],
    augmented_val_by_seed=augmented["val_accuracies"],
    plain_train_by_seed=last_train_accuracy(plain),
    augmented_train_by_seed=last_train_accuracy(augmented),
    plain_val_mean=plain["mean"],
    plain_val_std=plain["std"],
    plain_val_min=min(plain["val_accuracies"]),
    plain_val_max=max(plain["val_accuracies"]),
    augmented_val_mean=augmented["mean"],
    augmented_val_std=augmented["std"],
    augmented_val_min=min(augmented["val_accuracies"]),
    augmented_val_max=max(augmented["val_accuracies"]),
    plain_train_accuracy=np.mean(last_train_accuracy(plain)),
    augmented_train_accuracy=np.mean(last_train_accuracy(augmented)),
    plain_best_epochs=plain_best_epochs,
    plain_best_epoch_earliest=min(plain_best_epochs),
    augmented_best_epochs=[h["best_epoch"] + 1 for h in augmented["histories"]],
)

# %%
# The curves, averaged over the seeds.
epochs = np.arange(1, settings["num_epochs"] + 1)
fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
for name, trials, colour in [
    # Not red or blue (sign), nor the purple and orange of batch
    # normalisation in the chapter's later figures.
    ("plain", plain, "mediumvioletred"),
    ("augmented", augmented, "olive"),
]:
    for part, style in [("train", "--"), ("val", "-")]:
        for key, ax in [("loss", loss_ax), ("accuracy", acc_ax)]:
            curves = np.array([h[f"{part}_{key}"] for h in trials["histories"]])
            label = f"{name}, {'training' if part == 'train' else 'validation'}"
            ax.plot(
                epochs, curves.mean(axis=0), style, color=colour, label=label
            )
# The plain runs' validation accuracy in training mode: batch statistics.
batch_mode = np.array(batch_statistics).reshape(len(plain["nets"]), -1)
acc_ax.plot(
    epochs,
    batch_mode.mean(axis=0),
    ":",
    color="mediumvioletred",
    label="plain, validation in training mode",
)
loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", ylim=(0, 2.5))
acc_ax.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02))
loss_ax.legend(fontsize=9)
acc_ax.legend(handles=acc_ax.lines[-1:], fontsize=9, loc="lower right")
mean_val = np.array([h["val_loss"] for h in plain["histories"]]).mean(axis=0)
record(
    plain_val_loss_lowest=mean_val.min(),
    plain_val_loss_last=mean_val[-1],
    plain_train_loss_last=np.mean(
        [h["train_loss"][-1] for h in plain["histories"]]
    ),
)
save_figure(fig, "curves")

# %%
# Validation accuracy per epoch, as fit scores it (evaluation mode: running
# statistics) and with the validation set's own batch statistics.
for name, trials in [("plain", plain), ("augmented", augmented)]:
    record(
        **{
            f"{name}_val_curve": np.mean(
                [h["val_accuracy"] for h in trials["histories"]], axis=0
            ).tolist(),
            f"{name}_train_curve": np.mean(
                [h["train_accuracy"] for h in trials["histories"]], axis=0
            ).tolist(),
        }
    )
record(
    plain_batch_stat_val_curve=batch_mode.mean(axis=0).tolist(),
    plain_batch_stat_val_by_seed=batch_mode.tolist(),
)
# The first epochs, in which the plain runs' validation accuracy stays
# below 20 % (chance is 10 %); at least the first.
plain_curve = np.mean([h["val_accuracy"] for h in plain["histories"]], axis=0)
early = max(1, int(np.argmax(plain_curve >= 0.2)))
record(
    early_epochs=early,
    plain_val_early=plain_curve[:early].mean(),
    plain_batch_stat_val_early=batch_mode[:, :early].mean(),
)

# %% [markdown]
# ## Choose on validation, then test once

# %%
# --8<-- [start:choose]
candidates = {"plain": plain, "augmented": augmented}
choice = max(candidates, key=lambda name: candidates[name]["mean"])
nets = candidates[choice]["nets"]  # one per seed, each at its best epoch
test_accuracy = [evaluate(net, data.X_test, data.y_test)[1] for net in nets]
print(f"chosen: {choice}")
mean, std = np.mean(test_accuracy), np.std(test_accuracy, ddof=1)
print(f"test accuracy {mean:.3f} ± {std:.3f}")


# --8<-- [end:choose]
def binomial_se(accuracy, num_images):
    """The sampling error of an accuracy measured on num_images images."""
    return np.sqrt(accuracy * (1 - accuracy) / num_images)


def paired_se(correct_a, correct_b):
    """The standard error of mean accuracy(a) - mean accuracy(b), runs
    (rows) scored on the same images (columns): each mean's seed spread, and
    the sampling error of the per-image difference."""
    a = np.asarray(correct_a, dtype=float)
    b = np.asarray(correct_b, dtype=float)
    seeds = sum(runs.mean(axis=1).var(ddof=1) / len(runs) for runs in (a, b))
    per_image = a.mean(axis=0) - b.mean(axis=0)
    return np.sqrt(seeds + per_image.var(ddof=1) / per_image.size)


record(
    val_se=binomial_se(augmented["mean"], len(data.X_val)),
    test_se=binomial_se(np.mean(test_accuracy), len(data.X_test)),
    augmentation_gain=augmented["mean"] - plain["mean"],
    augmentation_gain_se=paired_se(
        correct_on_validation(augmented), correct_on_validation(plain)
    ),
    choice=choice,
    test_mean=np.mean(test_accuracy),
    test_std=np.std(test_accuracy, ddof=1),
    test_by_seed=test_accuracy,
)

# %%
# --8<-- [start:confusion]
net = nets[0].eval()
with torch.no_grad():
    predicted = net(data.X_test).argmax(dim=1)
matrix = confusion_matrix(data.y_test, predicted)  # rows: true labels
print(matrix)
# --8<-- [end:confusion]
errors = matrix - np.diag(np.diag(matrix))
true_label, wrong_label = np.unravel_index(errors.argmax(), errors.shape)
recall = np.diag(matrix) / matrix.sum(axis=1)
record(
    confusion_errors=errors.sum(),
    confusion_accuracy=np.trace(matrix) / matrix.sum(),
    confusion_top_true=true_label,
    confusion_top_predicted=wrong_label,
    confusion_top_count=errors.max(),
    confusion_pairs_with_errors=(errors > 0).sum(),
    confusion_worst_class=recall.argmin(),
    confusion_worst_recall=recall.min(),
)

# %%
fig, ax = plt.subplots(figsize=(5.2, 4.6))
ConfusionMatrixDisplay(matrix).plot(ax=ax, cmap="Greys", colorbar=False)
ax.set(xlabel="predicted label", ylabel="true label")
save_figure(fig, "confusion")

# %%
wrong = torch.nonzero(predicted != data.y_test).flatten()[:16]
fig = show_images(
    data.X_test[wrong],
    titles=[f"{data.y_test[i].item()} → {predicted[i].item()}" for i in wrong],
    cmap="gray_r",
    size=1.2,
)
save_figure(fig, "mistakes")

# %% [markdown]
# ## What choosing on the test set would have done
#
# For each seed, the candidates are the 20 networks of its two runs (plain and
# augmented) after each of their last 10 epochs.

# %%
# --8<-- [start:selection]
P = PEEK_EPOCHS
gaps, peeked = [], []
for seed in range(len(nets)):
    runs = [peeks[name][seed * P : (seed + 1) * P] for name in peeks]
    correct = np.concatenate(runs)  # (2 P, N_test): one row per candidate
    gaps.append(selection_gap(correct))
    peeked.append(correct.mean(axis=1).max())  # the best test score seen
print(f"chosen on half the test set, it scores {np.mean(gaps):.3f} higher")
print(f"there than on the other half (seeds: {np.round(gaps, 3)})")
# --8<-- [end:selection]
record(
    selection_gap_mean=np.mean(gaps),
    selection_gap_std=np.std(gaps, ddof=1),
    selection_gaps=gaps,
    half_test=len(data.X_test) // 2,
    half_test_se=binomial_se(np.mean(test_accuracy), len(data.X_test) // 2),
    selection_gap_min=min(gaps),
    selection_gap_max=max(gaps),
    peeked_test_mean=np.mean(peeked),
    # Seeds where validation chose a candidate that is also the test's best.
    peek_agrees=sum(
        np.isclose(p, t) for p, t in zip(peeked, test_accuracy, strict=True)
    ),
    num_candidates=2 * P,
    peek_epochs=P,
    # validation's choices lie among the candidates (the chapter compares them)
    peek_first_epoch=NUM_EPOCHS - P + 1,
)
