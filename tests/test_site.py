"""The built site: complete, self-contained, and its hook strict about numbers."""

import bisect
import gzip
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
import yaml
from mkdocs.exceptions import PluginError

from tools import mkdocs_hooks, runner

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "site"
EXTERNAL = re.compile(r"^(https?:)?//", re.IGNORECASE)
SEARCH_INDEX = SITE / "search" / "search_index.json"
MAX_SEARCH_INDEX_BYTES = 150_000  # gzipped at level 6, as tools.site_server serves it


class Resources(HTMLParser):
    """Everything a page loads by itself (not links a reader may click)."""

    def __init__(self):
        super().__init__()
        self.loads, self.images = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in {"script", "img", "iframe", "audio", "video", "source"}:
            self.loads.append(attrs.get("src") or "")
        if tag == "link" and attrs.get("rel") in {"stylesheet", "preload", "icon"}:
            self.loads.append(attrs.get("href") or "")
        if tag == "img":
            self.images.append(attrs)


def pages():
    if not (SITE / "index.html").exists():
        pytest.fail("site/ is not built: run `make site` (or `make test`) first")
    return sorted(SITE.rglob("*.html"))


def parse(page):
    parser = Resources()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_pages_load_nothing_from_outside_the_site():
    for page in pages():
        external = [url for url in parse(page).loads if EXTERNAL.match(url)]
        assert not external, f"{page.relative_to(SITE)} loads {external}"
    for css in SITE.rglob("*.css"):
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", css.read_text()), css


def test_no_unfilled_placeholder_or_include_is_published():
    for page in pages():
        text = page.read_text(encoding="utf-8")
        name = page.relative_to(SITE)
        assert "{{" not in text, f"{name} has an unfilled placeholder"
        assert (
            "--8&lt;--" not in text and '8</span> <span class="o">&lt;' not in text
        ), f"{name} shows a snippet include instead of the code"


def test_chapter_images_exist_and_have_alt_text():
    for page in pages():
        for image in parse(page).images:
            if not image.get("src", "").endswith(".svg"):
                continue
            assert len(image.get("alt", "").split()) >= 5, (page, image)
            assert (page.parent / image["src"]).resolve().exists(), (page, image)


def test_every_figure_has_its_size_before_it_loads():
    """A lazy image without width and height is 0 pixels high until it loads,
    which pulls every later figure near the screen: each SVG figure carries its
    size, read from the SVG (points, 4/3 of a CSS pixel)."""
    sized = 0
    for page in pages():
        for image in parse(page).images:
            if not image.get("src", "").endswith(".svg"):
                continue
            svg = (page.parent / image["src"]).resolve().read_text(encoding="utf-8")
            points = mkdocs_hooks.SVG_SIZE.search(svg).groups()
            expected = tuple(str(round(float(p) * 4 / 3)) for p in points)
            assert (image.get("width"), image.get("height")) == expected, (page, image)
            sized += 1
    assert sized > 50


def test_math_is_rendered_at_build_time():
    chapter = (SITE / "01-why-cnns" / "index.html").read_text(encoding="utf-8")
    assert "<math" in chapter and "arithmatex" not in chapter


@pytest.mark.parametrize("name", runner.snippet_names())
def test_each_notebook_page_offers_a_valid_download(name):
    page_dir = SITE / "snippets" / name / name
    html = (page_dir / "index.html").read_text(encoding="utf-8")
    assert f'href="{name}.ipynb" download' in html
    notebook = nbformat.read(page_dir / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    assert any(cell.get("outputs") for cell in notebook.cells)


def mkdocs_config():
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", ""))


def test_search_splits_code_identifiers():
    config = mkdocs_config()
    search = next(
        p["search"] for p in config["plugins"] if isinstance(p, dict) and "search" in p
    )
    words = re.split(search["separator"], "y = torch.nn.functional.conv2d(x, K)")
    assert "conv2d" in words and "functional" in words


class CodeText(HTMLParser):
    """The text of every <pre> in a page's article."""

    def __init__(self):
        super().__init__()
        self.depth, self.in_article, self.code = 0, False, []

    def handle_starttag(self, tag, attrs):
        self.in_article |= tag == "article"
        self.depth += tag == "pre"

    def handle_endtag(self, tag):
        self.depth -= tag == "pre"
        self.in_article &= tag != "article"

    def handle_data(self, data):
        if self.in_article and self.depth:
            self.code.append(data)


def search_index():
    pages()  # fails with advice when the site is not built
    return json.loads(SEARCH_INDEX.read_text(encoding="utf-8"))


def search_tokens(index, text):
    """The words the search would index in text, lower case."""
    text = mkdocs_hooks.MARKUP.sub(" ", text)
    return {t.lower() for t in re.split(index["config"]["separator"], text) if t}


def page_tokens(index, url):
    """Every word the search index holds for the page at url."""
    entries = [e for e in index["docs"] if e["location"].split("#")[0] == url]
    assert entries, f"the search index has no entry for {url!r}"
    return set().union(
        *(search_tokens(index, f"{e['title']} {e['text']}") for e in entries)
    )


def unfound(wanted, indexed):
    """The words of wanted that begin no indexed word: Material searches with a
    trailing wildcard, so "numerous" finds "numerous;"."""
    ordered = sorted(indexed)

    def found(word):
        at = bisect.bisect_left(ordered, word)
        return at < len(ordered) and ordered[at].startswith(word)

    return {word for word in wanted if not found(word)}


def notebook_urls():
    return {f"snippets/{name}/{name}/" for name in runner.snippet_names()}


def shown_cells(notebook):
    """The cells a notebook page shows: not those mkdocs-jupyter removes."""
    plugin = next(p for p in mkdocs_config()["plugins"] if "mkdocs-jupyter" in p)
    hidden = set(plugin["mkdocs-jupyter"]["remove_tag_config"]["remove_cell_tags"])
    return [c for c in notebook.cells if not hidden & set(c.metadata.get("tags", []))]


def test_search_index_is_small_when_served():
    size = len(gzip.compress(SEARCH_INDEX.read_bytes(), compresslevel=6))
    assert size <= MAX_SEARCH_INDEX_BYTES, (
        f"site/search/search_index.json is {size:,} bytes gzipped, over the "
        f"{MAX_SEARCH_INDEX_BYTES:,} every page loads"
    )


def indexed_text(page):
    """The text that the search index holds for page (its URL, e.g.
    "references/"), all sections together."""
    entries = search_index()["docs"]
    return " ".join(e["text"] for e in entries if e["location"].startswith(page))


def test_search_index_holds_the_build_report_s_prose_not_its_build():
    """The build report's figures change at every build; the index that every
    page loads would change with them."""
    text = indexed_text("build-report/")
    assert "snippet" in text  # the page's own prose is found
    assert "Build machine" not in text and "UTC" not in text


def test_search_index_holds_the_references_authors_not_their_identifiers():
    """A reader searches the references for authors and titles; their URLs,
    DOIs and arXiv ids stay on the page but out of the index."""
    text = indexed_text("references/")
    assert "Grandvalet" in text and "No Unbiased Estimator" in text
    for identifier in ("https://", "doi:10.", "arXiv:1"):
        assert identifier not in text
    page = (SITE / "references" / "index.html").read_text(encoding="utf-8")
    assert "https://www.jmlr.org/papers/v5/grandvalet04a.html</a>" in page


@pytest.mark.parametrize(
    "term, url",
    [
        ("conv2d", "05-conv-from-scratch/"),
        ("SmallCNN", "04-layers/"),
        ("F.unfold", "06-weight-sharing/"),
        ("conv2d_loops", "05-conv-from-scratch/"),
        ("count_parameters", "06-weight-sharing/"),
    ],
)
def test_search_index_finds_a_code_identifier_in_its_chapter(term, url):
    index = search_index()
    missing = unfound(search_tokens(index, term), page_tokens(index, url))
    assert not missing, f"search for {term!r} misses {url}: {missing}"


def test_search_index_holds_every_word_of_every_chapter_s_code():
    index = search_index()
    chapters = [p for p in pages() if re.fullmatch(r"\d\d-[-a-z0-9]+", p.parent.name)]
    assert len(chapters) >= 10
    for page in chapters:
        parser = CodeText()
        parser.feed(page.read_text(encoding="utf-8"))
        words = mkdocs_hooks.CODE_WORD.findall("".join(parser.code))
        assert words, f"{page.parent.name} shows no code"
        wanted = search_tokens(index, " ".join(words))
        missing = unfound(wanted, page_tokens(index, f"{page.parent.name}/"))
        assert not missing, f"{page.parent.name}: search misses {sorted(missing)}"


def test_notebook_pages_are_searched_by_cells_not_outputs():
    index = search_index()
    chapter_words = set().union(
        *(
            search_tokens(index, f"{e['title']} {e['text']}")
            for e in index["docs"]
            if e["location"].split("#")[0] not in notebook_urls()
        )
    )
    output_only = 0
    for name in runner.snippet_names():
        url = f"snippets/{name}/{name}/"
        indexed = page_tokens(index, url)
        notebook = nbformat.read(SITE / url / f"{name}.ipynb", as_version=4)
        shown = shown_cells(notebook)
        cells = " ".join(cell.source for cell in shown)
        for math in (
            mkdocs_hooks.NOTEBOOK_BLOCK_MATH,
            mkdocs_hooks.NOTEBOOK_INLINE_MATH,
        ):
            cells = math.sub(" ", cells)  # shown as MathML, not searched for
        cell_words = search_tokens(
            index, " ".join(mkdocs_hooks.CODE_WORD.findall(cells))
        )
        missing = unfound(cell_words, indexed | chapter_words)
        assert not missing, f"{url}: search misses words of its cells: {missing}"
        texts = [
            output.get("text") or output.get("data", {}).get("text/plain", "")
            for cell in shown
            for output in cell.get("outputs", [])
        ]
        words = mkdocs_hooks.CODE_WORD.findall(" ".join(texts))
        only_in_outputs = (
            search_tokens(index, " ".join(words)) - cell_words - chapter_words
        )
        output_only += len(only_in_outputs)
        leaked = indexed & only_in_outputs
        assert not leaked, f"{url}: search holds words of its outputs: {leaked}"
        for entry in index["docs"]:
            if entry["location"].startswith(url):
                assert not re.search(
                    r"Copied!|\b(In|Out) \[\d*\]:|¶", entry["title"] + entry["text"]
                ), entry
    assert output_only > 50, "too few words only in outputs to tell if they are indexed"


def test_compact_search_index_keeps_prose_and_cuts_code_to_new_words():
    index = {
        "config": {"separator": r"[\s\-,:!=\[\]()\"`/\.]+"},
        "docs": [
            {
                "location": "nb/",
                "title": "Notebook",
                "text": "<pre>conv2d(x, w) rare_name</pre>",
            },
            {"location": "ch/", "title": "Chapter", "text": "<p>We call conv2d.</p>"},
            {
                "location": "ch/#code",
                "title": "Code",
                "text": "<p>Prose stays.</p> "
                "<pre><code>y = conv2d(x, w)\nz = w * y</code></pre> "
                "<pre><code>y = w</code></pre>",
            },
        ],
    }
    docs = mkdocs_hooks.compact_search_index(index, {"nb/"})["docs"]
    assert [d["text"] for d in docs] == [
        "<pre>rare_name</pre>",
        "<p>We call conv2d.</p>",
        "<p>Prose stays.</p> <pre><code>y x w z</code></pre>",
    ]


def fake_page(uri="01-why-cnns.md"):
    return SimpleNamespace(file=SimpleNamespace(src_uri=uri))


def test_placeholders_are_filled_and_formatted(results):
    text = "{{ why_cnns_pipeline.num_train:, }}/"
    text += "{{why_cnns_pipeline.chance_accuracy:.0%}}"
    filled = mkdocs_hooks.on_page_markdown(text, fake_page(), None, None)
    assert filled == f"{results['why_cnns_pipeline']['num_train']:,}/10%"


@pytest.mark.parametrize(
    "text, message",
    [
        ("{{ nowhere.accuracy }}", r"01-why-cnns.md: .*unknown snippet 'nowhere'"),
        ("{{ why_cnns_pipeline.nothing }}", r"01-why-cnns.md: .*recorded no 'nothing'"),
        ("{{ why_cnns_pipeline.num_train:.1q }}", r"cannot format"),
        ("{{ why_cnns_pipeline }}", r"01-why-cnns.md: malformed placeholder"),
        ("{{ why-cnns.num_train }}", r"malformed placeholder"),
    ],
)
def test_a_bad_placeholder_fails_the_build_naming_page_and_name(results, text, message):
    with pytest.raises(PluginError, match=message):
        mkdocs_hooks.on_page_markdown(text, fake_page(), None, None)


def test_every_placeholder_in_the_chapters_has_a_result(results):
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for inner in mkdocs_hooks.PLACEHOLDER.findall(page.read_text()):
            snippet, key, _ = mkdocs_hooks.REFERENCE.fullmatch(inner).groups()
            assert key in results.get(snippet, {}), f"{page.name}: {snippet}.{key}"


@pytest.mark.parametrize("name", runner.snippet_names())
def test_published_notebooks_have_no_warnings_or_errors(name):
    notebook = nbformat.read(runner.BUILD_DIR / name / f"{name}.ipynb", as_version=4)
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output.get("name") != "stderr", f"{name}: {output.get('text')}"
            assert output["output_type"] != "error", name


def test_mkdocs_yml_sets_each_top_level_key_once():
    # YAML lets a repeated key silently replace the first (a merge once
    # dropped the interactive pages' shared script that way).
    keys = re.findall(r"^([A-Za-z_]+):", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert sorted(k for k in set(keys) if keys.count(k) > 1) == []
