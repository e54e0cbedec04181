# %% [markdown]
# # Chapter 1, part 1: images and hand-made kernels
#
# An image is an array of numbers. A kernel is a small array slid across it.
# Here we look at a photograph's pixel values, then at three classic
# hand-designed feature extractors: Sobel edges, HOG and SIFT.

# %%
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patheffects
from matplotlib.patches import Rectangle
from skimage import data, feature, transform

from book import edge_magnitude, record, save_figure, setup, sobel
from why_cnns_ops import show_signed, show_unsigned

setup()

# %% [markdown]
# ## An image is an array of numbers

# %%
# --8<-- [start:pixels]
photo = data.camera()  # a greyscale photo that ships with scikit-image
print(photo.shape, photo.dtype, photo.min(), photo.max())

top, left, size = 190, 230, 10  # a small patch: where chin meets glove
patch = photo[top : top + size, left : left + size]
# --8<-- [end:pixels]
record(
    photo_height=photo.shape[0],
    photo_width=photo.shape[1],
    photo_min=int(photo.min()),
    photo_max=int(photo.max()),
    patch_size=size,
)

# %%
fig, (whole, zoom) = plt.subplots(1, 2, figsize=(10, 4.8))
whole.imshow(photo, cmap="gray")
whole.add_patch(
    Rectangle((left, top), size, size, fill=False, ec="tab:red", lw=2)
)
whole.set_title(f"the whole photo, {photo.shape[0]} × {photo.shape[1]} pixels")
zoom.imshow(patch, cmap="gray", vmin=0, vmax=255)
for (row, col), value in np.ndenumerate(patch):
    zoom.text(
        col,
        row,
        value,
        ha="center",
        va="center",
        fontsize=10,
        color="white" if value < 128 else "black",
    )
zoom.set_title(f"the red {size} × {size} patch, as numbers")
for ax in (whole, zoom):
    ax.set_xticks([])
    ax.set_yticks([])
save_figure(fig, "pixels")

# %% [markdown]
# ## Sobel: a hand-made edge detector

# %%
# --8<-- [start:sobel-photo]
image = photo.astype(np.float32) / 255  # intensities in [0, 1]
gx, gy = sobel(image).numpy()  # change left to right, and top to bottom
edges = edge_magnitude(image)[0].numpy()
# --8<-- [end:sobel-photo]

# %%
fig, axes = plt.subplots(2, 2, figsize=(9.6, 9.4))
photo_shown = axes[0, 0].imshow(image, cmap="gray", vmin=0, vmax=1)
fig.colorbar(photo_shown, ax=axes[0, 0], shrink=0.8, label="brightness")
axes[0, 0].set_title("input image (brightness)")
# One colour range for both gradients, symmetric about zero. The strongest
# 0.5 % of values saturate, so that faint edges show.
saturated = 0.005
limit = np.quantile(np.abs(np.stack([gx, gy])), 1 - saturated)
show_signed(axes[0, 1], gx, limit, label="brightness change")
axes[0, 1].set_title("Sobel x: vertical edges")
show_signed(axes[1, 0], gy, limit, label="brightness change")
axes[1, 0].set_title("Sobel y: horizontal edges")
show_unsigned(
    axes[1, 1],
    edges,
    np.quantile(edges, 1 - saturated),
    label="gradient length",
)
axes[1, 1].set_title("edge map: gradient length")
for ax in axes.flat:
    ax.axis("off")
save_figure(fig, "sobel_photo")
record(saturated_share=saturated)

# %% [markdown]
# ## HOG: histograms of oriented gradients

# %%
# --8<-- [start:hog]
orientations = 9  # bins over 0 to 180 degrees: the sign is ignored
hog_features, hog_image = feature.hog(
    image,
    orientations=orientations,
    pixels_per_cell=(16, 16),
    cells_per_block=(2, 2),
    visualize=True,
)
# --8<-- [end:hog]
cells = image.shape[0] // 16  # cells per side
record(
    hog_orientations=orientations,
    hog_length=hog_features.size,
    hog_cells=cells,
    hog_blocks=cells - 2 + 1,  # a 2 × 2 block slides one cell at a time
)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
photo_shown = axes[0].imshow(image, cmap="gray", vmin=0, vmax=1)
fig.colorbar(photo_shown, ax=axes[0], shrink=0.8, label="brightness")
axes[0].set_title("input image (brightness)")
# A cell's nine strokes cross at its centre, where skimage adds their values:
# the dark dots. The colour range comes from the pixels 2 or more away from
# a centre (chessboard distance), so that the dots do not set it.
rows, cols = np.indices(hog_image.shape)
from_centre = np.maximum(abs(rows % 16 - 16 // 2), abs(cols % 16 - 16 // 2))
hog_limit = np.quantile(hog_image[from_centre >= 2], 1 - saturated)
hog_shown = show_unsigned(axes[1], hog_image, hog_limit, colorbar=False)
fig.colorbar(
    hog_shown,
    ax=axes[1],
    shrink=0.8,
    label="cell histogram value\n(before block normalisation)",
)
axes[1].set_title("HOG: edge directions per 16 × 16 cell")
for ax in axes:
    ax.axis("off")
save_figure(fig, "hog")
record(
    hog_limit=hog_limit,
    hog_limit_all_pixels=np.quantile(hog_image, 1 - saturated),
    hog_centre_largest=hog_image[from_centre == 0].max(),
)

# %% [markdown]
# ## SIFT: keypoints that survive scaling and rotation

# %%
# --8<-- [start:sift]
small = transform.rescale(image, 0.5, anti_aliasing=True)  # 256 × 256
sift = feature.SIFT()
sift.detect_and_extract(small)
print(sift.keypoints.shape, sift.descriptors.shape)
# --8<-- [end:sift]
record(
    sift_keypoints=len(sift.keypoints),
    sift_descriptor_length=sift.descriptors.shape[1],
)

# %%
fig, ax = plt.subplots(figsize=(5.5, 5.5))
ax.imshow(small, cmap="gray")
ax.autoscale(False)  # the circles are cut at the photo's edges
shown_keypoints, radius_in_sigmas = 60, 3
strongest = np.argsort(sift.sigmas)[-shown_keypoints:]  # largest scales
# A dark rim keeps the gold rings visible on the pale sky.
rim = [patheffects.withStroke(linewidth=2.5, foreground="black")]
for (row, col), sigma, angle in zip(
    sift.keypoints[strongest],
    sift.sigmas[strongest],
    sift.orientations[strongest],
):
    radius = radius_in_sigmas * sigma
    ax.add_patch(
        plt.Circle(
            (col, row), radius, fill=False, ec="gold", lw=1, path_effects=rim
        )
    )
    ax.plot(
        [col, col + radius * np.cos(angle)],
        [row, row - radius * np.sin(angle)],
        color="gold",
        lw=1,
        path_effects=rim,
    )
ax.set_title("SIFT keypoints: position, scale and orientation")
ax.axis("off")
# Store the half-size photo with its own 256 pixels a side, not the 424 that
# 100 dots per inch would interpolate; the browser scales it.
fig.canvas.draw()  # lays the axes out
dots_per_inch = small.shape[1] / ax.get_window_extent().width * fig.dpi
with plt.rc_context({"savefig.dpi": dots_per_inch}):
    save_figure(fig, "sift")
record(
    sift_shown=shown_keypoints,
    sift_radius_in_sigmas=radius_in_sigmas,
)
