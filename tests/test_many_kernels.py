"""Chapter 3: banks of kernels, colour kernels, parameter counts, the sweeps."""

import ast
import re
from pathlib import Path

import many_kernels_ops
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from claims import mean_se, sample_sd
from torch import nn

from book import (
    PROTOCOL,
    LearnedKernelSoftmax,
    Split,
    count_parameters,
    draw_learned_bank,
    feature_maps,
    load_dataset,
    sweep,
)

SNIPPETS = Path(__file__).resolve().parent.parent / "snippets"
SWEEPS = ("many_kernels_shifted", "many_kernels_digits")


def snippet_functions(name):
    """A snippet's imports and functions, without running its cells."""
    tree = ast.parse((SNIPPETS / f"{name}.py").read_text())
    tree.body = [
        node
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef)
    ]
    namespace = {}
    exec(compile(tree, name, "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def bank():
    return snippet_functions("many_kernels")


def conv_parameters(C_in, C_out, k):
    return C_out * (C_in * k**2 + 1)


def model_parameters(N, H, C_in=1, k=3):
    return conv_parameters(C_in, N, k) + 10 * (N * H * H + 1)


# --- shapes and parameter counts -------------------------------------------


@pytest.mark.parametrize(
    "C_in, C_out, k", [(1, 1, 3), (1, 4, 3), (3, 4, 3), (3, 64, 7), (16, 8, 5)]
)
def test_conv_layer_parameters_match_the_formula(C_in, C_out, k):
    layer = nn.Conv2d(C_in, C_out, k)
    assert layer.weight.shape == (C_out, C_in, k, k)
    assert count_parameters(layer) == conv_parameters(C_in, C_out, k)


@pytest.mark.parametrize(
    "N, H, C_in, k", [(1, 8, 1, 3), (16, 8, 1, 3), (16, 24, 1, 3), (5, 12, 3, 5)]
)
def test_model_parameters_match_the_formula(N, H, C_in, k):
    net = LearnedKernelSoftmax(
        num_kernels=N, image_size=H, in_channels=C_in, kernel_size=k
    )
    assert count_parameters(net) == model_parameters(N, H, C_in, k)
    X = torch.zeros(2, C_in, H, H)
    assert net.conv(X).shape == (2, N, H, H)  # padding keeps the size
    assert net(X).shape == (2, 10)


def test_recorded_counts_match_the_formula(results):
    counts = results["many_kernels"]
    for N in (1, 4, 16, 64):
        assert counts[f"conv_parameters_{N}"] == conv_parameters(1, N, 3)
        for H in (8, 24):
            softmax = counts[f"softmax_parameters_{H}_{N}"]
            total = counts[f"total_parameters_{H}_{N}"]
            assert softmax == 10 * (N * H * H + 1)
            assert total == model_parameters(N, H)
            # The chapter: almost all of the model is the softmax.
            assert softmax / total > 0.9
    assert counts["conv_parameters_1"] == 10  # "ten numbers each"
    assert counts["colour_layer_parameters"] == conv_parameters(3, 4, 3)


def test_recorded_shapes(results):
    counts = results["many_kernels"]
    assert counts["bank_weight_shape"] == "(4, 1, 3, 3)"
    assert counts["bank_output_shape"] == "(1, 4, 8, 8)"
    assert counts["colour_kernel_shape"] == "(3, 3, 3)"
    assert counts["colour_weight_shape"] == "(4, 3, 3, 3)"


@pytest.mark.parametrize("name", SWEEPS)
def test_sweep_parameter_counts_match_the_formula(results, name):
    run = results[name]
    for N in run["counts"]:
        expected = model_parameters(N, run["image_size"])
        assert run[f"parameters_{N}"] == expected


# --- colour: a kernel reaches through every channel --------------------------


@pytest.mark.parametrize("seed", range(3))
def test_multichannel_convolution_is_a_sum_over_channels(seed):
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(2, 3, 11, 13, generator=generator)
    K = torch.randn(5, 3, 3, 3, generator=generator)
    by_channel = sum(
        F.conv2d(X[:, c : c + 1], K[:, c : c + 1], padding=1) for c in range(3)
    )
    torch.testing.assert_close(F.conv2d(X, K, padding=1), by_channel)
    # And each output channel is its own kernel's map.
    for o in range(5):
        torch.testing.assert_close(
            F.conv2d(X, K, padding=1)[:, o : o + 1],
            F.conv2d(X, K[o : o + 1], padding=1),
        )


def test_the_colour_bank_checks_the_sum(results):
    assert results["many_kernels"]["colour_sum_matches"] is True


def test_photo_to_tensor(bank):
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    X = bank["photo_to_tensor"](photo)
    assert X.shape == (1, 3, 5, 7)
    assert X.dtype == torch.float32
    np.testing.assert_allclose(X[0, 1].numpy(), photo[:, :, 1] / 255, rtol=1e-6)


@pytest.mark.parametrize(
    "photo, message",
    [
        (np.zeros((5, 7), np.uint8), r"\(H, W, 3\) RGB photo, got shape \(5, 7\)"),
        (np.zeros((5, 7, 4), np.uint8), r"got shape \(5, 7, 4\)"),
        (np.zeros((5, 7, 3), np.float64), r"8-bit values \(uint8\), got float64"),
    ],
)
def test_photo_to_tensor_rejects_bad_photos(bank, photo, message):
    with pytest.raises(ValueError, match=message):
        bank["photo_to_tensor"](photo)


def test_draw_bank(bank):
    fig = bank["draw_bank"](torch.randn(4, 3, 3, 3), [torch.rand(6, 6)] * 4)
    assert len(fig.axes) == 4 * 4 + 2  # and two colour bars
    with pytest.raises(ValueError, match=r"\(C_out, C_in, k, k\).*\(3, 3, 3\)"):
        bank["draw_bank"](torch.randn(3, 3, 3))


# --- the sweep's functions ---------------------------------------------------


@pytest.fixture(scope="module")
def tiny_digits():
    """A few digits, so that a sweep under the full protocol takes a moment."""
    data = load_dataset("digits")
    return Split(
        data.X_train[:60], data.y_train[:60], data.X_test[:60], data.y_test[:60]
    )


def test_sweep_runs_every_count_under_the_protocol(tiny_digits):
    trials = sweep(tiny_digits, counts=[1, 3])
    assert list(trials) == [1, 3]
    for N, trial in trials.items():
        assert len(trial["accuracies"]) == len(PROTOCOL["seeds"])
        assert trial["parameters"] == model_parameters(N, 8)
        assert trial["net"].conv.out_channels == N


def test_the_chapters_sweep_keeps_every_seeds_net(tiny_digits):
    """many_kernels_ops.sweep: book.sweep's results, and every seed's net."""
    kept = many_kernels_ops.sweep(tiny_digits, counts=[2])
    reference = sweep(tiny_digits, counts=[2])
    assert kept[2]["accuracies"] == reference[2]["accuracies"]
    assert len(kept[2]["nets"]) == len(PROTOCOL["seeds"])
    assert kept[2]["nets"][-1] is kept[2]["net"]
    results = many_kernels_ops.per_image_results(kept, tiny_digits)
    shares = np.asarray(results["correct_2"])
    assert shares.shape == (len(tiny_digits.X_test),)
    assert shares.mean() == pytest.approx(kept[2]["mean"], abs=1e-6)
    assert results["dead_2"] == 0


def test_a_dead_kernel_is_counted():
    net = LearnedKernelSoftmax(num_kernels=1, image_size=8)
    with torch.no_grad():
        net.conv.weight.fill_(-1.0)  # images are >= 0: every response < 0
        net.conv.bias.fill_(-0.1)
    X = torch.rand(5, 1, 8, 8)
    data = Split(X, torch.arange(5), X, torch.arange(5))
    trials = {1: {"nets": [net]}}
    assert many_kernels_ops.per_image_results(trials, data)["dead_1"] == 1


@pytest.mark.parametrize("counts", [[], [0, 1], [2, 1.5], [-4]])
def test_the_chapters_sweep_rejects_bad_counts(tiny_digits, counts):
    with pytest.raises(ValueError, match="kernel counts must be positive"):
        many_kernels_ops.sweep(tiny_digits, counts)


@pytest.mark.parametrize("counts", [[], [0, 1], [2, 1.5], [-4]])
def test_sweep_rejects_bad_counts(tiny_digits, counts):
    with pytest.raises(ValueError, match="kernel counts must be positive"):
        sweep(tiny_digits, counts)


def test_feature_maps():
    net = LearnedKernelSoftmax(num_kernels=6, image_size=10)
    maps = feature_maps(net, torch.rand(3, 1, 10, 10))
    assert maps.shape == (3, 6, 10, 10)
    assert maps.min() >= 0  # after the ReLU
    for bad in (torch.rand(10, 10), torch.rand(3, 2, 10, 10)):
        with pytest.raises(ValueError, match=r"\(N, 1, H, W\), got shape"):
            feature_maps(net, bad)


def test_draw_learned_bank():
    K, maps = torch.randn(16, 1, 3, 3), torch.rand(16, 8, 8)
    fig = draw_learned_bank(K, torch.rand(1, 8, 8), maps, label=3)
    assert len(fig.axes) == 1 + 2 * 16
    with pytest.raises(ValueError, match=r"\(16, 1, 3, 3\) and 15 maps"):
        draw_learned_bank(K, torch.rand(1, 8, 8), maps[:15], label=3)


def test_bank_figure_adds_a_colour_bar_for_the_maps_and_exact_titles():
    K = torch.ones(16, 1, 3, 3)  # share 1
    K[0, 0, 2, 2] = -4.804  # share (8 - 4.804) / (8 + 4.804) = 0.2496
    maps = torch.rand(16, 8, 8)
    maps[1] = 0  # a dead map stays white
    fig = many_kernels_ops.draw_bank_with_scale(K, torch.rand(1, 8, 8), maps, 3)
    assert len(fig.axes) == 1 + 2 * 16 + 2  # and two colour bars
    assert fig.axes[1].get_title() == "0.2496"  # four decimals: below 0.25
    for map_ax in fig.axes[2:33:2]:
        assert map_ax.images[0].get_clim() == (0, 1)
        assert map_ax.images[0].get_array().max() in (0, 1)


def test_title_decimals_put_every_printed_share_on_its_side():
    assert many_kernels_ops.title_decimals([0.1, 0.9]) == 2
    assert many_kernels_ops.title_decimals([0.2541, 0.5015]) == 3
    assert many_kernels_ops.title_decimals([0.24963, 0.4967]) == 4
    with pytest.raises(ValueError, match="lies on a threshold"):
        many_kernels_ops.title_decimals([0.25])


@pytest.mark.parametrize("name", SWEEPS)
def test_bank_titles_show_the_class_the_text_gives(results, name):
    """The chapter sorts kernels by |sum w| / sum |w| against two thresholds;
    each figure title, as printed, lies on its kernel's side of both."""
    bank = results[name]
    shares, decimals = bank["bank_sign_shares"], bank["bank_title_decimals"]
    thresholds = bank["balanced_below"], bank["one_sign_above"]
    for share in shares:
        printed = float(f"{share:.{decimals}f}")
        for threshold in thresholds:
            assert printed != threshold
            assert (printed > threshold) == (share > threshold)
    balanced = sum(share < thresholds[0] for share in shares)
    assert balanced == bank["bank_balanced_kernels"]
    one_sign = sum(share > thresholds[1] for share in shares)
    assert one_sign == bank["bank_one_sign_kernels"]


# --- the claims the chapter makes --------------------------------------------


# Two bank sizes scored on the same test images differ by more than noise
# when the difference of their means is at least 2 standard errors: each
# size's spread over seeds (sample sd) and the test images' sampling error of
# the difference, image by image (what a paired bootstrap estimates).


def paired_gain(run, small, large):
    """mean_large - mean_small and its standard error."""
    seed_variance = sum(
        sample_sd(run[f"accuracies_{N}"]) ** 2 / len(run[f"accuracies_{N}"])
        for N in (small, large)
    )
    d = np.asarray(run[f"correct_{large}"]) - np.asarray(run[f"correct_{small}"])
    assert len(d) == run["num_test"]
    effect = run[f"mean_{large}"] - run[f"mean_{small}"]
    return effect, float(np.sqrt(seed_variance + d.var(ddof=1) / len(d)))


def test_the_row_reuses_the_sweeps(results):
    for name, key in [
        ("many_kernels_digits", "digits"),
        ("many_kernels_shifted", "shifted"),
    ]:
        run = results[name]
        N = run["row_many_kernels_count"]
        assert N == 16 and N in run["counts"]
        for stat in ("mean", "std", "parameters", "seconds"):
            assert run[f"row_many_kernels_{key}_{stat}"] == run[f"{stat}_{N}"]
        assert run["num_seeds"] == len(PROTOCOL["seeds"]) >= 3
        assert run[f"std_{N}"] == pytest.approx(sample_sd(run[f"accuracies_{N}"]))


def test_shifted_more_kernels_help_but_not_much(results, claim):
    run = results["many_kernels_shifted"]
    claim.exceeds(
        "shifted digits: 16 kernels beat one kernel", *paired_gain(run, 1, 16)
    )
    claim.exceeds(
        "shifted digits: even 16 kernels get fewer than half the test digits",
        0.5 - run["mean_16"],
        mean_se(run["accuracies_16"], run["num_test"]),
    )


def test_shifted_one_kernel_is_hardly_better_than_guessing(results, claim):
    run = results["many_kernels_shifted"]
    claim.exceeds(
        "shifted digits: one kernel stays below twice the chance level",
        2 * run["chance_accuracy"] - run["mean_1"],
        mean_se(run["accuracies_1"], run["num_test"]),
    )


def test_shifted_four_to_eight_kernels_is_within_the_noise(results, claim):
    run = results["many_kernels_shifted"]
    claim.within(
        "shifted digits: no clear difference between 4 and 8 kernels",
        *paired_gain(run, 4, 8),
    )


def test_shifted_model_memorises_its_training_images(results, claim):
    run = results["many_kernels_shifted"]
    fitted, n_train = run["train_accuracies_16"], run["num_train"]
    assert run["mean_train_accuracy_16"] == pytest.approx(np.mean(fitted))
    claim.exceeds(
        "shifted digits: 16 kernels get (almost) every training image right "
        "(above 95 %, mean over seeds)",
        np.mean(fitted) - 0.95,
        mean_se(fitted, n_train),
    )
    claim.exceeds(
        "shifted digits: far more training images right than test images",
        np.mean(fitted) - run["mean_16"],
        np.hypot(
            mean_se(fitted, n_train),
            mean_se(run["accuracies_16"], run["num_test"]),
        ),
    )


def test_digits_accuracy_rises_to_16_kernels_then_slowly(results, claim):
    run = results["many_kernels_digits"]
    assert run["counts"][-1] == run["largest_count"] == 64
    claim.exceeds("native digits: 16 kernels beat two", *paired_gain(run, 2, 16))
    # 16 to 64: the chapter prints the gain, its SE and the rule's verdict,
    # and claims neither way (test_the_printed_gains_follow_the_rule).


@pytest.mark.parametrize("name", SWEEPS)
def test_the_printed_gains_follow_the_rule(results, name):
    """The chapter's table of gains: the snippets' standard errors are the
    tests' paired_gain, and each verdict is the 2-SE rule."""
    run = results[name]
    keys = [k for k in run if k.startswith("gain_verdict_")]
    assert keys
    for key in keys:
        small, large = map(int, key.removeprefix("gain_verdict_").split("_"))
        gain, se = paired_gain(run, small, large)
        assert run[f"gain_{small}_{large}"] == pytest.approx(gain)
        assert run[f"gain_se_{small}_{large}"] == pytest.approx(se)
        assert run[key] == ("clear" if abs(gain) >= 2 * se else "not clear")


def test_digits_training_accuracy_stays_close_to_the_test_accuracy(results, claim):
    """The gap between the training and the test accuracy at 16 kernels is
    far smaller on the native digits than on the shifted ones."""
    digits, shifted = results["many_kernels_digits"], results["many_kernels_shifted"]

    def gap(run):
        fitted = run["train_accuracies_16"]
        se = np.hypot(
            mean_se(fitted, run["num_train"]),
            mean_se(run["accuracies_16"], run["num_test"]),
        )
        return np.mean(fitted) - run["mean_16"], se

    (d_gap, d_se), (s_gap, s_se) = gap(digits), gap(shifted)
    claim.exceeds(
        "the train-test gap is far smaller on native than on shifted digits",
        s_gap - d_gap,
        np.hypot(d_se, s_se),
    )


def test_what_the_learned_banks_look_like(results):
    digits, shifted = results["many_kernels_digits"], results["many_kernels_shifted"]
    # Digits: some kernels balanced like Sobel, some one-signed, some between.
    assert digits["bank_balanced_kernels"] >= 2
    assert digits["bank_one_sign_kernels"] >= 2
    assert digits["bank_balanced_kernels"] + digits["bank_one_sign_kernels"] < 16
    # Shifted: several maps nearly empty, from kernels with a negative bias.
    assert shifted["bank_sparse_maps"] >= 2
    assert shifted["bank_sparse_max_bias"] < 0
    assert digits["bank_sparse_maps"] < shifted["bank_sparse_maps"]
    # The prose names one digit for both figures.
    assert digits["bank_label"] == shifted["bank_label"]


@pytest.mark.parametrize("name", ["many_kernels", *SWEEPS])
def test_signed_values_are_drawn_red_positive_blue_negative(name):
    """The book's one sign convention: RdBu_r (red +, blue −, white 0), on a
    range symmetric about zero, never another diverging map."""
    source = (SNIPPETS / f"{name}.py").read_text()
    for cmap in re.findall(r'cmap="([^"]+)"', source):
        assert cmap in {"RdBu_r", "gray", "gray_r"}
    for call in re.findall(r'cmap="RdBu_r"[^)]*', source):
        assert "vmin=-" in call
