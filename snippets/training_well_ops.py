"""Chapter 7. Tools for the experiments of "Training a CNN well".

A smaller training set, the cost of choosing on the test set, the
learning-rate range test, and a plain deep CNN with its initialisation and
per-layer statistics. The chapter's three notebooks import this module.
"""

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from book import ThreeWaySplit, random_shift


# --8<-- [start:subset]
def per_class_subset(data, per_class, seed=0):
    """Chapter 7. The same splits with only per_class training images of
    each class, drawn at random; validation and test parts unchanged."""
    y = data.y_train.numpy()
    counts = np.bincount(y)
    if per_class < 1 or per_class > counts.min():
        raise ValueError(
            f"per_class must be between 1 and {counts.min()} (the smallest "
            f"class), got {per_class}"
        )
    rng = np.random.default_rng(seed)
    rows = np.sort(
        np.concatenate(
            [
                rng.choice(np.flatnonzero(y == label), per_class, replace=False)
                for label in range(len(counts))
            ]
        )
    )
    rows = torch.from_numpy(rows)
    return ThreeWaySplit(
        data.X_train[rows],
        data.y_train[rows],
        data.X_test,
        data.y_test,
        data.X_val,
        data.y_val,
    )


# --8<-- [end:subset]


# --8<-- [start:selection-gap]
def selection_gap(correct, num_splits=500, seed=0):
    """Chapter 7. What choosing on the test set does to the score.

    correct: (num_candidates, N) booleans, one row per candidate model, True
    where it classifies a test image correctly. Each time, the test set is
    cut in two random halves; the candidate that scores best on half A is
    chosen, then scored on half B as well. Returns the mean over the splits
    of its score on A minus its score on B (in accuracy, 0 to 1).
    """
    correct = np.asarray(correct, dtype=bool)
    if correct.ndim != 2 or correct.shape[1] < 2:
        raise ValueError(
            f"expected (num_candidates, N) with N >= 2, got {correct.shape}"
        )
    rng = np.random.default_rng(seed)
    N = correct.shape[1]
    gaps = []
    for _ in range(num_splits):
        order = rng.permutation(N)
        half_a, half_b = order[: N // 2], order[N // 2 :]
        score_a = correct[:, half_a].mean(axis=1)
        chosen = np.argmax(score_a)  # the best on half A
        gaps.append(score_a[chosen] - correct[chosen, half_b].mean())
    return float(np.mean(gaps))


# --8<-- [end:selection-gap]


# --8<-- [start:range-test]
def lr_range_test(
    net, data, lr_min=1e-5, lr_max=1.0, num_steps=100, batch_size=64, seed=0
):
    """Chapter 7. Train net for num_steps mini-batches while the learning
    rate grows by the same factor at each step, from lr_min to lr_max.

    Returns the learning rates and the training loss at each step, smoothed
    (an exponential moving average); stops early once the loss has blown
    up to four times its lowest value.
    """
    if not 0 < lr_min < lr_max:
        raise ValueError(
            f"need 0 < lr_min < lr_max, got lr_min={lr_min}, lr_max={lr_max}"
        )
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr_min)
    lrs = np.geomspace(lr_min, lr_max, num_steps)
    n, start, smoothed, losses = len(data.X_train), 0, 0.0, []
    order = torch.randperm(n, generator=generator)
    net.train()
    for step, lr in enumerate(lrs):
        if start + batch_size > n:  # too few images left: a new epoch
            order, start = torch.randperm(n, generator=generator), 0
        batch = order[start : start + batch_size]
        start += batch_size
        optimizer.param_groups[0]["lr"] = lr
        loss = F.cross_entropy(net(data.X_train[batch]), data.y_train[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        smoothed = 0.9 * smoothed + 0.1 * loss.item()
        losses.append(smoothed / (1 - 0.9 ** (step + 1)))  # unbiased start
        if not np.isfinite(losses[-1]) or losses[-1] > 4 * min(losses):
            break
    return lrs[: len(losses)], np.array(losses)


# --8<-- [end:range-test]


# --8<-- [start:without-bn]
def without_batch_norm(net):
    """Chapter 7. net with each BatchNorm2d layer replaced by an identity,
    in place; everything else, initial weights included, unchanged."""
    for module in list(net.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, name, nn.Identity())
    return net


# --8<-- [end:without-bn]


# --8<-- [start:plain-cnn]
class PlainCNN(nn.Module):
    """Chapter 7. depth 3 × 3 convolutions of width channels, each followed
    by a ReLU (and batch normalisation before it if batch_norm), with no
    pooling between them; then chapter 4's global max pool and a linear
    layer."""

    def __init__(self, depth=8, width=16, batch_norm=False, in_channels=1):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(
                f"depth and width must be at least 1, got {depth} and {width}"
            )
        blocks = []
        for _ in range(depth):
            norm = nn.BatchNorm2d(width) if batch_norm else nn.Identity()
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(in_channels, width, 3, padding=1),
                    norm,
                    nn.ReLU(),
                )
            )
            in_channels = width
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Linear(width, 10)

    def feature_maps(self, X):
        """Each block's output, first to last."""
        maps = []
        for block in self.blocks:
            X = block(X)
            maps.append(X)
        return maps

    def forward(self, X):
        last = self.feature_maps(X)[-1]
        return self.classifier(last.amax(dim=(2, 3)))


# --8<-- [end:plain-cnn]


# --8<-- [start:initialise]
def initialise(net, gain=1.0):
    """Chapter 7. Every weight of net's convolutions and linear layers drawn
    from a normal distribution with standard deviation gain * sqrt(2 /
    fan_in), fan_in being the number of inputs of one output unit; biases 0.

    gain=1 is He initialisation: a ReLU layer then keeps, on average, the
    size of what comes in.
    """
    if not gain > 0:
        raise ValueError(f"gain must be positive, got {gain}")
    for module in net.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            fan_in = module.weight[0].numel()  # in_channels × kH × kW
            with torch.no_grad():
                module.weight.normal_(0, gain * (2 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.zero_()
    return net


# --8<-- [end:initialise]


# --8<-- [start:layer-statistics]
def layer_statistics(net, X, y):
    """Chapter 7. For one mini-batch: the standard deviation of each block's
    output, and of the loss's gradient with respect to each block's
    convolution weights, first block first."""
    net.train()
    maps = net.feature_maps(X)
    loss = F.cross_entropy(net.classifier(maps[-1].amax(dim=(2, 3))), y)
    net.zero_grad()
    loss.backward()
    weights = [  # each block's convolution
        next(m for m in block.modules() if isinstance(m, nn.Conv2d)).weight
        for block in net.blocks
    ]
    return {
        "activation_std": [Y.std().item() for Y in maps],
        "gradient_std": [K.grad.std().item() for K in weights],
    }


# --8<-- [end:layer-statistics]


# --8<-- [start:noisy-shift]
def shift_with_noise(X, max_shift=3, noise=0.1, generator=None):
    """Chapter 7. random_shift, with the band it empties filled by the
    canvas's own noise (Gaussian, clipped to [0, 1]) instead of zeros, so
    that a shifted image shows nothing the real images never have."""
    state = generator.get_state() if generator is not None else None
    moved = random_shift(X, max_shift, generator)
    twin = torch.Generator()  # the same offsets again, for a mask
    if state is not None:
        twin.set_state(state)
    inside = random_shift(torch.ones_like(X), max_shift, twin) > 0
    fill = noise * torch.randn(X.shape, generator=generator)
    return torch.where(inside, moved, fill.clamp(0, 1))


# --8<-- [end:noisy-shift]


# --8<-- [start:batch-statistics]
def accuracy_with_batch_statistics(net, X, y):
    """Chapter 7. net's accuracy on X with batch normalisation in training
    mode, normalising by X's own statistics; on a copy, so that net's
    running statistics stay as they were."""
    twin = copy.deepcopy(net).train()
    with torch.no_grad():
        return (twin(X).argmax(dim=1) == y).float().mean().item()


# --8<-- [end:batch-statistics]


def difference_se(a, b, num_val):
    """Chapter 7. The standard error of mean(a) - mean(b), two sets of runs
    scored on num_val images: each mean's seed spread (sample std over the
    root of the number of seeds) and its sampling error on num_val images."""

    def se(values):
        values = np.asarray(values, dtype=float)
        p = (values.mean() * num_val + 1) / (num_val + 2)  # never 0 or 1
        return values.var(ddof=1) / len(values) + p * (1 - p) / num_val

    return float(np.sqrt(se(a) + se(b)))
