"""Jupyter kernels forked from a server that has imported the heavy packages.

Every kernel imports the same third-party packages (PyTorch, scikit-learn,
SciPy, ...): about 3.6 s of CPU each time. Where Linux allows it, a server
process imports them once and each kernel is forked from it, with
multiprocessing's "forkserver" start method: a clean process that forks while
it has a single thread (forking a process that has threads can deadlock).

Each snippet still runs in a fresh kernel process, with the kernel's
environment, in its own empty folder: nothing a snippet does reaches the next
one, and a downloaded notebook runs the same. Nothing of the book is imported
in the server (book.py reads the kernel's environment when it is imported).
Elsewhere, or if the server is not as it must be, a kernel starts as usual:
`python -m ipykernel_launcher` in a new process.
"""

from __future__ import annotations

import contextlib
import functools
import json
import multiprocessing
import os
import pathlib
import runpy
import signal
import subprocess
import sys
import uuid
import warnings
from multiprocessing import forkserver

from jupyter_client.manager import AsyncKernelManager, KernelManager
from jupyter_client.provisioning import LocalProvisioner

# Third-party modules only, all of them safe to fork: importing them starts no
# thread (checked at every fork). Not matplotlib.pyplot: it sets up its backend
# when first imported, which the kernel's start must come before.
PRELOAD = (
    "ipykernel.kernelapp",
    "numpy",
    "scipy.ndimage",
    "torch",
    "torch.nn.functional",
    "torch._dynamo",  # torch.optim imports it at the first optimizer step
    "sklearn.datasets",
    "sklearn.model_selection",
    "PIL.Image",
    "skimage.transform",
    "matplotlib",
)
# The backend ipykernel sets in $MPLBACKEND when a kernel starts, before a
# notebook can import matplotlib (which reads it on import).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
# The first kernel waits for the server's imports.
START_TIMEOUT_S = 300


def _set_per_kernel(key: str) -> bool:
    """Variables set for each kernel (its output folder, its seeds): only
    book.py reads them, and it is never preloaded, so the server's need not
    match. Any other may be read on import (ipykernel reads $JPY_PARENT_PID)."""
    return key.startswith("LK_")


def forkserver_available() -> bool:
    """Forking kernels needs the forkserver start method and Linux's /proc
    (to count the server's threads)."""
    return "forkserver" in multiprocessing.get_all_start_methods() and os.path.isdir(
        "/proc/self/task"
    )


class ForkedProcess:
    """A forked kernel with the part of subprocess.Popen that jupyter_client
    uses. The server, not this process, is its parent and reaps it."""

    stdin = stdout = stderr = None

    def __init__(self, process: multiprocessing.Process):
        self._process = process
        self.pid = process.pid

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int | None:
        self._process.join(timeout)
        return self._process.exitcode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkingProvisioner(LocalProvisioner):
    """Launches the standard Python kernel by forking it from the server;
    any other kernel command as LocalProvisioner does."""

    async def launch_kernel(self, cmd: list[str], **kwargs):
        process = _fork_kernel(cmd, kwargs)
        if process is None:
            return await super().launch_kernel(cmd, **kwargs)
        self.process = process
        self.pid = self.pgid = process.pid  # the kernel leads a session of its own
        self.cwd = kwargs.get("cwd") or pathlib.Path.cwd()
        return self.connection_info


class _Forking:
    """Makes a KernelManager fork its kernels where that is possible."""

    async def _async_pre_start_kernel(self, **kw):
        if self.provisioner is None:
            self.kernel_id = self.kernel_id or kw.pop("kernel_id", str(uuid.uuid4()))
            self.provisioner = ForkingProvisioner(
                kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self
            )
        return await super()._async_pre_start_kernel(**kw)


class ForkingKernelManager(_Forking, KernelManager):
    pass


class AsyncForkingKernelManager(_Forking, AsyncKernelManager):
    """The one to give nbclient: it then waits for a kernel's messages without
    blocking, so it notices a kernel that dies (a blocking wait never ends)."""


# In each process that starts kernels: the environment its server was started
# with, and why forking was given up, if it was.
_server_environment: dict[str, str] | None = None
_given_up: str | None = None


def _give_up(reason: str) -> None:
    global _given_up
    _given_up = reason
    warnings.warn(f"kernels start as new processes: {reason}", stacklevel=3)


def _fork_kernel(cmd: list[str], kwargs: dict) -> ForkedProcess | None:
    """The kernel, forked from the server; None where it cannot be."""
    launcher = [sys.executable, "-m", "ipykernel_launcher", "-f"]
    unsupported = set(kwargs) - {"env", "cwd", "extra_arguments", "kernel_id"}
    if (
        _given_up
        or not forkserver_available()
        or cmd[: len(launcher)] != launcher
        or any(kwargs[key] is not None for key in unsupported)
    ):
        return None
    env = dict(kwargs.get("env") or os.environ)
    env["JPY_PARENT_PID"] = str(os.getpid())  # as jupyter_client's launcher sets it
    server_environment = {k: v for k, v in env.items() if not _set_per_kernel(k)}
    server_environment.setdefault("MPLBACKEND", INLINE_BACKEND)
    context = _server_context(server_environment)
    if context is None:
        return None
    cwd = os.fspath(kwargs.get("cwd") or os.getcwd())
    interpreter_path, interpreter_options = _new_interpreter(server_environment)
    ours, theirs = context.Pipe()
    process = context.Process(
        target=_run_kernel,
        args=(
            cmd[len(launcher) - 1 :],
            env,
            server_environment,
            cwd,
            interpreter_path,
            theirs,
        ),
        name="kernel",
        # Stopped, not waited for, if this process exits with it still running.
        daemon=True,
    )
    try:
        process.start()
    except (EOFError, OSError) as error:  # the server died importing
        _give_up(f"the kernel server did not fork: {error!r}")
        return None
    finally:
        theirs.close()
    with ours:
        server = ours.recv() if ours.poll(START_TIMEOUT_S) else None
        # JSON's lists, as the new interpreter's came back
        if server is not None:
            server["options"] = json.loads(json.dumps(server["options"]))
        usable = server == {"threads": 1, "options": interpreter_options}
        with contextlib.suppress(OSError):
            ours.send(usable)
    if usable:
        return ForkedProcess(process)
    process.kill()
    process.join()
    if server is None:
        _give_up(f"a forked kernel did not start within {START_TIMEOUT_S} s")
    elif server["threads"] != 1:
        _give_up(
            f"the kernel server had {server['threads']} threads when it forked"
            " (1 is safe)"
        )
    else:
        _give_up(
            "this interpreter's options would reach forked kernels: "
            f"{server['options']}, where a new kernel has {interpreter_options}"
        )
    return None


def _server_context(environment: dict[str, str]):
    """The forkserver context, its server running with this environment
    (thread counts, hash seed and malloc settings are read at start or import);
    None if it already runs with another."""
    global _server_environment
    if _server_environment is not None and environment != _server_environment:
        differing = sorted(
            key
            for key in environment.keys() | _server_environment.keys()
            if environment.get(key) != _server_environment.get(key)
        )
        _give_up(f"the environment changed since the server started: {differing}")
        return None
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
    # The server inherits this process's environment when it starts (again, if
    # it died); that of the kernels it forks, not this process's.
    with _environment(environment):
        forkserver.ensure_running()
    _server_environment = environment
    return context


@contextlib.contextmanager
def _environment(environment: dict[str, str]):
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environment)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# What a new interpreter has: sys.path less the script's folder, and the
# options (-W, -X, ...) that the server would pass on to kernels if it differed.
NEW_INTERPRETER = (
    "import json, sys; "
    "print(json.dumps([sys.path[1:], list(sys.flags), sys.warnoptions, sys._xoptions]))"
)


def _interpreter_options() -> list:
    return [list(sys.flags), sys.warnoptions, sys._xoptions]


@functools.cache
def _new_interpreter_for(environment: str) -> tuple[list[str], list]:
    out = subprocess.run(
        [sys.executable, "-c", NEW_INTERPRETER],
        env=json.loads(environment),
        capture_output=True,
        text=True,
        check=True,
    )
    path, *options = json.loads(out.stdout)
    return path, options


def _new_interpreter(environment: dict[str, str]) -> tuple[list[str], list]:
    """sys.path and options of a new interpreter with this environment."""
    return _new_interpreter_for(json.dumps(environment, sort_keys=True))


def _run_kernel(arguments, env, server_env, cwd, interpreter_path, channel):
    """In the forked child: become what `python -m ipykernel_launcher
    ARGUMENTS` started in cwd with env is, and run the kernel."""
    os.setsid()  # a session of its own, as jupyter_client's launcher starts it
    # Every thread shows in /proc; Python's are a subset of them.
    threads = len(os.listdir(f"/proc/{os.getppid()}/task"))
    channel.send({"threads": threads, "options": _interpreter_options()})
    if not channel.recv():
        return
    channel.close()
    me = multiprocessing.current_process()
    me.name, me.daemon = "MainProcess", False
    sys.modules.pop("__mp_main__", None)  # multiprocessing's copy of our __main__
    # The kernel's environment, and what the preloaded imports set in the
    # server's (torch sets KMP_INIT_AT_FORK, ...), as if it imported them now.
    imported = {k: v for k, v in os.environ.items() if server_env.get(k) != v}
    unset = server_env.keys() - os.environ.keys()
    env = {k: v for k, v in env.items() if k not in unset} | imported
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.path[:] = [cwd, *interpreter_path]  # as `python -m` starts
    sys.argv[:] = ["-m", *arguments]
    runpy.run_module("ipykernel_launcher", run_name="__main__", alter_sys=True)
