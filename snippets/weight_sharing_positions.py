# %% [markdown]
# # Chapter 6, part 2: the evidence, digits in new places
#
# A fully connected network (MLP) and chapter 4's CNN, with about the same
# number of parameters, trained on digits that always sit at the same place
# of the 24 × 24 canvas, then tested on the same test digits placed
# elsewhere: column by column, row by row, and anywhere at random.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from book import (
    PROTOCOL,
    SmallCNN,
    Split,
    accuracy,
    count_parameters,
    load_dataset,
    record,
    run_trials,
    save_figure,
    setup,
)
from weight_sharing_ops import matched_hidden, place_at

setup()

# %% [markdown]
# ## Digits at one position

# %%
# --8<-- [start:data]
digits = load_dataset("digits")  # 8 × 8 digits, the book's split
rng = np.random.default_rng(0)
ROW = COL = 8  # the training position: the middle of the canvas
data = Split(
    place_at(digits.X_train, ROW, COL, rng=rng),  # (N, 1, 24, 24)
    digits.y_train,
    place_at(digits.X_test, ROW, COL, rng=rng),
    digits.y_test,
)

# The same test digits, moved: across the canvas, down it, and anywhere.
MOVES = range(-8, 9)  # pixels from the training position
across = {d: place_at(digits.X_test, ROW, COL + d, rng=rng) for d in MOVES}
down = {d: place_at(digits.X_test, ROW + d, COL, rng=rng) for d in MOVES}
corners = rng.integers(0, 24 - 8 + 1, size=(len(digits.X_test), 2))
anywhere = torch.cat(
    [
        place_at(x, row, col, rng=rng)
        for x, (row, col) in zip(digits.X_test, corners)
    ]
)
# --8<-- [end:data]
record(num_train=len(data.X_train), num_test=len(data.X_test), row=ROW)

# %%
examples = [data.X_train[0]] + [across[d][0] for d in (-8, -3, 0, 4, 8)]
titles = ["training digit"] + [
    f"test, {d:+d} px" if d else "test, same place" for d in (-8, -3, 0, 4, 8)
]
fig, axes = plt.subplots(1, len(examples), figsize=(11, 2.3))
for ax, image, title in zip(axes, examples, titles):
    ax.imshow(image[0].numpy(), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(True)
    ax.spines[:].set_color("0.7")
save_figure(fig, "placements")

# %% [markdown]
# ## Two networks of the same size

# %%
# --8<-- [start:models]
cnn_parameters = count_parameters(SmallCNN(image_size=24))
hidden = matched_hidden(cnn_parameters, inputs=24 * 24)


def make_mlp():
    """Every pixel to every hidden unit: no kernel, nothing shared."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(24 * 24, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 10),
    )


def make_cnn():
    return SmallCNN(image_size=24)  # chapter 4's CNN


print(f"MLP: {hidden} hidden units, {count_parameters(make_mlp()):,} params")
print(f"CNN: {cnn_parameters:,} params")
# --8<-- [end:models]
record(
    hidden=hidden,
    mlp_parameters=count_parameters(make_mlp()),
    cnn_parameters=cnn_parameters,
)


# %% [markdown]
# ## Train at one position, test at every other


# %%
# --8<-- [start:trials]
def position_trials(make_net):
    """Train make_net() at the training position, once per seed of the
    book's protocol; test each net there and at every other position."""
    runs = []
    for seed in PROTOCOL["seeds"]:
        trial = run_trials(make_net, data, {**PROTOCOL, "seeds": (seed,)})
        net, y = trial["net"], digits.y_test
        runs.append(
            {
                "across": [accuracy(net, X, y) for X in across.values()],
                "down": [accuracy(net, X, y) for X in down.values()],
                "anywhere": accuracy(net, anywhere, y),
                "history": trial["history"]["test_accuracy"],
            }
        )
    return runs


results = {"MLP": position_trials(make_mlp), "CNN": position_trials(make_cnn)}
for name, runs in results.items():
    same = [run["across"][8] for run in runs]  # move 0: the training place
    far = [run["anywhere"] for run in runs]
    print(
        f"{name}: same place {np.mean(same):.3f} ± {np.std(same):.3f}, "
        f"anywhere {np.mean(far):.3f} ± {np.std(far):.3f}"
    )
# --8<-- [end:trials]

# %%
moves = np.array(MOVES)
grid = (moves % 4 == 0) & (moves != 0)  # whole steps of the 4-pixel grid
off_grid = moves % 4 != 0
summary = {}
for name, runs in results.items():
    key = name.lower()
    across_ = np.array([run["across"] for run in runs])  # (seeds, moves)
    down_ = np.array([run["down"] for run in runs])
    both = np.concatenate([across_, down_], axis=1)
    both_moves = np.concatenate([moves, moves])
    far = [run["anywhere"] for run in runs]
    summary.update(
        {
            f"{key}_same_mean": across_[:, moves == 0].mean(),
            f"{key}_same_std": across_[:, moves == 0].std(),
            f"{key}_same_worst": across_[:, moves == 0].min(),
            f"{key}_anywhere_mean": np.mean(far),
            f"{key}_anywhere_std": np.std(far),
            f"{key}_anywhere_worst": np.min(far),
            f"{key}_anywhere_best": np.max(far),
            f"{key}_across_mean": across_.mean(axis=0).tolist(),
            f"{key}_across_std": across_.std(axis=0).tolist(),
            f"{key}_down_mean": down_.mean(axis=0).tolist(),
            f"{key}_down_std": down_.std(axis=0).tolist(),
            # per seed, moves across and down together
            f"{key}_grid_by_seed": both[:, np.isin(both_moves, moves[grid])]
            .mean(axis=1)
            .tolist(),
            f"{key}_off_grid_by_seed": both[
                :, np.isin(both_moves, moves[off_grid])
            ]
            .mean(axis=1)
            .tolist(),
            f"{key}_same_by_seed": across_[:, moves == 0][:, 0].tolist(),
            f"{key}_best_epoch_by_seed": [max(r["history"]) for r in runs],
        }
    )
mlp_across = np.array([run["across"] for run in results["MLP"]])
mlp_down = np.array([run["down"] for run in results["MLP"]])
mlp_both = np.concatenate([mlp_across, mlp_down], axis=1).mean(axis=0)
both_moves = np.concatenate([moves, moves])
cnn_grid = np.array(summary["cnn_grid_by_seed"])
cnn_off = np.array(summary["cnn_off_grid_by_seed"])
record(
    **summary,
    moves=moves.tolist(),
    num_seeds=len(PROTOCOL["seeds"]),
    num_epochs=PROTOCOL["num_epochs"],
    mlp_one_pixel=mlp_both[np.abs(both_moves) == 1].mean(),
    mlp_two_or_more_max=mlp_both[np.abs(both_moves) >= 2].max(),
    cnn_grid_mean=cnn_grid.mean(),
    cnn_grid_std=cnn_grid.std(),
    cnn_off_grid_mean=cnn_off.mean(),
    cnn_off_grid_std=cnn_off.std(),
    cnn_grid_lead_min=(cnn_grid - cnn_off).min(),
    cnn_grid_below_same_max=(
        np.array(summary["cnn_same_by_seed"]) - cnn_grid
    ).max(),
)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for ax, direction in zip(axes, ["across", "down"]):
    for name, colour in [("MLP", "tab:orange"), ("CNN", "tab:blue")]:
        rows = np.array([run[direction] for run in results[name]])
        mean, std = rows.mean(axis=0), rows.std(axis=0)
        ax.plot(moves, mean, marker="o", color=colour, label=name)
        ax.fill_between(moves, mean - std, mean + std, color=colour, alpha=0.2)
        for row in rows:  # each seed, faint
            ax.scatter(moves, row, color=colour, alpha=0.3, s=8)
    for d in moves[moves % 4 == 0]:
        ax.axvline(d, color="0.85", lw=1, zorder=0)
    ax.axhline(0.1, color="0.5", ls=":", label="chance")
    ax.set_xticks(moves[::2])
    label = "columns right" if direction == "across" else "rows down"
    ax.set(xlabel=f"test digit moved (pixels, {label})", ylim=(0, 1.02))
axes[0].set_ylabel("test accuracy")
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=10)
fig.subplots_adjust(bottom=0.25)
save_figure(fig, "accuracy_by_position")
