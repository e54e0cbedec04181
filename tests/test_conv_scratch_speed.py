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


def test_the_counts_the_chapter_quotes(speed):
    assert speed["target_output_numbers"] == 32 * 16 * 64 * 64
    assert speed["column_length"] == 3 * 3 * 3


def test_the_loops_factor_is_quoted_to_one_significant_figure(speed):
    """The loops' time is one call: the chapter gives the factor rounded."""
    factor = speed["loops_to_numpy_largest"]
    assert speed["loops_to_numpy_rounded"] == float(f"{factor:.1g}")


def test_what_the_chapter_reads_from_onednn_s_log(speed):
    """The chapter: a jit: implementation (not gemm:) compiled for AVX-512,
    the direct algorithm, and the same implementation at the largest size."""
    implementation = speed["torch_conv_implementation"]
    assert implementation.startswith("jit:") and "avx512" in implementation
    assert speed["torch_conv_algorithm"] == "convolution_direct"
    assert speed["torch_conv_implementation_largest"] == implementation
