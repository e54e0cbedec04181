# %% [markdown]
# # Chapter 2, part 1: recover a known kernel
#
# We take a photo and its Sobel x map, forget the kernel that made the map,
# and ask gradient descent to find nine numbers that turn the photo into the
# map. If learning kernels works at all, it must find Sobel again.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from skimage import data as sample_images

from book import SOBEL_X, draw_kernel, record, save_figure, setup, sobel

setup()


# %% [markdown]
# ## The data: one photo and its Sobel x map


# %%
# --8<-- [start:target]
def standardise(photo):
    """Pixel values as floats with mean 0 and standard deviation 1."""
    photo = photo.astype(np.float32)
    return (photo - photo.mean()) / photo.std()


centre = (slice(128, 384), slice(128, 384))  # 256 × 256: plenty, and fast
X = torch.from_numpy(standardise(sample_images.grass()[centre]))[None, None]
Y = sobel(X)[:, :1]  # the Sobel x map: the output we want to reproduce
print(X.shape, Y.shape)  # (N, C, H, W)
# --8<-- [end:target]
record(photo_height=X.shape[-2], photo_width=X.shape[-1])

# %%
limit = np.percentile(Y.abs(), 99.5)  # let the strongest 0.5 % saturate
fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.9))
axes[0].imshow(sample_images.grass(), cmap="gray")
top, left = centre[0].start, centre[1].start
axes[0].add_patch(
    plt.Rectangle(
        (left, top), X.shape[-1], X.shape[-2], fill=False, ec="tab:orange", lw=2
    )
)
axes[0].set_title("the grass photo (512 × 512)", fontsize=9)
axes[1].imshow(X[0, 0].numpy(), cmap="gray")
axes[1].set_title("input X: the orange square", fontsize=9)
target = axes[2].imshow(
    Y[0, 0].numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit
)  # red: brighter to the right, blue: darker
axes[2].set_title("target Y: its Sobel x map", fontsize=9)
for ax in axes:
    ax.axis("off")
bar = fig.colorbar(target, ax=axes[2], location="bottom", shrink=0.8)
bar.ax.tick_params(labelsize=8)
bar.set_label("Sobel x response", fontsize=8)
save_figure(fig, "photo_and_target")


# %% [markdown]
# ## Gradient descent on nine numbers
#
# The kernel K starts random. Each step computes the output the current K
# gives, the mean squared error to the target, the gradient of that error
# with respect to K (autograd), and moves K a small step downhill.


# %%
# --8<-- [start:recover]
def recover_kernel(X, Y, num_steps=300, lr=0.15, seed=0):
    """Fit one 3 × 3 kernel K so that conv2d(X, K) matches Y.

    Returns K after every step, shape (num_steps + 1, 3, 3), and the loss
    (mean squared error) before every step.
    """
    generator = torch.Generator().manual_seed(seed)
    K = torch.randn(1, 1, 3, 3, generator=generator, requires_grad=True)
    kernels, losses = [K.detach().clone()], []
    for _ in range(num_steps):
        loss = F.mse_loss(F.conv2d(X, K, padding=1), Y)
        loss.backward()  # K.grad: how the loss changes with each weight
        with torch.no_grad():
            K -= lr * K.grad  # one step of plain gradient descent
            K.grad.zero_()
        kernels.append(K.detach().clone())
        losses.append(loss.item())
    return torch.cat(kernels)[:, 0], losses


# --8<-- [end:recover]


# %%
# --8<-- [start:run]
num_steps, lr = 300, 0.15
kernels, losses = recover_kernel(X, Y, num_steps, lr, seed=0)
K = kernels[-1]  # the learned kernel
error = (K - SOBEL_X).abs().max().item()
print(K.numpy().round(4))
print(f"largest difference from Sobel x after {num_steps} steps: {error:.1e}")
# --8<-- [end:run]

# %% [markdown]
# The same from two other random starting kernels:

# %%
runs = {0: (kernels, losses)}
for seed in (1, 2):
    runs[seed] = recover_kernel(X, Y, num_steps, lr, seed=seed)
errors = {
    seed: (run[0][-1] - SOBEL_X).abs().max().item()
    for seed, run in runs.items()
}
print({seed: f"{value:.1e}" for seed, value in errors.items()})

# %% [markdown]
# After the first few steps the error shrinks by the same factor at every
# step: a straight line on a log scale.


# %%
def factor_per_step(values, start, end):
    """The fraction of `values` kept per step, on average, from start to end."""
    return (values[end] / values[start]) ** (1 / (end - start))


distances = {
    seed: (run[0] - SOBEL_X).abs().amax(dim=(1, 2)).tolist()
    for seed, run in runs.items()
}  # the largest weight error after each step
factors = {
    seed: [factor_per_step(d, 100, 200), factor_per_step(d, 200, 300)]
    for seed, d in distances.items()
}
loss_factors = [
    factor_per_step(losses, 99, 199),
    factor_per_step(losses, 199, 299),
]
print(f"error kept per step, steps 100-200 and 200-300: {factors}")

# The Sobel pattern is there once no weight is off by half the smallest
# non-zero Sobel weight: every sign is right, the middle column nearer 0.
pattern_steps = {
    seed: next(step for step, error in enumerate(d) if error < 0.5)
    for seed, d in distances.items()
}
print(f"the Sobel pattern appears after {pattern_steps} steps")
print(f"loss kept per step, seed 0: {loss_factors}")

# %% [markdown]
# ## A smooth photo is harder
#
# The loss is a bowl over the nine weights. Its curvature along each
# direction is an eigenvalue of the patches' second-moment matrix: gradient
# descent overshoots if the step is too large for the steepest direction,
# and creeps along the flattest one.


# %%
# --8<-- [start:curvature]
def curvatures(X):
    """Eigenvalues of the loss's bowl: how steep it is in each direction."""
    patches = F.unfold(X, kernel_size=3, padding=1)[0].T  # (H * W, 9)
    second_moments = patches.T @ patches / len(patches)  # (9, 9)
    return torch.linalg.eigvalsh(second_moments.double())  # ascending


X_camera = torch.from_numpy(standardise(sample_images.camera()[centre]))[
    None, None
]
for name, image in [("grass", X), ("camera", X_camera)]:
    bowl = curvatures(image)
    print(f"{name}: steepest / flattest = {bowl[-1] / bowl[0]:.0f}")
# --8<-- [end:curvature]
grass_bowl, camera_bowl = curvatures(X), curvatures(X_camera)

# %% [markdown]
# With lr = 0.15 the camera run overshoots and blows up; 0.1 is stable there.

# %%
# --8<-- [start:camera]
camera_lr = 0.1
camera_kernels, _ = recover_kernel(
    X_camera, sobel(X_camera)[:, :1], num_steps, camera_lr, seed=0
)
camera_error = (camera_kernels[-1] - SOBEL_X).abs().max().item()
print(f"camera photo, after {num_steps} steps: {camera_error:.2f}")
# --8<-- [end:camera]
camera_errors = [camera_error]  # and from the other two random starts
for seed in (1, 2):
    final = recover_kernel(
        X_camera, sobel(X_camera)[:, :1], num_steps, camera_lr, seed
    )[0][-1]
    camera_errors.append((final - SOBEL_X).abs().max().item())

# %%
record(
    num_steps=num_steps,
    lr=lr,
    num_seeds=len(runs),
    initial_error=distances[0][0],
    max_abs_error=error,
    worst_seed_error=max(errors.values()),
    seed_errors=list(errors.values()),
    pattern_steps=list(pattern_steps.values()),
    max_pattern_step=max(pattern_steps.values()),
    camera_errors=camera_errors,
    min_camera_error=min(camera_errors),
    # Along the bowl's flattest direction (curvature 2 * smallest eigenvalue,
    # the loss being a mean of squares) each step keeps this fraction:
    predicted_error_factor=1 - 2 * lr * grass_bowl[0].item(),
    error_factors=[f[1] for f in factors.values()],
    error_factor_per_step=factors[0][1],
    error_factor_per_step_earlier=factors[0][0],
    error_factor_spread=max(max(f) for f in factors.values())
    - min(min(f) for f in factors.values()),
    loss_factor_per_step=loss_factors[1],
    loss_factor_per_step_earlier=loss_factors[0],
    pattern_step=pattern_steps[0],
    pattern_error=distances[0][pattern_steps[0]],
    initial_loss=losses[0],
    final_loss=F.mse_loss(F.conv2d(X, K[None, None], padding=1), Y).item(),
    learned_kernel=K.tolist(),
    camera_error=camera_error,
    camera_lr=camera_lr,
    grass_curvature_ratio=(grass_bowl[-1] / grass_bowl[0]).item(),
    camera_curvature_ratio=(camera_bowl[-1] / camera_bowl[0]).item(),
    grass_stable_lr=1 / grass_bowl[-1].item(),
    camera_stable_lr=1 / camera_bowl[-1].item(),
    # The camera's lr on both photos: the image, not the lr, makes it slow.
    grass_factor_at_camera_lr=1 - 2 * camera_lr * grass_bowl[0].item(),
    camera_predicted_error_factor=1 - 2 * camera_lr * camera_bowl[0].item(),
)

# %% [markdown]
# ## The loss, and the distance to Sobel, step by step

# %%
fig, (loss_ax, error_ax) = plt.subplots(1, 2, figsize=(8, 3.3))
styles = [  # categories: not the red/blue pair that means sign
    {"color": "tab:orange"},
    {"color": "tab:purple", "ls": "--"},
    {"color": "tab:green", "ls": ":"},
]
for (seed, (_, run_losses)), style in zip(runs.items(), styles, strict=True):
    loss_ax.plot(range(num_steps), run_losses, label=f"seed {seed}", **style)
    error_ax.plot(
        range(num_steps + 1), distances[seed], label=f"seed {seed}", **style
    )
loss_ax.set(xlabel="step", ylabel="loss (mean squared error)", yscale="log")
error_ax.set(xlabel="step", ylabel="largest |K − Sobel x| (9 weights)")
error_ax.set_yscale("log")
for ax in (loss_ax, error_ax):  # 1e-8, not a superscript too small to read
    ax.yaxis.set_major_formatter(lambda value, _: f"1e{np.log10(value):.0f}")
error_ax.legend(title="random start")
fig.tight_layout()
save_figure(fig, "loss")


# %% [markdown]
# ## The kernel as training goes


# %%
snapshot_steps = [0, 2, 10, pattern_steps[0], 100, num_steps]
fig, axes = plt.subplots(2, len(snapshot_steps) // 2, figsize=(7, 5))
for ax, step in zip(axes.flat, snapshot_steps):
    draw_kernel(ax, kernels[step], f"after {step} steps")
fig.colorbar(axes[0, 0].images[0], ax=axes, shrink=0.6, label="weight")
save_figure(fig, "snapshots")

# %%
difference = K - SOBEL_X
exponent = int(np.floor(np.log10(difference.abs().max().item())))
fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.6))
draw_kernel(axes[0], K, f"learned K ({num_steps} steps)", digits=4)
draw_kernel(axes[1], SOBEL_X, "Sobel x", digits=0)
draw_kernel(
    axes[2],
    difference * 10**-exponent,
    "K − Sobel x, in units of $10^{" + str(exponent) + "}$",
    limit=10,
    digits=1,
)
fig.tight_layout()
labels = ["weight", "weight", "difference (in the title's units)"]
for ax, label in zip(axes, labels, strict=True):  # ±2, ±2 and ±10 units
    bar = fig.colorbar(ax.images[0], ax=ax, location="bottom", shrink=0.8)
    bar.ax.tick_params(labelsize=8)
    bar.set_label(label, fontsize=8)
save_figure(fig, "final_kernel")
