"""Chapter 6: Training a CNN well. TODO(author): what these tests check."""

import numpy as np
import pytest

# Importing a snippet runs it: keep its top level quick, or test functions that
# book.py holds.
from training_well import squares


def test_squares_match_a_reference():
    # TODO(author): test the chapter's functions on their own, against a
    # reference (torch.nn.functional, scikit-image) on random inputs.
    np.testing.assert_array_equal(squares(4), [0, 1, 4, 9])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="positive count, got 0"):
        squares(0)


def test_the_claims_the_chapter_makes(results):
    # TODO(author): assert each claim of the prose on the numbers the snippet
    # recorded, with a margin that the spread between seeds justifies.
    chapter = results["training_well"]
    assert chapter["total"] == sum(n * n for n in range(chapter["num_values"]))
