"""Chapter 5: conv2d from scratch against torch, its errors, its gradient."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conv_scratch_ops import (
    conv2d,
    conv2d_backward,
    conv2d_loops,
    conv_output_size,
    im2col,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

IMPLEMENTATIONS = [conv2d, conv2d_loops]
TIGHT = dict(rtol=1e-12, atol=1e-12)  # float64 sums of at most 18 products
# torch warns that "same" padding with an even kernel copies the input.
SAME_WARNING = "ignore:Using padding='same'"
PROPERTY = settings(max_examples=80, deadline=None)


def int_or_pair(low, high):
    values = st.integers(low, high)
    return st.one_of(values, st.tuples(values, values))


def as_pair(value):
    return value if isinstance(value, tuple) else (value, value)


@st.composite
def conv_cases(draw):
    """Random but valid conv2d arguments, small enough to be quick."""
    groups = draw(st.integers(1, 3))
    C_in = groups * draw(st.integers(1, 2))
    C_out = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dilation = draw(int_or_pair(1, 2))
    padding = draw(st.one_of(int_or_pair(0, 2), st.sampled_from(["valid", "same"])))
    stride = 1 if padding == "same" else draw(int_or_pair(1, 3))
    pads = {"valid": 0, "same": 0}.get(padding, padding)
    sizes = []
    for k, d, p in zip((kh, kw), as_pair(dilation), as_pair(pads)):
        smallest = max(1, d * (k - 1) + 1 - 2 * p)  # the kernel must fit
        sizes.append(draw(st.integers(smallest, smallest + 6)))
    batch = draw(st.sampled_from([(), (1,), (2,)]))  # () is unbatched
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return dict(
        x=rng.standard_normal((*batch, C_in, *sizes)),
        weight=rng.standard_normal((C_out, C_in // groups, kh, kw)),
        bias=rng.standard_normal(C_out) if draw(st.booleans()) else None,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )


def torch_conv2d(x, weight, bias=None, **settings):
    tensors = [None if a is None else torch.from_numpy(a) for a in (x, weight, bias)]
    return F.conv2d(*tensors, **settings).numpy()


# The operation


@pytest.mark.filterwarnings(SAME_WARNING)
@PROPERTY
@given(case=conv_cases())
def test_both_implementations_match_torch(case):
    expected = torch_conv2d(**case)
    for conv in IMPLEMENTATIONS:
        Y = conv(**case)
        assert Y.shape == expected.shape
        np.testing.assert_allclose(Y, expected, **TIGHT)


@PROPERTY
@given(
    size=st.integers(1, 40),
    k=st.integers(1, 7),
    stride=st.integers(1, 5),
    padding=st.integers(0, 3),
    dilation=st.integers(1, 4),
)
def test_output_size_formula_matches_torch_shapes(size, k, stride, padding, dilation):
    if dilation * (k - 1) + 1 > size + 2 * padding:
        return  # the kernel does not fit: an error, tested below
    x, K = torch.zeros(1, 1, size, 1), torch.zeros(1, 1, k, 1)
    Y = F.conv2d(x, K, stride=(stride, 1), padding=(padding, 0), dilation=dilation)
    assert conv_output_size(size, k, stride, padding, dilation) == Y.shape[2]


def test_float32_input_stays_float32():
    x = np.ones((1, 2, 5, 5), np.float32)
    K = np.ones((3, 2, 3, 3), np.float32)
    assert conv2d(x, K).dtype == np.float32
    assert conv2d_loops(x, K).dtype == np.float32


def test_conv2d_is_cross_correlation_and_the_flip_gives_convolution():
    rng = np.random.default_rng(0)
    image, K = rng.standard_normal((9, 7)), rng.standard_normal((3, 3))
    correlated = conv2d(image[None], K[None, None], padding=1)[0]
    flipped = K[::-1, ::-1].copy()[None, None]
    convolved = conv2d(image[None], flipped, padding=1)[0]
    np.testing.assert_allclose(
        correlated, signal.correlate2d(image, K, mode="same"), **TIGHT
    )
    np.testing.assert_allclose(
        convolved, signal.convolve2d(image, K, mode="same"), **TIGHT
    )
    assert not np.allclose(correlated, convolved)  # K is not symmetric


def test_im2col_columns_are_the_windows():
    x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    cols = im2col(x, (3, 3))[0]
    assert cols.shape == (9, 4)
    np.testing.assert_array_equal(cols[:, 0], x[0, 0, :3, :3].ravel())
    np.testing.assert_array_equal(cols[:, 3], x[0, 0, 1:, 1:].ravel())
    strided = im2col(x, (2, 2), stride=(2, 2), dilation=(1, 1))[0]
    np.testing.assert_array_equal(strided[:, 3], [11, 12, 15, 16])


# Bad input

X = np.zeros((2, 4, 8, 8))
K = np.zeros((6, 4, 3, 3))
BAD_INPUTS = [
    (
        dict(x=X, weight=np.zeros((6, 3, 3, 3))),
        r"input of shape \(2, 4, 8, 8\) has 4 channels, but weight of shape "
        r"\(6, 3, 3, 3\) with groups=1 expects 3",
    ),
    (
        dict(x=X, weight=np.zeros((6, 1, 3, 3)), groups=2),
        r"weight of shape \(6, 1, 3, 3\) with groups=2 expects 2",
    ),
    (
        dict(x=X, weight=np.zeros((5, 2, 3, 3)), groups=2),
        r"weight of shape \(5, 2, 3, 3\) has 5 output channels, not divisible "
        r"by groups=2",
    ),
    (
        dict(x=np.zeros((1, 1, 2, 2)), weight=np.zeros((1, 1, 3, 3))),
        r"kernel of shape \(3, 3\) with dilation \(1, 1\) spans 3 × 3 pixels, "
        r"more than the padded input's 2 × 2 \(input shape \(1, 1, 2, 2\)",
    ),
    (
        dict(x=X, weight=K, dilation=5, padding=1),
        r"kernel of shape \(3, 3\) with dilation \(5, 5\) spans 11 × 11 pixels, "
        r"more than the padded input's 10 × 10",
    ),
    (
        dict(x=X, weight=K, stride=0),
        r"stride and dilation must be positive, got stride \(0, 0\)",
    ),
    (
        dict(x=X, weight=K, stride=(1, -2)),
        r"must be positive, got stride \(1, -2\)",
    ),
    (
        dict(x=X, weight=K, dilation=(0, 1)),
        r"must be positive, got stride \(1, 1\) and dilation \(0, 1\)",
    ),
    (
        dict(x=X, weight=np.zeros((4, 3, 3))),
        r"weight must be 4-D \(C_out, C_in / groups, kH, kW\) with no empty "
        r"axis, got shape \(4, 3, 3\)",
    ),
    (
        dict(x=X, weight=np.zeros((6, 4, 0, 3))),
        r"got shape \(6, 4, 0, 3\)",
    ),
    (
        dict(x=X, weight=K, padding="same", stride=2),
        r"padding='same' needs stride 1, got stride \(2, 2\)",
    ),
    (
        dict(x=np.zeros((8, 8)), weight=K),
        r"input must be \(N, C, H, W\) or \(C, H, W\), got shape \(8, 8\)",
    ),
    (
        dict(x=X, weight=K, bias=np.zeros(5)),
        r"bias must have shape \(6,\) for weight of shape \(6, 4, 3, 3\), "
        r"got \(5,\)",
    ),
    (
        dict(x=X, weight=K, padding="full"),
        r"padding must be an int, a pair, 'valid' or 'same', got 'full'",
    ),
    (dict(x=X, weight=K, padding=-1), r"padding must be >= 0, got \(-1, -1\)"),
    (
        dict(x=X, weight=K, stride=(1, 1, 1)),
        r"stride must be an int or a pair of ints, got \(1, 1, 1\)",
    ),
    (dict(x=X, weight=K, groups=0), r"groups must be a positive int, got 0"),
]


@pytest.mark.parametrize("conv", IMPLEMENTATIONS)
@pytest.mark.parametrize("arguments, message", BAD_INPUTS)
def test_bad_input_is_a_value_error_naming_it(conv, arguments, message):
    with pytest.raises(ValueError, match=message):
        conv(**arguments)


@pytest.mark.parametrize(
    "arguments, message",
    [case for case in BAD_INPUTS if "bias" not in case[0]],  # it takes none
)
def test_backward_checks_its_arguments_the_same_way(arguments, message):
    with pytest.raises(ValueError, match=message):
        conv2d_backward(np.zeros((2, 6, 6, 6)), **arguments)


def test_backward_names_a_wrong_gradient_shape():
    with pytest.raises(
        ValueError,
        match=r"grad_output has shape \(2, 6, 8, 8\), but conv2d's output has "
        r"shape \(2, 6, 6, 6\)",
    ):
        conv2d_backward(np.zeros((2, 6, 8, 8)), X, K)


# The gradient


@pytest.mark.filterwarnings(SAME_WARNING)
@settings(max_examples=60, deadline=None)
@given(case=conv_cases(), seed=st.integers(0, 2**32 - 1))
def test_backward_matches_autograd(case, seed):
    x, weight = (torch.tensor(case[k], requires_grad=True) for k in ("x", "weight"))
    bias = torch.zeros(len(weight), dtype=torch.float64, requires_grad=True)
    geometry = {k: case[k] for k in ("stride", "padding", "dilation", "groups")}
    Y = F.conv2d(x, weight, bias, **geometry)
    G = np.random.default_rng(seed).standard_normal(tuple(Y.shape))
    Y.backward(torch.from_numpy(G))
    grad_x, grad_weight, grad_bias = conv2d_backward(
        G, case["x"], case["weight"], **geometry
    )
    np.testing.assert_allclose(grad_x, x.grad.numpy(), **TIGHT)
    np.testing.assert_allclose(grad_weight, weight.grad.numpy(), **TIGHT)
    np.testing.assert_allclose(grad_bias, bias.grad.numpy(), **TIGHT)


@pytest.mark.parametrize(
    "size, k, stride, padding, dilation, groups",
    [(9, 3, 2, 0, 1, 1), (8, 3, 2, 1, 1, 2), (11, 2, 3, 1, 2, 1), (7, 3, 1, 1, 2, 3)],
)
def test_the_input_gradient_is_a_transposed_convolution(
    size, k, stride, padding, dilation, groups
):
    rng = np.random.default_rng(size)
    x = rng.standard_normal((2, 3 * groups, size, size + 1))
    K = rng.standard_normal((2 * groups, 3, k, k))
    geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    G = rng.standard_normal(conv2d(x, K, **geometry).shape)
    grad_x = conv2d_backward(G, x, K, **geometry)[0]
    shape = F.conv_transpose2d(
        torch.from_numpy(G), torch.from_numpy(K), **geometry
    ).shape
    missing = [a - b for a, b in zip(x.shape[2:], shape[2:])]  # the floor
    transposed = F.conv_transpose2d(
        torch.from_numpy(G), torch.from_numpy(K), output_padding=missing, **geometry
    )
    np.testing.assert_allclose(grad_x, transposed.numpy(), **TIGHT)


# What the chapter says about the snippet's results


def test_the_formula_agrees_with_every_real_shape(results):
    scratch = results["conv_scratch"]
    assert scratch["size_cases_checked"] > 1000
    assert scratch["size_mismatches"] == 0
    assert scratch["geometry_outputs"] == [3, 5, 2, 3]  # the four pictures
    assert scratch["floor_example_exact"] == 2.5
    assert scratch["floor_example_out"] == 2


def test_the_quoted_error_names_both_shapes(results):
    """The chapter quotes the channel-mismatch message the snippet printed."""
    message = results["conv_scratch"]["channel_error"]
    assert "(2, 4, 8, 8)" in message and "(6, 3, 3, 3)" in message
    assert "4 channels" in message and "expects 3" in message


def test_the_impulse_shows_the_flip(results):
    scratch = results["conv_scratch"]
    assert scratch["impulse_reproduces_flipped_kernel"]
    assert scratch["convolution_reproduces_kernel"]


def test_the_snippet_checks_agree_with_torch(results):
    scratch = results["conv_scratch"]
    for key in [
        "loops_demo_error",
        "check_error_vectorised",
        "check_error_loops",
        "gradient_error_x",
        "gradient_error_weight",
        "gradient_error_bias",
        "bias_gradient_convolution_error",
    ]:
        assert scratch[key] < 1e-12, key
    assert scratch["im2col_demo_shape"] == [9, 4]


def test_one_training_step_matches_torch_and_lowers_the_loss(results):
    scratch = results["conv_scratch"]
    assert scratch["step_weight_difference"] < 1e-12
    assert scratch["step_bias_difference"] < 1e-12
    assert scratch["step_loss_difference"] < 1e-12
    assert scratch["step_loss_after"] < scratch["step_loss_before"]


def test_padding_one_lets_a_corner_pixel_into_four_windows_and_an_inner_one_nine():
    """The chapter: with a 3 × 3 kernel and padding 1, border pixels still take
    part in fewer windows than inner ones. The input gradient of a sum over
    every output, with a kernel of ones, counts the windows reading each pixel."""
    x, K = np.zeros((1, 1, 6, 6)), np.ones((1, 1, 3, 3))
    counts = conv2d_backward(np.ones((1, 1, 6, 6)), x, K, padding=1)[0][0, 0]
    assert counts[0, 0] == 4
    assert counts[3, 3] == 9
    without_padding = conv2d_backward(np.ones((1, 1, 4, 4)), x, K)[0][0, 0]
    assert without_padding[0, 0] == 1


def test_the_one_by_one_convolution_is_a_matrix_product_per_pixel(results):
    scratch = results["conv_scratch"]
    assert scratch["one_by_one_shape"] == [2, 4, 5, 5]
    assert scratch["one_by_one_error"] < 1e-12


def test_the_alexnet_im2col_counts(results):
    scratch = results["conv_scratch"]
    assert scratch["alexnet_side"] == 55
    assert scratch["alexnet_column"] == 363
    assert scratch["alexnet_columns"] == 55 * 55
    assert scratch["alexnet_cols_numbers"] == 363 * 3025
    assert scratch["alexnet_blowup"] == pytest.approx(363 * 3025 / (3 * 227**2))


def test_im2col_stacks_the_channels_windows_channel_by_channel():
    x = np.arange(3 * 4 * 4, dtype=float).reshape(1, 3, 4, 4)
    column = im2col(x, (3, 3))[0][:, 0]  # the first window, all channels
    for c in range(3):
        window = x[0, c, :3, :3].ravel()
        np.testing.assert_array_equal(column[9 * c : 9 * (c + 1)], window)
    K = np.arange(27.0).reshape(1, 3, 3, 3)
    assert K.reshape(1, -1)[0] @ column == np.sum(K[0] * x[0, :, :3, :3])
