"""Chapter 3: banks of kernels, colour kernels, parameter counts, the sweeps."""

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from book import (
    PROTOCOL,
    LearnedKernelSoftmax,
    Split,
    count_parameters,
    draw_learned_bank,
    feature_maps,
    load_dataset,
    plot_sweep,
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
    assert len(fig.axes) == 4 * 4
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


def test_plot_sweep_draws_one_point_per_count():
    trials = {N: {"mean": 0.5, "std": 0.1, "accuracies": [0.4, 0.6]} for N in (1, 2, 4)}
    results = {f"train_accuracy_{N}": 0.6 for N in trials}
    fig = plot_sweep(trials, results, "t")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1", "2", "4"]


# --- the claims the chapter makes --------------------------------------------


def gain(run, small, large):
    return run[f"mean_{large}"] - run[f"mean_{small}"]


def spread(run, *counts):
    return sum(run[f"std_{N}"] for N in counts)


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


def test_shifted_more_kernels_help_beyond_the_seed_spread(results):
    run = results["many_kernels_shifted"]
    assert gain(run, 1, 16) > 2 * spread(run, 1, 16)


def test_shifted_one_kernel_is_hardly_better_than_guessing(results):
    run = results["many_kernels_shifted"]
    assert 0 < run["mean_1"] - run["chance_accuracy"] < 0.1


def test_shifted_climb_is_not_smooth(results):
    """Two kernels: the largest seed spread; four to eight: within the spread."""
    run = results["many_kernels_shifted"]
    stds = {N: run[f"std_{N}"] for N in run["counts"]}
    assert max(stds, key=stds.get) == 2
    assert abs(gain(run, 4, 8)) < max(stds[4], stds[8])


def test_shifted_model_memorises_its_training_images(results):
    run = results["many_kernels_shifted"]
    assert run["train_accuracy_16"] > 0.99
    assert run["train_accuracy_16"] - run["mean_16"] > 0.5
    assert max(run[f"mean_{N}"] for N in run["counts"]) < 0.5


def test_digits_more_kernels_keep_helping_with_diminishing_returns(results):
    run = results["many_kernels_digits"]
    counts = run["counts"]
    assert counts[-1] == 64
    means = [run[f"mean_{N}"] for N in counts]
    assert means == sorted(means)
    assert gain(run, 1, 16) > 2 * spread(run, 1, 16)
    assert gain(run, 4, 64) > 2 * spread(run, 4, 64)
    # From two kernels on, every doubling adds less than a percentage point.
    later = [gain(run, a, b) for a, b in zip(counts[1:], counts[2:])]
    assert max(later) < 0.01


def test_digits_training_accuracy_stays_close_above_the_test_accuracy(results):
    run = results["many_kernels_digits"]
    for N in run["counts"]:
        assert 0 < run[f"train_accuracy_{N}"] - run[f"mean_{N}"] < 0.05


def test_more_kernels_help_on_both_datasets_and_digits_stay_easier(results):
    digits, shifted = results["many_kernels_digits"], results["many_kernels_shifted"]
    for N in shifted["counts"]:
        assert digits[f"mean_{N}"] > shifted[f"mean_{N}"] + 0.5


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
