# %% [markdown]
# # Chapter 1, part 2: the fixed-filter pipeline
#
# The classic recipe: a hand-made kernel turns each image into a feature map,
# and only a softmax layer on top is learned. We run it on scikit-learn's
# handwritten digits and compare it with a softmax on the raw pixels.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import FancyArrowPatch
from sklearn.datasets import load_digits
from sklearn.model_selection import StratifiedKFold

from book import (
    SOBEL_X,
    SOBEL_Y,
    FixedFilterSoftmax,
    Split,
    count_parameters,
    edge_magnitude,
    load_dataset,
    record,
    save_figure,
    setup,
    show_images,
    sobel,
    train,
)
from why_cnns_ops import UNSIGNED, show_signed, show_unsigned

setup()

# %% [markdown]
# ## The data: 8 × 8 handwritten digits

# %%
# --8<-- [start:load]
data = load_dataset("digits")
print(data.X_train.shape, data.X_test.shape)  # (N, C, H, W)
# --8<-- [end:load]
record(
    num_images=len(data.X_train) + len(data.X_test),
    num_train=len(data.X_train),
    num_test=len(data.X_test),
    image_size=data.X_train.shape[-1],
)

# %%
examples = [int(torch.nonzero(data.y_train == digit)[0]) for digit in range(10)]
fig = show_images(
    [data.X_train[i] for i in examples],
    [f"label {digit}" for digit in range(10)],
    ncols=5,  # two rows: labels stay readable at the page's width
    cmap="gray_r",
)
save_figure(fig, "digits")

# %%
# One grey scale for all ten maps (white 0, black the strongest edge).
edge_maps = [edge_magnitude(data.X_train[i : i + 1]) for i in examples]
strongest = max(m.max().item() for m in edge_maps)
fig = show_images(
    edge_maps,
    [f"edges of {digit}" for digit in range(10)],
    ncols=5,
    cmap=UNSIGNED,
    vmin=0,
    vmax=strongest,
)
fig.colorbar(
    fig.axes[0].images[0],
    ax=fig.axes,
    shrink=0.8,
    pad=0.01,
    label="gradient length",
)
save_figure(fig, "digit_edges")

# What the figure shows, over every digit: at 8 × 8 the edge map is large on
# the strokes themselves and on the blank pixels beside them, not only along
# thin outlines. Ink: a pixel at least half dark; beside: blank (0) but
# touching ink, diagonals included.
X_all = torch.cat([data.X_train, data.X_test])
edges_all = edge_magnitude(X_all)
ink = X_all >= 0.5
touching_ink = torch.nn.functional.max_pool2d(ink.float(), 3, 1, 1) > 0
beside = touching_ink & (X_all == 0)
edge_threshold = 1.0  # a quarter of a full step's response (0 to 1: 4)
record(
    edge_threshold=edge_threshold,
    ink_pixels=int(ink.sum()),
    beside_pixels=int(beside.sum()),
    ink_strong_share=(edges_all[ink] > edge_threshold).float().mean(),
    beside_strong_share=(edges_all[beside] > edge_threshold).float().mean(),
)

# %% [markdown]
# ## Every digit a test image once: 4-fold cross-validation
#
# On 450 test images, one image is 0.2 points of accuracy, and two models a
# point or two apart cannot be told apart. Cutting the digits into four
# quarters and testing on each in turn (training on the other three) makes
# every one of the 1,797 digits a test image exactly once.


# %%
# --8<-- [start:folds]
def cross_validation(num_folds=4, seed=0):
    """Yield (test_rows, Split) for each fold: the test part is a different
    1/num_folds of the digits each time, stratified by class."""
    digits = load_digits()
    X = torch.from_numpy(digits.images.astype(np.float32) / 16.0)
    X, y = X.unsqueeze(1), torch.from_numpy(digits.target)  # (N, 1, 8, 8)
    folds = StratifiedKFold(num_folds, shuffle=True, random_state=seed)
    for train_rows, test_rows in folds.split(X, y):
        yield (
            test_rows,
            Split(X[train_rows], y[train_rows], X[test_rows], y[test_rows]),
        )


# --8<-- [end:folds]

# %% [markdown]
# ## Train only the softmax layer

# %%
# --8<-- [start:pipeline]
# Set by hand, the same for every model, and not tuned for any.
num_epochs, lr = 40, 0.01
feature_maps = {
    "sobel": edge_magnitude,  # the edge map: Sobel's kernels, then the length
    # The baseline has no kernel at all: its "feature map" is the image.
    "pixels": torch.nn.Identity(),
    # One change from the edge map: both Sobel maps, signs kept, no magnitude.
    "signed": sobel,
    # Between the two: the signs dropped, the two maps kept apart.
    "unsigned": lambda X: sobel(X).abs(),
}
num_seeds, num_images = 3, len(load_digits().target)
# correct[name][seed, i]: was digit i classified right when it was tested?
correct = {
    name: np.zeros((num_seeds, num_images), bool) for name in feature_maps
}

nets, histories = {}, {}
start = time.perf_counter()
for fold, (test_rows, split) in enumerate(cross_validation(num_folds=4)):
    for seed in range(num_seeds):  # initialisation and batch order
        for name, features in feature_maps.items():
            torch.manual_seed(seed)
            num_features = features(split.X_test[:1]).numel()  # 64 or 2 × 64
            net = FixedFilterSoftmax(features, num_features)
            history = train(net, split, num_epochs=num_epochs, lr=lr, seed=seed)
            with torch.no_grad():
                predicted = net(split.X_test).argmax(dim=1)
            correct[name][seed, test_rows] = (predicted == split.y_test).numpy()
            if fold == 0 and seed == 0:  # one run of each, for the figures
                nets[name], histories[name], first_fold = net, history, split
seconds = time.perf_counter() - start
accuracies = {name: right.mean(axis=1) for name, right in correct.items()}
for name, values in accuracies.items():  # ± : the sample std over seeds
    print(f"{name:>6}: {values.mean():.3f} ± {values.std(ddof=1):.3f}")
# --8<-- [end:pipeline]

# %% [markdown]
# ## The difference and its paired standard error


# %%
# --8<-- [start:paired-se]
def compare(a, b):
    """Mean accuracy of model a minus model b, both tested on the same
    digits, its paired standard error, and the one it would have unpaired."""
    # The noise of the test digits: the per-digit difference in right
    # answers (mean over seeds),
    per_digit = correct[a].mean(axis=0) - correct[b].mean(axis=0)
    digits_se = per_digit.std(ddof=1) / np.sqrt(num_images)
    # and the seeds' noise: the spread of the per-seed difference.
    difference = accuracies[a] - accuracies[b]
    seeds_se = difference.std(ddof=1) / np.sqrt(num_seeds)
    paired_se = np.hypot(digits_se, seeds_se)
    # Unpaired, as if each model had its own test digits: two binomial errors.
    means = np.array([accuracies[a].mean(), accuracies[b].mean()])
    binomial = np.sqrt(np.sum(means * (1 - means)) / num_images)
    return difference.mean(), paired_se, np.hypot(binomial, seeds_se)


difference, paired_se, unpaired_se = compare("pixels", "sobel")
z = difference / paired_se
print(f"pixels - sobel: {difference:.2%}, standard error")
print(f"{paired_se:.2%} (z = {z:.1f}); unpaired it would be {unpaired_se:.2%}")
# --8<-- [end:paired-se]
sobel_net = nets["sobel"]
record(
    paired_se=paired_se,
    paired_z=z,
    unpaired_se=unpaired_se,
    # Runs (seed, digit) where one model was right and the other wrong.
    disagreement_share=(correct["pixels"] != correct["sobel"]).mean(),
    lr=lr,
    sobel_test_accuracy=accuracies["sobel"].mean(),
    sobel_test_accuracy_std=accuracies["sobel"].std(ddof=1),
    pixels_test_accuracy=accuracies["pixels"].mean(),
    pixels_test_accuracy_std=accuracies["pixels"].std(ddof=1),
    sobel_accuracies=accuracies["sobel"].tolist(),
    pixels_accuracies=accuracies["pixels"].tolist(),
    signed_accuracies=accuracies["signed"].tolist(),
    unsigned_accuracies=accuracies["unsigned"].tolist(),
    # Per digit, in how many of the seeds' runs it was classified right.
    sobel_correct_counts=correct["sobel"].sum(axis=0).tolist(),
    pixels_correct_counts=correct["pixels"].sum(axis=0).tolist(),
    signed_correct_counts=correct["signed"].sum(axis=0).tolist(),
    unsigned_correct_counts=correct["unsigned"].sum(axis=0).tolist(),
    # The test set's sampling error (one standard error) over all digits.
    sampling_se=np.sqrt(
        accuracies["sobel"].mean()
        * (1 - accuracies["sobel"].mean())
        / num_images
    ),
    pixels_minus_sobel=difference,
    pixels_minus_sobel_images=difference * num_images,
    num_folds=4,
    num_seeds=num_seeds,
    num_cv_test=num_images,
    fold_test=len(first_fold.X_test),
    training_seconds=seconds,
    runs=4 * num_seeds * len(feature_maps),
    learned_parameters=count_parameters(sobel_net),
    fixed_kernel_numbers=SOBEL_X.numel() + SOBEL_Y.numel(),
    num_epochs=len(histories["sobel"]["test_accuracy"]),
    chance_accuracy=1 / 10,
)

# %% [markdown]
# ## One change at a time

# %%
# --8<-- [start:one-change]
for a, b in [
    ("signed", "sobel"),
    ("signed", "pixels"),
    ("unsigned", "sobel"),
    ("unsigned", "signed"),
    ("unsigned", "pixels"),
]:
    gap, gap_se, _ = compare(a, b)
    print(f"{a} - {b}: {gap:.2%} ± {gap_se:.2%} (paired standard error)")
    record(
        **{
            f"{a}_minus_{b}": gap,
            f"{a}_minus_{b}_se": gap_se,
            f"{a}_minus_{b}_z": gap / gap_se,
        }
    )
# --8<-- [end:one-change]
record(
    signed_test_accuracy=accuracies["signed"].mean(),
    signed_test_accuracy_std=accuracies["signed"].std(ddof=1),
    unsigned_test_accuracy=accuracies["unsigned"].mean(),
    unsigned_test_accuracy_std=accuracies["unsigned"].std(ddof=1),
)

# %%
fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.4))
# Two models, two categories: not the red/blue pair that means a sign.
styles = {  # markers on every fifth epoch, offset so that they do not overlap
    "sobel": ("Sobel edge map", "tab:orange", "o", "-", (0, 5)),
    "pixels": ("raw pixels", "tab:purple", "s", "--", (2, 5)),
}
for name, (label, colour, marker, line, every) in styles.items():
    epochs = np.arange(1, len(histories[name]["train_loss"]) + 1)
    style = dict(color=colour, marker=marker, ls=line, markevery=every)
    style["label"] = label
    loss_ax.plot(epochs, histories[name]["train_loss"], **style)
    acc_ax.plot(epochs, histories[name]["test_accuracy"], **style)
# train records each epoch's loss as its mini-batches were seen
loss_ax.set(xlabel="epoch", ylabel="training loss (cross-entropy)")
loss_ax.set_ylim(bottom=0)
# The accuracy axis starts at the multiple of 0.05 below the lowest point,
# not at 0, so that the gap near the top shows.
lowest = min(min(history["test_accuracy"]) for history in histories.values())
acc_ax.set(
    xlabel="epoch",
    ylabel="test accuracy (first fold)",
    ylim=(np.floor(lowest * 20) / 20, 1),
)
acc_ax.legend()
save_figure(fig, "training")

# %% [markdown]
# ## What the softmax learned
#
# Each class has one weight per edge-map pixel. Adding the same numbers to
# every class's weights leaves the softmax's probabilities as they were, so a
# class's weights say something only against the others': we draw each minus
# their mean over the ten classes, as an 8 × 8 image, red where edges raise
# the class's score against the average class's and blue where they lower it.

# %%
W = sobel_net.classifier.weight.detach().reshape(10, 8, 8)
W = W - W.mean(dim=0)  # against the average class
limit = W.abs().max().item()
fig, axes = plt.subplots(2, 5, figsize=(9, 4.2))
for digit, ax in enumerate(axes.flat):
    show_signed(ax, W[digit], limit, colorbar=False)
    ax.set_title(f"class {digit}")
    ax.axis("off")
fig.colorbar(
    axes[0, 0].images[0],
    ax=axes,
    shrink=0.8,
    label="weight − mean over classes",
)
save_figure(fig, "softmax_weights")

# %% [markdown]
# ## The pipeline, drawn
#
# One test digit of the first fold through that fold's trained pipeline:
# image, fixed kernels, edge map, learned softmax, class probabilities.

# %%
index = 0
x = first_fold.X_test[index : index + 1]
with torch.no_grad():
    probabilities = torch.softmax(sobel_net(x), dim=1)[0]

plt.rcParams["font.size"] = 12  # the wide figure is shown scaled down
fig = plt.figure(figsize=(12, 3.8))
grid = fig.add_gridspec(2, 5, width_ratios=[1, 0.6, 1, 2, 1.3], wspace=0.7)
image_ax = fig.add_subplot(grid[:, 0])
image_ax.imshow(x[0, 0], cmap="gray_r", vmin=0, vmax=1)  # ink dark on white
image_ax.set_title("input (8 × 8)")
for row, (kernel, name) in enumerate(
    [(SOBEL_X, "Sobel x"), (SOBEL_Y, "Sobel y")]
):
    ax = fig.add_subplot(grid[row, 1])
    show_signed(ax, kernel, limit=2, colorbar=False)
    for (r, c), value in np.ndenumerate(kernel.numpy()):
        colour = "white" if abs(value) > 1 else "black"  # dark cells: white
        ax.text(c, r, f"{value:g}", ha="center", va="center", color=colour)
    ax.set_title(f"{name} (fixed)")
edges_ax = fig.add_subplot(grid[:, 2])
show_unsigned(edges_ax, edge_magnitude(x)[0, 0], colorbar=False)
edges_ax.set_title("edge map (8 × 8):\nlength of (x, y)")
weights_ax = fig.add_subplot(grid[:, 3])
show_signed(  # nearest: each of the 640 weights stays one flat cell
    weights_ax,
    W.reshape(10, 64),
    limit,
    colorbar=False,
    aspect="auto",
    interpolation="nearest",
)
weights_ax.set_title(
    "softmax weights − mean over\nclasses (a row per class, 10 × 64)"
)
weights_ax.set_yticks(range(10))
bars_ax = fig.add_subplot(grid[:, 4])
bars_ax.barh(range(10), probabilities, color="0.4")
bars_ax.set_yticks(range(10))
bars_ax.invert_yaxis()
bars_ax.set(
    xlim=(0, 1),
    xlabel="probability",
    title=f"prediction\n(true label: {int(first_fold.y_test[index])})",
)
# A scale under every map but the kernels, whose numbers are written on them.
edges_max = edges_ax.images[0].get_clim()[1]
for ax, ticks in [
    (image_ax, [0, 1]),
    (edges_ax, np.arange(0, edges_max, 2)),
    (weights_ax, None),
]:
    fig.colorbar(
        ax.images[0],
        ax=ax,
        location="bottom",
        shrink=0.9,
        pad=0.03,
        ticks=ticks,
    )
panels = fig.axes[:5]  # every panel but the bar chart (and the colour bars)
for ax in panels:
    ax.spines[:].set_visible(False)
    ax.set_xticks([])
    if ax is not weights_ax:
        ax.set_yticks([])
renderer = fig.canvas.get_renderer()
to_figure = fig.transFigure.inverted()


def left_edge(ax):
    """The figure x where ax's drawing starts, tick labels and y label
    included, so that an arrow stops short of them."""
    box = ax.yaxis.get_tightbbox(renderer)
    x0 = ax.get_position().x0
    return x0 if box is None else min(x0, box.transformed(to_figure).x0)


for left, right in [
    (image_ax, edges_ax),
    (edges_ax, weights_ax),
    (weights_ax, bars_ax),
]:
    fig.add_artist(
        FancyArrowPatch(
            (left.get_position().x1 + 0.005, 0.5),
            (left_edge(right) - 0.005, 0.5),
            transform=fig.transFigure,
            arrowstyle="-|>",
            mutation_scale=14,
            color="0.4",
        )
    )
save_figure(fig, "pipeline")
