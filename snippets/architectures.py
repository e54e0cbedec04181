# %% [markdown]
# # Chapter 9, part 1: four architectures, counted
#
# LeNet-5, AlexNet, VGG and ResNet built from their papers' layer lists, and
# their cost counted by code: parameters, multiply-adds and receptive fields,
# for the input size each paper used. The networks are built on PyTorch's
# `meta` device, where tensors have shapes but no numbers: even VGG-16's
# weights take no memory, and the forward pass that the counting hooks watch
# takes no time.

# %%
import json
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from architectures_ops import (
    VGG,
    VGG_CONFIGS,
    AlexNet,
    BasicBlock,
    Bottleneck,
    LeNet5,
    ResNet,
    by_block,
    deep_stack,
    first_layer_gradient,
    layer_costs,
    receptive_path,
    standardise,
)
from book import (
    PROTOCOL,
    SmallCNN,
    count_parameters,
    load_dataset,
    mini_batches,
    output_dir,
    receptive_field,
    record,
    save_figure,
    setup,
)

setup()

# %% [markdown]
# ## Counting with hooks

# %%
# --8<-- [start:count-demo]
conv = torch.nn.Conv2d(3, 64, kernel_size=3, padding=1)
(row,) = layer_costs(conv, (3, 32, 32))
print(row)
print(64 * 32 * 32 * 3 * 3 * 3)  # C_out × H × W, each a 3 × 3 × 3 sum
# --8<-- [end:count-demo]
record(demo_multiply_adds=row.multiply_adds, demo_parameters=row.parameters)


# %%
# --8<-- [start:summary]
def summary(net, input_shape):
    """Parameters, multiply-adds, receptive field and the rows behind them."""
    rows = layer_costs(net, input_shape)
    path = receptive_path(net, input_shape)  # (kernel_size, stride) pairs
    return {
        "parameters": count_parameters(net),
        "multiply_adds": sum(row.multiply_adds for row in rows),
        "receptive_field": receptive_field(path)[-1],
        "rows": rows,
    }


# --8<-- [end:summary]

# %% [markdown]
# ## LeNet-5 on its 32 × 32 input

# %%
# --8<-- [start:lenet-count]
lenet = summary(LeNet5(image_size=32), (1, 32, 32))
blocks = by_block(lenet["rows"])  # rows added up by layer: "c1", "s2", ...
for name, block in blocks.items():
    parameters, links = block["parameters"], block["connections"]
    print(f"{name:7} {parameters:7,} parameters {links:9,} connections")
print(f"total   {lenet['parameters']:7,} trainable parameters")
# --8<-- [end:lenet-count]
for name, block in blocks.items():
    record(
        **{
            f"lenet_{name}_parameters": block["parameters"],
            f"lenet_{name}_connections": block["connections"],
        }
    )
fully_connected = blocks["c5"]["parameters"] + blocks["f6"]["parameters"]
record(
    lenet_fc_parameter_share=fully_connected / lenet["parameters"],
    lenet_parameters=lenet["parameters"],
    lenet_connections=sum(block["connections"] for block in blocks.values()),
    lenet_multiply_adds=lenet["multiply_adds"],
    lenet_receptive_field=lenet["receptive_field"],
)

# %% [markdown]
# ## AlexNet: 224 or 227?

# %%
# --8<-- [start:alexnet-count]
with torch.device("meta"):  # shapes only: nothing is allocated
    alexnet = {size: AlexNet(image_size=size) for size in (224, 227)}
for size, net in alexnet.items():
    rows = layer_costs(net, (3, size, size))
    print(size, "neurons per layer:", [row.units for row in rows])
    print(size, "parameters:", f"{count_parameters(net):,}")
# --8<-- [end:alexnet-count]
alex = summary(alexnet[227], (3, 227, 227))
alex_224 = summary(alexnet[224], (3, 224, 224))
record(
    alexnet_side=227,
    imagenet_side=224,
    alexnet_parameters=alex["parameters"],
    alexnet_multiply_adds=alex["multiply_adds"],
    alexnet_receptive_field=alex["receptive_field"],
    alexnet_224_parameters=alex_224["parameters"],
    alexnet_conv1_side=alex["rows"][0].output_shape[-1],
    alexnet_224_conv1_side=alex_224["rows"][0].output_shape[-1],
    alexnet_224_conv5_side=alex_224["rows"][4].output_shape[-1],
    alexnet_conv5_side=alex["rows"][4].output_shape[-1],
)
for index, (row, row_224) in enumerate(
    zip(alex["rows"], alex_224["rows"]), start=1
):
    record(
        **{
            f"alexnet_neurons_{index}": row.units,
            f"alexnet_224_neurons_{index}": row_224.units,
        }
    )
fc_share = sum(r.parameters for r in alex["rows"] if r.kind == "Linear")
conv_share = sum(r.multiply_adds for r in alex["rows"] if r.kind == "Conv2d")
record(
    alexnet_fc_parameter_share=fc_share / alex["parameters"],
    alexnet_conv_multiply_add_share=conv_share / alex["multiply_adds"],
)

# %% [markdown]
# ## VGG: six configurations

# %%
# --8<-- [start:vgg-count]
with torch.device("meta"):
    vgg = {name: VGG(name) for name in VGG_CONFIGS}
for name, net in vgg.items():
    print(f"{name:6} {count_parameters(net) / 1e6:6.1f} million parameters")
# --8<-- [end:vgg-count]
vgg16 = summary(vgg["D"], (3, 224, 224))
vgg19 = summary(vgg["E"], (3, 224, 224))
for name, net in vgg.items():
    key = f"vgg_{name.replace('-', '_')}_parameters"
    record(**{key: count_parameters(net)})
rows = vgg16["rows"]
fc_parameters = sum(r.parameters for r in rows if r.kind == "Linear")
conv_adds = sum(r.multiply_adds for r in rows if r.kind == "Conv2d")
record(
    vgg16_parameters=vgg16["parameters"],
    vgg16_multiply_adds=vgg16["multiply_adds"],
    vgg16_receptive_field=vgg16["receptive_field"],
    vgg19_parameters=vgg19["parameters"],
    vgg19_multiply_adds=vgg19["multiply_adds"],
    vgg19_receptive_field=vgg19["receptive_field"],
    vgg16_fc_parameter_share=fc_parameters / vgg16["parameters"],
    vgg16_conv_multiply_add_share=conv_adds / vgg16["multiply_adds"],
    vgg16_first_fc_parameters=rows[13].parameters,
    vgg16_megabytes=4 * vgg16["parameters"] / 1e6,  # 4 bytes per float
    vgg16_conv_multiply_adds=conv_adds,
    vgg19_conv_multiply_adds=sum(
        r.multiply_adds for r in vgg19["rows"] if r.kind == "Conv2d"
    ),
    # what the convolutions and linear layers output for one image
    vgg16_activation_millions=sum(r.units for r in rows) / 1e6,
    vgg16_activation_megabytes=4 * sum(r.units for r in rows) / 1e6,
    # images per batch whose outputs outweigh the weights
    vgg16_batch_outweighing_weights=math.ceil(
        vgg16["parameters"] / sum(r.units for r in rows)
    ),
    vgg16_typical_conv_multiply_adds=rows[1].multiply_adds,  # conv2
    vgg16_convs_like_conv2=[
        index + 1
        for index, row in enumerate(rows)
        if row.multiply_adds == rows[1].multiply_adds
    ],
)

# %%
# --8<-- [start:three-by-three]
C = 256  # channels in and out
three_small = [(3, 1)] * 3
one_large = [(7, 1)]
fields = receptive_field(three_small)[-1], receptive_field(one_large)[-1]
print("receptive fields:", fields)
print("weights:", 3 * 3 * 3 * C * C, "against", 7 * 7 * C * C)
# --8<-- [end:three-by-three]
record(
    three_small_field=receptive_field(three_small)[-1],
    three_small_weights_per_channel_pair=3 * 3 * 3,
    one_large_weights_per_channel_pair=7 * 7,
    large_kernel_extra_share=(7 * 7) / (3 * 3 * 3) - 1,
)

# %%
# Where VGG-16 keeps its parameters, and where it spends its multiply-adds.
labels = [f"conv{i + 1}" for i in range(13)] + ["fc6", "fc7", "fc8"]
fig, axes = plt.subplots(1, 2, figsize=(8, 5.2), sharey=True)
positions = np.arange(len(rows))
KINDS = {  # kind: (legend, colour, hatch); not blue, which means negative
    "Conv2d": ("3 × 3 convolution", "0.45", ""),
    "Linear": ("fully connected", "tab:orange", "//"),
}
for ax, key, title in [
    (axes[0], "parameters", "parameters (millions)"),
    (axes[1], "multiply_adds", "multiply-adds per image\n(billions)"),
]:
    scale = 1e6 if key == "parameters" else 1e9
    for kind, (label, colour, hatch) in KINDS.items():
        mine = [i for i, r in enumerate(rows) if r.kind == kind]
        ax.barh(
            positions[mine],
            [getattr(rows[i], key) / scale for i in mine],
            color=colour,
            hatch=hatch,
            edgecolor="white",
            label=label,
        )
    ax.set_title(title, fontsize=12)
    ax.tick_params(labelsize=11)
axes[0].set_yticks(positions, labels)
axes[0].invert_yaxis()
fig.tight_layout()
fig.legend(
    *axes[0].get_legend_handles_labels(),
    loc="upper center",
    ncol=2,
    bbox_to_anchor=(0.5, 0.0),
    fontsize=11,
    frameon=False,
)
save_figure(fig, "vgg16_costs")

# %% [markdown]
# ## ResNet: ImageNet and CIFAR

# %%
# --8<-- [start:resnet-count]
RESNETS = {  # name: (block, blocks per stage)
    "ResNet-18": (BasicBlock, (2, 2, 2, 2)),
    "ResNet-34": (BasicBlock, (3, 4, 6, 3)),
    "ResNet-50": (Bottleneck, (3, 4, 6, 3)),
    "ResNet-101": (Bottleneck, (3, 4, 23, 3)),
    "ResNet-152": (Bottleneck, (3, 8, 36, 3)),
}
with torch.device("meta"):
    resnets = {
        name: summary(ResNet(block, blocks), (3, 224, 224))
        for name, (block, blocks) in RESNETS.items()
    }
    resnets["plain-34"] = summary(
        ResNet(BasicBlock, (3, 4, 6, 3), shortcut=None), (3, 224, 224)
    )
    resnets["ResNet-34 (option A)"] = summary(
        ResNet(BasicBlock, (3, 4, 6, 3), shortcut="zero-padding"),
        (3, 224, 224),
    )
for name, counted in resnets.items():
    billions = counted["multiply_adds"] / 1e9
    millions = counted["parameters"] / 1e6
    costs = f"{billions:5.2f} billion multiply-adds, {millions:5.1f} million"
    print(f"{name:21} {costs} parameters")
# --8<-- [end:resnet-count]
r18, r34, r50 = (resnets[f"ResNet-{n}"] for n in (18, 34, 50))
record(
    resnet50_extra_over_resnet34=(
        r50["multiply_adds"] / r34["multiply_adds"] - 1
    ),
    resnet50_over_vgg16_parameters=r50["parameters"] / vgg16["parameters"],
    resnet50_over_vgg16_multiply_adds=r50["multiply_adds"]
    / vgg16["multiply_adds"],
    vgg16_over_alexnet_parameters=vgg16["parameters"] / alex["parameters"],
    vgg16_over_alexnet_multiply_adds=vgg16["multiply_adds"]
    / alex["multiply_adds"],
)


def weight_layers(counted):
    """Convolutions and fully connected layers on the main path: not the
    shortcuts, nor LeNet's subsampling layers."""
    return sum(
        "shortcut" not in row.name and row.kind != "Subsample"
        for row in counted["rows"]
    )


def three_by_three(block, blocks):
    """3 × 3 convolutions on a ResNet's main path (stem excluded)."""
    with torch.device("meta"):
        net = ResNet(block, blocks)
    return sum(
        isinstance(m, torch.nn.Conv2d)
        and m.kernel_size == (3, 3)
        and "shortcut" not in name
        for name, m in net.features[1:].named_modules()
    )


record(
    resnet34_three_by_three=three_by_three(*RESNETS["ResNet-34"]),
    resnet50_three_by_three=three_by_three(*RESNETS["ResNet-50"]),
)


for key, counted in [
    ("lenet", lenet),
    ("alexnet", alex),
    ("vgg16", vgg16),
    ("resnet18", r18),
    ("resnet50", r50),
]:
    record(**{f"{key}_weight_layers": weight_layers(counted)})
conv_parameters = sum(r.parameters for r in r18["rows"] if r.kind == "Conv2d")
record(resnet18_conv_parameter_share=conv_parameters / r18["parameters"])
for name, counted in resnets.items():
    key = name.lower().replace("-", "").replace(" (option a)", "_option_a")
    record(
        **{
            f"{key}_parameters": counted["parameters"],
            f"{key}_multiply_adds": counted["multiply_adds"],
            f"{key}_receptive_field": counted["receptive_field"],
        }
    )

# %%
# --8<-- [start:cifar-count]
with torch.device("meta"):
    cifar = {
        depth: ResNet(
            BasicBlock,
            (n, n, n),  # three stages of n blocks: 6n + 2 layers
            widths=(16, 32, 64),
            num_classes=10,
            stem=(3, 1),
            stem_pool=False,
            shortcut="zero-padding",
        )
        for depth, n in [(20, 3), (56, 9), (110, 18)]
    }
for depth, net in cifar.items():
    print(f"ResNet-{depth}: {count_parameters(net) / 1e6:.2f} million")
# --8<-- [end:cifar-count]
for depth, net in cifar.items():
    record(**{f"cifar_resnet{depth}_parameters": count_parameters(net)})

# %% [markdown]
# Chapter 4's CNN on the 24 × 24 shifted digits, counted the same way, for
# the chapter's table of trained networks.

# %%
small_cnn = summary(SmallCNN(image_size=24), (1, 24, 24))
print(f"{small_cnn['multiply_adds']:,} multiply-adds per image")
record(
    smallcnn_multiply_adds=small_cnn["multiply_adds"],
    smallcnn_parameters=small_cnn["parameters"],
)

# %%
# Every count again in millions or billions, for the chapter's tables.
results = json.loads((output_dir() / "results.json").read_text())
record(
    **{
        f"{key}_millions": value / 1e6
        for key, value in results.items()
        if key.endswith("_parameters")
    },
    **{
        f"{key}_billions": value / 1e9
        for key, value in results.items()
        if key.endswith("_multiply_adds")
    },
)


# %% [markdown]
# ## What shortcuts change in one small deep stack
#
# A deep stack of ResNet's basic blocks on the shifted digits, with and
# without its shortcuts: the gradient that reaches the first layer at
# initialisation, for stacks of growing depth, and the training loss of a
# 34-layer stack.

# %%
data = standardise(load_dataset("shifted_digits"))

# %% [markdown]
# ## The gradient at the first layer, at initialisation
#
# Stacks of 1 to 32 basic blocks (4 to 66 layers), with and without their
# shortcuts, each from three random initialisations, on one mini-batch.

# %%
# --8<-- [start:gradients]
X, y = data.X_train[:64], data.y_train[:64]
blocks = [1, 2, 4, 8, 16, 32]
norms = {"plain": [], "residual": []}
for num_blocks in blocks:
    # One stage of 8 channels at stride 1: every "projection" shortcut here
    # is an identity (a 1 × 1 projection only where the shape changes).
    for kind, shortcut in [("plain", None), ("residual", "projection")]:
        per_seed = []
        for seed in PROTOCOL["seeds"]:
            torch.manual_seed(seed)
            net = deep_stack(num_blocks, shortcut)
            per_seed.append(first_layer_gradient(net, X, y))
        norms[kind].append(per_seed)
layers = [2 * n + 2 for n in blocks]
for kind, values in norms.items():
    print(kind, [f"{np.mean(v):.2g}" for v in values])
# --8<-- [end:gradients]
plain, residual = (np.array(norms[k]) for k in ("plain", "residual"))
record(
    gradient_layers=layers,
    gradient_shallow_layers=layers[0],
    gradient_deep_layers=layers[-1],
    plain_gradient_growth=plain[-1].mean() / plain[0].mean(),
    residual_gradient_growth=residual[-1].mean() / residual[0].mean(),
    deep_gradient_ratio=plain[-1].min() / residual[-1].max(),
    plain_gradient_monotone=bool(np.all(np.diff(plain.mean(axis=1)) > 0)),
    gradient_norms_plain=plain.tolist(),  # (depths, seeds)
    gradient_norms_residual=residual.tolist(),
)

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for kind, colour in [("plain", "tab:orange"), ("residual", "tab:purple")]:
    values = np.array(norms[kind])
    ax.plot(layers, values.mean(axis=1), marker="o", color=colour, label=kind)
    for seed_values in values.T:  # each initialisation, small
        ax.scatter(
            layers, seed_values, color=colour, alpha=0.45, s=14, zorder=3
        )
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xticks(layers, [str(n) for n in layers])
ax.set(
    xlabel="layers in the stack",
    ylabel="gradient length at the first layer",
)
ax.legend(title="stack")
save_figure(fig, "gradients")

# %% [markdown]
# ## Training a 34-layer stack, with and without shortcuts
#
# The loop of `book.train` (Adam, the protocol's learning rate and batch
# size), keeping every mini-batch's loss and the length of the gradient at
# the first layer.


# %%
# --8<-- [start:training]
def train_steps(net, data, num_steps, seed):
    """Mini-batch Adam as in book.train, for num_steps mini-batches; returns
    each step's training loss, first-layer gradient length and how far the
    first layer's weights have moved from their start."""
    generator = torch.Generator().manual_seed(seed)
    # foreach: Adam's update for all the weight tensors at once, not one by
    # one (the same arithmetic, with less Python per step).
    optimizer = torch.optim.Adam(
        net.parameters(), lr=PROTOCOL["lr"], foreach=True
    )
    first = net.features[0][0]  # the stem's convolution
    start = first.weight.detach().clone()
    losses, gradients, moved = [], [], []
    net.train()
    while len(losses) < num_steps:
        n = len(data.X_train)
        for batch in mini_batches(n, PROTOCOL["batch_size"], generator):
            X, y = data.X_train[batch], data.y_train[batch]
            loss = F.cross_entropy(net(X), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            gradients.append(first.weight.grad.norm().item())
            moved.append((first.weight.detach() - start).norm().item())
            if len(losses) == num_steps:
                break
    return np.array(losses), np.array(gradients), np.array(moved)


num_blocks, num_steps = 16, 60  # 34 layers, about an epoch and a half
runs = {"plain": [], "residual": []}
# Every shortcut an identity, as above: one stage, one width, stride 1.
for kind, shortcut in [("plain", None), ("residual", "projection")]:
    for seed in PROTOCOL["seeds"]:
        torch.manual_seed(seed)
        net = deep_stack(num_blocks, shortcut)
        runs[kind].append(train_steps(net, data, num_steps, seed))
last = 20  # the loss at the end: the mean of the last 20 mini-batches
for kind, kind_runs in runs.items():
    final = [round(losses[-last:].mean(), 2) for losses, *_ in kind_runs]
    print(kind, "final training loss", final)
# --8<-- [end:training]
plain_loss, residual_loss = (
    np.array([losses[-last:].mean() for losses, *_ in runs[kind]])
    for kind in ("plain", "residual")
)
record(
    stack_layers=2 * num_blocks + 2,
    stack_steps=num_steps,
    num_train=len(data.X_train),
    stack_epochs=num_steps / (len(data.X_train) // PROTOCOL["batch_size"]),
    # the standard error of each mean over the seeds: s / sqrt(k)
    plain_final_loss_se=plain_loss.std(ddof=1) / np.sqrt(len(plain_loss)),
    residual_final_loss_se=residual_loss.std(ddof=1)
    / np.sqrt(len(residual_loss)),
    stack_last_steps=last,
    plain_final_loss=plain_loss.mean(),
    plain_final_loss_std=plain_loss.std(ddof=1),
    plain_final_losses=plain_loss.tolist(),
    residual_final_loss=residual_loss.mean(),
    residual_final_loss_std=residual_loss.std(ddof=1),
    residual_final_losses=residual_loss.tolist(),
    worst_residual_loss=residual_loss.max(),
    best_plain_loss=plain_loss.min(),
    chance_loss=np.log(10),
    stack_parameters=count_parameters(net),
    stack_parameters_plain=count_parameters(deep_stack(num_blocks, None)),
)

# %%
# When does the plain stack's first-layer gradient (mean of the seeds) fall
# below the residual stack's, and how often is it below from then on?
plain_gradients, residual_gradients = (
    np.array([gradients for _, gradients, _ in runs[kind]])  # (seeds, steps)
    for kind in ("plain", "residual")
)
plain_mean, residual_mean = plain_gradients.mean(0), residual_gradients.mean(0)
below = plain_mean < residual_mean
crossing = int(np.argmax(below))  # the first mini-batch where it is below
record(
    first_step_gradient_ratio=plain_mean[0] / residual_mean[0],
    gradient_crossing_step=crossing + 1,
    # the prose's "about": a crossing of two noisy three-seed means
    gradient_crossing_about=int(10 * round((crossing + 1) / 10)),
    gradient_below_share_after=below[crossing:].mean(),
    # per seed pair: log10 of plain over residual, first step and last steps
    first_step_gradient_log_ratios=np.log10(
        plain_gradients[:, 0] / residual_gradients[:, 0]
    ).tolist(),
    late_gradient_ratio=plain_mean[-last:].mean()
    / residual_mean[-last:].mean(),
    late_gradient_log_ratios=np.log10(
        plain_gradients[:, -last:].mean(1)
        / residual_gradients[:, -last:].mean(1)
    ).tolist(),
)

# %%
# Adam's steps hardly depend on the gradient's length: how far the first
# layer has moved after the first `last` mini-batches, plain over residual.
early_moved = {
    kind: np.array([moved[last - 1] for _, _, moved in runs[kind]])
    for kind in runs
}
early_gradient = {
    kind: np.array([gradients[:last].mean() for _, gradients, _ in runs[kind]])
    for kind in runs
}
record(
    early_steps=last,
    early_moved_log_ratios=np.log10(
        early_moved["plain"] / early_moved["residual"]
    ).tolist(),
    early_gradient_log_ratios=np.log10(
        early_gradient["plain"] / early_gradient["residual"]
    ).tolist(),
    early_moved_ratio=early_moved["plain"].mean()
    / early_moved["residual"].mean(),
    early_gradient_ratio=early_gradient["plain"].mean()
    / early_gradient["residual"].mean(),
)

# %%
fig, (loss_ax, gradient_ax) = plt.subplots(1, 2, figsize=(9, 3.8))
steps = np.arange(1, num_steps + 1)
for kind, colour, line in [
    ("plain", "tab:orange", "-"),
    ("residual", "tab:purple", "--"),
]:
    losses = np.array([r[0] for r in runs[kind]])
    gradients = np.array([r[1] for r in runs[kind]])
    for run in losses:
        loss_ax.plot(steps, run, color=colour, alpha=0.45, lw=0.9)
    loss_ax.plot(
        steps, losses.mean(axis=0), color=colour, ls=line, lw=2, label=kind
    )
    for run in gradients:
        gradient_ax.plot(steps, run, color=colour, alpha=0.45, lw=0.9)
    gradient_ax.plot(
        steps, gradients.mean(axis=0), color=colour, ls=line, lw=2, label=kind
    )
loss_ax.axhline(np.log(10), color="0.3", ls=":", label="chance (ln 10)")
loss_ax.set(xlabel="mini-batch", ylabel="training loss (cross-entropy)")
loss_ax.legend(fontsize=11)
gradient_ax.set_yscale("log")
# Labelled ticks at 1, 2, 5 times powers of ten, as plain numbers: the
# default labels every minor tick with a small exponent.
low, high = gradient_ax.get_ylim()
ticks = [
    m * 10.0**e
    for e in range(-3, 3)
    for m in (1, 2, 5)
    if low <= m * 10.0**e <= high
]
gradient_ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
gradient_ax.yaxis.set_minor_formatter(plt.NullFormatter())
gradient_ax.set(
    xlabel="mini-batch", ylabel="gradient length at the first layer"
)
gradient_ax.legend(fontsize=11)
for ax in (loss_ax, gradient_ax):
    ax.tick_params(labelsize=11)
    ax.xaxis.label.set_size(11)
    ax.yaxis.label.set_size(11)
fig.tight_layout()
save_figure(fig, "training")
