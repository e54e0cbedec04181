"""The results table closing chapter 4: every conclusion its prose draws.

Each cell is a mean test accuracy over the protocol's seeds; its uncertainty is
the seed spread of the mean (sample sd over the square root of the number of
seeds) and the test set's sampling error (binomial, 450 test images).
"""

import math
from pathlib import Path

import pytest
import torch
from claims import binomial_se

from book import LearnedKernelSoftmax

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
# The rows between the bank and the CNN (layers_cnn_digits.py).
STEPS = ["bank_max", "deep_plain"]


@pytest.fixture(scope="module")
def num_test(results):
    return results["layers_cnn"]["num_test"]


@pytest.fixture(scope="module")
def table(results):
    def cell(snippet, row, dataset):
        recorded = results[snippet]
        return {
            stat: recorded[f"row_{row}_{dataset}_{stat}"]
            for stat in ("mean", "std", "parameters", "seconds")
        }

    cells = {
        row: {d: cell(ROWS[row][d], row, d) for d in ("digits", "shifted")}
        for row in ORDER
    }
    for row in STEPS:
        cells[row] = {"shifted": cell("layers_cnn_digits", row, "shifted")}
    return cells


def cell_se(cell, num_test, num_seeds=3):
    """The standard error of a cell's mean: seeds and the test set."""
    return math.hypot(
        cell["std"] / math.sqrt(num_seeds), binomial_se(cell["mean"], num_test)
    )


def lead(table, better, worse, dataset, num_test):
    """How far `better` leads `worse`, and the uncertainty of that lead."""
    a, b = table[better][dataset], table[worse][dataset]
    uncertainty = math.hypot(cell_se(a, num_test), cell_se(b, num_test))
    return a["mean"] - b["mean"], uncertainty


def test_every_row_used_the_same_protocol(results):
    for snippet in ("layers_cnn", "layers_cnn_digits"):
        assert results[snippet]["num_seeds"] == 3
    assert results["layers_cnn"]["num_epochs"] == 15
    steps = results["layers_cnn_digits"]
    assert steps["steps_num_test"] == results["layers_cnn"]["num_test"]


def test_the_steps_reproduce_the_end_rows_parameter_counts(results, table):
    """KernelStack with the bank's and the CNN's settings is those models."""
    steps = results["layers_cnn_digits"]
    assert steps["bank_parameters"] == table["many_kernels"]["shifted"]["parameters"]
    assert steps["cnn_parameters"] == table["cnn"]["shifted"]["parameters"]


def kernel_stack_class():
    """KernelStack from layers_cnn_digits.py, without running the snippet's
    training: its class section, executed on its own."""
    import book

    source = (Path(book.__file__).parent / "layers_cnn_digits.py").read_text()
    start = source.index("# --8<-- [start:stack]")
    end = source.index("# --8<-- [end:stack]")
    namespace = {"nn": torch.nn}
    exec(source[start:end], namespace)  # noqa: S102 - the book's own code
    return namespace["KernelStack"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_flatten_kernel_stack_is_chapter_3_s_bank(seed):
    """The chapter: the second table's first row (chapter 3's
    LearnedKernelSoftmax) is KernelStack((16,), head="flatten"): the same
    layers, created in the same order, so one seed gives both the same
    initial weights, and the same weights give the same outputs."""
    KernelStack = kernel_stack_class()
    torch.manual_seed(seed)
    bank = LearnedKernelSoftmax(16, image_size=24)
    torch.manual_seed(seed)
    stack = KernelStack((16,), batch_norm=False, head="flatten")
    bank_weights = [p.detach() for p in bank.parameters()]
    stack_weights = [p.detach() for p in stack.parameters()]
    assert [w.shape for w in bank_weights] == [w.shape for w in stack_weights]
    for a, b in zip(bank_weights, stack_weights, strict=True):
        assert torch.equal(a, b)
    X = torch.rand(4, 1, 24, 24)
    torch.testing.assert_close(bank(X), stack(X), rtol=0, atol=0)


def test_fixed_bank_and_cnn_get_most_native_digits_right(table, num_test, claim):
    for row in ("fixed", "many_kernels", "cnn"):
        cell = table[row]["digits"]
        claim.exceeds(
            f"{row} gets most native digits right (above one half)",
            cell["mean"] - 0.5,
            cell_se(cell, num_test),
        )


def test_on_native_digits_the_cnn_and_the_bank_beat_the_fixed_map(
    table, num_test, claim
):
    for better, worse in [("many_kernels", "fixed"), ("cnn", "fixed")]:
        claim.exceeds(
            f"native digits: {better} makes fewer errors than {worse}",
            *lead(table, better, worse, "digits", num_test),
        )


def test_on_shifted_digits_the_cnn_is_far_ahead_of_every_single_layer_model(
    table, num_test, claim
):
    # "Far": a lead of ten standard errors, not two.
    for row in ORDER[:3]:
        claim.exceeds(
            f"shifted digits: the CNN is far ahead of {row}",
            *lead(table, "cnn", row, "shifted", num_test),
            z=10,
        )


def test_fixed_and_single_kernel_get_fewer_than_one_in_four_shifted_digits(
    table, num_test, claim
):
    for row in ("fixed", "one_kernel"):
        cell = table[row]["shifted"]
        claim.exceeds(
            f"shifted digits: {row} below one in four",
            0.25 - cell["mean"],
            cell_se(cell, num_test),
        )


# From the bank to the CNN, one step at a time (shifted digits) -----------------


def test_the_position_free_head_helps_but_is_far_from_enough(table, num_test, claim):
    claim.exceeds(
        "the global max pool head lifts the bank",
        *lead(table, "bank_max", "many_kernels", "shifted", num_test),
    )
    claim.exceeds(
        "with that head alone, the one-layer net stays far below the CNN",
        *lead(table, "cnn", "bank_max", "shifted", num_test),
        z=10,
    )


def test_depth_and_pooling_make_the_largest_step(table, num_test, claim):
    claim.exceeds(
        "depth and pooling lift the one-layer net with the same head",
        *lead(table, "deep_plain", "bank_max", "shifted", num_test),
    )
    cell = table["deep_plain"]["shifted"]
    claim.exceeds(
        "with depth and pooling, most shifted digits are right",
        cell["mean"] - 0.5,
        cell_se(cell, num_test),
    )
    # Neighbouring steps share a row: (c - b) - (b - a) = a - 2b + c.
    chain = ["many_kernels", "bank_max", "deep_plain", "cnn"]
    a, b, c, d = (table[row]["shifted"]["mean"] for row in chain)
    sa, sb, sc, sd = (cell_se(table[row]["shifted"], num_test) for row in chain)
    claim.exceeds(
        "depth and pooling make a larger step than the head",
        (c - b) - (b - a),
        math.sqrt(sa**2 + 4 * sb**2 + sc**2),
    )
    claim.exceeds(
        "depth and pooling make a larger step than batch norm and width",
        (c - b) - (d - c),
        math.sqrt(sb**2 + 4 * sc**2 + sd**2),
    )


def test_batch_norm_and_width_together_add_the_rest(table, num_test, claim):
    claim.exceeds(
        "batch normalisation and width together lift the deep plain net",
        *lead(table, "cnn", "deep_plain", "shifted", num_test),
    )


def test_parameter_counts_the_chapter_compares(table):
    bank = table["many_kernels"]["shifted"]["parameters"]
    assert table["bank_max"]["shifted"]["parameters"] < bank / 100
    assert 0.2 < table["cnn"]["shifted"]["parameters"] / bank < 0.3  # a quarter


def test_of_the_four_rows_only_the_cnn_gets_most_shifted_digits_right(
    table, num_test, claim
):
    for row in ORDER:
        cell = table[row]["shifted"]
        above_half = cell["mean"] - 0.5
        claim.exceeds(
            f"shifted digits: {row} {'above' if row == 'cnn' else 'below'} half",
            above_half if row == "cnn" else -above_half,
            cell_se(cell, num_test),
        )
