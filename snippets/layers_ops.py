"""Chapter 4's trained networks, kept for another notebook of the same build.

layers_cnn trains SmallCNN from the protocol's seeds, and three notebooks need
those runs again: the live CNN page's (live_cnn) the first two, chapter 8's
(what_cnns_learn, what_cnns_learn_seeds) all three. `save_runs` writes them
next to layers_cnn's outputs (a file that the content cache keeps with
them); `load_runs` gives them back only if the same book.py (its training
code and SmallCNN), PyTorch, seed offset, protocol, training images and
labels, and starting weights made them. On one machine, training again would
give the same weights to the bit; a restored file may come from another
machine. Otherwise (a notebook run on its own, or
chapter 4's run not finished yet) it returns None, and the caller trains.
"""

import copy
import hashlib
import os
from pathlib import Path

import torch

import book

RUNS_FILE = "trained_runs.pt"  # in layers_cnn's output folder


def fingerprint(data, protocol):
    """Everything besides the starting weights that fixes the trained ones."""
    images = hashlib.sha256()
    for tensor in (data.X_train, data.y_train):
        images.update(tensor.contiguous().numpy().tobytes())
    return {
        "book": hashlib.sha256(Path(book.__file__).read_bytes()).hexdigest(),
        "torch": str(torch.__version__),
        "seed_offset": os.environ.get("LK_SEED_OFFSET", "0"),
        "settings": repr({k: v for k, v in protocol.items() if k != "seeds"}),
        "training_images": images.hexdigest(),
    }


def save_runs(path, data, protocol, runs):
    """Write runs, {seed: (untrained net, the same net trained)}, trained
    by book.run_trials on data under protocol. Written whole or not at all:
    another notebook of the build may be reading the file meanwhile."""
    path = Path(path)
    partial = path.with_name(f"{path.name}.partial")
    torch.save(
        {
            "fingerprint": fingerprint(data, protocol),
            "runs": {
                seed: {
                    "architecture": repr(trained),
                    "untrained": untrained.state_dict(),
                    "trained": trained.state_dict(),
                }
                for seed, (untrained, trained) in runs.items()
            },
        },
        partial,
    )
    partial.replace(path)


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def load_runs(path, make_net, data, protocol):
    """The nets that run_trials(make_net, data, protocol) would train, one
    per seed, loaded from path: make_net() is called after seeding as
    run_trials calls it, and its net takes the saved trained weights. None
    if path is missing or holds other runs."""
    path = Path(path)
    if not path.exists():
        return None
    saved = torch.load(path, weights_only=True)
    if saved["fingerprint"] != fingerprint(data, protocol):
        return None
    nets = []
    for seed in protocol["seeds"]:
        run = saved["runs"].get(seed)
        torch.manual_seed(seed)  # the initial weights, as run_trials does
        net = make_net()
        if (
            run is None
            or repr(net) != run["architecture"]
            or not _same(net.state_dict(), run["untrained"])
        ):
            return None
        net.load_state_dict(run["trained"])
        nets.append(net)
    return nets


def chapter_4_runs(make_net, data, protocol):
    """The runs that run_trials(make_net, data, protocol) trains, as {seed:
    (untrained net, trained net)}, and whether they were loaded: from
    layers_cnn's outputs where load_runs accepts them, else trained."""
    untrained, trained = [], []

    def tracked():
        net = make_net()
        untrained.append(copy.deepcopy(net))  # before any training
        trained.append(net)
        return net

    saved = book.output_dir().parent / "layers_cnn" / RUNS_FILE
    loaded = load_runs(saved, tracked, data, protocol) is not None
    if not loaded:
        untrained.clear()  # what load_runs built before it gave up
        trained.clear()
        book.run_trials(tracked, data, protocol)
    runs = zip(untrained, trained, strict=True)
    return dict(zip(protocol["seeds"], runs, strict=True)), loaded
