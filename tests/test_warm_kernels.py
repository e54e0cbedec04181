"""Kernels forked by the zygote behave as freshly started ones."""

import os
import textwrap

import nbformat
import pytest

from tests.test_runner import make_book
from tools import runner, warm_kernels

pytestmark = pytest.mark.skipif(
    not warm_kernels.supported(), reason="kernels are forked on Linux only"
)

PROBE = """
# %%
import os, random, sys
import numpy as np
import matplotlib.pyplot as plt

print(os.path.basename(os.getcwd()), os.environ["LK_SEED_OFFSET"], os.getppid())
print(sys.path)
print(random.random(), np.random.random())
plt.plot([0, 1])
"""


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
    """The probe's notebook run twice by one zygote, then once started cold."""
    snippets = tmp_path_factory.mktemp("warm")
    (snippets / "probe.py").write_text(textwrap.dedent(PROBE))
    out = snippets.parent / "out"
    notebooks = []
    env = {**os.environ, **runner.KERNEL_ENV}
    with warm_kernels.Zygote(env) as zygote:
        for seed_offset in (0, 100):
            runner.execute(
                snippets / "probe.py", out, snippets, seed_offset, zygote.address
            )
            notebooks.append(nbformat.read(out / "probe.ipynb", as_version=4))
        zygote_pid = zygote.process.pid
    runner.execute(snippets / "probe.py", out, snippets)
    notebooks.append(nbformat.read(out / "probe.ipynb", as_version=4))
    return notebooks, zygote_pid


def outputs(notebook):
    cell = notebook["cells"][-1]  # the probe's code
    text = "".join(o.get("text", "") for o in cell["outputs"])
    images = [o for o in cell["outputs"] if "image/png" in o.get("data", {})]
    return text.split("\n"), images


def test_a_forked_kernel_gets_its_own_folder_environment_and_figures(probes):
    notebooks, zygote_pid = probes
    cold, cold_images = outputs(notebooks[2])
    assert cold[0].startswith("snippet-probe-") and len(cold_images) == 1
    for notebook, seed_offset in zip(notebooks[:2], ("0", "100")):
        lines, images = outputs(notebook)
        folder, offset, parent = lines[0].split()
        assert folder.startswith("snippet-probe-")  # the runner's, not the zygote's
        assert (offset, parent) == (seed_offset, str(zygote_pid))
        assert lines[1] == cold[1], "sys.path differs from a kernel started cold"
        assert len(images) == 1, "the figure is not shown inline"


def test_forked_kernels_seed_random_and_numpy_afresh(probes):
    notebooks, _ = probes
    draws = [outputs(notebook)[0][2] for notebook in notebooks]
    assert len(set(draws)) == 3, "two kernels repeated the zygote's random state"


def test_the_runner_falls_back_to_cold_kernels_if_the_zygote_cannot_start(
    tmp_path, monkeypatch
):
    def broken(*args):
        raise RuntimeError("no zygote today")

    monkeypatch.setattr(warm_kernels.Zygote, "__enter__", broken)
    (tmp_path / "one.py").write_text("# %%\nprint('ran')\n")
    lines = []
    runner.run(None, True, tmp_path, tmp_path / "build", jobs=1, log=lines.append)
    assert "  kernels start cold: no zygote today" in lines
    assert "ran" in (tmp_path / "build" / "one" / "one.ipynb").read_text()


def test_a_forked_kernel_that_is_gone_polls_as_exited():
    kernel = warm_kernels.ForkedKernel(os.getpid())
    assert kernel.poll() is None
    kernel.pid = 2**22 + 1  # above Linux's largest process id
    assert kernel.poll() == 0 and kernel.wait() == 0
    kernel.kill()  # no error for a process already gone


def test_a_kernel_whose_zygote_is_gone_starts_cold(tmp_path):
    (tmp_path / "one.py").write_text("# %%\nprint('ran')\n")
    gone = str(tmp_path / "no-zygote-here")
    runner.execute(tmp_path / "one.py", tmp_path / "out", tmp_path, 0, gone)
    assert "ran" in (tmp_path / "out" / "one.ipynb").read_text()


def test_a_forked_kernel_records_the_numbers_and_figures_of_a_cold_one(tmp_path):
    """The runner tests' snippet (a helper module, book.setup, a figure)."""
    snippets, _ = make_book(tmp_path)
    tiny = snippets / "tiny.py"
    with warm_kernels.Zygote({**os.environ, **runner.KERNEL_ENV}) as zygote:
        runner.execute(tiny, tmp_path / "warm", snippets, 0, zygote.address)
    runner.execute(tiny, tmp_path / "cold", snippets)
    for name in "results.json", "line.svg", "tiny.ipynb":
        warm, cold = (tmp_path / kind / name for kind in ("warm", "cold"))
        assert warm.read_bytes() == cold.read_bytes(), name
