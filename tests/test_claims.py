"""The claim ledger's arithmetic and the replication build's seed shift."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from claims import Claim, binomial_se, difference_se, mean_se, sample_sd

from tools import ledger, runner


def test_sample_sd_is_the_ddof_1_spread():
    assert sample_sd([1.0, 2.0, 3.0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least two"):
        sample_sd([0.5])


def test_binomial_se_matches_the_formula_and_never_vanishes():
    smoothed = (0.9 * 400 + 1) / 402
    assert binomial_se(0.9, 400) == pytest.approx(
        math.sqrt(smoothed * (1 - smoothed) / 400)
    )
    assert binomial_se(1.0, 450) > 0
    with pytest.raises(ValueError, match="fraction"):
        binomial_se(97.0, 450)


def test_mean_se_adds_the_seed_spread_and_the_test_set_error():
    accuracies = [0.90, 0.92, 0.94]
    seeds_only = sample_sd(accuracies) / math.sqrt(3)
    assert mean_se(accuracies) == pytest.approx(seeds_only)
    both = math.hypot(seeds_only, binomial_se(0.92, 450))
    assert mean_se(accuracies, 450) == pytest.approx(both)
    assert difference_se(accuracies, accuracies, 450) == pytest.approx(both * 2**0.5)


def test_a_claim_holds_only_with_its_margin():
    claim = Claim("t")
    claim.exceeds("a beats b", 0.05, 0.02)
    with pytest.raises(AssertionError, match="1.50 x its uncertainty"):
        claim.exceeds("a beats c", 0.03, 0.02)
    claim.within("a and d: no clear difference", -0.03, 0.02)
    with pytest.raises(AssertionError, match="no clear difference"):
        claim.within("a and e: no clear difference", 0.05, 0.02)
    assert [row["holds"] for row in claim.rows] == [True, False, True, False]
    with pytest.raises(ValueError, match="uncertainty positive"):
        claim.exceeds("no noise", 0.05, 0.0)


def test_the_ledger_pairs_the_two_builds(tmp_path):
    row = {"test": "tests/t.py::test_x", "claim": "a beats b", "kind": "exceeds"}
    main = {**row, "effect": 0.05, "uncertainty": 0.01, "margin": 5.0, "z": 2}
    again = {**row, "effect": 0.01, "uncertainty": 0.01, "margin": 1.0, "z": 2}
    (tmp_path / "main.json").write_text(json.dumps([{**main, "holds": True}]))
    (tmp_path / "replicate.json").write_text(json.dumps([{**again, "holds": False}]))
    text, counts, failed = ledger.table(tmp_path)
    cells = "| ≥ 2 | 0.05 ± 0.01 (+5.0) | 0.01 ± 0.01 (+1.0) **FAILS** |"
    assert f"| test_x | a beats b {cells}" in text
    assert counts == {"main": 1, "replicate": 1} and failed == 1


SHIFTED_DRAWS = """
import numpy as np, torch
from sklearn.model_selection import train_test_split
import book
book.setup()
print(torch.initial_seed(), torch.Generator().manual_seed(1).initial_seed(),
      np.random.default_rng(2).integers(10**9),
      train_test_split(list(range(100)), random_state=3)[1][:3])
"""


def draws(*offsets):
    """What SHIFTED_DRAWS prints in a fresh Python for each offset; the
    processes run at once (each spends seconds importing PyTorch)."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SHIFTED_DRAWS],
            cwd=runner.SNIPPETS_DIR,
            env={"LK_SEED_OFFSET": str(offset), "PATH": ""},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for offset in offsets
    ]
    printed = []
    for offset, process in zip(offsets, processes):
        out, err = process.communicate()
        assert process.returncode == 0, f"LK_SEED_OFFSET={offset}: {err}"
        printed.append(out.strip())
    return printed


def test_the_seed_offset_shifts_every_generator():
    plain, shifted = draws(0, 100)
    assert plain.startswith("0 1 ") and shifted.startswith("100 101 ")
    expected = f"{np.random.default_rng(102).integers(10**9)}"
    assert shifted.split()[2] == expected


def test_the_replication_build_has_its_own_cache_key():
    path = runner.SNIPPETS_DIR / "why_cnns_images.py"
    assert runner.cache_key(path) != runner.cache_key(path, seed_offset=100)
