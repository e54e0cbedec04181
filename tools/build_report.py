"""The build report page: for each snippet, when the outputs the site shows were
made, how long that run took, whether the runner's last invocation ran it or
restored it from the cache, and what its cache key is made of; on what machine,
and what a cold build of the book would take there.

A page holds `<!-- build-report -->` (the book's build) or
`<!-- build-report: replicate -->` (the replication build); the hook replaces
each with Markdown made from the runner's records: build/snippets/build.json
(the last invocation that changed an output) and each snippet's run.json. A
missing record reads "not recorded"; a malformed one fails the build, naming
the file and what is wrong.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

from tools.lint_book import referenced_snippets
from tools.runner import (
    BOOK_BUDGET_S,
    BUDGET_S,
    BUILD_DIR,
    BUILD_RECORD,
    REPLICATE_DIR,
    REPLICATE_SEED_OFFSET,
    SNIPPETS_DIR,
    cache_key,
    snippet_names,
    wall_seconds,
)

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!--\s*build-report(?::\s*(\w+))?\s*-->")
BUILDS = {
    None: (BUILD_DIR, 0),
    "replicate": (REPLICATE_DIR, REPLICATE_SEED_OFFSET),
}
# What build.json must hold, and of which type, for the page to be made.
RECORD_FIELDS = {
    "started": str,
    "wall_seconds": (int, float),
    "machine": dict,
    "jobs": int,
    "ran": list,
    "reused": list,
    "snippets": dict,
}
NOT_RECORDED = "not recorded"
BUDGET_JOBS = 2  # BOOK_BUDGET_S is wall time on two cores
BUSY_RATIO = 1.5  # run time over kernel CPU time: other work shared the cores
# (also the cores assumed where the record does not say how many)
H1 = re.compile(r"^# +(.+?)\s*$", re.MULTILINE)
CHAPTER_PAGE = re.compile(r"^(\d+)-")


class BuildReportError(Exception):
    """A build record that exists but cannot be read."""


def fill(markdown: str, page: str) -> str:
    """markdown with each build-report marker replaced; page (its path in the
    repository) names it in errors."""

    def replace(match):
        which = match.group(1)
        if which not in BUILDS:
            known = ", ".join(w for w in BUILDS if w)
            raise BuildReportError(
                f"{page}: unknown build {which!r} in {match.group(0)!r} "
                f"(write <!-- build-report --> or one of: {known})"
            )
        build_dir, seed_offset = BUILDS[which]
        try:
            pages = pages_by_snippet(ROOT / "docs", page)
            filled = report(build_dir, seed_offset, pages, SNIPPETS_DIR)
        except BuildReportError as error:
            raise BuildReportError(f"{page}: {error}") from None
        # Out of the search index every page loads: its dates and times change at
        # every build. A section, as a report holds none (see NOT_SEARCHED in
        # tools/mkdocs_hooks.py for Material's rule).
        return f'<section markdown="1" data-search-exclude>\n\n{filled}\n\n</section>'

    return MARKER.sub(replace, markdown)


def pages_by_snippet(docs_dir: Path, this_page: str = "") -> dict[str, list]:
    """Snippet name -> [(page path relative to docs_dir, link text)] of the
    pages that show its code, figures or numbers (this page left out)."""
    found: dict[str, list] = {}
    for path in sorted(docs_dir.glob("*.md")):
        relative = path.relative_to(docs_dir).as_posix()
        if relative == this_page.removeprefix("docs/"):
            continue
        text = path.read_text(encoding="utf-8")
        for name in referenced_snippets(text):
            found.setdefault(name, []).append((relative, _page_title(path, text)))
    return found


def _page_title(path: Path, text: str) -> str:
    number = CHAPTER_PAGE.match(path.name)
    if number:
        return f"Chapter {int(number.group(1))}"
    heading = H1.search(text)
    return heading.group(1) if heading else path.stem


def load_record(build_dir: Path) -> dict | None:
    """The last invocation's record, None if there is none."""
    path = build_dir / BUILD_RECORD
    if not path.exists():
        return None
    where = _shown(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BuildReportError(
            f"{where} is not valid JSON ({error}): "
            "run `make snippets` to write it again"
        ) from None
    if not isinstance(record, dict):
        raise BuildReportError(f"{where} holds no JSON object")
    for field, kind in RECORD_FIELDS.items():
        if not isinstance(record.get(field), kind):
            raise BuildReportError(
                f"{where} has no valid {field!r} (found {record.get(field)!r}): "
                "run `make snippets` to write it again"
            )
    return record


def _shown(path: Path) -> str:
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def load_run(out_dir: Path) -> dict | None:
    path = out_dir / "run.json"
    if not path.exists():
        return None
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BuildReportError(f"{_shown(path)} is not valid JSON ({error})") from None
    if not isinstance(run, dict) or not isinstance(run.get("seconds"), (int, float)):
        raise BuildReportError(f"{_shown(path)} has no run time ('seconds')")
    return run


def report(
    build_dir: Path,
    seed_offset: int,
    pages: dict[str, list],
    snippets_dir: Path = SNIPPETS_DIR,
) -> str:
    """The Markdown for one build: its summary, then a table of its snippets."""
    names = snippet_names(snippets_dir)
    runs = {name: load_run(build_dir / name) for name in names}
    record = load_record(build_dir)
    if record is None and not any(runs.values()):
        return (
            f"*Not recorded: no snippet has been run into `{_shown(build_dir)}` "
            "in the tree this site was built from.*\n"
        )
    lines = [*_summary(record, runs), ""]
    inputs = {name: _versions(run.get("inputs")) for name, run in runs.items() if run}
    shared = set(inputs.values())
    if len(shared) == 1 and None not in shared:
        lines += [
            "Every snippet below ran with "
            + next(iter(shared))
            + " (a change to any of them, or to another package it loads, re-runs it).",
            "",
        ]
    versions_column = len(shared) != 1 or None in shared
    header = ["Snippet", "Shown in", "Outputs made (UTC)", "Run time (s)"]
    header += ["Kernel CPU (s)", "This build", "Local modules in its key"]
    header += ["Python · torch · NumPy · seed offset"] if versions_column else []
    lines += ['<div class="book-report" markdown>', ""]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    ranked = sorted(names, key=lambda n: (-(runs[n] or {}).get("seconds", -1), n))
    for name in ranked:
        lines.append(
            "| "
            + " | ".join(
                _row(name, runs[name], record, pages, snippets_dir, seed_offset)
                + ([inputs.get(name) or "not recorded"] if versions_column else [])
            )
            + " |"
        )
    return "\n".join([*lines, "", "</div>"]) + "\n"


def _summary(record: dict | None, runs: dict) -> list[str]:
    done = [run for name, run in sorted(runs.items()) if run]
    seconds = [run["seconds"] for run in done]
    # (run time, kernel CPU time) of the runs that recorded their CPU time
    paired = [
        (run["seconds"], run["kernel_cpu_seconds"])
        for run in done
        if isinstance(run.get("kernel_cpu_seconds"), (int, float))
    ]
    cpu = [used for _, used in paired]
    machine = (record or {}).get("machine", {})
    cores = machine.get("available_cores") or machine.get("cores") or BUDGET_JOBS
    cold = wall_seconds(seconds, cores)
    verdict = (
        f"within the budget of {BOOK_BUDGET_S} s"
        if cold <= BOOK_BUDGET_S
        else f"**over the budget of {BOOK_BUDGET_S} s** by {cold - BOOK_BUDGET_S:.0f} s"
    ) + (f" (a budget for {BUDGET_JOBS} cores)" if cores != BUDGET_JOBS else "")
    finished = sorted(
        d for d in (_date(r.get("finished"), "") for r in done) if d[0].isdigit()
    )
    when = f" ({finished[0]} to {finished[-1]} UTC)" if finished else ""
    lines = []
    if record is None:
        lines.append(
            "- **This build**: not recorded (the runner writes `build.json` "
            "at the end of each run: `make snippets`)."
        )
    else:
        total = machine.get("cores")
        lines += [
            f"- **Build machine**: {machine.get('cpu') or 'CPU not recorded'}, "
            f"{total if total else 'an unrecorded number of'} cores"
            + (
                f" ({cores} available to the runner)"
                if total and cores != total
                else ""
            )
            + (f"; {machine['system']}" if machine.get("system") else "")
            + ".",
            f"- **This build** ({_date(record['started'])}): "
            + _taken(record, len(runs))
            + f" in {record['wall_seconds']:.0f} s.",
        ]
    lines += [
        f"- **The runs that made the outputs shown**{when}: {sum(seconds):.0f} s "
        f"of snippet time, {sum(cpu):.0f} s of kernel CPU time (recorded for "
        f"{len(cpu)} of {len(seconds)}). Run again from scratch, {cores} at a "
        f"time on {cores} core{'s' if cores > 1 else ''}, they would take about "
        f"{cold:.0f} s: {verdict}.",
        f"- **Snippets over the {BUDGET_S} s budget for one**: "
        f"{sum(s > BUDGET_S for s in seconds)} of {len(seconds)}.",
    ]
    # Run time, unlike CPU time, grows with whatever else the machine runs.
    busy = [wall for wall, used in paired if wall > BUSY_RATIO * used + 1]
    if busy:
        idle = wall_seconds([used + 1 for _, used in paired], cores)
        lines.append(
            f"- **Measured on a busy machine**: {len(busy)} of these runs took over "
            f"{BUSY_RATIO:g} times their kernel CPU time, so other work shared the "
            "cores and their run times overstate the snippets. On an idle machine a "
            "run takes about its kernel CPU time and a second; from those, the "
            f"{len(paired)} runs with a CPU time would take about {idle:.0f} s, "
            f"{cores} at a time."
        )
    return lines


def _taken(record: dict, known: int) -> str:
    ran, restored = len(record["ran"]), len(record["reused"])
    if record.get("every_snippet"):
        return f"ran {ran} of the {known} snippets, restored {restored} from the cache,"
    return (
        f"took {ran + restored} of the {known} snippets (the others are as an "
        f"earlier build left them): ran {ran}, restored {restored} from the cache,"
    )


def _row(name, run, record, pages, snippets_dir, seed_offset) -> list[str]:
    shown = ", ".join(f"[{title}]({page})" for page, title in pages.get(name, []))
    link = f"[`{name}`](snippets/{name}/{name}.ipynb)" if not seed_offset else name
    if run is None:
        return [link, shown or "no page", "", "", "", "not run", ""]
    last = (record or {}).get("snippets", {}).get(name)
    if not isinstance(last, dict) or not isinstance(last.get("ran"), bool):
        status = NOT_RECORDED
    else:
        status = "ran" if last["ran"] else "restored"
        if name not in record["ran"] + record["reused"]:
            status += " (an earlier build)"
    key = cache_key(snippets_dir / f"{name}.py", snippets_dir, seed_offset)
    if run.get("key") != key:
        status += " (out of date)"
    cpu = run.get("kernel_cpu_seconds")
    inputs = run.get("inputs") or {}
    modules = inputs.get("modules")
    seconds = f"{run['seconds']:.1f}"
    return [
        link,
        shown or "no page",
        _date(run.get("finished"), ""),
        f"**{seconds}**" if run["seconds"] > BUDGET_S else seconds,
        f"{cpu:.1f}" if isinstance(cpu, (int, float)) else NOT_RECORDED,
        status,
        ", ".join(Path(m).stem for m in modules)
        if modules
        else ("none" if modules == [] else NOT_RECORDED),
    ]


def _versions(inputs) -> str | None:
    if not isinstance(inputs, dict):
        return None
    parts = [inputs.get(k) for k in ("python", "torch", "numpy")]
    if None in parts:
        return None
    python, torch, numpy = parts
    return (
        f"Python {python}, torch {torch} and NumPy {numpy}, seed offset "
        f"{inputs.get('seed_offset', 0)}"
    )


def _date(stamp, zone=" UTC") -> str:
    try:
        return datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M") + zone
    except (TypeError, ValueError):
        return NOT_RECORDED
