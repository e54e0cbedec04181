"""The reader's install (tools/install.py): which torch build on which platform,
and when the virtual environment is remade. No test here reaches the network."""

import http.server
import json
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from tools import install

ROOT = Path(__file__).resolve().parent.parent
CPU_TORCH = f"{install.CPU_INDEX}/torch/"


class Probe:
    """A stand-in for install.probe that records the URLs asked."""

    def __init__(self, why_not=None):
        self.why_not = why_not
        self.asked = []

    def __call__(self, url):
        self.asked.append(url)
        return self.why_not


# sys.platform is "linux" on x86-64 and aarch64 alike, and PyTorch's CPU index
# serves both: the machine does not enter the choice (but see the pin's test).
def test_linux_takes_torch_alone_from_the_cpu_index():
    probe = Probe()
    source = install.choose_torch_source("linux", "cpu", probe)
    assert source == install.TorchSource(index=install.CPU_INDEX)
    assert probe.asked == [CPU_TORCH]

    first, rest = install.pip_commands("py", Path("req.txt"), "torch==2.13.0", source)
    assert first == [
        "py",
        *install.PIP_INSTALL,
        "--no-deps",  # torch alone: its dependencies come from the usual index
        "--index-url",
        install.CPU_INDEX,
        "torch==2.13.0",
    ]
    assert rest == ["py", *install.PIP_INSTALL, "-r", "req.txt"]  # no other index


@pytest.mark.parametrize(
    "system, torch",
    [
        ("darwin", "cpu"),  # macOS wheels on PyPI are CPU builds
        ("win32", "cpu"),  # so are Windows wheels
        ("linux", "cuda"),  # the opt-in: PyPI's build, with CUDA
        ("darwin", "cuda"),
        ("win32", "cuda"),
    ],
)
def test_elsewhere_or_with_cuda_torch_comes_with_the_rest(system, torch):
    probe = Probe()
    source = install.choose_torch_source(system, torch, probe)
    assert source == install.TorchSource(index=None)
    assert probe.asked == []  # nothing asked of the network
    commands = install.pip_commands("py", Path("req.txt"), "torch==2.13.0", source)
    assert commands == [["py", *install.PIP_INSTALL, "-r", "req.txt"]]


def test_an_unreachable_cpu_index_falls_back_and_says_what_that_means():
    probe = Probe(why_not="Name or service not known")
    source = install.choose_torch_source("linux", "cpu", probe)
    assert source.index is None
    assert probe.asked == [CPU_TORCH]  # asked once
    assert "Name or service not known" in source.note
    assert "CUDA build of several GB" in source.note
    assert "\n" not in source.note  # one line


def test_an_unknown_torch_build_is_refused_by_name(capsys):
    with pytest.raises(ValueError, match="'gpu'.*cpu, cuda"):
        install.choose_torch_source("linux", "gpu", Probe())
    with pytest.raises(SystemExit) as stop:
        install.main(["--torch", "gpu", "--dry-run"])
    assert stop.value.code == 2
    assert "unknown TORCH='gpu': choose one of cpu, cuda" in capsys.readouterr().err


def test_the_pin_is_read_from_requirements_and_has_no_local_label():
    # A `+cpu` label would match x86-64's CPU wheels but not aarch64's, which
    # PyTorch's CPU index has published without one; the version alone fits both.
    text = (ROOT / "requirements.txt").read_text()
    pin = install.torch_pin(text)
    assert pin.startswith("torch==") and "+" not in pin
    assert f"{pin}\n" in text
    assert install.torch_pin("numpy==2\ntorch == 2.13.0  # CPU\n") == "torch==2.13.0"


@pytest.mark.parametrize(
    "text, found", [("numpy==2\n", 0), ("torch==2.13.0\ntorch==2.12.0\n", 2)]
)
def test_requirements_without_one_torch_pin_are_refused(text, found):
    with pytest.raises(ValueError, match=f"exactly once.*found {found} pins"):
        install.torch_pin(text)


def serve(handler_class):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Index(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.send_response(200 if self.path == "/whl/cpu/torch/" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_probe_on_loopback_answers_and_refusals():
    server = serve(Index)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert install.probe(f"{base}/whl/cpu/torch/") is None
        assert install.probe(f"{base}/elsewhere/") == "HTTP 404"
    finally:
        server.shutdown()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: refused
        port = closed.getsockname()[1]
        assert "refused" in install.probe(f"http://127.0.0.1:{port}/", timeout=1)


# --- When the environment is remade ---------------------------------------


def fake_venv(tmp_path, python="3.11.7", stamp=None):
    venv = tmp_path / ".venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text(f"home = /x/bin\nversion = {python}\n")
    if stamp is not None:
        (venv / ".installed").write_text(stamp)
    return venv


@pytest.fixture
def requirements(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("numpy==2.3.0\ntorch==2.13.0\n")
    os.utime(path, (1_000_000, 1_000_000))  # older than any stamp written now
    return path


def test_a_current_environment_is_kept(tmp_path, requirements):
    venv = fake_venv(tmp_path, stamp=json.dumps({"torch": "cpu"}))
    assert install.why_remake(venv, requirements, "3.11.7", "cpu") is None


def test_an_empty_stamp_from_before_counts_as_the_cpu_default(tmp_path, requirements):
    venv = fake_venv(tmp_path, stamp="")
    assert install.why_remake(venv, requirements, "3.11.7", "cpu") is None
    assert "TORCH=cpu, now TORCH=cuda" in install.why_remake(
        venv, requirements, "3.11.7", "cuda"
    )


@pytest.mark.parametrize(
    "python, torch, newer_requirements, expected",
    [
        ("3.13.0", "cpu", False, "has Python 3.11.7, PYTHON is 3.13.0"),
        ("3.11.9", "cpu", False, "has Python 3.11.7, PYTHON is 3.11.9"),
        ("3.11.7", "cuda", False, "has TORCH=cpu, now TORCH=cuda"),
        ("3.11.7", "cpu", True, "requirements.txt changed"),
    ],
)
def test_a_changed_python_torch_or_requirements_remakes_it(
    tmp_path, requirements, python, torch, newer_requirements, expected
):
    venv = fake_venv(tmp_path, stamp=json.dumps({"torch": "cpu"}))
    if newer_requirements:
        requirements.touch()
        os.utime(venv / ".installed", (1_000_000, 1_000_000))
    assert expected in install.why_remake(venv, requirements, python, torch)


def test_a_missing_or_unfinished_environment_is_made(tmp_path, requirements):
    assert "missing or unfinished" in install.why_remake(
        tmp_path / ".venv", requirements, "3.11.7", "cpu"
    )
    venv = fake_venv(tmp_path)  # pip never finished: no stamp
    assert "missing or unfinished" in install.why_remake(
        venv, requirements, "3.11.7", "cpu"
    )


@pytest.fixture
def ran(tmp_path, monkeypatch):
    """The commands main() runs, run by pretending: `-m venv` leaves a pyvenv.cfg."""
    commands = []

    def run(command):
        commands.append(command)
        if command[1:3] == ["-m", "venv"]:
            fake_venv(tmp_path, python=install.platform.python_version())

    monkeypatch.setattr(install, "run", run)
    monkeypatch.setattr(install.sys, "platform", "linux")
    return commands


def test_main_makes_the_environment_once_then_remakes_it_for_another_python(
    tmp_path, requirements, ran, monkeypatch, capsys
):
    monkeypatch.setattr(install, "probe", Probe())
    venv = tmp_path / ".venv"
    args = ["--venv", str(venv), "--requirements", str(requirements)]

    assert install.main(args) == 0
    assert [command[1:3] for command in ran] == [["-m", "venv"]] + [["-m", "pip"]] * 2
    assert ran[1][-3:] == ["--index-url", install.CPU_INDEX, "torch==2.13.0"]
    stamp = json.loads((venv / ".installed").read_text())
    assert stamp["torch"] == "cpu" and stamp["torch_index"] == install.CPU_INDEX

    ran.clear()
    assert install.main(args) == 0
    assert ran == []  # current: nothing run
    assert capsys.readouterr().out.count("Making .venv") == 1

    (venv / "pyvenv.cfg").write_text("version = 3.10.0\n")
    assert install.main(args) == 0
    assert "has Python 3.10.0" in capsys.readouterr().out
    assert ran[0][1:3] == ["-m", "venv"]


def test_main_says_why_then_that_the_cpu_index_is_unreachable(
    tmp_path, requirements, ran, monkeypatch, capsys
):
    monkeypatch.setattr(install, "probe", Probe(why_not="timed out"))
    venv = tmp_path / ".venv"
    assert install.main(["--venv", str(venv), "--requirements", str(requirements)]) == 0
    assert [command[-2:] for command in ran[1:]] == [["-r", str(requirements)]]
    making, note, *_ = capsys.readouterr().out.splitlines()
    assert making.startswith("Making .venv with Python")
    assert note.startswith("PyTorch's CPU-only index") and "(timed out)" in note


def test_a_dry_run_prints_the_plan_and_changes_nothing(
    tmp_path, requirements, ran, monkeypatch, capsys
):
    monkeypatch.setattr(install, "probe", Probe())
    venv = tmp_path / ".venv"
    args = ["--venv", str(venv), "--requirements", str(requirements), "--dry-run"]
    assert install.main(args) == 0
    assert ran == [] and not venv.exists()
    out = capsys.readouterr().out
    assert "missing or unfinished; a remake would run:" in out
    assert f"--index-url {install.CPU_INDEX} torch==2.13.0" in out


def test_a_linked_environment_is_unlinked_not_emptied(tmp_path):
    shared = tmp_path / "shared-venv"
    (shared / "bin").mkdir(parents=True)
    link = tmp_path / ".venv"
    link.symlink_to(shared)
    install.remove(link)
    assert not link.exists() and (shared / "bin").is_dir()


def test_a_failed_cpu_index_install_names_the_opt_in():
    hint = install.failure_hint(["py", "-m", "pip", "--index-url", "x", "torch"])
    assert "TORCH=cuda" in hint
    assert "TORCH=cuda" not in install.failure_hint(["py", "-m", "pip", "-r", "r"])


# --- The Makefile, the workflow and the README ---------------------------------


def make_dry_run(*variables):
    # Not the variables of a `make test` around this: a sub-make prints more.
    outer = ("TORCH", "PYTHON", "MAKELEVEL", "MAKEFLAGS", "MFLAGS")
    env = {k: v for k, v in os.environ.items() if k not in outer}
    result = subprocess.run(
        ["make", "-n", ".venv/.installed", *variables],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def test_make_asks_tools_install_every_time_with_python_and_torch():
    assert make_dry_run() == 'python3 -m tools.install --torch "cpu"\n'
    assert make_dry_run("PYTHON=python3.13", "TORCH=cuda") == (
        'python3.13 -m tools.install --torch "cuda"\n'
    )


def load_yaml(path):
    return yaml.safe_load((ROOT / path).read_text())


def test_ci_runs_on_python_311_and_313_with_caches_per_version():
    job = load_yaml(".github/workflows/checks.yml")["jobs"]["test"]
    versions = job["strategy"]["matrix"]["python"]
    assert versions == ["3.11", "3.13"]
    setup = [
        step for step in job["steps"] if step.get("uses") == "./.github/actions/setup"
    ]
    assert setup[0]["with"]["python-version"] == "${{ matrix.python }}"

    action = load_yaml(".github/actions/setup/action.yml")
    assert "python-version" in action["inputs"]
    steps = action["runs"]["steps"]
    python = next(step for step in steps if step.get("id") == "python")
    assert python["with"]["python-version"] == "${{ inputs.python-version }}"
    for step in steps:
        if "key" in step.get("with", {}):
            assert "steps.python.outputs.python-version" in step["with"]["key"]


def test_the_readme_names_the_tested_pythons_and_the_cuda_opt_in():
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "Python 3.11 and 3.13" in readme
    assert "make site TORCH=cuda" in readme
    assert install.CPU_INDEX in readme
