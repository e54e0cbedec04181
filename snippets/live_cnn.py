# %% [markdown]
# # Chapter 4's CNN, live: the files the page runs
#
# The live CNN page runs chapter 4's network in your browser. This notebook
# trains that network exactly as chapter 4 does, for the protocol's first two
# seeds, keeps each one's untrained starting point too, and writes all four
# to files the page reads. It also computes, with PyTorch, everything the page
# shows for a set of test digits: the book's tests check that the page's
# JavaScript gives the same numbers.

# %%
import copy
import json

import numpy as np
import torch

from book import (
    PROTOCOL,
    SmallCNN,
    accuracy,
    load_dataset,
    output_dir,
    record,
    run_trials,
    setup,
)
from live_cnn_ops import (
    block_fields,
    block_outputs,
    load_tensors,
    network_file,
    save_tensors,
)
from weight_sharing_ops import relative_change, shift
from what_cnns_learn_ops import clean_test_digits

setup()

# %% [markdown]
# ## Chapter 4's network, trained as chapter 4 trains it
#
# The same data, the same protocol and the same seeds: `run_trials` seeds
# PyTorch with each seed before it builds the network, so a copy taken in
# `make_net` is the untrained network that training then starts from.

# %%
# --8<-- [start:train]
data = load_dataset("shifted_digits")
SEEDS = PROTOCOL["seeds"][:2]  # chapter 4's first two runs
untrained, nets = [], []


def make_net():
    net = SmallCNN(image_size=24)
    untrained.append(copy.deepcopy(net))  # before any training
    nets.append(net)
    return net


trials = run_trials(make_net, data, {**PROTOCOL, "seeds": SEEDS})
print("test accuracy per seed:", trials["accuracies"])
# --8<-- [end:train]
record(
    seeds=list(SEEDS),
    trained_accuracies=trials["accuracies"],
    **{
        f"trained_accuracy_seed{seed}": score
        for seed, score in zip(SEEDS, trials["accuracies"])
    },
    num_test=len(data.X_test),
    parameters=trials["parameters"],
)

# %% [markdown]
# ## The files the page reads
#
# One file per network, named for its seed and whether it was trained, and
# one with a test digit of each class (the first of each in the test set).

# %%
# --8<-- [start:export]
out = output_dir()
networks = {}
for seed, trained, initial in zip(SEEDS, nets, untrained):
    for kind, net in (("trained", trained), ("untrained", initial)):
        name = f"{kind}-seed{seed}"
        score = accuracy(net, data.X_test, data.y_test)
        tensors, metadata = network_file(
            net,
            seed=seed,
            trained=kind == "trained",
            test_accuracy=score,
            num_test=len(data.X_test),
        )
        save_tensors(out / f"{name}.safetensors", tensors, metadata)
        networks[name] = net
        print(f"{name}: {score:.1%} of the test digits")

labels = list(range(10))
indices = [int((data.y_test == label).nonzero()[0]) for label in labels]
digits = data.X_test[indices]  # (10, 1, 24, 24)
save_tensors(
    out / "digits.safetensors",
    {"images": digits[:, 0]},
    {"labels": json.dumps(labels), "test_indices": json.dumps(indices)},
)
# --8<-- [end:export]
record(
    **{
        f"field_size_block_{block}": field["size"]
        for block, field in enumerate(block_fields(), start=1)
    },
    network_kilobytes=(out / "trained-seed0.safetensors").stat().st_size / 1000,
    digits_kilobytes=(out / "digits.safetensors").stat().st_size / 1000,
)

# %% [markdown]
# Each file, read back into a fresh network, is the network that was trained:
# the same test accuracy to the last digit.

# %%
reloaded = {}
for name in networks:
    tensors, metadata = load_tensors(out / f"{name}.safetensors")
    copy_of_net = SmallCNN(image_size=24)
    left_out = copy_of_net.load_state_dict(tensors, strict=False)
    # Only batch norm's counter of training batches: the page needs none.
    assert all(k.endswith("num_batches_tracked") for k in left_out.missing_keys)
    assert not left_out.unexpected_keys
    reloaded[name] = accuracy(copy_of_net, data.X_test, data.y_test)
    assert reloaded[name] == float(metadata["test_accuracy"]), name
record(
    file_accuracies=reloaded,
    untrained_accuracies=[reloaded[f"untrained-seed{s}"] for s in SEEDS],
    untrained_accuracy_mean=np.mean(
        [reloaded[f"untrained-seed{s}"] for s in SEEDS]
    ),
    trained_accuracy_mean=np.mean(trials["accuracies"]),
)

# %% [markdown]
# ## What the page must show, computed by PyTorch
#
# For each network: every block's maps, the global max of each of block 3's
# maps, the logits and the probabilities, for the ten test digits and an
# empty canvas. They go to `reference.npz` for the tests.

# %%
inputs = torch.cat([digits, torch.zeros(1, 1, 24, 24)])  # digits, then blank
reference = {"inputs": inputs[:, 0].numpy()}
for name, net in networks.items():
    for key, value in block_outputs(net, inputs).items():
        reference[f"{name}/{key}"] = value.numpy()
np.savez_compressed(out / "reference.npz", **reference)
probabilities = reference["trained-seed0/probabilities"]
print("seed 0 reads the ten digits as", probabilities[:10].argmax(axis=1))
record(
    digits_read_right={
        name: int(
            (reference[f"{name}/probabilities"][:10].argmax(1) == labels).sum()
        )
        for name in networks
    },
    num_inputs=len(inputs),
)

# %% [markdown]
# What the untrained networks make of the test digits: how often each one
# gives its most common answer, and its largest probability for any digit.

# %%
common_share, top_probability = [], []
for seed in SEEDS:
    net = networks[f"untrained-seed{seed}"]
    probabilities = block_outputs(net, data.X_test)["probabilities"]
    answers = probabilities.argmax(dim=1)
    common_share.append(answers.bincount().max().item() / len(answers))
    top_probability.append(probabilities.max().item())
print("most common answer's share:", common_share)
print("largest probability:", top_probability)
record(
    untrained_common_answer_shares=common_share,
    untrained_common_answer_share_min=min(common_share),
    untrained_top_probabilities=top_probability,
    untrained_top_probability_max=max(top_probability),
)

# %% [markdown]
# The two trained networks: on how many test digits do their answers differ?

# %%
answers = [
    block_outputs(networks[f"trained-seed{seed}"], data.X_test)[
        "probabilities"
    ].argmax(dim=1)
    for seed in SEEDS
]
record(seeds_disagree_share=(answers[0] != answers[1]).float().mean())

# %% [markdown]
# ## Moving a digit: on block 3's grid and off it
#
# Block 3's maps have one unit for every 4 × 4 pixels, so the page's moves
# by 4 pixels are on its grid and the others are not. How much does a move
# change the 64 global-max values the classifier reads? Every test digit is
# moved 1 to 4 pixels up, down, left and right, as chapter 6's `shift` moves
# it (zeros come in), wherever a move of 4 pixels keeps all of its ink on
# the canvas: chapter 8's clean copies of the test digits say where it is.

# %%
# --8<-- [start:moves]
DIRECTIONS = [(0, 1), (0, -1), (1, 0), (-1, 0)]  # right, left, down, up
clean = clean_test_digits()  # the test digits without their noise
ink = clean.sum(dim=(1, 2, 3))


def global_max(net, X):
    """The numbers net's classifier reads: each block-3 map's largest."""
    with torch.no_grad():
        return net.eval().feature_maps(X)[-1].amax(dim=(2, 3))


changes = {}  # trained seed -> (N digits, 4 directions, 4 distances)
for seed, net in zip(SEEDS, nets):
    before = global_max(net, data.X_test)
    changes[seed] = torch.stack(
        [
            torch.stack(
                [
                    relative_change(
                        before,
                        global_max(net, shift(data.X_test, d * y, d * x)),
                    )
                    for d in (1, 2, 3, 4)
                ],
                dim=1,
            )
            for y, x in DIRECTIONS
        ],
        dim=1,
    )
# A move of 4 pixels that loses no ink: then the shorter moves lose none.
whole = torch.stack(
    [
        (shift(clean, 4 * dy, 4 * dx).sum(dim=(1, 2, 3)) - ink).abs() < 1e-4
        for dy, dx in DIRECTIONS
    ],
    dim=1,
)  # (N digits, 4 directions)
for seed, change in changes.items():
    on_grid, off_grid = change[..., 3][whole], change[..., :3].mean(-1)[whole]
    print(f"seed {seed}: {len(on_grid)} moves; off the grid", end=" ")
    print(f"{off_grid.mean():.1%} on average, on it {on_grid.mean():.1%}")
# --8<-- [end:moves]


def gap_per_digit(change):
    """Each digit's mean over its whole moves of off-grid minus on-grid."""
    gap = (change[..., :3].mean(-1) - change[..., 3]) * whole
    counts = whole.sum(dim=1)
    return gap.sum(dim=1)[counts > 0] / counts[counts > 0]


gaps = {seed: gap_per_digit(change) for seed, change in changes.items()}
record(
    num_whole_moves=int(whole.sum()),
    change_on_grid_mean=np.mean(
        [c[..., 3][whole].mean() for c in changes.values()]
    ),
    change_off_grid_mean=np.mean(
        [c[..., :3].mean(-1)[whole].mean() for c in changes.values()]
    ),
    change_gap_by_seed=[gap.mean().item() for gap in gaps.values()],
    change_gap_se_by_seed=[
        (gap.std() / len(gap) ** 0.5).item() for gap in gaps.values()
    ],
)
