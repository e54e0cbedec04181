"""Chapter 1: the Sobel kernel, the digits data, the fixed-filter pipeline,
the claims the chapter makes about it, and the book's colour convention."""

import ast
import base64
import io
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from claims import binomial_se, mean_se, sample_sd
from PIL import Image
from skimage import data, filters
from why_cnns_ops import show_signed, show_unsigned

from book import (
    EMBEDDED_PNG,
    SOBEL_X,
    SOBEL_Y,
    FixedFilterSoftmax,
    count_parameters,
    edge_magnitude,
    load_dataset,
    mini_batches,
    output_dir,
    save_figure,
    setup,
    sobel,
    train,
)

INTERIOR = (slice(1, -1), slice(1, -1))  # the borders are padded differently


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("seed", range(5))
def test_sobel_matches_scikit_image_away_from_the_border(seed):
    image = np.random.default_rng(seed).random((23, 31), dtype=np.float32)
    gx, gy = sobel(image).numpy()
    # scikit-image divides by 4, the sum of the kernel's positive weights.
    np.testing.assert_allclose(
        gx[INTERIOR] / 4, filters.sobel_v(image)[INTERIOR], atol=1e-6
    )
    np.testing.assert_allclose(
        gy[INTERIOR] / 4, filters.sobel_h(image)[INTERIOR], atol=1e-6
    )


def test_sobel_matches_scikit_image_on_a_photo():
    image = data.camera().astype(np.float32) / 255
    gx, gy = sobel(image).numpy()
    np.testing.assert_allclose(
        gx[INTERIOR] / 4, filters.sobel_v(image)[INTERIOR], atol=1e-5
    )
    np.testing.assert_allclose(
        gy[INTERIOR] / 4, filters.sobel_h(image)[INTERIOR], atol=1e-5
    )


def test_sobel_kernels_detect_the_edges_they_are_named_for():
    step = torch.zeros(6, 6)
    step[:, 3:] = 1  # dark left half, bright right half: one vertical edge
    gx, gy = sobel(step)
    assert gx[2, 2] > 0 and gx[2, 0] == 0
    assert torch.all(gy[1:-1, :] == 0)
    assert torch.equal(SOBEL_Y, SOBEL_X.T)


def test_shapes_through_the_pipeline(digits):
    X = digits.X_train[:5]
    assert sobel(X).shape == (5, 2, 8, 8)
    assert sobel(X[0, 0]).shape == (2, 8, 8)
    assert edge_magnitude(X).shape == (5, 1, 8, 8)
    net = FixedFilterSoftmax(edge_magnitude, 64)
    assert net(X).shape == (5, 10)
    assert count_parameters(net) == 64 * 10 + 10


@pytest.mark.parametrize(
    "images, message",
    [
        (torch.zeros(3, 8, 8), r"\(3, 8, 8\)"),
        (torch.zeros(2, 3, 8, 8), r"\(2, 3, 8, 8\)"),
        (torch.zeros(1, 1, 8, 8, 1), r"\(1, 1, 8, 8, 1\)"),
        (torch.zeros(0, 0), r"empty image of shape \(1, 1, 0, 0\)"),
        (torch.zeros(0, 1, 8, 8), r"empty image of shape \(0, 1, 8, 8\)"),
    ],
)
def test_sobel_rejects_bad_shapes_naming_them(images, message):
    with pytest.raises(ValueError, match=message):
        sobel(images)


def test_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")


def test_digits_split_is_stratified_and_scaled(digits):
    assert digits.X_train.shape[1:] == (1, 8, 8)
    assert len(digits.X_train) + len(digits.X_test) == 1797
    assert 0 <= digits.X_train.min() and digits.X_train.max() <= 1
    train_share = torch.bincount(digits.y_train) / len(digits.y_train)
    test_share = torch.bincount(digits.y_test) / len(digits.y_test)
    assert torch.allclose(train_share, test_share, atol=0.01)


def test_training_changes_only_the_softmax(digits):
    torch.manual_seed(0)
    net = FixedFilterSoftmax(edge_magnitude, 64)
    before = net.classifier.weight.detach().clone()
    history = train(net, digits, num_epochs=2)
    assert not torch.equal(before, net.classifier.weight)
    trainable = [name for name, p in net.named_parameters() if p.requires_grad]
    assert trainable == ["classifier.weight", "classifier.bias"]
    assert history["train_loss"][1] < history["train_loss"][0]


def test_the_same_weights_added_to_every_class_change_no_probability(digits):
    """Figure 1.9 draws each class's weights minus the classes' mean: the
    page says the mean alone changes no probability."""
    torch.manual_seed(0)
    net = FixedFilterSoftmax(edge_magnitude, 64)
    X = digits.X_test[:50]
    before = torch.softmax(net(X), dim=1)
    with torch.no_grad():
        net.classifier.weight += torch.randn(64)  # one vector, every class
    assert torch.allclose(torch.softmax(net(X), dim=1), before, atol=1e-6)


def test_a_kernel_fed_straight_to_the_softmax_is_a_linear_map_of_pixels(digits):
    """The page's first question: without a nonlinearity after it, a learned
    kernel and the softmax layer make scores that one linear layer on the
    pixels gives too, with the weights read off from the 64 one-pixel images."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)
    classifier = torch.nn.Linear(64, 10)

    def scores(X):
        return classifier(conv(X).flatten(1))

    with torch.no_grad():
        bias = scores(torch.zeros(1, 1, 8, 8))
        weights = scores(torch.eye(64).reshape(64, 1, 8, 8)) - bias  # (64, 10)
        X = digits.X_test[:50]
        assert torch.allclose(scores(X), X.flatten(1) @ weights + bias, atol=1e-4)
        with_relu = classifier(torch.relu(conv(X)).flatten(1))
        assert not torch.allclose(with_relu, X.flatten(1) @ weights + bias, atol=1e-2)


def test_no_gradient_reaches_the_kernels_even_if_they_could_learn(digits):
    """The page: the Sobel kernels are constants, and the torch.no_grad() block
    "would keep even a feature that could learn (say, a convolution layer
    passed in its place) fixed: no gradient reaches it"."""
    torch.manual_seed(0)
    kernel = torch.nn.Conv2d(1, 1, 3, padding=1)
    net = FixedFilterSoftmax(kernel, 64)
    before = kernel.weight.detach().clone()
    train(net, digits, num_epochs=1)
    assert kernel.weight.grad is None
    assert torch.equal(kernel.weight, before)


def test_hog_length_is_blocks_times_cells_times_orientation_bins(results):
    """The page: 16 × 16-pixel cells, overlapping blocks of 2 × 2 cells, each
    cell a histogram of 9 orientation bins over 0 to 180 degrees (Dalal and
    Triggs's choice)."""
    images = results["why_cnns_images"]
    assert images["hog_orientations"] == 9
    cells = images["photo_width"] // 16  # cells per side
    blocks = cells - 2 + 1  # a 2 × 2 block slides one cell at a time
    assert images["hog_length"] == blocks**2 * (2 * 2) * 9


def test_the_hog_figure_s_dots_are_its_crossings_and_do_not_set_its_range(
    results,
):
    """Figure 1.3's caption: the strokes' crossings at the cells' centres are
    darker than the colour range, which the pixels away from them set."""
    images = results["why_cnns_images"]
    assert images["hog_centre_largest"] > images["hog_limit"]
    assert images["hog_limit"] < images["hog_limit_all_pixels"]


def test_the_pipeline_sees_every_digit_once_and_quotes_its_spread(results):
    pipeline = results["why_cnns_pipeline"]
    n = pipeline["num_cv_test"]
    assert n == pipeline["num_images"] == len(pipeline["sobel_correct_counts"])
    for name in ("sobel", "pixels"):
        accuracies = pipeline[f"{name}_accuracies"]
        assert len(accuracies) == pipeline["num_seeds"] >= 2
        assert pipeline[f"{name}_test_accuracy_std"] == pytest.approx(
            sample_sd(accuracies)
        )
        counts = np.array(pipeline[f"{name}_correct_counts"])
        assert counts.sum() / (n * len(accuracies)) == pytest.approx(
            np.mean(accuracies)
        )
    assert pipeline["sampling_se"] == pytest.approx(
        math.sqrt(
            pipeline["sobel_test_accuracy"] * (1 - pipeline["sobel_test_accuracy"]) / n
        )
    )


# Claims. Each accuracy is measured over 4-fold cross-validation, every digit
# a test image once, for each seed; the uncertainty adds the seed spread of
# the mean (sample std / sqrt(seeds)) and the test images' sampling error.


def paired_difference_se(pipeline, a="pixels", b="sobel"):
    """The standard error of mean(a) - mean(b) accuracy. Both models are
    scored on the same digits, so the test-set error is that of the per-digit
    difference (the analytic form of a paired bootstrap over test images);
    the seed spread of the per-seed difference adds to it."""
    seeds = pipeline["num_seeds"]
    per_digit = (
        np.array(pipeline[f"{a}_correct_counts"])
        - np.array(pipeline[f"{b}_correct_counts"])
    ) / seeds
    test_images = sample_sd(per_digit) / math.sqrt(per_digit.size)
    return math.hypot(test_images, seeds_se(pipeline, a, b))


def seeds_se(pipeline, a="pixels", b="sobel"):
    """The seed spread of the mean per-seed difference, a - b."""
    per_seed = np.subtract(pipeline[f"{a}_accuracies"], pipeline[f"{b}_accuracies"])
    return sample_sd(per_seed) / math.sqrt(len(per_seed))


def test_the_printed_standard_errors_are_the_tests(results):
    """The page prints the paired standard error, its z, and the unpaired one
    that the same accuracies would have on separate test digits; the claims
    below use the same numbers."""
    pipeline = results["why_cnns_pipeline"]
    paired = paired_difference_se(pipeline)
    assert pipeline["paired_se"] == pytest.approx(paired, rel=1e-9)
    assert pipeline["paired_z"] == pytest.approx(
        pipeline["pixels_minus_sobel"] / paired, rel=1e-9
    )
    n = pipeline["num_cv_test"]
    accuracies = [pipeline["sobel_test_accuracy"], pipeline["pixels_test_accuracy"]]
    binomial = math.sqrt(sum(a * (1 - a) for a in accuracies) / n)
    unpaired = math.hypot(binomial, seeds_se(pipeline))
    assert pipeline["unpaired_se"] == pytest.approx(unpaired, rel=1e-9)
    # "Had each model been scored on digits of its own ... about": larger.
    assert pipeline["unpaired_se"] > pipeline["paired_se"]
    # Each digit's difference in right answers needs at least that many runs
    # in which the two models disagreed.
    counts = np.subtract(
        pipeline["pixels_correct_counts"], pipeline["sobel_correct_counts"]
    )
    runs = n * pipeline["num_seeds"]
    assert pipeline["disagreement_share"] * runs >= np.abs(counts).sum() - 1e-9


def test_the_one_change_comparisons_quote_their_paired_errors(results):
    """The signed and unsigned maps against the edge map, the pixels and each
    other: the page's differences and standard errors are the recorded runs'."""
    pipeline = results["why_cnns_pipeline"]
    pairs = [("signed", "sobel"), ("signed", "pixels")]
    pairs += [("unsigned", "sobel"), ("unsigned", "signed"), ("unsigned", "pixels")]
    for a, b in pairs:
        mean = np.mean(
            np.subtract(pipeline[f"{a}_accuracies"], pipeline[f"{b}_accuracies"])
        )
        se = paired_difference_se(pipeline, a, b)
        assert pipeline[f"{a}_minus_{b}"] == pytest.approx(mean, abs=1e-12)
        assert pipeline[f"{a}_minus_{b}_se"] == pytest.approx(se, rel=1e-9)
        assert pipeline[f"{a}_minus_{b}_z"] == pytest.approx(mean / se, rel=1e-9)


@pytest.mark.parametrize(
    "better, worse, what",
    [
        # the magnitude not taken: one step from the edge map
        ("signed", "sobel", "the signed Sobel maps beat the edge map"),
        # the two maps kept apart, not merged into one length
        ("unsigned", "sobel", "the unsigned maps, kept apart, beat the edge map"),
        # absolute values: the sign dropped, the features no longer linear
        ("unsigned", "signed", "the unsigned maps beat the signed maps"),
        # fixed kernels and absolute values, against no kernel at all
        ("unsigned", "pixels", "the unsigned Sobel maps beat the pixels"),
    ],
)
def test_the_one_change_comparisons_the_page_calls_clear(
    results, claim, better, worse, what
):
    """The page: each of these models classifies clearly more digits right
    than the other, tested on the same digits (paired)."""
    pipeline = results["why_cnns_pipeline"]
    claim.exceeds(
        what,
        effect=pipeline[f"{better}_minus_{worse}"],
        uncertainty=paired_difference_se(pipeline, better, worse),
    )


def test_the_signed_maps_and_the_pixels_are_not_told_apart(results, claim):
    """The page: with the sign kept, Sobel's kernels and the raw pixels show
    no clear difference."""
    pipeline = results["why_cnns_pipeline"]
    claim.within(
        "the signed Sobel maps and the pixels: no clear difference",
        effect=pipeline["signed_minus_pixels"],
        uncertainty=paired_difference_se(pipeline, "signed", "pixels"),
    )


def test_the_two_models_agree_on_most_runs(results, claim):
    """The page: "most digits are right for both models or wrong for both";
    they disagree in only X % of the runs on a digit."""
    pipeline = results["why_cnns_pipeline"]
    share = pipeline["disagreement_share"]
    runs = pipeline["num_cv_test"] * pipeline["num_seeds"]
    claim.exceeds(
        "the Sobel and the pixel model agree on most runs",
        effect=0.5 - share,
        uncertainty=binomial_se(share, runs),
    )


def edge_shares():
    """Recomputed here, independently of the snippet: over every digit, the
    share of ink pixels (at least half dark) and of blank pixels touching ink
    (8-neighbourhood) whose edge value exceeds 1."""
    from scipy.ndimage import binary_dilation
    from sklearn.datasets import load_digits

    X = load_digits().images / 16.0
    edges = edge_magnitude(torch.from_numpy(X).float().unsqueeze(1))[:, 0].numpy()
    ink = X >= 0.5
    square = np.ones((1, 3, 3), bool)  # no dilation across digits
    beside = binary_dilation(ink, structure=square) & (X == 0)
    return (edges[ink] > 1).mean(), (edges[beside] > 1).mean(), ink.sum(), beside.sum()


def test_the_digits_edge_maps_cover_the_strokes_and_beside_them(results, claim):
    """The page: at 8 × 8 the edge map "is large on the strokes and beside them
    alike": most ink pixels, and most blank pixels touching a stroke, have an
    edge value above 1 (of a colour bar that runs past 4)."""
    pipeline = results["why_cnns_pipeline"]
    ink_share, beside_share, ink, beside = edge_shares()
    assert pipeline["edge_threshold"] == 1
    assert (pipeline["ink_pixels"], pipeline["beside_pixels"]) == (ink, beside)
    assert pipeline["ink_strong_share"] == pytest.approx(ink_share, abs=1e-6)
    assert pipeline["beside_strong_share"] == pytest.approx(beside_share, abs=1e-6)
    for where, share, n in [("ink", ink_share, ink), ("beside", beside_share, beside)]:
        claim.exceeds(
            f"most {where} pixels have an edge value above 1",
            effect=share - 0.5,
            uncertainty=binomial_se(share, n),
        )


def test_fixed_filter_pipeline_is_far_above_chance(results, claim):
    """The page: the pipeline classifies X % "far above the 10 % of guessing"
    (ten classes in equal shares). "Far": at least ten standard errors."""
    pipeline = results["why_cnns_pipeline"]
    claim.exceeds(
        "the fixed-filter pipeline is far above chance",
        effect=pipeline["sobel_test_accuracy"] - pipeline["chance_accuracy"],
        uncertainty=mean_se(pipeline["sobel_accuracies"], pipeline["num_cv_test"]),
        z=10,
    )


def test_raw_pixels_beat_the_edge_map(results, claim):
    """The page: "the baseline on raw pixels scores higher ... The famous edge
    detector did not help", and the summary: "the edge map, fed to a softmax
    this way, did worse than the raw pixels" (why, it does not test). Then:
    "The difference would still be more than two standard errors if the true
    standard error were twice this one": folds share training digits, so the
    paired standard error is approximate."""
    pipeline = results["why_cnns_pipeline"]
    claim.exceeds(
        "softmax on raw pixels beats softmax on the Sobel edge map",
        effect=pipeline["pixels_minus_sobel"],
        uncertainty=paired_difference_se(pipeline),
    )
    claim.exceeds(
        "... and would with twice the paired standard error",
        effect=pipeline["pixels_minus_sobel"],
        uncertainty=2 * paired_difference_se(pipeline),
    )


def test_image_facts_the_chapter_cites(results):
    images = results["why_cnns_images"]
    assert (images["photo_height"], images["photo_width"]) == (512, 512)
    assert images["sift_descriptor_length"] == 128
    assert images["sift_keypoints"] > 50


# The colour convention (chapter 1 states it for the whole book) -------------


def test_signed_maps_are_red_positive_blue_negative_white_zero():
    fig, ax = plt.subplots()
    image = show_signed(ax, np.array([[-3.0, 0.0, 1.0]]))
    low, high = image.get_clim()
    assert (low, high) == (-3, 3)  # symmetric about zero
    red, _, blue, _ = image.to_rgba(2.5)
    assert red > 0.5 > blue  # positive: red
    red, _, blue, _ = image.to_rgba(-2.5)
    assert blue > 0.5 > red  # negative: blue
    assert min(image.to_rgba(0.0)[:3]) > 0.95  # zero: white
    assert image.colorbar is not None
    plt.close(fig)


def test_unsigned_maps_are_white_at_zero_and_refuse_negatives():
    fig, ax = plt.subplots()
    image = show_unsigned(ax, np.array([[0.0, 2.0]]))
    assert image.get_clim() == (0, 2)
    assert min(image.to_rgba(0.0)[:3]) > 0.95  # zero: white
    assert max(image.to_rgba(2.0)[:3]) < 0.05  # the largest value: black
    assert image.colorbar is not None
    with pytest.raises(ValueError, match="minimum of -1"):
        show_unsigned(ax, np.array([[-1.0, 2.0]]))
    with pytest.raises(ValueError, match="colour range must be positive"):
        show_signed(ax, np.zeros((2, 2)))
    plt.close(fig)


SNIPPETS = Path(__file__).resolve().parent.parent / "snippets"


@pytest.mark.parametrize("name", ["why_cnns_images", "why_cnns_pipeline", "explorer"])
def test_maps_use_the_books_colours_only(name):
    """Chapter 1's figures and the explorer's: a map is drawn by show_signed or
    show_unsigned, or with a colour map named by the convention (SIGNED,
    UNSIGNED), or grey for a photo or a digit. The explorer draws only maps
    (no photo), so never black at zero."""
    tree = ast.parse((SNIPPETS / f"{name}.py").read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    maps = [
        keyword.value
        for node in calls
        for keyword in node.keywords
        if keyword.arg == "cmap"
    ]
    helpers = [
        node
        for node in calls
        if isinstance(node.func, ast.Name)
        and node.func.id in ("show_signed", "show_unsigned")
    ]
    assert maps or helpers, f"{name} draws no map"
    greys = ("gray_r",) if name == "explorer" else ("gray", "gray_r")
    for value in maps:
        named = isinstance(value, ast.Name) and value.id in ("SIGNED", "UNSIGNED")
        grey = isinstance(value, ast.Constant) and value.value in greys
        assert named or grey, ast.unparse(value)


# save_figure (book.py): photos and maps are embedded as palette PNGs ---------


def embedded_pixels(svg):
    """Every raster embedded in an SVG text, decoded to RGBA arrays."""
    return [
        np.asarray(Image.open(io.BytesIO(base64.b64decode(m.group(1)))).convert("RGBA"))
        for m in EMBEDDED_PNG.finditer(svg)
    ]


def figure_with_rasters():
    """A colour-mapped photo, a masked map (transparent pixels) and a random
    RGBA image with far more than 256 colours."""
    setup()
    photo = data.camera().astype(np.float32) / 255
    fig, axes = plt.subplots(1, 3)
    axes[0].imshow(photo, cmap="RdBu")
    axes[1].imshow(np.ma.masked_less(photo, 0.5), cmap="viridis")
    axes[2].imshow(np.random.default_rng(0).random((40, 40, 4)))
    return fig


def test_save_figure_keeps_every_pixel_and_shrinks_colour_maps():
    fig = figure_with_rasters()
    plain = io.StringIO()
    fig.savefig(plain, format="svg", bbox_inches="tight", metadata={"Date": None})
    save_figure(fig, "rasters")
    saved = (output_dir() / "rasters.svg").read_text()
    before, after = embedded_pixels(plain.getvalue()), embedded_pixels(saved)
    assert len(before) == len(after) == 3
    for original, stored in zip(before, after, strict=True):
        np.testing.assert_array_equal(stored, original)
    assert (after[1][..., 3] == 0).any()  # the mask stayed transparent
    assert len(saved) < 0.75 * len(plain.getvalue())


def test_save_figure_is_byte_identical_between_runs():
    save_figure(figure_with_rasters(), "first")
    save_figure(figure_with_rasters(), "second")
    first, second = (output_dir() / f"{n}.svg" for n in ("first", "second"))
    assert first.read_bytes() == second.read_bytes()


def test_sift_figure_stores_the_half_size_photo_pixel_for_pixel(results):
    """The SIFT figure embeds the half-size photo with its own 256 pixels a
    side: interpolated pixels would add bytes to the page and no detail."""
    results["why_cnns_images"]  # runs the snippet first if its outputs are stale
    svg = (results.folder / "why_cnns_images" / "sift.svg").read_text()
    (photo,) = embedded_pixels(svg)
    assert photo.shape[:2] == (256, 256)


@pytest.mark.parametrize(
    ("n", "batch_size"), [(1347, 64), (1000, 64), (64, 64), (10, 64)]
)
def test_mini_batches_cover_each_image_once_in_near_equal_batches(n, batch_size):
    batches = mini_batches(n, batch_size, torch.Generator().manual_seed(0))
    sizes = [len(batch) for batch in batches]
    assert sorted(torch.cat(batches).tolist()) == list(range(n))
    assert max(sizes) - min(sizes) <= 1
    assert min(sizes) >= min(n, batch_size)  # no batch of a few leftovers


def test_the_sobel_x_map_of_a_digit_can_be_undone():
    """Exercise 1's hint: with zero padding, the Sobel x map of an 8 × 8 image
    is an invertible linear map of its pixels; the page adds that at odd
    widths it is not."""
    for width, invertible in [(8, True), (7, False), (9, False)]:
        pixels = width * width
        one_pixel_each = torch.eye(pixels).reshape(pixels, 1, width, width)
        matrix = sobel(one_pixel_each)[:, 0].reshape(pixels, pixels)
        rank = np.linalg.matrix_rank(matrix.double().numpy())
        assert (rank == pixels) == invertible, (width, rank)
