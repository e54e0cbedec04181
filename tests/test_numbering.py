"""Numbered figures, tables and equations, and references to them by label
(tools/numbering.py): the numbering itself, a small strict build with planted
errors, and the book's built chapter pages."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from mkdocs.exceptions import PluginError

from tests.test_lint_book import (  # the linter's copy of the book, to plant in
    CHAPTER,
    book,  # noqa: F401 (a fixture)
    plant,
    problems,
)
from tools import numbering

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "site"

LAYERS = """\
# 4. Layers

<figure markdown="span" id="fig-first">
  ![a first figure with five words](a.svg)
  <figcaption>First.</figcaption>
</figure>

```html
<figure id="fig-in-code">not a figure: it is code</figure>
```

<figure markdown="block" id="tab-results">
<figcaption>Results.</figcaption>

| a | b |
| --- | --- |
| 1 | 2 |

</figure>

$$
y = x
$$

$$
r = s + t
\\label{eq-growth}
$$

<figure markdown="span">
  ![an unlabelled figure, numbered all the same](b.svg)
</figure>

<figure markdown="span" id="fig-second">
  ![a second figure with five words](c.svg)
  <figcaption>Second.</figcaption>
</figure>

See [](#fig-second), [](#tab-results) and [](#eq-growth).
"""

LEARN = """\
# 2. Learn

As [](04-layers.md#fig-first) and [](04-layers.md#eq-growth) show.
"""


def _labels(pages):
    return numbering.collect_labels(
        (page, url, text) for page, (url, text) in pages.items()
    )


BOOK = {"04-layers.md": ("04-layers/", LAYERS), "02-learn.md": ("02-learn/", LEARN)}


def test_numbers_follow_the_chapter_and_the_order_on_the_page():
    targets = numbering.scan_page("04-layers.md", "04-layers/", LAYERS)
    assert [(t.kind, t.number, t.label) for t in targets] == [
        ("Figure", "4.1", "fig-first"),
        ("Table", "4.1", "tab-results"),
        ("Figure", "4.2", ""),  # unlabelled, still counted
        ("Figure", "4.3", "fig-second"),
        ("Equation", "4.1", "eq-growth"),  # only labelled equations count
    ]
    assert [t.text for t in targets if t.label] == [
        "Figure 4.1",
        "Table 4.1",
        "Figure 4.3",
        "Equation (4.1)",
    ]


def test_a_page_that_is_not_a_chapter_numbers_without_a_chapter():
    page = '<figure markdown="span" id="fig-only">\n  ![x](x.svg)\n</figure>\n'
    (target,) = numbering.scan_page("explorer.md", "explorer/", page)
    assert target.text == "Figure 1"


def _html(markdown):
    import markdown as md

    return md.markdown(
        markdown,
        extensions=[
            "attr_list",
            "md_in_html",
            "tables",
            "fenced_code",
            "pymdownx.arithmatex",
        ],
        extension_configs={"pymdownx.arithmatex": {"generic": True}},
    )


def test_captions_equations_and_references_carry_the_numbers():
    labels = _labels(BOOK)
    html = numbering.number_page(_html(LAYERS), "04-layers.md", "04-layers/", labels)
    captions = re.findall(r'<span class="caption-number">([^<]*)</span>', html)
    assert captions == ["Figure 4.1.", "Table 4.1.", "Figure 4.2.", "Figure 4.3."]
    assert '<figcaption><span class="caption-number">Figure 4.2.</span>' in html
    assert '<span class="equation-number">(4.1)</span>' in html
    assert '<div class="numbered-equation" id="eq-growth">' in html
    assert "\\label" not in html
    assert '<a href="#fig-second">Figure 4.3</a>' in html
    assert '<a href="#tab-results">Table 4.1</a>' in html
    assert '<a href="#eq-growth">Equation (4.1)</a>' in html


def test_a_reference_to_another_page_shows_that_page_s_number():
    labels = _labels(BOOK)
    html = '<p>As <a href="../04-layers/#fig-first"></a> shows.</p>'
    out = numbering.number_page(html, "02-learn.md", "02-learn/", labels)
    assert '<a href="../04-layers/#fig-first">Figure 4.1</a>' in out


def test_a_reference_in_a_raw_html_caption_is_resolved_too():
    labels = _labels(BOOK)
    html = (
        "<figcaption>As [](#tab-results) and [](04-layers.md#fig-first) show."
        "</figcaption><pre><code>[](#not-a-label) [](#fig-first)</code></pre>"
    )
    out = numbering.number_page(html, "04-layers.md", "04-layers/", labels)
    assert '<a href="#tab-results">Table 4.1</a>' in out
    assert '<a href="#fig-first">Figure 4.1</a> show.' in out
    assert "<code>[](#not-a-label) [](#fig-first)</code>" in out  # code is code
    with pytest.raises(PluginError, match="label 'tab-results' is on 04-layers.md"):
        numbering.number_page(
            "<figcaption>[](#tab-results)</figcaption>",
            "02-learn.md",
            "02-learn/",
            labels,
        )
    out = numbering.number_page(
        "<figcaption>[](04-layers.md#tab-results)</figcaption>",
        "02-learn.md",
        "02-learn/",
        labels,
    )
    assert '<a href="../04-layers/#tab-results">Table 4.1</a>' in out
    with pytest.raises(PluginError, match="unknown label 'fig-gone'"):
        numbering.number_page(
            "<p>[](#fig-gone)</p>", "02-learn.md", "02-learn/", labels
        )


def test_a_reference_with_its_own_words_keeps_them():
    labels = _labels(BOOK)
    html = '<p><a href="#tab-results">the results</a></p>'
    out = numbering.number_page(html, "04-layers.md", "04-layers/", labels)
    assert '<a href="#tab-results">the results</a>' in out


@pytest.mark.parametrize(
    ("html", "message"),
    [
        (
            '<a href="#fig-missing"></a>',
            "04-layers.md: reference to unknown label 'fig-missing'",
        ),
        (
            '<a href="../02-learn/#fig-first"></a>',
            "label 'fig-first' is on 04-layers.md",
        ),
        (
            "<table>\n<tr><td>1</td></tr></table>",
            "04-layers.md: a table without a caption",
        ),
    ],
)
def test_a_bad_reference_or_bare_table_stops_the_build(html, message):
    with pytest.raises(PluginError, match=re.escape(message)):
        numbering.number_page(html, "04-layers.md", "04-layers/", _labels(BOOK))


def test_a_duplicate_label_names_both_pages():
    copy = (
        LEARN + '\n<figure markdown="span" id="fig-first">\n  ![x](x.svg)\n</figure>\n'
    )
    pages = {**BOOK, "02-learn.md": ("02-learn/", copy)}
    with pytest.raises(
        PluginError,
        match=r"02-learn.md: duplicate label 'fig-first' \(also on 04-layers.md\)",
    ):
        _labels(pages)


def test_a_label_twice_on_one_page_is_a_duplicate():
    page = LAYERS + "\n$$\nz\n\\label{eq-growth}\n$$\n"
    with pytest.raises(
        PluginError, match=r"duplicate label 'eq-growth' \(twice on this page\)"
    ):
        _labels({"04-layers.md": ("04-layers/", page)})


@pytest.mark.parametrize(
    ("markdown", "message"),
    [
        (
            '<figure id="tab-x">\n![x](x.svg)\n</figure>',
            "label 'tab-x' of a figure must be fig-NAME",
        ),
        (
            '<figure id="fig-x">\n\n| a |\n| - |\n| 1 |\n\n</figure>',
            "label 'fig-x' of a table must be tab-NAME",
        ),
        ("$$\nx\n\\label{fig-x}\n$$", "label 'fig-x' of an equation must be eq-NAME"),
        ('<figure id="fig-Bad_Name">\n![x](x.svg)\n</figure>', "'fig-Bad_Name'"),
    ],
)
def test_a_label_must_say_what_it_labels(markdown, message):
    with pytest.raises(PluginError, match=re.escape(message)):
        numbering.scan_page("04-layers.md", "04-layers/", markdown)


# A small strict build with only this hook: planted errors must stop it.
MKDOCS_YML = """\
site_name: numbering test
strict: true
validation:
  anchors: warn
hooks:
  - {hook}
markdown_extensions:
  - attr_list
  - md_in_html
  - tables
  - pymdownx.arithmatex:
      generic: true
nav:
  - 02-learn.md
  - 04-layers.md
"""


def _build(tmp_path, pages):
    (tmp_path / "docs").mkdir()
    (tmp_path / "mkdocs.yml").write_text(
        MKDOCS_YML.format(hook=ROOT / "tools" / "numbering.py")
    )
    for name, text in pages.items():
        (tmp_path / "docs" / name).write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )


def test_a_small_book_builds_strictly_with_cross_page_references(tmp_path):
    result = _build(tmp_path, {"04-layers.md": LAYERS, "02-learn.md": LEARN})
    assert result.returncode == 0, result.stderr
    learn = (tmp_path / "site" / "02-learn" / "index.html").read_text()
    assert ">Figure 4.1</a>" in learn and ">Equation (4.1)</a>" in learn


@pytest.mark.parametrize(
    ("learn", "message"),
    [
        (
            LEARN + "\nAnd [](04-layers.md#fig-gone).\n",
            "02-learn.md: reference to unknown label 'fig-gone'",
        ),
        (
            LEARN + "\nAs [](#fig-nope) shows.\n",
            "02-learn.md: reference to unknown label 'fig-nope'",
        ),
        (
            LEARN
            + '\n<figure markdown="span" id="fig-second">\n  ![x](x.svg)\n</figure>\n',
            # Pages are read in file order: the second use is 04-layers.md's.
            "04-layers.md: duplicate label 'fig-second' (also on 02-learn.md)",
        ),
    ],
)
def test_a_planted_label_error_fails_the_build_naming_page_and_label(
    tmp_path, learn, message
):
    result = _build(tmp_path, {"04-layers.md": LAYERS, "02-learn.md": learn})
    assert result.returncode != 0
    assert message in result.stderr


# The linter refuses a number typed by hand, in a copy of the book.
@pytest.mark.parametrize(
    "sentence",
    ["As Figure 4.3 shows.", "See table 2 for the rest.", "By Eq. (5.1) it follows."],
)
def test_the_linter_refuses_a_typed_figure_number(book, sentence):  # noqa: F811
    line = plant(book, CHAPTER, "\n## Summary\n", f"\n{sentence}\n\n## Summary\n")
    found = problems(book, path=CHAPTER)
    assert [(p.rule, p.line) for p in found] == [("references", line + 1)], found


def test_the_linter_lets_a_cited_paper_name_its_own_table(book):  # noqa: F811
    sentence = "Its Table 1 gives the counts [@lecun1998, Table 1].\n"
    plant(book, CHAPTER, "\n## Summary\n", f"\n{sentence}\n## Summary\n")
    assert not problems(book, rule="references")


# The book as built.
def _page(name):
    path = SITE / name / "index.html"
    if not path.exists():
        pytest.fail("site/ is not built: run `make site` (or `make test`) first")
    return path.read_text(encoding="utf-8")


def test_every_chapter_page_numbers_its_figures_and_tables_in_order():
    for path in sorted((ROOT / "docs").glob("[0-9][0-9]-*.md")):
        chapter = int(path.name[:2])
        html = _page(path.stem)
        captions = re.findall(
            r'<span class="caption-number">(\w+) ([\d.]+)\.</span>', html
        )
        figures = html.count("<figure")
        assert len(captions) == figures > 0, path.name
        for kind in ("Figure", "Table"):
            numbers = [n for k, n in captions if k == kind]
            assert numbers == [f"{chapter}.{k}" for k in range(1, len(numbers) + 1)]


def test_the_built_chapters_show_references_as_numbered_links():
    layers = _page("04-layers")
    assert '<a href="#eq-receptive-field">Equation (4.1)</a>' in layers
    assert re.search(
        r'<figure id="tab-results-four-models">\s*<figcaption>'
        r'<span class="caption-number">Table 4\.2\.',
        layers,
    )
    training = _page("07-training-well")
    assert '<a href="../04-layers/#tab-results-four-models">Table 4.2</a>' in training
    for path in sorted((ROOT / "docs").glob("[0-9][0-9]-*.md")):
        html = _page(path.stem)
        empty = re.findall(r'<a href="[^"]*#(?:fig|tab|eq)-[^"]*"></a>', html)
        assert not empty, (path.name, empty)
        assert "[](" not in html, f"{path.name} shows a reference's Markdown"


def test_a_page_that_is_not_a_chapter_numbers_its_figure_alone():
    assert '<span class="caption-number">Figure 1.</span>' in _page("explorer")
    assert "caption-number" not in _page("live-cnn")
