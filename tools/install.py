"""The virtual environment, and which PyTorch build goes into it.

    python -m tools.install              # what `make` runs before anything else
    python -m tools.install --torch cuda # PyPI's torch: on Linux, a CUDA build
    python -m tools.install --dry-run    # print the plan, change nothing

.venv is (re)made when it is missing, older than requirements.txt, made with
another Python than the one running this, or with another --torch; otherwise
this returns at once, printing nothing.

Which torch: requirements.txt pins its version (torch==2.13.0), not its build.
PyPI's Linux wheel of torch depends on CUDA packages of several GB, which the
book never uses, so on Linux the default (--torch cpu) installs torch alone
from PyTorch's CPU-only index, then everything else, torch's own dependencies
included, from the usual index (a local version such as 2.13.0+cpu satisfies
the pin). PyPI's macOS and Windows wheels are CPU builds already. When the CPU
index cannot be reached (probed once, with a short timeout and no retries),
torch comes from the usual index like the rest, and one line says so.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
REQUIREMENTS = ROOT / "requirements.txt"
STAMP_NAME = ".installed"  # the Makefile's $(INSTALLED): written last, on success
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_CHOICES = ("cpu", "cuda")
PROBE_TIMEOUT_S = 5
PIP_INSTALL = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
TORCH_PIN = re.compile(r"^\s*(torch\s*==\s*[^\s;#]+)", re.MULTILINE)


class TorchSource(NamedTuple):
    """Where torch comes from: `index` alone (before the rest), or, with None,
    the usual index with everything else. `note` is said to the reader."""

    index: str | None
    note: str | None = None


def probe(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None if `url` answers, else why not: one request, no retries."""
    import urllib.error  # here: most runs of this module never probe
    import urllib.request

    try:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except urllib.error.URLError as error:
        return str(error.reason)
    except OSError as error:  # a timeout while reading the answer
        return str(error) or type(error).__name__


def choose_torch_source(
    system: str, torch: str, probe: Callable[[str], str | None]
) -> TorchSource:
    """The choice itself. `system` is sys.platform ("linux", "darwin", "win32");
    `probe(url)` says why an index is unreachable (None: it is reachable)."""
    if torch not in TORCH_CHOICES:
        raise ValueError(
            f"unknown torch build {torch!r}: choose one of {', '.join(TORCH_CHOICES)}"
        )
    if torch == "cuda" or not system.startswith("linux"):
        return TorchSource(index=None)
    why_not = probe(f"{CPU_INDEX}/torch/")
    if why_not is None:
        return TorchSource(index=CPU_INDEX)
    return TorchSource(
        index=None,
        note=(
            f"PyTorch's CPU-only index {CPU_INDEX} is unreachable ({why_not}): "
            "torch comes from the usual index, which on Linux serves a CUDA "
            "build of several GB unless pip finds a CPU wheel locally "
            "(remove .venv to try the CPU index again)."
        ),
    )


def torch_pin(requirements: str) -> str:
    """The `torch==VERSION` line of a requirements file's text."""
    pins = TORCH_PIN.findall(requirements)
    if len(pins) != 1:
        raise ValueError(
            f"requirements must pin torch exactly once (torch==VERSION), "
            f"found {len(pins)} pins"
        )
    return re.sub(r"\s+", "", pins[0])


def pip_commands(
    python: str, requirements: Path, pin: str, source: TorchSource
) -> list[list[str]]:
    """The pip runs that fill a fresh environment, in order."""
    everything = [python, *PIP_INSTALL, "-r", str(requirements)]
    if source.index is None:
        return [everything]
    # --no-deps: torch alone from that index; its dependencies come with the rest.
    torch_alone = [python, *PIP_INSTALL, "--no-deps", "--index-url", source.index]
    return [[*torch_alone, pin], everything]


def read_stamp(venv: Path) -> dict | None:
    """What the environment was made with; None if it was never completed.
    An empty stamp (the Makefile's before this module) was the CPU default."""
    stamp = venv / STAMP_NAME
    if not stamp.is_file():
        return None
    text = stamp.read_text(encoding="utf-8").strip()
    try:
        recorded = json.loads(text) if text else {}
    except json.JSONDecodeError:
        recorded = {}
    return {"torch": "cpu"} | (recorded if isinstance(recorded, dict) else {})


def venv_python_version(venv: Path) -> str | None:
    """The Python version the environment was made with (its pyvenv.cfg)."""
    config = venv / "pyvenv.cfg"
    if not config.is_file():
        return None
    found = re.search(r"^version\s*=\s*(\S+)", config.read_text(), re.MULTILINE)
    return found.group(1) if found else None


def why_remake(
    venv: Path, requirements: Path, python_version: str, torch: str
) -> str | None:
    """Why the environment must be (re)made; None when it is current."""
    stamp = read_stamp(venv)
    if stamp is None:
        return f"{venv.name} is missing or unfinished"
    if (venv / STAMP_NAME).stat().st_mtime < requirements.stat().st_mtime:
        return f"{requirements.name} changed"
    made_with = venv_python_version(venv)
    if made_with != python_version:
        return f"{venv.name} has Python {made_with or '?'}, PYTHON is {python_version}"
    if stamp["torch"] != torch:
        return f"{venv.name} has TORCH={stamp['torch']}, now TORCH={torch}"
    return None


def run(command: list[str]) -> None:
    print(shlex.join(command), flush=True)
    subprocess.run(command, check=True)


def remove(venv: Path) -> None:
    """Remove the environment, or only the link where .venv links to another."""
    if venv.is_symlink():
        venv.unlink()
    elif venv.exists():
        shutil.rmtree(venv)


def make_venv(venv: Path, requirements: Path, torch: str, source: TorchSource) -> None:
    pin = torch_pin(requirements.read_text(encoding="utf-8"))
    remove(venv)
    run([sys.executable, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    for command in pip_commands(python, requirements, pin, source):
        run(command)
    stamp = {"python": platform.python_version(), "torch": torch}
    stamp["torch_index"] = source.index or "the usual index"
    (venv / STAMP_NAME).write_text(json.dumps(stamp) + "\n", encoding="utf-8")


def failure_hint(command: list[str]) -> str:
    """What to do when a pip run failed (pip has said why, above)."""
    if "--index-url" in command:
        return (
            f"pip could not install torch from {CPU_INDEX} (above): "
            "`make site TORCH=cuda` takes PyPI's torch instead "
            "(on Linux a CUDA build of several GB)."
        )
    return "pip failed (above): the next `make` starts the environment again."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.install", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--torch",
        default="cpu",
        help="cpu (the default; on Linux from PyTorch's CPU-only index) or cuda "
        "(PyPI's torch: on Linux a CUDA build of several GB)",
    )
    parser.add_argument("--venv", type=Path, default=VENV)
    parser.add_argument("--requirements", type=Path, default=REQUIREMENTS)
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan, change nothing"
    )
    args = parser.parse_args(argv)
    if args.torch not in TORCH_CHOICES:
        parser.error(
            f"unknown TORCH={args.torch!r}: choose one of {', '.join(TORCH_CHOICES)}"
        )
    if not args.requirements.is_file():
        parser.error(f"no requirements file at {args.requirements}")
    reason = why_remake(
        args.venv, args.requirements, platform.python_version(), args.torch
    )
    if reason is None and not args.dry_run:
        return 0
    if args.dry_run:
        print(f"{args.venv.name}: {reason or 'current'}; a remake would run:")
    else:
        python = platform.python_version()
        print(f"Making {args.venv.name} with Python {python}: {reason}", flush=True)
    source = choose_torch_source(sys.platform, args.torch, probe)
    if source.note:
        print(source.note, flush=True)
    if args.dry_run:
        pin = torch_pin(args.requirements.read_text(encoding="utf-8"))
        for command in pip_commands("python", args.requirements, pin, source):
            print("  " + shlex.join(command))
        return 0
    try:
        make_venv(args.venv, args.requirements, args.torch, source)
    except subprocess.CalledProcessError as error:
        print(failure_hint(error.cmd), file=sys.stderr)
        return error.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
