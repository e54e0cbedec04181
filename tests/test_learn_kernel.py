"""Chapter 2: recovering Sobel by gradient descent, one learned kernel for the
task, the shifted digits, and the protocol behind the results table."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from book import (
    PROTOCOL,
    SOBEL_X,
    FixedFilterSoftmax,
    LearnedKernelSoftmax,
    count_parameters,
    draw_kernel,
    edge_magnitude,
    load_dataset,
    place_on_canvas,
    run_trials,
)

# The recovery figures write each weight with 2 (snapshots) and 4 (final)
# decimals: an error below half the last shown digit of the snapshots makes the
# learned kernel print as Sobel exactly. The runs reach about 1e-4.
TOLERANCE = 0.005


@pytest.fixture(scope="module")
def recover(results):
    return results["learn_kernel_recover"]


@pytest.fixture(scope="module")
def task(results):
    return results["learn_kernel_task"]


# Recovering a known kernel


def test_the_learned_kernel_is_sobel_x(recover):
    K = torch.tensor(recover["learned_kernel"])
    assert recover["max_abs_error"] < TOLERANCE
    torch.testing.assert_close(K, SOBEL_X, atol=TOLERANCE, rtol=0)
    assert torch.equal(K.round(decimals=2) + 0.0, SOBEL_X)


def test_every_random_start_converges(recover):
    assert recover["num_seeds"] == 3
    assert recover["worst_seed_error"] < TOLERANCE
    assert recover["initial_error"] > 1  # the start is nowhere near Sobel


def test_the_loss_falls_to_almost_nothing(recover):
    assert recover["final_loss"] < 1e-6 * recover["initial_loss"]


def test_the_sobel_pattern_appears_early(recover):
    """Off by less than half the smallest non-zero Sobel weight: every weight
    has Sobel's sign, and the middle column is nearer 0 than ±1."""
    assert recover["pattern_step"] == 30
    assert recover["pattern_error"] < 0.5


def test_the_error_shrinks_by_the_same_factor_every_step(recover):
    """The chapter: a straight line on a log scale after the first steps, for
    every random start (factors over steps 100-200 and 200-300)."""
    later, earlier = (
        recover["error_factor_per_step"],
        recover["error_factor_per_step_earlier"],
    )
    assert 0.9 < later < 1
    assert later == pytest.approx(earlier, abs=0.005)
    assert recover["error_factor_spread"] < 0.005
    assert recover["loss_factor_per_step"] == pytest.approx(
        recover["loss_factor_per_step_earlier"], abs=0.005
    )


def test_a_smooth_photo_is_harder(recover):
    """The chapter: the camera photo's bowl is far more lopsided, its lr is
    capped lower, and the same number of steps leaves a large error."""
    assert recover["camera_curvature_ratio"] > 10 * recover["grass_curvature_ratio"]
    assert recover["camera_lr"] < recover["camera_stable_lr"] < recover["lr"]
    assert recover["lr"] < recover["grass_stable_lr"]
    assert recover["camera_error"] > 0.1 > TOLERANCE


@pytest.mark.parametrize("seed", range(3))
def test_gradient_descent_recovers_any_kernel_from_noise(seed):
    """The chapter's method, as a property: on white noise (every direction of
    the bowl equally steep) any 3 × 3 kernel is found in a few dozen steps."""
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(1, 1, 32, 32, generator=generator)
    K_true = torch.randn(1, 1, 3, 3, generator=generator)
    Y = F.conv2d(X, K_true, padding=1)
    K = torch.zeros(1, 1, 3, 3, requires_grad=True)
    for _ in range(50):
        loss = F.mse_loss(F.conv2d(X, K, padding=1), Y)
        (gradient,) = torch.autograd.grad(loss, K)
        with torch.no_grad():
            K -= 0.4 * gradient
    torch.testing.assert_close(K.detach(), K_true, atol=1e-4, rtol=0)


# A kernel learned for the task

# Margins: a claim that one model beats another needs every seed of the one
# above every seed of the other (the seeds' ranges do not overlap); a claim
# that a change does not help needs the ranges to overlap.


def test_the_learned_kernel_beats_both_fixed_sobel_kernels(task):
    assert task["learned_min"] > task["sobel_x_max"]
    assert task["learned_min"] > task["sobel_y_max"]
    assert task["learned_gain"] > 0


def test_the_comparison_changes_only_the_kernel(task):
    assert task["fixed_kernel_change"] == 0  # the fixed kernel never moved
    # the learned one trains 9 weights and a bias on top of the same softmax
    assert task["learned_kernel_parameters"] == task["fixed_kernel_parameters"] + 10
    assert task["fixed_kernel_parameters"] == 64 * 10 + 10


def test_the_kernels_moved_far_from_their_random_start(task):
    # PyTorch starts a 3 × 3 kernel's weights within ±1/3 (1 / sqrt(9)).
    assert task["init_bound"] == pytest.approx(1 / 3)
    assert task["init_max"] <= task["init_bound"]
    assert task["kernel_move"] > task["init_bound"]


def test_seeds_learn_different_kernels_of_nearly_equal_accuracy(task):
    assert task["min_kernel_difference"] > 0.5
    assert task["learned_max"] - task["learned_min"] < 0.01


def test_learned_kernels_respond_to_ink_itself_unlike_sobel(task):
    assert task["sobel_kernel_sum"] == 0
    assert task["min_kernel_sum"] > 0.5


# The results table


ROWS = ("fixed", "one_kernel")
SETS = ("digits", "shifted")


@pytest.mark.parametrize("row", ROWS)
@pytest.mark.parametrize("dataset", SETS)
def test_the_table_keys_are_recorded(task, row, dataset):
    for stat in ("mean", "std", "parameters", "seconds"):
        assert f"row_{row}_{dataset}_{stat}" in task
    assert 0 <= task[f"row_{row}_{dataset}_std"] < 0.05
    assert task[f"row_{row}_{dataset}_seconds"] > 0


def test_table_parameter_counts(task):
    assert task["row_fixed_digits_parameters"] == 8 * 8 * 10 + 10
    assert task["row_fixed_shifted_parameters"] == 24 * 24 * 10 + 10
    assert task["row_one_kernel_digits_parameters"] == 8 * 8 * 10 + 10 + 10
    assert task["row_one_kernel_shifted_parameters"] == 24 * 24 * 10 + 10 + 10


def test_the_one_kernel_row_is_the_comparisons_learned_kernel(task):
    assert task["row_one_kernel_digits_mean"] == task["learned_mean"]
    assert task["row_one_kernel_digits_std"] == task["learned_std"]


def test_on_digits_one_learned_kernel_beats_the_edge_map(task):
    assert task["one_kernel_digits_min"] > task["fixed_digits_max"]


def test_on_shifted_digits_both_rows_are_barely_above_chance(task):
    for row in ROWS:
        # every seed above chance, every seed far below the digits results
        assert task[f"{row}_shifted_min"] > task["chance_accuracy"]
        assert task[f"{row}_shifted_max"] < 0.25
        assert task[f"{row}_shifted_max"] < task[f"{row}_digits_min"] - 0.5


def test_on_shifted_digits_learning_the_kernel_does_not_help(task):
    assert task["one_kernel_shifted_min"] <= task["fixed_shifted_max"]
    assert task["fixed_shifted_min"] <= task["one_kernel_shifted_max"]


def test_on_shifted_digits_training_images_are_fitted_better_than_new_ones(task):
    for row in ROWS:
        train = task[f"{row}_shifted_train_accuracy"]
        test = task[f"{row}_shifted_last_test_accuracy"]
        assert train - test > 0.1  # it fits the training placements ...
        assert train < 0.5  # ... and even those only partly
        # on the native digits, new images are as easy as training images
        gap = task[f"{row}_digits_train_accuracy"]
        gap -= task[f"{row}_digits_last_test_accuracy"]
        assert abs(gap) < 0.03


def test_the_training_curves_the_figure_describes(task):
    for row in ROWS:
        assert task[f"{row}_digits_last_test_accuracy"] > 0.9


def test_the_shifted_dataset_facts_the_chapter_cites(task):
    assert (task["digit_pixels"], task["shifted_pixels"]) == (64, 576)
    assert task["shifted_size"] == 24
    assert task["shifted_copies"] == 2
    assert task["shifted_num_train"] == 2 * 1347
    assert task["shifted_num_test"] == 450


# place_on_canvas and the shifted digits


@pytest.fixture(scope="module")
def shifted():
    return load_dataset("shifted_digits")


def test_place_on_canvas_shapes_values_and_labels():
    images = np.random.default_rng(0).random((5, 8, 8), dtype=np.float32)
    labels = np.arange(5)
    out, out_labels = place_on_canvas(
        images, labels, canvas=20, copies=3, rng=np.random.default_rng(1)
    )
    assert out.shape == (15, 20, 20) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
    np.testing.assert_array_equal(out_labels, np.tile(labels, 3))


def test_place_on_canvas_puts_the_digit_somewhere_inside():
    image = np.ones((1, 8, 8), dtype=np.float32)
    out, _ = place_on_canvas(
        image, [7], canvas=16, rng=np.random.default_rng(0), noise=0
    )
    ink = out[0] > 0.5
    assert 64 <= ink.sum() <= 14 * 14  # scaled by 1 to 1.75
    assert out[0].sum() > 0 and not ink.all()


def test_place_on_canvas_is_reproducible_with_a_seeded_rng():
    images = np.random.default_rng(0).random((3, 8, 8), dtype=np.float32)
    first, _ = place_on_canvas(images, [0, 1, 2], rng=np.random.default_rng(5))
    second, _ = place_on_canvas(images, [0, 1, 2], rng=np.random.default_rng(5))
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize(
    "images, labels, canvas, message",
    [
        (np.zeros((8, 8)), [0], 24, r"\(N, H, W\) images.*shape \(8, 8\)"),
        (np.zeros((2, 1, 8, 8)), [0, 1], 24, r"shape \(2, 1, 8, 8\)"),
        (np.zeros((3, 8, 8)), [0, 1], 24, r"\(3, 8, 8\) and 2 labels"),
        (np.zeros((2, 8, 8)), [0, 1], 12, r"canvas 12 × 12 is smaller .*14 × 14"),
    ],
)
def test_place_on_canvas_rejects_bad_input_naming_it(images, labels, canvas, message):
    with pytest.raises(ValueError, match=message):
        place_on_canvas(images, labels, canvas=canvas)


def test_shifted_digits_keep_the_split_and_tile_the_labels(shifted):
    digits = load_dataset("digits")
    assert shifted.X_train.shape == (2 * 1347, 1, 24, 24)
    assert shifted.X_test.shape == (450, 1, 24, 24)
    assert 0 <= shifted.X_train.min() and shifted.X_train.max() <= 1
    assert torch.equal(shifted.y_train, digits.y_train.repeat(2))
    assert torch.equal(shifted.y_test, digits.y_test)


# The models and the protocol


def test_learned_kernel_softmax_shapes():
    net = LearnedKernelSoftmax(num_kernels=1, image_size=8)
    assert net(torch.zeros(5, 1, 8, 8)).shape == (5, 10)
    assert net.conv.weight.shape == (1, 1, 3, 3)
    assert count_parameters(net) == 9 + 1 + 64 * 10 + 10
    wide = LearnedKernelSoftmax(num_kernels=4, image_size=24, in_channels=3)
    assert wide.conv.weight.shape == (4, 3, 3, 3)
    assert wide(torch.zeros(2, 3, 24, 24)).shape == (2, 10)
    assert wide.conv(torch.zeros(2, 3, 24, 24)).shape == (2, 4, 24, 24)


def test_the_same_seed_gives_the_same_softmax_start():
    """The chapter: with one seed, the fixed and learned models start from the
    same softmax weights (fixed_kernel_net only overwrites the kernel)."""
    torch.manual_seed(1)
    learned = LearnedKernelSoftmax(num_kernels=1, image_size=8)
    torch.manual_seed(1)
    fixed = LearnedKernelSoftmax(num_kernels=1, image_size=8)
    with torch.no_grad():
        fixed.conv.weight.copy_(SOBEL_X)
    assert torch.equal(learned.classifier.weight, fixed.classifier.weight)


def test_the_learned_kernel_receives_gradients_the_fixed_one_does_not():
    X, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    learned = LearnedKernelSoftmax(num_kernels=1, image_size=8)
    F.cross_entropy(learned(X), y).backward()
    assert learned.conv.weight.grad is not None
    assert learned.conv.weight.grad.abs().sum() > 0

    kernel = nn.Conv2d(1, 1, 3, padding=1)  # a kernel with parameters ...
    fixed = FixedFilterSoftmax(kernel, 64)  # ... used as a fixed feature map
    F.cross_entropy(fixed(X), y).backward()
    assert kernel.weight.grad is None
    assert fixed.classifier.weight.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def tiny():
    data = load_dataset("digits")
    data.X_train, data.y_train = data.X_train[:200], data.y_train[:200]
    return data


TINY = {**PROTOCOL, "num_epochs": 2, "seeds": (0,)}


def test_run_trials_returns_the_table_fields(tiny):
    trial = run_trials(lambda: LearnedKernelSoftmax(1, 8), tiny, TINY)
    assert {"mean", "std", "accuracies", "parameters", "seconds", "net"} <= set(trial)
    assert len(trial["accuracies"]) == 1 and trial["std"] == 0
    assert 0 <= trial["mean"] <= 1 and trial["seconds"] > 0
    assert trial["parameters"] == 660
    assert len(trial["history"]["test_accuracy"]) == 2


def test_run_trials_is_deterministic_for_a_fixed_seed(tiny):
    def trained_weights():
        trial = run_trials(lambda: LearnedKernelSoftmax(1, 8), tiny, TINY)
        return trial["accuracies"], trial["net"].conv.weight.detach()

    (first_accuracies, first), (second_accuracies, second) = (
        trained_weights(),
        trained_weights(),
    )
    assert first_accuracies == second_accuracies
    assert torch.equal(first, second)


def test_run_trials_with_the_fixed_pipeline_trains_only_the_softmax(tiny):
    trial = run_trials(lambda: FixedFilterSoftmax(edge_magnitude, 64), tiny, TINY)
    assert trial["parameters"] == 650


def test_draw_kernel_writes_every_weight_and_rejects_a_bank():
    fig, ax = plt.subplots()
    draw_kernel(ax, SOBEL_X, "Sobel x", digits=0)
    assert sorted(text.get_text() for text in ax.texts) == sorted(
        ["-1", "0", "1", "-2", "0", "2", "-1", "0", "1"]
    )
    with pytest.raises(ValueError, match=r"shape \(2, 3, 3\)"):
        draw_kernel(ax, torch.zeros(2, 3, 3))
    plt.close(fig)
