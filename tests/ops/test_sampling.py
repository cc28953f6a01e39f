"""Sampling converters (GridSample, AffineGrid, Col2Im): every mode / padding /
align_corners against onnxruntime with positions outside the image and on half-pixel ties, the
explicit N-D paths against onnxruntime and the ONNX reference, and the native-layer choices.
ONNX's own node cases for these ops run in tests/test_conformance.py."""
from __future__ import annotations


import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx.reference import ReferenceEvaluator
from torch import nn

from onnx2torch import ConvertModel
from onnx2torch.errors import ConversionError
from onnx2torch.ops.sampling import grid_sample_nd
from onnx2torch.verify import run_onnxruntime
from tests.helpers import assert_matches_ort, convert_and_run, single_node_model

RNG = np.random.default_rng(0)


def randn(*shape: int, dtype=np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def grid(*shape: int, spread: float = 1.6) -> np.ndarray:
    """Normalized positions, some outside [-1, 1] and some on exact quarter steps (half-pixel ties)."""
    g = RNG.uniform(-spread, spread, shape).astype(np.float32)
    flat = g.reshape(-1)
    flat[::3] = np.round(flat[::3] * 4) / 4
    return g


def assert_matches_reference(model: onnx.ModelProto, inputs: dict[str, np.ndarray], atol: float = 1e-5) -> None:
    expected = ReferenceEvaluator(model).run(None, inputs)
    got = convert_and_run(model, inputs)
    for e, g in zip(expected, got):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=atol)


def calls(model: onnx.ModelProto) -> set:
    """The call targets (functions and module types) of the converted graph."""
    module = ConvertModel(model, simplify=False)
    found = set()
    for node in module.graph.nodes:
        if node.op == "call_function":
            found.add(node.target)
        elif node.op == "call_module":
            found.add(type(module.get_submodule(node.target)))
    return found


# --- GridSample -------------------------------------------------------------------------------
MODES_20 = ["linear", "nearest", "cubic"]
PADDINGS = ["zeros", "border", "reflection"]


@pytest.mark.parametrize("align_corners", [0, 1])
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("mode", MODES_20)
def test_grid_sample_4d(mode, padding_mode, align_corners):
    x, g = randn(2, 3, 5, 6), grid(2, 4, 7, 2)
    attrs = {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners}
    model = single_node_model("GridSample", {"x": x, "grid": g}, attrs, opset=22)
    assert_matches_ort(model, {"x": x, "grid": g})


@pytest.mark.parametrize("align_corners", [0, 1])
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_grid_sample_opset16_names(mode, padding_mode, align_corners):
    x, g = randn(1, 2, 4, 5), grid(1, 3, 6, 2, spread=2.5)
    attrs = {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners}
    model = single_node_model("GridSample", {"x": x, "grid": g}, attrs, opset=16)
    assert_matches_ort(model, {"x": x, "grid": g})


@pytest.mark.parametrize("align_corners", [0, 1])
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_grid_sample_5d(mode, padding_mode, align_corners):
    x, g = randn(2, 2, 3, 4, 5), grid(2, 3, 2, 4, 3)
    attrs = {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners}
    model = single_node_model("GridSample", {"x": x, "grid": g}, attrs, opset=20)
    assert_matches_ort(model, {"x": x, "grid": g})


@pytest.mark.parametrize("align_corners", [0, 1])
@pytest.mark.parametrize("padding_mode", ["zeros", "reflection"])
def test_grid_sample_5d_cubic_vs_reference(padding_mode, align_corners):
    """onnxruntime has bicubic only in 4-D; the reference agrees with it (and torch) except for
    border padding, where it clamps the position before picking the taps."""
    x, g = randn(1, 2, 3, 4, 5), grid(1, 2, 3, 2, 3)
    attrs = {"mode": "cubic", "padding_mode": padding_mode, "align_corners": align_corners}
    model = single_node_model("GridSample", {"x": x, "grid": g}, attrs, opset=22)
    assert_matches_reference(model, {"x": x, "grid": g})


@pytest.mark.parametrize("mode", MODES_20)
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("spatial", [(7,), (3, 4, 2, 3)], ids=["1d", "4d"])
def test_grid_sample_other_ranks_vs_reference(spatial, padding_mode, mode):
    if mode == "cubic" and padding_mode == "border":
        pytest.skip("the reference clamps before the cubic taps; onnxruntime's 4-D kernel and torch do not")
    if len(spatial) == 4 and mode == "cubic":
        spatial = (3, 3, 2, 3)
    x = randn(2, 2, *spatial)
    g = grid(2, *([2] * len(spatial)), len(spatial))
    for align_corners in (0, 1):
        attrs = {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners}
        model = single_node_model("GridSample", {"x": x, "grid": g}, attrs, opset=22)
        assert_matches_reference(model, {"x": x, "grid": g})


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("mode", MODES_20)
def test_grid_sample_nd_function_matches_ort_in_4d(mode, padding_mode, align_corners):
    """The explicit N-D implementation agrees with onnxruntime where onnxruntime has kernels."""
    x, g = randn(2, 2, 4, 5), grid(2, 3, 5, 2, spread=3.0)
    attrs = {"mode": mode, "padding_mode": padding_mode, "align_corners": int(align_corners)}
    (expected,) = run_onnxruntime(single_node_model("GridSample", {"x": x, "grid": g}, attrs, opset=22), {"x": x, "grid": g})
    got = grid_sample_nd(torch.from_numpy(x), torch.from_numpy(g), mode=mode, padding_mode=padding_mode,
                         align_corners=align_corners)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5, rtol=1e-5)


def test_grid_sample_nearest_reflection_rounds_before_reflecting():
    """torch rounds the reflected position, ONNX reflects the rounded one: the converter must
    not use F.grid_sample for nearest + reflection + align_corners=0."""
    x = randn(1, 1, 4, 5)
    g = np.zeros((1, 1, 7, 2), np.float32)
    g[0, 0, :, 0] = [(2 * k + 2) / 5 - 1 for k in range(-2, 5)]  # x = k + 0.5: exact ties
    attrs = {"mode": "nearest", "padding_mode": "reflection", "align_corners": 0}
    model = single_node_model("GridSample", {"x": x, "grid": g}, attrs, opset=20)
    got = assert_matches_ort(model, {"x": x, "grid": g}, exact=True)
    torch_result = F.grid_sample(torch.from_numpy(x), torch.from_numpy(g), mode="nearest",
                                 padding_mode="reflection", align_corners=False).numpy()
    assert not np.array_equal(got[0], torch_result)


def test_grid_sample_native_when_exact():
    x, g = randn(1, 2, 4, 5), grid(1, 3, 3, 2)
    model = single_node_model("GridSample", {"x": x, "grid": g}, {"mode": "linear"}, opset=20)
    assert F.grid_sample in calls(model)
    model = single_node_model("GridSample", {"x": x, "grid": g},
                              {"mode": "nearest", "padding_mode": "reflection"}, opset=20)
    assert grid_sample_nd in calls(model)


def test_grid_sample_float16_image_float_grid():
    x, g = randn(1, 2, 4, 5, dtype=np.float16), grid(1, 3, 3, 2)
    model = single_node_model("GridSample", {"x": x, "grid": g}, {"mode": "linear"}, opset=20)
    assert_matches_ort(model, {"x": x, "grid": g}, atol=2e-3, rtol=2e-3)


def test_grid_sample_double_vs_reference():
    x, g = randn(1, 2, 4, 5, dtype=np.float64), grid(1, 3, 3, 2).astype(np.float64)
    model = single_node_model("GridSample", {"x": x, "grid": g}, {"mode": "cubic", "padding_mode": "reflection"}, opset=20)
    assert_matches_reference(model, {"x": x, "grid": g})


@pytest.mark.parametrize("padding_mode", PADDINGS)
def test_grid_sample_nearest_on_integers_vs_reference(padding_mode):
    x = RNG.integers(-50, 50, (2, 3, 4, 5)).astype(np.int32)
    g = grid(2, 3, 4, 2)
    model = single_node_model("GridSample", {"x": x, "grid": g}, {"mode": "nearest", "padding_mode": padding_mode}, opset=20)
    expected = ReferenceEvaluator(model).run(None, {"x": x, "grid": g})[0]
    (got,) = convert_and_run(model, {"x": x, "grid": g})
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)


def test_grid_sample_unsupported_is_loud():
    x, g = RNG.integers(0, 9, (1, 1, 3, 3)).astype(np.int32), grid(1, 2, 2, 2)
    with pytest.raises(ConversionError, match="mode='linear'"):
        ConvertModel(single_node_model("GridSample", {"x": x, "grid": g}, {"mode": "linear"}, opset=20), simplify=False)
    xf = randn(1, 1, 3, 3)
    with pytest.raises(ConversionError, match="padding_mode"):
        ConvertModel(single_node_model("GridSample", {"x": xf, "grid": g}, {"padding_mode": "wrap"}, opset=20),
                     simplify=False)
    with pytest.raises(ConversionError, match="mode"):
        ConvertModel(single_node_model("GridSample", {"x": xf, "grid": g}, {"mode": "area"}, opset=20), simplify=False)


# --- AffineGrid -------------------------------------------------------------------------------
@pytest.mark.parametrize("align_corners", [0, 1])
@pytest.mark.parametrize("size", [(2, 3, 4, 5), (2, 1, 1, 5), (2, 1, 6, 1), (2, 3, 3, 4, 5), (2, 1, 1, 3, 1)], ids=str)
@pytest.mark.parametrize("constant_size", [True, False], ids=["const", "input"])
def test_affine_grid(size, align_corners, constant_size):
    rank = len(size) - 2
    theta = randn(2, rank, rank + 1)
    size_arr = np.array(size, np.int64)
    if constant_size:
        model = single_node_model("AffineGrid", {"theta": theta}, {"align_corners": align_corners},
                                  initializers={"size": size_arr}, opset=20)
        assert_matches_ort(model, {"theta": theta})
    else:
        model = single_node_model("AffineGrid", {"theta": theta, "size": size_arr}, {"align_corners": align_corners},
                                  opset=20)
        assert_matches_ort(model, {"theta": theta, "size": size_arr})


def test_affine_grid_native_with_constant_size():
    theta = randn(2, 2, 3)
    model = single_node_model("AffineGrid", {"theta": theta}, {"align_corners": 1},
                              initializers={"size": np.array([2, 3, 4, 5], np.int64)}, opset=20)
    assert F.affine_grid in calls(model)


def test_affine_grid_double():
    theta = randn(1, 3, 4, dtype=np.float64)
    model = single_node_model("AffineGrid", {"theta": theta}, {},
                              initializers={"size": np.array([1, 2, 3, 4, 5], np.int64)}, opset=20)
    assert_matches_ort(model, {"theta": theta}, atol=1e-12)


# --- Col2Im -----------------------------------------------------------------------------------
def _col2im_input(n: int, c: int, image, block, dilations=None, pads=None, strides=None, dtype=np.float32):
    rank = len(image)
    dilations = dilations or [1] * rank
    pads = pads or [0] * (2 * rank)
    strides = strides or [1] * rank
    blocks = [(image[k] + pads[k] + pads[k + rank] - dilations[k] * (block[k] - 1) - 1) // strides[k] + 1
              for k in range(rank)]
    shape = (n, c * int(np.prod(block)), int(np.prod(blocks)))
    if np.dtype(dtype).kind == "f":
        return randn(*shape, dtype=dtype)
    return RNG.integers(-20, 20, shape).astype(dtype)


COL2IM_CASES = [
    ([5, 5], [2, 2], {}),
    ([6, 7], [3, 2], {"strides": [2, 1]}),
    ([6, 7], [2, 3], {"dilations": [2, 1], "pads": [1, 0, 1, 0]}),
    ([6, 5], [2, 2], {"pads": [1, 0, 0, 2], "strides": [2, 2]}),
    ([4, 5, 3], [2, 2, 2], {}),
    ([5, 4, 6], [2, 3, 2], {"pads": [0, 1, 1, 1, 0, 0], "strides": [2, 1, 2], "dilations": [1, 1, 2]}),
    ([9], [3], {"strides": [2], "pads": [1, 2]}),
]


@pytest.mark.parametrize("image,block,attrs", COL2IM_CASES, ids=[str(c[0]) + str(c[2]) for c in COL2IM_CASES])
def test_col2im(image, block, attrs):
    x = _col2im_input(2, 3, image, block, **attrs)
    inits = {"image_shape": np.array(image, np.int64), "block_shape": np.array(block, np.int64)}
    model = single_node_model("Col2Im", {"x": x}, attrs, initializers=inits, opset=18)
    if len(image) == 1 or (len(image) > 2 and "dilations" in attrs):
        # NOTE: onnxruntime's kernel wants at least 2 spatial dims, and its N-D path (> 2-D)
        # misplaces dilated blocks (the reference and the 2-D kernel agree with each other).
        assert_matches_reference(model, {"x": x})
    else:
        assert_matches_ort(model, {"x": x})


def test_col2im_native_fold_for_2d_symmetric_pads():
    x = _col2im_input(1, 2, [6, 7], [2, 3], pads=[1, 1, 1, 1])
    inits = {"image_shape": np.array([6, 7], np.int64), "block_shape": np.array([2, 3], np.int64)}
    model = single_node_model("Col2Im", {"x": x}, {"pads": [1, 1, 1, 1]}, initializers=inits, opset=18)
    assert nn.Fold in calls(model)
    assert_matches_ort(model, {"x": x})


def test_col2im_shapes_as_inputs():
    x = _col2im_input(2, 2, [5, 6], [2, 3], strides=[1, 2])
    feeds = {"x": x, "image_shape": np.array([5, 6], np.int64), "block_shape": np.array([2, 3], np.int64)}
    model = single_node_model("Col2Im", feeds, {"strides": [1, 2]}, opset=18)
    assert_matches_ort(model, feeds)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64])
def test_col2im_other_types_vs_reference(dtype):
    x = _col2im_input(1, 2, [4, 5], [2, 2], strides=[1, 2], dtype=dtype)
    inits = {"image_shape": np.array([4, 5], np.int64), "block_shape": np.array([2, 2], np.int64)}
    model = single_node_model("Col2Im", {"x": x}, {"strides": [1, 2]}, initializers=inits, opset=18)
    assert_matches_reference(model, {"x": x})
