"""Chapter 3's sweep over bank sizes, keeping every seed's trained net.

book.sweep keeps only the last seed's net; keeping them all lets the tests
compare two bank sizes image by image on the same test digits.
"""

import torch

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


def per_image_results(trials, data):
    """For each bank size N, keyed for record(): the share of its runs that
    classify each test image right (correct_N), and how many of its runs
    ended with every feature map zero on every training image (dead_N)."""
    results = {}
    for N, trial in trials.items():
        with torch.no_grad():
            right = [
                net(data.X_test).argmax(dim=1) == data.y_test
                for net in trial["nets"]
            ]
            dead = [
                bool(torch.relu(net.conv(data.X_train)).amax() == 0)
                for net in trial["nets"]
            ]
        results[f"correct_{N}"] = torch.stack(right).float().mean(0).tolist()
        results[f"dead_{N}"] = sum(dead)
    return results


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
