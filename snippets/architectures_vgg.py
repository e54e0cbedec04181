# %% [markdown]
# # Chapter 9, part 3: VGG on the shifted digits
#
# The scaled-down VGG (configuration A), trained from three seeds under the
# chapter's protocol (the book's, for 10 epochs) twice: as its paper built
# it, without normalisation, and with batch normalisation after every
# convolution. We keep every seed's
# history to see when each run starts to learn.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from architectures_ops import TRIALS, layer_costs, standardise, vgg_mini
from book import (
    count_parameters,
    load_dataset,
    record,
    save_figure,
    setup,
    train,
)

setup()

# %%
data = standardise(load_dataset("shifted_digits"))


# %%
# --8<-- [start:trials]
def seed_runs(make_net):
    """Each seed's run under TRIALS, trained as run_trials does."""
    settings = {k: v for k, v in TRIALS.items() if k != "seeds"}
    runs = []
    for seed in TRIALS["seeds"]:
        torch.manual_seed(seed)
        start = time.perf_counter()
        history = train(make_net(), data, seed=seed, **settings)
        history["seconds"] = time.perf_counter() - start
        runs.append(history)
    return runs


runs = {
    "without normalisation": seed_runs(lambda: vgg_mini(batch_norm=False)),
    "with batch normalisation": seed_runs(lambda: vgg_mini(batch_norm=True)),
}
for name, histories in runs.items():
    final = [history["test_accuracy"][-1] for history in histories]
    print(f"{name}: {np.mean(final):.3f} ± {np.std(final, ddof=1):.3f}")
# --8<-- [end:trials]


# %%
CHANCE_MARGIN = 0.01


def epochs_at_chance(history):
    """How many epochs, from the first, keep a mean training loss within
    CHANCE_MARGIN of ln 10 (the loss of a uniform guess over ten classes)
    before the loss first falls below that."""
    losses = np.array(history["train_loss"])
    learning = np.flatnonzero(losses <= np.log(10) - CHANCE_MARGIN)
    return int(learning[0]) if len(learning) else len(losses)


def mean_se(values, num_test=None):
    """The standard error of a mean over k seeds, as the chapter's tests
    compute it: the seed spread s²/k, plus for an accuracy the test set's
    p(1-p)/n, with p smoothed to (pn+1)/(n+2) so that it is never 0 or 1."""
    values = np.asarray(values, dtype=float)
    variance = values.var(ddof=1) / len(values)
    if num_test is not None:
        p = (values.mean() * num_test + 1) / (num_test + 2)
        variance += p * (1 - p) / num_test
    return float(np.sqrt(variance))


for key, name, batch_norm in [
    ("vgg_plain", "without normalisation", False),
    ("vgg", "with batch normalisation", True),
]:
    final = [history["test_accuracy"][-1] for history in runs[name]]
    stalled = [epochs_at_chance(history) for history in runs[name]]
    record(
        **{
            f"row_{key}_mean": np.mean(final),
            f"row_{key}_std": np.std(final, ddof=1),  # sample std over seeds
            f"row_{key}_accuracies": final,
            f"row_{key}_se": mean_se(final, len(data.y_test)),
            f"{key}_epochs_at_chance": stalled,
            f"row_{key}_worst": min(final),
            f"row_{key}_best": max(final),
            f"row_{key}_parameters": count_parameters(vgg_mini(batch_norm)),
            f"row_{key}_seconds": np.mean([h["seconds"] for h in runs[name]]),
            f"{key}_fewest_epochs_at_chance": min(stalled),
            f"{key}_most_epochs_at_chance": max(stalled),
            f"{key}_runs_never_learning": sum(
                s == TRIALS["num_epochs"] for s in stalled
            ),
        }
    )
# The two gaps the chapter reports, each with its standard error; whole
# epochs also carry their rounding (sd 1/sqrt(12)), so that identical counts
# still have an error.
final = {
    name: [history["test_accuracy"][-1] for history in histories]
    for name, histories in runs.items()
}
stalled = {
    name: [epochs_at_chance(history) for history in histories]
    for name, histories in runs.items()
}
plain, normalised = "without normalisation", "with batch normalisation"
record(
    vgg_accuracy_gap=np.mean(final[normalised]) - np.mean(final[plain]),
    vgg_accuracy_gap_se=np.hypot(
        mean_se(final[normalised], len(data.y_test)),
        mean_se(final[plain], len(data.y_test)),
    ),
    vgg_chance_epochs_gap=np.mean(stalled[plain])
    - np.mean(stalled[normalised]),
    vgg_chance_epochs_gap_se=np.sqrt(
        mean_se(stalled[plain]) ** 2
        + mean_se(stalled[normalised]) ** 2
        + 1 / 12
    ),
)
record(
    row_vgg_multiply_adds=sum(
        row.multiply_adds for row in layer_costs(vgg_mini(), (1, 24, 24))
    ),
    num_epochs=TRIALS["num_epochs"],
    chance_margin=CHANCE_MARGIN,
    num_test=len(data.y_test),
)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
epochs = np.arange(1, TRIALS["num_epochs"] + 1)
for ax, (name, histories) in zip(axes, runs.items()):
    # Each seed its own marker and dash, so that runs lying on top of each
    # other (at chance) stay visible; no blue or red, the colours of sign.
    styles = [
        ("k", "o", "-"),
        ("tab:orange", "s", "--"),
        ("tab:green", "^", "-."),
    ]
    seeds = TRIALS["seeds"]
    for (colour, marker, dash), seed, history in zip(styles, seeds, histories):
        ax.plot(
            epochs,
            history["train_loss"],
            color=colour,
            marker=marker,
            ls=dash,
            markersize=5,
            markerfacecolor="none",
            label=f"seed {seed}",
        )
    ax.axhline(np.log(10), color="0.3", ls=":", label="chance (ln 10)")
    ax.set(title=f"VGG, {name}", xlabel="epoch", ylim=(0, 2.6))
axes[0].set_ylabel("training loss (mean over the epoch)")
# One legend for both panels (the seeds are the same), outside them.
fig.legend(
    *axes[0].get_legend_handles_labels(),
    loc="upper center",
    bbox_to_anchor=(0.5, 0),
    ncol=4,
    frameon=False,
)
save_figure(fig, "vgg_runs")
