"""The convolution explorer's Python side: feature_map, presets, images."""

import importlib
import inspect
import json
import shutil
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from conftest import skip_or_fail
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sklearn.datasets import load_digits
from why_cnns_ops import SIGNED, UNSIGNED

from book import SOBEL_X, SOBEL_Y
from tools.runner import BUILD_DIR


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    """The snippet as a module; importing it runs its cells, so into a tmp dir."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LK_OUTPUT_DIR", str(tmp_path_factory.mktemp("explorer")))
        return importlib.import_module("explorer")


def reference_feature_map(X, K, stride, padding, bias=0.0):
    """The definition, one output at a time, with explicit zero padding."""
    X = np.pad(np.asarray(X, dtype=np.float64), padding)
    K = np.asarray(K, dtype=np.float64)
    k = K.shape[0]
    rows = range(0, X.shape[0] - k + 1, stride)
    cols = range(0, X.shape[1] - k + 1, stride)
    return bias + np.array(
        [[np.sum(K * X[i : i + k, j : j + k]) for j in cols] for i in rows]
    )


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(3, 12),
    width=st.integers(3, 12),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    bias=st.floats(-2, 2),
    seed=st.integers(0, 2**16),
)
def test_feature_map_matches_the_definition(
    explorer, height, width, stride, padding, bias, seed
):
    rng = np.random.default_rng(seed)
    X, K = rng.random((height, width)), rng.normal(size=(3, 3))
    Y = explorer.feature_map(X, K, stride, padding, bias).numpy()
    expected = reference_feature_map(X, K, stride, padding, bias)
    np.testing.assert_allclose(Y, expected, rtol=1e-12, atol=1e-12)
    assert Y.shape == (
        explorer.output_size(height, 3, stride, padding),
        explorer.output_size(width, 3, stride, padding),
    )


def test_the_page_claims_about_output_size(explorer):
    # "Padding 1 at stride 1 keeps the input's size"; "without padding each
    # side loses one"; "stride 2: about half as many rows".
    for size in (8, 128):
        assert explorer.output_size(size, 3, stride=1, padding=1) == size
        assert explorer.output_size(size, 3, stride=1, padding=0) == size - 2
        assert abs(explorer.output_size(size, 3, stride=2) - size / 2) <= 1


def test_presets_are_the_book_kernels(explorer):
    presets = {name: torch.tensor(K) for name, K in explorer.PRESETS.items()}
    assert list(presets) == [
        "identity",
        "box blur",
        "sharpen",
        "Sobel x",
        "Sobel y",
        "Laplacian",
    ]
    assert torch.equal(presets["Sobel x"], SOBEL_X)
    assert torch.equal(presets["Sobel y"], SOBEL_Y)
    assert presets["box blur"].sum().item() == pytest.approx(1)
    for name in ("sharpen", "Laplacian"):  # flat regions: 1 and 0
        assert presets[name].sum().item() == (1 if name == "sharpen" else 0)


def test_sobel_x_finds_vertical_edges_and_sobel_y_horizontal_ones(explorer):
    vertical = np.zeros((9, 9))
    vertical[:, 5:] = 1  # dark left half, bright right half
    horizontal = vertical.T
    sobel_x, sobel_y = explorer.PRESETS["Sobel x"], explorer.PRESETS["Sobel y"]
    assert explorer.feature_map(vertical, sobel_x).abs().max() == 4
    assert explorer.feature_map(vertical, sobel_y).abs().max() == 0
    assert explorer.feature_map(horizontal, sobel_y).abs().max() == 4
    assert explorer.feature_map(horizontal, sobel_x).abs().max() == 0


def test_identity_copies_and_box_blur_averages(explorer):
    X = np.random.default_rng(0).random((6, 7))
    identity = explorer.feature_map(X, explorer.PRESETS["identity"], padding=1)
    np.testing.assert_array_equal(identity.numpy(), X)
    blur = explorer.feature_map(X, explorer.PRESETS["box blur"]).numpy()
    assert blur[0, 0] == pytest.approx(X[:3, :3].mean())


@pytest.mark.parametrize(
    "X, K, stride, padding, message",
    [
        (np.zeros((4, 4, 1)), np.zeros((3, 3)), 1, 0, r"shapes \(4, 4, 1\) and"),
        (np.zeros((4, 4)), np.zeros((3, 2)), 1, 0, r"square .* \(3, 2\)"),
        (np.zeros((4, 4)), np.zeros((3, 3)), 0, 0, "stride 0"),
        (np.zeros((4, 4)), np.zeros((3, 3)), 1, -1, "padding -1"),
        (np.zeros((2, 5)), np.zeros((3, 3)), 1, 0, "does not fit in a 2 × 5"),
    ],
)
def test_bad_input_is_a_value_error_that_names_it(
    explorer, X, K, stride, padding, message
):
    with pytest.raises(ValueError, match=message):
        explorer.feature_map(X, K, stride, padding)


def test_exported_images_and_reference_maps(explorer, results):
    out = BUILD_DIR / "explorer"
    recorded = results["explorer"]
    images = explorer.explorer_images()
    for name, pixels in images.items():
        saved = np.asarray(Image.open(out / f"{name}.png"))
        np.testing.assert_array_equal(saved, pixels)
    assert images["photo"].shape == (recorded["photo_size"],) * 2
    assert images["digit"].shape == (recorded["digit_size"],) * 2
    references = np.load(out / "reference_maps.npz")
    assert len(references.files) == 2 * recorded["num_presets"]
    photo = references["photo/identity"]
    assert photo.shape == (recorded["photo_output_size"],) * 2
    np.testing.assert_array_equal(photo, images["photo"][1:-1, 1:-1] / 255)


def test_the_digit_is_a_three(explorer):
    # The page's alt text says so.
    index = inspect.signature(explorer.explorer_images).parameters["digit_index"]
    assert load_digits().target[index.default] == 3


# The page's colours follow the book's convention (chapter 1, why_cnns_ops),
# checked on the page's own draw() run by Node; the browser tests check the
# same on the rendered canvas.
EXPLORER_JS = Path(__file__).resolve().parent.parent / "docs/javascripts/explorer.js"


def closing(source, start, pair):
    """The index of the bracket that closes the one at source[start]."""
    depth = 0
    for end in range(start, len(source)):
        depth += {pair[0]: 1, pair[1]: -1}.get(source[end], 0)
        if depth == 0:
            return end
    raise ValueError(f"{source[start]!r} at {start} is not closed")


def js_function(source, name):
    """The text of `function name(...) { ... }` in source, brackets matched
    (the parameters may hold braces: default options)."""
    start = source.index(f"function {name}(")
    parameters_end = closing(source, source.index("(", start), "()")
    body = source.index("{", parameters_end)
    return source[start : closing(source, body, "{}") + 1]


def run_node(script):
    """What a Node script prints, as JSON."""
    node = shutil.which("node")
    if node is None:
        skip_or_fail("Node.js not found: the explorer's script needs it")
    run = subprocess.run(
        [node, "-e", script], capture_output=True, text=True, check=True
    )
    return json.loads(run.stdout)


def drawn_colours(values, options=None):
    """RGB of each value in one row, as the page's draw() colours it."""
    script = js_function(EXPLORER_JS.read_text(), "draw") + (
        "\nconst out = {};"
        "\nconst canvas = {style: {}, getContext: () => ({"
        "\n  createImageData: (w, h) => ({data: new Uint8ClampedArray(4 * w * h)}),"
        "\n  putImageData: (image) => { out.rgba = Array.from(image.data); },"
        "\n})};"
        f"\ndraw(canvas, [{json.dumps(values)}], 1, {json.dumps(options or {})});"
        "\nconsole.log(JSON.stringify(out.rgba));"
    )
    return np.array(run_node(script), dtype=float).reshape(-1, 4)[:, :3]


def test_the_page_draws_signed_maps_in_the_books_colours():
    values = [-2.0, -1.0, 0.0, 1.0, 2.0]
    page = drawn_colours(values) / 255
    book = plt.get_cmap(SIGNED)((np.array(values) + 2) / 4)[:, :3]
    for value, drawn, reference in zip(values, page, book, strict=True):
        if value == 0:
            continue  # white on the page, near-white in matplotlib's map
        red_minus_blue = drawn[0] - drawn[2]
        assert np.sign(red_minus_blue) == np.sign(reference[0] - reference[2])
        assert np.sign(red_minus_blue) == np.sign(value)  # red +, blue -
    np.testing.assert_array_equal(page[2], [1, 1, 1])  # zero: white


def test_the_page_draws_maps_without_negatives_white_to_black_as_chapter_1():
    values = np.array([0.0, 0.25, 0.5, 1.0])
    page = drawn_colours(values.tolist()) / 255
    np.testing.assert_array_equal(page[0], [1, 1, 1])  # zero: white
    np.testing.assert_array_equal(page[-1], [0, 0, 0])  # the largest: black
    book = plt.get_cmap(UNSIGNED)(values)[:, :3]  # show_unsigned's colours
    np.testing.assert_allclose(page, book, atol=1.5 / 255)


def test_the_page_draws_the_photo_as_it_is_and_the_digit_as_ink():
    photo = drawn_colours([0.0, 1.0], {"range": 1, "photo": True}) / 255
    np.testing.assert_array_equal(photo, [[0, 0, 0], [1, 1, 1]])  # bright: white
    ink = drawn_colours([0.0, 1.0], {"range": 1}) / 255
    np.testing.assert_array_equal(ink, [[1, 1, 1], [0, 0, 0]])  # ink: dark


def test_a_map_that_is_zero_everywhere_is_white():
    np.testing.assert_array_equal(drawn_colours([0.0, 0.0, 0.0]), 255)


@pytest.mark.parametrize(
    "text, bad_input, value",
    [
        ("", False, 0),  # an emptied field counts as 0
        ("   ", False, 0),
        ("-1.5", False, -1.5),
        ("1e3", False, 1000),
        ("", True, None),  # "-" or "1e" typed so far: the browser's badInput
        ("abc", False, None),
        ("1e999", False, None),  # not finite
    ],
)
def test_a_number_field_empty_is_zero_and_not_a_number_is_none(text, bad_input, value):
    source = EXPLORER_JS.read_text()
    script = js_function(source, "fieldValue") + (
        f"\nconsole.log(JSON.stringify(fieldValue({json.dumps(text)}, "
        f"{json.dumps(bad_input)})));"
    )
    assert run_node(script) == value


def test_the_custom_kernel_is_sobel_x_turned_45_degrees_anticlockwise(explorer):
    """The page: [[0, 1, 2], [-1, 0, 1], [-2, -1, 0]] is Sobel x turned by 45
    degrees anticlockwise, and responds where brightness rises towards the
    upper right."""
    turned = np.array([[0, 1, 2], [-1, 0, 1], [-2, -1, 0]])
    ring = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]
    sobel_ring = [SOBEL_X.numpy()[cell] for cell in ring]  # clockwise
    # Anticlockwise by one eighth of a turn: each weight moves one cell back.
    assert [turned[cell] for cell in ring] == sobel_ring[1:] + sobel_ring[:1]
    rows, cols = np.mgrid[0:5, 0:5]
    upper_right = (cols - rows).astype(float)  # brighter up and to the right
    assert (explorer.feature_map(upper_right, turned) > 0).all()


@pytest.mark.parametrize(
    "stride, padding, bias", [(1, 0, 0.0), (2, 1, -0.75), (3, 2, 1.5)]
)
def test_the_pages_feature_map_equals_the_snippets(explorer, stride, padding, bias):
    """The page's featureMap, run by Node (the browser tests run it in the
    page): the same numbers as feature_map, within float64 rounding."""
    node = shutil.which("node")
    if node is None:
        skip_or_fail("Node.js not found: the explorer's arithmetic needs it")
    rng = np.random.default_rng(stride + 10 * padding)
    X, K = rng.random((9, 11)), rng.normal(size=(3, 3))
    source = EXPLORER_JS.read_text()
    script = (
        js_function(source, "outputSize")
        + "\n"
        + js_function(source, "featureMap")
        + f"\nconst Y = featureMap({json.dumps(X.tolist())}, "
        f"{json.dumps(K.tolist())}, {stride}, {padding}, {bias});"
        "\nconsole.log(JSON.stringify(Y.map((row) => Array.from(row))));"
    )
    run = subprocess.run(
        [node, "-e", script], capture_output=True, text=True, check=True
    )
    expected = explorer.feature_map(X, K, stride, padding, bias).numpy()
    np.testing.assert_allclose(
        np.array(json.loads(run.stdout)), expected, rtol=0, atol=1e-12
    )
