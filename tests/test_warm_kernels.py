"""Kernels forked by the zygote behave as freshly started ones."""

import json
import os
import textwrap
import time

import nbformat
import pytest
from jupyter_core.utils import run_sync

from tests.test_runner import make_book
from tools import runner, warm_kernels

pytestmark = pytest.mark.skipif(
    not warm_kernels.supported(), reason="kernels are forked on Linux only"
)

PROBE = """
# %%
import os, sys
import numpy as np
import matplotlib.pyplot as plt

print(os.path.basename(os.getcwd()), os.environ["LK_SEED_OFFSET"], os.getppid())
print(sys.path)
print(np.random.random())
plt.plot([0, 1])
"""

# Seeds (shifted in the replication build), PyTorch's generators, an optimiser
# step (its first import of torch._dynamo), scikit-learn's split, a figure.
TRAINS = """
# %%
import os
import numpy as np
import torch
from book import load_dataset, record, save_figure, setup
import matplotlib.pyplot as plt

setup()
data = load_dataset("shifted_digits")
net = torch.nn.Linear(24 * 24, 10)
optimizer = torch.optim.Adam(net.parameters())
X, y = data.X_train[:64].flatten(1), data.y_train[:64]
loss = torch.nn.functional.cross_entropy(net(X), y)
loss.backward()
optimizer.step()
record(
    weights=net.weight.flatten()[:20].tolist(),
    draws=np.random.random(3).tolist(),
    parent=os.getppid(),
)
fig, ax = plt.subplots()
ax.plot(net.weight[0].detach())
save_figure(fig, "weights")
"""


def zygote():
    return warm_kernels.Zygote({**os.environ, **runner.KERNEL_ENV})


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
    """The probe's notebook run twice by one zygote, then once started cold;
    and whether the zygote was gone once its `with` ended."""
    snippets = tmp_path_factory.mktemp("warm")
    (snippets / "probe.py").write_text(textwrap.dedent(PROBE))
    out = tmp_path_factory.mktemp("out") / "probe"
    notebooks = []
    with zygote() as warm:
        for seed_offset in (0, 100):
            runner.execute(
                snippets / "probe.py", out, snippets, seed_offset, warm.address
            )
            notebooks.append(nbformat.read(out / "probe.ipynb", as_version=4))
    runner.execute(snippets / "probe.py", out, snippets)
    notebooks.append(nbformat.read(out / "probe.ipynb", as_version=4))
    return notebooks, warm.process


def outputs(notebook):
    cell = notebook["cells"][-1]  # the probe's code
    text = "".join(o.get("text", "") for o in cell["outputs"])
    images = [o for o in cell["outputs"] if "image/png" in o.get("data", {})]
    return text.split("\n"), images


def test_a_forked_kernel_gets_its_own_folder_environment_and_figures(probes):
    notebooks, zygote_process = probes
    cold, cold_images = outputs(notebooks[2])
    assert cold[0].startswith("snippet-probe-") and len(cold_images) == 1
    for notebook, seed_offset in zip(notebooks[:2], ("0", "100")):
        lines, images = outputs(notebook)
        folder, offset, parent = lines[0].split()
        assert folder.startswith("snippet-probe-")  # the runner's, not the zygote's
        assert (offset, parent) == (seed_offset, str(zygote_process.pid))
        assert lines[1] == cold[1], "sys.path differs from a kernel started cold"
        assert len(images) == 1, "the figure is not shown inline"


def test_forked_kernels_seed_numpy_afresh(probes):
    notebooks, _ = probes
    draws = [outputs(notebook)[0][2] for notebook in notebooks]
    assert draws[0] != draws[1], "two kernels repeated the zygote's NumPy state"


def test_the_zygote_is_gone_when_the_runner_is_done_with_it(probes):
    _, zygote_process = probes
    assert zygote_process.poll() is not None


@pytest.mark.parametrize("seed_offset", [0, runner.REPLICATE_SEED_OFFSET])
def test_a_forked_kernel_records_the_numbers_and_figures_of_a_cold_one(
    tmp_path, seed_offset
):
    snippets, _ = make_book(tmp_path)
    (snippets / "trains.py").write_text(textwrap.dedent(TRAINS))
    with zygote() as warm:
        runner.execute(
            snippets / "trains.py",
            tmp_path / "warm",
            snippets,
            seed_offset,
            warm.address,
        )
    runner.execute(snippets / "trains.py", tmp_path / "cold", snippets, seed_offset)
    results = {
        kind: json.loads((tmp_path / kind / "results.json").read_text())
        for kind in ("warm", "cold")
    }
    assert results["warm"].pop("parent") == warm.process.pid  # it was forked
    assert results["cold"].pop("parent") != warm.process.pid
    assert results["warm"] == results["cold"]
    weights = (tmp_path / kind / "weights.svg" for kind in ("warm", "cold"))
    assert next(weights).read_bytes() == next(weights).read_bytes()


def test_kernels_exit_when_their_zygote_does(tmp_path):
    with zygote() as warm:
        kernel = warm_kernels.WarmKernelManager(
            warm.address, kernel_name="python3", transport="ipc", ip=f"{tmp_path}/k"
        )
        run_sync(kernel.start_kernel)()
        forked = warm_kernels.ForkedKernel(kernel.provisioner.pid)
        assert forked.poll() is None
    deadline = time.monotonic() + 30
    while forked.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert forked.poll() == 0, "a kernel outlived its zygote"
    run_sync(kernel.cleanup_resources)()


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


def test_cold_kernels_can_be_asked_for(monkeypatch):
    monkeypatch.setenv("LK_COLD_KERNELS", "1")
    assert not warm_kernels.supported()


def test_a_kernel_whose_zygote_is_gone_starts_cold(tmp_path):
    (tmp_path / "one.py").write_text("# %%\nprint('ran')\n")
    gone = str(tmp_path / "no-zygote-here")
    runner.execute(tmp_path / "one.py", tmp_path / "out", tmp_path, 0, gone)
    assert "ran" in (tmp_path / "out" / "one.ipynb").read_text()


def test_a_forked_kernel_that_is_gone_polls_as_exited():
    kernel = warm_kernels.ForkedKernel(os.getpid())
    assert kernel.poll() is None
    kernel.pid = 2**22 + 1  # above Linux's largest process id
    assert kernel.poll() == 0 and kernel.wait() == 0
    kernel.kill()  # no error for a process already gone
