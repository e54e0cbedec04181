# %% [markdown]
# # Chapter 6, part 1: weight sharing and equivariance
#
# A convolutional layer written as the fully connected layer it is, and its
# parameters counted against a dense and a locally connected layer. Then
# what a shift of the input does to feature maps: exact equivariance for
# convolutions and ReLUs, exact only at multiples of the stride after pooling
# or a strided convolution, and invariance from a global max pool. All of it
# holds for any weights, so the networks here are untrained. The functions
# live in `weight_sharing_ops.py`.

# %%
import copy

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import ListedColormap
from matplotlib.patches import Rectangle
from matplotlib.ticker import PercentFormatter
from torch import nn

from book import (
    SmallCNN,
    count_parameters,
    load_dataset,
    record,
    save_figure,
    setup,
)
from weight_sharing_ops import (
    conv_as_matrix,
    equivariance_error,
    equivariance_gap,
    exact_margin,
    inside,
    layer_parameters,
    place_at,
    relative_change,
    shift,
)

setup()

# %% [markdown]
# ## A convolution is a fully connected layer with tied weights

# %%
# --8<-- [start:matrix]
conv = nn.Conv2d(1, 1, kernel_size=3, padding=1)  # one random 3 × 3 kernel
W, b = conv_as_matrix(conv, image_size=6)
print(W.shape)  # (36, 36): every output pixel from every input pixel

x = torch.rand(1, 1, 6, 6)
as_dense = F.linear(x.flatten(1), W, b)  # the same layer, as nn.Linear does
print((as_dense - conv(x).flatten(1)).abs().max().item())

print(int((W != 0).sum()), "nonzero entries")
print(len(torch.unique(W[W != 0])), "different values")
# --8<-- [end:matrix]
K = conv.weight.detach()[0, 0]
record(
    matrix_side=W.shape[0],
    matrix_entries=W.numel(),
    matrix_nonzero=int((W != 0).sum()),
    matrix_distinct=len(torch.unique(W[W != 0])),
    matrix_max_difference=(as_dense - conv(x).flatten(1)).abs().max(),
)

# %%
# Colour each entry by the kernel weight it copies; white: a zero. The
# colours name weights, not signs, so none is red or blue (chapter 1).
which = torch.full(W.shape, -1)
for index, value in enumerate(K.flatten()):
    which[W == value] = index
colours = [
    "#ff7f0e",  # orange
    "#2ca02c",  # green
    "#9467bd",  # purple
    "#8c564b",  # brown
    "#e377c2",  # pink
    "#7f7f7f",  # grey
    "#bcbd22",  # olive
    "#000000",  # black
    "#f2c80f",  # yellow
]
cmap = ListedColormap(["white", *colours])
fig, (k_ax, w_ax) = plt.subplots(
    1, 2, figsize=(9, 4.6), width_ratios=[1.5, 3], gridspec_kw={"wspace": 0.15}
)
k_ax.imshow(np.arange(9).reshape(3, 3) + 1, cmap=cmap, vmin=-0.5, vmax=9.5)
for (r, c), value in np.ndenumerate(K.numpy()):
    value = round(float(value), 2) + 0.0  # + 0.0: no "-0.00"
    letter = "abcdefghi"[3 * r + c]
    dark = 3 * r + c in (2, 3, 7)  # purple, brown, black: white text
    k_ax.text(
        c,
        r,
        f"{letter}\n{value:.2f}",
        ha="center",
        va="center",
        fontsize=10,
        color="white" if dark else "black",
    )
k_ax.set_title("the kernel K (3 × 3)", fontsize=10)
w_ax.imshow(which.numpy() + 1, cmap=cmap, vmin=-0.5, vmax=9.5)
w_ax.set_title("the same layer as a 36 × 36 weight matrix", fontsize=10)
w_ax.set(xlabel="input pixel (row by row)", ylabel="output pixel")
for ax in (k_ax, w_ax):
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(True)
    ax.spines[:].set_color("0.6")
save_figure(fig, "conv_matrix")

# %% [markdown]
# ## Parameters: dense, local, convolutional

# %%
# --8<-- [start:count]
# The three convolutions of chapter 4's CNN: (C_in, C_out, image size).
LAYERS = [(1, 16, 24), (16, 32, 12), (32, 64, 6)]
counts = {
    kind: [layer_parameters(kind, *layer) for layer in LAYERS]
    for kind in ("dense", "local", "conv")
}
for kind, numbers in counts.items():
    print(f"{kind:>5}: {numbers}, total {sum(numbers):,}")

# The formula agrees with PyTorch's own layers.
net = SmallCNN(image_size=24)
print([count_parameters(block[-3]) for block in net.blocks])  # the convs
print(count_parameters(nn.Linear(1 * 24 * 24, 16 * 24 * 24)))
# --8<-- [end:count]
assert counts["conv"] == [count_parameters(block[-3]) for block in net.blocks]
assert counts["dense"][0] == count_parameters(nn.Linear(24 * 24, 16 * 576))
record(
    **{
        f"{kind}_layer_{i}": n
        for kind, numbers in counts.items()
        for i, n in enumerate(numbers, start=1)
    },
    **{f"{kind}_total": sum(numbers) for kind, numbers in counts.items()},
    dense_over_conv=sum(counts["dense"]) / sum(counts["conv"]),
    local_over_conv=sum(counts["local"]) / sum(counts["conv"]),
    dense_over_local=sum(counts["dense"]) / sum(counts["local"]),
    cnn_parameters=count_parameters(net),
    dense_1_over_cnn=counts["dense"][0] / count_parameters(net),
)

# %% [markdown]
# ## Shift the input, and the feature maps shift with it


# %%
# --8<-- [start:band-prediction]
def predicted_band(layers, n, d):
    """How many units at the (low, high) end of the last map of `layers`
    can differ from the shifted map, for a shift of an n-unit row by d
    (d > 0: towards the high end). layers: "conv" (3 × 3, zero padding 1)
    or "pool" (2 × 2, stride 2; d must then be even)."""
    if d < 0:
        return predicted_band(layers, n, -d)[::-1]
    differs = np.zeros(n, dtype=bool)  # the input: shift(X) is shift(X)
    for layer in layers:
        if layer == "conv":  # a unit differs if its window holds a difference
            # the far padding stays while the content moves up to it
            padded = np.concatenate([[False], differs, [d > 0]])
            differs = padded[:-2] | padded[1:-1] | padded[2:]
        else:  # "pool": a unit differs if either of its inputs does
            differs = differs[0::2] | differs[1::2]
            d //= 2  # the shift, in units of the pooled map
        differs[:d] = True  # shift(f(X)) brings in zeros, f(shift(X)) its bias
    same = np.flatnonzero(~differs)
    return int(same[0]), int(len(differs) - 1 - same[-1])


def predicted_margin(layers, n, dy, dx):
    """The band's widest side: the margin exact_margin should measure."""
    return max(*predicted_band(layers, n, dy), *predicted_band(layers, n, dx))


print(predicted_band(["conv"], 24, 5))  # (5, 1): the shift, then r = 1
print(predicted_band(["conv"] * 3, 24, 5))  # (7, 3): 5 + r - 1, then r = 3
# --8<-- [end:band-prediction]

# %%
# --8<-- [start:equivariance]
digits = load_dataset("digits")
X = place_at(digits.X_test[:100], row=8, col=8)  # (100, 1, 24, 24), noisy

one_layer = nn.Conv2d(1, 16, kernel_size=3, padding=1)  # random kernels
three_layers = nn.Sequential(  # conv and ReLU, three times over
    one_layer,
    nn.ReLU(),
    nn.Conv2d(16, 16, kernel_size=3, padding=1),
    nn.ReLU(),
    nn.Conv2d(16, 16, kernel_size=3, padding=1),
    nn.ReLU(),
)
STACKS = {"one": (one_layer, ["conv"]), "three": (three_layers, ["conv"] * 3)}
SHIFTS = [(0, 1), (2, 5), (-3, 4), (6, -2), (-1, -7)]  # (down, right)
table = []
for name, (f, layers) in STACKS.items():
    for dy, dx in SHIFTS:
        gap = equivariance_gap(f, X, dy, dx)  # (100 digits, 16 channels, ...)
        band = predicted_margin(layers, 24, dy, dx)
        row = {
            "stack": name,
            "shift": (dy, dx),
            "anywhere": gap.max().item(),  # over digits, channels, pixels
            "outside_band": inside(gap, band).max().item(),
            "measured": exact_margin(f, X, dy, dx),
            "predicted": band,
        }
        table.append(row)
        print(row)
# --8<-- [end:equivariance]
record(
    **{
        f"eq_{row['stack']}_{key}_{i % len(SHIFTS)}": row[key]
        for i, row in enumerate(table)
        for key in ("anywhere", "measured", "predicted")
    },
    **{f"eq_shift_{i}": f"({dy}, {dx})" for i, (dy, dx) in enumerate(SHIFTS)},
    equivariance_inside_max=max(row["outside_band"] for row in table),
    equivariance_anywhere_min=min(row["anywhere"] for row in table),
    band_as_predicted=all(row["measured"] == row["predicted"] for row in table),
    band_measured_max=max(row["measured"] for row in table),
    num_shift_cases=len(table),
    num_shifts=len(SHIFTS),
    equivariance_images=len(X),
    equivariance_channels=one_layer.out_channels,
)

# %%
dy, dx = 2, 5
x = X[:1]
fig, axes = plt.subplots(2, 4, figsize=(10, 5.4))
with torch.no_grad():
    for row, (name, (f, layers)) in enumerate(STACKS.items()):
        name = {"one": "one convolution", "three": "three layers"}[name]
        maps = [f(x)[0, 0], f(shift(x, dy, dx))[0, 0]]
        gap = equivariance_gap(f, x, dy, dx)[0].amax(dim=0)  # all channels
        limit = max(m.abs().max().item() for m in maps)
        # After a ReLU a map is never negative: white (zero) to black
        # (largest), as chapter 1 draws such maps; else red and blue.
        ends_in_relu = isinstance(f, nn.Sequential) and isinstance(
            f[-1], nn.ReLU
        )
        colours = (
            {"cmap": "Greys", "vmin": 0, "vmax": limit}
            if ends_in_relu
            else {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}
        )
        for ax, image, title in zip(
            axes[row, 1:3], maps, ["the input", "the shifted input"]
        ):
            shown = ax.imshow(image.numpy(), **colours)
            ax.set_title(f"{name}:\nmap of {title}", fontsize=9)
        fig.colorbar(
            shown, ax=axes[row, 1:3], shrink=0.8, label="value, channel 0"
        )
        axes[row, 0].imshow(shift(x, dy, dx)[0, 0].numpy(), cmap="gray_r")
        axes[row, 0].set_title(f"input shifted by {dy, dx}", fontsize=9)
        # never negative: white (zero) to black (largest), chapter 1
        gap_shown = axes[row, 3].imshow(gap.numpy(), cmap="Greys", vmin=0)
        fig.colorbar(
            gap_shown, ax=axes[row, 3], shrink=0.8, label="largest gap"
        )
        axes[row, 3].set_title(
            "gap (16 channels);\ndashed: predicted band",
            fontsize=9,
        )
        top, bottom = predicted_band(layers, 24, dy)
        left, right = predicted_band(layers, 24, dx)
        axes[row, 3].add_patch(
            Rectangle(
                (left - 0.5, top - 0.5),
                24 - left - right,
                24 - top - bottom,
                fill=False,
                edgecolor="tab:orange",
                linestyle="--",
                linewidth=1.5,
            )
        )
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(True)
    ax.spines[:].set_color("0.7")
save_figure(fig, "equivariance")

# %% [markdown]
# ## Stride: a convolution that skips positions

# %%
# --8<-- [start:stride]
K = torch.randn(16, 1, 3, 3)
full = F.conv2d(X, K, padding=1)  # stride 1: (100, 16, 24, 24)
strided = F.conv2d(X, K, stride=2, padding=1)  # (100, 16, 12, 12)
print(torch.equal(strided, full[..., ::2, ::2]))  # even rows and columns

moved = F.conv2d(shift(X, 0, 1), K, stride=2, padding=1)  # 1 pixel right
odd_columns = full[..., ::2, 1::2]  # what the stride skipped before
print(torch.equal(moved[..., 1:], odd_columns[..., :-1]))
# --8<-- [end:stride]


# %%
def strided_conv(X):
    return F.conv2d(X, K, stride=2, padding=1)


record(
    stride_is_subsampling=torch.equal(strided, full[..., ::2, ::2]),
    stride_odd_is_skipped=torch.equal(moved[..., 1:], odd_columns[..., :-1]),
    stride_even_error=equivariance_error(strided_conv, X, 2, 4, 2, margin=1),
)

# %% [markdown]
# ## Pooling, then global pooling: from equivariance to invariance


# %%
# --8<-- [start:pooled]
def maps_after(net, depth):
    """The feature maps of net's block `depth` (1 to 3) as a function."""
    return lambda X: net.feature_maps(X)[depth - 1]


# The layers up to each block that can move the band: batch norm (eval)
# and ReLU act on each unit alone.
LAYERS = ["conv", "pool", "conv", "pool", "conv"]
UP_TO = {1: LAYERS[:1], 2: LAYERS[:3], 3: LAYERS}

# Deep units see far: on a 48 × 48 canvas some of them see no border.
X_big = place_at(digits.X_test[:100], row=20, col=20, canvas=48)
torch.manual_seed(0)
net = SmallCNN(image_size=48).eval()  # untrained; eval: fixed batch norm
CASES = [(1, 1, (1, 3)), (2, 2, (2, 4)), (3, 4, (4, 8))]  # on each grid
pooled = {}
for depth, stride, (dy, dx) in CASES:
    f = maps_after(net, depth)
    size = f(X_big[:1]).shape[-1]
    margin = exact_margin(f, X_big, dy, dx, stride)
    band = predicted_margin(UP_TO[depth], 48, dy, dx)
    print(
        f"block {depth}, {size} × {size} maps, shift {dy, dx}: "
        f"exact beyond a border of {margin} (predicted {band})"
    )
    pooled[depth] = size, margin, band
try:
    equivariance_error(maps_after(net, 2), X_big, 0, 1, stride=2)
except ValueError as error:
    print(error)

# On the book's 24 × 24 canvas, block 3's maps are 6 × 6.
print(predicted_band(LAYERS, 24, 4))  # (3, 2): of 6 units, only unit 3 left
small_net = SmallCNN(image_size=24).eval()
gap = equivariance_gap(maps_after(small_net, 3), X, 4, 4, stride=4)
print((gap.amax(dim=(0, 1)) == 0).int())  # exact units: only (3, 3)
try:  # the same border on every side leaves nothing
    exact_margin(maps_after(small_net, 3), X, 4, 4, stride=4)
except ValueError as error:
    print(error)
# --8<-- [end:pooled]
record(
    **{
        f"pooled_{key}_{depth}": value
        for depth, values in pooled.items()
        for key, value in zip(("size", "margin", "predicted"), values)
    },
    **{
        f"pooled_anywhere_{depth}": equivariance_error(
            maps_after(net, depth), X_big, dy, dx, stride
        )
        for depth, stride, (dy, dx) in CASES
    },
    small_canvas_predicted_band=list(predicted_band(LAYERS, 24, 4)),
    small_canvas_exact_units=int((gap.amax(dim=(0, 1)) == 0).sum()),
)


# %%
# --8<-- [start:strided-twin]
def strided_twin(net):
    """net with each 2 × 2 max pool and the convolution after it replaced
    by one convolution of stride 2 (the same kernels)."""
    twin = copy.deepcopy(net)
    for block in twin.blocks[1:]:
        old = block[1]  # block: pool, conv, batch norm, ReLU
        new = nn.Conv2d(old.in_channels, old.out_channels, 3, 2, padding=1)
        new.load_state_dict(old.state_dict())
        block[0], block[1] = nn.Identity(), new  # no pool; stride 2
    return twin


# --8<-- [end:strided-twin]


# %%
# --8<-- [start:invariance]
def variant_features(net, twin, X):
    """The global-max features after blocks 1, 2 and 3 of net, and after
    block 3 of its strided twin: one (N, C) tensor each."""
    maps = net.feature_maps(X) + twin.feature_maps(X)[-1:]
    return [m.amax(dim=(2, 3)) for m in maps]


VARIANTS = [
    "after block 1 (no pooling)",
    "after block 2 (one 2 × 2 max pool)",
    "after block 3 (two max pools: the CNN)",
    "after block 3, stride-2 convs for pools",
]


def invariance_curves(seeds, X, shifts):
    """Mean relative change of each variant's features over the images X,
    for each shift to the right: an array (seeds, shifts) per variant.
    Each seed is a fresh untrained network."""
    curves = {name: np.zeros((len(seeds), len(shifts))) for name in VARIANTS}
    for i, seed in enumerate(seeds):
        torch.manual_seed(seed)
        net = SmallCNN(image_size=X.shape[-1]).eval()
        twin = strided_twin(net)
        with torch.no_grad():
            before = variant_features(net, twin, X)
            for j, dx in enumerate(shifts):
                after = variant_features(net, twin, shift(X, 0, dx))
                for name, b, a in zip(VARIANTS, before, after):
                    curves[name][i, j] = relative_change(b, a).mean()
    return curves


# A blank 48 × 48 canvas: shifting the image moves the digit and nothing
# else, and every shift keeps it far from the borders.
X_blank = place_at(digits.X_test[:50], row=20, col=16, canvas=48, noise=0)
SEEDS, DX = range(3), range(9)
curves = invariance_curves(SEEDS, X_blank, DX)
for name, rows in curves.items():
    print(f"{name}: {np.round(rows.mean(axis=0), 3)}")
# --8<-- [end:invariance]

# %%
mean = {name: rows.mean(axis=0) for name, rows in curves.items()}
std = {name: rows.std(axis=0, ddof=1) for name, rows in curves.items()}
block_1, block_2, block_3, strided_3 = mean
odd, even = [1, 3, 5, 7], [2, 6]  # shifts off the 4-pixel grid
record(
    invariance_num_images=len(X_blank),
    invariance_num_seeds=len(SEEDS),
    invariance_canvas=X_blank.shape[-1],
    invariance_max_shift=max(DX),
    block_1_change_max=mean[block_1].max(),
    block_2_change_even_max=mean[block_2][::2].max(),
    block_2_change_odd_min=mean[block_2][1::2].min(),
    block_2_change_odd_mean=mean[block_2][1::2].mean(),
    block_3_change_grid_max=mean[block_3][::4].max(),
    block_3_change_off_min=mean[block_3][odd + even].min(),
    block_3_change_off_mean=mean[block_3][odd + even].mean(),
    strided_change_grid_max=mean[strided_3][::4].max(),
    strided_change_off_min=mean[strided_3][odd + even].min(),
    strided_change_off_mean=mean[strided_3][odd + even].mean(),
    change_std_max=max(s.max() for s in std.values()),
    # per initialisation, the mean change at the shifts off the grid
    block_3_off_by_seed=curves[block_3][:, odd + even].mean(axis=1).tolist(),
    strided_off_by_seed=curves[strided_3][:, odd + even].mean(axis=1).tolist(),
    strided_minus_pool_min=(
        mean[strided_3][odd + even] - mean[block_3][odd + even]
    ).min(),
)

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
# categories, not signs: no red or blue (chapter 1)
styles = [
    ("tab:orange", "o", "-"),
    ("tab:green", "s", "--"),
    ("tab:purple", "D", "-"),
    ("0.3", "^", ":"),
]
# Each variant a little to the side of the shift it was measured at, so
# that the markers where all four are at zero do not hide each other.
dodges = np.linspace(-0.12, 0.12, len(curves))
for (name, rows), (colour, marker, line), dodge in zip(
    curves.items(), styles, dodges, strict=True
):
    ax.errorbar(
        np.array(DX) + dodge,
        rows.mean(axis=0),
        yerr=rows.std(axis=0, ddof=1),
        color=colour,
        marker=marker,
        linestyle=line,
        capsize=3,
        label=name,
    )
ax.set_xticks(list(DX))
ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
ax.set(
    xlabel="shift of the input (pixels to the right)",
    ylabel="relative change of\nthe global-max features",
)
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=9)
save_figure(fig, "invariance")

# %% [markdown]
# On the book's own 24 × 24 canvas the borders are never far: a unit of
# block 3 sees 18 × 18 pixels. The same measurement there, digit centred:

# %%
# --8<-- [start:small-canvas]
X_small = place_at(digits.X_test[:50], row=8, col=8, canvas=24, noise=0)
small = invariance_curves(SEEDS, X_small, [-4, 4])
print(np.round(small["after block 3 (two max pools: the CNN)"], 3))
# --8<-- [end:small-canvas]
try:  # the check of the pooled section: no exact square on 24 × 24
    exact_margin(maps_after(small_net, 3), X, 4, 4, stride=4)
    small_canvas_exact = True
except ValueError:
    small_canvas_exact = False
record(
    small_canvas_block_3_exact=small_canvas_exact,
    small_canvas_change=small["after block 3 (two max pools: the CNN)"].mean(),
    small_canvas_change_by_seed=small["after block 3 (two max pools: the CNN)"]
    .mean(axis=1)
    .tolist(),
    small_canvas_change_min=small[
        "after block 3 (two max pools: the CNN)"
    ].min(),
)
