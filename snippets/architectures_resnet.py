# %% [markdown]
# # Chapter 9, part 4: ResNet, and what its shortcuts fix
#
# The scaled-down ResNet trained on the shifted digits under the book's
# protocol; then a deep stack of the same blocks with and without its
# shortcuts: the gradient that reaches the first layer at initialisation, for
# stacks of growing depth, and the training loss of a 34-layer stack.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

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
    mini_batches,
    record,
    run_trials,
    save_figure,
    setup,
    table_row,
)

setup()

# %% [markdown]
# ## The scaled-down ResNet

# %%
# --8<-- [start:trials]
data = standardise(load_dataset("shifted_digits"))
resnet = run_trials(resnet_mini, data)  # book.PROTOCOL: seeds, epochs, Adam
print(f"test accuracy {resnet['mean']:.3f} ± {resnet['std']:.3f}")
# --8<-- [end:trials]
record(
    **table_row("resnet", resnet),
    row_resnet_accuracies=resnet["accuracies"],
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
    # One stage of 8 channels at stride 1: every "projection" shortcut here
    # is an identity (a 1 × 1 projection only where the shape changes).
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
    gradient_norms_plain=plain.tolist(),  # (depths, seeds)
    gradient_norms_residual=residual.tolist(),
)

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for kind, colour in [("plain", "tab:orange"), ("residual", "tab:purple")]:
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
#
# The loop of `book.train` (Adam, the protocol's learning rate and batch
# size), keeping every mini-batch's loss and the length of the gradient at
# the first layer.


# %%
# --8<-- [start:training]
def train_steps(net, data, num_steps, seed):
    """Mini-batch Adam as in book.train, for num_steps mini-batches; returns
    each step's training loss, first-layer gradient length and how far the
    first layer's weights have moved from their start."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=PROTOCOL["lr"])
    first = net.features[0][0]  # the stem's convolution
    start = first.weight.detach().clone()
    losses, gradients, moved = [], [], []
    net.train()
    while len(losses) < num_steps:
        n = len(data.X_train)
        for batch in mini_batches(n, PROTOCOL["batch_size"], generator):
            X, y = data.X_train[batch], data.y_train[batch]
            loss = F.cross_entropy(net(X), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            gradients.append(first.weight.grad.norm().item())
            moved.append((first.weight.detach() - start).norm().item())
            if len(losses) == num_steps:
                break
    return np.array(losses), np.array(gradients), np.array(moved)


num_blocks, num_steps = 16, 60  # 34 layers, about an epoch and a half
runs = {"plain": [], "residual": []}
# Every shortcut an identity, as above: one stage, one width, stride 1.
for kind, shortcut in [("plain", None), ("residual", "projection")]:
    for seed in PROTOCOL["seeds"]:
        torch.manual_seed(seed)
        net = deep_stack(num_blocks, shortcut)
        runs[kind].append(train_steps(net, data, num_steps, seed))
last = 20  # the loss at the end: the mean of the last 20 mini-batches
for kind, kind_runs in runs.items():
    final = [round(losses[-last:].mean(), 2) for losses, *_ in kind_runs]
    print(kind, "final training loss", final)
# --8<-- [end:training]
plain_loss, residual_loss = (
    np.array([losses[-last:].mean() for losses, *_ in runs[kind]])
    for kind in ("plain", "residual")
)
record(
    stack_layers=2 * num_blocks + 2,
    stack_steps=num_steps,
    num_train=len(data.X_train),
    stack_epochs=num_steps / (len(data.X_train) // PROTOCOL["batch_size"]),
    # the standard error of each mean over the seeds: s / sqrt(k)
    plain_final_loss_se=plain_loss.std(ddof=1) / np.sqrt(len(plain_loss)),
    residual_final_loss_se=residual_loss.std(ddof=1)
    / np.sqrt(len(residual_loss)),
    stack_last_steps=last,
    plain_final_loss=plain_loss.mean(),
    plain_final_loss_std=plain_loss.std(ddof=1),
    plain_final_losses=plain_loss.tolist(),
    residual_final_loss=residual_loss.mean(),
    residual_final_loss_std=residual_loss.std(ddof=1),
    residual_final_losses=residual_loss.tolist(),
    worst_residual_loss=residual_loss.max(),
    best_plain_loss=plain_loss.min(),
    chance_loss=np.log(10),
    stack_parameters=count_parameters(net),
    stack_parameters_plain=count_parameters(deep_stack(num_blocks, None)),
)

# %%
# When does the plain stack's first-layer gradient (mean of the seeds) fall
# below the residual stack's, and how often is it below from then on?
plain_gradients, residual_gradients = (
    np.array([gradients for _, gradients, _ in runs[kind]])  # (seeds, steps)
    for kind in ("plain", "residual")
)
plain_mean, residual_mean = plain_gradients.mean(0), residual_gradients.mean(0)
below = plain_mean < residual_mean
crossing = int(np.argmax(below))  # the first mini-batch where it is below
record(
    first_step_gradient_ratio=plain_mean[0] / residual_mean[0],
    gradient_crossing_step=crossing + 1,
    # the prose's "about": a crossing of two noisy three-seed means
    gradient_crossing_about=int(10 * round((crossing + 1) / 10)),
    gradient_below_share_after=below[crossing:].mean(),
    # per seed pair: log10 of plain over residual, first step and last steps
    first_step_gradient_log_ratios=np.log10(
        plain_gradients[:, 0] / residual_gradients[:, 0]
    ).tolist(),
    late_gradient_ratio=plain_mean[-last:].mean()
    / residual_mean[-last:].mean(),
    late_gradient_log_ratios=np.log10(
        plain_gradients[:, -last:].mean(1)
        / residual_gradients[:, -last:].mean(1)
    ).tolist(),
)

# %%
# Adam's steps hardly depend on the gradient's length: how far the first
# layer has moved after the first `last` mini-batches, plain over residual.
early_moved = {
    kind: np.array([moved[last - 1] for _, _, moved in runs[kind]])
    for kind in runs
}
early_gradient = {
    kind: np.array([gradients[:last].mean() for _, gradients, _ in runs[kind]])
    for kind in runs
}
record(
    early_steps=last,
    early_moved_log_ratios=np.log10(
        early_moved["plain"] / early_moved["residual"]
    ).tolist(),
    early_gradient_log_ratios=np.log10(
        early_gradient["plain"] / early_gradient["residual"]
    ).tolist(),
    early_moved_ratio=early_moved["plain"].mean()
    / early_moved["residual"].mean(),
    early_gradient_ratio=early_gradient["plain"].mean()
    / early_gradient["residual"].mean(),
)

# %%
fig, (loss_ax, gradient_ax) = plt.subplots(1, 2, figsize=(9, 3.8))
steps = np.arange(1, num_steps + 1)
for kind, colour, line in [
    ("plain", "tab:orange", "-"),
    ("residual", "tab:purple", "--"),
]:
    losses = np.array([r[0] for r in runs[kind]])
    gradients = np.array([r[1] for r in runs[kind]])
    for run in losses:
        loss_ax.plot(steps, run, color=colour, alpha=0.25, lw=0.8)
    loss_ax.plot(
        steps, losses.mean(axis=0), color=colour, ls=line, lw=2, label=kind
    )
    for run in gradients:
        gradient_ax.plot(steps, run, color=colour, alpha=0.25, lw=0.8)
    gradient_ax.plot(
        steps, gradients.mean(axis=0), color=colour, ls=line, lw=2, label=kind
    )
loss_ax.axhline(np.log(10), color="0.3", ls=":", label="chance (ln 10)")
loss_ax.set(xlabel="mini-batch", ylabel="training loss (cross-entropy)")
loss_ax.legend(fontsize=11)
gradient_ax.set_yscale("log")
# Labelled ticks at 1, 2, 5 times powers of ten, as plain numbers: the
# default labels every minor tick with a small exponent.
low, high = gradient_ax.get_ylim()
ticks = [
    m * 10.0**e
    for e in range(-3, 3)
    for m in (1, 2, 5)
    if low <= m * 10.0**e <= high
]
gradient_ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
gradient_ax.yaxis.set_minor_formatter(plt.NullFormatter())
gradient_ax.set(
    xlabel="mini-batch", ylabel="gradient length at the first layer"
)
gradient_ax.legend(fontsize=11)
for ax in (loss_ax, gradient_ax):
    ax.tick_params(labelsize=11)
    ax.xaxis.label.set_size(11)
    ax.yaxis.label.set_size(11)
fig.tight_layout()
save_figure(fig, "training")
