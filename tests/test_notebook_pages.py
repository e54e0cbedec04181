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
    (sheet,) = sheets
    assert (SITE / "assets" / "stylesheets" / sheet).stat().st_size > 100_000


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
        '0 to 9, as blocky 8 by 8 greyscale images" class="" src="../digits.svg"'
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
