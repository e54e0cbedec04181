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


def draw_bank_with_scale(K, x, maps, label):
    """draw_learned_bank, each kernel titled with |sum of weights| / sum of
    |weights| (0 balanced, 1 of one sign: bank_summary sorts by it), and a
    colour bar for the kernels under the input image."""
    fig = draw_learned_bank(K, x, maps, label)
    sign_share = K.sum(dim=(1, 2, 3)).abs() / K.abs().sum(dim=(1, 2, 3))
    for kernel_ax, share in zip(fig.axes[1::2], sign_share.tolist()):
        kernel_ax.set_title(f"{share:.2f}", fontsize=9)
    limit = K.abs().max().item()  # draw_learned_bank's colour range: ±limit
    colour_bar = fig.colorbar(
        fig.axes[1].images[0],
        cax=fig.add_axes([0.1, 0.2, 0.17, 0.035]),
        orientation="horizontal",
        ticks=[-limit, 0, limit],
        format="{x:.1f}",
    )
    colour_bar.set_label("kernel weight (red +, blue −)", fontsize=9)
    return fig
