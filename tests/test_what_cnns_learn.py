"""Chapter 8: looking inside a trained CNN.

The functions of what_cnns_learn_ops.py against references and known cases,
then the chapter's claims on the numbers both snippets recorded: part 1 for
the protocol's first seed, part 2 for the other two.
"""

import numpy as np
import pytest
import torch
from claims import binomial_se, sample_sd
from torch import nn
from what_cnns_learn_ops import (
    BLOCK_ENDS,
    CNN_LAYERS,
    bounding_boxes,
    channel_score,
    class_score,
    class_selectivity,
    clean_test_digits,
    crop,
    field_box,
    kernel_energy_shares,
    mask_background_like,
    maximise_activation,
    move_ink,
    occlusion_map,
    saliency,
    share_inside,
    top_label_share,
    top_patches,
    total_variation,
    true_class_scores,
    weight_cosines,
)

from book import SOBEL_X, SmallCNN, load_dataset

# The networks are chapter 4's ------------------------------------------------


def test_the_networks_are_chapter_4s_three_runs(results):
    """Part 1's seed and part 2's two, trained or handed over by chapter 4's
    notebook: the same test accuracy, to the last bit, as chapter 4 recorded."""
    first, others = results["what_cnns_learn"], results["what_cnns_learn_seeds"]
    found = [first["test_accuracy"]] + [
        others[f"seed_{seed}_test_accuracy"] for seed in others["other_seeds"]
    ]
    assert found == results["layers_cnn"]["cnn_accuracies"]


# The clean digits ------------------------------------------------------------


def test_clean_digits_are_the_shifted_test_digits_without_noise():
    data = load_dataset("shifted_digits")
    assert torch.equal(clean_test_digits(noise=0.1), data.X_test)
    clean = clean_test_digits()
    assert clean.shape == data.X_test.shape
    ink = clean > 0
    # Noise is only added (then clipped): off the ink, the clean image is 0.
    assert torch.all(clean[~ink] == 0)
    assert 0.05 < ink.float().mean() < 0.4


@pytest.mark.parametrize("seed", range(5))
def test_bounding_boxes_match_a_loop(seed):
    generator = torch.Generator().manual_seed(seed)
    ink = torch.rand(6, 9, 11, generator=generator) > 0.93
    ink[:, 4, 5] = True  # no image without ink
    boxes = bounding_boxes(ink)
    for mask, box in zip(ink, boxes):
        rows, cols = torch.nonzero(mask, as_tuple=True)
        expected = torch.zeros_like(mask)
        expected[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = 1
        assert torch.equal(box, expected)


def test_bounding_boxes_reject_bad_masks():
    with pytest.raises(ValueError, match=r"\(N, H, W\) masks, got \(4, 4\)"):
        bounding_boxes(torch.ones(4, 4, dtype=torch.bool))
    ink = torch.ones(3, 4, 4, dtype=torch.bool)
    ink[1] = False
    with pytest.raises(ValueError, match="image 1 has no ink"):
        bounding_boxes(ink)


# Kernels -----------------------------------------------------------------------


def test_energy_shares_of_known_kernels():
    laplacian = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])
    K = torch.stack([torch.ones(3, 3), SOBEL_X, SOBEL_X.T, laplacian])
    shares = kernel_energy_shares(K[:, None])
    expected = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]])
    torch.testing.assert_close(shares, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("k", [3, 5])
def test_energy_shares_add_up_and_match_dimensions_on_random_kernels(k):
    """The parts are orthogonal, so the shares add up to 1; for Gaussian
    kernels each share's mean is its part's dimension over k * k."""
    K = torch.randn(20000, k, k, generator=torch.Generator().manual_seed(0))
    shares = kernel_energy_shares(K)
    torch.testing.assert_close(shares.sum(dim=1), torch.ones(len(K)))
    odd = (k * k - 1) / 2  # pairs of opposite cells
    expected = torch.tensor([1, odd, odd]) / (k * k)
    torch.testing.assert_close(shares.mean(dim=0), expected, atol=0.01, rtol=0)


@pytest.mark.parametrize("draw", [torch.randn, lambda *shape: torch.rand(*shape) - 0.5])
def test_most_random_kernels_are_near_zero_mean(draw):
    """The chapter: most random 3 × 3 kernels put less than a tenth of their
    energy in the mean (about 63 %, for Gaussian or uniform weights)."""
    torch.manual_seed(0)
    shares = kernel_energy_shares(draw(20000, 3, 3))
    assert 0.55 < (shares[:, 0] < 0.1).float().mean() < 0.7


def test_energy_shares_reject_bad_kernels():
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 4\)"):
        kernel_energy_shares(torch.ones(2, 3, 4))
    with pytest.raises(ValueError, match=r"got shape \(2, 2, 3, 3\)"):
        kernel_energy_shares(torch.ones(2, 2, 3, 3))
    with pytest.raises(ValueError, match="all zeros"):
        kernel_energy_shares(torch.zeros(1, 3, 3))


def test_weight_cosines_of_a_network_with_itself_are_one():
    net = SmallCNN()
    assert weight_cosines(net, net) == pytest.approx([1.0, 1.0, 1.0])


# Units and depth -----------------------------------------------------------------


def test_class_selectivity_of_known_units():
    y = torch.arange(10).repeat(5)  # 50 images, 5 per class
    only_sevens = (y == 7).float()
    same_for_all = torch.ones(50)
    half = torch.where(y == 3, 2.0, 1.0)  # twice as strong for one class
    responses = torch.stack([only_sevens, same_for_all, half], dim=1)
    torch.testing.assert_close(
        class_selectivity(responses, y), torch.tensor([1.0, 0.0, 1 / 3])
    )


def test_class_selectivity_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(5,\) and 5 labels"):
        class_selectivity(torch.ones(5), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(5, 2\) and 4 labels"):
        class_selectivity(torch.ones(5, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=">= 0"):
        class_selectivity(-torch.ones(3, 2), torch.zeros(3, dtype=torch.long))


def test_top_label_share_counts_the_commonest_label():
    y = torch.tensor([0, 0, 1, 2, 0, 1])
    responses = torch.tensor([6.0, 5, 4, 3, 2, 1])[:, None]  # top 3: 0, 0, 1
    assert top_label_share(responses, y, k=3).tolist() == pytest.approx([2 / 3])


def test_field_box_of_the_chapter_4_network():
    # Chapter 4 measured the centre unit (3, 3) of block 3: 18 pixels from 5.
    assert field_box(CNN_LAYERS, 3, 3) == (5, 5, 18)
    assert field_box(CNN_LAYERS[:1], 0, 0) == (-1, -1, 3)
    assert field_box(CNN_LAYERS[:3], 2, 5) == (1, 7, 8)
    with pytest.raises(ValueError, match="no layers"):
        field_box([], 0, 0)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_a_unit_sees_exactly_its_field_box(depth):
    """Changing pixels outside the box leaves the unit as it was; every
    pixel inside the box (and on the canvas) moves it for some input."""
    torch.manual_seed(depth)
    net = SmallCNN().eval()
    size = 24 >> (depth - 1)
    for row, col in [(0, 0), (size // 2, size // 3), (size - 1, size - 2)]:
        top, left, side = field_box(CNN_LAYERS[: BLOCK_ENDS[depth - 1]], row, col)
        inside = torch.zeros(24, 24, dtype=torch.bool)
        inside[max(top, 0) : top + side, max(left, 0) : left + side] = True

        def unit(X, depth=depth, row=row, col=col):
            return net.feature_maps(X)[depth - 1][:, :, row, col].sum(dim=1)

        X = torch.rand(64, 1, 24, 24, requires_grad=True)
        (gradient,) = torch.autograd.grad(unit(X).sum(), X)
        reached = (gradient[:, 0] != 0).any(dim=0)
        assert torch.equal(reached, inside), (depth, row, col)
        with torch.no_grad():
            changed = torch.where(inside, X, torch.rand(64, 1, 24, 24))
            torch.testing.assert_close(unit(changed), unit(X), rtol=0, atol=0)


def test_crop_pads_with_zeros_past_the_border():
    image = torch.arange(1.0, 26.0).reshape(5, 5)
    torch.testing.assert_close(crop(image, 1, 2, 3), image[1:4, 2:5])
    corner = crop(image, -1, -1, 3)
    torch.testing.assert_close(corner[1:, 1:], image[:2, :2])
    assert corner[0].abs().sum() == 0 and corner[:, 0].abs().sum() == 0
    with pytest.raises(ValueError, match=r"\(H, W\) image, got \(1, 5, 5\)"):
        crop(image[None], 0, 0, 3)


def test_top_patches_are_the_strongest_images_cut_at_the_strongest_unit():
    X = torch.rand(5, 1, 24, 24)
    maps = torch.zeros(5, 2, 6, 6)
    maps[3, 1, 2, 4] = 9.0  # image 3: the strongest, at unit (2, 4)
    maps[0, 1, 5, 0] = 7.0
    maps[4, 0, 1, 1] = 8.0  # another channel
    patches, indices = top_patches(X, maps, 1, CNN_LAYERS, k=2)
    assert indices.tolist() == [3, 0]
    top, left, size = field_box(CNN_LAYERS, 2, 4)
    torch.testing.assert_close(patches[0], crop(X[3, 0], top, left, size))
    assert patches.shape == (2, 18, 18)


# Occlusion and saliency ---------------------------------------------------------


def test_occlusion_map_matches_a_loop():
    torch.manual_seed(0)
    net = SmallCNN(image_size=12).eval()
    x, label, patch, stride = torch.rand(1, 12, 12), 3, 4, 4
    found = occlusion_map(net, x, label, patch=patch, stride=stride)
    total, count = torch.zeros(12, 12), torch.zeros(12, 12)
    with torch.no_grad():
        score = net(x[None])[0, label]
        for row in range(0, 12 - patch + 1, stride):
            for col in range(0, 12 - patch + 1, stride):
                covered = x.clone()
                covered[:, row : row + patch, col : col + patch] = 0
                fall = score - net(covered[None])[0, label]
                total[row : row + patch, col : col + patch] += fall
                count[row : row + patch, col : col + patch] += 1
    torch.testing.assert_close(found, total / count)


def test_occlusion_map_rejects_bad_input():
    net = SmallCNN(image_size=8)
    with pytest.raises(ValueError, match=r"one \(C, H, W\) image"):
        occlusion_map(net, torch.rand(1, 1, 8, 8), 0)
    with pytest.raises(ValueError, match="patch 9 does not fit a 8 × 8"):
        occlusion_map(net, torch.rand(1, 8, 8), 0, patch=9)


def test_saliency_of_a_linear_model_is_its_weights():
    net = nn.Sequential(nn.Flatten(), nn.Linear(2 * 5 * 5, 10))
    X, y = torch.rand(4, 2, 5, 5), torch.tensor([0, 3, 3, 9])
    W = net[1].weight.detach().reshape(10, 2, 5, 5)
    expected = W[y].abs().sum(dim=1)
    torch.testing.assert_close(saliency(net, X, y), expected)


def test_saliency_rejects_bad_input():
    net = SmallCNN(image_size=8)
    with pytest.raises(ValueError, match=r"\(1, 8, 8\) and 1 labels"):
        saliency(net, torch.rand(1, 8, 8), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"\(2, 1, 8, 8\) and 3 labels"):
        saliency(net, torch.rand(2, 1, 8, 8), torch.tensor([0, 1, 2]))


def test_share_inside():
    maps = torch.tensor([[[1.0, 3.0], [-5.0, 0.0]]])
    masks = torch.tensor([[[True, False], [True, True]]])
    # Negative values do not count: 1 of the positive mass 4 lies inside.
    assert share_inside(maps, masks).tolist() == [0.25]
    with pytest.raises(ValueError, match=r"maps \(1, 2, 2\) and masks \(2, 2\)"):
        share_inside(maps, masks[0])


def test_background_masks_match_the_ink_count_outside_the_box():
    clean = clean_test_digits()[:40, 0]
    ink = clean > 0
    boxes = bounding_boxes(ink)
    masks = mask_background_like(ink, boxes, torch.Generator().manual_seed(0))
    assert torch.equal(masks.sum(dim=(1, 2)), ink.sum(dim=(1, 2)))
    assert not (masks & boxes).any()
    crowded = torch.ones(1, 4, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="16 ink pixels but only 0 outside"):
        mask_background_like(crowded, crowded)


def test_true_class_scores():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    X, y = torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 1, 0])
    logit, probability, correct = true_class_scores(net, X, y)
    logits = net(X).detach()
    torch.testing.assert_close(logit, logits[torch.arange(5), y])
    torch.testing.assert_close(probability, logits.softmax(1)[torch.arange(5), y])
    assert torch.equal(correct, logits.argmax(1) == y)


# Activation maximisation ---------------------------------------------------------


def test_total_variation():
    assert total_variation(torch.ones(2, 1, 5, 5)).tolist() == [0.0, 0.0]
    checkerboard = (torch.arange(6)[:, None] + torch.arange(6)) % 2
    tv = total_variation(checkerboard.float()[None, None])
    assert tv.tolist() == [2.0]  # every step is 1, down and across


def test_maximise_activation_finds_the_best_image_of_a_linear_score():
    """For a linear score the best image in [0, 1] is 1 where the weight is
    positive and 0 where it is negative."""
    W = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(0))

    def score(X):
        return (X * W).sum(dim=(1, 2, 3))

    X = maximise_activation(score, (2, 1, 6, 6), steps=200, lr=0.05)
    torch.testing.assert_close(X, (W > 0).float(), atol=1e-6, rtol=0)


def test_regularisers_keep_the_image_smooth():
    W = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(1))

    def score(X):
        return (X * W).sum(dim=(1, 2, 3))

    plain = maximise_activation(score, (1, 1, 8, 8), steps=200)
    smooth = maximise_activation(score, (1, 1, 8, 8), steps=200, tv_weight=20.0)
    assert total_variation(smooth) < 0.5 * total_variation(plain)
    assert 0 <= smooth.min() and smooth.max() <= 1


def test_maximise_activation_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\), got \(1, 6, 6\)"):
        maximise_activation(lambda X: X.sum(), (1, 6, 6))
    with pytest.raises(ValueError, match=r"shape \(2,\), got \(\)"):
        maximise_activation(lambda X: X.sum(), (2, 1, 6, 6))


def test_scores_are_the_logits_and_the_channel_maxima():
    torch.manual_seed(0)
    net = SmallCNN().eval()
    X = torch.rand(12, 1, 24, 24)
    with torch.no_grad():
        logits = net(X)
        torch.testing.assert_close(
            class_score(net)(X), logits[torch.arange(12), torch.arange(12) % 10]
        )
        channels = torch.arange(12) * 5
        last = net.feature_maps(X)[-1]
        expected = last[torch.arange(12), channels].amax(dim=(1, 2))
        # Before the ReLU: equal where the unit is on, below zero where off.
        found = channel_score(net, channels)(X)
        torch.testing.assert_close(found.clamp(min=0), expected)


# The chapter's claims, over the protocol's three seeds ----------------------------


@pytest.fixture(scope="module")
def seeds(results):
    """{seed: the numbers measured on that seed's network}."""
    first = results["what_cnns_learn"]
    others = results["what_cnns_learn_seeds"]
    found = {0: first}
    for seed in others["other_seeds"]:
        prefix = f"seed_{seed}_"
        found[seed] = {
            key[len(prefix) :]: value
            for key, value in others.items()
            if key.startswith(prefix)
        }
    return found


def test_part_2_measures_what_part_1_recorded(seeds):
    assert sorted(seeds) == [0, 1, 2]
    for seed in (1, 2):
        assert set(seeds[seed]) <= set(seeds[0])
        assert len(seeds[seed]) > 40


def over_seeds(seeds, key):
    """One number per network (seeds 0, 1 and 2): an array of three."""
    return np.array([float(found[key]) for found in seeds.values()])


def mean_effect(claim, what, values, z=2.0):
    """A claim about the networks' average: the mean of values against its
    standard error over the seeds (sample std / sqrt(3))."""
    claim.exceeds(
        what,
        effect=values.mean(),
        uncertainty=sample_sd(values) / np.sqrt(len(values)),
        z=z,
    )


def every_network(claim, what, values):
    """A claim about each network, and so about the next one trained the
    same way: the worst network's value against the spread between networks
    (the sample std, not divided: one new network is as uncertain as that)."""
    claim.exceeds(what, effect=values.min(), uncertainty=sample_sd(values))


def test_every_network_classifies_well(seeds, claim):
    every_network(
        claim,
        "every network classifies the shifted digits (accuracy - 0.9)",
        over_seeds(seeds, "test_accuracy") - 0.9,
    )


def test_the_first_layer_hardly_moves_and_the_deeper_layers_do(seeds, claim):
    """The chapter: the first layer's kernels stay close to their random
    start (median cosine above 0.9), blocks 2 and 3 turn far more."""
    c1, c2, c3 = (over_seeds(seeds, f"cosine_block_{d}") for d in (1, 2, 3))
    mean_effect(claim, "first layer barely turned: cosine above 0.9", c1 - 0.9)
    mean_effect(claim, "block 2 turned more than block 1 (cosine gap)", c1 - c2)
    mean_effect(claim, "block 3 turned more than block 2 (cosine gap)", c2 - c3)


def test_trained_kernels_split_their_energy_like_random_ones(seeds, claim):
    """The chapter: the trained kernels are near zero mean and about half
    their energy is odd, much as before training: the odd share moved by
    less than 0.1, but up (a small shift towards edges), and the mean share
    stays under 0.15."""
    trained, initial = (
        over_seeds(seeds, f"{when}_odd_share") for when in ("trained", "initial")
    )
    moved = np.abs(trained - initial)
    claim.exceeds(
        "odd share much the same before and after training: moved < 0.1",
        effect=0.1 - moved.mean(),
        uncertainty=sample_sd(moved) / np.sqrt(len(moved)),
    )
    mean_effect(
        claim,
        "training shifted the first layer a little towards edges: odd share up",
        trained - initial,
    )
    every_network(
        claim, "the odd share went up in each of the three networks", trained - initial
    )
    mean_effect(
        claim,
        "trained kernels near zero mean: mean share under 0.15",
        0.15 - over_seeds(seeds, "trained_mean_share"),
    )


def test_deeper_channels_prefer_one_class(seeds, claim):
    """The chapter: median class selectivity grows with depth, and training
    makes it (the untrained network's block 3 is far lower)."""
    b1, b2, b3 = (over_seeds(seeds, f"selectivity_block_{d}") for d in (1, 2, 3))
    untrained = over_seeds(seeds, "selectivity_initial_block_3")
    mean_effect(claim, "selectivity: block 2 above block 1", b2 - b1)
    mean_effect(claim, "selectivity: block 3 above block 2", b3 - b2)
    mean_effect(claim, "selectivity: block 3 trained above untrained", b3 - untrained)
    first = seeds[0]
    claim.exceeds(
        "block 3's selectivity far above chance (labels shuffled), seed 0",
        effect=first["selectivity_block_3"] - first["selectivity_shuffled_block_3"],
        uncertainty=sample_sd(b3),
    )


def test_block_3_s_favourite_images_share_a_label(seeds, results, claim):
    """The chapter: a block 3 channel's favourite test images share a label
    far more often than block 1's, than images drawn at random, and than
    the untrained network's block 3 (training made it)."""
    chance = results["what_cnns_learn"]["top_label_chance"]
    b1, b3 = (over_seeds(seeds, f"top_label_share_block_{d}") for d in (1, 3))
    mean_effect(claim, "favourite images share a label: block 3 over block 1", b3 - b1)
    mean_effect(
        claim, "favourite images share a label: block 3 over chance", b3 - chance
    )
    untrained = over_seeds(seeds, "top_label_share_initial_block_3")
    mean_effect(
        claim, "favourite images share a label: block 3 over untrained", b3 - untrained
    )


def test_removing_the_ink_costs_far_more_than_moving_it(seeds, results, claim):
    """The chapter: without its ink the network is at chance; the same ink
    values written onto as many background pixels, a change of about the
    same size, leave most digits recognised. Uncertainty: seed spread and
    the test set's sampling error."""
    n = results["what_cnns_learn"]["num_test"]
    first = results["what_cnns_learn"]
    assert first["moved_ink_change"] > 0.8 * first["no_ink_change"]  # matched
    no_ink = over_seeds(seeds, "no_ink_accuracy")
    moved = over_seeds(seeds, "moved_ink_accuracy")
    se = np.hypot(
        sample_sd(moved - no_ink) / np.sqrt(3),
        np.hypot(binomial_se(moved.mean(), n), binomial_se(no_ink.mean(), n)),
    )
    claim.exceeds(
        "accuracy with the ink moved far above with the ink removed",
        effect=(moved - no_ink).mean(),
        uncertainty=se,
    )
    every_network(
        claim, "with the ink moved the network is mostly right (acc - 0.5)", moved - 0.5
    )
    claim.within(
        "without its ink the network is at chance (accuracy - 0.1)",
        effect=no_ink.mean() - 0.1,
        uncertainty=np.hypot(sample_sd(no_ink) / np.sqrt(3), binomial_se(0.1, n)),
    )


def test_occlusion_and_saliency_concentrate_on_the_digit(seeds, results, claim):
    """The chapter: the occlusion map puts most of its mass inside the
    digit's box, far above the box's share of the canvas; plain saliency
    more than twice the box's share, and on the ink far above the ink's."""
    first = results["what_cnns_learn"]
    occlusion = over_seeds(seeds, "occlusion_box_share")
    every_network(
        claim,
        "occlusion: most of the mass in the box (share - 0.5)",
        occlusion - 0.5,
    )
    saliency = over_seeds(seeds, "saliency_box_share")
    every_network(
        claim,
        "saliency in the box over twice the box's area share",
        saliency - 2 * first["box_share"],
    )
    every_network(
        claim,
        "saliency on the ink above the ink's area share",
        over_seeds(seeds, "saliency_ink_share") - first["ink_share"],
    )
    every_network(
        claim,
        "saliency spills: much of it outside the box (0.8 - share)",
        0.8 - saliency,
    )


def test_the_untrained_network_is_the_baseline(seeds, results, claim):
    """The chapter: before training, both maps already favour the box (more
    than its area share), and training raises both."""
    first = results["what_cnns_learn"]
    untrained_occlusion = over_seeds(seeds, "occlusion_initial_box_share")
    untrained_saliency = over_seeds(seeds, "saliency_initial_box_share")
    every_network(
        claim,
        "untrained occlusion already favours the box",
        untrained_occlusion - first["occlusion_box_area"],
    )
    every_network(
        claim,
        "untrained saliency already favours the box",
        untrained_saliency - first["box_share"],
    )
    mean_effect(
        claim,
        "training raised the occlusion share in the box",
        over_seeds(seeds, "occlusion_box_share") - untrained_occlusion,
    )
    mean_effect(
        claim,
        "training raised the saliency share in the box",
        over_seeds(seeds, "saliency_box_share") - untrained_saliency,
    )


def test_made_images_beat_every_test_digit(seeds, claim):
    """The chapter: images made for a class reach logits beyond the best
    test digit's: every class's without regularisation, on average with it
    (the weakest regularised class is too near 1 and too spread over the
    networks for a claim: the prose says so); the regularised ones are far
    smoother, nearer the real digits' total variation."""
    real_tv = seeds[0]["real_total_variation"]
    every_network(
        claim,
        "plain class images: every class's logit beats the best test digit",
        over_seeds(seeds, "plain_class_ratio_min") - 1,
    )
    every_network(
        claim,
        "readable class images: on average their logit beats the best test digit",
        over_seeds(seeds, "readable_class_ratio_mean") - 1,
    )
    plain, readable = (
        over_seeds(seeds, f"{name}_total_variation") for name in ("plain", "readable")
    )
    mean_effect(
        claim,
        "regularised class images smoother, nearer the real digits' TV",
        np.abs(plain - real_tv) - np.abs(readable - real_tv),
    )


def test_made_images_excite_channels_beyond_the_test_digits(seeds, claim):
    """The chapter: on average over its 16 channels, each network's made
    images go beyond the best test digit, with or without regularisation;
    the regularised ones by less. Single channels may stay below (the prose
    quotes how many), so no claim is made about every channel."""
    plain = over_seeds(seeds, "channel_plain_ratio_mean")
    readable = over_seeds(seeds, "channel_readable_ratio_mean")
    every_network(claim, "plain channel images: mean ratio above 1", plain - 1)
    every_network(claim, "regularised channel images: mean ratio above 1", readable - 1)
    mean_effect(claim, "regularisation costs channel activation", plain - readable)


def test_regularised_images_fool_another_network_too(results, claim):
    """The chapter: the other seed's network recognises the regularised
    images more often than the plain ones, and the plain ones still far
    more often than chance. Uncertainty: binomial, on the images swapped."""
    found = results["what_cnns_learn_seeds"]
    n = found["transfer_images"]
    readable, plain = found["transfer_readable"], found["transfer_plain"]
    claim.exceeds(
        "the other network recognises regularised images more than plain",
        effect=readable - plain,
        uncertainty=np.hypot(binomial_se(readable, n), binomial_se(plain, n)),
    )
    claim.exceeds(
        "plain images still transfer above chance (0.1)",
        effect=plain - 0.1,
        uncertainty=binomial_se(plain, n),
    )


def test_the_chapter_s_counts(results):
    first = results["what_cnns_learn"]
    assert first["num_kernels"] == 16
    assert first["num_channels_maximised"] == 16
    assert first["test_accuracy"] == pytest.approx(first["as_is_accuracy"])


def test_moving_the_ink_keeps_its_values_and_count():
    X = torch.rand(3, 1, 6, 6)
    ink = torch.zeros(3, 6, 6, dtype=torch.bool)
    ink[:, 2:4, 2:4] = True
    boxes = bounding_boxes(ink)
    background = mask_background_like(ink, boxes, torch.Generator().manual_seed(0))
    moved = move_ink(X, ink, background, torch.Generator().manual_seed(1))
    for i in range(3):
        found = moved[i, 0][background[i]].sort().values
        torch.testing.assert_close(found, X[i, 0][ink[i]].sort().values)
        assert torch.equal(moved[i, 0][~background[i]], X[i, 0][~background[i]])
    with pytest.raises(ValueError, match="4 ink pixels but 0 background"):
        move_ink(X, ink, torch.zeros_like(ink))
