"""The hook's lighter notebook pages, and its small accessibility fixes."""

import re

import pytest

from tools import mkdocs_hooks, runner
from tools.site_server import SITE


def notebook_page(name):
    return (SITE / "snippets" / name / name / "index.html").read_text()


@pytest.fixture(scope="module")
def notebook_pages():
    if not (SITE / "index.html").exists():
        pytest.fail("site/ is not built: run `make site` (or `make test`) first")
    return {name: notebook_page(name) for name in runner.snippet_names()}


def test_notebook_css_is_one_shared_stylesheet(notebook_pages):
    links = set()
    for name, html in notebook_pages.items():
        assert "<style" not in html, f"{name} still inlines CSS"
        links.update(
            re.findall(r'href="([^"]*assets/stylesheets/notebook\.[^"]+)"', html)
        )
    sheets = {link.rsplit("/", 1)[-1] for link in links}
    assert len(sheets) == 1, sheets


def test_notebook_css_keeps_only_rules_for_classes_the_pages_use(notebook_pages):
    (sheet,) = (SITE / "assets" / "stylesheets").glob("notebook.*.css")
    css = sheet.read_text()
    used = set()
    for html in notebook_pages.values():
        for classes in re.findall(r'class="([^"]*)"', html):
            used.update(classes.split())
    assert {"jp-Cell", "jp-InputArea", "jp-OutputArea"} <= used
    for name in ("jp-Cell", "jp-InputArea", "jp-OutputArea", "highlight-ipynb"):
        assert f".{name}" in css, f"the rules for .{name} were pruned"
    assert ".jp-Dialog" not in css  # JupyterLab's dialogs never appear here
    assert len(css) < 150_000, f"{sheet.name}: {len(css):,} characters"


CSS = """
:root { --jp-ui-font-size1: 13px; }
.jupyter-wrapper :root { --jp-icon-add: url(add.svg); }
.jp-Cell { padding: 4px; }
.jp-Cell { padding: 4px; }
.jp-Dialog, .jp-Cell .jp-InputArea { margin: 0; }
.jp-Cell:not(.jp-mod-active) { opacity: 1; }
.jp-Cell:not(:root) { outline: none; }
.jp-Dialog:hover { color: red; }
@media print { .jp-Dialog { display: none; } .jp-Cell { break-inside: avoid; } }
@media screen { .jp-Toolbar { display: flex; } }
@font-face { font-family: X; src: url(x.woff2); }
[data-jp-theme-light="false"] .jp-InputArea { color: white; }
"""


def test_prune_css_drops_selectors_for_unused_classes():
    pruned = mkdocs_hooks.prune_css(CSS, {"jp-Cell", "jp-InputArea"})
    assert "--jp-ui-font-size1: 13px" in pruned
    assert ".jp-Cell{ padding: 4px; }" in pruned
    # Of a selector list, only the selectors that can match stay.
    assert ".jp-Cell .jp-InputArea{ margin: 0; }" in pruned
    assert "jp-Dialog" not in pruned
    # A class inside :not() does not have to be used for the rule to match.
    assert ".jp-Cell:not(.jp-mod-active)" in pruned
    assert "@media print{" in pruned and "break-inside: avoid" in pruned
    assert "@media screen" not in pruned  # nothing left inside
    assert "@font-face" in pruned
    assert '[data-jp-theme-light="false"] .jp-InputArea' in pruned
    # :root below another element matches nothing; a repeated rule counts once.
    assert "--jp-icon-add" not in pruned
    assert ".jp-Cell:not(:root)" in pruned
    assert pruned.count("padding: 4px") == 1


def test_prune_css_keeps_everything_when_every_class_is_used():
    classes = {"jp-Cell", "jp-InputArea", "jp-Dialog", "jp-Toolbar"}
    pruned = mkdocs_hooks.prune_css(CSS, classes)
    for selector in (".jp-Dialog:hover", "@media screen", ".jp-Toolbar"):
        assert selector in pruned


def test_notebook_pages_load_no_mathjax_or_mermaid(notebook_pages):
    for name, html in notebook_pages.items():
        assert '<script src="">' not in html, name
        assert "x-mathjax-config" not in html and "mermaid.esm" not in html, name


def test_notebook_figures_are_the_snippets_svgs_with_the_chapters_alt_text(
    notebook_pages,
):
    html = notebook_pages["why_cnns_pipeline"]
    assert "data:image/png" not in html
    assert (
        '<img loading="lazy" decoding="async" alt="One example of each digit from '
        '0 to 9, as blocky 8 by 8 greyscale images, dark ink on white, in two rows" '
        'class="" src="../digits.svg"'
    ) in html


def test_math_in_notebook_markdown_becomes_mathml(notebook_pages):
    html = notebook_pages["explorer"]
    assert "<math" in html and r"\lfloor" not in html


@pytest.mark.parametrize(
    "text, converted",
    [
        ("the kernel $K$ slides", True),
        ("a $k \\times k$ kernel", True),
        ("$$\nY = X\n$$", True),
        ("it costs $5 and $6 today", False),
        ("a lone $ sign", False),
    ],
)
def test_notebook_math_delimiters(text, converted):
    assert ("<math" in mkdocs_hooks._notebook_math(text)) is converted


def test_search_dialog_has_an_accessible_name():
    for page in (SITE / "index.html", SITE / "404.html"):
        assert 'role="dialog" aria-label="Search"' in page.read_text(), page


def test_content_images_load_lazily():
    html = (SITE / "01-why-cnns" / "index.html").read_text()
    images = re.findall(r"<img [^>]*>", html)
    assert images and all('loading="lazy"' in image for image in images)


CODE_LINES = re.compile(
    r'<div tabindex="0" style="--code-lines: (\d+)" class="highlight-ipynb [^"]*">'
    r"<pre>(.*?)</pre>",
    re.DOTALL,
)


def test_each_code_cell_states_its_number_of_lines(notebook_pages):
    for name, html in notebook_pages.items():
        cells = CODE_LINES.findall(html)
        assert len(cells) == html.count('class="highlight-ipynb '), name
        for lines, code in cells:
            text = re.sub(r"<[^>]*>", "", code).removesuffix("\n")
            assert int(lines) == text.count("\n") + 1, f"{name}: {text[:60]!r}"


@pytest.mark.parametrize(
    "code, lines",
    [("x = 1\n", 1), ("x = 1", 1), ("x = 1\ny = 2\n", 2), ("x = 1\n\n", 2)],
)
def test_code_cell_lines_count_what_a_pre_shows(code, lines):
    cell = f'<div class="highlight-ipynb hl-python"><pre><span></span>{code}</pre>'
    marked = mkdocs_hooks.CODE_CELL.sub(mkdocs_hooks._code_cell, cell)
    assert f'style="--code-lines: {lines}"' in marked
    assert marked.endswith(f"{code}</pre>") and 'tabindex="0"' in marked


# Phone width: even the first code cell is below the screen.
CELL_ROOM = """() => {
  const cells = Array.from(document.querySelectorAll(".highlight-ipynb > pre"));
  const kept = cells.map((pre) => ({
    height: pre.getBoundingClientRect().height,
    laidOut: pre.lastElementChild.checkVisibility({contentVisibilityAuto: true}),
  }));
  const style = document.createElement("style");
  style.textContent = "* { content-visibility: visible !important; }";
  document.head.append(style);
  return cells.map((pre, i) => ({
    ...kept[i], real: pre.getBoundingClientRect().height,
  }));
}"""


def test_code_cells_not_yet_laid_out_keep_exactly_their_room(browser, site_server):
    """book.css lays out a notebook's code cells only near the screen; the room
    it keeps for one is its real height, so nothing overlaps (axe measured the
    footer against a cell that spilled out of too little room) or moves."""
    context = browser.new_context(viewport={"width": 375, "height": 800})
    page = context.new_page()
    page.goto(f"{site_server.url}snippets/architectures/architectures/")
    cells = page.evaluate(CELL_ROOM)
    context.close()
    waiting = [cell for cell in cells if not cell["laidOut"]]
    assert len(waiting) > len(cells) / 2, "code cells are laid out up front"
    for cell in waiting:
        assert cell["height"] == pytest.approx(cell["real"], abs=1), cell
