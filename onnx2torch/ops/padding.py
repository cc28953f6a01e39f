"""Padding arithmetic shared by the conv and pool converters.

ONNX writes padding as ``pads = [x1_begin, x2_begin, ..., x1_end, x2_end, ...]`` or derives it from
``auto_pad``; torch's ``F.pad`` wants ``(last_begin, last_end, ..., first_begin, first_end)``.  The
size helpers here only use ``+ - * //`` and ``torch.sym_max`` / ``torch.sym_min``, so they work on
plain ints at conversion time and on (symbolic) ``x.shape`` entries inside ``forward``.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from onnx2torch.attributes import OnnxNode

__all__ = [
    "AUTO_PADS",
    "Crop",
    "SamePad",
    "auto_pad_of",
    "constant_pad_layer",
    "explicit_pads",
    "pool_output_size",
    "same_pads",
    "spatial_attr",
    "torch_pad",
]

logger = logging.getLogger(__name__)

AUTO_PADS = ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")


def auto_pad_of(node: OnnxNode) -> str:
    """The node's ``auto_pad``, validated (an empty string, written by old exporters, is NOTSET)."""
    value = node.attr_str("auto_pad", "NOTSET") or "NOTSET"
    if value not in AUTO_PADS:
        raise node.unsupported("auto_pad", value, ", ".join(AUTO_PADS))
    return value


def spatial_attr(node: OnnxNode, name: str, rank: int, default: int) -> list[int]:
    """A per-spatial-axis attribute (``strides``, ``dilations``...) with ``rank`` entries."""
    values = node.attr_ints(name, None)
    if not values:
        return [default] * rank
    if len(values) != rank:
        raise node.unsupported(name, values, f"{rank} values, one per spatial axis")
    return values


def explicit_pads(node: OnnxNode, rank: int) -> tuple[list[int], list[int]]:
    """The ``pads`` attribute split into begin and end lists (zeros when absent)."""
    pads = node.attr_ints("pads", None)
    if not pads:
        return [0] * rank, [0] * rank
    if len(pads) != 2 * rank or any(p < 0 for p in pads):
        raise node.unsupported("pads", pads, f"{2 * rank} values >= 0 (begins, then ends)")
    return list(pads[:rank]), list(pads[rank:])


def same_pads(size, kernel: int, stride: int, dilation: int, lower: bool):
    """``(begin, end)`` padding of ``SAME_UPPER`` / ``SAME_LOWER`` so the output is ``ceil(size / stride)``.

    ``size`` may be an int or a symbolic size.
    """
    # NOTE: ONNX Conv/pool spec: pad_shape = (out - 1) * stride + ((kernel - 1) * dilation + 1) - in
    # with out = ceil(in / stride); odd totals put the extra element at the end for SAME_UPPER and
    # at the beginning for SAME_LOWER.  A negative total (stride larger than the kernel) means no
    # padding: onnxruntime clamps the same way and the output size is unchanged by it.
    out = (size + stride - 1) // stride
    total = torch.sym_max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    small = total // 2
    return (total - small, small) if lower else (small, total - small)


def pool_output_size(size, kernel: int, stride: int, dilation: int, begin, end, ceil_mode: bool):
    """Output length of a pooling window over ``size`` padded by ``begin`` / ``end`` (ONNX rules)."""
    span = size + begin + end - ((kernel - 1) * dilation + 1)
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    # NOTE: ONNX MaxPool/AveragePool: "Sliding windows that would start in the right padded region
    # are ignored", i.e. the last window must start before size + begin (torch's rule as well).
    return torch.sym_min(out, (size + begin - 1) // stride + 1)


def torch_pad(begin: Sequence, end: Sequence) -> list:
    """ONNX-ordered begin/end pads as the flat list ``F.pad`` wants (last axis first)."""
    flat = []
    for b, e in zip(reversed(list(begin)), reversed(list(end))):
        flat += [b, e]
    return flat


def constant_pad_layer(begin: Sequence[int], end: Sequence[int], value: float) -> nn.Module:
    """``nn.ConstantPad1d/2d/3d`` padding the spatial axes by ``begin`` / ``end``."""
    layer = {1: nn.ConstantPad1d, 2: nn.ConstantPad2d, 3: nn.ConstantPad3d}[len(begin)]
    return layer(tuple(int(p) for p in torch_pad(begin, end)), value)


class SamePad(nn.Module):
    """Pads the spatial axes for ``auto_pad=SAME_UPPER/SAME_LOWER`` from the runtime input size."""

    def __init__(self, kernel_shape: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
                 lower: bool, value: float = 0.0):
        super().__init__()
        self.kernel_shape = tuple(kernel_shape)
        self.strides = tuple(strides)
        self.dilations = tuple(dilations)
        self.lower = lower
        self.value = value

    def extra_repr(self) -> str:
        mode = "SAME_LOWER" if self.lower else "SAME_UPPER"
        return (f"{mode}, kernel_shape={self.kernel_shape}, strides={self.strides}, "
                f"dilations={self.dilations}, value={self.value}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        begin, end = [], []
        for size, k, s, d in zip(x.shape[2:], self.kernel_shape, self.strides, self.dilations):
            b, e = same_pads(size, k, s, d, self.lower)
            begin.append(b)
            end.append(e)
        return torch.nn.functional.pad(x, torch_pad(begin, end), value=self.value)


class Crop(nn.Module):
    """Drops ``begin[i]`` leading and ``end[i]`` trailing elements of spatial axis ``i``."""

    def __init__(self, begin: Sequence[int], end: Sequence[int]):
        super().__init__()
        self.begin = tuple(int(b) for b in begin)
        self.end = tuple(int(e) for e in end)

    def extra_repr(self) -> str:
        return f"begin={self.begin}, end={self.end}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = [slice(None), slice(None)]
        index += [slice(b, -e if e else None) for b, e in zip(self.begin, self.end)]
        return x[tuple(index)]
