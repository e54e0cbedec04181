"""Kernels forked from a server that has imported the heavy packages: each
still runs in its own folder with its own environment, the server forks with
one thread, and kernels stop, interrupt and start as new processes elsewhere."""

import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
import pytest
from jupyter_core.utils import run_sync
from nbclient import NotebookClient

from tools import forked_kernels, runner

pytestmark = pytest.mark.skipif(
    not forked_kernels.forkserver_available(), reason="no forkserver here"
)

# What the kernel sees: where it runs, the variable the runner set for it, its
# parent and that parent's threads, and whether PyTorch came with the fork.
PROBE = """
import json, os, sys
parent = os.getppid()
print(json.dumps({
    "cwd": os.getcwd(),
    "output_dir": os.environ["LK_OUTPUT_DIR"],
    "parent": parent,
    "parent_command": open(f"/proc/{parent}/cmdline").read(),
    "parent_threads": len(os.listdir(f"/proc/{parent}/task")),
    "torch_preloaded": "torch" in sys.modules,
}))
"""


def in_new_process(function, *args):
    """Run function in a spawned process, as the runner runs snippets: the
    kernel server it starts, and what it learns about it, are its own."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        return pool.submit(function, *args).result()


def new_kernel(sockets: str, manager=forked_kernels.ForkingKernelManager):
    return manager(kernel_name="python3", transport="ipc", ip=f"{sockets}/kernel")


def run_probe(folder: Path) -> tuple[dict, str]:
    """The probe, run in a kernel started as the runner starts one, in folder:
    what it printed and the type of the kernel's process."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROBE)])
    with tempfile.TemporaryDirectory() as sockets:
        kernel = new_kernel(sockets, forked_kernels.AsyncForkingKernelManager)
        client = NotebookClient(
            notebook, km=kernel, resources={"metadata": {"path": str(folder)}}
        )
        try:
            client.execute()
            process = type(kernel.provisioner.process).__name__
        finally:
            run_sync(kernel.shutdown_kernel)(now=True)
    return json.loads(notebook.cells[0].outputs[0]["text"]), process


def probe_two_kernels(root: Path) -> list[tuple[dict, str]]:
    found = []
    for name in ("first", "second"):
        (root / name).mkdir()
        os.environ.update(runner.kernel_environment(Path(name)))
        found.append(run_probe(root / name))
    return found


def test_each_kernel_runs_in_its_folder_with_its_environment(tmp_path):
    first, second = in_new_process(probe_two_kernels, tmp_path)
    for (seen, process), name in zip((first, second), ("first", "second")):
        assert process == "ForkedProcess"
        assert seen["cwd"] == str(tmp_path / name)
        assert seen["output_dir"] == name
        assert seen["torch_preloaded"]
        assert "multiprocessing.forkserver" in seen["parent_command"]
        assert seen["parent_threads"] == 1
    assert first[0]["parent"] == second[0]["parent"]  # one server


def interrupt_and_stop(folder: Path) -> dict:
    """Start a kernel, interrupt a cell, stop the kernel politely; start
    another and kill it."""
    os.environ.update(runner.kernel_environment(folder))
    found = {}
    with tempfile.TemporaryDirectory() as sockets:
        kernel = new_kernel(sockets)
        kernel.start_kernel(cwd=str(folder))
        client = kernel.client()
        client.start_channels()
        client.wait_for_ready(timeout=120)
        found["process"] = type(kernel.provisioner.process).__name__
        cell = client.execute(
            "import time\nprint('sleeping', flush=True)\ntime.sleep(300)"
        )
        while client.get_iopub_msg(timeout=60)["content"].get("text") != "sleeping\n":
            pass
        kernel.interrupt_kernel()
        reply = client.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != cell:  # kernel_info replies
            reply = client.get_shell_msg(timeout=60)
        found["interrupted"] = reply["content"].get("ename")
        found["answers after"] = client.execute_interactive("1 + 1", timeout=60)[
            "content"
        ]["status"]
        client.stop_channels()
        process = kernel.provisioner.process
        kernel.shutdown_kernel()
        found["stopped"] = (kernel.is_alive(), process.poll())

        kernel = new_kernel(sockets)
        kernel.start_kernel(cwd=str(folder))
        process = kernel.provisioner.process
        kernel.shutdown_kernel(now=True)
        found["killed"] = (kernel.is_alive(), process.poll())
    return found


def test_a_kernel_can_be_interrupted_and_stopped(tmp_path):
    found = in_new_process(interrupt_and_stop, tmp_path)
    assert found["process"] == "ForkedProcess"
    assert found["interrupted"] == "KeyboardInterrupt"
    assert found["answers after"] == "ok"
    assert found["stopped"] == (False, 0)
    assert found["killed"] == (False, -9)  # SIGKILL


THREAD_AT_IMPORT = """
import threading, time
threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
"""


def probe_warned(root: Path) -> tuple[tuple[dict, str], list[str]]:
    """The probe, run in root/kernel, and the warnings it gave."""
    os.environ.update(runner.kernel_environment(root))
    (root / "kernel").mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = run_probe(root / "kernel")
    return found, [str(w.message) for w in caught]


def probe_with_a_threaded_server(root: Path):
    """The probe, with a module imported in the server that starts a thread."""
    (root / "modules").mkdir()
    (root / "modules" / "starts_a_thread.py").write_text(THREAD_AT_IMPORT)
    os.environ["PYTHONPATH"] = str(root / "modules")
    forked_kernels.PRELOAD = (*forked_kernels.PRELOAD, "starts_a_thread")
    return probe_warned(root)


def test_a_server_with_threads_is_not_forked_from(tmp_path):
    (seen, process), warned = in_new_process(probe_with_a_threaded_server, tmp_path)
    assert process == "Popen"  # started as a new process instead
    assert not seen["torch_preloaded"]
    assert seen["cwd"] == str(tmp_path / "kernel")
    assert any("the kernel server had 2 threads when it forked" in w for w in warned)


def probe_with_a_warning_option(root: Path):
    """The probe, this process run as with `python -W ignore::UserWarning`:
    the server would be, and its kernels with it."""
    sys.warnoptions.append("ignore::UserWarning")
    return probe_warned(root)


def test_interpreter_options_do_not_reach_kernels(tmp_path):
    (seen, process), warned = in_new_process(probe_with_a_warning_option, tmp_path)
    assert process == "Popen"
    assert any(
        "this interpreter's options would reach forked kernels" in w
        and "ignore::UserWarning" in w
        for w in warned
    )


def test_without_a_forkserver_kernels_start_as_new_processes(tmp_path, monkeypatch):
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert not forked_kernels.forkserver_available()
    for name, value in runner.kernel_environment(tmp_path).items():
        monkeypatch.setenv(name, value)
    seen, process = run_probe(tmp_path)
    assert process == "Popen"
    assert not seen["torch_preloaded"]
    assert seen["cwd"] == str(tmp_path)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="warns from Python 3.12")
def test_forking_never_warns_that_it_may_deadlock(tmp_path):
    """Python 3.12+ warns when a process with threads forks: the runner, with
    its threads, never forks; the server it starts forks with one thread."""
    script = (
        "import sys; from pathlib import Path\n"
        f"sys.path.insert(0, {str(runner.ROOT)!r})\n"
        "from test_forked_kernels import probe_two_kernels\n"
        "if __name__ == '__main__':\n"
        f"    print(probe_two_kernels(Path({str(tmp_path)!r}))[1][1])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parent,
        # Shown, in every process (an option, -W, would stop the forking).
        env=dict(os.environ, PYTHONWARNINGS="always::DeprecationWarning"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ForkedProcess"
    assert "use of fork() may lead to deadlocks" not in done.stderr
