# %% [markdown]
# # Chapter 4's CNN, live: the files the page runs
#
# The live CNN page runs chapter 4's network in your browser. This notebook
# trains that network exactly as chapter 4 does, for the protocol's first two
# seeds (or takes chapter 4's runs, if they are exactly those), keeps each
# one's untrained starting point too, and writes all four
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
    count_parameters,
    load_dataset,
    output_dir,
    record,
    setup,
)
from layers_ops import chapter_4_runs
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
# PyTorch with each seed before it builds the network, so a copy taken
# then is the untrained network that training starts from.

# %%
# --8<-- [start:train]
data = load_dataset("shifted_digits")
SEEDS = PROTOCOL["seeds"][:2]  # chapter 4's first two runs
# Chapter 4's notebook saves its runs. Where it has run first, chapter_4_runs
# gives them back if the same code trained them from the same data, settings
# and starting weights: no need to train them again. Otherwise it trains them.
runs, loaded = chapter_4_runs(
    lambda: SmallCNN(image_size=24), data, {**PROTOCOL, "seeds": SEEDS}
)
print("chapter 4's runs:", "loaded" if loaded else "trained here")
untrained = [runs[seed][0] for seed in SEEDS]
nets = [runs[seed][1] for seed in SEEDS]
accuracies = [accuracy(net, data.X_test, data.y_test) for net in nets]
print("test accuracy per seed:", accuracies)
# --8<-- [end:train]
record(
    seeds=list(SEEDS),
    trained_accuracies=accuracies,
    **{
        f"trained_accuracy_seed{seed}": score
        for seed, score in zip(SEEDS, accuracies)
    },
    num_test=len(data.X_test),
    parameters=count_parameters(nets[0]),
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
        size = (out / f"{name}.safetensors").stat().st_size
        print(f"{name}: {score:.1%} of the test digits, {size / 1000:.0f} kB")

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
    trained_accuracy_mean=np.mean(accuracies),
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
# --8<-- [start:untrained]
common_share, top_probability, logit_spread = [], [], []
for seed in SEEDS:
    net = networks[f"untrained-seed{seed}"]
    outputs = block_outputs(net, data.X_test)
    probabilities = outputs["probabilities"]
    answers = probabilities.argmax(dim=1)
    common = answers.mode().values.item()
    common_share.append(answers.bincount().max().item() / len(answers))
    top_probability.append(probabilities.max().item())
    logits = outputs["logits"]
    logit_spread.append((logits.amax(1) - logits.amin(1)).max().item())
    print(
        f"untrained, seed {seed}: most common answer {common}"
        f" for {common_share[-1]:.0%} of the test digits; largest probability"
        f" {top_probability[-1]:.1%}; ten logits at most {logit_spread[-1]:.2f}"
        " apart"
    )
# --8<-- [end:untrained]
record(
    untrained_logit_spread_max=max(logit_spread),
    untrained_common_answer_shares=common_share,
    untrained_common_answer_share_min=min(common_share),
    untrained_top_probabilities=top_probability,
    untrained_top_probability_max=max(top_probability),
)

# %% [markdown]
# The two trained networks: on how many test digits do their answers differ?

# %%
# --8<-- [start:disagree]
answers = [
    block_outputs(networks[f"trained-seed{seed}"], data.X_test)[
        "probabilities"
    ].argmax(dim=1)
    for seed in SEEDS
]
disagree = (answers[0] != answers[1]).sum().item()
print(f"the two seeds disagree on {disagree} of {len(answers[0])} test digits")
# --8<-- [end:disagree]
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
    print(f"seed {seed}: {len(on_grid)} moves of each distance")
    for d in range(4):
        c = changes[seed][..., d][whole]
        print(
            f"  {d + 1} px: median {c.median():.1%}, mean {c.mean():.1%},"
            f" 90th percentile {c.quantile(0.9):.1%}"
        )
    print(
        f"  1-3 px: median {off_grid.median():.1%}, mean {off_grid.mean():.1%};"
        f" 4 px mean over 1-3 px mean: {on_grid.mean() / off_grid.mean():.2f}"
    )
    print(
        f"  4 px: shifted mean {on_grid.mean():.1%},"
        f" rolled mean {rolled[seed][..., 3][whole].mean():.1%}"
    )
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
    **{
        f"change_median_{d + 1}px_seed{seed}": changes[seed][..., d][whole]
        .median()
        .item()
        for seed in SEEDS
        for d in range(4)
    },
    **by_seed(
        "change_on_over_off",
        [
            on.mean() / off.mean()
            for on, off in zip(
                on_grid_moves(changes).values(),
                off_grid_moves(changes).values(),
            )
        ],
    ),
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
# --8<-- [start:circular]
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
print(f"circular padding, rolled by 4 pixels: at most {max(circular_change)}")
# --8<-- [end:circular]
record(circular_on_grid_change_max=max(circular_change))

# %% [markdown]
# Even on the grid, a move can change the answer. How often, over the whole
# moves of 4 pixels; and which of the page's ten test digits does it happen
# to, with the largest change?

# %%
# --8<-- [start:flips]
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
for seed, share in zip(SEEDS, flip_shares):
    print(f"seed {seed}: {share:.1%} of the moves of 4 px change the answer")
if example is not None:
    # Its probabilities, before and after the move, and how close the moved
    # digit's ink comes to the canvas's border (0: it touches).
    net = nets[SEEDS.index(example["seed"])]
    y, x = DIRECTIONS[WAYS.index(example["way"])]
    index = indices[example["digit"]]
    X = data.X_test[index : index + 1]
    with torch.no_grad():
        p_before = torch.softmax(net(X), dim=1)[0]
        p_after = torch.softmax(net(shift(X, 4 * y, 4 * x)), dim=1)[0]
    rows, cols = shift(clean[index : index + 1], 4 * y, 4 * x)[0, 0].nonzero().T
    example["ink_to_border"] = min(
        rows.min(), cols.min(), 23 - rows.max(), 23 - cols.max()
    ).item()
    example["p_before"] = p_before[example["before"]].item()
    example["p_old_after"] = p_after[example["before"]].item()
    example["p_after"] = p_after[example["after"]].item()
    print(f"e.g. {example}")
# --8<-- [end:flips]
record(
    **by_seed("on_grid_flip_share", flip_shares),
    on_grid_flip_share_mean=np.mean(flip_shares),
    on_grid_flip_examples=examples,
    on_grid_flip_example=example,
    **{f"flip_example_{key}": value for key, value in (example or {}).items()},
)

# %% [markdown]
# Which of the ten test digits do the trained networks read wrongly?

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
print("misread by both:", misread_by_both)
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
)

# %% [markdown]
# How much smaller are the untrained networks' values, which the page's
# colour scale, set per input, hides? For each test digit, each block's
# largest value, trained over untrained.

# %%
# --8<-- [start:scale]
scale_ratio = {}  # (seed, block): one ratio per test digit
for seed in SEEDS:
    trained, initial = (
        block_outputs(networks[f"{kind}-seed{seed}"], data.X_test)
        for kind in ("trained", "untrained")
    )
    for block in (1, 2, 3):
        highest = [
            o[f"block{block}"].amax(dim=(1, 2, 3)) for o in (trained, initial)
        ]
        ratio = highest[0] / highest[1]
        scale_ratio[seed, block] = ratio
        print(
            f"seed {seed}, block {block}: trained over untrained largest value,"
            f" median {ratio.median():.0f}, 10th to 90th percentile"
            f" {ratio.quantile(0.1):.0f} to {ratio.quantile(0.9):.0f}"
        )
# --8<-- [end:scale]
record(
    **{
        f"untrained_scale_ratio_{what}_block{block}_seed{seed}": (
            ratio.quantile(q).item()
        )
        for (seed, block), ratio in scale_ratio.items()
        for what, q in (("median", 0.5), ("p10", 0.1), ("p90", 0.9))
    },
)

# %% [markdown]
# How large are the test digits? Their ink (chapter 8's clean copies: ink
# wherever the clean image is above zero), row by row.

# %%
# --8<-- [start:heights]
ink_rows = (clean[indices, 0] > 0).any(dim=2)  # (10 digits, 24 rows)
heights = [int(r.nonzero().max() - r.nonzero().min() + 1) for r in ink_rows]
print("ink heights of the page's ten test digits, in pixels:", heights)
# --8<-- [end:heights]
record(
    digit_heights=heights,
    digit_height_min=min(heights),
    digit_height_max=max(heights),
    digit_height_median=float(np.median(heights)),
)
