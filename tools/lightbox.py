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

import json
import re

from mkdocs.exceptions import PluginError

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


GLIGHTBOX_SCRIPT = re.compile(r'<script src="([^"]*/glightbox\.min\.js)"></script>\s*')
GLIGHTBOX_CSS = re.compile(
    r'<link href="([^"]*/glightbox\.min\.css)" rel="stylesheet">\s*'
)
GLIGHTBOX_INIT = re.compile(r'<script id="init-glightbox">(.*?)</script>', re.DOTALL)
GLIGHTBOX_OPTIONS = re.compile(r"GLightbox\((\{.*?\})\);")
# mkdocs-glightbox's inline <style>: docs/stylesheets/book.css has its rules.
GLIGHTBOX_STYLE = re.compile(r'<style id="glightbox-style">.*?</style>\s*', re.DOTALL)
CONFIG_ID = "glightbox-config"


def tidy_page(page_html: str) -> str:
    """page_html without GLightbox's stylesheet, script and start-up, which
    mkdocs-glightbox puts on every page; in their place, what
    docs/javascripts/lightbox.js needs to load and start it when a figure is
    first opened (their URLs and the plugin's options). Without the plugin's
    inline styles too (pages share one stylesheet)."""
    page_html = GLIGHTBOX_STYLE.sub("", page_html, count=1)
    init = GLIGHTBOX_INIT.search(page_html)
    if init is None:
        return page_html
    options = GLIGHTBOX_OPTIONS.search(init.group(1))
    css, script = GLIGHTBOX_CSS.search(page_html), GLIGHTBOX_SCRIPT.search(page_html)
    if not (options and css and script):
        raise PluginError(
            "tools/lightbox.py: mkdocs-glightbox no longer writes its stylesheet, "
            "script and GLightbox({...}) start-up as it did: update tidy_page"
        )
    config = {
        "script": script.group(1),
        "css": css.group(1),
        "options": json.loads(options.group(1)),
    }
    data = json.dumps(config).replace("</", "<\\/")
    tag = f'<script id="{CONFIG_ID}" type="application/json">{data}</script>'
    edits = [(init, tag), (css, ""), (script, "")]
    for found, replacement in sorted(edits, key=lambda e: -e[0].start()):
        page_html = page_html[: found.start()] + replacement + page_html[found.end() :]
    return page_html
