"""The built site: complete, self-contained, and its hook strict about numbers."""

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


def test_search_splits_code_identifiers():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", ""))
    search = next(
        p["search"] for p in config["plugins"] if isinstance(p, dict) and "search" in p
    )
    words = re.split(search["separator"], "y = torch.nn.functional.conv2d(x, K)")
    assert "conv2d" in words and "functional" in words


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
