# %% [markdown]
# # Chapter 1, part 2: the fixed-filter pipeline
#
# The classic recipe: a hand-made kernel turns each image into a feature map,
# and only a softmax layer on top is learned. We run it on scikit-learn's
# handwritten digits and compare it with a softmax on the raw pixels.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import FancyArrowPatch

from book import (
    SOBEL_X,
    SOBEL_Y,
    FixedFilterSoftmax,
    count_parameters,
    edge_magnitude,
    load_dataset,
    record,
    save_figure,
    setup,
    show_images,
    train,
)

setup()

# %% [markdown]
# ## The data: 8 × 8 handwritten digits

# %%
# --8<-- [start:load]
data = load_dataset("digits")
print(data.X_train.shape, data.X_test.shape)  # (N, C, H, W)
# --8<-- [end:load]
record(
    num_images=len(data.X_train) + len(data.X_test),
    num_train=len(data.X_train),
    num_test=len(data.X_test),
    image_size=data.X_train.shape[-1],
)

# %%
examples = [int(torch.nonzero(data.y_train == digit)[0]) for digit in range(10)]
fig = show_images(
    [data.X_train[i] for i in examples],
    [f"label {digit}" for digit in range(10)],
    ncols=10,
    cmap="gray_r",
)
save_figure(fig, "digits")

# %%
fig = show_images(
    [edge_magnitude(data.X_train[i : i + 1]) for i in examples],
    [f"edges of {digit}" for digit in range(10)],
    ncols=10,
    cmap="gray_r",
)
save_figure(fig, "digit_edges")

# %% [markdown]
# ## Train only the softmax layer

# %%
# --8<-- [start:pipeline]
pixels_in = data.X_train.shape[-1] ** 2  # one feature per feature-map pixel
# The baseline has no kernel at all: its "feature map" is the image itself.
feature_maps = {"sobel": edge_magnitude, "pixels": torch.nn.Identity()}

nets, histories = {}, {}
accuracies = {name: [] for name in feature_maps}
start = time.perf_counter()
for seed in range(5):  # five initialisations and batch orders, one data split
    for name, features in feature_maps.items():
        torch.manual_seed(seed)
        net = FixedFilterSoftmax(features, pixels_in)
        history = train(net, data, num_epochs=40, lr=0.01, seed=seed)
        accuracies[name].append(history["test_accuracy"][-1])
        if seed == 0:
            nets[name], histories[name] = net, history
seconds = time.perf_counter() - start
for name, values in accuracies.items():
    print(
        f"{name:>6}: {np.mean(values):.3f} ± {np.std(values):.3f} test accuracy"
    )
# --8<-- [end:pipeline]
sobel_net = nets["sobel"]
record(
    sobel_test_accuracy=np.mean(accuracies["sobel"]),
    sobel_test_accuracy_std=np.std(accuracies["sobel"]),
    pixels_test_accuracy=np.mean(accuracies["pixels"]),
    pixels_test_accuracy_std=np.std(accuracies["pixels"]),
    num_seeds=len(accuracies["sobel"]),
    training_seconds=seconds,
    runs=2 * len(accuracies["sobel"]),
    learned_parameters=count_parameters(sobel_net),
    fixed_kernel_numbers=SOBEL_X.numel() + SOBEL_Y.numel(),
    num_epochs=len(histories["sobel"]["test_accuracy"]),
    chance_accuracy=1 / 10,
)

# %%
fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.4))
for name, label in [("sobel", "Sobel edge map"), ("pixels", "raw pixels")]:
    epochs = np.arange(1, len(histories[name]["train_loss"]) + 1)
    loss_ax.plot(epochs, histories[name]["train_loss"], label=label)
    acc_ax.plot(epochs, histories[name]["test_accuracy"], label=label)
loss_ax.set(xlabel="epoch", ylabel="training loss (cross-entropy)")
acc_ax.set(xlabel="epoch", ylabel="test accuracy", ylim=(0.5, 1))
acc_ax.legend()
save_figure(fig, "training")

# %% [markdown]
# ## What the softmax learned
#
# Each class has one weight per edge-map pixel: drawn as an 8 × 8 image, red
# where edges raise the class's score and blue where they lower it.

# %%
W = sobel_net.classifier.weight.detach().reshape(10, 8, 8)
limit = W.abs().max().item()
fig = show_images(
    W,
    [f"class {digit}" for digit in range(10)],
    ncols=10,
    cmap="RdBu_r",
    vmin=-limit,
    vmax=limit,
)
save_figure(fig, "softmax_weights")

# %% [markdown]
# ## The pipeline, drawn
#
# One test digit through the trained pipeline: image, fixed kernels, edge map,
# learned softmax, class probabilities.

# %%
index = 0
x = data.X_test[index : index + 1]
with torch.no_grad():
    probabilities = torch.softmax(sobel_net(x), dim=1)[0]

fig = plt.figure(figsize=(13, 3.2))
grid = fig.add_gridspec(2, 5, width_ratios=[1, 0.6, 1, 1, 1.3], wspace=0.5)
image_ax = fig.add_subplot(grid[:, 0])
image_ax.imshow(x[0, 0], cmap="gray_r")
image_ax.set_title("input (8 × 8)")
for row, (kernel, name) in enumerate(
    [(SOBEL_X, "Sobel x"), (SOBEL_Y, "Sobel y")]
):
    ax = fig.add_subplot(grid[row, 1])
    ax.imshow(kernel, cmap="RdBu_r", vmin=-2, vmax=2)
    for (r, c), value in np.ndenumerate(kernel.numpy()):
        ax.text(c, r, f"{value:g}", ha="center", va="center", fontsize=7)
    ax.set_title(f"{name} (fixed)", fontsize=9)
edges_ax = fig.add_subplot(grid[:, 2])
edges_ax.imshow(edge_magnitude(x)[0, 0], cmap="gray_r")
edges_ax.set_title("edge map (8 × 8)")
weights_ax = fig.add_subplot(grid[:, 3])
weights_ax.imshow(
    W.reshape(10, 64), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto"
)
weights_ax.set_title("softmax weights\n(10 × 64, learned)", fontsize=10)
weights_ax.set_ylabel("class")
weights_ax.set_yticks(range(10))
bars_ax = fig.add_subplot(grid[:, 4])
bars_ax.barh(range(10), probabilities, color="tab:blue")
bars_ax.set_yticks(range(10))
bars_ax.invert_yaxis()
bars_ax.set(
    xlim=(0, 1),
    xlabel="probability",
    title=f"output (label {int(data.y_test[index])})",
)
for ax in fig.axes[:4]:
    ax.spines[:].set_visible(False)
    ax.set_xticks([])
    if ax is not weights_ax:
        ax.set_yticks([])
for left, right in [
    (image_ax, edges_ax),
    (edges_ax, weights_ax),
    (weights_ax, bars_ax),
]:
    fig.add_artist(
        FancyArrowPatch(
            (left.get_position().x1 + 0.005, 0.5),
            (right.get_position().x0 - 0.005, 0.5),
            transform=fig.transFigure,
            arrowstyle="-|>",
            mutation_scale=14,
            color="0.4",
        )
    )
save_figure(fig, "pipeline")
