# %% [markdown]
# # Chapter 4, part 2: a small CNN on shifted digits
#
# Three layers of learned kernels with pooling between them, trained on the
# harder variant of the digits: each digit scaled and placed at random on a
# noisy 24 × 24 canvas. We look at its feature maps at each depth and measure
# how much of the canvas its deepest units see.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle
from torch import nn

from book import (
    PROTOCOL,
    LearnedKernelSoftmax,
    SmallCNN,
    count_parameters,
    extent,
    input_gradient,
    load_dataset,
    output_dir,
    receptive_field,
    record,
    run_trials,
    save_figure,
    setup,
    table_row,
)
from layers_ops import RUNS_FILE, save_runs

setup()

# %% [markdown]
# ## The data and the network

# %%
# --8<-- [start:data]
data = load_dataset("shifted_digits")
print(data.X_train.shape, data.X_test.shape)  # (N, C, H, W)
# --8<-- [end:data]

# %%
# --8<-- [start:net]
net = SmallCNN(image_size=24)
print(net)
print(count_parameters(net), "parameters")
# --8<-- [end:net]

# %% [markdown]
# ## Train it, three times


# %%
# --8<-- [start:trials]
nets = []  # each seed's net, trained in place: used again further down


def make_net():
    nets.append(SmallCNN(image_size=24))
    return nets[-1]


# book.PROTOCOL: seeds, epochs, Adam; curve: the last seed's test accuracy
# after every epoch, for the figure below
shifted = run_trials(make_net, data, curve=True)
print(f"test accuracy {shifted['mean']:.3f} ± {shifted['std']:.3f}")
print(f"{shifted['seconds']:.1f} s of training per run")
# --8<-- [end:trials]
record(
    **table_row("cnn_shifted", shifted),
    cnn_accuracies=shifted["accuracies"],
    worst_seed_accuracy=min(shifted["accuracies"]),
    num_seeds=len(PROTOCOL["seeds"]),
    num_epochs=PROTOCOL["num_epochs"],
    protocol_lr=PROTOCOL["lr"],
    protocol_batch_size=PROTOCOL["batch_size"],
    num_train=len(data.X_train),
    num_test=len(data.X_test),
)

# %% [markdown]
# ## What a forward pass costs
#
# Multiply-adds per image, counted on the layers as they run, for the CNN
# and for chapter 3's bank of 16 kernels.


# %%
# --8<-- [start:cost]
def multiply_adds(net, X):
    """Multiply-adds of net's convolutions and linear layers for one image."""
    counts = []

    def count(layer, inputs, output):  # each output number: one kernel's sum
        counts.append(output[0].numel() * layer.weight[0].numel())

    layers = [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    hooks = [layer.register_forward_hook(count) for layer in layers]
    with torch.no_grad():
        net.eval()(X[:1])
    for hook in hooks:
        hook.remove()
    return sum(counts)


cnn_cost = multiply_adds(SmallCNN(image_size=24), data.X_test)
bank_cost = multiply_adds(LearnedKernelSoftmax(16, image_size=24), data.X_test)
print(f"CNN {cnn_cost:,}, bank {bank_cost:,} multiply-adds per image")
# --8<-- [end:cost]
record(cnn_multiply_adds=cnn_cost, bank_multiply_adds=bank_cost)

# %%
history = shifted["history"]
epochs = np.arange(1, len(history["train_loss"]) + 1)
fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.2))
loss_ax.plot(epochs, history["train_loss"])
loss_ax.set(xlabel="epoch", ylabel="training loss (cross-entropy)", ylim=0)
acc_ax.plot(epochs, history["test_accuracy"])
acc_ax.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1))
save_figure(fig, "training")

# %% [markdown]
# ## Feature maps at each depth
#
# A test digit through the trained network (the last of the three runs).
# Each block's maps are smaller than the last block's (after a 2 × 2 max pool)
# and more numerous; we show the eight that respond most strongly.

# %%
# --8<-- [start:feature-maps]
net = shifted["net"].eval()  # batch norm: use its running statistics
with torch.no_grad():
    right = net(data.X_test).argmax(dim=1) == data.y_test
index = int(right.nonzero()[0])  # the first test digit it gets right
x = data.X_test[index : index + 1]  # (1, 1, 24, 24)
with torch.no_grad():
    maps = net.feature_maps(x)  # one (1, C, H, W) tensor per block
    predicted = net(x).argmax(dim=1).item()
for depth, Y in enumerate(maps, start=1):
    print(f"block {depth}: {tuple(Y.shape)}")
# --8<-- [end:feature-maps]
record(label=data.y_test[index], predicted=predicted)

# %%
shown = 8
fig = plt.figure(figsize=(12.6, 4.2))
grid = fig.add_gridspec(  # a blank column between input and maps: labels
    3, shown + 3, width_ratios=[2.4, 1.2] + [1] * shown + [0.08], wspace=0.15
)
ax = fig.add_subplot(grid[:, 0])
ax.imshow(x[0, 0].numpy(), cmap="gray_r")
ax.set_title(f"input, label {int(data.y_test[index])}\npredicted {predicted}")
ax.axis("off")
for row, Y in enumerate(maps):
    strongest = Y[0].amax(dim=(1, 2)).argsort(descending=True)[:shown]
    top_value = Y[0, strongest].max().item()  # one scale for the row
    for col, channel in enumerate(strongest):
        ax = fig.add_subplot(grid[row, col + 2])
        # After a ReLU, never negative: white 0, black the block's largest.
        image = ax.imshow(
            Y[0, channel].numpy(), cmap="gray_r", vmin=0, vmax=top_value
        )
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set(visible=True, color="0.75")
        if col == 0:
            size = Y.shape[-1]
            ax.set_ylabel(
                f"block {row + 1}\n{Y.shape[1]} × {size} × {size}",
                fontsize=11,
                rotation=0,
                ha="right",
                va="center",
            )
    bar = fig.colorbar(image, cax=fig.add_subplot(grid[row, -1]))
    bar.set_label("response", fontsize=11)
    bar.ax.tick_params(labelsize=11)
save_figure(fig, "feature_maps")

# %% [markdown]
# ## What the deepest units see
#
# The gradient of a unit in the last block's centre with respect to each
# pixel, over every test image: the pixels where it is ever nonzero are the
# unit's receptive field; where it is large on average, the pixels that move
# the unit most.

# %%
# --8<-- [start:trained-field]
body = nn.Sequential(*net.blocks)  # the network up to its last feature maps
gradients = input_gradient(body, data.X_test)  # (N, 24, 24)
reached = (gradients > 0).any(dim=0)  # nonzero for at least one image
layers = [(3, 1), (2, 2), (3, 1), (2, 2), (3, 1)]
print("formula:", receptive_field(layers)[-1])
print("measured:", extent(reached))
# --8<-- [end:trained-field]
mean_gradient = gradients.mean(dim=0)
rows, cols = torch.nonzero(reached, as_tuple=True)
top, left = rows.min().item(), cols.min().item()
size = receptive_field(layers)[-1]
box = mean_gradient[top : top + size, left : left + size]
margin = 5  # the centre: the box without a 5-pixel border


def centre_share(gradient):
    """The centre's share of the box's summed (H, W) gradient."""
    box = gradient[top : top + size, left : left + size]
    return box[margin:-margin, margin:-margin].sum() / box.sum()


# Its sampling error: the share over test sets drawn from ours (bootstrap).
generator = torch.Generator().manual_seed(0)
resampled = [
    centre_share(
        gradients[
            torch.randint(
                len(gradients), (len(gradients),), generator=generator
            )
        ].mean(dim=0)
    )
    for _ in range(200)
]
centre = box[margin:-margin, margin:-margin]


def seed_share(net):
    """The centre share of net's mean |gradient| over the test set."""
    body = nn.Sequential(*net.blocks)
    return centre_share(input_gradient(body, data.X_test).mean(dim=0))


# The same share for every seed's trained net, and for untrained nets with
# the same initialisations (batch norm's running statistics still 0 and 1):
# how much of the concentration training adds or removes.
# The last seed's net is `net`: its share is centre_share(mean_gradient).
trained_shares = [float(seed_share(trained)) for trained in nets[:-1]]
trained_shares.append(float(centre_share(mean_gradient)))
untrained_shares = []
for seed in PROTOCOL["seeds"]:
    torch.manual_seed(seed)
    untrained_shares.append(float(seed_share(SmallCNN(image_size=24))))
print("trained:", [f"{s:.3f}" for s in trained_shares])
print("untrained:", [f"{s:.3f}" for s in untrained_shares])
record(
    centre_share_seeds=trained_shares,
    centre_share_seeds_mean=torch.tensor(trained_shares).mean(),
    centre_share_seeds_std=torch.tensor(trained_shares).std(),
    centre_share_untrained=untrained_shares,
    centre_share_untrained_mean=torch.tensor(untrained_shares).mean(),
    centre_share_untrained_std=torch.tensor(untrained_shares).std(),
)
record(
    field_top=top,
    field_left=left,
    centre_side=size - 2 * margin,
    trained_formula=size,
    trained_measured_height=extent(reached)[0],
    trained_measured_width=extent(reached)[1],
    reached_pixels=reached.sum(),
    centre_share=centre_share(mean_gradient),
    centre_share_se=torch.stack(resampled).std(),
    centre_area_share=centre.numel() / box.numel(),
)

# %%
fig, axes = plt.subplots(1, 2, figsize=(8.2, 3.6))
# Left a mask (reached pixels dark grey), right a value that is never
# negative: white 0, black the largest mean gradient, with a colour bar.
for ax, image, top_value, title in [
    (axes[0], reached.float(), 1.6, "pixels that ever reach the unit"),
    (axes[1], mean_gradient, None, "mean |gradient| over the test set"),
]:
    shown = ax.imshow(image.numpy(), cmap="gray_r", vmin=0, vmax=top_value)
    ax.add_patch(
        Rectangle(
            (left - 0.5, top - 0.5),
            size,
            size,
            fill=False,
            edgecolor="tab:orange",
            linewidth=2,
            linestyle="--",
        )
    )
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(True)
    ax.spines[:].set_color("0.7")  # the edge of the 24 × 24 canvas
bar = fig.colorbar(shown, ax=axes, shrink=0.8)  # takes from both panels
bar.set_label("mean |d unit / d pixel|", fontsize=9)
save_figure(fig, "trained_field")

# %%
# The runs, for the notebooks that would otherwise train them again (the
# live CNN page's and chapter 8's): each with its untrained start, rebuilt
# as run_trials built it.
runs = {}
for seed, trained in zip(PROTOCOL["seeds"], nets, strict=True):
    torch.manual_seed(seed)
    runs[seed] = (SmallCNN(image_size=24), trained)
save_runs(output_dir() / RUNS_FILE, data, PROTOCOL, runs)
