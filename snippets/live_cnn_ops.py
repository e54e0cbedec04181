"""The live CNN page: chapter 4's network in a file a browser can read.

`save_tensors` and `load_tensors` write and read named float32 tensors in the
safetensors layout; `network_file` describes a SmallCNN for the page (its
weights, how its blocks are built, and each block's receptive field);
`block_outputs` is what the page must compute, as PyTorch computes it.
The snippet live_cnn.py uses them, and so do the tests.
"""

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from what_cnns_learn_ops import BLOCK_ENDS, CNN_LAYERS, field_box


def save_tensors(path, tensors, metadata=None):
    """Write named tensors as little-endian float32 in the safetensors
    layout: the header's length (8 bytes), a JSON header that gives each
    tensor's dtype, shape and byte range, then the bytes, in order.

    metadata: a dict of strings, stored in the header. The page reads the
    file with JSON.parse and a DataView; nothing else is needed.
    """
    header, chunks, offset = {}, [], 0
    for name, tensor in tensors.items():
        tensor = torch.as_tensor(tensor)
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"a tensor's name must be a string, got {name!r}")
        if not tensor.is_floating_point():
            raise ValueError(
                f"tensor {name!r} is {tensor.dtype}: only floating-point "
                f"tensors are stored (as float32)"
            )
        array = tensor.detach().cpu().numpy().astype("<f4")
        data = np.ascontiguousarray(array).tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    if metadata:
        if not all(isinstance(v, str) for v in metadata.values()):
            raise ValueError(
                "metadata values must be strings, as in safetensors"
            )
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # so that the data starts 8-byte aligned
    with open(path, "wb") as file:
        file.write(len(text).to_bytes(8, "little"))
        file.write(text)
        file.write(b"".join(chunks))


def load_tensors(path):
    """The tensors and metadata save_tensors wrote: ({name: tensor}, dict)."""
    raw = Path(path).read_bytes()
    length = int.from_bytes(raw[:8], "little")
    if len(raw) < 8 or 8 + length > len(raw):
        raise ValueError(f"{path} is not a tensor file: its header is cut off")
    header = json.loads(raw[8 : 8 + length])
    metadata = header.pop("__metadata__", {})
    data = raw[8 + length :]
    tensors = {}
    for name, entry in header.items():
        if entry["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name!r} is {entry['dtype']}")
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype="<f4")
        tensors[name] = torch.from_numpy(array.reshape(entry["shape"]).copy())
    return tensors, metadata


def block_layout(net):
    """How each block of a SmallCNN is built, as the page rebuilds it: an
    optional 2 × 2 max pool, then the state_dict names of its 3 × 3
    convolution (padding 1) and its batch normalisation, then a ReLU."""
    layout = []
    for index, block in enumerate(net.blocks):
        kinds = [type(layer) for layer in block]
        pool = kinds[0] is nn.MaxPool2d
        expected = [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
        conv, norm = block[int(pool)], block[int(pool) + 1]
        if kinds[int(pool) :] != expected or (
            conv.kernel_size,
            conv.stride,
            conv.padding,
        ) != ((3, 3), (1, 1), (1, 1)):
            raise ValueError(
                f"block {index + 1} is {[k.__name__ for k in kinds]}: the "
                f"page computes [MaxPool2d,] Conv2d 3 × 3, BatchNorm2d, ReLU"
            )
        if pool and (block[0].kernel_size, block[0].stride) != (2, 2):
            raise ValueError(f"block {index + 1}'s pool is not 2 × 2")
        layout.append(
            {
                "pool": pool,
                "conv": f"blocks.{index}.{int(pool)}",
                "norm": f"blocks.{index}.{int(pool) + 1}",
                "eps": norm.eps,
            }
        )
    return layout


def block_fields(layers=CNN_LAYERS, ends=BLOCK_ENDS):
    """Each block's receptive field (chapter 4's formula, placed by chapter
    8's field_box): unit (i, j) sees the size × size square whose top left
    pixel is (start + step i, start + step j)."""
    fields = []
    for end in ends:
        start, _, size = field_box(layers[:end], 0, 0)
        step = field_box(layers[:end], 1, 1)[0] - start
        fields.append({"size": size, "step": step, "start": start})
    return fields


def network_file(net, **metadata):
    """The tensors and metadata that describe net for the page: every
    floating-point tensor of its state_dict, under its own name, and how to
    put them together. metadata: more strings to store (seed, accuracy)."""
    state = net.state_dict()
    tensors = {k: v for k, v in state.items() if v.is_floating_point()}
    described = {
        "layout": json.dumps(block_layout(net)),
        "fields": json.dumps(block_fields()),
        "image_size": str(net.input_shape[-1]),
        **{key: str(value) for key, value in metadata.items()},
    }
    return tensors, described


# --8<-- [start:outputs]
def block_outputs(net, X):
    """What the page shows for (N, 1, H, W) images X, computed by PyTorch:
    each block's feature maps, the global max of each of the last block's
    maps, the logits and the class probabilities (softmax)."""
    net.eval()  # batch normalisation with its running statistics
    with torch.no_grad():
        maps = net.feature_maps(X)
        logits = net(X)
    outputs = {f"block{n}": m for n, m in enumerate(maps, start=1)}
    outputs["global_max"] = maps[-1].amax(dim=(2, 3))
    outputs["logits"] = logits
    outputs["probabilities"] = torch.softmax(logits, dim=1)
    return {name: value.contiguous() for name, value in outputs.items()}


# --8<-- [end:outputs]
