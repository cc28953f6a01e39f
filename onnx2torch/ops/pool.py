"""Converters: pooling (MaxPool, AveragePool, LpPool, their Global forms, MaxUnpool, MaxRoiPool).

Where ONNX and torch agree (symmetric pads no larger than half the kernel, no dilation for
averages) the native ``nn.MaxPool1d/2d/3d`` / ``nn.AvgPool1d/2d/3d`` layers are used.  Otherwise the
input is padded explicitly so that the pooling windows are exactly ONNX's: for inputs of known size
with ``nn.ConstantPad*`` in front of an unpadded native layer, else with the ``OnnxMaxPool`` /
``OnnxAvgPool`` / ``OnnxLpPool`` modules, which work the padding out from the run-time size.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.dtypes import torch_dtype
from onnx2torch.ops.padding import (
    auto_pad_of,
    constant_pad_layer,
    explicit_pads,
    pool_output_size,
    same_pads,
    spatial_attr,
    torch_pad,
)
from onnx2torch.registry import Lowered, converter

__all__ = [
    "OnnxAvgPool",
    "OnnxLpPool",
    "OnnxMaxPool",
    "average_pool",
    "global_average_pool",
    "global_lp_pool",
    "global_max_pool",
    "lowest",
    "lp_pool",
    "max_pool",
    "max_roi_pool",
    "max_roi_pool_fn",
    "max_unpool",
    "max_unpool_fn",
    "resolve_pool_pads",
    "window_sum",
]

logger = logging.getLogger(__name__)

_MAX_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVG_POOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
_CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


# --- run-time building blocks --------------------------------------------------------------------
def lowest(dtype: torch.dtype) -> float | int:
    """The value padding never wins a max against: -inf, or the integer type's minimum."""
    return -math.inf if dtype.is_floating_point else torch.iinfo(dtype).min


def window_sum(x: torch.Tensor, kernel: Sequence[int], strides: Sequence[int],
               dilations: Sequence[int]) -> torch.Tensor:
    """Sum over every (dilated) pooling window of an already padded ``x``, no padding added."""
    rank = x.dim() - 2
    if all(d == 1 for d in dilations) and rank in (2, 3):
        pool = F.avg_pool2d if rank == 2 else F.avg_pool3d
        return pool(x, tuple(kernel), tuple(strides), 0, divisor_override=1)
    # NOTE: torch's average pools have no dilation (and avg_pool1d no divisor_override); a
    # convolution with an all-ones kernel over the channels folded into the batch is the same sum.
    ones = torch.ones((1, 1, *kernel), dtype=x.dtype, device=x.device)
    flat = x.reshape((-1, 1) + tuple(x.shape[2:]))
    summed = _CONV_FN[rank](flat, ones, None, tuple(strides), 0, tuple(dilations))
    return summed.reshape(tuple(x.shape[:2]) + tuple(summed.shape[2:]))


def _max_windows(x: torch.Tensor, kernel: Sequence[int], strides: Sequence[int],
                 dilations: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Max and torch's per-plane argmax over every window of an already padded ``x``."""
    if x.dim() == 3:  # max_pool1d has no integer kernels: pool a (L, 1) image instead
        y, idx = F.max_pool2d(x.unsqueeze(-1), (kernel[0], 1), (strides[0], 1), 0, (dilations[0], 1),
                              return_indices=True)
        return y.squeeze(-1), idx.squeeze(-1)
    pool = F.max_pool2d if x.dim() == 4 else F.max_pool3d
    return pool(x, tuple(kernel), tuple(strides), 0, tuple(dilations), return_indices=True)


def _onnx_indices(idx: torch.Tensor, padded: Sequence, begin: Sequence, sizes: Sequence,
                  column_major: bool) -> torch.Tensor:
    """torch's argmax in the padded plane -> ONNX's index into the whole flattened input tensor."""
    # NOTE: ONNX MaxPool's Indices count over (N, C, spatial...) row-major; storage_order=1 only
    # makes the spatial part column-major (onnxruntime: c * H * W + h + w * H).
    rest = idx
    coords = []
    for size in reversed(list(padded)):
        coords.append(rest % size)
        rest = rest // size
    coords.reverse()
    flat = torch.zeros_like(idx)
    if column_major:
        scale = 1
        for coord, b, size in zip(coords, begin, sizes):
            flat = flat + (coord - b) * scale
            scale = scale * size
    else:
        for coord, b, size in zip(coords, begin, sizes):
            flat = flat * size + (coord - b)
    plane = math.prod(sizes)
    planes = torch.arange(idx.shape[0] * idx.shape[1], device=idx.device).reshape(
        (idx.shape[0], idx.shape[1]) + (1,) * (idx.dim() - 2))
    return flat + planes * plane


class _OnnxPool(nn.Module):
    """Pads its input so that unpadded torch windows are exactly ONNX's windows."""

    def __init__(self, kernel_shape: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
                 pads: Sequence[int], auto_pad: str = "NOTSET", ceil_mode: bool = False):
        super().__init__()
        self.kernel_shape = tuple(kernel_shape)
        self.strides = tuple(strides)
        self.dilations = tuple(dilations)
        self.pads = tuple(pads)
        self.auto_pad = auto_pad
        self.ceil_mode = bool(ceil_mode)

    def extra_repr(self) -> str:
        text = f"kernel_shape={self.kernel_shape}, strides={self.strides}"
        if any(d != 1 for d in self.dilations):
            text += f", dilations={self.dilations}"
        if self.auto_pad != "NOTSET":
            text += f", auto_pad={self.auto_pad!r}"
        else:
            text += f", pads={self.pads}"
        if self.ceil_mode:
            text += ", ceil_mode=True"
        return text

    def window_pads(self, sizes: Sequence) -> tuple[list, list, list]:
        """``(begin, end, declared_end)``: padding that makes the windows exact, and ONNX's own end pads."""
        return resolve_pool_pads(sizes, self.kernel_shape, self.strides, self.dilations, self.pads,
                                 self.auto_pad, self.ceil_mode)


def resolve_pool_pads(sizes: Sequence, kernel: Sequence[int], strides: Sequence[int],
                      dilations: Sequence[int], pads: Sequence[int], auto_pad: str,
                      ceil_mode: bool) -> tuple[list, list, list]:
    """Per spatial axis: the begin padding, the end padding (possibly negative, i.e. a crop) after
    which unpadded windows give exactly ONNX's output size, and the end padding ONNX declares."""
    rank = len(kernel)
    begin, end, declared = [], [], []
    for i, size in enumerate(sizes):
        k, s, d = kernel[i], strides[i], dilations[i]
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            b, e = same_pads(size, k, s, d, auto_pad == "SAME_LOWER")
            ceil = False  # the output is ceil(size / stride) whatever ceil_mode says
        elif auto_pad == "VALID":
            # NOTE: the spec's VALID size, ceil((size - dilated kernel + 1) / stride), equals the
            # floor formula, so ceil_mode changes nothing.
            b, e, ceil = 0, 0, False
        else:
            b, e, ceil = pads[i], pads[rank + i], ceil_mode
        out = pool_output_size(size, k, s, d, b, e, ceil)
        begin.append(b)
        end.append((out - 1) * s + (k - 1) * d + 1 - size - b)
        declared.append(e)
    return begin, end, declared


class OnnxMaxPool(_OnnxPool):
    """ONNX MaxPool with explicit -inf padding; optionally ONNX's flattened ``Indices`` too."""

    def __init__(self, *args, storage_order: int = 0, return_indices: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.storage_order = storage_order
        self.return_indices = return_indices

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.return_indices:
            text += f", return_indices=True, storage_order={self.storage_order}"
        return text

    def forward(self, x: torch.Tensor):
        sizes = tuple(x.shape[2:])
        begin, end, _ = self.window_pads(sizes)
        padded = F.pad(x, torch_pad(begin, end), value=lowest(x.dtype))
        y, idx = _max_windows(padded, self.kernel_shape, self.strides, self.dilations)
        if not self.return_indices:
            return y
        return y, _onnx_indices(idx, tuple(padded.shape[2:]), begin, sizes, self.storage_order == 1)


class OnnxAvgPool(_OnnxPool):
    """ONNX AveragePool as a window sum divided by the number of counted elements per window."""

    def __init__(self, *args, count_include_pad: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.count_include_pad = bool(count_include_pad)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", count_include_pad={self.count_include_pad}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes = tuple(x.shape[2:])
        begin, end, declared = self.window_pads(sizes)
        total = window_sum(F.pad(x, torch_pad(begin, end)), self.kernel_shape, self.strides, self.dilations)
        # NOTE: ONNX (and onnxruntime) divide by the window's elements inside the input, or with
        # count_include_pad=1 inside the input plus its declared pads; the part of a ceil_mode
        # window past the declared end padding is never counted.
        if self.count_include_pad:
            counted = [n + b + e for n, b, e in zip(sizes, begin, declared)]
            mask = torch.ones((1, 1, *counted), dtype=x.dtype, device=x.device)
            mask = F.pad(mask, torch_pad([0] * len(sizes), [e - d for e, d in zip(end, declared)]))
        else:
            mask = torch.ones((1, 1, *sizes), dtype=x.dtype, device=x.device)
            mask = F.pad(mask, torch_pad(begin, end))
        count = window_sum(mask, self.kernel_shape, self.strides, self.dilations)
        return total / count


class OnnxLpPool(_OnnxPool):
    """ONNX LpPool: (sum over the window of |x|^p) ^ (1/p); padding adds nothing."""

    def __init__(self, *args, p: float = 2, **kwargs):
        super().__init__(*args, **kwargs)
        self.p = p

    def extra_repr(self) -> str:
        return super().extra_repr() + f", p={self.p}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        begin, end, _ = self.window_pads(tuple(x.shape[2:]))
        powered = F.pad(x.abs().pow(self.p), torch_pad(begin, end))
        return window_sum(powered, self.kernel_shape, self.strides, self.dilations).pow(1.0 / self.p)


# --- shared converter logic --------------------------------------------------------------------
class _PoolConfig:
    """The window attributes of a pooling node, validated."""

    def __init__(self, node: OnnxNode, ctx: ConversionContext):
        kernel = node.attr_ints("kernel_shape")
        rank = len(kernel)
        x_rank = ctx.rank(node.input(0))
        if x_rank is not None and x_rank != rank + 2:
            raise node.unsupported("kernel_shape", kernel, f"{x_rank - 2} values for a rank-{x_rank} input")
        if rank not in (1, 2, 3):
            raise node.unsupported("kernel_shape", kernel, "1 to 3 spatial axes")
        self.rank = rank
        self.kernel = kernel
        self.strides = spatial_attr(node, "strides", rank, 1)
        self.dilations = spatial_attr(node, "dilations", rank, 1)
        self.auto_pad = auto_pad_of(node)
        self.begin, self.end = explicit_pads(node, rank)
        if self.auto_pad == "VALID":
            self.begin, self.end = [0] * rank, [0] * rank
        self.ceil_mode = bool(node.attr_int("ceil_mode", 0)) and self.auto_pad == "NOTSET"
        if any(v < 1 for v in (*kernel, *self.strides, *self.dilations)):
            raise node.unsupported("kernel_shape/strides/dilations", (kernel, self.strides, self.dilations),
                                   "positive values")
        self.effective = [(k - 1) * d + 1 for k, d in zip(kernel, self.dilations)]
        dims = ctx.shape(node.input(0))
        self.sizes = None
        if dims is not None and all(isinstance(d, int) for d in dims[2:]):
            self.sizes = list(dims[2:])
        elem = ctx.elem_type(node.input(0))
        self.dtype = torch_dtype(elem) if elem is not None else None

    def module_args(self) -> tuple:
        return (self.kernel, self.strides, self.dilations, tuple(self.begin + self.end), self.auto_pad,
                self.ceil_mode)

    def symmetric(self) -> bool:
        """Explicit pads torch's layers take as they are: equal on both sides, at most half the kernel."""
        return (self.auto_pad in ("NOTSET", "VALID") and self.begin == self.end
                and all(2 * p <= k for p, k in zip(self.begin, self.kernel)))

    def resolved(self) -> tuple[list[int], list[int], list[int]] | None:
        """Exact window padding for an input of known size, else ``None``."""
        if self.sizes is None:
            return None
        return resolve_pool_pads(self.sizes, self.kernel, self.strides, self.dilations,
                                 self.begin + self.end, self.auto_pad, self.ceil_mode)

    def check_pads_inside(self, node: OnnxNode) -> None:
        """Reject pads so large that a window could hold padding only (no defined value)."""
        if any(p >= e for p, e in zip(self.begin, self.effective)) or any(
                p >= e for p, e in zip(self.end, self.effective)):
            raise node.unsupported("pads", self.begin + self.end,
                                   f"pads smaller than the (dilated) kernel {self.effective}")


def _pool_layer(table: dict, cfg: _PoolConfig, padding: Sequence[int], **kwargs) -> nn.Module:
    def single(values):
        return values[0] if cfg.rank == 1 else tuple(values)

    return table[cfg.rank](single(cfg.kernel), single(cfg.strides), single(padding), **kwargs)


# --- MaxPool -----------------------------------------------------------------------------------
@converter("MaxPool", since=1)
def max_pool(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """MaxPool(X) -> (Y, Indices?), max over kernel windows; Indices index the flattened X."""
    cfg = _PoolConfig(node, ctx)
    cfg.check_pads_inside(node)
    storage_order = node.attr_int("storage_order", 0)
    if storage_order not in (0, 1):
        raise node.unsupported("storage_order", storage_order, "0 (row major) or 1 (column major)")
    return_indices = len(node.outputs) > 1
    inputs = [node.input(0)]
    native_ok = cfg.dtype is not None and (cfg.dtype.is_floating_point or cfg.rank > 1)
    if not return_indices and native_ok:
        def native(padding, ceil_mode):
            kwargs = dict(dilation=cfg.dilations[0] if cfg.rank == 1 else tuple(cfg.dilations), ceil_mode=ceil_mode)
            return _pool_layer(_MAX_POOL, cfg, padding, **kwargs)

        if cfg.symmetric():
            return Lowered(native(cfg.begin, cfg.ceil_mode), inputs=inputs)
        resolved = cfg.resolved()
        if resolved is not None:
            begin, end, _ = resolved
            if begin == end and all(2 * p <= k for p, k in zip(begin, cfg.kernel)):
                return Lowered(native(begin, False), inputs=inputs)
            pad = constant_pad_layer(begin, end, lowest(cfg.dtype))
            return Lowered(nn.Sequential(pad, native([0] * cfg.rank, False)), inputs=inputs)
    module = OnnxMaxPool(*cfg.module_args(), storage_order=storage_order, return_indices=return_indices)
    return Lowered(module, inputs=inputs)


# --- AveragePool -------------------------------------------------------------------------------
@converter("AveragePool", since=1)
def average_pool(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """AveragePool(X) -> Y, mean over kernel windows (pads counted when count_include_pad=1)."""
    cfg = _PoolConfig(node, ctx)
    count_include_pad = bool(node.attr_int("count_include_pad", 0))
    if not count_include_pad:
        cfg.check_pads_inside(node)
    inputs = [node.input(0)]
    if all(d == 1 for d in cfg.dilations):
        def native(padding, ceil_mode, include_pad):
            return _pool_layer(_AVG_POOL, cfg, padding, ceil_mode=ceil_mode, count_include_pad=include_pad)

        # NOTE: torch divides by the window clipped to [-pad, size + pad) with count_include_pad
        # (also for ceil_mode's partial last window) or by its in-input part otherwise: ONNX's rule
        # whenever the pads are symmetric.
        if cfg.symmetric():
            return Lowered(native(cfg.begin, cfg.ceil_mode, count_include_pad), inputs=inputs)
        resolved = cfg.resolved()
        if resolved is not None:
            begin, end, declared = resolved
            symmetric = begin == end and all(2 * p <= k for p, k in zip(begin, cfg.kernel))
            if not count_include_pad and symmetric:
                return Lowered(native(begin, False, False), inputs=inputs)
            if count_include_pad and all(e <= d for e, d in zip(end, declared)):
                # Every window lies inside the input plus its declared pads: all of it is counted.
                if symmetric:
                    return Lowered(native(begin, False, True), inputs=inputs)
                pad = constant_pad_layer(begin, end, 0.0)
                return Lowered(nn.Sequential(pad, native([0] * cfg.rank, False, True)), inputs=inputs)
    module = OnnxAvgPool(*cfg.module_args(), count_include_pad=count_include_pad)
    return Lowered(module, inputs=inputs)


# --- LpPool ------------------------------------------------------------------------------------
def _p_of(node: OnnxNode) -> float | int:
    p = node.attr("p", 2)
    if isinstance(p, float) and p.is_integer():
        p = int(p)
    if p <= 0:
        raise node.unsupported("p", p, "p > 0")
    return p


@converter("LpPool", since=1)
def lp_pool(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """LpPool(X) -> Y = (sum over each window of |X|^p) ^ (1/p)."""
    cfg = _PoolConfig(node, ctx)
    return Lowered(OnnxLpPool(*cfg.module_args(), p=_p_of(node)), inputs=[node.input(0)])


# --- Global pools ------------------------------------------------------------------------------
def _spatial_dims(node: OnnxNode, ctx: ConversionContext) -> tuple[int, ...] | None:
    rank = ctx.rank(node.input(0))
    if rank is None:
        return None
    if rank < 3:
        raise node.unsupported("input rank", rank, "N x C x D1 x ... (rank >= 3)")
    return tuple(range(2, rank))


def global_average_pool_fn(x: torch.Tensor) -> torch.Tensor:
    """GlobalAveragePool for an input whose rank is only known at run time."""
    return torch.mean(x, dim=tuple(range(2, x.dim())), keepdim=True)


def global_max_pool_fn(x: torch.Tensor) -> torch.Tensor:
    """GlobalMaxPool for an input whose rank is only known at run time."""
    return torch.amax(x, dim=tuple(range(2, x.dim())), keepdim=True)


def global_lp_pool_fn(x: torch.Tensor, p: float = 2) -> torch.Tensor:
    """GlobalLpPool: the p-norm of every (n, c) plane, kept as size-1 spatial axes."""
    return torch.linalg.vector_norm(x, ord=p, dim=tuple(range(2, x.dim())), keepdim=True)


@converter("GlobalAveragePool", since=1)
def global_average_pool(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """GlobalAveragePool(X) -> Y = mean of X over all spatial axes, kept as size-1 axes."""
    dims = _spatial_dims(node, ctx)
    if dims is None:
        return Lowered(global_average_pool_fn)
    return Lowered(torch.mean, kwargs=dict(dim=dims, keepdim=True))


@converter("GlobalMaxPool", since=1)
def global_max_pool(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """GlobalMaxPool(X) -> Y = max of X over all spatial axes, kept as size-1 axes."""
    dims = _spatial_dims(node, ctx)
    if dims is None:
        return Lowered(global_max_pool_fn)
    return Lowered(torch.amax, kwargs=dict(dim=dims, keepdim=True))


@converter("GlobalLpPool", since=1)
def global_lp_pool(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """GlobalLpPool(X) -> Y = (sum of |X|^p over all spatial axes) ^ (1/p), kept as size-1 axes."""
    _spatial_dims(node, ctx)  # validates the rank when it is known
    return Lowered(global_lp_pool_fn, kwargs=dict(p=_p_of(node)))


# --- MaxUnpool ---------------------------------------------------------------------------------
def max_unpool_fn(x: torch.Tensor, indices: torch.Tensor, output_shape: torch.Tensor | None = None, *,
                  kernel_shape: tuple[int, ...], strides: tuple[int, ...], pads: tuple[int, ...],
                  shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """ONNX MaxUnpool: zeros of the output shape with X written at the flat positions in ``indices``."""
    rank = len(kernel_shape)
    if shape is None and output_shape is not None:
        shape = tuple(int(v) for v in output_shape.tolist())  # a shape only known at run time
    if shape is None:
        # NOTE: ONNX MaxUnpool: out = (in - 1) * stride + kernel - pad_begin - pad_end.
        shape = tuple(x.shape[:2]) + tuple(
            (x.shape[2 + i] - 1) * strides[i] + kernel_shape[i] - pads[i] - pads[rank + i]
            for i in range(rank))
    out = x.new_zeros(math.prod(shape))
    out = out.scatter(0, indices.reshape(-1), x.reshape(-1))
    return out.reshape(shape)


@converter("MaxUnpool", since=9)
def max_unpool(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """MaxUnpool(X, I, output_shape?) -> Y, the partial inverse of MaxPool (zeros elsewhere)."""
    kernel = node.attr_ints("kernel_shape")
    rank = len(kernel)
    begin, end = explicit_pads(node, rank)
    kwargs = dict(kernel_shape=tuple(kernel), strides=tuple(spatial_attr(node, "strides", rank, 1)),
                  pads=tuple(begin + end))
    if node.has_input(2):
        shape = ctx.constant_ints(node.input(2))
        if shape is not None:
            return Lowered(max_unpool_fn, inputs=[node.input(0), node.input(1)],
                           kwargs=dict(kwargs, shape=tuple(shape)))
        return Lowered(max_unpool_fn, inputs=node.inputs[:3], kwargs=kwargs)
    return Lowered(max_unpool_fn, inputs=[node.input(0), node.input(1)], kwargs=kwargs)


# --- MaxRoiPool --------------------------------------------------------------------------------
def _round_half_away(v: torch.Tensor) -> torch.Tensor:
    """C's round(): halves go away from zero (torch.round goes to even)."""
    return torch.where(v >= 0, torch.floor(v + 0.5), torch.ceil(v - 0.5))


def max_roi_pool_fn(x: torch.Tensor, rois: torch.Tensor, *, pooled_shape: tuple[int, int],
                    spatial_scale: float = 1.0) -> torch.Tensor:
    """ONNX MaxRoiPool: max over each of pooled_shape bins of every region (batch, x1, y1, x2, y2)."""
    height, width = x.shape[2], x.shape[3]
    pooled_h, pooled_w = pooled_shape
    # NOTE: the bin arithmetic follows onnxruntime (Caffe's RoIPool) in float32: corners rounded half
    # away from zero after scaling, regions at least 1x1, bin edges floor / ceil, empty bins give 0.
    boxes = rois.float()
    batch = boxes[:, 0].long()
    corners = _round_half_away(boxes[:, 1:] * torch.tensor(spatial_scale, dtype=torch.float32))
    start_w, start_h, end_w, end_h = corners.long().unbind(1)
    roi_h = torch.clamp(end_h - start_h + 1, min=1).float()
    roi_w = torch.clamp(end_w - start_w + 1, min=1).float()

    def bins(start, length, pooled, size):
        steps = torch.arange(pooled, device=x.device, dtype=torch.float32)
        bin_size = (length / pooled).unsqueeze(1)
        lo = torch.floor(steps * bin_size).long() + start.unsqueeze(1)
        hi = torch.ceil((steps + 1) * bin_size).long() + start.unsqueeze(1)
        lo, hi = lo.clamp(0, size), hi.clamp(0, size)
        pos = torch.arange(size, device=x.device)
        inside = (pos >= lo.unsqueeze(2)) & (pos < hi.unsqueeze(2))  # R, pooled, size
        return inside, hi <= lo

    rows, empty_h = bins(start_h, roi_h, pooled_h, height)
    cols, empty_w = bins(start_w, roi_w, pooled_w, width)
    feats = x[batch]  # R, C, H, W
    fill = torch.tensor(-math.inf, dtype=x.dtype, device=x.device)
    # Max over each bin's columns, then over its rows (a rectangle's max is separable).
    per_col = torch.where(cols[:, None, None], feats.unsqueeze(3), fill).amax(-1)  # R, C, H, PW
    per_bin = torch.where(rows[:, None, :, None, :], per_col.transpose(2, 3).unsqueeze(2), fill).amax(-1)
    empty = empty_h.unsqueeze(2) | empty_w.unsqueeze(1)  # R, PH, PW
    return torch.where(empty.unsqueeze(1), torch.zeros_like(per_bin), per_bin)


@converter("MaxRoiPool", since=1)
def max_roi_pool(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """MaxRoiPool(X, rois) -> Y (num_rois, C, pooled_h, pooled_w), max over each region's bins."""
    pooled = node.attr_ints("pooled_shape")
    if len(pooled) != 2 or any(v < 1 for v in pooled):
        raise node.unsupported("pooled_shape", pooled, "two positive sizes")
    return Lowered(max_roi_pool_fn, kwargs=dict(pooled_shape=tuple(pooled),
                                                spatial_scale=node.attr_float("spatial_scale", 1.0)))
