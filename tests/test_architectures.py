"""Chapter 9: LeNet-5, AlexNet, VGG and ResNet from their layer lists; their
costs counted and checked against the papers; scaled-down versions trained
on the shifted digits; and what shortcuts change in one small deep stack.

Published figures are typed here, each with its source, never computed.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from architectures_ops import (
    C3_TABLE,
    VGG,
    VGG_CONFIGS,
    AlexNet,
    BasicBlock,
    Bottleneck,
    LeNet5,
    ResNet,
    ResponseNorm,
    SparseConv,
    Subsample,
    ZeroPadShortcut,
    alexnet_mini,
    by_block,
    deep_stack,
    fan_in,
    first_layer_gradient,
    layer_costs,
    lenet_mini,
    receptive_path,
    resnet_mini,
    standardise,
    vgg_mini,
)
from claims import binomial_se, difference_se, mean_se, sample_sd
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from book import PROTOCOL, Split, count_parameters, receptive_field

MILLION, BILLION = 1e6, 1e9


def total_multiply_adds(net, shape):
    return sum(row.multiply_adds for row in layer_costs(net, shape))


def flop_counter_multiply_adds(net, shape):
    """PyTorch's own count, as a reference: it counts a multiply-add as two
    floating-point operations."""
    device = next(net.parameters()).device
    net.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, *shape, device=device))
    return counter.get_total_flops() // 2


# Counting ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_conv_multiply_adds_follow_the_formula(seed):
    generator = torch.Generator().manual_seed(seed)

    def pick(low, high):
        return int(torch.randint(low, high + 1, (1,), generator=generator))

    groups = pick(1, 3)
    C_in, C_out = groups * pick(1, 4), groups * pick(1, 4)
    k, stride, padding = pick(1, 5), pick(1, 3), pick(0, 2)
    H, W = pick(k, 20), pick(k, 20)
    conv = nn.Conv2d(C_in, C_out, k, stride, padding, groups=groups)
    (row,) = layer_costs(conv, (C_in, H, W))
    H_out = (H + 2 * padding - k) // stride + 1
    W_out = (W + 2 * padding - k) // stride + 1
    expected = C_out * H_out * W_out * (C_in // groups) * k * k
    assert row.multiply_adds == expected
    assert row.output_shape == (C_out, H_out, W_out)
    assert row.parameters == C_out * (C_in // groups) * k * k + C_out
    assert row.multiply_adds == flop_counter_multiply_adds(conv, (C_in, H, W))


def test_linear_multiply_adds_are_inputs_times_outputs():
    linear = nn.Linear(120, 84)
    (row,) = layer_costs(nn.Sequential(nn.Flatten(), linear), (120, 1, 1))
    assert row.multiply_adds == 120 * 84
    assert row.units == 84
    assert row.name == "1"


def test_layers_that_multiply_nothing_are_not_counted():
    assert fan_in(nn.ReLU()) is None
    assert fan_in(nn.MaxPool2d(2)) is None
    assert fan_in(nn.BatchNorm2d(3)) is None
    assert fan_in(Subsample(6)) == 4


@pytest.mark.parametrize(
    "make_net, shape",
    [
        (lambda: AlexNet(), (3, 227, 227)),
        (lambda: VGG("A"), (3, 224, 224)),
        (lambda: ResNet(Bottleneck, (3, 4, 6, 3)), (3, 224, 224)),
        (lambda: ResNet(BasicBlock, (2, 2, 2, 2), shortcut="zero-padding"),
         (3, 224, 224)),
    ],
    ids=["alexnet", "vgg-a", "resnet-50", "resnet-18-a"],
)  # fmt: skip
def test_whole_networks_agree_with_pytorch_s_flop_counter(make_net, shape):
    with torch.device("meta"):
        net = make_net()
        assert total_multiply_adds(net, shape) == flop_counter_multiply_adds(net, shape)


def test_counting_leaves_the_network_as_it_was():
    net = alexnet_mini()
    net.train()
    layer_costs(net, (1, 24, 24))
    receptive_path(net, (1, 24, 24))
    assert net.training
    assert all(not module._forward_hooks for module in net.modules())


@pytest.mark.parametrize(
    "shape", [(24, 24), (1, 24, 0), (1, 24.0, 24), (1, 1, 24, 24)], ids=str
)
def test_counting_rejects_a_shape_that_is_not_c_h_w(shape):
    with pytest.raises(ValueError, match=r"\(C, H, W\).*got"):
        layer_costs(lenet_mini(), shape)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        receptive_path(lenet_mini(), shape)


# LeNet-5 -------------------------------------------------------------------------

# LeCun et al. (1998), section II.B: trainable parameters and connections of
# each layer of LeNet-5 (C5 and F6 are fully connected: each weight is one
# connection). The output layer's RBF codes are fixed, not trained.
LENET_PUBLISHED = {
    "c1": (156, 122_304),
    "s2": (12, 5_880),
    "c3": (1_516, 151_600),
    "s4": (32, 2_000),
    "c5": (48_120, 48_120),
    "f6": (10_164, 10_164),
}


def test_lenet_counts_equal_the_paper_layer_by_layer():
    blocks = by_block(layer_costs(LeNet5(), (1, 32, 32)))
    for name, (parameters, links) in LENET_PUBLISHED.items():
        assert blocks[name]["parameters"] == parameters, name
        assert blocks[name]["connections"] == links, name
    # The same paper: 340,908 connections, 60,000 trainable parameters.
    assert sum(block["connections"] for block in blocks.values()) == 340_908
    assert count_parameters(LeNet5()) == 60_000


def test_lenet_figures_the_chapter_quotes(results):
    counted = results["architectures"]
    for name, (parameters, links) in LENET_PUBLISHED.items():
        assert counted[f"lenet_{name}_parameters"] == parameters
        assert counted[f"lenet_{name}_connections"] == links
    assert counted["lenet_parameters"] == 60_000
    assert counted["lenet_connections"] == 340_908
    assert counted["lenet_receptive_field"] == 32  # C5 sees the whole input


def test_c3_is_a_convolution_with_the_paper_s_connection_table():
    generator = torch.Generator().manual_seed(0)
    c3 = SparseConv(C3_TABLE, 6, 5)
    nn.init.normal_(c3.weight, generator=generator)
    nn.init.normal_(c3.bias, generator=generator)
    X = torch.randn(2, 6, 14, 14, generator=generator)
    K = torch.zeros(16, 6, 5, 5)
    index = 0
    for j, inputs in enumerate(C3_TABLE):
        for i in inputs:
            K[j, i] = c3.weight[index]
            index += 1
    torch.testing.assert_close(c3(X), F.conv2d(X, K, c3.bias))
    # Each map reads 3, 4 or all 6 of S2's maps (Table I).
    assert sorted({len(inputs) for inputs in C3_TABLE}) == [3, 4, 6]
    assert len(set(C3_TABLE)) == 16


def test_subsample_is_a_scaled_sum_of_2x2_windows():
    s2 = Subsample(2)
    with torch.no_grad():
        s2.weight.copy_(torch.tensor([2.0, -1.0]).view(2, 1, 1))
        s2.bias.copy_(torch.tensor([0.5, 0.0]).view(2, 1, 1))
    X = torch.arange(32.0).view(1, 2, 4, 4)
    sums = X.view(1, 2, 2, 2, 2, 2).sum(dim=(3, 5))
    expected = sums * torch.tensor([2.0, -1.0]).view(1, 2, 1, 1)
    expected += torch.tensor([0.5, 0.0]).view(1, 2, 1, 1)
    torch.testing.assert_close(s2(X), expected)


def test_lenet_shapes_and_outputs():
    assert LeNet5()(torch.rand(3, 1, 32, 32)).shape == (3, 10)
    net = lenet_mini()
    assert net(torch.rand(3, 1, 24, 24)).shape == (3, 10)
    assert net.c5.kernel_size == (3, 3)  # S4's maps are 3 × 3 on 24 pixels
    # The paper: C5's kernels are 5 × 5; on a larger image its maps grow.
    assert LeNet5().c5.kernel_size == (5, 5)
    large = LeNet5(image_size=40)
    assert large.c5.kernel_size == (5, 5)
    assert large.c5(torch.zeros(1, 16, 7, 7)).shape == (1, 120, 3, 3)
    assert large(torch.rand(2, 1, 40, 40)).shape == (2, 10)
    # The RBF output is minus a squared distance: never positive.
    assert (LeNet5()(torch.rand(3, 1, 32, 32)) <= 0).all()


def test_lenet_rejects_bad_arguments():
    with pytest.raises(ValueError, match="'rbf' or 'linear', got 'softmax'"):
        LeNet5(output="softmax")
    with pytest.raises(ValueError, match="image_size 12 is too small"):
        LeNet5(image_size=12)


# AlexNet -------------------------------------------------------------------------

# Krizhevsky et al. (2012), section 3.5: "the number of neurons in the
# network's remaining layers is given by 253,440–186,624–64,896–64,896–
# 43,264–4096–4096–1000"; and, in the abstract, "60 million parameters".
ALEXNET_NEURONS = [253_440, 186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000]


def test_alexnet_on_227_pixels_has_the_paper_s_neurons_after_layer_1(results):
    counted = results["architectures"]
    neurons = [counted[f"alexnet_neurons_{i}"] for i in range(1, 9)]
    assert neurons[1:] == ALEXNET_NEURONS[1:]
    # Layer 1: 55 × 55 × 96, which is not the paper's figure; nor is that
    # figure 96 maps of any square size.
    assert neurons[0] == 55 * 55 * 96 != ALEXNET_NEURONS[0]
    per_map = ALEXNET_NEURONS[0] / 96
    assert per_map != round(math.sqrt(per_map)) ** 2
    assert counted["alexnet_conv1_side"] == 55


def test_alexnet_on_224_pixels_does_not_fit_the_paper(results):
    counted = results["architectures"]
    assert counted["alexnet_224_conv1_side"] == 54
    assert counted["alexnet_224_neurons_2"] != ALEXNET_NEURONS[1]
    assert counted["alexnet_224_conv5_side"] < counted["alexnet_conv5_side"]
    assert counted["alexnet_224_parameters"] < 0.85 * 60 * MILLION


def test_alexnet_parameters_match_the_paper_s_round_figure(results):
    """The paper gives "60 million"; the layer list gives 61.0 million. A
    round figure in an abstract: 2 % covers it, and the count is above it."""
    parameters = results["architectures"]["alexnet_parameters"]
    assert parameters == count_parameters(AlexNet())
    assert 60 * MILLION < parameters < 1.02 * 60 * MILLION
    assert results["architectures"]["alexnet_fc_parameter_share"] > 0.9
    # Exercise 3's solution: the convolutions do most of the arithmetic.
    assert results["architectures"]["alexnet_conv_multiply_add_share"] > 0.5


@pytest.mark.parametrize("channels", [1, 3, 8])
def test_response_norm_is_torch_s_with_alpha_scaled(channels):
    """The paper's alpha multiplies the sum of squares; torch's
    LocalResponseNorm divides its alpha by n first."""
    X = 3 * torch.randn(2, channels, 5, 5, generator=torch.Generator().manual_seed(0))
    reference = nn.LocalResponseNorm(5, alpha=5 * 1e-4, beta=0.75, k=2.0)
    torch.testing.assert_close(ResponseNorm()(X), reference(X))


def test_alexnet_splits_three_layers_in_two_groups():
    net = AlexNet()
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    assert [conv.groups for conv in convs] == [1, 2, 1, 2, 2]
    assert convs[0].kernel_size == (11, 11) and convs[0].stride == (4, 4)


def test_alexnet_receptive_path_is_its_layer_list():
    with torch.device("meta"):
        path = receptive_path(AlexNet(), (3, 227, 227))
    assert path == [
        (11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1), (3, 1), (3, 2)
    ]  # fmt: skip


# VGG ----------------------------------------------------------------------------

# Simonyan and Zisserman (2015), Table 2: parameters in millions.
VGG_PUBLISHED_MILLIONS = {
    "A": 133,
    "A-LRN": 133,
    "B": 133,
    "C": 134,
    "D": 138,
    "E": 144,
}


def test_every_vgg_configuration_matches_table_2(results):
    """The table rounds to the million: the count must round to it."""
    for name, millions in VGG_PUBLISHED_MILLIONS.items():
        key = f"vgg_{name.replace('-', '_')}_parameters"
        parameters = results["architectures"][key]
        assert abs(parameters - millions * MILLION) <= 0.5 * MILLION, name
    with torch.device("meta"):
        assert (
            count_parameters(VGG("D")) == results["architectures"]["vgg16_parameters"]
        )


def test_vgg_configurations_have_their_depths():
    """VGG-11 to VGG-19: weight layers are convolutions plus three linear."""
    depths = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}
    for name, depth in depths.items():
        convs = sum(1 for entry in VGG_CONFIGS[name] if entry not in ("M", "LRN"))
        assert convs + 3 == depth, name


def test_vgg16_parameters_in_fc_layers_multiply_adds_in_convolutions(results):
    counted = results["architectures"]
    assert counted["vgg16_fc_parameter_share"] > 0.85
    assert counted["vgg16_conv_multiply_add_share"] > 0.99
    assert counted["vgg16_first_fc_parameters"] == 7 * 7 * 512 * 4096 + 4096


def test_three_3x3_layers_see_7x7_with_fewer_weights(results):
    """Simonyan and Zisserman (2015), section 2.3: three stacked 3 × 3 layers
    have a 7 × 7 receptive field and 27 C² weights against 49 C², "81% more"
    for one 7 × 7 layer."""
    counted = results["architectures"]
    assert counted["three_small_field"] == 7
    assert counted["three_small_weights_per_channel_pair"] == 27
    assert round(100 * counted["large_kernel_extra_share"]) == 81


def test_vgg_rejects_an_unknown_configuration():
    with pytest.raises(ValueError, match="unknown VGG configuration 'F'"):
        VGG("F")


# ResNet -------------------------------------------------------------------------

# He et al. (2016), Table 1: "FLOPs" (multiply-adds) for a 224 × 224 image,
# in billions, to one decimal; section 4.1: the 34-layer plain net has 3.6
# billion, VGG-19 19.6 billion.
PUBLISHED_BILLIONS = {
    "resnet18": 1.8,
    "resnet34": 3.6,
    "resnet34_option_a": 3.6,
    "plain34": 3.6,
    "resnet50": 3.8,
    "resnet101": 7.6,
    "resnet152": 11.3,
    "vgg19": 19.6,
}


def test_multiply_adds_match_the_published_figures(results):
    """The paper does not say how it rounded. Every count is within 2 % of
    its figure; all but two round to it (within half of the last digit).
    ResNet-34 with projections and ResNet-50 count 1.5 to 2 % more than the
    table: they would be its figure truncated, not rounded (the chapter)."""
    counted = results["architectures"]
    above = []
    for name, billions in PUBLISHED_BILLIONS.items():
        multiply_adds = counted[f"{name}_multiply_adds"]
        assert abs(multiply_adds / (billions * BILLION) - 1) < 0.02, name
        if abs(multiply_adds - billions * BILLION) > 0.05 * BILLION:
            above.append(name)
            assert math.floor(multiply_adds / BILLION * 10) / 10 == billions
    assert above == ["resnet34", "resnet50"]


def test_projection_shortcuts_tip_resnet34_over_the_rounding(results):
    """The chapter: with option B's 1 × 1 projections ResNet-34 counts 3.66
    billion, which rounds to 3.7, not the table's 3.6; option A's parameter-
    free shortcuts give exactly the plain network's count."""
    counted = results["architectures"]
    assert round(counted["resnet34_multiply_adds"] / BILLION, 1) == 3.7
    assert (
        counted["resnet34_option_a_multiply_adds"] == counted["plain34_multiply_adds"]
    )
    assert counted["resnet34_option_a_parameters"] == counted["plain34_parameters"]


def test_cifar_resnets_match_table_6(results):
    """He et al. (2016), Table 6: 0.27, 0.85 and 1.7 million parameters,
    rounded to the digits shown."""
    counted = results["architectures"]
    assert abs(counted["cifar_resnet20_parameters"] - 0.27 * MILLION) <= 5e3
    assert abs(counted["cifar_resnet56_parameters"] - 0.85 * MILLION) <= 5e3
    assert abs(counted["cifar_resnet110_parameters"] - 1.7 * MILLION) <= 5e4


def test_receptive_fields_match_the_published_ones(results):
    """Araujo et al. (2019): AlexNet 195 and VGG-16 212 pixels."""
    counted = results["architectures"]
    assert counted["alexnet_receptive_field"] == 195
    assert counted["vgg16_receptive_field"] == 212
    # Deeper than the image is wide: ResNet units see past the borders.
    assert counted["resnet18_receptive_field"] > 224


def test_resnet_keeps_nearly_all_parameters_in_convolutions(results):
    assert results["architectures"]["resnet18_conv_parameter_share"] > 0.9


def test_receptive_path_skips_the_shortcuts():
    with torch.device("meta"):
        path = receptive_path(ResNet(), (3, 224, 224))
    # Stem convolution and pool, then the 16 convolutions of the blocks.
    assert len(path) == 2 + 16
    assert path[:2] == [(7, 2), (3, 2)]
    assert sum(stride == 2 for _, stride in path) == 2 + 3
    assert receptive_field(path)[-1] == 435


@pytest.mark.parametrize("stride, channels", [(1, 8), (2, 8), (2, 16)])
@pytest.mark.parametrize("shortcut", ["projection", "zero-padding", None])
def test_basic_block_shapes(stride, channels, shortcut):
    block = BasicBlock(8, channels, stride, shortcut).eval()
    out = block(torch.rand(2, 8, 12, 12))
    assert out.shape == (2, channels, 12 // stride, 12 // stride)
    assert (out >= 0).all()  # a ReLU after the addition


def test_bottleneck_expands_four_times():
    block = Bottleneck(64, 16, stride=2).eval()
    assert block(torch.rand(1, 64, 8, 8)).shape == (1, 64, 4, 4)
    assert isinstance(block.shortcut, nn.Sequential)  # a projection
    assert isinstance(Bottleneck(64, 16).shortcut, nn.Identity)


def test_a_block_whose_branch_is_zero_passes_its_input_through():
    """y = relu(F(x) + x): with the last batch normalisation's scale at zero
    the branch adds nothing, and the block is the identity on x >= 0."""
    block = BasicBlock(8, 8).eval()
    nn.init.zeros_(block.residual[-1][1].weight)
    X = torch.rand(2, 8, 6, 6)
    torch.testing.assert_close(block(X), X)


def test_zero_padding_shortcut_subsamples_and_pads():
    X = torch.arange(2 * 4 * 4.0).view(1, 2, 4, 4)
    out = ZeroPadShortcut(5, 2)(X)
    assert out.shape == (1, 5, 2, 2)
    torch.testing.assert_close(out[:, :2], X[:, :, ::2, ::2])
    assert (out[:, 2:] == 0).all()


def test_plain_network_has_the_same_layers_without_additions():
    residual, plain = ResNet(shortcut="zero-padding"), ResNet(shortcut=None)
    assert count_parameters(residual) == count_parameters(plain)
    assert all(block.shortcut is None for block in plain.features[4:])


def test_resnet_rejects_bad_arguments():
    with pytest.raises(ValueError, match="2 stages of blocks and 4 widths"):
        ResNet(blocks=(2, 2))
    with pytest.raises(ValueError, match="unknown shortcut 'identity'"):
        ResNet(shortcut="identity")


@pytest.mark.parametrize(
    "make_net, shape",
    [
        (AlexNet, (3, 227, 227)),
        (lambda: VGG("D"), (3, 224, 224)),
        (ResNet, (3, 224, 224)),
        (lambda: ResNet(Bottleneck, (3, 4, 6, 3)), (3, 224, 224)),
    ],
    ids=["alexnet", "vgg16", "resnet18", "resnet50"],
)
def test_published_networks_give_1000_scores(make_net, shape):
    with torch.device("meta"):
        net = make_net().eval()
        assert net(torch.zeros(2, *shape)).shape == (2, 1000)


# The scaled-down networks ---------------------------------------------------


MINIS = {
    "lenet": lenet_mini,
    "alexnet": alexnet_mini,
    "vgg": vgg_mini,
    "vgg_plain": lambda: vgg_mini(batch_norm=False),
    "resnet": resnet_mini,
}


@pytest.mark.parametrize("name", MINIS)
def test_scaled_down_networks_take_24x24_digits(name):
    net = MINIS[name]().eval()
    assert net(torch.rand(5, 1, 24, 24)).shape == (5, 10)


def test_scaled_down_networks_keep_their_pattern():
    convs = [m for m in alexnet_mini().modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5 and convs[0].stride == (2, 2)

    def response_norms(net):
        return [m for m in net.modules() if isinstance(m, ResponseNorm)]

    assert len(response_norms(AlexNet())) == 2
    assert len(response_norms(alexnet_mini())) == 0  # batch norm instead
    assert len(response_norms(alexnet_mini(batch_norm=False))) == 2
    vgg_convs = [m for m in vgg_mini().modules() if isinstance(m, nn.Conv2d)]
    assert all(conv.kernel_size == (3, 3) for conv in vgg_convs)
    assert len(vgg_convs) == 6  # configuration A has 8; 24 pixels fit 4 stages
    # VGG: four pools leave one position for the classifier.
    assert vgg_mini().features(torch.zeros(1, 1, 24, 24)).shape == (1, 32, 1, 1)
    # ResNet, He et al.'s CIFAR recipe: 3 × 3 stem, no stride, no pool; three
    # stages of one block; the global average pool sees 6 × 6 maps.
    net = resnet_mini().eval()
    assert net.features[0][0].kernel_size == (3, 3)
    assert net.features[0][0].stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    blocks = [m for m in net.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 3
    assert all(isinstance(b.shortcut, (nn.Identity, ZeroPadShortcut)) for b in blocks)
    assert net.features(torch.zeros(1, 1, 24, 24)).shape == (1, 16, 6, 6)


def test_scaled_down_parameters_match_the_table(results):
    rows = {
        "lenet": results["architectures_early"]["row_lenet_parameters"],
        "alexnet": results["architectures_early"]["row_alexnet_parameters"],
        "vgg": results["architectures_vgg"]["row_vgg_parameters"],
        "vgg_plain": results["architectures_vgg"]["row_vgg_plain_parameters"],
        "resnet": results["architectures_resnet"]["row_resnet_parameters"],
    }
    for name, parameters in rows.items():
        assert parameters == count_parameters(MINIS[name]()), name


def test_standardise_gives_the_training_images_mean_0_std_1():
    generator = torch.Generator().manual_seed(0)
    data = Split(
        3 + 2 * torch.rand(50, 1, 4, 4, generator=generator),
        torch.zeros(50),
        torch.rand(10, 1, 4, 4, generator=generator),
        torch.zeros(10),
    )
    out = standardise(data)
    assert out.X_train.mean().item() == pytest.approx(0, abs=1e-5)
    assert out.X_train.std().item() == pytest.approx(1, abs=1e-5)
    # The test images get the training images' shift, not their own.
    mean, std = data.X_train.mean(), data.X_train.std()
    torch.testing.assert_close(out.X_test, (data.X_test - mean) / std)


# Training results --------------------------------------------------------------
# Claim tests: each effect the chapter states, against its standard error (the
# sample std over seeds, and the test set's binomial error for an accuracy).

LEARNING = ["lenet", "alexnet", "vgg", "resnet"]  # normalised where we add it
FLATTENING = ["lenet", "alexnet", "vgg"]  # end in fully connected layers


def rows(results):
    return {
        "lenet": results["architectures_early"],
        "alexnet": results["architectures_early"],
        "vgg": results["architectures_vgg"],
        "vgg_plain": results["architectures_vgg"],
        "resnet": results["architectures_resnet"],
    }


def num_test(results):
    return results["architectures_early"]["num_test"]


def se_of_mean(values):
    return sample_sd(values) / math.sqrt(len(values))


def row_mean(results, name):
    return rows(results)[name][f"row_{name}_mean"]


def row_se(results, name, num_seeds=3):
    """The standard error of a table row's mean accuracy: its seed spread
    (the recorded sample std) and the test set's binomial error."""
    snippet = rows(results)[name]
    return math.hypot(
        snippet[f"row_{name}_std"] / math.sqrt(num_seeds),
        binomial_se(snippet[f"row_{name}_mean"], num_test(results)),
    )


def gap(results, a, b):
    """mean(a) - mean(b) and its standard error."""
    effect = row_mean(results, a) - row_mean(results, b)
    return effect, math.hypot(row_se(results, a), row_se(results, b))


def test_every_normalised_network_learns(results, claim):
    """The summary: with batch normalisation AlexNet and VGG learn, as do
    ResNet (which has it) and LeNet-5 (without it): far above the 10 % of
    guessing."""
    for name in LEARNING:
        claim.exceeds(
            f"{name}, scaled down, learns: above chance",
            effect=row_mean(results, name) - 0.1,
            uncertainty=row_se(results, name),
            z=4,  # "far above"
        )


def test_vgg_stalls_without_normalisation_and_learns_with_it(results, claim):
    """The chapter: without normalisation the VGG runs spend more of their
    first epochs with a training loss at chance than with it, and end less
    accurate. Epochs are whole numbers: their rounding (sd 1/sqrt(12)) is
    added to the seed spread, so that identical counts still have an error."""
    vgg = results["architectures_vgg"]
    plain, normalised = vgg["vgg_plain_epochs_at_chance"], vgg["vgg_epochs_at_chance"]
    rounding = 1 / math.sqrt(12)
    claim.exceeds(
        "VGG without normalisation sits at chance for more epochs",
        effect=np.mean(plain) - np.mean(normalised),
        uncertainty=math.hypot(se_of_mean(plain), se_of_mean(normalised), rounding),
    )
    epochs_se = math.hypot(se_of_mean(plain), se_of_mean(normalised), rounding)
    # the gap in epochs and its standard error, as the chapter prints them
    assert vgg["vgg_chance_epochs_gap"] == pytest.approx(
        np.mean(plain) - np.mean(normalised)
    )
    assert vgg["vgg_chance_epochs_gap_se"] == pytest.approx(epochs_se)
    effect, se = gap(results, "vgg", "vgg_plain")
    claim.exceeds(
        "VGG with normalisation ends more accurate than without",
        effect=effect,
        uncertainty=se,
    )
    assert vgg["vgg_accuracy_gap"] == pytest.approx(effect)
    assert vgg["vgg_accuracy_gap_se"] == pytest.approx(se)
    assert vgg["vgg_plain_fewest_epochs_at_chance"] == min(plain)
    # the summary: "sits at chance for its first epochs on every seed"
    assert min(plain) > max(normalised)
    assert vgg["vgg_most_epochs_at_chance"] == max(normalised)


def test_chapter_4_s_cnn_beats_every_scaled_down_network(results, claim):
    """The chapter: none of the four patterns, shrunk this way, reaches
    chapter 4's three-block CNN on the shifted digits."""
    cnn = results["layers_cnn"]
    cnn_se = math.hypot(
        cnn["row_cnn_shifted_std"] / math.sqrt(cnn["num_seeds"]),
        binomial_se(cnn["row_cnn_shifted_mean"], cnn["num_test"]),
    )
    best = max(LEARNING, key=lambda name: row_mean(results, name))
    claim.exceeds(
        "chapter 4's CNN beats the best scaled-down network",
        effect=cnn["row_cnn_shifted_mean"] - row_mean(results, best),
        uncertainty=math.hypot(cnn_se, row_se(results, best)),
    )


def test_the_three_that_flatten_have_no_clear_winner(results, claim):
    """The chapter: among LeNet-5, AlexNet and VGG (normalised) there is no
    clear winner at this budget: the best mean is within two standard errors
    of the second best. VGG without normalisation is behind every one of them.
    ResNet leads the best of the three (under TRIALS' 10 epochs; under the
    book's 15 its lead was 1.4 standard errors on one set of seeds and 6.2 on
    another)."""
    ranked = sorted(FLATTENING, key=lambda name: row_mean(results, name))
    worst, second, best = ranked
    effect, se = gap(results, best, second)
    claim.within(
        "no clear winner among the three: best against second best",
        effect=effect,
        uncertainty=se,
    )
    effect, se = gap(results, worst, "vgg_plain")
    claim.exceeds(
        "VGG without normalisation is behind the worst of the three",
        effect=effect,
        uncertainty=se,
    )
    effect, se = gap(results, "resnet", best)
    claim.exceeds(
        "ResNet leads the best of the three",
        effect=effect,
        uncertainty=se,
    )
    # "with the fewest parameters and more arithmetic than the other three"
    parameters = {n: rows(results)[n][f"row_{n}_parameters"] for n in LEARNING}
    assert min(parameters, key=parameters.get) == "resnet"
    costs = {n: rows(results)[n][f"row_{n}_multiply_adds"] for n in LEARNING}
    assert max(costs, key=costs.get) == "resnet"


def test_multiply_adds_of_the_scaled_down_networks(results):
    assert results["architectures_early"]["row_lenet_multiply_adds"] == (
        sum(row.multiply_adds for row in layer_costs(lenet_mini(), (1, 24, 24)))
    )
    for snippet, key, make_net in [
        ("architectures_early", "row_alexnet_multiply_adds", alexnet_mini),
        ("architectures_vgg", "row_vgg_multiply_adds", vgg_mini),
        ("architectures_resnet", "row_resnet_multiply_adds", resnet_mini),
    ]:
        assert results[snippet][key] == total_multiply_adds(make_net(), (1, 24, 24))


def test_table_std_is_the_sample_std_of_the_seeds(results):
    for name in ["lenet", "alexnet", "vgg", "vgg_plain"]:
        snippet = rows(results)[name]
        accs = snippet[f"row_{name}_accuracies"]
        assert snippet[f"row_{name}_std"] == pytest.approx(sample_sd(accs))
        assert snippet[f"row_{name}_mean"] == pytest.approx(np.mean(accs))
        # the standard errors the chapter prints are the claim tests' own
        se = mean_se(accs, num_test(results))
        assert snippet[f"row_{name}_se"] == pytest.approx(se)
        assert se == pytest.approx(row_se(results, name))
    vgg = rows(results)["vgg"]
    assert vgg["vgg_accuracy_gap_se"] == pytest.approx(
        difference_se(
            vgg["row_vgg_accuracies"],
            vgg["row_vgg_plain_accuracies"],
            num_test(results),
        )
    )


# What shortcuts change in one small deep stack ---------------------------------


def test_first_layer_gradient_is_the_weight_gradient():
    torch.manual_seed(0)
    net = deep_stack(2)
    X, y = torch.rand(4, 1, 24, 24), torch.tensor([0, 1, 2, 3])
    value = first_layer_gradient(net, X, y)
    net.zero_grad()
    F.cross_entropy(net(X), y).backward()
    first = net.features[0][0]
    assert value == pytest.approx(first.weight.grad.norm().item(), rel=1e-5)


def test_deep_stack_depths():
    for num_blocks in (1, 4):
        for shortcut in (None, "projection"):
            net = deep_stack(num_blocks, shortcut)
            convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
            linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
            assert len(convs) + len(linears) == 2 * num_blocks + 2
            assert net(torch.rand(2, 1, 24, 24)).shape == (2, 10)


def log_gradients(resnet, kind):
    """log10 of the first-layer gradient, (depths, seeds)."""
    return np.log10(np.array(resnet[f"gradient_norms_{kind}"]))


def test_plain_gradients_grow_with_depth_residual_ones_do_not(results, claim):
    """The chapter: from the shallowest to the deepest stack, the plain
    stack's first-layer gradient at initialisation grows, far more than the
    residual stack's; at the deepest, plain is far above residual, at the
    shallowest below it. On log10 of the gradient, with the seed spread of
    each mean."""
    resnet = results["architectures"]
    plain, residual = log_gradients(resnet, "plain"), log_gradients(resnet, "residual")
    plain_growth = plain[-1].mean() - plain[0].mean()
    plain_growth_se = math.hypot(se_of_mean(plain[-1]), se_of_mean(plain[0]))
    claim.exceeds(
        "plain stack: first-layer gradient grows with depth (log10)",
        effect=plain_growth,
        uncertainty=plain_growth_se,
    )
    claim.exceeds(
        "plain stack: it grows more than a thousandfold (log10 growth - 3)",
        effect=plain_growth - 3,
        uncertainty=plain_growth_se,
    )
    residual_growth = residual[-1].mean() - residual[0].mean()
    claim.exceeds(
        "plain stack's gradient grows more than the residual one's (log10)",
        effect=plain_growth - residual_growth,
        uncertainty=math.hypot(
            plain_growth_se, se_of_mean(residual[-1]), se_of_mean(residual[0])
        ),
    )
    claim.exceeds(
        "deepest plain gradient far above deepest residual (log10)",
        effect=plain[-1].mean() - residual[-1].mean(),
        uncertainty=math.hypot(se_of_mean(plain[-1]), se_of_mean(residual[-1])),
        z=3,  # "far"
    )
    claim.exceeds(
        "shallowest residual gradient above shallowest plain (log10)",
        effect=residual[0].mean() - plain[0].mean(),
        uncertainty=math.hypot(se_of_mean(residual[0]), se_of_mean(plain[0])),
    )
    assert resnet["plain_gradient_growth"] == pytest.approx(
        np.mean(10 ** plain[-1]) / np.mean(10 ** plain[0])
    )


def test_the_residual_stack_trains_the_plain_one_stays_at_chance(results, claim):
    """The chapter: at the end of the short run the plain stack's training
    loss is at the loss of guessing (no clear difference), the residual
    stack's below it, and below the plain stack's."""
    resnet = results["architectures"]
    plain, residual = resnet["plain_final_losses"], resnet["residual_final_losses"]
    chance = math.log(10)
    claim.within(
        "plain stack's final training loss is at chance",
        effect=np.mean(plain) - chance,
        uncertainty=se_of_mean(plain),
    )
    claim.exceeds(
        "residual stack's final training loss is below chance",
        effect=chance - np.mean(residual),
        uncertainty=se_of_mean(residual),
    )
    # the standard errors the chapter prints beside these two comparisons
    assert resnet["plain_final_loss_se"] == pytest.approx(se_of_mean(plain))
    assert resnet["residual_final_loss_se"] == pytest.approx(se_of_mean(residual))
    claim.exceeds(
        "residual stack's final loss is below the plain stack's",
        effect=np.mean(plain) - np.mean(residual),
        uncertainty=math.hypot(se_of_mean(plain), se_of_mean(residual)),
    )


def test_in_training_the_plain_gradient_falls_to_the_residual_one(results, claim):
    """The chapter: at the first mini-batch the plain stack's first-layer
    gradient is larger than the residual stack's; by the last mini-batches
    the ratio has fallen (to about one or below: the mean of the seeds
    crosses below the residual stack's at the recorded mini-batch). log10 of
    plain over residual, per seed."""
    resnet = results["architectures"]
    first = resnet["first_step_gradient_log_ratios"]
    late = resnet["late_gradient_log_ratios"]
    claim.exceeds(
        "first mini-batch: plain gradient above residual (log10 ratio)",
        effect=np.mean(first),
        uncertainty=se_of_mean(first),
    )
    claim.exceeds(
        "the plain/residual gradient ratio falls from the first to the last "
        "mini-batches (log10)",
        effect=np.mean(first) - np.mean(late),
        uncertainty=math.hypot(se_of_mean(first), se_of_mean(late)),
    )
    # The mean of the seeds does cross below: the crossing is a real one.
    assert 1 < resnet["gradient_crossing_step"] < resnet["stack_steps"]
    # "after about N mini-batches": N is the crossing to the nearest ten
    about = resnet["gradient_crossing_about"]
    assert about % 10 == 0
    assert abs(resnet["gradient_crossing_step"] - about) <= 5
    assert resnet["gradient_below_share_after"] > 0.5
    assert resnet["late_gradient_ratio"] < 1


def test_adam_keeps_the_large_gradient_from_moving_the_weights_far(results, claim):
    """The chapter: over the first mini-batches the plain stack's first-layer
    gradient is several times the residual stack's, but its weights move
    far less than that many times as far (Adam divides each step by the
    gradient's running size). log10 of the gradient ratio minus log10 of
    the distance ratio, per seed."""
    resnet = results["architectures"]
    gap = np.subtract(
        resnet["early_gradient_log_ratios"], resnet["early_moved_log_ratios"]
    )
    claim.exceeds(
        "plain gradient's excess over residual outgrows its weights' move",
        effect=gap.mean(),
        uncertainty=se_of_mean(gap),
    )


# The chapter's comparisons ---------------------------------------------------------


def test_depth_grew_parameters_and_arithmetic_did_not_follow(results):
    """The chapter: convolutions and fully connected layers, 5 (LeNet-5: C1,
    C3, C5, F6 and the output; LeCun et al. 1998 count 7 with S2 and S4),
    8 (AlexNet), 16 (VGG-16) and 50 (ResNet-50); VGG-16 has over twice
    AlexNet's parameters and ResNet-50 under a quarter of VGG-16's; VGG-16
    needs over ten times AlexNet's multiply-adds, ResNet-50 under a third
    of VGG-16's."""
    counted = results["architectures"]
    assert counted["lenet_weight_layers"] == 5
    assert counted["alexnet_weight_layers"] == 8
    assert counted["vgg16_weight_layers"] == 16
    assert counted["resnet18_weight_layers"] == 18
    assert counted["resnet50_weight_layers"] == 50
    assert counted["vgg16_over_alexnet_parameters"] > 2
    assert counted["resnet50_over_vgg16_parameters"] < 0.25
    assert counted["vgg16_over_alexnet_multiply_adds"] > 10
    assert counted["resnet50_over_vgg16_multiply_adds"] < 1 / 3
    assert 0 < counted["resnet50_extra_over_resnet34"] < 0.1


def test_vgg16_published_multiply_adds_and_activations(results):
    """He et al. (2016), section 4.1: VGG-16 15.3 and VGG-19 19.6 billion.
    The chapter: VGG-19's count rounds to its figure, VGG-16's does not, and
    leaving out the fully connected layers matches VGG-16 but not VGG-19."""
    counted = results["architectures"]
    assert round(counted["vgg19_multiply_adds"] / BILLION, 1) == 19.6
    assert round(counted["vgg16_multiply_adds"] / BILLION, 1) != 15.3
    assert round(counted["vgg16_conv_multiply_adds"] / BILLION, 1) == 15.3
    assert round(counted["vgg19_conv_multiply_adds"] / BILLION, 1) != 19.6
    with torch.device("meta"):
        rows = layer_costs(VGG("D"), (3, 224, 224))
    assert counted["vgg16_activation_millions"] == sum(r.units for r in rows) / 1e6
    # The chapter: from a batch of this many images on, the outputs
    # outweigh the weights; one image fewer, they do not.
    batch = counted["vgg16_batch_outweighing_weights"]
    outputs = counted["vgg16_activation_millions"] * 1e6
    assert batch * outputs >= counted["vgg16_parameters"] > (batch - 1) * outputs


def test_bottlenecks_have_fewer_3x3_layers(results):
    """The chapter: ResNet-50's receptive field is smaller than ResNet-34's
    because its main path has fewer 3 × 3 convolutions (16 against 32)."""
    counted = results["architectures"]
    assert counted["resnet34_three_by_three"] == 2 * (3 + 4 + 6 + 3)
    assert counted["resnet50_three_by_three"] == 3 + 4 + 6 + 3
    assert counted["resnet50_receptive_field"] < counted["resnet34_receptive_field"]


def test_lenet_keeps_its_parameters_in_c5_and_f6(results):
    assert results["architectures"]["lenet_fc_parameter_share"] > 0.9


def test_vgg16_convolutions_of_equal_cost(results):
    """The chapter and its figure: in the first four stages every
    convolution but the first of its stage costs the same (conv2, conv4, conv6,
    conv7, conv9, conv10), 224 × 224 × 64 × 64 × 9 multiply-adds."""
    counted = results["architectures"]
    assert counted["vgg16_convs_like_conv2"] == [2, 4, 6, 7, 9, 10]
    assert counted["vgg16_typical_conv_multiply_adds"] == 224 * 224 * 64 * 64 * 9


def test_chapter_4_s_cnn_costs_several_times_the_scaled_down_ones(results):
    reference = results["architectures"]["smallcnn_multiply_adds"]
    for name, snippet in rows(results).items():
        key = "vgg" if name == "vgg_plain" else name
        assert reference > 2 * snippet[f"row_{key}_multiply_adds"], name


def test_the_training_run_is_about_an_epoch_and_a_half(results):
    """The chapter prints the run's length in epochs: mini-batches over the
    batches of one epoch (book.mini_batches: n // batch_size of them)."""
    resnet = results["architectures"]
    batches_per_epoch = resnet["num_train"] // PROTOCOL["batch_size"]
    assert resnet["stack_epochs"] == pytest.approx(
        resnet["stack_steps"] / batches_per_epoch
    )
    assert 1 < resnet["stack_epochs"] < 2
    assert resnet["stack_layers"] == 34


def test_the_deep_stack_s_shortcuts_are_all_identities():
    """The chapter: with one stage at one width and stride 1, every shortcut
    of the residual stack is the identity, although it asks for projections."""
    net = deep_stack(16, "projection")
    blocks = [m for m in net.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 16
    assert all(isinstance(block.shortcut, nn.Identity) for block in blocks)


def test_the_two_stacks_differ_only_in_their_additions(results):
    resnet = results["architectures"]
    assert resnet["stack_parameters"] == resnet["stack_parameters_plain"]
    assert resnet["stack_parameters"] == count_parameters(deep_stack(16))
