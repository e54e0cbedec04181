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
record(
    seeds_disagree_share=(answers[0] != answers[1]).float().mean(),
    seeds_disagree_count=int((answers[0] != answers[1]).sum()),
)

# %% [markdown]
# ## Moving a digit: on block 3's grid and off it
#
# Block 3's maps have one unit for every 4 × 4 pixels, so the page's moves
# by 4 pixels are on its grid and the others are not. How much does a move
# change the 64 global-max values the classifier reads? Chapter 6's
# `relative_change` measures it: the length of after − before over the
# length of before, both 64 numbers long. Every test digit is moved 1 to 4
# pixels up, down, left and right, as chapter 6's `shift` moves it (zeros
# come in), wherever a move of 4 pixels keeps all of its ink on the canvas:
# chapter 8's clean copies of the test digits say where it is.
#
# A move by `shift` changes two things at once: the content moves while the
# zero padding around the canvas stays put, and a blank strip with no noise
# comes in. A circular shift (`torch.roll`) brings the same noise in on the
# other side instead: same content, same noise, only the border fixed.

# %%
# --8<-- [start:moves]
DIRECTIONS = [(0, 1), (0, -1), (1, 0), (-1, 0)]  # right, left, down, up
clean = clean_test_digits()  # the test digits without their noise
ink = clean.sum(dim=(1, 2, 3))
# A move of 4 pixels that loses no ink: then the shorter moves lose none.
whole = torch.stack(
    [
        (shift(clean, 4 * dy, 4 * dx).sum(dim=(1, 2, 3)) - ink).abs() < 1e-4
        for dy, dx in DIRECTIONS
    ],
    dim=1,
)  # (N digits, 4 directions)


def global_max(net, X):
    """The numbers net's classifier reads: each block-3 map's largest."""
    with torch.no_grad():
        return net.eval().feature_maps(X)[-1].amax(dim=(2, 3))


def roll(X, dy, dx):
    """A circular shift: what leaves one side comes in on the other."""
    return torch.roll(X, (dy, dx), dims=(-2, -1))


def move_changes(net, move):
    """How much each move changes the global max: (N digits, 4 directions,
    4 distances of 1 to 4 pixels)."""
    before = global_max(net, data.X_test)
    return torch.stack(
        [
            torch.stack(
                [
                    relative_change(
                        before, global_max(net, move(data.X_test, d * y, d * x))
                    )
                    for d in (1, 2, 3, 4)
                ],
                dim=1,
            )
            for y, x in DIRECTIONS
        ],
        dim=1,
    )


changes = {seed: move_changes(net, shift) for seed, net in zip(SEEDS, nets)}
rolled = {seed: move_changes(net, roll) for seed, net in zip(SEEDS, nets)}
for seed in SEEDS:
    off_grid = changes[seed][..., :3][whole]  # every move of 1 to 3 pixels
    on_grid = changes[seed][..., 3][whole]
    print(
        f"seed {seed}, {len(on_grid)} moves of 4 px; median (90th percentile):"
    )
    for what, c in [("1-3 px", off_grid), ("4 px", on_grid)]:
        print(f"  {what}: {c.median():.1%} ({c.quantile(0.9):.1%})")
    print(f"  4 px rolled: {rolled[seed][..., 3][whole].median():.1%}")
# --8<-- [end:moves]


def quantiles(values, q):
    """Each seed's q-quantile of its values."""
    return [values[seed].quantile(q).item() for seed in SEEDS]


def on_grid_moves(c):
    """The moves of 4 pixels that keep the digit whole, per seed."""
    return {seed: c[seed][..., 3][whole] for seed in SEEDS}


def off_grid_moves(c):
    """The moves of 1 to 3 pixels of those digits, per seed."""
    return {seed: c[seed][..., :3][whole] for seed in SEEDS}


def gap_per_digit(change):
    """Each digit's mean over its whole moves of off-grid minus on-grid."""
    gap = (change[..., :3].mean(-1) - change[..., 3]) * whole
    counts = whole.sum(dim=1)
    return gap.sum(dim=1)[counts > 0] / counts[counts > 0]


gaps = {seed: gap_per_digit(change) for seed, change in changes.items()}
# Rolled or shifted by 4 pixels: the same moves, paired.
roll_minus_shift = {
    seed: rolled[seed][..., 3][whole] - changes[seed][..., 3][whole]
    for seed in SEEDS
}


def by_seed(name, values):
    """values (one per seed) under name_by_seed, and one by one under
    name_seed0, name_seed1, as the page quotes them."""
    values = [float(v) for v in values]
    flat = {f"{name}_seed{seed}": v for seed, v in zip(SEEDS, values)}
    return {f"{name}_by_seed": values, **flat}


record(
    num_whole_moves=int(whole.sum()),
    change_on_grid_mean=np.mean(
        [c.mean() for c in on_grid_moves(changes).values()]
    ),
    change_off_grid_mean=np.mean(
        [c.mean() for c in off_grid_moves(changes).values()]
    ),
    **by_seed(
        "change_on_grid_mean",
        [c.mean() for c in on_grid_moves(changes).values()],
    ),
    **by_seed(
        "change_off_grid_mean",
        [c.mean() for c in off_grid_moves(changes).values()],
    ),
    **by_seed("change_on_grid_median", quantiles(on_grid_moves(changes), 0.5)),
    **by_seed("change_on_grid_p90", quantiles(on_grid_moves(changes), 0.9)),
    **by_seed(
        "change_off_grid_median", quantiles(off_grid_moves(changes), 0.5)
    ),
    **by_seed("change_off_grid_p90", quantiles(off_grid_moves(changes), 0.9)),
    **by_seed(
        "change_on_grid_over_20_share",
        [(c > 0.2).float().mean() for c in on_grid_moves(changes).values()],
    ),
    **by_seed("change_gap", [gap.mean() for gap in gaps.values()]),
    **by_seed(
        "change_gap_se", [gap.std() / len(gap) ** 0.5 for gap in gaps.values()]
    ),
    **by_seed(
        "rolled_on_grid_mean",
        [c.mean() for c in on_grid_moves(rolled).values()],
    ),
    **by_seed("rolled_on_grid_median", quantiles(on_grid_moves(rolled), 0.5)),
    **by_seed(
        "rolled_on_grid_se",
        [c.std() / len(c) ** 0.5 for c in on_grid_moves(rolled).values()],
    ),
    **by_seed(
        "roll_minus_shift", [d.mean() for d in roll_minus_shift.values()]
    ),
    **by_seed(
        "roll_minus_shift_se",
        [d.std() / len(d) ** 0.5 for d in roll_minus_shift.values()],
    ),
)

# %% [markdown]
# Rolled by 4 pixels, the digit brings no blank strip in, yet the numbers
# change as much as when it is shifted: what remains is the border, fixed
# while the content moves. With the border made circular too (the same
# weights, but each convolution pads with the other side of its input), a
# roll by 4 pixels changes the numbers by nothing more than rounding.

# %%
circular_change = []
for net in nets:
    circular = copy.deepcopy(net)
    for layer in circular.modules():
        if isinstance(layer, torch.nn.Conv2d):
            layer.padding_mode = "circular"
    before = global_max(circular, data.X_test)
    circular_change += [
        relative_change(
            before, global_max(circular, roll(data.X_test, 4 * y, 4 * x))
        )
        .max()
        .item()
        for y, x in DIRECTIONS
    ]
print(
    f"circular padding, rolled by 4 pixels: at most {max(circular_change):.1e}"
)
record(circular_on_grid_change_max=max(circular_change))

# %% [markdown]
# Even on the grid, a move can change the answer. How often, over the whole
# moves of 4 pixels; and which of the page's ten test digits does it happen
# to, with the largest change?

# %%
WAYS = ["right", "left", "down", "up"]
flip_shares, examples = [], []
for seed, net in zip(SEEDS, nets):
    with torch.no_grad():
        answer = net(data.X_test).argmax(dim=1)
        moved = torch.stack(
            [
                net(shift(data.X_test, 4 * y, 4 * x)).argmax(dim=1)
                for y, x in DIRECTIONS
            ],
            dim=1,
        )  # (N digits, 4 directions)
    flips = (moved != answer[:, None]) & whole
    flip_shares.append((flips.sum() / whole.sum()).item())
    for digit, index in enumerate(indices):
        for way in range(4):
            if flips[index, way]:
                examples.append(
                    {
                        "seed": seed,
                        "digit": digit,
                        "way": WAYS[way],
                        "before": answer[index].item(),
                        "after": moved[index, way].item(),
                        "change": changes[seed][index, way, 3].item(),
                    }
                )
# The page's example, if one of its ten digits has one (None otherwise).
example = max(examples, key=lambda e: e["change"], default=None)
print("on-grid moves that change the answer:", flip_shares, "e.g.", example)
record(
    on_grid_flip_share_by_seed=flip_shares,
    on_grid_flip_share_mean=np.mean(flip_shares),
    on_grid_flip_examples=examples,
    on_grid_flip_example=example,
    **{f"flip_example_{key}": value for key, value in (example or {}).items()},
)

# %% [markdown]
# Which of the ten test digits do the trained networks read wrongly? And how
# much smaller are the untrained networks' values (block 3's largest, for
# each test digit), which the page's colour scale, set per input, hides?

# %%
wrong = {
    seed: reference[f"trained-seed{seed}/probabilities"][:10].argmax(1)
    for seed in SEEDS
}
misread_by_both = [
    label
    for label in labels
    if all(wrong[seed][label] != label for seed in SEEDS)
]
scale_ratio = []
for seed in SEEDS:
    highest = [
        block_outputs(networks[f"{kind}-seed{seed}"], data.X_test)[
            "block3"
        ].amax(dim=(1, 2, 3))
        for kind in ("trained", "untrained")
    ]
    scale_ratio.append((highest[0] / highest[1]).median().item())
print("misread by both:", misread_by_both, "scale ratio:", scale_ratio)
record(
    misread_by_both=misread_by_both,
    misread_answers={
        str(label): [int(wrong[seed][label]) for seed in SEEDS]
        for label in misread_by_both
    },
    first_misread_by_both=misread_by_both[0] if misread_by_both else None,
    first_misread_answers=(
        [int(wrong[seed][misread_by_both[0]]) for seed in SEEDS]
        if misread_by_both
        else None
    ),
    untrained_scale_ratio_by_seed=scale_ratio,
    untrained_scale_ratio_min=min(scale_ratio),
    untrained_scale_ratio_max=max(scale_ratio),
)
