"""The book linter: the conventions a reviewer would otherwise check by hand.

    python -m tools.lint_book             # every check (what `make lint` runs)
    python -m tools.lint_book --no-tools  # the book's own rules only (pre-commit)
    python -m tools.lint_book --strict    # placeholders are errors too (CI)

Each problem is printed as `file:line: what is wrong`. The rules:

- includes: a ```python block on a page holds only `--8<-- "file.py:section"`
  lines, the file exists in snippets/ and has that section (start and end); no
  other code blocks, no whole-file or line-number includes.
- snippet-used: every snippet (a snippets/*.py file with `# %%` cells) is used by
  a page: a section included, a figure shown, a number quoted or its notebook
  linked.
- snippet-tested: every snippet NAME has a test module tests/test_T.py, where
  NAME starts with T or T with NAME (chapter 1: test_why_cnns.py covers
  why_cnns_images and why_cnns_pipeline).
- figures: every image on a page is snippets/NAME/FILE, drawn by snippet NAME
  (in its fresh build output, or named in its source), with alt text of at
  least five words.
- numbers: no number typed into a chapter's prose; see NUMBER RULE below.
- references: no figure, table or equation number typed into a chapter's prose
  ("Figure 4.3", "table 2", "Eq. (5.1)"): refer by label, `[](#fig-NAME)` or
  `[](04-layers.md#tab-NAME)`, and the build writes the number
  (tools/numbering.py). A sentence citing a paper's own figure or table
  (a citation [@key]) may name it.
- nav: mkdocs.yml's nav lists every chapter and every snippet's notebook page,
  and every page it lists exists.
- skeleton: a chapter docs/NN-slug.md has front matter with `description:`,
  the H1 "N. Title" (N = NN), an intro, `!!! abstract "What you will learn"`,
  `!!! info "Prerequisites"`, its sections, `## Summary`, `## Exercises` (each
  exercise with a collapsed `??? tip` or `??? success`), then
  `!!! example "Run it yourself"` with a command (inline code) and links to the
  notebooks (snippets/NAME/NAME.ipynb) of the chapter's own snippets.
- placeholders: `TODO` left in docs/, snippets/ or tests/ (the chapter
  template's `TODO(author)` markers) is a warning, so that a scaffolded chapter
  builds; `--strict` (CI) makes it an error, so that none is merged.
- tools: ruff check, ruff format --check and codespell are clean.

NUMBER RULE. Chapter prose is scanned outside front matter, code blocks, inline
code, math, `{{ }}` placeholders, HTML tags, link targets, URLs and footnote
definitions. Flagged, unless the sentence or the line carries a citation
`[@key]` of a work in docs/references.bib (the marked form for a fact from the
literature; an explanatory footnote `[^note]` is not a citation):
decimals (0.97; not a version such as "Python 3.11" or 2.13.0), percentages
(97 %, 97 percent), numbers with a measured unit (12 s, 3 ms, 2 minutes, 40 MB,
5 GFLOP/s), ratios (3x faster), spreads (± 2), years and decades (1968, the
2010s), and integers of 100 or more that are not a power of two (1,797 digits,
450 test images: counts a snippet computes). Allowed as ordinary language:
integers below 100 (a 3 × 3 kernel, 40 epochs, chapter 2, the digit 7), powers
of two (128 features, a 512 × 512 photo) and angles (180 degrees), sizes and
settings that the prose names on purpose. A number written as a word ("ten
classes") is never flagged.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath

import yaml

ROOT = Path(__file__).resolve().parent.parent
CODESPELL_PATHS = [
    "docs",
    "snippets",
    "tests",
    "tools",
    "README.md",
    "CONTRIBUTING.md",
    ".github",
]
CHAPTER_FILE = re.compile(r"^(\d{2})-([a-z0-9]+(?:-[a-z0-9]+)*)\.md$")
MIN_ALT_WORDS = 5

# Markdown structure.
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
INCLUDE = re.compile(r"""--8<--\s+(["'])(?P<spec>[^"']+)\1""")
INCLUDE_LINE = re.compile(r"""^\s*--8<--\s+(["'])[^"']+\1\s*$""")
SECTION = re.compile(r"^\s*# --8<-- \[(start|end):([a-z][-_0-9a-z]*)\]\s*$")
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)[^}]*\}\}")
SNIPPET_PATH = re.compile(r"(?<![\w/])snippets/([a-z_][a-z0-9_]*)/")
NOTEBOOK_LINK = re.compile(r"\]\(snippets/([a-z_][a-z0-9_]*)/\1\.ipynb\)")
MD_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
HTML_IMAGE = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
HTML_ATTR = re.compile(r"""\b(src|alt)\s*=\s*(["'])(.*?)\2""", re.DOTALL)
FOOTNOTE_REF = re.compile(r"\[\^[^\]\s]+\]")
FOOTNOTE_DEF = re.compile(r"^\[\^[^\]\s]+\]:")
CITATION_REF = re.compile(r"\[@[^\[\]\n]*\]")  # [@key], [@key, Table 1], [@a; @b]
TODO = re.compile(r"\bTODO\b")
# An indented line (a list item's continuation) that opens with a whole-number
# value and then "." or ")" becomes a list item of its own once rendered
# ("   3. Near the edge" splits the item).
LIST_MARKER_VALUE = re.compile(
    r"^[ \t]+\{\{\s*[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*\s*(?::[d,]?\s*)?\}\}[.)](?:\s|$)"
)

# What the number rule does not read.
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
MATH_BLOCK = re.compile(r"\$\$.*?\$\$|\\\[.*?\\\]", re.DOTALL)
INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\s)[^$\n]+?(?<!\s)\$|\\\(.*?\\\)")
HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
HTML_TAG = re.compile(r"</?[A-Za-z][^>]*>")
LINK_TARGET = re.compile(r"\]\([^)]*\)")
REFERENCE_DEF = re.compile(r"^\s*\[[^\]]+\]:\s*\S+.*$", re.MULTILINE)
URL = re.compile(r"https?://\S+")

# A figure, table or equation number typed by hand.
TYPED_REFERENCE = re.compile(
    r"\b(?:figures?|figs?|tables?|equations?|eqs?)\.?[\s\u00a0]*"
    r"\(?\d+(?:\.\d+)?\)?(?![\w.]\d)",
    re.IGNORECASE,
)

# The number rule.
NUMBER = re.compile(r"(?<![\w.,\\])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w]|[.,]\d)")
VERSION_BEFORE = re.compile(r"(?:Python|version)\s+$", re.IGNORECASE)
PERCENT_AFTER = re.compile(r"^[\s\u00a0\u202f]?(?:%|per\s?cent\b)", re.IGNORECASE)
UNIT_AFTER = re.compile(
    r"^(?:[\s\u00a0\u202f]*(?:ns|µs|μs|us|ms|sec|secs|seconds?|mins?|minutes?|hrs?"
    r"|hours?|days?|bytes|[kKMGT]i?B|[kMGT]?FLOPS|[kMGT]?FLOP/s|FLOPs)"
    r"|[\s\u00a0\u202f]+[sh])(?![\w/])"
)
RATIO_AFTER = re.compile(
    r"^\s*[×x]\s+(?:faster|slower|quicker|larger|smaller|bigger|more|fewer|less"
    r"|higher|lower)\b"
)
ANGLE_AFTER = re.compile(r"^(?:\s*°|[\s\u00a0]+degrees?\b)")
SPREAD_BEFORE = re.compile(r"(?:±|\+/-)\s*$")
DECADE = re.compile(r"(?<![\w.])(1[89]\d0|20\d0)s\b")
BLOCK_START = re.compile(r"\n(?=\s*\n|\s*(?:[-*+|]|#+|\d+\.)\s)")
SENTENCE_END = re.compile(
    r"[.!?][\"')\]*_]*(?:\[\^[^\]\s]+\]|\[@[^\[\]\n]*\])*(?=\s|$)"
)

SKELETON_ABSTRACT = re.compile(r'^!!! abstract "What you will learn"\s*$')
SKELETON_PREREQUISITES = re.compile(r'^!!! info "Prerequisites"\s*$')
SKELETON_RUN = re.compile(r'^!!! example "Run it yourself"\s*$')
H1 = re.compile(r"^# (?P<title>.*?)\s*$")
H2 = re.compile(r"^## (?P<title>.*?)\s*$")
H3 = re.compile(r"^### ")
EXERCISE_ITEM = re.compile(r"^\d+\.\s")
COLLAPSED_ANSWER = re.compile(r"^\s*\?\?\? (?:tip|success)\b")


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int
    message: str
    rule: str = field(compare=False)
    warning: bool = field(default=False, compare=False)

    def __str__(self):
        kind = "warning: " if self.warning else ""
        return f"{self.path}:{self.line}: {kind}{self.message}"


def _blank(match: re.Match) -> str:
    """Replace a match by spaces, keeping newlines so line numbers stay right."""
    return re.sub(r"[^\n]", " ", match.group(0))


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


class Page:
    """One Markdown page, with its code blocks and its prose located by line."""

    def __init__(self, root: Path, path: Path):
        self.path = path
        self.rel = path.relative_to(root).as_posix()
        self.docs_rel = path.relative_to(root / "docs").as_posix()
        self.text = path.read_text(encoding="utf-8")
        self.lines = self.text.splitlines()
        self.front_matter_end = self._front_matter_end()
        self.fences = self._fences()
        match = CHAPTER_FILE.match(self.docs_rel)
        self.chapter_number = int(match.group(1)) if match else None
        self.slug = match.group(2) if match else None

    @property
    def is_chapter(self) -> bool:
        return self.chapter_number is not None

    def _front_matter_end(self) -> int:
        """Index of the line closing the front matter, or -1 if there is none."""
        if not self.lines or self.lines[0].strip() != "---":
            return -1
        for index, line in enumerate(self.lines[1:], 1):
            if line.strip() in {"---", "..."}:
                return index
        return -1

    def _fences(self) -> list[tuple[int, int, str, list[str]]]:
        """Fenced code blocks as (first line index, last line index, info, body)."""
        fences, index = [], self.front_matter_end + 1
        while index < len(self.lines):
            opening = FENCE.match(self.lines[index])
            if not opening:
                index += 1
                continue
            fence = opening.group("fence")
            closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
            end = index + 1
            while end < len(self.lines) and not closing.match(self.lines[end]):
                end += 1
            body = self.lines[index + 1 : end]
            fences.append((index, end, opening.group("info").strip(), body))
            index = end + 1
        return fences

    @cached_property
    def code_lines(self) -> set[int]:
        """Indices of lines inside code blocks or the front matter."""
        inside = set(range(self.front_matter_end + 1))
        for start, end, _, _ in self.fences:
            inside.update(range(start, end + 1))
        return inside

    def outside_code(self):
        """(line number, line) of every line that is not code or front matter."""
        for index, line in enumerate(self.lines):
            if index not in self.code_lines:
                yield index + 1, line

    @cached_property
    def no_code_text(self) -> str:
        """The page with code blocks and front matter blanked out."""
        return "\n".join(
            " " * len(line) if index in self.code_lines else line
            for index, line in enumerate(self.lines)
        )

    @cached_property
    def prose(self) -> str:
        """The text the number rule reads: everything else blanked out."""
        text = self.no_code_text
        lines = text.split("\n")
        in_definition = False
        for index, line in enumerate(lines):  # footnote definitions and their bodies
            if FOOTNOTE_DEF.match(line):
                in_definition = True
            elif line.strip() and not line.startswith((" ", "\t")):
                in_definition = False
            if in_definition:
                lines[index] = " " * len(line)
        text = "\n".join(lines)
        for pattern in (
            HTML_COMMENT,
            INLINE_CODE,
            PLACEHOLDER,
            MATH_BLOCK,
            INLINE_MATH,
            HTML_TAG,
            LINK_TARGET,
            REFERENCE_DEF,
            URL,
            FOOTNOTE_REF,
            CITATION_REF,
        ):
            text = pattern.sub(_blank, text)
        return text

    @cached_property
    def citations(self) -> list[int]:
        """Offsets of citations `[@key]` outside code and footnote definitions."""
        text = INLINE_CODE.sub(_blank, self.no_code_text)
        return [
            match.start()
            for match in CITATION_REF.finditer(text)
            if not FOOTNOTE_DEF.match(text[text.rfind("\n", 0, match.start()) + 1 :])
        ]

    def is_cited(self, offset: int) -> bool:
        """Does the sentence around offset carry a citation `[@key]`?

        Sentences end at . ! or ? (with any citations or footnote references
        that follow),
        and never span a blank line, a heading, a list item or a table row.
        """
        text = self.no_code_text
        start = 0
        for match in BLOCK_START.finditer(text, 0, offset + 1):
            start = match.start()
        block_end = BLOCK_START.search(text, offset + 1)
        end = block_end.start() if block_end else len(text)
        for match in SENTENCE_END.finditer(text, start, end):
            if match.end() <= offset:
                start = match.end()
            else:
                end = match.end()
                break
        return any(start <= cite < end for cite in self.citations)


class Book:
    """The repository as the linter sees it."""

    def __init__(self, root: Path = ROOT):
        self.root = root
        self.docs_dir = root / "docs"
        self.snippets_dir = root / "snippets"
        self.tests_dir = root / "tests"
        self.build_dir = root / "build" / "snippets"
        self.pages = [Page(root, path) for path in sorted(self.docs_dir.rglob("*.md"))]
        self.snippet_sources = {
            path.stem: path.read_text(encoding="utf-8")
            for path in sorted(self.snippets_dir.glob("*.py"))
        }
        self.snippets = sorted(
            name
            for name, source in self.snippet_sources.items()
            if re.search(r"^# %%", source, re.MULTILINE)
        )
        # Asked once per figure: a cache key and a parse tree cost milliseconds.
        self._built: dict[str, bool] = {}
        self._trees: dict[str, ast.Module] = {}

    @property
    def chapters(self) -> list[Page]:
        return [page for page in self.pages if page.is_chapter]

    def snippet_rel(self, name: str) -> str:
        return (self.snippets_dir / f"{name}.py").relative_to(self.root).as_posix()

    def sections(self, name: str) -> dict[str, set[str]]:
        found = {"start": set(), "end": set()}
        for line in self.snippet_sources.get(name, "").splitlines():
            match = SECTION.match(line)
            if match:
                found[match.group(1)].add(match.group(2))
        return found

    def is_built(self, name: str) -> bool:
        from tools.runner import is_fresh

        if name not in self._built:
            try:
                fresh = is_fresh(name, self.snippets_dir, self.build_dir)
            except (OSError, ValueError, KeyError):
                fresh = False
            self._built[name] = fresh
        return self._built[name]

    def produces(self, name: str, filename: str) -> bool:
        """Does snippet `name` write `filename`? Its fresh build output says; else its
        source must name the file (a computed name cannot be checked: accepted)."""
        if self.is_built(name):
            return (self.build_dir / name / filename).exists()
        if name not in self._trees:
            self._trees[name] = ast.parse(self.snippet_sources[name])
        tree = self._trees[name]
        stem = PurePosixPath(filename).stem
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in {stem, filename}:
                return True
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "save_figure"
                and len(node.args) > 1
                and not isinstance(node.args[1], ast.Constant)
            ):
                return True  # a computed name: the strict build checks the file
        return False


def referenced_snippets(text: str) -> list[str]:
    """Snippet and module names a page uses, in order of first use: includes
    ("file.py:section"), figures and notebooks (snippets/NAME/...), numbers
    ({{ NAME.key }})."""
    found: dict[int, str] = {}
    for match in INCLUDE.finditer(text):
        found.setdefault(match.start(), PurePosixPath(match["spec"].split(":")[0]).stem)
    for match in SNIPPET_PATH.finditer(text):
        found.setdefault(match.start(), match.group(1))
    for match in PLACEHOLDER.finditer(text):
        found.setdefault(match.start(), match.group(1))
    return list(dict.fromkeys(found[offset] for offset in sorted(found)))


# The rules. Each takes the book and yields problems.


def check_includes(book: Book):
    for page in book.pages:
        for start, _end, info, body in page.fences:
            line = start + 1
            language = info.split()[0].lstrip("{.") if info else ""
            code = [text for text in body if text.strip()]
            if (
                language != "python"
                or not code
                or not all(INCLUDE_LINE.match(text) for text in code)
            ):
                yield Problem(
                    page.rel,
                    line,
                    "code block that is not a snippet include: show code as "
                    '```python with only --8<-- "file.py:section" (shell '
                    "commands as inline code)",
                    "includes",
                )
            for offset, text in enumerate(body, 1):
                match = INCLUDE.search(text)
                if match:
                    yield from _check_include(book, page, line + offset, match["spec"])


def _check_include(book: Book, page: Page, line: int, spec: str):
    file, _, section = spec.partition(":")
    name = PurePosixPath(file).stem
    if not (book.snippets_dir / file).is_file():
        yield Problem(
            page.rel, line, f"includes {file}, which is not in snippets/", "includes"
        )
        return
    if not section:
        yield Problem(
            page.rel,
            line,
            f'includes all of {file}: include a named section ("{file}:name")',
            "includes",
        )
        return
    if not re.fullmatch(r"[a-z][-_0-9a-z]*", section):
        yield Problem(
            page.rel,
            line,
            f"includes {spec!r} by line numbers: mark a named section "
            "(# --8<-- [start:name] ... [end:name]) and include that",
            "includes",
        )
        return
    sections = book.sections(name)
    for kind in ("start", "end"):
        if section not in sections[kind]:
            yield Problem(
                page.rel,
                line,
                f"includes section {section!r} of {file}, which has no "
                f"'# --8<-- [{kind}:{section}]' line",
                "includes",
            )


def check_snippets_used(book: Book):
    used = set()
    for path in book.docs_dir.rglob("*"):
        if path.is_file() and path.suffix in {".md", ".html", ".js"}:
            used.update(referenced_snippets(path.read_text(encoding="utf-8")))
    for name in book.snippets:
        if name not in used:
            yield Problem(
                book.snippet_rel(name),
                1,
                f"snippet {name} is used by no page: include a section of it, "
                "show its figures or quote its numbers in a chapter",
                "snippet-used",
            )


def check_snippets_tested(book: Book):
    modules = [
        path.stem.removeprefix("test_") for path in book.tests_dir.glob("test_*.py")
    ]
    for name in book.snippets:
        if not any(name.startswith(t) or t.startswith(name) for t in modules):
            yield Problem(
                book.snippet_rel(name),
                1,
                f"snippet {name} has no test module: add tests/test_{name}.py "
                "(or tests/test_SLUG.py for its chapter's slug)",
                "snippet-tested",
            )


def _images(page: Page):
    """(line, alt, src) of every image on a page, outside code."""
    text = INLINE_CODE.sub(_blank, page.no_code_text)
    for match in MD_IMAGE.finditer(text):
        yield line_of(text, match.start()), match["alt"], match["src"]
    for match in HTML_IMAGE.finditer(text):
        attrs = {m.group(1).lower(): m.group(3) for m in HTML_ATTR.finditer(match[0])}
        yield line_of(text, match.start()), attrs.get("alt", ""), attrs.get("src", "")


def check_figures(book: Book):
    for page in book.pages:
        for line, alt, src in _images(page):
            words = len(alt.split())
            if words < MIN_ALT_WORDS:
                yield Problem(
                    page.rel,
                    line,
                    f"figure {src} has {words} words of alt text: describe what it "
                    f"shows in at least {MIN_ALT_WORDS} words",
                    "figures",
                )
            target = PurePosixPath(page.docs_rel).parent / src
            parts = PurePosixPath(*_normalise(target.parts)).parts
            if len(parts) != 3 or parts[0] != "snippets":
                yield Problem(
                    page.rel,
                    line,
                    f"image {src} is not drawn by a snippet: figures are "
                    "snippets/NAME/FILE, saved by snippet NAME with save_figure",
                    "figures",
                )
                continue
            _, name, filename = parts
            if name not in book.snippets:
                yield Problem(
                    page.rel,
                    line,
                    f"figure {src}: there is no snippet {name} (snippets/{name}.py)",
                    "figures",
                )
            elif not book.produces(name, filename):
                yield Problem(
                    page.rel,
                    line,
                    f"figure {src} is not produced by snippet {name}: no "
                    f"save_figure(fig, {PurePosixPath(filename).stem!r}) in "
                    f"{book.snippet_rel(name)}",
                    "figures",
                )


def _normalise(parts):
    out: list[str] = []
    for part in parts:
        if part == "..":
            if out:
                out.pop()
        elif part not in {".", ""}:
            out.append(part)
    return out


def _typed_references(page: Page) -> list[re.Match]:
    return [
        match
        for match in TYPED_REFERENCE.finditer(page.prose)
        if not page.is_cited(match.start())
    ]


def check_typed_references(book: Book):
    for page in book.chapters:
        for match in _typed_references(page):
            yield Problem(
                page.rel,
                line_of(page.prose, match.start()),
                f"typed reference {' '.join(match.group(0).split())!r}: refer by "
                "label, [](#fig-NAME) or [](NN-page.md#tab-NAME), and the build "
                "writes the number",
                "references",
            )


def check_numbers(book: Book):
    for page in book.chapters:
        text = page.prose
        # A typed "Figure 4.3" is reported once, by check_typed_references.
        for match in _typed_references(page):
            text = text[: match.start()] + _blank(match) + text[match.end() :]
        found = []
        for match in DECADE.finditer(text):
            found.append((match.start(), match.group(0), "year"))
        for match in NUMBER.finditer(text):
            kind = _number_kind(text, match)
            if kind:
                found.append((match.start(), match.group(0), kind))
        for match in re.finditer(r"(?<![\w.])\d+(?:\.\d+)?x(?=\s)", text):
            if RATIO_AFTER.match(text[match.end() - 1 :]):
                found.append((match.start(), match.group(0), "ratio"))
        for offset, number, kind in sorted(found):
            if page.is_cited(offset):
                continue
            if kind == "year":
                message = (
                    f"year {number!r} without a citation: add [@key] to its "
                    "sentence, with the work's entry in docs/references.bib"
                )
            else:
                message = (
                    f"hand-typed {kind} {number!r}: quote what a snippet computed "
                    "as {{ snippet.key }}, or cite a published fact with "
                    "[@key] (docs/references.bib) in the same sentence"
                )
            yield Problem(page.rel, line_of(text, offset), message, "numbers")


def _number_kind(text: str, match: re.Match) -> str | None:
    before, after = text[: match.start()], text[match.end() :]
    digits, fraction = match.group(1), match.group(2)
    if PERCENT_AFTER.match(after):
        return "percentage"
    if UNIT_AFTER.match(after):
        return "number with a unit"
    if RATIO_AFTER.match(after):
        return "ratio"
    if SPREAD_BEFORE.search(before[-4:]):
        return "spread"
    if fraction:
        return None if VERSION_BEFORE.search(before[-12:]) else "decimal"
    value = int(digits.replace(",", ""))
    if ANGLE_AFTER.match(after):
        return None  # "rotated by 180 degrees" is geometry, not a measurement
    if "," not in digits and 1800 <= value <= 2099:
        return "year"
    if value >= 100 and value & (value - 1):
        return "count"
    return None


def check_nav(book: Book):
    config_path = book.root / "mkdocs.yml"
    node = yaml.compose(config_path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    nav_key = (
        next((key for key, value in node.value if key.value == "nav"), None)
        if isinstance(node, yaml.MappingNode)
        else None
    )
    if nav_key is None:
        yield Problem("mkdocs.yml", 1, "mkdocs.yml has no nav", "nav")
        return
    nav_value = dict((k.value, v) for k, v in node.value)["nav"]
    listed = {}
    for path, line in _nav_entries(nav_value):
        listed[path] = line
    nav_line = nav_key.start_mark.line + 1
    for page in book.pages:
        if page.is_chapter and page.docs_rel not in listed:
            yield Problem(
                "mkdocs.yml",
                nav_line,
                f"nav does not list the chapter {page.docs_rel}",
                "nav",
            )
    for name in book.snippets:
        notebook = f"snippets/{name}/{name}.ipynb"
        if notebook not in listed:
            yield Problem(
                "mkdocs.yml",
                nav_line,
                f"nav does not list the notebook page {notebook}",
                "nav",
            )
    pages = {page.docs_rel for page in book.pages}
    notebooks = {f"snippets/{name}/{name}.ipynb" for name in book.snippets}
    for path, line in listed.items():
        if re.match(r"^[a-z]+://", path) or path in pages | notebooks:
            continue
        if not (book.docs_dir / path).exists():
            yield Problem(
                "mkdocs.yml", line, f"nav lists {path}, which does not exist", "nav"
            )


def _nav_entries(node):
    if isinstance(node, yaml.ScalarNode):
        yield node.value, node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _nav_entries(item)
    elif isinstance(node, yaml.MappingNode):
        for _key, value in node.value:
            yield from _nav_entries(value)


def check_skeleton(book: Book):
    for page in book.chapters:
        yield from _check_skeleton(book, page)


def _check_skeleton(book: Book, page: Page):
    def problem(line, message):
        return Problem(page.rel, line, message, "skeleton")

    meta = {}
    if page.front_matter_end > 0:
        try:
            meta = yaml.safe_load("\n".join(page.lines[1 : page.front_matter_end]))
        except yaml.YAMLError:
            meta = None
    if not isinstance(meta, dict) or not str(meta.get("description") or "").strip():
        yield problem(1, "front matter needs a description: (the page's summary)")
    lines = list(page.outside_code())
    h1 = next(((n, H1.match(t)) for n, t in lines if H1.match(t)), None)
    title_line = h1[0] if h1 else 1
    if h1 is None:
        yield problem(1, f'no H1 title: "# {page.chapter_number}. Title"')
    elif not re.match(rf"^{page.chapter_number}\. \S", h1[1]["title"]):
        yield problem(
            title_line,
            f'the H1 must be "# {page.chapter_number}. Title" '
            f"(the number of {page.docs_rel})",
        )

    def find(pattern, title=None):
        for number, text in lines:
            match = pattern.match(text)
            if match and (title is None or match["title"] == title):
                return number
        return None

    parts = [
        ("abstract", find(SKELETON_ABSTRACT), '!!! abstract "What you will learn"'),
        ("prerequisites", find(SKELETON_PREREQUISITES), '!!! info "Prerequisites"'),
        ("summary", find(H2, "Summary"), "## Summary"),
        ("exercises", find(H2, "Exercises"), "## Exercises"),
        ("run", find(SKELETON_RUN), '!!! example "Run it yourself"'),
    ]
    for _, line, label in parts:
        if line is None:
            yield problem(title_line, f"the chapter has no {label} (see the skeleton)")
    present = [(key, line, label) for key, line, label in parts if line]
    for (_, before, first), (_, line, label) in zip(present, present[1:]):
        if line < before:
            yield problem(line, f"{label} must come after {first}")
    where = dict((key, line) for key, line, _ in parts)
    if h1 and where["abstract"]:
        intro = [
            t for n, t in lines if title_line < n < where["abstract"] and t.strip()
        ]
        if not intro:
            yield problem(
                title_line,
                "no intro paragraph between the title and "
                '!!! abstract "What you will learn"',
            )
    sections = [
        n
        for n, t in lines
        if H2.match(t) and H2.match(t)["title"] not in {"Summary", "Exercises"}
    ]
    if where["summary"] and not any(n < where["summary"] for n in sections):
        yield problem(where["summary"], "no ## section before the summary")
    if where["exercises"]:
        yield from _check_exercises(page, lines, where["exercises"], problem)
    if where["run"]:
        yield from _check_run_box(book, page, where["run"], problem)


def _check_exercises(page, lines, start, problem):
    after = [(n, t) for n, t in lines if n > start]
    end = next(
        (n for n, t in after if H2.match(t) or SKELETON_RUN.match(t)),
        len(page.lines) + 1,
    )
    body = [(n, t) for n, t in after if n < end]
    starts = [n for n, t in body if EXERCISE_ITEM.match(t)] or [
        n for n, t in body if H3.match(t)
    ]
    if not starts:
        yield problem(start, "## Exercises has no exercises (a numbered list)")
    for first, last in zip(starts, [*starts[1:], end]):
        if not any(COLLAPSED_ANSWER.match(t) for n, t in body if first <= n < last):
            yield problem(
                first,
                'exercise without a collapsed ??? tip "Hint" or ??? success "Solution"',
            )


def _check_run_box(book, page, start, problem):
    box = []
    for text in page.lines[start:]:
        if text.strip() and not text.startswith((" ", "\t")):
            break
        box.append(text)
    box_text = "\n".join(box)
    if not INLINE_CODE.search(box_text):
        yield problem(start, "the Run it yourself box gives no command (as `code`)")
    linked = set(NOTEBOOK_LINK.findall(box_text))
    own = [n for n in book.snippets if n.startswith(page.slug.replace("-", "_"))]
    for name in own:
        if name not in linked:
            yield problem(
                start,
                f"the Run it yourself box does not link the notebook of {name} "
                f"(snippets/{name}/{name}.ipynb)",
            )
    if not own and not linked:
        yield problem(start, "the Run it yourself box links no notebook")


def check_placeholders(book: Book):
    paths = [page.path for page in book.pages]
    paths += sorted(book.snippets_dir.glob("*.py")) + sorted(
        book.tests_dir.glob("*.py")
    )
    for path in paths:
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if TODO.search(text):
                yield Problem(
                    path.relative_to(book.root).as_posix(),
                    number,
                    f"placeholder left: {text.strip()[:72]}",
                    "placeholders",
                    warning=True,
                )


def check_values_as_list_markers(book: Book):
    for page in book.pages:
        for number, line in page.outside_code():
            if LIST_MARKER_VALUE.match(line):
                yield Problem(
                    page.rel,
                    number,
                    "an indented line that opens with a whole number and then '.' "
                    "or ')' renders as a list item: move the value off the line's "
                    "start",
                    "list-markers",
                )


def _tool(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def check_tools(book: Book):
    ruff, codespell = _tool("ruff"), _tool("codespell")
    for name, path in (("ruff", ruff), ("codespell", codespell)):
        if path is None:
            yield Problem(".", 1, f"{name} not found: run `make lint`", "tools")
    if ruff:
        run = subprocess.run(
            [ruff, "check", "--output-format", "concise", "--quiet", "."],
            cwd=book.root,
            capture_output=True,
            text=True,
        )
        for text in run.stdout.splitlines():
            match = re.match(r"^(.+?):(\d+):\d+: (.*)$", text)
            if match:
                yield Problem(match[1], int(match[2]), f"ruff: {match[3]}", "tools")
        run = subprocess.run(
            [ruff, "format", "--check", "--diff", "."],
            cwd=book.root,
            capture_output=True,
            text=True,
        )
        yield from _format_problems(run.stdout)
    if codespell:
        paths = [p for p in CODESPELL_PATHS if (book.root / p).exists()]
        run = subprocess.run(
            [codespell, *paths], cwd=book.root, capture_output=True, text=True
        )
        for text in run.stdout.splitlines():
            match = re.match(r"^(.+?):(\d+): (.*)$", text)
            if match:
                yield Problem(
                    match[1], int(match[2]), f"codespell: {match[3]}", "tools"
                )


def _format_problems(diff: str):
    """The first changed line of each file that ruff format would change."""
    path, line, reported = None, 0, set()
    for text in diff.splitlines():
        if text.startswith("--- "):
            path = text[4:].strip()
        elif text.startswith("@@"):
            line = int(re.match(r"^@@ -(\d+)", text).group(1))
        elif path and path not in reported and text[:1] in {"-", "+"}:
            if not text.startswith(("---", "+++")):
                reported.add(path)
                yield Problem(
                    path,
                    line,
                    f"not formatted: run `.venv/bin/ruff format {path}`",
                    "tools",
                )
        elif text.startswith(" "):
            line += 1


# Each rule's name, as its problems carry it.
BOOK_RULES = {
    "includes": check_includes,
    "snippet-used": check_snippets_used,
    "snippet-tested": check_snippets_tested,
    "figures": check_figures,
    "numbers": check_numbers,
    "references": check_typed_references,
    "nav": check_nav,
    "skeleton": check_skeleton,
    "placeholders": check_placeholders,
    "list-markers": check_values_as_list_markers,
}


def lint(
    root: Path = ROOT,
    tools: bool = True,
    strict: bool = False,
    only: Iterable[str] | None = None,
) -> list[Problem]:
    """The problems of the book at root: of every rule (ruff and codespell
    too if `tools`), or of the rules named in `only`."""
    rules = BOOK_RULES | ({"tools": check_tools} if tools else {})
    if only is not None:
        unknown = sorted(set(only) - rules.keys())
        if unknown:
            raise ValueError(
                f"no lint rule {', '.join(unknown)}: the rules are {', '.join(rules)}"
            )
        rules = {name: rules[name] for name in only}
    book = Book(root)
    problems = sorted({p for rule in rules.values() for p in rule(book)})
    if strict:
        problems = [
            Problem(p.path, p.line, p.message, p.rule) if p.warning else p
            for p in problems
        ]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--no-tools", action="store_true", help="skip ruff and codespell"
    )
    parser.add_argument(
        "--strict", action="store_true", help="placeholders (TODO) are errors"
    )
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    problems = lint(args.root, tools=not args.no_tools, strict=args.strict)
    for problem in problems:
        print(problem)
    errors = [p for p in problems if not p.warning]
    warnings = len(problems) - len(errors)
    book = Book(args.root)
    checks = (
        "ruff, codespell and the book's rules"
        if not args.no_tools
        else "the book's rules"
    )
    summary = (
        f"lint ({checks}; {len(book.chapters)} chapters, {len(book.snippets)} "
        f"snippets): {len(errors)} errors, {warnings} warnings"
    )
    if warnings and not errors:
        summary += " (placeholders fail the check in CI: --strict)"
    print(summary)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
