# %% [markdown]
# # Chapter 4, part 1: stacking, pooling and the receptive field
#
# Why a stack of convolutions needs a nonlinearity between its layers, what
# pooling does, and how far into the image a unit deep in the stack can see:
# computed by a formula, then measured with gradients.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle
from torch import nn

from book import (
    SOBEL_X,
    SOBEL_Y,
    extent,
    input_gradient,
    load_dataset,
    receptive_field,
    record,
    save_figure,
    setup,
)

setup()

# %% [markdown]
# ## Two linear convolutions are one convolution


# %%
# --8<-- [start:compose]
def compose_kernels(K1, K2):
    """The one kernel that does what conv2d with K1, then with K2, does.

    K1: (M, C, a, a) takes C channels to M; K2: (O, M, b, b) takes M to O.
    Returns (O, C, a + b - 1, a + b - 1): each output kernel is the sum over
    the middle channels of the full convolution of the two kernels.
    """
    if K1.dim() != 4 or K2.dim() != 4 or K2.shape[1] != K1.shape[0]:
        raise ValueError(
            f"expected kernels (M, C, a, a) and (O, M, b, b), got shapes "
            f"{tuple(K1.shape)} and {tuple(K2.shape)}"
        )
    pad = K2.shape[-1] - 1
    # Treat K1 as C images of M channels; slide the flipped K2 over them.
    K = F.conv2d(F.pad(K1.transpose(0, 1), (pad,) * 4), K2.flip(-2, -1))
    return K.transpose(0, 1)


# --8<-- [end:compose]

# %%
# --8<-- [start:compose-check]
data = load_dataset("shifted_digits")
X = data.X_test[:1]  # one (1, 1, 24, 24) image
K1 = SOBEL_X.reshape(1, 1, 3, 3)  # change from left to right
K2 = SOBEL_Y.reshape(1, 1, 3, 3)  # change from top to bottom

two_layers = F.conv2d(F.conv2d(X, K1), K2)  # (1, 1, 20, 20)
K = compose_kernels(K1, K2)  # (1, 1, 5, 5)
one_layer = F.conv2d(X, K)
print(K[0, 0])
print("largest difference:", (two_layers - one_layer).abs().max().item())
# --8<-- [end:compose-check]
record(
    composed_kernel_size=K.shape[-1],
    composed_max_difference=(two_layers - one_layer).abs().max(),
    composed_output_scale=two_layers.abs().max(),
)

# %%
fig, axes = plt.subplots(
    1, 3, figsize=(9, 3), width_ratios=[3, 3, 5], gridspec_kw={"wspace": 0.45}
)
limit = K.abs().max().item()  # one colour scale for the three kernels
for ax, kernel, title in zip(
    axes,
    [K1[0, 0], K2[0, 0], K[0, 0]],
    ["K1: Sobel x (3 × 3)", "K2: Sobel y (3 × 3)", "composed kernel (5 × 5)"],
    strict=True,
):
    shown = ax.imshow(kernel.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
    for (r, c), value in np.ndenumerate(kernel.numpy()):
        color = "white" if abs(value) > 0.6 * limit else "black"
        ax.text(c, r, f"{value:g}", ha="center", va="center", color=color)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(False)
fig.colorbar(shown, ax=axes, shrink=0.8, pad=0.03, label="weight")
for left, right, sign in [(axes[0], axes[1], "then"), (axes[1], axes[2], "=")]:
    middle = (left.get_position().x1 + right.get_position().x0) / 2
    fig.text(middle, 0.45, sign, ha="center", va="center", fontsize=12)
save_figure(fig, "composed_kernel")

# %% [markdown]
# ## A ReLU in between: no single kernel does it
#
# The best 5 × 5 kernel for a target output is a least-squares fit: one row
# per output pixel, one column per kernel weight (and one for the bias).


# %%
# --8<-- [start:best-kernel]
def best_single_kernel(X, target, size=5):
    """Least-squares fit of one size × size kernel and a bias: conv2d(X, K)
    + b ≈ target. Returns K, b and the relative error of the fit.
    """
    if X.dim() != 4 or X.shape[1] != 1:
        raise ValueError(f"expected (N, 1, H, W) images, got {tuple(X.shape)}")
    out = X.shape[-1] - size + 1
    if tuple(target.shape) != (len(X), 1, out, out):
        raise ValueError(
            f"target of shape {tuple(target.shape)} does not match a "
            f"{size} × {size} kernel on images of shape {tuple(X.shape)}"
        )
    patches = F.unfold(X, size).transpose(1, 2).reshape(-1, size * size)
    A = torch.cat([patches, torch.ones(len(patches), 1)], dim=1).double()
    b = target.reshape(-1, 1).double()
    solution = torch.linalg.lstsq(A, b).solution
    error = (A @ solution - b).norm() / b.norm()
    K = solution[:-1].reshape(1, 1, size, size).float()
    return K, solution[-1].item(), error.item()


# --8<-- [end:best-kernel]

# %%
# --8<-- [start:relu-stack]
images = data.X_test[:200]
linear_stack = F.conv2d(F.conv2d(images, K1), K2)
relu_stack = F.conv2d(torch.relu(F.conv2d(images, K1)), K2)

_, _, linear_error = best_single_kernel(images, linear_stack)
K_relu, bias_relu, relu_error = best_single_kernel(images, relu_stack)
print(f"best single kernel, linear stack: {linear_error:.1e} relative error")
print(f"best single kernel, ReLU between: {relu_error:.1%} relative error")
# --8<-- [end:relu-stack]
# The fit's sampling error: its relative error on image sets resampled
# from these 200 (bootstrap), the kernel kept fixed.
relu_fit = F.conv2d(images, K_relu) + bias_relu
residual = (relu_stack - relu_fit).pow(2).sum(dim=(1, 2, 3)).double()
energy = relu_stack.pow(2).sum(dim=(1, 2, 3)).double()
generator = torch.Generator().manual_seed(0)
samples = torch.randint(len(images), (200, len(images)), generator=generator)
resampled = (residual[samples].sum(1) / energy[samples].sum(1)).sqrt()
record(
    linear_fit_error=linear_error,
    relu_fit_error=relu_error,
    relu_fit_error_se=resampled.std(),
    # The error is a ratio of lengths; its square, of sums of squares.
    relu_fit_residual_energy=relu_error**2,
    fit_images=len(images),
)

# %%
relu_fit = relu_fit[:1]
rows = [
    [
        (linear_stack[:1], "two layers:\nSobel x, Sobel y"),
        (one_layer, "one layer:\nthe composed kernel"),
        (linear_stack[:1] - one_layer, "difference"),
    ],
    [
        (relu_stack[:1], "two layers:\nSobel x, ReLU, Sobel y"),
        (relu_fit, "one layer:\nthe best 5 × 5 kernel"),
        (relu_stack[:1] - relu_fit, "difference"),
    ],
]
fig = plt.figure(figsize=(10, 5.6))
grid = fig.add_gridspec(2, 5, width_ratios=[1.4, 1, 1, 1, 0.07], wspace=0.2)
ax = fig.add_subplot(grid[:, 0])
ax.imshow(X[0, 0].numpy(), cmap="gray_r")
ax.set_title("input (24 × 24)", fontsize=10)
ax.axis("off")
for r, row in enumerate(rows):
    limit = max(image.abs().max().item() for image, _ in row)
    for c, (image, title) in enumerate(row):
        ax = fig.add_subplot(grid[r, c + 1])
        shown = ax.imshow(
            image[0, 0].detach().numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit
        )
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    bar = fig.colorbar(shown, cax=fig.add_subplot(grid[r, 4]))  # one a row
    bar.set_label("response", fontsize=9)
save_figure(fig, "stacking")

# %% [markdown]
# ## Pooling

# %%
# --8<-- [start:pooling]
Y = torch.tensor([[1.0, 3, 0, 2], [4, 2, 1, 0], [0, 1, 5, 1], [2, 0, 3, 3]])
Y = Y.reshape(1, 1, 4, 4)  # (N, C, H, W)
print(F.max_pool2d(Y, 2))  # the largest value of each 2 × 2 window
print(F.avg_pool2d(Y, 2))  # the mean of each 2 × 2 window
# --8<-- [end:pooling]

# %%
digit = data.X_test[:1]
fig, axes = plt.subplots(2, 3, figsize=(9.6, 5.6))
# Never negative: white at zero, black at the row's largest value.
for row, (image, top_value) in enumerate([(Y, Y.max().item()), (digit, 1)]):
    results = [image, F.max_pool2d(image, 2), F.avg_pool2d(image, 2)]
    names = ["input", "max pool 2 × 2", "average pool 2 × 2"]
    for ax, result, name in zip(axes[row], results, names, strict=True):
        size = result.shape[-1]
        ax.set_title(f"{name} ({size} × {size})", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        shown = ax.imshow(
            result[0, 0].numpy(), cmap="gray_r", vmin=0, vmax=top_value
        )
        if row == 1:  # the digit
            ax.axis("off")
            continue
        for (r, c), value in np.ndenumerate(result[0, 0].numpy()):
            dark = value > 0.5 * top_value  # white digits on dark cells
            ax.text(
                c,
                r,
                f"{value:g}",
                ha="center",
                va="center",
                fontsize=11,
                color="white" if dark else "black",
            )
        ticks = np.arange(-0.5, size, 2 if size == 4 else 1)
        ax.set_xticks(ticks, labels=[])
        ax.set_yticks(ticks, labels=[])
        ax.tick_params(length=0)
        ax.grid(color="tab:orange", linewidth=2)  # the 2 × 2 windows
        ax.spines[:].set(visible=True, color="tab:orange", linewidth=2)
    bar = fig.colorbar(shown, ax=axes[row], shrink=0.85, pad=0.03)
    bar.set_label("value" if row == 0 else "ink (pixel value)", fontsize=9)
save_figure(fig, "pooling")

# %% [markdown]
# ## The receptive field, by formula


# %%
# --8<-- [start:formula]
# The chapter's CNN: conv 3 × 3, pool, conv 3 × 3, pool, conv 3 × 3.
CNN_LAYERS = [(3, 1), (2, 2), (3, 1), (2, 2), (3, 1)]
print(receptive_field(CNN_LAYERS))
# --8<-- [end:formula]
record(
    **{
        f"formula_layer_{depth}": size
        for depth, size in enumerate(receptive_field(CNN_LAYERS), start=1)
    }
)

# %% [markdown]
# ## The receptive field, measured


# %%
# --8<-- [start:measure]
def probe_stack(layers):
    """The stack with every path counted: all weights one, average pools
    in place of max pools, no ReLU and no padding.
    """
    receptive_field(layers)  # a ValueError for a malformed layer
    modules = []
    for kernel_size, stride in layers:
        if stride == 1:
            conv = nn.Conv2d(1, 1, kernel_size, bias=False)
            nn.init.ones_(conv.weight)
            modules.append(conv)
        else:
            modules.append(nn.AvgPool2d(kernel_size, stride))
    return nn.Sequential(*modules)


gradients = []
for depth in range(1, len(CNN_LAYERS) + 1):
    probe = probe_stack(CNN_LAYERS[:depth])
    gradients.append(input_gradient(probe, torch.ones(1, 1, 28, 28))[0])
    print(f"layer {depth}: {extent(gradients[-1] > 0)}")
# --8<-- [end:measure]
record(
    **{
        f"measured_layer_{depth}": extent(gradient > 0)[0]
        for depth, gradient in enumerate(gradients, start=1)
    }
)

# The path count's centre share, the baseline for the trained network's
# (layers_cnn.py): the 18 × 18 field without a 5-pixel border, as there.
rows, cols = torch.nonzero(gradients[-1] > 0, as_tuple=True)
field = gradients[-1][rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
record(probe_centre_share=field[5:-5, 5:-5].sum() / field.sum())

# %%
names = ["conv 1", "pool 1", "conv 2", "pool 2", "conv 3"]
fig, axes = plt.subplots(1, 5, figsize=(11, 2.8))
for ax, gradient, size, name in zip(
    axes, gradients, receptive_field(CNN_LAYERS), names, strict=True
):
    # A mask, not a value: reached pixels dark grey, the rest white.
    ax.imshow((gradient > 0).numpy(), cmap="gray_r", vmin=0, vmax=1.6)
    rows, cols = torch.nonzero(gradient > 0, as_tuple=True)
    top, left = rows.min().item(), cols.min().item()
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
    ax.set_title(f"after {name}:\n{size} × {size} pixels", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(True)
    ax.spines[:].set_color("0.7")
save_figure(fig, "receptive_field")

# %% [markdown]
# ## How fast it grows: convolutions alone, or with pooling

# %%
# --8<-- [start:growth]
stacks = {
    "3 × 3 convolutions only": [(3, 1)] * 8,
    "3 × 3 convolution, then 2 × 2 pool, repeated": [(3, 1), (2, 2)] * 4,
}
growth = {}
for name, layers in stacks.items():
    measured = []
    for depth in range(1, len(layers) + 1):
        probe = probe_stack(layers[:depth])
        gradient = input_gradient(probe, torch.ones(1, 1, 96, 96))[0]
        measured.append(extent(gradient > 0)[0])
    growth[name] = (receptive_field(layers), measured)
    print(f"{name}: {measured}")
# --8<-- [end:growth]
(conv_formula, conv_measured), (pool_formula, pool_measured) = growth.values()
record(
    conv_only_after_8=conv_formula[-1],
    with_pooling_after_8=pool_formula[-1],
    growth_agrees=conv_formula == conv_measured
    and pool_formula == pool_measured,
)

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.6))
# categories in orange and purple: red and blue mean sign in this book
for (name, (formula, measured)), color, style in zip(
    growth.items(), ["tab:orange", "tab:purple"], ["-", "--"], strict=True
):
    depth = np.arange(1, len(formula) + 1)
    ax.plot(depth, formula, style, color=color, label=f"{name} (formula)")
    ax.plot(
        depth,
        measured,
        "o",
        color=color,
        fillstyle="none",
        markersize=8,
        label=f"{name} (measured)",
    )
ax.set(xlabel="layers stacked", ylabel="receptive field side (pixels)")
ax.legend(fontsize=9, frameon=False)
save_figure(fig, "growth")
