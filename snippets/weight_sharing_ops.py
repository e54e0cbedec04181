"""Chapter 6. Shifts, equivariance, parameter counts and fixed placements.

`shift` moves images; `equivariance_error` and `feature_change` measure
what a layer does with a shift; `conv_as_matrix` writes a convolution as
the fully connected layer it is; `layer_parameters` counts the weights of
the three kinds of layer; `place_at` puts digits at one chosen position.
Both chapter 6 notebooks import this module.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from book import PROTOCOL, Split, accuracy, train


# --8<-- [start:shift]
def shift(X, dy, dx):
    """Chapter 6. Images (..., H, W) moved dy rows down and dx columns right
    (negative: up, left). What leaves the frame is lost; zeros come in.
    """
    X = torch.as_tensor(X)
    if X.dim() < 2:
        raise ValueError(f"expected (..., H, W) images, got {tuple(X.shape)}")
    H, W = X.shape[-2:]
    if not all(isinstance(d, int) for d in (dy, dx)):
        raise ValueError(f"shifts must be integers, got ({dy!r}, {dx!r})")
    if abs(dy) >= H or abs(dx) >= W:
        raise ValueError(
            f"shift ({dy}, {dx}) moves a {H} × {W} image out of its frame"
        )
    out = torch.zeros_like(X)
    out[..., max(dy, 0) : H + min(dy, 0), max(dx, 0) : W + min(dx, 0)] = X[
        ..., max(-dy, 0) : H + min(-dy, 0), max(-dx, 0) : W + min(-dx, 0)
    ]
    return out


# --8<-- [end:shift]


# --8<-- [start:equivariance-error]
def equivariance_gap(f, X, dy, dx, stride=1):
    """Chapter 6. |f(shift(X)) - shift(f(X))|, pixel by pixel.

    f shrinks the image by stride (2 after one 2 × 2 pool), so a shift of
    the input by (dy, dx) should move the output by (dy, dx) / stride.
    """
    if dy % stride or dx % stride:
        raise ValueError(
            f"shift ({dy}, {dx}) is not a multiple of the stride {stride}: "
            f"the output has no matching shift"
        )
    with torch.no_grad():
        moved_first = f(shift(X, dy, dx))
        moved_after = shift(f(X), dy // stride, dx // stride)
    return (moved_first - moved_after).abs()


def equivariance_error(f, X, dy, dx, stride=1, margin=0):
    """Chapter 6. The largest gap, away from the borders: margin output
    pixels on each side are left out."""
    gap = equivariance_gap(f, X, dy, dx, stride)
    return inside(gap, margin).max()


# --8<-- [end:equivariance-error]


# --8<-- [start:band]
def inside(maps, margin):
    """Chapter 6. Maps (..., H, W) without margin pixels on each side."""
    H, W = maps.shape[-2:]
    if margin < 0 or 2 * margin >= min(H, W):
        raise ValueError(f"margin {margin} leaves nothing of a {H} × {W} map")
    return maps[..., margin : H - margin, margin : W - margin]


def exact_margin(f, X, dy, dx, stride=1):
    """Chapter 6. The narrowest border band outside which f is exactly
    equivariant for this shift: the smallest margin with no gap left.
    """
    gap = equivariance_gap(f, X, dy, dx, stride)
    for margin in range((min(gap.shape[-2:]) + 1) // 2):
        if inside(gap, margin).max() == 0:
            return margin
    raise ValueError(
        f"f is not equivariant for the shift ({dy}, {dx}) at any margin"
    )


# --8<-- [end:band]


# --8<-- [start:feature-change]
# --8<-- [start:relative-change]
def relative_change(before, after):
    """Chapter 6. |after - before| / |before| for each of N feature
    vectors (N, ...), lengths taken over everything but the first axis."""
    before, after = before.flatten(1), after.flatten(1)
    return (after - before).norm(dim=1) / before.norm(dim=1)


# --8<-- [end:relative-change]


def feature_change(g, X, dy, dx):
    """Chapter 6. How much a shift changes the vectors g computes from each
    of the N images X: |g(shift(X)) - g(X)| / |g(X)|."""
    with torch.no_grad():
        return relative_change(g(X), g(shift(X, dy, dx)))


# --8<-- [end:feature-change]


# --8<-- [start:as-matrix]
def conv_as_matrix(conv, image_size):
    """Chapter 6. The weight matrix and bias of the fully connected layer
    that computes conv on (C_in, H, W) images with H = W = image_size.

    Column j is the layer's answer, without its bias, to an image that is 1
    at pixel j and 0 elsewhere: a linear layer is known by those answers.
    """
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"expected an nn.Conv2d, got {type(conv).__name__}")
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError(
            f"expected numeric zero padding, got padding={conv.padding!r} "
            f"and padding_mode={conv.padding_mode!r}"
        )
    C, n = conv.in_channels, image_size
    pixels = torch.eye(C * n * n).reshape(C * n * n, C, n, n)  # one per image
    settings = conv.stride, conv.padding, conv.dilation, conv.groups
    with torch.no_grad():  # conv's own arithmetic, without the bias
        answers = F.conv2d(pixels, conv.weight, None, *settings)
    W = answers.flatten(1).T  # row: an output unit; column: an input pixel
    bias = torch.zeros(conv.out_channels) if conv.bias is None else conv.bias
    return W, bias.detach().repeat_interleave(len(W) // conv.out_channels)


# --8<-- [end:as-matrix]


# --8<-- [start:parameters]
LAYER_KINDS = ("dense", "local", "conv")


def layer_parameters(kind, C_in, C_out, size, kernel_size=3):
    """Chapter 6. Weights and biases of a layer from (C_in, size, size) to
    (C_out, size, size) feature maps ("same" padding, stride 1).

    dense: every output unit sees every input unit, with its own weights;
    local: each sees only a kernel_size window, still with its own weights;
    conv: each sees a window, and all positions share one bank of kernels.
    """
    if kind not in LAYER_KINDS:
        raise ValueError(
            f"unknown layer kind {kind!r}; choose from {LAYER_KINDS}"
        )
    inputs, outputs = C_in * size * size, C_out * size * size
    if kind == "dense":
        return inputs * outputs + outputs  # a weight per pair, a bias each
    window = C_in * kernel_size**2
    if kind == "local":
        return outputs * window + outputs  # a window of weights per unit
    return C_out * window + C_out  # one bank of kernels, shared


# --8<-- [end:parameters]


# --8<-- [start:place-at]
def place_at(images, row, col, canvas=24, noise=0.1, rng=None):
    """Chapter 6. Each (H, W) image with its top left corner at (row, col)
    of a canvas of Gaussian noise, as in chapter 2's shifted digits but at
    one chosen position. Returns (N, 1, canvas, canvas) in [0, 1].
    """
    images = torch.as_tensor(images, dtype=torch.float32)
    if images.dim() == 4 and images.shape[1] == 1:
        images = images[:, 0]  # (N, 1, H, W) from load_dataset
    if images.dim() != 3:
        raise ValueError(
            f"expected (N, H, W) or (N, 1, H, W) images, "
            f"got {tuple(images.shape)}"
        )
    N, H, W = images.shape
    if not (0 <= row <= canvas - H and 0 <= col <= canvas - W):
        raise ValueError(
            f"a {H} × {W} image at ({row}, {col}) does not fit on a "
            f"{canvas} × {canvas} canvas"
        )
    rng = rng if rng is not None else np.random.default_rng(0)
    out = torch.zeros(N, 1, canvas, canvas)
    out[:, 0, row : row + H, col : col + W] = images
    out += noise * torch.from_numpy(
        rng.standard_normal(out.shape, dtype=np.float32)
    )
    return out.clamp(0, 1)


# --8<-- [end:place-at]


def matched_hidden(parameters, inputs, num_classes=10):
    """Chapter 6. The hidden width h of a one-hidden-layer perceptron
    (inputs → h → num_classes) whose parameter count is nearest to
    `parameters`: it has (inputs + 1) h + (h + 1) num_classes of them.
    """
    h = round((parameters - num_classes) / (inputs + 1 + num_classes))
    if h < 1:
        raise ValueError(
            f"{parameters} parameters are too few for a hidden layer on "
            f"{inputs} inputs"
        )
    return h


# --8<-- [start:local]
class LocallyConnected2d(nn.Module):
    """Chapter 6. A 3 × 3 convolution without weight sharing: every output
    position of a size × size map has its own kernels and bias (locality
    kept, sharing dropped). Padding 1 and stride 1, like SmallCNN's.

    weight[p] is position p's own matrix, (C_in k k, C_out): its window,
    flattened in F.unfold's order, times the matrix, plus bias[:, p], gives
    the C_out outputs there. LocalProduct computes that for every position.
    """

    def __init__(self, C_in, C_out, size, kernel_size=3):
        super().__init__()
        fan_in = C_in * kernel_size**2
        bound = fan_in**-0.5  # nn.Conv2d's default range
        # Drawn as nn.Conv2d draws its kernels, (C_out, fan_in), at each
        # position; stored transposed, as the product reads it.
        weight = torch.empty(size * size, C_out, fan_in)
        weight = weight.uniform_(-bound, bound).transpose(1, 2)
        self.weight = nn.Parameter(weight.contiguous())
        self.bias = nn.Parameter(
            torch.empty(C_out, size, size).uniform_(-bound, bound)
        )
        self.size, self.kernel_size = size, kernel_size

    def forward(self, X):
        N, _, H, W = X.shape
        if (H, W) != (self.size, self.size):
            raise ValueError(
                f"this layer has kernels for {self.size} × {self.size} "
                f"maps, got {H} × {W}"
            )
        if N > 128:  # a large batch (a test set) in parts that fit the cache
            return torch.cat([self(part) for part in X.split(128)])
        return LocalProduct.apply(X, self.weight, self.bias, self.kernel_size)


def locally_connected(net, image_size=24):
    """Chapter 6. net (a SmallCNN) with each convolution replaced by a
    locally connected layer of the same shape, in place: the only change
    is that no weight is shared."""
    size = image_size
    for depth, block in enumerate(net.blocks):
        size = image_size // 2**depth  # each block after the first pools
        for index, layer in enumerate(block):
            if isinstance(layer, nn.Conv2d):
                block[index] = LocallyConnected2d(
                    layer.in_channels, layer.out_channels, size
                )
    return net


# --8<-- [end:local]


# --8<-- [start:local-product]
class LocalProduct(torch.autograd.Function):
    """Chapter 6. The locally connected layer's arithmetic, and its gradients.

    Each position p multiplies its windows, one per image, by its own matrix
    weight[p]; torch.bmm does all positions in one call. It is fast only if
    each position's windows are one compact block of memory, so they are
    laid out (H W, C_in k k, N): position, window entry, image. The output
    is channels last, (N, H, W, C_out) in memory, which batch norm and max
    pooling read fastest. The gradients are written out in the same
    layouts (autograd's own reach these blocks through transposed views and
    copy them). tests/test_weight_sharing.py checks all of it against
    F.unfold and einsum.
    """

    @staticmethod
    def forward(ctx, X, weight, bias, k):
        N, C, H, W = X.shape
        pad = k // 2
        padded = X.new_zeros(H + 2 * pad, W + 2 * pad, C, N)
        padded[pad : pad + H, pad : pad + W] = X.permute(2, 3, 1, 0)
        windows = torch.stack(  # (H, W, C, k k, N): the k k shifted images
            [
                padded[dy : dy + H, dx : dx + W]
                for dy in range(k)
                for dx in range(k)
            ],
            dim=3,
        ).view(H * W, C * k * k, N)
        bias_p = bias.flatten(1).T.unsqueeze(1)  # (H W, 1, C_out)
        out = torch.baddbmm(bias_p, windows.transpose(1, 2), weight)
        ctx.save_for_backward(windows, weight)
        ctx.sizes = N, C, H, W, k
        # (H W, N, C_out) to (N, C_out, H, W), channels last in memory
        out = out.view(H, W, N, -1).permute(2, 3, 0, 1)
        return out.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad):
        windows, weight = ctx.saved_tensors
        N, C, H, W, k = ctx.sizes
        pad = k // 2
        grad = grad.contiguous(memory_format=torch.channels_last)
        grad = grad.permute(2, 3, 0, 1).reshape(H * W, N, -1)  # a view
        grad_X = grad_weight = grad_bias = None
        if ctx.needs_input_grad[1]:
            grad_weight = torch.bmm(windows, grad)  # (H W, C k k, C_out)
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum(dim=1).T.reshape(-1, H, W)
        if ctx.needs_input_grad[0]:
            grad_windows = torch.bmm(weight, grad.transpose(1, 2))
            grad_windows = grad_windows.view(H, W, C, k * k, N)
            grad_padded = grad.new_zeros(H + 2 * pad, W + 2 * pad, C, N)
            for i in range(k * k):  # each window entry back to its pixel
                dy, dx = divmod(i, k)
                grad_padded[dy : dy + H, dx : dx + W] += grad_windows[..., i, :]
            grad_X = grad_padded[pad : pad + H, pad : pad + W]
            grad_X = grad_X.permute(3, 2, 0, 1).contiguous(
                memory_format=torch.channels_last
            )
        return grad_X, grad_weight, grad_bias, None


# --8<-- [end:local-product]


# --8<-- [start:placements]
ROW = COL = 8  # the training position: the middle of the 24 × 24 canvas
MOVES = range(-8, 9)  # test positions: pixels from the training position


def place_anywhere(images, rng):
    """Chapter 6. Each image at its own random position of the canvas."""
    corners = rng.integers(0, 24 - 8 + 1, size=(len(images), 2))
    return torch.cat(
        [
            place_at(x, row, col, rng=rng)
            for x, (row, col) in zip(images, corners)
        ]
    )


def placements(digits, seed=0):
    """Chapter 6. The digits at the training position (training and test
    parts), and the test digits moved across the canvas, down it, and
    anywhere at random; each placement draws its own noise."""
    rng = np.random.default_rng(seed)
    data = Split(
        place_at(digits.X_train, ROW, COL, rng=rng),  # (N, 1, 24, 24)
        digits.y_train,
        place_at(digits.X_test, ROW, COL, rng=rng),
        digits.y_test,
    )
    tests = {
        "across": {
            d: place_at(digits.X_test, ROW, COL + d, rng=rng) for d in MOVES
        },
        "down": {
            d: place_at(digits.X_test, ROW + d, COL, rng=rng) for d in MOVES
        },
        "anywhere": place_anywhere(digits.X_test, rng),
    }
    return data, tests


# --8<-- [end:placements]


# --8<-- [start:trials]
# The book's protocol with 6 epochs instead of 15, for the time budget:
# this chapter's networks only need to learn the task at one position.
POSITION_PROTOCOL = {**PROTOCOL, "num_epochs": 6}


def position_trials(make_net, data, tests, protocol=POSITION_PROTOCOL):
    """Chapter 6. Train make_net() on data once per seed of the protocol;
    test each net at every position of tests."""
    settings = {k: v for k, v in protocol.items() if k != "seeds"}
    runs, y = [], data.y_test
    for seed in protocol["seeds"]:
        torch.manual_seed(seed)  # the initial weights, as run_trials does
        net = make_net()
        train(net, data, seed=seed, curve=False, **settings)
        runs.append(
            {
                "net": net,
                "across": [
                    accuracy(net, X, y) for X in tests["across"].values()
                ],
                "down": [accuracy(net, X, y) for X in tests["down"].values()],
                "anywhere": accuracy(net, tests["anywhere"], y),
            }
        )
    return runs


# --8<-- [end:trials]


def position_summary(runs, key):
    """Chapter 6. Each seed's accuracy at the training position, on the
    4-pixel grid (moves of 4 and 8, across and down), off it, and anywhere;
    means over seeds by move. Keys start with key."""
    moves = np.array(MOVES)
    across = np.array([run["across"] for run in runs])  # (seeds, moves)
    down = np.array([run["down"] for run in runs])
    both = np.concatenate([across, down], axis=1)
    both_moves = np.concatenate([moves, moves])
    on_grid = (both_moves % 4 == 0) & (both_moves != 0)
    off_grid = both_moves % 4 != 0
    one_pixel = np.abs(both_moves) == 1
    two_or_more = np.abs(both_moves) >= 2
    by_seed = {
        "same": across[:, moves == 0][:, 0],
        "grid": both[:, on_grid].mean(axis=1),
        "off_grid": both[:, off_grid].mean(axis=1),
        "one_pixel": both[:, one_pixel].mean(axis=1),
        "two_or_more": both[:, two_or_more].mean(axis=1),
        "anywhere": np.array([run["anywhere"] for run in runs]),
    }
    summary = {
        f"{key}_across_mean": across.mean(axis=0).tolist(),
        f"{key}_down_mean": down.mean(axis=0).tolist(),
    }
    for name, values in by_seed.items():
        summary[f"{key}_{name}_by_seed"] = values.tolist()
        summary[f"{key}_{name}_mean"] = float(values.mean())
        summary[f"{key}_{name}_std"] = float(values.std(ddof=1))
    return summary


# --8<-- [start:accuracy-at]
def accuracy_at(runs, moves, ways=("across", "down")):
    """Chapter 6. Each seed's mean accuracy over the test positions moved by
    one of `moves` pixels in one of `ways` (from position_trials)."""
    picked = np.isin(np.array(MOVES), moves)
    return np.array(
        [np.mean([np.array(run[way])[picked] for way in ways]) for run in runs]
    )


# --8<-- [end:accuracy-at]
