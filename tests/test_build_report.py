"""The build report page: the runner's build record, and the page made from it."""

import json
import shutil
from datetime import datetime
from types import SimpleNamespace

import pytest
from mkdocs.exceptions import PluginError
from test_runner import make_book

from tools import build_report, runner
from tools.lint_book import referenced_snippets

ROOT = runner.ROOT
SITE_PAGE = ROOT / "site" / "build-report" / "index.html"
OTHER = "# %%\nfrom book import record\n\nrecord(answer=1)\n"


def run(book, *names, force=False):
    snippets, build = book
    runner.run(list(names) or None, force, snippets, build, jobs=1, log=lambda _: 0)
    return json.loads((build / runner.BUILD_RECORD).read_text())


@pytest.fixture(scope="module")
def first_build(tmp_path_factory):
    """The runner's tiny book with a second snippet, run once, and the pages
    that show them: (book, docs folder, the first run's record)."""
    root = tmp_path_factory.mktemp("report")
    book = make_book(root)
    (book[0] / "other.py").write_text(OTHER)
    docs = root / "docs"
    docs.mkdir()
    (docs / "01-intro.md").write_text("# 1. Intro\n\nIt is {{ tiny.value }}.\n")
    (docs / "02-more.md").write_text("# 2. More\n\n![A line](snippets/tiny/line.svg)\n")
    (docs / "notes.md").write_text("# Notes on it\n\n{{ other.answer }}\n")
    (docs / "build-report.md").write_text("# Built\n\n<!-- build-report -->\n")
    return book, docs, run(book)


@pytest.fixture
def built(first_build, tmp_path):
    """A copy of the built book, with its record and pages."""
    (snippets, build), docs, _ = first_build
    shutil.copytree(build.parent, tmp_path / "b")
    return (
        tmp_path / "b" / snippets.name,
        tmp_path / "b" / build.name,
    ), tmp_path / "b" / docs.name


def page(book, docs, seed_offset=0):
    snippets, build = book
    pages = build_report.pages_by_snippet(docs, "docs/build-report.md")
    return build_report.report(build, seed_offset, pages, snippets)


def row(markdown, name):
    (line,) = [
        line for line in markdown.splitlines() if line.startswith(f"| [`{name}`]")
    ]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_runner_records_what_its_invocation_ran(first_build):
    record = first_build[2]
    assert record["ran"] == ["other", "tiny"] and record["reused"] == []
    assert record["jobs"] == 1 and record["seed_offset"] == 0
    assert record["book_budget_seconds"] == runner.BOOK_BUDGET_S
    assert record["machine"]["cores"] >= 1 and record["machine"]["cpu"]
    assert 0 < record["wall_seconds"] < 600


def test_every_snippet_is_listed_with_the_pages_that_show_it(first_build):
    book, docs, _ = first_build
    markdown = page(book, docs)
    tiny, other = row(markdown, "tiny"), row(markdown, "other")
    assert tiny[0] == "[`tiny`](snippets/tiny/tiny.ipynb)"
    assert tiny[1] == "[Chapter 1](01-intro.md), [Chapter 2](02-more.md)"
    assert other[1] == "[Notes on it](notes.md)"
    assert tiny[5] == other[5] == "ran"
    assert tiny[6] == "book, helper" and other[6] == "book"
    recorded = json.loads((book[1] / "tiny" / "run.json").read_text())
    finished = datetime.fromisoformat(recorded["finished"])
    assert tiny[2] == finished.strftime("%Y-%m-%d %H:%M")
    assert tiny[3] == f"{recorded['seconds']:.1f}"
    assert tiny[4] == f"{recorded['kernel_cpu_seconds']:.1f}"
    assert "Build machine" in markdown
    assert "ran 2 of the 2 snippets, restored 0 from the cache" in markdown


def test_an_invocation_that_changes_no_output_leaves_the_record(built):
    """The outputs are still those the record describes, and a site built
    from it stays current."""
    book, _ = built
    before = (book[1] / runner.BUILD_RECORD).read_text()
    assert run(book) == json.loads(before)  # every output already in place
    assert (book[1] / runner.BUILD_RECORD).read_text() == before
    run(book, "tiny", force=True)
    # In place again, but the record's invocation did not take "other".
    assert run(book)["reused"] == ["other", "tiny"]


def test_reused_and_ran_follow_the_last_invocation(built):
    book, docs = built
    for name in ("other", "tiny"):
        shutil.rmtree(book[1] / name)  # restored from the cache
    assert run(book)["reused"] == ["other", "tiny"]
    markdown = page(book, docs)
    assert row(markdown, "tiny")[5] == row(markdown, "other")[5] == "restored"
    assert "ran 0 of the 2 snippets, restored 2 from the cache" in markdown
    run(book, "tiny", force=True)  # other is not part of this invocation
    markdown = page(book, docs)
    assert row(markdown, "tiny")[5] == "ran"
    assert row(markdown, "other")[5] == "restored (an earlier build)"
    assert "took 1 of the 2 snippets" in markdown
    assert "ran 1, restored 0 from the cache" in markdown
    assert runner.is_fresh("tiny", *book), "the record must not change a cache key"


def test_the_slowest_snippet_comes_first(built):
    book, docs = built
    for name, seconds in [("tiny", 1.0), ("other", 70.0)]:
        path = book[1] / name / "run.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"seconds": seconds}))
    markdown = page(book, docs)
    rows = [line for line in markdown.splitlines() if line.startswith("| [`")]
    assert rows[0].startswith("| [`other`]") and rows[1].startswith("| [`tiny`]")
    assert row(markdown, "other")[3] == "**70.0**"  # over the budget for one


def test_the_cold_build_is_the_runs_behind_the_outputs_on_the_build_s_cores(built):
    book, docs = built
    for name, seconds, finished in [("tiny", 1.0, "09:00"), ("other", 70.0, "11:30")]:
        path = book[1] / name / "run.json"
        run_record = json.loads(path.read_text())
        run_record |= {
            "seconds": seconds,
            "finished": f"2026-01-02T{finished}:00+00:00",
        }
        path.write_text(json.dumps(run_record))
    markdown = page(book, docs)
    outputs = "**The runs that made the outputs shown** (2026-01-02 09:00 to "
    assert outputs + "2026-01-02 11:30 UTC): 71 s of snippet time" in markdown
    cores = json.loads((book[1] / runner.BUILD_RECORD).read_text())["machine"]
    cores = cores["available_cores"]
    alone = 71 if cores == 1 else 70  # other and tiny side by side
    on = f"{cores} at a time on {cores} core{'s' if cores > 1 else ''}"
    assert f"{on}, they would take about {alone} s: within the budget" in markdown
    record_path = book[1] / runner.BUILD_RECORD
    record = json.loads(record_path.read_text())
    record["machine"] |= {"cores": 8, "available_cores": 1}
    record_path.write_text(json.dumps(record))
    markdown = page(book, docs)
    assert "8 cores (1 available to the runner)" in markdown
    assert "1 at a time on 1 core, they would take about 71 s: within" in markdown
    assert "(a budget for 2 cores)" in markdown


def test_versions_shared_by_every_snippet_are_said_once(built):
    book, docs = built
    markdown = page(book, docs)
    assert "Every snippet below ran with Python" in markdown
    path = book[1] / "other" / "run.json"
    run_record = json.loads(path.read_text())
    run_record["inputs"]["numpy"] = "0.1"
    path.write_text(json.dumps(run_record))
    markdown = page(book, docs)
    assert "Every snippet below" not in markdown
    assert "NumPy 0.1" in row(markdown, "other")[7]


def test_an_unreadable_record_is_written_again_by_the_next_run(built):
    book, docs = built
    (book[1] / runner.BUILD_RECORD).write_text("{not json")
    record = run(book, "other")
    assert record["snippets"].keys() == {"other"} and record["reused"] == ["other"]
    assert row(page(book, docs), "tiny")[5] == "not recorded"


def test_a_missing_build_record_reads_not_recorded(built):
    book, docs = built
    (book[1] / runner.BUILD_RECORD).unlink()
    markdown = page(book, docs)
    assert "**This build**: not recorded" in markdown
    assert row(markdown, "tiny")[5] == "not recorded"


def test_a_build_with_no_snippet_run_reads_not_recorded(tmp_path):
    book = make_book(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    assert page(book, docs).startswith("*Not recorded: no snippet has been run")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", r"build\.json is not valid JSON"),
        ("[1, 2]", r"build\.json holds no JSON object"),
        ('{"started": "x"}', r"build\.json has no valid 'wall_seconds'"),
        (
            '{"started": "x", "wall_seconds": 1, "machine": {}, "jobs": 1, '
            '"ran": [], "reused": [], "snippets": []}',
            r"build\.json has no valid 'snippets' \(found \[\]\)",
        ),
    ],
)
def test_a_bad_build_record_fails_naming_the_page_and_file(built, text, message):
    book, docs = built
    (book[1] / runner.BUILD_RECORD).write_text(text)
    with pytest.raises(build_report.BuildReportError, match=message):
        page(book, docs)


@pytest.fixture
def hook(built, monkeypatch):
    """The site's hook, rendering the report from the tiny book."""
    import tools.mkdocs_hooks as hooks

    book, docs = built
    monkeypatch.setattr(build_report, "BUILDS", {None: (book[1], 0)})
    monkeypatch.setattr(build_report, "SNIPPETS_DIR", book[0])
    monkeypatch.setattr(hooks, "_results", lambda: {})

    def render(markdown):
        page = SimpleNamespace(file=SimpleNamespace(src_uri="build-report.md"))
        with monkeypatch.context() as patch:
            patch.setattr(build_report, "ROOT", docs.parent)
            return hooks.on_page_markdown(markdown, page, None, None)

    return book, render


def test_the_hook_fills_the_marker(hook):
    book, render = hook
    markdown = render("# Built\n\n<!-- build-report -->\n")
    assert "<!--" not in markdown and row(markdown, "tiny")[1].startswith("[Chapter 1]")


def test_a_bad_build_record_fails_the_build_naming_page_and_file(hook):
    book, render = hook
    (book[1] / runner.BUILD_RECORD).write_text("{not json")
    with pytest.raises(PluginError) as error:
        render("<!-- build-report -->")
    assert str(error.value).startswith("docs/build-report.md: ")
    assert "build.json is not valid JSON" in str(error.value)


def test_an_unknown_build_in_a_marker_fails_naming_it(hook):
    _, render = hook
    with pytest.raises(PluginError, match=r"build-report\.md: unknown build 'nope'"):
        render("<!-- build-report: nope -->")


def test_the_site_page_lists_every_snippet_with_its_pages():
    """The real book: each snippet's row links the chapters that use it."""
    if not SITE_PAGE.exists():
        pytest.fail("site/ is not built: run `make site` first")
    html = SITE_PAGE.read_text(encoding="utf-8")
    html = html[html.index("<tbody>") : html.index("</tbody>")]  # the book's build
    docs = ROOT / "docs"
    for name in runner.snippet_names():
        start = html.index(f'href="../snippets/{name}/{name}/"')
        cells = html[start : html.index("</tr>", start)]
        expected = [
            path.stem
            for path in sorted(docs.glob("*.md"))
            if path.name != "build-report.md"
            and name in referenced_snippets(path.read_text(encoding="utf-8"))
        ]
        assert expected, f"no page shows {name}"
        for stem in expected:
            assert f'href="../{stem}/"' in cells, f"{name}: no link to {stem}"
        assert "<td>restored</td>" in cells or "<td>ran</td>" in cells, name


def test_runs_slowed_by_other_work_are_flagged_with_an_idle_estimate(built):
    book, docs = built
    for name, seconds, cpu in [("tiny", 2.0, 1.0), ("other", 40.0, 9.0)]:
        path = book[1] / name / "run.json"
        run_record = json.loads(path.read_text())
        run_record |= {"seconds": seconds, "kernel_cpu_seconds": cpu}
        path.write_text(json.dumps(run_record))
    markdown = page(book, docs)
    assert (
        "**Measured on a busy machine**: 1 of these runs took over 1.5 times"
        in markdown
    )
    cores = json.loads((book[1] / runner.BUILD_RECORD).read_text())["machine"]
    idle = 12 if cores["available_cores"] == 1 else 10  # (1 + 1) + (9 + 1)
    assert f"would take about {idle} s" in markdown
    path = book[1] / "other" / "run.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"seconds": 10.0}))
    assert "busy machine" not in page(book, docs)
