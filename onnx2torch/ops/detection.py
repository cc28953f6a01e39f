"""Converters for detection ops written in torch: NonMaxSuppression, RoiAlign."""
from __future__ import annotations

import logging
import math

import torch
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.registry import Lowered, converter

__all__ = ["NonMaxSuppression", "RoiAlign", "non_max_suppression", "roi_align"]

logger = logging.getLogger(__name__)


def _corners(boxes: torch.Tensor, center_point_box: int) -> torch.Tensor:
    """[N, 4] boxes as (x_min, y_min, x_max, y_max)."""
    if center_point_box:
        cx, cy, w, h = boxes.unbind(-1)
        return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
    y1, x1, y2, x2 = boxes.unbind(-1)
    return torch.stack([torch.minimum(x1, x2), torch.minimum(y1, y2), torch.maximum(x1, x2), torch.maximum(y1, y2)], -1)


def _suppression_matrix(corners: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """[N, N] bool: box i suppresses box j (IoU strictly above the threshold, as the spec's
    reference: empty intersections and degenerate boxes never suppress)."""
    lo = torch.maximum(corners[:, None, :2], corners[None, :, :2])
    hi = torch.minimum(corners[:, None, 2:], corners[None, :, 2:])
    wh = hi - lo
    overlap = (wh > 0).all(-1)
    inter = wh.clamp(min=0).prod(-1)
    area = (corners[:, 2:] - corners[:, :2]).prod(-1)
    union = area[:, None] + area[None, :] - inter
    valid = overlap & (inter > 0) & (area[:, None] > 0) & (area[None, :] > 0) & (union > 0)
    iou = inter / torch.where(union > 0, union, torch.ones_like(union))
    return valid & (iou > iou_threshold)


class NonMaxSuppression(nn.Module):
    """ONNX NonMaxSuppression: greedy per batch and class; returns [K, 3] int64
    (batch, class, box) in the order boxes are selected."""

    def __init__(self, center_point_box: int = 0):
        super().__init__()
        self.center_point_box = center_point_box

    def extra_repr(self) -> str:
        return f"center_point_box={self.center_point_box}"

    def forward(self, boxes, scores, max_output_boxes_per_class=None, iou_threshold=None, score_threshold=None):
        limit = 0 if max_output_boxes_per_class is None or max_output_boxes_per_class.numel() == 0 \
            else max(int(max_output_boxes_per_class.reshape(-1)[0]), 0)
        iou = 0.0 if iou_threshold is None or iou_threshold.numel() == 0 else float(iou_threshold.reshape(-1)[0])
        use_score = score_threshold is not None and score_threshold.numel() > 0
        selected: list[list[int]] = []
        for b in range(boxes.shape[0]):
            corners = _corners(boxes[b].double(), self.center_point_box)
            suppresses = _suppression_matrix(corners, iou)
            for c in range(scores.shape[1]):
                class_scores = scores[b, c]
                candidates = torch.arange(class_scores.shape[0], device=class_scores.device)
                if use_score:
                    candidates = candidates[class_scores > score_threshold.reshape(-1)[0]]
                # NOTE: highest score first; equal scores keep the lower box index first.
                order = torch.sort(class_scores[candidates], descending=True, stable=True).indices
                kept: list[int] = []
                for idx in candidates[order].tolist():
                    if len(kept) >= limit:
                        break
                    if kept and bool(suppresses[idx, kept].any()):
                        continue
                    kept.append(idx)
                    selected.append([b, c, idx])
        return torch.tensor(selected, dtype=torch.int64, device=boxes.device).reshape(-1, 3)


@converter("NonMaxSuppression", since=10)
def non_max_suppression(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """NonMaxSuppression(boxes, scores, max_output_boxes_per_class?, iou_threshold?,
    score_threshold?) -> selected_indices"""
    center = node.attr_int("center_point_box")
    if center not in (0, 1):
        raise node.unsupported("center_point_box", center, "0 or 1")
    return Lowered(NonMaxSuppression(center))



def _axis_samples(start: float, bin_size: float, pooled: int, grid: int, size: int):
    """Per-sample (low index, high index, low weight, high weight, valid) along one axis, for
    ``pooled * grid`` sample points, following the spec's reference bilinear rule."""
    k = torch.arange(pooled * grid, dtype=torch.float64)
    coord = start + (k // grid) * bin_size + ((k % grid) + 0.5) * bin_size / grid
    valid = (coord >= -1.0) & (coord <= size)
    coord = coord.clamp(min=0)
    low = coord.floor().long()
    at_edge = low >= size - 1
    low = torch.where(at_edge, torch.full_like(low, size - 1), low)
    high = torch.where(at_edge, low, low + 1)
    coord = torch.where(at_edge, low.double(), coord)
    frac = coord - low
    return low, high, 1.0 - frac, frac, valid


class RoiAlign(nn.Module):
    """ONNX RoiAlign: bilinear samples per output bin, averaged (``avg``) or maxed (``max``, as
    onnxruntime: the max over samples of the largest weighted corner)."""

    def __init__(self, mode: str, output_height: int, output_width: int, sampling_ratio: int,
                 spatial_scale: float, half_pixel: bool):
        super().__init__()
        self.mode, self.output_height, self.output_width = mode, output_height, output_width
        self.sampling_ratio, self.spatial_scale, self.half_pixel = sampling_ratio, spatial_scale, half_pixel

    def extra_repr(self) -> str:
        return (f"mode={self.mode}, output=({self.output_height}, {self.output_width}), "
                f"sampling_ratio={self.sampling_ratio}, spatial_scale={self.spatial_scale}, half_pixel={self.half_pixel}")

    def forward(self, x: torch.Tensor, rois: torch.Tensor, batch_indices: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[2], x.shape[3]
        ph, pw = self.output_height, self.output_width
        offset = 0.5 if self.half_pixel else 0.0
        outputs = []
        for roi, batch in zip(rois.double().tolist(), batch_indices.tolist()):
            x1, y1, x2, y2 = (v * self.spatial_scale - offset for v in roi)
            roi_w, roi_h = x2 - x1, y2 - y1
            if not self.half_pixel:
                roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
            bin_h, bin_w = roi_h / ph, roi_w / pw
            grid_h = self.sampling_ratio if self.sampling_ratio > 0 else int(math.ceil(roi_h / ph))
            grid_w = self.sampling_ratio if self.sampling_ratio > 0 else int(math.ceil(roi_w / pw))
            feature = x[int(batch)].double()
            if grid_h <= 0 or grid_w <= 0:
                outputs.append(feature.new_zeros(x.shape[1], ph, pw))
                continue
            ylo, yhi, wylo, wyhi, vy = _axis_samples(y1, bin_h, ph, grid_h, height)
            xlo, xhi, wxlo, wxhi, vx = _axis_samples(x1, bin_w, pw, grid_w, width)
            valid = (vy[:, None] & vx[None, :]).double()
            corners = []
            for yi, wy in ((ylo, wylo), (yhi, wyhi)):
                for xi, wx in ((xlo, wxlo), (xhi, wxhi)):
                    weight = wy[:, None] * wx[None, :] * valid
                    # NOTE: invalid samples read pixel 0 with weight 0, as the reference does.
                    yi_v = torch.where(vy, yi, torch.zeros_like(yi))
                    xi_v = torch.where(vx, xi, torch.zeros_like(xi))
                    corners.append(weight * feature[:, yi_v][:, :, xi_v])
            if self.mode == "avg":
                samples = sum(corners)
                pooled = samples.reshape(-1, ph, grid_h, pw, grid_w).sum(dim=(2, 4)) / max(grid_h * grid_w, 1)
            else:
                samples = torch.stack(corners).amax(0)
                pooled = samples.reshape(-1, ph, grid_h, pw, grid_w).amax(dim=(2, 4))
            outputs.append(pooled)
        if not outputs:
            return x.new_zeros(0, x.shape[1], ph, pw)
        return torch.stack(outputs).to(x.dtype)


def _roi_align(node: OnnxNode, half_pixel: bool) -> Lowered:
    mode = node.attr_str("mode")
    if mode not in ("avg", "max"):
        raise node.unsupported("mode", mode, "avg, max")
    return Lowered(RoiAlign(mode, node.attr_int("output_height"), node.attr_int("output_width"),
                            node.attr_int("sampling_ratio"), node.attr_float("spatial_scale"), half_pixel))


@converter("RoiAlign", since=10)
def roi_align(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """RoiAlign(X, rois, batch_indices) -> Y [num_rois, C, output_height, output_width]"""
    return _roi_align(node, half_pixel=False)


@converter("RoiAlign", since=16)
def roi_align_16(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """RoiAlign(X, rois, batch_indices) -> Y; opset 16 adds coordinate_transformation_mode"""
    mode = node.attr_str("coordinate_transformation_mode")
    if mode not in ("half_pixel", "output_half_pixel"):
        raise node.unsupported("coordinate_transformation_mode", mode, "half_pixel, output_half_pixel")
    return _roi_align(node, half_pixel=mode == "half_pixel")
