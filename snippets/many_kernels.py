# %% [markdown]
# # Chapter 3, part 1: a bank of kernels
#
# A convolutional layer holds many kernels, each giving its own feature map,
# and each kernel reaches through every channel of its input. We look at the
# shapes on a digit and on a colour photo, and count the parameters. (Parts 2
# and 3 train banks of learned kernels and draw them.)

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from skimage import data as sample_images
from torch import nn

from book import (
    SOBEL_X,
    SOBEL_Y,
    LearnedKernelSoftmax,
    count_parameters,
    load_dataset,
    record,
    save_figure,
    setup,
)

setup()

# %% [markdown]
# ## One input channel, many output channels

# %%
# --8<-- [start:bank]
digits = load_dataset("digits")
X = digits.X_test[:1]  # one digit, (N, C, H, W) = (1, 1, 8, 8)
conv = nn.Conv2d(in_channels=1, out_channels=4, kernel_size=3, padding=1)
print(conv.weight.shape)  # (C_out, C_in, k, k): four 3 × 3 kernels
print(conv(X).shape)  # (N, C_out, H, W): four feature maps
# --8<-- [end:bank]
record(
    bank_weight_shape=str(tuple(conv.weight.shape)),
    bank_output_shape=str(tuple(conv(X).shape)),
)


# %% [markdown]
# ## Colour: a kernel with one slice per input channel


# %%
# --8<-- [start:photo]
def photo_to_tensor(photo):
    """An (H, W, 3) RGB photo with 8-bit values as a (1, 3, H, W) tensor."""
    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(
            f"expected an (H, W, 3) RGB photo, got shape {photo.shape}"
        )
    if photo.dtype != np.uint8:
        raise ValueError(f"expected 8-bit values (uint8), got {photo.dtype}")
    X = torch.from_numpy(photo.astype(np.float32) / 255)
    return X.permute(2, 0, 1).unsqueeze(0)  # channels first, then a batch


photo = sample_images.astronaut()  # (512, 512, 3), ships with scikit-image
X_photo = photo_to_tensor(photo)
X_photo = F.interpolate(X_photo, scale_factor=0.5, mode="area")  # lighter
print(X_photo.shape)  # (N, C, H, W) = (1, 3, 256, 256)
# --8<-- [end:photo]

# %%
# --8<-- [start:colour-bank]
grey = torch.tensor([0.2125, 0.7154, 0.0721])  # how bright R, G, B look
centre = torch.zeros(3, 3)
centre[1, 1] = 1.0  # a 1 × 1 kernel, padded to 3 × 3

# Each kernel: one 3 × 3 slice per input channel (red, green, blue).
vertical = grey[:, None, None] * SOBEL_X  # edges of the brightness
horizontal = grey[:, None, None] * SOBEL_Y
red_green = torch.stack([centre, -centre, 0 * centre])  # red minus green
blue_yellow = torch.stack([-centre / 2, -centre / 2, centre])

K = torch.stack([vertical, horizontal, red_green, blue_yellow])
print(K.shape)  # (C_out, C_in, k, k) = (4, 3, 3, 3)
maps = F.conv2d(X_photo, K, padding=1)
print(maps.shape)  # (1, 4, 256, 256): one map per kernel

# Each map sums the three channels' 2-D convolutions.
by_channel = sum(
    F.conv2d(X_photo[:, c : c + 1], K[:, c : c + 1], padding=1)
    for c in range(3)
)
print(torch.allclose(maps, by_channel, atol=1e-5))
# --8<-- [end:colour-bank]
colour_layer = nn.Conv2d(3, 4, kernel_size=3)
record(
    colour_kernel_shape=str(tuple(K.shape[1:])),
    colour_weight_shape=str(tuple(K.shape)),
    colour_layer_parameters=count_parameters(colour_layer),
    colour_sum_matches=bool(torch.allclose(maps, by_channel, atol=1e-5)),
    photo_size=X_photo.shape[-1],
)


# %% [markdown]
# The bank drawn as a grid: one row per kernel (output channel), one column
# per input channel, and the feature map each kernel makes.


# %%
def draw_bank(K, maps=None, row_names=None, col_names=None, size=1.1):
    """Kernels (C_out, C_in, k, k) as a grid, and each one's feature map
    (values in [-1, 1])."""
    K = np.asarray(K, dtype=np.float32)
    if K.ndim != 4:
        raise ValueError(
            f"expected kernels of shape (C_out, C_in, k, k), "
            f"got shape {tuple(K.shape)}"
        )
    C_out, C_in = K.shape[:2]
    ncols = C_in + (maps is not None)
    fig, axes = plt.subplots(
        C_out,
        ncols,
        figsize=(ncols * size + (maps is not None) * size, C_out * size * 1.3),
        width_ratios=[1] * C_in + [2] * (maps is not None),
        squeeze=False,
    )
    limit = np.abs(K).max()  # one colour scale for every kernel
    for o in range(C_out):
        for c in range(C_in):
            weights = axes[o, c].imshow(
                K[o, c], cmap="RdBu_r", vmin=-limit, vmax=limit
            )
        if maps is not None:  # red: positive, blue: negative, as the weights
            shown = axes[o, -1].imshow(
                np.asarray(maps[o]), cmap="RdBu_r", vmin=-1, vmax=1
            )
        if row_names is not None:
            axes[o, 0].set_ylabel(
                row_names[o], rotation=0, ha="right", va="center"
            )
    for c, name in enumerate(col_names or []):
        axes[0, c].set_title(name, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
    # Both bars take space from every row alike, so the rows stay aligned.
    fig.colorbar(
        weights,
        ax=axes,
        location="bottom",
        shrink=0.4,
        pad=0.03,
        label="weight",
    )
    if maps is not None:
        fig.colorbar(shown, ax=axes, shrink=0.5, label="response")
    return fig


# %%
# Let the strongest 0.5 % of responses saturate, so that faint ones show.
shown = [m / np.percentile(m.abs(), 99.5) for m in maps[0]]
fig = draw_bank(
    K,
    [m.clamp(-1, 1).numpy() for m in shown],
    row_names=[
        "vertical\nedges",
        "horizontal\nedges",
        "red minus\ngreen",
        "blue minus\nyellow",
    ],
    col_names=["red", "green", "blue", "feature map"],
    size=1.5,
)
save_figure(fig, "colour_bank")

# %%
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
axes[0].imshow(X_photo[0].permute(1, 2, 0).numpy())  # (H, W, 3)
axes[0].set_title(f"the photo ({X_photo.shape[-1]} × {X_photo.shape[-1]})")
for ax, channel, name in zip(axes[1:], X_photo[0], ["red", "green", "blue"]):
    # Like a photo: black is none of that light (0), white is full (1).
    ax.imshow(channel.numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"{name} channel")
for ax in axes:
    ax.axis("off")
bar = fig.colorbar(axes[1].images[0], ax=axes[1:], shrink=0.8, pad=0.02)
bar.set_label("channel value", fontsize=9)
bar.ax.tick_params(labelsize=9)
save_figure(fig, "colour_channels")

# %% [markdown]
# ## Counting parameters
#
# The convolutional layer and the softmax on top, for a growing bank, on the
# 8 × 8 digits and on the 24 × 24 canvas of the shifted digits.

# %%
# --8<-- [start:count]
for size in (8, 24):  # the digits, and the shifted digits' canvas
    for N in (1, 4, 16, 64):
        net = LearnedKernelSoftmax(num_kernels=N, image_size=size)
        kernels = count_parameters(net.conv)  # weights and biases
        softmax = count_parameters(net.classifier)
        print(
            f"{size:2} × {size}, {N:2} kernels: {kernels:3} numbers in the"
            f" kernels, {softmax:7,} in the softmax"
        )
        # --8<-- [end:count]
        record(
            **{
                f"conv_parameters_{N}": kernels,
                f"softmax_parameters_{size}_{N}": softmax,
                f"total_parameters_{size}_{N}": count_parameters(net),
            }
        )
