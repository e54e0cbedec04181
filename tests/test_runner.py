"""The snippet runner: caching, failures, determinism, standalone notebooks."""

import json
import platform
import shutil
import textwrap
from importlib.metadata import version

import nbformat
import pytest
from nbclient import NotebookClient

from tools import runner

HELPER = """
def answer():
    return 42
"""

SNIPPET = """
# %% [markdown]
# # A tiny snippet

# %%
import matplotlib.pyplot as plt
from helper import answer
from book import record, save_figure, setup

setup()
# --8<-- [start:main]
value = answer()
# --8<-- [end:main]
record(value=value)
fig, ax = plt.subplots()
ax.plot([0, 1], [0, value])
save_figure(fig, "line")
"""


def make_book(root):
    """A book with one helper module and one snippet, to be built into root/build
    (its runs kept in root/cache)."""
    snippets = root / "snippets"
    snippets.mkdir()
    (snippets / "book.py").write_text((runner.SNIPPETS_DIR / "book.py").read_text())
    (snippets / "helper.py").write_text(HELPER)
    (snippets / "tiny.py").write_text(textwrap.dedent(SNIPPET))
    return snippets, root / "build"


@pytest.fixture
def book(tmp_path):
    """The book, not built yet."""
    return make_book(tmp_path)


def run(book, *names, force=False):
    snippets, build = book
    lines = []
    outcomes = runner.run(
        list(names) or None, force, snippets, build, jobs=1, log=lines.append
    )
    return {o.name: o.ran for o in outcomes}, "\n".join(lines)


# Each run of tiny starts a kernel that imports PyTorch (seconds): the module
# builds the book once, and each test that starts from a built book gets a copy.
@pytest.fixture(scope="module")
def first_build(tmp_path_factory):
    """The book after its first run: (book, what ran, the run's log)."""
    book = make_book(tmp_path_factory.mktemp("first-build"))
    ran, log = run(book)
    return book, ran, log


@pytest.fixture
def built(first_build, tmp_path):
    """A copy of the built book (outputs and kept runs too), fresh as built."""
    snippets, build = first_build[0]
    shutil.copytree(build.parent, tmp_path / "built")
    copy = tmp_path / "built" / snippets.name, tmp_path / "built" / build.name
    assert runner.is_fresh("tiny", *copy), "the copy must be as fresh as the build"
    return copy


@pytest.fixture(scope="module")
def forced(first_build, tmp_path_factory):
    """A copy of the built book run again with force=True: (what ran, the
    figure's bytes before, after)."""
    snippets, build = first_build[0]
    root = tmp_path_factory.mktemp("forced") / "book"
    shutil.copytree(build.parent, root)
    figure = root / build.name / "tiny" / "line.svg"
    before = figure.read_bytes()
    ran, _ = run((root / snippets.name, root / build.name), force=True)
    return ran, before, figure.read_bytes()


def test_modules_are_not_snippets(book):
    assert runner.snippet_names(book[0]) == ["tiny"]


def test_outputs_and_then_a_cache_hit(first_build, built):
    book, ran, log = first_build
    assert ran == {"tiny": True} and "ran     tiny" in log
    out = book[1] / "tiny"
    assert json.loads((out / "results.json").read_text()) == {"value": 42}
    assert (out / "line.svg").exists()
    ran, log = run(built)
    assert ran == {"tiny": False} and "cached  tiny" in log
    assert "1 snippets: 0 ran, 1 cached" in log


def test_editing_the_snippet_reruns_it(built):
    path = built[0] / "tiny.py"
    path.write_text(path.read_text() + "\n# a comment\n")
    assert run(built)[0] == {"tiny": True}


def test_editing_an_imported_module_reruns_it(built):
    (built[0] / "helper.py").write_text(HELPER.replace("42", "43"))
    assert run(built)[0] == {"tiny": True}
    assert json.loads((built[1] / "tiny" / "results.json").read_text())["value"] == 43


def test_force_reruns(forced):
    ran, _, _ = forced
    assert ran == {"tiny": True}


def test_modules_are_found_through_other_modules(book):
    snippets = book[0]
    (snippets / "helper.py").write_text("from deeper import answer\n")
    (snippets / "deeper.py").write_text(HELPER)
    found = runner.local_imports(snippets / "tiny.py", snippets)
    assert [p.name for p in found] == ["book.py", "deeper.py", "helper.py"]


def test_a_key_holds_the_packages_a_snippet_can_load_and_no_others(book):
    snippets = book[0]
    packages = {
        line.split("==")[0]
        for line in runner.imported_packages(snippets / "tiny.py", snippets)
    }
    # matplotlib by the snippet, torch through book.py, pillow through matplotlib,
    # ipykernel because the kernel runs on it
    assert {"matplotlib", "torch", "pillow", "ipykernel"} <= packages
    assert not packages & {"mkdocs", "mkdocs-material", "pytest", "playwright"}


def test_a_key_changes_with_the_version_of_a_package_the_snippet_loads(
    book, monkeypatch
):
    path = book[0] / "tiny.py"
    before = runner.cache_key(path, book[0])
    loaded = runner.imported_packages(path, book[0])
    bumped = [p + ".post1" if p.startswith("pillow==") else p for p in loaded]
    monkeypatch.setattr(runner, "imported_packages", lambda *args: bumped)
    assert runner.cache_key(path, book[0]) != before


def test_figures_are_byte_identical_between_runs(forced):
    _, first, again = forced
    assert again == first


def test_a_failing_snippet_is_named_with_its_cell_and_traceback(book):
    (book[0] / "broken.py").write_text(
        "# %%\nx = 1\n\n# %%\nraise RuntimeError('kernel on fire')\n"
    )
    with pytest.raises(runner.SnippetError) as error:
        run(book, "broken")
    message = str(error.value)
    assert "snippet 'broken' failed in cell 1 (line 5 of broken.py)" in message
    assert "RuntimeError" in message and "kernel on fire" in message
    assert not (book[1] / "broken" / "run.json").exists()  # not cached as done


def test_a_kernel_that_dies_is_named_with_its_cell(book):
    (book[0] / "dies.py").write_text("# %%\nx = 1\n\n# %%\nimport os\nos._exit(3)\n")
    with pytest.raises(runner.SnippetError) as error:
        run(book, "dies")
    assert "snippet 'dies': its kernel died in cell 1 (line 5 of dies.py)" in str(
        error.value
    )
    assert not (book[1] / "dies" / "run.json").exists()


def test_an_unknown_snippet_is_a_clear_error(book):
    with pytest.raises(runner.SnippetError, match="unknown snippet 'nope'.*tiny"):
        run(book, "nope")


@pytest.mark.parametrize(
    ("seconds", "jobs", "wall"),
    [
        ([], 2, 0),
        ([5, 5, 5], 1, 15),
        ([5, 5, 5], 2, 10),  # the third waits for a free worker
        ([10, 1, 1, 1], 2, 10),  # the short ones share the other worker
        ([1, 1, 10], 2, 11),  # order matters: 10 starts late
        ([3, 4], 8, 4),
    ],
)
def test_cold_build_wall_time_schedules_snippets_like_the_pool(seconds, jobs, wall):
    assert runner.wall_seconds(seconds, jobs) == wall


def test_snippets_whose_outputs_others_reuse_start_first():
    names = ["architectures", "layers", "layers_cnn", "what_cnns_learn"]
    assert runner.run_order(names) == [
        "layers_cnn",
        "architectures",
        "layers",
        "what_cnns_learn",
    ]
    assert set(runner.RUN_FIRST) <= set(runner.snippet_names())


def test_summary_prints_the_cold_build_against_its_budget(built, monkeypatch):
    snippets, build = built
    monkeypatch.setattr(runner, "available_cores", lambda: 3)
    lines = []
    runner.run(snippets_dir=snippets, build_dir=build, log=lines.append)
    cold = next(line for line in lines if "a cold build" in line)
    assert "wall with 3 at a time" in cold  # every core, by default
    assert f"budget {runner.BOOK_BUDGET_S} s" in cold
    assert "OVER" not in cold
    assert any(line.startswith("  slowest: tiny ") for line in lines)


def test_a_run_records_what_its_cache_key_is_made_of(first_build):
    book = first_build[0]
    recorded = json.loads((book[1] / "tiny" / "run.json").read_text())
    assert recorded["key"] == runner.cache_key(book[0] / "tiny.py", book[0])
    assert recorded["inputs"]["python"] == platform.python_version()
    assert recorded["inputs"]["modules"] == ["book.py", "helper.py"]
    assert f"torch=={version('torch')}" in recorded["inputs"]["packages"]
    assert recorded["finished"].endswith("+00:00")
    assert 0 < recorded["kernel_cpu_seconds"] < 600


@pytest.mark.parametrize("jobs", ["0", "-2"])
def test_fewer_than_one_job_is_refused(capsys, jobs):
    assert runner.main(["--jobs", jobs]) == 1
    assert f"jobs must be at least 1, got {jobs}" in capsys.readouterr().err


def test_cli_reports_errors_with_exit_status(capsys):
    assert runner.main(["no_such_snippet"]) == 1
    assert "unknown snippet 'no_such_snippet'" in capsys.readouterr().err


def test_executed_notebook_runs_alone_in_an_empty_folder(
    first_build, tmp_path, monkeypatch
):
    """A reader's download: only the .ipynb, in a folder of its own."""
    book = first_build[0]
    monkeypatch.delenv("LK_OUTPUT_DIR")
    notebook = nbformat.read(book[1] / "tiny" / "tiny.ipynb", as_version=4)
    nbformat.validate(notebook)
    assert notebook.cells[0].metadata["tags"] == [runner.HIDDEN_CELL_TAG]
    assert not any("--8<--" in cell.source for cell in notebook.cells[1:])
    alone = tmp_path / "download"
    alone.mkdir()
    NotebookClient(notebook, resources={"metadata": {"path": str(alone)}}).execute()
    assert {p.name for p in alone.iterdir()} >= {"book.py", "helper.py", "outputs"}


def test_a_stored_run_comes_back_with_its_source(built):
    """Switching a snippet away and back (another branch) re-runs nothing."""
    snippets, build = built
    original = (snippets / "tiny.py").read_text()
    (snippets / "tiny.py").write_text(original + "\n# another branch\n")
    assert run(built)[0] == {"tiny": True}
    (snippets / "tiny.py").write_text(original)
    assert run(built)[0] == {"tiny": False}
    assert json.loads((build / "tiny" / "results.json").read_text())["value"] == 42
