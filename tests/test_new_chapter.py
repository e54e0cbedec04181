"""`make chapter`: a scaffolded chapter builds, passes its tests and the linter;
a bad or taken name is refused and nothing is written."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tools import lint_book, new_chapter, runner

ROOT = Path(__file__).resolve().parent.parent
COPIED = [
    "docs",
    "snippets",
    "tests",
    "tools",
    "overrides",
    "mkdocs.yml",
    "pyproject.toml",
    "requirements.txt",
    "README.md",
]


def copy_book(target, with_build=False):
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, target / name)
    if with_build:
        stale = [name for name in runner.snippet_names() if not runner.is_fresh(name)]
        if stale:
            pytest.fail(f"outputs of {stale} are stale: run `make site` first")
        shutil.copytree(ROOT / "build" / "snippets", target / "build" / "snippets")
        # mkdocs-jupyter's cache (keyed by each notebook's bytes): the book's own
        # notebooks are then not converted again, the new chapter's is.
        converted = ROOT / "build" / "mkdocs-jupyter"
        if converted.is_dir():
            shutil.copytree(converted, target / "build" / "mkdocs-jupyter")
    return target


@pytest.fixture
def book(tmp_path):
    return copy_book(tmp_path / "book")


def snapshot(root):
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def nav(root):
    config = yaml.safe_load((root / "mkdocs.yml").read_text().replace("!!python", ""))
    return {
        section: items
        for entry in config["nav"]
        if isinstance(entry, dict)
        for section, items in entry.items()
    }


def create(root, slug, title):
    return new_chapter.create(root, slug, title, log=lambda line: None)


def next_number(root):
    """The number a new chapter gets: whatever chapters the book has by now."""
    pages = new_chapter.existing_chapters(root).values()
    return max(int(page[:2]) for page in pages) + 1


def test_a_new_chapter_gets_its_files_nav_entries_and_index_row(book):
    n = next_number(book)
    chapter = create(book, "trial-chapter", "Can we learn the kernel?")
    assert chapter.page == f"{n:02d}-trial-chapter.md"
    page = (book / "docs" / chapter.page).read_text()
    assert page.splitlines()[6] == f"# {n}. Can we learn the kernel?"
    assert '--8<-- "trial_chapter.py:example"' in page
    assert (book / "snippets/trial_chapter.py").exists()
    assert (book / "tests/test_trial_chapter.py").exists()
    chapters, notebooks = nav(book)["Chapters"], nav(book)["Notebooks"]
    assert chapters[-1] == {f"{n}. Can we learn the kernel?": chapter.page}
    assert notebooks[-1] == "snippets/trial_chapter/trial_chapter.ipynb"
    index = (book / "docs/index.md").read_text()
    assert f"| [{n}. Can we learn the kernel?]({chapter.page}) |" in index


def test_a_new_chapter_passes_the_linter_with_its_placeholders_as_warnings(book):
    chapter = create(book, "trial-chapter", "Can we learn the kernel?")
    found = lint_book.lint(book, tools=True)
    assert [p for p in found if not p.warning] == []
    placeholders = {p.path for p in found if p.rule == "placeholders"}
    assert placeholders == {
        f"docs/{chapter.page}",
        "docs/index.md",
        "snippets/trial_chapter.py",
        "tests/test_trial_chapter.py",
    }
    strict = lint_book.lint(book, tools=False, strict=True)
    assert strict and not any(p.warning for p in strict)  # CI refuses to merge it


def test_long_names_and_titles_stay_within_the_line_limits(book):
    slug = "a" + "-bcd" * 9 + "e"  # 38 characters, near the limit of 40
    create(book, slug, "A title long enough to wrap: " + "very " * 20 + "long")
    assert [p for p in lint_book.lint(book, tools=True) if not p.warning] == []


def test_a_title_that_yaml_must_quote(book):
    title = 'Layers: deep, "deeper" # and deepest'
    chapter = create(book, "quoted-title", title)
    assert nav(book)["Chapters"][-1] == {f"{chapter.number}. {title}": chapter.page}


def test_the_number_follows_the_highest_chapter(book):
    page = (book / "docs/01-why-cnns.md").read_text()
    later = next_number(book) + 4
    (book / f"docs/{later:02d}-later.md").write_text(
        page.replace("# 1. ", f"# {later}. ")
    )
    assert create(book, "next-one", "Next").page == f"{later + 1:02d}-next-one.md"


@pytest.mark.parametrize(
    "slug, title, message",
    [
        (
            "why-cnns",
            "Again",
            r"chapter 'why-cnns' exists already: docs/01-why-cnns.md",
        ),
        ("Why-CNNs", "Caps", r"'Why-CNNs' is not a valid slug"),
        ("why cnns", "Space", r"not a valid slug"),
        ("why_cnns", "Underscore", r"not a valid slug"),
        ("2nd-chapter", "Digit first", r"not a valid slug"),
        ("why--cnns", "Double hyphen", r"not a valid slug"),
        ("-why", "Leading hyphen", r"not a valid slug"),
        ("why-", "Trailing hyphen", r"not a valid slug"),
        ("", "No name", r"give the chapter a name"),
        ("a" * 41, "Too long", r"41 characters long: keep it to 40"),
        ("new-topic", "   ", r"give chapter 'new-topic' a title"),
        ("why", "Prefix", r"'why' clashes with chapter docs/01-why-cnns.md"),
        ("why-cnns-more", "Extension", r"clashes with chapter docs/01-why-cnns.md"),
        ("book", "Helper", r"snippets/book.py exists already"),
        ("random", "Stdlib", r"would shadow the Python module 'random'"),
        ("torch", "Package", r"would shadow the Python module 'torch'"),
        ("tools", "Folder", r"would shadow the Python module 'tools'"),
    ],
)
def test_a_bad_or_taken_name_is_refused_and_nothing_is_written(
    book, slug, title, message
):
    before = snapshot(book)
    with pytest.raises(new_chapter.ChapterError, match=message):
        create(book, slug, title)
    assert snapshot(book) == before


def test_an_existing_test_module_is_not_overwritten(book):
    (book / "tests/test_new_topic.py").write_text("def test_mine():\n    pass\n")
    before = snapshot(book)
    with pytest.raises(new_chapter.ChapterError, match="tests/test_new_topic.py"):
        create(book, "new-topic", "New topic")
    assert snapshot(book) == before


def test_a_nav_without_chapter_lists_is_refused_before_writing(book):
    config = book / "mkdocs.yml"
    text = config.read_text()
    config.write_text(text[: text.index("nav:")] + "nav:\n  - Home: index.md\n")
    before = snapshot(book)
    with pytest.raises(new_chapter.ChapterError, match="found no place"):
        create(book, "new-topic", "New topic")
    assert snapshot(book) == before


def test_a_failed_write_is_rolled_back(book, monkeypatch):
    before = snapshot(book)
    write_text = Path.write_text

    def failing(self, *args, **kwargs):
        if self.name == "mkdocs.yml":
            raise OSError("disk full")
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises(OSError, match="disk full"):
        create(book, "new-topic", "New topic")
    monkeypatch.undo()
    assert snapshot(book) == before


def test_cli_reports_a_refusal(capsys, monkeypatch, book):
    monkeypatch.setattr(new_chapter, "ROOT", book)
    assert new_chapter.main(["why-cnns", "Again"]) == 1
    err = capsys.readouterr().err
    assert "error: chapter 'why-cnns' exists already" in err
    assert "nothing was written" in err


def test_a_scaffolded_chapter_runs_builds_strictly_and_passes_its_tests(tmp_path):
    """What a contributor gets from `make chapter`, before writing a word."""
    book = copy_book(tmp_path / "book", with_build=True)
    chapter = create(book, "trial-chapter", "Can we learn the kernel?")
    outcomes = runner.run(
        ["trial_chapter"],
        snippets_dir=book / "snippets",
        build_dir=book / "build" / "snippets",
        log=lambda line: None,
    )
    assert [o.ran for o in outcomes] == [True]
    assert (book / "build/snippets/trial_chapter/example.svg").exists()
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"],
        cwd=book,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    page = (book / "site" / chapter.page[:-3] / "index.html").read_text()
    assert re.search(r"adds up 10 squares and gets\s+285\.", page)
    # The example figure is numbered, and the prose refers to it by its label.
    number = f"Figure {chapter.number}.1"
    label = "fig-trial-chapter-example"
    assert re.search(rf'<figure[^>]*id="{label}"[^>]*>.*?{number}', page, re.S)
    assert re.search(rf'<a href="#{label}"[^>]*>{number}</a>\s+plots the', page)
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + ["tests/test_trial_chapter.py"],
        cwd=book,
        capture_output=True,
        text=True,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout
    found = lint_book.lint(book, tools=False)  # now with fresh build outputs
    assert [p for p in found if not p.warning] == []
