# %% [markdown]
# # Chapter 6, part 4: the global max pool, and training data everywhere
#
# Two changes to part 2's CNN, one at a time. First its head: the global max
# pool replaced by a flatten and a linear layer, which gives every position
# of the last maps its own weights. Then its data: the same training digits,
# each placed at a random position instead of in the middle.

# %%
import numpy as np
import torch
from torch import nn

from book import (
    SmallCNN,
    Split,
    count_parameters,
    load_dataset,
    record,
    run_trials,
    setup,
)
from weight_sharing_ops import (
    POSITION_PROTOCOL,
    accuracy_at,
    place_anywhere,
    placements,
    position_summary,
    position_trials,
)

setup()


# %%
# --8<-- [start:flat-head]
class FlatHeadCNN(SmallCNN):
    """Chapter 4's CNN with a flatten and a linear layer instead of the
    global max pool: the classifier has a weight for every position."""

    def __init__(self):
        super().__init__(image_size=24)
        self.classifier = nn.Linear(64 * 6 * 6, 10)  # 64 maps of 6 × 6

    def forward(self, X):
        return self.classifier(self.feature_maps(X)[-1].flatten(1))


digits = load_dataset("digits")
data, tests = placements(digits)  # the same placements as part 2
flat_runs = position_trials(FlatHeadCNN, data, tests)
print(f"{count_parameters(FlatHeadCNN()):,} parameters")
print(f"anywhere {np.mean([run['anywhere'] for run in flat_runs]):.3f}")
# --8<-- [end:flat-head]
record(
    **position_summary(flat_runs, "flat"),
    flat_parameters=count_parameters(FlatHeadCNN()),
    num_seeds=len(flat_runs),
    num_epochs=POSITION_PROTOCOL["num_epochs"],
)

# %%
# --8<-- [start:flat-distance]
DISTANCES = {  # moves across and down, grouped by how far
    "1_to_3": [-3, -2, -1, 1, 2, 3],
    "4": [-4, 4],
    "5_to_7": [-7, -6, -5, 5, 6, 7],
    "8": [-8, 8],
}
flat_by_distance = {
    name: accuracy_at(flat_runs, moves)  # one value per seed
    for name, moves in DISTANCES.items()
}
for name, by_seed in flat_by_distance.items():
    print(f"moved {name.replace('_', ' ')} pixels: {by_seed.mean():.3f}")
# --8<-- [end:flat-distance]
record(
    **{
        f"flat_moved_{name}_by_seed": by_seed.tolist()
        for name, by_seed in flat_by_distance.items()
    },
    **{
        f"flat_moved_{name}_mean": by_seed.mean()
        for name, by_seed in flat_by_distance.items()
    },
)

# %%
# --8<-- [start:everywhere]
rng = np.random.default_rng(1)  # new positions, new noise
everywhere = Split(
    place_anywhere(digits.X_train, rng),  # one random place per digit
    digits.y_train,
    tests["anywhere"],  # part 2's test digits at random places
    digits.y_test,
)
trials = run_trials(
    lambda: SmallCNN(image_size=24), everywhere, POSITION_PROTOCOL
)
print(f"trained anywhere, tested anywhere: {trials['mean']:.3f}")
# --8<-- [end:everywhere]
record(
    everywhere_by_seed=trials["accuracies"],
    everywhere_mean=trials["mean"],
    everywhere_std=trials["std"],
    everywhere_num_train=len(everywhere.X_train),
)
assert torch.equal(everywhere.X_test, tests["anywhere"])
