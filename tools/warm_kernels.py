"""Kernels forked from a process that has already imported the book's packages.

Every snippet runs in a fresh kernel, and a fresh kernel spends about 2.5 s
of CPU importing IPython, torch, matplotlib, scikit-learn and scikit-image
before the snippet's first line does anything: with 30 snippets, a fifth of a
cold build. The runner instead starts one `Zygote` (python -m
tools.warm_kernels SOCKET) that imports them once, then forks a kernel per
snippet from it. Each kernel is still a new process, with the environment,
folder and connection file that jupyter_client gave it and freshly seeded
`random` and NumPy generators, as a new interpreter has; only the imports are
already done. Linux only: forking after these imports is not safe on macOS.
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
# What every snippet's kernel imports (book.py's heavy imports and the
# kernel's own); torch._dynamo is loaded by the first optimiser made.
PRELOAD = (
    "ipykernel.kernelapp",
    "matplotlib.pyplot",  # not its inline backend: imported in a kernel, it hooks in
    "numpy",
    "PIL.Image",
    "scipy.ndimage",
    "skimage.transform",
    "sklearn.datasets",
    "sklearn.model_selection",
    "torch",
    "torch._dynamo",
)
KERNEL_MODULE = "ipykernel_launcher"
STARTUP_TIMEOUT_S = 120


def supported() -> bool:
    return sys.platform == "linux"


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
            [sys.executable, "-m", "tools.warm_kernels", self.address],
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
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.folder.cleanup()


def fork_kernel(address: str, argv: list[str], env: dict[str, str], cwd: str) -> int:
    """A kernel forked by the zygote at address, running argv (python -m
    ipykernel_launcher -f FILE) in env and cwd; returns its process id."""
    request = json.dumps({"argv": argv, "env": env, "cwd": cwd}).encode()
    with socket.socket(socket.AF_UNIX) as client:
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
            return 0  # gone; its exit status went to the zygote
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
        if kernel_cmd[1:3] != ["-m", KERNEL_MODULE]:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        cwd = str(kw.get("cwd") or os.getcwd())
        env = dict(kw.get("env") or os.environ)
        try:
            pid = fork_kernel(self.zygote_address, kernel_cmd, env, cwd)
        except OSError as error:  # the zygote is gone: start this one cold
            self.log.warning("kernel zygote unreachable (%s): starting cold", error)
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        provisioner = self.provisioner
        provisioner.process = ForkedKernel(pid)
        provisioner.pid = provisioner.pgid = pid  # its own session, as launched
        provisioner.cwd = cwd
        self._reconcile_connection_info(provisioner.connection_info)


def _start_kernel(request: dict) -> None:
    """In the forked child: become the kernel the request describes."""
    import random

    import numpy as np

    os.setsid()
    with open(os.devnull) as nothing:
        os.dup2(nothing.fileno(), 0)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [KERNEL_MODULE, *request["argv"][3:]]
    del sys.path[0]  # the zygote's folder: ipykernel_launcher removes it too
    # Fresh, as in a new interpreter: forked, they would repeat the zygote's.
    random.seed()
    np.random.seed()  # noqa: NPY002 (the global generator a snippet may use)
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


def serve(address: str) -> None:
    """Import PRELOAD, say "ready", then fork a kernel per request until
    terminated (or until the runner that started it is gone)."""
    import importlib

    # Set as the kernel sets them, before the imports that read them.
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    os.environ["JPY_PARENT_PID"] = str(os.getpid())  # kernels exit when it does
    for name in PRELOAD:
        with contextlib.suppress(ImportError):  # the kernels then import it
            importlib.import_module(name)
    parent = os.getppid()
    server = socket.socket(socket.AF_UNIX)
    server.bind(address)
    server.listen(8)
    print("ready", flush=True)
    # Nobody reads that pipe again: a kernel writing to it would block once it
    # filled. What kernels write outside their notebook goes to stderr.
    os.dup2(2, 1)
    while os.getppid() == parent:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        if not select.select([server], [], [], 0.2)[0]:
            continue
        connection, _ = server.accept()
        with connection:
            request = json.loads(_read_all(connection))
            pid = os.fork()
            if pid == 0:
                server.close()
                connection.close()
                status = 0
                try:
                    _start_kernel(request)
                except SystemExit as done:
                    status = done.code if isinstance(done.code, int) else 1
                except BaseException:
                    traceback.print_exc()
                    status = 1
                os._exit(status)  # never back into the zygote's loop
            connection.sendall(json.dumps({"pid": pid}).encode())


if __name__ == "__main__":
    serve(sys.argv[1])
