# %% [markdown]
# # Chapter 7, part 3: initialisation, with and without batch normalisation
#
# A plain stack of eight 3 × 3 convolutions, initialised four ways: PyTorch's
# default, He initialisation, and He scaled too small and too large. We look
# at the size of each layer's activations and weight gradients before any
# training, then train each briefly, with and without batch normalisation.

# %%
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import torch

from book import (
    count_parameters,
    fit_trials,
    load_splits,
    record,
    save_figure,
    setup,
)
from training_well_ops import PlainCNN, initialise, layer_statistics

setup()

# %% [markdown]
# ## Activations and gradients, layer by layer, before training

# %%
# --8<-- [start:statistics]
data = load_splits("digits")
X, y = data.X_train[:256], data.y_train[:256]  # one large mini-batch
gains = {"PyTorch default": None, "He": 1.0, "He ÷ 4": 0.25, "He × 4": 4.0}


def make_net(gain, batch_norm):
    net = PlainCNN(depth=8, width=16, batch_norm=batch_norm)
    net = net if gain is None else initialise(net, gain)
    # Stored channels last, as SmallCNN is (chapter 4): with batch
    # normalisation a training step is about a fifth faster on a CPU.
    return net.to(memory_format=torch.channels_last)


statistics = {}
for batch_norm in (False, True):
    for name, gain in gains.items():
        torch.manual_seed(0)
        net = make_net(gain, batch_norm)
        statistics[name, batch_norm] = layer_statistics(net, X, y)
for name in gains:
    stds = statistics[name, False]["activation_std"]
    print(f"{name:16} output std, layer 1: {stds[0]:.2g}, 8: {stds[-1]:.2g}")
# --8<-- [end:statistics]

# %%
depth = 8
record(
    depth=depth,
    width=16,
    parameters=count_parameters(make_net(1.0, False)),
    parameters_bn=count_parameters(make_net(1.0, True)),
)
keys = {
    "PyTorch default": "default",
    "He": "he",
    "He ÷ 4": "small",
    "He × 4": "large",
}
for name, key in keys.items():
    for batch_norm, suffix in [(False, ""), (True, "_bn")]:
        stats = statistics[name, batch_norm]
        acts, grads = stats["activation_std"], stats["gradient_std"]
        record(
            **{
                f"{key}{suffix}_act_first": acts[0],
                f"{key}{suffix}_act_last": acts[-1],
                f"{key}{suffix}_act_ratio": acts[-1] / acts[0],
                f"{key}{suffix}_grad_first": grads[0],
                f"{key}{suffix}_grad_last": grads[-1],
                f"{key}{suffix}_grad_ratio": grads[0] / grads[-1],
                f"{key}{suffix}_acts": acts,
            }
        )
# The first layer's gradient, He ÷ 4 and He × 4 against He, in units of the
# 4 ** 8 of eight layers and the classifier: what the loss's own gradient adds.
he_grad = statistics["He", False]["gradient_std"][0]
record(
    small_grad_excess=he_grad
    / statistics["He ÷ 4", False]["gradient_std"][0]
    / 4**depth,
    large_grad_excess=statistics["He × 4", False]["gradient_std"][0]
    / he_grad
    / 4**depth,
)
# PyTorch's default weights with its biases set to zero, as He's are: the
# biases are what keeps the default's outputs from vanishing.
torch.manual_seed(0)
zero_bias = make_net(None, False)
for module in zero_bias.modules():
    if isinstance(module, torch.nn.Conv2d):
        torch.nn.init.zeros_(module.bias)
acts = layer_statistics(zero_bias, X, y)["activation_std"]
record(default_zero_bias_act_ratio=acts[-1] / acts[0])
# PyTorch's default weights, measured in units of He's spread.
torch.manual_seed(0)
conv = PlainCNN(depth=2).blocks[1][0]
record(default_gain=conv.weight.std() / (2 / conv.weight[0].numel()) ** 0.5)
# With batch normalisation the scale cancels: the largest relative
# difference between He's activations and the scaled ones, over the layers.
he = np.array(statistics["He", True]["activation_std"])
record(
    bn_scale_difference=max(
        np.abs(np.array(statistics[name, True]["activation_std"]) - he).max()
        / he.min()
        for name in ("He ÷ 4", "He × 4")
    )
)

# %%
layers = np.arange(1, depth + 1)
# Categories in colours other than the sign's red and blue, each with its own
# marker and dashes; open markers let the curves that coincide show through.
STYLES = {
    "PyTorch default": dict(color="tab:green", marker="s", ls=":"),
    "He": dict(color="k", marker="o", ls="-"),
    "He ÷ 4": dict(color="0.55", marker="v", ls="--"),
    "He × 4": dict(color="tab:brown", marker="^", ls="-."),
}
fig, axes = plt.subplots(2, 2, figsize=(8, 6), sharex=True, sharey="row")
for col, batch_norm in enumerate((False, True)):
    for name in gains:
        stats = statistics[name, batch_norm]
        for row, key in enumerate(("activation_std", "gradient_std")):
            axes[row, col].plot(
                layers, stats[key], mfc="none", label=name, **STYLES[name]
            )
    title = "with" if batch_norm else "without"
    axes[0, col].set_title(f"{title} batch normalisation", fontsize=11)
    axes[1, col].set_xlabel("layer", fontsize=11)
for ax in axes.flat:
    ax.set_yscale("log")
    ax.set_xticks(layers)
    ax.tick_params(labelsize=11)
axes[0, 0].set_ylabel("std of the layer's output", fontsize=11)
axes[1, 0].set_ylabel("std of the gradient\nof its weights", fontsize=11)
axes[1, 0].legend(
    loc="upper center", bbox_to_anchor=(1.1, -0.22), ncol=4, fontsize=11
)
save_figure(fig, "layers")

# %% [markdown]
# ## Training each, from several seeds

# %%
# --8<-- [start:trials]
outcomes = {}
seeds = range(5)  # the default's runs differ widely: more than three
num_epochs = 3  # enough to separate the initialisations clearly
for batch_norm in (False, True):
    for name, gain in gains.items():
        make = partial(make_net, gain, batch_norm)
        trials = fit_trials(make, data, seeds, num_epochs=num_epochs, lr=0.003)
        outcomes[name, batch_norm] = trials
        print(
            f"batch norm {batch_norm!s:5}  {name:16} validation "
            f"{trials['mean']:.3f} ± {trials['std']:.3f}"
        )
# --8<-- [end:trials]
for name, key in keys.items():
    for batch_norm, suffix in [(False, ""), (True, "_bn")]:
        trials = outcomes[name, batch_norm]
        first_loss = [h["train_loss"][0] for h in trials["histories"]]
        record(
            **{
                f"{key}{suffix}_val_mean": trials["mean"],
                f"{key}{suffix}_val_std": trials["std"],
                f"{key}{suffix}_val_by_seed": trials["val_accuracies"],
                f"{key}{suffix}_val_min": min(trials["val_accuracies"]),
                f"{key}{suffix}_val_max": max(trials["val_accuracies"]),
                f"{key}{suffix}_first_loss": float(np.mean(first_loss)),
            }
        )
record(
    num_epochs=num_epochs,
    lr=0.003,
    num_seeds=len(seeds),
    num_val=len(data.X_val),
)

# %%
fig, ax = plt.subplots(figsize=(8, 3.6))
bar_width = 0.38
positions = np.arange(len(gains))
for offset, batch_norm, colour, hatch, label in [  # not red/blue: no sign
    (-bar_width / 2, False, "tab:orange", "", "without batch normalisation"),
    (bar_width / 2, True, "tab:purple", "//", "with"),
]:
    trials = [outcomes[name, batch_norm] for name in gains]
    ax.bar(
        positions + offset,
        [t["mean"] for t in trials],
        bar_width,
        yerr=[t["std"] for t in trials],
        capsize=4,
        color=colour,
        hatch=hatch,
        edgecolor="white",
        label=label,
    )
ax.axhline(0.1, color="0.5", ls=":", label="chance")
ax.set_xticks(positions, list(gains))
ax.set(ylabel="validation accuracy", ylim=(0, 1.05))
ax.set_title(
    f"after {num_epochs} epochs, mean ± std over {len(seeds)} seeds",
    fontsize=10,
)
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=9, ncol=3)
save_figure(fig, "init_training")
