"""The live CNN page's Python side: its file format, the networks it runs (chapter
4's, to the bit), the receptive fields it draws, and the claims of its prose.

The page itself, in Chromium, is tested in test_live_cnn_page.py.
"""

import json
import math

import numpy as np
import pytest
import torch
from claims import binomial_se
from live_cnn_ops import (
    block_fields,
    block_layout,
    block_outputs,
    load_tensors,
    network_file,
    save_tensors,
)
from torch import nn
from weight_sharing_ops import shift
from what_cnns_learn_ops import BLOCK_ENDS, CNN_LAYERS, field_box

from book import PROTOCOL, SmallCNN, accuracy, load_dataset, receptive_field
from tools.runner import BUILD_DIR, REPLICATE_SEED_OFFSET

NETWORKS = ["trained-seed0", "untrained-seed0", "trained-seed1", "untrained-seed1"]


def build_files(results):
    """The live_cnn snippet's output folder in the build the tests read."""
    results["live_cnn"]  # runs the snippet first if it is stale
    return results.folder / "live_cnn"


def seed_offset(results):
    """The replication build shifts every seed, data splits included."""
    return 0 if results.folder == BUILD_DIR else REPLICATE_SEED_OFFSET


def load_network(path):
    net = SmallCNN(image_size=24)
    tensors, metadata = load_tensors(path)
    left_out = net.load_state_dict(tensors, strict=False)
    assert not left_out.unexpected_keys
    assert all(k.endswith("num_batches_tracked") for k in left_out.missing_keys)
    return net.eval(), metadata


# The file format ----------------------------------------------------------------


def test_tensors_survive_the_round_trip_exactly(tmp_path):
    generator = torch.Generator().manual_seed(0)
    tensors = {
        "a.weight": torch.randn(4, 3, 3, 3, generator=generator),
        "b": torch.randn(7, generator=generator),
        "scalar": torch.tensor(2.5),
        "half": torch.randn(2, 2, generator=generator).half(),  # stored as F32
    }
    save_tensors(tmp_path / "t.safetensors", tensors, {"note": "hello"})
    loaded, metadata = load_tensors(tmp_path / "t.safetensors")
    assert list(loaded) == list(tensors)
    for name, tensor in tensors.items():
        assert loaded[name].dtype == torch.float32
        assert torch.equal(loaded[name], tensor.float()), name
    assert metadata == {"note": "hello"}


def test_the_file_follows_the_safetensors_layout(tmp_path):
    """As the page's reader expects it: an 8-byte little-endian header length,
    a JSON header, then the data, 8-byte aligned, each tensor's bytes where
    its data_offsets say, little-endian float32 in row-major order."""
    X = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    save_tensors(tmp_path / "t.safetensors", {"X": X, "y": -X[0]})
    raw = (tmp_path / "t.safetensors").read_bytes()
    length = int.from_bytes(raw[:8], "little")
    assert (8 + length) % 8 == 0
    header = json.loads(raw[8 : 8 + length])
    assert header["X"] == {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
    assert header["y"] == {"dtype": "F32", "shape": [3], "data_offsets": [24, 36]}
    data = raw[8 + length :]
    assert len(data) == 36
    values = np.frombuffer(data, dtype="<f4")
    np.testing.assert_array_equal(values, [0, 1, 2, 3, 4, 5, -0.0, -1, -2])


def test_a_channels_last_tensor_is_stored_in_row_major_order(tmp_path):
    X = torch.arange(24, dtype=torch.float32).reshape(1, 2, 3, 4)
    save_tensors(
        tmp_path / "t.safetensors", {"X": X.to(memory_format=torch.channels_last)}
    )
    loaded, _ = load_tensors(tmp_path / "t.safetensors")
    assert torch.equal(loaded["X"], X)


@pytest.mark.parametrize(
    "tensors, metadata, message",
    [
        ({"n": torch.tensor([1, 2])}, None, r"tensor 'n' is torch.int64"),
        ({"": torch.zeros(1)}, None, "name must be a string, got ''"),
        ({"__metadata__": torch.zeros(1)}, None, "name must be a string"),
        ({"x": torch.zeros(1)}, {"seed": 0}, "metadata values must be strings"),
    ],
)
def test_save_tensors_names_what_it_refuses(tmp_path, tensors, metadata, message):
    with pytest.raises(ValueError, match=message):
        save_tensors(tmp_path / "t.safetensors", tensors, metadata)


def test_load_tensors_refuses_a_cut_off_file(tmp_path):
    save_tensors(tmp_path / "t.safetensors", {"x": torch.zeros(3)})
    raw = (tmp_path / "t.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[:20])
    with pytest.raises(ValueError, match="header is cut off"):
        load_tensors(tmp_path / "cut.safetensors")


# How the page rebuilds the network ----------------------------------------------


def test_the_layout_names_each_blocks_layers_in_the_state_dict():
    net = SmallCNN(image_size=24)
    layout = block_layout(net)
    assert [block["pool"] for block in layout] == [False, True, True]
    state = net.state_dict()
    for block in layout:
        assert state[f"{block['conv']}.weight"].shape[-2:] == (3, 3)
        assert f"{block['norm']}.running_var" in state
        assert block["eps"] == 1e-5


def test_the_layout_refuses_a_network_the_page_cannot_compute():
    net = SmallCNN(image_size=24)
    net.blocks[1][1] = nn.Conv2d(16, 32, 5, padding=2)  # a 5 × 5 kernel
    with pytest.raises(ValueError, match="block 2 is .* Conv2d 3 × 3"):
        block_layout(net)
    net = SmallCNN(image_size=24)
    net.blocks[2][0] = nn.MaxPool2d(3)
    with pytest.raises(ValueError, match="block 3's pool is not 2 × 2"):
        block_layout(net)


def test_the_network_file_holds_every_float_tensor_and_how_to_use_them():
    net = SmallCNN(image_size=24)
    tensors, metadata = network_file(net, seed=3)
    state = net.state_dict()
    floats = [k for k, v in state.items() if v.is_floating_point()]
    assert list(tensors) == floats
    assert len(floats) == len(state) - 3  # one batch counter per block
    assert json.loads(metadata["layout"]) == block_layout(net)
    assert metadata["seed"] == "3" and metadata["image_size"] == "24"


def test_each_blocks_field_is_chapter_4s(results):
    fields = block_fields()
    sizes = [
        receptive_field([(k, s) for k, s, _ in CNN_LAYERS[:end]])[-1]
        for end in BLOCK_ENDS
    ]
    assert [field["size"] for field in fields] == sizes
    layers = results["layers"]
    assert sizes == [layers[f"formula_layer_{end}"] for end in BLOCK_ENDS]
    for field, end in zip(fields, BLOCK_ENDS):
        for row, col in [(0, 0), (1, 2), (5, 3)]:
            assert field_box(CNN_LAYERS[:end], row, col) == (
                field["start"] + field["step"] * row,
                field["start"] + field["step"] * col,
                field["size"],
            )
    # Chapter 4 found the centre unit of block 3 (row 3) at row 5.
    assert (
        fields[2]["start"] + 3 * fields[2]["step"] == results["layers_cnn"]["field_top"]
    )


def probe(blocks):
    """SmallCNN's windows and strides with every path counted: convolutions
    of ones with zero padding, average pools, no ReLU: a pixel's gradient is
    positive exactly where it can change the unit."""
    layers = []
    for depth in range(blocks):
        if depth > 0:
            layers.append(nn.AvgPool2d(2))
        conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        nn.init.ones_(conv.weight)
        layers.append(conv)
    return nn.Sequential(*layers)


@pytest.mark.parametrize("block", [1, 2, 3])
def test_the_outlined_field_is_where_the_gradient_reaches(block):
    """The page outlines a unit's field clipped to the canvas: exactly the
    pixels that can change the unit, for every unit of the block."""
    field = block_fields()[block - 1]
    net = probe(block)
    X = torch.ones(1, 1, 24, 24, requires_grad=True)
    out = net(X)[0, 0]
    size = out.shape[-1]
    units = [(i, j) for i in range(size) for j in range(size)]
    if block == 1:
        units = units[::7]  # 576 units: a sample, every corner kind included
    for i, j in units:
        (gradient,) = torch.autograd.grad(out[i, j], X, retain_graph=True)
        top, left = (
            field["start"] + field["step"] * i,
            field["start"] + field["step"] * j,
        )
        box = torch.zeros(24, 24, dtype=torch.bool)
        box[max(top, 0) : top + field["size"], max(left, 0) : left + field["size"]] = (
            True
        )
        assert torch.equal(gradient[0, 0] > 0, box), (block, i, j)


def test_block_outputs_are_what_the_network_computes():
    torch.manual_seed(0)
    net = SmallCNN(image_size=24)
    X = torch.rand(3, 1, 24, 24)
    out = block_outputs(net, X)
    assert [out[f"block{n}"].shape for n in (1, 2, 3)] == [
        (3, 16, 24, 24),
        (3, 32, 12, 12),
        (3, 64, 6, 6),
    ]
    with torch.no_grad():
        assert torch.equal(out["logits"], net(X))
    torch.testing.assert_close(out["global_max"], out["block3"].amax(dim=(2, 3)))
    torch.testing.assert_close(out["probabilities"].sum(dim=1), torch.ones(3))
    assert not net.training


# The very networks of chapter 4 --------------------------------------------------


def test_the_networks_are_chapter_4s_first_two_runs(results):
    """Trained by the same code from the same seeds: the same test accuracy,
    to the last bit, as chapter 4 recorded for its first two runs."""
    live, chapter_4 = results["live_cnn"], results["layers_cnn"]
    assert live["seeds"] == list(PROTOCOL["seeds"][:2])
    assert live["trained_accuracies"] == chapter_4["cnn_accuracies"][:2]


@pytest.fixture(scope="module")
def test_split(results):
    return load_dataset("shifted_digits", seed=seed_offset(results))


@pytest.mark.parametrize("seed", [0, 1])
def test_each_file_is_that_network(results, test_split, seed):
    """Read back from the file the page fetches: chapter 4's accuracy again,
    and the untrained file is the network the seed builds before training."""
    folder = build_files(results)
    net, metadata = load_network(folder / f"trained-seed{seed}.safetensors")
    score = accuracy(net, test_split.X_test, test_split.y_test)
    assert score == results["layers_cnn"]["cnn_accuracies"][seed]
    assert float(metadata["test_accuracy"]) == score
    assert metadata["trained"] == "True" and metadata["seed"] == str(seed)
    untrained, metadata = load_network(folder / f"untrained-seed{seed}.safetensors")
    torch.manual_seed(seed + seed_offset(results))
    fresh = SmallCNN(image_size=24)
    for name, tensor in fresh.state_dict().items():
        if tensor.is_floating_point():
            assert torch.equal(untrained.state_dict()[name], tensor), name
    assert metadata["trained"] == "False"


def test_the_test_digits_are_the_first_of_each_class(results, test_split):
    tensors, metadata = load_tensors(build_files(results) / "digits.safetensors")
    labels, indices = (
        json.loads(metadata["labels"]),
        json.loads(metadata["test_indices"]),
    )
    assert labels == list(range(10))
    y = test_split.y_test
    assert indices == [int((y == label).nonzero()[0]) for label in labels]
    assert torch.equal(tensors["images"], test_split.X_test[indices, 0])


def test_the_reference_outputs_are_the_files_networks_on_the_inputs(results):
    folder = build_files(results)
    reference = np.load(folder / "reference.npz")
    inputs = torch.from_numpy(reference["inputs"])[:, None]
    assert len(inputs) == results["live_cnn"]["num_inputs"] == 11
    assert (inputs[-1] == 0).all()  # the empty canvas
    for name in NETWORKS:
        net, _ = load_network(folder / f"{name}.safetensors")
        for key, value in block_outputs(net, inputs).items():
            np.testing.assert_allclose(
                reference[f"{name}/{key}"], value.numpy(), rtol=1e-6, atol=1e-6
            )
        assert np.isfinite(reference[f"{name}/probabilities"]).all()


def test_a_move_of_4_pixels_moves_block_3_one_cell_away_from_the_border(results):
    """What the page's second thing to try says, in PyTorch: after a move of 4
    pixels to the right, block 3's maps are the old ones one cell further
    right, to the bit, in column 3 (the one column outside chapter 6's band of
    3 units on the left and 2 on the right); near the border they differ."""
    folder = build_files(results)
    digits, _ = load_tensors(folder / "digits.safetensors")
    X = digits["images"][:, None]
    net, _ = load_network(folder / "trained-seed0.safetensors")
    before = block_outputs(net, X)["block3"]
    after = block_outputs(net, shift(X, 0, 4))["block3"]
    assert torch.equal(after[..., 3], before[..., 2])
    for column in (1, 2, 4):  # inside the band: not just moved
        assert not torch.equal(after[..., column], before[..., column - 1])


# The page's claims ----------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_moves_off_block_3s_grid_change_the_classifiers_numbers_more(
    results, claim, seed
):
    """Moves of 1 to 3 pixels change the 64 global-max values more than moves
    of 4 pixels, for digits that stay whole on the canvas: by more than the
    per-digit spread of the gap, and beyond the spread of single moves (the
    typical move off the grid changes more than 9 in 10 moves on it)."""
    live = results["live_cnn"]
    claim.exceeds(
        f"seed {seed}: moves off block 3's grid change the global max more than on it",
        effect=live["change_gap_by_seed"][seed],
        uncertainty=live["change_gap_se_by_seed"][seed],
    )
    off_median = live["change_off_grid_median_by_seed"][seed]
    assert off_median > live["change_on_grid_p90_by_seed"][seed]
    assert live["num_whole_moves"] > 1000  # most moves: not a handful of digits


@pytest.mark.parametrize("seed", [0, 1])
def test_on_the_grid_about_a_quarter_as_much_on_average(results, seed):
    live = results["live_cnn"]
    on = live["change_on_grid_mean_by_seed"][seed]
    off = live["change_off_grid_mean_by_seed"][seed]
    assert 0.18 < on / off < 0.35, on / off  # "about a quarter"
    assert live[f"change_on_over_off_seed{seed}"] == pytest.approx(on / off)
    # The medians by distance: 4 pixels, on block 3's grid, is the least.
    medians = [live[f"change_median_{d}px_seed{seed}"] for d in (1, 2, 3, 4)]
    assert medians[3] < min(medians[:3]), medians
    # "A move of 2 pixels ... changes them as much as a move of 1 or 3"
    odd = (medians[0] + medians[2]) / 2
    assert abs(medians[1] - odd) < 0.2 * odd, medians


@pytest.mark.parametrize("seed", [0, 1])
def test_single_moves_on_the_grid_can_change_a_lot_and_change_the_answer(results, seed):
    live = results["live_cnn"]
    assert live["change_on_grid_over_20_share_by_seed"][seed] > 0
    assert 0 < live["on_grid_flip_share_by_seed"][seed] < 0.1  # "can", not "often"
    example = live["on_grid_flip_example"]
    if results.folder == BUILD_DIR:  # the site's build: the page names it
        assert example is not None, "none of the page's digits flips on the grid"
    if example is not None:
        assert example["before"] != example["after"] == live["flip_example_after"]
        # "An extreme case": beyond nine moves in ten on the grid.
        assert example["change"] > live["change_on_grid_p90_by_seed"][example["seed"]]
        # "pushes the digit against the canvas's border"
        assert example["ink_to_border"] <= 1
        # The probabilities the page quotes: the new answer is the top one now.
        assert example["p_after"] > example["p_old_after"]
        assert example["p_before"] > example["p_old_after"]


@pytest.mark.parametrize("seed", [0, 1])
def test_the_fixed_border_not_the_blank_strip_changes_the_numbers_on_the_grid(
    results, claim, seed
):
    """Rolled instead of shifted by 4 pixels (no blank strip comes in, the
    noise moves with the digit), the numbers change by as much: the strip
    accounts for under 5 % of the change, and the rolled change is itself
    far from none. With circular padding too, a roll changes nothing."""
    live = results["live_cnn"]
    rolled = live["rolled_on_grid_mean_by_seed"][seed]
    difference = live["roll_minus_shift_by_seed"][seed]
    se = live["roll_minus_shift_se_by_seed"][seed]
    assert abs(difference) + 2 * se < 0.05 * live["change_on_grid_mean_by_seed"][seed]
    claim.exceeds(
        f"seed {seed}: rolled by 4 pixels, the global max still changes",
        effect=rolled,
        uncertainty=live["rolled_on_grid_se_by_seed"][seed],
    )
    # A check of the code, exact by construction: "exactly zero".
    assert live["circular_on_grid_change_max"] == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_the_untrained_network_reads_digits_as_guessing_would(results, claim, seed):
    live = results["live_cnn"]
    score, n = live["untrained_accuracies"][seed], live["num_test"]
    claim.within(
        f"untrained seed {seed}: test accuracy no different from guessing (1/10)",
        effect=score - 0.1,
        uncertainty=binomial_se(0.1, n),
    )
    # "its ten probabilities stay close to one in ten, and it gives most
    # digits the same answer"
    assert live["untrained_top_probabilities"][seed] < 0.15
    assert live["untrained_common_answer_shares"][seed] > 0.5


def test_the_two_seeds_do_not_always_give_the_same_answer(results):
    live = results["live_cnn"]
    assert 0 < live["seeds_disagree_share"] < 0.5
    assert live["seeds_disagree_count"] == round(
        live["seeds_disagree_share"] * live["num_test"]
    )


def test_the_test_digit_both_networks_misread_is_read_wrongly_by_both(results):
    """The page names the first test digit both trained networks get wrong,
    with their answers: they must be wrong answers, from the reference."""
    live = results["live_cnn"]
    label = live["first_misread_by_both"]
    if results.folder != BUILD_DIR:  # other digits; the site shows the main build's
        return
    assert label is not None, "the prose names a test digit both networks misread"
    reference = np.load(build_files(results) / "reference.npz")
    for seed, answer in zip((0, 1), live["first_misread_answers"]):
        read = reference[f"trained-seed{seed}/probabilities"][label].argmax()
        assert read == answer != label


@pytest.mark.parametrize("seed", [0, 1])
def test_the_untrained_values_are_many_times_smaller_more_so_deeper(results, seed):
    """Block 3's largest value, trained over untrained, is tens of times
    smaller for nine test digits in ten, and the gap grows with depth, as the
    page's account of it (small initial weights, block after block) says."""
    live = results["live_cnn"]
    ratio = {
        (what, block): live[f"untrained_scale_ratio_{what}_block{block}_seed{seed}"]
        for what in ("p10", "median", "p90")
        for block in (1, 2, 3)
    }
    assert 10 < ratio["p10", 3] <= ratio["median", 3] <= ratio["p90", 3]
    medians = [ratio["median", block] for block in (1, 2, 3)]
    assert medians == sorted(medians) and medians[2] > 2 * medians[0], medians


@pytest.mark.parametrize("seed", [0, 1])
def test_the_untrained_batch_norm_holds_the_default_statistics(results, seed):
    """ "an untrained batch normalisation holds the default running statistics
    (mean 0, variance 1) with a scale of 1 and a shift of 0": in the very file
    the page runs."""
    tensors, _ = load_tensors(
        build_files(results) / f"untrained-seed{seed}.safetensors"
    )
    for block in block_layout(SmallCNN(image_size=24)):
        norm = block["norm"]
        for name, value in [
            ("running_mean", 0),
            ("running_var", 1),
            ("weight", 1),
            ("bias", 0),
        ]:
            assert (tensors[f"{norm}.{name}"] == value).all(), (norm, name)
        # "drawn uniformly, with a variance of one over three times the
        # number of inputs of each unit"
        weight = tensors[f"{block['conv']}.weight"]
        fan_in = weight[0].numel()
        bound = fan_in**-0.5
        assert weight.abs().max() <= bound
        assert weight.var().item() == pytest.approx(1 / (3 * fan_in), rel=0.3)


def test_the_untrained_logits_lie_close_together(results):
    """Why its probabilities stay near one in ten: ten logits within a
    fraction of one another give probabilities within a factor of e**spread."""
    live = results["live_cnn"]
    assert live["untrained_logit_spread_max"] < 1
    assert live["untrained_top_probability_max"] < 0.1 * math.exp(
        live["untrained_logit_spread_max"]
    )


def test_the_test_digits_heights_are_those_of_8_by_8_digits_scaled(results):
    """The page's ten test digits, 8 × 8 images scaled by 1 to 1.75
    (place_on_canvas): their measured ink is 8 to 14 pixels high at most."""
    live = results["live_cnn"]
    heights = live["digit_heights"]
    assert len(heights) == 10
    assert live["digit_height_min"] == min(heights) >= 1
    assert live["digit_height_max"] == max(heights) <= 14
    assert min(heights) <= live["digit_height_median"] <= max(heights)


def test_the_two_seeds_reach_about_the_same_accuracy(results, claim):
    live = results["live_cnn"]
    (a, b), n = live["trained_accuracies"], live["num_test"]
    claim.within(
        "seed 0 and seed 1: no clear difference in test accuracy",
        effect=a - b,
        uncertainty=math.hypot(binomial_se(a, n), binomial_se(b, n)),
    )
