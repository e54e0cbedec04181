"""The whole book as one PDF, printed from the site's own one-page book.

    python -m tools.pdf    # `make pdf`: site/print_page/ -> site/learned-kernels.pdf

mkdocs-print-site-plugin writes print_page/, every page on one page; this
file is also an MkDocs hook (mkdocs.yml lists it) that makes that page the
book: the home page and the chapters in order (no notebooks, no interactive
pages), each as the other hooks left it (MathML, sized figures), with links to
pages left out pointing at the published site. Debian's Chromium prints it
through Playwright (never `playwright install`), with page numbers and PDF
bookmarks; the landing page's link to the print view then becomes a download
link for the PDF.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import time
from pathlib import Path
from urllib.parse import urljoin

import material
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "site"
PRINT_PAGE = "print_page/"
PDF_NAME = "learned-kernels.pdf"
CHAPTER = re.compile(r"^\d\d-[-a-z0-9]+\.md$")
CHROMIUM = Path("/usr/bin/chromium")
MATERIAL_ICONS = Path(material.__file__).parent / "templates" / ".icons"

# The landing page's paragraph that `make pdf` turns into a download link.
PDF_PARAGRAPH = re.compile(
    r'<p class="book-download book-pdf" id="book-pdf">.*?</p>', re.DOTALL
)
IN_PAGE_LINK = re.compile(r'href="#([^"]*)"')
ID = re.compile(r'(?<![-\w])id="([^"]+)"')
COVER_END = re.compile(r'<section id="print-site-cover-page">.*?</section>', re.DOTALL)
HEADING = re.compile(r'<(h[12])\b[^>]*\sid="([^"]+)"[^>]*>(.*?)</\1>', re.DOTALL)
HEADERLINK = re.compile(r'<a class="headerlink"[^>]*>.*?</a>', re.DOTALL)
TAG = re.compile(r"<[^>]+>")
CONTENTS_ID = "book-contents"
BOOK_END = "</section></div><style>"
CLOSED_DETAILS = re.compile(r"<details(?![^>]*\bopen\b)")
SECTION = re.compile(r'<section class="print-page" id="([^"]+)"')
CAPTION_BY_ID = re.compile(r'(data-description="\.md-content #)([^"]+")')
MATERIAL_CONFIG = re.compile(r'<script id="__config"[^>]*>(.*?)</script>', re.DOTALL)
# Material sets up a code block (copy button, focus when it scrolls) when it
# first comes into view rather than at load: the one-page book has about 200,
# and setting them all up at once laid the whole page out again for each.
LAZY_CODE_BLOCKS = "content.lazy"


def in_print(page) -> bool:
    """Whether a page belongs to the printed book: the home page, the chapters."""
    uri = page.file.src_uri
    return uri == "index.md" or bool(CHAPTER.match(uri))


def book_pages(items):
    """The printed book's pages from the site navigation, in its order."""
    pages = []
    for item in items:
        if item.is_page and in_print(item):
            pages.append(item)
        elif item.is_section:
            pages.extend(book_pages(item.children))
    return pages


_left_out = {}  # print page anchor of a page left out -> its URL on the site


def _print_site(config):
    plugin = config.plugins.get("print-site")
    if plugin is None:
        raise PluginError("tools/pdf.py needs the print-site plugin in mkdocs.yml")
    return plugin


@event_priority(-100)  # after print-site has taken the navigation
def on_nav(nav, config, files):
    from mkdocs_print_site_plugin.urls import get_page_key

    plugin = _print_site(config)
    plugin.renderer.items = book_pages(nav.items)
    _left_out.clear()
    for page in nav.pages:
        if not in_print(page):
            _left_out[get_page_key(page.url)] = page.url
    return nav


@event_priority(-100)  # after every other hook: the page as published
def on_page_content(content, page, config, files):
    if in_print(page):
        page.html = content  # what print-site combines
    return content


@event_priority(-100)  # after print-site has written print_page/
def on_post_build(config):
    path = Path(config.site_dir) / PRINT_PAGE / "index.html"
    text = path.read_text(encoding="utf-8")
    path.write_text(fix_print_page(text, config.site_url or ""), encoding="utf-8")


def fix_print_page(text, site_url):
    """The print page with every id unique, every in-page link landing and
    its figures lazy; links to pages left out point at the site; the search
    dialog is named, as the hook names it on every other page. A link to an
    anchor the page does not have fails the build."""
    from tools.mkdocs_hooks import LAZY_IMAGE, on_post_page

    text = on_post_page(text, None, None)
    # Lazy figures, as on the chapter pages: print-site made them eager, so a
    # phone fetched 65 figures (1.4 MB) before the page settled. Chromium
    # loads lazy figures to print; print_pdf makes them eager and waits anyway.
    text = LAZY_IMAGE.sub('<img loading="lazy" ', text)
    text = with_feature(text, LAZY_CODE_BLOCKS)
    start = text.index('<div id="print-site-page"')
    # print-site closes its pages with </div><style> (their headings' styles).
    end = text.find(BOOK_END, start)
    if end < 0:
        raise PluginError(f"{PRINT_PAGE}: no {BOOK_END!r}: has print-site changed?")
    head, body, tail = text[:start], unique_ids(text[start:end]), text[end:]
    body = CLOSED_DETAILS.sub("<details open", body)  # code folded on a chapter
    ids = set(ID.findall(body))

    def link(match):
        anchor = html.unescape(match[1])
        if anchor in ids or anchor == "":
            return match[0]
        if anchor == PRINT_PAGE.strip("/"):  # a link to the print view itself
            return 'href="#print-site-page"'
        for key, url in _left_out.items():
            if anchor == key or anchor.startswith(key + "-"):
                rest = anchor[len(key) + 1 :]
                target = urljoin(site_url, url) + (f"#{rest}" if rest else "")
                return f'href="{html.escape(target)}"'
        raise PluginError(f"{PRINT_PAGE}: a link to #{anchor}, which it does not have")

    body = IN_PAGE_LINK.sub(link, body)
    cover = COVER_END.search(body)
    at = cover.end() if cover else 0
    return head + body[:at] + contents(body) + body[at:] + tail


def with_feature(text, feature):
    """The page with feature added to Material's settings in it."""
    found = MATERIAL_CONFIG.search(text)
    if found is None:
        raise PluginError(f"{PRINT_PAGE}: no Material settings (#__config) found")
    settings = json.loads(found[1])
    settings["features"] = [feature, *settings["features"]]
    start, end = found.span(1)
    # As Jinja's tojson writes it: no "</script>" can end the script early.
    written = json.dumps(settings).replace("<", "\\u003c")
    return text[:start] + written + text[end:]


def contents(body):
    """The book's contents: each page of the print view (the landing page as
    "Introduction") with its sections, linked. `make pdf` adds the page
    numbers (print_pdf); on screen it is a list of links."""
    parts = SECTION.split(body)  # text, key, text, key, text...
    items = []
    for key, part in zip(parts[1::2], parts[2::2]):
        headings = HEADING.findall(part)
        if not headings or headings[0][0] != "h1":
            raise PluginError(f"{PRINT_PAGE}: the page {key} does not open with a h1")
        title = "Introduction" if key == "index" else _plain(headings[0][2])
        sections = "".join(
            f'<li><a href="#{ident}">{_plain(inner)}</a></li>'
            for level, ident, inner in headings[1:]
            if level == "h2"
        )
        items.append(
            f'<li><a href="#{key}">{title}</a>'
            + (f"<ol>{sections}</ol>" if sections else "")
            + "</li>"
        )
    return (
        f'<section class="print-page" id="{CONTENTS_ID}">'
        f'<nav class="book-contents" aria-labelledby="{CONTENTS_ID}-title">'
        f'<h1 id="{CONTENTS_ID}-title">Contents</h1>'
        f"<ol>{''.join(items)}</ol></nav></section>"
    )


def _plain(fragment):
    """A heading's text, escaped again for HTML, without its permalink."""
    text = html.unescape(TAG.sub("", HEADERLINK.sub("", fragment)))
    return html.escape(" ".join(text.split()), quote=False)


def unique_ids(body):
    """body with every id inside a page's section prefixed by the section's
    id, as print-site prefixes the links. (It renames the ids of headings,
    footnotes and tabs itself, but misses one that follows another tag on
    its line, and does not rename those of figures or tables.)"""
    parts = SECTION.split(body)  # text, key, text, key, text...
    for index in range(2, len(parts), 2):
        key = parts[index - 1]
        parts[index] = ID.sub(
            lambda m, key=key: (
                m[0] if m[1].startswith(key + "-") else f'id="{key}-{m[1]}"'
            ),
            parts[index],
        )
        # The lightbox finds a figure's caption by its id (tools/lightbox.py).
        parts[index] = CAPTION_BY_ID.sub(rf"\g<1>{key}-\g<2>", parts[index])
    out = [parts[0]]
    for index in range(1, len(parts), 2):
        out.append(f'<section class="print-page" id="{parts[index]}"{parts[index + 1]}')
    return "".join(out)


# What the print view does before printing: every figure loaded (the hook makes
# them lazy) and decoded, every code block laid out, the fonts ready.
READY = """async () => {
  document.querySelectorAll("img[loading=lazy]").forEach((img) => {
    img.loading = "eager";
  });
  await Promise.all(Array.from(document.images, (img) => img.decode()));
  await document.fonts.ready;
  return document.images.length;
}"""


# The contents' entries, each with the heading it links to (a page's h1).
CONTENTS_ENTRIES = """() => Array.from(
  document.querySelectorAll(".book-contents a"), (link) => {
  const target = document.getElementById(link.getAttribute("href").slice(1));
  const chapter = target.matches("section");
  const heading = chapter ? target.querySelector("h1") : target;
  return { title: heading.textContent.replace("\u00b6", ""), chapter };
})"""
SET_PAGE_NUMBERS = """(numbers) => {
  document.querySelectorAll(".book-contents a").forEach((link, index) => {
    link.querySelectorAll("span").forEach((span) => span.remove());
    link.insertAdjacentHTML("beforeend", '<span class="book-contents__leader">' +
      '</span><span class="book-contents__page">' + numbers[index] + "</span>");
  });
}"""


def _squash(text):
    return "".join(text.split())


def bookmarks(pdf: bytes) -> list[dict]:
    """The PDF's outline as a tree: each bookmark's title, the number of the
    page it opens (counted from 1, as the pages are numbered) and children."""
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    roots, open_marks = [], []  # open_marks: the bookmark of each level above
    try:
        for mark in document.get_toc():
            destination = mark.get_dest()
            if destination is None:
                raise SystemExit(f"the PDF's bookmark {mark.get_title()!r} has no page")
            node = {
                "title": mark.get_title(),
                "page": destination.get_index() + 1,
                "children": [],
            }
            del open_marks[mark.level :]
            (open_marks[-1]["children"] if open_marks else roots).append(node)
            open_marks.append(node)
    finally:
        document.close()
    return roots


def contents_pages(outline: list[dict], entries: list[dict]) -> list[int]:
    """The page of each of the contents' entries (a chapter, or a section of the
    chapter before it), read from the PDF's bookmarks: a chapter's is the next
    top-level bookmark with its title after the contents' own, a section's the
    next with its title among its chapter's."""
    titles = [_squash(node["title"]) for node in outline]
    if "Contents" not in titles:
        raise SystemExit("the PDF has no bookmark for its contents: no outline?")
    chapters, position = outline, titles.index("Contents") + 1
    sections, section_position = [], 0
    pages = []
    for entry in entries:
        title = _squash(entry["title"])
        nodes, start = (
            (chapters, position) if entry["chapter"] else (sections, section_position)
        )
        found = next(
            (
                n
                for n in range(start, len(nodes))
                if _squash(nodes[n]["title"]) == title
            ),
            None,
        )
        if found is None:
            raise SystemExit(
                f"the PDF has no bookmark {entry['title']!r} where the contents "
                "expect it: its page number is unknown"
            )
        if entry["chapter"]:
            position = found + 1
            sections, section_position = nodes[found]["children"], 0
        else:
            section_position = found + 1
        pages.append(nodes[found]["page"])
    return pages


def print_pdf(target: Path, site: Path = SITE) -> dict:
    """Print the site's print view to target; return what it printed. It is
    printed until the page numbers written into its contents are those on
    which the PDF's bookmarks say each chapter and section starts (twice:
    once without them, once with)."""
    from playwright.sync_api import sync_playwright

    from tools.site_server import SiteServer

    if not (site / PRINT_PAGE / "index.html").exists():
        raise SystemExit(f"{site / PRINT_PAGE} not found: run `make site` first")
    if not CHROMIUM.exists():
        raise SystemExit(
            f"Chromium not found at {CHROMIUM}: install Debian's package "
            "(`sudo apt-get install chromium`)"
        )
    external = []

    def route(route):
        url = route.request.url
        if url.startswith(("data:", "blob:", server.url.split("/learned")[0])):
            route.continue_()
        else:
            external.append(url)
            route.abort()

    with SiteServer(site) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(color_scheme="light")
        context.route("**/*", route)
        page = context.new_page()
        page.goto(server.url + PRINT_PAGE, wait_until="load")
        images = page.evaluate(READY)
        entries = page.evaluate(CONTENTS_ENTRIES)
        numbers = None
        for _ in range(4):
            pdf = page.pdf(
                prefer_css_page_size=True,  # book.css's @page: A4, margins, numbers
                print_background=True,
                outline=True,  # bookmarks from the headings
                tagged=True,
            )
            found = contents_pages(bookmarks(pdf), entries)
            if found == numbers:
                break
            numbers = found
            page.evaluate(SET_PAGE_NUMBERS, numbers)
        else:
            raise SystemExit("the contents' page numbers move each time they are set")
        browser.close()
    if external:
        raise SystemExit(f"{PRINT_PAGE} asked for pages off the site: {external}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(pdf)
    return {"images": images, "contents": len(entries)}


def link_pdf(index_html: str, pdf: Path) -> str:
    """The landing page with its paragraph about the print view turned into a
    download link for pdf (its page count and size said)."""
    import pypdfium2

    if not PDF_PARAGRAPH.search(index_html):
        raise SystemExit(
            'the landing page has no <p class="book-download book-pdf" '
            'id="book-pdf">: docs/index.md lost the paragraph `make pdf` links'
        )
    document = pypdfium2.PdfDocument(pdf)
    pages = len(document)
    document.close()
    size = pdf.stat().st_size / 1e6
    icon = (MATERIAL_ICONS / "material" / "download.svg").read_text(encoding="utf-8")
    paragraph = (
        '<p class="book-download book-pdf" id="book-pdf">\n'
        f'<a href="{pdf.name}" download class="md-button md-button--primary">'
        f"{icon} Download the book as a PDF</a>\n"
        f"{pages} pages, {size:.0f} MB; or read it on "
        f'<a href="{PRINT_PAGE}">one page</a>.\n</p>'
    )
    return PDF_PARAGRAPH.sub(lambda m: paragraph, index_html, count=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=SITE)
    parser.add_argument("--output", type=Path, help=f"default: SITE/{PDF_NAME}")
    args = parser.parse_args(argv)
    target = args.output or args.site / PDF_NAME
    started = time.monotonic()
    printed = print_pdf(target, args.site)
    if args.output is None:  # the site's own PDF: the landing page links it
        index = args.site / "index.html"
        index.write_text(link_pdf(index.read_text(encoding="utf-8"), target))
    print(
        f"{target}: {target.stat().st_size / 1e6:.1f} MB, {printed['images']} "
        f"figures, in {time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
