# %% [markdown]
# # Chapter 4, part 3: the results table's other rows
#
# The network of part 2, unchanged except for its input size, on the native
# digits: the results table's row for the easy dataset. Then, on the shifted
# digits, the steps from chapter 3's bank of 16 kernels to the CNN.

# %%
from functools import partial

import torch
from torch import nn

from book import (
    PROTOCOL,
    SmallCNN,
    count_parameters,
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

# %% [markdown]
# ## From the bank of kernels to the CNN, one step at a time
#
# The CNN row differs from chapter 3's bank of 16 kernels in several ways at
# once: its head keeps each map's largest value (a global max pool) instead
# of a weight per pixel, it has three blocks with pools between them, batch
# normalisation, and 32 and 64 channels in its later blocks. The two rows
# below go from the bank to the CNN in steps, on the shifted digits, under
# the same protocol: first the head alone, then depth and pooling alone; the
# CNN then adds batch normalisation and width.


# %%
# --8<-- [start:stack]
class KernelStack(nn.Module):
    """SmallCNN with its parts as switches, to change one at a time.

    One block per entry of channels: 3 × 3 convolution, batch normalisation
    (if batch_norm), ReLU; a 2 × 2 max pool starts every block after the
    first. head="max" keeps the largest value of each final map (a global
    max pool); head="flatten" gives the linear layer every pixel, as the
    bank of chapter 3 does.
    """

    def __init__(self, channels, batch_norm, head, image_size=24):
        super().__init__()
        if head not in ("max", "flatten"):
            raise ValueError(f"head must be 'max' or 'flatten', got {head!r}")
        layers, in_channels = [], 1
        for depth, out_channels in enumerate(channels):
            if depth > 0:
                layers.append(nn.MaxPool2d(2))
            layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU())
            in_channels = out_channels
        self.body = nn.Sequential(*layers)
        side = image_size // 2 ** (len(channels) - 1)
        features = in_channels * (side**2 if head == "flatten" else 1)
        self.head = head
        self.classifier = nn.Linear(features, 10)

    def forward(self, X):
        maps = self.body(X)  # (N, C, H, W)
        if self.head == "max":  # a global max pool, as maps.amax(dim=(2, 3))
            # but with a cheaper backward pass on a CPU
            pooled = nn.functional.adaptive_max_pool2d(maps, 1)
            return self.classifier(pooled.flatten(1))
        return self.classifier(maps.flatten(1))


# --8<-- [end:stack]

# %%
# --8<-- [start:steps]
STEPS = {  # each row flips one switch of the row before it
    "bank_max": dict(channels=(16,), batch_norm=False, head="max"),
    "deep_plain": dict(channels=(16, 16, 16), batch_norm=False, head="max"),
}
data = load_dataset("shifted_digits")
steps = {}


def make_step(settings):
    # Channels last, as SmallCNN: here about a quarter faster to train.
    return KernelStack(**settings).to(memory_format=torch.channels_last)


for name, settings in STEPS.items():
    steps[name] = run_trials(partial(make_step, settings), data)
    print(
        f"{name:>10}: {steps[name]['mean']:.3f} ± {steps[name]['std']:.3f}"
        f" ({steps[name]['parameters']:,} parameters)"
    )
# --8<-- [end:steps]

# %%
for name, trials in steps.items():
    record(
        **table_row(f"{name}_shifted", trials),
        **{f"accuracies_{name}": trials["accuracies"]},
    )
record(
    steps_num_test=len(data.X_test),
    # The same switches reproduce the table's two end rows' parameter counts.
    bank_parameters=count_parameters(
        KernelStack((16,), batch_norm=False, head="flatten")
    ),
    cnn_parameters=count_parameters(
        KernelStack((16, 32, 64), batch_norm=True, head="max")
    ),
)
