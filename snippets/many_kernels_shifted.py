# %% [markdown]
# # Chapter 3, part 2: how many kernels? (shifted digits)
#
# The softmax pipeline with 1, 2, 4, 8 and 16 learned kernels, each trained
# from three seeds under the book's protocol, on the shifted digits: 24 × 24
# noisy canvases with the digit scaled and placed at random.

# %%
from book import (
    PROTOCOL,
    accuracy,
    draw_learned_bank,
    feature_maps,
    load_dataset,
    plot_sweep,
    record,
    save_figure,
    setup,
    sweep,
)

setup()


# %% [markdown]
# ## The sweep
#
# `sweep`, `plot_sweep`, `feature_maps` and `draw_learned_bank` are
# the chapter's functions, saved in `book.py` for both sweeps.


# %%
# --8<-- [start:run-sweep]
data = load_dataset("shifted_digits")
trials = sweep(data, counts=[1, 2, 4, 8, 16])
for N, trial in trials.items():
    print(
        f"{N:2} kernels: {trial['mean']:.3f} ± {trial['std']:.3f} "
        f"({trial['parameters']:,} parameters, {trial['seconds']:.1f} s)"
    )
# --8<-- [end:run-sweep]

ROW = 16  # the bank size for the book's results table
record(
    counts=list(trials),
    num_seeds=len(PROTOCOL["seeds"]),
    num_epochs=PROTOCOL["num_epochs"],
    image_size=data.X_train.shape[-1],
    num_train=len(data.X_train),
    chance_accuracy=1 / 10,
    largest_count=max(trials),
    row_many_kernels_count=ROW,
    row_many_kernels_shifted_mean=trials[ROW]["mean"],
    row_many_kernels_shifted_std=trials[ROW]["std"],
    row_many_kernels_shifted_parameters=trials[ROW]["parameters"],
    row_many_kernels_shifted_seconds=trials[ROW]["seconds"],
    sweep_seconds=sum(
        len(t["accuracies"]) * t["seconds"] for t in trials.values()
    ),
)
# run_trials keeps only the last seed's net: how well it fits its training set.
train_accuracy = {
    N: accuracy(trial["net"], data.X_train, data.y_train)
    for N, trial in trials.items()
}
for N, trial in trials.items():
    record(
        **{
            f"mean_{N}": trial["mean"],
            f"std_{N}": trial["std"],
            f"accuracies_{N}": trial["accuracies"],
            f"parameters_{N}": trial["parameters"],
            f"seconds_{N}": trial["seconds"],
            f"train_accuracy_{N}": train_accuracy[N],
        }
    )


# %% [markdown]
# ## Accuracy against the number of kernels


# %%
fig = plot_sweep(trials, train_accuracy, "shifted digits (24 × 24)")
fig.axes[0].set_ylim(0, 1.02)
save_figure(fig, "sweep_shifted")


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
# 1: the weights share one sign and average (a blur); 0: they cancel (Sobel).
one_sign = K.sum(dim=(1, 2, 3)).abs() / K.abs().sum(dim=(1, 2, 3))
# The share of each map the ReLU sets to zero, over all the test images.
zeros = (feature_maps(net, data.X_test) == 0).float().mean(dim=(0, 2, 3))
ONE_SIGN, BALANCED, SPARSE = 0.5, 0.25, 0.9  # thresholds for the prose
sparse = zeros > SPARSE  # maps the ReLU leaves (nearly) empty
record(
    bank_label=int(data.y_test[0]),
    bank_one_sign_kernels=int((one_sign > ONE_SIGN).sum()),
    bank_balanced_kernels=int((one_sign < BALANCED).sum()),
    bank_sparse_maps=int(sparse.sum()),
    # The largest bias among the kernels of those nearly empty maps.
    bank_sparse_max_bias=(
        net.conv.bias[sparse].max().item() if sparse.any() else None
    ),
    one_sign_above=ONE_SIGN,
    balanced_below=BALANCED,
    sparse_above=SPARSE,
)


# %%
fig = draw_learned_bank(K, data.X_test[0], maps[0], int(data.y_test[0]))
save_figure(fig, "learned_bank_shifted")
