"""Scaffold a chapter: its page, snippet and test, from tools/templates/.

    make chapter NAME=slug TITLE="Title"
    python -m tools.new_chapter slug "Title"

Creates docs/NN-slug.md (NN: the next chapter number), snippets/<module>.py and
tests/test_<module>.py (module: the slug with underscores), and adds the page and
its notebook to the nav in mkdocs.yml and a row to the chapters table in
docs/index.md. The new chapter builds and passes its tests and the linter as it
is; every placeholder in it is marked TODO(author). A slug that is taken or not
valid is refused with the reason, and then nothing is written.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import keyword
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "templates"
SLUG = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
MAX_SLUG = 40
CHAPTER_FILE = re.compile(r"^(\d{2})-([a-z0-9-]+)\.md$")
NAV_CHAPTER = re.compile(r"^(?P<indent>\s+)- .*:\s*\d{2}-[a-z0-9-]+\.md\s*$")
NAV_NOTEBOOK = re.compile(r"^(?P<indent>\s+)- snippets/\S+\.ipynb\s*$")
INDEX_ROW = re.compile(r"^\| \[\d+\. .*\]\(\d{2}-[a-z0-9-]+\.md\) \|")


class ChapterError(ValueError):
    """A chapter that cannot be scaffolded; the message says why."""


@dataclass
class Chapter:
    number: int
    slug: str
    title: str

    @property
    def module(self) -> str:
        return self.slug.replace("-", "_")

    @property
    def page(self) -> str:
        return f"{self.number:02d}-{self.slug}.md"

    @property
    def heading(self) -> str:
        return f"{self.number}. {self.title}"


def existing_chapters(root: Path) -> dict[str, str]:
    """slug -> page file name of every chapter in docs/."""
    found = {}
    for path in sorted((root / "docs").glob("*.md")):
        match = CHAPTER_FILE.match(path.name)
        if match:
            found[match.group(2)] = path.name
    return found


def plan(root: Path, slug: str, title: str) -> Chapter:
    """The chapter to create; ChapterError if the slug or title will not do."""
    if not slug:
        raise ChapterError(
            'give the chapter a name: make chapter NAME=slug TITLE="Title"'
        )
    if not SLUG.match(slug):
        raise ChapterError(
            f"{slug!r} is not a valid slug: use lowercase letters and digits in "
            "words joined by single hyphens, starting with a letter "
            "(like learn-the-kernel)"
        )
    if len(slug) > MAX_SLUG:
        raise ChapterError(
            f"slug {slug!r} is {len(slug)} characters long: keep it to {MAX_SLUG}"
        )
    title = " ".join(title.split())
    if not title:
        raise ChapterError(f'give chapter {slug!r} a title: TITLE="Title"')
    chapters = existing_chapters(root)
    if slug in chapters:
        raise ChapterError(f"chapter {slug!r} exists already: docs/{chapters[slug]}")
    module = slug.replace("-", "_")
    for path in (
        root / "snippets" / f"{module}.py",
        root / "tests" / f"test_{module}.py",
    ):
        if path.exists():
            raise ChapterError(
                f"{path.relative_to(root)} exists already: chapter {slug!r} would "
                "overwrite it; choose another name"
            )
    for other, page in chapters.items():
        other_module = other.replace("-", "_")
        if module.startswith(other_module) or other_module.startswith(module):
            raise ChapterError(
                f"slug {slug!r} clashes with chapter docs/{page}: their snippets "
                f"({module}*.py, {other_module}*.py) would share names; "
                "choose a slug that neither starts nor is the start of the other"
            )
    for path in sorted((root / "snippets").glob(f"{module}*.py")):
        raise ChapterError(
            f"{path.relative_to(root)} exists already and would count as chapter "
            f"{slug!r}'s snippet; choose another name"
        )
    if (
        keyword.iskeyword(module)
        or module in sys.stdlib_module_names
        or importlib.util.find_spec(module) is not None
        or (root / module).exists()
    ):
        raise ChapterError(
            f"snippet name {module!r} would shadow the Python module {module!r} "
            "when snippets are imported; choose another name"
        )
    numbers = [int(CHAPTER_FILE.match(page).group(1)) for page in chapters.values()]
    number = max(numbers, default=0) + 1
    if number > 99:
        raise ChapterError("chapter numbers stop at 99")
    return Chapter(number, slug, title)


def render(chapter: Chapter) -> dict[str, str]:
    """The three new files, relative path -> text."""
    tokens = {
        "__NUMBER__": str(chapter.number),
        "__TITLE__": chapter.title,
        "__MODULE__": chapter.module,
        "__SLUG__": chapter.slug,
        "__HEADER__": textwrap.fill(
            f"# Chapter {chapter.number}: {chapter.title}",
            width=78,
            initial_indent="# ",
            subsequent_indent="# ",
            break_on_hyphens=False,
        ),
        "__DOCSTRING__": textwrap.fill(
            f'"""Chapter {chapter.number}: {chapter.title}. TODO(author): what '
            'these tests check."""',
            width=88,
            break_on_hyphens=False,
        ),
    }

    def fill(template: str) -> str:
        text = (TEMPLATES / template).read_text(encoding="utf-8")
        for token, value in tokens.items():
            text = text.replace(token, value)
        return text

    return {
        f"docs/{chapter.page}": fill("chapter.md.tmpl"),
        f"snippets/{chapter.module}.py": fill("snippet.py.tmpl"),
        f"tests/test_{chapter.module}.py": fill("test.py.tmpl"),
    }


def _nav_item(key: str, value: str) -> str:
    """`- key: value`, quoting the key only where YAML needs it."""
    plain = f"- {key}: {value}"
    try:
        if yaml.safe_load(plain) == [{key: value}]:
            return plain
    except yaml.YAMLError:
        pass
    return f"- {json.dumps(key, ensure_ascii=False)}: {value}"


def _insert_after_last(lines, pattern, section, make_line, what):
    """Insert after the last line matching pattern, or first in `section:`."""
    last = None
    for index, line in enumerate(lines):
        if pattern.match(line):
            last = index
    if last is not None:
        indent = pattern.match(lines[last]).group("indent")
        lines.insert(last + 1, indent + make_line)
        return
    for index, line in enumerate(lines):
        match = re.match(rf"^(\s*)- {section}:\s*$", line)
        if match:
            lines.insert(index + 1, match.group(1) + "    " + make_line)
            return
    raise ChapterError(
        f"mkdocs.yml: found no place for {what} in the nav (no '- {section}:' "
        "list); add it by hand"
    )


def add_to_nav(text: str, chapter: Chapter) -> str:
    lines = text.split("\n")
    notebook = f"snippets/{chapter.module}/{chapter.module}.ipynb"
    _insert_after_last(
        lines,
        NAV_CHAPTER,
        "Chapters",
        _nav_item(chapter.heading, chapter.page),
        f"the chapter {chapter.page}",
    )
    _insert_after_last(
        lines, NAV_NOTEBOOK, "Notebooks", f"- {notebook}", f"the notebook {notebook}"
    )
    new = "\n".join(lines)
    listed = json.dumps(yaml.safe_load(new.replace("!!python", "")).get("nav"))
    if chapter.page not in listed or notebook not in listed:
        raise ChapterError("mkdocs.yml: the nav did not take the new entries")
    return new


def add_to_index(text: str, chapter: Chapter) -> str:
    lines = text.split("\n")
    rows = [index for index, line in enumerate(lines) if INDEX_ROW.match(line)]
    if not rows:
        return text  # no chapters table to extend
    lines.insert(
        rows[-1] + 1,
        f"| [{chapter.heading}]({chapter.page}) | TODO(author): the question it "
        "answers | TODO(author): what the reader runs |",
    )
    return "\n".join(lines)


def create(root: Path, slug: str, title: str, log=print) -> Chapter:
    """Write the chapter's files and register it; all or nothing."""
    chapter = plan(root, slug, title)
    files = render(chapter)
    edits = {"mkdocs.yml": add_to_nav((root / "mkdocs.yml").read_text(), chapter)}
    index = root / "docs" / "index.md"
    if index.exists():
        edits["docs/index.md"] = add_to_index(index.read_text(), chapter)
    originals = {path: (root / path).read_text() for path in edits}
    written: list[Path] = []
    try:
        for path, text in files.items():
            target = root / path
            with target.open("x", encoding="utf-8") as file:  # never overwrite
                written.append(target)
                file.write(text)
        for path, text in edits.items():
            (root / path).write_text(text, encoding="utf-8")
    except BaseException:
        for target in written:
            target.unlink(missing_ok=True)
        for path, text in originals.items():
            (root / path).write_text(text, encoding="utf-8")
        raise
    log(f"created {', '.join(files)}")
    log(
        f"added to the nav in mkdocs.yml: {chapter.heading!r} and its notebook"
        + (
            ", and a row to the table in docs/index.md"
            if "docs/index.md" in edits
            else ""
        )
    )
    log(
        "next: replace every TODO(author) (`make lint` lists those left), preview "
        "with `make serve`, check with `make test`; CONTRIBUTING.md has the rest"
    )
    return chapter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "slug", help="the chapter's name in URLs, e.g. learn-the-kernel"
    )
    parser.add_argument("title", help='its title, e.g. "Can we learn the kernel?"')
    args = parser.parse_args(argv)
    try:
        create(ROOT, args.slug, args.title)
    except ChapterError as error:
        print(f"error: {error}; nothing was written", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
