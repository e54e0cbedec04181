# %% [markdown]
# # Chapter 4, part 3: the same CNN on the 8 × 8 digits
#
# The network of part 2, unchanged except for its input size, on the native
# digits: the results table's row for the easy dataset.

# %%
from book import (
    PROTOCOL,
    SmallCNN,
    load_dataset,
    record,
    run_trials,
    setup,
    table_row,
)

setup()

# %%
# --8<-- [start:trials]
data = load_dataset("digits")


def make_net():
    return SmallCNN(image_size=8)  # 8 → 4 → 2 pixels across the blocks


digits = run_trials(make_net, data)  # the same book.PROTOCOL
print(f"test accuracy {digits['mean']:.3f} ± {digits['std']:.3f}")
print(f"{digits['seconds']:.1f} s of training per run")
# --8<-- [end:trials]
record(
    **table_row("cnn_digits", digits),
    worst_seed_accuracy=min(digits["accuracies"]),
    num_seeds=len(PROTOCOL["seeds"]),
)
