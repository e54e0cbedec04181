"""make site's last step builds the site only when something it reads changed."""

import json
import os
import subprocess

import pytest

from tools import build_site


@pytest.fixture
def book(tmp_path):
    for name in build_site.INPUT_DIRS:
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "docs" / "01-a.md").write_text("# A\n")
    (tmp_path / "mkdocs.yml").write_text("site_name: x\n")
    (tmp_path / "build" / "snippets" / "build.json").write_text(
        json.dumps(
            {"started": "10:00", "ran": [], "snippets": {"a": {"started": "10:00"}}}
        )
    )
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<html></html>")
    return tmp_path


def record(book):
    path = book / build_site.RECORD.relative_to(build_site.ROOT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_site.fingerprint(book))


def test_a_built_site_is_current_until_an_input_changes(book):
    assert not build_site.is_current(book)  # never built
    record(book)
    assert build_site.is_current(book)
    chapter = book / "docs" / "01-a.md"
    os.utime(chapter, ns=(0, chapter.stat().st_mtime_ns + 1))
    assert not build_site.is_current(book)


@pytest.mark.parametrize(
    "change",
    [
        lambda book: (book / "docs" / "02-b.md").write_text("# B\n"),
        lambda book: (book / "docs" / "01-a.md").unlink(),
        lambda book: (book / "snippets" / "x.py").write_text("x = 1\n"),
        lambda book: (book / "build" / "replicate" / "snippets" / "r.json").write_text(
            "{}"
        ),
        lambda book: (book / "mkdocs.yml").write_text("site_name: y\n"),
        lambda book: (book / "site" / "index.html").unlink(),
    ],
    ids=["added", "removed", "snippet", "replication output", "config", "site gone"],
)
def test_any_change_to_what_the_build_reads_makes_it_stale(book, change):
    record(book)
    change(book)
    assert not build_site.is_current(book)


def test_the_runner_s_record_counts_by_what_it_says_not_when(book):
    record(book)
    path = book / "build" / "snippets" / "build.json"
    said = json.loads(path.read_text())
    said["started"] = said["snippets"]["a"]["started"] = "11:00"
    path.write_text(json.dumps(said, indent=1))
    assert build_site.is_current(book)
    said["ran"] = ["a"]
    path.write_text(json.dumps(said))
    assert not build_site.is_current(book)


def test_caches_and_hidden_files_do_not_count(book):
    record(book)
    for cache in ("tools/__pycache__", "snippets/.ruff_cache/0.17.6"):  # make lint's
        (book / cache).mkdir(parents=True)
        (book / cache / "x").write_bytes(b"\0")
    (book / "docs" / ".notes.md").write_text("not built")
    assert build_site.is_current(book)
    (book / "snippets" / "new.py").write_text("# %%\n")
    assert not build_site.is_current(book)


@pytest.mark.parametrize("returncode", [0, 1])
def test_the_fingerprint_is_kept_only_after_a_build_that_succeeded(
    returncode, monkeypatch, tmp_path
):
    monkeypatch.setattr(build_site, "ROOT", tmp_path)
    monkeypatch.setattr(build_site, "RECORD", tmp_path / "build" / "site.sha256")
    (tmp_path / "build").mkdir()
    build_site.RECORD.write_text("an earlier build's")
    calls = []

    def mkdocs(command, cwd):
        calls.append(command[1:])
        return subprocess.CompletedProcess(command, returncode)

    monkeypatch.setattr(build_site.subprocess, "run", mkdocs)
    assert build_site.main(["--force"]) == returncode
    assert calls == [["-m", "mkdocs", "build", "--strict"]]
    assert build_site.RECORD.exists() == (returncode == 0)
