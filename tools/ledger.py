"""The claim ledger: every claim test's effect, uncertainty and margin, for the
main build and the replication build side by side.

    python -m tools.ledger            # a Markdown table from build/claims/
    python -m tools.ledger --check    # also exit 1 if a claim fails in either

`make test` writes build/claims/main.json and `make replicate` writes
build/claims/replicate.json (tests/conftest.py). The margin is the effect in
units of its uncertainty (a standard error, tests/claims.py); a claim of an
effect needs at least z, a claim of no clear difference at most z.
"""

import argparse
import json
import sys
from pathlib import Path

LEDGER_DIR = Path(__file__).resolve().parent.parent / "build" / "claims"
BUILDS = ("main", "replicate")


def load(name, ledger_dir=LEDGER_DIR):
    path = ledger_dir / f"{name}.json"
    if not path.exists():
        return {}
    return {(row["test"], row["claim"]): row for row in json.loads(path.read_text())}


def cell(row):
    if row is None:
        return "not run"
    mark = "" if row["holds"] else " **FAILS**"
    return (
        f"{row['effect']:.3g} ± {row['uncertainty']:.2g} ({row['margin']:+.1f}){mark}"
    )


def table(ledger_dir=LEDGER_DIR):
    builds = {name: load(name, ledger_dir) for name in BUILDS}
    keys = sorted(set().union(*builds.values()))
    lines = [
        "| test | claim | needs | main: effect ± se (margin) "
        "| replicate: effect ± se (margin) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key in keys:
        rows = [builds[name].get(key) for name in BUILDS]
        first = next(row for row in rows if row)
        needs = ("≥ " if first["kind"] == "exceeds" else "within ±") + f"{first['z']:g}"
        test = key[0].split("::")[-1]
        lines.append(
            f"| {test} | {key[1]} | {needs} | " + " | ".join(map(cell, rows)) + " |"
        )
    failed = sum(
        not row["holds"] for build in builds.values() for row in build.values()
    )
    return "\n".join(lines), {name: len(rows) for name, rows in builds.items()}, failed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 on a failure")
    args = parser.parse_args(argv)
    text, counts, failed = table()
    if not any(counts.values()):
        print("no ledger yet: run `make test` or `make replicate`", file=sys.stderr)
        return 1
    print(text)
    print(
        "\n"
        + ", ".join(f"{name}: {count} rows" for name, count in counts.items())
        + f"; {failed} failing"
    )
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
