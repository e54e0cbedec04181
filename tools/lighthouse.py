"""Lighthouse on every page of the built site (`make lighthouse`).

    python -m tools.lighthouse [--runs 3] [--site DIR] [PAGE ...]

Serves site/ (or DIR, another build) on 127.0.0.1 (tools.site_server), runs
Lighthouse from node_modules (`npm ci` installs it) in Debian's Chromium
(CHROME_PATH) with its default mobile profile, several times per page, and
prints the median score of each category, with the median largest contentful
paint and total blocking time. Exits 1 when a page misses a target: 100 for
accessibility, best practices and SEO; for performance (the noisiest score,
hence the median) 95 on the landing page and the chapters, 90 elsewhere.
Scores move with the machine's load (printed): compare runs made at similar
loads.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.site_server import ROOT, SITE, SiteServer, site_pages

LIGHTHOUSE = ROOT / "node_modules" / ".bin" / "lighthouse"
CHROMIUM = "/usr/bin/chromium"
CHROME_FLAGS = (
    "--headless=new --no-sandbox --disable-gpu "
    "--disable-background-networking --disable-component-update"
)
TARGETS = {
    "performance": 90,
    "accessibility": 100,
    "best-practices": 100,
    "seo": 100,
}
CHAPTER = re.compile(r"^\d\d-[-a-z0-9]+/$")
MAIN_PAGE_PERFORMANCE = 95  # the landing page and the chapters


def targets(page: str) -> dict:
    """The scores a page must reach; page is "" (the landing page) or a path."""
    if page == "" or CHAPTER.match(page):
        return {**TARGETS, "performance": MAIN_PAGE_PERFORMANCE}
    return TARGETS


def run_lighthouse(url: str, report: Path) -> dict:
    """One Lighthouse run: category -> score (0 to 100), and failed audits."""
    command = [
        str(LIGHTHOUSE),
        url,
        "--quiet",
        "--output=json",
        f"--output-path={report}",
        f"--chrome-flags={CHROME_FLAGS}",
        f"--only-categories={','.join(TARGETS)}",
    ]
    env = {**os.environ, "CHROME_PATH": os.environ.get("CHROME_PATH", CHROMIUM)}
    subprocess.run(command, check=True, env=env, timeout=300)
    result = json.loads(report.read_text())
    scores = {
        name: round(100 * (category["score"] or 0))
        for name, category in result["categories"].items()
    }
    failed = {
        name: sorted(
            ref["id"]
            for ref in category["auditRefs"]
            if ref["weight"] > 0 and (result["audits"][ref["id"]]["score"] or 0) < 1
        )
        for name, category in result["categories"].items()
    }
    metrics = result["audits"]["metrics"]["details"]["items"][0]
    weight = result["audits"]["total-byte-weight"]["numericValue"]
    return {
        "scores": scores,
        "failed": failed,
        "metrics": metrics,
        "bytes": weight,
        "benchmark": result["environment"]["benchmarkIndex"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", help='e.g. "" or "01-why-cnns/"')
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--site", type=Path, default=SITE, help="the built site to serve (site/)"
    )
    args = parser.parse_args(argv)
    if not LIGHTHOUSE.exists():
        print("Lighthouse is not installed: install Node.js and npm, then `npm ci`")
        return 1
    pages = args.pages or site_pages(args.site)
    rows, misses, benchmarks = [], [], []
    out = ROOT / "build" / "lighthouse"
    out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    with SiteServer(args.site) as server, tempfile.TemporaryDirectory() as tmp:
        for page in pages:
            runs = []
            for number in range(args.runs):
                report = Path(tmp) / f"run{number}.json"
                runs.append(run_lighthouse(server.url + page, report))
                print(f"  /{page} run {number + 1}: {runs[-1]['scores']}", flush=True)
                benchmarks.append(runs[-1]["benchmark"])
            median = {
                name: statistics.median(run["scores"][name] for run in runs)
                for name in TARGETS
            }
            kilobytes = statistics.median(run["bytes"] for run in runs) / 1000
            lcp, tbt = (
                statistics.median(run["metrics"][metric] for run in runs)
                for metric in ("largestContentfulPaint", "totalBlockingTime")
            )
            rows.append((page, median, kilobytes, lcp / 1000, tbt))
            name = page.strip("/").replace("/", "_") or "index"
            (out / f"{name}.json").write_text(json.dumps(runs, indent=1))
            for category, target in targets(page).items():
                if median[category] < target:
                    audits = sorted(
                        {a for run in runs for a in run["failed"][category]}
                    )
                    misses.append(
                        f"/{page}: {category} {median[category]:g} < {target} "
                        f"(audits below full marks: {', '.join(audits) or 'none'})"
                    )
    header = ["page", *TARGETS, "kB", "LCP s", "TBT ms"]
    table = [" | ".join(header), " | ".join("---" for _ in header)]
    for page, median, kilobytes, lcp, tbt in rows:
        cells = [f"/{page}", *(f"{median[c]:g}" for c in TARGETS)]
        cells += [f"{kilobytes:,.0f}", f"{lcp:.1f}", f"{tbt:,.0f}"]
        table.append(" | ".join(cells))
    text = "\n".join(f"| {line} |" for line in table)
    loads = f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    # Lighthouse slows the CPU 4 times whatever its speed: its own measure of
    # this machine (higher is faster) says what the scores were taken on.
    speed = f"Lighthouse's benchmark index {statistics.median(benchmarks):.0f}"
    print(
        f"\nLighthouse, mobile, median of {args.runs} runs per page ({loads}; {speed}):"
    )
    print(text)
    (out / "scores.md").write_text(text + "\n")
    for miss in misses:
        print(f"below target: {miss}")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
