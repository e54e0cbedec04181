"""The contributor's path: edit and source links, licences, CI and pre-commit."""

import os
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tools import mkdocs_hooks, runner

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "site"
REPO = "https://github.com/learned-kernels/learned-kernels"


def built(page):
    path = SITE / page
    if not path.exists():
        pytest.fail("site/ is not built: run `make site` (or `make test`) first")
    return path.read_text(encoding="utf-8")


def load_yaml(path):
    return yaml.safe_load((ROOT / path).read_text().replace("!!python", ""))


def test_a_chapter_links_its_source_and_the_snippets_behind_it():
    page = built("01-why-cnns/index.html")
    assert f'href="{REPO}/edit/main/docs/01-why-cnns.md"' in page
    sources = re.search(r'<p class="book-sources">(.*?)</p>', page, re.DOTALL)
    links = re.findall(r'href="([^"]+)"', sources.group(1))
    assert links == [
        f"{REPO}/blob/main/snippets/{name}.py"
        for name in ("why_cnns_images", "book", "why_cnns_pipeline")
    ]


@pytest.mark.parametrize("name", runner.snippet_names())
def test_a_notebook_page_edits_its_snippet(name):
    page = built(f"snippets/{name}/{name}/index.html")
    assert f'href="{REPO}/edit/main/snippets/{name}.py" title="Edit this page"' in page
    assert f'href="{REPO}/blob/main/snippets/{name}.py"' in page


def test_the_repository_link_fetches_nothing_from_github():
    """Material's repository widget asks the GitHub API for stars; ours does not."""
    page = built("index.html")
    assert f'href="{REPO}"' in page
    assert 'data-md-component="source"' not in page


def test_the_footer_states_both_licences():
    page = built("index.html")
    footer = re.search(r'md-copyright__highlight">(.*?)</div>', page, re.DOTALL)
    assert "CC BY-SA 4.0" in footer.group(1) and "MIT" in footer.group(1)


def test_licences_are_in_the_repository_and_stated_where_contributors_read():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    content = (ROOT / "LICENSE-CONTENT").read_text()
    assert "Attribution-ShareAlike 4.0 International Public License" in content
    for guide in ("README.md", "CONTRIBUTING.md"):
        text = (ROOT / guide).read_text()
        assert "MIT" in text and "CC BY-SA 4.0" in text.replace("\n", " "), guide


def config(**values):
    defaults = {"repo_url": REPO, "edit_uri": "edit/main/docs/"}
    return SimpleNamespace(**(defaults | values))


@pytest.mark.parametrize(
    "settings, action, expected",
    [
        ({}, "blob", f"{REPO}/blob/main/snippets/book.py"),
        ({}, "edit", f"{REPO}/edit/main/snippets/book.py"),
        ({"repo_url": REPO + "/"}, "blob", f"{REPO}/blob/main/snippets/book.py"),
        ({"edit_uri": "blob/dev/docs/"}, "blob", f"{REPO}/blob/dev/snippets/book.py"),
        ({"repo_url": None}, "blob", None),
        ({"edit_uri": ""}, "blob", None),
    ],
)
def test_source_urls_follow_the_configured_branch(settings, action, expected):
    url = mkdocs_hooks.source_url(config(**settings), "snippets/book.py", action)
    assert url == expected


def test_mkdocs_links_to_the_repository_with_the_edit_action():
    settings = load_yaml("mkdocs.yml")
    assert settings["repo_url"] == REPO
    assert settings["edit_uri"] == "edit/main/docs/"
    assert "content.action.edit" in settings["theme"]["features"]
    assert settings["site_url"] == "https://learned-kernels.github.io/learned-kernels/"


def steps(workflow):
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_the_pull_request_workflow_runs_ci_run_with_caches():
    workflow = load_yaml(".github/workflows/checks.yml")
    triggers = workflow[True]  # YAML reads the key `on` as true
    assert "pull_request" in triggers
    runs = [step.get("run", "") for step in steps(workflow)]
    assert "bash .ci/run" in runs  # the steps live in .ci/run and the Makefile
    setup = load_yaml(".github/actions/setup/action.yml")["runs"]["steps"]
    keys = {
        step["with"]["path"]: step["with"]["key"]
        for step in setup
        if "with" in step and "key" in step["with"]
    }
    assert "hashFiles('requirements.txt')" in keys[".venv"]
    assert "snippets/**" in keys["build"] and "requirements.txt" in keys["build"]
    assert any(step.get("run") == "touch .venv/.installed" for step in setup)


def test_the_pages_workflow_publishes_main_after_the_checks():
    workflow = load_yaml(".github/workflows/pages.yml")
    trigger = workflow[True]["workflow_run"]
    assert trigger == {
        "workflows": ["Checks"],
        "types": ["completed"],
        "branches": ["main"],
    }
    assert load_yaml(".github/workflows/checks.yml")["name"] == "Checks"
    all_steps = steps(workflow)
    assert any(step.get("run") == "make site" for step in all_steps)
    uses = [step.get("uses", "") for step in all_steps]
    assert any(u.startswith("actions/upload-pages-artifact") for u in uses)
    assert any(u.startswith("actions/deploy-pages") for u in uses)


def test_the_linter_is_strict_in_ci_only():
    def lint_command(ci):
        env = {k: v for k, v in os.environ.items() if k != "CI"}
        env.update({"CI": ci} if ci else {})
        dry_run = subprocess.run(
            ["make", "-n", "-o", ".venv/.installed", "lint"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return dry_run.stdout

    assert "tools.lint_book --strict" in lint_command("true")
    assert "--strict" not in lint_command(None)
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_pre_commit_hooks_are_local_and_use_the_projects_tools():
    hooks_config = load_yaml(".pre-commit-config.yaml")
    assert [repo["repo"] for repo in hooks_config["repos"]] == ["local"]
    hooks = hooks_config["repos"][0]["hooks"]
    assert {hook["id"] for hook in hooks} == {
        "ruff-check",
        "ruff-format",
        "codespell",
        "book-linter",
    }
    for hook in hooks:
        assert hook["language"] == "system"
        assert hook["entry"].startswith(".venv/bin/"), hook["id"]


def test_issue_and_pull_request_templates_exist():
    templates = ROOT / ".github" / "ISSUE_TEMPLATE"
    for name in ("mistake.md", "chapter.md"):
        front = (templates / name).read_text().split("---")[1]
        assert {"name", "about"} <= set(yaml.safe_load(front)), name
    checklist = (ROOT / ".github" / "pull_request_template.md").read_text()
    assert "make test" in checklist and "- [ ]" in checklist
