"""The built site as readers meet it: every page in headless Chromium.

Each page is visited once at desktop width and once at phone width (375 px);
the tests below check what those visits recorded. Screenshots go to
build/screenshots/, each page's weight to build/page-weights/ (conftest.py
prints them as one table). Under pytest-xdist, conftest.py keeps a page's tests
in one worker, so that each page is visited once.
"""

import json
import os
import re
import struct
import time
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest

from tools.site_server import SITE, site_pages

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "build" / "screenshots"
WEIGHTS = ROOT / "build" / "page-weights"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
PAGES = site_pages() if (SITE / "index.html").exists() else []
CHAPTER = re.compile(r"^\d\d-[-a-z0-9]+/$")
MAX_CHAPTER_BYTES = 1_500_000
# The one-page book (`make pdf` prints it) holds every chapter: its budget is
# theirs together. Too long for a full-page screenshot (Chromium gives up).
PRINT_PAGE = "print_page/"
MAX_PRINT_PAGE_BYTES = MAX_CHAPTER_BYTES * sum(bool(CHAPTER.match(p)) for p in PAGES)
DEVICES = {
    "desktop": {"width": 1280, "height": 900},
    "phone": {"width": 375, "height": 800},
}
NO_ALT = "No description has been provided"
# The dark scheme changes colours only (Material's slate palette, book.css's
# slate rules) and which label of the palette toggle shows, in the header that
# every page shares. So the dark visit runs axe's colour rules on every page
# (about half the time of all its rules) and every rule on the landing page.
# test_the_dark_pass_runs_every_colour_rule_axe_runs keeps the list whole.
COLOUR_RULES = ["color-contrast", "link-in-text-block"]
FULL_DARK_PAGE = ""

# What a page shows once loaded: its images, leftover TeX, MathML, downloads.
INSPECT = """async () => {
  document.querySelectorAll("img[loading=lazy]").forEach((img) => {
    img.loading = "eager";  // load the figures a reader would scroll to
  });
  const images = await Promise.all(Array.from(document.images, async (img) => {
    let decoded = true;
    try { await img.decode(); } catch (error) { decoded = false; }
    return {src: img.currentSrc, alt: img.alt, decoded,
            width: img.naturalWidth};
  }));
  const article = document.querySelector("article");
  let prose = "";
  if (article) {
    const copy = article.cloneNode(true);
    copy.querySelectorAll("pre, code, script, style, .jp-InputArea")
      .forEach((el) => el.remove());
    prose = copy.textContent;
  }
  const math = Array.from(document.querySelectorAll("article math"),
    (el) => el.getBoundingClientRect().width);
  const downloads = Array.from(document.querySelectorAll("a[download]"),
    (a) => a.getAttribute("href"));
  return {images, prose, math, downloads,
          title: document.title,
          scrollWidth: document.documentElement.scrollWidth};
}"""
RAW_TEX = re.compile(r"\$\$|\\\(|\\\[|\\(frac|sum|mathbf|times|cdot)\b|\$[^$\s]+\$")


def screenshot_name(path):
    return path.strip("/").replace("/", "_").removesuffix(".html") or "index"


def visit(browser, base, path, device):
    """Load one page in a fresh context; record what a reader would notice."""
    record = {"console": [], "failed": [], "external": []}
    requests, in_flight = [], set()

    def route(route):
        host = urlsplit(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            route.continue_()
        else:
            record["external"].append(route.request.url)
            route.abort()

    def finished(request):
        in_flight.discard(request)
        requests.append(request)

    def failed(request):
        in_flight.discard(request)
        record["failed"].append(f"{request.url}: {request.failure}")

    def open_page(color_scheme):
        context = browser.new_context(
            viewport=DEVICES[device], color_scheme=color_scheme
        )
        context.route("**/*", route)
        page = context.new_page()
        page.on(
            "console",
            lambda m: record["console"].append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda error: record["console"].append(str(error)))
        page.on("request", lambda request: in_flight.add(request))
        page.on("requestfinished", finished)
        page.on("requestfailed", failed)
        return context, page

    context, page = open_page("light")
    response = page.goto(base + path, wait_until="load")
    record["status"] = response.status
    record.update(page.evaluate(INSPECT))  # also loads the lazy images
    finish_requests(page, in_flight)
    render_everything(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(
        path=SCREENSHOTS / f"{screenshot_name(path)}-{device}.png",
        full_page=path != PRINT_PAGE,
    )
    if device == "desktop" and AXE.exists():
        record["axe"] = run_axe(page)
    # Seconds after the load: whatever the page fetches by itself (the search
    # index too) has been asked for, and counts in its weight.
    finish_requests(page, in_flight)
    sizes = [request.sizes() for request in requests]
    record["transferred"] = sum(
        s["responseBodySize"] + s["responseHeadersSize"] for s in sizes
    )
    if device == "desktop":
        WEIGHTS.mkdir(parents=True, exist_ok=True)
        weight = {"page": path, "bytes": record["transferred"], "requests": len(sizes)}
        (WEIGHTS / f"{screenshot_name(path)}.json").write_text(json.dumps(weight))
    record["failed"] += http_errors(requests)
    context.close()
    if device == "desktop" and AXE.exists():
        # A fresh dark context: a reload keeps the palette Material chose first.
        requests.clear()
        context, page = open_page("dark")
        page.goto(base + path, wait_until="load")
        scheme = page.evaluate("document.body.dataset.mdColorScheme")
        assert scheme == "slate", f"{path}: dark mode did not apply ({scheme})"
        render_everything(page)
        rules = None if path == FULL_DARK_PAGE else COLOUR_RULES
        record["axe"] += run_axe(page, "dark: ", rules)
        finish_requests(page, in_flight)
        record["failed"] += http_errors(requests)
        context.close()
    return record


def http_errors(requests):
    """Finished requests answered with an error status (read while their
    context is open: a closed one no longer gives its responses)."""
    errors = []
    for request in requests:
        response = request.response()
        if response is not None and response.status >= 400:
            errors.append(f"{request.url}: HTTP {response.status}")
    return errors


def finish_requests(page, in_flight, timeout_s=30):
    """Wait until every request the page has made has finished or failed.
    (Playwright's "networkidle" waits for 500 ms without requests, and only
    once after a load: it fires before later requests end, and costs the wait.)"""
    deadline = time.monotonic() + timeout_s
    while in_flight:
        if time.monotonic() > deadline:
            pending = sorted(request.url for request in in_flight)
            pytest.fail(f"{page.url}: unfinished after {timeout_s} s: {pending}")
        page.wait_for_timeout(20)  # Playwright delivers the page's events meanwhile


def render_everything(page):
    """Lay out the code blocks that book.css leaves to be laid out when the
    reader scrolls near them (content-visibility: auto): a full-page screenshot
    would show them blank, and axe could not check their colours."""
    page.add_style_tag(content="* { content-visibility: visible !important; }")


def run_axe(page, prefix="", rules=None):
    """axe-core's violations on the page, injected from node_modules (no CDN):
    of every rule it runs by default, or of the named rules only."""
    page.add_script_tag(path=str(AXE))
    options = {"resultTypes": ["violations"]}
    if rules is not None:
        options["runOnly"] = {"type": "rule", "values": rules}
    violations = page.evaluate(
        """async (options) => (await axe.run(document, options))
             .violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
               nodes: v.nodes.map((n) => n.target.join(" "))}))""",
        options,
    )
    for violation in violations:
        violation["id"] = prefix + violation["id"]
    return violations


@pytest.fixture(scope="session")
def visits(browser, site_server):
    """(path, device) -> what the visit recorded; each visit happens once."""
    cache = {}

    def get(path, device="desktop"):
        if (path, device) not in cache:
            cache[path, device] = visit(browser, site_server.url, path, device)
        return cache[path, device]

    return get


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_cleanly_from_the_site_alone(visits, path):
    record = visits(path)
    assert record["status"] == 200, path
    assert record["console"] == [], f"{path}: console errors {record['console']}"
    assert record["failed"] == [], f"{path}: failed requests {record['failed']}"
    assert record["external"] == [], (
        f"{path}: requests off the site {record['external']}"
    )


@pytest.mark.parametrize("path", PAGES)
def test_every_image_decodes_and_has_meaningful_alt_text(visits, path):
    for image in visits(path)["images"]:
        assert image["decoded"] and image["width"] > 0, f"{path}: {image['src']}"
        alt = image["alt"]
        assert len(alt.split()) >= 5 and NO_ALT not in alt, (
            f"{path}: {image['src']} has alt text {alt!r}"
        )


@pytest.mark.parametrize("path", PAGES)
def test_math_is_typeset_not_raw_tex(visits, path):
    record = visits(path)
    leftover = [m.group(0) for m in RAW_TEX.finditer(record["prose"])]
    assert not leftover, f"{path} shows raw TeX: {leftover[:5]}"
    assert all(width > 0 for width in record["math"]), f"{path}: empty <math>"


@pytest.mark.parametrize("path", PAGES)
def test_no_horizontal_scroll_on_a_phone(visits, path):
    record = visits(path, "phone")
    assert record["scrollWidth"] <= DEVICES["phone"]["width"], (
        f"{path} is {record['scrollWidth']} px wide at 375 px"
    )
    assert record["console"] == [] and record["failed"] == [], path


def require_axe():
    if not AXE.exists():
        message = "axe-core not installed: install Node.js and npm, then `npm ci`"
        if os.environ.get("CI"):
            pytest.fail(message + " (required in CI)")
        pytest.skip(message)


@pytest.mark.parametrize("path", PAGES)
def test_no_serious_accessibility_violations(visits, path):
    require_axe()
    serious = [v for v in visits(path)["axe"] if v["impact"] in {"serious", "critical"}]
    assert serious == [], f"{path}: {json.dumps(serious, indent=1)}"


@pytest.mark.parametrize("path", [p for p in PAGES if CHAPTER.match(p)])
def test_chapter_pages_weigh_under_1_5_mb(visits, path):
    transferred = visits(path)["transferred"]
    assert transferred < MAX_CHAPTER_BYTES, f"{path}: {transferred:,} bytes"


@pytest.mark.parametrize("path", [p for p in PAGES if p == PRINT_PAGE])
def test_the_one_page_book_weighs_under_its_chapters_budgets(visits, path):
    transferred = visits(path)["transferred"]
    assert transferred < MAX_PRINT_PAGE_BYTES, f"{path}: {transferred:,} bytes"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_a_screenshot_for_reviewers(visits, path, device):
    visits(path, device)
    png = (SCREENSHOTS / f"{screenshot_name(path)}-{device}.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n"), path
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert width == DEVICES[device]["width"] and height >= DEVICES[device]["height"]


@pytest.mark.parametrize("path", [p for p in PAGES if p.startswith("snippets/")])
def test_notebook_download_is_a_valid_notebook(browser, site_server, visits, path):
    (href,) = visits(path)["downloads"]
    assert href.endswith(".ipynb"), href
    page = browser.new_page()
    # The link is there once the HTML is parsed: no need to wait for the figures.
    page.goto(site_server.url + path, wait_until="domcontentloaded")
    with page.expect_download() as info:
        page.click("a[download]")
    notebook = nbformat.read(info.value.path(), as_version=4)
    nbformat.validate(notebook)
    assert info.value.suggested_filename == href
    assert any(cell.get("outputs") for cell in notebook.cells), href
    page.close()


# Not F.unfold: Material ranks pages with many words that begin with "f" above
# chapter 6, which has both words (test_site.py checks the index holds them).
@pytest.mark.parametrize("term", ["conv2d", "Sobel", "SmallCNN", "count_parameters"])
def test_search_finds_a_term_and_opens_a_page_that_has_it(browser, site_server, term):
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(site_server.url)
    page.keyboard.press("/")  # Material's shortcut: focus the search box
    page.keyboard.type(term)
    first = page.locator(".md-search-result__item a").first
    # Results come per keystroke: wait for those of the whole term, whose links
    # highlight its last word (?h=count_parameters).
    last_word = re.split(r"[^\w]+", term.lower())[-1]
    expect(first).to_have_attribute(
        "href", re.compile(rf"[?&]h=[^#]*\b{re.escape(last_word)}\b"), timeout=10_000
    )
    first.click()
    page.wait_for_load_state("load")
    assert "/404" not in page.url
    text = page.locator("article").inner_text()
    assert term.lower() in text.lower(), f"{page.url} does not mention {term}"
    page.close()


def test_dark_mode_toggle_switches_and_persists(browser, site_server):
    context = browser.new_context(color_scheme="light")
    page = context.new_page()
    page.goto(site_server.url)

    def scheme():
        return page.locator("body").get_attribute("data-md-color-scheme")

    assert scheme() == "default"
    page.locator('label[title="Switch to dark mode"]').click()
    assert scheme() == "slate"
    page.reload()
    assert scheme() == "slate", "the choice does not survive a reload"
    chapter = next(p for p in PAGES if CHAPTER.match(p))
    page.goto(site_server.url + chapter)
    assert scheme() == "slate", "the choice does not carry to another page"
    page.locator('label[title="Switch to light mode"]').click()
    assert scheme() == "default"
    context.close()


def test_the_dark_pass_runs_every_colour_rule_axe_runs(browser):
    """The rules the dark visit runs on every page are those of axe's colour
    category that it runs by default (not the AAA contrast rule)."""
    require_axe()
    page = browser.new_page()
    page.add_script_tag(path=str(AXE))
    colour = page.evaluate(
        """axe._audit.rules.filter((rule) => rule.enabled &&
             rule.tags.includes("cat.color")).map((rule) => rule.id)"""
    )
    page.close()
    assert sorted(colour) == sorted(COLOUR_RULES)
    assert FULL_DARK_PAGE in PAGES


def test_a_page_s_tests_go_to_one_worker_together():
    from conftest import work_unit

    units = {
        work_unit(f"tests/test_browser.py::{test}[{params}]")
        for test, params in [
            ("test_page_loads_cleanly_from_the_site_alone", "04-layers/"),
            ("test_no_horizontal_scroll_on_a_phone", "04-layers/"),
            ("test_every_page_has_a_screenshot_for_reviewers", "04-layers/-phone"),
        ]
    }
    assert units == {"page 04-layers/"}
    assert work_unit("tests/test_layers.py::test_x[1-2]") == "tests/test_layers.py"
    assert work_unit("tests/test_browser.py::test_dark_mode") == "tests/test_browser.py"


def test_pages_are_handed_out_after_the_test_files():
    from conftest import pages_last

    units = [
        ("page 04-layers/", ["a", "b", "c"]),
        ("tests/test_claims.py", ["a"]),
        ("page ", ["a", "b"]),
        ("tests/test_runner.py", ["a", "b"]),
    ]
    assert [name for name, _ in pages_last(units)] == [
        "tests/test_runner.py",
        "tests/test_claims.py",
        "page 04-layers/",
        "page ",
    ]
