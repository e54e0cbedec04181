"""Chapter code blocks are laid out only near the screen (book.css,
content-visibility); the room kept for one is its real height, so the page
does not move when a block is laid out."""

import re
from pathlib import Path

import pytest

from tools import mkdocs_hooks

SITE = Path(__file__).resolve().parent.parent / "site"
CHAPTERS = sorted(SITE.glob("[0-9][0-9]-*/index.html"))
CODE_BLOCK = re.compile(
    r'<div class="highlight"><pre style="--code-lines: (\d+)"><span></span><code>'
    r"(.*?)</code>",
    re.DOTALL,
)


def test_each_chapter_code_block_states_its_number_of_lines():
    if not CHAPTERS:
        pytest.fail("site/ is not built: run `make site` (or `make test`) first")
    for chapter in CHAPTERS:
        html = chapter.read_text(encoding="utf-8")
        blocks = CODE_BLOCK.findall(html)
        assert blocks and len(blocks) == html.count('<div class="highlight"'), chapter
        for lines, code in blocks:
            text = re.sub(r"<[^>]*>", "", code).removesuffix("\n")
            assert int(lines) == text.count("\n") + 1, f"{chapter}: {text[:60]!r}"


@pytest.mark.parametrize(
    "before, lines",
    [
        ('<div class="highlight"><pre><span></span><code>x = 1\n</code>', 1),
        ('<div class="highlight"><pre><span></span><code>x = 1\ny = 2\n</code>', 2),
        (
            '<div class="highlight"><span class="filename">a.py</span>'
            "<pre><span></span><code>x = 1\n\ny = 2\n</code>",
            3,
        ),
    ],
)
def test_code_block_lines_count_what_a_pre_shows(before, lines):
    after = mkdocs_hooks.CODE_BLOCK.sub(mkdocs_hooks._code_block, before)
    opening = f'<pre style="--code-lines: {lines}">'
    assert after == before.replace("<pre>", opening)


# Every block of the page: its height before it is laid out and after.
BLOCK_ROOM = """() => {
  const blocks = Array.from(document.querySelectorAll(".md-content div.highlight"));
  const kept = blocks.map((block) => ({
    height: block.getBoundingClientRect().height,
    laidOut: block.querySelector("code > span").checkVisibility(
      {contentVisibilityAuto: true}),
  }));
  const pageHeight = document.documentElement.scrollHeight;
  const style = document.createElement("style");
  style.textContent = "* { content-visibility: visible !important; }";
  document.head.append(style);
  return {
    pageHeight,
    realPageHeight: document.documentElement.scrollHeight,
    blocks: blocks.map((block, i) => ({
      ...kept[i], real: block.getBoundingClientRect().height,
    })),
  };
}"""


@pytest.mark.parametrize("width", [1280, 375])
def test_code_blocks_not_yet_laid_out_keep_exactly_their_room(
    browser, site_server, width
):
    """A reader who jumps to a figure must not see the page shift under them
    (nor click the wrong element) when the blocks above it are laid out."""
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    page.goto(f"{site_server.url}09-architectures/")
    measured = page.evaluate(BLOCK_ROOM)
    context.close()
    blocks = measured["blocks"]
    waiting = [block for block in blocks if not block["laidOut"]]
    assert len(waiting) > len(blocks) / 2, "code blocks are laid out up front"
    for block in waiting:
        assert block["height"] == pytest.approx(block["real"], abs=1), block
    assert measured["pageHeight"] == measured["realPageHeight"]


def test_a_printed_chapter_lays_out_every_code_block(browser, site_server):
    """The print rule must outweigh the screen rule: a printed page (or its
    preview) keeps every line of code, scrolled near or not."""
    page = browser.new_page()
    page.emulate_media(media="print")
    page.goto(f"{site_server.url}09-architectures/")
    skipped = page.evaluate(
        """() => Array.from(document.querySelectorAll("div.highlight code > span"))
          .filter((span) => !span.checkVisibility({contentVisibilityAuto: true}))
          .length"""
    )
    page.close()
    assert skipped == 0
