# %% [markdown]
# # Chapter 3, part 3: how many kernels? (native digits)
#
# The softmax pipeline with 1 to 64 learned kernels, each trained from three
# seeds under the book's protocol, on the native 8 × 8 digits. A run here
# takes about a second, so the sweep goes further than on the shifted digits.

# %%
from book import (
    PROTOCOL,
    bank_summary,
    feature_maps,
    load_dataset,
    record,
    save_figure,
    setup,
    sweep_results,
    table_row,
)
from many_kernels_ops import (
    draw_bank_with_scale,
    paired_gains,
    per_image_results,
    plot_sweep_seeds,
    sign_shares,
    sweep,
    title_decimals,
)

setup()


# %% [markdown]
# ## The sweep
#
# `feature_maps` and `draw_learned_bank` are the chapter's functions,
# saved in `book.py`; `sweep`, `plot_sweep_seeds` and `draw_bank_with_scale`
# are in `many_kernels_ops.py`.


# %%
# --8<-- [start:run-sweep]
data = load_dataset("digits")
trials = sweep(data, counts=[1, 2, 4, 8, 16, 32, 64])
for N, trial in trials.items():
    print(
        f"{N:2} kernels: {trial['mean']:.3f} ± {trial['std']:.3f} "
        f"({trial['parameters']:,} parameters, {trial['seconds']:.1f} s)"
    )
# --8<-- [end:run-sweep]

# --8<-- [start:row]
ROW = 16  # the bank size for the book's results table
# --8<-- [end:row]
record(
    counts=list(trials),
    num_seeds=len(PROTOCOL["seeds"]),
    num_epochs=PROTOCOL["num_epochs"],
    image_size=data.X_train.shape[-1],
    num_train=len(data.X_train),
    chance_accuracy=1 / 10,
    largest_count=max(trials),
    row_many_kernels_count=ROW,
    **table_row("many_kernels_digits", trials[ROW]),
    sweep_seconds=sum(
        len(t["accuracies"]) * t["seconds"] for t in trials.values()
    ),
)
results = sweep_results(trials, data)
results |= per_image_results(trials, data)
gains = paired_gains(results, [(1, 16), (2, 16), (16, 32), (16, 64), (32, 64)])
for key, value in gains.items():
    print(key, value)
record(**results, **gains, num_test=len(data.X_test))


# %% [markdown]
# ## Accuracy against the number of kernels


# %%
# Left: the shifted digits' scale, from zero; right: zoomed in.
fig = plot_sweep_seeds(trials, results, "native digits (8 × 8)", zoom=True)
save_figure(fig, "sweep_digits")


# %% [markdown]
# ## The learned bank and its feature maps
#
# The bank of the results table's row, from the last seed's run: each kernel
# above the feature map it makes from the first test image.


# %%
# --8<-- [start:run-feature-maps]
net = trials[ROW]["net"]  # run_trials keeps the last seed's net
K = net.conv.weight.detach()  # (C_out, C_in, k, k) = (16, 1, 3, 3)
maps = feature_maps(net, data.X_test[:1])  # (1, 16, H, W)
# --8<-- [end:run-feature-maps]
shares = sign_shares(K).tolist()  # the figure's titles
record(
    **bank_summary(net, data),
    bank_sign_shares=shares,
    bank_title_decimals=title_decimals(shares),
)


# %%
fig = draw_bank_with_scale(K, data.X_test[0], maps[0], int(data.y_test[0]))
save_figure(fig, "learned_bank_digits")
