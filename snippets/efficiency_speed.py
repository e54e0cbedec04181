# %% [markdown]
# # Chapter 10, part 2: are cheaper convolutions faster?
#
# A standard, a grouped and a depthwise-separable 3 × 3 convolution, timed
# on one CPU thread for a range of channel counts. We compare the time each
# saves with the multiply-adds it saves. The numbers are this machine's,
# measured when the book was built.

# %%
import os

import matplotlib.pyplot as plt
import torch
from torch import nn

from book import record, save_figure, setup
from conv_scratch_ops import race
from efficiency_ops import (
    SeparableConv2d,
    conv_cost,
    count_mult_adds,
    separable_cost,
)

setup()  # seeds, and one thread

# %% [markdown]
# ## The layers and their costs


# %%
# --8<-- [start:layers]
N, size, k, groups = 8, 32, 3, 8  # 8 maps of 32 × 32, 3 × 3 kernels
CHANNELS = [16, 32, 64, 128, 256]  # C in and C out


def make_layers(C):
    """The contenders, each with its multiply-adds per image by formula."""
    separable = SeparableConv2d(C, C, k, padding=1)
    layers = {
        "standard": nn.Conv2d(C, C, k, padding=1),
        "grouped": nn.Conv2d(C, C, k, padding=1, groups=groups),
        "separable": separable,
        "depthwise": separable.depthwise,  # the separable layer's two parts
        "pointwise": separable.pointwise,
    }
    costs = {
        "standard": conv_cost(C, C, k, size, size),
        "grouped": conv_cost(C, C, k, size, size, groups=groups),
        "separable": separable_cost(C, C, k, size, size),
        "depthwise": conv_cost(C, C, k, size, size, groups=C, bias=False),
        "pointwise": conv_cost(C, C, 1, size, size),
    }
    return layers, {name: cost.mult_adds for name, cost in costs.items()}


# --8<-- [end:layers]


# %% [markdown]
# ## The race


# %%
# --8<-- [start:benchmark]
def benchmark(C, repeat=30):
    """CPU seconds per forward pass of each layer on (N, C, size, size)."""
    layers, mult_adds = make_layers(C)
    X = torch.randn(N, C, size, size)
    for name, layer in layers.items():  # the formula, checked once more
        assert count_mult_adds(layer, X) == mult_adds[name]
    with torch.no_grad():
        fns = {name: (lambda f=layer: f(X)) for name, layer in layers.items()}
        seconds = race(fns, repeat)  # the fastest of repeat calls, each
    flops = {name: 2 * N * m for name, m in mult_adds.items()}
    return seconds, flops


seconds, flops = {}, {}
for C in CHANNELS:
    seconds[C], flops[C] = benchmark(C)
    print(
        f"{C:>3} channels:",
        *(f"{name} {s * 1e3:6.2f} ms" for name, s in seconds[C].items()),
    )
# --8<-- [end:benchmark]

# %%
# --8<-- [start:gflops]
n = 1024  # a square matrix product: the best case on this CPU
A, B = torch.randn(n, n), torch.randn(n, n)
matmul_gflops = 2 * n**3 / race({"matmul": lambda: A @ B}, 10)["matmul"] / 1e9
gflops = {
    C: {name: flops[C][name] / s / 1e9 for name, s in seconds[C].items()}
    for C in CHANNELS
}
for C in CHANNELS:
    print(
        f"{C:>3} channels:",
        *(f"{name} {g:5.1f}" for name, g in gflops[C].items()),
        "GFLOP/s",
    )
print(f"matrix product: {matmul_gflops:.1f} GFLOP/s")
# --8<-- [end:gflops]

# %%
# --8<-- [start:savings]
flop_saving = {  # how many times fewer operations than standard...
    C: {name: flops[C]["standard"] / flops[C][name] for name in flops[C]}
    for C in CHANNELS
}
time_saving = {  # ...and how many times less time
    C: {name: seconds[C]["standard"] / s for name, s in seconds[C].items()}
    for C in CHANNELS
}
for C in CHANNELS:
    print(
        f"{C:>3} channels: grouped {flop_saving[C]['grouped']:.1f} times "
        f"fewer FLOPs, {time_saving[C]['grouped']:.1f} times faster; "
        f"separable {flop_saving[C]['separable']:.1f} and "
        f"{time_saving[C]['separable']:.1f}"
    )
# --8<-- [end:savings]


# %%
def series(table, name):
    return [table[C][name] for C in CHANNELS]


NAMES = ["standard", "grouped", "separable", "depthwise", "pointwise"]
depthwise_time_share = [
    seconds[C]["depthwise"] / seconds[C]["separable"] for C in CHANNELS
]
depthwise_flop_share = [
    flops[C]["depthwise"] / flops[C]["separable"] for C in CHANNELS
]
record(
    batch_size=N,
    size=size,
    kernel_size=k,
    groups=groups,
    channels=CHANNELS,
    smallest=CHANNELS[0],
    largest=CHANNELS[-1],
    **{
        f"ms_{name}": [s * 1e3 for s in series(seconds, name)] for name in NAMES
    },
    **{f"gflops_{name}": series(gflops, name) for name in NAMES},
    **{
        f"mflop_{name}": [f / 1e6 for f in series(flops, name)]
        for name in NAMES
    },
    flop_saving_grouped=series(flop_saving, "grouped"),
    flop_saving_separable=series(flop_saving, "separable"),
    time_saving_grouped=series(time_saving, "grouped"),
    time_saving_separable=series(time_saving, "separable"),
    depthwise_time_share=depthwise_time_share,
    depthwise_flop_share=depthwise_flop_share,
    matmul_size=n,
    matmul_gflops=matmul_gflops,
    torch_threads=torch.get_num_threads(),
    load_average=os.getloadavg()[0],
    cpu_count=os.cpu_count(),
)
for i, C in enumerate(CHANNELS):  # single numbers the prose quotes
    record(
        **{
            f"c{C}_{key}": value
            for key, value in {
                "ms_standard": seconds[C]["standard"] * 1e3,
                "ms_grouped": seconds[C]["grouped"] * 1e3,
                "ms_separable": seconds[C]["separable"] * 1e3,
                "gflops_standard": gflops[C]["standard"],
                "gflops_grouped": gflops[C]["grouped"],
                "gflops_separable": gflops[C]["separable"],
                "gflops_depthwise": gflops[C]["depthwise"],
                "gflops_pointwise": gflops[C]["pointwise"],
                "flop_saving_grouped": flop_saving[C]["grouped"],
                "flop_saving_separable": flop_saving[C]["separable"],
                "time_saving_grouped": time_saving[C]["grouped"],
                "time_saving_separable": time_saving[C]["separable"],
                "depthwise_time_share": depthwise_time_share[i],
                "depthwise_flop_share": depthwise_flop_share[i],
            }.items()
        }
    )

# %%
STYLES = {
    "standard": ("standard", "tab:blue", "o", "-"),
    "grouped": (f"grouped ({groups} groups)", "tab:orange", "s", "-"),
    "separable": ("depthwise-separable", "tab:green", "^", "-"),
    "depthwise": ("its depthwise part", "tab:green", "v", ":"),
    "pointwise": ("its pointwise part", "tab:olive", "D", ":"),
}
fig, (time_ax, rate_ax) = plt.subplots(1, 2, figsize=(10, 4.2))
for name, (label, colour, marker, line) in STYLES.items():
    kwargs = dict(color=colour, marker=marker, ls=line, label=label)
    if name in ("standard", "grouped", "separable"):
        time_ax.plot(
            CHANNELS, [s * 1e3 for s in series(seconds, name)], **kwargs
        )
    rate_ax.plot(CHANNELS, series(gflops, name), **kwargs)
rate_ax.axhline(matmul_gflops, color="0.4", ls="--", lw=1)
rate_ax.text(
    CHANNELS[0],
    matmul_gflops,
    f"{n} × {n} matrix product",
    color="0.3",
    va="bottom",
    fontsize=9,
)
time_ax.set(
    yscale="log",
    ylabel="milliseconds per forward pass (log scale)",
    title=f"{N} maps of {size} × {size}, C channels in and out",
)
rate_ax.set(
    ylabel="GFLOP/s (one thread)",
    ylim=(0, 1.15 * max(matmul_gflops, *series(gflops, "standard"))),
    title="achieved speed",
)
for ax in (time_ax, rate_ax):
    ax.set_xscale("log", base=2)
    ax.set_xticks(CHANNELS, [str(C) for C in CHANNELS])
    ax.minorticks_off()
    ax.set_xlabel("channels in and out (C)")
fig.tight_layout()
fig.legend(
    *rate_ax.get_legend_handles_labels(),
    loc="upper center",
    bbox_to_anchor=(0.5, 0.0),
    ncol=3,
    fontsize=9,
    frameon=False,
)
save_figure(fig, "speed")

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
for name in ("grouped", "separable"):
    label, colour, marker, _ = STYLES[name]
    ax.plot(
        CHANNELS,
        series(flop_saving, name),
        color=colour,
        ls="--",
        label=f"{label}: fewer FLOPs",
    )
    ax.plot(
        CHANNELS,
        series(time_saving, name),
        color=colour,
        marker=marker,
        label=f"{label}: less time",
    )
ax.axhline(1, color="0.5", ls=":", lw=1)
ax.set_xscale("log", base=2)
ax.set_xticks(CHANNELS, [str(C) for C in CHANNELS])
ax.minorticks_off()
ax.set(
    xlabel="channels in and out (C)",
    ylabel="times less than standard",
    title="what the cheaper layers save, on paper and on the clock",
)
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=9)
save_figure(fig, "time_saving")
