"""Chapter 6: weight sharing and equivariance.

The functions of weight_sharing_ops against PyTorch's layers, their errors,
and every claim the chapter's prose makes on the numbers its two snippets
recorded.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from claims import difference_se, mean_se, sample_sd
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from weight_sharing_ops import (
    LocallyConnected2d,
    LocalProduct,
    accuracy_at,
    conv_as_matrix,
    equivariance_error,
    equivariance_gap,
    exact_margin,
    feature_change,
    inside,
    layer_parameters,
    locally_connected,
    matched_hidden,
    place_at,
    relative_change,
    shift,
)

from book import SmallCNN, count_parameters

PROPERTY = settings(max_examples=40, deadline=None)


# shift ---------------------------------------------------------------------


def test_shift_moves_pixels_and_fills_zeros():
    X = torch.arange(1.0, 10.0).reshape(3, 3)
    expected = torch.tensor([[0.0, 0, 0], [0, 1, 2], [0, 4, 5]])
    torch.testing.assert_close(shift(X, 1, 1), expected, rtol=0, atol=0)
    back = torch.tensor([[5.0, 6, 0], [8, 9, 0], [0, 0, 0]])
    torch.testing.assert_close(shift(X, -1, -1), back, rtol=0, atol=0)


@given(st.integers(-5, 5), st.integers(-5, 5))
@PROPERTY
def test_shift_agrees_with_roll_where_nothing_wrapped(dy, dx):
    X = torch.rand(2, 3, 6, 7)
    rolled = torch.roll(X, (dy, dx), dims=(-2, -1))
    moved = shift(X, dy, dx)
    rows = slice(max(dy, 0), 6 + min(dy, 0))
    cols = slice(max(dx, 0), 7 + min(dx, 0))
    assert torch.equal(moved[..., rows, cols], rolled[..., rows, cols])
    assert moved.sum() <= X.sum()  # only zeros come in


@pytest.mark.parametrize(
    "args, message",
    [
        ((torch.zeros(5), 1, 0), r"expected \(\.\.\., H, W\) images, got \(5,\)"),
        ((torch.zeros(4, 4), 4, 0), r"shift \(4, 0\) moves a 4 × 4 image"),
        ((torch.zeros(4, 4), 0, -6), r"shift \(0, -6\)"),
        ((torch.zeros(4, 4), 0.5, 0), r"must be integers, got \(0.5, 0\)"),
    ],
)
def test_shift_names_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        shift(*args)


# equivariance --------------------------------------------------------------


def random_stack(seed, layers, channels=4, padding_mode="zeros"):
    torch.manual_seed(seed)
    modules, C = [], 1
    for _ in range(layers):
        conv = nn.Conv2d(C, channels, 3, padding=1, padding_mode=padding_mode)
        modules += [conv, nn.ReLU()]
        C = channels
    return nn.Sequential(*modules)


@given(
    seed=st.integers(0, 2**16),
    layers=st.integers(1, 3),
    dy=st.integers(-4, 4),
    dx=st.integers(-4, 4),
)
@PROPERTY
def test_conv_relu_stacks_are_exactly_equivariant_inside_the_band(seed, layers, dy, dx):
    """The chapter: exact to the bit, outside a band of the shift plus r - 1
    on one side and r on the other (narrower where a ReLU zeroes both)."""
    f = random_stack(seed, layers)
    X = torch.rand(3, 1, 20, 20, generator=torch.Generator().manual_seed(seed))
    margin = layers - 1 + max(abs(dy), abs(dx))
    assert equivariance_error(f, X, dy, dx, margin=margin) == 0
    assert exact_margin(f, X, dy, dx) <= margin


@pytest.mark.parametrize("dy, dx", [(0, 1), (2, -3), (-4, 4)])
def test_circular_padding_and_roll_are_equivariant_everywhere(dy, dx):
    """Exercise 1's solution: nothing is lost at the borders."""
    f = random_stack(0, 3, padding_mode="circular")
    X = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        first = f(torch.roll(X, (dy, dx), dims=(-2, -1)))
        after = torch.roll(f(X), (dy, dx), dims=(-2, -1))
    assert torch.equal(first, after)


def test_rotating_the_image_is_rotating_the_kernel_the_other_way():
    """Exercise 2's hint, and its symmetric-kernel case."""
    X = torch.rand(2, 1, 12, 12)
    K = torch.randn(1, 1, 3, 3)

    def rot(t, k=1):
        return torch.rot90(t, k, (-2, -1))

    lhs = F.conv2d(rot(X), K, padding=1)
    torch.testing.assert_close(lhs, rot(F.conv2d(X, rot(K, -1), padding=1)))
    assert not torch.allclose(lhs, rot(F.conv2d(X, K, padding=1)), atol=1e-3)
    blur = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]).reshape(1, 1, 3, 3)
    torch.testing.assert_close(
        F.conv2d(rot(X), blur, padding=1), rot(F.conv2d(X, blur, padding=1))
    )


def test_a_2x2_pool_is_equivariant_to_even_shifts_only():
    def f(X):
        return F.max_pool2d(X, 2)

    X = torch.rand(4, 3, 16, 16)
    assert equivariance_error(f, X, 2, -4, stride=2, margin=2) == 0
    with pytest.raises(ValueError, match=r"\(1, 0\) is not a multiple of the"):
        equivariance_error(f, X, 1, 0, stride=2)


def test_eval_mode_small_cnn_block_1_is_equivariant():
    torch.manual_seed(0)
    net = SmallCNN(image_size=24).eval()
    X = torch.rand(5, 1, 24, 24)
    assert equivariance_error(net.blocks[0], X, 3, -2, margin=4) == 0


def test_gap_inside_and_margin_name_bad_input():
    with pytest.raises(ValueError, match="margin 3 leaves nothing of a 6 × 6"):
        inside(torch.zeros(6, 6), 3)
    with pytest.raises(ValueError, match="margin -1"):
        inside(torch.zeros(6, 6), -1)

    def moves_by_one(X):
        return torch.roll(X, 1, dims=-1) + 1.0

    with pytest.raises(ValueError, match="not equivariant for the shift"):
        exact_margin(moves_by_one, torch.rand(1, 1, 4, 4), 0, 1)
    gap = equivariance_gap(lambda X: X, torch.rand(1, 1, 5, 5), 1, 1)
    assert gap.max() == 0  # the identity is equivariant everywhere


def test_feature_change_is_zero_for_a_global_max_of_a_shifted_blob():
    X = torch.zeros(2, 1, 12, 12)
    X[:, :, 4:6, 4:6] = 1.0

    def g(X):
        return X.amax(dim=(2, 3))

    assert feature_change(g, X, 2, 3).max() == 0
    before, after = torch.tensor([[3.0, 4.0]]), torch.tensor([[3.0, 0.0]])
    torch.testing.assert_close(relative_change(before, after), torch.tensor([0.8]))


# conv as a matrix, parameter counts ----------------------------------------


@st.composite
def conv_layers(draw):
    C_in, C_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = draw(st.sampled_from([1, 3, 5]))
    stride = draw(st.integers(1, 2))
    bias = draw(st.booleans())
    torch.manual_seed(draw(st.integers(0, 2**16)))
    conv = nn.Conv2d(C_in, C_out, k, stride=stride, padding=k // 2, bias=bias)
    return conv, draw(st.integers(k, 7))


@given(conv_layers())
@PROPERTY
def test_conv_as_matrix_computes_the_conv(case):
    conv, n = case
    W, b = conv_as_matrix(conv, n)
    X = torch.rand(3, conv.in_channels, n, n)
    with torch.no_grad():
        expected = conv(X).flatten(1)
    assert W.shape == (expected.shape[1], conv.in_channels * n * n)
    torch.testing.assert_close(F.linear(X.flatten(1), W, b), expected)


def test_conv_matrix_entries_are_copies_of_the_kernel():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 1, 3, padding=1)
    W, _ = conv_as_matrix(conv, 6)
    taps = 2 + 3 * 4 + 2  # window positions inside a 6-pixel row: 2, 3, ..., 2
    assert int((W != 0).sum()) == taps**2
    assert set(W[W != 0].tolist()) == set(conv.weight.flatten().tolist())


def test_conv_as_matrix_names_bad_input():
    with pytest.raises(ValueError, match="expected an nn.Conv2d, got Linear"):
        conv_as_matrix(nn.Linear(2, 2), 4)
    with pytest.raises(ValueError, match="padding_mode='circular'"):
        conv_as_matrix(nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular"), 4)


@pytest.mark.parametrize("C_in, C_out, size, k", [(1, 2, 5, 3), (2, 3, 4, 1)])
def test_layer_parameters_match_pytorch_and_the_matrix(C_in, C_out, size, k):
    conv = nn.Conv2d(C_in, C_out, k, padding=k // 2)
    dense = nn.Linear(C_in * size**2, C_out * size**2)
    assert layer_parameters("conv", C_in, C_out, size, k) == count_parameters(conv)
    assert layer_parameters("dense", C_in, C_out, size, k) == count_parameters(dense)
    # local: a weight for each (output unit, window entry) pair, and a bias
    outputs = C_out * size**2
    assert layer_parameters("local", C_in, C_out, size, k) == (
        outputs * C_in * k * k + outputs
    )


def test_layer_parameters_grow_as_the_chapter_says():
    """Exercise 5: dense grows with size**4, local with size**2, conv not."""

    def count(kind, size):
        return layer_parameters(kind, 3, 64, size)

    assert count("conv", 24) == count("conv", 224) == 64 * (3 * 9 + 1)
    assert count("local", 48) == 4 * count("local", 24)
    assert count("dense", 48) == pytest.approx(16 * count("dense", 24), rel=1e-3)
    assert count("dense", 224) > 100e9  # hundreds of billions


def test_layer_parameters_names_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown layer kind 'sparse'"):
        layer_parameters("sparse", 1, 1, 8)


# locality without sharing ---------------------------------------------------


@pytest.mark.parametrize("C_in, C_out, size", [(1, 4, 6), (3, 2, 5)])
def test_a_locally_connected_layer_with_tied_kernels_is_the_convolution(
    C_in, C_out, size
):
    """Give every position the same kernels and bias and the local layer
    computes the convolution: sharing is the only difference."""
    torch.manual_seed(0)
    conv = nn.Conv2d(C_in, C_out, 3, padding=1)
    local = LocallyConnected2d(C_in, C_out, size)
    with torch.no_grad():
        local.weight.copy_(conv.weight.flatten(1).T.expand(size * size, -1, -1))
        local.bias.copy_(conv.bias[:, None, None].expand(-1, size, size))
        X = torch.rand(2, C_in, size, size)
        torch.testing.assert_close(local(X), conv(X))
    assert count_parameters(local) == layer_parameters("local", C_in, C_out, size)


def test_local_weights_on_the_padding_never_learn():
    """The chapter: near the borders some of the twin's weights only ever
    multiply zero padding, so their gradient is zero."""
    torch.manual_seed(0)
    local = LocallyConnected2d(2, 3, 5)
    local(torch.rand(4, 2, 5, 5)).square().sum().backward()
    grad = local.weight.grad.reshape(5, 5, 2, 3, 3, 3)  # position, in, tap, out
    assert grad[0, :, :, 0].abs().max() == 0  # top row: the row above
    assert grad[:, 4, :, :, 2].abs().max() == 0  # right column: beyond it
    assert grad[2, 2].abs().min() > 0  # the centre sees only the image


def unfold_einsum(X, weight, bias, k=3):
    """The locally connected layer as its maths reads: each position's
    windows (F.unfold) times that position's matrix, plus its bias."""
    N, _, H, W = X.shape
    windows = F.unfold(X, k, padding=k // 2)  # (N, C_in k k, H W)
    out = torch.einsum("nip,pio->nop", windows, weight)
    return out.reshape(N, -1, H, W) + bias


@pytest.mark.parametrize(
    "N, C_in, C_out, size",
    [(5, 1, 4, 6), (3, 3, 2, 5), (2, 16, 32, 12), (130, 2, 3, 4)],
)
@pytest.mark.parametrize(
    "memory_format",
    [torch.contiguous_format, torch.channels_last],
    ids=["contiguous", "channels_last"],
)
def test_the_fast_local_layer_computes_unfold_and_einsum(
    N, C_in, C_out, size, memory_format
):
    """LocalProduct's layouts and hand-written gradients against the
    straightforward version and autograd: outputs and the gradients for the
    input, the weights and the biases, on random values (N = 130 takes the
    path that splits a large batch)."""
    torch.manual_seed(0)
    local = LocallyConnected2d(C_in, C_out, size).double()
    with torch.no_grad():  # biases as large as the weights, so both count
        local.bias.normal_()
    X = torch.randn(N, C_in, size, size, dtype=torch.float64)
    X = X.contiguous(memory_format=memory_format).requires_grad_()
    G = torch.randn(N, C_out, size, size, dtype=torch.float64)
    G = G.contiguous(memory_format=memory_format)  # the gradient from above
    params = (X, local.weight, local.bias)
    fast = local(X)
    slow = unfold_einsum(X, local.weight, local.bias)
    torch.testing.assert_close(fast, slow)
    for got, expected in zip(
        torch.autograd.grad(fast, params, G),
        torch.autograd.grad(slow, params, G),
        strict=True,
    ):
        torch.testing.assert_close(got, expected)


def test_the_local_product_passes_gradcheck():
    torch.manual_seed(0)
    local = LocallyConnected2d(2, 3, 4).double()
    X = torch.randn(2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda X, weight, bias: LocalProduct.apply(X, weight, bias, 3),
        (X, local.weight, local.bias),
    )


def test_locally_connected_replaces_every_convolution():
    net = locally_connected(SmallCNN(image_size=24))
    assert not any(isinstance(m, nn.Conv2d) for m in net.modules())
    assert [m.size for m in net.modules() if isinstance(m, LocallyConnected2d)] == [
        24,
        12,
        6,
    ]
    assert net(torch.rand(2, 1, 24, 24)).shape == (2, 10)
    with pytest.raises(ValueError, match="kernels for 24 × 24 maps, got 12 × 12"):
        net.blocks[0](torch.rand(1, 1, 12, 12))


# placement and the matched MLP ---------------------------------------------


def test_place_at_puts_the_digit_at_the_corner_given():
    images = torch.ones(2, 1, 8, 8)
    X = place_at(images, 3, 10, canvas=24, noise=0)
    assert X.shape == (2, 1, 24, 24)
    assert X[:, :, 3:11, 10:18].min() == 1 and X.sum() == 2 * 64
    noisy = place_at(images[:, 0], 0, 0, noise=0.1)
    assert 0 <= noisy.min() and noisy.max() <= 1 and noisy[:, :, 8:].std() > 0


@pytest.mark.parametrize(
    "args, message",
    [
        ((torch.zeros(8, 8), 0, 0), r"got \(8, 8\)"),
        ((torch.zeros(1, 8, 8), 17, 0), r"8 × 8 image at \(17, 0\) does not fit"),
        ((torch.zeros(1, 8, 8), 0, -1), r"at \(0, -1\)"),
    ],
)
def test_place_at_names_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        place_at(*args)


def test_accuracy_at_averages_the_chosen_moves_for_each_seed():
    runs = [
        {"across": list(range(17)), "down": [0] * 17},  # moves -8 ... 8
        {"across": [1] * 17, "down": [1] * 17},
    ]
    np.testing.assert_allclose(accuracy_at(runs, [-8, 8]), [4, 1])
    np.testing.assert_allclose(accuracy_at(runs, [7], ways=["across"]), [15, 1])


def test_matched_hidden_gives_the_nearest_parameter_count():
    h = matched_hidden(24170, 576)
    mlp = nn.Sequential(nn.Linear(576, h), nn.ReLU(), nn.Linear(h, 10))
    for other in (h - 1, h + 1):
        worse = nn.Sequential(nn.Linear(576, other), nn.Linear(other, 10))
        assert abs(count_parameters(worse) - 24170) >= abs(
            count_parameters(mlp) - 24170
        )
    with pytest.raises(ValueError, match="too few for a hidden layer"):
        matched_hidden(100, 576)


# the claims of part 1 -------------------------------------------------------


@pytest.fixture(scope="module")
def part1(results):
    return results["weight_sharing"]


@pytest.fixture(scope="module")
def part2(results):
    return results["weight_sharing_positions"]


def test_the_matrix_is_local_and_shared(part1):
    assert part1["matrix_side"] == 36 and part1["matrix_entries"] == 36 * 36
    assert part1["matrix_nonzero"] == 16 * 16  # 9 taps, fewer at the borders
    assert part1["matrix_distinct"] == 9
    assert part1["matrix_max_difference"] < 1e-6


def test_both_constraints_cut_the_count_hard(part1):
    assert part1["conv_total"] == part1["cnn_parameters"] - 874  # BN + linear
    assert part1["dense_over_local"] > 10
    assert part1["local_over_conv"] > 10
    assert part1["dense_1_over_cnn"] > 100
    layers = [(1, 16, 24), (16, 32, 12), (32, 64, 6)]  # chapter 4's CNN
    for kind in ("dense", "local", "conv"):
        total = sum(layer_parameters(kind, *layer) for layer in layers)
        assert part1[f"{kind}_total"] == total


def test_maps_shift_with_the_input_exactly_away_from_borders(part1):
    """Bit-exact: every interior output is the same arithmetic on the same
    numbers. (A backend that summed in a position-dependent order would break
    this and should be reported, not hidden by a tolerance.)"""
    assert part1["equivariance_inside_max"] == 0
    assert part1["equivariance_anywhere_min"] > 0.01  # the borders do differ
    # predicted_band: the shift plus r - 1 on one side, r on the other
    assert part1["band_as_predicted"]
    for i, moved in enumerate([(0, 1), (2, 5), (-3, 4), (6, -2), (-1, -7)]):
        assert part1[f"eq_shift_{i}"] == str(moved)
        for stack, r in (("one", 1), ("three", 3)):
            expected = r - 1 + max(abs(d) for d in moved)
            assert part1[f"eq_{stack}_predicted_{i}"] == expected
            assert part1[f"eq_{stack}_measured_{i}"] == expected


def test_stride_is_subsampling_and_a_pixel_shift_gives_the_skipped_columns(part1):
    assert part1["stride_is_subsampling"]
    assert part1["stride_odd_is_skipped"]
    assert part1["stride_even_error"] == 0


def test_each_block_is_exactly_equivariant_on_its_grid(part1):
    for depth in (1, 2, 3):
        size = part1[f"pooled_size_{depth}"]
        assert size == 48 // 2 ** (depth - 1)
        assert 2 * part1[f"pooled_margin_{depth}"] < size  # something is left
        assert part1[f"pooled_anywhere_{depth}"] > 0  # but not at the borders
        assert part1[f"pooled_margin_{depth}"] == part1[f"pooled_predicted_{depth}"]
    # on 24 x 24, a shift by 4 leaves one exact unit of 36, off centre
    assert part1["small_canvas_predicted_band"] == [3, 2]
    assert part1["small_canvas_exact_units"] == 1
    assert not part1["small_canvas_block_3_exact"]


def test_global_max_pool_invariance_zeros_fall_on_the_grid(part1):
    assert part1["block_1_change_max"] == 0
    assert part1["block_2_change_even_max"] == 0
    assert part1["block_3_change_grid_max"] == 0
    assert part1["strided_change_grid_max"] == 0


def test_off_the_grid_the_features_change(part1, claim):
    """Off the grid the change is far from zero, compared with the spread
    between initialisations (the largest sample std of any point)."""
    se = part1["change_std_max"] / np.sqrt(part1["invariance_num_seeds"])
    for key in (
        "block_2_change_odd_min",
        "block_3_change_off_min",
        "strided_change_off_min",
    ):
        claim.exceeds(f"off the grid the features change ({key})", part1[key], se)


def test_the_strided_twin_changes_more_off_the_grid(part1, claim):
    """Paired by initialisation: the twin has the CNN's kernels."""
    more = np.subtract(part1["strided_off_by_seed"], part1["block_3_off_by_seed"])
    claim.exceeds(
        "the strided twin's features change more off the grid than the CNN's",
        more.mean(),
        sample_sd(more) / np.sqrt(more.size),
    )


def test_on_the_small_canvas_grid_shifts_change_the_features(part1, claim):
    change = part1["small_canvas_change_by_seed"]
    claim.exceeds(
        "on the 24 x 24 canvas, shifts of 4 change the CNN's features",
        np.mean(change),
        mean_se(change),
    )


# the claims of part 2 -------------------------------------------------------
# Accuracies are on the 450 test digits; each seed is a fresh net. ± in the
# prose is the sample standard deviation over the seeds.

NUM_TEST = 450
CHANCE = 0.1


@pytest.fixture(scope="module")
def local(results):
    return results["weight_sharing_local"]


@pytest.fixture(scope="module")
def controls(results):
    return results["weight_sharing_controls"]


def by_seed(results, key):
    return results[f"{key}_by_seed"]


def test_the_two_networks_have_about_the_same_size(part2):
    assert part2["cnn_parameters"] == 24170
    assert part2["mlp_parameters"] == pytest.approx(part2["cnn_parameters"], rel=0.01)


def test_the_controls_differ_from_the_cnn_in_one_thing(part1, local, controls):
    """Exact counts: the locally connected twin has the local layers of the
    parameter table (plus batch norm and the linear layer); the flat head
    replaces the 650 weights of the linear layer by 64 * 36 * 10 + 10."""
    assert local["local_parameters"] == part1["local_total"] + 874
    assert controls["flat_parameters"] == 24170 - 650 + 64 * 36 * 10 + 10
    assert controls["everywhere_num_train"] == 1347


def test_every_network_learns_the_task_at_the_training_position(
    part2, local, controls, claim
):
    for name, results, key in [
        ("MLP", part2, "mlp_same"),
        ("CNN", part2, "cnn_same"),
        ("locally connected twin", local, "local_same"),
        ("flat-head CNN", controls, "flat_same"),
    ]:
        accuracies = by_seed(results, key)
        claim.exceeds(
            f"the {name} learns the task at the training position",
            np.mean(accuracies) - CHANCE,
            mean_se(accuracies, NUM_TEST),
        )


def test_the_mlp_knows_its_digits_at_one_place_only(part2, claim):
    same = by_seed(part2, "mlp_same")
    for where, key in [
        ("one pixel away", "mlp_one_pixel"),
        ("two or more pixels away", "mlp_two_or_more"),
        ("anywhere", "mlp_anywhere"),
    ]:
        claim.exceeds(
            f"the MLP scores lower {where} than at the training position",
            np.mean(same) - np.mean(by_seed(part2, key)),
            difference_se(same, by_seed(part2, key), NUM_TEST),
        )


def test_on_the_grid_the_cnn_does_as_well_as_at_the_training_position(part2, claim):
    same, grid = by_seed(part2, "cnn_same"), by_seed(part2, "cnn_grid")
    claim.within(
        "moved by 4 or 8 pixels, no clear difference from the training place",
        np.mean(same) - np.mean(grid),
        difference_se(same, grid, NUM_TEST),
    )


def test_off_the_grid_the_cnn_loses_but_stays_far_above_chance(part2, claim):
    grid, off = by_seed(part2, "cnn_grid"), by_seed(part2, "cnn_off_grid")
    claim.exceeds(
        "the grid positions lead the others, on average",
        np.mean(grid) - np.mean(off),
        difference_se(grid, off, NUM_TEST),
    )
    claim.exceeds(
        "off the grid the CNN is far above chance",
        np.mean(off) - CHANCE,
        mean_se(off, NUM_TEST),
    )


def test_anywhere_the_cnn_beats_the_mlp(part2, claim):
    cnn, mlp = by_seed(part2, "cnn_anywhere"), by_seed(part2, "mlp_anywhere")
    claim.exceeds(
        "at random positions the CNN scores far above the MLP",
        np.mean(cnn) - np.mean(mlp),
        difference_se(cnn, mlp, NUM_TEST),
    )


def test_sharing_is_what_carries_the_digits(part2, local, claim):
    """The locally connected twin is the CNN without sharing."""
    for where in ("grid", "anywhere"):
        cnn, twin = by_seed(part2, f"cnn_{where}"), by_seed(local, f"local_{where}")
        claim.exceeds(
            f"the CNN beats its unshared twin ({where})",
            np.mean(cnn) - np.mean(twin),
            difference_se(cnn, twin, NUM_TEST),
        )


def test_the_global_max_pool_is_needed_too(part2, controls, claim):
    """The flat-head CNN is the CNN with its global max pool replaced."""
    for where in ("grid", "anywhere"):
        cnn, flat = by_seed(part2, f"cnn_{where}"), by_seed(controls, f"flat_{where}")
        claim.exceeds(
            f"the CNN beats its flat-head twin ({where})",
            np.mean(cnn) - np.mean(flat),
            difference_se(cnn, flat, NUM_TEST),
        )


def test_trained_features_change_less_on_the_grid(part2, claim):
    grid = np.array(part2["trained_change_grid_by_seed"])
    off = np.array(part2["trained_change_off_grid_by_seed"])
    more = off - grid  # paired: the same net, the same test digits
    claim.exceeds(
        "the trained CNN's features change more off the grid than on it",
        more.mean(),
        sample_sd(more) / np.sqrt(more.size),
    )


def test_the_flat_head_twin_does_better_off_the_grid(controls, claim):
    """The prose: unlike the CNN's, the flat-head twin's average off the
    4-pixel grid is above its average on it."""
    grid, off = by_seed(controls, "flat_grid"), by_seed(controls, "flat_off_grid")
    claim.exceeds(
        "the flat-head twin scores higher off the grid than on it",
        np.mean(off) - np.mean(grid),
        difference_se(off, grid, NUM_TEST),
    )


def test_the_flat_head_twin_does_better_only_for_small_moves(controls, claim):
    """The prose: moves of 1 to 3 pixels beat moves of 4 or 8, and moves of
    5 to 7, off the grid, are not clearly better than moves of 4 or 8."""
    grid = by_seed(controls, "flat_grid")  # moves of 4 or 8, across and down
    small = controls["flat_moved_1_to_3_by_seed"]
    middle = controls["flat_moved_5_to_7_by_seed"]
    claim.exceeds(
        "the flat-head twin scores higher for moves of 1 to 3 than of 4 or 8",
        np.mean(small) - np.mean(grid),
        difference_se(small, grid, NUM_TEST),
    )
    claim.within(
        "moves of 5 to 7 are not clearly better than 4 or 8 for the flat head",
        np.mean(middle) - np.mean(grid),
        difference_se(middle, grid, NUM_TEST),
    )
    assert np.allclose(  # the groups of accuracy_at and position_summary agree
        np.add(controls["flat_moved_4_by_seed"], controls["flat_moved_8_by_seed"]) / 2,
        grid,
    )


def test_trained_features_change_more_on_the_grid_than_from_noise(part2, claim):
    grid = np.array(part2["trained_change_grid_by_seed"])
    noise = np.array(part2["trained_change_noise_by_seed"])
    more = grid - noise  # paired: the same net, the same test digits
    claim.exceeds(
        "the trained CNN's features change more on the grid than from new noise",
        more.mean(),
        sample_sd(more) / np.sqrt(more.size),
    )


def test_training_data_from_every_position_teaches(part2, controls, claim):
    """The same CNN, digits and test placements; only where the training
    digits sit changes."""
    everywhere = controls["everywhere_by_seed"]
    one_place = by_seed(part2, "cnn_anywhere")
    claim.exceeds(
        "trained at random positions, the CNN scores higher at random positions",
        np.mean(everywhere) - np.mean(one_place),
        difference_se(everywhere, one_place, NUM_TEST),
    )


def test_the_evidence_used_the_books_protocol(part2, local, controls):
    assert part2["num_seeds"] == local["num_seeds"] == controls["num_seeds"] == 3
    # the book's protocol with fewer epochs, the same for every network
    assert part2["book_epochs"] == 15
    assert part2["num_epochs"] == local["num_epochs"] == controls["num_epochs"] == 6
    assert part2["num_train"] == 1347 and part2["num_test"] == NUM_TEST
    assert np.array_equal(part2["moves"], np.arange(-8, 9))
