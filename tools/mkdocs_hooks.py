"""MkDocs hook: brings the snippets' outputs into the site. It computes nothing.

- The figures and executed notebook of snippet NAME, in build/snippets/NAME/,
  are served as snippets/NAME/FILE; mkdocs-jupyter renders the notebook. So
  are its tensor files (.safetensors), which a page's script may fetch: the
  live CNN page reads the weights snippets/live_cnn.py trained.
- `{{ NAME.key }}` or `{{ NAME.key:.1% }}` in a page is replaced by the number
  the snippet NAME recorded, formatted with the optional format spec.
- Math from pymdownx.arithmatex is rendered to MathML at build time, so pages
  need no math script or font from anywhere.
- `mkdocs serve` re-runs changed snippets before each rebuild.
- Each page lists the snippets behind it (`book_sources` for the template), and a
  notebook page's edit button edits its snippet, not the generated notebook.
- Notebook pages are made lighter: mkdocs-jupyter's inline CSS goes to one
  shared stylesheet, its MathJax and Mermaid loaders are dropped (math in
  Markdown cells is rendered to MathML too), and each figure is the snippet's
  SVG file with the alt text the chapter gives it, not a base64 PNG. Each
  code cell carries its number of lines (--code-lines): book.css keeps that
  much room for a cell it lays out only when the reader nears it.
- Each chapter code block carries its number of lines (--code-lines) too:
  book.css keeps exactly that much room for a block not yet laid out.
- Accessibility fixes Material leaves to us: the search dialog gets a name.
- Images load lazily: a page's figures are fetched as the reader nears them.
  Each figure's <img> carries the SVG's width and height, so that the page has
  its full length before any figure loads: an image without them is 0 pixels
  high until it loads, which brings every later figure near the screen.
- The search index every page loads is kept small: notebook pages give it
  their Markdown cells and code, not outputs, prompts or the copy button's
  text; each code block is indexed by the words in it that its page (and, on
  a notebook page, every chapter) does not already index.
"""

from __future__ import annotations

import hashlib
import html
import json
import posixpath
import re
import subprocess
import sys
from pathlib import Path

import tinycss2
from latex2mathml.converter import convert as latex_to_mathml
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File
from mkdocs.utils import get_relative_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import bibliography, build_report, lightbox  # noqa: E402
from tools.lint_book import referenced_snippets  # noqa: E402
from tools.runner import BUILD_DIR, SNIPPETS_DIR, is_fresh, snippet_names  # noqa: E402

FIGURE_SUFFIXES = {".svg", ".png"}
DATA_SUFFIXES = {".safetensors"}  # fetched by a page's script, not shown
# Any {{ ... }} is a placeholder; one that is not `snippet.key[:spec]` fails.
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
REFERENCE = re.compile(r"\s*(\w+)\.(\w+)(?::(.*?))?\s*", re.DOTALL)
INLINE_MATH = re.compile(r'<span class="arithmatex">\\\((.+?)\\\)</span>', re.DOTALL)
BLOCK_MATH = re.compile(r'<div class="arithmatex">\\\[(.+?)\\\]</div>', re.DOTALL)

NOTEBOOK_STYLE = re.compile(r"<style[^>]*>(.*?)</style>\s*", re.DOTALL)
NOTEBOOK_LOADERS = re.compile(
    r"<!-- Load mathjax -->.*?</script>\s*<!-- MathJax configuration -->\s*"
    r'<script type="text/x-mathjax-config">.*?</script>\s*'
    r'|<script type="module">\s*document\.addEventListener\("DOMContentLoaded", '
    r"async \(\) => \{\s*const diagrams = .*?</script>\s*",
    re.DOTALL,
)
CODE_CELL = re.compile(
    r'<div class="highlight-ipynb ([^"]*)"(>\s*<pre>)(.*?)</pre>', re.DOTALL
)
# pymdownx.highlight's block, with an optional title (`title="..."`).
CODE_BLOCK = re.compile(
    r'(<div class="highlight">(?:<span class="filename">[^<]*</span>)?)<pre>'
    r"(<span></span><code>)(.*?)</code>",
    re.DOTALL,
)
MARKDOWN_CELL = re.compile(
    r'(<div class="[^"]*jp-MarkdownOutput"[^>]*>)(.*?)(</div>)', re.DOTALL
)
NOTEBOOK_BLOCK_MATH = re.compile(r"\$\$(.+?)\$\$", re.DOTALL)
NOTEBOOK_INLINE_MATH = re.compile(r"(?<![\\$])\$(?=\S)([^$\n]+?)(?<=\S)\$(?!\d)")
NOTEBOOK_IMAGE = re.compile(
    r'<img alt="[^"]*" class="" src="data:image/png;base64,([A-Za-z0-9+/=\s]+)"'
)
# What a page shows but search should not hold: a notebook's outputs, prompts,
# heading anchors (¶) and the copy button's second copy of the code; and a
# link whose text is an identifier (a URL, doi:…, arXiv:…), which a reader
# does not search for (the references filled about a kilobyte of the index
# every page loads). Material's search stops skipping a marked element when the
# first element of the same tag inside it closes, so only elements with no
# same-tag element inside are marked.
NOT_SEARCHED = re.compile(
    r'<clipboard-copy\b|<a class="anchor-link"'
    r'|<div class="(?:[^"]*\s)?(?:jp-OutputArea-output|jp-InputPrompt|jp-OutputPrompt'
    r'|clipboard-copy-txt)(?:\s[^"]*)?"'
    r'|<a(?= href="[^"]*">(?:https?://|doi:|arXiv:))'
)
INDEXED_CODE = re.compile(r"(<pre>(?:<code>)?)(.*?)((?:</code>)?</pre>)", re.DOTALL)
CODE_WORD = re.compile(r"[^\W\d]\w*")
MARKUP = re.compile(r"<[^>]*>")
LAZY_IMAGE = re.compile(r"<img (?![^>]*\bloading=)")
UNSIZED_SVG_IMAGE = re.compile(r'<img\b(?![^>]*\swidth=)[^>]*?\ssrc="([^"]+\.svg)"')
SVG_SIZE = re.compile(r'<svg\b[^>]*?\swidth="([\d.]+)pt"\s+height="([\d.]+)pt"')
SAVED_FIGURE = re.compile(r"save_figure\(\s*\w+\s*,\s*[\"']([-\w]+)[\"']")
MARKDOWN_HEADING = re.compile(r"^#+\s+(.+)$", re.MULTILINE)

CLASS_ATTRIBUTE = re.compile(r'\bclass="([^"]*)"')
NESTED_RULES = {"media", "supports", "layer", "container"}

_command = "build"
_notebook_urls = set()  # pages rendered from notebooks, for the search index
# mkdocs renders every page's content before any template, so the notebook
# CSS can be pruned to the classes all notebook pages use, then shared.
_notebook_css = {"sources": set(), "classes": set(), "path": None, "text": None}
_this_build = {}  # values every page reads, computed once in a build


def on_startup(command, dirty):
    global _command
    _command = command


def on_pre_build(config):
    _notebook_urls.clear()
    _notebook_css.update(sources=set(), classes=set(), path=None, text=None)
    _this_build.clear()
    if _command == "serve":
        subprocess.run([sys.executable, "-m", "tools.runner"], cwd=ROOT, check=False)


@event_priority(100)  # before mkdocs-jupyter looks for notebooks among the files
def on_files(files, config):
    names = snippet_names()
    stale = [name for name in names if not is_fresh(name)]
    if stale:
        raise PluginError(
            f"snippet outputs missing or out of date for {', '.join(stale)}: "
            "run `make snippets` (or `make site`) first"
        )
    for name in names:
        for path in sorted((BUILD_DIR / name).iterdir()):
            served = FIGURE_SUFFIXES | DATA_SUFFIXES
            if path.suffix in served or path.name == f"{name}.ipynb":
                # A real src_dir, not File.generated: mkdocs-jupyter needs one.
                uri = path.relative_to(BUILD_DIR.parent).as_posix()
                files.append(
                    File(
                        uri,
                        str(BUILD_DIR.parent),
                        config.site_dir,
                        config.use_directory_urls,
                    )
                )
    return files


def _once_per_build(function):
    """function's value, computed once per build (every page asks)."""

    def once():
        if function.__name__ not in _this_build:
            _this_build[function.__name__] = function()
        return _this_build[function.__name__]

    return once


@_once_per_build
def _results():
    results = {}
    for name in snippet_names():
        path = BUILD_DIR / name / "results.json"
        results[name] = json.loads(path.read_text()) if path.exists() else {}
    return results


def on_page_markdown(markdown, page, config, files):
    try:
        markdown = build_report.fill(markdown, f"docs/{page.file.src_uri}")
    except build_report.BuildReportError as error:
        raise PluginError(str(error)) from None
    markdown = fill_placeholders(markdown, page.file.src_uri)
    if page.file.src_uri.endswith(".md"):  # notebooks cite nothing
        markdown = bibliography.render_page(
            markdown, page.file.src_uri, *_bibliography(config)
        )
    return markdown


def _bibliography(config):
    """The .bib entries and the pages citing each, every page checked once."""
    if "bibliography" not in _this_build:
        docs = Path(config["docs_dir"]) if config else ROOT / "docs"
        _this_build["bibliography"] = bibliography.check_book(docs)
    return _this_build["bibliography"]


def fill_placeholders(text, source):
    """text with every {{ snippet.key:spec }} replaced; source names the page."""
    results = _results()

    def fill(match):
        reference = REFERENCE.fullmatch(match.group(1))
        if reference is None:
            raise PluginError(
                f"{source}: malformed placeholder {match.group(0)!r}; "
                "write {{ snippet.key }} or {{ snippet.key:format }}"
            )
        snippet, key, spec = reference.groups()
        where = f"{source}: {{{{ {snippet}.{key} }}}}"
        if snippet not in results:
            raise PluginError(f"{where} names an unknown snippet {snippet!r}")
        if key not in results[snippet]:
            known = ", ".join(sorted(results[snippet])) or "none"
            raise PluginError(
                f"{where}: snippet {snippet!r} recorded no {key!r} ({known})"
            )
        value = results[snippet][key]
        try:
            return format(value, spec or "")
        except (TypeError, ValueError) as error:
            raise PluginError(
                f"{where}: cannot format {value!r} as {spec!r}: {error}"
            ) from None

    return PLACEHOLDER.sub(fill, text)


def _mathml(latex, display):
    return latex_to_mathml(html.unescape(latex.strip()), display=display)


# mkdocs-glightbox (a plugin, so it runs before these hooks) re-serialises each
# page's content as a whole document (<html><head></head><body>...): Material's
# search would index a page's opening text as empty, and print-site would add
# its start-up script at every page's </head>. Unwrapped once, here.
DOCUMENT_WRAPPER = re.compile(r"^<html><head></head><body>(.*)</body></html>$", re.S)


def on_page_content(content, page, config, files):
    content = DOCUMENT_WRAPPER.sub(r"\1", content)
    if page.file.src_uri.endswith(".ipynb"):
        _notebook_urls.add(page.url)
        content = _lighter_notebook(content, page, config)
    else:
        content = BLOCK_MATH.sub(lambda m: _mathml(m.group(1), "block"), content)
        content = INLINE_MATH.sub(lambda m: _mathml(m.group(1), "inline"), content)
        content = CODE_BLOCK.sub(_code_block, content)
    # The search plugin drops the attribute once it has read the page.
    content = NOT_SEARCHED.sub(
        lambda m: f'{m.group(0)} data-search-exclude="1"', content
    )
    content = _sized_images(content, page, files)
    content = LAZY_IMAGE.sub('<img loading="lazy" decoding="async" ', content)
    return lightbox.link_figures(content, page.file.src_uri.endswith(".ipynb"))


def _sized_images(content, page, files):
    """content with width and height (CSS pixels) on each <img> of an SVG
    figure that has none, read from the SVG (matplotlib gives points)."""

    def size(match):
        uri = posixpath.normpath(
            posixpath.join(posixpath.dirname(page.file.url), match[1])
        )
        figure = files.get_file_from_path(uri)
        if figure is None:
            return match[0]
        with open(figure.abs_src_path, encoding="utf-8") as svg:
            found = SVG_SIZE.search(svg.read(4096))
        if found is None:
            return match[0]
        width, height = (round(float(points) * 4 / 3) for points in found.groups())
        return f'{match[0]} width="{width}" height="{height}"'

    return UNSIZED_SVG_IMAGE.sub(size, content)


def _lighter_notebook(content, page, config):
    # mkdocs-jupyter also appends its code CSS once more as a Python list's repr
    # (not valid CSS): drop that copy.
    styles = NOTEBOOK_STYLE.findall(content)
    css = "\n".join(s for s in styles if not s.lstrip().startswith("['"))
    if css:
        _notebook_css["sources"].add(css)
        page.meta["notebook_css"] = True  # its path is set in on_page_context
        content = NOTEBOOK_STYLE.sub("", content)
    if 'class="jp-Mermaid' not in content:
        content = NOTEBOOK_LOADERS.sub("", content)
    # Code cells scroll sideways at phone width: keyboard users need to reach
    # them. Each says how many lines it has: book.css keeps that much room for
    # a cell it has not laid out yet (content-visibility).
    content = CODE_CELL.sub(_code_cell, content)
    content = MARKDOWN_CELL.sub(
        lambda m: m.group(1) + _notebook_math(m.group(2)) + m.group(3), content
    )
    figures = _notebook_figures(Path(page.file.abs_src_path))

    def figure_file(match):
        figure = figures.get(re.sub(r"\s", "", match.group(1)))
        if figure is None:
            return match.group(0)
        uri, alt = figure
        src = get_relative_url(uri, page.file.url)
        return f'<img alt="{html.escape(alt)}" class="" src="{src}"'

    content = NOTEBOOK_IMAGE.sub(figure_file, content)
    for classes in CLASS_ATTRIBUTE.findall(content):
        _notebook_css["classes"].update(classes.split())
    return content


def _code_lines(code):
    """The lines a <pre> shows: a last newline ends a line, it starts none."""
    return code.removesuffix("\n").count("\n") + 1


def _code_cell(match):
    """A notebook code cell's input, focusable, with its number of lines."""
    code = match.group(3)
    return (
        f'<div tabindex="0" style="--code-lines: {_code_lines(code)}" '
        f'class="highlight-ipynb {match.group(1)}"{match.group(2)}{code}</pre>'
    )


def _code_block(match):
    """A chapter's code block with its number of lines: book.css keeps that
    much room for it until it is laid out (content-visibility)."""
    code = match.group(3)
    return (
        f'{match.group(1)}<pre style="--code-lines: {_code_lines(code)}">'
        f"{match.group(2)}{code}</code>"
    )


def prune_css(css, used_classes):
    """css without the selectors that name a class no page uses or can never
    match, and without repeated rules.

    Only classes outside parentheses count: `.a:not(.b)` still matches where
    b is unused. Rules left with no selector go; @media and similar blocks
    are pruned inside and dropped when empty; other at-rules stay.
    """
    kept = []
    for rule in tinycss2.parse_stylesheet(
        css, skip_comments=True, skip_whitespace=True
    ):
        if rule.type == "qualified-rule":
            selectors = [
                selector
                for selector in _split_selectors(rule.prelude)
                if _top_level_classes(selector) <= used_classes
                and not _root_inside(selector)
            ]
            if selectors:
                prelude = ",".join(tinycss2.serialize(s).strip() for s in selectors)
                kept.append(f"{prelude}{{{tinycss2.serialize(rule.content)}}}")
        elif rule.type == "at-rule" and rule.lower_at_keyword in NESTED_RULES:
            if rule.content is None:
                kept.append(rule.serialize())
                continue
            inner = prune_css(tinycss2.serialize(rule.content), used_classes)
            if inner:
                prelude = tinycss2.serialize(rule.prelude).strip()
                kept.append(f"@{rule.at_keyword} {prelude}{{{inner}}}")
        else:
            kept.append(rule.serialize())
    # Of identical rules, the last decides the cascade: drop the earlier ones.
    last = {text: index for index, text in enumerate(kept)}
    return "\n".join(text for index, text in enumerate(kept) if last[text] == index)


def _split_selectors(prelude):
    selectors, current = [], []
    for token in prelude:
        if token.type == "literal" and token.value == ",":
            selectors.append(current)
            current = []
        else:
            current.append(token)
    return [*selectors, current]


def _root_inside(selector):
    """Whether selector puts `:root` below another element (`.x :root`): it
    then matches nothing. mkdocs-jupyter writes such selectors when it
    scopes JupyterLab's `:root` rules."""
    tokens = [token for token in selector if token.type != "comment"]
    while tokens and tokens[0].type == "whitespace":
        tokens.pop(0)
    for index, (before, token) in enumerate(zip(tokens, tokens[1:])):
        is_root = before.type == "literal" and before.value == ":"
        if is_root and token.type == "ident" and token.lower_value == "root":
            return any(
                t.type == "whitespace" or (t.type == "literal" and t.value in ">+~")
                for t in tokens[:index]
            )
    return False


def _top_level_classes(selector):
    return {
        token.value
        for before, token in zip(selector, selector[1:])
        if before.type == "literal" and before.value == "." and token.type == "ident"
    }


def _shared_notebook_css():
    """The site path of the pruned notebook CSS, made once per build."""
    if _notebook_css["path"] is None:
        css = "\n".join(sorted(_notebook_css["sources"]))
        text = prune_css(css, _notebook_css["classes"])
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        _notebook_css.update(
            path=f"assets/stylesheets/notebook.{digest}.css", text=text
        )
    return _notebook_css["path"]


def _notebook_math(text):
    text = NOTEBOOK_BLOCK_MATH.sub(lambda m: _mathml(m.group(1), "block"), text)
    return NOTEBOOK_INLINE_MATH.sub(lambda m: _mathml(m.group(1), "inline"), text)


def _notebook_figures(notebook_path):
    """PNG output (base64) -> (site path of the same figure's SVG, alt text).

    A code cell that saves one figure and shows one image shows that figure.
    Its alt text is the one a chapter gives the SVG; else the notebook section.
    """
    import nbformat

    name = notebook_path.stem
    notebook = nbformat.read(notebook_path, as_version=4)
    alts = _chapter_alt_texts()
    figures, section = {}, name.replace("_", " ")
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            headings = MARKDOWN_HEADING.findall(cell.source)
            section = headings[-1].strip() if headings else section
            continue
        saved = SAVED_FIGURE.findall(cell.source)
        images = [
            output["data"]["image/png"]
            for output in cell.get("outputs", [])
            if "image/png" in output.get("data", {})
        ]
        svg = notebook_path.parent / f"{saved[0]}.svg" if saved else None
        if len(saved) == 1 and len(images) == 1 and svg.exists():
            uri = f"snippets/{name}/{svg.name}"
            alt = alts.get(uri) or f"Figure {saved[0]} of this notebook: {section}"
            figures[re.sub(r"\s", "", images[0])] = (uri, alt)
    return figures


@_once_per_build
def _chapter_alt_texts():
    """Figure path -> the alt text a chapter page gives it."""
    alts = {}
    for page in sorted((ROOT / "docs").rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for alt, uri in re.findall(r"!\[([^\]]+)\]\((snippets/[^)\s]+\.svg)\)", text):
            alt = fill_placeholders(alt, page.relative_to(ROOT).as_posix())
            alts.setdefault(uri, " ".join(alt.split()))
    return alts


SEARCH_DIALOG = '<div class="md-search" data-md-component="search" role="dialog">'


def on_post_page(output, page, config):
    output = lightbox.tidy_page(output)  # after mkdocs-glightbox's on_post_page
    return output.replace(SEARCH_DIALOG, SEARCH_DIALOG[:-1] + ' aria-label="Search">')


def on_post_template(output, template_name, config):
    return on_post_page(output, None, config)  # 404.html


@event_priority(-50)  # after the search plugin has written its index
def on_post_build(config):
    if _notebook_css["path"] is not None:
        target = Path(config.site_dir) / _notebook_css["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_notebook_css["text"], encoding="utf-8")
    index_path = Path(config.site_dir) / "search" / "search_index.json"
    if index_path.exists():
        index = json.loads(index_path.read_text(encoding="utf-8"))
        index = compact_search_index(index, _notebook_urls)
        index_path.write_text(
            json.dumps(index, separators=(",", ":"), ensure_ascii=False),
            encoding="utf-8",
        )


def compact_search_index(index, notebook_urls):
    """Material's search index with each code block cut to its words that a
    search would not find on the page already, in their order, once each.

    Prose is kept whole. Notebook pages (URLs in notebook_urls) come after the
    chapters and also leave out the words any chapter's entries hold: a search
    for an identifier a chapter shows finds that chapter. Words are compared
    as the search tokenizes them (index["config"]["separator"], lower case).
    """
    separator = re.compile(index["config"]["separator"])
    pages = {}
    for entry in index["docs"]:
        pages.setdefault(entry["location"].split("#")[0], []).append(entry)
    chapter_tokens = set()
    for url in sorted(pages, key=lambda url: url in notebook_urls):
        known = set(chapter_tokens) if url in notebook_urls else set()
        for entry in pages[url]:
            prose = INDEXED_CODE.sub(" ", entry["text"])
            known |= _search_tokens(f"{entry['title']} {prose}", separator)
        for entry in pages[url]:
            entry["text"] = _cut_code(entry["text"], known, separator)
        if url not in notebook_urls:
            chapter_tokens |= known
    return index


def _search_tokens(text, separator):
    text = html.unescape(MARKUP.sub(" ", text))
    return {token.lower() for token in separator.split(text) if token}


def _cut_code(text, known, separator):
    """text with each code block cut to its words that have a token not in
    known (which gains them); a block left with none goes."""

    def cut(match):
        words = []
        for word in CODE_WORD.findall(html.unescape(match[2])):
            word_tokens = _search_tokens(word, separator)
            if not word_tokens <= known:
                known.update(word_tokens)
                words.append(word)
        return f"{match[1]}{' '.join(words)}{match[3]}" if words else ""

    return INDEXED_CODE.sub(cut, text).strip()


def source_url(config, path, action="blob"):
    """The repository's URL to view ("blob") or edit ("edit") the file at path."""
    match = re.match(r"^(?:edit|blob)/([^/]+)/", config.edit_uri or "")
    if not config.repo_url or not match:
        return None
    return f"{config.repo_url.rstrip('/')}/{action}/{match.group(1)}/{path}"


@event_priority(100)
def on_page_context(context, page, config, nav):
    uri = page.file.src_uri
    if page.meta.get("notebook_css"):
        page.meta["notebook_css"] = _shared_notebook_css()  # main.html links it
    if uri.startswith("snippets/") and uri.endswith(".ipynb"):
        names = [Path(uri).stem]
        page.edit_url = source_url(config, f"snippets/{names[0]}.py", "edit")
    else:
        names = referenced_snippets(page.file.content_string)
    paths = [f"snippets/{name}.py" for name in names]
    context["book_sources"] = [
        {"path": path, "url": source_url(config, path)}
        for path in paths
        if (SNIPPETS_DIR.parent / path).exists() and source_url(config, path)
    ]
    return context
