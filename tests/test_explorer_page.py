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
from tools.site_server import ROOT, SiteServer

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
