"""The build benchmark's report (the benchmark itself is `make bench`)."""

import pytest

from tools import bench


def test_the_report_marks_what_misses_its_target():
    walls = {"cold make site": 250.0, "warm make site": 3.0, "make test": 299.0}
    text = bench.report(walls, [("slow_one", 31.0), ("fast_one", 4.5)], step_ms=12.34)
    lines = text.splitlines()
    assert next(line for line in lines if line.startswith("cold")).endswith("OVER")
    assert not next(line for line in lines if line.startswith("warm")).endswith("OVER")
    assert not next(line for line in lines if line.startswith("make test")).endswith(
        "OVER"
    )
    assert "2 snippets, 35.5 s of snippet time" in text
    assert next(line for line in lines if "slow_one" in line).endswith("OVER")
    assert next(line for line in lines if "fast_one" in line).endswith("4.5 s")
    assert lines[1].startswith("speed: 12.3 ms of CPU per training step")


def test_the_speed_probe_times_a_training_step():
    """It runs with this checkout's environment as with a clone's."""
    step_ms = bench.step_milliseconds(bench.ROOT, steps=2)
    assert 0.1 < step_ms < 10_000, step_ms


def test_an_existing_folder_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--keep", str(tmp_path)])
    assert "the folder exists" in capsys.readouterr().err
