# %% [markdown]
# # Chapter 2, part 2: learn a kernel for the task
#
# Chapter 1's pipeline with its kernel set free: one learnable 3 × 3 kernel,
# ReLU, and a softmax layer, trained end to end on the digits. We compare it
# with fixed Sobel kernels under exactly the same layers and training budget,
# and with two baselines (raw pixels, chapter 1's edge map), then try them on
# a harder version of the digits.

# %%
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import PercentFormatter
from torch import nn

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
#
# Ten seeds each, and two baselines without a learned kernel.

# %%
# --8<-- [start:data]
data = load_dataset("digits")  # chapter 1's split: 1347 training, 450 test
H = data.X_train.shape[-1]  # 8: the images are 8 × 8
print(PROTOCOL)  # the book's training protocol (snippets/book.py)
# --8<-- [end:data]


# --8<-- [start:fixed-kernel]
def fixed_kernel_net(K, image_size):
    """LearnedKernelSoftmax with its nine kernel weights set to K and frozen."""
    net = LearnedKernelSoftmax(num_kernels=1, image_size=image_size)
    with torch.no_grad():
        net.conv.weight.copy_(K)  # (3, 3) into the (1, 1, 3, 3) weight
    net.conv.weight.requires_grad_(False)  # the bias and softmax still learn
    return net


# --8<-- [end:fixed-kernel]


# --8<-- [start:baselines]
def raw_pixels(image_size):
    """No kernel at all: the softmax on the pixels themselves."""
    return FixedFilterSoftmax(nn.Identity(), image_size**2)


def fixed_pipeline(image_size):
    """Chapter 1's pipeline: the Sobel edge map, then the softmax."""
    return FixedFilterSoftmax(edge_magnitude, image_size**2)


# --8<-- [end:baselines]

# %%
# --8<-- [start:compare]
COMPARE = {**PROTOCOL, "seeds": tuple(range(10))}  # more seeds than the table
initial_kernels = []  # the learned kernels' random starts


def kept(store, make_net):
    """make_net, keeping every net it makes in store (run_trials trains it
    in place), to look at each seed's trained net afterwards."""

    def make_and_keep():
        net = make_net()
        store.append(net)
        return net

    return make_and_keep


def learned_kernel_net():
    net = LearnedKernelSoftmax(num_kernels=1, image_size=H)
    initial_kernels.append(net.conv.weight.detach().clone())
    return net


print(COMPARE)  # the book's optimiser, epochs and lr; ten seeds
makers = {
    "raw pixels": partial(raw_pixels, H),
    "edge map": partial(fixed_pipeline, H),
    "fixed Sobel x": partial(fixed_kernel_net, SOBEL_X, H),
    "fixed Sobel y": partial(fixed_kernel_net, SOBEL_Y, H),
    "learned kernel": learned_kernel_net,
}
nets = {name: [] for name in makers}  # every seed's trained net
trials, first_three = {}, {}
for name, make_net in makers.items():
    make_net = kept(nets[name], make_net)
    # PROTOCOL's seeds first: the results table below reuses these runs
    first_three[name] = run_trials(make_net, data, curve=True)  # for a figure
    others = {**PROTOCOL, "seeds": COMPARE["seeds"][3:]}
    rest = run_trials(make_net, data, others)
    accuracies = first_three[name]["accuracies"] + rest["accuracies"]
    trials[name] = {
        "accuracies": accuracies,
        "mean": float(np.mean(accuracies)),
        "std": float(np.std(accuracies, ddof=1)),
        "parameters": rest["parameters"],
    }
for name, trial in trials.items():
    print(
        f"{name:>14}: {trial['mean']:.3f} ± {trial['std']:.3f} test "
        f"accuracy, {trial['parameters']} trainable parameters"
    )
# --8<-- [end:compare]

# %% [markdown]
# A kernel whose ReLU output is zero on every training image passes no
# gradient back: it never moves again, and the softmax sees only zeros.


# %%
# --8<-- [start:dead]
def is_dead(net, X):
    """True if the ReLU sets net's feature map to zero on every image in X."""
    with torch.no_grad():
        return bool(torch.relu(net.conv(X)).amax() == 0)


dead = [is_dead(net, data.X_train) for net in nets["learned kernel"]]
print(f"{sum(dead)} of {len(dead)} learned kernels died")
# --8<-- [end:dead]


# %%
def spread(prefix, accuracies):
    """Mean, sample standard deviation, worst and best of some accuracies."""
    return {
        f"{prefix}_mean": float(np.mean(accuracies)),
        f"{prefix}_std": float(np.std(accuracies, ddof=1)),
        f"{prefix}_min": min(accuracies),
        f"{prefix}_max": max(accuracies),
        f"{prefix}_accuracies": list(accuracies),
    }


def share_correct(net_list, split):
    """For each test image, the share of the nets that classify it right."""
    with torch.no_grad():
        right = [
            net(split.X_test).argmax(dim=1) == split.y_test for net in net_list
        ]
    return torch.stack(right).float().mean(dim=0).tolist()


alive = [net for net, d in zip(nets["learned kernel"], dead) if not d]
kernels = torch.stack([net.conv.weight.detach()[0, 0] for net in alive])
# ReLU(c (K * x + b)) = c ReLU(K * x + b) for c > 0, and the softmax can undo
# c: only the direction of [K, b] matters, so compare those directions.
directions = torch.stack(
    [torch.cat([net.conv.weight.flatten(), net.conv.bias]) for net in alive]
).detach()
directions = directions / directions.norm(dim=1, keepdim=True)
cosines = directions @ directions.T
starts = torch.stack([K[0, 0] for K, d in zip(initial_kernels, dead) if not d])
sobel_x_after = nets["fixed Sobel x"][-1].conv.weight.detach()[0, 0]
kernel_sums = kernels.sum(dim=(1, 2))
record(
    num_seeds=len(PROTOCOL["seeds"]),
    num_compare_seeds=len(COMPARE["seeds"]),
    num_epochs=PROTOCOL["num_epochs"],
    lr=PROTOCOL["lr"],
    image_size=H,
    num_test=len(data.X_test),
    dead_runs=sum(dead),
    alive_runs=len(alive),
    **spread("pixels", trials["raw pixels"]["accuracies"]),
    **spread("edge_map", trials["edge map"]["accuracies"]),
    **spread("sobel_x", trials["fixed Sobel x"]["accuracies"]),
    **spread("sobel_y", trials["fixed Sobel y"]["accuracies"]),
    **spread("learned", trials["learned kernel"]["accuracies"]),  # every run
    pixels_correct=share_correct(nets["raw pixels"], data),
    edge_map_correct=share_correct(nets["edge map"], data),
    sobel_x_correct=share_correct(nets["fixed Sobel x"], data),
    sobel_y_correct=share_correct(nets["fixed Sobel y"], data),
    learned_correct=share_correct(nets["learned kernel"], data),
    fixed_kernel_parameters=trials["fixed Sobel x"]["parameters"],
    learned_kernel_parameters=trials["learned kernel"]["parameters"],
    fixed_kernel_change=(sobel_x_after - SOBEL_X).abs().max().item(),
    kernel_moves=(kernels - starts).abs().amax(dim=(1, 2)).tolist(),
    kernel_move=(kernels - starts).abs().amax(dim=(1, 2)).min().item(),
    init_bound=1 / (3 * 3) ** 0.5,  # PyTorch: ±1 / sqrt(fan-in), fan-in 9
    init_max=torch.stack(initial_kernels).abs().max().item(),
    kernel_sums=kernel_sums.tolist(),
    min_kernel_sum=kernel_sums.min().item(),
    mean_kernel_sum=kernel_sums.mean().item(),
    positive_sum_kernels=int((kernel_sums > 0).sum()),
    sobel_kernel_sum=SOBEL_X.sum().item(),
    min_kernel_difference=min(
        (kernels[i] - kernels[j]).abs().max().item()
        for i in range(len(kernels))
        for j in range(i)
    ),
    learned_kernels=kernels.tolist(),
    max_kernel_cosine=max(
        cosines[i, j].item() for i in range(len(alive)) for j in range(i)
    ),
    batch_size=PROTOCOL["batch_size"],
)


# %%
# --8<-- [start:differences]
def paired_difference(a, b):
    """Mean accuracy of model a minus model b, and its standard error: the
    spread over seeds of each, plus the sampling error of the test digits,
    computed digit by digit (both are scored on the same digits)."""
    accuracies = [trials[name]["accuracies"] for name in (a, b)]
    seed_variance = sum(np.var(x, ddof=1) / len(x) for x in accuracies)
    d = np.subtract(share_correct(nets[a], data), share_correct(nets[b], data))
    se = np.sqrt(seed_variance + d.var(ddof=1) / len(d))
    return np.mean(accuracies[0]) - np.mean(accuracies[1]), se


KEYS = {  # each model's name in the recorded keys, as in spread() above
    "raw pixels": "pixels",
    "edge map": "edge_map",
    "fixed Sobel x": "sobel_x",
    "fixed Sobel y": "sobel_y",
    "learned kernel": "learned",
}
names = list(trials)
for i, a in enumerate(names):
    for b in names[i + 1 :]:
        effect, se = paired_difference(a, b)
        verdict = "clear" if abs(effect) >= 2 * se else "not clear"
        print(f"{a} − {b}: {effect:+.1%} ± {se:.1%} (SE), {verdict}")
        # --8<-- [end:differences]
        key = f"{KEYS[a]}_vs_{KEYS[b]}"
        record(
            **{
                f"diff_{key}": float(effect),
                f"se_{key}": float(se),
                f"verdict_{key}": verdict,
            }
        )


# %%
# Left: the whole axis from 0; right: zoomed on the runs above chance.
every = np.concatenate([trials[name]["accuracies"] for name in names])
trained = every[every > 0.5]  # a dead run (at chance) shows on the left only
zoom_range = (trained.min() - 0.01, trained.max() + 0.01)
fig, (ax, zoom) = plt.subplots(
    1, 2, figsize=(8.4, 3.4), sharey=True, gridspec_kw={"wspace": 0.08}
)
for panel in (ax, zoom):
    for row, name in enumerate(names):
        accuracies = trials[name]["accuracies"]
        panel.plot(
            accuracies, [row] * len(accuracies), "o", color="0.3", alpha=0.5
        )
        mean = np.mean(accuracies)
        panel.plot([mean, mean], [row - 0.3, row + 0.3], color="black", lw=2)
    panel.xaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
    panel.set_xlabel("test accuracy", fontsize=9)
for row, name in enumerate(names):
    mean = np.mean(trials[name]["accuracies"])
    zoom.text(
        zoom_range[1] + 0.002, row, f"mean {mean:.1%}", va="center", fontsize=9
    )
ax.set_yticks(range(len(names)), names)
ax.invert_yaxis()
ax.set(xlim=(0, 1), title="axis from 0")
ax.set_xticks([0, 0.25, 0.5, 0.75, 1])
zoom.set(xlim=zoom_range, title="zoomed (axis does not start at 0)")
fig.text(
    0.5,
    -0.06,
    f"dots: the {len(COMPARE['seeds'])} seeds; bar: their mean",
    ha="center",
    fontsize=9,
)
save_figure(fig, "compare")

# %% [markdown]
# ## What the kernel learned
#
# Three learned kernels (the first three runs that trained) beside the
# Sobel kernels, and the feature map each makes of one test digit (after the
# ReLU).

# %%
x = data.X_test[:1]  # one test digit, (1, 1, 8, 8)
columns = [(name, nets[name][0]) for name in ("fixed Sobel x", "fixed Sobel y")]
columns += [(f"learned, run {i + 1}", net) for i, net in enumerate(alive[:3])]
fig, axes = plt.subplots(2, len(columns) + 1, figsize=(8.2, 3.6))
fig.subplots_adjust(left=0, right=0.9, wspace=0.08, hspace=0.3)
axes[0, 0].imshow(x[0, 0].numpy(), cmap="gray_r")
axes[0, 0].set_title(f"test digit ({int(data.y_test[0])})", fontsize=8)
axes[0, 0].axis("off")
axes[1, 0].axis("off")
for column, (title, net) in enumerate(columns, start=1):
    draw_kernel(axes[0, column], net.conv.weight[0, 0], fontsize=8)
    axes[0, column].set_title(title, fontsize=8)
    with torch.no_grad():
        feature_map = torch.relu(net.conv(x))[0, 0].numpy()
    # Never negative: white 0, black the map's own largest value.
    top = max(feature_map.max(), 1e-12)  # a dead map: all white
    axes[1, column].imshow(feature_map / top, cmap="gray_r", vmin=0, vmax=1)
    axes[1, column].set_title("its feature map", fontsize=8)
    axes[1, column].axis("off")
colour_bar = fig.colorbar(
    axes[0, 1].images[0], cax=fig.add_axes([0.92, 0.55, 0.015, 0.33])
)
colour_bar.set_label("weight", fontsize=8)
colour_bar.ax.tick_params(labelsize=8)
colour_bar = fig.colorbar(
    axes[1, 1].images[0], cax=fig.add_axes([0.92, 0.1, 0.015, 0.33])
)
colour_bar.set_label("map ÷ its largest value", fontsize=8)
colour_bar.ax.tick_params(labelsize=8)
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
examples = [int(torch.nonzero(data.y_train == d)[0]) for d in range(10)]
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
# ## The first rows of the results table, on both datasets
#
# Raw pixels, chapter 1's fixed-filter pipeline (the Sobel edge map, then the
# softmax) and one learned kernel, each trained under the book's protocol.


# %%
# --8<-- [start:table]
def one_kernel(image_size):
    return LearnedKernelSoftmax(num_kernels=1, image_size=image_size)


models = {"raw": raw_pixels, "fixed": fixed_pipeline, "one_kernel": one_kernel}
# On the digits the rows are the comparison's runs from PROTOCOL's seeds.
same = {  # each row's name in the comparison
    "raw": "raw pixels",
    "fixed": "edge map",
    "one_kernel": "learned kernel",
}
rows = {"digits": {row: first_three[same[row]] for row in models}}
table_nets = {(row, "digits"): nets[same[row]][:3] for row in models}
rows["shifted"] = {}
for row, model in models.items():
    make_net = partial(model, shifted.X_train.shape[-1])
    make_net = kept(table_nets.setdefault((row, "shifted"), []), make_net)
    rows["shifted"][row] = run_trials(make_net, shifted, curve=True)
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
            **spread(name, trial["accuracies"]),
            # the last seed's net, on its training and its test images
            **{
                f"{name}_correct": share_correct(
                    table_nets[row, dataset], split
                ),
                f"{name}_train_accuracy": accuracy(
                    trial["net"], split.X_train, split.y_train
                ),
                f"{name}_last_test_accuracy": trial["accuracies"][-1],
            },
        )
record(chance_accuracy=1 / 10)

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
labels = {
    "raw": "raw pixels",
    "fixed": "fixed Sobel edge map",
    "one_kernel": "one learned kernel",
}
styles = {  # categories: not the red/blue pair that means sign
    "raw": {"color": "tab:orange", "marker": "o", "ms": 3},
    "fixed": {"color": "tab:purple", "ls": "--", "marker": "s", "ms": 3},
    "one_kernel": {"color": "tab:green", "ls": "-.", "marker": "^", "ms": 3},
}
titles = {"digits": "digits (8 × 8)", "shifted": "shifted digits (24 × 24)"}
for ax, (dataset, trials_on) in zip(axes, rows.items()):
    for row, trial in trials_on.items():
        history = trial["history"]
        epochs = np.arange(1, len(history["test_accuracy"]) + 1)
        accuracy_curve = history["test_accuracy"]
        ax.plot(epochs, accuracy_curve, label=labels[row], **styles[row])
    ax.axhline(0.1, color="0.5", ls=":", label="chance")
    ax.set(title=titles[dataset], xlabel="epoch", ylim=(0, 1))
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
axes[0].set_ylabel("test accuracy (seed 2)")
axes[1].legend()
save_figure(fig, "table_training")
