"""Chapter 10: the depthwise-separable CNN against chapter 4's standard one."""

import pytest


@pytest.fixture(scope="module")
def cnn(results):
    return results["efficiency_cnn"]


@pytest.fixture(scope="module")
def standard(results):
    return results["layers_cnn"]


def test_both_networks_were_trained_under_the_same_protocol(cnn, standard):
    for key in ("num_seeds", "num_epochs", "num_test"):
        assert cnn[key] == standard[key]
    assert cnn["standard_parameters"] == standard["row_cnn_shifted_parameters"]


def test_formula_and_counted_pass_agree(cnn):
    for name in ("standard", "separable"):
        assert cnn[f"{name}_formula_parameters"] == cnn[f"{name}_parameters"]
        assert cnn[f"{name}_formula_mult_adds"] == cnn[f"{name}_mult_adds"]
    assert cnn["row_separable_shifted_parameters"] == cnn["separable_parameters"]


def test_the_separable_network_is_several_times_cheaper(cnn):
    assert 5.5 < cnn["parameter_ratio"] < 6.5  # "a sixth of the parameters"
    assert cnn["mult_add_ratio"] > 5
    assert cnn["changed_mult_add_ratio"] > cnn["mult_add_ratio"]


def test_the_separable_network_is_less_accurate(cnn, standard):
    accuracies = cnn["separable_accuracies"]
    assert len(accuracies) == cnn["num_seeds"]
    # Every seed below the standard network's worst one.
    assert max(accuracies) < standard["worst_seed_accuracy"]
    assert cnn["worst_seed_accuracy"] == min(accuracies)
    gap = standard["row_cnn_shifted_mean"] - cnn["row_separable_shifted_mean"]
    spread = standard["row_cnn_shifted_std"] + cnn["row_separable_shifted_std"]
    assert gap > 2 * spread
    assert cnn["row_separable_shifted_mean"] > 0.8  # it still learns the task


def test_time_hardly_moved(cnn):
    # Typically 1.1 times faster per step, the same per test pass, against
    # five times fewer multiply-adds.
    assert cnn["step_ratio"] < 1.5
    assert 1 / 1.5 < cnn["test_pass_ratio"] < 1.5


def test_the_changed_convolutions_are_a_small_share_of_the_time(cnn):
    assert cnn["changed_mult_add_share"] > 0.9
    assert cnn["standard_changed_share"] < 0.4  # typically under a fifth
    parts = ("first_conv", "changed", "pool", "norm_relu")
    for name in ("standard", "separable"):
        times = {part: cnn[f"{name}_{part}_ms"] for part in parts}
        assert sum(times.values()) == pytest.approx(cnn[f"{name}_layers_ms"])
        # "above all the two max pools", the longest part of each bar
        assert max(times, key=times.get) == "pool"
    # The pools take more than both changed convolutions together.
    assert cnn["standard_pool_ms"] > cnn["standard_changed_ms"]


def test_the_changed_convolutions_hardly_got_faster(cnn):
    """The red parts of the breakdown: about as long in both networks."""
    assert 1 / 1.5 < cnn["changed_time_ratio"] < 1.5  # typically 1.0 to 1.2
    assert cnn["changed_time_ratio"] < cnn["changed_mult_add_ratio"] / 4
