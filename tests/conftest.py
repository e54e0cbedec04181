import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "snippets")]

from tools import runner  # noqa: E402


@pytest.fixture(autouse=True)
def _outputs_in_tmp(tmp_path, monkeypatch):
    """Snippet helpers write figures and results here, not into the repository."""
    monkeypatch.setenv("LK_OUTPUT_DIR", str(tmp_path / "outputs"))


@pytest.fixture(scope="session")
def results():
    """What each snippet recorded; runs snippets whose outputs are stale."""
    runner.run(log=lambda line: None)
    return {
        name: json.loads((runner.BUILD_DIR / name / "results.json").read_text())
        for name in runner.snippet_names()
        if (runner.BUILD_DIR / name / "results.json").exists()
    }
