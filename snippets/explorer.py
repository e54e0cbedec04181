# %% [markdown]
# # The convolution explorer: its images and reference feature maps
#
# The explorer page slides a 3 × 3 kernel over an image in your browser.
# This notebook makes its two input images (a photo, downscaled, and a
# handwritten digit) and computes, with PyTorch, the feature map of every
# preset kernel: the page's JavaScript must give the same numbers, and the
# book's tests check that it does.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data, transform
from sklearn.datasets import load_digits

from book import SOBEL_X, SOBEL_Y, output_dir, record, save_figure, setup
from why_cnns_ops import show_signed, show_unsigned

setup()

# %% [markdown]
# ## The preset kernels

# %%
# --8<-- [start:presets]
PRESETS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],  # copies the image
    "box blur": [[1 / 9] * 3] * 3,  # the mean of the 3 × 3 patch
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "Sobel x": SOBEL_X.tolist(),  # left-to-right change: vertical edges
    "Sobel y": SOBEL_Y.tolist(),  # top-to-bottom change: horizontal edges
    "Laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],  # sum of 2nd differences
}
# --8<-- [end:presets]

# %% [markdown]
# ## The feature map, with stride and padding
#
# The output has $\lfloor (H + 2p - k) / s \rfloor + 1$ rows for an input of
# $H$ rows, a $k \times k$ kernel, padding $p$ and stride $s$ (and the same
# formula gives the columns).


# %%
# --8<-- [start:feature-map]
def output_size(size, kernel_size=3, stride=1, padding=0):
    """How many positions a kernel takes along one axis of the input."""
    return (size + 2 * padding - kernel_size) // stride + 1


def feature_map(X, K, stride=1, padding=0, bias=0.0):
    """Slide kernel K over image X (both 2-D): the explorer's computation.

    Zero padding of `padding` pixels on every side, then a step of `stride`
    pixels between positions; bias is added to every output, as a
    convolution layer adds one per kernel. Cross-correlation, as in torch's
    conv2d.
    """
    X = torch.as_tensor(X, dtype=torch.float64)
    K = torch.as_tensor(K, dtype=torch.float64)
    if X.dim() != 2 or K.dim() != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(
            f"expected an (H, W) image and a square (k, k) kernel, got "
            f"shapes {tuple(X.shape)} and {tuple(K.shape)}"
        )
    if stride < 1 or padding < 0:
        raise ValueError(
            f"stride must be >= 1 and padding >= 0, got stride {stride} "
            f"and padding {padding}"
        )
    height, width = (
        output_size(n, K.shape[0], stride, padding) for n in X.shape
    )
    if height < 1 or width < 1:
        raise ValueError(
            f"a {K.shape[0]} × {K.shape[1]} kernel does not fit in a "
            f"{X.shape[0]} × {X.shape[1]} image padded by {padding}"
        )
    b = torch.tensor([bias], dtype=torch.float64)
    Y = F.conv2d(
        X[None, None], K[None, None], b, stride=stride, padding=padding
    )
    return Y[0, 0]


# --8<-- [end:feature-map]


# %% [markdown]
# ## The two input images
#
# The page reads an image's pixels, integers from 0 to 255, and divides them
# by 255, exactly as here. Both are saved as greyscale PNG files.


# %%
# --8<-- [start:images]
def explorer_images(photo_size=128, digit_index=3):
    """The explorer's inputs as 8-bit greyscale arrays: a photo and a digit."""
    photo = transform.resize(
        data.camera(), (photo_size, photo_size), anti_aliasing=True
    )
    digit = load_digits().images[digit_index] / 16  # 8 × 8, ink 0 to 16
    return {
        "photo": np.round(photo * 255).astype(np.uint8),
        "digit": np.round(digit * 255).astype(np.uint8),
    }


images = explorer_images()
for name, pixels in images.items():
    Image.fromarray(pixels, mode="L").save(output_dir() / f"{name}.png")
inputs = {name: pixels / 255 for name, pixels in images.items()}
# --8<-- [end:images]
record(
    photo_size=images["photo"].shape[0],
    digit_size=images["digit"].shape[0],
    num_presets=len(PRESETS),
)

# %% [markdown]
# ## Reference feature maps
#
# Every preset on every image, at stride 1 without padding, as the page shows
# them first. They go to `reference_maps.npz` for the tests.

# %%
references = {
    f"{name}/{preset}": feature_map(X, K).numpy()
    for name, X in inputs.items()
    for preset, K in PRESETS.items()
}
np.savez_compressed(output_dir() / "reference_maps.npz", **references)
record(
    photo_output_size=references["photo/identity"].shape[0],
    sobel_x_photo_max=float(np.abs(references["photo/Sobel x"]).max()),
)

# %%
fig, axes = plt.subplots(2, 3, figsize=(10, 6.4))
for ax, preset in zip(axes.flat, PRESETS):
    Y = references[f"photo/{preset}"]
    # The book's convention (chapter 1): white 0 to black the largest value,
    # or red positive, blue negative, white 0.
    if Y.min() >= 0:
        show_unsigned(ax, Y, interpolation="none")
    else:
        show_signed(ax, Y, interpolation="none")
    ax.set_title(preset)
    ax.axis("off")
save_figure(fig, "presets")
