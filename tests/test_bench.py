"""The build benchmark's report (the benchmark itself is `make bench`)."""

import pytest

from tools import bench


def test_the_report_marks_what_misses_its_target():
    walls = {"cold make site": 250.0, "warm make site": 3.0, "make test": 299.0}
    text = bench.report(walls, [("slow_one", 31.0), ("fast_one", 4.5)])
    lines = text.splitlines()
    assert next(line for line in lines if line.startswith("cold")).endswith("OVER")
    assert not next(line for line in lines if line.startswith("warm")).endswith("OVER")
    assert not next(line for line in lines if line.startswith("make test")).endswith(
        "OVER"
    )
    assert "2 snippets, 35.5 s of snippet time" in text
    assert next(line for line in lines if "slow_one" in line).endswith("OVER")
    assert next(line for line in lines if "fast_one" in line).endswith("4.5 s")


def test_an_existing_folder_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--keep", str(tmp_path)])
    assert "the folder exists" in capsys.readouterr().err
