# %% [markdown]
# # Chapter 8, part 2: the same measurements on two more networks
#
# Part 1 looked inside one trained network. Here the protocol's other two
# seeds give two more (chapter 4's runs, taken from its notebook or trained
# again), and every number part 1 recorded is measured again
# on each, so that the chapter's claims rest on three networks, not one.
# Last, the images made for one network are shown to the other.

# %%
import torch

from book import PROTOCOL, SmallCNN, load_dataset, record, setup
from layers_ops import chapter_4_runs
from what_cnns_learn_ops import (
    PLAIN,
    READABLE,
    bounding_boxes,
    channel_score,
    class_score,
    class_selectivity,
    clean_test_digits,
    frozen,
    kernel_energy_shares,
    mask_background_like,
    maximise_activation,
    move_ink,
    occlusion_map,
    saliency,
    share_inside,
    top_label_share,
    total_variation,
    true_class_scores,
    weight_cosines,
)

setup()

# %%
data = load_dataset("shifted_digits")
X, y = data.X_test, data.y_test
ink = clean_test_digits()[:, 0] > 0  # the digits' pixels
boxes = bounding_boxes(ink)
seeds = [seed for seed in PROTOCOL["seeds"] if seed != 0]  # part 1 had 0


# %%
# --8<-- [start:measure]
def trained_network(seed):
    """Part 1's recipe for one seed, chapter 4's run of that seed: the
    trained net and its start."""
    protocol = {**PROTOCOL, "seeds": (seed,)}
    runs, _ = chapter_4_runs(lambda: SmallCNN(image_size=24), data, protocol)
    initial, net = runs[seed]
    return frozen(net), frozen(initial)


def measure(net, initial, starts=2):
    """Every number part 1 recorded, and the class images made for net,
    from starts random starts per class (part 1 made one)."""
    found = {}
    S, S0 = (
        kernel_energy_shares(n.blocks[0][0].weight) for n in (net, initial)
    )
    for name, shares in [("trained", S), ("initial", S0)]:
        found[f"{name}_mean_share"] = shares[:, 0].mean()
        found[f"{name}_odd_share"] = shares[:, 1].mean()
        found[f"{name}_even_share"] = shares[:, 2].mean()
        found[f"{name}_flat_kernels"] = (shares[:, 0] < 0.1).sum()
        found[f"{name}_edge_kernels"] = (shares[:, 1] > 0.5).sum()
    for depth, cosine in enumerate(weight_cosines(net, initial), start=1):
        found[f"cosine_block_{depth}"] = cosine
    with torch.no_grad():
        maps, maps_initial = net.feature_maps(X), initial.feature_maps(X)
    for depth, (M, M0) in enumerate(zip(maps, maps_initial), start=1):
        responses = M.amax(dim=(2, 3))
        found[f"selectivity_block_{depth}"] = class_selectivity(
            responses, y
        ).median()
        found[f"selectivity_initial_block_{depth}"] = class_selectivity(
            M0.amax(dim=(2, 3)), y
        ).median()
        found[f"top_label_share_block_{depth}"] = top_label_share(
            responses, y
        ).mean()
        found[f"top_label_share_initial_block_{depth}"] = top_label_share(
            M0.amax(dim=(2, 3)), y
        ).mean()
    generator = torch.Generator().manual_seed(0)
    background = mask_background_like(ink, boxes, generator)
    for name, images in [
        ("as_is", X),
        ("no_ink", X.masked_fill(ink[:, None], 0.0)),
        ("moved_ink", move_ink(X, ink, background, generator)),
    ]:
        logit, probability, correct = true_class_scores(net, images, y)
        found[f"{name}_probability"] = probability.mean()
        found[f"{name}_accuracy"] = correct.float().mean()
        found[f"{name}_logit"] = logit.mean()
    found["test_accuracy"] = found["as_is_accuracy"]
    for name in ("no_ink", "moved_ink"):
        fall = found["as_is_logit"] - found[f"{name}_logit"]
        found[f"{name.removeprefix('no_')}_logit_fall"] = fall
    num_maps = 50  # as part 1
    occlusion = torch.stack(
        [occlusion_map(net, X[i], y[i]) for i in range(num_maps)]
    )
    found["occlusion_box_share"] = share_inside(
        occlusion, boxes[:num_maps]
    ).mean()
    occlusion = torch.stack(
        [occlusion_map(initial, X[i], y[i]) for i in range(num_maps)]
    )
    found["occlusion_initial_box_share"] = share_inside(
        occlusion, boxes[:num_maps]
    ).mean()
    gradients = saliency(net, X, y)
    found["saliency_box_share"] = share_inside(gradients, boxes).mean()
    found["saliency_ink_share"] = share_inside(gradients, ink).mean()
    found["saliency_initial_box_share"] = share_inside(
        saliency(initial, X, y), boxes
    ).mean()
    found["times_input_box_share"] = share_inside(
        gradients * X[:, 0], boxes
    ).mean()
    made = {}  # starts images per class; image n is made for class n % 10
    with torch.no_grad():
        best_real = net(X).amax(dim=0)
    for name, options in [("plain", PLAIN), ("readable", READABLE)]:
        made[name] = maximise_activation(
            class_score(net), (10 * starts, 1, 24, 24), **options
        )
        with torch.no_grad():  # the first start's ten, as in part 1
            logits = net(made[name][:10])
        ratio = logits[torch.arange(10), torch.arange(10)] / best_real
        found[f"{name}_class_ratio_min"] = ratio.min()
        found[f"{name}_class_ratio_mean"] = ratio.mean()
        found[f"{name}_class_hits"] = (
            logits.argmax(dim=1) == torch.arange(10)
        ).sum()
        found[f"{name}_total_variation"] = total_variation(
            made[name][:10]
        ).mean()
    channels = torch.arange(16)
    score = channel_score(net, channels)
    best_test = maps[-1][:, channels].amax(dim=(2, 3)).max(dim=0).values
    for name, options in [("plain", PLAIN), ("readable", READABLE)]:
        images = maximise_activation(score, (16, 1, 24, 24), **options)
        with torch.no_grad():
            ratio = score(images) / best_test
        found[f"channel_{name}_ratio_min"] = ratio.min()
        found[f"channel_{name}_ratio_mean"] = ratio.mean()
        found[f"channel_{name}_ratio_max"] = ratio.max()
        found[f"channel_{name}_below_best"] = (ratio < 1).sum()
    return found, made


# --8<-- [end:measure]

# %%
# --8<-- [start:seeds]
nets, made = {}, {}
for seed in seeds:
    nets[seed], initial = trained_network(seed)
    found, made[seed] = measure(nets[seed], initial)
    record(**{f"seed_{seed}_{key}": value for key, value in found.items()})
    print(f"seed {seed}: test accuracy {found['test_accuracy']:.3f}")
# --8<-- [end:seeds]
record(other_seeds=seeds)

# %% [markdown]
# ## Images made for one network, shown to another

# %%
# --8<-- [start:transfer]
classes = torch.arange(len(made[seeds[0]]["plain"])) % 10  # image n: n % 10
n = 2 * len(classes)  # each network's images, shown to the other
for name in ("plain", "readable"):
    hits = 0
    for maker, judge in [(seeds[0], seeds[1]), (seeds[1], seeds[0])]:
        with torch.no_grad():
            predicted = nets[judge](made[maker][name]).argmax(dim=1)
        hits += (predicted == classes).sum().item()
    print(f"{name}: {hits} of {n} recognised by the other network")
    record(**{f"transfer_{name}": hits / n})
# --8<-- [end:transfer]
record(transfer_images=n)
