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
from matplotlib.ticker import PercentFormatter
from torch import nn

from book import (
    PROTOCOL,
    SmallCNN,
    count_parameters,
    load_dataset,
    record,
    save_figure,
    setup,
)
from weight_sharing_ops import (
    MOVES,
    POSITION_PROTOCOL,
    matched_hidden,
    placements,
    position_summary,
    position_trials,
    relative_change,
)

setup()

# %% [markdown]
# ## Digits at one position

# %%
# --8<-- [start:data]
digits = load_dataset("digits")  # 8 × 8 digits, the book's split
data, tests = placements(digits)  # trained in the middle, tested anywhere
across = tests["across"]  # {move: (N, 1, 24, 24)}, move -8 ... 8
# --8<-- [end:data]
record(num_train=len(data.X_train), num_test=len(data.X_test), row=8)

# %%
examples = [data.X_train[0]] + [across[d][0] for d in (-8, -3, 0, 4, 8)]
titles = ["training digit"] + [
    f"test, {d:+d} px" if d else "test, same place" for d in (-8, -3, 0, 4, 8)
]
fig, axes = plt.subplots(1, len(examples), figsize=(11, 2.3))
for ax, image, title in zip(axes, examples, titles):
    ax.imshow(image[0].numpy(), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(title, fontsize=10)
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
results = {
    "MLP": position_trials(make_mlp, data, tests),
    "CNN": position_trials(make_cnn, data, tests),
}
for name, runs in results.items():
    same = [run["across"][8] for run in runs]  # move 0: the training place
    far = [run["anywhere"] for run in runs]
    print(
        f"{name}: same place {np.mean(same):.3f} ± {np.std(same, ddof=1):.3f}"
        f", anywhere {np.mean(far):.3f} ± {np.std(far, ddof=1):.3f}"
    )
# --8<-- [end:trials]
summary = {}
for name, runs in results.items():
    summary.update(position_summary(runs, name.lower()))
record(
    **summary,
    moves=list(MOVES),
    num_seeds=len(results["CNN"]),
    num_epochs=POSITION_PROTOCOL["num_epochs"],
    book_epochs=PROTOCOL["num_epochs"],
    cnn_grid_drop_points=100
    * (summary["cnn_same_mean"] - summary["cnn_grid_mean"]),
)

# %% [markdown]
# ## What the trained CNN's features do when the digit moves
#
# The relative change of the global-max features between each test digit in
# the middle and the same digit moved. Moving by 0 draws only new noise.


# %%
# --8<-- [start:trained-features]
def global_max_features(net, X):
    """net's global-max features of the images X: (N, 64)."""
    net.eval()
    with torch.no_grad():
        return net.feature_maps(X)[-1].amax(dim=(2, 3))


def feature_change_from_middle(net):
    """For each move, the mean relative change of net's global-max features
    from the test digits in the middle to the same digits moved (across and
    down averaged)."""
    before = global_max_features(net, data.X_test)  # once per net
    return [
        np.mean(
            [
                relative_change(before, global_max_features(net, tests[way][d]))
                .mean()
                .item()
                for way in ("across", "down")
            ]
        )
        for d in MOVES
    ]


moves = np.array(MOVES)
change = np.array(  # (seeds, moves)
    [feature_change_from_middle(run["net"]) for run in results["CNN"]]
)
noise_only = change[:, moves == 0][:, 0]  # same place, new noise
on_grid = change[:, (moves % 4 == 0) & (moves != 0)].mean(axis=1)
off_grid = change[:, moves % 4 != 0].mean(axis=1)
print(f"new noise only: {noise_only.mean():.3f}")
print(f"on the grid: {on_grid.mean():.3f}, off it: {off_grid.mean():.3f}")
# --8<-- [end:trained-features]
record(
    trained_change_noise_mean=noise_only.mean(),
    trained_change_grid_mean=on_grid.mean(),
    trained_change_off_grid_mean=off_grid.mean(),
    trained_change_noise_by_seed=noise_only.tolist(),
    trained_change_grid_by_seed=on_grid.tolist(),
    trained_change_off_grid_by_seed=off_grid.tolist(),
)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
# categories, not signs: no red or blue (chapter 1)
styles = {"MLP": ("tab:orange", "s", "--"), "CNN": ("tab:purple", "o", "-")}
for ax, direction in zip(axes, ["across", "down"]):
    for name, (colour, marker, line) in styles.items():
        rows = np.array([run[direction] for run in results[name]])
        mean, std = rows.mean(axis=0), rows.std(axis=0, ddof=1)
        ax.plot(moves, mean, marker=marker, ls=line, color=colour, label=name)
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
axes[0].yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=10)
fig.subplots_adjust(bottom=0.25)
save_figure(fig, "accuracy_by_position")
