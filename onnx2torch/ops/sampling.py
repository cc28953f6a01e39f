"""Converters: sampling (GridSample, AffineGrid, Col2Im).

``F.grid_sample`` / ``F.affine_grid`` / ``nn.Fold`` are used wherever they compute exactly what
ONNX (and onnxruntime) does; the cases they do not cover — other spatial ranks, bicubic on
volumes, nearest-with-reflection rounding, non-float images, asymmetric Col2Im pads — run through
the explicit gather / scatter implementations below.
"""
from __future__ import annotations

import itertools
import logging
import math

import torch
import torch.nn.functional as F
from onnx import TensorProto
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.registry import Lowered, converter

__all__ = [
    "affine_grid",
    "affine_grid_onnx",
    "col2im",
    "col2im_nd",
    "grid_sample",
    "grid_sample_legacy",
    "grid_sample_cast",
    "grid_sample_nd",
]

logger = logging.getLogger(__name__)

_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16)

# ONNX mode name -> (canonical ONNX-20 name, torch name)
_MODES = {
    "linear": ("linear", "bilinear"),
    "bilinear": ("linear", "bilinear"),
    "nearest": ("nearest", "nearest"),
    "cubic": ("cubic", "bicubic"),
    "bicubic": ("cubic", "bicubic"),
}
_PADDING_MODES = ("zeros", "border", "reflection")

# NOTE: Keys' cubic convolution with A = -0.75, the coefficient onnxruntime, the ONNX reference
# and torch's bicubic grid_sample all use.
_CUBIC_A = -0.75


# --- GridSample -------------------------------------------------------------------------------
def _reflect(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Fold ``x`` back into ``[low, high]`` by bouncing off both borders (GridSample reflection)."""
    span = high - low
    if span <= 0:
        return torch.full_like(x, low)
    below = x < low
    dist = torch.where(below, low - x, x - high)
    bounces = torch.floor(dist / span)
    rest = dist - bounces * span
    even = torch.remainder(bounces, 2) == 0
    from_low, from_high = low + rest, high - rest
    folded = torch.where(below, torch.where(even, from_low, from_high), torch.where(even, from_high, from_low))
    return torch.where(below | (x > high), folded, x)


def _tap_index(index: torch.Tensor, size: int, padding_mode: str, low: float, high: float):
    """Integer pixel positions -> (in-range index, validity mask or None) for a padding mode."""
    if padding_mode == "zeros":
        valid = (index >= 0) & (index < size)
        return index.clamp(0, max(size - 1, 0)), valid
    if padding_mode == "reflection":
        index = _reflect(index.to(torch.float64), low, high).trunc().long()
    return index.clamp(0, max(size - 1, 0)), None


def _cubic_weights(t: torch.Tensor) -> list[torch.Tensor]:
    """Keys' cubic convolution weights of the taps at offsets -1, 0, 1, 2 for fraction ``t``."""
    a = _CUBIC_A

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def grid_sample_nd(x: torch.Tensor, grid: torch.Tensor, *, mode: str = "linear",
                   padding_mode: str = "zeros", align_corners: bool = False) -> torch.Tensor:
    """ONNX GridSample on any number of spatial dimensions, by explicit gathers.

    ``x`` is (N, C, D1, ..., Dr), ``grid`` (N, O1, ..., Ok, r) with the LAST spatial dimension's
    coordinate first; ``mode`` is linear / nearest / cubic.
    """
    n, c = x.shape[0], x.shape[1]
    dims = list(x.shape[2:])
    rank = len(dims)
    out_dims = list(grid.shape[1:-1])
    work = torch.promote_types(grid.dtype, torch.float32)
    if x.is_floating_point():
        work = torch.promote_types(work, x.dtype)
    coords = grid.to(work).reshape(n, -1, rank)
    flat = x.reshape(n, c, -1)
    strides = [math.prod(dims[k + 1:]) for k in range(rank)]

    taps_per_dim = []  # per spatial dim: list of (index, weight or None, valid or None)
    for k, size in enumerate(dims):
        coord = coords[..., rank - 1 - k]
        if align_corners:
            pos = (coord + 1) / 2 * (size - 1)
            low, high = 0.0, size - 1.0
        else:
            pos = ((coord + 1) * size - 1) / 2
            low, high = -0.5, size - 0.5
        if mode == "nearest":
            # NOTE: round half to even (std::nearbyint in onnxruntime, np.rint in the reference).
            pos = torch.round(pos)
        if mode != "cubic":
            # NOTE: onnxruntime and the ONNX reference first move an out-of-image position back
            # inside (clamp to [0, size-1] / reflect) and only then pick the taps; bicubic instead
            # pads each tap, like torch (and onnxruntime's 4-D kernel, which it matches).
            outside = (pos < low) | (pos > high)
            if padding_mode == "border":
                pos = torch.where(outside, pos.clamp(0, size - 1), pos)
            elif padding_mode == "reflection":
                pos = torch.where(outside, _reflect(pos, low, high), pos)
        if mode == "nearest":
            index, valid = _tap_index(pos.trunc().long(), size, padding_mode, low, high)
            taps_per_dim.append([(index, None, valid)])
            continue
        base = torch.floor(pos)
        frac = pos - base
        base = base.long()
        if mode == "linear":
            offsets, weights = (0, 1), [1 - frac, frac]
        else:
            offsets, weights = (-1, 0, 1, 2), _cubic_weights(frac)
        taps = []
        for offset, weight in zip(offsets, weights):
            index, valid = _tap_index(base + offset, size, padding_mode, low, high)
            taps.append((index, weight, valid))
        taps_per_dim.append(taps)

    out = None
    for combo in itertools.product(*taps_per_dim):
        linear = sum(index * stride for (index, _, _), stride in zip(combo, strides))
        value = flat.gather(2, linear.unsqueeze(1).expand(n, c, -1))
        valid = None
        for _, _, v in combo:
            if v is not None:
                valid = v if valid is None else valid & v
        if mode == "nearest":
            out = value if valid is None else torch.where(valid.unsqueeze(1), value, torch.zeros_like(value))
            break
        weight = math.prod(w for _, w, _ in combo)
        if valid is not None:
            weight = weight * valid
        term = value.to(work) * weight.unsqueeze(1)
        out = term if out is None else out + term
    return out.to(x.dtype).reshape([n, c, *out_dims])


def grid_sample_cast(x: torch.Tensor, grid: torch.Tensor, *, mode: str, padding_mode: str,
                     align_corners: bool) -> torch.Tensor:
    """``F.grid_sample`` with the grid cast to the image's dtype (ONNX allows them to differ)."""
    return F.grid_sample(x, grid.to(x.dtype), mode=mode, padding_mode=padding_mode, align_corners=align_corners)


def _grid_sample(node: OnnxNode, ctx: ConversionContext, modes: tuple[str, ...]) -> Lowered:
    mode_attr = node.attr_str("mode")
    padding_mode = node.attr_str("padding_mode")
    align_corners = bool(node.attr_int("align_corners"))
    if mode_attr not in modes:
        raise node.unsupported("mode", mode_attr, ", ".join(modes))
    if padding_mode not in _PADDING_MODES:
        raise node.unsupported("padding_mode", padding_mode, ", ".join(_PADDING_MODES))
    mode, torch_mode = _MODES[mode_attr]
    x_elem, grid_elem = ctx.elem_type(node.input(0)), ctx.elem_type(node.input(1))
    is_float = x_elem is None or x_elem in _FLOAT_TYPES
    if not is_float and (mode != "nearest" or x_elem in (TensorProto.STRING, TensorProto.BOOL)):
        raise node.unsupported(f"mode={mode!r} on input type", TensorProto.DataType.Name(x_elem),
                               "float types (any mode) and numeric types with mode 'nearest'")
    rank = ctx.rank(node.input(0))
    kwargs = {"mode": torch_mode, "padding_mode": padding_mode, "align_corners": align_corners}
    # NOTE: torch's nearest rounds after reflecting the position; ONNX rounds first. Both agree
    # when align_corners=1 (reflection about whole pixels commutes with round-half-to-even).
    native = (
        is_float
        and x_elem is not None
        and (rank == 4 or (rank == 5 and mode != "cubic"))
        and not (mode == "nearest" and padding_mode == "reflection" and not align_corners)
    )
    if not native:
        return Lowered(grid_sample_nd, kwargs={"mode": mode, "padding_mode": padding_mode,
                                               "align_corners": align_corners})
    if grid_elem != x_elem:
        return Lowered(grid_sample_cast, kwargs=kwargs)
    return Lowered(F.grid_sample, kwargs=kwargs)


@converter("GridSample", since=16)
def grid_sample_legacy(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """GridSample-16(X, grid) -> Y; 4-D, mode bilinear/nearest/bicubic, padding zeros/border/reflection"""
    # NOTE: the opset-20 spellings are accepted too (onnxruntime does).
    return _grid_sample(node, ctx, ("bilinear", "nearest", "bicubic", "linear", "cubic"))


@converter("GridSample", since=20)
def grid_sample(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """GridSample(X, grid) -> Y; N-D, mode linear/nearest/cubic, padding zeros/border/reflection"""
    return _grid_sample(node, ctx, ("linear", "nearest", "cubic", "bilinear", "bicubic"))


# --- AffineGrid -------------------------------------------------------------------------------
def _base_coords(size: int, align_corners: bool, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    steps = torch.arange(size, dtype=dtype, device=device)
    if not align_corners:
        return (steps * 2 + 1) / size - 1
    if size == 1:
        # NOTE: one pixel with align_corners=1 has no defined position (the spec's function body
        # divides by zero; the reference gives -1, torch 0); onnxruntime gives +1, and so do we.
        return torch.ones(1, dtype=dtype, device=device)
    return steps * (2 / (size - 1)) - 1


def affine_grid_onnx(theta: torch.Tensor, size: torch.Tensor | tuple[int, ...], *,
                     align_corners: bool = False) -> torch.Tensor:
    """ONNX AffineGrid: theta (N, 2, 3) or (N, 3, 4) applied to an evenly spaced grid of ``size``
    (N, C, H, W) or (N, C, D, H, W); the last axis holds (x, y[, z])."""
    if isinstance(size, torch.Tensor):
        size = [int(v) for v in size.tolist()]
    spatial = list(size[2:])
    axes = [_base_coords(s, align_corners, theta.dtype, theta.device) for s in spatial]
    mesh = torch.meshgrid(*axes, indexing="ij")
    # homogeneous positions ordered (x, y[, z], 1): the last spatial dimension first
    base = torch.stack([*reversed(mesh), torch.ones_like(mesh[0])], dim=-1).reshape(-1, len(spatial) + 1)
    grid = torch.matmul(base, theta.transpose(1, 2))
    return grid.reshape([theta.shape[0], *spatial, len(spatial)])


@converter("AffineGrid", since=20)
def affine_grid(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """AffineGrid(theta, size) -> grid; 2-D (N, H, W, 2) or 3-D (N, D, H, W, 3), attr align_corners"""
    align_corners = bool(node.attr_int("align_corners"))
    size = ctx.constant_ints(node.input(1))
    if size is None:
        return Lowered(affine_grid_onnx, kwargs={"align_corners": align_corners})
    if len(size) not in (4, 5):
        raise node.unsupported("size of length", len(size), "4 (2-D) or 5 (3-D)")
    if align_corners and 1 in size[2:]:
        return Lowered(affine_grid_onnx, inputs=node.inputs[:1],
                       kwargs={"size": tuple(size), "align_corners": align_corners})
    return Lowered(F.affine_grid, inputs=node.inputs[:1], kwargs={"size": list(size), "align_corners": align_corners})


# --- Col2Im -----------------------------------------------------------------------------------
def col2im_nd(x: torch.Tensor, image_shape: torch.Tensor | tuple[int, ...],
              block_shape: torch.Tensor | tuple[int, ...], *, dilations: tuple[int, ...] | None = None,
              pads: tuple[int, ...] | None = None, strides: tuple[int, ...] | None = None) -> torch.Tensor:
    """ONNX Col2Im on any number of spatial dims: sums each column block of ``x``
    (N, C * prod(block_shape), L) back into an (N, C, *image_shape) image."""
    if isinstance(image_shape, torch.Tensor):
        image_shape = [int(v) for v in image_shape.tolist()]
    if isinstance(block_shape, torch.Tensor):
        block_shape = [int(v) for v in block_shape.tolist()]
    rank = len(image_shape)
    dilations = dilations or (1,) * rank
    strides = strides or (1,) * rank
    pads = pads or (0,) * (2 * rank)
    padded = [image_shape[k] + pads[k] + pads[k + rank] for k in range(rank)]
    blocks = [(padded[k] - dilations[k] * (block_shape[k] - 1) - 1) // strides[k] + 1 for k in range(rank)]
    # padded-image position of (kernel offset, block) along each dim, then the flat index
    index = torch.zeros((), dtype=torch.long, device=x.device)
    for k in range(rank):
        offset = torch.arange(block_shape[k], device=x.device) * dilations[k]
        start = torch.arange(blocks[k], device=x.device) * strides[k]
        pos = offset[:, None] + start[None, :]  # (block_shape[k], blocks[k])
        shape = [1] * (2 * rank)
        shape[k], shape[rank + k] = block_shape[k], blocks[k]
        index = index * padded[k] + pos.reshape(shape)
    n = x.shape[0]
    cols = x.reshape(n, -1, math.prod(block_shape) * math.prod(blocks))
    image = torch.zeros((n, cols.shape[1], math.prod(padded)), dtype=x.dtype, device=x.device)
    image = image.index_add(2, index.reshape(-1), cols)
    image = image.reshape([n, cols.shape[1], *padded])
    crop = tuple(slice(pads[k], pads[k] + image_shape[k]) for k in range(rank))
    return image[(slice(None), slice(None), *crop)]


@converter("Col2Im", since=18)
def col2im(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Col2Im(input, image_shape, block_shape) -> output; attrs dilations, pads, strides"""
    image_shape = ctx.constant_ints(node.input(1))
    block_shape = ctx.constant_ints(node.input(2))
    rank = len(image_shape) if image_shape is not None else len(block_shape) if block_shape is not None else None
    dilations, pads, strides = (node.attr_ints(name) for name in ("dilations", "pads", "strides"))
    attrs = {"dilations": dilations, "pads": pads, "strides": strides}
    if rank is not None:
        expected = {"dilations": rank, "pads": 2 * rank, "strides": rank}
        for name, value in attrs.items():
            if value is not None and len(value) != expected[name]:
                raise node.unsupported(f"{name} of length", len(value), f"{expected[name]} for a {rank}-D image")
    elem = ctx.elem_type(node.input(0))
    if elem in (TensorProto.STRING, TensorProto.BOOL):
        raise node.unsupported("input type", TensorProto.DataType.Name(elem), "numeric types")
    kwargs = {name: tuple(value) for name, value in attrs.items() if value is not None}
    if image_shape is None or block_shape is None:
        return Lowered(col2im_nd, inputs=node.inputs[:3], kwargs=kwargs)
    dilations = tuple(dilations or (1,) * rank)
    strides = tuple(strides or (1,) * rank)
    pads = tuple(pads or (0,) * (2 * rank))
    if rank == 2 and elem in _FLOAT_TYPES and pads[:2] == pads[2:]:
        return Lowered(nn.Fold(output_size=tuple(image_shape), kernel_size=tuple(block_shape),
                               dilation=dilations, padding=pads[:2], stride=strides), inputs=node.inputs[:1])
    return Lowered(col2im_nd, inputs=node.inputs[:1],
                   kwargs={"image_shape": tuple(image_shape), "block_shape": tuple(block_shape), **kwargs})
