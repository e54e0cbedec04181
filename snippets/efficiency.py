# %% [markdown]
# # Chapter 10, part 1: cheaper convolutions and what they cost
#
# A 1 × 1 convolution mixes channels at each pixel; a grouped convolution
# splits the channels into independent groups; a depthwise-separable
# convolution filters each channel on its own, then mixes them with a 1 × 1
# convolution. We check what each computes, and count its parameters and
# multiply-adds by formula and in a real forward pass.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch, Rectangle
from skimage import data as sample_images
from skimage.color import rgb2gray
from torch import nn

from book import count_parameters, record, save_figure, setup
from conv_scratch_ops import conv2d
from efficiency_ops import (
    SeparableConv2d,
    conv_cost,
    count_mult_adds,
    dense_weight,
    separable_cost,
)

setup()


def agreement(error):
    """How two outputs compare, in words for the chapter's prose."""
    return "are identical" if error == 0 else f"differ by at most {error:.0e}"


# %% [markdown]
# ## A 1 × 1 convolution mixes channels, pixel by pixel

# %%
# --8<-- [start:grey]
photo = sample_images.astronaut()  # (512, 512, 3), 8-bit RGB
X = torch.from_numpy(photo / 255).float().permute(2, 0, 1)[None]
# rgb2gray's kernel: what it makes of pure red, pure green and pure blue.
weights = rgb2gray(np.eye(3)[None])[0]  # one weight per channel
conv = nn.Conv2d(3, 1, kernel_size=1, bias=False)
with torch.no_grad():
    conv.weight[:] = torch.from_numpy(weights).view(1, 3, 1, 1)
    grey = conv(X)  # (1, 1, 512, 512)
print(weights)
print(np.abs(grey[0, 0].numpy() - rgb2gray(photo)).max())
# --8<-- [end:grey]
record(
    grey_weight_red=weights[0],
    grey_weight_green=weights[1],
    grey_weight_blue=weights[2],
    grey_error=np.abs(grey[0, 0].numpy() - rgb2gray(photo)).max(),
)

# %%
# --8<-- [start:linear]
torch.manual_seed(0)
X = torch.randn(8, 64, 12, 12)  # (N, C_in, H, W): 64 feature maps
conv = nn.Conv2d(64, 16, kernel_size=1)
linear = nn.Linear(64, 16)
with torch.no_grad():
    linear.weight[:] = conv.weight.view(16, 64)  # the same numbers
    linear.bias[:] = conv.bias
    pixels = X.permute(0, 2, 3, 1)  # (N, H, W, C_in): a row per pixel
    Y_linear = linear(pixels).permute(0, 3, 1, 2)  # back to (N, C, H, W)
    Y_conv = conv(X)
print((Y_conv - Y_linear).abs().max())
print(count_parameters(conv), count_parameters(linear))
# --8<-- [end:linear]
record(
    linear_error=(Y_conv - Y_linear).abs().max(),
    linear_agreement=agreement((Y_conv - Y_linear).abs().max().item()),
    linear_relative_error=(Y_conv - Y_linear).abs().max() / Y_conv.abs().max(),
    one_by_one_parameters=count_parameters(conv),
    linear_parameters=count_parameters(linear),
    three_by_three_parameters=count_parameters(nn.Conv2d(64, 16, 3)),
)

# %% [markdown]
# ## Grouped convolutions: independent convolutions side by side

# %%
# --8<-- [start:grouped]
X = torch.randn(2, 8, 12, 12)  # (N, C_in, H, W)
conv = nn.Conv2d(8, 8, kernel_size=3, padding=1, groups=4)
print(conv.weight.shape)  # (8, 2, 3, 3): each kernel sees 8 / 4 channels
with torch.no_grad():
    parts = [  # group g: its channels, its kernels, its biases
        F.conv2d(X_g, K_g, b_g, padding=1)
        for X_g, K_g, b_g in zip(
            X.chunk(4, dim=1), conv.weight.chunk(4), conv.bias.chunk(4)
        )
    ]
    Y = conv(X)
    Y_parts = torch.cat(parts, dim=1)  # the groups' maps, stacked
    Y_dense = F.conv2d(X, dense_weight(conv), conv.bias, padding=1)
    K, b = conv.weight.numpy(), conv.bias.numpy()
    Y_numpy = conv2d(X.numpy(), K, b, padding=1, groups=4)  # chapter 5's
print((Y - Y_parts).abs().max(), (Y - Y_dense).abs().max())
print(np.abs(Y.numpy() - Y_numpy).max())
# --8<-- [end:grouped]
record(
    grouped_weight_shape=str(tuple(conv.weight.shape)),
    grouped_parts_error=(Y - Y_parts).abs().max(),
    grouped_dense_error=(Y - Y_dense).abs().max(),
    grouped_numpy_error=np.abs(Y.numpy() - Y_numpy).max(),
)

# %% [markdown]
# ## Four ways to connect 8 channels to 8: the kernels, drawn


# %%
def draw_connections(ax, conv, title):
    """Each output channel's kernel for each input channel, as a grid of
    cells; a grey cell: that output does not read that input."""
    K = dense_weight(conv).detach().numpy()  # (C_out, C_in, k, k)
    C_out, C_in, k = K.shape[0], K.shape[1], K.shape[2]
    cell = 4  # pixels per cell: a 3 × 3 kernel and a gap
    grid = np.full((C_out * cell, C_in * cell), np.nan)
    corners = []  # of each kernel drawn, to outline it
    for o in range(C_out):
        for c in range(C_in):
            if np.any(K[o, c]):
                top, left = o * cell + (3 - k) // 2, c * cell + (3 - k) // 2
                grid[top : top + k, left : left + k] = K[o, c]
                corners.append((left - 0.5, top - 0.5))
    absent = np.full_like(grid, np.nan)  # light grey where no kernel is
    for o in range(C_out):
        for c in range(C_in):
            if not np.any(K[o, c]):
                absent[o * cell : o * cell + 3, c * cell : c * cell + 3] = 1
    ax.imshow(absent, cmap=ListedColormap(["0.85"]))
    limit = np.nanmax(np.abs(grid))
    shown = ax.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit)
    for corner in corners:  # a weight near zero is white: the outline shows it
        ax.add_patch(
            Rectangle(corner, k, k, fill=False, edgecolor="0.6", lw=0.5)
        )
    ax.set_xticks(np.arange(C_in) * cell + 1, np.arange(1, C_in + 1))
    ax.set_yticks(np.arange(C_out) * cell + 1, np.arange(1, C_out + 1))
    ax.tick_params(length=0, labelsize=10)
    ax.set_xlabel("input channel", fontsize=10)
    ax.set_title(title, fontsize=11)
    ax.spines[:].set_visible(False)
    return shown


torch.manual_seed(0)
layers = {
    "standard": nn.Conv2d(8, 8, 3),
    "grouped": nn.Conv2d(8, 8, 3, groups=4),
    "depthwise": nn.Conv2d(8, 8, 3, groups=8),
    "pointwise": nn.Conv2d(8, 8, 1),
}
titles = {
    "standard": "standard 3 × 3",
    "grouped": "grouped: 4 groups of 2",
    "depthwise": "depthwise: 8 groups of 1",
    "pointwise": "pointwise 1 × 1",
}
fig, axes = plt.subplots(2, 2, figsize=(8.5, 8))
for ax, (name, layer) in zip(axes.flat, layers.items()):
    weights = layer.weight.numel()
    shown = draw_connections(ax, layer, f"{titles[name]}\n{weights} weights")
    bar = fig.colorbar(shown, ax=ax, shrink=0.8, pad=0.03)
    bar.ax.tick_params(labelsize=10)
for ax in axes[:, 0]:
    ax.set_ylabel("output channel", fontsize=10)
fig.tight_layout()
fig.legend(
    handles=[
        Patch(color="tab:red", label="positive weight"),
        Patch(color="tab:blue", label="negative weight"),
        Patch(color="0.85", label="no connection"),
    ],
    loc="upper center",
    ncol=3,
    bbox_to_anchor=(0.5, 0.0),
    frameon=False,
)
save_figure(fig, "connections")
record(**{f"{name}_8_weights": c.weight.numel() for name, c in layers.items()})

# %% [markdown]
# ## Depthwise-separable: filter each channel, then mix

# %%
# --8<-- [start:separable-check]
X = torch.randn(2, 8, 12, 12)
layer = SeparableConv2d(8, 16, kernel_size=3, padding=1)
with torch.no_grad():
    Y = layer(X)
    filtered = F.conv2d(X, layer.depthwise.weight, padding=1, groups=8)
    K = layer.pointwise.weight  # (16, 8, 1, 1)
    Y_by_hand = F.conv2d(filtered, K, layer.pointwise.bias)
    # One standard convolution with kernels P[o, c] * D[c]: the same map.
    D, P = layer.depthwise.weight[:, 0], layer.pointwise.weight[:, :, 0, 0]
    K_factored = P[:, :, None, None] * D[None]  # (16, 8, 3, 3)
    Y_one_conv = F.conv2d(X, K_factored, layer.pointwise.bias, padding=1)
print(layer.depthwise.weight.shape, layer.pointwise.weight.shape)
print((Y - Y_by_hand).abs().max(), (Y - Y_one_conv).abs().max())
# --8<-- [end:separable-check]
record(
    separable_error=(Y - Y_by_hand).abs().max(),
    separable_agreement=agreement((Y - Y_by_hand).abs().max().item()),
    factored_error=(Y - Y_one_conv).abs().max(),
    depthwise_weight_shape=str(tuple(layer.depthwise.weight.shape)),
    pointwise_weight_shape=str(tuple(layer.pointwise.weight.shape)),
)

# %% [markdown]
# ## Costs: by formula, against the layers and a counted forward pass

# %%
# --8<-- [start:costs]
C, k, size = 64, 3, 32  # 64 channels in and out, 3 × 3, 32 × 32 maps
X = torch.randn(1, C, size, size)
layers = {
    "standard": nn.Conv2d(C, C, k, padding=1),
    "grouped": nn.Conv2d(C, C, k, padding=1, groups=8),
    "separable": SeparableConv2d(C, C, k, padding=1),
}
formulas = {
    "standard": conv_cost(C, C, k, size, size),
    "grouped": conv_cost(C, C, k, size, size, groups=8),
    "separable": separable_cost(C, C, k, size, size),
}
for name, layer in layers.items():
    cost = formulas[name]
    print(
        f"{name:>9}: {cost.parameters:6,} parameters "
        f"(layer: {count_parameters(layer):6,}), "
        f"{cost.mult_adds:11,} multiply-adds "
        f"(counted: {count_mult_adds(layer, X):11,})"
    )
# --8<-- [end:costs]
record(
    cost_channels=C,
    cost_kernel=k,
    cost_size=size,
    cost_groups=8,
    **{f"{name}_parameters": f.parameters for name, f in formulas.items()},
    **{f"{name}_mult_adds": f.mult_adds for name, f in formulas.items()},
    **{
        f"{name}_layer_parameters": count_parameters(layer)
        for name, layer in layers.items()
    },
    **{
        f"{name}_counted_mult_adds": count_mult_adds(layer, X)
        for name, layer in layers.items()
    },
)

# %% [markdown]
# ## How the saving grows with the channel count

# %%
# --8<-- [start:saving]
channels = [4, 8, 16, 32, 64, 128, 256, 512]
groups = 4  # not the table's 8: four channels cannot be split into eight
saving = {}  # how many times fewer multiply-adds than the standard layer
for C in channels:
    X = torch.randn(1, C, 8, 8)
    standard = count_mult_adds(nn.Conv2d(C, C, 3, padding=1), X)
    grouped = count_mult_adds(nn.Conv2d(C, C, 3, padding=1, groups=groups), X)
    separable = count_mult_adds(SeparableConv2d(C, C, 3, padding=1), X)
    saving[C] = {
        "grouped": standard / grouped,
        "separable": standard / separable,
    }
    formula = 1 / (1 / C + 1 / 9)  # 1 / (1 / C_out + 1 / k²)
    print(
        f"{C:>3} channels: separable {standard / separable:.2f}, "
        f"formula {formula:.2f}; {groups} groups {standard / grouped:.2f}"
    )
# --8<-- [end:saving]
record(
    saving_channels=channels,
    saving_groups=groups,
    saving_narrowest=channels[0],
    saving_separable=[saving[C]["separable"] for C in channels],
    saving_grouped=[saving[C]["grouped"] for C in channels],
    saving_formula=[1 / (1 / C + 1 / 9) for C in channels],
)

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
fine = np.geomspace(channels[0], channels[-1], 200)
ax.plot(
    fine,
    1 / (1 / fine + 1 / 9),
    color="tab:green",
    label="depthwise-separable, formula",
)
ax.plot(
    channels,
    [saving[C]["separable"] for C in channels],
    "o",
    color="tab:green",
    zorder=3,  # over the squares where the two savings meet (C = 8)
    label="depthwise-separable, counted",
)
ax.axhline(
    groups, color="tab:orange", ls="--", label=f"{groups} groups, formula"
)
ax.plot(
    channels,
    [saving[C]["grouped"] for C in channels],
    "s",
    color="tab:orange",
    mfc="white",  # hollow: a dot inside one still shows
    markersize=9,
    label=f"{groups} groups, counted",
)
ax.axhline(9, color="0.5", ls=":", label="limit: k² = 9")
ax.set_xscale("log", base=2)
ax.set_xticks(channels, [str(C) for C in channels])
ax.minorticks_off()
ax.set(
    xlabel="channels in and out (C)",
    ylabel="times fewer multiply-adds",
    ylim=(0, 10),
    title="saving over a standard 3 × 3 convolution",
)
ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
save_figure(fig, "saving")
