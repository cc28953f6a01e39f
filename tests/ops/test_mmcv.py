"""MMDeploy / MMCV custom ops (domains mmdeploy and mmcv): each against the equivalent standard
ONNX op in onnxruntime (GridSample, DeformConv, RoiAlign) and otherwise against a reference
written here from MMDeploy's kernels."""
from __future__ import annotations

import math

import numpy as np
import pytest

from onnx2torch.verify import run_onnxruntime
from tests.helpers import convert_and_run, single_node_model

RNG = np.random.default_rng(8)
DOMAINS = ["mmdeploy", "mmcv"]


def _ort(op_type, inputs, attrs, *, initializers=None, opset):
    model = single_node_model(op_type, inputs, attrs, initializers=initializers, opset=opset)
    return run_onnxruntime(model, inputs)[0]


# --- grid_sampler -----------------------------------------------------------------------------
def _nearest_reference(x, grid, padding, align):
    """MMDeploy's grid_sampler kernel, nearest mode: unnormalize, clip / reflect, nearbyint."""
    n, c, h, w = x.shape
    out = np.zeros((n, c) + grid.shape[1:3], np.float32)

    def source(coord, size):
        coord = (coord + 1) / 2 * (size - 1) if align else ((coord + 1) * size - 1) / 2
        if padding == 2:
            lo, hi = (0.0, size - 1.0) if align else (-0.5, size - 0.5)
            span = hi - lo
            d = abs(coord - lo)
            flips, extra = math.floor(d / span), math.fmod(d, span)
            coord = extra + lo if flips % 2 == 0 else span - extra + lo
        if padding in (1, 2):
            coord = min(size - 1.0, max(coord, 0.0))
        return int(np.rint(np.float32(coord)))

    for b in range(n):
        for i in range(grid.shape[1]):
            for j in range(grid.shape[2]):
                ix, iy = source(float(grid[b, i, j, 0]), w), source(float(grid[b, i, j, 1]), h)
                if 0 <= ix < w and 0 <= iy < h:
                    out[b, :, i, j] = x[b, :, iy, ix]
    return out


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("align", [0, 1])
def test_grid_sampler(domain, mode, padding, align):
    x = RNG.standard_normal((2, 3, 5, 7)).astype(np.float32)
    grid = RNG.uniform(-1.6, 1.6, size=(2, 4, 6, 2)).astype(np.float32)
    model = single_node_model("grid_sampler", {"x": x, "grid": grid},
                              dict(interpolation_mode=mode, padding_mode=padding, align_corners=align),
                              domain=domain)
    got = convert_and_run(model, {"x": x, "grid": grid})[0]
    assert got.dtype == np.float32 and got.shape == (2, 3, 4, 6)
    if mode == 1 and padding == 2 and not align:
        # NOTE: ONNX GridSample rounds before reflecting; MMDeploy (like ATen) reflects first.
        np.testing.assert_array_equal(got, _nearest_reference(x, grid, padding, align))
        return
    names = {0: "bilinear", 1: "nearest", 2: "bicubic"}
    paddings = {0: "zeros", 1: "border", 2: "reflection"}
    expected = _ort("GridSample", {"x": x, "grid": grid},
                    dict(mode=names[mode], padding_mode=paddings[padding], align_corners=align), opset=16)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    if mode == 1:
        np.testing.assert_array_equal(got, _nearest_reference(x, grid, padding, align))


def test_grid_sampler_rejects_unknown_mode():
    x = np.zeros((1, 1, 3, 3), np.float32)
    grid = np.zeros((1, 2, 2, 2), np.float32)
    model = single_node_model("grid_sampler", {"x": x, "grid": grid}, dict(interpolation_mode=3), domain="mmdeploy")
    with pytest.raises(Exception, match="interpolation_mode=3"):
        convert_and_run(model, {"x": x, "grid": grid})


# --- deformable convolution -------------------------------------------------------------------
DEFORM_CASES = [  # stride, padding, dilation, groups, deform_groups
    ((1, 1), (1, 1), (1, 1), 1, 1),
    ((2, 1), (0, 2), (1, 2), 1, 2),
    ((1, 2), (1, 0), (2, 1), 2, 1),
    ((1, 1), (2, 1), (1, 1), 2, 4),
]


def _deform_inputs(stride, padding, dilation, groups, deform_groups, kernel=(3, 3)):
    n, c, h, w, oc = 2, 4, 7, 8, 6
    kh, kw = kernel
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    x = RNG.standard_normal((n, c, h, w)).astype(np.float32)
    offset = (RNG.standard_normal((n, deform_groups * 2 * kh * kw, oh, ow)) * 1.5).astype(np.float32)
    mask = RNG.uniform(size=(n, deform_groups * kh * kw, oh, ow)).astype(np.float32)
    weight = RNG.standard_normal((oc, c // groups, kh, kw)).astype(np.float32)
    bias = RNG.standard_normal(oc).astype(np.float32)
    return x, offset, mask, weight, bias


def _standard_deform_conv(x, offset, mask, weight, bias, stride, padding, dilation, groups, deform_groups):
    inputs = {"x": x, "w": weight, "offset": offset}
    if bias is not None:
        inputs["b"] = bias
    if mask is not None:
        inputs["b"] = bias if bias is not None else np.zeros(weight.shape[0], np.float32)
        inputs["mask"] = mask
    attrs = dict(strides=list(stride), pads=[padding[0], padding[1], padding[0], padding[1]],
                 dilations=list(dilation), group=groups, offset_group=deform_groups,
                 kernel_shape=list(weight.shape[2:]))
    return _ort("DeformConv", inputs, attrs, opset=19)


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("case", DEFORM_CASES)
@pytest.mark.parametrize("constant_weights", [True, False])
def test_modulated_deform_conv_matches_onnx_deform_conv(domain, case, constant_weights):
    stride, padding, dilation, groups, deform_groups = case
    x, offset, mask, weight, bias = _deform_inputs(*case)
    attrs = dict(stride=list(stride), padding=list(padding), dilation=list(dilation), groups=groups,
                 deform_groups=deform_groups)
    feeds = {"x": x, "offset": offset, "mask": mask}
    if constant_weights:
        model = single_node_model("MMCVModulatedDeformConv2d", feeds, attrs,
                                  initializers={"weight": weight, "bias": bias}, domain=domain)
    else:
        feeds = {**feeds, "weight": weight, "bias": bias}
        model = single_node_model("MMCVModulatedDeformConv2d", feeds, attrs, domain=domain)
    got = convert_and_run(model, feeds)[0]
    expected = _standard_deform_conv(x, offset, mask, weight, bias, *case)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-4)


def test_modulated_deform_conv_weights_are_trainable_parameters():
    import onnx2torch

    x, offset, mask, weight, bias = _deform_inputs((1, 1), (1, 1), (1, 1), 1, 1)
    model = single_node_model("MMCVModulatedDeformConv2d", {"x": x, "offset": offset, "mask": mask},
                              dict(stride=[1, 1], padding=[1, 1], dilation=[1, 1], groups=1, deformable_groups=1),
                              initializers={"weight": weight, "bias": bias}, domain="mmdeploy")
    module = onnx2torch.ConvertModel(model, simplify=False)
    names = {name for name, _ in module.named_parameters()}
    assert any(n.endswith("weight") for n in names) and any(n.endswith("bias") for n in names)


@pytest.mark.parametrize("case", DEFORM_CASES[:2])
def test_deform_conv_v1_matches_onnx_deform_conv(case):
    stride, padding, dilation, groups, deform_groups = case
    x, offset, _, weight, _ = _deform_inputs(*case)
    attrs = dict(stride=list(stride), padding=list(padding), dilation=list(dilation), groups=groups,
                 deform_groups=deform_groups, bias=0, im2col_step=32)
    model = single_node_model("MMCVDeformConv2d", {"x": x, "offset": offset}, attrs,
                              initializers={"weight": weight}, domain="mmcv")
    got = convert_and_run(model, {"x": x, "offset": offset})[0]
    expected = _standard_deform_conv(x, offset, None, weight, None, *case)
    np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-4)


# --- RoIAlign ---------------------------------------------------------------------------------
ROIS = np.array([
    [0, 0, 0, 9, 9],
    [1, 1.5, 2.3, 7.7, 8.1],
    [1, -2, -1, 15, 13],
    [0, 3, 3, 3.2, 3.1],
    [1, 10.5, 8.2, 13.9, 11.4],
], np.float32)


def _bilinear_ref(img, y, x):
    h, w = img.shape[-2:]
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return np.zeros(img.shape[0], np.float64)
    y, x = max(y, 0.0), max(x, 0.0)
    yl, xl = int(y), int(x)
    if yl >= h - 1:
        yh = yl = h - 1
        y = float(yl)
    else:
        yh = yl + 1
    if xl >= w - 1:
        xh = xl = w - 1
        x = float(xl)
    else:
        xh = xl + 1
    ly, lx = y - yl, x - xl
    hy, hx = 1 - ly, 1 - lx
    return hy * hx * img[:, yl, xl] + hy * lx * img[:, yl, xh] + ly * hx * img[:, yh, xl] + ly * lx * img[:, yh, xh]


def _roi_align_ref(x, rois, ph, pw, scale, ratio, mode, aligned, rotated=False, clockwise=False):
    """MMCV's RoIAlign / RoIAlignRotated kernels, one sample at a time."""
    out = np.zeros((len(rois), x.shape[1], ph, pw), np.float64)
    off = 0.5 if aligned else 0.0
    for k, roi in enumerate(rois.astype(np.float64)):
        img = x[int(roi[0])].astype(np.float64)
        if rotated:
            cx, cy = roi[1] * scale - off, roi[2] * scale - off
            rw, rh, theta = roi[3] * scale, roi[4] * scale, roi[5]
            theta = -theta if clockwise else theta
        else:
            x1, y1 = roi[1] * scale - off, roi[2] * scale - off
            rw, rh = roi[3] * scale - off - x1, roi[4] * scale - off - y1
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        if rotated:  # the sample grid is centred on the roi, after the one-pixel minimum
            x1, y1 = -rw / 2, -rh / 2
        bh, bw = rh / ph, rw / pw
        gh = ratio if ratio > 0 else math.ceil(rh / ph)
        gw = ratio if ratio > 0 else math.ceil(rw / pw)
        for i in range(ph):
            for j in range(pw):
                vals = []
                for iy in range(gh):
                    yy = y1 + i * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        xx = x1 + j * bw + (ix + 0.5) * bw / gw
                        if rotated:
                            sy = yy * math.cos(theta) - xx * math.sin(theta) + cy
                            sx = yy * math.sin(theta) + xx * math.cos(theta) + cx
                        else:
                            sy, sx = yy, xx
                        vals.append(_bilinear_ref(img, sy, sx))
                if not vals:
                    out[k, :, i, j] = -np.finfo(np.float32).max if mode == "max" else 0.0
                elif mode == "max":
                    out[k, :, i, j] = np.max(vals, axis=0)
                else:
                    out[k, :, i, j] = np.sum(vals, axis=0) / max(gh * gw, 1)
    return out.astype(np.float32)


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("aligned", [0, 1])
@pytest.mark.parametrize("ratio", [0, 2])
def test_roi_align_avg_matches_onnx_roi_align(domain, aligned, ratio):
    x = RNG.standard_normal((2, 3, 10, 12)).astype(np.float32)
    attrs = dict(output_height=3, output_width=4, spatial_scale=0.8, sampling_ratio=ratio, mode="avg",
                 aligned=aligned)
    model = single_node_model("MMCVRoIAlign", {"x": x, "rois": ROIS}, attrs, domain=domain)
    got = convert_and_run(model, {"x": x, "rois": ROIS})[0]
    expected = _ort("RoiAlign", {"x": x, "rois": ROIS[:, 1:].copy(), "batch": ROIS[:, 0].astype(np.int64)},
                    dict(output_height=3, output_width=4, spatial_scale=0.8, sampling_ratio=ratio, mode="avg",
                         coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel"),
                    opset=16)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(got, _roi_align_ref(x, ROIS, 3, 4, 0.8, ratio, "avg", aligned), atol=1e-5)


@pytest.mark.parametrize("aligned", [0, 1])
@pytest.mark.parametrize("ratio", [0, 3])
def test_roi_align_max_matches_mmcv_kernel(aligned, ratio):
    # NOTE: onnxruntime's RoiAlign max takes the max of weighted corners; MMCV the max of the
    # interpolated samples, so max mode is checked against the kernel written out here.
    x = RNG.standard_normal((2, 3, 10, 12)).astype(np.float32)
    attrs = dict(output_height=2, output_width=3, spatial_scale=1.0, sampling_ratio=ratio, mode="max",
                 aligned=aligned)
    model = single_node_model("MMCVRoiAlign", {"x": x, "rois": ROIS}, attrs, domain="mmcv")
    got = convert_and_run(model, {"x": x, "rois": ROIS})[0]
    np.testing.assert_allclose(got, _roi_align_ref(x, ROIS, 2, 3, 1.0, ratio, "max", aligned), atol=1e-5)


ROTATED_ROIS = np.array([
    [0, 4.5, 5.0, 6.0, 3.0, 0.3],
    [1, 6.0, 4.0, 8.0, 5.0, -1.1],
    [1, 2.0, 7.5, 3.0, 9.0, 2.5],
    [0, 11.0, 9.0, 7.0, 4.0, 0.0],
    [0, 5.0, 5.0, 0.5, 0.4, 0.7],
], np.float32)


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("aligned", [0, 1])
@pytest.mark.parametrize("clockwise", [0, 1])
@pytest.mark.parametrize("ratio", [0, 2])
def test_roi_align_rotated_matches_mmcv_kernel(domain, aligned, clockwise, ratio):
    x = RNG.standard_normal((2, 3, 10, 12)).astype(np.float32)
    attrs = dict(output_height=3, output_width=2, spatial_scale=0.9, sampling_ratio=ratio, aligned=aligned,
                 clockwise=clockwise)
    model = single_node_model("MMCVRoIAlignRotated", {"x": x, "rois": ROTATED_ROIS}, attrs, domain=domain)
    got = convert_and_run(model, {"x": x, "rois": ROTATED_ROIS})[0]
    expected = _roi_align_ref(x, ROTATED_ROIS, 3, 2, 0.9, ratio, "avg", aligned, rotated=True, clockwise=clockwise)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_roi_align_rotated_at_angle_zero_matches_onnx_roi_align():
    x = RNG.standard_normal((1, 2, 9, 9)).astype(np.float32)
    boxes = np.array([[1.0, 2.0, 6.0, 5.0], [0.5, 0.5, 8.0, 7.5]], np.float32)
    rotated = np.stack([np.zeros(2), (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2,
                        boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1], np.zeros(2)], 1).astype(np.float32)
    model = single_node_model("MMCVRoIAlignRotated", {"x": x, "rois": rotated},
                              dict(output_height=2, output_width=2, spatial_scale=1.0, sampling_ratio=2,
                                   aligned=1, clockwise=0), domain="mmdeploy")
    got = convert_and_run(model, {"x": x, "rois": rotated})[0]
    expected = _ort("RoiAlign", {"x": x, "rois": boxes, "batch": np.zeros(2, np.int64)},
                    dict(output_height=2, output_width=2, spatial_scale=1.0, sampling_ratio=2, mode="avg",
                         coordinate_transformation_mode="half_pixel"), opset=16)
    np.testing.assert_allclose(got, expected, atol=1e-5)


# --- NMSRotated -------------------------------------------------------------------------------
def _corners(box):
    cx, cy, w, h, a = (float(v) for v in box)
    c, s = math.cos(a), math.sin(a)
    return [(cx + c * dx - s * dy, cy + s * dx + c * dy) for dx, dy in
            ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))]


def _clip(subject, clipper):
    """Sutherland-Hodgman: the part of convex polygon ``subject`` inside convex ``clipper``."""
    def side(p, a, b):
        return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])

    orient = 1.0 if sum(side(clipper[(i + 2) % 4], clipper[i], clipper[(i + 1) % 4]) for i in range(4)) > 0 else -1.0
    out = subject
    for i in range(4):
        a, b = clipper[i], clipper[(i + 1) % 4]
        points, out = out, []
        for j in range(len(points)):
            p, q = points[j], points[(j + 1) % len(points)]
            sp, sq = orient * side(p, a, b), orient * side(q, a, b)
            if sp >= 0:
                out.append(p)
            if (sp >= 0) != (sq >= 0):
                t = sp / (sp - sq)
                out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
        if not out:
            return []
    return out


def _polygon_area(points):
    return abs(sum(points[i][0] * points[(i + 1) % len(points)][1] - points[(i + 1) % len(points)][0] * points[i][1]
                   for i in range(len(points)))) / 2


def _rotated_iou_ref(a, b):
    inter = _polygon_area(_clip(_corners(a), _corners(b)))
    union = float(a[2] * a[3] + b[2] * b[3]) - inter
    return inter / union


def _nms_rotated_ref(boxes, scores, iou, score_threshold=None):
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep = [True] * len(order)
    for i in range(len(order)):
        if not keep[i]:
            continue
        for j in range(i + 1, len(order)):
            if keep[j] and _rotated_iou_ref(boxes[order[i]], boxes[order[j]]) > iou:
                keep[j] = False
    return [order[i] for i in range(len(order)) if keep[i] and (score_threshold is None or scores[order[i]] > score_threshold)]


def _rotated_boxes(n):
    xy = RNG.uniform(0, 12, size=(n, 2))
    wh = RNG.uniform(2, 7, size=(n, 2))
    theta = RNG.uniform(-math.pi, math.pi, size=(n, 1))
    return np.concatenate([xy, wh, theta], 1).astype(np.float32)


def test_rotated_iou_matches_polygon_clipping():
    import torch

    from onnx2torch.ops.mmcv import rotated_box_iou

    boxes = _rotated_boxes(40)
    boxes[5] = boxes[4]  # identical boxes
    boxes[7] = [3, 3, 4, 2, 0]
    boxes[8] = [3, 3, 4, 2, math.pi / 2]  # the same centre, a cross
    for i in range(0, 40, 3):
        got = rotated_box_iou(torch.from_numpy(boxes[i]), torch.from_numpy(boxes)).numpy()
        expected = [_rotated_iou_ref(boxes[i], b) for b in boxes]
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert rotated_box_iou(torch.from_numpy(boxes[4]), torch.from_numpy(boxes[5:6])).item() == pytest.approx(1.0)


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("score_threshold", [0.0, 0.4])
def test_nms_rotated_batched_matches_reference(domain, score_threshold):
    boxes = np.stack([_rotated_boxes(25), _rotated_boxes(25)])
    scores = RNG.uniform(size=(2, 3, 25)).astype(np.float32)
    scores[1, 2, 3:6] = 0.75  # ties: the lower index first
    model = single_node_model("NMSRotated", {"boxes": boxes, "scores": scores},
                              dict(iou_threshold=0.2, score_threshold=score_threshold), domain=domain)
    got = convert_and_run(model, {"boxes": boxes, "scores": scores})[0]
    expected = [[b, c, i] for b in range(2) for c in range(3)
                for i in _nms_rotated_ref(boxes[b], scores[b, c], 0.2, score_threshold)]
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.array(expected, np.int64).reshape(-1, 3))


def test_nms_rotated_two_dimensional_form():
    boxes = _rotated_boxes(30)
    scores = RNG.uniform(size=30).astype(np.float32)
    model = single_node_model("NMSRotated", {"boxes": boxes, "scores": scores}, dict(iou_threshold=0.1),
                              domain="mmcv")
    got = convert_and_run(model, {"boxes": boxes, "scores": scores})[0]
    np.testing.assert_array_equal(got, np.array(_nms_rotated_ref(boxes, scores, 0.1), np.int64))


# --- TRTBatchedNMS ----------------------------------------------------------------------------
def _trt_iou(a, b):
    def area(r):
        return 0.0 if r[2] < r[0] or r[3] < r[1] else (r[2] - r[0]) * (r[3] - r[1])
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / (area(a) + area(b) - w * h)


def _batched_nms_ref(boxes, scores, num_classes, background, topk, keep_topk, score_thr, iou_thr, clip):
    """TensorRT's batchedNMS plugin as MMDeploy builds it, written as loops."""
    n, priors = boxes.shape[:2]
    topk = topk if 0 < topk <= priors else priors
    dets = np.zeros((n, keep_topk, 5), np.float32)
    labels = np.full((n, keep_topk), -1, np.int32)
    index = np.full((n, keep_topk), -1, np.int32)
    for b in range(n):
        slots = []  # (score, class, box index or -1)
        for c in range(num_classes):
            if c == background:
                slots += [(0.0, c, -1)] * topk
                continue
            cand = [(float(scores[b, p, c]) if scores[b, p, c] > score_thr else 0.0,
                     p if scores[b, p, c] > score_thr else -1) for p in range(priors)]
            cand = sorted(enumerate(cand), key=lambda e: (-e[1][0], e[0]))[:topk]
            cand = [e[1] for e in cand]
            box_of = (lambda p, b=b, c=c: boxes[b, p, 0 if boxes.shape[2] == 1 else c])
            keep = [p >= 0 for _, p in cand]
            for i, (_, p) in enumerate(cand):
                if p < 0:
                    break
                if not keep[i]:
                    continue
                for j in range(i + 1, len(cand)):
                    if keep[j] and _trt_iou(box_of(p), box_of(cand[j][1])) > iou_thr:
                        keep[j] = False
            slots += [(s, c, p) if k else (0.0, c, -1) for (s, p), k in zip(cand, keep)]
        best = sorted(enumerate(slots), key=lambda e: (-e[1][0], e[0]))[:keep_topk]
        for k, (_, (s, c, p)) in enumerate(best):
            if p < 0:
                continue
            box = boxes[b, p, 0 if boxes.shape[2] == 1 else c]
            dets[b, k, :4] = np.clip(box, 0, 1) if clip else box
            dets[b, k, 4] = s
            labels[b, k] = c
            index[b, k] = p + (c * priors if boxes.shape[2] > 1 else 0)
    return dets, labels, index


def _xyxy(n, classes, scale):
    xy = RNG.uniform(0, 0.8 * scale, size=(2, n, classes, 2))
    wh = RNG.uniform(0.05 * scale, 0.4 * scale, size=(2, n, classes, 2))
    return np.concatenate([xy, xy + wh], -1).astype(np.float32)


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("background,clip", [(-1, 0), (1, 1)])
@pytest.mark.parametrize("score_threshold", [0.3, 0.93])
def test_trt_batched_nms_matches_reference(domain, shared, background, clip, score_threshold):
    classes = 3
    boxes = _xyxy(40, 1 if shared else classes, 1.0 if clip else 30.0)
    scores = RNG.uniform(size=(2, 40, classes)).astype(np.float32)
    scores[0, 5:9, 0] = 0.6  # ties
    attrs = dict(num_classes=classes, background_label_id=background, topk=25, keep_topk=20, score_threshold=score_threshold,
                 iou_threshold=0.45, is_normalized=0, clip_boxes=clip, return_index=1)
    model = single_node_model("TRTBatchedNMS", {"boxes": boxes, "scores": scores}, attrs,
                              outputs=["dets", "labels", "index"], domain=domain)
    dets, labels, index = convert_and_run(model, {"boxes": boxes, "scores": scores})
    ref = _batched_nms_ref(boxes, scores, classes, background, 25, 20, score_threshold, 0.45, clip)
    assert dets.dtype == np.float32 and labels.dtype == np.int32 and index.dtype == np.int32
    np.testing.assert_array_equal(labels, ref[1])
    np.testing.assert_array_equal(index, ref[2])
    np.testing.assert_allclose(dets, ref[0], atol=1e-6)
    assert (labels >= 0).any()
    assert (labels == -1).any() == (score_threshold > 0.5)  # few survivors leave empty slots


def test_trt_batched_nms_two_outputs_and_missing_attribute():
    boxes = _xyxy(10, 1, 1.0)
    scores = RNG.uniform(size=(2, 10, 2)).astype(np.float32)
    attrs = dict(num_classes=2, background_label_id=-1, topk=10, keep_topk=5, score_threshold=0.1,
                 iou_threshold=0.5)
    model = single_node_model("TRTBatchedNMS", {"boxes": boxes, "scores": scores}, attrs,
                              outputs=["dets", "labels"], domain="mmdeploy")
    dets, labels = convert_and_run(model, {"boxes": boxes, "scores": scores})
    ref = _batched_nms_ref(boxes, scores, 2, -1, 10, 5, 0.1, 0.5, True)
    np.testing.assert_array_equal(labels, ref[1])
    np.testing.assert_allclose(dets, ref[0], atol=1e-6)
    del attrs["topk"]
    model = single_node_model("TRTBatchedNMS", {"boxes": boxes, "scores": scores}, attrs,
                              outputs=["dets", "labels"], domain="mmdeploy")
    with pytest.raises(Exception, match="topk"):
        convert_and_run(model, {"boxes": boxes, "scores": scores})
