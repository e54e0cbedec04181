"""Chapter 5: what the benchmark's recorded figures must show.

Timings vary with the machine and its load: the chapter quotes them as this
machine's, and every comparative it draws from them ("well below", "close to")
is chosen by the snippet from its measurements. These tests check that the
wording matches the numbers, and the exact counts.
"""

import pytest


@pytest.fixture(scope="module")
def speed(results):
    return results["conv_scratch_speed"]


def test_everything_ran_on_one_thread(speed):
    assert speed["torch_threads"] == 1
    assert speed["blas_threads"] and set(speed["blas_threads"]) == {1}


def test_the_flop_count_of_the_target_case(speed):
    shape = (speed["batch_size"], speed["in_channels"], speed["out_channels"])
    assert shape == (32, 3, 16)
    assert speed["target_mflop"] == pytest.approx(2 * 32 * 16 * 64 * 64 * 27 / 1e6)


def test_the_vectorised_version_computes_what_torch_computes(speed):
    assert speed["target_max_error"] < 1e-4  # float32


def words_for(ratio):
    """The wording the snippet must have chosen for a ratio of speeds."""
    if ratio < 0.5:
        return "well below"
    if ratio < 0.9:
        return "below"
    return "close to" if ratio <= 1.1 else "above"


def test_the_verdicts_match_the_measured_speeds(speed):
    """The chapter's comparatives with the matrix product are chosen by the
    snippet from its own measurements; they must match the recorded numbers."""
    matmul = speed["matmul_gflops_numpy"], speed["matmul_gflops_torch"]
    compared = {
        "numpy_vs_matmul": speed["target_gflops_numpy"] / matmul[0],
        "torch_vs_matmul": speed["target_gflops_torch"] / matmul[1],
        "product_vs_matmul": speed["product_gflops"] / matmul[0],
    }
    for name, ratio in compared.items():
        assert speed[f"verdict_{name}"] == words_for(ratio), name
    loops = speed["loops_to_numpy_largest"]
    many = "orders of magnitude" if loops >= 100 else "several times"
    assert speed["verdict_loops"] == many


def test_the_numpy_to_torch_factor_is_the_largest_ratio(speed):
    ratios = speed["ratio_numpy_to_torch"]
    assert speed["numpy_torch_factor"] == pytest.approx(
        max(max(r, 1 / r) for r in ratios)
    )


@pytest.mark.parametrize(
    "ratio, words",
    [(0.2, "well below"), (0.5, "below"), (0.95, "close to"), (1.2, "above")],
)
def test_the_verdict_wording_covers_every_ratio(ratio, words):
    assert words_for(ratio) == words


def test_the_breakdown_s_share_is_what_its_parts_took(speed):
    parts = speed["windows_ms"] + speed["product_ms"]
    assert speed["parts_share"] == pytest.approx(parts / speed["conv2d_ms"])


def test_the_counts_the_chapter_quotes(speed):
    assert speed["target_output_numbers"] == 32 * 16 * 64 * 64
    assert speed["column_length"] == 3 * 3 * 3


def test_the_ratio_quoted_is_the_ratio_of_the_times(speed):
    assert speed["target_ratio"] == pytest.approx(
        speed["target_ms_numpy"] / speed["target_ms_torch"]
    )
