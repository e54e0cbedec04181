# %% [markdown]
# # Chapter 9, part 4: ResNet, and what its shortcuts fix
#
# The scaled-down ResNet-18 trained on the shifted digits under the book's
# protocol; then a deep stack of the same blocks with and without its
# shortcuts: the gradient that reaches the first layer at initialisation, for
# stacks of growing depth, and the training loss of a 34-layer stack.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from architectures_ops import (
    deep_stack,
    first_layer_gradient,
    layer_costs,
    resnet_mini,
    standardise,
)
from book import (
    PROTOCOL,
    count_parameters,
    load_dataset,
    record,
    run_trials,
    save_figure,
    setup,
    train,
)

setup()

# %% [markdown]
# ## The scaled-down ResNet-18

# %%
# --8<-- [start:trials]
data = standardise(load_dataset("shifted_digits"))
resnet = run_trials(resnet_mini, data)  # book.PROTOCOL: seeds, epochs, Adam
print(f"test accuracy {resnet['mean']:.3f} ± {resnet['std']:.3f}")
# --8<-- [end:trials]
record(
    row_resnet_mean=resnet["mean"],
    row_resnet_std=resnet["std"],
    row_resnet_worst=min(resnet["accuracies"]),
    row_resnet_parameters=resnet["parameters"],
    row_resnet_seconds=resnet["seconds"],
    row_resnet_multiply_adds=sum(
        row.multiply_adds for row in layer_costs(resnet_mini(), (1, 24, 24))
    ),
)

# %% [markdown]
# ## The gradient at the first layer, at initialisation
#
# Stacks of 1 to 32 basic blocks (4 to 66 layers), with and without their
# shortcuts, each from three random initialisations, on one mini-batch.

# %%
# --8<-- [start:gradients]
X, y = data.X_train[:64], data.y_train[:64]
blocks = [1, 2, 4, 8, 16, 32]
norms = {"plain": [], "residual": []}
for num_blocks in blocks:
    for kind, shortcut in [("plain", None), ("residual", "projection")]:
        per_seed = []
        for seed in PROTOCOL["seeds"]:
            torch.manual_seed(seed)
            net = deep_stack(num_blocks, shortcut)
            per_seed.append(first_layer_gradient(net, X, y))
        norms[kind].append(per_seed)
layers = [2 * n + 2 for n in blocks]
for kind, values in norms.items():
    print(kind, [f"{np.mean(v):.2g}" for v in values])
# --8<-- [end:gradients]
plain, residual = (np.array(norms[k]) for k in ("plain", "residual"))
record(
    gradient_layers=layers,
    gradient_shallow_layers=layers[0],
    gradient_deep_layers=layers[-1],
    plain_gradient_growth=plain[-1].mean() / plain[0].mean(),
    residual_gradient_growth=residual[-1].mean() / residual[0].mean(),
    deep_gradient_ratio=plain[-1].min() / residual[-1].max(),
    plain_gradient_monotone=bool(np.all(np.diff(plain.mean(axis=1)) > 0)),
)

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for kind, colour in [("plain", "tab:red"), ("residual", "tab:blue")]:
    values = np.array(norms[kind])
    ax.plot(layers, values.mean(axis=1), marker="o", color=colour, label=kind)
    for seed_values in values.T:  # each initialisation, faint
        ax.scatter(layers, seed_values, color=colour, alpha=0.3, s=12)
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xticks(layers, [str(n) for n in layers])
ax.set(
    xlabel="layers in the stack",
    ylabel="gradient length at the first layer",
)
ax.legend(title="stack")
save_figure(fig, "gradients")

# %% [markdown]
# ## Training a 34-layer stack, with and without shortcuts

# %%
# --8<-- [start:training]
num_blocks, num_epochs = 16, 2  # 34 layers; a short run shows the gap
losses = {"plain": [], "residual": []}
for kind, shortcut in [("plain", None), ("residual", "projection")]:
    for seed in PROTOCOL["seeds"]:
        torch.manual_seed(seed)
        net = deep_stack(num_blocks, shortcut)
        history = train(net, data, num_epochs=num_epochs, lr=PROTOCOL["lr"])
        losses[kind].append(history["train_loss"])
for kind, runs in losses.items():
    print(kind, "final training loss", np.round(np.array(runs)[:, -1], 2))
# --8<-- [end:training]
plain_loss, residual_loss = (np.array(losses[k])[:, -1] for k in losses)
record(
    stack_layers=2 * num_blocks + 2,
    stack_epochs=num_epochs,
    plain_final_loss=plain_loss.mean(),
    plain_final_loss_std=plain_loss.std(),
    residual_final_loss=residual_loss.mean(),
    residual_final_loss_std=residual_loss.std(),
    worst_residual_loss=residual_loss.max(),
    best_plain_loss=plain_loss.min(),
    chance_loss=np.log(10),
    stack_parameters=count_parameters(net),
    stack_parameters_plain=count_parameters(deep_stack(num_blocks, None)),
)

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.6))
epochs = np.arange(1, num_epochs + 1)
for kind, colour in [("plain", "tab:red"), ("residual", "tab:blue")]:
    runs = np.array(losses[kind])
    for run in runs:
        ax.plot(epochs, run, color=colour, alpha=0.35)
    ax.plot(epochs, runs.mean(axis=0), color=colour, lw=2.5, label=kind)
ax.axhline(np.log(10), color="0.5", ls=":", label="chance (ln 10)")
ax.set_xticks(epochs)
ax.set(xlabel="epoch", ylabel="training loss (cross-entropy)")
ax.legend()
save_figure(fig, "training")
