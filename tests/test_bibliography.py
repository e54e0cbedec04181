"""The bibliography: docs/references.bib, citations by key, reference lists."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mkdocs.exceptions import PluginError
from pybtex.database import parse_string

from tools import bibliography

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SITE = ROOT / "site"
CHAPTERS = sorted(DOCS.glob("[0-9][0-9]-*.md"))


@pytest.fixture(scope="module")
def book():
    return bibliography.check_book(DOCS)


def test_every_cited_key_resolves_and_every_entry_is_cited(book):
    data, cited = book
    assert set(cited) == set(data.entries)


def test_every_entry_has_a_doi_an_arxiv_id_or_a_stated_reason(book):
    data, _ = book
    for key, entry in data.entries.items():
        fields = entry.fields
        if "doi" in fields:
            assert fields["doi"].startswith("10."), key
        elif "eprint" in fields:
            assert re.fullmatch(r"\d{4}\.\d{4,5}", fields["eprint"]), key
        else:
            assert fields.get("nodoi", "").strip(), f"{key}: no doi, eprint or nodoi"


@pytest.mark.parametrize(
    "fields, message",
    [
        ("", r"entry 'x2020' has no identifier"),
        ("doi = {doi.org/10.1/x},", r"entry 'x2020' has a malformed DOI"),
        ("eprint = {arXiv:1512.03385}, archiveprefix = {arXiv},", r"malformed arXiv"),
        ("eprint = {1512.03385},", r"eprint without archivePrefix"),
    ],
)
def test_an_entry_without_a_proper_identifier_fails(tmp_path, fields, message):
    bib = tmp_path / "references.bib"
    bib.write_text(f"@misc{{x2020, title = {{T}}, year = {{2020}}, {fields}}}\n")
    with pytest.raises(PluginError, match=message):
        bibliography.load(bib)


def test_an_uncited_entry_fails_naming_it(book):
    data, _ = book
    pages = {"01-why-cnns.md": "AlexNet [@krizhevsky2012]."}
    with pytest.raises(PluginError, match=r"no page cites .*lecun1998"):
        bibliography.cited_keys(pages, data)


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "As shown [@krizhevsky2013].",
            r"04-layers.md: unknown citation key "
            r"'krizhevsky2013' \(did you mean krizhevsky2012",
        ),
        (
            "As shown [@lecun1998; @nobody1999].",
            r"04-layers.md: unknown .*'nobody1999'",
        ),
        ("As shown [@lecun1998 Table I].", r"04-layers.md: malformed citation"),
    ],
)
def test_a_bad_citation_fails_naming_page_and_key(book, text, message):
    data, cited = book
    with pytest.raises(PluginError, match=message):
        bibliography.render_page(text, "04-layers.md", data, cited)


def test_citations_are_numbered_per_page_in_order_of_first_use(book):
    data, cited = book
    text = (
        "LeNet [@lecun1998] and AlexNet [@krizhevsky2012, section 3.5]; "
        "again [@lecun1998; @he2016, Table 1].\n\n```python\nx = [@not_a_key]\n```\n"
    )
    out = bibliography.render_page(text, "09-architectures.md", data, cited)
    assert '[1](#ref-lecun1998 "LeCun et al., 1998")' in out
    assert (
        '\\[[2](#ref-krizhevsky2012 "Krizhevsky et al., 2012"), section 3.5\\]' in out
    )
    assert re.search(r"\\\[\[1\]\(#ref-lecun1998 [^)]*\); \[3\]\(#ref-he2016", out)
    assert "x = [@not_a_key]" in out  # code is left alone
    references = out[out.index("## References") :]
    order = re.findall(r"#ref-(\w+) }", references)
    assert order == ["lecun1998", "krizhevsky2012", "he2016"]


# The built site (make site first).


def visible_text(html):
    return re.sub(r"<[^>]+>", "", html)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_each_citing_chapter_ends_with_its_references(book, chapter):
    data, cited = book
    keys = {key for key, pages in cited.items() if chapter.name in pages}
    html = (SITE / chapter.stem / "index.html").read_text()
    article = html[html.index("<article") : html.index("</article>")]
    if not keys:
        assert 'id="references"' not in article
        return
    after = article[re.search(r'<h2 [^>]*id="references"', article).start() :]
    assert "<h2" not in after[4:], "a section follows the references"
    assert 'class="footnote"' not in after, "footnotes follow the references"
    listed = re.findall(r'<li id="ref-([\w-]+)"', after)
    assert sorted(listed) == sorted(keys)
    for key in keys:  # each entry shows its DOI or arXiv link, or its URL
        item = re.search(rf'<li id="ref-{key}">(.*?)</li>', after, re.DOTALL).group(1)
        fields = data.entries[key].fields
        if "doi" in fields:
            assert f"https://doi.org/{fields['doi']}" in item, key
        elif "eprint" in fields:
            assert f"https://arxiv.org/abs/{fields['eprint']}" in item, key
    # every citation link on the page points at an entry of its list
    for target in set(re.findall(r'href="#ref-([\w-]+)"', article)):
        assert target in listed, f"{chapter.name}: link to #ref-{target}"


def test_the_references_page_lists_every_work_with_its_citing_pages(book):
    data, cited = book
    html = (SITE / "references" / "index.html").read_text()
    listed = re.findall(r'<li id="ref-([\w-]+)">(.*?)</li>', html, re.DOTALL)
    assert sorted(key for key, _ in listed) == sorted(data.entries)
    for key, item in listed:
        for page in cited[key]:
            assert f'href="../{page.removesuffix(".md")}/#ref-{key}"' in item, key
    assert "\\full_bibliography" not in html
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    assert {"References": "references.md"} in nav


VENUE = re.compile(
    r"\b(?:Conference|Journal|Proceedings|Transactions|NeurIPS|NIPS|ICML|ICLR|CVPR"
    r"|ICCV|ECCV)\b|arXiv:\d|doi\.org"
)


def test_no_chapter_keeps_a_footnote_that_only_cites():
    """Footnotes that stay are explanations; a work is cited by key."""
    for chapter in CHAPTERS:
        text = chapter.read_text()
        for body in re.findall(r"^\[\^[^\]]+\]:(.*(?:\n    .*)*)", text, re.M):
            assert not VENUE.search(re.sub(r"\[@[^\]]*\]", "", body)), (
                f"{chapter.name}: a footnote cites by hand: {body.strip()[:60]}"
            )


@pytest.fixture(scope="module")
def planted_build(tmp_path_factory):
    """The site built from a copy of docs/ with an unknown key in chapter 4."""
    work = tmp_path_factory.mktemp("planted")
    shutil.copytree(DOCS, work / "docs")
    chapter = work / "docs" / "04-layers.md"
    chapter.write_text(
        chapter.read_text().replace(
            "## Summary", "As shown [@nosuch2099].\n\n## Summary", 1
        )
    )
    with open(ROOT / "mkdocs.yml") as file:
        config = yaml.safe_load(file)
    config["theme"]["custom_dir"] = str(ROOT / config["theme"]["custom_dir"])
    config["hooks"] = [str(ROOT / hook) for hook in config["hooks"]]
    config["docs_dir"] = str(work / "docs")
    config["site_dir"] = str(work / "site")
    config.pop("watch", None)
    path = work / "mkdocs.yml"
    path.write_text(yaml.dump(config, sort_keys=False))
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def test_a_planted_unknown_key_fails_the_build_naming_page_and_key(planted_build):
    assert planted_build.returncode != 0
    assert re.search(
        r"04-layers\.md: unknown citation key 'nosuch2099'", planted_build.stderr
    ), planted_build.stderr[-2000:]


def test_the_bib_parses_as_plain_bibtex():
    """No tool-specific syntax: any BibTeX reader takes the file."""
    text = (DOCS / "references.bib").read_text()
    assert len(parse_string(text, "bibtex").entries) == text.count("\n@")
