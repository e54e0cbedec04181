# %% [markdown]
# # Chapter 6, part 3: locality without sharing
#
# Chapter 4's CNN with every convolution replaced by a locally connected
# layer of the same shape: the same windows, batch normalisation, pools and
# global max pool, but each position of each map has its own kernels. The
# only change from the CNN is that no weight is shared. Trained and tested as
# in part 2: digits in the middle of the canvas, then moved.

# %%
import numpy as np

from book import SmallCNN, count_parameters, load_dataset, record, setup
from weight_sharing_ops import (
    POSITION_PROTOCOL,
    locally_connected,
    placements,
    position_summary,
    position_trials,
)

setup()

# %%
# --8<-- [start:local-twin]
digits = load_dataset("digits")
data, tests = placements(digits)  # the same placements as part 2


def make_local():
    """Chapter 4's CNN, but no weight shared between positions."""
    return locally_connected(SmallCNN(image_size=24))


runs = position_trials(make_local, data, tests)
same = [run["across"][8] for run in runs]  # move 0: the training place
far = [run["anywhere"] for run in runs]
print(f"{count_parameters(make_local()):,} parameters")
print(f"same place {np.mean(same):.3f}, anywhere {np.mean(far):.3f}")
# --8<-- [end:local-twin]
record(
    **position_summary(runs, "local"),
    local_parameters=count_parameters(make_local()),
    num_seeds=len(runs),
    num_epochs=POSITION_PROTOCOL["num_epochs"],
)
