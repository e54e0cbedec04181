"""Chapter 2: recovering Sobel by gradient descent, one learned kernel for the
task, the shifted digits, and the protocol behind the results table."""

import ast
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from claims import binomial_se, mean_se, sample_sd
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

SNIPPETS = Path(__file__).resolve().parent.parent / "snippets"


def snippet_function(name, function):
    """One function of a snippet, with the snippet's imports, without running
    its cells."""
    tree = ast.parse((SNIPPETS / f"{name}.py").read_text())
    tree.body = [
        node
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        or (isinstance(node, ast.FunctionDef) and node.name == function)
    ]
    namespace = {}
    exec(compile(tree, name, "exec"), namespace)
    return namespace[function]


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


def log_margin(errors, bound):
    """How many powers of ten the errors stay below bound, and the spread of
    that over the random starts (sample sd of log10 of each start's error)."""
    logs = np.log10(errors)
    return np.log10(bound) - logs.max(), sample_sd(logs)


def test_the_learned_kernel_is_sobel_x(recover):
    K = torch.tensor(recover["learned_kernel"])
    torch.testing.assert_close(K, SOBEL_X, atol=TOLERANCE, rtol=0)
    assert torch.equal(K.round(decimals=2) + 0.0, SOBEL_X)
    assert recover["max_abs_error"] == recover["seed_errors"][0]


def test_every_random_start_recovers_sobel_x(recover, claim):
    """The chapter: from every random start, no weight ends more than
    worst_seed_error from Sobel's (the figures print it exactly)."""
    assert len(recover["seed_errors"]) == recover["num_seeds"] == 3
    assert recover["worst_seed_error"] == max(recover["seed_errors"])
    assert recover["initial_error"] > 1  # the start is nowhere near Sobel
    effect, spread = log_margin(recover["seed_errors"], TOLERANCE)
    claim.exceeds(
        "every random start ends within the figures' rounding of Sobel x "
        "(powers of ten below 0.005, against the starts' spread)",
        effect,
        spread,
    )


def test_the_loss_falls_to_almost_nothing(recover):
    assert recover["final_loss"] < 1e-6 * recover["initial_loss"]


def test_the_sobel_pattern_appears_early(recover, claim):
    """The pattern (no weight off by 0.5 or more: every sign right, the
    middle column nearer 0 than ±1) appears after a few dozen steps, within
    the first 100 of the 300, from every start."""
    steps = recover["pattern_steps"]
    assert recover["pattern_step"] == steps[0]
    assert recover["pattern_error"] < 0.5
    claim.exceeds(
        "from every start the Sobel x pattern appears within 100 steps",
        100 - max(steps),
        max(sample_sd(steps), 1),  # at least one step of resolution
    )


def test_the_error_shrinks_by_the_rate_the_bowl_predicts(recover):
    """The chapter: after the first steps the distance keeps the same fraction
    per step, for every start, the one the flattest direction of the bowl
    predicts (1 - 2 lr lambda_min); the loss, a square, keeps its square."""
    predicted = recover["predicted_error_factor"]
    for factor in recover["error_factors"]:
        assert factor == pytest.approx(predicted, abs=0.003)
    assert recover["error_factor_per_step"] == recover["error_factors"][0]
    assert recover["error_factor_per_step"] == pytest.approx(
        recover["error_factor_per_step_earlier"], abs=0.003
    )
    assert recover["loss_factor_per_step"] == pytest.approx(
        recover["error_factor_per_step"] ** 2, abs=0.003
    )


def test_a_smooth_photo_is_harder(recover, claim):
    """The chapter: the camera photo's bowl is far more lopsided, its lr is
    capped lower, and the same number of steps leaves a large error from
    every start."""
    assert recover["camera_curvature_ratio"] > 10 * recover["grass_curvature_ratio"]
    assert recover["camera_lr"] < recover["camera_stable_lr"] < recover["lr"]
    assert recover["lr"] < recover["grass_stable_lr"]
    assert recover["camera_error"] == recover["camera_errors"][0]
    camera = np.log10(recover["camera_errors"])
    grass = np.log10(recover["seed_errors"])
    claim.exceeds(
        "after the same steps the camera photo's kernel is far further from "
        "Sobel than the grass photo's (log10 of the error, every start)",
        camera.min() - grass.max(),
        np.hypot(sample_sd(camera), sample_sd(grass)),
    )
    assert recover["min_camera_error"] == min(recover["camera_errors"])


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

# Two rows scored on the same test images differ by more than noise when the
# difference of their means is at least 2 standard errors: each row's spread
# over seeds (sample sd) and the test images' sampling error of the
# difference, image by image (what a paired bootstrap over test images
# estimates). 450 test digits resolve about 2 points, not less.


def paired_se(task, a, b):
    """The standard error of mean(a) - mean(b), two sets of runs scored on the
    same test images; `{name}_correct` holds, per test image, the share of
    a set's runs that classify it right."""
    seed_variance = sum(
        sample_sd(task[f"{name}_accuracies"]) ** 2 / len(task[f"{name}_accuracies"])
        for name in (a, b)
    )
    d = np.asarray(task[f"{a}_correct"]) - np.asarray(task[f"{b}_correct"])
    assert len(d) == task["num_test"]
    return float(np.sqrt(seed_variance + d.var(ddof=1) / len(d)))


def difference(task, a, b):
    return task[f"{a}_mean"] - task[f"{b}_mean"], paired_se(task, a, b)


def test_the_comparison_changes_only_the_kernel(task):
    assert task["fixed_kernel_change"] == 0  # the fixed kernel never moved
    # the learned one trains its 9 weights on top of the same bias and softmax
    assert task["learned_kernel_parameters"] == task["fixed_kernel_parameters"] + 9
    assert task["fixed_kernel_parameters"] == 1 + 64 * 10 + 10


def test_dead_runs_are_the_runs_at_chance(task):
    """The chapter counts the runs whose kernel died (zero map on every
    training image) and keeps them, like every run, in the learned kernel's
    mean."""
    everything = task["learned_accuracies"]
    assert task["alive_runs"] + task["dead_runs"] == len(everything)
    assert task["num_compare_seeds"] == len(everything) == 10
    assert task["learned_mean"] == pytest.approx(np.mean(everything))
    for accuracy in sorted(everything)[: task["dead_runs"]]:
        assert accuracy < 0.2  # a dead kernel leaves the model guessing


def test_a_learned_kernel_does_as_well_as_a_hand_picked_one(task, claim):
    """The chapter: the learned kernel lands between fixed Sobel x and y,
    with no clear difference from either at this budget."""
    for fixed in ("sobel_x", "sobel_y"):
        effect, se = difference(task, "learned", fixed)
        claim.within(
            f"no clear difference between the learned kernel and fixed {fixed}",
            effect,
            se,
        )


MODELS = ("pixels", "edge_map", "sobel_x", "sobel_y", "learned")


def test_the_printed_differences_follow_the_rule(task):
    """The chapter's table of differences: the snippet's standard errors are
    the tests' paired_se, and each verdict is the 2-SE rule."""
    for i, a in enumerate(MODELS):
        for b in MODELS[i + 1 :]:
            effect, se = difference(task, a, b)
            assert task[f"diff_{a}_vs_{b}"] == pytest.approx(effect, abs=1e-6)
            assert task[f"se_{a}_vs_{b}"] == pytest.approx(se, rel=1e-4)
            verdict = "clear" if abs(effect) >= 2 * se else "not clear"
            assert task[f"verdict_{a}_vs_{b}"] == verdict


def test_fixed_sobel_y_does_best_and_beats_the_edge_map(task, claim):
    """The chapter: fixed Sobel y has the best mean of the five, clearly
    ahead of the edge map."""
    means = {name: task[f"{name}_mean"] for name in MODELS}
    assert max(means, key=means.get) == "sobel_y"
    claim.exceeds(
        "fixed Sobel y beats chapter 1's edge map on the native digits",
        *difference(task, "sobel_y", "edge_map"),
    )


def test_the_edge_map_does_no_better_than_raw_pixels(task, claim):
    effect, se = difference(task, "edge_map", "pixels")
    claim.within(
        "no clear difference between chapter 1's edge map and raw pixels "
        "under the book's protocol",
        effect,
        se,
    )


def test_the_learned_kernel_does_no_better_than_raw_pixels(task, claim):
    effect, se = difference(task, "learned", "pixels")
    claim.within(
        "no clear difference between one learned kernel and raw pixels",
        effect,
        se,
    )


def test_the_learned_kernel_and_the_edge_map_are_not_clearly_apart(task, claim):
    """With the two tests above: the results table's three rows show no clear
    difference in the ten-seed comparison."""
    claim.within(
        "no clear difference between one learned kernel and the edge map",
        *difference(task, "learned", "edge_map"),
    )


def test_the_kernels_moved_far_from_their_random_start(task, claim):
    # PyTorch starts a 3 × 3 kernel's weights within ±1/3 (1 / sqrt(9)).
    assert task["init_max"] <= task["init_bound"] == pytest.approx(1 / 3)
    moves = task["kernel_moves"]
    claim.exceeds(
        "every run's kernel moved further than PyTorch's starting range "
        "(largest weight change against ±1/3; spread over runs)",
        np.mean(moves) - task["init_bound"],
        sample_sd(moves),
    )


def test_seeds_learn_different_kernels(task):
    """Descriptive: the smallest pairwise difference the chapter quotes is far
    above the weights' rounding in the figure (two decimals)."""
    kernels = torch.tensor(task["learned_kernels"])
    differences = [
        (kernels[i] - kernels[j]).abs().max().item()
        for i in range(len(kernels))
        for j in range(i)
    ]
    assert min(differences) == pytest.approx(task["min_kernel_difference"])
    assert task["min_kernel_difference"] > 0.1
    # Up to the scale ReLU lets the softmax undo: no two directions of
    # [K, b] coincide (the chapter quotes the largest cosine similarity).
    assert task["max_kernel_cosine"] < 0.95


def test_learned_kernels_respond_to_ink_itself_unlike_sobel(task, claim):
    sums = task["kernel_sums"]
    assert torch.tensor(task["learned_kernels"]).sum(dim=(1, 2)).tolist() == (
        pytest.approx(sums)
    )
    assert task["positive_sum_kernels"] == sum(s > 0 for s in sums)
    claim.exceeds(
        "learned kernels' weights add up to a clearly positive number on "
        "average (Sobel's add up to 0)",
        np.mean(sums),
        sample_sd(sums) / np.sqrt(len(sums)),
    )


# The results table


ROWS = ("raw", "fixed", "one_kernel")
SETS = ("digits", "shifted")


@pytest.mark.parametrize("row", ROWS)
@pytest.mark.parametrize("dataset", SETS)
def test_the_table_keys_are_recorded(task, row, dataset):
    for stat in ("mean", "std", "parameters", "seconds"):
        assert f"row_{row}_{dataset}_{stat}" in task
    assert task[f"row_{row}_{dataset}_std"] == pytest.approx(
        sample_sd(task[f"{row}_{dataset}_accuracies"])
    )
    assert task[f"row_{row}_{dataset}_seconds"] > 0


def test_table_parameter_counts(task):
    for row in ("raw", "fixed"):
        assert task[f"row_{row}_digits_parameters"] == 8 * 8 * 10 + 10
        assert task[f"row_{row}_shifted_parameters"] == 24 * 24 * 10 + 10
    assert task["row_one_kernel_digits_parameters"] == 8 * 8 * 10 + 10 + 10
    assert task["row_one_kernel_shifted_parameters"] == 24 * 24 * 10 + 10 + 10


def test_on_shifted_digits_every_row_collapses(task, claim):
    """The chapter: on the shifted digits no row gets one digit in four right,
    against more than nine in ten on the native digits."""
    for row in ROWS:
        accuracies = task[f"{row}_shifted_accuracies"]
        claim.exceeds(
            f"{row} on shifted digits stays below 25 %",
            0.25 - np.mean(accuracies),
            mean_se(accuracies, task["shifted_num_test"]),
        )


def test_on_shifted_digits_learning_the_kernel_does_not_help(task, claim):
    for baseline, name in [("fixed", "the edge map"), ("raw", "raw pixels")]:
        effect, se = difference(task, "one_kernel_shifted", f"{baseline}_shifted")
        claim.within(
            f"on shifted digits, no clear difference between one learned "
            f"kernel and {name}",
            effect,
            se,
        )


def test_on_shifted_digits_training_images_are_fitted_better_than_new_ones(task, claim):
    """The last seed's net of the rows without a learned kernel (which can
    die, see above): right on more of its training images than of the test
    images, and even on those, on fewer than half."""
    n_train, n_test = task["shifted_num_train"], task["shifted_num_test"]
    for row in ("raw", "fixed"):
        train = task[f"{row}_shifted_train_accuracy"]
        test = task[f"{row}_shifted_last_test_accuracy"]
        claim.exceeds(
            f"{row}: training images fitted better than test images",
            train - test,
            np.hypot(binomial_se(train, n_train), binomial_se(test, n_test)),
        )
        claim.exceeds(
            f"{row}: even training images mostly wrong (< 50 %)",
            0.5 - train,
            binomial_se(train, n_train),
        )


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


def test_a_dead_kernel_receives_no_gradient_and_is_found():
    """The chapter: a kernel negative on every patch passes no gradient back
    through the ReLU, so it never moves; is_dead finds it."""
    is_dead = snippet_function("learn_kernel_task", "is_dead")
    X, y = torch.zeros(8, 1, 8, 8), torch.arange(8)  # a blank background ...
    X[:, :, 2:6, 3:5] = torch.rand(8, 1, 4, 2)  # ... and some ink, as digits
    net = LearnedKernelSoftmax(num_kernels=1, image_size=8)
    with torch.no_grad():
        net.conv.weight.fill_(-0.5)
        net.conv.bias.fill_(-0.1)
    F.cross_entropy(net(X), y).backward()
    assert torch.count_nonzero(net.conv.weight.grad) == 0
    assert torch.count_nonzero(net.conv.bias.grad) == 0
    assert is_dead(net, X)
    with torch.no_grad():
        net.conv.bias.fill_(0.1)  # exercise 5's remedy: the background fires
    assert not is_dead(net, X)


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
# One seed's sample std is NaN, as the tests expect; NumPy warns as it makes it.
one_seed = pytest.mark.filterwarnings(
    "ignore:Degrees of freedom <= 0:RuntimeWarning",
    "ignore:invalid value encountered in scalar divide:RuntimeWarning",
)


@one_seed
def test_run_trials_returns_the_table_fields(tiny):
    trial = run_trials(lambda: LearnedKernelSoftmax(1, 8), tiny, TINY)
    assert {"mean", "std", "accuracies", "parameters", "seconds", "net"} <= set(trial)
    assert len(trial["accuracies"]) == 1
    assert np.isnan(trial["std"])  # a sample std needs two seeds
    assert 0 <= trial["mean"] <= 1 and trial["seconds"] > 0
    assert trial["parameters"] == 660
    assert len(trial["history"]["train_loss"]) == 2
    assert trial["history"]["test_accuracy"] == trial["accuracies"]  # last only


def test_run_trials_with_a_curve_scores_the_last_seed_every_epoch(tiny):
    """Scoring is in eval mode under no_grad: it leaves training alone, so
    the curve's last point is the final accuracy without a curve."""
    two_seeds = {**TINY, "seeds": (0, 1)}
    plain = run_trials(lambda: LearnedKernelSoftmax(1, 8), tiny, two_seeds)
    curve = run_trials(lambda: LearnedKernelSoftmax(1, 8), tiny, two_seeds, curve=True)
    assert len(curve["history"]["test_accuracy"]) == 2
    assert curve["history"]["test_accuracy"][-1] == plain["accuracies"][-1]
    assert curve["accuracies"] == plain["accuracies"]
    assert torch.equal(curve["net"].conv.weight, plain["net"].conv.weight)


@one_seed
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


@one_seed
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


@pytest.mark.parametrize("name", ["learn_kernel_recover", "learn_kernel_task"])
def test_signed_values_are_drawn_red_positive_blue_negative(name):
    """The book's one sign convention: RdBu_r (red +, blue −, white 0), on a
    range symmetric about zero, never another diverging map."""
    source = (SNIPPETS / f"{name}.py").read_text()
    maps = re.findall(r'cmap="([^"]+)"', source)
    assert maps and set(maps) <= {"RdBu_r", "gray", "gray_r"}
    for call in re.findall(r'cmap="RdBu_r"[^)]*', source):
        assert "vmin=-" in call
