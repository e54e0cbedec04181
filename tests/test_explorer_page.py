"""The convolution explorer in Chromium: its feature maps equal the snippet's."""

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from mkdocs.utils.yaml import yaml_load
from PIL import Image

from tools.runner import BUILD_DIR
from tools.site_server import ROOT, SITE, SiteServer

OUT = BUILD_DIR / "explorer"
ROUNDING = 1e-9  # both sides sum float64 products; only the order may differ


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LK_OUTPUT_DIR", str(tmp_path_factory.mktemp("explorer")))
        return importlib.import_module("explorer")


@pytest.fixture
def page(browser, site_server, results):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(site_server.url + "explorer/")
    page.wait_for_selector(".explorer[data-ready='true']", timeout=10_000)
    yield page
    assert errors == []
    context.close()


def output(page):
    """The feature map the page computed and drew, as an array."""
    result = page.evaluate("document.querySelector('.explorer').explorer.output")
    values = np.array(result["values"], dtype=np.float64)
    assert values.shape == (result["height"], result["width"])
    return values


def choose(page, label, value):
    page.get_by_label(label, exact=True).select_option(str(value))


def canvas_pixels(page, index):
    """The RGB pixels of the explorer's canvas number index (0 input, 1 map)."""
    size = page.evaluate(
        f"[...document.querySelectorAll('.explorer canvas')].map("
        f"c => [c.height, c.width])[{index}]"
    )
    rgba = page.evaluate(
        f"""() => {{
          const canvas = document.querySelectorAll('.explorer canvas')[{index}];
          const {{width, height}} = canvas;
          return Array.from(canvas.getContext('2d')
            .getImageData(0, 0, width, height).data);
        }}"""
    )
    return np.array(rgba, dtype=float).reshape(*size, 4)[..., :3]


def weight(page, row, col):
    return page.get_by_label(f"Weight, row {row}, column {col}", exact=True)


def test_the_starting_message_goes_once_the_explorer_is_ready(page):
    assert page.locator(".explorer__status").count() == 0


def test_the_page_has_the_snippets_presets(page, explorer):
    presets = page.evaluate("document.querySelector('.explorer').explorer.presets")
    assert presets == {
        name: torch.tensor(K, dtype=torch.float64).tolist()
        for name, K in explorer.PRESETS.items()
    }


@pytest.mark.parametrize("image", ["photo", "digit"])
def test_every_preset_gives_the_snippets_feature_map(page, explorer, image):
    references = np.load(OUT / "reference_maps.npz")
    choose(page, "Image", image)
    for preset in explorer.PRESETS:
        choose(page, "Kernel", preset)
        expected = references[f"{image}/{preset}"]
        np.testing.assert_allclose(
            output(page), expected, rtol=0, atol=ROUNDING, err_msg=preset
        )


@pytest.mark.parametrize("stride, padding", [(2, 1), (3, 0), (1, 2)])
def test_typed_weights_bias_stride_and_padding_match_python(
    page, explorer, stride, padding
):
    K = [[0.5, 1, 2], [-1, 0, 1], [-2, -1, -0.25]]
    for row in range(3):
        for col in range(3):
            label = f"Weight, row {row + 1}, column {col + 1}"
            page.get_by_label(label).fill(str(K[row][col]))
    assert page.get_by_label("Kernel", exact=True).input_value() == "custom"
    page.get_by_label("Bias", exact=True).fill("-0.5")
    choose(page, "Stride", stride)
    choose(page, "Padding", padding)
    X = np.asarray(Image.open(OUT / "photo.png")) / 255
    expected = explorer.feature_map(X, K, stride, padding, bias=-0.5).numpy()
    np.testing.assert_allclose(output(page), expected, rtol=0, atol=ROUNDING)
    height = explorer.output_size(X.shape[0], 3, stride, padding)
    summary = page.locator(".explorer__size").inner_text()
    assert f"= {height} rows" in summary


def test_keyboard_alone_changes_the_kernel(page, explorer):
    page.get_by_label("Kernel", exact=True).focus()
    page.keyboard.press("ArrowDown")  # identity -> box blur
    assert page.get_by_label("Kernel", exact=True).input_value() == "box blur"
    weight = page.get_by_label("Weight, row 1, column 1")
    assert float(weight.input_value()) == pytest.approx(1 / 9, abs=1e-3)
    page.keyboard.press("Tab")  # on to the next control
    assert page.evaluate("document.activeElement.id").endswith("stride")


@pytest.fixture(scope="module")
def instant_site(tmp_path_factory, results):
    """The site rebuilt with Material's instant navigation (pages swapped in by
    JavaScript, scripts re-run), which the explorer must survive."""
    site = tmp_path_factory.mktemp("instant-site")
    server = SiteServer(site)
    with open(ROOT / "mkdocs.yml") as file:
        config = yaml_load(file)  # as mkdocs reads it: !!python/name tags too
    config["theme"]["features"].append("navigation.instant")
    # Material navigates instantly only to pages on site_url's host and port.
    config["site_url"] = server.url
    config["theme"]["custom_dir"] = str(ROOT / config["theme"]["custom_dir"])
    config["hooks"] = [str(ROOT / hook) for hook in config["hooks"]]
    config["docs_dir"] = str(ROOT / config["docs_dir"])
    config["site_dir"] = str(site)
    config.pop("watch", None)
    path = site.with_suffix(".yml")
    path.write_text(yaml.dump(config, sort_keys=False))
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--quiet", "-f", str(path)],
        cwd=ROOT,
        check=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    with server:
        yield server


def test_the_explorer_works_after_instant_navigation(browser, instant_site):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(instant_site.url)
    page.evaluate("window.notReloaded = true")  # gone if a page really loads
    for _ in range(2):  # there, away, and back again
        page.get_by_role("link", name="Convolution explorer").first.click()
        page.wait_for_selector(".explorer[data-ready='true']", timeout=10_000)
        assert page.locator(".explorer__controls").count() == 1
        page.get_by_label("Kernel", exact=True).select_option("Sobel x")
        assert "red up to" in page.locator(".explorer__size").inner_text()
        page.get_by_role("link", name="Home").first.click()
        page.wait_for_url(instant_site.url)
    assert page.evaluate("window.notReloaded") is True, "the pages fully reloaded"
    assert errors == []
    page.close()


def test_maps_without_negatives_are_white_at_zero_black_at_the_largest(page):
    """Chapter 1's convention, on the page's own canvas: the identity map of
    the photo is its negative; the input photo is drawn as it is, and the
    digit as dark ink on white."""
    values = output(page)  # identity on the photo
    grey = canvas_pixels(page, 1)
    np.testing.assert_allclose(grey[..., 0], 255 * (1 - values / values.max()), atol=1)
    assert "white 0, black" in page.locator(".explorer__size").inner_text()
    photo = np.asarray(Image.open(OUT / "photo.png"), dtype=float)
    np.testing.assert_allclose(canvas_pixels(page, 0)[..., 0], photo, atol=1)
    choose(page, "Image", "digit")
    digit = np.asarray(Image.open(OUT / "digit.png"), dtype=float)
    np.testing.assert_allclose(canvas_pixels(page, 0)[..., 0], 255 - digit, atol=1)


def test_an_emptied_weight_counts_as_zero_and_then_shows_it(page, explorer):
    choose(page, "Kernel", "Sobel x")
    weight(page, 2, 3).fill("")
    K = [row[:] for row in explorer.PRESETS["Sobel x"]]
    K[1][2] = 0
    X = np.asarray(Image.open(OUT / "photo.png")) / 255
    expected = explorer.feature_map(X, K).numpy()
    np.testing.assert_allclose(output(page), expected, rtol=0, atol=ROUNDING)
    assert page.get_by_label("Kernel", exact=True).input_value() == "custom"
    weight(page, 2, 3).blur()  # leaving the field writes the 0 it counts as
    assert weight(page, 2, 3).input_value() == "0"
    assert page.locator(".explorer__problem").inner_text() == ""


def test_text_that_is_not_a_number_is_marked_and_named(page, explorer):
    choose(page, "Kernel", "Sobel x")
    field = weight(page, 2, 3)
    field.fill("")
    field.press_sequentially("-")  # a number being typed: not one yet
    assert field.get_attribute("aria-invalid") == "true"
    problem = page.locator(".explorer__problem").inner_text()
    assert "row 2, column 3 is not a number" in problem
    assert "its last value, 0" in problem  # the emptied field counted as 0
    field.press_sequentially("2")  # -2: a number again
    assert field.get_attribute("aria-invalid") == "false"
    assert page.locator(".explorer__problem").inner_text() == ""
    K = [row[:] for row in explorer.PRESETS["Sobel x"]]
    K[1][2] = -2
    X = np.asarray(Image.open(OUT / "photo.png")) / 255
    np.testing.assert_allclose(
        output(page), explorer.feature_map(X, K).numpy(), rtol=0, atol=ROUNDING
    )


def test_a_kernel_of_zeros_gives_a_white_map_that_says_so(page):
    for row in range(1, 4):
        for col in range(1, 4):
            weight(page, row, col).fill("0")
    assert (output(page) == 0).all()
    assert (canvas_pixels(page, 1) == 255).all()  # white
    summary = page.locator(".explorer__size").inner_text()
    assert "the map is 0 everywhere" in summary
    assert "0 0 0" not in page.locator(".explorer").inner_text()
    assert not page.locator(".explorer__colourbar").is_visible()
    page.get_by_label("Bias", exact=True).fill("0.5")  # constant, not zero
    assert page.locator(".explorer__colourbar").is_visible()


def failed_page(browser, url, block=None):
    """A page whose explorer cannot start; returns it and its console errors."""
    page = browser.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    if block is not None:
        page.route(block, lambda route: route.abort())
    page.goto(url)
    return page, errors


def test_opened_from_disk_the_page_says_to_serve_it(browser, results):
    page, errors = failed_page(browser, (SITE / "explorer/index.html").as_uri())
    page.wait_for_selector(".explorer[data-ready='failed']", timeout=10_000)
    status = page.locator(".explorer__status")
    assert status.is_visible()
    assert "from disk" in status.inner_text()
    assert "make serve" in status.inner_text()
    assert any("convolution explorer" in error for error in errors)
    page.close()


def test_an_image_that_fails_to_load_is_said_on_the_page(browser, site_server):
    page, _ = failed_page(
        browser, site_server.url + "explorer/", block="**/explorer/photo.png"
    )
    page.wait_for_selector(".explorer[data-ready='failed']", timeout=10_000)
    text = page.locator(".explorer__status").inner_text()
    assert "could not start" in text and "make serve" in text
    page.close()


def test_without_its_script_the_page_still_says_how_to_open_it(browser, site_server):
    page, _ = failed_page(
        browser, site_server.url + "explorer/", block="**/javascripts/explorer.js"
    )
    page.wait_for_load_state("load")
    status = page.locator(".explorer__status")
    assert status.is_visible() and "make serve" in status.inner_text()
    assert page.locator(".explorer__controls").count() == 0
    page.close()


def test_signed_maps_are_red_positive_blue_negative_white_zero(page):
    """The book's convention (chapter 1), on the page's own canvas."""
    choose(page, "Kernel", "Sobel x")
    values = output(page)
    pixels = np.array(
        page.evaluate(
            """() => {
              const canvas = document.querySelectorAll('.explorer canvas')[1];
              const {width, height} = canvas;
              const rgba = canvas.getContext('2d')
                .getImageData(0, 0, width, height).data;
              return Array.from(rgba);
            }"""
        ),
        dtype=float,
    ).reshape(*values.shape, 4)
    red, blue = pixels[..., 0], pixels[..., 2]
    high = np.abs(values).max()
    strong_positive = values > 0.5 * high
    strong_negative = values < -0.5 * high
    assert strong_positive.any() and strong_negative.any()
    assert (red[strong_positive] > blue[strong_positive] + 50).all()
    assert (blue[strong_negative] > red[strong_negative] + 50).all()
    near_zero = np.abs(values) < 0.02 * high
    assert near_zero.any()
    assert (pixels[near_zero][:, :3] > 240).all()  # white
