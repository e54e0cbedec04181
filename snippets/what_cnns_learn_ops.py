"""Chapter 8. Looking inside a trained CNN: its kernels, what its units respond
to, which pixels its decisions rest on, and the inputs it likes best.

Both chapter 8 notebooks import this module: `what_cnns_learn` for the first
seed's network and its figures, `what_cnns_learn_seeds` for the other seeds.
"""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from book import place_on_canvas, receptive_field

# --8<-- [start:layers]
# SmallCNN's layers as (kernel_size, stride, padding): conv, pool, conv, pool,
# conv. The blocks end after layers 1, 3 and 5.
CNN_LAYERS = [(3, 1, 1), (2, 2, 0), (3, 1, 1), (2, 2, 0), (3, 1, 1)]
BLOCK_ENDS = (1, 3, 5)
# --8<-- [end:layers]


# --8<-- [start:clean-digits]
def clean_test_digits(seed=0, canvas=24, noise=0.0, test_size=0.25):
    """Chapter 8. The shifted test digits of load_dataset("shifted_digits"),
    each at the same place and scale, drawn with the given noise (none by
    default): (N, 1, canvas, canvas). Where the clean image is above zero,
    the pixel is ink.
    """
    digits = load_digits()
    X = digits.images.astype(np.float32) / 16.0
    X_train, X_test, y_train, y_test = train_test_split(
        X,
        digits.target,
        test_size=test_size,
        stratify=digits.target,
        random_state=seed,
    )
    rng = np.random.default_rng(seed)  # the same draws as load_dataset's
    place_on_canvas(X_train, y_train, canvas, 2, rng)
    images, _ = place_on_canvas(X_test, y_test, canvas, 1, rng, noise=noise)
    return torch.from_numpy(images).unsqueeze(1)


def bounding_boxes(ink):
    """Chapter 8. For (N, H, W) ink masks, (N, H, W) masks of the smallest
    box around each image's ink."""
    if ink.dim() != 3:
        raise ValueError(f"expected (N, H, W) masks, got {tuple(ink.shape)}")
    rows, cols = ink.any(dim=2), ink.any(dim=1)  # (N, H), (N, W)
    if not rows.any(dim=1).all():
        empty = int((~rows.any(dim=1)).nonzero()[0])
        raise ValueError(f"image {empty} has no ink: it has no bounding box")

    def filled(hit):  # True from the first hit to the last, per row of hit
        return (hit.cumsum(1) > 0) & (hit.flip(1).cumsum(1).flip(1) > 0)

    return filled(rows)[:, :, None] & filled(cols)[:, None, :]


# --8<-- [end:clean-digits]


# --8<-- [start:kernel-parts]
def kernel_energy_shares(K):
    """Chapter 8. How each (k, k) kernel of K splits its energy (sum of
    squares) between a constant part (its mean), an odd part (changes sign
    when the kernel turns by 180 degrees: an edge) and the rest, even and of
    mean zero (a line or a spot). K: (C_out, 1, k, k) or (C_out, k, k).
    Returns (C_out, 3) shares; each row adds up to 1.
    """
    K = torch.as_tensor(K, dtype=torch.float64)
    if K.dim() == 4 and K.shape[1] == 1:
        K = K[:, 0]
    if K.dim() != 3 or K.shape[1] != K.shape[2]:
        raise ValueError(
            f"expected square kernels (C_out, 1, k, k) or (C_out, k, k), "
            f"got shape {tuple(K.shape)}"
        )
    turned = K.flip(1, 2)  # rotated by 180 degrees
    mean = K.mean(dim=(1, 2), keepdim=True).expand_as(K)
    odd = (K - turned) / 2
    even = (K + turned) / 2 - mean  # the three parts add up to K
    energy = K.pow(2).sum(dim=(1, 2))
    if (energy == 0).any():
        raise ValueError("a kernel is all zeros: it has no energy to split")
    parts = [part.pow(2).sum(dim=(1, 2)) / energy for part in (mean, odd, even)]
    return torch.stack(parts, dim=1).float()


# --8<-- [end:kernel-parts]


# --8<-- [start:weight-cosines]
def weight_cosines(net, initial):
    """Chapter 8. For each block, the median over its kernels of the cosine
    between a kernel (all its input channels) after and before training."""
    cosines = []
    for block, start in zip(net.blocks, initial.blocks):
        now, then = (b[-3].weight.detach().flatten(1) for b in (block, start))
        cosines.append(F.cosine_similarity(now, then).median().item())
    return cosines


# --8<-- [end:weight-cosines]


# --8<-- [start:selectivity]
def class_selectivity(responses, y, num_classes=10):
    """Chapter 8. How much each unit prefers one class: (N, C) responses
    (each unit's largest value on each of N images) and the N labels give
    (C,) indices in [0, 1]. 0: the same mean response to every class; 1: a
    response to one class only.
    """
    if responses.dim() != 2 or len(responses) != len(y):
        raise ValueError(
            f"expected (N, C) responses and N labels, got responses of shape "
            f"{tuple(responses.shape)} and {len(y)} labels"
        )
    if (responses < 0).any():
        raise ValueError("responses must be >= 0 (ReLU outputs)")
    means = torch.stack(
        [responses[y == c].mean(dim=0) for c in range(num_classes)]
    )  # (classes, C)
    best = means.max(dim=0).values
    rest = (means.sum(dim=0) - best) / (num_classes - 1)
    return (best - rest) / (best + rest).clamp(min=1e-12)


def top_label_share(responses, y, k=6):
    """Chapter 8. For each unit, the share of its k strongest images that
    carry the most common label among them: (C,)."""
    top = responses.argsort(dim=0, descending=True)[:k]  # (k, C)
    labels = torch.as_tensor(y)[top]
    counts = [torch.bincount(column, minlength=10).max() for column in labels.T]
    return torch.stack(counts).float() / k


# --8<-- [end:selectivity]


# --8<-- [start:field-box]
def field_box(layers, row, col):
    """Chapter 8. The square of input pixels that unit (row, col) at the top
    of a stack sees: (top, left, size). layers: (kernel_size, stride,
    padding) triples, first layer first. The square may reach past the
    image's border, into the padding.
    """
    if not layers:
        raise ValueError("the stack has no layers")
    offset, jump = 0, 1  # where unit 0's field starts; pixels between units
    for _, stride, padding in layers:
        offset -= padding * jump
        jump *= stride
    size = receptive_field([(k, s) for k, s, _ in layers])[-1]
    return row * jump + offset, col * jump + offset, size


def crop(image, top, left, size):
    """Chapter 8. The size × size patch of an (H, W) image at (top, left),
    zero where it reaches past the border (as the padding is)."""
    if image.dim() != 2:
        raise ValueError(f"expected an (H, W) image, got {tuple(image.shape)}")
    padded = F.pad(image, (size, size, size, size))
    return padded[top + size : top + 2 * size, left + size : left + 2 * size]


def top_patches(X, maps, channel, layers, k=6):
    """Chapter 8. The k test images on which a channel responds most, each
    cut to the field of its strongest unit: (k, size, size) patches and the
    k image indices. maps: (N, C, h, w) outputs of the top of layers."""
    values, where = maps[:, channel].flatten(1).max(dim=1)
    order = values.argsort(descending=True)[:k]
    width = maps.shape[-1]
    patches = []
    for index in order.tolist():
        row, col = divmod(where[index].item(), width)
        top, left, size = field_box(layers, row, col)
        patches.append(crop(X[index, 0], top, left, size))
    return torch.stack(patches), order


# --8<-- [end:field-box]


# --8<-- [start:occlusion]
def occlusion_map(net, x, label, patch=4, stride=2, value=0.0):
    """Chapter 8. Slide a patch × patch square of `value` over an image
    x (1, H, W) and record how far the score (logit) of `label` falls:
    (H, W), each pixel the mean fall over the squares that cover it.
    """
    if x.dim() != 3:
        raise ValueError(f"expected one (C, H, W) image, got {tuple(x.shape)}")
    H, W = x.shape[-2:]
    if not 1 <= patch <= min(H, W):
        raise ValueError(f"patch {patch} does not fit a {H} × {W} image")
    corners = [
        (row, col)
        for row in range(0, H - patch + 1, stride)
        for col in range(0, W - patch + 1, stride)
    ]
    squares = torch.zeros(len(corners), H, W, dtype=torch.bool)
    for i, (row, col) in enumerate(corners):
        squares[i, row : row + patch, col : col + patch] = True
    covered = x.masked_fill(squares[:, None], value)  # one copy per square
    net.eval()
    with torch.no_grad():
        score = net(x[None])[0, label]
        fall = score - net(covered)[:, label]  # (squares,)
    total = (fall[:, None, None] * squares).sum(dim=0)
    count = squares.sum(dim=0)
    return total / count.clamp(min=1)


# --8<-- [end:occlusion]


# --8<-- [start:move-ink]
def mask_background_like(ink, boxes, generator=None):
    """Chapter 8. For each image, as many pixels as it has ink, drawn at
    random from outside the digit's box: (N, H, W) masks."""
    masks = torch.zeros_like(ink)
    for i in range(len(ink)):
        outside = torch.nonzero(~boxes[i].flatten()).flatten()
        count = int(ink[i].sum())
        if count > len(outside):
            raise ValueError(
                f"image {i}: {count} ink pixels but only {len(outside)} "
                f"outside its box"
            )
        chosen = outside[torch.randperm(len(outside), generator=generator)]
        masks[i].view(-1)[chosen[:count]] = True
    return masks


def move_ink(X, ink, background, generator=None):
    """Chapter 8. Each (N, 1, H, W) image with its ink pixels' values, in a
    random order, written onto the background pixels of the masks: a
    change of about the same size as removing the ink, away from the digit.
    """
    moved = X.clone()
    for i in range(len(X)):
        values = X[i, 0][ink[i]]
        if len(values) != int(background[i].sum()):
            raise ValueError(
                f"image {i}: {len(values)} ink pixels but "
                f"{int(background[i].sum())} background pixels to move them to"
            )
        order = torch.randperm(len(values), generator=generator)
        moved[i, 0][background[i]] = values[order]
    return moved


def true_class_scores(net, X, y):
    """Chapter 8. The logit and the probability of each image's own class,
    and whether it is the prediction: three (N,) tensors."""
    net.eval()
    with torch.no_grad():
        logits = net(X)
    rows = torch.arange(len(y))
    probability = logits.softmax(dim=1)[rows, y]
    return logits[rows, y], probability, logits.argmax(dim=1) == y


# --8<-- [end:move-ink]


# --8<-- [start:saliency]
def saliency(net, X, y):
    """Chapter 8. |d score / d pixel| for each of the (N, C, H, W) images,
    the score being the logit of its label in y: (N, H, W), summed over
    the input channels. Puts net in eval mode.
    """
    if X.dim() != 4 or len(X) != len(y):
        raise ValueError(
            f"expected (N, C, H, W) images and N labels, got images of shape "
            f"{tuple(X.shape)} and {len(y)} labels"
        )
    net.eval()  # batch normalisation must not mix the images
    X = X.clone().requires_grad_(True)
    scores = net(X)[torch.arange(len(y)), y]
    (gradient,) = torch.autograd.grad(scores.sum(), X)  # images independent
    return gradient.abs().sum(dim=1)


def share_inside(maps, masks):
    """Chapter 8. For each (H, W) map, the share of its positive mass that
    falls inside the mask: (N,)."""
    if maps.shape != masks.shape:
        raise ValueError(
            f"maps {tuple(maps.shape)} and masks {tuple(masks.shape)} differ"
        )
    maps = maps.clamp(min=0)
    return (maps * masks).sum(dim=(1, 2)) / maps.sum(dim=(1, 2)).clamp(
        min=1e-12
    )


# --8<-- [end:saliency]


# --8<-- [start:maximise]
def total_variation(X):
    """Chapter 8. Mean absolute step between neighbouring pixels, per image
    of (N, C, H, W): (N,). Noise scores high, smooth strokes low."""
    rows = (X[..., 1:, :] - X[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    cols = (X[..., :, 1:] - X[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    return rows + cols


def maximise_activation(
    score,
    shape,
    steps=150,  # the book's images change little after 150 (ratios by < 0.1)
    lr=0.05,
    tv_weight=0.0,
    l2_weight=0.0,
    jitter=0,
    seed=0,
):
    """Chapter 8. Images in [0, 1] that maximise score, by gradient ascent
    on the pixels. score: a function from (N, C, H, W) images to N numbers,
    one per image; shape: (N, C, H, W). Regularisers keep the images
    readable: tv_weight penalises total variation (speckle), l2_weight the
    mean squared pixel (ink where it does not help), jitter rolls the image
    by up to that many pixels at random each step, a circular shift: what
    leaves one edge comes back at the other (no pixel-exact tricks).
    """
    if len(shape) != 4:
        raise ValueError(f"shape must be (N, C, H, W), got {tuple(shape)}")
    generator = torch.Generator().manual_seed(seed)
    X = 0.1 * torch.rand(shape, generator=generator)  # a faint random start
    X.requires_grad_(True)
    optimizer = torch.optim.Adam([X], lr=lr)
    for _ in range(steps):
        shift = torch.randint(-jitter, jitter + 1, (2,), generator=generator)
        shifted = torch.roll(X, tuple(shift.tolist()), dims=(2, 3))
        values = score(shifted)
        if values.shape != (shape[0],):
            raise ValueError(
                f"score must give one number per image, shape ({shape[0]},), "
                f"got {tuple(values.shape)}"
            )
        penalty = tv_weight * total_variation(X) + l2_weight * X.pow(2).mean(
            dim=(1, 2, 3)
        )
        loss = (penalty - values).sum()  # ascent on the score
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            X.clamp_(0, 1)  # stay in the range of real images
    return X.detach()


# --8<-- [end:maximise]

# --8<-- [start:scores]
# The book's two settings: none, and enough regularisation to read the image.
PLAIN = {}
READABLE = {"tv_weight": 20.0, "l2_weight": 2.0, "jitter": 3}


def class_score(net):
    """Chapter 8. Image n's score: its logit for class n (n = 0, 1, ...)."""

    def score(X):
        return net(X)[torch.arange(len(X)), torch.arange(len(X)) % 10]

    return score


def channel_score(net, channels):
    """Chapter 8. Image n's score: the largest value of the last block's
    channel channels[n] on it (what the global max pool passes on), taken
    before the final ReLU, so that a unit that is off still has a gradient.
    """
    channels = torch.as_tensor(channels)

    def score(X):
        for block in net.blocks[:-1]:
            X = block(X)
        last = net.blocks[-1][:-1](X)  # pool, conv, batch norm: no ReLU
        return last[torch.arange(len(X)), channels].amax(dim=(1, 2))

    return score


def frozen(net):
    """Chapter 8. net in eval mode with its parameters frozen: gradients
    flow to the input only."""
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


# --8<-- [end:scores]
