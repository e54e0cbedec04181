"""Chapter 5. A 2-D convolution in NumPy, forward and backward.

`conv2d` has the semantics of `torch.nn.functional.conv2d`; `conv2d_loops`
computes the same thing one output number at a time, for reading;
`conv2d_backward` gives the gradients, each computed as a convolution.
`race` times functions against each other. Both chapter 5 notebooks and
chapter 10 import this module.
"""

import time
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


# --8<-- [start:output-size]
def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    """Chapter 5. How many outputs fit along one axis of length size."""
    span = dilation * (kernel_size - 1) + 1  # the dilated kernel's footprint
    return (size + 2 * padding - span) // stride + 1  # // is the floor


# --8<-- [end:output-size]


# --8<-- [start:arguments]
@dataclass(frozen=True)
class Geometry:
    """Chapter 5. Where the kernel goes: checked and written out in full."""

    stride: tuple  # (rows, columns)
    dilation: tuple
    pads: tuple  # (top, bottom, left, right): "same" can be uneven
    out_size: tuple  # (H_out, W_out)
    groups: int


def _pair(value, name):
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")


def check_conv2d_arguments(x, weight, bias, stride, padding, dilation, groups):
    """Chapter 5. Validate conv2d's arguments as torch does, naming shapes.

    Returns the input as (N, C, H, W), the weight, the bias (zeros if None),
    the Geometry, and whether the input had a batch axis.
    """
    X, K = np.asarray(x), np.asarray(weight)
    dtype = np.result_type(X, K, np.float32)  # floats; float64 stays float64
    X, K = X.astype(dtype, copy=False), K.astype(dtype, copy=False)
    if K.ndim != 4 or 0 in K.shape:
        raise ValueError(
            "weight must be 4-D (C_out, C_in / groups, kH, kW) with no empty "
            f"axis, got shape {K.shape}"
        )
    if X.ndim not in (3, 4):
        raise ValueError(
            f"input must be (N, C, H, W) or (C, H, W), got shape {X.shape}"
        )
    shape, batched = X.shape, X.ndim == 4
    X = X if batched else X[None]
    C_out, C_group, kh, kw = K.shape
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    if C_out % groups:
        raise ValueError(
            f"weight of shape {K.shape} has {C_out} output channels, "
            f"not divisible by groups={groups}"
        )
    if X.shape[1] != C_group * groups:
        raise ValueError(
            f"input of shape {shape} has "
            f"{X.shape[1]} channels, but weight of shape {K.shape} with "
            f"groups={groups} expects {C_group * groups} (C_in / groups = "
            f"{C_group})"
        )
    b = np.zeros(C_out, dtype) if bias is None else np.asarray(bias, dtype)
    if b.shape != (C_out,):
        raise ValueError(
            f"bias must have shape ({C_out},) for weight of shape {K.shape}, "
            f"got {b.shape}"
        )
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(
            f"stride and dilation must be positive, got stride {stride} "
            f"and dilation {dilation}"
        )
    spans = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(
                    f"padding='same' needs stride 1, got stride {stride}"
                )
            # Total padding span - 1; an odd total puts the extra at the end.
            top, left = (spans[0] - 1) // 2, (spans[1] - 1) // 2
            pads = (top, spans[0] - 1 - top, left, spans[1] - 1 - left)
        else:
            raise ValueError(
                "padding must be an int, a pair, 'valid' or 'same', "
                f"got {padding!r}"
            )
    else:
        rows, cols = _pair(padding, "padding")
        if min(rows, cols) < 0:
            raise ValueError(f"padding must be >= 0, got {(rows, cols)}")
        pads = (rows, rows, cols, cols)
    H_padded = X.shape[2] + pads[0] + pads[1]
    W_padded = X.shape[3] + pads[2] + pads[3]
    if spans[0] > H_padded or spans[1] > W_padded:
        raise ValueError(
            f"kernel of shape {K.shape[2:]} with dilation {dilation} spans "
            f"{spans[0]} × {spans[1]} pixels, more than the padded input's "
            f"{H_padded} × {W_padded} (input shape {shape}, padding {pads})"
        )
    out_size = (
        conv_output_size(H_padded, kh, stride[0], 0, dilation[0]),
        conv_output_size(W_padded, kw, stride[1], 0, dilation[1]),
    )
    return X, K, b, Geometry(stride, dilation, pads, out_size, groups), batched


def pad(X, pads):
    """Chapter 5. Zeros around (N, C, H, W) images: pads = (top, bottom,
    left, right)."""
    top, bottom, left, right = pads
    return np.pad(X, ((0, 0), (0, 0), (top, bottom), (left, right)))


# --8<-- [end:arguments]


# --8<-- [start:loops]
def conv2d_loops(
    x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1
):
    """Chapter 5. conv2d by its definition, one output number at a time."""
    X, K, b, geo, batched = check_conv2d_arguments(
        x, weight, bias, stride, padding, dilation, groups
    )
    X = pad(X, geo.pads)
    N, C_out = len(X), len(K)
    C_group, kh, kw = K.shape[1:]  # input channels one kernel sees
    (sh, sw), (dh, dw) = geo.stride, geo.dilation
    H_out, W_out = geo.out_size
    Y = np.zeros((N, C_out, H_out, W_out), X.dtype)
    for n in range(N):
        for o in range(C_out):
            group = o // (C_out // geo.groups)
            channels = slice(group * C_group, (group + 1) * C_group)
            for i in range(H_out):
                for j in range(W_out):
                    rows = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
                    cols = slice(j * sw, j * sw + dw * (kw - 1) + 1, dw)
                    window = X[n, channels, rows, cols]  # (C_group, kh, kw)
                    Y[n, o, i, j] = np.sum(window * K[o]) + b[o]
    return Y if batched else Y[0]


# --8<-- [end:loops]


# --8<-- [start:im2col]
def im2col(X, kernel_size, stride=(1, 1), dilation=(1, 1)):
    """Chapter 5. Every window of padded (N, C, H, W) images as a column.

    Returns (N, C * kh * kw, H_out * W_out): the rows run over (channel,
    kernel row, kernel column), the columns over output pixels.
    """
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    spans = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    # A view of every span-sized window: no copy yet.
    windows = sliding_window_view(X, spans, axis=(2, 3))
    # Keep every stride-th window and every dilation-th pixel in it.
    windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]  # (N, C, Ho, Wo, kh, kw)
    N, C, H_out, W_out = windows.shape[:4]
    # The one copy: kernel axes before pixel axes, then flatten both.
    return windows.transpose(0, 1, 4, 5, 2, 3).reshape(
        N, C * kh * kw, H_out * W_out
    )


# --8<-- [end:im2col]


# --8<-- [start:vectorised]
def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Chapter 5. torch.nn.functional.conv2d in NumPy: windows, then one
    (batched) matrix product."""
    X, K, b, geo, batched = check_conv2d_arguments(
        x, weight, bias, stride, padding, dilation, groups
    )
    N, n_groups = len(X), geo.groups
    C_out, H_out, W_out = len(K), *geo.out_size
    cols = im2col(pad(X, geo.pads), K.shape[2:], geo.stride, geo.dilation)
    cols = cols.reshape(N, n_groups, -1, H_out * W_out)  # each group's rows
    K_rows = K.reshape(n_groups, C_out // n_groups, -1)  # one row per kernel
    Y = K_rows @ cols  # (N, groups, C_out / groups, H_out * W_out)
    Y = Y.reshape(N, C_out, H_out, W_out)
    if bias is not None:
        Y += b[:, None, None]
    return Y if batched else Y[0]


# --8<-- [end:vectorised]


# --8<-- [start:backward]
def conv2d_backward(
    grad_output, x, weight, stride=1, padding=0, dilation=1, groups=1
):
    """Chapter 5. Gradients of a loss L with respect to conv2d's input,
    weight and bias, given grad_output = dL/dY. Each is a convolution."""
    X, K, _, geo, batched = check_conv2d_arguments(
        x, weight, None, stride, padding, dilation, groups
    )
    G = np.asarray(grad_output, X.dtype)
    G = G if batched else G[None]
    N, C, H, W = X.shape
    C_out, C_group, kh, kw = K.shape
    if G.shape != (N, C_out, *geo.out_size):
        raise ValueError(
            f"grad_output has shape {G.shape}, but conv2d's output has shape "
            f"{(N, C_out, *geo.out_size)}"
        )
    Xp = pad(X, geo.pads)
    (sh, sw), (dh, dw) = geo.stride, geo.dilation
    O_group = C_out // groups
    # dL/db: every output pixel added b once.
    grad_bias = G.sum(axis=(0, 2, 3))
    # dL/dK: the input correlated with G, with stride and dilation swapped.
    # Channels become the batch, the batch becomes channels.
    grad_weight = np.concatenate(
        [
            conv2d(
                Xp[:, g * C_group : (g + 1) * C_group].transpose(1, 0, 2, 3),
                G[:, g * O_group : (g + 1) * O_group].transpose(1, 0, 2, 3),
                stride=geo.dilation,
                dilation=geo.stride,
            )[:, :, :kh, :kw].transpose(1, 0, 2, 3)
            for g in range(groups)
        ]
    )
    # dL/dX: a full convolution of G, spread out by the stride, with the
    # kernel flipped and its input and output channels swapped.
    G_spread = np.zeros(
        (N, C_out, sh * (G.shape[2] - 1) + 1, sw * (G.shape[3] - 1) + 1),
        G.dtype,
    )
    G_spread[:, :, ::sh, ::sw] = G
    K_flipped = K[:, :, ::-1, ::-1].reshape(groups, O_group, C_group, kh, kw)
    K_flipped = K_flipped.swapaxes(1, 2).reshape(C, O_group, kh, kw)
    grad_Xp = conv2d(
        G_spread,
        K_flipped,
        padding=(dh * (kh - 1), dw * (kw - 1)),
        dilation=geo.dilation,
        groups=groups,
    )
    # Pixels that no window reached (the floor) get zero gradient.
    grad_Xp = pad(
        grad_Xp,
        (0, Xp.shape[2] - grad_Xp.shape[2], 0, Xp.shape[3] - grad_Xp.shape[3]),
    )
    top, _, left, _ = geo.pads
    grad_x = grad_Xp[:, :, top : top + H, left : left + W]
    return (grad_x if batched else grad_x[0]), grad_weight, grad_bias


# --8<-- [end:backward]


# --8<-- [start:timer]
def race(fns, repeat=20, warm_up=True):
    """The fastest of repeat calls of each function, in seconds of CPU time.

    The functions take turns, so that all of them meet the same machine.
    CPU time (time.process_time) leaves out the moments when other programs
    had the CPU, and they can only add time: so take the minimum.
    """
    if not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat must be a positive int, got {repeat!r}")
    if warm_up:
        for fn in fns.values():
            fn()  # the first call pays for allocating memory, loading code
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.process_time()
            fn()
            times[name].append(time.process_time() - start)
    return {name: min(seconds) for name, seconds in times.items()}


def conv_flops(N, C_in, C_out, H_out, W_out, kh, kw, groups=1):
    """Floating-point operations of conv2d: a multiply and an add per weight
    per output number."""
    return 2 * N * C_out * H_out * W_out * (C_in // groups) * kh * kw


# --8<-- [end:timer]
