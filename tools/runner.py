"""Execute the book's snippets as notebooks, each once, cached by content hash.

    python -m tools.runner              # every snippet that changed
    python -m tools.runner NAME ...     # only these
    python -m tools.runner --force      # ignore the cache
    python -m tools.runner --replicate  # every seed shifted, into build/replicate/

A snippet is a jupytext "percent" file in snippets/ (it has `# %%` cells); other
.py files there are modules that snippets import. Each snippet runs in a fresh
kernel, in an empty folder, exactly as a reader's downloaded notebook would: the
local modules it imports are written next to it by a first cell, hidden on the
site. On Linux the kernels are forked from a process that has imported the
packages already (tools.warm_kernels), which saves each snippet about 2.5 s. Its
outputs land in build/snippets/NAME/: the executed notebook NAME.ipynb, the
figures it saved, results.json with the numbers it recorded, and run.json
with the cache key and run time. Each run is also kept by its cache key in
build/cache/ (build/replicate/cache/ for the replication build), so switching
branches and back re-runs nothing; make that folder a symlink to share it
between clones or worktrees.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import hashlib
import json
import multiprocessing
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNIPPETS_DIR = ROOT / "snippets"
BUILD_DIR = ROOT / "build" / "snippets"
# The replication build: the same snippets with every seed shifted by
# REPLICATE_SEED_OFFSET (book.setup reads $LK_SEED_OFFSET), kept apart.
REPLICATE_DIR = ROOT / "build" / "replicate" / "snippets"
REPLICATE_SEED_OFFSET = 100
# What runs every snippet, whatever it imports: its packages are in each key.
KERNEL_PACKAGES = ("ipykernel", "nbclient", "nbformat", "jupytext")

# Bump to invalidate every cached run when the way snippets are executed changes.
RUNNER_VERSION = "2"
HIDDEN_CELL_TAG = "book-setup"
SECTION_MARKER = re.compile(r"^\s*# --8<-- \[(start|end):[a-z][-_0-9a-z]*\]\s*$")
CELL_TIMEOUT_S = 600
# The environment of every kernel and of the process they are forked from
# (tools.warm_kernels). One thread each: results are bit-identical only at a
# fixed thread count, and two snippets can then share a 2-core machine.
KERNEL_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
    # glibc returns each freed block over 128 kB to the system and faults it
    # in again at the next mini-batch; kept instead, training runs about a
    # third faster. 32 MiB is the largest mmap threshold glibc accepts.
    "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),
    "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20),
}
# The reader's promise: every snippet runs in seconds on a laptop CPU.
BUDGET_S = 60  # one snippet (30 s on a quiet machine: room for a second build)
BOOK_BUDGET_S = 180  # every snippet of a cold build, wall time on two cores
# In the build folder, for the report: the last invocation that changed an output.
BUILD_RECORD = "build.json"
# Started before the others: later snippets reuse what these save (chapter 4's
# trained runs: live_cnn and chapter 8), and train it themselves if it is not
# there yet.
RUN_FIRST = ("layers_cnn",)


class SnippetError(Exception):
    """A snippet that is unknown, or failed to run."""


@dataclass
class Outcome:
    name: str
    ran: bool
    seconds: float


def run_order(names: list[str]) -> list[str]:
    """names with those in RUN_FIRST moved to the front, the rest in order."""
    return sorted(names, key=lambda name: name not in RUN_FIRST)


def snippet_names(snippets_dir: Path = SNIPPETS_DIR) -> list[str]:
    return sorted(
        path.stem
        for path in snippets_dir.glob("*.py")
        if re.search(r"^# %%", path.read_text(encoding="utf-8"), re.MULTILINE)
    )


@functools.lru_cache(maxsize=256)
def imported_modules(source: str) -> tuple[str, ...]:
    """Every module that source imports absolutely, as written (parsing is the
    slow part of a cache key, and the linter asks for many keys)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return tuple(names)


def _imported_names(source: str) -> tuple[str, ...]:
    """Top-level package of every absolute import in source."""
    return tuple(name.split(".")[0] for name in imported_modules(source))


def local_imports(path: Path, snippets_dir: Path) -> list[Path]:
    """The modules in snippets_dir that path imports, directly or through others."""
    found: dict[str, Path] = {}
    pending = [path]
    while pending:
        for name in _imported_names(pending.pop().read_text(encoding="utf-8")):
            module = snippets_dir / f"{name}.py"
            if module.exists() and module.stem not in found and module != path:
                found[module.stem] = module
                pending.append(module)
    return [found[name] for name in sorted(found)]


def imported_packages(path: Path, snippets_dir: Path) -> list[str]:
    """The installed packages a snippet can load, as "name==version", sorted:
    those it and its local modules import, those the kernel runs on, and
    everything they require. A package added for the site (a MkDocs plugin)
    is not among them, so adding one re-runs no snippet."""
    names = set()
    for source in [path, *local_imports(path, snippets_dir)]:
        names.update(_imported_names(source.read_text(encoding="utf-8")))
    top_level = _distributions_by_module()
    wanted = {dist for name in names for dist in top_level.get(name, ())}
    return list(_requirement_closure(tuple(sorted(wanted | set(KERNEL_PACKAGES)))))


@functools.cache
def _distributions_by_module() -> dict[str, list[str]]:
    return metadata.packages_distributions()


@functools.cache
def _requirement_closure(names: tuple[str, ...]) -> tuple[str, ...]:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found, pending = {}, list(names)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # not installed here: an optional or other-platform one
        found[name] = dist.version
        for line in dist.requires or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return tuple(f"{name}=={found[name]}" for name in sorted(found))


def cache_inputs(path: Path, snippets_dir: Path, seed_offset: int = 0) -> dict:
    """What a run's cache key is made of, in words, for the build report."""
    return {
        "python": platform.python_version(),
        "torch": version("torch"),
        "numpy": version("numpy"),
        "modules": [module.name for module in local_imports(path, snippets_dir)],
        "packages": imported_packages(path, snippets_dir),
        "seed_offset": seed_offset,
    }


def cache_key(
    path: Path, snippets_dir: Path = SNIPPETS_DIR, seed_offset: int = 0
) -> str:
    """Changes when anything the snippet's outputs depend on changes: its
    source, its local modules, Python, and the version of every package it
    can load."""
    digest = hashlib.sha256()
    for part in (
        RUNNER_VERSION,
        f"seed offset {seed_offset}" if seed_offset else "",
        platform.python_version(),
        *imported_packages(path, snippets_dir),
    ):
        digest.update(part.encode())
    for source in [path, *local_imports(path, snippets_dir)]:
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def build_notebook(path: Path, snippets_dir: Path):
    """The snippet as a notebook, standalone: local modules are written by cell 0."""
    import jupytext
    import nbformat

    nb = jupytext.read(path, fmt="py:percent")
    for cell in nb.cells:
        lines = cell.source.splitlines()
        cell.source = "\n".join(
            line for line in lines if not SECTION_MARKER.match(line)
        )
    modules = local_imports(path, snippets_dir)
    if modules:
        writes = "\n".join(
            f"Path({module.name!r}).write_text({module.read_text(encoding='utf-8')!r})"
            for module in modules
        )
        setup = nbformat.v4.new_code_cell(
            "# The book's helper modules, written next to this notebook.\n"
            f"from pathlib import Path\n{writes}\n"
        )
        setup.metadata["tags"] = [HIDDEN_CELL_TAG]
        nb.cells.insert(0, setup)
    for index, cell in enumerate(nb.cells):
        cell.id = f"cell-{index}"  # not random: the same notebook, byte for byte
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def _failing_cell(nb) -> tuple[int, str]:
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return index, cell.source
    return -1, ""


def _where(path: Path, index: int, cell_source: str) -> str:
    line = _source_line(path, cell_source)
    return f"cell {index}" + (f" (line {line} of {path.name})" if line else "")


def _source_line(path: Path, cell_source: str) -> int | None:
    first = next((line for line in cell_source.splitlines() if line.strip()), None)
    if first is None:
        return None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line == first:
            return number
    return None


def execute(
    path: Path,
    out_dir: Path,
    snippets_dir: Path,
    seed_offset: int = 0,
    zygote: str | None = None,
) -> float | None:
    """Run one snippet in a fresh kernel, forked by the zygote at that address
    if one is given (tools.warm_kernels); raise SnippetError naming the cell.
    Returns the kernel's CPU seconds (None where they cannot be read)."""
    import nbformat
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    from tools.warm_kernels import WarmKernelManager

    nb = build_notebook(path, snippets_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    os.environ.update(
        KERNEL_ENV, LK_OUTPUT_DIR=str(out_dir), LK_SEED_OFFSET=str(seed_offset)
    )
    with (
        tempfile.TemporaryDirectory(prefix=f"snippet-{path.stem}-") as workdir,
        tempfile.TemporaryDirectory(prefix="kernel-") as sockets,
    ):
        # IPC sockets rather than TCP ports: private to this machine, no warning.
        # The async manager: with the blocking one, nbclient waits forever on
        # a kernel that died.
        settings = dict(kernel_name="python3", transport="ipc", ip=f"{sockets}/kernel")
        if zygote is None:
            kernel = AsyncKernelManager(**settings)
        else:
            kernel = WarmKernelManager(zygote, **settings)
        running = 0  # the cell being run, to name it if the kernel dies in it

        def started(cell, cell_index):
            nonlocal running
            running = cell_index

        client = NotebookClient(
            nb,
            km=kernel,
            timeout=CELL_TIMEOUT_S,
            allow_errors=False,
            record_timing=False,
            resources={"metadata": {"path": workdir}},
            on_cell_execute=started,
        )
        try:
            client.execute()
        except CellExecutionError as error:
            index, source = _failing_cell(nb)
            raise SnippetError(
                f"snippet {path.stem!r} failed in {_where(path, index, source)}:"
                f"\n{error}"
            ) from None
        except DeadKernelError as error:
            where = _where(path, running, nb.cells[running].source)
            raise SnippetError(
                f"snippet {path.stem!r}: its kernel died in {where} ({error})"
            ) from None
        finally:
            cpu_seconds = _cpu_seconds(kernel)
            if kernel.has_kernel:  # we own it: nbclient stops only kernels it made
                run_sync(kernel.shutdown_kernel)(now=True)
    nbformat.write(nb, out_dir / f"{path.stem}.ipynb")
    return cpu_seconds


def _cpu_seconds(kernel) -> float | None:
    """The kernel's CPU time so far: unlike wall time, it hardly changes when
    other programs share the machine."""
    import psutil

    process = getattr(kernel.provisioner, "process", None)
    try:
        times = psutil.Process(process.pid).cpu_times()
    except (AttributeError, psutil.Error):
        return None
    return times.user + times.system + times.children_user + times.children_system


def _run_one(
    path: Path,
    out_dir: Path,
    snippets_dir: Path,
    key: str,
    seed_offset: int,
    zygote: str | None,
) -> Outcome:
    start = time.perf_counter()
    cpu_seconds = execute(path, out_dir, snippets_dir, seed_offset, zygote)
    seconds = time.perf_counter() - start
    run = {
        "key": key,
        "seconds": round(seconds, 2),
        "kernel_cpu_seconds": cpu_seconds and round(cpu_seconds, 2),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": cache_inputs(path, snippets_dir, seed_offset),
    }
    (out_dir / "run.json").write_text(json.dumps(run, indent=1) + "\n")
    return Outcome(path.stem, True, seconds)


def is_fresh(
    name: str,
    snippets_dir: Path = SNIPPETS_DIR,
    build_dir: Path = BUILD_DIR,
    seed_offset: int = 0,
):
    path = snippets_dir / f"{name}.py"
    return recorded_key(build_dir / name) == cache_key(path, snippets_dir, seed_offset)


def recorded_key(out_dir: Path) -> str | None:
    """The cache key of the run whose outputs are in out_dir, if any."""
    run_file = out_dir / "run.json"
    return json.loads(run_file.read_text())["key"] if run_file.exists() else None


def cache_dir(build_dir: Path) -> Path:
    return build_dir.parent / "cache"


def restore(key: str, out_dir: Path, build_dir: Path) -> bool:
    """Copy a stored run with this cache key into out_dir, if there is one."""
    stored = cache_dir(build_dir) / key
    if not (stored / "run.json").exists():
        return False
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(stored, out_dir)
    return True


def store(key: str, out_dir: Path, build_dir: Path) -> None:
    """Keep a finished run by its cache key (written aside, then renamed, so a
    concurrent build never reads half a run)."""
    stored = cache_dir(build_dir) / key
    partial = stored.with_name(f".{key}.{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(out_dir, partial)
    shutil.rmtree(stored, ignore_errors=True)
    partial.rename(stored)


@contextlib.contextmanager
def _zygote(wanted: bool, log):
    """The address of a zygote to fork kernels from, or None: kernels are
    then started the usual way (off Linux, with LK_COLD_KERNELS=1, or if it
    cannot start)."""
    from tools import warm_kernels

    if not (wanted and warm_kernels.supported()):
        yield None
        return
    with contextlib.ExitStack() as stack:
        started = time.perf_counter()
        try:
            zygote = warm_kernels.Zygote({**os.environ, **KERNEL_ENV})
            address = stack.enter_context(zygote).address
        except (OSError, RuntimeError) as error:
            log(f"  kernels start cold: {error}")
            address = None
        else:  # not in any snippet's time: a reader's kernel does these imports
            seconds = time.perf_counter() - started
            log(f"  kernels forked from a process that imported in {seconds:.1f} s")
        yield address


def wall_seconds(seconds: list[float], jobs: int) -> float:
    """Wall time of running snippets that take these times, in this order,
    with `jobs` at a time, each worker taking the next when free (as the
    pool does)."""
    free_at = [0.0] * max(1, jobs)
    for duration in seconds:
        earliest = free_at.index(min(free_at))
        free_at[earliest] += duration
    return max(free_at)


def run(
    names: list[str] | None = None,
    force: bool = False,
    snippets_dir: Path = SNIPPETS_DIR,
    build_dir: Path = BUILD_DIR,
    jobs: int | None = None,
    log=print,
    seed_offset: int = 0,
) -> list[Outcome]:
    known = snippet_names(snippets_dir)
    unknown = sorted(set(names or []) - set(known))
    if unknown:
        raise SnippetError(
            f"unknown snippet {', '.join(map(repr, unknown))}; "
            f"known snippets: {', '.join(known) or 'none'}"
        )
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    outcomes: list[Outcome] = []
    pending = []
    restored = False
    for name in run_order(names or known):
        path = snippets_dir / f"{name}.py"
        out_dir = build_dir / name
        key = cache_key(path, snippets_dir, seed_offset)
        fresh = recorded_key(out_dir) == key
        if not force and (fresh or restore(key, out_dir, build_dir)):
            restored = restored or not fresh
            seconds = json.loads((out_dir / "run.json").read_text())["seconds"]
            log(f"  cached  {name:<32} (ran in {seconds:.1f} s)")
            outcomes.append(Outcome(name, False, seconds))
        else:
            pending.append((path, out_dir, snippets_dir, key, seed_offset))
    if jobs is not None and jobs < 1:
        raise SnippetError(f"jobs must be at least 1, got {jobs}")
    jobs = jobs or available_cores()
    failures = []
    # Spawned workers, not forked: forking a process that has started threads
    # can deadlock (Python 3.12+ warns; 3.14 stops forking by default).
    with (
        _zygote(bool(pending), log) as zygote,
        ProcessPoolExecutor(
            max_workers=max(1, min(jobs, len(pending) or 1)),
            mp_context=multiprocessing.get_context("spawn"),
        ) as pool,
    ):
        futures = [pool.submit(_run_one, *args, zygote) for args in pending]
        for args, future in zip(pending, futures):
            name = args[0].stem
            try:
                outcome = future.result()
            except SnippetError as error:
                failures.append(str(error))
                log(f"  FAILED  {name}")
                continue
            store(args[3], args[1], build_dir)
            cpu = json.loads((args[1] / "run.json").read_text())["kernel_cpu_seconds"]
            log(
                f"  ran     {name:<32} {outcome.seconds:6.1f} s"
                + (f" ({cpu:.1f} s of CPU)" if cpu else "")
            )
            outcomes.append(outcome)
    if failures:
        raise SnippetError("\n\n".join(failures))
    ran = [o for o in outcomes if o.ran]
    by_name = {o.name: o for o in outcomes}
    in_order = [by_name[name] for name in run_order(sorted(by_name))]  # the pool's
    cold_wall = wall_seconds([o.seconds for o in in_order], jobs)
    log(
        f"{len(outcomes)} snippets: {len(ran)} ran, {len(outcomes) - len(ran)} cached; "
        f"{sum(o.seconds for o in ran):.1f} s of snippet time this run "
        f"({time.perf_counter() - started:.1f} s wall)"
    )
    log(
        f"  a cold build: {sum(o.seconds for o in outcomes):.1f} s of snippet time, "
        f"about {cold_wall:.0f} s wall with {jobs} at a time "
        f"(budget {BOOK_BUDGET_S} s{'' if cold_wall <= BOOK_BUDGET_S else ': OVER'})"
    )
    over = [o for o in outcomes if o.seconds > BUDGET_S]
    for outcome in over:
        log(f"  over the {BUDGET_S} s budget: {outcome.name} ({outcome.seconds:.1f} s)")
    if outcomes and not over:
        log(f"  every snippet within {BUDGET_S} s")
    slowest = sorted(outcomes, key=lambda o: -o.seconds)[:5]
    if slowest:
        log("  slowest: " + ", ".join(f"{o.name} {o.seconds:.1f} s" for o in slowest))
    stamp = started_at.isoformat(timespec="seconds")
    write_build_record(
        build_dir,
        {
            "started": stamp,
            "wall_seconds": round(time.perf_counter() - started, 2),
            "machine": machine(),
            "jobs": jobs,
            "forced": force,
            "seed_offset": seed_offset,
            "ran": sorted(o.name for o in ran),
            "reused": sorted(o.name for o in outcomes if not o.ran),
            "every_snippet": set(known) <= {o.name for o in outcomes},
            "cold_build_wall_seconds": round(cold_wall, 1),
            "budget_seconds": BUDGET_S,
            "book_budget_seconds": BOOK_BUDGET_S,
        },
        {o.name: {"ran": o.ran, "started": stamp} for o in outcomes},
        changed=bool(pending or restored),
    )
    return outcomes


def write_build_record(
    build_dir: Path, record: dict, snippets: dict, changed: bool = True
) -> None:
    """What this invocation did, for the book's build report, and for each
    snippet what the last invocation that took it did (a run of a few
    snippets, as the claim tests make, keeps the others' entries). Where no
    output ran or was restored and the record's invocation took every one of
    these snippets, the record stays: it still describes their outputs, and a
    site built from it stays current.
    Written aside, then renamed: a site build never reads half a record."""
    build_dir.mkdir(parents=True, exist_ok=True)
    try:
        last = json.loads((build_dir / BUILD_RECORD).read_text())
        earlier, took = last["snippets"], {*last["ran"], *last["reused"]}
    except (OSError, ValueError, KeyError, TypeError):
        earlier = None
    if not isinstance(earlier, dict):
        earlier = {}  # none yet, or unreadable: this invocation starts it again
    elif not changed and took >= snippets.keys():
        return
    record["snippets"] = dict(sorted((earlier | snippets).items()))
    partial = build_dir / f".{BUILD_RECORD}.{os.getpid()}"
    partial.write_text(json.dumps(record, indent=1) + "\n")
    partial.replace(build_dir / BUILD_RECORD)


def machine() -> dict:
    """The CPU model and core counts of the machine running the snippets."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            models = re.findall(r"^model name\s*:\s*(.+)$", info.read(), re.MULTILINE)
        cpu = models[0].strip() if models else cpu
    except OSError:  # not Linux
        pass
    return {
        "cpu": cpu or "unknown",
        "cores": os.cpu_count(),
        "available_cores": available_cores(),
        "system": platform.platform(terse=True),
    }


def available_cores() -> int:
    """The cores this process may run on (a container or taskset can limit
    them below the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="snippets to run (default: all)")
    parser.add_argument("--force", action="store_true", help="ignore the cache")
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="snippets run at once, each on one thread (default: every core, "
        f"{available_cores()} here)",
    )
    parser.add_argument(
        "--replicate",
        action="store_true",
        help=f"shift every seed by {REPLICATE_SEED_OFFSET}, into {REPLICATE_DIR}",
    )
    args = parser.parse_args(argv)
    where = {}
    if args.replicate:
        where = {"build_dir": REPLICATE_DIR, "seed_offset": REPLICATE_SEED_OFFSET}
    try:
        run(args.names or None, force=args.force, jobs=args.jobs, **where)
    except SnippetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
