# %% [markdown]
# # Chapter 5, part 1: convolution from scratch
#
# `torch.nn.functional.conv2d` rebuilt in NumPy: the definition as loops, the
# kernel flip, padding, stride, dilation and groups, a vectorised version
# (windows and one matrix product), and the gradient, checked against
# PyTorch's autograd. The functions live in `conv_scratch_ops.py`.

# %%
import itertools

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.patches import FancyArrowPatch, Rectangle

from book import load_dataset, record, save_figure, setup, sobel
from conv_scratch_ops import (
    conv2d,
    conv2d_backward,
    conv2d_loops,
    conv_output_size,
    im2col,
)

setup()
rng = np.random.default_rng(0)

# %% [markdown]
# ## The definition, one number at a time

# %%
# --8<-- [start:loops-demo]
x = rng.standard_normal((2, 3, 6, 5))  # (N, C_in, H, W)
K = rng.standard_normal((4, 3, 3, 3))  # (C_out, C_in, kH, kW)
b = rng.standard_normal(4)  # (C_out,)
Y = conv2d_loops(x, K, b)
Y_torch = F.conv2d(
    torch.from_numpy(x), torch.from_numpy(K), torch.from_numpy(b)
)
print(Y.shape, np.abs(Y - Y_torch.numpy()).max())
# --8<-- [end:loops-demo]
record(
    loops_demo_shape=list(Y.shape),
    loops_demo_error=np.abs(Y - Y_torch.numpy()).max(),
)

# %% [markdown]
# ## Cross-correlation or convolution?
#
# A single bright pixel shows what each operation does with the kernel.

# %%
# --8<-- [start:flip]
K = np.arange(1.0, 10.0).reshape(3, 3)  # asymmetric: every entry different
impulse = np.zeros((1, 5, 5))  # one channel, (C, H, W)
impulse[0, 2, 2] = 1.0  # one bright pixel
correlated = conv2d_loops(impulse, K[None, None], padding=1)[0]  # as torch
flipped = K[::-1, ::-1]  # rotated by 180 degrees
convolved = conv2d_loops(impulse, flipped[None, None], padding=1)[0]  # conv.
print(correlated[1:4, 1:4], convolved[1:4, 1:4], sep="\n")
# --8<-- [end:flip]
record(
    impulse_reproduces_flipped_kernel=bool(
        np.array_equal(correlated[1:4, 1:4], flipped)
    ),
    convolution_reproduces_kernel=bool(np.array_equal(convolved[1:4, 1:4], K)),
)


# %%
def show_numbers(ax, values, title, vmax=9):
    """Values that are never negative: white 0, black vmax, written in."""
    image = ax.imshow(values, cmap="gray_r", vmin=0, vmax=vmax)
    for (row, col), value in np.ndenumerate(values):
        if value:
            ax.text(
                col,
                row,
                f"{value:g}",
                ha="center",
                va="center",
                fontsize=12,
                color="white" if value > 0.5 * vmax else "black",
            )
    ax.set_xticks(np.arange(-0.5, values.shape[1]), minor=True)
    ax.set_yticks(np.arange(-0.5, values.shape[0]), minor=True)
    ax.grid(which="minor", color="0.75", lw=0.8)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    ax.spines[:].set_visible(False)
    ax.set_title(title, fontsize=12)
    return image


fig, axes = plt.subplots(1, 4, figsize=(11.5, 3.1), gridspec_kw={"wspace": 0.3})
show_numbers(axes[0], K, "kernel K")
show_numbers(axes[1], impulse[0], "input: one pixel")  # the same scale
show_numbers(axes[2], correlated, "cross-correlation\n(conv2d): K flipped")
image = show_numbers(axes[3], convolved, "convolution: K as it is")
fig.colorbar(
    image, ax=axes, shrink=0.75, pad=0.03, label="value", ticks=[0, 3, 6, 9]
)
save_figure(fig, "flip")


# %% [markdown]
# ## Padding, stride and dilation, drawn
#
# Each panel shows an input (padding dashed), the pixels the kernel reads for
# the first two outputs, and the output grid. Hatched pixels are never read.


# %%
def draw_geometry(ax, size, kernel, stride=1, padding=0, dilation=1):
    """One panel: input with padding, two kernel positions, output grid."""
    out = conv_output_size(size, kernel, stride, padding, dilation)
    full = size + 2 * padding
    reach = stride * (out - 1) + dilation * (kernel - 1) + 1  # rows read
    for r, c in itertools.product(range(full), repeat=2):
        is_pad = not (padding <= r < padding + size) or not (
            padding <= c < padding + size
        )
        unread = r >= reach or c >= reach
        ax.add_patch(
            Rectangle(
                (c, r),
                1,
                1,
                fc="0.93" if is_pad else "white",
                ec="0.6",
                ls="--" if is_pad else "-",
                hatch="///" if unread else None,
                lw=0.8,
            )
        )
    colours = ["tab:orange", "tab:purple"]  # two outputs, not a sign
    for j, colour in enumerate(colours[: min(2, out)]):
        for u, v in itertools.product(range(kernel), repeat=2):
            row, col = dilation * u, stride * j + dilation * v
            ax.add_patch(
                Rectangle(
                    (col + 0.1 + 0.1 * j, row + 0.1 + 0.1 * j),
                    0.7,
                    0.7,
                    fc=colour,
                    alpha=0.55,
                    ec="none",
                )
            )
    left = full + 1.5
    for r, c in itertools.product(range(out), repeat=2):
        fc = colours[c] if r == 0 and c < 2 else "white"
        ax.add_patch(
            Rectangle((left + c, r), 1, 1, fc=fc, ec="0.3", alpha=0.8, lw=0.8)
        )
    ax.add_patch(
        FancyArrowPatch(
            (full + 0.2, out / 2),
            (left - 0.2, out / 2),
            arrowstyle="-|>",
            mutation_scale=12,
            color="0.4",
        )
    )
    ax.set_xlim(-0.2, 14.2)  # the same cell size in every panel
    ax.set_ylim(7.2, -0.2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(
        f"padding={padding}, stride={stride}, dilation={dilation}\n"
        f"{size} × {size} input → {out} × {out} output",
        fontsize=15,
    )
    return out


panels = [
    dict(size=5, kernel=3),
    dict(size=5, kernel=3, padding=1),
    dict(size=6, kernel=3, stride=2),
    dict(size=7, kernel=3, dilation=2),
]
fig, axes = plt.subplots(2, 2, figsize=(10, 6.6))
outs = [draw_geometry(ax, **panel) for ax, panel in zip(axes.flat, panels)]
fig.tight_layout()
save_figure(fig, "geometry")
record(geometry_outputs=outs)

# %% [markdown]
# ## The output size, checked against real shapes

# %%
# --8<-- [start:sizes]
checked, mismatches = 0, []
for size, k, stride, padding, dilation in itertools.product(
    range(1, 13), range(1, 6), range(1, 4), range(3), range(1, 4)
):
    if dilation * (k - 1) + 1 > size + 2 * padding:
        continue  # the kernel would not fit: an error, tested separately
    settings = dict(stride=stride, padding=padding, dilation=dilation)
    x, K = np.zeros((1, 1, size, size + 1)), np.zeros((1, 1, k, k))
    x_t, K_t = torch.from_numpy(x), torch.from_numpy(K)
    shapes = {
        tuple(F.conv2d(x_t, K_t, **settings).shape[2:]),  # the reference
        conv2d(x, K, **settings).shape[2:],
        conv2d_loops(x, K, **settings).shape[2:],
        (  # the formula, for the H and the W axis
            conv_output_size(size, k, stride, padding, dilation),
            conv_output_size(size + 1, k, stride, padding, dilation),
        ),
    }
    checked += 1
    if len(shapes) > 1:
        mismatches.append((size, k, stride, padding, dilation, shapes))
print(f"{checked} settings, {len(mismatches)} disagreements")
# --8<-- [end:sizes]
record(
    size_cases_checked=checked,
    size_mismatches=len(mismatches),
    floor_example_size=6,
    floor_example_exact=(6 - 3) / 2 + 1,
    floor_example_out=conv_output_size(6, 3, stride=2),
)

# %% [markdown]
# ## Bad input is named

# %%
# --8<-- [start:errors]
try:
    conv2d(np.zeros((2, 4, 8, 8)), np.zeros((6, 3, 3, 3)))
except ValueError as error:
    print(error)
# --8<-- [end:errors]
try:  # again, to keep the message: `error` is gone after its except block
    conv2d(np.zeros((2, 4, 8, 8)), np.zeros((6, 3, 3, 3)))
except ValueError as again:
    record(channel_error=str(again))

# %% [markdown]
# ## Groups: which inputs each output sees
#
# Put a 1 in one input channel at a time and see which output channels
# respond: the blocks are the groups.


# %%
def connectivity(C_in, C_out, groups):
    """Which output channels (rows) read which input channels (columns)."""
    K = np.ones((C_out, C_in // groups, 1, 1))
    probes = np.eye(C_in)[:, :, None, None]  # image c: a 1 in channel c only
    return conv2d(probes, K, groups=groups)[:, :, 0, 0].T != 0


fig, axes = plt.subplots(1, 3, figsize=(9, 3.6))
for ax, groups in zip(axes, (1, 2, 4)):
    # A mask: dark grey where an output reads an input, white where not.
    ax.imshow(connectivity(4, 8, groups), cmap="gray_r", vmin=0, vmax=1.6)
    ax.set_xticks(range(4))
    ax.set_yticks(range(8))
    ax.set_xticks(np.arange(-0.5, 4), minor=True)
    ax.set_yticks(np.arange(-0.5, 8), minor=True)
    ax.grid(which="minor", color="white", lw=1)
    ax.tick_params(which="minor", length=0)
    ax.spines[:].set_visible(False)
    ax.set(xlabel="input channel", ylabel="output channel")
    ax.set_title(
        f"groups={groups}: weight (8, {4 // groups}, kH, kW)", fontsize=10
    )
fig.tight_layout()
save_figure(fig, "groups")

# %% [markdown]
# ## Windows as columns: im2col

# %%
# --8<-- [start:im2col-demo]
x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)  # one 4 × 4 image
cols = im2col(x, kernel_size=(3, 3))[0]  # (C * kh * kw, H_out * W_out) = (9, 4)
print(cols)
# --8<-- [end:im2col-demo]
record(im2col_demo_shape=list(cols.shape))

# %%
fig, (image_ax, cols_ax) = plt.subplots(
    1, 2, figsize=(8, 4.2), width_ratios=[4, 4]
)
colours = ["tab:orange", "tab:purple", "tab:green", "tab:brown"]  # windows
image_ax.imshow(np.zeros((4, 4)), cmap="Greys", vmin=0, vmax=1)
for (r, c), value in np.ndenumerate(x[0, 0]):
    image_ax.text(c, r, f"{value:g}", ha="center", va="center", fontsize=11)
for window, colour in enumerate(colours[:2]):
    i, j = divmod(window, 2)
    image_ax.add_patch(
        Rectangle(
            (j - 0.5 + 0.06 * window, i - 0.5 + 0.06 * window),
            3 - 0.12 * window,
            3 - 0.12 * window,
            fill=False,
            ec=colour,
            lw=2.5,
        )
    )
image_ax.set_title("4 × 4 input: windows 0 and 1 of 4", fontsize=10)
cols_ax.imshow(np.zeros(cols.shape), cmap="Greys", vmin=0, vmax=1)
for (r, c), value in np.ndenumerate(cols):
    cols_ax.text(
        c,
        r,
        f"{value:g}",
        ha="center",
        va="center",
        fontsize=11,
        color=colours[c],
    )
cols_ax.set_xticks(range(4))
cols_ax.set_xlabel("window")
cols_ax.set_yticks(
    range(9), [f"K[{u}, {v}]" for u in range(3) for v in range(3)], fontsize=8
)
cols_ax.set_title("im2col: one column per window (9 × 4)", fontsize=10)
for ax in (image_ax, cols_ax):
    ax.set_xticks(
        np.arange(-0.5, ax.images[0].get_array().shape[1]), minor=True
    )
    ax.set_yticks(
        np.arange(-0.5, ax.images[0].get_array().shape[0]), minor=True
    )
    ax.grid(which="minor", color="0.75", lw=0.8)
    ax.tick_params(which="both", length=0)
    ax.spines[:].set_visible(False)
image_ax.tick_params(labelbottom=False, labelleft=False)
fig.tight_layout()
save_figure(fig, "im2col")

# %% [markdown]
# ## The vectorised version agrees with the loops and with torch

# %%
# --8<-- [start:check]
x = rng.standard_normal((3, 6, 11, 9))
K = rng.standard_normal((4, 3, 3, 2))  # groups=2: each kernel sees 3 inputs
b = rng.standard_normal(4)
settings = dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
Y_fast = conv2d(x, K, b, **settings)
Y_loops = conv2d_loops(x, K, b, **settings)
Y_torch = F.conv2d(*map(torch.from_numpy, (x, K, b)), **settings).numpy()
print(np.abs(Y_fast - Y_torch).max(), np.abs(Y_loops - Y_torch).max())
# --8<-- [end:check]
record(
    check_error_vectorised=np.abs(Y_fast - Y_torch).max(),
    check_error_loops=np.abs(Y_loops - Y_torch).max(),
)

# %% [markdown]
# ## The gradient, checked against autograd

# %%
# --8<-- [start:gradient-check]
G = rng.standard_normal(Y_fast.shape)  # any dL/dY; here L = sum(G * Y)
grads = conv2d_backward(G, x, K, **settings)  # dL/dx, dL/dK, dL/db

x_t, K_t, b_t = (torch.tensor(a, requires_grad=True) for a in (x, K, b))
F.conv2d(x_t, K_t, b_t, **settings).backward(torch.from_numpy(G))
for name, ours, theirs in zip(("x", "K", "b"), grads, (x_t, K_t, b_t)):
    print(f"dL/d{name}: {np.abs(ours - theirs.grad.numpy()).max():.1e}")
# --8<-- [end:gradient-check]
record(
    gradient_error_x=np.abs(grads[0] - x_t.grad.numpy()).max(),
    gradient_error_weight=np.abs(grads[1] - K_t.grad.numpy()).max(),
    gradient_error_bias=np.abs(grads[2] - b_t.grad.numpy()).max(),
)

# %% [markdown]
# The bias gradient is a convolution too: G correlated with a kernel of ones
# as large as G itself.

# %%
ones = np.ones((1, 1, *G.shape[2:]))
per_channel = conv2d(G.transpose(1, 0, 2, 3).reshape(-1, 1, *G.shape[2:]), ones)
bias_as_convolution = per_channel.reshape(G.shape[1], G.shape[0]).sum(axis=1)
record(
    bias_gradient_convolution_error=np.abs(bias_as_convolution - grads[2]).max()
)

# %% [markdown]
# ## One training step by hand, and by PyTorch

# %%
# --8<-- [start:training-step]
data = load_dataset("digits")
X = data.X_train[:64].double().numpy()  # (64, 1, 8, 8)
target = sobel(data.X_train[:64]).double().numpy()  # (64, 2, 8, 8)
K = 0.1 * rng.standard_normal((2, 1, 3, 3))  # two kernels to learn
b = np.zeros(2)
lr = 0.5

# NumPy: forward, the loss's gradient, backward, step.
Y = conv2d(X, K, b, padding=1)
loss = np.mean((Y - target) ** 2)
G = 2 * (Y - target) / Y.size  # dL/dY for the mean squared error
_, grad_K, grad_b = conv2d_backward(G, X, K, padding=1)
K_new, b_new = K - lr * grad_K, b - lr * grad_b

# PyTorch: the same layer, loss and step, by autograd and an optimiser.
net = torch.nn.Conv2d(1, 2, 3, padding=1, dtype=torch.float64)
with torch.no_grad():
    net.weight.copy_(torch.from_numpy(K))
    net.bias.copy_(torch.from_numpy(b))
optimizer = torch.optim.SGD(net.parameters(), lr=lr)
loss_torch = F.mse_loss(net(torch.from_numpy(X)), torch.from_numpy(target))
optimizer.zero_grad()
loss_torch.backward()
optimizer.step()

print(np.abs(K_new - net.weight.detach().numpy()).max())
print(np.abs(b_new - net.bias.detach().numpy()).max())
# --8<-- [end:training-step]
loss_after = np.mean((conv2d(X, K_new, b_new, padding=1) - target) ** 2)
record(
    step_loss_before=loss,
    step_loss_after=loss_after,
    step_loss_difference=abs(loss - loss_torch.item()),
    step_weight_difference=np.abs(K_new - net.weight.detach().numpy()).max(),
    step_bias_difference=np.abs(b_new - net.bias.detach().numpy()).max(),
    step_batch=len(X),
    step_lr=lr,
)

# %% [markdown]
# ## The 1 × 1 convolution: a matrix product at every pixel

# %%
# --8<-- [start:one-by-one]
x = rng.standard_normal((2, 8, 5, 5))  # 8 channels in
K = rng.standard_normal((4, 8, 1, 1))  # 4 kernels of shape 8 × 1 × 1
Y = conv2d(x, K)  # (2, 4, 5, 5): the size stays, the channels change
# The same numbers: the (4, 8) weight matrix times each pixel's 8 channels.
per_pixel = np.einsum("oc,nchw->nohw", K[:, :, 0, 0], x)
print(Y.shape, np.abs(Y - per_pixel).max())
# --8<-- [end:one-by-one]
record(
    one_by_one_shape=list(Y.shape),
    one_by_one_error=np.abs(Y - per_pixel).max(),
)

# %% [markdown]
# ## im2col at a real layer's scale

# %%
# --8<-- [start:im2col-scale]
# AlexNet's first layer: 227 × 227 RGB images, 11 × 11 kernels, stride 4.
side = conv_output_size(227, 11, stride=4)  # 55 positions per axis
column = 3 * 11 * 11  # one window's numbers
print(f"columns: {column} × {side * side}, {column * side**2:,} numbers")
print(f"input: {3 * 227 * 227:,} numbers")
# --8<-- [end:im2col-scale]
record(
    alexnet_side=side,
    alexnet_column=column,
    alexnet_columns=side * side,
    alexnet_cols_numbers=column * side**2,
    alexnet_input_numbers=3 * 227 * 227,
    alexnet_blowup=column * side**2 / (3 * 227 * 227),
)
