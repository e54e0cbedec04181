"""Claims sized to their evidence: the arithmetic of the claim ledger.

A claim test (one that takes the `claim` fixture of conftest.py, and so carries
the `claim` marker) states each effect the prose claims and that effect's
uncertainty, through `claim.exceeds` or `claim.within`. Every such row goes to
the ledger (build/claims/), so a build shows how far each claim clears its noise.

Uncertainty here is a standard error. An accuracy averaged over seeds has two:
the spread between seeds (the sample standard deviation, ddof=1, over the square
root of the number of seeds) and the test set's own sampling error (binomial).
A claim holds when its effect is at least Z standard errors, about a 95 %
one-sided bound for a normal estimate; the replication build (other seeds,
other data splits) then checks that it was not one lucky draw.
"""

import math

import numpy as np

Z = 2.0


def sample_sd(values):
    """The sample standard deviation (ddof=1), the spread the prose's ± gives."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        raise ValueError(f"a spread needs at least two values, got {values.size}")
    return float(values.std(ddof=1))


def binomial_se(accuracy, num_test):
    """The sampling error of an accuracy measured on num_test images; the
    accuracy is smoothed by one right and one wrong image (Laplace), so that
    0 or 100 % still has an error."""
    if not 0 <= accuracy <= 1:
        raise ValueError(f"an accuracy is a fraction in [0, 1], got {accuracy}")
    smoothed = (accuracy * num_test + 1) / (num_test + 2)
    return math.sqrt(smoothed * (1 - smoothed) / num_test)


def mean_se(accuracies, num_test=None):
    """The standard error of a mean accuracy over seeds: the seed spread of the
    mean, and, given the test-set size, the test set's sampling error."""
    accuracies = np.asarray(accuracies, dtype=float)
    variance = sample_sd(accuracies) ** 2 / accuracies.size
    if num_test is not None:
        variance += binomial_se(float(accuracies.mean()), num_test) ** 2
    return math.sqrt(variance)


def difference_se(a, b, num_test=None):
    """The standard error of mean(a) - mean(b), two independent sets of runs."""
    return math.hypot(mean_se(a, num_test), mean_se(b, num_test))


class Claim:
    """One claim test's rows of the ledger, each checked as it is stated."""

    def __init__(self, test):
        self.test = test
        self.rows = []

    def _row(self, what, effect, uncertainty, z, kind):
        effect, uncertainty = float(effect), float(uncertainty)
        if not uncertainty > 0 or not math.isfinite(effect):
            raise ValueError(
                f"{what}: effect {effect} and uncertainty {uncertainty} must be "
                "finite and the uncertainty positive"
            )
        margin = effect / uncertainty
        holds = margin >= z if kind == "exceeds" else abs(margin) <= z
        self.rows.append(
            {
                "test": self.test,
                "claim": what,
                "kind": kind,
                "effect": effect,
                "uncertainty": uncertainty,
                "margin": margin,
                "z": z,
                "holds": holds,
            }
        )
        return holds, margin

    def exceeds(self, what, effect, uncertainty, z=Z):
        """The prose says there is an effect: it must be at least z uncertainties."""
        holds, margin = self._row(what, effect, uncertainty, z, "exceeds")
        assert holds, (
            f"{what}: effect {effect:.4g} is {margin:.2f} x its uncertainty "
            f"{uncertainty:.4g}; the claim needs at least {z}"
        )

    def within(self, what, effect, uncertainty, z=Z):
        """The prose says there is no clear difference: |effect| must stay
        within z uncertainties."""
        holds, margin = self._row(what, effect, uncertainty, z, "within")
        assert holds, (
            f"{what}: effect {effect:.4g} is {margin:.2f} x its uncertainty "
            f"{uncertainty:.4g}; 'no clear difference' needs at most {z}"
        )
