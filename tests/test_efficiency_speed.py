"""Chapter 10: what the benchmark's recorded timings must show.

Timings vary with the machine and its load. The snippet times every layer
in interleaved rounds and records every call, so that each claim is checked
on the median of paired ratios against the spread of the rounds; where the
answer depends on the processor, the snippet records the words the prose
uses, and the tests check that they match the numbers.
"""

import numpy as np
import pytest
from efficiency_ops import compare, interleaved_times, speed_ratio


@pytest.fixture(scope="module")
def speed(results):
    return results["efficiency_speed"]


def test_everything_ran_on_one_thread(speed):
    assert speed["torch_threads"] == 1


def test_the_flop_counts_follow_the_formulas(speed):
    N, size = speed["batch_size"], speed["size"]
    assert (N, size, speed["kernel_size"], speed["groups"]) == (8, 32, 3, 8)
    for C, standard, grouped, separable in zip(
        speed["channels"],
        speed["mflop_standard"],
        speed["mflop_grouped"],
        speed["mflop_separable"],
    ):
        pixels = N * size * size
        assert standard * 1e6 == pytest.approx(2 * pixels * C * C * 9)
        assert grouped == pytest.approx(standard / 8)
        assert separable * 1e6 == pytest.approx(2 * pixels * (9 * C + C * C))


def test_the_widths_the_prose_names(speed):
    # "16 to 256 channels", "1024 × 1024", typed in the prose
    assert (speed["smallest"], speed["largest"]) == (16, 256)
    assert speed["matmul_size"] == 1024


def times(speed, C):
    """Every recorded call of every layer at width C, in seconds."""
    return {name: np.array(ms) / 1e3 for name, ms in speed[f"c{C}_times_ms"].items()}


def test_every_layer_was_timed_in_every_round(speed):
    for C in speed["channels"]:
        found = times(speed, C)
        assert all(len(t) == speed["rounds"] >= 20 for t in found.values())
        median = np.median(found["standard"]) * 1e3
        assert median == pytest.approx(speed[f"c{C}_ms_standard"])


def test_speed_ratio_and_its_uncertainty():
    fast = np.full(40, 1.0)
    ratio, se = speed_ratio(2 * fast, fast)
    assert ratio == pytest.approx(2) and se > 0
    rng = np.random.default_rng(0)
    noisy = np.exp(rng.normal(0, 0.2, 400))
    ratio, se = speed_ratio(3 * noisy, np.ones(400))
    assert ratio == pytest.approx(3, rel=0.05)
    assert se == pytest.approx(1.2533 * 0.2 / 20, rel=0.2)  # of a median
    assert compare(ratio, se) == "faster than"
    assert compare(1 / ratio, se) == "slower than"
    assert compare(1.001, se) == "about as fast as"
    with pytest.raises(ValueError, match="rounds must be an int of at least 3"):
        interleaved_times({"a": lambda: None}, rounds=2)


def test_neither_layer_saves_as_much_time_as_it_saves_flops(speed, claim):
    """The prose: 'at no width'; the figure: solid lines below dashed ones."""
    for i, C in enumerate(speed["channels"]):
        found = times(speed, C)
        for name in ("grouped", "separable"):
            saving, se = speed_ratio(found["standard"], found[name])
            claim.exceeds(
                f"{name} at {C} channels saves less time than FLOPs (log ratio)",
                effect=np.log(speed[f"flop_saving_{name}"][i] / saving),
                uncertainty=se,
            )


def test_the_words_for_the_grouped_layer_at_16_channels(speed, claim):
    """The prose quotes the recorded verdict: grouped against standard."""
    found = times(speed, speed["smallest"])
    ratio, se = speed_ratio(found["standard"], found["grouped"])
    verdict = speed["grouped_vs_standard"]
    assert verdict == compare(ratio, se)
    state(claim, f"grouped at 16 channels ran {verdict} standard", verdict, ratio, se)
    # Either way, two channels per group is far from the standard's speed
    # per FLOP: eight times fewer FLOPs saved less than half of that.
    saving = speed["c16_flop_saving_grouped"]
    claim.exceeds(
        "grouped at 16 channels: time saved under half the FLOP saving",
        effect=np.log(saving / 2 / ratio),
        uncertainty=se,
    )


def state(claim, what, verdict, ratio, se):
    """A recorded verdict as a claim row: "faster" or "slower" must clear two
    standard errors of the log ratio, "about as fast as" stay within them."""
    if verdict == "about as fast as":
        claim.within(what, effect=np.log(ratio), uncertainty=se)
    else:
        claim.exceeds(what, effect=abs(np.log(ratio)), uncertainty=se)


def test_the_depthwise_part_is_slow_per_flop(speed, claim):
    """The prose: far below the standard layer's GFLOP/s at every width, and
    at 256 channels a few per cent of the separable layer's FLOPs but a
    large share of its time."""
    for C in speed["channels"]:
        found = times(speed, C)
        flops = {
            name: speed[f"mflop_{name}"][speed["channels"].index(C)]
            for name in ("standard", "depthwise")
        }
        slowdown, se = speed_ratio(
            found["depthwise"] / flops["depthwise"],
            found["standard"] / flops["standard"],
        )
        claim.exceeds(
            f"depthwise at {C} channels over twice slower per FLOP (log)",
            effect=np.log(slowdown / 2),
            uncertainty=se,
        )
    C = speed["largest"]
    found = times(speed, C)
    at = speed["channels"].index(C)
    flops = {name: speed[f"mflop_{name}"][at] for name in ("standard", "depthwise")}
    slowdown, se = speed_ratio(
        found["depthwise_cl"] / flops["depthwise"],
        found["standard_cl"] / flops["standard"],
    )
    assert slowdown == pytest.approx(speed["c256_depthwise_slowdown_cl"])
    claim.exceeds(
        "depthwise at 256 in channels-last: still over twice slower per FLOP (log)",
        effect=np.log(slowdown / 2),
        uncertainty=se,
    )
    assert speed["c256_depthwise_flop_share"] == pytest.approx(9 / (9 + 256))
    share, se = speed_ratio(found["depthwise"], found["separable"])
    claim.exceeds(
        "depthwise at 256: its time share over 3x its FLOP share (log)",
        effect=np.log(share / (3 * speed["c256_depthwise_flop_share"])),
        uncertainty=se,
    )


def test_the_words_for_the_standard_layer_against_the_matrix_product(speed, claim):
    """The prose and the alt text quote the recorded verdict; on one CPU the
    convolution outruns the 1024 × 1024 product, on another not."""
    found = times(speed, speed["largest"])
    i = speed["channels"].index(speed["largest"])
    ratio, se = speed_ratio(
        found["matmul"] / (2 * speed["matmul_size"] ** 3),
        found["standard"] / (speed["mflop_standard"][i] * 1e6),
    )
    verdict = speed["standard_vs_matmul"]
    assert verdict == compare(ratio, se)
    assert ratio == pytest.approx(speed["standard_over_matmul"])
    state(claim, f"standard at 256: {verdict} the matrix product", verdict, ratio, se)


def test_the_depthwise_layer_is_not_held_back_by_memory(speed, claim):
    """The prose: a copy of the same map moves its bytes far faster than the
    depthwise layer does (over twice: the ratio was 4.1 on a quiet clean
    clone, so a fourfold bound sat inside the noise)."""
    found = times(speed, speed["largest"])
    ratio, se = speed_ratio(found["depthwise"], found["copy"])
    claim.exceeds(
        "depthwise at 256 takes over twice as long as copying its map (log)",
        effect=np.log(ratio / 2),
        uncertainty=se,
    )


def test_the_words_for_the_separable_layers_two_parts(speed, claim):
    """The prose and the Summary: which part took longer at each width, the
    widths where the depthwise part did, and the pointwise part's speed per
    FLOP against the standard layer's, all chosen from the rounds."""
    words = (
        "the pointwise part took longer",
        "the two parts took about as long",
        "the depthwise part took longer",
    )
    longer = []
    for C, verdict in zip(speed["channels"], speed["longer_part"]):
        found = times(speed, C)
        ratio, se = speed_ratio(found["depthwise"], found["pointwise"])
        assert verdict == compare(ratio, se, words)
        state(claim, f"at {C} channels {verdict}", words_as(verdict), ratio, se)
        longer += [str(C)] if verdict == words[2] else []
    assert speed["c256_longer_part"] == speed["longer_part"][-1]
    expected = (
        f"{', '.join(longer[:-1])} and {longer[-1]}"
        if len(longer) > 1
        else (longer[0] if longer else "none of the widths")
    )
    assert speed["depthwise_longer_widths"] == expected
    found = times(speed, speed["largest"])
    i = speed["channels"].index(speed["largest"])
    ratio, se = speed_ratio(
        found["standard"] / speed["mflop_standard"][i],
        found["pointwise"] / speed["mflop_pointwise"][i],
    )
    verdict = speed["pointwise_vs_standard"]
    assert verdict == compare(ratio, se)
    state(
        claim, f"pointwise at 256 ran {verdict} standard per FLOP", verdict, ratio, se
    )


def words_as(verdict):
    """A verdict of the three-word kind, as compare's default words."""
    return "about as fast as" if "about" in verdict else "faster than"


def test_the_memory_layout_comparison(speed, claim):
    """The prose's table and the Summary: each widest layer in the default
    layout against channels-last, in the same rounds, with words chosen from
    the rounds; "as it did here": the depthwise part ran faster in
    channels-last; and in both layouts the separable layer saved far less
    time than FLOPs."""
    found = times(speed, speed["largest"])
    for name in ("standard", "separable", "depthwise", "pointwise"):
        ratio, se = speed_ratio(found[name], found[f"{name}_cl"])
        assert ratio == pytest.approx(speed[f"layout_ratio_{name}"])
        verdict = speed[f"layout_words_{name}"]
        words = (
            "slower in channels-last",
            "about as fast in either layout",
            "faster in channels-last",
        )
        assert verdict == compare(ratio, se, words)
        state(claim, f"{name} at 256: {verdict}", words_as(verdict), ratio, se)
    assert speed["layout_words_depthwise"] == "faster in channels-last"
    flop_saving = speed["c256_flop_saving_separable"]
    for suffix, layout in (("", "default"), ("_cl", "channels-last")):
        saving, se = speed_ratio(
            found[f"standard{suffix}"], found[f"separable{suffix}"]
        )
        claim.exceeds(
            f"separable at 256, {layout} layout: less time saved than FLOPs (log)",
            effect=np.log(flop_saving / saving),
            uncertainty=se,
        )


def test_the_machine_is_described(speed):
    """The warning box names the processor, its vector instructions and
    PyTorch's code path; the oneDNN log names the depthwise kernels."""
    assert speed["cpu_model"] and speed["cpu_vector_isa"]
    assert speed["torch_cpu_capability"] and speed["torch_version"]
    # "No such algorithm ran here": a direct convolution behind the rate.
    assert speed["standard_algorithm"] == "direct"
    for layout in ("default", "channels_last"):
        log = speed[f"depthwise_log_{layout}"]
        reorders = sum(line.startswith("reorder") for line in log)
        assert speed[f"depthwise_reorders_{layout}"] == reorders
