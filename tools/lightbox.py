"""Figures a reader can open large: the hook passes each page's HTML here.

The image of each figure becomes a link to its own file that GLightbox
(mkdocs-glightbox, in `manual` mode: it wraps nothing itself) opens in a
dialog, with the image's alt text and the figure's caption, the caption read
from the page by id (GLightbox takes a description starting with "." as a CSS
selector), so that the page holds it once. On notebook pages, whose figures
have no caption, each SVG figure opens with its alt text alone.
docs/javascripts/lightbox.js names the dialog, moves focus into it and back.
"""

from __future__ import annotations

import re

FIGURE = re.compile(r"<figure\b[^>]*>.*?</figure>", re.DOTALL)
IMAGE = re.compile(r"<img\b[^>]*>")
CAPTION = re.compile(r"<figcaption\b([^>]*)>")
SVG_IMAGE = re.compile(r'<img\b[^>]*\ssrc="[^"]+\.svg"[^>]*>')
LINKED = 'class="glightbox"'


def _attribute(tag: str, name: str) -> str | None:
    found = re.search(rf'\s{name}="([^"]*)"', tag)
    return found.group(1) if found else None


def _link(image: str, description: str | None = None) -> str:
    """image inside a link that opens it large."""
    alt = " ".join((_attribute(image, "alt") or "").split())  # already escaped
    attributes = [
        LINKED,
        f'href="{_attribute(image, "src")}"',
        'data-type="image"',
        f'data-alt="{alt}"',
        'aria-haspopup="dialog"',
    ]
    if description:
        attributes.append(f'data-description="{description}"')
    return f"<a {' '.join(attributes)}>{image}</a>"


def link_figures(content: str, notebook: bool = False) -> str:
    """content with each figure's single image opening large, with its caption
    (a figure of several images is left as it is); on a notebook page, also
    each SVG image outside a figure."""
    count = 0

    def figure(match):
        nonlocal count
        block = match.group(0)
        images = IMAGE.findall(block)
        if len(images) != 1 or LINKED in block:
            return block
        count += 1
        caption = CAPTION.search(block)
        description = None
        if caption:
            identifier = _attribute(caption.group(0), "id")
            if identifier is None:
                identifier = f"figure-caption-{count}"
                tag = f'<figcaption id="{identifier}"{caption.group(1)}>'
                block = block[: caption.start()] + tag + block[caption.end() :]
            description = f".md-content #{identifier}"
        return block.replace(images[0], _link(images[0], description), 1)

    content = FIGURE.sub(figure, content)
    if notebook:
        content = SVG_IMAGE.sub(lambda m: _link(m.group(0)), content)
    return content


GLIGHTBOX_SCRIPT = re.compile(r'<script src="[^"]*/glightbox\.min\.js"></script>\s*')
GLIGHTBOX_CSS = re.compile(
    r'<link href="[^"]*/glightbox\.min\.css" rel="stylesheet">\s*'
)
GLIGHTBOX_INIT = '<script id="init-glightbox">'
# mkdocs-glightbox's inline <style>: docs/stylesheets/book.css has its rules.
GLIGHTBOX_STYLE = re.compile(r'<style id="glightbox-style">.*?</style>\s*', re.DOTALL)


def tidy_page(page_html: str) -> str:
    """page_html with GLightbox's stylesheet and script moved from <head>,
    where mkdocs-glightbox puts them and they hold up the first paint, to
    just before the script that starts it, at the end of <body> (nothing
    shows them before a figure is opened); and without the plugin's inline
    styles (pages share one stylesheet)."""
    page_html = GLIGHTBOX_STYLE.sub("", page_html, count=1)
    if GLIGHTBOX_INIT not in page_html:
        return page_html
    moved = ""
    for pattern in (GLIGHTBOX_CSS, GLIGHTBOX_SCRIPT):
        found = pattern.search(page_html)
        if found:
            moved += found.group(0)
            page_html = page_html[: found.start()] + page_html[found.end() :]
    return page_html.replace(GLIGHTBOX_INIT, moved + GLIGHTBOX_INIT, 1)
