"""MkDocs hook: brings the snippets' outputs into the site. It computes nothing.

- The figures and executed notebook of snippet NAME, in build/snippets/NAME/,
  are served as snippets/NAME/FILE; mkdocs-jupyter renders the notebook.
- `{{ NAME.key }}` or `{{ NAME.key:.1% }}` in a page is replaced by the number
  the snippet NAME recorded, formatted with the optional format spec.
- Math from pymdownx.arithmatex is rendered to MathML at build time, so pages
  need no math script or font from anywhere.
- `mkdocs serve` re-runs changed snippets before each rebuild.
- Each page lists the snippets behind it (`book_sources` for the template), and a
  notebook page's edit button edits its snippet, not the generated notebook.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

from latex2mathml.converter import convert as latex_to_mathml
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.lint_book import referenced_snippets  # noqa: E402
from tools.runner import BUILD_DIR, SNIPPETS_DIR, is_fresh, snippet_names  # noqa: E402

FIGURE_SUFFIXES = {".svg", ".png"}
# Any {{ ... }} is a placeholder; one that is not `snippet.key[:spec]` fails.
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
REFERENCE = re.compile(r"\s*(\w+)\.(\w+)(?::(.*?))?\s*", re.DOTALL)
INLINE_MATH = re.compile(r'<span class="arithmatex">\\\((.+?)\\\)</span>', re.DOTALL)
BLOCK_MATH = re.compile(r'<div class="arithmatex">\\\[(.+?)\\\]</div>', re.DOTALL)

_command = "build"


def on_startup(command, dirty):
    global _command
    _command = command


def on_pre_build(config):
    if _command == "serve":
        subprocess.run([sys.executable, "-m", "tools.runner"], cwd=ROOT, check=False)


@event_priority(100)  # before mkdocs-jupyter looks for notebooks among the files
def on_files(files, config):
    names = snippet_names()
    stale = [name for name in names if not is_fresh(name)]
    if stale:
        raise PluginError(
            f"snippet outputs missing or out of date for {', '.join(stale)}: "
            "run `make snippets` (or `make site`) first"
        )
    for name in names:
        for path in sorted((BUILD_DIR / name).iterdir()):
            if path.suffix in FIGURE_SUFFIXES or path.name == f"{name}.ipynb":
                # A real src_dir, not File.generated: mkdocs-jupyter needs one.
                uri = path.relative_to(BUILD_DIR.parent).as_posix()
                files.append(
                    File(
                        uri,
                        str(BUILD_DIR.parent),
                        config.site_dir,
                        config.use_directory_urls,
                    )
                )
    return files


def _results():
    results = {}
    for name in snippet_names():
        path = BUILD_DIR / name / "results.json"
        results[name] = json.loads(path.read_text()) if path.exists() else {}
    return results


def on_page_markdown(markdown, page, config, files):
    results = _results()

    def fill(match):
        reference = REFERENCE.fullmatch(match.group(1))
        if reference is None:
            raise PluginError(
                f"{page.file.src_uri}: malformed placeholder {match.group(0)!r}; "
                "write {{ snippet.key }} or {{ snippet.key:format }}"
            )
        snippet, key, spec = reference.groups()
        where = f"{page.file.src_uri}: {{{{ {snippet}.{key} }}}}"
        if snippet not in results:
            raise PluginError(f"{where} names an unknown snippet {snippet!r}")
        if key not in results[snippet]:
            known = ", ".join(sorted(results[snippet])) or "none"
            raise PluginError(
                f"{where}: snippet {snippet!r} recorded no {key!r} ({known})"
            )
        value = results[snippet][key]
        try:
            return format(value, spec or "")
        except (TypeError, ValueError) as error:
            raise PluginError(
                f"{where}: cannot format {value!r} as {spec!r}: {error}"
            ) from None

    return PLACEHOLDER.sub(fill, markdown)


def _mathml(latex, display):
    return latex_to_mathml(html.unescape(latex.strip()), display=display)


def on_page_content(content, page, config, files):
    content = BLOCK_MATH.sub(lambda m: _mathml(m.group(1), "block"), content)
    return INLINE_MATH.sub(lambda m: _mathml(m.group(1), "inline"), content)


def source_url(config, path, action="blob"):
    """The repository's URL to view ("blob") or edit ("edit") the file at path."""
    match = re.match(r"^(?:edit|blob)/([^/]+)/", config.edit_uri or "")
    if not config.repo_url or not match:
        return None
    return f"{config.repo_url.rstrip('/')}/{action}/{match.group(1)}/{path}"


def on_page_context(context, page, config, nav):
    uri = page.file.src_uri
    if uri.startswith("snippets/") and uri.endswith(".ipynb"):
        names = [Path(uri).stem]
        page.edit_url = source_url(config, f"snippets/{names[0]}.py", "edit")
    else:
        names = referenced_snippets(page.file.content_string)
    paths = [f"snippets/{name}.py" for name in names]
    context["book_sources"] = [
        {"path": path, "url": source_url(config, path)}
        for path in paths
        if (SNIPPETS_DIR.parent / path).exists() and source_url(config, path)
    ]
    return context
