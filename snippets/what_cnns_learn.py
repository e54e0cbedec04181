# %% [markdown]
# # Chapter 8, part 1: what a CNN learns
#
# Chapter 4's small CNN, as chapter 4's first run trained it, then taken
# apart: its first-layer kernels, what its channels respond to at each depth,
# which pixels its decisions rest on (occlusion and gradient saliency), and
# the inputs that excite its units most (activation maximisation). The
# functions live in `what_cnns_learn_ops.py`.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.patches import Rectangle

from book import (
    PROTOCOL,
    SmallCNN,
    accuracy,
    load_dataset,
    record,
    save_figure,
    setup,
)
from layers_ops import chapter_4_runs
from what_cnns_learn_ops import (
    BLOCK_ENDS,
    CNN_LAYERS,
    PLAIN,
    READABLE,
    bounding_boxes,
    channel_score,
    class_score,
    class_selectivity,
    clean_test_digits,
    frozen,
    kernel_energy_shares,
    mask_background_like,
    maximise_activation,
    move_ink,
    occlusion_map,
    saliency,
    share_inside,
    top_label_share,
    top_patches,
    total_variation,
    true_class_scores,
    weight_cosines,
)

setup()


def frame(ax):
    """An image panel: no ticks, a light grey edge (the canvas's)."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(True)
    ax.spines[:].set_color("0.75")


# %% [markdown]
# ## The network and the data
#
# The first of the protocol's seeds: chapter 4's first run, and the network
# it started from, to compare.

# %%
# --8<-- [start:train]
data = load_dataset("shifted_digits")
X, y = data.X_test, data.y_test  # the images we look at: never trained on

# Chapter 4's first run, seed 0: {seed: (untrained net, trained net)}.
# Taken from chapter 4's notebook where it ran first and the same code
# trained it from the same data, protocol and starting weights; else trained.
runs, _ = chapter_4_runs(
    lambda: SmallCNN(image_size=24), data, {**PROTOCOL, "seeds": (0,)}
)
initial, net = runs[0]  # the same network before and after training
test_accuracy = accuracy(net, X, y)
print(f"test accuracy {test_accuracy:.3f}")
# --8<-- [end:train]
record(
    test_accuracy=test_accuracy,
    num_test=len(X),
    num_epochs=PROTOCOL["num_epochs"],
)

# %% [markdown]
# The same test digits without their noise tell us where the ink is.

# %%
# --8<-- [start:ink]
clean = clean_test_digits()  # (N, 1, 24, 24): the digits alone
assert torch.equal(clean_test_digits(noise=0.1), X)  # same places, scales
ink = clean[:, 0] > 0  # (N, 24, 24)
boxes = bounding_boxes(ink)  # the smallest box around each digit
print(f"ink {ink.float().mean():.1%}, boxes {boxes.float().mean():.1%}")
# --8<-- [end:ink]
record(
    ink_share=ink.float().mean(),
    box_share=boxes.float().mean(),
    ink_box_fill=ink.sum() / boxes.sum(),  # the faint rim of strokes too
)

# %% [markdown]
# ## The first layer's kernels

# %%
# --8<-- [start:kernels]
K = net.blocks[0][0].weight.detach()  # (16, 1, 3, 3)
K_initial = initial.blocks[0][0].weight.detach()
shares = kernel_energy_shares(K)  # (16, 3): mean, odd, even
shares_initial = kernel_energy_shares(K_initial)
for name, S in [("trained", shares), ("initial", shares_initial)]:
    mean, odd, even = S.mean(dim=0).tolist()
    print(f"{name}: mean {mean:.2f}, odd {odd:.2f}, even {even:.2f}")
cosines = weight_cosines(net, initial)  # per block, after vs before
print("cosine to the start, blocks 1-3:", np.round(cosines, 2))
# --8<-- [end:kernels]
for name, S in [("trained", shares), ("initial", shares_initial)]:
    record(
        **{
            f"{name}_mean_share": S[:, 0].mean(),
            f"{name}_odd_share": S[:, 1].mean(),
            f"{name}_even_share": S[:, 2].mean(),
            f"{name}_flat_kernels": (S[:, 0] < 0.1).sum(),
            f"{name}_edge_kernels": (S[:, 1] > 0.5).sum(),
        }
    )
record(
    num_kernels=len(K),
    **{f"cosine_block_{d}": c for d, c in enumerate(cosines, start=1)},
)


# %%
def mosaic(K, columns=4):
    """(C, 3, 3) kernels as one image, a row of NaN (drawn grey) between
    neighbours, so that each kernel can be large."""
    step = K.shape[-1] + 1  # a kernel and its gap
    rows = -(-len(K) // columns)
    out = np.full((rows * step - 1, columns * step - 1), np.nan)
    for i, kernel in enumerate(K.numpy()):
        r, c = divmod(i, columns)
        out[r * step : (r + 1) * step - 1, c * step : (c + 1) * step - 1] = (
            kernel
        )
    return out


def draw_kernels(versions, shares_of):
    """Each version's kernels as coloured 3 × 3 squares, on one colour
    scale, above the mean energy shares of each version as bars."""
    fig = plt.figure(figsize=(8.6, 6.6))
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.15, 1])
    limit = max(float(K.abs().max()) for K in versions.values())
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.8")  # grey: a gap
    axes = top.subplots(1, len(versions))
    for ax, (name, K) in zip(axes, versions.items()):
        shown = ax.imshow(mosaic(K[:, 0]), cmap=cmap, vmin=-limit, vmax=limit)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
        ax.set_title(f"{name} kernels", fontsize=11)
    bar = top.colorbar(shown, ax=axes, shrink=0.85, pad=0.02)
    bar.ax.tick_params(labelsize=10)
    bar.set_label("weight", fontsize=11)
    ax = bottom.subplots()
    parts = ["mean\n(brightness)", "odd\n(edge)", "even, mean 0\n(line, spot)"]
    place = np.arange(3)
    # Not blue: beside the kernels, blue means a negative weight.
    colours = {"trained": "tab:purple", "initial": "0.6"}
    for i, name in enumerate(versions):
        share = shares_of[name].mean(dim=0)
        ax.bar(
            place + (i - 0.5) * 0.38,
            share,
            0.38,
            color=colours.get(name),
            label=name,
        )
    ax.scatter(
        place,
        [1 / 9, 4 / 9, 4 / 9],
        marker="_",
        s=500,
        color="k",
        label="expected for random kernels",
        zorder=3,
    )
    ax.set_xticks(place, parts, fontsize=11)
    ax.tick_params(axis="y", labelsize=10)
    ax.set_ylabel("mean share of a kernel's energy", fontsize=11)
    ax.set_ylim(0, 0.75)
    # Below the axes, not over them: the bars' heights vary by seed.
    ax.legend(
        fontsize=11,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.22),
        ncol=3,
        frameon=False,
    )
    return fig


fig = draw_kernels(
    {"trained": K, "initial": K_initial},
    {"trained": shares, "initial": shares_initial},
)
save_figure(fig, "kernels")

# %% [markdown]
# ## What each depth responds to

# %%
# --8<-- [start:depth]
frozen(net)  # from here on we only ask the networks questions
frozen(initial)
with torch.no_grad():
    maps = net.feature_maps(X)  # three (N, C, h, w) tensors
    maps_initial = initial.feature_maps(X)
selectivity, untrained = [], []  # per block: (C,), one index per channel
shuffled = []  # chance: the same responses, the labels in random order
y_shuffled = y[
    torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
]
for M, M0 in zip(maps, maps_initial):
    selectivity.append(class_selectivity(M.amax(dim=(2, 3)), y))
    untrained.append(class_selectivity(M0.amax(dim=(2, 3)), y))
    shuffled.append(class_selectivity(M.amax(dim=(2, 3)), y_shuffled))
for depth in (1, 2, 3):
    print(
        f"block {depth}: median selectivity "
        f"{selectivity[depth - 1].median():.2f}, "
        f"untrained {untrained[depth - 1].median():.2f}"
    )
# --8<-- [end:depth]
for depth, M in enumerate(maps, start=1):
    record(
        **{
            f"selectivity_block_{depth}": selectivity[depth - 1].median(),
            f"selectivity_initial_block_{depth}": untrained[depth - 1].median(),
            f"selectivity_shuffled_block_{depth}": shuffled[depth - 1].median(),
            f"top_label_share_block_{depth}": top_label_share(
                M.amax(dim=(2, 3)), y
            ).mean(),
            f"top_label_share_initial_block_{depth}": top_label_share(
                maps_initial[depth - 1].amax(dim=(2, 3)), y
            ).mean(),
        }
    )
# Chance: the same share for units that rank the images at random.
random_ranks = torch.rand(
    len(y), 10000, generator=torch.Generator().manual_seed(0)
)
record(top_label_chance=top_label_share(random_ranks, y).mean())

# %%
fig, ax = plt.subplots(figsize=(7, 3.4))
rng = np.random.default_rng(0)  # horizontal spread of the dots only
for depth in (1, 2, 3):
    for offset, S, colour, label in [
        (-0.18, untrained[depth - 1], "0.6", "untrained"),
        (0.18, selectivity[depth - 1], "tab:purple", "trained"),
    ]:
        spread = offset + rng.uniform(-0.08, 0.08, len(S))
        ax.scatter(
            depth + spread,
            S,
            s=10,
            color=colour,
            alpha=0.7,
            label=label if depth == 1 else None,
        )
        ax.plot(
            [depth + offset - 0.12, depth + offset + 0.12],
            [S.median()] * 2,
            color="k",
            lw=2,
            label="median" if depth == 1 and offset > 0 else None,
        )
    ax.plot(
        [depth - 0.35, depth + 0.35],
        [shuffled[depth - 1].median()] * 2,
        color="tab:orange",
        ls="--",
        lw=1.5,
        label="chance: trained, labels shuffled" if depth == 1 else None,
    )
ax.set_xticks([1, 2, 3], [f"block {d}" for d in (1, 2, 3)], fontsize=10)
# Above 1: the dots at exactly 1 stay whole.
ax.set(ylabel="class selectivity of a channel", ylim=(0, 1.06))
# Below the axes, not over them: a few untrained channels score near 1.
ax.legend(
    fontsize=10,
    loc="upper center",
    bbox_to_anchor=(0.5, -0.12),
    ncol=2,
    markerscale=2,
    frameon=False,
)
save_figure(fig, "selectivity")

# %%
# --8<-- [start:patches]
shown = {}  # block: its two most class-selective channels
for depth, end in enumerate(BLOCK_ENDS, start=1):
    best = selectivity[depth - 1].argsort(descending=True)[:2].tolist()
    shown[depth] = [
        (channel, *top_patches(X, maps[depth - 1], channel, CNN_LAYERS[:end]))
        for channel in best
    ]  # (channel, six patches, the six images' indices)
print({depth: [c for c, *_ in rows] for depth, rows in shown.items()})
# --8<-- [end:patches]

# %%
fig, axes = plt.subplots(6, 6, figsize=(7.2, 8.4))
for r, (depth, channel, patches, indices) in enumerate(
    (depth, *row) for depth, rows in shown.items() for row in rows
):
    for c in range(6):
        ax = axes[r, c]
        ax.imshow(patches[c].numpy(), cmap="gray_r", vmin=0, vmax=1)
        frame(ax)
        ax.set_title(f"a {int(y[indices[c]])}", fontsize=10, pad=2)
        if c == 0:
            size = patches.shape[-1]
            ax.set_ylabel(
                f"block {depth}\nchannel {channel}\n{size} × {size} px",
                fontsize=10,
            )
fig.tight_layout(h_pad=0.6)
save_figure(fig, "top_patches")

# %% [markdown]
# ## Which pixels the decision rests on

# %%
# --8<-- [start:mask-ink]
generator = torch.Generator().manual_seed(0)
background = mask_background_like(ink, boxes, generator)  # as many pixels
X_no_ink = X.masked_fill(ink[:, None], 0.0)  # the digit's pixels set to 0
X_moved = move_ink(X, ink, background, generator)  # its values elsewhere
for name, images in [
    ("as is", X),
    ("ink removed", X_no_ink),
    ("ink moved to background", X_moved),
]:
    _, probability, correct = true_class_scores(net, images, y)
    change = (images - X).flatten(1).norm(dim=1).mean()  # size of the edit
    print(
        f"{name:>23}: p(true class) {probability.mean():.2f}, "
        f"accuracy {correct.float().mean():.2f}, change {change:.2f}"
    )
# --8<-- [end:mask-ink]
found = {}
for name, images in [
    ("as_is", X),
    ("no_ink", X_no_ink),
    ("moved_ink", X_moved),
]:
    logit, probability, correct = true_class_scores(net, images, y)
    found[name] = logit.mean()
    record(
        **{
            f"{name}_probability": probability.mean(),
            f"{name}_accuracy": correct.float().mean(),
            f"{name}_logit": logit.mean(),
            f"{name}_change": (images - X).flatten(1).norm(dim=1).mean(),
        }
    )
record(
    ink_logit_fall=found["as_is"] - found["no_ink"],
    moved_ink_logit_fall=found["as_is"] - found["moved_ink"],
)

# %%
# --8<-- [start:occlusion-maps]
num_maps = 50  # the first 50 test images (121 squares each): enough
occlusion = torch.stack(
    [occlusion_map(net, X[i], y[i]) for i in range(num_maps)]
)  # (num_maps, 24, 24)
occlusion_in_box = share_inside(occlusion, boxes[:num_maps])
print(f"share of the fall inside the box: {occlusion_in_box.mean():.2f}")
untrained_maps = torch.stack(
    [occlusion_map(initial, X[i], y[i]) for i in range(num_maps)]
)
untrained_in_box = share_inside(untrained_maps, boxes[:num_maps])
print(f"the same before training: {untrained_in_box.mean():.2f}")
# --8<-- [end:occlusion-maps]
record(
    squares_per_map=((24 - 4) // 2 + 1) ** 2,  # patch 4, stride 2
    num_occlusion_maps=num_maps,
    occlusion_box_share=occlusion_in_box.mean(),
    occlusion_initial_box_share=untrained_in_box.mean(),
    occlusion_box_area=boxes[:num_maps].float().mean(),
)

# %%
# --8<-- [start:saliency-maps]
gradients = saliency(net, X, y)  # (N, 24, 24)
in_box = share_inside(gradients, boxes)
on_ink = share_inside(gradients, ink)
print(
    f"saliency inside the box {in_box.mean():.2f}, on ink {on_ink.mean():.2f}"
)
untrained_in_box = share_inside(saliency(initial, X, y), boxes)
print(f"the same before training: {untrained_in_box.mean():.2f}")
times_input = gradients * X[:, 0]  # |gradient| × input: weighs by brightness
print(
    f"|gradient| × input inside the box "
    f"{share_inside(times_input, boxes).mean():.2f}"
)
# --8<-- [end:saliency-maps]
record(
    saliency_box_share=in_box.mean(),
    saliency_initial_box_share=untrained_in_box.mean(),
    saliency_ink_share=on_ink.mean(),
    saliency_box_share_q10=in_box.quantile(0.1),
    times_input_box_share=share_inside(times_input, boxes).mean(),
    input_box_share=share_inside(X[:, 0], boxes).mean(),
)

# %%
examples = [0, 1, 2, 3, 4, 5]
fig, axes = plt.subplots(
    4, len(examples), figsize=(8.4, 6.6), layout="constrained"
)
panels = [  # each map divided by its own largest |value|, to compare shapes
    ("input", X[:, 0], "gray_r"),
    ("occlusion:\nfall of the score", occlusion, "RdBu_r"),
    ("saliency:\n|gradient|", gradients, "Greys"),  # non-negative: grey
    ("|gradient|\n× input", times_input, "Greys"),
]
for c, i in enumerate(examples):
    rows, cols = torch.nonzero(boxes[i], as_tuple=True)
    top, left = rows.min().item(), cols.min().item()
    height, width = rows.max().item() - top + 1, cols.max().item() - left + 1
    for r, (label, images, cmap) in enumerate(panels):
        ax = axes[r, c]
        image = images[i].numpy()
        if r > 0:
            image = image / np.abs(image).max()
        low = -1 if cmap == "RdBu_r" else 0  # signed maps: white is zero
        ax.imshow(image, cmap=cmap, vmin=low, vmax=1)
        ax.add_patch(
            Rectangle(
                (left - 0.5, top - 0.5),
                width,
                height,
                fill=False,
                edgecolor="tab:orange",
                linewidth=1.5,
                linestyle="--",
            )
        )
        frame(ax)
        if r == 0:
            ax.set_title(f"a {int(y[i])}", fontsize=12)
        if c == 0:
            ax.set_ylabel(label, fontsize=12)
for r, (_, _, cmap) in enumerate(panels):
    low = -1 if cmap == "RdBu_r" else 0
    scale = ScalarMappable(Normalize(low, 1), cmap)
    bar = fig.colorbar(scale, ax=axes[r], shrink=0.9, pad=0.01)
    bar.ax.tick_params(labelsize=11)
    bar.set_label("pixel" if r == 0 else "÷ its largest", fontsize=12)
save_figure(fig, "attribution")

# %% [markdown]
# ## The inputs a unit likes best

# %%
# --8<-- [start:class-images]
shape = (10, 1, 24, 24)  # image n maximises the logit of class n
plain = maximise_activation(class_score(net), shape, **PLAIN)
readable = maximise_activation(class_score(net), shape, **READABLE)
with torch.no_grad():
    best_real = net(X).amax(dim=0)  # each logit's best on a test digit
    for name, images in [("plain", plain), ("readable", readable)]:
        logits = net(images)
        own = logits[torch.arange(10), torch.arange(10)]
        print(
            f"{name}: logit / best test digit's {(own / best_real).min():.1f}"
            f" or more, predicted {logits.argmax(dim=1).tolist()}"
        )
# --8<-- [end:class-images]
with torch.no_grad():
    for name, images in [("plain", plain), ("readable", readable)]:
        logits = net(images)
        ratio = logits[torch.arange(10), torch.arange(10)] / best_real
        record(
            **{
                f"{name}_class_ratio_min": ratio.min(),
                f"{name}_class_ratio_mean": ratio.mean(),
                f"{name}_class_hits": (logits.argmax(dim=1) == torch.arange(10))
                .sum()
                .item(),
                f"{name}_total_variation": total_variation(images).mean(),
            }
        )
record(
    real_total_variation=total_variation(X).mean(),
    best_real_logit_max=best_real.max(),
)

# %%
# Classes 0-4 above 5-9; each class's plain image above its regularised one.
fig = plt.figure(figsize=(7.5, 6.0))
for half, sub in enumerate(fig.subfigures(2, 1)):
    axes = sub.subplots(2, 5)
    for version, (label, images) in enumerate(
        [("no regulariser", plain), ("regularised", readable)]
    ):
        for c in range(5):
            ax = axes[version, c]
            ax.imshow(
                images[5 * half + c, 0].numpy(), cmap="gray_r", vmin=0, vmax=1
            )
            frame(ax)
            if version == 0:
                ax.set_title(f"class {5 * half + c}", fontsize=10)
            if c == 0:
                ax.set_ylabel(label, fontsize=10)
save_figure(fig, "class_images")

# %%
# --8<-- [start:channel-images]
channels = torch.arange(16)  # the first 16 of the last block's 64 channels
score = channel_score(net, channels)
with torch.no_grad():
    on_test = maps[-1][:, channels].amax(dim=(2, 3))  # (N, 16)
    best_test = on_test.max(dim=0).values  # each channel's best test digit
made, ratio = {}, {}
for name, options in [("plain", PLAIN), ("readable", READABLE)]:
    made[name] = maximise_activation(score, (16, 1, 24, 24), **options)
    with torch.no_grad():
        ratio[name] = score(made[name]) / best_test
    print(
        f"{name}: {ratio[name].min():.1f} to {ratio[name].max():.1f} "
        f"times the best test digit's activation"
    )
# --8<-- [end:channel-images]
record(num_channels_maximised=len(channels))
for name in ("plain", "readable"):
    record(
        **{
            f"channel_{name}_ratio_min": ratio[name].min(),
            f"channel_{name}_ratio_mean": ratio[name].mean(),
            f"channel_{name}_ratio_max": ratio[name].max(),
            f"channel_{name}_below_best": (ratio[name] < 1).sum(),
        }
    )

# %%
picked = selectivity[-1][channels].argsort(descending=True)[:4].tolist()
fig, axes = plt.subplots(4, 6, figsize=(9.6, 7.4))
favourite_labels = []  # for the figure's alt text: each row's commonest digit
for r, channel in enumerate(picked):
    favourites = on_test[:, channel].argsort(descending=True)[:5]
    favourite_labels.append(int(y[favourites].mode().values))
    images = [made["readable"][channel, 0]] + [X[i, 0] for i in favourites]
    reached = ratio["readable"][channel] * best_test[channel]
    titles = [f"made: {reached:.1f}"] + [
        f"a {int(y[i])}: {on_test[i, channel]:.1f}" for i in favourites
    ]
    for c, (image, title) in enumerate(zip(images, titles)):
        ax = axes[r, c]
        ax.imshow(image.numpy(), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(title, fontsize=10, pad=3)
        frame(ax)
        if c == 0:
            ax.set_ylabel(f"channel {channel}", fontsize=10)
fig.tight_layout()
save_figure(fig, "channel_images")
*first, last = [f"{label}s" for label in favourite_labels]
record(channel_figure_digits=", ".join(first) + " and " + last)
