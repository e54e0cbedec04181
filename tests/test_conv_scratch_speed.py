"""Chapter 5: what the benchmark's recorded figures must show.

Timings vary with the machine and its load, so these tests check only claims
with a wide margin, and that the chapter's figures are consistent.
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


def test_the_loops_are_orders_of_magnitude_slower(speed):
    # Typically about a thousand times; a factor of 100 leaves room for noise.
    assert speed["loops_to_numpy_largest"] > 100
    assert min(speed["ratio_loops_to_torch"]) > 100


def test_numpy_and_torch_are_close_on_the_log_scale(speed):
    """The figure's alt text: both far below the loops, close together."""
    for ratio in speed["ratio_numpy_to_torch"]:
        assert 1 / 10 < ratio < 10


def test_convolutions_fall_short_of_a_square_matrix_product(speed):
    # Typically a factor of 3 to 10 below the square product.
    for value in speed["gflops_numpy"]:
        assert value < speed["matmul_gflops_numpy"] / 1.5
    for value in speed["gflops_torch"]:
        assert value < speed["matmul_gflops_torch"] / 1.5
    assert speed["product_gflops"] < speed["matmul_gflops_numpy"] / 1.5


def test_the_counts_the_chapter_quotes(speed):
    assert speed["target_output_numbers"] == 32 * 16 * 64 * 64
    assert speed["column_length"] == 3 * 3 * 3


def test_the_verdict_matches_the_ratio(speed):
    met = speed["target_ratio"] <= 3
    assert speed["target_verdict"] == ("target met" if met else "target missed")
    assert speed["target_ratio"] == pytest.approx(
        speed["target_ms_numpy"] / speed["target_ms_torch"]
    )
