# %% [markdown]
# # Chapter 3, part 3: how many kernels? (native digits)
#
# The softmax pipeline with 1 to 64 learned kernels, each trained from three
# seeds under the book's protocol, on the native 8 × 8 digits. A run here
# takes about a second, so the sweep goes further than on the shifted digits.

# %%
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import torch

from book import (
    PROTOCOL,
    LearnedKernelSoftmax,
    accuracy,
    load_dataset,
    record,
    run_trials,
    save_figure,
    setup,
)

setup()


# %% [markdown]
# ## The sweep


# %%
# --8<-- [start:sweep]
def sweep(data, counts):
    """run_trials for a bank of each size in counts: {N: trials}."""
    counts = list(counts)
    if not counts or any(int(N) != N or N < 1 for N in counts):
        raise ValueError(
            f"kernel counts must be positive integers, got {counts}"
        )
    H = data.X_train.shape[-1]  # square images: H = W
    trials = {}
    for N in counts:
        make_net = partial(LearnedKernelSoftmax, num_kernels=N, image_size=H)
        trials[N] = run_trials(make_net, data)  # PROTOCOL: 3 seeds
    return trials


data = load_dataset("digits")
trials = sweep(data, counts=[1, 2, 4, 8, 16, 32, 64])
for N, trial in trials.items():
    print(
        f"{N:2} kernels: {trial['mean']:.3f} ± {trial['std']:.3f} "
        f"({trial['parameters']:,} parameters, {trial['seconds']:.1f} s)"
    )
# --8<-- [end:sweep]

ROW = 16  # the bank size for the book's results table
record(
    counts=list(trials),
    num_seeds=len(PROTOCOL["seeds"]),
    num_epochs=PROTOCOL["num_epochs"],
    image_size=data.X_train.shape[-1],
    num_train=len(data.X_train),
    chance_accuracy=1 / 10,
    largest_count=max(trials),
    row_many_kernels_count=ROW,
    row_many_kernels_digits_mean=trials[ROW]["mean"],
    row_many_kernels_digits_std=trials[ROW]["std"],
    row_many_kernels_digits_parameters=trials[ROW]["parameters"],
    row_many_kernels_digits_seconds=trials[ROW]["seconds"],
    sweep_seconds=sum(
        len(t["accuracies"]) * t["seconds"] for t in trials.values()
    ),
)
# run_trials keeps only the last seed's net: how well it fits its training set.
train_accuracy = {
    N: accuracy(trial["net"], data.X_train, data.y_train)
    for N, trial in trials.items()
}
for N, trial in trials.items():
    record(
        **{
            f"mean_{N}": trial["mean"],
            f"std_{N}": trial["std"],
            f"accuracies_{N}": trial["accuracies"],
            f"parameters_{N}": trial["parameters"],
            f"seconds_{N}": trial["seconds"],
            f"train_accuracy_{N}": train_accuracy[N],
        }
    )


# %% [markdown]
# ## Accuracy against the number of kernels


# %%
def plot_sweep(trials, train_accuracy, title, chance=0.1):
    """Mean test accuracy with error bars (one std) against the bank size,
    and the last seed's training accuracy."""
    counts = list(trials)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(
        counts,
        [train_accuracy[N] for N in counts],
        color="tab:orange",
        ls="--",
        marker=".",
        label="training accuracy (last seed)",
    )
    ax.errorbar(
        counts,
        [trials[N]["mean"] for N in counts],
        yerr=[trials[N]["std"] for N in counts],
        marker="o",
        capsize=4,
        label=f"test accuracy, mean ± std over {len(PROTOCOL['seeds'])} seeds",
    )
    for N in counts:  # each seed's result, faint
        ax.scatter(
            [N] * len(trials[N]["accuracies"]),
            trials[N]["accuracies"],
            color="tab:blue",
            alpha=0.3,
            s=12,
        )
    if chance is not None:
        ax.axhline(chance, color="0.5", ls=":", label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xticks(counts, [str(N) for N in counts])
    ax.set(xlabel="number of kernels N", ylabel="accuracy", title=title)
    ax.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=9
    )
    return fig


fig = plot_sweep(trials, train_accuracy, "native digits (8 × 8)", None)
save_figure(fig, "sweep_digits")


# %% [markdown]
# ## The learned bank and its feature maps
#
# The bank of the results table's row, from the last seed's run: each kernel
# above the feature map it makes from the first test image.


# %%
# --8<-- [start:feature-maps]
def feature_maps(net, X):
    """The ReLU feature maps (N, C_out, H, W) of net's kernels on X."""
    X = torch.as_tensor(X, dtype=torch.float32)
    C_in = net.conv.in_channels
    if X.dim() != 4 or X.shape[1] != C_in:
        raise ValueError(
            f"expected images of shape (N, {C_in}, H, W), "
            f"got shape {tuple(X.shape)}"
        )
    with torch.no_grad():
        return torch.relu(net.conv(X))


net = trials[ROW]["net"]  # run_trials keeps the last seed's net
K = net.conv.weight.detach()  # (C_out, C_in, k, k) = (16, 1, 3, 3)
maps = feature_maps(net, data.X_test[:1])  # (1, 16, H, W)
# --8<-- [end:feature-maps]
# 1: the weights share one sign and average (a blur); 0: they cancel (Sobel).
one_sign = K.sum(dim=(1, 2, 3)).abs() / K.abs().sum(dim=(1, 2, 3))
# The share of each map the ReLU sets to zero, over all the test images.
zeros = (feature_maps(net, data.X_test) == 0).float().mean(dim=(0, 2, 3))
ONE_SIGN, BALANCED, SPARSE = 0.5, 0.25, 0.9  # thresholds for the prose
sparse = zeros > SPARSE  # maps the ReLU leaves (nearly) empty
record(
    bank_label=int(data.y_test[0]),
    bank_one_sign_kernels=int((one_sign > ONE_SIGN).sum()),
    bank_balanced_kernels=int((one_sign < BALANCED).sum()),
    bank_sparse_maps=int(sparse.sum()),
    # The largest bias among the kernels of those nearly empty maps.
    bank_sparse_max_bias=(
        net.conv.bias[sparse].max().item() if sparse.any() else None
    ),
    one_sign_above=ONE_SIGN,
    balanced_below=BALANCED,
    sparse_above=SPARSE,
)


# %%
def draw_learned_bank(K, x, maps, label, columns=8):
    """Each (1, k, k) kernel of K above its feature map on the image x."""
    K, x, maps = (np.asarray(a, dtype=np.float32) for a in (K, x, maps))
    if K.ndim != 4 or K.shape[1] != 1 or len(maps) != len(K):
        raise ValueError(
            f"expected kernels (C_out, 1, k, k) and C_out maps, got kernels "
            f"{K.shape} and {len(maps)} maps"
        )
    rows = 2 * -(-len(K) // columns)  # a kernel row and a map row per line
    fig = plt.figure(figsize=(10, 1.05 * rows + 0.3))
    grid = fig.add_gridspec(
        rows, columns + 2, width_ratios=[2.6, 0.2] + [1] * columns
    )
    ax = fig.add_subplot(grid[rows // 2 - 1 : rows // 2 + 1, 0])
    ax.imshow(x.squeeze(), cmap="gray_r")
    ax.set_title(f"input: a {label}")
    ax.axis("off")
    limit = np.abs(K).max()  # one colour scale for every kernel
    for i in range(len(K)):
        row, col = 2 * (i // columns), 2 + i % columns
        kernel_ax = fig.add_subplot(grid[row, col])
        kernel_ax.imshow(K[i, 0], cmap="RdBu_r", vmin=-limit, vmax=limit)
        kernel_ax.set_title(f"kernel {i + 1}", fontsize=9)
        map_ax = fig.add_subplot(grid[row + 1, col])
        map_ax.imshow(maps[i], cmap="gray_r", vmin=0)
        for ax in (kernel_ax, map_ax):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(True)
            ax.spines[:].set_color("0.75")
    return fig


fig = draw_learned_bank(K, data.X_test[0], maps[0], int(data.y_test[0]))
save_figure(fig, "learned_bank_digits")
