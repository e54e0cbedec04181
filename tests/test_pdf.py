"""The whole book as one PDF (`make pdf`, tools/pdf.py) and the one-page book
(print_page/) it is printed from.

The PDF is read as text by PDFium (pypdfium2: Chromium's own PDF engine) and
checked against the built chapter pages: every chapter's title, in order;
every figure caption's first words and its "Figure N.k" number where the
caption carries one; every code block; each figure's own text (a figure
printed as a picture would have none); page numbers; no raw TeX and no
unresolved reference. Where `make pdf` has not made site/learned-kernels.pdf,
the test prints one into build/pdf/ (about half a minute), so that `make test`
and CI check the PDF without building it twice.
"""

import html
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from tools import pdf as book_pdf_tool
from tools.site_server import SITE

ROOT = Path(__file__).resolve().parent.parent
CHAPTER_PAGES = sorted(SITE.glob("[0-9][0-9]-*/index.html"))
TEST_PDF = ROOT / "build" / "pdf" / book_pdf_tool.PDF_NAME
RAW_TEX = re.compile(r"\$\$|\\\(|\\\[|\\(frac|sum|mathbf|times|cdot)\b|\$[^$\s]+\$")
UNRESOLVED = re.compile(r"\?\?|\bundefined\b")
NUMBER_LABEL = re.compile(r"\b(?:Figure|Table)\s+\d+\.\d+")
TAG = re.compile(r"<[^>]+>")
CAPTION = re.compile(r"<(figcaption|caption)\b[^>]*>(.*?)</\1>", re.DOTALL)
CODE_BLOCK = re.compile(
    r'<div class="highlight">.*?<code>(.*?)</code></pre></div>', re.DOTALL
)
FIGURE_SRC = re.compile(r'<img\b[^>]*\ssrc="([^"]+\.svg)"')
SVG_TEXT = re.compile(r"<text\b[^>]*>([^<]+)</text>")


def squash(text):
    """text without whitespace (the PDF wraps lines where the page does not)
    and ligatures (a figure's "ﬀ" is "ff")."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def plain(fragment):
    return html.unescape(TAG.sub("", fragment))


def chapter(page):
    """What the PDF must hold of a built chapter page (site/NN-*/index.html)."""
    text = page.read_text(encoding="utf-8")
    article = text[text.index("<article") : text.index("</article>")]
    title = plain(re.search(r"<h1\b[^>]*>(.*?)</h1>", article, re.DOTALL)[1])
    captions, labels = [], []
    for _, caption in CAPTION.findall(article):
        labels += NUMBER_LABEL.findall(plain(caption))
        # Up to the first formula or code: the PDF shows those differently.
        words = plain(re.split(r"<(?:math|code)\b", caption)[0]).split()
        if len(words) >= 3:
            captions.append(" ".join(words[:6]))
    code = []
    for block in CODE_BLOCK.findall(article):
        # Its longest line but for a comment, which the PDF's text may move away.
        lines = [line.split("  #")[0].strip() for line in plain(block).splitlines()]
        line = max((x for x in lines if not x.startswith("#")), key=len, default="")
        if line:
            code.append(line)
    sections = [
        " ".join(plain(inner).replace("¶", "").split())
        for inner in re.findall(
            r"<h2\b[^>]*\sid=\"[^\"]+\"[^>]*>(.*?)</h2>", article, re.S
        )
    ]
    figure_text = []
    for src in FIGURE_SRC.findall(article):
        svg = (page.parent / src).resolve()
        texts = [html.unescape(t).strip() for t in SVG_TEXT.findall(svg.read_text())]
        if texts:
            figure_text.append((src, max(texts, key=len)))
    return {
        "page": page.parent.name,
        "title": " ".join(title.replace("¶", "").split()),
        "sections": sections,
        "captions": captions,
        "labels": labels,
        "code": code,
        "figure_text": figure_text,
    }


def problems(pages, chapters):
    """What the PDF's text (a string per page) lacks or shows that it should
    not, one line each."""
    pdf_text = "\n".join(pages)
    squashed = squash(pdf_text)
    tops = [squash(text)[:200] for text in pages]
    found = []
    last = 0
    for part in chapters:
        where, title = part["page"], squash(part["title"])
        # after the last chapter's start: a contents page may also begin with it
        starts = [n for n, top in enumerate(tops) if n > last and top.startswith(title)]
        if not starts:
            found.append(
                f"{where}: no page starts with {part['title']!r} after the last"
            )
        else:
            last = starts[0]
        for caption in part["captions"]:
            if squash(caption) not in squashed:
                found.append(f"{where}: figure caption {caption!r} missing")
        for label in part["labels"]:
            if squash(label) not in squashed:
                found.append(f"{where}: {label} missing")
        for line in part["code"]:
            if squash(line) not in squashed:
                found.append(f"{where}: code line {line!r} missing")
        for src, text in part["figure_text"]:
            if squash(text) not in squashed:
                found.append(f"{where}: {src} has no text {text!r}: not vector")
    for pattern, what in [(RAW_TEX, "raw TeX"), (UNRESOLVED, "an unresolved ref")]:
        for match in pattern.finditer(pdf_text):
            context = pdf_text[max(0, match.start() - 40) : match.end() + 40]
            found.append(f"{what} {match[0]!r} in {' '.join(context.split())!r}")
    return found


def footer_last(text, number):
    """A page's text with its footer, the page number, last: Chromium 156.0.8078.114
    draws the footer first, and PDFium reads in drawing order."""
    first, newline, rest = text.partition("\n")
    return f"{rest}\n{first}" if newline and first.strip() == str(number) else text


def page_texts(path):
    """The text of each page of the PDF at path (PDFium ends its lines with CRLF)."""
    import pypdfium2

    document = pypdfium2.PdfDocument(path)
    try:
        texts = [
            page.get_textpage().get_text_bounded().replace("\r\n", "\n")
            for page in document
        ]
    finally:
        document.close()
    return [footer_last(text, n) for n, text in enumerate(texts, start=1)]


@pytest.fixture(scope="module")
def chapters():
    if not CHAPTER_PAGES:
        pytest.fail("site/ is not built: run `make site` (or `make test`) first")
    return [chapter(page) for page in CHAPTER_PAGES]


@pytest.fixture(scope="module")
def book_pdf():
    """site/learned-kernels.pdf if `make pdf` made it from this site, else one
    printed now into build/pdf/."""
    made = SITE / book_pdf_tool.PDF_NAME
    print_page = SITE / book_pdf_tool.PRINT_PAGE / "index.html"
    for pdf in made, TEST_PDF:
        if pdf.exists() and pdf.stat().st_mtime >= print_page.stat().st_mtime:
            return pdf
    if not book_pdf_tool.CHROMIUM.exists():
        from conftest import skip_or_fail

        skip_or_fail(f"Chromium not found at {book_pdf_tool.CHROMIUM}")
    # In its own process: this worker may already drive Chromium through
    # Playwright's sync API (the browser fixture), which allows one per process.
    subprocess.run(
        [sys.executable, "-m", "tools.pdf", "--output", str(TEST_PDF)],
        cwd=ROOT,
        check=True,
    )
    return TEST_PDF


@pytest.fixture(scope="module")
def pages(book_pdf):
    return page_texts(book_pdf)


def test_the_pdf_holds_every_chapter_figure_and_code_block(pages, chapters):
    assert problems(pages, chapters) == []


def test_a_chapter_missing_from_the_pdf_is_reported(pages, chapters):
    """The check above can fail: cut chapter 5's pages and its title, captions
    and code are reported; a raw formula and a "??" are too."""
    fifth, sixth = (squash(chapters[i]["title"]) for i in (4, 5))
    start = next(n for n, text in enumerate(pages) if squash(text).startswith(fifth))
    end = next(n for n, text in enumerate(pages) if squash(text).startswith(sixth))
    planted = pages[:start] + pages[end:] + ["see Figure ?? and $x^2$"]
    found = problems(planted, chapters)
    cut = [line for line in found if line.startswith(chapters[4]["page"] + ":")]
    assert any("no page starts with" in line for line in cut)
    assert any("code line" in line for line in cut)
    assert any("figure caption" in line for line in cut)
    assert any("not vector" in line for line in cut)
    assert any(line.startswith("raw TeX '$x^2$'") for line in found)
    assert any(line.startswith("an unresolved ref '??'") for line in found)
    assert not any(line.startswith(chapters[5]["page"]) for line in found)


def test_figure_numbers_are_checked_where_captions_carry_them(pages, chapters):
    numbered = dict(chapters[0], labels=["Figure 99.1", "Table 99.2"])
    found = problems(pages, [numbered])
    assert f"{numbered['page']}: Figure 99.1 missing" in found
    assert f"{numbered['page']}: Table 99.2 missing" in found
    assert problems([*pages, "Figure 99.1, Table 99.2"], [numbered]) == []


def test_a_footer_read_first_is_moved_last():
    assert footer_last("7\n1. Title\ntext", 7) == "1. Title\ntext\n7"
    assert footer_last("1. Title\ntext\n7", 7) == "1. Title\ntext\n7"
    assert footer_last("70 kernels\ntext", 7) == "70 kernels\ntext"


def test_pages_are_numbered_after_the_title_page(pages):
    assert len(pages) > 10 * len(CHAPTER_PAGES) // 2, "too few pages for the book"

    def numbered(number):  # the footer may come before a figure's text
        return re.search(rf"^{number}$", pages[number - 1], re.MULTILINE)

    unnumbered = [n for n in range(2, len(pages) + 1) if not numbered(n)]
    assert unnumbered == [], f"pages without their number: {unnumbered}"
    assert not numbered(1), "the title page carries a number"


def contents_pages(pages):
    """The PDF's contents: the pages after the title page, up to the landing
    page (whose title is the book's)."""
    end = next(
        n for n in range(2, len(pages)) if squash(pages[n]).startswith("LearnedKernels")
    )
    return pages[1:end]


def contents_problems(pages, chapters):
    """Where the contents' page numbers are wrong: each chapter's title must
    open the page the contents give, each section's title be on its page."""
    listed = unicodedata.normalize("NFKC", "\n".join(contents_pages(pages)))
    found, position = [], 0
    for part in chapters:
        entries = [(part["title"], True)] + [(t, False) for t in part["sections"]]
        for title, is_chapter in entries:
            # The title, wrapped anywhere, then its page number.
            words = r"\s*".join(map(re.escape, squash(title)))
            entry = re.compile(words + r"\s+(\d+)\b").search(listed, position)
            if not entry:
                found.append(f"{part['page']}: {title!r} not in the contents")
                continue
            position, number = entry.end(), int(entry[1])
            text = squash(pages[number - 1]) if number <= len(pages) else ""
            on_page = text.startswith if is_chapter else text.__contains__
            if not on_page(squash(title)):
                found.append(f"{part['page']}: {title!r} is not on page {number}")
    return found


def test_the_pdf_opens_with_title_contents_and_bookmarks(book_pdf, pages, chapters):
    assert "Learned Kernels" in pages[0]
    assert squash(pages[1]).startswith("Contents")
    outline = book_pdf_tool.bookmarks(book_pdf.read_bytes())
    bookmarks = [squash(mark["title"]) for mark in outline]
    for part in chapters:
        assert squash(part["title"]) in bookmarks, f"no bookmark for {part['title']}"


def test_the_contents_give_the_page_of_each_chapter_and_section(pages, chapters):
    assert sum(len(part["sections"]) for part in chapters) > 5 * len(chapters)
    assert contents_problems(pages, chapters) == []


def test_a_wrong_page_number_in_the_contents_is_reported(pages, chapters):
    contents_end = 1 + len(contents_pages(pages))
    shifted = pages[:contents_end] + ["a page the contents do not know of"]
    shifted += pages[contents_end:]
    found = contents_problems(shifted, chapters)
    for part in chapters:
        assert f"{part['page']}: {part['title']!r} is not on page" in " ".join(found)
    unlisted = dict(chapters[0], sections=["A section the book does not have"])
    assert contents_problems(pages, [unlisted]) == [
        f"{unlisted['page']}: 'A section the book does not have' not in the contents"
    ]


def test_contents_pages_come_from_the_bookmarks_under_each_chapter():
    def mark(title, page, children=()):
        return {"title": title, "page": page, "children": list(children)}

    outline = [
        mark("Learned Kernels", 1),  # the title page, before the contents
        mark("Contents", 2),
        mark("Learned Kernels", 4, [mark("Summary", 5)]),
        mark("1. One", 6, [mark("Summary", 7), mark("Summary", 8)]),
    ]
    entries = [
        {"title": "Learned Kernels", "chapter": True},
        {"title": "Summary", "chapter": False},
        {"title": "1.  One", "chapter": True},
        {"title": "Summary", "chapter": False},
        {"title": "Summary", "chapter": False},
    ]
    assert book_pdf_tool.contents_pages(outline, entries) == [4, 5, 6, 7, 8]
    with pytest.raises(SystemExit, match="no bookmark 'Exercises' where the contents"):
        book_pdf_tool.contents_pages(
            outline, [*entries, {"title": "Exercises", "chapter": False}]
        )


# The one-page book, as built (no PDF needed).

PRINT_HTML = SITE / book_pdf_tool.PRINT_PAGE / "index.html"


def test_the_print_page_holds_the_home_page_and_the_chapters_in_order():
    text = PRINT_HTML.read_text(encoding="utf-8")
    sections = re.findall(r'<section class="print-page" id="([^"]+)"', text)
    chapters = [page.parent.name for page in CHAPTER_PAGES]
    assert sections == [book_pdf_tool.CONTENTS_ID, "index", *chapters]


def test_the_print_page_s_ids_are_unique_and_its_links_land():
    text = PRINT_HTML.read_text(encoding="utf-8")
    body = text[text.index('<div id="print-site-page"') :]
    ids = book_pdf_tool.ID.findall(text)
    assert sorted({i for i in ids if ids.count(i) > 1}) == []
    assert "__config" in ids, "Material's settings lost their id: no dark mode"
    dangling = {a for a in book_pdf_tool.IN_PAGE_LINK.findall(body) if a not in ids}
    assert dangling == set()
    captions = re.findall(r'data-description="\.md-content #([^"]+)"', body)
    assert captions and set(captions) - set(ids) == set(), "a figure's caption lost"
    assert "<details>" not in body, "a folded block keeps its code out of print"


def fixed(body, left_out=None):
    book_pdf_tool._left_out.clear()
    book_pdf_tool._left_out.update(left_out or {})
    page = (
        f'<html><head></head><body><div id="print-site-page">{body}</section>'
        '</div><style></style><script id="__config" type="application/json">'
        '{"features": ["toc.follow"]}</script></body>'
    )
    return book_pdf_tool.fix_print_page(page, "https://example.org/book/")


def test_the_print_page_gets_unique_ids_and_links_to_pages_left_out():
    out = fixed(
        '<section class="print-page" id="01-a"><h1 id="a">1. A</h1>'
        '<h2 id="s">S</h2><figure id="f"><a data-description=".md-content #c">'
        '</a><figcaption id="c"></figcaption></figure><a href="#01-a-f">fig</a>'
        ' <a href="#explorer-knobs">explorer</a>'
        '<details class="tip"><summary>Hint</summary></details></section>'
        '<section class="print-page" id="02-b"><h1 id="b">2. B</h1><figure id="f">',
        {"explorer": "explorer/"},
    )
    contents = '<ol><li><a href="#01-a">1. A</a><ol><li><a href="#01-a-s">S</a></li>'
    assert contents + '</ol></li><li><a href="#02-b">2. B</a></li></ol>' in out
    assert 'id="01-a-f"' in out and 'id="02-b-f"' in out
    assert 'data-description=".md-content #01-a-c"' in out and 'id="01-a-c"' in out
    assert '<script id="__config" type="application/json">' in out
    assert '{"features": ["content.lazy", "toc.follow"]}' in out
    assert 'href="https://example.org/book/explorer/#knobs"' in out
    assert '<details open class="tip">' in out


def test_a_link_the_print_page_cannot_resolve_fails_the_build_naming_it():
    from mkdocs.exceptions import PluginError

    with pytest.raises(PluginError, match=r"print_page/: a link to #01-a-nowhere"):
        fixed('<section class="print-page" id="01-a"><a href="#01-a-nowhere">x</a>')
    with pytest.raises(PluginError, match=r"the page 01-a does not open with a h1"):
        fixed('<section class="print-page" id="01-a"><h2 id="s">S</h2>')
    with pytest.raises(PluginError, match=r"no Material settings \(#__config\)"):
        book_pdf_tool.with_feature("<html></html>", "content.lazy")


def test_before_make_pdf_the_landing_page_links_the_print_view():
    text = (SITE / "index.html").read_text(encoding="utf-8")
    paragraph = book_pdf_tool.PDF_PARAGRAPH.search(text)
    assert paragraph, "the landing page lost its book-pdf paragraph"
    for href in re.findall(r'href="([^"]+)"', paragraph[0]):
        target = SITE / href / "index.html" if href.endswith("/") else SITE / href
        assert target.exists(), f"the landing page links {href}, which is not built"


def test_make_pdf_turns_the_landing_page_s_link_into_a_download(book_pdf):
    text = (SITE / "index.html").read_text(encoding="utf-8")
    linked = book_pdf_tool.link_pdf(text, book_pdf)
    assert f'<a href="{book_pdf.name}" download' in linked
    assert re.search(r"\d+ pages, \d+ MB", linked)
    with pytest.raises(SystemExit, match="docs/index.md lost the paragraph"):
        book_pdf_tool.link_pdf(text.replace('id="book-pdf"', ""), book_pdf)


# Code blocks are laid out only near the reader's screen (content-visibility:
# auto), which drops them from the page's rendered text. The one-page book,
# a printed chapter and a chapter's select-all copy keep every line.

RENDERED_TEXT = "document.querySelector('article').innerText"
SELECT_ALL = """(() => {
  const selection = getSelection();
  selection.selectAllChildren(document.querySelector("article"));
  return selection.toString();
})()"""
FIND = "(text) => window.find(text, true, false, true)"  # case, wrapping
# On screen a tab shows one block at a time, as on the chapter pages.
HIDDEN_TABS = """Array.from(document.querySelectorAll(".tabbed-block"))
  .filter((block) => !block.checkVisibility()).map((block) => block.textContent)
  .join("\\n")"""


def lost_code(page, script, parts):
    text, hidden = squash(page.evaluate(script)), squash(page.evaluate(HIDDEN_TABS))
    return [
        line
        for part in parts
        for line in part["code"]
        if squash(line) not in text and squash(line) not in hidden
    ]


def test_the_print_page_s_text_keeps_every_line_of_code(browser, site_server, chapters):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(site_server.url + book_pdf_tool.PRINT_PAGE, wait_until="load")
    on_screen = lost_code(page, RENDERED_TEXT, chapters)
    assert on_screen, "every page is laid out on screen: this test checks nothing"
    # Finding in the page reaches lines not laid out: each chapter's last one.
    last_lines = [part["code"][-1] for part in chapters if part["code"]]
    unseen = [line.strip() for line in last_lines if line in on_screen]
    assert len(unseen) >= len(chapters) - 1
    assert [line for line in unseen if not page.evaluate(FIND, line)] == []
    page.emulate_media(media="print")
    assert page.evaluate(HIDDEN_TABS) == "", "a tab hides its code in print"
    assert lost_code(page, RENDERED_TEXT, chapters) == []
    page.emulate_media(media="screen")
    # Last: a selected block is laid out, so the checks above would pass.
    assert lost_code(page, SELECT_ALL, chapters) == []
    page.close()


def test_the_print_page_s_figures_load_lazily():
    """As on the chapter pages; tools/pdf.py loads them all before printing."""
    text = (SITE / book_pdf_tool.PRINT_PAGE / "index.html").read_text(encoding="utf-8")
    images = re.findall(r"<img\b[^>]*>", text)
    assert len(images) >= len(CHAPTER_PAGES), "too few figures for the book"
    assert [image for image in images if 'loading="lazy"' not in image] == []


@pytest.mark.parametrize("index", [3, 8])  # two long chapters
def test_a_chapter_printed_or_copied_whole_keeps_every_line(
    browser, site_server, chapters, index
):
    part = chapters[index]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{site_server.url}{part['page']}/", wait_until="load")
    on_screen = lost_code(page, RENDERED_TEXT, [part])
    assert on_screen, "code blocks are all laid out on screen: this test checks nothing"
    page.emulate_media(media="print")
    assert lost_code(page, RENDERED_TEXT, [part]) == []
    page.emulate_media(media="screen")
    # Last: a selected block is laid out, so the check above would pass.
    assert lost_code(page, SELECT_ALL, [part]) == []
    page.close()
