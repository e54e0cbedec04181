"""Chapter 10: the costs of efficient convolutions, by formula, against the
layers and a counted forward pass; the separable layer and CNN; the claims of
the chapter's first part."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conv_scratch_ops import conv2d, race
from efficiency_ops import (
    Cost,
    SeparableCNN,
    SeparableConv2d,
    cnn_cost,
    conv_cost,
    count_mult_adds,
    dense_weight,
    separable_cost,
)
from torch import nn

from book import SmallCNN, count_parameters

LAYERS = [  # C_in, C_out, k, groups, padding, bias
    (1, 1, 1, 1, 0, True),
    (3, 16, 3, 1, 1, True),
    (8, 12, 3, 4, 0, False),
    (6, 6, 5, 6, 2, True),  # depthwise
    (16, 32, 1, 2, 0, True),
    (4, 8, 2, 2, 1, True),  # an even kernel: the output grows by one
]


@pytest.mark.parametrize(("C_in", "C_out", "k", "groups", "padding", "bias"), LAYERS)
def test_conv_cost_matches_the_layer_and_a_counted_pass(
    C_in, C_out, k, groups, padding, bias
):
    layer = nn.Conv2d(C_in, C_out, k, padding=padding, groups=groups, bias=bias)
    X = torch.randn(3, C_in, 9, 7)
    H_out, W_out = layer(X).shape[2:]
    cost = conv_cost(C_in, C_out, k, H_out, W_out, groups=groups, bias=bias)
    assert cost.parameters == count_parameters(layer)
    assert cost.mult_adds == count_mult_adds(layer, X)


@pytest.mark.parametrize(("C_in", "C_out", "k"), [(1, 1, 1), (4, 8, 3), (16, 8, 5)])
def test_separable_cost_matches_the_layer_and_a_counted_pass(C_in, C_out, k):
    layer = SeparableConv2d(C_in, C_out, k, padding=k // 2)
    X = torch.randn(2, C_in, 10, 10)
    cost = separable_cost(C_in, C_out, k, 10, 10)
    assert cost.parameters == count_parameters(layer)
    assert cost.mult_adds == count_mult_adds(layer, X)


def test_the_separable_saving_is_the_formula():
    for C in (4, 32, 256):
        standard = conv_cost(C, C, 3, 8, 8, bias=False).mult_adds
        separable = separable_cost(C, C, 3, 8, 8, bias=False).mult_adds
        assert standard / separable == pytest.approx(1 / (1 / C + 1 / 9))


def test_costs_add_up():
    assert Cost(1, 2) + Cost(3, 4) == Cost(4, 6)


def test_the_separable_layer_is_chapter_5s_grouped_conv_then_a_1x1():
    torch.manual_seed(0)
    layer = SeparableConv2d(6, 4, 3, padding=1).double()
    X = torch.randn(2, 6, 7, 5, dtype=torch.float64)
    K_d = layer.depthwise.weight.detach().numpy()
    K_p = layer.pointwise.weight.detach().numpy()
    b_p = layer.pointwise.bias.detach().numpy()
    filtered = conv2d(X.numpy(), K_d, padding=1, groups=6)
    expected = conv2d(filtered, K_p, b_p)
    with torch.no_grad():
        np.testing.assert_allclose(layer(X).numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize(("C_in", "C_out", "groups"), [(8, 8, 4), (6, 9, 3), (5, 5, 5)])
def test_dense_weight_computes_what_the_grouped_layer_computes(C_in, C_out, groups):
    torch.manual_seed(1)
    layer = nn.Conv2d(C_in, C_out, 3, padding=1, groups=groups).double()
    X = torch.randn(2, C_in, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        K = dense_weight(layer)
        assert K.shape == (C_out, C_in, 3, 3)
        torch.testing.assert_close(
            F.conv2d(X, K, layer.bias, padding=1), layer(X), rtol=1e-12, atol=1e-12
        )
    # Exactly the blocks outside the groups are zero: here every weight is not.
    per_in, per_out = C_in // groups, C_out // groups
    connected = K.abs().sum(dim=(2, 3)) > 0
    expected = torch.zeros(C_out, C_in, dtype=torch.bool)
    for g in range(groups):
        expected[g * per_out : (g + 1) * per_out, g * per_in : (g + 1) * per_in] = True
    assert torch.equal(connected, expected)


@pytest.mark.parametrize(
    ("image_size", "channels"),
    [(24, (16, 32, 64)), (8, (16, 32, 64)), (20, (8, 12, 16, 24)), (5, (4,))],
)
@pytest.mark.parametrize("separable", [False, True])
def test_cnn_cost_matches_the_networks(image_size, channels, separable):
    make = SeparableCNN if separable else SmallCNN
    net = make(image_size=image_size, channels=channels).eval()
    X = torch.randn(2, 1, image_size, image_size)
    cost = cnn_cost(image_size, channels, separable=separable)
    assert cost.parameters == count_parameters(net)
    assert cost.mult_adds == count_mult_adds(net, X)


def test_the_separable_cnn_keeps_its_first_convolution_standard():
    net = SeparableCNN(24)
    assert type(net.blocks[0][0]) is nn.Conv2d
    assert all(isinstance(block[-3], SeparableConv2d) for block in net.blocks[1:])
    assert net(torch.randn(3, 1, 24, 24)).shape == (3, 10)


def test_mult_adds_are_counted_per_image():
    layer = nn.Conv2d(2, 3, 3)
    one = count_mult_adds(layer, torch.randn(1, 2, 8, 8))
    assert one == count_mult_adds(layer, torch.randn(5, 2, 8, 8)) == 3 * 2 * 9 * 36


def test_race_returns_the_fastest_call_of_each():
    calls = []
    times = race({"a": lambda: calls.append("a"), "b": lambda: None}, repeat=3)
    assert set(times) == {"a", "b"} and all(s >= 0 for s in times.values())
    assert len(calls) == 4  # a warm-up call, then three timed ones


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: conv_cost(0, 4, 3, 8, 8), "C_in must be a positive int, got 0"),
        (lambda: conv_cost(4, 4, 3.0, 8, 8), "k must be a positive int, got 3.0"),
        (lambda: conv_cost(4, 4, 3, 8, 8, groups=0), "groups must be a positive"),
        (lambda: conv_cost(6, 4, 3, 8, 8, groups=4), "groups=4 must divide both"),
        (lambda: separable_cost(4, -1, 3, 8, 8), "C_out must be a positive int"),
        (lambda: SeparableConv2d(0, 4, 3), "C_in must be a positive int"),
        (lambda: cnn_cost(24, ()), "channels must list at least one"),
        (lambda: cnn_cost(24, (16, 0)), r"channels\[1\] must be a positive int"),
        (lambda: SeparableCNN(image_size=2), "image_size 2 is too small"),
        (
            lambda: count_mult_adds(nn.Conv2d(1, 1, 1), torch.randn(1, 5, 5)),
            r"expected \(N, C, H, W\) images, got \(1, 5, 5\)",
        ),
        (lambda: dense_weight(nn.Linear(2, 2)), "expected an nn.Conv2d layer, got"),
        (lambda: race({"a": lambda: None}, repeat=0), "repeat must be a positive"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# The claims of the chapter's first part, on what the snippet recorded.


@pytest.fixture(scope="module")
def part1(results):
    return results["efficiency"]


def test_rgb2gray_is_a_1x1_convolution(part1):
    assert part1["grey_error"] < 1e-6  # float32 against float64
    weights = [part1[f"grey_weight_{c}"] for c in ("red", "green", "blue")]
    assert sum(weights) == pytest.approx(1)  # white stays white
    assert weights[1] > weights[0] > weights[2]  # "green most, blue least"


def agreement(error):
    return "are identical" if error == 0 else f"differ by at most {error:.0e}"


def test_a_1x1_convolution_is_a_linear_layer_on_every_pixel(part1):
    assert part1["linear_relative_error"] < 1e-6
    assert part1["linear_agreement"] == agreement(part1["linear_error"])
    assert part1["separable_agreement"] == agreement(part1["separable_error"])
    assert part1["one_by_one_parameters"] == part1["linear_parameters"] == 16 * 65
    assert part1["three_by_three_parameters"] == 16 * (64 * 9 + 1)


def test_a_grouped_convolution_is_separate_convolutions_side_by_side(part1):
    assert part1["grouped_weight_shape"] == "(8, 2, 3, 3)"
    for key in ("grouped_parts_error", "grouped_dense_error", "grouped_numpy_error"):
        assert part1[key] < 1e-5
    assert part1["separable_error"] < 1e-5
    assert part1["factored_error"] < 1e-5  # one conv with kernels P[o, c] D[c]


def test_the_connection_figure_counts(part1):
    assert part1["standard_8_weights"] == 8 * 8 * 9
    assert part1["grouped_8_weights"] == 8 * 8 * 9 // 4
    assert part1["depthwise_8_weights"] == 8 * 9
    assert part1["pointwise_8_weights"] == 8 * 8


def test_formulas_agree_with_the_layers_and_the_counted_pass(part1):
    for name in ("standard", "grouped", "separable"):
        assert part1[f"{name}_parameters"] == part1[f"{name}_layer_parameters"]
        assert part1[f"{name}_mult_adds"] == part1[f"{name}_counted_mult_adds"]


def test_eight_groups_cost_about_as_little_as_separable_at_64_channels(part1):
    """The prose: both about an eighth of the standard layer."""
    for key in ("parameters", "mult_adds"):
        grouped, separable = part1[f"grouped_{key}"], part1[f"separable_{key}"]
        assert abs(grouped - separable) / separable < 0.05
        assert 7 < part1[f"standard_{key}"] / separable < 8.5


def test_the_separable_saving_approaches_k_squared(part1):
    np.testing.assert_allclose(
        part1["saving_separable"], part1["saving_formula"], rtol=1e-12
    )
    savings = part1["saving_separable"]
    assert savings == sorted(savings) and 8.5 < savings[-1] < 9
    assert savings[0] < 3  # few channels: the depthwise part is a large share
    assert all(s == part1["saving_groups"] for s in part1["saving_grouped"])
    # The caption: the figure's layers could not all take the table's groups.
    assert part1["saving_narrowest"] % part1["cost_groups"] != 0
