# %% [markdown]
# # Chapter 5, part 2: how fast is a convolution from scratch?
#
# The loops, the vectorised NumPy `conv2d` and `torch.nn.functional.conv2d`
# timed on the same inputs, over a range of image sizes, on one CPU thread.
# The numbers are this machine's, measured when the book was built.

# %%
import ctypes
import os
import sys
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_info, threadpool_limits

from book import record, save_figure, setup
from conv_scratch_ops import (
    conv2d,
    conv2d_loops,
    conv_flops,
    im2col,
    pad,
    race,
)

setup()  # seeds, and one thread for torch
threadpool_limits(1)  # one thread for NumPy's matrix library too: a fair race
rng = np.random.default_rng(0)


# %% [markdown]
# ## The race
#
# `race` and `conv_flops` live in `conv_scratch_ops.py`.


# %%
# --8<-- [start:benchmark]
N, C_in, C_out, k = 32, 3, 16, 3  # a batch of 32 RGB images, 16 kernels
SIZES = [8, 16, 32, 64, 128]  # image height and width
LOOP_SIZES = [8, 16]  # beyond this the loops take too long


def benchmark(size):
    """Seconds per call of each implementation on (N, C_in, size, size)."""
    x = rng.standard_normal((N, C_in, size, size), dtype=np.float32)
    K = rng.standard_normal((C_out, C_in, k, k), dtype=np.float32)
    b = rng.standard_normal(C_out, dtype=np.float32)
    x_t, K_t, b_t = map(torch.from_numpy, (x, K, b))
    functions = {
        "torch": lambda: F.conv2d(x_t, K_t, b_t, padding=1),
        "numpy": lambda: conv2d(x, K, b, padding=1),
    }
    times = race(functions, repeat=30)
    if size in LOOP_SIZES:  # one call each, no warm-up: up to half a second
        loops = {"loops": lambda: conv2d_loops(x, K, b, padding=1)}
        times |= race(loops, repeat=1, warm_up=False)
    return times


results = {size: benchmark(size) for size in SIZES}
for size, times in results.items():
    print(
        f"{size:>3} × {size:<3}",
        *(f"{name} {seconds * 1e3:9.2f} ms" for name, seconds in times.items()),
    )
# --8<-- [end:benchmark]

# %% [markdown]
# ## Achieved GFLOP/s, and what a plain matrix product reaches


# %%
# --8<-- [start:gflops]
def gflops(flops, seconds):
    return flops / seconds / 1e9


flops = {size: conv_flops(N, C_in, C_out, size, size, k, k) for size in SIZES}
n = 1024  # a square product: the best case for a matrix library
A = rng.standard_normal((n, n), dtype=np.float32)
B = rng.standard_normal((n, n), dtype=np.float32)
A_t, B_t = torch.from_numpy(A), torch.from_numpy(B)
matmul = race({"numpy": lambda: A @ B, "torch": lambda: A_t @ B_t}, 10)
matmul_numpy = gflops(2 * n**3, matmul["numpy"])
matmul_torch = gflops(2 * n**3, matmul["torch"])
print(f"matrix product: NumPy {matmul_numpy:.1f}, torch {matmul_torch:.1f}")
# --8<-- [end:gflops]
for size, times in results.items():
    print(
        f"{size:>3} × {size:<3}",
        *(
            f"{name} {gflops(flops[size], s):6.2f} GFLOP/s"
            for name, s in times.items()
        ),
    )

# %% [markdown]
# ## Where the vectorised version spends its time (64 × 64)

# %%
# --8<-- [start:breakdown]
x = rng.standard_normal((N, C_in, 64, 64), dtype=np.float32)
K = rng.standard_normal((C_out, C_in, k, k), dtype=np.float32)
cols = im2col(pad(x, (1, 1, 1, 1)), (k, k))  # (N, 27, 64 * 64)
K_rows = K.reshape(C_out, -1)  # (16, 27)
parts = race(
    {
        "conv2d": lambda: conv2d(x, K, padding=1),
        "windows": lambda: im2col(pad(x, (1, 1, 1, 1)), (k, k)),
        "product": lambda: K_rows @ cols,
    },
    repeat=30,
)
product_gflops = gflops(flops[64], parts["product"])
for name, seconds in parts.items():
    print(f"{name:>8}: {seconds * 1e3:.2f} ms, {seconds / parts['conv2d']:.0%}")
print(f"the product alone: {product_gflops:.1f} GFLOP/s")
# --8<-- [end:breakdown]

# %% [markdown]
# ## Verdicts chosen from the measurements
#
# How a speed compares with another depends on the processor and its load,
# so the words the chapter uses are chosen here, from this run's numbers.


# %%
# --8<-- [start:verdicts]
def compared_with(rate, reference):
    """Words for a speed against a reference speed, from their ratio."""
    ratio = rate / reference
    if ratio < 0.5:
        return "well below"
    if ratio < 0.9:
        return "below"
    if ratio <= 1.1:
        return "close to"
    return "above"


target = results[64]
verdicts = {
    "numpy_vs_matmul": compared_with(
        gflops(flops[64], target["numpy"]), matmul_numpy
    ),
    "torch_vs_matmul": compared_with(
        gflops(flops[64], target["torch"]), matmul_torch
    ),
    "product_vs_matmul": compared_with(product_gflops, matmul_numpy),
}
loops_factor = (
    results[max(LOOP_SIZES)]["loops"] / results[max(LOOP_SIZES)]["numpy"]
)
verdicts["loops"] = (
    "orders of magnitude" if loops_factor >= 100 else "several times"
)
print(verdicts)
# --8<-- [end:verdicts]
record(**{f"verdict_{name}": words for name, words in verdicts.items()})

# %% [markdown]
# ## How PyTorch computes it here
#
# PyTorch hands a float32 convolution on the CPU to oneDNN, which picks an
# algorithm for the processor and the shapes; oneDNN's verbose mode reports
# the choice on C's standard output, which we capture.


# %%
def onednn_choice(fn):
    """oneDNN's report of the convolution fn runs: implementation, algorithm."""
    with tempfile.TemporaryFile(mode="w+") as log:
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(log.fileno(), 1)  # oneDNN writes to C's stdout: file 1
        try:
            with torch.backends.mkldnn.verbose(
                torch.backends.mkldnn.VERBOSE_ON
            ):
                fn()
            ctypes.CDLL(None).fflush(None)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        log.seek(0)
        lines = log.read().splitlines()
    report = [line for line in lines if ",exec,cpu,convolution," in line]
    if not report:
        return "not oneDNN", "unknown"
    fields = report[-1].split(",")
    algorithm = next(f for f in fields if f.startswith("alg:"))
    return fields[6], algorithm.removeprefix("alg:")


x_t, K_t = torch.from_numpy(x), torch.from_numpy(K)
implementation, algorithm = onednn_choice(lambda: F.conv2d(x_t, K_t, padding=1))
print(implementation, algorithm)
record(torch_conv_implementation=implementation, torch_conv_algorithm=algorithm)
# The same question at the largest size, where PyTorch slowed down.
x_big = torch.from_numpy(
    rng.standard_normal((N, C_in, max(SIZES), max(SIZES)), dtype=np.float32)
)
implementation_largest, _ = onednn_choice(
    lambda: F.conv2d(x_big, K_t, padding=1)
)
record(torch_conv_implementation_largest=implementation_largest)

# %%
y_numpy = conv2d(x, K, padding=1)
y_torch = F.conv2d(torch.from_numpy(x), torch.from_numpy(K), padding=1)
target_ratio = target["numpy"] / target["torch"]
largest_loop = max(LOOP_SIZES)
record(
    batch_size=N,
    in_channels=C_in,
    out_channels=C_out,
    kernel_size=k,
    sizes=SIZES,
    loop_sizes=LOOP_SIZES,
    largest_loop_size=largest_loop,
    ms_torch=[results[s]["torch"] * 1e3 for s in SIZES],
    ms_numpy=[results[s]["numpy"] * 1e3 for s in SIZES],
    ms_loops=[results[s]["loops"] * 1e3 for s in LOOP_SIZES],
    ratio_numpy_to_torch=[
        results[s]["numpy"] / results[s]["torch"] for s in SIZES
    ],
    ratio_loops_to_torch=[
        results[s]["loops"] / results[s]["torch"] for s in LOOP_SIZES
    ],
    gflops_numpy=[gflops(flops[s], results[s]["numpy"]) for s in SIZES],
    gflops_torch=[gflops(flops[s], results[s]["torch"]) for s in SIZES],
    target_ms_torch=target["torch"] * 1e3,
    target_ms_numpy=target["numpy"] * 1e3,
    target_ratio=target_ratio,
    target_gflops_numpy=gflops(flops[64], target["numpy"]),
    target_gflops_torch=gflops(flops[64], target["torch"]),
    target_mflop=flops[64] / 1e6,
    target_output_numbers=N * C_out * 64 * 64,  # one loop iteration each
    column_length=C_in * k * k,
    columns_per_image=64 * 64,
    target_max_error=np.abs(y_numpy - y_torch.numpy()).max(),
    loops_ms_largest=results[largest_loop]["loops"] * 1e3,
    loops_ratio_largest=results[largest_loop]["loops"]
    / results[largest_loop]["torch"],
    loops_to_numpy_largest=results[largest_loop]["loops"]
    / results[largest_loop]["numpy"],
    # The loops' time is one call: the ratio to one significant figure.
    loops_to_numpy_rounded=float(
        f"{results[largest_loop]['loops'] / results[largest_loop]['numpy']:.1g}"
    ),
    matmul_size=n,
    matmul_gflops_numpy=matmul_numpy,
    matmul_gflops_torch=matmul_torch,
    windows_ms=parts["windows"] * 1e3,
    product_ms=parts["product"] * 1e3,
    product_gflops=product_gflops,
    windows_share=parts["windows"] / parts["conv2d"],
    product_share=parts["product"] / parts["conv2d"],
    numpy_torch_factor=max(
        max(r, 1 / r)
        for r in (results[s]["numpy"] / results[s]["torch"] for s in SIZES)
    ),
    ratio_numpy_to_torch_min=min(
        results[s]["numpy"] / results[s]["torch"] for s in SIZES
    ),
    ratio_numpy_to_torch_max=max(
        results[s]["numpy"] / results[s]["torch"] for s in SIZES
    ),
    largest_size=max(SIZES),
    ratio_numpy_to_torch_largest=results[max(SIZES)]["numpy"]
    / results[max(SIZES)]["torch"],
    parts_share=(parts["windows"] + parts["product"]) / parts["conv2d"],
    conv2d_ms=parts["conv2d"] * 1e3,
    load_average=os.getloadavg()[0],
    torch_threads=torch.get_num_threads(),
    blas_threads=[
        pool["num_threads"]
        for pool in threadpool_info()
        if pool["user_api"] == "blas"
    ],
    cpu_count=os.cpu_count(),
)

# %%
styles = {  # three series: no red/blue, the book's sign colours
    "loops": ("conv2d_loops (NumPy, loops)", "tab:green", "s"),
    "numpy": ("conv2d (NumPy, vectorised)", "tab:orange", "o"),
    "torch": ("F.conv2d (PyTorch)", "tab:purple", "^"),
}
fig, (time_ax, rate_ax) = plt.subplots(1, 2, figsize=(9, 4))
for name, (label, colour, marker) in styles.items():
    sizes = [s for s in SIZES if name in results[s]]
    seconds = [results[s][name] for s in sizes]
    time_ax.plot(sizes, seconds, marker=marker, color=colour, label=label)
    if name != "loops":
        rate_ax.plot(
            sizes,
            [gflops(flops[s], results[s][name]) for s in sizes],
            marker=marker,
            color=colour,
            label=label,
        )
time_ax.set(
    xscale="log",
    yscale="log",
    xlabel="image height and width (pixels)",
    ylabel="time per call (log scale)",
    title=f"{N} images, {C_in} → {C_out} channels, {k} × {k} kernels",
)
for ax in (time_ax, rate_ax):
    ax.set_xscale("log", base=2)
    ax.set_xticks(SIZES, [str(s) for s in SIZES])
    ax.minorticks_off()
# Plain numbers, not powers of ten with small exponents: "0.1 ms", "1 s".
time_ax.yaxis.set_major_formatter(
    lambda t, _: f"{t * 1e3:g} ms" if t < 1 else f"{t:g} s"
)
for value, colour, label in [
    (matmul_numpy, styles["numpy"][1], "NumPy"),
    (matmul_torch, styles["torch"][1], "PyTorch"),
]:
    rate_ax.axhline(value, color=colour, ls="--", lw=1)
    rate_ax.text(
        SIZES[0],
        value,
        f"{label}: {n} × {n} matrix product",
        color=colour,
        va="bottom",
        fontsize=9,
    )
rate_ax.set(
    xlabel="image height and width (pixels)",
    ylabel="GFLOP/s (one thread)",
    ylim=(0, 1.15 * max(matmul_numpy, matmul_torch)),
    title="achieved speed",
)
time_ax.legend(fontsize=9)
fig.tight_layout()
save_figure(fig, "speed")
