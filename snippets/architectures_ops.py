"""Chapter 9. Four architectures from their papers' layer lists, and the code
that counts what they cost.

Each network is one class whose widths are arguments, so that the published
network (counted in `architectures.py`) and the scaled-down one trained on the
shifted digits share one definition. `layer_costs` and `receptive_path` read a
network's layers with forward hooks; both work on the `meta` device, where a
network has shapes but no numbers, so that even VGG-16 costs no memory.
"""

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from book import PROTOCOL, Split

# The chapter's training protocol: the book's (chapters 2 to 4), for 10
# epochs instead of 15, so that each part of the chapter fits the time budget.
TRIALS = {**PROTOCOL, "num_epochs": 10}


# --8<-- [start:costs]
@dataclass
class LayerCost:
    """Chapter 9. What one layer of a network costs, for one image."""

    name: str  # the module's name in the network, such as "features.0"
    kind: str  # its class: "Conv2d", "Linear", ...
    output_shape: tuple  # (C, H, W) or (features,)
    units: int  # numbers in the output: the paper's "neurons"
    parameters: int  # trainable numbers in this layer
    multiply_adds: int
    has_bias: bool


def fan_in(module):
    """Chapter 9. Multiply-adds per output number of module, or None for a
    layer that multiplies nothing (ReLU, pooling, batch normalisation)."""
    if isinstance(module, nn.Conv2d):
        C_in_per_group, kH, kW = module.weight.shape[1:]
        return C_in_per_group * kH * kW
    if isinstance(module, nn.Linear):
        return module.in_features
    return getattr(module, "fan_in", None)  # a layer of ours says it


def layer_costs(net, input_shape):
    """Chapter 9. A LayerCost per layer that multiplies, in the order the
    layers run on one image of shape input_shape, (C, H, W)."""
    check_shape(input_shape)
    rows = []

    def hook(module, inputs, output, name):
        units = output[0].numel()  # output: (1, ...) for one image
        own = module.parameters(recurse=False)  # not its sub-modules'
        rows.append(
            LayerCost(
                name=name,
                kind=type(module).__name__,
                output_shape=tuple(output.shape[1:]),
                units=units,
                parameters=sum(p.numel() for p in own if p.requires_grad),
                multiply_adds=round(units * fan_in(module)),
                has_bias=getattr(module, "bias", None) is not None,
            )
        )

    modules = [(n, m) for n, m in net.named_modules() if fan_in(m)]
    run_with_hooks(net, input_shape, modules, hook)
    return rows


# --8<-- [end:costs]


def check_shape(input_shape):
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(n, int) and n > 0 for n in shape):
        raise ValueError(
            f"input_shape must be (C, H, W), three positive integers, "
            f"got {input_shape!r}"
        )


def run_with_hooks(net, input_shape, modules, hook):
    """Run net on one zero image with hook on each (name, module); one image
    in eval mode, without gradients, on the device of net's parameters."""
    device = next(net.parameters()).device
    handles = [
        module.register_forward_hook(partial(hook, name=name))
        for name, module in modules
    ]
    training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros(1, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        net.train(training)


# --8<-- [start:connections]
def connections(row):
    """Chapter 9. LeCun et al.'s "connections": every multiply-add, and one
    more per output number for its bias."""
    return row.multiply_adds + (row.units if row.has_bias else 0)


# --8<-- [end:connections]


def by_block(rows, depth=1):
    """Chapter 9. Rows added up by the first `depth` parts of their names:
    {"c3": {"parameters": ..., "multiply_adds": ..., "units": ...,
    "connections": ...}, ...}."""
    blocks = {}
    for row in rows:
        key = ".".join(row.name.split(".")[:depth])
        block = blocks.setdefault(
            key,
            {"parameters": 0, "multiply_adds": 0, "units": 0, "connections": 0},
        )
        block["parameters"] += row.parameters
        block["multiply_adds"] += row.multiply_adds
        block["units"] += row.units
        block["connections"] += connections(row)
    return blocks


# --8<-- [start:path]
def receptive_path(net, input_shape):
    """Chapter 9. The (kernel_size, stride) pairs that book.receptive_field
    takes, read from net: each convolution and pooling layer in the order
    they run. A residual block's shortcut is a second, shorter path; the
    field is set by the longer one, so shortcuts are left out."""
    check_shape(input_shape)
    path = []

    def hook(module, inputs, output, name):
        kernel, stride = (
            value if isinstance(value, int) else value[0]
            for value in (module.kernel_size, module.stride)
        )
        path.append((kernel, stride))

    found = [
        (name, module)
        for name, module in net.named_modules()
        if hasattr(module, "kernel_size") and "shortcut" not in name
    ]
    run_with_hooks(net, input_shape, found, hook)
    return path


# --8<-- [end:path]


# --8<-- [start:lenet]
# LeCun et al. (1998), Table I: the S2 maps each C3 map reads.
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1),
    (5, 0, 1, 2), (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip


class Subsample(nn.Module):
    """Chapter 9. LeNet's S layers: the sum of each 2 × 2 window, times a
    learned coefficient, plus a learned bias; one pair per map."""

    kernel_size, stride, fan_in = 2, 2, 4

    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels, 1, 1), 0.25))
        self.bias = nn.Parameter(torch.zeros(channels, 1, 1))

    def forward(self, X):
        sums = 4 * nn.functional.avg_pool2d(X, 2)
        return self.weight * sums + self.bias


class SparseConv(nn.Module):
    """Chapter 9. LeNet's C3: output map j is a convolution of only the
    input maps that table[j] lists. The weights that exist are stored; the
    full kernel tensor, zero elsewhere, is assembled for one conv2d call."""

    stride = 1

    def __init__(self, table, in_channels, kernel_size):
        super().__init__()
        self.kernel_size = kernel_size
        pairs = [(j, i) for j, inputs in enumerate(table) for i in inputs]
        self.register_buffer("index", torch.tensor(pairs).T)  # (2, pairs)
        self.shape = (len(table), in_channels, kernel_size, kernel_size)
        self.fan_in = len(pairs) * kernel_size**2 / len(table)  # mean of maps
        bound = 1 / self.fan_in**0.5  # as PyTorch starts a convolution
        weight = torch.empty(len(pairs), kernel_size, kernel_size)
        self.weight = nn.Parameter(weight.uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(len(table)))

    def forward(self, X):
        K = self.weight.new_zeros(self.shape)
        K = K.index_put((self.index[0], self.index[1]), self.weight)
        return nn.functional.conv2d(X, K, self.bias)


class EuclideanRBF(nn.Module):
    """Chapter 9. LeNet-5's output layer: the squared distance from the input
    to a fixed code of ±1 per class (the paper drew its codes as
    7 × 12 bitmaps; random ones serve here). Smallest wins: the output is
    minus the distance. The codes are fixed, not trained."""

    def __init__(self, in_features, num_classes):
        super().__init__()
        self.fan_in = in_features
        shape = (num_classes, in_features)
        generator = torch.Generator().manual_seed(0)  # the same codes always
        bits = torch.randint(0, 2, shape, generator=generator)
        self.register_buffer("codes", 2.0 * bits - 1)

    def forward(self, X):
        return -torch.cdist(X, self.codes).square()


class ScaledTanh(nn.Module):
    """Chapter 9. LeNet's squashing function, 1.7159 tanh(2x / 3)."""

    def forward(self, X):
        return 1.7159 * torch.tanh(2 * X / 3)


class LeNet5(nn.Module):
    """Chapter 9. LeNet-5 (LeCun et al., 1998), layer by layer.

    On the published 32 × 32 input, C5's 5 × 5 kernels cover S4's 5 × 5
    maps and leave 1 × 1 maps; on a larger image C5's maps grow, as the
    paper says. On a smaller one C5's kernels shrink to S4's maps (our
    departure, for the 24-pixel canvas), so C5 still reads all of S4.
    output="rbf" is the paper's output layer; "linear" is the softmax
    layer every later network uses.
    """

    def __init__(self, image_size=32, num_classes=10, output="rbf"):
        super().__init__()
        if output not in ("rbf", "linear"):
            raise ValueError(
                f"output must be 'rbf' or 'linear', got {output!r}"
            )
        s4_size = ((image_size - 4) // 2 - 4) // 2  # C1 and C3 are 5 × 5
        if s4_size < 1:
            raise ValueError(
                f"image_size {image_size} is too small for LeNet-5: "
                f"need at least 14 pixels"
            )
        self.c1 = nn.Conv2d(1, 6, 5)
        self.s2 = Subsample(6)
        self.c3 = SparseConv(C3_TABLE, 6, 5)
        self.s4 = Subsample(16)
        c5_kernel = min(5, s4_size)
        c5_side = s4_size - c5_kernel + 1  # 1 on 32 pixels or fewer
        self.c5 = nn.Conv2d(16, 120, c5_kernel)
        self.f6 = nn.Linear(120 * c5_side**2, 84)
        self.output = (
            EuclideanRBF(84, num_classes)
            if output == "rbf"
            else nn.Linear(84, num_classes)
        )
        self.squash = ScaledTanh()

    def forward(self, X):
        for layer in (self.c1, self.s2, self.c3, self.s4, self.c5):
            X = self.squash(layer(X))
        X = self.squash(self.f6(X.flatten(1)))
        return self.output(X)


# --8<-- [end:lenet]


# --8<-- [start:alexnet]
def dropout_head(size, hidden, num_classes):
    """AlexNet's classifier, which VGG kept: two hidden layers, dropout."""
    return nn.Sequential(
        nn.Linear(size, hidden),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(hidden, num_classes),
    )


class ResponseNorm(nn.Module):
    """Chapter 9. AlexNet's local response normalisation (its section 3.3):
    each activity divided by (k + alpha * the sum of the squares of the n
    channels around it) ** beta, with the paper's constants."""

    def __init__(self, n=5, k=2.0, alpha=1e-4, beta=0.75):
        super().__init__()
        self.n, self.k, self.alpha, self.beta = n, k, alpha, beta

    def forward(self, X):
        C, half = X.shape[1], self.n // 2
        squares = nn.functional.pad(X.square(), (0, 0, 0, 0, half, half))
        sums = sum(squares[:, i : i + C] for i in range(self.n))
        return X / (self.k + self.alpha * sums) ** self.beta


class AlexNet(nn.Module):
    """Chapter 9. AlexNet (Krizhevsky et al., 2012).

    first: the first convolution's (kernel_size, stride, padding).
    groups=2 splits conv2, conv4 and conv5 in two halves that do not see each
    other, as the two GPUs of the paper did. ceil_mode=True rounds the pools'
    output sizes up, so that all three fit on a small image.
    batch_norm=True adds batch normalisation after each convolution;
    response_norm=False leaves out the response normalisation.
    """

    def __init__(
        self,
        image_size=227,
        in_channels=3,
        num_classes=1000,
        channels=(96, 256, 384, 384, 256),
        hidden=4096,
        first=(11, 4, 0),
        groups=2,
        ceil_mode=False,
        batch_norm=False,
        response_norm=True,
    ):
        super().__init__()
        c1, c2, c3, c4, c5 = channels
        kernel_size, stride, padding = first

        def conv(*args, **kwargs):  # a convolution and its ReLU
            layer = nn.Conv2d(*args, **kwargs)
            bn = [nn.BatchNorm2d(layer.out_channels)] if batch_norm else []
            return [layer, *bn, nn.ReLU()]

        def pool():  # overlapping: 3 × 3 windows, 2 apart
            return nn.MaxPool2d(3, stride=2, ceil_mode=ceil_mode)

        def norm():
            return ResponseNorm() if response_norm else nn.Identity()

        self.features = nn.Sequential(
            *conv(in_channels, c1, kernel_size, stride, padding),
            norm(),
            pool(),
            *conv(c1, c2, 5, padding=2, groups=groups),
            norm(),
            pool(),
            *conv(c2, c3, 3, padding=1),
            *conv(c3, c4, 3, padding=1, groups=groups),
            *conv(c4, c5, 3, padding=1, groups=groups),
            pool(),
        )
        size = flat_size(self.features, in_channels, image_size)
        self.classifier = dropout_head(size, hidden, num_classes)

    def forward(self, X):
        return self.classifier(self.features(X).flatten(1))


# --8<-- [end:alexnet]


def flat_size(features, in_channels, image_size):
    """How many numbers features leaves for one image: a dry run on zeros
    (on the meta device when the network is built there)."""
    X = torch.zeros(1, in_channels, image_size, image_size)
    with torch.no_grad():
        return features(X).numel()


# --8<-- [start:vgg]
# Simonyan and Zisserman (2015), Table 1: a number is a 3 × 3 convolution
# with that many channels, (n, 1) a 1 × 1 convolution, "M" a 2 × 2 max pool.
VGG_CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M",
              512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M",
          512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, (256, 1), "M",
          512, 512, (512, 1), "M", 512, 512, (512, 1), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
          512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}  # fmt: skip


class VGG(nn.Module):
    """Chapter 9. A VGG network (Simonyan and Zisserman, 2015) from a
    configuration list; "D" is VGG-16, "E" VGG-19."""

    def __init__(
        self,
        config="D",
        image_size=224,
        in_channels=3,
        num_classes=1000,
        hidden=4096,
        batch_norm=False,
    ):
        super().__init__()
        if isinstance(config, str):
            if config not in VGG_CONFIGS:
                raise ValueError(
                    f"unknown VGG configuration {config!r}; choose one of "
                    f"{sorted(VGG_CONFIGS)} or pass a list"
                )
            config = VGG_CONFIGS[config]
        layers, channels = [], in_channels
        for entry in config:
            if entry == "M":
                layers.append(nn.MaxPool2d(2))
            elif entry == "LRN":
                layers.append(ResponseNorm())
            else:
                width, size = entry if isinstance(entry, tuple) else (entry, 3)
                layers.append(
                    nn.Conv2d(channels, width, size, padding=size // 2)
                )
                if batch_norm:
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.ReLU())
                channels = width
        self.features = nn.Sequential(*layers)
        size = flat_size(self.features, in_channels, image_size)
        self.classifier = dropout_head(size, hidden, num_classes)

    def forward(self, X):
        return self.classifier(self.features(X).flatten(1))


# --8<-- [end:vgg]


# --8<-- [start:resnet]
def conv_bn(in_channels, out_channels, kernel_size, stride=1):
    """A convolution without bias (batch normalisation adds one) and its
    batch normalisation."""
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding=kernel_size // 2,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """Chapter 9. Two 3 × 3 convolutions, and the input added to their
    output: y = relu(F(x) + x).

    Where the block changes the shape, the shortcut is a strided 1 × 1
    convolution (shortcut="projection", He et al.'s option B) or the input
    subsampled and padded with zero channels ("zero-padding", option A);
    shortcut=None keeps the layers and drops the addition: a plain stack.
    """

    expansion = 1

    def __init__(self, in_channels, channels, stride=1, shortcut="projection"):
        super().__init__()
        self.residual = nn.Sequential(
            conv_bn(in_channels, channels, 3, stride),
            nn.ReLU(),
            conv_bn(channels, channels, 3),
        )
        self.shortcut = make_shortcut(shortcut, in_channels, channels, stride)

    def forward(self, x):
        out = self.residual(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return torch.relu(out)


class Bottleneck(BasicBlock):
    """Chapter 9. ResNet-50's block: a 1 × 1 convolution to fewer channels,
    a 3 × 3 one, and a 1 × 1 one back to four times as many. The stride sits
    on the first 1 × 1 convolution, as in the paper's original models."""

    expansion = 4

    def __init__(self, in_channels, channels, stride=1, shortcut="projection"):
        nn.Module.__init__(self)
        out_channels = 4 * channels
        self.residual = nn.Sequential(
            conv_bn(in_channels, channels, 1, stride),
            nn.ReLU(),
            conv_bn(channels, channels, 3),
            nn.ReLU(),
            conv_bn(channels, out_channels, 1),
        )
        self.shortcut = make_shortcut(
            shortcut, in_channels, out_channels, stride
        )


class ZeroPadShortcut(nn.Module):
    """Chapter 9. Option A: every stride-th pixel, and zero channels added
    up to out_channels. Nothing to learn."""

    def __init__(self, out_channels, stride):
        super().__init__()
        self.out_channels, self.stride = out_channels, stride

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_channels - x.shape[1]
        return nn.functional.pad(x, (0, 0, 0, 0, 0, extra))


SHORTCUTS = ("projection", "zero-padding", None)


def make_shortcut(kind, in_channels, out_channels, stride):
    if kind not in SHORTCUTS:
        raise ValueError(
            f"unknown shortcut {kind!r}; choose one of {SHORTCUTS}"
        )
    if kind is None:
        return None
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if kind == "zero-padding":
        return ZeroPadShortcut(out_channels, stride)
    return conv_bn(in_channels, out_channels, 1, stride)


class ResNet(nn.Module):
    """Chapter 9. A residual network (He et al., 2016): a stem, four stages of
    blocks (each stage after the first halves the maps and doubles the
    channels), a global average pool and a linear layer.

    stem: the first convolution's (kernel_size, stride), then a 3 × 3 max
    pool of stride 2 if stem_pool. ResNet-18 is BasicBlock with (2, 2, 2, 2)
    blocks, ResNet-34 (3, 4, 6, 3), ResNet-50 Bottleneck with (3, 4, 6, 3).
    shortcut: see BasicBlock; None gives the plain network of the same depth.
    """

    def __init__(
        self,
        block=BasicBlock,
        blocks=(2, 2, 2, 2),
        widths=(64, 128, 256, 512),
        in_channels=3,
        num_classes=1000,
        stem=(7, 2),
        stem_pool=True,
        shortcut="projection",
    ):
        super().__init__()
        if len(blocks) != len(widths):
            raise ValueError(
                f"one width per stage: got {len(blocks)} stages of blocks "
                f"and {len(widths)} widths"
            )
        kernel_size, stride = stem
        layers = [
            conv_bn(in_channels, widths[0], kernel_size, stride),
            nn.ReLU(),
        ]
        if stem_pool:
            layers.append(nn.MaxPool2d(3, stride=2, padding=1))
        channels = widths[0]
        for stage, (count, width) in enumerate(zip(blocks, widths)):
            for index in range(count):
                halve = stage > 0 and index == 0  # a later stage's first
                step = 2 if halve else 1
                layers.append(block(channels, width, step, shortcut))
                channels = width * block.expansion
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)  # global average pool
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, X):
        return self.classifier(self.pool(self.features(X)).flatten(1))


# --8<-- [end:resnet]


# --8<-- [start:minis]
def lenet_mini():
    """Chapter 9. LeNet-5 for the 24 × 24 canvas: the published layers,
    with a softmax layer in place of the fixed RBF codes."""
    return LeNet5(image_size=24, output="linear")


def alexnet_mini(batch_norm=True):
    """Chapter 9. AlexNet's pattern with a twelfth to a sixteenth of its
    channels: a large strided first kernel, overlapping pools, three 3 × 3
    convolutions in a row, two hidden linear layers with dropout. Batch
    normalisation (by default) takes the place of response normalisation.
    Weights stored channels-last, as SmallCNN's (chapter 4)."""
    net = AlexNet(
        image_size=24,
        in_channels=1,
        num_classes=10,
        channels=(8, 16, 24, 24, 16),
        hidden=64,
        first=(5, 2, 2),  # 24 → 12, as 11 × 11 at stride 4 takes 227 → 55
        groups=1,
        ceil_mode=True,  # three pools on a 12 × 12 map: 6, 3, then 1
        batch_norm=batch_norm,
        response_norm=not batch_norm,
    )
    return net.to(memory_format=torch.channels_last)


def vgg_mini(batch_norm=True):
    """Chapter 9. VGG's configuration A with a sixteenth of its channels
    and four of its five stages: 24 pixels halve four times, to 1 (the
    last pool, on 3 × 3 maps, reads their top-left 2 × 2 window). Weights
    stored channels-last, as SmallCNN's (chapter 4)."""
    net = VGG(
        [4, "M", 8, "M", 16, 16, "M", 32, 32, "M"],
        image_size=24,
        in_channels=1,
        num_classes=10,
        hidden=64,
        batch_norm=batch_norm,
    )
    return net.to(memory_format=torch.channels_last)


def resnet_mini(shortcut="zero-padding"):
    """Chapter 9. He et al.'s recipe for small images (their CIFAR-10
    networks): a 3 × 3 stem without stride or pool, three stages at 24, 12
    and 6 pixels with a quarter of the paper's channels, one basic block
    each (ResNet-8; their smallest, ResNet-20, has three), option A
    shortcuts, and a global average pool over the last 6 × 6 maps."""
    return ResNet(
        BasicBlock,
        (1, 1, 1),
        widths=(4, 8, 16),
        in_channels=1,
        num_classes=10,
        stem=(3, 1),
        stem_pool=False,
        shortcut=shortcut,
    )


# --8<-- [end:minis]


# --8<-- [start:standardise]
def standardise(data):
    """Chapter 9. The split with every pixel shifted by the mean of the
    training images and scaled by their standard deviation. LeNet-5's
    inputs had mean about 0 and variance about 1; AlexNet and VGG only
    subtracted the mean; the scaling is ours, for every network."""
    mean, std = data.X_train.mean(), data.X_train.std()
    return Split(
        (data.X_train - mean) / std,
        data.y_train,
        (data.X_test - mean) / std,
        data.y_test,
    )


# --8<-- [end:standardise]


# --8<-- [start:stack]
def deep_stack(num_blocks, shortcut="projection", width=8):
    """Chapter 9. One stage of num_blocks basic blocks on the shifted
    digits: a stem convolution, 2 * num_blocks convolutions and a linear
    layer, 2 * num_blocks + 2 layers. shortcut=None: the plain stack."""
    return ResNet(
        BasicBlock,
        (num_blocks,),
        widths=(width,),
        in_channels=1,
        num_classes=10,
        stem=(3, 2),
        shortcut=shortcut,
    )


def first_layer_gradient(net, X, y):
    """Chapter 9. Length of the loss's gradient with respect to the first
    convolution's weights, on the images X with labels y (training mode)."""
    net.train()
    loss = nn.functional.cross_entropy(net(X), y)
    first = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    (gradient,) = torch.autograd.grad(loss, first.weight)
    return gradient.norm().item()


# --8<-- [end:stack]
