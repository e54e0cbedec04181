"""The built site as readers meet it: every page in headless Chromium.

Each page is loaded once, at desktop width in the light scheme; the same page
is then switched to the dark scheme and resized to phone width (375 px). The
tests below check what that visit recorded. Each page's weight goes to
build/page-weights/ (conftest.py prints them as one table). Under
pytest-xdist, conftest.py keeps a page's tests in one worker, so that each
page is visited once. Screenshots to look at: `make screenshots`.
"""

import html
import json
import os
import re
import time
from urllib.parse import urlsplit

import nbformat
import pytest
import tinycss2

from tools.screenshots import DEVICES, file_stem, lay_out_everything
from tools.site_server import SITE, site_pages

ROOT = SITE.parent
WEIGHTS = ROOT / "build" / "page-weights"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
PAGES = site_pages() if (SITE / "index.html").exists() else []
CHAPTER = re.compile(r"^\d\d-[-a-z0-9]+/$")
MAX_CHAPTER_BYTES = 1_500_000
# The one-page book (`make pdf` prints it) holds every chapter: its budget is
# theirs together.
PRINT_PAGE = "print_page/"
MAX_PRINT_PAGE_BYTES = MAX_CHAPTER_BYTES * sum(bool(CHAPTER.match(p)) for p in PAGES)
NO_ALT = "No description has been provided"
# The dark scheme changes colours only (Material's slate palette, book.css's
# slate rules) and which label of the palette toggle shows, in the header that
# every page shares. So the dark pass runs axe's colour rules on every page
# (about half the time of all its rules) and every rule on the landing page.
# test_the_dark_pass_runs_every_colour_rule_axe_runs keeps the list whole.
COLOUR_RULES = ["color-contrast", "link-in-text-block"]
FULL_DARK_PAGE = ""
# The one-page book's chapter sections are the chapter pages' articles (less
# their list of sources), styled alike: every element's computed colours,
# fonts and visibility were found equal, light and dark. Their colours are
# checked on the chapter pages; on the one-page book, axe's colour rules check
# the rest (cover, contents, landing page, header), every other rule all of it.
# test_the_one_page_book_colours_its_chapters_as_their_pages keeps book.css so.
COLOURS_CHECKED_ON_THEIR_PAGES = {
    PRINT_PAGE: [
        f'section.print-page[id="{path.strip("/")}"]'
        for path in PAGES
        if CHAPTER.match(path)
    ]
}

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
# Code's coloured words, a span per token, are most of a code-heavy page's
# elements (70 to 80 %) and a third to two thirds of the time axe's contrast
# rule takes there. A word's colours follow from its
# token class, the scheme and the kind of block (Material's code block, or a
# notebook's cell), not from the page: the visits' colour rules leave the
# blocks to test_every_code_colour_has_contrast_in_both_schemes, which checks
# a word of every class the site's code uses, in both kinds of block and both
# schemes. Every other rule still runs on the blocks.
CODE_BLOCKS = {
    "chapter": ("04-layers/", "div.highlight > pre > code"),
    "notebook": ("snippets/layers/layers/", ".highlight-ipynb > pre"),
}
CODE_SELECTORS = [selector for _, selector in CODE_BLOCKS.values()]
# Left out or not, axe walks every element of the page at each run: once the
# other rules have seen the blocks, each block's words become its plain text
# (the same characters, lines and layout) for the two colour runs. On the
# one-page book that halves them (16 s to 7 s), on a code-heavy page saves 1 s.
CODE_AS_PLAIN_TEXT = """(selectors) => document.querySelectorAll(selectors.join(","))
  .forEach((block) => { block.textContent = block.textContent; })"""
# Material's palette: the input of the scheme chosen for readers who prefer dark.
DARK_PALETTE = "input[data-md-color-media='(prefers-color-scheme: dark)']"
# After one frame, at the new width: Material's resize handlers have run.
SETTLED_WIDTH = """() => new Promise((done) => requestAnimationFrame(() =>
  requestAnimationFrame(() => done(document.documentElement.scrollWidth))))"""


def visit(browser, base, path):
    """Load one page in a fresh context; record what a reader would notice,
    at desktop width in the light scheme, then in the dark one, then at
    phone width (under "phone")."""
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
            viewport=DEVICES["desktop"], color_scheme=color_scheme
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
    lay_out_everything(page)
    exclude = COLOURS_CHECKED_ON_THEIR_PAGES.get(path, []) + CODE_SELECTORS
    if AXE.exists():
        record["axe"] = run_axe(page, skip=COLOUR_RULES)
        page.evaluate(CODE_AS_PLAIN_TEXT, CODE_SELECTORS)
        record["axe"] += run_axe(page, only=COLOUR_RULES, exclude=exclude)
    # Seconds after the load: whatever the page fetches by itself (the search
    # index too) has been asked for, and counts in its weight.
    finish_requests(page, in_flight)
    sizes = [request.sizes() for request in requests]
    record["transferred"] = sum(
        s["responseBodySize"] + s["responseHeadersSize"] for s in sizes
    )
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    weight = {"page": path, "bytes": record["transferred"], "requests": len(sizes)}
    (WEIGHTS / f"{file_stem(path)}.json").write_text(json.dumps(weight))
    if AXE.exists() and path == FULL_DARK_PAGE:
        # Once in a fresh dark context: the scheme Material picks at load for
        # a reader who prefers dark, and every rule on it.
        record["failed"] += http_errors(requests)
        context.close()
        requests.clear()
        context, page = open_page("dark")
        page.goto(base + path, wait_until="load")
        lay_out_everything(page)
        assert_dark(page, path)
        record["axe"] += run_axe(page, "dark: ", skip=COLOUR_RULES)
        record["axe"] += run_axe(page, "dark: ", only=COLOUR_RULES, exclude=exclude)
    elif AXE.exists():
        # On the same page: the palette toggle gives the page that a dark load
        # gives (every element's computed colours were found equal), without
        # loading it again. (Material keeps the palette it chose at load when
        # the preference changes, so emulating it alone changes nothing.)
        switch_to_dark(page)
        assert_dark(page, path)
        record["axe"] += run_axe(page, "dark: ", only=COLOUR_RULES, exclude=exclude)
    # At phone width: the same page resized. Material lays the page out from
    # media-query listeners and resize events, not once at load, and the
    # book's scripts read no widths: on every page, a phone load and a resize
    # gave the same width, errors (none) and requests. (The scheme changes
    # colours only.)
    finish_requests(page, in_flight)
    record["failed"] += http_errors(requests)
    seen = len(requests)
    console_seen, failed_seen = len(record["console"]), len(record["failed"])
    page.set_viewport_size(DEVICES["phone"])
    record["phone"] = {"scrollWidth": page.evaluate(SETTLED_WIDTH)}
    finish_requests(page, in_flight)
    record["failed"] += http_errors(requests[seen:])
    record["phone"]["console"] = record["console"][console_seen:]
    record["phone"]["failed"] = record["failed"][failed_seen:]
    context.close()
    return record


def switch_to_dark(page):
    page.emulate_media(color_scheme="dark")
    page.eval_on_selector(DARK_PALETTE, "(input) => input.click()")
    page.wait_for_function(
        """() => !document.body.hasAttribute("data-md-color-switching") &&
             !document.getAnimations().some((a) => a instanceof CSSTransition)"""
    )


def assert_dark(page, path):
    scheme = page.evaluate("document.body.dataset.mdColorScheme")
    assert scheme == "slate", f"{path}: dark mode did not apply ({scheme})"


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


def run_axe(page, prefix="", only=None, skip=(), exclude=()):
    """axe-core's violations on the page, injected from node_modules (no CDN):
    of every rule it runs by default, or of the rules named in `only`, less
    those in `skip`; on the whole page less the elements `exclude` selects.
    axe is injected once per page (its 0.3 s parse is a tenth of a visit)."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    options = {"resultTypes": ["violations"]}
    if only is not None:
        options["runOnly"] = {"type": "rule", "values": only}
    if skip:
        options["rules"] = {rule: {"enabled": False} for rule in skip}
    context = {"exclude": [[selector] for selector in exclude]} if exclude else None
    violations = page.evaluate(
        """async ([context, options]) =>
             (await axe.run(context ?? document, options))
             .violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
               nodes: v.nodes.map((n) => n.target.join(" "))}))""",
        [context, options],
    )
    for violation in violations:
        violation["id"] = prefix + violation["id"]
    return violations


@pytest.fixture(scope="session")
def visits(browser, site_server):
    """path -> what the visit recorded; each visit happens once."""
    cache = {}

    def get(path):
        if path not in cache:
            cache[path] = visit(browser, site_server.url, path)
        return cache[path]

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
    phone = visits(path)["phone"]
    assert phone["scrollWidth"] <= DEVICES["phone"]["width"], (
        f"{path} is {phone['scrollWidth']} px wide at 375 px"
    )
    assert phone["console"] == [] and phone["failed"] == [], path


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


def code_words(kind):
    """A word of each token class in the site's code blocks of a kind: the
    first the site has, since axe treats words as their text asks (it skips
    punctuation alone, for one)."""
    opening = {
        "chapter": r'<div class="highlight">',
        "notebook": r'<div[^>]*\bclass="highlight-ipynb[^"]*"[^>]*>',
    }[kind]
    words = {}
    for page in sorted(SITE.rglob("*.html")):
        for block in re.findall(opening + "(.*?)</pre>", page.read_text(), re.DOTALL):
            for name, text in re.findall(
                r'<span class="([^"]+)">([^<]*)</span>', block
            ):
                words.setdefault(name, html.unescape(text))
    return words


# A word of every token class, a line each, in place of a block's code; then
# what axe's contrast rule finds in that block.
SAMPLE_CODE = """([selector, words]) => {
  const block = document.querySelector(selector);
  block.dataset.codeSample = "";
  block.replaceChildren(
    ...Object.entries(words).flatMap(([name, text]) => {
      const word = document.createElement("span");
      word.className = name;
      word.textContent = text;
      return [word, "\\n"];
    }));
}"""
CONTRAST_IN = """async (selector) => {
  const result = await axe.run({include: [[selector]]},
    {runOnly: {type: "rule", values: ["color-contrast"]}});
  const nodes = (type) =>
    result[type].flatMap((rule) => rule.nodes.map((node) => node.target.join(" ")));
  return {violations: nodes("violations"), incomplete: nodes("incomplete"),
          passes: nodes("passes").length};
}"""


@pytest.mark.parametrize("kind", CODE_BLOCKS)
def test_every_code_colour_has_contrast_in_both_schemes(browser, site_server, kind):
    """What the visits leave out: every token class of the site's code, in
    the first block of a page with that kind of block, light and dark."""
    require_axe()
    path, selector = CODE_BLOCKS[kind]
    words = code_words(kind)
    assert len(words) >= 10, f"{kind} code: token classes {sorted(words)}"
    readable = [name for name, text in words.items() if re.search(r"\w", text)]
    context = browser.new_context(viewport=DEVICES["desktop"], color_scheme="light")
    page = context.new_page()
    page.goto(site_server.url + path, wait_until="load")
    lay_out_everything(page)
    page.evaluate(SAMPLE_CODE, [selector, words])
    assert page.locator(selector).first.is_visible(), f"{path}: {selector} hidden"
    page.add_script_tag(path=str(AXE))
    light = page.evaluate(CONTRAST_IN, "[data-code-sample]")
    switch_to_dark(page)
    assert_dark(page, path)
    dark = page.evaluate(CONTRAST_IN, "[data-code-sample]")
    context.close()
    for scheme, found in [("light", light), ("dark", dark)]:
        assert found["violations"] == [] and found["incomplete"] == [], (
            f"{kind} code, {scheme}: {found}"
        )
        assert found["passes"] == len(readable), f"{kind} code, {scheme}: {found}"


@pytest.mark.parametrize("path", [p for p in PAGES if CHAPTER.match(p)])
def test_chapter_pages_weigh_under_1_5_mb(visits, path):
    transferred = visits(path)["transferred"]
    assert transferred < MAX_CHAPTER_BYTES, f"{path}: {transferred:,} bytes"


@pytest.mark.parametrize("path", [p for p in PAGES if p == PRINT_PAGE])
def test_the_one_page_book_weighs_under_its_chapters_budgets(visits, path):
    transferred = visits(path)["transferred"]
    assert transferred < MAX_PRINT_PAGE_BYTES, f"{path}: {transferred:,} bytes"


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


def test_the_one_page_book_colours_its_chapters_as_their_pages():
    """What lets the one-page book leave its chapter sections' colours to the
    chapter pages: it links the same stylesheets; book.css's screen rules for
    it change no colour; its plugin's inline rules number headings only where
    a class asks for it, and none does."""
    if PRINT_PAGE not in PAGES:
        pytest.skip("no one-page book in site/")
    book = (SITE / PRINT_PAGE / "index.html").read_text(encoding="utf-8")
    chapter = next(p for p in PAGES if CHAPTER.match(p))
    stylesheets = re.compile(r'<link rel="stylesheet" href="(?:\.\./)*([^"]+)"')
    assert stylesheets.findall(book) == stylesheets.findall(
        (SITE / chapter / "index.html").read_text(encoding="utf-8")
    )
    layout_only = {"content-visibility", "contain-intrinsic-size", "display"}
    css = (ROOT / "docs" / "stylesheets" / "book.css").read_text(encoding="utf-8")
    for rule in tinycss2.parse_stylesheet(css, True, True):  # no comments, spaces
        if rule.type != "qualified-rule":
            continue  # @media print and the like
        selector = tinycss2.serialize(rule.prelude)
        if re.search(r"#print-site-page|\.print-page\b", selector):
            declarations = tinycss2.parse_blocks_contents(rule.content, True, True)
            changed = {d.lower_name for d in declarations if d.type == "declaration"}
            assert changed <= layout_only, f"book.css: {selector.strip()}: {changed}"
    for style in re.findall(r"<style>(.*?)</style>", book, re.DOTALL):
        for rule in tinycss2.parse_stylesheet(style, True, True):
            assert (
                tinycss2.serialize(rule.prelude)
                .strip()
                .startswith(".print-site-enumerate-")
            ), tinycss2.serialize(rule.prelude)
    assert "print-site-enumerate-" not in "".join(re.findall(r'class="([^"]*)"', book))


def test_a_page_s_tests_go_to_one_worker_together():
    from conftest import work_unit

    units = {
        work_unit(f"tests/test_browser.py::{test}[{params}]")
        for test, params in [
            ("test_page_loads_cleanly_from_the_site_alone", "04-layers/"),
            ("test_no_horizontal_scroll_on_a_phone", "04-layers/"),
            ("test_math_is_typeset_not_raw_tex", "04-layers/"),
        ]
    }
    assert units == {"page 04-layers/"}
    assert work_unit("tests/test_layers.py::test_x[1-2]") == "tests/test_layers.py"
    assert work_unit("tests/test_browser.py::test_dark_mode") == "tests/test_browser.py"


def test_pages_are_handed_out_after_the_test_files_heaviest_first():
    from conftest import pages_last

    units = [
        ("page 04-layers/", ["a", "b", "c"]),
        ("tests/test_claims.py", ["a"]),
        ("page print_page/", ["a", "b"]),
        ("tests/test_runner.py", ["a", "b"]),
        ("page ", ["a", "b"]),
    ]
    sizes = {"page 04-layers/": 250_000, "page print_page/": 1_600_000, "page ": 45_000}
    assert [name for name, _ in pages_last(units, weight=sizes.get)] == [
        "tests/test_runner.py",
        "tests/test_claims.py",
        "page print_page/",
        "page 04-layers/",
        "page ",
    ]


def test_a_page_s_weight_is_its_html_s_size():
    from conftest import page_bytes

    if not (SITE / "404.html").exists():
        pytest.skip("site/ is not built")
    assert page_bytes("page 404.html") == (SITE / "404.html").stat().st_size
    assert page_bytes("page ") == (SITE / "index.html").stat().st_size
    assert page_bytes("page no-such-page/") == 0
