# %% [markdown]
# # Chapter 9, part 2: LeNet-5 and AlexNet on the shifted digits
#
# The scaled-down LeNet-5 and AlexNet, each trained from three seeds under
# the chapter's protocol (the book's, for 10 epochs) on the 24 × 24 shifted
# digits. The inputs are standardised first: shifted by the training images'
# mean, as AlexNet's paper prepared its inputs, and scaled by their standard
# deviation.

# %%
import numpy as np

from architectures_ops import (
    TRIALS,
    alexnet_mini,
    layer_costs,
    lenet_mini,
    standardise,
)
from book import load_dataset, record, run_trials, setup, table_row

setup()

# %%
# --8<-- [start:data]
data = standardise(load_dataset("shifted_digits"))
print(f"mean {data.X_train.mean():.2f}, std {data.X_train.std():.2f}")
# --8<-- [end:data]


# %%
def multiply_adds(net):
    return sum(row.multiply_adds for row in layer_costs(net, (1, 24, 24)))


def mean_se(accuracies, num_test):
    """The standard error of a mean accuracy over k seeds, as the chapter's
    tests compute it: the seed spread s²/k plus the test set's p(1-p)/n,
    with p smoothed to (pn+1)/(n+2) so that it is never 0 or 1."""
    accuracies = np.asarray(accuracies, dtype=float)
    p = (accuracies.mean() * num_test + 1) / (num_test + 2)
    seeds = accuracies.var(ddof=1) / len(accuracies)
    return float(np.sqrt(seeds + p * (1 - p) / num_test))


# %% [markdown]
# ## LeNet-5

# %%
# --8<-- [start:lenet]
lenet = run_trials(lenet_mini, data, TRIALS)  # seeds, epochs, Adam
print(f"LeNet-5: {lenet['mean']:.3f} ± {lenet['std']:.3f}")
# --8<-- [end:lenet]
record(
    **table_row("lenet", lenet),
    row_lenet_accuracies=lenet["accuracies"],
    row_lenet_multiply_adds=multiply_adds(lenet_mini()),
    row_lenet_se=mean_se(lenet["accuracies"], len(data.y_test)),
    num_test=len(data.y_test),
)

# %% [markdown]
# ## AlexNet

# %%
# --8<-- [start:alexnet]
alexnet = run_trials(alexnet_mini, data, TRIALS)
print(f"AlexNet: {alexnet['mean']:.3f} ± {alexnet['std']:.3f}")
# --8<-- [end:alexnet]
record(
    **table_row("alexnet", alexnet),
    row_alexnet_accuracies=alexnet["accuracies"],
    row_alexnet_multiply_adds=multiply_adds(alexnet_mini()),
    row_alexnet_se=mean_se(alexnet["accuracies"], len(data.y_test)),
    input_mean=data.X_train.mean(),
    input_std=data.X_train.std(),
)
