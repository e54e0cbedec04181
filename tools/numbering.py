"""MkDocs hook: numbered figures, tables and equations, referenced by label.

- Every `<figure>` of a chapter (docs/NN-slug.md) is numbered in page order:
  "Figure N.k", or "Table N.k" when the figure holds a table. The number opens
  its <figcaption> (one is added if the figure has none). A chapter's table
  must sit in such a figure, with its caption; other pages number their
  figures "Figure k" and leave bare tables alone.
- A displayed equation whose TeX holds `\\label{eq-NAME}` is numbered "(N.k)"
  at its right; unlabelled equations stay unnumbered.
- A label is the figure's `id`: `fig-NAME` for a figure, `tab-NAME` for a
  table, and `eq-NAME` in `\\label{}` for an equation, unique in the book.
- A link with no text to a label, `[](#fig-NAME)` on the same page or
  `[](04-layers.md#fig-NAME)` on another, shows the number: "Figure 4.3",
  "Table 4.1", "Equation (4.2)". Any link to an unknown label, or to a label
  on another page than the one it names, and any label used twice, stops the
  build naming the page and the label.

Labels are read from every page's Markdown before any page is rendered, so a
page can refer to one that is rendered after it; each page's HTML is then
checked against that reading.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import urljoin

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.utils import get_relative_url

CHAPTER_FILE = re.compile(r"^(\d{2})-[^/]*\.md$")
LABEL_NAME = r"[a-z0-9]+(?:-[a-z0-9]+)*"
LABEL = re.compile(rf"(fig|tab|eq)-{LABEL_NAME}")
KIND_PREFIX = {"Figure": "fig", "Table": "tab", "Equation": "eq"}

# In the Markdown: what to number, outside code blocks.
FENCED_CODE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,}).*?^(?P=indent)(?P=fence)[ \t]*$",
    re.DOTALL | re.MULTILINE,
)
MD_FIGURE = re.compile(r"<figure\b(?P<attrs>[^>]*)>(?P<body>.*?)</figure>", re.DOTALL)
MD_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$|<table\b", re.MULTILINE)
TEX_LABEL = re.compile(r"\\label\{(?P<label>[^}]*)\}")
ID_ATTRIBUTE = re.compile(r"""\bid\s*=\s*(["'])(?P<id>.*?)\1""")

# In the rendered HTML.
HTML_FIGURE = re.compile(r"<figure\b(?P<attrs>[^>]*)>(?P<body>.*?)</figure>", re.DOTALL)
FIGCAPTION = re.compile(r"<figcaption\b[^>]*>")
BARE_TABLE = re.compile(r"<table>")  # Markdown's tables carry no attribute
BLOCK_MATH = re.compile(
    r'<div class="arithmatex">\\\[(?P<tex>.*?)\\\]</div>', re.DOTALL
)
LINK = re.compile(
    r'<a\b(?P<before>[^>]*?)\bhref="(?P<path>[^"#]*)#(?P<label>(?:fig|tab|eq)-[^"]*)"'
    r"(?P<after>[^>]*)>(?P<text>.*?)</a>",
    re.DOTALL,
)
# A reference Markdown left as text: in raw HTML such as a <figcaption>.
LITERAL_REFERENCE = re.compile(
    r"\[\]\((?P<page>[\w./-]*\.md)?#(?P<label>(?:fig|tab|eq)-[^)\s]*)\)"
)
CODE = re.compile(r"<(pre|code)\b.*?</\1>", re.DOTALL)


@dataclass(frozen=True)
class Target:
    """A numbered thing a label names."""

    label: str
    kind: str  # Figure, Table or Equation
    number: str  # "4.3", or "3" on a page that is not a chapter
    page: str  # the Markdown file, docs-relative
    url: str  # the page's URL, site-relative

    @property
    def text(self) -> str:
        """How a reference shows it."""
        if self.kind == "Equation":
            return f"Equation ({self.number})"
        return f"{self.kind} {self.number}"


def chapter_number(src_uri: str) -> int | None:
    match = CHAPTER_FILE.match(src_uri)
    return int(match.group(1)) if match else None


def _number(chapter: int | None, index: int) -> str:
    return f"{chapter}.{index}" if chapter is not None else str(index)


def _without_code(markdown: str) -> str:
    return FENCED_CODE.sub(lambda m: "\n" * m.group(0).count("\n"), markdown)


def _checked_label(page: str, label: str, kind: str) -> str:
    prefix = KIND_PREFIX[kind]
    if not LABEL.fullmatch(label) or not label.startswith(f"{prefix}-"):
        raise PluginError(
            f"{page}: label {label!r} of {'an' if kind == 'Equation' else 'a'} "
            f"{kind.lower()} must be {prefix}-NAME "
            "(lower-case letters, digits and hyphens)"
        )
    return label


def scan_page(page: str, url: str, markdown: str) -> list[Target]:
    """The numbered things of one page, in order, read from its Markdown.

    page is its docs-relative path (its chapter number comes from the name).
    Unlabelled figures and tables are numbered too, with label "".
    """
    chapter = chapter_number(page)
    text = _without_code(markdown)
    targets, counts = [], {"Figure": 0, "Table": 0, "Equation": 0}
    for figure in MD_FIGURE.finditer(text):
        kind = "Table" if MD_TABLE_ROW.search(figure["body"]) else "Figure"
        counts[kind] += 1
        found = ID_ATTRIBUTE.search(figure["attrs"])
        label = _checked_label(page, found["id"], kind) if found else ""
        number = _number(chapter, counts[kind])
        targets.append(Target(label, kind, number, page, url))
    for found in TEX_LABEL.finditer(text):
        counts["Equation"] += 1
        label = _checked_label(page, found["label"], "Equation")
        number = _number(chapter, counts["Equation"])
        targets.append(Target(label, "Equation", number, page, url))
    return targets


def collect_labels(pages) -> dict[str, Target]:
    """label -> Target over pages, (docs-relative path, URL, Markdown) triples;
    a label used twice stops the build."""
    labels: dict[str, Target] = {}
    for page, url, markdown in pages:
        for target in scan_page(page, url, markdown):
            if not target.label:
                continue
            if target.label in labels:
                first = labels[target.label].page
                where = "twice on this page" if first == page else f"also on {first}"
                raise PluginError(f"{page}: duplicate label {target.label!r} ({where})")
            labels[target.label] = target
    return labels


def number_page(content: str, page: str, url: str, labels: dict[str, Target]) -> str:
    """The page's HTML with its figures, tables and labelled equations numbered
    and every reference to a label shown as a link with the number."""
    chapter = chapter_number(page)
    counts = {"Figure": 0, "Table": 0, "Equation": 0}

    def figure(match):
        body = match["body"]
        kind = "Table" if "<table" in body else "Figure"
        counts[kind] += 1
        number = _number(chapter, counts[kind])
        found = ID_ATTRIBUTE.search(match["attrs"])
        if found and labels.get(found["id"]) != Target(
            found["id"], kind, number, page, url
        ):
            raise PluginError(
                f"{page}: {kind} {number} labelled {found['id']!r} in the HTML "
                "is numbered otherwise in the Markdown (a <figure> inside code?)"
            )
        caption = f'<span class="caption-number">{kind} {number}.</span>'
        opening = FIGCAPTION.search(body)
        if opening:
            body = f"{body[: opening.end()]}{caption} {body[opening.end() :]}"
        else:
            body = f"{body}<figcaption>{caption}</figcaption>"
        return f"<figure{match['attrs']}>{body}</figure>"

    def equation(match):
        labels_here = TEX_LABEL.findall(match["tex"])
        if not labels_here:
            return match[0]
        if len(labels_here) > 1:
            raise PluginError(f"{page}: one equation has labels {labels_here}")
        label = html.unescape(labels_here[0])
        counts["Equation"] += 1
        number = _number(chapter, counts["Equation"])
        if labels.get(label) != Target(label, "Equation", number, page, url):
            raise PluginError(
                f"{page}: equation {number} labelled {label!r} in the HTML is "
                "numbered otherwise in the Markdown (a \\label inside code?)"
            )
        tex = TEX_LABEL.sub("", match["tex"])
        return (
            f'<div class="numbered-equation" id="{label}">'
            f'<div class="arithmatex">\\[{tex}\\]</div>'
            f'<span class="equation-number">({number})</span></div>'
        )

    if chapter is not None:
        outside = HTML_FIGURE.sub("", content)
        if BARE_TABLE.search(outside):
            raise PluginError(
                f"{page}: a table without a caption: put it in "
                '<figure markdown="block" id="tab-NAME"> with a <figcaption>'
            )
    content = HTML_FIGURE.sub(figure, content)
    content = BLOCK_MATH.sub(equation, content)
    content = LINK.sub(lambda m: _reference(m, page, url, labels), content)
    return _outside_code(
        content, lambda text: _literal_references(text, page, url, labels)
    )


def _outside_code(content: str, change) -> str:
    pieces, start = [], 0
    for code in CODE.finditer(content):
        pieces += [change(content[start : code.start()]), code[0]]
        start = code.end()
    return "".join([*pieces, change(content[start:])])


def _literal_references(text: str, page: str, url: str, labels) -> str:
    """text with each `[](#label)` or `[](NN-page.md#label)` left by Markdown
    (inside raw HTML) made a link with the number, checked as a link is."""

    def link(match):
        label = match["label"]
        target = labels.get(label)
        if target is None:
            raise PluginError(f"{page}: reference to unknown label {label!r}")
        if (match["page"] or page) != target.page:
            written = "" if target.page == page else target.page
            raise PluginError(
                f"{page}: label {label!r} is on {target.page}: refer to it as "
                f"[]({written}#{label})"
            )
        path = get_relative_url(target.url, url) if target.page != page else ""
        return f'<a href="{path}#{label}">{target.text}</a>'

    return LITERAL_REFERENCE.sub(link, text)


def _reference(match, page: str, url: str, labels: dict[str, Target]) -> str:
    label = html.unescape(match["label"])
    target = labels.get(label)
    if target is None:
        raise PluginError(f"{page}: reference to unknown label {label!r}")
    base = "/" + url
    if urljoin(base, match["path"]) != "/" + target.url:
        written = (
            f"[]({target.page}#{label})" if target.page != page else f"[](#{label})"
        )
        raise PluginError(
            f"{page}: label {label!r} is on {target.page}: refer to it as {written}"
        )
    text = match["text"]
    if not text.strip():
        text = target.text
    return (
        f'<a{match["before"]}href="{match["path"]}#{match["label"]}"'
        f"{match['after']}>{text}</a>"
    )


# The hook: labels are read once per build, before the first page is numbered.
_labels: dict[str, Target] | None = None


def on_pre_build(config):
    global _labels
    _labels = None


def _site_labels(files) -> dict[str, Target]:
    global _labels
    if _labels is None:
        _labels = collect_labels(
            (file.src_uri, file.url, file.content_string)
            for file in files.documentation_pages()
            if file.src_uri.endswith(".md")
        )
    return _labels


@event_priority(10)  # before the main hook turns TeX into MathML
def on_page_content(content, page, config, files):
    if not page.file.src_uri.endswith(".md"):
        return content
    labels = _site_labels(files)
    content = number_page(content, page.file.src_uri, page.url, labels)
    # An equation's id is made here, after MkDocs listed the page's anchors
    # for its link check: add it, so that links to it pass that check.
    if page.present_anchor_ids is not None:
        page.present_anchor_ids.update(
            label
            for label, target in labels.items()
            if target.page == page.file.src_uri and target.kind == "Equation"
        )
    return content
