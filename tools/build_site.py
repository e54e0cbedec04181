"""`make site`'s last step: `mkdocs build --strict`, unless nothing it reads
has changed since it last succeeded.

    python -m tools.build_site           # build, or say that site/ is current
    python -m tools.build_site --force   # build whatever the record says

What the build reads: the chapters and their assets (docs/), the theme
overrides, the hooks and tools, the snippets' code and outputs (both builds:
the build report shows the replication build too), mkdocs.yml, and the
installed packages (the virtual environment's stamp, rewritten by every
install). Their fingerprint (every file's path, size and modification time)
is kept in build/ after a build that succeeded; a build that fails leaves none.
The runner's record of its last invocation (build.json) is rewritten at every
invocation: it counts by what it says, less when it was written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

from tools.runner import BUILD_RECORD

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "build" / "site-inputs.sha256"
INPUT_DIRS = (
    "docs",
    "overrides",
    "tools",
    "snippets",
    "build/snippets",
    "build/replicate/snippets",
)
INPUT_FILES = ("mkdocs.yml", "requirements.txt", ".venv/.installed")
INVOCATION_TIMES = ("started", "wall_seconds")


def input_paths(root: Path = ROOT) -> list[Path]:
    files = [root / name for name in INPUT_FILES]
    for folder in INPUT_DIRS:
        files += (
            path
            for path in (root / folder).rglob("*")
            if not any(is_left_out(part) for part in path.relative_to(root).parts)
        )
    return sorted(path for path in files if path.is_file())


def is_left_out(name: str) -> bool:
    """Python's and tools' caches (`make lint` leaves snippets/.ruff_cache),
    and hidden files, which MkDocs leaves out too."""
    return name == "__pycache__" or name.startswith(".")


def without_times(value):
    """A build record less the times of the invocation that wrote it."""
    if isinstance(value, dict):
        return {
            key: without_times(item)
            for key, item in value.items()
            if key not in INVOCATION_TIMES
        }
    return value


def fingerprint(root: Path = ROOT) -> str:
    digest = hashlib.sha256()
    for path in input_paths(root):
        name = path.relative_to(root).as_posix()
        if path.name == BUILD_RECORD:
            try:
                said = without_times(json.loads(path.read_text()))
            except ValueError:
                said = path.read_text()  # unreadable: its text, as it is
            line = f"{name}\0{json.dumps(said, sort_keys=True)}\n"
        else:
            stat = path.stat()
            line = f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
        digest.update(line.encode())
    return digest.hexdigest()


def is_current(root: Path = ROOT) -> bool:
    record = root / RECORD.relative_to(ROOT)
    return (
        (root / "site" / "index.html").exists()
        and record.exists()
        and record.read_text() == fingerprint(root)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="build even if current")
    args = parser.parse_args(argv)
    if not args.force and is_current(ROOT):
        print("site/ is current: nothing it is built from changed since its last build")
        return 0
    RECORD.unlink(missing_ok=True)
    before = fingerprint(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict"], cwd=ROOT
    )
    if done.returncode != 0:
        return done.returncode
    RECORD.write_text(before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
