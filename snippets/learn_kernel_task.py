# %% [markdown]
# # Chapter 2, part 2: learn a kernel for the task
#
# Chapter 1's pipeline with its kernel set free: one learnable 3 × 3 kernel,
# ReLU, and a softmax layer, trained end to end on the digits. We compare it
# with the fixed Sobel kernels under exactly the same layers and training
# budget, then try both on a harder version of the digits.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from book import (
    PROTOCOL,
    SOBEL_X,
    SOBEL_Y,
    FixedFilterSoftmax,
    LearnedKernelSoftmax,
    accuracy,
    draw_kernel,
    edge_magnitude,
    load_dataset,
    record,
    run_trials,
    save_figure,
    setup,
    table_row,
)

setup()

# %% [markdown]
# ## A fixed kernel and a learned one, with the same layers after them

# %%
data = load_dataset("digits")
H = data.X_train.shape[-1]  # 8: the images are 8 × 8


# --8<-- [start:fixed-kernel]
def fixed_kernel_net(K, image_size):
    """LearnedKernelSoftmax with its kernel set to K and frozen."""
    net = LearnedKernelSoftmax(num_kernels=1, image_size=image_size)
    with torch.no_grad():
        net.conv.weight.copy_(K)  # (3, 3) into the (1, 1, 3, 3) weight
        net.conv.bias.zero_()
    net.conv.requires_grad_(False)  # train() gives Adam only the softmax
    return net


# --8<-- [end:fixed-kernel]

# %%
# --8<-- [start:compare]
learned_nets, initial_kernels = [], []  # kept to draw the kernels later


def learned_kernel_net():
    net = LearnedKernelSoftmax(num_kernels=1, image_size=H)
    learned_nets.append(net)  # run_trials trains it in place
    initial_kernels.append(net.conv.weight.detach().clone())
    return net


print(PROTOCOL)  # the same optimiser, epochs, lr and seeds for every model
trials = {
    "fixed Sobel x": run_trials(lambda: fixed_kernel_net(SOBEL_X, H), data),
    "fixed Sobel y": run_trials(lambda: fixed_kernel_net(SOBEL_Y, H), data),
    "learned kernel": run_trials(learned_kernel_net, data),
}
for name, trial in trials.items():
    print(
        f"{name:>14}: {trial['mean']:.3f} ± {trial['std']:.3f} test "
        f"accuracy, {trial['parameters']} trainable parameters"
    )
# --8<-- [end:compare]


# %%
def spread(prefix, trial):
    """A trial's mean, standard deviation, worst and best seed, to record."""
    return {
        f"{prefix}_mean": trial["mean"],
        f"{prefix}_std": trial["std"],
        f"{prefix}_min": min(trial["accuracies"]),
        f"{prefix}_max": max(trial["accuracies"]),
    }


learned = trials["learned kernel"]
best_fixed = max(
    trials["fixed Sobel x"]["mean"], trials["fixed Sobel y"]["mean"]
)
kernels = torch.stack([net.conv.weight.detach()[0, 0] for net in learned_nets])
starts = torch.stack([K[0, 0] for K in initial_kernels])
sobel_x_after = trials["fixed Sobel x"]["net"].conv.weight.detach()[0, 0]
record(
    num_seeds=len(PROTOCOL["seeds"]),
    num_epochs=PROTOCOL["num_epochs"],
    lr=PROTOCOL["lr"],
    image_size=H,
    **spread("sobel_x", trials["fixed Sobel x"]),
    **spread("sobel_y", trials["fixed Sobel y"]),
    **spread("learned", learned),
    learned_gain=learned["mean"] - best_fixed,
    fixed_kernel_parameters=trials["fixed Sobel x"]["parameters"],
    learned_kernel_parameters=learned["parameters"],
    fixed_kernel_change=(sobel_x_after - SOBEL_X).abs().max().item(),
    kernel_move=(kernels - starts).abs().amax(dim=(1, 2)).min().item(),
    init_bound=1 / (3 * 3) ** 0.5,  # PyTorch: ±1 / sqrt(fan-in), fan-in 9
    init_max=starts.abs().max().item(),
    min_kernel_sum=kernels.sum(dim=(1, 2)).min().item(),
    sobel_kernel_sum=SOBEL_X.sum().item(),
    min_kernel_difference=min(
        (kernels[i] - kernels[j]).abs().max().item()
        for i in range(len(kernels))
        for j in range(i)
    ),
    learned_kernels=kernels.tolist(),
)

# %%
names = list(trials)
fig, ax = plt.subplots(figsize=(7, 2.6))
for row, name in enumerate(names):
    trial = trials[name]
    ax.barh(row, trial["mean"], color="tab:blue", alpha=0.5)
    ax.plot(trial["accuracies"], [row] * len(trial["accuracies"]), "k.")
    right = max(trial["accuracies"]) + 0.004
    ax.text(right, row, f"{trial['mean']:.1%}", va="center")
ax.set_yticks(range(len(names)), names)
ax.invert_yaxis()
ax.set(xlim=(0.8, 1), xlabel="test accuracy (bar: mean; dots: the 3 seeds)")
save_figure(fig, "compare")

# %% [markdown]
# ## What the kernel learned
#
# The three learned kernels (one per seed) beside the Sobel kernels, and the
# feature map each makes of one test digit (after the ReLU).

# %%
x = data.X_test[:1]  # one test digit, (1, 1, 8, 8)
columns = [("fixed Sobel x", trials["fixed Sobel x"]["net"])]
columns.append(("fixed Sobel y", trials["fixed Sobel y"]["net"]))
columns += [(f"learned, seed {s}", net) for s, net in enumerate(learned_nets)]
fig, axes = plt.subplots(2, len(columns) + 1, figsize=(7.5, 3.6))
fig.subplots_adjust(left=0, right=1, wspace=0.08, hspace=0.3)
axes[0, 0].imshow(x[0, 0].numpy(), cmap="gray_r")
axes[0, 0].set_title(f"test digit ({int(data.y_test[0])})", fontsize=8)
axes[0, 0].axis("off")
axes[1, 0].axis("off")
for column, (title, net) in enumerate(columns, start=1):
    draw_kernel(axes[0, column], net.conv.weight[0, 0], fontsize=7.5)
    axes[0, column].set_title(title, fontsize=8)
    with torch.no_grad():
        feature_map = torch.relu(net.conv(x))[0, 0].numpy()
    axes[1, column].imshow(feature_map, cmap="gray_r")
    axes[1, column].set_title("its feature map", fontsize=8)
    axes[1, column].axis("off")
save_figure(fig, "learned_kernels")

# %% [markdown]
# ## A harder dataset: shifted digits
#
# Each digit, scaled by 1 to 1.75, at a random place on a 24 × 24 canvas of
# noise. The training set holds every training digit twice, placed anew.

# %%
# --8<-- [start:shifted]
shifted = load_dataset("shifted_digits")
print(shifted.X_train.shape, shifted.X_test.shape)  # (N, C, H, W)
# --8<-- [end:shifted]
n = len(data.X_train)  # shifted.X_train[i] and [i + n] are data.X_train[i]
record(
    shifted_size=shifted.X_train.shape[-1],
    shifted_num_train=len(shifted.X_train),
    shifted_num_test=len(shifted.X_test),
    shifted_copies=len(shifted.X_train) // n,
    shifted_pixels=shifted.X_train[0].numel(),
    digit_pixels=data.X_train[0].numel(),
)

# %%
size = shifted.X_train.shape[-1]
examples = [int(torch.nonzero(data.y_train == d)[0]) for d in range(0, 10, 2)]
examples += [int(torch.nonzero(data.y_train == d)[0]) for d in range(1, 10, 2)]
fig, axes = plt.subplots(3, len(examples), figsize=(7.5, 2.9))
fig.subplots_adjust(left=0.04, right=1, wspace=0.1, hspace=0.15)
for column, i in enumerate(examples):
    native = torch.zeros(size, size)  # the 8 × 8 digit, drawn to scale
    offset = (size - H) // 2
    native[offset : offset + H, offset : offset + H] = data.X_train[i, 0]
    panels = [native, shifted.X_train[i, 0], shifted.X_train[i + n, 0]]
    for row, image in enumerate(panels):
        axes[row, column].imshow(image.numpy(), cmap="gray_r", vmin=0, vmax=1)
        axes[row, column].set_xticks([])
        axes[row, column].set_yticks([])
        axes[row, column].spines[:].set(visible=True, color="0.75")
    axes[0, column].set_title(f"label {int(data.y_train[i])}", fontsize=8)
for row, label in enumerate(["8 × 8", "placed", "again"]):
    axes[row, 0].set_ylabel(label, fontsize=8)
save_figure(fig, "shifted_examples")

# %% [markdown]
# ## Two rows of the results table, on both datasets
#
# Chapter 1's fixed-filter pipeline (the Sobel edge map, then the softmax)
# and one learned kernel, each trained under the book's protocol.


# %%
# --8<-- [start:table]
def fixed_pipeline(image_size):
    """Chapter 1's pipeline: the Sobel edge map, then the softmax."""
    return FixedFilterSoftmax(edge_magnitude, image_size**2)


def one_kernel(image_size):
    return LearnedKernelSoftmax(num_kernels=1, image_size=image_size)


rows = {
    "digits": {
        "fixed": run_trials(lambda: fixed_pipeline(8), data),
        "one_kernel": trials["learned kernel"],  # the same runs as above
    },
    "shifted": {
        "fixed": run_trials(lambda: fixed_pipeline(24), shifted),
        "one_kernel": run_trials(lambda: one_kernel(24), shifted),
    },
}
for dataset, trials_on in rows.items():
    for row, trial in trials_on.items():
        print(
            f"{row:>10} on {dataset:<7}: {trial['mean']:.3f} ± "
            f"{trial['std']:.3f}, {trial['parameters']:>5} parameters, "
            f"{trial['seconds']:.1f} s per run"
        )
# --8<-- [end:table]

# %%
for dataset, trials_on in rows.items():
    split = data if dataset == "digits" else shifted
    for row, trial in trials_on.items():
        name = f"{row}_{dataset}"
        record(
            **table_row(name, trial),  # the keys of the book's results table
            **spread(name, trial),
            # the last seed's net, on its training and its test images
            **{
                f"{name}_train_accuracy": accuracy(
                    trial["net"], split.X_train, split.y_train
                ),
                f"{name}_last_test_accuracy": trial["accuracies"][-1],
            },
        )
record(chance_accuracy=1 / 10)

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
labels = {"fixed": "fixed Sobel edge map", "one_kernel": "one learned kernel"}
titles = {"digits": "digits (8 × 8)", "shifted": "shifted digits (24 × 24)"}
for ax, (dataset, trials_on) in zip(axes, rows.items()):
    for row, trial in trials_on.items():
        history = trial["history"]
        epochs = np.arange(1, len(history["test_accuracy"]) + 1)
        ax.plot(epochs, history["test_accuracy"], label=labels[row])
    ax.axhline(0.1, color="0.5", ls=":", label="chance")
    ax.set(title=titles[dataset], xlabel="epoch", ylim=(0, 1))
axes[0].set_ylabel("test accuracy (seed 2)")
axes[1].legend()
save_figure(fig, "table_training")
