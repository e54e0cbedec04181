import json
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "snippets")]

from tools import runner  # noqa: E402


@pytest.fixture(autouse=True)
def _outputs_in_tmp(tmp_path, monkeypatch):
    """Snippet helpers write figures and results here, not into the repository."""
    monkeypatch.setenv("LK_OUTPUT_DIR", str(tmp_path / "outputs"))


@pytest.fixture(scope="session")
def results():
    """What each snippet recorded; runs snippets whose outputs are stale."""
    runner.run(log=lambda line: None)
    return {
        name: json.loads((runner.BUILD_DIR / name / "results.json").read_text())
        for name in runner.snippet_names()
        if (runner.BUILD_DIR / name / "results.json").exists()
    }


# Browser tests (test_browser.py, test_explorer*.py): Debian's Chromium, driven by
# Playwright, on the built site served from 127.0.0.1. Never `playwright install`.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


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


def pytest_sessionstart(session):
    session.config.lk_started = time.time()


def work_unit(nodeid):
    """What pytest-xdist sends to one worker: a test file, or for
    test_browser.py the tests of one page (they share its visits)."""
    file, _, test = nodeid.partition("::")
    if file.endswith("test_browser.py") and test.endswith("]"):
        params = test[test.index("[") + 1 : -1]  # path, or path-device
        return "page " + params.removesuffix("-desktop").removesuffix("-phone")
    return file


def pytest_xdist_make_scheduler(config, log):
    """`pytest --dist loadfile` (make test): a work unit at a time, so that
    both workers visit pages while module fixtures still run once."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ByWorkUnit(LoadFileScheduling):
        def _split_scope(self, nodeid):
            return work_unit(nodeid)

    return ByWorkUnit(config, log)


def pytest_terminal_summary(terminalreporter, config):
    """Print the weights of the pages test_browser.py visited in this run (in
    this process or in pytest-xdist's workers), and keep them as one table."""
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
