import json
import os
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "snippets")]

# One thread per process, as the runner gives each snippet (before anything
# imports PyTorch): two pytest-xdist workers on two cores, each with a thread
# per core, spend about half their time waiting for each other.
for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

from tools import runner  # noqa: E402


@pytest.fixture(autouse=True)
def _outputs_in_tmp(tmp_path, monkeypatch):
    """Snippet helpers write figures and results here, not into the repository."""
    monkeypatch.setenv("LK_OUTPUT_DIR", str(tmp_path / "outputs"))


def pytest_addoption(parser):
    parser.addoption(
        "--results",
        type=Path,
        default=runner.BUILD_DIR,
        help="the snippets' outputs that claim tests read (default: the main "
        f"build; {runner.REPLICATE_DIR.relative_to(ROOT)}: the replication build)",
    )


def results_dir(config):
    return config.getoption("--results").resolve()


def ledger_name(config):
    """main, replicate, or the folder's name for any other results folder."""
    folder = results_dir(config)
    named = {runner.BUILD_DIR: "main", runner.REPLICATE_DIR: "replicate"}
    return named.get(folder, folder.name)


class Results(Mapping):
    """What each snippet recorded, read when a test first asks for it. For the
    main or the replication build a stale snippet is run first, so a test file
    runs only the snippets it reads; any other folder is read as it is."""

    def __init__(self, folder):
        self.folder = folder
        self.settings = {
            runner.BUILD_DIR: {},
            runner.REPLICATE_DIR: {"seed_offset": runner.REPLICATE_SEED_OFFSET},
        }.get(folder)
        self.loaded = {}
        self.names = runner.snippet_names()

    def __getitem__(self, name):
        if name not in self.loaded:
            if (
                self.settings is not None
                and name in self.names
                and not runner.is_fresh(
                    name,
                    build_dir=self.folder,
                    seed_offset=self.settings.get("seed_offset", 0),
                )
            ):  # a fresh one is read as it is: no run, no new build record
                runner.run(
                    [name],
                    build_dir=self.folder,
                    log=lambda line: None,
                    **self.settings,
                )
            path = self.folder / name / "results.json"
            if not path.exists():
                raise KeyError(f"{name!r} recorded no results in {self.folder}")
            self.loaded[name] = json.loads(path.read_text())
        return self.loaded[name]

    def __iter__(self):
        return iter(self.names)

    def __len__(self):
        return len(self.names)


@pytest.fixture(scope="session")
def results(pytestconfig):
    return Results(results_dir(pytestconfig))


# The claim ledger: a test that takes the `claim` fixture is a claim test (marked
# `claim`, so `pytest -m claim` runs them alone); its rows land in build/claims/.
LEDGER_DIR = ROOT / "build" / "claims"


def pytest_collection_modifyitems(items):
    for item in items:
        if "claim" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.claim)


@pytest.fixture
def claim(request):
    from claims import Claim

    checked = Claim(request.node.nodeid)
    yield checked
    folder = LEDGER_DIR / ledger_name(request.config)
    folder.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.nodeid)
    (folder / f"{slug}.json").write_text(json.dumps(checked.rows, indent=1))
    if not checked.rows and not getattr(request.node, "lk_call_failed", False):
        pytest.fail("a claim test must state its effect with claim.exceeds or .within")


# Browser tests (test_browser.py, test_explorer*.py): Debian's Chromium, driven by
# Playwright, on the built site served from 127.0.0.1. Never `playwright install`.
# Its settings are those `make screenshots` uses.
from tools.screenshots import CHROMIUM, CHROMIUM_ARGS  # noqa: E402


def skip_or_fail(message):
    """Skip where a tool is missing on a contributor's machine; fail in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (required in CI)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def site_server():
    from tools.site_server import SITE, SiteServer

    if not (SITE / "index.html").exists():
        pytest.fail("site/ is not built: run `make site` (or `make test`) first")
    with SiteServer() as server:
        yield server


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        skip_or_fail(
            f"Chromium not found at {CHROMIUM}: install Debian's package "
            "(`sudo apt-get install chromium`) to run the browser tests"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        item.lk_call_failed = True  # the claim fixture then asks for no rows
    return report


def pytest_sessionstart(session):
    session.config.lk_started = time.time()


def work_unit(nodeid):
    """What pytest-xdist sends to one worker: a test file, or for
    test_browser.py the tests of one page (they share its visits)."""
    file, _, test = nodeid.partition("::")
    if file.endswith("test_browser.py") and test.endswith("]"):
        return "page " + test[test.index("[") + 1 : -1]
    return file


def page_bytes(unit_name):
    """The size of a page unit's HTML: its visit's cost grows with it."""
    from tools.site_server import SITE

    path = unit_name.removeprefix("page ")
    html = SITE / path if path.endswith(".html") else SITE / path / "index.html"
    return html.stat().st_size if html.exists() else 0


def pages_last(units, weight=page_bytes):
    """Work units (name, tests) in the order workers take them: test files
    first, those with most tests first, then the pages, many and alike, which
    even out the workers' ends (a long file started last leaves the other
    idle); the heaviest pages first, so that none is left to the end alone."""

    def order(unit):
        name, tests = unit
        if name.startswith("page "):
            return (True, -weight(name))
        return (False, -len(tests))

    return sorted(units, key=order)


def pytest_xdist_make_scheduler(config, log):
    """`pytest --dist loadfile` (make test): a work unit at a time, so that
    both workers visit pages while module fixtures still run once."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ByWorkUnit(LoadFileScheduling):
        def _split_scope(self, nodeid):
            return work_unit(nodeid)

        def schedule(self):
            first = self.collection is None
            super().schedule()  # queues the units, gives each worker its first
            if first and self.workqueue:
                units = pages_last(self.workqueue.items())
                self.workqueue.clear()
                self.workqueue.update(units)

    return ByWorkUnit(config, log)


def write_ledger(terminalreporter, config):
    """Gather the claim rows of this run into build/claims/NAME.json, where
    tools/ledger.py reads them, and say how thin the thinnest margin was."""
    name = ledger_name(config)
    rows = [
        row
        for file in sorted((LEDGER_DIR / name).glob("*.json"))
        if file.stat().st_mtime >= config.lk_started
        for row in json.loads(file.read_text())
    ]
    if not rows:
        return
    (LEDGER_DIR / f"{name}.json").write_text(json.dumps(rows, indent=1) + "\n")
    exceeds = [row for row in rows if row["kind"] == "exceeds"]
    thinnest = min(exceeds, key=lambda row: row["margin"] / row["z"], default=None)
    terminalreporter.write_sep("-", f"claim ledger ({name}, build/claims/{name}.json)")
    terminalreporter.write_line(
        f"{len(rows)} claims checked, {sum(not row['holds'] for row in rows)} failed"
        + (
            f"; thinnest margin {thinnest['margin']:.1f} (needs {thinnest['z']}): "
            f"{thinnest['claim']}"
            if thinnest
            else ""
        )
    )
    terminalreporter.write_line("python -m tools.ledger prints the table")


def pytest_terminal_summary(terminalreporter, config):
    """Print the claim ledger's summary and the weights of the pages
    test_browser.py visited in this run (in this process or in pytest-xdist's
    workers), and keep them as one table."""
    write_ledger(terminalreporter, config)
    weights = sorted(
        (
            json.loads(file.read_text())
            for file in (ROOT / "build" / "page-weights").glob("*.json")
            if file.stat().st_mtime >= config.lk_started
        ),
        key=lambda weight: weight["page"],
    )
    if not weights:
        return
    lines = ["| page | transferred (kB) | requests |", "| --- | ---: | ---: |"]
    for weight in weights:
        page, size, count = weight["page"], weight["bytes"], weight["requests"]
        lines.append(f"| /{page} | {size / 1000:,.0f} | {count} |")
    report = ROOT / "build" / "page-weights.md"
    report.write_text("\n".join(lines) + "\n")
    terminalreporter.write_sep("-", f"page weights ({report.relative_to(ROOT)})")
    terminalreporter.write(report.read_text())
