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
    compare,
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
step = {name: np.median(t) for name, t in steps.items()}
step_ratio = speed_ratio(steps["standard"], steps["separable"])
step_words = compare(*step_ratio)  # the separable step: "faster than", ...
for name in nets:
    print(f"{name:>9}: {step[name] * 1e3:.1f} ms per training step")
print(f"separable step {step_words} standard: {step_ratio[0]:.3f} times")
# --8<-- [end:race]
record(
    step_ms_standard=step["standard"] * 1e3,
    step_ms_separable=step["separable"] * 1e3,
    step_quartiles_ms={
        name: (np.percentile(t, [25, 75]) * 1e3).tolist()
        for name, t in steps.items()
    },
    step_ratio=step_ratio[0],
    step_ratio_se=step_ratio[1],
    step_words=step_words,
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
calls |= {  # and the whole pass, in the same rounds as its parts
    (name, "whole pass"): (lambda net=net: test_pass(net, data.X_test))
    for name, net in nets.items()
}
with torch.no_grad():
    times = interleaved_times(calls, rounds=20)  # every layer, in turns


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
    if layer != "whole pass":
        rounds[name][part(layer)] = rounds[name][part(layer)] + t
ms = {
    name: {p: float(np.median(rounds[name][p])) * 1e3 for p in PARTS}
    for name in nets
}
whole = {name: times[name, "whole pass"] for name in nets}
for name in nets:
    print(f"{name}:", ", ".join(f"{p} {ms[name][p]:.1f} ms" for p in PARTS))
    print(f"  the whole pass: {np.median(whole[name]) * 1e3:.1f} ms")
# --8<-- [end:breakdown]
whole_ms = {name: float(np.median(t)) * 1e3 for name, t in whole.items()}
parts_sum = {name: sum(rounds[name].values()) for name in nets}
pass_ratio = speed_ratio(whole["standard"], whole["separable"])
gap = speed_ratio(whole["standard"], parts_sum["standard"])
changed = speed_ratio(
    rounds["standard"]["convolutions 2 and 3"],
    rounds["separable"]["convolutions 2 and 3"],
)
pools = speed_ratio(  # the standard network's max pools against the changed
    rounds["standard"]["max pools"], rounds["standard"]["convolutions 2 and 3"]
)
same = {  # layers the two networks share: how far their times differ
    p: speed_ratio(rounds["standard"][p], rounds["separable"][p])
    for p in ("convolution 1", "max pools")
}
# Layers the networks share differ only by the timing's drift: a floor under
# any gap between a whole pass and its parts worth reading into.
shared_drift = max(abs(np.log(ratio)) for ratio, _ in same.values())
pass_words = (
    "less time than its parts added up to",
    "about as long as its parts added up to",
    "longer than its parts added up to",
)
pass_vs_parts = compare(*gap, words=pass_words)
if pass_vs_parts == pass_words[1]:
    pass_gap_note = ""
elif abs(np.log(gap[0])) <= shared_drift:
    pass_gap_note = (
        ", but by no more than the layers the two networks share differed"
        " by (below), so we read nothing into it"
    )
else:
    pass_gap_note = (
        ", by more than the layers the two networks share differed by"
        " (below); we did not find out where the difference goes"
    )
# The pools' input: 16 maps of 24 × 24 and 32 of 12 × 12 per image.
pool_numbers = len(data.X_test) * (16 * 24 * 24 + 32 * 12 * 12)
record(
    test_pass_ms_standard=whole_ms["standard"],
    test_pass_ms_separable=whole_ms["separable"],
    test_pass_ratio=pass_ratio[0],
    test_pass_ratio_se=pass_ratio[1],
    test_pass_words=compare(*pass_ratio),
    pass_over_parts=gap[0],
    pass_over_parts_se=gap[1],
    pass_vs_parts=pass_vs_parts,
    pass_gap_note=pass_gap_note,
    changed_time_ratio=changed[0],
    changed_words=compare(*changed),
    changed_time_ratio_se=changed[1],
    **{
        f"same_{SLUG}_ratio": same[p][0]
        for p, SLUG in [("convolution 1", "first_conv"), ("max pools", "pool")]
    },
    **{
        f"same_{SLUG}_ratio_se": same[p][1]
        for p, SLUG in [("convolution 1", "first_conv"), ("max pools", "pool")]
    },
    pool_changed_ratio=pools[0],
    pool_changed_ratio_se=pools[1],
    pools_vs_changed=compare(
        *pools, words=("less time than", "about as long as", "longer than")
    ),
    pool_million_numbers=pool_numbers / 1e6,
    pool_numbers_per_ns=pool_numbers / (ms["standard"]["max pools"] * 1e6),
    whole_pass_rounds_ms={n: (w * 1e3).tolist() for n, w in whole.items()},
)
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
)

# %%
names = ["standard", "separable"]
panels = {
    "parameters": [count_parameters(nets[n]) for n in names],
    "multiply-adds per image": [count_mult_adds(nets[n], X) for n in names],
    "ms per forward + backward": [step[n] * 1e3 for n in names],
}
fig, axes = plt.subplots(1, 3, figsize=(9, 2.8))
for ax, (title, values) in zip(axes, panels.items()):
    # chapter 10's colours for the two layers; not blue, the colour of sign
    errors = None
    if title.startswith("ms"):  # the spread over the rounds, as in speed.svg
        quartiles = np.array([np.percentile(steps[n], [25, 75]) for n in names])
        errors = np.abs(quartiles.T * 1e3 - np.array(values))
    bars = ax.bar(
        names, values, yerr=errors, capsize=3, color=["tab:purple", "tab:green"]
    )
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
        ax.barh(  # thin outlines: the palest part stays visible on white
            row,
            width,
            left=left,
            color=colour,
            edgecolor="0.35",
            linewidth=0.6,
            label=p if row == 0 else None,
        )
        if width > 0.08 * sum(ms["standard"].values()):  # room for the number
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
    ax.plot([whole_ms[name]] * 2, [row - 0.45, row + 0.45], color="black", lw=2)
ax.plot([], [], color="black", lw=2, label="whole pass")  # for the legend
ax.set_yticks([0, 1], names)
ax.invert_yaxis()  # standard on top
ax.set(xlabel="milliseconds per pass over the test set, by part (CPU time)")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3, fontsize=9)
save_figure(fig, "breakdown")
