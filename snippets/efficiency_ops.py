"""Chapter 10. Efficient convolutions: their costs, a separable layer and CNN.

`conv_cost` and `separable_cost` give a layer's parameters and multiply-adds
by formula; `count_mult_adds` counts them in a real forward pass instead.
`SeparableConv2d` is a depthwise-separable convolution, and `SeparableCNN`
chapter 4's SmallCNN built from them. All chapter 10 notebooks import this
module.
"""

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from book import SmallCNN


def _check_counts(**counts):
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


# --8<-- [start:cost]
@dataclass(frozen=True)
class Cost:
    """Chapter 10. What a layer costs: numbers to learn and store, and
    multiply-adds per image (a multiplication and an addition each)."""

    parameters: int
    mult_adds: int

    def __add__(self, other):
        return Cost(
            self.parameters + other.parameters,
            self.mult_adds + other.mult_adds,
        )


def conv_cost(C_in, C_out, k, H_out, W_out, groups=1, bias=True):
    """Chapter 10. A k × k convolution with groups, by formula.

    Each kernel sees C_in / groups channels: k * k * C_in / groups weights,
    and one multiply-add per weight for each of its H_out * W_out outputs.
    """
    _check_counts(C_in=C_in, C_out=C_out, k=k, H_out=H_out, W_out=W_out)
    _check_counts(groups=groups)
    if C_in % groups or C_out % groups:
        raise ValueError(
            f"groups={groups} must divide both C_in={C_in} and C_out={C_out}"
        )
    weights = C_out * (C_in // groups) * k * k
    return Cost(
        parameters=weights + (C_out if bias else 0),
        mult_adds=weights * H_out * W_out,
    )


def separable_cost(C_in, C_out, k, H_out, W_out, bias=True):
    """Chapter 10. Depthwise (one k × k kernel per channel), then
    pointwise (a 1 × 1 convolution that mixes the channels)."""
    depthwise = conv_cost(C_in, C_in, k, H_out, W_out, C_in, bias=False)
    pointwise = conv_cost(C_in, C_out, 1, H_out, W_out, bias=bias)
    return depthwise + pointwise


# --8<-- [end:cost]


# --8<-- [start:count]
def count_mult_adds(net, X):
    """Chapter 10. Multiply-adds per image of net's forward pass on the
    (N, C, H, W) images X, counted by PyTorch as the operations run."""
    if not isinstance(X, torch.Tensor) or X.dim() != 4 or len(X) == 0:
        shape = tuple(X.shape) if hasattr(X, "shape") else type(X).__name__
        raise ValueError(f"expected (N, C, H, W) images, got {shape}")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(X)
    # The counter counts 2 floating-point operations per multiply-add.
    return counter.get_total_flops() // 2 // len(X)


# --8<-- [end:count]


def dense_weight(conv):
    """Chapter 10. The weight of the standard convolution (groups=1) that
    computes what conv computes: conv's kernels, zeros between groups."""
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(
            f"expected an nn.Conv2d layer, got {type(conv).__name__}"
        )
    C_out, C_group = conv.weight.shape[:2]
    per_group = C_out // conv.groups  # output channels in each group
    K = conv.weight.new_zeros(C_out, conv.in_channels, *conv.kernel_size)
    for group in range(conv.groups):
        rows = slice(group * per_group, (group + 1) * per_group)
        cols = slice(group * C_group, (group + 1) * C_group)
        K[rows, cols] = conv.weight[rows]
    return K


# --8<-- [start:separable]
class SeparableConv2d(nn.Module):
    """Chapter 10. A depthwise-separable convolution: each input channel
    filtered by its own k × k kernel, then a 1 × 1 convolution to mix them."""

    def __init__(self, C_in, C_out, kernel_size, padding=0):
        super().__init__()
        _check_counts(C_in=C_in, C_out=C_out, kernel_size=kernel_size)
        self.depthwise = nn.Conv2d(  # groups=C_in: one channel per group
            C_in, C_in, kernel_size, padding=padding, groups=C_in, bias=False
        )
        self.pointwise = nn.Conv2d(C_in, C_out, 1)  # its bias is enough

    def forward(self, X):
        return self.pointwise(self.depthwise(X))


# --8<-- [end:separable]


# --8<-- [start:separable-cnn]
class SeparableCNN(SmallCNN):
    """Chapter 10. Chapter 4's SmallCNN with depthwise-separable blocks.

    Every 3 × 3 convolution after the first becomes a SeparableConv2d;
    the first sees a single channel, so there is nothing to separate.
    """

    def __init__(
        self,
        image_size=24,
        in_channels=1,
        channels=(16, 32, 64),
        num_classes=10,
    ):
        super().__init__(image_size, in_channels, channels, num_classes)
        for block in self.blocks[1:]:
            conv = block[-3]  # (pool), conv, batch norm, ReLU
            block[-3] = SeparableConv2d(
                conv.in_channels, conv.out_channels, 3, padding=1
            )


# --8<-- [end:separable-cnn]


# --8<-- [start:cnn-cost]
def cnn_cost(image_size=24, channels=(16, 32, 64), separable=False):
    """Chapter 10. Parameters and multiply-adds per image of SmallCNN (or
    SeparableCNN) on one-channel images, by formula, layer by layer."""
    _check_counts(image_size=image_size)
    if not channels:
        raise ValueError("channels must list at least one block's width")
    _check_counts(**{f"channels[{i}]": C for i, C in enumerate(channels)})
    total, C_in, size = Cost(0, 0), 1, image_size
    for depth, C_out in enumerate(channels):
        if depth > 0:
            size //= 2  # the block's 2 × 2 max pool
        layer = separable_cost if separable and depth > 0 else conv_cost
        total += layer(C_in, C_out, 3, size, size)
        total += Cost(2 * C_out, 0)  # batch norm: a scale and a shift each
        C_in = C_out
    return total + Cost(10 * C_in + 10, 10 * C_in)  # the linear layer


# --8<-- [end:cnn-cost]


# --8<-- [start:timer]
def interleaved_times(fns, rounds=30, seed=0):
    """Chapter 10. CPU seconds of every call: {name: (rounds,) array}.

    In each round every function runs once, in an order shuffled anew each
    round, so that a moment of heavy load on the machine, or an effect of
    running just after another function, falls on all of them alike. CPU
    time leaves out the moments when other programs had the processor.
    """
    if not isinstance(rounds, int) or rounds < 3:
        raise ValueError(f"rounds must be an int of at least 3, got {rounds!r}")
    for fn in fns.values():
        fn()  # the first call pays for allocating memory, loading code
    names = list(fns)
    order = np.random.default_rng(seed)  # its own generator: seeds unchanged
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for i in order.permutation(len(names)):
            start = time.process_time()
            fns[names[i]]()
            times[names[i]].append(time.process_time() - start)
    return {name: np.array(seconds) for name, seconds in times.items()}


def speed_ratio(slow, fast):
    """Chapter 10. How many times longer slow took than fast: the median
    over rounds of their ratio (both timed in the same round), and the
    standard error of its logarithm, from the rounds' spread."""
    logs = np.log(np.asarray(slow) / np.asarray(fast))
    q1, median, q3 = np.percentile(logs, [25, 50, 75])
    spread = (q3 - q1) / 1.349  # the standard deviation, were logs normal
    se = 1.2533 * max(spread, 1e-3) / np.sqrt(len(logs))  # of a median
    return float(np.exp(median)), float(se)


def compare(
    ratio, se, words=("slower than", "about as fast as", "faster than")
):
    """Chapter 10. Words for speed_ratio(other's times, this one's): this
    one is slower, about as fast, or faster, by two standard errors."""
    if np.log(ratio) > 2 * se:
        return words[2]
    if np.log(ratio) < -2 * se:
        return words[0]
    return words[1]


# --8<-- [end:timer]
