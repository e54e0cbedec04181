"""Chapter 7: the splits, the training loop, augmentation, the learning-rate
tools, initialisation, and every claim the chapter makes about its runs.

Claims: each effect the prose states is compared with its standard error (the
seed spread of each mean, ddof=1, and the sampling error of the validation or
test set), through the claim fixture of conftest.py.
"""

import math

import numpy as np
import pytest
import torch
import training_well_ops
from claims import difference_se, mean_se, sample_sd
from torch import nn
from training_well_ops import (
    PlainCNN,
    accuracy_with_batch_statistics,
    initialise,
    layer_statistics,
    lr_range_test,
    per_class_subset,
    selection_gap,
    shift_with_noise,
    without_batch_norm,
)

import book
from book import (
    SmallCNN,
    ThreeWaySplit,
    evaluate,
    fit,
    fit_trials,
    load_dataset,
    load_splits,
    random_shift,
)


def tiny_splits(n=60, seed=0):
    """A small random three-way split, quick to train on."""
    generator = torch.Generator().manual_seed(seed)

    def part(size):
        X = torch.rand(size, 1, 8, 8, generator=generator)
        return X, torch.arange(size) % 10

    return ThreeWaySplit(*part(n), *part(20), *part(30))


def tiny_net():
    torch.manual_seed(0)
    return SmallCNN(image_size=8, channels=(4, 8))


# The splits ------------------------------------------------------------------


def test_splits_keep_the_test_set_and_partition_the_training_set():
    splits, plain = load_splits("digits"), load_dataset("digits")
    assert torch.equal(splits.X_test, plain.X_test)
    assert torch.equal(splits.y_test, plain.y_test)
    together = torch.cat([splits.X_train, splits.X_val]).flatten(1)
    assert len(together) == len(plain.X_train)
    # The same images, each once: sort both sets of rows and compare.
    ours = sorted(map(tuple, together.tolist()))
    theirs = sorted(map(tuple, plain.X_train.flatten(1).tolist()))
    assert ours == theirs
    assert len(splits.X_val) == math.ceil(0.2 * len(plain.X_train))  # as sklearn


def test_validation_is_stratified():
    splits = load_splits("digits")
    shares = np.bincount(splits.y_val) / len(splits.y_val)
    np.testing.assert_allclose(shares, 0.1, atol=0.01)


def test_no_copy_of_a_validation_digit_stays_in_training(monkeypatch):
    """shifted_digits holds every training digit twice; with a placement that
    changes nothing, copies are exact and easy to find."""

    def place_unchanged(images, labels, canvas, copies, rng):
        return np.tile(images, (copies, 1, 1)), np.tile(labels, copies)

    monkeypatch.setattr(book, "place_on_canvas", place_unchanged)
    shifted, native = load_splits("shifted_digits"), load_splits("digits")
    assert torch.equal(shifted.X_val, native.X_val)
    assert torch.equal(shifted.X_train, torch.cat([native.X_train] * 2))


def test_shifted_splits_sizes():
    splits = load_splits("shifted_digits")
    native = load_splits("digits")
    assert len(splits.X_train) == 2 * len(native.X_train)
    assert len(splits.X_val) == len(native.X_val)
    assert torch.equal(splits.y_val, native.y_val)
    assert splits.X_train.shape[1:] == (1, 24, 24)


@pytest.mark.parametrize("val_size", [0, 1, 1.5, -0.2])
def test_load_splits_rejects_bad_sizes(val_size):
    with pytest.raises(ValueError, match=f"val_size .* got {val_size}"):
        load_splits("digits", val_size=val_size)


def test_load_splits_names_an_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load_splits("mnist")


def test_per_class_subset_counts_and_keeps_the_other_parts():
    splits = load_splits("digits")
    small = per_class_subset(splits, per_class=7, seed=3)
    assert np.bincount(small.y_train).tolist() == [7] * 10
    assert small.X_val is splits.X_val and small.X_test is splits.X_test
    rows = {tuple(x) for x in splits.X_train.flatten(1).tolist()}
    assert all(tuple(x) in rows for x in small.X_train.flatten(1).tolist())


@pytest.mark.parametrize("per_class", [0, 10_000])
def test_per_class_subset_rejects_impossible_counts(per_class):
    with pytest.raises(ValueError, match=f"per_class must be .* got {per_class}"):
        per_class_subset(load_splits("digits"), per_class)


# Random shifts -----------------------------------------------------------------


@pytest.mark.parametrize("max_shift", [0, 1, 3])
@pytest.mark.parametrize("shape", [(5, 1, 8, 8), (3, 3, 6, 9)], ids=str)
def test_random_shift_matches_a_loop_over_windows(max_shift, shape):
    X = torch.rand(shape)
    out = random_shift(X, max_shift, torch.Generator().manual_seed(1))
    # The same draws, then one slice per image of the zero-padded images.
    generator = torch.Generator().manual_seed(1)
    top, left = torch.randint(0, 2 * max_shift + 1, (2, len(X), 1), generator=generator)
    padded = torch.nn.functional.pad(X, [max_shift] * 4)
    H, W = shape[2:]
    for n in range(len(X)):
        t, l_ = top[n].item(), left[n].item()
        torch.testing.assert_close(out[n], padded[n, :, t : t + H, l_ : l_ + W])


def test_random_shift_moves_a_single_pixel_within_range():
    X = torch.zeros(200, 1, 9, 9)
    X[:, 0, 4, 4] = 1.0
    out = random_shift(X, 2, torch.Generator().manual_seed(0))
    where = torch.nonzero(out[:, 0])  # one pixel per image, never lost
    assert len(where) == len(X)
    offsets = where[:, 1:] - 4
    assert offsets.abs().max() == 2
    # Every offset from -2 to 2 occurs, in both directions.
    assert (
        set(offsets[:, 0].tolist())
        == set(offsets[:, 1].tolist())
        == {
            -2,
            -1,
            0,
            1,
            2,
        }
    )


def test_random_shift_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) images, got \(8, 8\)"):
        random_shift(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="max_shift .* got -1"):
        random_shift(torch.zeros(1, 1, 8, 8), -1)
    with pytest.raises(ValueError, match="max_shift .* got 1.5"):
        random_shift(torch.zeros(1, 1, 8, 8), 1.5)


def test_shift_with_noise_moves_like_random_shift_and_fills_with_noise():
    X = torch.full((8, 1, 10, 10), 0.5)
    moved = shift_with_noise(X, 3, generator=torch.Generator().manual_seed(1))
    zeros = random_shift(X, 3, generator=torch.Generator().manual_seed(1))
    inside = zeros > 0  # the same offsets: the image lands in the same place
    assert torch.equal(moved[inside], zeros[inside])
    band = moved[~inside]
    assert band.numel() > 0 and (band != 0.5).all()
    assert 0 <= band.min() and band.max() <= 1 and band.std() > 0.02


def test_accuracy_with_batch_statistics_leaves_running_statistics_alone():
    net = tiny_net()
    X, y = torch.rand(20, 1, 8, 8), torch.arange(20) % 10
    before = {k: v.clone() for k, v in net.state_dict().items()}
    accuracy_with_batch_statistics(net, X, y)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("num_val", [100, 270, 10**9])
def test_the_snippets_difference_se_is_the_ledgers(num_val):
    """The verdicts the learning-rate snippet records use the claim ledger's
    arithmetic (tests/claims.py), so that the prose and the tests agree."""
    a, b = [0.9, 0.92, 0.94], [0.8, 0.81, 0.8]
    assert training_well_ops.difference_se(a, b, num_val) == pytest.approx(
        difference_se(a, b, num_val)
    )


# The training loop ---------------------------------------------------------------


def test_fit_keeps_the_weights_of_the_best_validation_epoch():
    data, net = tiny_splits(), tiny_net()
    history = fit(net, data, num_epochs=6, lr=0.05)
    best = history["best_epoch"]
    assert history["val_loss"][best] == min(history["val_loss"])
    loss, accuracy = evaluate(net, data.X_val, data.y_val)
    assert loss == pytest.approx(history["val_loss"][best], rel=1e-6)
    assert accuracy == pytest.approx(history["val_accuracy"][best])
    assert all(len(history[key]) == 6 for key in ("train_loss", "val_accuracy"))


def test_fit_never_looks_at_the_test_set():
    data = tiny_splits()
    poisoned = ThreeWaySplit(
        data.X_train,
        data.y_train,
        torch.full_like(data.X_test, float("nan")),
        torch.full_like(data.y_test, -7),
        data.X_val,
        data.y_val,
    )
    first = fit(tiny_net(), data, num_epochs=3)
    second = fit(tiny_net(), poisoned, num_epochs=3)
    assert first == second


def test_fit_calls_augment_per_batch_and_on_epoch_per_epoch():
    data, calls = tiny_splits(n=100), {"augment": 0, "epoch": 0}

    def augment(X, generator):
        calls["augment"] += 1
        return random_shift(X, 1, generator)

    def on_epoch(net):
        calls["epoch"] += 1

    fit(
        tiny_net(),
        data,
        num_epochs=3,
        batch_size=32,
        augment=augment,
        on_epoch=on_epoch,
    )
    assert calls == {"augment": 3 * 3, "epoch": 3}  # 100 images: 34, 33, 33


def test_fit_is_repeatable():
    data = tiny_splits()
    shift = lambda X, generator: random_shift(X, 1, generator)  # noqa: E731
    runs = [fit(tiny_net(), data, num_epochs=2, augment=shift) for _ in range(2)]
    assert runs[0] == runs[1]


def test_fit_rejects_data_without_validation_and_no_epochs():
    with pytest.raises(ValueError, match="validation set.*Split has none"):
        fit(tiny_net(), load_dataset("digits"))
    with pytest.raises(ValueError, match="num_epochs must be at least 1, got 0"):
        fit(tiny_net(), tiny_splits(), num_epochs=0)


def test_fit_trials_one_run_per_seed():
    trials = fit_trials(tiny_net, tiny_splits(), seeds=(0, 1), num_epochs=2)
    assert len(trials["nets"]) == len(trials["histories"]) == 2
    assert trials["mean"] == pytest.approx(np.mean(trials["val_accuracies"]))


# Choosing on the test set ----------------------------------------------------------


def test_selection_gap_is_zero_for_a_single_candidate_on_average():
    rng = np.random.default_rng(0)
    correct = rng.random((1, 400)) < 0.9
    assert abs(selection_gap(correct, num_splits=2000)) < 0.005


def test_selection_gap_grows_with_equally_good_candidates():
    """Forty candidates that are all right 90 % of the time, independently:
    the one that looks best on half A was lucky there."""
    rng = np.random.default_rng(0)
    one = selection_gap(rng.random((1, 400)) < 0.9)
    forty = selection_gap(rng.random((40, 400)) < 0.9)
    assert forty > one + 0.03


def test_selection_gap_rejects_a_flat_array():
    with pytest.raises(ValueError, match=r"\(num_candidates, N\).*\(10,\)"):
        selection_gap(np.ones(10, dtype=bool))


# Learning-rate range test -----------------------------------------------------------


def test_range_test_grows_the_learning_rate_geometrically():
    data = tiny_splits(n=100)
    lrs, losses = lr_range_test(tiny_net(), data, 1e-4, 1e-2, num_steps=10)
    np.testing.assert_allclose(lrs, np.geomspace(1e-4, 1e-2, 10))
    assert len(losses) == 10 and np.all(np.isfinite(losses))


def test_range_test_stops_once_the_loss_blows_up():
    data = tiny_splits(n=100)
    net = without_batch_norm(tiny_net())
    lrs, losses = lr_range_test(net, data, 1.0, 1e6, num_steps=50)
    assert len(lrs) == len(losses) < 50
    assert losses[-1] > 4 * losses.min() or not np.isfinite(losses[-1])


def test_range_test_rejects_a_reversed_range():
    with pytest.raises(ValueError, match="lr_min=0.1, lr_max=0.01"):
        lr_range_test(tiny_net(), tiny_splits(), 0.1, 0.01)


# Networks and initialisation --------------------------------------------------------


def test_without_batch_norm_removes_only_batch_norm():
    net = tiny_net()
    before = [p.clone() for p in net.parameters()]
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    without_batch_norm(net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert [m for m in net.modules() if isinstance(m, nn.Conv2d)] == convs
    remaining = list(net.parameters())
    assert len(remaining) == len(before) - 2 * 2  # weight and bias per norm
    assert net(torch.rand(3, 1, 8, 8)).shape == (3, 10)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_plain_cnn_shapes(batch_norm):
    net = PlainCNN(depth=3, width=5, batch_norm=batch_norm)
    X = torch.rand(2, 1, 8, 8)
    assert net(X).shape == (2, 10)
    assert [tuple(Y.shape) for Y in net.feature_maps(X)] == [(2, 5, 8, 8)] * 3
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert norms == (3 if batch_norm else 0)


def test_plain_cnn_rejects_zero_depth():
    with pytest.raises(ValueError, match="got 0 and 16"):
        PlainCNN(depth=0)


@pytest.mark.parametrize("gain", [0.25, 1.0, 4.0])
def test_initialise_draws_with_the_he_spread_times_gain(gain):
    torch.manual_seed(0)
    net = initialise(PlainCNN(depth=2, width=64), gain)
    conv = net.blocks[1][0]  # 64 × 64 × 3 × 3 weights: a precise estimate
    expected = gain * math.sqrt(2 / (64 * 9))
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.02)
    assert abs(conv.weight.mean().item()) < 0.02 * expected
    assert all(
        torch.all(m.bias == 0)
        for m in net.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    )


@pytest.mark.parametrize("gain", [0, -1.0])
def test_initialise_rejects_a_non_positive_gain(gain):
    with pytest.raises(ValueError, match=f"gain must be positive, got {gain}"):
        initialise(PlainCNN(depth=1), gain)


def test_batch_norm_cancels_the_weight_scale():
    """The chapter's reason why the activations stop depending on the
    initialisation: the same weights times a gain, once normalised, give the
    same outputs, up to the epsilon inside the normalisation."""
    X, y = torch.rand(32, 1, 8, 8), torch.arange(32) % 10
    stats = []
    for gain in (0.25, 1.0, 4.0):
        torch.manual_seed(0)  # the same draws, scaled by gain
        net = initialise(PlainCNN(depth=4, batch_norm=True), gain)
        stats.append(layer_statistics(net, X, y)["activation_std"])
    np.testing.assert_allclose(stats[0], stats[1], rtol=1e-3)
    np.testing.assert_allclose(stats[2], stats[1], rtol=1e-3)
    # Without the normalisation, four layers multiply the gain up.
    plain = []
    for gain in (1.0, 4.0):
        torch.manual_seed(0)
        net = initialise(PlainCNN(depth=4), gain)
        plain.append(layer_statistics(net, X, y)["activation_std"][-1])
    assert plain[1] / plain[0] == pytest.approx(4**4, rel=1e-3)


def test_layer_statistics_per_block():
    X, y = torch.rand(16, 1, 8, 8), torch.arange(16) % 10
    stats = layer_statistics(PlainCNN(depth=5), X, y)
    assert len(stats["activation_std"]) == len(stats["gradient_std"]) == 5
    small = layer_statistics(SmallCNN(image_size=8), X, y)  # pools first
    assert len(small["gradient_std"]) == 3


# The chapter's claims: part 1 (shifted digits, 50 per class) ---------------------
# Validation accuracies are on 270 images, test accuracies on 450; ± in the prose
# is the sample standard deviation over seeds.

NUM_VAL, NUM_TEST = 270, 450


def paired_se(correct_a, correct_b):
    """The standard error of mean accuracy(a) - mean accuracy(b), both scored
    on the same images: the seed spread of each mean, and the sampling error
    of the per-image difference (what a bootstrap over the images gives)."""
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    per_image = a.mean(axis=0) - b.mean(axis=0)  # (N,)
    seeds = sample_sd(a.mean(axis=1)) ** 2 / len(a)
    seeds += sample_sd(b.mean(axis=1)) ** 2 / len(b)
    return math.sqrt(seeds + per_image.var(ddof=1) / per_image.size)


@pytest.fixture(scope="module")
def part1(results):
    return results["training_well"]


def test_the_split_sizes(part1):
    assert part1["num_train"] == 10 * part1["per_class"] == 500
    assert part1["num_val"] == NUM_VAL and part1["num_test"] == NUM_TEST


def test_an_epoch_is_near_equal_batches_with_no_remainder_dropped(part1):
    """The chapter: an epoch is steps_per_epoch mini-batches of
    batch_size_smallest or batch_size_largest images, all of them used."""
    steps = part1["steps_per_epoch"]
    small, large = part1["batch_size_smallest"], part1["batch_size_largest"]
    assert steps == part1["num_train"] // 64
    assert large - small <= 1
    assert small * steps <= part1["num_train"] <= large * steps
    # the running average lags about ten mini-batches: "more than an epoch"
    assert steps < 10


def test_the_table_takes_each_seed_at_its_chosen_epoch(part1):
    """The curves' caption: the table's means, at each seed's chosen epoch,
    can lie above the mean curve's last point; they do for augmentation."""
    assert part1["augmented_val_mean"] >= part1["augmented_val_curve"][-1] - 1e-9


def test_without_augmentation_the_network_overfits(part1, claim):
    """The chapter: (nearly) every training image right, far fewer validation
    ones."""
    train, val = part1["plain_train_by_seed"], part1["plain_val_by_seed"]
    claim.exceeds(
        "plain: training accuracy far above validation accuracy",
        np.mean(train) - np.mean(val),
        math.hypot(mean_se(train), mean_se(val, NUM_VAL)),
    )


def test_validation_loss_has_not_turned_back_up(part1, claim):
    """The chapter: within 20 epochs the mean validation loss does not turn
    back up; its last value is its lowest, within the seed spread."""
    last = part1["plain_val_loss_last_by_seed"]
    claim.within(
        "the validation loss has not turned back up by the last epoch",
        part1["plain_val_loss_last"] - part1["plain_val_loss_lowest"],
        mean_se(last),
    )
    # quoted as "every plain run's lowest comes at epoch N or later", and
    # read as the budget choosing the epoch: N within the last three epochs
    earliest = part1["plain_best_epoch_earliest"]
    assert earliest == min(part1["plain_best_epochs"])
    assert earliest >= part1["num_epochs"] - 2


def test_augmentation_beats_no_augmentation(part1, claim):
    se = paired_se(part1["augmented_val_correct"], part1["plain_val_correct"])
    assert part1["augmentation_gain_se"] == pytest.approx(se)  # the prose's
    claim.exceeds(
        "random shifts raise the validation accuracy",
        part1["augmented_val_mean"] - part1["plain_val_mean"],
        se,
    )


def test_augmented_training_accuracy_ends_lower(part1, claim):
    plain, augmented = part1["plain_train_by_seed"], part1["augmented_train_by_seed"]
    claim.exceeds(
        "with random shifts the training accuracy ends lower",
        np.mean(plain) - np.mean(augmented),
        math.hypot(mean_se(plain), mean_se(augmented)),
    )


def test_validation_chooses_augmentation_and_the_test_agrees(part1, claim):
    assert part1["choice"] == "augmented"
    test, val = part1["test_by_seed"], part1["augmented_val_by_seed"]
    claim.within(
        "the test score agrees with the validation score, within sampling error",
        np.mean(test) - np.mean(val),
        math.hypot(mean_se(test, NUM_TEST), mean_se(val, NUM_VAL)),
    )


def test_batch_statistics_explain_the_first_epochs(part1, claim):
    """The chapter: in the first epochs the validation accuracy (evaluation
    mode, running statistics) sits near chance while the same net, normalised
    with the validation batch's own statistics, already scores far higher."""
    early = slice(0, part1["early_epochs"])
    running = np.mean(part1["plain_val_curve"][early])
    batch = np.array(part1["plain_batch_stat_val_by_seed"])[:, early].mean(axis=1)
    claim.exceeds(
        "early on, batch statistics score far above the running statistics",
        batch.mean() - running,
        mean_se(batch, NUM_VAL),
    )
    # "Once the running averages catch up, the two agree": the last epoch.
    last_batch = np.array(part1["plain_batch_stat_val_by_seed"])[:, -1]
    claim.within(
        "by the last epoch, the two modes agree",
        last_batch.mean() - part1["plain_val_curve"][-1],
        mean_se(last_batch, NUM_VAL),
    )


def test_choosing_on_the_test_set_flatters_it(part1, claim):
    """The chapter: a choice made on half the test set scores higher there
    than on the other half, on average. The gap per seed is already averaged
    over 500 random halvings; its spread over seeds is its uncertainty here."""
    gaps = part1["selection_gaps"]
    claim.exceeds(
        "chosen on half the test set, a candidate scores higher on that half",
        np.mean(gaps),
        mean_se(gaps),
    )
    assert part1["half_test"] == NUM_TEST // 2
    # the candidates, the last epochs of each run, include every network
    # validation chose: the chapter compares the two
    assert part1["num_candidates"] == 2 * part1["peek_epochs"]
    assert min(part1["augmented_best_epochs"]) >= part1["peek_first_epoch"]


# Part 2: the learning rate -------------------------------------------------------


@pytest.fixture(scope="module")
def lr(results):
    return results["training_well_lr"]


def sweep_runs(lr, name, rate):
    """Each seed's validation accuracy at one rate of the sweep."""
    return lr[f"{name}_by_seed"][lr["lrs"].index(rate)]


def test_the_best_learning_rate_is_inside_the_sweep(lr):
    for name in ("bn", "plain"):
        assert lr["lr_lowest"] < lr[f"{name}_best_lr"] < lr["lr_highest"]


def test_both_ends_of_the_sweep_fail(lr, claim):
    """The chapter: the lowest rate has not got far in 4 epochs and the
    highest is unstable, with and without batch normalisation."""
    for name in ("bn", "plain"):
        best = sweep_runs(lr, name, lr[f"{name}_best_lr"])
        for end in ("lowest", "highest"):
            runs = sweep_runs(lr, name, lr[f"lr_{end}"])
            claim.exceeds(
                f"{name}: the {end} rate scores below the best",
                np.mean(best) - np.mean(runs),
                difference_se(best, runs, NUM_VAL),
            )


def test_batch_norm_leads_at_every_rate_up_to_the_one_quoted(lr, claim):
    """The snippet chose bn_leads_up_to: the largest rate up to which the
    lead is at least twice its standard error at every rate."""
    up_to = lr["bn_leads_up_to"]
    assert up_to >= 1e-2
    for rate in lr["lrs"]:
        bn, plain = sweep_runs(lr, "bn", rate), sweep_runs(lr, "plain", rate)
        effect = np.mean(bn) - np.mean(plain)
        uncertainty = difference_se(bn, plain, NUM_VAL)
        if rate <= up_to:
            claim.exceeds(f"batch norm leads at lr {rate}", effect, uncertainty)
        elif rate == lr["lrs"][lr["lrs"].index(up_to) + 1]:
            assert effect < 2 * uncertainty  # the quoted rate is the last


def test_batch_norm_forgives_a_rate_far_below_the_best(lr, claim):
    low = lr["low_rate"]
    bn, plain = sweep_runs(lr, "bn", low), sweep_runs(lr, "plain", low)
    claim.exceeds(
        f"at {low} batch norm scores far above the network without it",
        np.mean(bn) - np.mean(plain),
        difference_se(bn, plain, NUM_VAL),
    )
    assert low <= min(lr["bn_best_lr"], lr["plain_best_lr"]) / 3  # "far below"


def test_range_test_suggestions_and_the_sweep(lr, claim):
    """The chapter quotes how many seeds' suggestions land on a sweep point
    with no clear difference from the sweep's best (the snippet's verdict);
    each seed is checked here with the same rule."""
    for name in ("bn", "plain"):
        best = sweep_runs(lr, name, lr[f"{name}_best_lr"])
        near = 0
        for seed, index in enumerate(lr[f"{name}_nearest_index"]):
            runs = sweep_runs(lr, name, lr["lrs"][index])
            effect = np.mean(best) - np.mean(runs)
            uncertainty = difference_se(best, runs, NUM_VAL)
            if effect <= 2 * uncertainty:
                near += 1
                what = f"{name}, seed {seed}: suggestion's score is near the best"
                claim.within(what, effect, uncertainty)
            else:
                what = f"{name}, seed {seed}: suggestion's score is below the best"
                claim.exceeds(what, effect, uncertainty)
        assert near == lr[f"{name}_near_best_count"]


def test_the_top_of_the_sweep_is_flat_where_the_chapter_says(lr, claim):
    """The chapter: every rate from {name}_flat_lowest to {name}_flat_highest
    shows no clear difference from the best (so any suggestion there passes
    the check), the rates outside it do, and the top is narrower without
    batch normalisation."""
    span = {}
    for name in ("bn", "plain"):
        low, high = lr[f"{name}_flat_lowest"], lr[f"{name}_flat_highest"]
        best = sweep_runs(lr, name, lr[f"{name}_best_lr"])
        for rate in lr["lrs"]:
            if rate == lr[f"{name}_best_lr"]:
                continue
            runs = sweep_runs(lr, name, rate)
            effect = np.mean(best) - np.mean(runs)
            uncertainty = difference_se(best, runs, NUM_VAL)
            if low <= rate <= high:
                claim.within(
                    f"{name}: lr {rate} no clear difference from the best",
                    effect,
                    uncertainty,
                )
            else:
                claim.exceeds(
                    f"{name}: lr {rate} clearly below the best", effect, uncertainty
                )
        span[name] = lr["lrs"].index(high) - lr["lrs"].index(low)
    assert span["plain"] < span["bn"]
    # the farthest a suggestion's nearest point falls below the best, as quoted
    worst = int(np.argmax(lr["plain_shortfalls"]))
    assert lr["plain_worst_shortfall"] == pytest.approx(lr["plain_shortfalls"][worst])
    assert lr["plain_worst_shortfall_se"] == pytest.approx(
        lr["plain_shortfall_ses"][worst]
    )


def test_range_test_costs_a_fraction_of_the_sweep(lr):
    assert lr["range_cost_share"] < 0.25


# Part 3: initialisation and batch normalisation --------------------------------------


@pytest.fixture(scope="module")
def init(results):
    return results["training_well_init"]


def runs(init, key):
    return init[f"{key}_val_by_seed"]


def test_pytorch_default_is_he_scaled_down(init):
    """PyTorch's default draws weights with a sixth of He's variance."""
    assert init["default_gain"] == pytest.approx(1 / math.sqrt(6), rel=0.05)


def test_the_activations_vanish_or_explode_with_a_wrong_scale(init):
    assert init["small_act_ratio"] < 1e-3
    assert init["large_act_ratio"] > 1e3
    assert 0.25 < init["he_act_ratio"] < 4  # roughly level
    assert init["default_act_ratio"] < init["he_act_ratio"]


def test_the_default_biases_keep_its_signal_alive(init):
    """Zero the default's biases and its outputs shrink by about its gain
    (0.41) per layer, as the formula says; with them, far less."""
    expected = init["he_act_ratio"] * init["default_gain"] ** 7
    assert init["default_zero_bias_act_ratio"] == pytest.approx(expected, rel=1.0)
    assert init["default_act_ratio"] > 30 * init["default_zero_bias_act_ratio"]


def test_a_gain_multiplies_the_signal_once_per_layer(init):
    """Seven layers lie between the first output and the eighth; the same
    draws scaled by 4 or by 1/4, no biases: the ratio scales by 4 ** ±7."""
    assert init["large_act_ratio"] / init["he_act_ratio"] == pytest.approx(
        4**7, rel=1e-3
    )
    assert init["small_act_ratio"] / init["he_act_ratio"] == pytest.approx(
        4**-7, rel=1e-3
    )


def test_the_gradients_follow(init):
    assert init["small_grad_first"] < 1e-5 < init["he_grad_first"]
    assert init["large_grad_first"] > 1000 * init["he_grad_first"]
    # PyTorch's default: the first layer's gradient far below the last's.
    assert init["default_grad_first"] < init["default_grad_last"] / 10
    # The prose: He ÷ 4 and He × 4 are each about two to three times further
    # from He than the 4**8 of eight convolutions and the classifier.
    for ratio in (
        init["large_grad_first"] / init["he_grad_first"],
        init["he_grad_first"] / init["small_grad_first"],
    ):
        assert 1.5 * 4**8 < ratio < 4 * 4**8
    # quoted in units of 4 ** 8 ("each lies further than the 4 ** 8")
    assert init["small_grad_excess"] == pytest.approx(
        init["he_grad_first"] / init["small_grad_first"] / 4**8
    )
    assert init["large_grad_excess"] == pytest.approx(
        init["large_grad_first"] / init["he_grad_first"] / 4**8
    )
    assert min(init["small_grad_excess"], init["large_grad_excess"]) > 1


def test_without_batch_norm_he_trains_best(init, claim):
    he = runs(init, "he")
    for other in ("default", "small", "large"):
        claim.exceeds(
            f"without batch norm, He beats {other}",
            np.mean(he) - np.mean(runs(init, other)),
            difference_se(he, runs(init, other), NUM_VAL),
        )
    # He × 4's scores start so large that the loss is in the thousands.
    assert init["large_first_loss"] > 1000


def test_the_first_loss_sanity_check(init):
    """The chapter: He and the default start near ln 10, the loss of an even
    guess among ten classes (first-epoch means, so a little below); He x 4
    does not."""
    for key in ("he", "default"):
        assert math.log(10) - 0.5 < init[f"{key}_first_loss"] < math.log(10) + 0.1
    assert init["large_first_loss"] > 100 * math.log(10)


def test_with_batch_norm_the_scale_no_longer_reaches_the_activations(init):
    assert init["bn_scale_difference"] < 1e-3
    for key in ("default", "he", "small", "large"):
        assert 0.5 < init[f"{key}_bn_act_ratio"] < 2


def test_batch_norm_rescues_training(init, claim):
    for key in ("small", "default", "large"):
        with_bn, without = runs(init, f"{key}_bn"), runs(init, key)
        claim.exceeds(
            f"batch norm raises {key}'s validation accuracy",
            np.mean(with_bn) - np.mean(without),
            difference_se(with_bn, without, NUM_VAL),
        )


def test_with_batch_norm_he_no_longer_leads(init, claim):
    """The chapter: with batch normalisation, He is no longer ahead of the
    default or He / 4. Either they beat it clearly, or there is no clear
    difference; a clear lead for He fails the sentence."""
    he = runs(init, "he_bn")
    for other in ("default", "small"):
        effect = np.mean(runs(init, f"{other}_bn")) - np.mean(he)
        uncertainty = difference_se(runs(init, f"{other}_bn"), he, NUM_VAL)
        if effect >= 2 * uncertainty:
            claim.exceeds(f"with batch norm, {other} beats He", effect, uncertainty)
        else:
            what = f"with batch norm, no clear difference between {other} and He"
            claim.within(what, effect, uncertainty)


def test_with_batch_norm_the_large_initialisation_still_lags(init, claim):
    large = runs(init, "large_bn")
    for other in ("default", "he", "small"):
        claim.exceeds(
            f"with batch norm, He x 4 lags {other}",
            np.mean(runs(init, f"{other}_bn")) - np.mean(large),
            difference_se(runs(init, f"{other}_bn"), large, NUM_VAL),
        )
    assert init["large_bn_first_loss"] > 3 * init["he_bn_first_loss"]


# The table "What each choice changed" ----------------------------------------------


def test_every_row_of_the_table_leads_by_twice_its_standard_error(results, claim):
    part1, lr, init = (
        results["training_well"],
        results["training_well_lr"],
        results["training_well_init"],
    )
    rows = [
        (
            "augmentation",
            part1["augmented_val_mean"] - part1["plain_val_mean"],
            paired_se(part1["augmented_val_correct"], part1["plain_val_correct"]),
        ),
        ("learning rate", *gap(lr, "bn", lr["bn_best_lr"], lr["lr_highest"])),
        ("initialisation", *gap_init(init, "he", "default")),
        ("batch norm, CNN", *gap_bn_cnn(lr)),
        ("batch norm, eight layers", *gap_init(init, "default_bn", "default")),
    ]
    for name, effect, uncertainty in rows:
        claim.exceeds(
            f"table row {name}: the better setting leads", effect, uncertainty
        )


def gap(lr, name, better, worse):
    a, b = sweep_runs(lr, name, better), sweep_runs(lr, name, worse)
    return np.mean(a) - np.mean(b), difference_se(a, b, NUM_VAL)


def gap_init(init, better, worse):
    a, b = runs(init, better), runs(init, worse)
    return np.mean(a) - np.mean(b), difference_se(a, b, NUM_VAL)


def gap_bn_cnn(lr):
    a = sweep_runs(lr, "bn", lr["bn_best_lr"])
    b = sweep_runs(lr, "plain", lr["plain_best_lr"])
    return np.mean(a) - np.mean(b), difference_se(a, b, NUM_VAL)
