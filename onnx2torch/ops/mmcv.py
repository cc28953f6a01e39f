"""Converters for MMDeploy / MMCV custom ops (domains ``mmdeploy`` and ``mmcv``), in plain torch.

MMDeploy exports detection and segmentation models with ops that only its compiled onnxruntime /
TensorRT op library runs.  These converters follow MMDeploy's op documentation
(``docs/en/06-custom-ops/onnxruntime.md`` / ``tensorrt.md``) and the kernels behind it:

- ``grid_sampler``: PyTorch's ``grid_sample`` (the kernel is a port of ATen's CPU sampler).
- ``MMCVModulatedDeformConv2d`` / ``MMCVDeformConv2d``: DCNv2 / DCNv1, MMCV's offset layout.
- ``MMCVRoIAlign`` (also spelt ``MMCVRoiAlign``): RoIAlign over ``[batch_index, x1, y1, x2, y2]``
  rois, avg or max (the max of the interpolated samples), ``aligned`` 0/1.
- ``MMCVRoIAlignRotated``: RoIAlign over ``[batch_index, cx, cy, w, h, theta]`` rois.
- ``NMSRotated``: greedy NMS with the exact IoU of rotated rectangles.
- ``TRTBatchedNMS``: TensorRT's batched NMS plugin with fixed-size ``dets`` / ``labels`` outputs.
"""
from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.ops.conv import deform_conv_nd
from onnx2torch.ops.sampling import grid_sample_cast
from onnx2torch.registry import Lowered, converter

__all__ = [
    "MMCVRoIAlign",
    "MMCVRoIAlignRotated",
    "ModulatedDeformConv2d",
    "NMSRotated",
    "TRTBatchedNMS",
    "deform_conv2d_v1",
    "grid_sampler",
    "mmcv_deform_conv2d",
    "mmcv_modulated_deform_conv2d",
    "mmcv_roi_align",
    "mmcv_roi_align_rotated",
    "modulated_deform_conv2d",
    "nms_rotated",
    "roi_align",
    "roi_align_rotated",
    "rotated_box_iou",
    "trt_batched_nms",
]

logger = logging.getLogger(__name__)

#: MMDeploy registers its ops in ``mmdeploy``; models exported by MMCV's own ONNX support use ``mmcv``.
MM_DOMAINS = ("mmdeploy", "mmcv")

_FLT_MAX = torch.finfo(torch.float32).max


def _mm_converter(*op_types: str):
    """Register one converter for each op spelling under both MMDeploy domains."""

    def register(fn):
        for op_type in op_types:
            for domain in MM_DOMAINS:
                converter(op_type, since=1, domain=domain)(fn)
        return fn

    return register


def _choice(node: OnnxNode, name: str, default: int, values: dict[int, str]) -> str:
    value = node.attr_int(name, default)
    if value not in values:
        raise node.unsupported(name, value, ", ".join(f"{k} ({v})" for k, v in values.items()))
    return values[value]


# --- grid_sampler -----------------------------------------------------------------------------
@_mm_converter("grid_sampler")
def grid_sampler(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """grid_sampler(input, grid) -> output; interpolation_mode 0 bilinear / 1 nearest / 2 bicubic,
    padding_mode 0 zeros / 1 border / 2 reflection, align_corners"""
    # NOTE: MMDeploy's kernel is ATen's CPU grid sampler ported line by line (unnormalize, clip or
    # reflect, then nearbyint for nearest; bicubic pads each tap), so F.grid_sample is the op.
    # Defaults are F.grid_sample's (bilinear, zeros, align_corners=False).
    mode = _choice(node, "interpolation_mode", 0, {0: "bilinear", 1: "nearest", 2: "bicubic"})
    padding_mode = _choice(node, "padding_mode", 0, {0: "zeros", 1: "border", 2: "reflection"})
    align_corners = node.attr_int("align_corners", 0)
    if align_corners not in (0, 1):
        raise node.unsupported("align_corners", align_corners, "0 or 1")
    rank = ctx.rank(node.input(0))
    if rank not in (None, 4, 5) or (rank == 5 and mode == "bicubic"):
        raise node.unsupported("input rank", rank, "4 (any mode) or 5 (bilinear, nearest)")
    kwargs = {"mode": mode, "padding_mode": padding_mode, "align_corners": bool(align_corners)}
    x_elem, grid_elem = ctx.elem_type(node.input(0)), ctx.elem_type(node.input(1))
    if x_elem is not None and x_elem == grid_elem:
        return Lowered(F.grid_sample, kwargs=kwargs)
    return Lowered(grid_sample_cast, kwargs=kwargs)


# --- deformable convolution -------------------------------------------------------------------
def _pair(node: OnnxNode, name: str, default: int) -> tuple[int, int]:
    values = node.attr_ints(name, [default, default])
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise node.unsupported(name, values, "two values (h, w)")
    return int(values[0]), int(values[1])


def _group_attr(node: OnnxNode, names: tuple[str, ...]) -> int:
    """The first of several spellings the exporters use (``groups`` / ``group``, ...), default 1."""
    given = {n: node.attr_int(n) for n in names if node.has_attr(n)}
    values = set(given.values())
    if len(values) > 1:
        raise node.unsupported("/".join(given), given, "one value")
    value = values.pop() if values else 1
    if value < 1:
        raise node.unsupported(names[0], value, "a positive group count")
    return value


def mmcv_modulated_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None,
                                 weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                                 stride: tuple[int, int], padding: tuple[int, int],
                                 dilation: tuple[int, int], groups: int, deform_groups: int) -> torch.Tensor:
    """MMCV modulated deformable conv (DCNv2) with run-time weights: offset (N, dg*2*kh*kw, oh, ow)
    as (dy, dx) pairs per tap, mask (N, dg*kh*kw, oh, ow)."""
    return deform_conv_nd(x, weight, offset, bias, mask, strides=stride, dilations=dilation,
                          pads=(padding[0], padding[1], padding[0], padding[1]), group=groups,
                          offset_group=deform_groups)


def mmcv_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, *,
                       stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int],
                       groups: int, deform_groups: int) -> torch.Tensor:
    """MMCV deformable conv (DCNv1, no mask, no bias) with run-time weights."""
    return deform_conv_nd(x, weight, offset, None, None, strides=stride, dilations=dilation,
                          pads=(padding[0], padding[1], padding[0], padding[1]), group=groups,
                          offset_group=deform_groups)


class ModulatedDeformConv2d(nn.Module):
    """A deformable 2-D convolution with trainable weights (MMCV's DCNv2 layer; DCNv1 without a
    mask).  ``forward(x, offset, mask=None)``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                 padding: tuple[int, int], dilation: tuple[int, int], groups: int, deform_groups: int):
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone())
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups, self.deform_groups = groups, deform_groups

    def extra_repr(self) -> str:
        out_channels, in_per_group, kh, kw = self.weight.shape
        return (f"{in_per_group * self.groups}, {out_channels}, kernel_size=({kh}, {kw}), stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"deform_groups={self.deform_groups}, bias={self.bias is not None}")

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return mmcv_modulated_deform_conv2d(x, offset, mask, self.weight, self.bias, stride=self.stride,
                                            padding=self.padding, dilation=self.dilation, groups=self.groups,
                                            deform_groups=self.deform_groups)


def _deform_config(node: OnnxNode, ctx: ConversionContext, weight_index: int) -> dict:
    rank = ctx.rank(node.input(0))
    if rank not in (None, 4):
        raise node.unsupported("input rank", rank, "4")
    # NOTE: MMDeploy's kernel reads `deform_groups` / `groups`; its docs say `deformable_groups`
    # (onnxruntime) and `deformable_group` / `group` (TensorRT). All spellings are accepted.
    config = dict(stride=_pair(node, "stride", 1), padding=_pair(node, "padding", 0),
                  dilation=_pair(node, "dilation", 1), groups=_group_attr(node, ("groups", "group")),
                  deform_groups=_group_attr(node, ("deform_groups", "deformable_groups", "deformable_group")))
    weight_shape = ctx.static_shape(node.input(weight_index))
    channels = (ctx.static_shape(node.input(0)) or [None, None])[1]
    if channels is not None and channels % config["deform_groups"]:
        raise node.unsupported("deform_groups", config["deform_groups"], f"a divisor of the {channels} input channels")
    if weight_shape is not None and channels is not None and weight_shape[1] * config["groups"] != channels:
        raise node.unsupported("groups", config["groups"],
                               f"input channels {channels} = groups * weight.shape[1] ({weight_shape[1]})")
    return config


@_mm_converter("MMCVModulatedDeformConv2d")
def modulated_deform_conv2d(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """MMCVModulatedDeformConv2d(input, offset, mask, weight, bias?) -> output (DCNv2); stride,
    padding, dilation, groups, deform_groups"""
    # NOTE: channel c samples with offset group c // (C / deform_groups) over ALL input channels,
    # as MMCV's CUDA/CPU op (what the model was trained with) and ONNX DeformConv do. MMDeploy's
    # onnxruntime CPU kernel counts the offset groups inside each conv group instead, which
    # differs only when groups > 1 and deform_groups > 1.
    config = _deform_config(node, ctx, 3)
    weight = ctx.constant(node.input(3))
    bias = ctx.constant(node.input(4)) if node.has_input(4) else None
    if weight is not None and (bias is not None or not node.has_input(4)):
        return Lowered(ModulatedDeformConv2d(weight, bias, **config), inputs=[node.input(0), node.input(1), node.input(2)])
    return Lowered(mmcv_modulated_deform_conv2d, inputs=[node.input(i) for i in range(5)], kwargs=config)


@_mm_converter("MMCVDeformConv2d")
def deform_conv2d_v1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """MMCVDeformConv2d(input, offset, weight) -> output (DCNv1); stride, padding, dilation,
    groups, deform_groups"""
    if node.attr_int("bias", 0):
        raise node.unsupported("bias", node.attr_int("bias"), "0 (MMCV's DeformConv2d has no bias)")
    config = _deform_config(node, ctx, 2)
    weight = ctx.constant(node.input(2))
    if weight is not None:
        return Lowered(ModulatedDeformConv2d(weight, None, **config), inputs=[node.input(0), node.input(1)])
    return Lowered(mmcv_deform_conv2d, inputs=[node.input(0), node.input(1), node.input(2)], kwargs=config)


# --- RoIAlign ---------------------------------------------------------------------------------
def _bilinear(feature: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """RoIAlign's bilinear sample of ``feature`` (C, H, W) at points ``y``/``x`` (any shape) ->
    (C, *shape): zero outside [-1, H] x [-1, W], coordinates below 0 clamp to 0, and a point on
    or past the last row/column reads that row/column (MMCV's / Caffe2's rule)."""
    channels, height, width = feature.shape
    y, x = torch.broadcast_tensors(y, x)
    valid = (y >= -1.0) & (y <= height) & (x >= -1.0) & (x <= width)
    y = y.clamp(min=0)
    x = x.clamp(min=0)
    y_low, x_low = y.floor(), x.floor()
    y_edge, x_edge = y_low >= height - 1, x_low >= width - 1
    y_low = torch.where(y_edge, torch.full_like(y_low, height - 1), y_low)
    x_low = torch.where(x_edge, torch.full_like(x_low, width - 1), x_low)
    y = torch.where(y_edge, y_low, y)
    x = torch.where(x_edge, x_low, x)
    y_high = torch.where(y_edge, y_low, y_low + 1)
    x_high = torch.where(x_edge, x_low, x_low + 1)
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    flat = feature.reshape(channels, height * width)

    def at(yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        index = (yi * width + xi).long().reshape(-1)
        return flat[:, index].reshape((channels, *yi.shape))

    value = (hy * hx) * at(y_low, x_low) + (hy * lx) * at(y_low, x_high) \
        + (ly * hx) * at(y_high, x_low) + (ly * lx) * at(y_high, x_high)
    return torch.where(valid, value, torch.zeros_like(value))


def _grid_steps(count: int, like: torch.Tensor) -> torch.Tensor:
    return torch.arange(count, dtype=like.dtype, device=like.device)


def _bin_offsets(pooled: int, grid: int, bin_size: torch.Tensor) -> torch.Tensor:
    """Sample offsets from the roi start: p * bin + (i + 0.5) * bin / grid, for p < pooled, i < grid."""
    p = _grid_steps(pooled, bin_size).repeat_interleave(grid)
    i = _grid_steps(grid, bin_size).repeat(pooled)
    return p * bin_size + (i + 0.5) * bin_size / grid


def _grid_size(sampling_ratio: int, extent: torch.Tensor, pooled: int) -> int:
    if sampling_ratio > 0:
        return sampling_ratio
    return int(math.ceil(float(extent / pooled)))


def mmcv_roi_align(x: torch.Tensor, rois: torch.Tensor, *, output_height: int, output_width: int,
                   spatial_scale: float, sampling_ratio: int, mode: str, aligned: bool) -> torch.Tensor:
    """MMCV RoIAlign: rois (K, 5) = [batch_index, x1, y1, x2, y2] -> (K, C, output_height, output_width)."""
    ph, pw = output_height, output_width
    out = x.new_zeros((rois.shape[0], x.shape[1], ph, pw))
    rois = rois.to(x.dtype)
    offset = 0.5 if aligned else 0.0
    for k in range(rois.shape[0]):
        roi = rois[k]
        x1, y1 = roi[1] * spatial_scale - offset, roi[2] * spatial_scale - offset
        roi_w = roi[3] * spatial_scale - offset - x1
        roi_h = roi[4] * spatial_scale - offset - y1
        if not aligned:  # legacy MMDetection behaviour: rois at least one pixel wide
            roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
        bin_h, bin_w = roi_h / ph, roi_w / pw
        grid_h, grid_w = _grid_size(sampling_ratio, roi_h, ph), _grid_size(sampling_ratio, roi_w, pw)
        if grid_h <= 0 or grid_w <= 0:
            if mode == "max":  # NOTE: no samples: the kernel's running max keeps its -FLT_MAX start
                out[k] = -_FLT_MAX
            continue
        ys = y1 + _bin_offsets(ph, grid_h, bin_h)
        xs = x1 + _bin_offsets(pw, grid_w, bin_w)
        samples = _bilinear(x[int(roi[0])], ys[:, None], xs[None, :])  # C, ph*gh, pw*gw
        samples = samples.reshape(-1, ph, grid_h, pw, grid_w)
        if mode == "avg":
            out[k] = samples.sum(dim=(2, 4)) / max(grid_h * grid_w, 1)
        else:
            out[k] = samples.amax(dim=(2, 4))
    return out


class MMCVRoIAlign(nn.Module):
    """MMCV RoIAlign over rois ``[batch_index, x1, y1, x2, y2]``; ``mode`` avg or max (the max of
    the bilinearly interpolated samples in each bin)."""

    def __init__(self, output_height: int, output_width: int, spatial_scale: float, sampling_ratio: int,
                 mode: str, aligned: bool):
        super().__init__()
        self.output_height, self.output_width = output_height, output_width
        self.spatial_scale, self.sampling_ratio = spatial_scale, sampling_ratio
        self.mode, self.aligned = mode, aligned

    def extra_repr(self) -> str:
        return (f"output_size=({self.output_height}, {self.output_width}), spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, mode={self.mode!r}, aligned={self.aligned}")

    def forward(self, x: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return mmcv_roi_align(x, rois, output_height=self.output_height, output_width=self.output_width,
                              spatial_scale=self.spatial_scale, sampling_ratio=self.sampling_ratio,
                              mode=self.mode, aligned=self.aligned)


def _output_size(node: OnnxNode, default: int | None) -> tuple[int, int]:
    sizes = []
    for name in ("output_height", "output_width"):
        value = node.attr_int(name, default)
        if value is None:
            raise node.unsupported(name, None, "a positive int (required)")
        if value <= 0:
            raise node.unsupported(name, value, "a positive int")
        sizes.append(value)
    return sizes[0], sizes[1]


@_mm_converter("MMCVRoIAlign", "MMCVRoiAlign")
def roi_align(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """MMCVRoIAlign(input, rois) -> output (num_rois, C, output_height, output_width); rois
    [batch_index, x1, y1, x2, y2]; spatial_scale, sampling_ratio, mode avg/max, aligned"""
    # NOTE: defaults are those of MMDeploy's TensorRT plugin creator (7x7, scale 1, adaptive
    # sampling, aligned); `mode` has none there and is required.
    height, width = _output_size(node, 7)
    mode = node.attr_str("mode", None)
    if mode not in ("avg", "max"):
        raise node.unsupported("mode", mode, "avg, max")
    aligned = node.attr_int("aligned", 1)
    if aligned not in (0, 1):
        raise node.unsupported("aligned", aligned, "0 or 1")
    return Lowered(MMCVRoIAlign(height, width, node.attr_float("spatial_scale", 1.0),
                                node.attr_int("sampling_ratio", 0), mode, bool(aligned)))


def mmcv_roi_align_rotated(x: torch.Tensor, rois: torch.Tensor, *, output_height: int, output_width: int,
                           spatial_scale: float, sampling_ratio: int, aligned: bool,
                           clockwise: bool) -> torch.Tensor:
    """MMCV RoIAlignRotated (average): rois (K, 6) = [batch_index, cx, cy, w, h, theta (radians)]
    -> (K, C, output_height, output_width)."""
    ph, pw = output_height, output_width
    out = x.new_zeros((rois.shape[0], x.shape[1], ph, pw))
    rois = rois.to(x.dtype)
    offset = 0.5 if aligned else 0.0
    for k in range(rois.shape[0]):
        roi = rois[k]
        cx, cy = roi[1] * spatial_scale - offset, roi[2] * spatial_scale - offset
        roi_w, roi_h = roi[3] * spatial_scale, roi[4] * spatial_scale
        theta = -roi[5] if clockwise else roi[5]
        if not aligned:
            roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
        bin_h, bin_w = roi_h / ph, roi_w / pw
        grid_h, grid_w = _grid_size(sampling_ratio, roi_h, ph), _grid_size(sampling_ratio, roi_w, pw)
        if grid_h <= 0 or grid_w <= 0:
            continue
        yy = (-roi_h / 2 + _bin_offsets(ph, grid_h, bin_h))[:, None]
        xx = (-roi_w / 2 + _bin_offsets(pw, grid_w, bin_w))[None, :]
        cos, sin = torch.cos(theta), torch.sin(theta)
        # NOTE: rotate the sample grid by theta about the roi centre: (y, x) = R(theta) (yy, xx).
        ys = yy * cos - xx * sin + cy
        xs = yy * sin + xx * cos + cx
        samples = _bilinear(x[int(roi[0])], ys, xs).reshape(-1, ph, grid_h, pw, grid_w)
        out[k] = samples.sum(dim=(2, 4)) / max(grid_h * grid_w, 1)
    return out


class MMCVRoIAlignRotated(nn.Module):
    """MMCV RoIAlignRotated (average) over rois ``[batch_index, cx, cy, w, h, theta]``."""

    def __init__(self, output_height: int, output_width: int, spatial_scale: float, sampling_ratio: int,
                 aligned: bool, clockwise: bool):
        super().__init__()
        self.output_height, self.output_width = output_height, output_width
        self.spatial_scale, self.sampling_ratio = spatial_scale, sampling_ratio
        self.aligned, self.clockwise = aligned, clockwise

    def extra_repr(self) -> str:
        return (f"output_size=({self.output_height}, {self.output_width}), spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}, clockwise={self.clockwise}")

    def forward(self, x: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return mmcv_roi_align_rotated(x, rois, output_height=self.output_height, output_width=self.output_width,
                                      spatial_scale=self.spatial_scale, sampling_ratio=self.sampling_ratio,
                                      aligned=self.aligned, clockwise=self.clockwise)


@_mm_converter("MMCVRoIAlignRotated", "MMCVRoiAlignRotated")
def roi_align_rotated(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """MMCVRoIAlignRotated(input, rois) -> feat (num_rois, C, output_height, output_width); rois
    [batch_index, cx, cy, w, h, theta]; spatial_scale, sampling_ratio, aligned, clockwise"""
    height, width = _output_size(node, None)
    flags = {}
    for name, default in (("aligned", 1), ("clockwise", 0)):
        flags[name] = node.attr_int(name, default)
        if flags[name] not in (0, 1):
            raise node.unsupported(name, flags[name], "0 or 1")
    return Lowered(MMCVRoIAlignRotated(height, width, node.attr_float("spatial_scale", 1.0),
                                       node.attr_int("sampling_ratio", 0), bool(flags["aligned"]),
                                       bool(flags["clockwise"])))


# --- rotated IoU and NMSRotated ---------------------------------------------------------------
def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[..., 0] * b[..., 1] - b[..., 0] * a[..., 1]


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1]


def _rotated_corners(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 5) boxes [cx, cy, w, h, theta] -> (..., 4, 2) corners, in order around the box."""
    cx, cy, w, h, theta = boxes.unbind(-1)
    cos, sin = torch.cos(theta) * 0.5, torch.sin(theta) * 0.5
    x0, y0 = cx - sin * h - cos * w, cy + cos * h - sin * w
    x1, y1 = cx + sin * h - cos * w, cy - cos * h - sin * w
    xs = torch.stack([x0, x1, 2 * cx - x0, 2 * cx - x1], dim=-1)
    ys = torch.stack([y0, y1, 2 * cy - y0, 2 * cy - y1], dim=-1)
    return torch.stack([xs, ys], dim=-1)


def _inside(points: torch.Tensor, rect: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """(M, 4) whether each of ``points`` (M, 4, 2) lies in the rectangle ``rect`` (M, 4, 2)
    (borders included), by projection on two of its sides."""
    ab, da = edges[:, 0:1], edges[:, 3:4]
    ap = points - rect[:, 0:1]
    along_ab, along_ad = _dot(ap, ab), -_dot(ap, da)
    return (along_ab >= 0) & (along_ad >= 0) & (along_ab <= _dot(ab, ab)) & (along_ad <= _dot(da, da))


def _intersection_area(rect1: torch.Tensor, rect2: torch.Tensor) -> torch.Tensor:
    """Area of the overlap of convex quadrilaterals rect1, rect2 (M, 4, 2) -> (M,): the polygon
    of edge crossings and contained corners, ordered by angle about its centroid."""
    edges1 = torch.roll(rect1, -1, dims=1) - rect1
    edges2 = torch.roll(rect2, -1, dims=1) - rect2
    a = edges1[:, :, None, :]  # edge i of rect1
    b = edges2[:, None, :, :]  # edge j of rect2
    det = _cross(b, a)
    between = rect2[:, None, :, :] - rect1[:, :, None, :]
    safe = torch.where(det.abs() > 1e-14, det, torch.ones_like(det))
    t1, t2 = _cross(b, between) / safe, _cross(a, between) / safe
    crossing = (det.abs() > 1e-14) & (t1 >= 0) & (t1 <= 1) & (t2 >= 0) & (t2 <= 1)
    crossings = (rect1[:, :, None, :] + a * t1[..., None]).reshape(-1, 16, 2)
    points = torch.cat([crossings, rect1, rect2], dim=1)  # M, 24, 2
    valid = torch.cat([crossing.reshape(-1, 16), _inside(rect1, rect2, edges2), _inside(rect2, rect1, edges1)], dim=1)
    count = valid.sum(dim=1)
    weights = valid.to(points.dtype)[..., None]
    centre = (points * weights).sum(dim=1) / count.clamp(min=1)[:, None].to(points.dtype)
    rel = points - centre[:, None, :]
    angle = torch.where(valid, torch.atan2(rel[..., 1], rel[..., 0]), torch.full_like(rel[..., 0], math.inf))
    order = torch.argsort(angle, dim=1)
    rel = torch.gather(rel, 1, order[..., None].expand(-1, -1, 2))
    valid = torch.gather(valid, 1, order)
    # invalid points (sorted last) repeat the first point: zero-area steps that close the polygon
    rel = torch.where(valid[..., None], rel, rel[:, :1, :])
    area = _cross(rel, torch.roll(rel, -1, dims=1)).sum(dim=1).abs() / 2
    return torch.where(count > 2, area, torch.zeros_like(area))


def rotated_box_iou(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """IoU of one rotated box (5,) with each of ``boxes`` (M, 5), as [cx, cy, w, h, theta]."""
    boxes = boxes.double()
    box = box.double().expand_as(boxes)
    # NOTE: as MMDeploy, both boxes move so their mean centre is the origin (precision), and the
    # areas are w * h.
    shift = (box[:, :2] + boxes[:, :2]) / 2
    zero = torch.zeros_like(shift[:, :1]).expand(-1, 3)
    first = box - torch.cat([shift, zero], dim=1)
    second = boxes - torch.cat([shift, zero], dim=1)
    inter = _intersection_area(_rotated_corners(first), _rotated_corners(second))
    union = box[:, 2] * box[:, 3] + boxes[:, 2] * boxes[:, 3] - inter
    return inter / union


def _greedy_rotated(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float):
    """Greedy NMS in descending score order -> (order, kept mask over the sorted positions)."""
    order = torch.sort(scores, descending=True, stable=True).indices
    ordered = boxes[order]
    keep = torch.ones(order.shape[0], dtype=torch.bool, device=boxes.device)
    for i in range(order.shape[0] - 1):
        if not bool(keep[i]):
            continue
        overlap = rotated_box_iou(ordered[i], ordered[i + 1:]) > iou_threshold
        keep[i + 1:] &= ~overlap
    return order, keep


class NMSRotated(nn.Module):
    """MMDeploy NMSRotated: greedy NMS of rotated boxes [cx, cy, w, h, theta] per batch and
    class.  Boxes (B, N, 5) with scores (B, C, N) give (K, 3) int64 rows [batch, class, box];
    the older 2-D form, boxes (N, 5) with scores (N,), gives the kept box indices (K,).  Kept
    boxes come out in descending score order; ``score_threshold`` drops boxes scoring at or
    below it after suppression (a low-scoring box still suppresses)."""

    def __init__(self, iou_threshold: float, score_threshold: float | None):
        super().__init__()
        self.iou_threshold, self.score_threshold = iou_threshold, score_threshold

    def extra_repr(self) -> str:
        return f"iou_threshold={self.iou_threshold}, score_threshold={self.score_threshold}"

    def _kept(self, boxes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        order, keep = _greedy_rotated(boxes, scores, self.iou_threshold)
        if self.score_threshold is not None:
            keep &= scores[order] > self.score_threshold
        return order[keep]

    def forward(self, boxes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if boxes.dim() == 2:
            return self._kept(boxes, scores.reshape(-1)).to(torch.int64)
        rows = []
        for b in range(boxes.shape[0]):
            for c in range(scores.shape[1]):
                kept = self._kept(boxes[b], scores[b, c])
                rows.append(torch.stack([torch.full_like(kept, b), torch.full_like(kept, c), kept], dim=1))
        if not rows:
            return torch.zeros((0, 3), dtype=torch.int64, device=boxes.device)
        return torch.cat(rows).to(torch.int64)


@_mm_converter("NMSRotated")
def nms_rotated(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """NMSRotated(boxes, scores) -> indices; boxes [cx, cy, w, h, theta]: (B, N, 5) with scores
    (B, C, N) -> (K, 3) [batch, class, box], or (N, 5) with (N,) -> (K,); iou_threshold,
    score_threshold"""
    iou = node.attr_float("iou_threshold", None)
    if iou is None:
        raise node.unsupported("iou_threshold", None, "a float (required)")
    rank = ctx.rank(node.input(0))
    if rank not in (None, 2, 3):
        raise node.unsupported("boxes rank", rank, "2 (N, 5) or 3 (B, N, 5)")
    return Lowered(NMSRotated(iou, node.attr_float("score_threshold", None)))


# --- TRTBatchedNMS ----------------------------------------------------------------------------
def _box_iou(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """TensorRT batchedNMS IoU of one [x1, y1, x2, y2] box with each of ``boxes`` (M, 4): an
    inverted box has area 0; no overlap (width or height <= 0) gives 0."""
    lo = torch.maximum(box[:2], boxes[:, :2])
    hi = torch.minimum(box[2:], boxes[:, 2:])
    wh = hi - lo
    overlapping = (wh > 0).all(dim=1)
    inter = wh[:, 0] * wh[:, 1]

    def area(b: torch.Tensor) -> torch.Tensor:
        size = b[..., 2:] - b[..., :2]
        return torch.where((size >= 0).all(dim=-1), size[..., 0] * size[..., 1], torch.zeros_like(size[..., 0]))

    iou = inter / (area(box) + area(boxes) - inter)
    return torch.where(overlapping, iou, torch.zeros_like(iou))


class TRTBatchedNMS(nn.Module):
    """MMDeploy's TensorRT batched NMS: per image and class, scores above ``score_threshold``
    (background class skipped) sorted, the best ``topk`` suppressed greedily at
    ``iou_threshold``; then all classes' survivors sorted by score and the best ``keep_topk``
    returned.  ``dets`` (N, keep_topk, 5) = [x1, y1, x2, y2, score], ``labels`` (N, keep_topk)
    int32; empty slots are zeros with label -1; ``return_index`` adds the box indices (int32,
    -1 for empty slots)."""

    def __init__(self, num_classes: int, background_label_id: int, topk: int, keep_topk: int,
                 score_threshold: float, iou_threshold: float, clip_boxes: bool, return_index: bool,
                 outputs: int = 2):
        super().__init__()
        self.outputs = outputs
        self.num_classes, self.background_label_id = num_classes, background_label_id
        self.topk, self.keep_topk = topk, keep_topk
        self.score_threshold, self.iou_threshold = score_threshold, iou_threshold
        self.clip_boxes, self.return_index = clip_boxes, return_index

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, background_label_id={self.background_label_id}, topk={self.topk}, "
                f"keep_topk={self.keep_topk}, score_threshold={self.score_threshold}, "
                f"iou_threshold={self.iou_threshold}, clip_boxes={self.clip_boxes}, return_index={self.return_index}, "
                f"outputs={self.outputs}")

    def _class_survivors(self, boxes: torch.Tensor, scores: torch.Tensor, topk: int):
        """One image and class: (scores, box indices) of the topk sorted slots after NMS, 0 / -1
        in emptied slots."""
        passed = scores > self.score_threshold
        slot_scores = torch.where(passed, scores, torch.zeros_like(scores))
        slot_index = torch.where(passed, torch.arange(scores.shape[0], device=scores.device), -1)
        # NOTE: the plugin's radix sorts are stable: equal scores keep the lower index first.
        order = torch.sort(slot_scores, descending=True, stable=True).indices[:topk]
        slot_scores, slot_index = slot_scores[order], slot_index[order]
        keep = slot_index >= 0
        for i in range(topk):
            if int(slot_index[i]) < 0:
                break  # the plugin stops at the first empty slot
            if not bool(keep[i]):
                continue
            ref = boxes[slot_index[i]]
            rest = slot_index[i + 1:].clamp(min=0)
            keep[i + 1:] &= ~(_box_iou(ref, boxes[rest]) > self.iou_threshold)
        return torch.where(keep, slot_scores, torch.zeros_like(slot_scores)), torch.where(keep, slot_index, -1)

    def forward(self, boxes: torch.Tensor, scores: torch.Tensor):
        batch, priors, box_classes = boxes.shape[0], boxes.shape[1], boxes.shape[2]
        classes = scores.shape[2]
        if classes != self.num_classes or box_classes not in (1, classes):
            raise RuntimeError(
                f"TRTBatchedNMS: scores have {classes} classes and boxes {box_classes} box sets for "
                f"num_classes={self.num_classes}; expected scores (N, boxes, {self.num_classes}) and boxes "
                f"(N, boxes, 1 or {self.num_classes}, 4)"
            )
        topk = self.topk if 0 < self.topk <= priors else priors
        if self.keep_topk > topk:
            raise RuntimeError(
                f"TRTBatchedNMS: keep_topk={self.keep_topk} exceeds the per-class topk {topk}; the "
                "TensorRT plugin leaves its outputs unwritten then"
            )
        dets = boxes.new_zeros((batch, self.keep_topk, 5))
        labels = torch.full((batch, self.keep_topk), -1, dtype=torch.int32, device=boxes.device)
        index = torch.full((batch, self.keep_topk), -1, dtype=torch.int32, device=boxes.device)
        for n in range(batch):
            slot_scores, slot_index, slot_class = [], [], []
            for c in range(classes):
                if c == self.background_label_id:
                    s = scores.new_zeros(topk)
                    i = torch.full((topk,), -1, dtype=torch.int64, device=scores.device)
                else:
                    s, i = self._class_survivors(boxes[n, :, 0 if box_classes == 1 else c], scores[n, :, c], topk)
                slot_scores.append(s)
                slot_index.append(i)
                slot_class.append(torch.full_like(i, c))
            all_scores, all_index = torch.cat(slot_scores), torch.cat(slot_index)
            all_class = torch.cat(slot_class)
            best = torch.sort(all_scores, descending=True, stable=True).indices[: self.keep_topk]
            chosen, cls = all_index[best], all_class[best]
            found = chosen >= 0
            picked = boxes[n, chosen.clamp(min=0), torch.where(cls >= 0, cls, 0) if box_classes > 1 else 0]
            if self.clip_boxes:
                picked = picked.clamp(0.0, 1.0)
            dets[n] = torch.where(found[:, None], torch.cat([picked, all_scores[best, None]], dim=1), 0.0)
            labels[n] = torch.where(found, cls, -1).to(torch.int32)
            # NOTE: with per-class boxes the plugin's index counts class-major: class * boxes + box.
            box_index = chosen + (cls * priors if box_classes > 1 else 0)
            index[n] = torch.where(found, box_index, -1).to(torch.int32)
        results = (dets, labels, index) if self.return_index else (dets, labels)
        return results[0] if self.outputs == 1 else results[: self.outputs]


@_mm_converter("TRTBatchedNMS")
def trt_batched_nms(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """TRTBatchedNMS(boxes (N, boxes, 1|C, 4), scores (N, boxes, C)) -> dets (N, keep_topk, 5),
    labels (N, keep_topk) int32[, index]; num_classes, background_label_id, topk, keep_topk,
    score_threshold, iou_threshold, clip_boxes, return_index"""
    required = {}
    for name in ("num_classes", "background_label_id", "topk", "keep_topk"):
        if not node.has_attr(name):
            raise node.unsupported(name, None, "an int (required)")
        required[name] = node.attr_int(name)
    thresholds = {}
    for name in ("score_threshold", "iou_threshold"):
        if not node.has_attr(name):
            raise node.unsupported(name, None, "a float (required)")
        thresholds[name] = node.attr_float(name)
    if required["keep_topk"] < 0:
        raise node.unsupported("keep_topk", required["keep_topk"], "a count >= 0 (it sizes the outputs)")
    # NOTE: `is_normalized` only moves TensorRT's IoU by an offset the plugin passes as 0: no effect.
    clip_boxes = node.attr_int("clip_boxes", 1)  # the plugin creator's default
    return_index = node.attr_int("return_index", 0)
    most = 3 if return_index else 2
    if len(node.outputs) > most:
        raise node.unsupported("outputs", len(node.outputs), f"at most {most} (return_index={return_index})")
    return Lowered(TRTBatchedNMS(required["num_classes"], required["background_label_id"], required["topk"],
                                 required["keep_topk"], thresholds["score_threshold"],
                                 thresholds["iou_threshold"], bool(clip_boxes), bool(return_index),
                                 outputs=len(node.outputs)))
