# %% [markdown]
# # Chapter 10, part 2: are cheaper convolutions faster?
#
# A standard, a grouped and a depthwise-separable 3 × 3 convolution, timed
# on one CPU thread for a range of channel counts. We compare the time each
# saves with the multiply-adds it saves. The numbers are this machine's,
# measured when the book was built.

# %%
import copy
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from book import record, save_figure, setup
from efficiency_ops import (
    SeparableConv2d,
    compare,
    conv_cost,
    count_mult_adds,
    interleaved_times,
    separable_cost,
    speed_ratio,
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
n = 1024  # a square matrix product, timed alongside for comparison
A, B = torch.randn(n, n), torch.randn(n, n)


LAYOUT = ["standard", "separable", "depthwise", "pointwise"]  # timed twice


def channels_last(layers, X):
    """The same layers and maps in channels-last memory layout: each
    pixel's C numbers side by side, instead of each channel's map."""
    separable = copy.deepcopy(layers["separable"])  # same weights
    separable.to(memory_format=torch.channels_last)
    moved = {
        "standard": copy.deepcopy(layers["standard"]),
        "separable": separable,
        "depthwise": separable.depthwise,
        "pointwise": separable.pointwise,
    }
    moved["standard"].to(memory_format=torch.channels_last)
    return moved, X.contiguous(memory_format=torch.channels_last)


def benchmark(C, rounds=30):
    """CPU seconds of every call of each layer on (N, C, size, size), of
    the matrix product and of a plain copy of the input, in turns; at the
    widest width also in channels-last layout, names ending in "_cl"."""
    layers, mult_adds = make_layers(C)
    X = torch.randn(N, C, size, size)
    for name, layer in layers.items():  # the formula, checked once more
        assert count_mult_adds(layer, X) == mult_adds[name]
    with torch.no_grad():
        fns = {name: (lambda f=layer: f(X)) for name, layer in layers.items()}
        # Reads and writes every number once, into memory already in use:
        # a fresh output may need new pages from the system, a cost that
        # came and went with the order of the calls.
        Y = torch.empty_like(X)
        fns["copy"] = lambda: Y.copy_(X)
        if C == CHANNELS[-1]:  # the widest layers against a matrix product
            fns["matmul"] = lambda: A @ B
            # One change, the memory layout, in the same rounds.
            moved, X_cl = channels_last(layers, X)
            for name, layer in moved.items():
                fns[f"{name}_cl"] = lambda f=layer: f(X_cl)
        times = interleaved_times(fns, rounds)
    flops = {name: 2 * N * m for name, m in mult_adds.items()}
    if "matmul" in times:
        flops["matmul"] = 2 * n**3
    return times, flops


times, flops = {}, {}
for C in CHANNELS:
    times[C], flops[C] = benchmark(C)
    print(
        f"{C:>3} channels:",
        *(
            f"{name} {np.median(t) * 1e3:6.2f} ms"
            for name, t in times[C].items()
        ),
    )
# --8<-- [end:benchmark]

# %%
# --8<-- [start:gflops]
seconds = {
    C: {name: np.median(t) for name, t in times[C].items()} for C in CHANNELS
}
gflops = {
    C: {name: flops[C][name] / seconds[C][name] / 1e9 for name in flops[C]}
    for C in CHANNELS
}
for C in CHANNELS:
    print(f"{C:>3} channels:", *(f"{k} {g:5.1f}" for k, g in gflops[C].items()))
matmul_gflops = gflops[CHANNELS[-1]]["matmul"]
print(f"matrix product: {matmul_gflops:.1f} GFLOP/s")
# --8<-- [end:gflops]

# %%
# --8<-- [start:savings]
NAMES = ["standard", "grouped", "separable", "depthwise", "pointwise"]
flop_saving = {  # how many times fewer operations than standard...
    C: {name: flops[C]["standard"] / flops[C][name] for name in NAMES}
    for C in CHANNELS
}
time_saving = {  # ...and how many times less time, with its uncertainty
    C: {
        name: speed_ratio(times[C]["standard"], times[C][name])
        for name in NAMES
    }
    for C in CHANNELS
}
for C in CHANNELS:
    (grouped, _), (separable, _) = (
        time_saving[C][name] for name in ("grouped", "separable")
    )
    print(
        f"{C:>3} channels: grouped {flop_saving[C]['grouped']:.1f} times "
        f"fewer FLOPs, {grouped:.1f} times faster; separable "
        f"{flop_saving[C]['separable']:.1f} and {separable:.1f}"
    )
# --8<-- [end:savings]


# %%
# --8<-- [start:per-flop]
def per_flop(C, name):
    """CPU seconds per FLOP of each of name's calls at width C."""
    return times[C][name] / flops[C][name]


largest, smallest = CHANNELS[-1], CHANNELS[0]
# How many times slower per FLOP than the standard layer, and the words
# the prose uses, chosen by the measurements rather than written by hand.
matmul_vs_standard = speed_ratio(
    per_flop(largest, "matmul"), per_flop(largest, "standard")
)
depthwise_slowdown = {
    C: speed_ratio(per_flop(C, "depthwise"), per_flop(C, "standard"))
    for C in CHANNELS
}
standard_vs_matmul = compare(*matmul_vs_standard)  # "faster than", ...
grouped_vs_standard = compare(*time_saving[smallest]["grouped"])
print(f"standard layer at {largest}: {standard_vs_matmul} the matrix product")
print(f"grouped layer at {smallest}: {grouped_vs_standard} the standard one")
# --8<-- [end:per-flop]

# %%
# --8<-- [start:parts]
# Which of the separable layer's two parts took longer, width by width,
# and how the pointwise part's speed per FLOP compares with the standard's.
longer_part = {
    C: compare(
        *speed_ratio(times[C]["depthwise"], times[C]["pointwise"]),
        words=(
            "the pointwise part took longer",
            "the two parts took about as long",
            "the depthwise part took longer",
        ),
    )
    for C in CHANNELS
}
pointwise_vs_standard = compare(  # "slower than": pointwise, per FLOP
    *speed_ratio(per_flop(largest, "standard"), per_flop(largest, "pointwise"))
)
print("the part that took longer:", longer_part)
print(f"pointwise at {largest}: {pointwise_vs_standard} standard, per FLOP")
# --8<-- [end:parts]

# %%
# --8<-- [start:layout]
# The widest layers in both memory layouts, timed in the same rounds:
# how many times longer each took in the default layout than in
# channels-last, and the words for it.
layout_ratio = {
    name: speed_ratio(times[largest][name], times[largest][f"{name}_cl"])
    for name in LAYOUT
}
layout_words = {
    name: compare(
        *layout_ratio[name],
        words=(
            "slower in channels-last",
            "about as fast in either layout",
            "faster in channels-last",
        ),
    )
    for name in LAYOUT
}
saving_cl = speed_ratio(
    times[largest]["standard_cl"], times[largest]["separable_cl"]
)
for name in LAYOUT:
    ratio, se = layout_ratio[name]
    print(f"{name}: {ratio:.2f} ± {se:.2f} (log): {layout_words[name]}")
print(f"separable saving in channels-last: {saving_cl[0]:.1f} times")
# --8<-- [end:layout]


def onednn_log(fn):
    """The primitives oneDNN reports running during one call of fn, as
    "kind implementation [alg:algorithm]" strings (empty if it is not used)."""
    with tempfile.TemporaryFile(mode="w+") as log:
        saved = os.dup(1)  # oneDNN prints to the process's stdout
        os.dup2(log.fileno(), 1)
        try:
            verbose = torch.backends.mkldnn
            with verbose.verbose(verbose.VERBOSE_ON):
                fn()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        log.seek(0)
        lines = [line.split(",") for line in log.read().splitlines()]
    return [
        " ".join([f[5], f[6], *(x for x in f if x.startswith("alg:"))])
        for f in lines
        if len(f) > 6 and f[3] == "exec"
    ]


layers, _ = make_layers(largest)
X = torch.randn(N, largest, size, size)
moved, X_cl = channels_last(layers, X)
with torch.no_grad():
    layers["depthwise"](X), moved["depthwise"](X_cl)  # create the primitives
    depthwise_log = {
        "default": onednn_log(lambda: layers["depthwise"](X)),
        "channels-last": onednn_log(lambda: moved["depthwise"](X_cl)),
    }
    layers["standard"](X)
    standard_log = onednn_log(lambda: layers["standard"](X))
print(depthwise_log, standard_log)


def cpu_model():
    """The processor's name and widest vector instructions, from Linux."""
    try:
        with open("/proc/cpuinfo") as info:
            text = info.read()
    except OSError:
        return "unknown", "unknown"
    fields = {}
    for line in text.splitlines():  # "model name\t: ...": the first CPU's
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = fields.get("flags", "").split()
    widest = next(
        (isa for isa in ("avx512f", "avx2", "avx", "sse4_2") if isa in flags),
        "unknown",
    )
    name = fields.get("model name", "unknown")
    return name, {"avx512f": "AVX-512"}.get(widest, widest.upper())


# %%
# --8<-- [start:copy]
C = largest
megabytes = 2 * 4 * N * C * size * size / 1e6  # read and write, 4 B each
copy_rate = megabytes / 1e3 / seconds[C]["copy"]  # GB/s
depthwise_rate = megabytes / 1e3 / seconds[C]["depthwise"]
print(f"{megabytes:.1f} MB: copy {copy_rate:.1f} GB/s")
print(f"the depthwise layer: {depthwise_rate:.1f} GB/s")
# --8<-- [end:copy]


# %%
def series(table, name):
    return [table[C][name] for C in CHANNELS]


def in_words(widths):
    """[16, 32, 64] as "16, 32 and 64"; no widths as "none of the widths"."""
    if not widths:
        return "none of the widths"
    *rest, last = map(str, widths)
    return f"{', '.join(rest)} and {last}" if rest else last


share = {
    C: speed_ratio(times[C]["depthwise"], times[C]["separable"])
    for C in CHANNELS
}
record(
    batch_size=N,
    size=size,
    kernel_size=k,
    groups=groups,
    channels=CHANNELS,
    smallest=smallest,
    largest=largest,
    rounds=len(times[largest]["standard"]),
    # every call's CPU time, so that the tests can judge the spread
    **{
        f"c{C}_times_ms": {
            name: (t * 1e3).tolist() for name, t in times[C].items()
        }
        for C in CHANNELS
    },
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
    time_saving_grouped=[r for r, _ in series(time_saving, "grouped")],
    time_saving_separable=[r for r, _ in series(time_saving, "separable")],
    # the standard error of each ratio's logarithm, as the figure's bars
    time_saving_grouped_se=[se for _, se in series(time_saving, "grouped")],
    time_saving_separable_se=[se for _, se in series(time_saving, "separable")],
    depthwise_time_share=[share[C][0] for C in CHANNELS],
    depthwise_flop_share=[
        flops[C]["depthwise"] / flops[C]["separable"] for C in CHANNELS
    ],
    depthwise_slowdown=[depthwise_slowdown[C][0] for C in CHANNELS],
    matmul_size=n,
    matmul_gflops=matmul_gflops,
    standard_vs_matmul=standard_vs_matmul,
    standard_over_matmul=matmul_vs_standard[0],
    grouped_vs_standard=grouped_vs_standard,
    copy_megabytes=megabytes,
    copy_gb_per_s=copy_rate,
    copy_numbers_read_per_ns=copy_rate / 8,  # 4 bytes read, 4 written each
    depthwise_gb_per_s=depthwise_rate,
    c256_longer_part=longer_part[largest],
    longer_part=[longer_part[C] for C in CHANNELS],
    depthwise_longer_widths=in_words(
        [C for C in CHANNELS if "depthwise" in longer_part[C]]
    ),
    pointwise_vs_standard=pointwise_vs_standard,
    **{f"layout_ratio_{name}": layout_ratio[name][0] for name in LAYOUT},
    **{f"layout_ratio_{name}_se": layout_ratio[name][1] for name in LAYOUT},
    **{f"layout_words_{name}": layout_words[name] for name in LAYOUT},
    **{
        f"c256_ms_{name}_cl": seconds[largest][f"{name}_cl"] * 1e3
        for name in LAYOUT
    },
    c256_ms_pointwise=seconds[largest]["pointwise"] * 1e3,
    c256_time_saving_separable_se=time_saving[largest]["separable"][1],
    c256_time_saving_separable_cl=saving_cl[0],
    c256_time_saving_separable_cl_se=saving_cl[1],
    c256_gflops_depthwise_cl=flops[largest]["depthwise"]
    / seconds[largest]["depthwise_cl"]
    / 1e9,
    # per FLOP against the standard layer in the same layout (same FLOPs)
    c256_depthwise_slowdown_cl=speed_ratio(
        times[largest]["depthwise_cl"] / flops[largest]["depthwise"],
        times[largest]["standard_cl"] / flops[largest]["standard"],
    )[0],
    c256_depthwise_time_share_cl=speed_ratio(
        times[largest]["depthwise_cl"], times[largest]["separable_cl"]
    )[0],
    depthwise_log_default=depthwise_log["default"],
    depthwise_log_channels_last=depthwise_log["channels-last"],
    # what the prose quotes from the logs: the convolution's implementation
    depthwise_impl_default=" ".join(
        line.split()[1]
        for line in depthwise_log["default"]
        if line.startswith("convolution")
    )
    or "none reported",
    depthwise_impl_channels_last=" ".join(
        line.split()[1]
        for line in depthwise_log["channels-last"]
        if line.startswith("convolution")
    )
    or "none reported",
    standard_log_default=standard_log,
    standard_algorithm=" ".join(
        line.split()[2].removeprefix("alg:convolution_")
        for line in standard_log
        if line.startswith("convolution") and "alg:" in line
    )
    or "not reported",
    standard_impl_default=" ".join(
        line.split()[1]
        for line in standard_log
        if line.startswith("convolution")
    )
    or "none reported",
    depthwise_reorders_default=sum(
        line.startswith("reorder") for line in depthwise_log["default"]
    ),
    depthwise_reorders_channels_last=sum(
        line.startswith("reorder") for line in depthwise_log["channels-last"]
    ),
    cpu_model=cpu_model()[0],
    cpu_vector_isa=cpu_model()[1],
    torch_cpu_capability=torch.backends.cpu.get_cpu_capability(),
    torch_version=torch.__version__.split("+")[0],
    torch_threads=torch.get_num_threads(),
    load_average=os.getloadavg()[0],
    cpu_count=os.cpu_count(),
)
for C in CHANNELS:  # single numbers the prose quotes
    record(
        **{
            f"c{C}_{key}": value
            for key, value in {
                "ms_standard": seconds[C]["standard"] * 1e3,
                "ms_grouped": seconds[C]["grouped"] * 1e3,
                "ms_separable": seconds[C]["separable"] * 1e3,
                "ms_depthwise": seconds[C]["depthwise"] * 1e3,
                "ms_copy": seconds[C]["copy"] * 1e3,
                "gflops_standard": gflops[C]["standard"],
                "gflops_grouped": gflops[C]["grouped"],
                "gflops_separable": gflops[C]["separable"],
                "gflops_depthwise": gflops[C]["depthwise"],
                "gflops_pointwise": gflops[C]["pointwise"],
                "flop_saving_grouped": flop_saving[C]["grouped"],
                "flop_saving_separable": flop_saving[C]["separable"],
                "time_saving_grouped": time_saving[C]["grouped"][0],
                "time_saving_separable": time_saving[C]["separable"][0],
                "depthwise_time_share": share[C][0],
                "depthwise_flop_share": flops[C]["depthwise"]
                / flops[C]["separable"],
                "depthwise_slowdown": depthwise_slowdown[C][0],
            }.items()
        }
    )

# %%
STYLES = {  # no blue or red: in this book they are the colours of sign
    "standard": ("standard", "tab:purple", "o", "-"),
    "grouped": (f"grouped ({groups} groups)", "tab:orange", "s", "-"),
    "separable": ("depthwise-separable", "tab:green", "^", "-"),
    "depthwise": ("its depthwise part", "tab:green", "v", ":"),
    "pointwise": ("its pointwise part", "tab:olive", "D", ":"),
}


def plain_log_ticks(ax, low, high):
    """Label a log axis at 1, 2, 5 times powers of ten, as plain numbers."""
    ticks = [
        m * 10.0**e
        for e in range(-3, 4)
        for m in (1, 2, 5)
        if low <= m * 10.0**e <= high
    ]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.yaxis.set_minor_formatter(plt.NullFormatter())


fig, (time_ax, rate_ax) = plt.subplots(1, 2, figsize=(9, 4.2))
for name, (label, colour, marker, line) in STYLES.items():
    kwargs = dict(color=colour, marker=marker, ls=line, label=label)
    if name in ("standard", "grouped", "separable"):
        quartiles = np.array(  # the spread over the rounds, as error bars
            [np.percentile(times[C][name], [25, 75]) for C in CHANNELS]
        )
        middle = np.array(series(seconds, name))
        time_ax.errorbar(
            CHANNELS,
            middle * 1e3,
            yerr=np.abs(quartiles.T - middle) * 1e3,
            capsize=3,
            **kwargs,
        )
    rate_ax.plot(CHANNELS, series(gflops, name), **kwargs)
# The matrix product was timed only in the widest rounds: one point there.
rate_ax.plot(
    largest,
    matmul_gflops,
    marker="*",
    markersize=14,
    color="k",
    ls="none",
    label=f"{n} × {n} matrix product\n(timed at C = {largest} only)",
)
time_ax.set(
    yscale="log",
    ylabel="ms per forward pass (log scale)",
    title=f"{N} maps of {size} × {size}, C channels in and out",
)
plain_log_ticks(time_ax, *time_ax.get_ylim())
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
    ax.tick_params(labelsize=11)
    ax.xaxis.label.set_size(11)
    ax.yaxis.label.set_size(11)
    ax.title.set_size(12)
fig.tight_layout()
fig.legend(
    *rate_ax.get_legend_handles_labels(),
    loc="upper center",
    bbox_to_anchor=(0.5, 0.0),
    ncol=3,
    fontsize=11,
    frameon=False,
)
save_figure(fig, "speed")

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
for name, shift in [("grouped", 0.96), ("separable", 1.04)]:
    label, colour, marker, _ = STYLES[name]
    ax.plot(
        CHANNELS,
        series(flop_saving, name),
        color=colour,
        ls="--",
        label=f"{label}: fewer FLOPs",
    )
    ratio, se = np.array(series(time_saving, name)).T
    ax.errorbar(  # side by side, so that the bars do not hide each other
        np.array(CHANNELS) * shift,
        ratio,
        # two standard errors of the median ratio, from the rounds' spread
        yerr=[ratio - ratio * np.exp(-2 * se), ratio * np.exp(2 * se) - ratio],
        capsize=3,
        color=colour,
        marker=marker,
        label=f"{label}: less time",
    )
ax.axhline(1, color="0.5", ls=":", lw=1, label="no saving")
ax.set_xscale("log", base=2)
ax.set_xticks(CHANNELS, [str(C) for C in CHANNELS])
ax.minorticks_off()
ax.set(
    xlabel="channels in and out (C)",
    ylabel="saving against standard (times)",
    ylim=(0, 1.1 * max(series(flop_saving, "separable"))),
    title="what the cheaper layers save, on paper and on the clock",
)
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=10)
save_figure(fig, "time_saving")
