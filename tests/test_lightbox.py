"""Figures open large (tools/lightbox.py, GLightbox from mkdocs-glightbox):
by keyboard, with their caption, usable with a screen reader, and sharp."""

import re

import pytest
from mkdocs.exceptions import PluginError
from test_browser import AXE, run_axe

from tools import lightbox
from tools.screenshots import lay_out_everything
from tools.site_server import SITE

CHAPTER = "04-layers/"
NOTEBOOK = "snippets/layers/layers/"
FIGURE = """<figure>
  <img alt="A line
  rising" src="../snippets/tiny/line.svg" width="10" height="10" />
<br />
<figcaption>The line, <em>rising</em>.</figcaption>
</figure>"""


def test_a_figure_links_its_image_with_alt_text_and_caption():
    html = lightbox.link_figures(FIGURE)
    assert (
        '<a class="glightbox" href="../snippets/tiny/line.svg" data-type="image" '
        'data-alt="A line rising" aria-haspopup="dialog" '
        'data-description=".md-content #figure-caption-1"><img alt="A line'
    ) in html
    assert '<figcaption id="figure-caption-1">The line' in html
    assert lightbox.link_figures(html) == html  # once only


def test_a_caption_keeps_its_own_id_and_each_figure_gets_its_own():
    named = FIGURE.replace("<figcaption>", '<figcaption id="fig-line">')
    html = lightbox.link_figures(FIGURE + named + FIGURE)
    assert 'data-description=".md-content #fig-line"' in html
    assert re.findall(r'id="(figure-caption-\d)"', html) == [
        "figure-caption-1",
        "figure-caption-3",
    ]


def test_a_figure_of_several_images_and_a_notebook_image():
    two = FIGURE.replace("<br />", '<img alt="b" src="b.svg" />')
    assert lightbox.link_figures(two) == two
    image = '<img alt="A line rising" class="" src="../line.svg" width="9"/>'
    assert lightbox.link_figures(image) == image  # not a notebook page
    linked = lightbox.link_figures(image, notebook=True)
    assert linked.startswith('<a class="glightbox" href="../line.svg"')
    assert "data-description" not in linked


def test_glightbox_leaves_the_page_for_a_config_the_script_loads_it_from():
    css = '<link href="../assets/stylesheets/glightbox.min.css" rel="stylesheet">'
    script = '<script src="../assets/javascripts/glightbox.min.js"></script>'
    page = (
        f"<head>{css}\n{script}\n"
        '<style id="glightbox-style">\n .gslide-desc { color: #666; }\n</style>\n'
        '</head><body><p>text</p><script id="init-glightbox">const lightbox = '
        'GLightbox({"loop": false});\ndocument$.subscribe(()=>{});\n</script>'
    )
    tidied = lightbox.tidy_page(page)
    assert tidied == (
        '<head></head><body><p>text</p><script id="glightbox-config" '
        'type="application/json">{"script": "../assets/javascripts/glightbox.min.js", '
        '"css": "../assets/stylesheets/glightbox.min.css", "options": {"loop": false}}'
        "</script>"
    )
    assert lightbox.tidy_page("<head></head>") == "<head></head>"
    with pytest.raises(PluginError, match="mkdocs-glightbox no longer writes"):
        lightbox.tidy_page(page.replace(script, ""))


def test_glightbox_is_fetched_when_a_figure_first_opens(browser, site_server):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    fetched = []
    page.on("request", lambda request: fetched.append(request.url))
    # "load", not "networkidle": that comes before the page's scripts have run
    # when the machine is busy, and then so would the check and first click.
    page.goto(site_server.url + CHAPTER, wait_until="load")
    assert not [url for url in fetched if "glightbox" in url], "fetched unopened"
    # Else the code blocks near a figure are laid out only once it is scrolled
    # into view, and the figure can move away between mouse down and up.
    lay_out_everything(page)
    shown = page.locator(".gslide.current .gslide-image img")
    # By mouse: first this script's click, then one GLightbox handles itself.
    for index in (3, 0):
        link = page.locator("a.glightbox").nth(index)
        link.click()
        shown.wait_for(state="visible")
        assert shown.evaluate("img => img.src") == link.evaluate("a => a.href")
        page.keyboard.press("Escape")
        page.locator(".glightbox-container").wait_for(state="detached")
    assert len([url for url in fetched if url.endswith("glightbox.min.js")]) == 1
    page.close()


def test_every_single_image_figure_of_the_site_opens_large():
    if not (SITE / "index.html").exists():
        pytest.fail("site/ is not built: run `make site` first")
    for path in sorted(SITE.glob("[0-9][0-9]-*/index.html")):
        html = path.read_text(encoding="utf-8")
        figures = [
            f
            for f in re.findall(r"<figure\b.*?</figure>", html, re.DOTALL)
            if f.count("<img") == 1
        ]
        assert figures, path
        for figure in figures:
            assert '<a class="glightbox"' in figure, figure
            if "<figcaption" in figure:
                assert "data-description=" in figure, figure


@pytest.fixture(params=["light", "dark"])
def chapter(request, browser, site_server):
    """Chapter 4 in Chromium, in the light or the dark palette."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, color_scheme=request.param
    )
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(site_server.url + CHAPTER, wait_until="load")
    yield page
    assert errors == [], errors
    context.close()


def open_by_keyboard(page, index):
    """Focus the index-th figure's link, press Enter; the dialog opens."""
    link = page.locator("a.glightbox").nth(index)
    link.focus()
    assert page.evaluate("document.activeElement.classList.contains('glightbox')")
    page.keyboard.press("Enter")
    page.locator(".gslide.current .gslide-image img").wait_for(state="visible")
    page.wait_for_timeout(400)  # the fade
    return link


def test_a_figure_opens_by_keyboard_with_its_caption_and_closes_with_escape(chapter):
    page = chapter
    link = open_by_keyboard(page, 1)
    figure = link.locator("xpath=ancestor::figure")
    caption = " ".join(figure.locator("figcaption").inner_text().split())
    alt = " ".join(link.locator("img").get_attribute("alt").split())
    dialog = page.locator(".glightbox-container")
    assert dialog.get_attribute("role") == "dialog"
    assert dialog.get_attribute("aria-modal") == "true"
    assert dialog.get_attribute("aria-label")
    shown = page.locator(".gslide.current")
    assert " ".join(shown.locator(".gslide-desc").inner_text().split()) == caption
    image = shown.locator(".gslide-image img")
    assert image.get_attribute("alt") == alt
    assert page.evaluate("document.activeElement.classList.contains('gclose')")
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    assert link.evaluate("a => a === document.activeElement"), "focus not returned"


def test_an_svg_figure_opens_larger_and_stays_vector(chapter):
    page = chapter
    link = open_by_keyboard(page, 0)
    inline = link.locator("img").bounding_box()["width"]
    image = page.locator(".gslide.current .gslide-image img")
    assert image.evaluate("img => img.currentSrc").endswith(".svg")
    assert image.bounding_box()["width"] > 1.5 * inline


def test_an_open_figure_has_no_serious_accessibility_violations(chapter):
    if not AXE.exists():
        pytest.skip("axe-core not installed: `npm ci`")
    page = chapter
    open_by_keyboard(page, 2)
    violations = run_axe(page)
    serious = [v for v in violations if v["impact"] in {"serious", "critical"}]
    assert serious == [], serious


def test_a_notebook_figure_opens_with_its_alt_text(browser, site_server):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(site_server.url + NOTEBOOK, wait_until="load")
    link = open_by_keyboard(page, 0)
    alt = link.locator("img").get_attribute("alt")
    image = page.locator(".gslide.current .gslide-image img")
    assert image.get_attribute("alt") == alt and len(alt.split()) >= 5
    page.keyboard.press("Escape")
    page.locator(".glightbox-container").wait_for(state="detached")
    page.close()
