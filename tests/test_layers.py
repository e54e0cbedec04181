"""Chapter 4: stacking, pooling, the receptive field, and a small CNN."""

import importlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from layers_ops import load_runs, save_runs
from scipy.signal import convolve2d

from book import (
    PROTOCOL,
    SmallCNN,
    accuracy,
    count_parameters,
    extent,
    input_gradient,
    load_dataset,
    receptive_field,
    run_trials,
)

CNN_LAYERS = [(3, 1), (2, 2), (3, 1), (2, 2), (3, 1)]


@pytest.fixture(scope="module")
def layers(tmp_path_factory):
    """The chapter's first snippet as a module; its figures go to a tmp folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LK_OUTPUT_DIR", str(tmp_path_factory.mktemp("layers")))
        return importlib.import_module("layers")


# Stacking -------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_two_convolutions_equal_one_with_the_composed_kernel(layers, seed):
    generator = torch.Generator().manual_seed(seed)
    C, M, C_out = torch.randint(1, 4, (3,), generator=generator).tolist()
    a, b = (2 * torch.randint(1, 3, (2,), generator=generator) + 1).tolist()
    X = torch.randn(2, C, 17, 19, generator=generator)
    K1 = torch.randn(M, C, a, a, generator=generator)
    K2 = torch.randn(C_out, M, b, b, generator=generator)
    K = layers.compose_kernels(K1, K2)
    assert K.shape == (C_out, C, a + b - 1, a + b - 1)
    two = F.conv2d(F.conv2d(X, K1), K2)
    torch.testing.assert_close(F.conv2d(X, K), two, atol=1e-4, rtol=1e-5)


def test_composed_kernel_is_the_full_convolution_of_the_two(layers):
    K1, K2 = torch.randn(3, 3), torch.randn(3, 3)
    K = layers.compose_kernels(K1[None, None], K2[None, None])[0, 0]
    expected = convolve2d(K1.numpy(), K2.numpy(), mode="full")
    np.testing.assert_allclose(K.numpy(), expected, atol=1e-5)


def test_composed_sobel_kernel_reproduces_the_stack(results):
    """The chapter: 3 × 3 then 3 × 3 is one 5 × 5 kernel, to float rounding."""
    stack = results["layers"]
    assert stack["composed_kernel_size"] == 5
    assert stack["composed_max_difference"] < 1e-5 * stack["composed_output_scale"]
    assert stack["linear_fit_error"] < 1e-5


def test_no_single_kernel_reproduces_a_relu_between(results, claim):
    """The chapter: with a ReLU between, the best single kernel is far off,
    while for the linear stack it is exact. The uncertainty: the fit's error
    on image sets resampled from the fitted ones (bootstrap). "Far": ten
    standard errors, not two."""
    stack = results["layers"]
    claim.exceeds(
        "with a ReLU between, the best single kernel has a large relative error",
        stack["relu_fit_error"] - stack["linear_fit_error"],
        stack["relu_fit_error_se"],
        z=10,
    )
    # The chapter quotes the error (a ratio of lengths) and its square (a
    # ratio of sums of squares).
    assert stack["relu_fit_residual_energy"] == pytest.approx(
        stack["relu_fit_error"] ** 2
    )


def test_best_single_kernel_recovers_a_known_kernel(layers):
    X = torch.rand(4, 1, 12, 12)
    K = torch.randn(1, 1, 5, 5)
    target = F.conv2d(X, K) + 0.5
    found, bias, error = layers.best_single_kernel(X, target)
    torch.testing.assert_close(found, K, atol=1e-4, rtol=1e-4)
    assert bias == pytest.approx(0.5, abs=1e-4)
    assert error < 1e-5


@pytest.mark.parametrize(
    "shapes, message",
    [
        (((1, 1, 3), (1, 1, 3, 3)), r"\(1, 1, 3\)"),
        (((2, 1, 3, 3), (1, 3, 3, 3)), r"\(2, 1, 3, 3\) and \(1, 3, 3, 3\)"),
    ],
)
def test_compose_kernels_rejects_bad_shapes(layers, shapes, message):
    with pytest.raises(ValueError, match=message):
        layers.compose_kernels(torch.zeros(shapes[0]), torch.zeros(shapes[1]))


def test_best_single_kernel_rejects_bad_shapes(layers):
    with pytest.raises(ValueError, match=r"\(1, 2, 8, 8\)"):
        layers.best_single_kernel(torch.zeros(1, 2, 8, 8), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"target of shape \(1, 1, 8, 8\)"):
        layers.best_single_kernel(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


# Receptive field --------------------------------------------------------------


def test_receptive_field_formula_on_known_stacks():
    assert receptive_field(CNN_LAYERS) == [3, 4, 8, 10, 18]
    assert receptive_field([(3, 1)] * 8)[-1] == 17  # grows by 2 per layer
    assert receptive_field([(5, 1)]) == [5]
    assert receptive_field([]) == []


@pytest.mark.parametrize(
    "stack",
    [
        CNN_LAYERS,
        [(3, 1)] * 6,
        [(3, 1), (2, 2)] * 4,
        [(5, 1), (3, 3), (3, 1), (2, 2), (7, 1)],
        [(3, 1), (3, 2), (3, 1), (3, 2), (3, 1)],
    ],
)
def test_formula_agrees_with_the_gradient_measurement(layers, stack):
    sizes = receptive_field(stack)
    for depth, size in enumerate(sizes, start=1):
        probe = layers.probe_stack(stack[:depth])
        gradient = input_gradient(probe, torch.ones(1, 1, 128, 128))[0]
        assert extent(gradient > 0) == (size, size), (stack[:depth], size)


def test_the_chapter_s_measurements_match_its_formula(results):
    stack = results["layers"]
    for depth in range(1, 6):
        assert stack[f"measured_layer_{depth}"] == stack[f"formula_layer_{depth}"]
    assert stack["growth_agrees"] is True
    assert stack["with_pooling_after_8"] > 2 * stack["conv_only_after_8"]


def test_trained_network_reaches_exactly_its_receptive_field(results):
    """Over the test set, the gradient of a centre unit of the last block is
    nonzero in exactly the 18 × 18 box the formula gives."""
    cnn = results["layers_cnn"]
    assert cnn["trained_formula"] == 18
    assert cnn["trained_measured_height"] == cnn["trained_measured_width"] == 18
    assert cnn["reached_pixels"] == 18 * 18
    # The chapter: off-centre, at row and column 5 of 0 to 23.
    assert cnn["field_top"] == cnn["field_left"] == 5


def test_the_centre_of_the_field_counts_most(results, claim):
    """The chapter: the centre square carries a larger share of the mean
    gradient than of the box's area. The uncertainty: that share over test
    sets resampled from ours (bootstrap over test images)."""
    cnn = results["layers_cnn"]
    claim.exceeds(
        "the centre of the field carries more of the gradient than of the area",
        cnn["centre_share"] - cnn["centre_area_share"],
        cnn["centre_share_se"],
    )


def test_the_centre_share_against_path_counting_and_untrained_nets(results, claim):
    """The chapter: the probe's path count puts more of the gradient in the
    centre than the networks do; untrained networks already concentrate it
    (more than the centre's share of the area); trained and untrained shares
    differ by less than their uncertainty. The uncertainty of a mean over
    seeds: the seed spread over the root of the number of seeds, and the
    test set's (the bootstrap standard error of one network's share)."""
    cnn, probe = results["layers_cnn"], results["layers"]["probe_centre_share"]
    seeds = len(cnn["centre_share_seeds"])
    assert seeds == len(cnn["centre_share_untrained"]) == cnn["num_seeds"]
    trained_se = math.hypot(
        cnn["centre_share_seeds_std"] / math.sqrt(seeds), cnn["centre_share_se"]
    )
    untrained_se = math.hypot(
        cnn["centre_share_untrained_std"] / math.sqrt(seeds),
        cnn["centre_share_se"],
    )
    trained, untrained = (
        cnn["centre_share_seeds_mean"],
        cnn["centre_share_untrained_mean"],
    )
    claim.exceeds(
        "path counting puts more of the gradient in the centre than training",
        probe - trained,
        trained_se,
    )
    claim.exceeds(
        "path counting puts more in the centre than untrained networks",
        probe - untrained,
        untrained_se,
    )
    claim.exceeds(
        "untrained networks already concentrate the gradient in the centre",
        untrained - cnn["centre_area_share"],
        untrained_se,
    )
    claim.within(
        "training leaves the centre's share where it was",
        trained - untrained,
        math.hypot(trained_se, untrained_se),
    )
    # The drawn network is one of the three seeds.
    assert cnn["centre_share"] in cnn["centre_share_seeds"]


@pytest.mark.parametrize("layer", [(3,), (0, 1), (3, 0), (3, 1.5), (3, 1, 1)], ids=str)
def test_receptive_field_rejects_malformed_layers(layers, layer):
    with pytest.raises(ValueError, match="kernel_size, stride"):
        receptive_field([(3, 1), layer])
    with pytest.raises(ValueError, match="kernel_size, stride"):
        layers.probe_stack([(3, 1), layer])


def test_input_gradient_and_extent_reject_bad_input():
    with pytest.raises(ValueError, match=r"\(8, 8\)"):
        input_gradient(torch.nn.Identity(), torch.zeros(8, 8))
    with pytest.raises(ValueError, match="empty"):
        extent(torch.zeros(5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(1, 5, 5\)"):
        extent(torch.ones(1, 5, 5, dtype=torch.bool))


# The CNN -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, map_sizes", [(24, (24, 12, 6)), (8, (8, 4, 2)), (28, (28, 14, 7))]
)
def test_cnn_shapes_for_both_input_sizes(size, map_sizes):
    net = SmallCNN(image_size=size).eval()
    X = torch.rand(5, 1, size, size)
    assert net(X).shape == (5, 10)
    maps = net.feature_maps(X)
    assert [tuple(Y.shape) for Y in maps] == [
        (5, channels, side, side)
        for channels, side in zip((16, 32, 64), map_sizes, strict=True)
    ]


def test_cnn_takes_colour_images_and_other_depths():
    net = SmallCNN(image_size=10, in_channels=3, channels=(4, 8)).eval()
    assert net(torch.rand(2, 3, 10, 10)).shape == (2, 10)
    assert net.feature_maps(torch.rand(2, 3, 10, 10))[-1].shape == (2, 8, 5, 5)


def test_cnn_parameters_do_not_depend_on_the_image_size(results):
    # The global max pool leaves one number per channel, whatever the size.
    assert count_parameters(SmallCNN(image_size=8)) == count_parameters(
        SmallCNN(image_size=24)
    )
    row = results["layers_cnn"]["row_cnn_shifted_parameters"]
    assert row == results["layers_cnn_digits"]["row_cnn_digits_parameters"]
    assert row == count_parameters(SmallCNN())


@pytest.mark.parametrize(
    "shape",
    [(5, 1, 8, 8), (5, 24, 24), (5, 3, 24, 24), (1, 1, 24, 24, 1)],
    ids=str,
)
def test_cnn_rejects_wrong_shapes_naming_them(shape):
    with pytest.raises(ValueError, match=r"got \(" + ", ".join(map(str, shape))):
        SmallCNN(image_size=24)(torch.zeros(shape))


def test_cnn_rejects_an_image_too_small_for_its_pools():
    with pytest.raises(ValueError, match="image_size 3 is too small"):
        SmallCNN(image_size=3)


def test_the_digit_drawn_is_one_the_network_gets_right(results):
    """The chapter draws a test digit the network classifies correctly."""
    cnn = results["layers_cnn"]
    assert cnn["predicted"] == cnn["label"]


def test_max_pool_ignores_a_shift_inside_its_window():
    """The chapter: if the strongest response in a window moves by a pixel
    but stays inside the window, the max-pooled value does not change; if it
    crosses into the next window, it does."""
    Y = torch.zeros(1, 1, 4, 4)
    Y[0, 0, 0, 0] = 1.0
    inside = Y.roll(1, dims=3)  # to column 1: the same 2 × 2 window
    across = Y.roll(2, dims=3)  # to column 2: the next window
    assert torch.equal(F.max_pool2d(inside, 2), F.max_pool2d(Y, 2))
    assert not torch.equal(F.max_pool2d(across, 2), F.max_pool2d(Y, 2))


def test_the_multiply_adds_the_chapter_quotes(results):
    """Exact counts: a convolution's output number costs one kernel's weights,
    a linear layer's one row of weights."""
    cnn = results["layers_cnn"]
    conv = 16 * 9 * 24**2 + 32 * 16 * 9 * 12**2 + 64 * 32 * 9 * 6**2
    assert cnn["cnn_multiply_adds"] == conv + 64 * 10
    assert cnn["bank_multiply_adds"] == 16 * 9 * 24**2 + 16 * 24**2 * 10
    assert round(cnn["cnn_multiply_adds"] / cnn["bank_multiply_adds"]) == 8


# Chapter 4's runs, handed to the live page's notebook --------------------------


def test_saved_runs_come_back_only_if_they_are_what_training_would_give(tmp_path):
    data = load_dataset("digits")
    data.X_train, data.y_train = data.X_train[:200], data.y_train[:200]
    protocol = {**PROTOCOL, "num_epochs": 1, "seeds": (0, 1)}
    trained = []

    def make_net():
        trained.append(SmallCNN(image_size=8))
        return trained[-1]

    trials = run_trials(make_net, data, protocol)
    runs = {}
    for seed, net in zip(protocol["seeds"], trained):
        torch.manual_seed(seed)
        runs[seed] = (SmallCNN(image_size=8), net)
    path = tmp_path / "runs.pt"
    save_runs(path, data, protocol, runs)

    loaded = load_runs(path, lambda: SmallCNN(image_size=8), data, protocol)
    for net, again in zip(trained, loaded):
        for name, value in net.state_dict().items():
            assert torch.equal(value, again.state_dict()[name]), name
    scores = [accuracy(net, data.X_test, data.y_test) for net in loaded]
    assert scores == trials["accuracies"]
    # other settings, another network, or no file: train instead
    other = {**protocol, "lr": 0.01}
    assert load_runs(path, lambda: SmallCNN(image_size=8), data, other) is None
    narrow = lambda: SmallCNN(image_size=8, channels=(8, 16, 32))  # noqa: E731
    assert load_runs(path, narrow, data, protocol) is None
    missing = tmp_path / "none.pt"
    assert load_runs(missing, lambda: SmallCNN(image_size=8), data, protocol) is None
