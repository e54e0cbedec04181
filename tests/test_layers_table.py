"""The results table closing chapter 4: every conclusion its prose draws."""

import pytest

ROWS = {  # row -> dataset -> snippet that recorded it
    "fixed": {"digits": "learn_kernel_task", "shifted": "learn_kernel_task"},
    "one_kernel": {"digits": "learn_kernel_task", "shifted": "learn_kernel_task"},
    "many_kernels": {
        "digits": "many_kernels_digits",
        "shifted": "many_kernels_shifted",
    },
    "cnn": {"digits": "layers_cnn_digits", "shifted": "layers_cnn"},
}
ORDER = ["fixed", "one_kernel", "many_kernels", "cnn"]


@pytest.fixture(scope="module")
def table(results):
    def cell(row, dataset):
        recorded = results[ROWS[row][dataset]]
        return {
            stat: recorded[f"row_{row}_{dataset}_{stat}"]
            for stat in ("mean", "std", "parameters", "seconds")
        }

    return {row: {d: cell(row, d) for d in ("digits", "shifted")} for row in ORDER}


def gap(table, better, worse, dataset):
    """How far `better` leads `worse`, in units of their combined seed spread."""
    a, b = table[better][dataset], table[worse][dataset]
    return (a["mean"] - b["mean"]) / (a["std"] + b["std"])


def test_every_row_used_the_same_protocol(results):
    assert results["layers_cnn"]["num_seeds"] == 3
    assert results["layers_cnn"]["num_epochs"] == 15


def test_every_model_does_well_on_native_digits(table):
    assert all(table[row]["digits"]["mean"] > 0.9 for row in ORDER)


def test_each_question_helps_on_native_digits_beyond_the_seed_spread(table):
    assert gap(table, "one_kernel", "fixed", "digits") > 1
    assert gap(table, "many_kernels", "one_kernel", "digits") > 1
    assert gap(table, "cnn", "many_kernels", "digits") > 1


def test_the_last_step_on_native_digits_is_the_smallest_in_points(table):
    def points(better, worse):
        return table[better]["digits"]["mean"] - table[worse]["digits"]["mean"]

    last = points("cnn", "many_kernels")
    assert last < points("many_kernels", "one_kernel")
    assert last < points("one_kernel", "fixed")


def test_only_the_cnn_solves_shifted_digits(table):
    assert table["cnn"]["shifted"]["mean"] >= 0.95
    for row in ORDER[:3]:
        assert table[row]["shifted"]["mean"] < 0.5
        assert gap(table, "cnn", row, "shifted") > 5
    for row in ("fixed", "one_kernel"):  # "close to chance" (0.10)
        assert table[row]["shifted"]["mean"] < 0.25


def test_the_cnn_wins_with_fewer_parameters_than_the_kernel_bank(table):
    cnn, bank = table["cnn"]["shifted"], table["many_kernels"]["shifted"]
    assert cnn["parameters"] < bank["parameters"]
    assert cnn["mean"] > bank["mean"]
