"""Chapter 3's sweep over bank sizes, keeping every seed's trained net.

book.sweep keeps only the last seed's net; keeping them all lets the tests
compare two bank sizes image by image on the same test digits.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import PercentFormatter

from book import LearnedKernelSoftmax, draw_learned_bank, run_trials


# --8<-- [start:sweep]
def sweep(data, counts):
    """Chapter 3. run_trials for a bank of each size in counts: {N: trials},
    with every seed's trained net in trials["nets"]."""
    counts = list(counts)
    if not counts or any(int(N) != N or N < 1 for N in counts):
        raise ValueError(
            f"kernel counts must be positive integers, got {counts}"
        )
    H = data.X_train.shape[-1]  # square images: H = W
    trials = {}
    for N in counts:
        nets = []

        def make_net(N=N, nets=nets):
            net = LearnedKernelSoftmax(num_kernels=N, image_size=H)
            nets.append(net)  # run_trials trains it in place
            return net

        trials[N] = run_trials(make_net, data) | {"nets": nets}  # 3 seeds
    return trials


# --8<-- [end:sweep]


def outputs(net, X, chunk=500):
    """net's predicted class for each image of X, and the largest value of
    its ReLU feature maps on that image (net's forward, split in two), a
    chunk of images at a time: the maps of a whole training set at once are
    tens of megabytes, which the system hands out afresh at every call."""
    predicted, largest = [], []
    with torch.no_grad():
        for part in X.split(chunk):
            maps = torch.relu(net.conv(part))
            predicted.append(net.classifier(maps.flatten(1)).argmax(dim=1))
            largest.append(maps.amax(dim=(1, 2, 3)))
    return torch.cat(predicted), torch.cat(largest)


def per_image_results(trials, data):
    """For each bank size N, keyed for record(): the share of its runs that
    classify each test image right (correct_N), how many of its runs ended
    with every feature map zero on every training image (dead_N), and every
    seed's accuracy on its own training images (train_accuracies_N) with
    their mean."""
    results = {}
    for N, trial in trials.items():
        right, dead, fitted = [], [], []
        for net in trial["nets"]:
            net.eval()
            right.append(outputs(net, data.X_test)[0] == data.y_test)
            predicted, largest = outputs(net, data.X_train)
            dead.append(bool(largest.amax() == 0))
            fitted.append((predicted == data.y_train).float().mean().item())
        results[f"correct_{N}"] = torch.stack(right).float().mean(0).tolist()
        results[f"dead_{N}"] = sum(dead)
        results[f"train_accuracies_{N}"] = fitted
        results[f"mean_train_accuracy_{N}"] = float(np.mean(fitted))
    return results


def paired_gains(results, pairs):
    """For each pair (a, b) of bank sizes, keyed for record(): the mean gain
    from a kernels to b, its standard error (the seeds' spread of both, plus
    the test images' sampling error, image by image) and whether the gain is
    at least twice that error ("clear") or not ("not clear")."""
    gains = {}
    for a, b in pairs:
        seed_variance = sum(
            np.var(results[f"accuracies_{N}"], ddof=1)
            / len(results[f"accuracies_{N}"])
            for N in (a, b)
        )
        d = np.subtract(results[f"correct_{b}"], results[f"correct_{a}"])
        se = float(np.sqrt(seed_variance + d.var(ddof=1) / len(d)))
        gain = results[f"mean_{b}"] - results[f"mean_{a}"]
        gains[f"gain_{a}_{b}"] = gain
        gains[f"gain_se_{a}_{b}"] = se
        gains[f"gain_verdict_{a}_{b}"] = (
            "clear" if abs(gain) >= 2 * se else "not clear"
        )
    return gains


def plot_sweep_seeds(trials, results, title, zoom=False):
    """Test accuracy against the bank size: every seed as a dot (spread
    sideways), the mean with ± one sample standard deviation, and the mean
    accuracy on the training images. With zoom, a second panel with the
    same runs on an axis that does not start at zero."""
    counts = list(trials)
    seeds = len(trials[counts[0]]["accuracies"])
    fig, axes = plt.subplots(
        1, 2 if zoom else 1, figsize=(9 if zoom else 7, 4), squeeze=False
    )
    for panel, ax in enumerate(axes[0]):
        ax.plot(
            counts,
            [results[f"mean_train_accuracy_{N}"] for N in counts],
            color="tab:orange",
            ls="--",
            marker="s",
            ms=4,
            label=f"training accuracy, mean over {seeds} seeds",
        )
        ax.errorbar(
            counts,
            [trials[N]["mean"] for N in counts],
            yerr=[trials[N]["std"] for N in counts],
            color="tab:purple",
            marker="o",
            capsize=4,
            label=f"test accuracy, mean ± std over {seeds} seeds",
        )
        offsets = 2.0 ** np.linspace(-0.12, 0.12, seeds)  # side by side
        for N in counts:
            ax.scatter(
                N * offsets,
                trials[N]["accuracies"],
                facecolor="white",
                edgecolor="0.2",
                s=22,
                zorder=3,
                label="test accuracy, each seed" if N == counts[0] else None,
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(counts, [str(N) for N in counts])
        ax.minorticks_off()
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
        ax.set(xlabel="number of kernels N", ylabel="accuracy")
        if panel == 0:
            ax.axhline(0.1, color="0.5", ls=":", label="chance")
            ax.set(ylim=(0, 1.02), title=title)
        else:  # around the runs above chance; a run at chance shows left only
            shown = [a for N in counts for a in trials[N]["accuracies"]]
            shown += [results[f"mean_train_accuracy_{N}"] for N in counts]
            shown = [a for a in shown if a > 0.5]
            ax.set_ylim(min(shown) - 0.01, max(shown) + 0.01)
            ax.set_title("zoomed (axis does not start at 0)", fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=2,
        fontsize=9,
        bbox_to_anchor=(0.5, -0.12),
    )
    return fig


def sign_shares(K):
    """|sum of weights| / sum of |weights| for each kernel of K (C_out, C_in,
    k, k): 0 balanced, 1 of one sign (bank_summary sorts by it)."""
    return K.sum(dim=(1, 2, 3)).abs() / K.abs().sum(dim=(1, 2, 3))


def title_decimals(shares, thresholds=(0.25, 0.5)):
    """The fewest decimals, at least two, at which each printed share lies on
    the same side of every threshold (bank_summary's) as the share itself."""
    for decimals in range(2, 8):
        printed = [float(f"{share:.{decimals}f}") for share in shares]
        if all(
            (p > t) == (s > t) and p != t
            for s, p in zip(shares, printed, strict=True)
            for t in thresholds
        ):
            return decimals
    raise ValueError(f"a share lies on a threshold {thresholds}: {shares}")


def draw_bank_with_scale(K, x, maps, label):
    """draw_learned_bank, each kernel titled with its sign share, and under
    the input image a colour bar for the kernels and one for the maps."""
    fig = draw_learned_bank(K, x, maps, label)
    kernel_axes, map_axes = fig.axes[1::2], fig.axes[2::2]
    shares = sign_shares(K).tolist()
    decimals = title_decimals(shares)  # the text's classes show in the titles
    for kernel_ax, share in zip(kernel_axes, shares, strict=True):
        kernel_ax.set_title(f"{share:.{decimals}f}", fontsize=9)
    limit = K.abs().max().item()  # draw_learned_bank's colour range: ±limit
    colour_bar = fig.colorbar(
        kernel_axes[0].images[0],
        cax=fig.add_axes([0.1, 0.2, 0.17, 0.035]),
        orientation="horizontal",
        ticks=[-limit, 0, limit],
        format="{x:.1f}",
    )
    colour_bar.set_label("kernel weight (red +, blue −)", fontsize=9)
    # Each map on its own scale, drawn as a share of its largest value.
    for map_ax in map_axes:
        image = map_ax.images[0]
        values = image.get_array()
        if values.max() > 0:
            image.set_data(values / values.max())
        image.set_clim(0, 1)
    colour_bar = fig.colorbar(
        map_axes[0].images[0],
        cax=fig.add_axes([0.1, 0.03, 0.17, 0.035]),
        orientation="horizontal",
        ticks=[0, 0.5, 1],
    )
    colour_bar.set_label("feature map ÷ its largest value", fontsize=9)
    return fig
