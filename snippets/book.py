"""The book's saved functions: code a chapter taught, kept for later chapters.

Each function names the chapter that introduces it. Snippets import this module;
a downloaded notebook carries its own copy, so it runs anywhere.
"""

import base64
import copy
import io
import json
import os
import random
import re
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.transform import resize
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

DATASETS = ("digits", "shifted_digits")


def setup(seed=0):
    """Make a run repeatable: seeds, one thread, figure files without dates.

    The replication build (`make replicate`) sets $LK_SEED_OFFSET: every seed
    the run then sets, here or later, is shifted by it (see _shift_seeds)."""
    _shift_seeds(int(os.environ.get("LK_SEED_OFFSET", "0")))
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (libraries may draw from the global state)
    torch.manual_seed(seed)
    # One thread: PyTorch's CPU kernels then give the same bits on every run
    # (the runner's tests check). torch.use_deterministic_algorithms would add
    # nothing on a CPU and costs over a second of imports per snippet.
    torch.set_num_threads(1)
    matplotlib.rcParams.update(
        {
            "svg.hashsalt": "learned-kernels",
            "svg.fonttype": "none",
            "figure.dpi": 100,
            "font.size": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "image.cmap": "gray",
            # Resample values, then colour them: a map keeps at most 256
            # colours, so save_figure can store it as a palette PNG.
            "image.interpolation_stage": "data",
        }
    )


_UNSHIFTED = {}


def _shift_seeds(offset):
    """Add offset to every integer seed that Python's, NumPy's, PyTorch's and
    scikit-learn's random generators are given, so that a snippet re-runs with
    other seeds (data splits included) unchanged. No offset: nothing changes."""
    if not offset or _UNSHIFTED:
        return

    def shifted(seed):
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            return seed
        return seed + offset

    _UNSHIFTED.update(
        random=random.seed,
        numpy=np.random.seed,
        default_rng=np.random.default_rng,
        torch=torch.manual_seed,
    )

    def random_seed(seed=None, *args):
        return _UNSHIFTED["random"](shifted(seed), *args)

    def numpy_seed(seed=None):
        return _UNSHIFTED["numpy"](shifted(seed))

    def default_rng(seed=None):
        return _UNSHIFTED["default_rng"](shifted(seed))

    def manual_seed(seed):
        return _UNSHIFTED["torch"](shifted(seed))

    class RandomState(np.random.RandomState):  # scikit-learn's random_state=int
        def __init__(self, seed=None):
            super().__init__(shifted(seed))

    class Generator(torch.Generator):
        def manual_seed(self, seed):
            return super().manual_seed(shifted(seed))

    random.seed, np.random.seed = random_seed, numpy_seed
    np.random.default_rng, np.random.RandomState = default_rng, RandomState
    torch.manual_seed, torch.Generator = manual_seed, Generator


def output_dir():
    """Where figures and results go: $LK_OUTPUT_DIR, else ./outputs."""
    path = Path(os.environ.get("LK_OUTPUT_DIR", "outputs"))
    path.mkdir(parents=True, exist_ok=True)
    return path


EMBEDDED_PNG = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=\s]+)")


def _palette_png(match):
    """An embedded RGBA PNG with at most 256 colours, re-saved losslessly as
    a palette PNG (a third to a half of the bytes); other PNGs unchanged."""
    image = Image.open(io.BytesIO(base64.b64decode(match.group(1))))
    pixels = np.asarray(image.convert("RGBA"))
    colours, index = np.unique(
        pixels.reshape(-1, 4), axis=0, return_inverse=True
    )
    if len(colours) > 256:
        return match.group(0)
    palette = Image.fromarray(index.reshape(pixels.shape[:2]).astype(np.uint8))
    palette.putpalette(colours[:, :3].tobytes())
    opacity = {}
    if (colours[:, 3] < 255).any():
        opacity["transparency"] = colours[:, 3].tobytes()
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", optimize=True, **opacity)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"data:image/png;base64,{encoded}"


def save_figure(fig, name):
    """Save fig as NAME.svg, byte-identical between runs."""
    buffer = io.StringIO()
    fig.savefig(
        buffer, format="svg", bbox_inches="tight", metadata={"Date": None}
    )
    svg = EMBEDDED_PNG.sub(_palette_png, buffer.getvalue())
    (output_dir() / f"{name}.svg").write_text(svg, encoding="utf-8")


def record(**values):
    """Add numbers to results.json, from which the chapters quote them."""
    path = output_dir() / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for key, value in values.items():
        results[key] = value.item() if hasattr(value, "item") else value
    path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


# --8<-- [start:data]
@dataclass
class Split:
    X_train: torch.Tensor  # (N, 1, H, W), values in [0, 1]
    y_train: torch.Tensor  # (N,), class indices
    X_test: torch.Tensor
    y_test: torch.Tensor


def load_dataset(name="digits", test_size=0.25, seed=0, canvas=24):
    """Chapter 1. A labelled image set, split into train and test parts.

    The split is stratified: each class has the same share in both parts.
    "shifted_digits" (chapter 2) puts the same digits on a noisy canvas.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    digits = load_digits()
    X = digits.images.astype(np.float32) / 16.0  # (N, 8, 8), ink 0 to 16
    y = digits.target
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, stratify=y, random_state=seed
    )
    if name == "shifted_digits":
        rng = np.random.default_rng(seed)
        X_train, y_train = place_on_canvas(X_train, y_train, canvas, 2, rng)
        X_test, y_test = place_on_canvas(X_test, y_test, canvas, 1, rng)
    return Split(
        torch.from_numpy(X_train).unsqueeze(1),
        torch.from_numpy(y_train),
        torch.from_numpy(X_test).unsqueeze(1),
        torch.from_numpy(y_test),
    )


# --8<-- [end:data]


# --8<-- [start:shifted]
def place_on_canvas(
    images,
    labels,
    canvas=24,
    copies=1,
    rng=None,
    scales=(1.0, 1.75),
    noise=0.1,
):
    """Chapter 2. A harder task: each (H, W) image, scaled by a random factor,
    at a random position on a larger canvas of Gaussian noise.

    Every image appears `copies` times, each time placed anew.
    Returns (N * copies, canvas, canvas) images in [0, 1] and their labels.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or images.shape[0] != len(labels):
        raise ValueError(
            f"expected (N, H, W) images and N labels, got images of shape "
            f"{images.shape} and {len(labels)} labels"
        )
    largest = int(round(max(images.shape[1:]) * scales[1]))
    if canvas < largest:
        raise ValueError(
            f"canvas {canvas} × {canvas} is smaller than the largest scaled "
            f"digit ({largest} × {largest} pixels)"
        )
    rng = rng if rng is not None else np.random.default_rng(0)
    out = np.zeros((len(images) * copies, canvas, canvas), dtype=np.float32)
    for index in range(len(out)):
        image = images[index % len(images)]
        size = int(round(image.shape[0] * rng.uniform(*scales)))
        row, col = rng.integers(0, canvas - size + 1, size=2)
        out[index, row : row + size, col : col + size] = resize(
            image, (size, size), order=1
        )
    out += noise * rng.standard_normal(out.shape, dtype=np.float32)
    return np.clip(out, 0, 1), np.tile(labels, copies)


# --8<-- [end:shifted]


# --8<-- [start:sobel]
SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
SOBEL_Y = SOBEL_X.T  # change from top to bottom: horizontal edges


def sobel(images):
    """Chapter 1. Gradients of (N, 1, H, W) images: (N, 2, H, W), x then y.

    A single (H, W) image gives (2, H, W). The borders are zero-padded.
    """
    images = torch.as_tensor(images, dtype=torch.float32)
    single = images.dim() == 2
    if single:
        images = images[None, None]
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(
            f"sobel expects an (H, W) image or (N, 1, H, W) images, "
            f"got shape {tuple(images.shape)}"
        )
    if images.numel() == 0:
        raise ValueError(
            f"sobel got an empty image of shape {tuple(images.shape)}"
        )
    K = torch.stack([SOBEL_X, SOBEL_Y]).unsqueeze(1)  # (2, 1, 3, 3)
    gradients = F.conv2d(images, K, padding=1)
    return gradients[0] if single else gradients


def edge_magnitude(images):
    """Chapter 1. The edge map: length of the Sobel gradient at each pixel."""
    gradients = sobel(images)
    return gradients.pow(2).sum(dim=-3, keepdim=True).sqrt()


# --8<-- [end:sobel]


# --8<-- [start:model]
class FixedFilterSoftmax(nn.Module):
    """Chapter 1. A fixed feature map, then a softmax layer.

    Only the softmax learns. features: a function from (N, 1, H, W) images
    to (N, C, H, W) feature maps; num_features: C * H * W.
    """

    def __init__(self, features, num_features, num_classes=10):
        super().__init__()
        self.features = features
        self.classifier = nn.Linear(num_features, num_classes)

    def forward(self, X):
        with torch.no_grad():  # fixed kernels: no gradient reaches them
            maps = self.features(X)
        logits = self.classifier(maps.flatten(1))
        return logits  # the loss function applies the softmax


# --8<-- [end:model]


# --8<-- [start:learned-model]
class LearnedKernelSoftmax(nn.Module):
    """Chapter 2. Chapter 1's pipeline with the kernels set free.

    num_kernels learned k × k kernels (a convolutional layer), ReLU, then the
    same softmax layer on the flattened feature maps.
    """

    def __init__(
        self, num_kernels=1, image_size=8, in_channels=1, kernel_size=3
    ):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, num_kernels, kernel_size, padding=kernel_size // 2
        )
        self.classifier = nn.Linear(num_kernels * image_size**2, 10)

    def forward(self, X):
        maps = torch.relu(self.conv(X))  # gradients now reach the kernels
        return self.classifier(maps.flatten(1))


# --8<-- [end:learned-model]


# --8<-- [start:train]
def mini_batches(n, batch_size, generator):
    """Chapter 1. One epoch: indices 0..n-1 shuffled, cut into n // batch_size
    batches of near-equal size (batch_size to 2 × batch_size − 1 images), so
    that no batch is a few leftover images (batch normalisation's statistics
    over three images are noise)."""
    order = torch.randperm(n, generator=generator)
    return order.tensor_split(max(1, n // batch_size))


def accuracy(net, X, y):
    """Chapter 1. Fraction of X that net classifies as y."""
    net.eval()
    with torch.no_grad():
        return (net(X).argmax(dim=1) == y).float().mean().item()


def train(net, data, num_epochs=30, lr=0.01, batch_size=64, seed=0, curve=True):
    """Chapter 1. Mini-batch Adam on the cross-entropy loss.

    Only parameters with requires_grad learn. Returns the training loss and test
    accuracy after each epoch (curve=False: the test accuracy after the last
    epoch only, which saves scoring the test set every epoch).
    """
    generator = torch.Generator().manual_seed(seed)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    history = {"train_loss": [], "test_accuracy": []}
    n = len(data.X_train)
    for epoch in range(1, num_epochs + 1):
        net.train()
        total_loss = 0.0
        for batch in mini_batches(n, batch_size, generator):
            loss = F.cross_entropy(
                net(data.X_train[batch]), data.y_train[batch]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(batch)
        history["train_loss"].append(total_loss / n)
        if curve or epoch == num_epochs:
            test_accuracy = accuracy(net, data.X_test, data.y_test)
            history["test_accuracy"].append(test_accuracy)
    return history


# One protocol for every row of the results table (chapters 2 to 4): only what
# a chapter's question changes may differ between rows.
PROTOCOL = {"num_epochs": 15, "lr": 0.003, "batch_size": 64, "seeds": (0, 1, 2)}


def run_trials(make_net, data, protocol=PROTOCOL, curve=False):
    """Chapter 2. Train a fresh make_net() per seed under one protocol.

    Returns the mean and standard deviation of the final test accuracy, each
    seed's accuracy, the trainable parameter count, the mean training time in
    seconds, and the last seed's net and history (for figures; its test
    accuracy after every epoch only if curve=True).
    """
    settings = {k: v for k, v in protocol.items() if k != "seeds"}
    accuracies, seconds = [], []
    for seed in protocol["seeds"]:
        torch.manual_seed(seed)
        net = make_net()
        last = seed == protocol["seeds"][-1]
        start = time.perf_counter()
        history = train(net, data, seed=seed, curve=curve and last, **settings)
        seconds.append(time.perf_counter() - start)
        accuracies.append(history["test_accuracy"][-1])
    return {
        "mean": float(np.mean(accuracies)),
        "std": float(np.std(accuracies, ddof=1)),  # the sample std over seeds
        "accuracies": accuracies,
        "parameters": count_parameters(net),
        "seconds": float(np.mean(seconds)),
        "net": net,
        "history": history,
    }


# --8<-- [end:train]


def table_row(name, trials):
    """Chapter 2. run_trials' summary as a row of a results table, keyed
    row_NAME_mean, _std, _worst, _parameters and _seconds for record()."""
    return {
        f"row_{name}_mean": trials["mean"],
        f"row_{name}_std": trials["std"],
        f"row_{name}_worst": min(trials["accuracies"]),
        f"row_{name}_parameters": trials["parameters"],
        f"row_{name}_seconds": trials["seconds"],
    }


def count_parameters(net):
    """Chapter 1. How many numbers training can change."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def show_images(
    images, titles=None, ncols=8, size=1.2, cmap="gray", **imshow_args
):
    """Chapter 1. A grid of (H, W) images with optional titles."""
    images = [
        torch.as_tensor(image).detach().squeeze().numpy() for image in images
    ]
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(ncols * size, nrows * size * 1.15)
    )
    for index, ax in enumerate(np.atleast_1d(axes).flat):
        ax.axis("off")
        if index < len(images):
            ax.imshow(images[index], cmap=cmap, **imshow_args)
            if titles is not None:
                ax.set_title(titles[index], fontsize=9)
    return fig


def draw_kernel(ax, K, title=None, limit=2, digits=2, fontsize=9):
    """Chapter 2. A small kernel as coloured cells with its numbers written in.

    Red is positive, blue negative; colours saturate at ±limit.
    """
    K = torch.as_tensor(K).detach().squeeze()
    if K.dim() != 2:
        raise ValueError(
            f"draw_kernel expects one (k, k) kernel, got shape {tuple(K.shape)}"
        )
    ax.imshow(K.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
    for (row, col), value in np.ndenumerate(K.numpy()):
        value = round(float(value), digits) + 0.0  # + 0.0: no "-0.00"
        ax.text(
            col,
            row,
            f"{value:.{digits}f}",
            ha="center",
            va="center",
            fontsize=fontsize,
            color="white" if abs(value) > 0.6 * limit else "black",
        )
    if title is not None:
        ax.set_title(title, fontsize=10)
    ax.axis("off")


# --8<-- [start:sweep]
def sweep(data, counts):
    """Chapter 3. run_trials for a bank of each size in counts: {N: trials}."""
    counts = list(counts)
    if not counts or any(int(N) != N or N < 1 for N in counts):
        raise ValueError(
            f"kernel counts must be positive integers, got {counts}"
        )
    H = data.X_train.shape[-1]  # square images: H = W
    trials = {}
    for N in counts:
        make_net = partial(LearnedKernelSoftmax, num_kernels=N, image_size=H)
        trials[N] = run_trials(make_net, data)  # PROTOCOL: 3 seeds
    return trials


# --8<-- [end:sweep]


# --8<-- [start:feature-maps]
def feature_maps(net, X):
    """Chapter 3. The ReLU feature maps (N, C_out, H, W) of net's kernels
    on the images X."""
    X = torch.as_tensor(X, dtype=torch.float32)
    C_in = net.conv.in_channels
    if X.dim() != 4 or X.shape[1] != C_in:
        raise ValueError(
            f"expected images of shape (N, {C_in}, H, W), "
            f"got shape {tuple(X.shape)}"
        )
    with torch.no_grad():
        return torch.relu(net.conv(X))


# --8<-- [end:feature-maps]


def sweep_results(trials, data):
    """Chapter 3. What each bank size in a sweep scored, keyed for record():
    mean, std, each seed's accuracy, parameters, seconds and how well the
    last seed's net (the one run_trials keeps) fits its training set."""
    results = {}
    for N, trial in trials.items():
        results.update(
            {f"{key}_{N}": trial[key] for key in ("mean", "std", "accuracies")}
        )
        results[f"parameters_{N}"] = trial["parameters"]
        results[f"seconds_{N}"] = trial["seconds"]
        results[f"train_accuracy_{N}"] = accuracy(
            trial["net"], data.X_train, data.y_train
        )
    return results


def bank_summary(net, data, one_sign=0.5, balanced=0.25, sparse=0.9):
    """Chapter 3. How many of net's kernels are mostly of one sign (a blur)
    or balanced (an edge detector), and how many of their ReLU maps are
    nearly empty over the test images, keyed for record()."""
    K = net.conv.weight.detach()
    # 1: the weights share one sign and average (a blur); 0: they cancel.
    sign_share = K.sum(dim=(1, 2, 3)).abs() / K.abs().sum(dim=(1, 2, 3))
    # The share of each map the ReLU sets to zero, over all the test images.
    zeros = (feature_maps(net, data.X_test) == 0).float().mean(dim=(0, 2, 3))
    empty = zeros > sparse
    return {
        "bank_label": int(data.y_test[0]),
        "bank_one_sign_kernels": int((sign_share > one_sign).sum()),
        "bank_balanced_kernels": int((sign_share < balanced).sum()),
        "bank_sparse_maps": int(empty.sum()),
        # The largest bias among the kernels of those nearly empty maps.
        "bank_sparse_max_bias": (
            net.conv.bias[empty].max().item() if empty.any() else None
        ),
        "one_sign_above": one_sign,
        "balanced_below": balanced,
        "sparse_above": sparse,
    }


def draw_learned_bank(K, x, maps, label, columns=8):
    """Chapter 3. Each (1, k, k) kernel of K above its feature map on the
    image x."""
    K, x, maps = (np.asarray(a, dtype=np.float32) for a in (K, x, maps))
    if K.ndim != 4 or K.shape[1] != 1 or len(maps) != len(K):
        raise ValueError(
            f"expected kernels (C_out, 1, k, k) and C_out maps, got kernels "
            f"{K.shape} and {len(maps)} maps"
        )
    rows = 2 * -(-len(K) // columns)  # a kernel row and a map row per line
    fig = plt.figure(figsize=(10, 1.05 * rows + 0.3))
    grid = fig.add_gridspec(
        rows, columns + 2, width_ratios=[2.6, 0.2] + [1] * columns
    )
    ax = fig.add_subplot(grid[rows // 2 - 1 : rows // 2 + 1, 0])
    ax.imshow(x.squeeze(), cmap="gray_r")
    ax.set_title(f"input: a {label}")
    ax.axis("off")
    limit = np.abs(K).max()  # one colour scale for every kernel
    for i in range(len(K)):
        row, col = 2 * (i // columns), 2 + i % columns
        kernel_ax = fig.add_subplot(grid[row, col])
        kernel_ax.imshow(K[i, 0], cmap="RdBu_r", vmin=-limit, vmax=limit)
        kernel_ax.set_title(f"kernel {i + 1}", fontsize=9)
        map_ax = fig.add_subplot(grid[row + 1, col])
        map_ax.imshow(maps[i], cmap="gray_r", vmin=0)
        for ax in (kernel_ax, map_ax):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(True)
            ax.spines[:].set_color("0.75")
    return fig


# --8<-- [start:cnn]
class SmallCNN(nn.Module):
    """Chapter 4. Layers of kernels: a small convolutional network.

    One block per entry of channels: 3 × 3 convolution, batch normalisation,
    ReLU; every block after the first starts with a 2 × 2 max pool. The
    largest value of each final feature map (global max pool) feeds a linear
    layer, so any image_size of at least 2 ** (len(channels) - 1) works.
    """

    def __init__(
        self,
        image_size=24,
        in_channels=1,
        channels=(16, 32, 64),
        num_classes=10,
    ):
        super().__init__()
        smallest = 2 ** (len(channels) - 1)
        if image_size < smallest:
            raise ValueError(
                f"image_size {image_size} is too small for {len(channels)} "
                f"blocks: each 2 × 2 pool halves it; need at least {smallest}"
            )
        self.input_shape = (in_channels, image_size, image_size)
        blocks = []
        for depth, out_channels in enumerate(channels):
            pool = [nn.MaxPool2d(2)] if depth > 0 else []
            blocks.append(
                nn.Sequential(
                    *pool,
                    nn.Conv2d(in_channels, out_channels, 3, padding=1),
                    nn.BatchNorm2d(out_channels),
                    nn.ReLU(),
                )
            )
            in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Linear(in_channels, num_classes)
        # Same weights, stored channel-fastest ("channels last"): on a CPU
        # pooling, batch norm and convolution run about twice as fast so.
        self.to(memory_format=torch.channels_last)

    def feature_maps(self, X):
        """Each block's output for (N, C, H, W) images, first to last."""
        if X.dim() != 4 or tuple(X.shape[1:]) != self.input_shape:
            raise ValueError(
                f"SmallCNN expects images of shape (N, {self.input_shape[0]}, "
                f"{self.input_shape[1]}, {self.input_shape[2]}), "
                f"got {tuple(X.shape)}"
            )
        maps = []
        for block in self.blocks:
            X = block(X)
            maps.append(X)
        return maps

    def forward(self, X):
        last = self.feature_maps(X)[-1]  # (N, C, H, W)
        return self.classifier(last.amax(dim=(2, 3)))  # global max pool


# --8<-- [end:cnn]


# --8<-- [start:receptive-field]
def receptive_field(layers):
    """Chapter 4. Side of the receptive field after each layer of a stack.

    layers: (kernel_size, stride) pairs, first layer first; a 3 × 3
    convolution is (3, 1), a 2 × 2 pool (2, 2). Each layer widens the field
    by kernel_size - 1 steps of the layer below; a step is the product of
    the strides below.
    """
    size, jump, sizes = 1, 1, []
    for layer in layers:
        pair = isinstance(layer, tuple | list) and len(layer) == 2
        if not pair or not all(isinstance(n, int) and n >= 1 for n in layer):
            raise ValueError(
                f"each layer must be a (kernel_size, stride) pair of "
                f"positive integers, got {layer!r}"
            )
        kernel_size, stride = layer
        size += (kernel_size - 1) * jump
        jump *= stride
        sizes.append(size)
    return sizes


# --8<-- [end:receptive-field]


# --8<-- [start:input-gradient]
def input_gradient(net, X):
    """Chapter 4. How much each pixel moves the centre unit of net's output.

    |d (sum over the output's channels at the centre) / d pixel|, summed over
    the input's channels, for each of the (N, C, H, W) images: (N, H, W).
    Puts net in eval mode.
    """
    if X.dim() != 4:
        raise ValueError(f"expected (N, C, H, W) images, got {tuple(X.shape)}")
    net.eval()  # batch normalisation must not mix the images
    X = X.clone().requires_grad_(True)
    out = net(X)
    centre = out[:, :, out.shape[-2] // 2, out.shape[-1] // 2].sum()
    (gradient,) = torch.autograd.grad(centre, X)  # images are independent
    return gradient.abs().sum(dim=1)


def extent(mask):
    """Chapter 4. Height and width of the smallest box around the True
    pixels of an (H, W) mask.
    """
    if mask.dim() != 2:
        raise ValueError(f"expected an (H, W) mask, got {tuple(mask.shape)}")
    rows, cols = torch.nonzero(mask, as_tuple=True)
    if len(rows) == 0:
        raise ValueError("the mask is empty: no pixel has a nonzero gradient")
    return (
        (rows.max() - rows.min() + 1).item(),
        (cols.max() - cols.min() + 1).item(),
    )


# --8<-- [end:input-gradient]


# --8<-- [start:splits]
@dataclass
class ThreeWaySplit(Split):
    """Chapter 7. A Split with a validation part, for making choices."""

    X_val: torch.Tensor  # for choices: epochs, learning rate, augmentation
    y_val: torch.Tensor


def load_splits(name="digits", val_size=0.2, seed=0):
    """Chapter 7. load_dataset's split with a validation part cut from the
    training part; the test part is load_dataset's, unchanged.

    The validation digits are chosen among the original 8 × 8 digits, so
    that no copy of one (shifted_digits places every training digit twice)
    stays in the training part.
    """
    if not 0 < val_size < 1:
        raise ValueError(f"val_size must be between 0 and 1, got {val_size}")
    data = load_dataset(name, seed=seed)
    y = load_dataset("digits", seed=seed).y_train  # one label per digit
    n = len(y)
    _, val = train_test_split(
        np.arange(n), test_size=val_size, stratify=y, random_state=seed
    )
    held_out = torch.zeros(n, dtype=torch.bool)
    held_out[val] = True
    rows = torch.arange(len(data.y_train))
    train_rows = rows[~held_out[rows % n]]  # copy k of digit i is row k n + i
    val_rows = torch.from_numpy(np.sort(val))  # one copy of each
    return ThreeWaySplit(
        data.X_train[train_rows],
        data.y_train[train_rows],
        data.X_test,
        data.y_test,
        data.X_train[val_rows],
        data.y_train[val_rows],
    )


# --8<-- [end:splits]


# --8<-- [start:shift]
def random_shift(X, max_shift=3, generator=None):
    """Chapter 7. Each (C, H, W) image of X moved by its own random offset
    of up to max_shift pixels in each direction; zeros fill the gap.

    Pads every image by max_shift on each side, then cuts an H × W window
    at a random position out of it.
    """
    if X.dim() != 4:
        raise ValueError(f"expected (N, C, H, W) images, got {tuple(X.shape)}")
    if not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(
            f"max_shift must be a non-negative integer, got {max_shift!r}"
        )
    N, C, H, W = X.shape
    padded = F.pad(X, [max_shift] * 4)  # (N, C, H + 2 s, W + 2 s)
    top, left = torch.randint(
        0, 2 * max_shift + 1, (2, N, 1), generator=generator
    )
    rows = (top + torch.arange(H))[:, :, None]  # (N, H, 1)
    cols = (left + torch.arange(W))[:, None, :]  # (N, 1, W)
    n = torch.arange(N)[:, None, None]
    windows = padded.permute(0, 2, 3, 1)[n, rows, cols]  # (N, H, W, C)
    return windows.permute(0, 3, 1, 2)


# --8<-- [end:shift]


# --8<-- [start:fit]
def evaluate(net, X, y):
    """Chapter 7. Mean cross-entropy loss and accuracy of net on X."""
    net.eval()
    with torch.no_grad():
        logits = net(X)
    loss = F.cross_entropy(logits, y).item()
    return loss, (logits.argmax(dim=1) == y).float().mean().item()


def fit(
    net,
    data,
    num_epochs=20,
    lr=0.003,
    batch_size=64,
    seed=0,
    augment=None,
    on_epoch=None,
):
    """Chapter 7. Chapter 1's training loop, watched on a validation set.

    augment(X, generator) changes each training mini-batch; on_epoch(net)
    runs after each epoch. The test set is never looked at. At the end net
    holds the weights of the epoch with the lowest validation loss.
    Returns the loss and accuracy per epoch on the training mini-batches
    (as they were seen, while the weights moved) and on the validation set,
    and the best epoch (counted from 0).
    """
    if not hasattr(data, "X_val"):
        raise ValueError(
            f"fit needs a validation set, and this {type(data).__name__} has "
            f"none: load the data with load_splits"
        )
    if num_epochs < 1:
        raise ValueError(f"num_epochs must be at least 1, got {num_epochs}")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    history = {key: [] for key in keys}
    best_loss, n = float("inf"), len(data.X_train)
    for epoch in range(num_epochs):
        net.train()
        total_loss = correct = 0.0
        for batch in mini_batches(n, batch_size, generator):
            X, y = data.X_train[batch], data.y_train[batch]
            if augment is not None:
                X = augment(X, generator=generator)
            logits = net(X)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(batch)
            correct += (logits.argmax(dim=1) == y).sum().item()
        history["train_loss"].append(total_loss / n)
        history["train_accuracy"].append(correct / n)
        val_loss, val_accuracy = evaluate(net, data.X_val, data.y_val)
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(val_accuracy)
        if val_loss < best_loss:  # keep a copy of the best weights so far
            best_loss, best_epoch = val_loss, epoch
            best_state = copy.deepcopy(net.state_dict())
        if on_epoch is not None:
            on_epoch(net)
    net.load_state_dict(best_state)
    history["best_epoch"] = best_epoch
    return history


# --8<-- [end:fit]


# --8<-- [start:fit-trials]
def fit_trials(make_net, data, seeds=(0, 1, 2), **settings):
    """Chapter 7. fit a fresh make_net() per seed, with the same settings.

    Returns each seed's validation accuracy at its best epoch, their mean
    and standard deviation, and the trained nets and their histories.
    """
    nets, histories = [], []
    for seed in seeds:
        torch.manual_seed(seed)  # the initial weights
        nets.append(make_net())
        histories.append(fit(nets[-1], data, seed=seed, **settings))
    scores = [h["val_accuracy"][h["best_epoch"]] for h in histories]
    return {
        "val_accuracies": scores,
        "mean": float(np.mean(scores)),
        "std": float(np.std(scores, ddof=1)),  # the sample std over seeds
        "nets": nets,
        "histories": histories,
    }


# --8<-- [end:fit-trials]
