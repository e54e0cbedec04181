"""Chapter 1: the Sobel kernel, the digits data, the fixed-filter pipeline."""

import base64
import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data, filters

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
    assert torch.equal(SOBEL_X, torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]))
    assert history["train_loss"][1] < history["train_loss"][0]


def test_fixed_filter_pipeline_is_far_above_chance(results):
    pipeline = results["why_cnns_pipeline"]
    assert pipeline["chance_accuracy"] == pytest.approx(0.1)
    assert pipeline["sobel_test_accuracy"] > 0.85  # chance is 0.10


def test_the_edge_map_does_not_beat_raw_pixels(results):
    """The chapter says the hand-made kernel did not help on the digits."""
    pipeline = results["why_cnns_pipeline"]
    assert pipeline["sobel_test_accuracy"] <= pipeline["pixels_test_accuracy"]


def test_image_facts_the_chapter_cites(results):
    images = results["why_cnns_images"]
    assert (images["photo_height"], images["photo_width"]) == (512, 512)
    assert images["sift_descriptor_length"] == 128
    assert images["sift_keypoints"] > 50


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


@pytest.mark.parametrize(
    ("n", "batch_size"), [(1347, 64), (1000, 64), (64, 64), (10, 64)]
)
def test_mini_batches_cover_each_image_once_in_near_equal_batches(n, batch_size):
    batches = mini_batches(n, batch_size, torch.Generator().manual_seed(0))
    sizes = [len(batch) for batch in batches]
    assert sorted(torch.cat(batches).tolist()) == list(range(n))
    assert max(sizes) - min(sizes) <= 1
    assert min(sizes) >= min(n, batch_size)  # no batch of a few leftovers
