"""The book linter: each rule, tested by planting its defect in a copy of the book.

Every test copies the book into a temporary folder, plants one defect, and
asserts that the linter names the file and the line of it.
"""

import re
import shutil
from pathlib import Path

import pytest

from tools import lint_book

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = "docs/01-why-cnns.md"
COPIED = [
    "docs",
    "snippets",
    "tests",
    "tools",
    "mkdocs.yml",
    "pyproject.toml",
    "requirements.txt",
    "README.md",
    "CONTRIBUTING.md",
]


@pytest.fixture
def book(tmp_path):
    """A copy of the book, without build outputs (figures are checked statically)."""
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(source, tmp_path / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, tmp_path / name)
    return tmp_path


def plant(root, path, old, new, count=1):
    """Replace old by new in root/path; return the line where old started."""
    file = root / path
    text = file.read_text(encoding="utf-8")
    assert text.count(old) >= count, f"{old!r} not in {path}"
    offset = text.index(old)
    file.write_text(text.replace(old, new, count), encoding="utf-8")
    return text.count("\n", 0, offset) + 1


def line_of(root, path, needle):
    lines = (root / path).read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if needle in line)


def problems(root, rule=None, tools=False, strict=False, path=None):
    """What the linter finds: by every rule, or by `rule` alone."""
    only = None if rule is None else [rule]
    found = lint_book.lint(root, tools=tools, strict=strict, only=only)
    return [p for p in found if path is None or p.path == path]


def assert_named(found, path, line, pattern):
    hits = [p for p in found if p.path == path and p.line == line]
    assert any(re.search(pattern, p.message) for p in hits), (
        f"expected {path}:{line}: /{pattern}/ among:\n" + "\n".join(map(str, found))
    )


def test_the_book_as_it_stands_is_clean(book):
    """The baseline every other test plants one defect into."""
    assert problems(book, tools=True) == []


def test_the_repository_itself_is_clean():
    assert [p for p in lint_book.lint(ROOT, tools=False) if not p.warning] == []


def test_each_rule_s_problems_carry_its_name(book):
    """`only` runs a rule by the name its problems carry: planted in one
    copy, a defect of each of four rules is found by that rule alone."""
    plant(book, CHAPTER, '"why_cnns_images.py:pixels"', '"why_cnns_images.py:pixel"')
    plant(book, CHAPTER, "## Summary", "## Summary\n\nTODO(author): a summary.\n")
    plant(book, "mkdocs.yml", "01-why-cnns.md", "01-why-cnn.md")
    (book / "snippets" / "unused.py").write_text("# %%\nx = 1\n")
    for rule in ["includes", "placeholders", "nav", "snippet-used"]:
        found = problems(book, rule)
        assert found and {p.rule for p in found} == {rule}, (rule, found)


def test_an_unknown_rule_is_named_with_the_rules_there_are(book):
    with pytest.raises(
        ValueError, match=r"no lint rule figure: the rules are .*figures"
    ):
        lint_book.lint(book, tools=False, only=["figure"])


# Rule: includes.


def test_an_included_section_that_does_not_exist(book):
    line = plant(
        book, CHAPTER, '"why_cnns_images.py:pixels"', '"why_cnns_images.py:pixel"'
    )
    assert_named(
        problems(book, "includes"), CHAPTER, line, r"section 'pixel' .*\[start:pixel\]"
    )


def test_a_section_whose_end_marker_is_gone(book):
    plant(book, "snippets/why_cnns_images.py", "# --8<-- [end:pixels]\n", "")
    line = line_of(book, CHAPTER, '"why_cnns_images.py:pixels"')
    assert_named(problems(book, "includes"), CHAPTER, line, r"\[end:pixels\]")


def test_an_included_file_that_does_not_exist(book):
    line = plant(
        book, CHAPTER, '"why_cnns_images.py:pixels"', '"why_cnn_images.py:pixels"'
    )
    assert_named(
        problems(book, "includes"), CHAPTER, line, r"why_cnn_images.py, which is not"
    )


def test_a_whole_file_include(book):
    line = plant(book, CHAPTER, '"why_cnns_images.py:pixels"', '"why_cnns_images.py"')
    assert_named(problems(book, "includes"), CHAPTER, line, r"includes all of")


def test_an_include_by_line_numbers(book):
    line = plant(
        book, CHAPTER, '"why_cnns_images.py:pixels"', '"why_cnns_images.py:3:9"'
    )
    assert_named(problems(book, "includes"), CHAPTER, line, r"by line numbers")


@pytest.mark.parametrize(
    "block",
    [
        "```python\nimage = photo / 255\n```",  # code typed into the page
        "```sh\nmake site\n```",  # a shell command as a block
        '```\n--8<-- "why_cnns_images.py:pixels"\n```',  # no language
    ],
)
def test_a_code_block_that_is_not_a_snippet_include(book, block):
    line = plant(book, CHAPTER, "## Summary\n", f"{block}\n\n## Summary\n")
    assert_named(
        problems(book, "includes"), CHAPTER, line, r"code block that is not a snippet"
    )


# Rule: every snippet is used by a page.


def test_a_snippet_no_page_uses(book):
    source = (book / "snippets/why_cnns_images.py").read_text()
    (book / "snippets/why_cnns_extra.py").write_text(source)
    assert_named(
        problems(book, "snippet-used"),
        "snippets/why_cnns_extra.py",
        1,
        r"snippet why_cnns_extra is used by no page",
    )


def test_helper_modules_are_not_snippets(book):
    (book / "snippets/helpers.py").write_text("def answer():\n    return 42\n")
    assert problems(book, "snippet-used", path="snippets/helpers.py") == []
    assert problems(book, "snippet-tested", path="snippets/helpers.py") == []


# Rule: every snippet has a test module.


def test_a_snippet_without_a_test_module(book):
    (book / "tests/test_why_cnns.py").rename(book / "tests/test_chapter_one.py")
    found = problems(book, "snippet-tested")
    for name in ("why_cnns_images", "why_cnns_pipeline"):
        assert_named(found, f"snippets/{name}.py", 1, rf"{name} has no test module")


def test_a_test_module_named_after_the_snippet_counts(book):
    (book / "tests/test_why_cnns.py").rename(book / "tests/test_why_cnns_images.py")
    found = problems(book, "snippet-tested")
    assert [p.path for p in found] == ["snippets/why_cnns_pipeline.py"]


# Rule: figures are drawn by a snippet and have alt text.


def test_a_figure_with_too_little_alt_text(book):
    line = plant(
        book,
        CHAPTER,
        "![One example of each digit from 0 to 9, as blocky 8 by 8 greyscale images"
        ", dark ink on white, in two rows]",
        "![Ten digits]",
    )
    assert_named(problems(book, "figures"), CHAPTER, line, r"2 words of alt text")


def test_a_figure_without_alt_text(book):
    line = plant(
        book,
        CHAPTER,
        "![One example of each digit from 0 to 9, as blocky 8 by 8 greyscale images"
        ", dark ink on white, in two rows]",
        "![]",
    )
    assert_named(problems(book, "figures"), CHAPTER, line, r"0 words of alt text")


def test_a_figure_no_snippet_draws(book):
    line = plant(
        book, CHAPTER, "why_cnns_pipeline/digits.svg", "why_cnns_pipeline/digitz.svg"
    )
    assert_named(
        problems(book, "figures"),
        CHAPTER,
        line,
        r"not produced by snippet why_cnns_pipeline: no save_figure\(fig, 'digitz'\)",
    )


def test_a_figure_of_an_unknown_snippet(book):
    line = plant(
        book, CHAPTER, "why_cnns_pipeline/digits.svg", "why_cnn_pipeline/digits.svg"
    )
    assert_named(problems(book, "figures"), CHAPTER, line, r"there is no snippet")


def test_an_image_that_is_not_a_snippet_figure(book):
    line = plant(
        book, CHAPTER, "snippets/why_cnns_pipeline/digits.svg", "images/digits.png"
    )
    assert_named(problems(book, "figures"), CHAPTER, line, r"not drawn by a snippet")


def test_an_html_image_is_checked_too(book):
    line = plant(
        book,
        CHAPTER,
        "## Summary\n",
        '<img src="images/x.png" alt="A picture">\n\n## Summary\n',
    )
    found = problems(book, "figures")
    assert_named(found, CHAPTER, line, r"not drawn by a snippet")
    assert_named(found, CHAPTER, line, r"2 words of alt text")


def test_a_fresh_build_is_the_authority_on_figures(book):
    """With fresh outputs, a figure must exist in them, not only be named."""
    lint_book_book = lint_book.Book(book)
    name = "why_cnns_pipeline"
    assert lint_book_book.produces(name, "digits.svg")  # named in the source
    build = book / "build" / "snippets" / name
    build.mkdir(parents=True)
    from tools import runner

    key = runner.cache_key(book / "snippets" / f"{name}.py", book / "snippets")
    (build / "run.json").write_text(f'{{"key": "{key}", "seconds": 1}}')
    assert not lint_book.Book(book).produces(name, "digits.svg")
    (build / "digits.svg").write_text("<svg/>")
    assert lint_book.Book(book).produces(name, "digits.svg")


# Rule: no number typed into the prose by hand.

FLAGGED = [
    ("reaches 97.3 % of the digits", "percentage", "97.3"),
    ("reaches 97 percent of the digits", "percentage", "97"),
    ("an accuracy of 0.973 on the digits", "decimal", "0.973"),
    ("training takes 12 s on a laptop", "number with a unit", "12"),
    ("training takes 3.5 minutes", "number with a unit", "3.5"),
    ("the notebook weighs 40 MB", "number with a unit", "40"),
    ("runs at 5 GFLOP/s here", "number with a unit", "5"),
    ("the loop is 3x faster", "ratio", "3x"),
    ("the loop is 30 × slower", "ratio", "30"),
    ("with a spread of ± 2 points", "spread", "2"),
    ("all 1,797 digits", "count", "1,797"),
    ("the 450 test images", "count", "450"),
    ("LeNet read cheques in 1998", "year", "1998"),
    ("as in the 1990s", "year", "1990s"),
]


@pytest.mark.parametrize("sentence, kind, number", FLAGGED)
def test_a_hand_typed_number_is_named(book, sentence, kind, number):
    line = plant(book, CHAPTER, "## Summary\n", f"Here {sentence}.\n\n## Summary\n")
    assert_named(
        problems(book, "numbers"), CHAPTER, line, rf"{kind} '{re.escape(number)}'"
    )


ALLOWED = [
    "A 3 × 3 kernel, 16 × 16-pixel cells, 40 epochs, 9 directions and the digit 7.",
    "A 512 × 512 photo and 128 features: powers of two are sizes chosen on purpose.",
    "Chapter 2 answers it; the ten classes stay, conv2d and L2 are names.",
    "Convolution flips the kernel: it is rotated by 180 degrees (or 180°).",
    "Digits are centred [@lecun1998]: a 1998 scanner did it.",
    "The accuracy is {{ why_cnns_pipeline.sobel_test_accuracy:.1% }} here.",
    "In code it is `lr=0.01` and `1797`, in math $0.5 \\cdot x$ and $$y = 0.25$$.",
    "Install it with Python 3.11 and torch version 2.13.0 pinned.",
    "LeNet read cheques in 1998 with 0.8 % error [@lecun1998, section VIII].",
    "LeNet read cheques in 1998 with 0.8 % error.[@lecun1998] More follows.",
    "LeNet and AlexNet [@lecun1998; @krizhevsky2012, section 3.5]: 650,000 units.",
    "LeNet read cheques in 1998 [@lecun1998], a system\nthat later read 10 % of them.",
    "See [the paper](https://example.org/paper-2005-v1.5) and [@lecun1998].",
    '<span title="0.97">A tagged span</span>, <!-- 97.3 % --> and no number.',
    "[^lecun]: Y. LeCun et al., Gradient-based learning, 1998, 86(11), 2278-2324.",
]


@pytest.mark.parametrize("text", ALLOWED)
def test_numbers_that_are_not_hand_typed_results_pass(book, text):
    plant(book, CHAPTER, "## Summary\n", f"{text}\n\n## Summary\n")
    assert problems(book, "numbers", path=CHAPTER) == []


@pytest.mark.parametrize(
    ("text", "named"),
    [
        # A citation covers only its own sentence.
        (
            "LeNet came in 1998 [@lecun1998]. Ours reaches 0.973 on it.",
            r"decimal '0.973'",
        ),
        # An explanatory footnote is not a citation.
        (
            "AlexNet had 650,000 neurons.[^note]\n\n[^note]: An aside.",
            r"count '650,000'",
        ),
    ],
    ids=["citation-covers-its-sentence", "footnote-is-not-a-citation"],
)
def test_a_number_no_citation_covers_is_named(book, text, named):
    line = plant(book, CHAPTER, "## Summary\n", f"{text}\n\n## Summary\n")
    found = problems(book, "numbers", path=CHAPTER)
    assert len(found) == 1
    assert_named(found, CHAPTER, line, named)


def test_only_chapters_are_held_to_the_number_rule(book):
    plant(
        book, "docs/index.md", "## Who it is for", "## Who it is for (Python 3.11, 0.5)"
    )
    assert problems(book, "numbers", path="docs/index.md") == []


# Rule: the navigation lists every chapter and notebook.


def test_a_chapter_missing_from_the_nav(book):
    line = line_of(book, "mkdocs.yml", "nav:")
    plant(
        book,
        "mkdocs.yml",
        "      - 1. Why convolutional neural networks?: 01-why-cnns.md\n",
        "",
    )
    assert_named(
        problems(book, "nav"),
        "mkdocs.yml",
        line,
        r"does not list the chapter 01-why-cnns.md",
    )


def test_a_notebook_missing_from_the_nav(book):
    line = line_of(book, "mkdocs.yml", "nav:")
    plant(
        book,
        "mkdocs.yml",
        "      - snippets/why_cnns_images/why_cnns_images.ipynb\n",
        "",
    )
    assert_named(
        problems(book, "nav"),
        "mkdocs.yml",
        line,
        r"notebook page snippets/why_cnns_images/why_cnns_images.ipynb",
    )


def test_a_nav_entry_for_a_page_that_does_not_exist(book):
    line = plant(
        book,
        "mkdocs.yml",
        "      - 1. Why",
        "      - 2. Gone: 02-gone.md\n      - 1. Why",
    )
    assert_named(
        problems(book, "nav"), "mkdocs.yml", line, r"02-gone.md, which does not"
    )


# Rule: every chapter follows the skeleton.

H1_LINE = 7


@pytest.mark.parametrize(
    "old, new, where, message",
    [
        ("description: >-\n", "summary: >-\n", 1, r"needs a description"),
        (
            "# 1. Why convolutional",
            "# Why convolutional",
            H1_LINE,
            r'H1 must be "# 1. Title"',
        ),
        (
            "# 1. Why convolutional",
            "# 2. Why convolutional",
            H1_LINE,
            r'H1 must be "# 1. Title"',
        ),
        (
            '!!! abstract "What you will learn"',
            "!!! abstract",
            H1_LINE,
            r"no !!! abstract",
        ),
        (
            '!!! info "Prerequisites"',
            '!!! info "Before you start"',
            H1_LINE,
            r"Prerequisites",
        ),
        ("## Summary\n", "## In short\n", H1_LINE, r"no ## Summary"),
        ("## Exercises\n", "## Things to try\n", H1_LINE, r"no ## Exercises"),
        (
            '!!! example "Run it yourself"',
            '!!! example "Try it"',
            H1_LINE,
            r"Run it yourself",
        ),
    ],
)
def test_a_chapter_missing_part_of_the_skeleton(book, old, new, where, message):
    plant(book, CHAPTER, old, new)
    assert_named(problems(book, "skeleton"), CHAPTER, where, message)


def test_no_intro_between_title_and_abstract(book):
    text = (book / CHAPTER).read_text()
    start = text.index("Since a convolutional network")
    end = text.index('!!! abstract "What you will learn"')
    (book / CHAPTER).write_text(text[:start] + text[end:])
    assert_named(problems(book, "skeleton"), CHAPTER, H1_LINE, r"no intro paragraph")


def test_no_section_before_the_summary(book):
    text = (book / CHAPTER).read_text()
    text = re.sub(r"^## (?!Summary|Exercises)", "### ", text, flags=re.MULTILINE)
    (book / CHAPTER).write_text(text)
    line = line_of(book, CHAPTER, "## Summary")
    assert_named(problems(book, "skeleton"), CHAPTER, line, r"no ## section before")


def test_skeleton_parts_out_of_order(book):
    text = (book / CHAPTER).read_text()
    summary = text[text.index("## Summary") : text.index("## Exercises")]
    text = text.replace(summary, "")
    text = text.replace(
        '!!! example "Run it yourself"', summary + '!!! example "Run it yourself"'
    )
    (book / CHAPTER).write_text(text)
    line = line_of(book, CHAPTER, "## Exercises")
    assert_named(
        problems(book, "skeleton"),
        CHAPTER,
        line,
        r"## Exercises must come after ## Summary",
    )


def test_an_exercise_without_a_collapsed_hint(book):
    line = line_of(book, CHAPTER, "2. Feed the classifier")
    text = (book / CHAPTER).read_text()
    hint = text.index('??? tip "Hint"', text.index("2. Feed the classifier"))
    (book / CHAPTER).write_text(text[:hint] + '!!! tip "Hint"' + text[hint + 14 :])
    assert_named(
        problems(book, "skeleton"), CHAPTER, line, r"exercise without a collapsed"
    )


def test_a_run_box_without_the_chapters_notebooks(book):
    plant(
        book,
        CHAPTER,
        "(snippets/why_cnns_pipeline/why_cnns_pipeline.ipynb)",
        "",
    )
    line = line_of(book, CHAPTER, '!!! example "Run it yourself"')
    assert_named(
        problems(book, "skeleton"),
        CHAPTER,
        line,
        r"does not link the notebook of why_cnns_pipeline",
    )


# Rule: placeholders are warnings, errors with --strict.


def test_a_placeholder_is_a_warning_and_strict_makes_it_an_error(book):
    marker = "TO" + "DO(author): write the intro."  # not a marker in this file
    line = plant(book, CHAPTER, "## Summary\n", f"{marker}\n\n## Summary\n")
    found = problems(book, "placeholders")
    assert_named(found, CHAPTER, line, r"placeholder left")
    assert all(p.warning for p in found)
    strict = problems(book, "placeholders", strict=True)
    assert strict and not any(p.warning for p in strict)


# Rule: ruff and codespell, run by the linter.


def test_a_misspelling_is_named(book):
    typo = "kern" + "al"  # spelled out here, this file would fail codespell
    line = plant(
        book, CHAPTER, "## Summary\n", f"The {typo} is learned.\n\n## Summary\n"
    )
    assert_named(
        problems(book, "tools", tools=True), CHAPTER, line, rf"codespell: {typo}"
    )


def test_a_lint_error_in_a_snippet_is_named(book):
    line = plant(
        book,
        "snippets/why_cnns_images.py",
        "import numpy as np\n",
        "import numpy as np\nimport os\n",
    )
    assert_named(
        problems(book, "tools", tools=True),
        "snippets/why_cnns_images.py",
        line + 1,
        r"ruff: F401",
    )


def test_unformatted_code_is_named(book):
    line = plant(book, "snippets/why_cnns_images.py", "setup()\n", "setup( )\n")
    assert_named(
        problems(book, "tools", tools=True),
        "snippets/why_cnns_images.py",
        line,
        r"not formatted",
    )


# The command line.


def test_cli_prints_file_line_and_fails(book, capsys):
    line = plant(book, CHAPTER, "## Summary\n", "Here 0.973 of them.\n\n## Summary\n")
    assert lint_book.main(["--root", str(book), "--no-tools"]) == 1
    out = capsys.readouterr().out
    assert f"{CHAPTER}:{line}: hand-typed decimal '0.973'" in out
    assert "1 errors" in out


def test_cli_passes_a_clean_book(book, capsys):
    assert lint_book.main(["--root", str(book), "--no-tools"]) == 0
    assert "0 errors, 0 warnings" in capsys.readouterr().out


def test_referenced_snippets_in_order_of_use():
    text = (
        '{{ b_snip.x }} ![a](snippets/a_snip/f.svg) --8<-- "book.py:train" '
        "[nb](snippets/a_snip/a_snip.ipynb)"
    )
    assert lint_book.referenced_snippets(text) == ["b_snip", "a_snip", "book"]


# Rule: a value at the start of a line must not become a list marker.


def test_a_whole_number_opening_a_list_item_s_line(book):
    page = "docs/live-cnn.md"
    value = "{{ live_cnn.field_size_block_1 }}"
    line = plant(
        book, page, f"   {value} × {value}. Near", f"   {value} ×\n   {value}. Near"
    )
    assert_named(problems(book, "list-markers"), page, line + 1, "list item")
