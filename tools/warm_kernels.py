"""Kernels forked from a process that has already imported the book's packages.

Every snippet runs in a fresh kernel, and its first cells spend about 2.5 s of
CPU importing IPython, torch, matplotlib, scikit-learn and scikit-image (a
fifth of the 30 snippets' summed run time). The runner instead starts one
`Zygote` (python -m tools.warm_kernels SOCKET RUNNER_PID) that imports them
once, in an empty folder, then forks a kernel per snippet from it. Each kernel
is a new process with the environment, folder and connection file that
jupyter_client gave it, and NumPy's global generator seeded afresh, as in a
new interpreter (Python reseeds `random` after a fork itself). What differs
from a kernel started cold: the imports are done, so an environment variable
a snippet sets before importing a package no longer reaches it, and warnings
raised while importing are not in the notebook; `ps` shows kernels under the
zygote's command line. Set LK_COLD_KERNELS=1 to start every kernel cold.
Linux only: forking after these imports is not safe on macOS.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager

ROOT = Path(__file__).resolve().parent.parent
# Imported by every kernel besides what book.py imports: the kernel itself,
# and torch._dynamo, which the first optimiser made loads. Not matplotlib's
# inline backend: imported in a kernel, it hooks into that kernel.
KERNEL_IMPORTS = ("ipykernel.kernelapp", "torch._dynamo")
KERNEL_MODULE = "ipykernel_launcher"
STARTUP_TIMEOUT_S = 120
REPLY_TIMEOUT_S = 30  # a fork takes milliseconds: longer means the zygote is stuck


def supported() -> bool:
    return sys.platform == "linux" and os.environ.get("LK_COLD_KERNELS") != "1"


class Zygote:
    """The process kernels are forked from, while the `with` lasts; its
    address is all that a kernel manager in another process needs."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.folder = tempfile.TemporaryDirectory(prefix="zygote-")
        self.address = str(Path(self.folder.name) / "socket")
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Zygote:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tools.warm_kernels",
                self.address,
                str(os.getpid()),
            ],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )
        ready, _, _ = select.select([self.process.stdout], [], [], STARTUP_TIMEOUT_S)
        line = self.process.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            self.__exit__()
            raise RuntimeError(f"the kernel zygote did not start ({line!r})")
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process.stdout.close()
        self.folder.cleanup()


def fork_kernel(address: str, args: list[str], env: dict[str, str], cwd: str) -> int:
    """A kernel forked by the zygote at address, as `python -m
    ipykernel_launcher ARGS` would start it in env and cwd; returns its
    process id. OSError or ValueError if the zygote did not answer."""
    request = json.dumps({"args": args, "env": env, "cwd": cwd}).encode()
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(REPLY_TIMEOUT_S)
        client.connect(address)
        client.sendall(request)
        client.shutdown(socket.SHUT_WR)
        return json.loads(_read_all(client))["pid"]


def _read_all(peer: socket.socket) -> bytes:
    return b"".join(iter(lambda: peer.recv(65536), b""))


class ForkedKernel:
    """What jupyter_client's LocalProvisioner needs of a Popen, for a kernel
    that the zygote, not this process, started (and reaps)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid

    def poll(self) -> int | None:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return 0  # gone; only the zygote, its parent, learns its status
        return None

    def wait(self, timeout=None) -> int | None:
        return self.poll()  # LocalProvisioner polls until it is gone first

    def send_signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class WarmKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels the zygote forks: `_async_launch_kernel`
    is jupyter_client's hook for launching kernels differently."""

    def __init__(self, zygote_address: str, **kwargs):
        super().__init__(**kwargs)
        self.zygote_address = zygote_address

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        # Only the kernel the zygote's own Python would start (python [-X...]
        # -m ipykernel_launcher ...): another interpreter's must start cold.
        if kernel_cmd[0] != sys.executable or KERNEL_MODULE not in kernel_cmd:
            self.log.warning("kernel %s is not the zygote's: starting cold", kernel_cmd)
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        args = kernel_cmd[kernel_cmd.index(KERNEL_MODULE) + 1 :]
        cwd = str(kw.get("cwd") or os.getcwd())
        env = dict(kw.get("env") or os.environ)
        try:
            pid = fork_kernel(self.zygote_address, args, env, cwd)
        except (OSError, ValueError) as error:
            self.log.warning("kernel zygote unreachable (%s): starting cold", error)
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        provisioner = self.provisioner
        provisioner.process = ForkedKernel(pid)
        provisioner.pid = provisioner.pgid = pid  # its own session, as launched
        provisioner.cwd = cwd
        self._reconcile_connection_info(provisioner.connection_info)


def _start_kernel(request: dict) -> None:
    """In the forked child: become the kernel the request describes."""
    import numpy as np

    os.setsid()
    with open(os.devnull) as nothing:
        os.dup2(nothing.fileno(), 0)
    os.chdir(request["cwd"])
    os.environ.clear()
    # jupyter_client's launcher, bypassed here, sets the parent to watch.
    os.environ.update(request["env"], JPY_PARENT_PID=str(os.getppid()))
    sys.argv = [KERNEL_MODULE, *request["args"]]
    if sys.path and Path(sys.path[0]) == ROOT:  # as ipykernel_launcher does
        del sys.path[0]
    for name in [name for name in sys.modules if name.split(".")[0] == "tools"]:
        del sys.modules[name]  # the zygote's own: a snippet may have a `tools`
    # Forked, NumPy's global generator would repeat the zygote's state.
    np.random.seed()  # noqa: NPY002 (the global generator a snippet may use)
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


def preloaded() -> tuple[str, ...]:
    """What the zygote imports: every module the book's helper module imports
    (each snippet's first cells import it), then KERNEL_IMPORTS."""
    from tools.runner import SNIPPETS_DIR, imported_modules

    book = (SNIPPETS_DIR / "book.py").read_text(encoding="utf-8")
    return (*imported_modules(book), *KERNEL_IMPORTS)


def serve(address: str, runner_pid: int) -> None:
    """Import preloaded(), say "ready", then fork a kernel per request until
    terminated or until the runner (runner_pid) is gone."""
    import importlib

    os.chdir(Path(address).parent)  # as empty as a kernel's folder, but the socket
    # Set as the kernel sets them, before the imports that read them: kernels
    # exit when their parent, the zygote, does.
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    os.environ["JPY_PARENT_PID"] = str(os.getpid())
    for name in preloaded():
        with contextlib.suppress(ImportError):  # the kernels then import it
            importlib.import_module(name)
    server = socket.socket(socket.AF_UNIX)
    server.bind(address)
    server.listen(8)
    print("ready", flush=True)
    # Nobody reads that pipe again: a kernel writing to it would block once it
    # filled. What kernels write outside their notebook goes to stderr.
    os.dup2(2, 1)
    while os.getppid() == runner_pid:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        if select.select([server], [], [], 0.2)[0]:
            try:
                _fork_one(server)
            except Exception:  # one bad request must not end every kernel
                traceback.print_exc()


def _fork_one(server: socket.socket) -> None:
    connection, _ = server.accept()
    with connection:
        connection.settimeout(REPLY_TIMEOUT_S)
        request = json.loads(_read_all(connection))
        pid = os.fork()
        if pid == 0:
            server.close()
            connection.close()
            status = 0
            try:
                _start_kernel(request)
            except SystemExit as done:
                status = (
                    done.code if isinstance(done.code, int) else int(bool(done.code))
                )
            except BaseException:
                traceback.print_exc()
                status = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)  # never back into the zygote's loop
        connection.sendall(json.dumps({"pid": pid}).encode())


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
