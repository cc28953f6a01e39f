"""NonMaxSuppression and RoiAlign written in torch, compared with onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import assert_matches_ort, single_node_model

RNG = np.random.default_rng(0)


def _boxes(n: int, center: int) -> np.ndarray:
    xy = RNG.uniform(0, 20, size=(2, n, 2)).astype(np.float32)
    wh = RNG.uniform(1, 8, size=(2, n, 2)).astype(np.float32)
    if center:
        return np.concatenate([xy, wh], axis=-1)
    return np.concatenate([xy, xy + wh], axis=-1)[..., [1, 0, 3, 2]]  # y1, x1, y2, x2


@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("score_threshold", [None, 0.3])
@pytest.mark.parametrize("max_boxes", [2, 50])
def test_non_max_suppression_matches_onnxruntime(center, score_threshold, max_boxes):
    boxes = _boxes(30, center)
    scores = RNG.uniform(size=(2, 3, 30)).astype(np.float32)
    scores[0, 0, :5] = 0.5  # ties keep the lower index first
    inits = {"max": np.array([max_boxes], np.int64), "iou": np.array([0.4], np.float32)}
    if score_threshold is not None:
        inits["score"] = np.array([score_threshold], np.float32)
    model = single_node_model("NonMaxSuppression", {"boxes": boxes, "scores": scores},
                              {"center_point_box": center}, initializers=inits, opset=11)
    assert_matches_ort(model, {"boxes": boxes, "scores": scores}, exact=True)


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("transform", ["half_pixel", "output_half_pixel"])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_roi_align_matches_onnxruntime(mode, transform, sampling_ratio):
    x = RNG.standard_normal((2, 3, 10, 12)).astype(np.float32)
    rois = np.array([[0, 0, 9, 9], [1.5, 2.3, 7.7, 8.1], [-2, -1, 15, 13], [3, 3, 3.2, 3.1]], np.float32)
    batch = np.array([0, 1, 1, 0], np.int64)
    attrs = dict(mode=mode, coordinate_transformation_mode=transform, sampling_ratio=sampling_ratio,
                 output_height=3, output_width=4, spatial_scale=0.8)
    model = single_node_model("RoiAlign", {"x": x, "rois": rois, "batch": batch}, attrs, opset=16)
    assert_matches_ort(model, {"x": x, "rois": rois, "batch": batch}, atol=1e-5)
