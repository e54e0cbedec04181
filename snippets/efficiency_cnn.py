# %% [markdown]
# # Chapter 10, part 3: a depthwise-separable CNN on shifted digits
#
# Chapter 4's SmallCNN with its second and third convolutions made
# depthwise-separable, trained under the book's protocol on the shifted
# digits. We count what it saves, and time it against the standard network.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from book import (
    PROTOCOL,
    SmallCNN,
    count_parameters,
    load_dataset,
    record,
    run_trials,
    save_figure,
    setup,
    table_row,
)
from efficiency_ops import (
    SeparableCNN,
    cnn_cost,
    conv_cost,
    count_mult_adds,
    interleaved_times,
    separable_cost,
    speed_ratio,
)

setup()

# %% [markdown]
# ## The two networks and what they cost

# %%
# --8<-- [start:nets]
data = load_dataset("shifted_digits")  # 24 × 24 canvases
nets = {"standard": SmallCNN(image_size=24), "separable": SeparableCNN(24)}
print(nets["separable"].blocks[1])
X = data.X_test[:16]
for name, net in nets.items():
    print(
        f"{name:>9}: {count_parameters(net):6,} parameters, "
        f"{count_mult_adds(net.eval(), X):9,} multiply-adds per image"
    )
# --8<-- [end:nets]
costs = {name: cnn_cost(24, separable=name == "separable") for name in nets}
record(
    **{f"{name}_parameters": count_parameters(n) for name, n in nets.items()},
    **{f"{name}_mult_adds": count_mult_adds(n, X) for name, n in nets.items()},
    **{f"{name}_formula_parameters": c.parameters for name, c in costs.items()},
    **{f"{name}_formula_mult_adds": c.mult_adds for name, c in costs.items()},
)
# Convolutions 2 and 3 alone: 16 -> 32 channels on 12 × 12, 32 -> 64 on 6 × 6.
changed_cost = {
    "standard": conv_cost(16, 32, 3, 12, 12) + conv_cost(32, 64, 3, 6, 6),
    "separable": separable_cost(16, 32, 3, 12, 12)
    + separable_cost(32, 64, 3, 6, 6),
}
record(
    parameter_ratio=costs["standard"].parameters
    / costs["separable"].parameters,
    mult_add_ratio=costs["standard"].mult_adds / costs["separable"].mult_adds,
    changed_mult_add_ratio=changed_cost["standard"].mult_adds
    / changed_cost["separable"].mult_adds,
    changed_mult_add_share=changed_cost["standard"].mult_adds
    / costs["standard"].mult_adds,
)

# %% [markdown]
# ## Train it, three times

# %%
# --8<-- [start:trials]
start = time.process_time()
separable = run_trials(SeparableCNN, data)  # book.PROTOCOL, as in chapter 4
cpu_seconds = (time.process_time() - start) / len(PROTOCOL["seeds"])
print(f"test accuracy {separable['mean']:.3f} ± {separable['std']:.3f}")
print(f"{separable['seconds']:.1f} s per run ({cpu_seconds:.1f} s of CPU)")
# --8<-- [end:trials]
record(
    **table_row("separable_shifted", separable),
    separable_accuracies=separable["accuracies"],
    worst_seed_accuracy=min(separable["accuracies"]),
    separable_cpu_seconds=cpu_seconds,
    num_seeds=len(PROTOCOL["seeds"]),
    num_epochs=PROTOCOL["num_epochs"],
)


# %% [markdown]
# ## Time, side by side
#
# One training step on a mini-batch, and one pass over the test set, for
# each network, timed in turns on the same machine (CPU time, the median of
# many rounds).


# %%
# --8<-- [start:race]
def training_step(net, X, y):
    net.train()
    net.zero_grad()
    F.cross_entropy(net(X), y).backward()  # forward and backward


def test_pass(net, X):
    net.eval()
    with torch.no_grad():
        net(X)


batch = slice(0, PROTOCOL["batch_size"])
X_batch, y_batch = data.X_train[batch], data.y_train[batch]
steps = interleaved_times(
    {
        name: (lambda net=net: training_step(net, X_batch, y_batch))
        for name, net in nets.items()
    },
    rounds=30,
)
passes = interleaved_times(
    {
        name: (lambda net=net: test_pass(net, data.X_test))
        for name, net in nets.items()
    },
    rounds=10,
)
step = {name: np.median(t) for name, t in steps.items()}
inference = {name: np.median(t) for name, t in passes.items()}
for name in nets:
    print(
        f"{name:>9}: {step[name] * 1e3:.1f} ms per training step, "
        f"{inference[name] * 1e3:.1f} ms per pass over the test set"
    )
# --8<-- [end:race]
step_ratio = speed_ratio(steps["standard"], steps["separable"])
record(
    step_ms_standard=step["standard"] * 1e3,
    step_ms_separable=step["separable"] * 1e3,
    test_pass_ms_standard=inference["standard"] * 1e3,
    test_pass_ms_separable=inference["separable"] * 1e3,
    step_ratio=step_ratio[0],
    step_ratio_se=step_ratio[1],
    test_pass_ratio=speed_ratio(passes["standard"], passes["separable"])[0],
    num_test=len(data.X_test),
    batch_size=PROTOCOL["batch_size"],
)


# %% [markdown]
# ## Where the forward pass spends its time


# %%
# --8<-- [start:breakdown]
def layer_calls(net, X):
    """A call of each layer of net on the images that reach it."""
    net.eval()
    calls = {}
    with torch.no_grad():
        for depth, block in enumerate(net.blocks):
            for layer in block:
                name = f"block {depth + 1}: {type(layer).__name__}"
                calls[name] = lambda layer=layer, X=X: layer(X)
                X = layer(X)  # the next layer's input
    return calls


def head_call(net, X):
    """The rest of the pass: global max pool and the linear layer."""
    with torch.no_grad():
        for block in net.blocks:
            X = block(X)
    return lambda: net.classifier(X.amax(dim=(2, 3)))


calls = {
    (name, layer): call
    for name, net in nets.items()
    for layer, call in layer_calls(net, data.X_test).items()
}
calls |= {
    (name, "head"): head_call(net, data.X_test) for name, net in nets.items()
}
with torch.no_grad():
    times = interleaved_times(calls, rounds=10)  # every layer, in turns


def part(layer):
    """The part of the network a layer belongs to, for the breakdown."""
    if layer == "block 1: Conv2d":
        return "convolution 1"
    if "Conv2d" in layer:  # SeparableConv2d too
        return "convolutions 2 and 3"
    if "MaxPool2d" in layer:
        return "max pools"
    if layer == "head":
        return "global pool and linear"
    return "batch norm and ReLU"


PARTS = [
    "convolution 1",
    "convolutions 2 and 3",
    "max pools",
    "batch norm and ReLU",
    "global pool and linear",
]
rounds = {name: {p: 0.0 for p in PARTS} for name in nets}  # s, per round
for (name, layer), t in times.items():
    rounds[name][part(layer)] = rounds[name][part(layer)] + t
ms = {
    name: {p: float(np.median(rounds[name][p])) * 1e3 for p in PARTS}
    for name in nets
}
for name in nets:
    print(f"{name}:", ", ".join(f"{p} {ms[name][p]:.1f} ms" for p in PARTS))
# --8<-- [end:breakdown]
SLUGS = dict(zip(PARTS, ["first_conv", "changed", "pool", "norm_relu", "head"]))
record(
    **{f"{name}_{SLUGS[p]}_ms": ms[name][p] for name in nets for p in PARTS},
    **{
        f"{name}_{SLUGS[p]}_rounds_ms": (rounds[name][p] * 1e3).tolist()
        for name in nets
        for p in PARTS
    },
    **{f"{name}_layers_ms": sum(ms[name].values()) for name in nets},
    **{
        f"{name}_changed_share": ms[name]["convolutions 2 and 3"]
        / sum(ms[name].values())
        for name in nets
    },
    changed_time_ratio=ms["standard"]["convolutions 2 and 3"]
    / ms["separable"]["convolutions 2 and 3"],
)

# %%
names = ["standard", "separable"]
panels = {
    "parameters": [count_parameters(nets[n]) for n in names],
    "multiply-adds per image": [count_mult_adds(nets[n], X) for n in names],
    "ms per training step": [step[n] * 1e3 for n in names],
}
fig, axes = plt.subplots(1, 3, figsize=(9, 2.8))
for ax, (title, values) in zip(axes, panels.items()):
    # chapter 10's colours for the two layers; not blue, the colour of sign
    bars = ax.bar(names, values, color=["tab:purple", "tab:green"])
    ax.bar_label(bars, fmt="{:,.0f}" if values[0] > 100 else "{:.1f}")
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, 1.2 * max(values))
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
fig.tight_layout()
save_figure(fig, "costs")

# %%
# What we changed in orange; red would read as a sign in this book.
colours = ["0.45", "tab:orange", "0.65", "0.83", "0.93"]
fig, ax = plt.subplots(figsize=(9, 2.6))
for row, name in enumerate(names):
    left = 0.0
    for p, colour in zip(PARTS, colours):
        width = ms[name][p]
        ax.barh(
            row, width, left=left, color=colour, label=p if row == 0 else None
        )
        if width > 4:  # room for the number
            ax.text(
                left + width / 2,
                row,
                f"{width:.1f}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if colour == "0.45" else "black",
            )
        left += width
ax.set_yticks([0, 1], names)
ax.invert_yaxis()  # standard on top
ax.set(xlabel="milliseconds per pass over the test set, by part (CPU time)")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3, fontsize=9)
save_figure(fig, "breakdown")
