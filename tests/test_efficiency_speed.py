"""Chapter 10: what the benchmark's recorded timings must show.

Timings vary with the machine and its load, so these tests check only claims
with a wide margin (the prose's and the figures' alt texts), and that the
recorded figures are consistent with each other.
"""

import pytest


@pytest.fixture(scope="module")
def speed(results):
    return results["efficiency_speed"]


def test_everything_ran_on_one_thread(speed):
    assert speed["torch_threads"] == 1


def test_the_flop_counts_follow_the_formulas(speed):
    N, size = speed["batch_size"], speed["size"]
    assert (N, size, speed["kernel_size"], speed["groups"]) == (8, 32, 3, 8)
    for C, standard, grouped, separable in zip(
        speed["channels"],
        speed["mflop_standard"],
        speed["mflop_grouped"],
        speed["mflop_separable"],
    ):
        pixels = N * size * size
        assert standard * 1e6 == pytest.approx(2 * pixels * C * C * 9)
        assert grouped == pytest.approx(standard / 8)
        assert separable * 1e6 == pytest.approx(2 * pixels * (9 * C + C * C))


def test_the_quoted_numbers_are_the_recorded_series(speed):
    for i, C in enumerate(speed["channels"]):
        for key in ("ms_standard", "gflops_depthwise", "time_saving_separable"):
            assert speed[f"c{C}_{key}"] == speed[key][i]
    assert (speed["smallest"], speed["largest"]) == (16, 256)


def test_neither_layer_saves_as_much_time_as_it_saves_flops(speed):
    """The prose: 'at no width'; the figure: solid lines below dashed ones."""
    for name in ("grouped", "separable"):
        for time, flops in zip(
            speed[f"time_saving_{name}"], speed[f"flop_saving_{name}"]
        ):
            assert time < 0.9 * flops  # typically a half or less


def test_the_cheaper_layers_are_faster_from_32_channels_on(speed):
    for i, C in enumerate(speed["channels"]):
        if C >= 32:
            assert speed["time_saving_grouped"][i] > 1
            assert speed["time_saving_separable"][i] > 1


def test_with_16_channels_grouped_is_slower_than_standard(speed):
    # Typically about three times slower: two channels per group.
    assert speed["c16_ms_grouped"] > 1.3 * speed["c16_ms_standard"]
    assert speed["c16_time_saving_separable"] < speed["c16_flop_saving_separable"] / 2


def test_the_depthwise_part_is_the_slow_part(speed):
    # Typically 10 to 30 times below the standard layer's GFLOP/s.
    for depthwise, standard in zip(speed["gflops_depthwise"], speed["gflops_standard"]):
        assert depthwise < standard / 5
    assert speed["c256_depthwise_flop_share"] == pytest.approx(9 / (9 + 256))
    assert speed["c256_depthwise_time_share"] > 3 * speed["c256_depthwise_flop_share"]


def test_the_standard_layer_outruns_the_cheaper_layers_per_flop(speed):
    """The figure's alt text: above grouped and separable, near the matrix
    product at 256. The pointwise part, a matrix product too, is left out: it
    ran slower per FLOP than the standard layer here, faster in one CI run."""
    for i in range(len(speed["channels"])):
        cheaper = [speed[f"gflops_{n}"][i] for n in ("grouped", "separable")]
        assert speed["gflops_standard"][i] > 1.2 * max(cheaper)  # typically 2
    # "near the dashed line": measured 0.9 to 1.25 times here
    assert 0.6 < speed["c256_gflops_standard"] / speed["matmul_gflops"] < 1.6
