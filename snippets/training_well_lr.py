# %% [markdown]
# # Chapter 7, part 2: the learning rate, with and without batch normalisation
#
# A sweep of learning rates for chapter 4's CNN, with its batch normalisation
# and without it, scored on a validation set after a short training; then the
# learning-rate range test, which gives a suggestion from a single run. The
# native 8 × 8 digits keep each training run short.

# %%
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import torch

from book import SmallCNN, fit_trials, load_splits, record, save_figure, setup
from training_well_ops import difference_se, lr_range_test, without_batch_norm

setup()

# %% [markdown]
# ## The sweep

# %%
# --8<-- [start:sweep]
data = load_splits("digits")
lrs = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]


def make_net(batch_norm=True):
    net = SmallCNN(image_size=8)
    return net if batch_norm else without_batch_norm(net)


sweep = {}
for batch_norm in (True, False):
    for lr in lrs:
        make = partial(make_net, batch_norm)
        seeds = range(6) if lr == lrs[-1] else range(3)  # unstable: more
        sweep[batch_norm, lr] = fit_trials(
            make, data, seeds, num_epochs=4, lr=lr
        )
for lr in lrs:
    with_bn, without = sweep[True, lr]["mean"], sweep[False, lr]["mean"]
    print(
        f"lr {lr:<6}  validation: {with_bn:.3f} with BN, {without:.3f} without"
    )
# --8<-- [end:sweep]

# %%
means = {
    bn: np.array([sweep[bn, lr]["mean"] for lr in lrs]) for bn in (True, False)
}
stds = {
    bn: np.array([sweep[bn, lr]["std"] for lr in lrs]) for bn in (True, False)
}
best = {bn: lrs[int(np.argmax(means[bn]))] for bn in (True, False)}
by_seed = {
    bn: [sweep[bn, lr]["val_accuracies"] for lr in lrs] for bn in (True, False)
}
num_val = len(data.X_val)
for bn, name in [(True, "bn"), (False, "plain")]:
    record(
        **{
            f"{name}_best_lr": best[bn],
            f"{name}_best_mean": means[bn].max(),
            f"{name}_best_std": stds[bn][np.argmax(means[bn])],
            f"{name}_means": means[bn].tolist(),
            f"{name}_stds": stds[bn].tolist(),
            f"{name}_by_seed": by_seed[bn],
        }
    )
# The largest rate up to which batch normalisation leads at every rate, by
# at least twice the standard error of the difference (seeds and the
# sampling error of the validation set).
leads = [
    means[True][i] - means[False][i]
    >= 2 * difference_se(by_seed[True][i], by_seed[False][i], num_val)
    for i in range(len(lrs))
]
first_miss = next((i for i, lead in enumerate(leads) if not lead), len(lrs))
record(
    bn_leads_up_to=lrs[first_miss - 1] if first_miss > 0 else None,
    bn_lowest_mean=means[True][0],
    bn_lowest_std=stds[True][0],
    bn_highest_mean=means[True][-1],
    bn_highest_std=stds[True][-1],
    plain_lowest_mean=means[False][0],
    plain_lowest_std=stds[False][0],
    plain_highest_mean=means[False][-1],
    low_rate=1e-3,  # far below the best: what each network forgives
    bn_at_low_rate_mean=means[True][lrs.index(1e-3)],
    plain_at_low_rate_mean=means[False][lrs.index(1e-3)],
    num_lrs=len(lrs),
    lrs=lrs,
    lr_lowest=lrs[0],
    lr_highest=lrs[-1],
    sweep_epochs=4,
    num_seeds=3,
    num_seeds_highest=len(sweep[True, lrs[-1]]["nets"]),
    num_runs=sum(len(trials["nets"]) for trials in sweep.values()),
    num_train=len(data.X_train),
    num_val=len(data.X_val),
)

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
for bn, label, colour, marker, line, nudge in [  # not red/blue: that is sign
    (True, "with batch normalisation", "tab:purple", "o", "-", 0.88),
    (False, "without", "tab:orange", "s", "--", 1.13),
]:
    ax.plot(lrs, means[bn], marker=marker, ls=line, color=colour, label=label)
    # Each seed as a dot, nudged sideways so the two sets stay apart: at the
    # largest rate the runs split in two, which a mean ± std would hide.
    for lr, accuracies in zip(lrs, by_seed[bn]):
        ax.scatter(
            [lr * nudge] * len(accuracies),
            accuracies,
            s=14,
            marker=marker,
            facecolors="none",
            edgecolors=colour,
            linewidths=0.8,
        )
ax.axhline(0.1, color="0.5", ls=":", label="chance")
ax.set_xscale("log")
ax.set(
    xlabel="learning rate (Adam)",
    ylabel="validation accuracy",
    title="after 4 epochs: mean (line) and each seed (dots)",
    ylim=(0, 1.02),
)
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), fontsize=9, ncol=3)
save_figure(fig, "sweep")

# %% [markdown]
# ## The range test

# %%
# --8<-- [start:range-test]
suggestions = {True: [], False: []}
runs = {}
for batch_norm in (True, False):
    for seed in range(3):
        torch.manual_seed(seed)
        net = make_net(batch_norm)
        lr, loss = lr_range_test(net, data, seed=seed)
        runs[batch_norm, seed] = lr, loss
        # A rule of thumb: a tenth of where the loss was lowest.
        suggestions[batch_norm].append(lr[np.argmin(loss)] / 10)
    print(
        f"batch norm {batch_norm!s:5}  suggested lr",
        np.round(suggestions[batch_norm], 4),
    )
# --8<-- [end:range-test]


# %%
# --8<-- [start:range-check]
def nearest_sweep_index(lr):
    """The sweep's learning rate nearest to lr (in log scale)."""
    return int(np.argmin(np.abs(np.log(lrs) - np.log(lr))))


def nearest_sweep_mean(bn, lr):
    return means[bn][nearest_sweep_index(lr)]


def shortfall(bn, i):
    """How far sweep point i falls below the sweep's best, and the standard
    error of that difference (seeds and validation sampling)."""
    top = int(np.argmax(means[bn]))
    se = difference_se(by_seed[bn][top], by_seed[bn][i], num_val)
    return means[bn][top] - means[bn][i], se


def near_the_best(bn, lr):
    """No clear difference: the nearest sweep point's shortfall from the
    sweep's best is within twice its standard error."""
    gap, se = shortfall(bn, nearest_sweep_index(lr))
    return bool(gap <= 2 * se)


for bn in (True, False):
    for lr in suggestions[bn]:
        i = nearest_sweep_index(lr)
        gap, se = shortfall(bn, i)
        print(
            f"batch norm {bn!s:5}  suggested {lr:.4f}  nearest {lrs[i]:<6}"
            f"  {means[bn][i]:.3f}, {gap:.3f} ± {se:.3f} below the best"
        )
# --8<-- [end:range-check]


for bn, name in [(True, "bn"), (False, "plain")]:
    suggested = float(np.exp(np.mean(np.log(suggestions[bn]))))
    record(
        **{
            f"{name}_suggested_lr": suggested,
            f"{name}_suggestions": suggestions[bn],
            f"{name}_suggested_lowest": min(suggestions[bn]),
            f"{name}_suggested_highest": max(suggestions[bn]),
            # How far below the sweep's best is the nearest sweep point?
            f"{name}_shortfalls": [
                means[bn].max() - nearest_sweep_mean(bn, lr)
                for lr in suggestions[bn]
            ],
            f"{name}_nearest_index": [
                nearest_sweep_index(lr) for lr in suggestions[bn]
            ],
            f"{name}_near_best_count": sum(
                near_the_best(bn, lr) for lr in suggestions[bn]
            ),
            f"{name}_shortfall_ses": [
                shortfall(bn, nearest_sweep_index(lr))[1]
                for lr in suggestions[bn]
            ],
            # How flat the top is: the sweep rates with no clear difference
            # from the best, any of which the check would have accepted.
            f"{name}_flat_lrs": [
                lrs[i]
                for i in range(len(lrs))
                if shortfall(bn, i)[0] <= 2 * shortfall(bn, i)[1]
            ],
        }
    )
    flat = [lr for lr in lrs if near_the_best(bn, lr)]
    worst = max(
        (shortfall(bn, nearest_sweep_index(lr)) for lr in suggestions[bn]),
        key=lambda gap_se: gap_se[0],
    )
    record(
        **{
            f"{name}_flat_lowest": min(flat),
            f"{name}_flat_highest": max(flat),
            f"{name}_worst_shortfall": worst[0],
            f"{name}_worst_shortfall_se": worst[1],
        }
    )
steps_per_epoch = len(data.X_train) // 64  # as mini_batches cuts an epoch
num_runs = sum(len(trials["nets"]) for trials in sweep.values())
sweep_steps = num_runs * 4 * steps_per_epoch
range_steps = sum(len(lr) for lr, _ in runs.values())
record(
    range_steps_max=100,
    sweep_steps=sweep_steps,
    range_steps=range_steps,
    range_cost_share=range_steps / sweep_steps,
)

# %%
SEED_STYLES = [("k", "-"), ("tab:green", "--"), ("tab:brown", "-.")]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
for ax, bn, title in [
    (axes[0], True, "with batch normalisation"),
    (axes[1], False, "without batch normalisation"),
]:
    for seed, (colour, line) in enumerate(SEED_STYLES):
        lr, loss = runs[bn, seed]
        ax.plot(lr, loss, color=colour, ls=line, label=f"seed {seed}")
        ax.axvline(suggestions[bn][seed], color=colour, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate, growing at each step", fontsize=11)
    ax.set_title(title, fontsize=12)
    ax.tick_params(labelsize=11)
axes[0].set_ylabel("training loss (smoothed)", fontsize=11)
axes[0].set_ylim(0, 4)
fig.legend(
    *axes[0].get_legend_handles_labels(),
    loc="upper center",
    bbox_to_anchor=(0.5, -0.04),
    ncol=3,
    fontsize=11,
    frameon=False,
)
save_figure(fig, "range_test")
