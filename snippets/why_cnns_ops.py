"""Chapter 1. The book's colours for maps of numbers.

One convention for every figure: a map with both signs is red where it is
positive, blue where it is negative and white at zero, on a range symmetric
about zero, with a colour bar; a map that is never negative (an edge map) is
white at zero and black at its largest value. Chapter 1's notebooks and the
convolution explorer import this module.
"""

import numpy as np

SIGNED = "RdBu_r"  # red positive, white zero, blue negative
UNSIGNED = "gray_r"  # white zero, black the largest value


def show_signed(
    ax, values, limit=None, colorbar=True, label=None, **imshow_args
):
    """Chapter 1. Draw a map with both signs on ax: red positive, blue
    negative, white zero, from -limit to +limit (default: the largest
    |value|), with a colour bar labelled label. Returns the image."""
    values = np.asarray(values, dtype=float)
    limit = float(np.abs(values).max()) if limit is None else float(limit)
    if not limit > 0:
        raise ValueError(f"the colour range must be positive, got {limit}")
    image = ax.imshow(
        values, cmap=SIGNED, vmin=-limit, vmax=limit, **imshow_args
    )
    if colorbar:
        ax.figure.colorbar(image, ax=ax, shrink=0.8, label=label)
    return image


def show_unsigned(
    ax, values, limit=None, colorbar=True, label=None, **imshow_args
):
    """Chapter 1. Draw a map that is never negative on ax: white at zero,
    black at limit (default: the largest value), with a colour bar labelled
    label."""
    values = np.asarray(values, dtype=float)
    if values.min() < 0:
        raise ValueError(
            f"show_unsigned draws maps without negative values, got a "
            f"minimum of {values.min():g}: use show_signed"
        )
    limit = float(values.max()) if limit is None else float(limit)
    if not limit > 0:
        raise ValueError(f"the colour range must be positive, got {limit}")
    image = ax.imshow(values, cmap=UNSIGNED, vmin=0, vmax=limit, **imshow_args)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, shrink=0.8, label=label)
    return image
