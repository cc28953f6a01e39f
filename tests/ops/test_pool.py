"""Pooling converters: the traps against onnxruntime — asymmetric
pads (MaxPool on negative inputs, AveragePool with count_include_pad 0 and 1), ceil_mode with
windows starting in the padding, SAME_UPPER/SAME_LOWER with stride 2, dilations, MaxPool's
flattened Indices (storage_order 0/1), integer MaxPool, run-time sizes, LpPool, the global pools,
MaxUnpool and MaxRoiPool.
ONNX's own node cases for these ops run in tests/test_conformance.py."""
from __future__ import annotations


import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto
from torch import nn

from onnx2torch import ConvertModel
from onnx2torch.errors import ConversionError
from onnx2torch.verify import run_onnxruntime
from tests.helpers import assert_matches_ort, convert_and_run, single_node_model

RNG = np.random.default_rng(0)


def randn(*shape: int, dtype=np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def integers(*shape: int, low: int = -9, high: int = 10) -> np.ndarray:
    """Integer-valued floats: window sums are exact, so averages compare bit for bit."""
    return RNG.integers(low, high, shape).astype(np.float32)


def symbolic(model: onnx.ModelProto, axes: tuple[int, ...] = (2, 3, 4)) -> onnx.ModelProto:
    """``model`` with the first graph input's spatial sizes made symbolic."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for axis in axes:
        if axis < len(dims):
            dims[axis].dim_param = f"s{axis}"
    return model


def child_types(model: onnx.ModelProto) -> list[type]:
    return [type(m) for m in ConvertModel(model, simplify=False).modules()]


# --- MaxPool --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spatial,attrs",
    [
        ((9,), {"kernel_shape": [3], "pads": [2, 0]}),
        ((7, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 0, 1, 1]}),
        ((7, 8), {"kernel_shape": [3, 2], "pads": [2, 0, 0, 1]}),
        ((7, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 2, 1], "ceil_mode": 1}),
        ((7, 8), {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 1, 1], "ceil_mode": 1}),
        ((8, 7), {"kernel_shape": [2, 3], "strides": [2, 2], "dilations": [2, 2], "pads": [1, 0, 0, 2]}),
        ((5, 6, 7), {"kernel_shape": [2, 3, 2], "strides": [2, 1, 2], "pads": [1, 0, 1, 0, 2, 1], "ceil_mode": 1}),
    ],
    ids=str,
)
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_max_pool_asymmetric_pads_negative_inputs(spatial, attrs, dynamic):
    """All-negative inputs: a zero pad would win every border window."""
    x = -RNG.uniform(1, 5, (2, 3, *spatial)).astype(np.float32)
    model = single_node_model("MaxPool", {"x": x}, attrs)
    if dynamic:
        model = symbolic(model)
    assert_matches_ort(model, {"x": x}, exact=True)


@pytest.mark.parametrize(
    "attrs",
    [
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
        {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
        {"kernel_shape": [3, 3], "strides": [1, 1], "dilations": [2, 2], "pads": [1, 1, 1, 1]},
    ],
    ids=str,
)
def test_max_pool_symmetric_is_native(attrs):
    x = randn(1, 2, 9, 8)
    model = single_node_model("MaxPool", {"x": x}, attrs)
    assert_matches_ort(model, {"x": x}, exact=True)
    assert nn.MaxPool2d in child_types(model)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize(
    "spatial,kernel", [((9, 8), [3, 2]), ((7, 10), [2, 3]), ((11,), [4]), ((5, 6, 7), [3, 2, 2])], ids=str
)
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_max_pool_same_stride_2(auto_pad, spatial, kernel, dynamic):
    x = -RNG.uniform(1, 5, (1, 2, *spatial)).astype(np.float32)
    model = single_node_model("MaxPool", {"x": x}, {"auto_pad": auto_pad, "kernel_shape": kernel,
                                                     "strides": [2] * len(spatial)})
    if dynamic:
        model = symbolic(model)
    assert_matches_ort(model, {"x": x}, exact=True)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_pool_same_with_dilation_follows_the_spec(op, auto_pad):
    """onnxruntime pads SAME pools for the undilated kernel; the spec (followed here) pads for the
    dilated one, i.e. like explicit pads from its formula."""
    x = integers(1, 2, 9, 8)
    attrs = {"kernel_shape": [2, 3], "strides": [2, 2], "dilations": [2, 2]}
    model = single_node_model(op, {"x": x}, dict(attrs, auto_pad=auto_pad), opset=19)
    pads = []
    for size, k, s, d in zip((9, 8), (2, 3), (2, 2), (2, 2)):
        pads.append(max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size))
    small = [p // 2 for p in pads]
    begin = [p - q for p, q in zip(pads, small)] if auto_pad == "SAME_LOWER" else small
    end = [p - b for p, b in zip(pads, begin)]
    explicit = single_node_model(op, {"x": x}, dict(attrs, pads=begin + end), opset=19)
    np.testing.assert_array_equal(convert_and_run(model, {"x": x})[0], run_onnxruntime(explicit, {"x": x})[0])


@pytest.mark.parametrize(
    "spatial,attrs",
    [
        ((6, 7), {"kernel_shape": [2, 2], "strides": [2, 2]}),
        ((7, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 2, 1], "ceil_mode": 1}),
        ((7, 8), {"kernel_shape": [3, 2], "pads": [1, 1, 1, 0], "storage_order": 1}),
        ((8, 7), {"kernel_shape": [2, 2], "strides": [2, 2], "dilations": [2, 1], "storage_order": 1}),
        ((9,), {"kernel_shape": [3], "strides": [2], "pads": [1, 0], "ceil_mode": 1}),
        ((4, 5, 6), {"kernel_shape": [2, 2, 3], "strides": [2, 2, 2], "pads": [0, 1, 1, 1, 0, 1]}),
        ((4, 5, 6), {"kernel_shape": [2, 2, 2], "strides": [1, 2, 2], "storage_order": 1}),
        ((7, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    ],
    ids=str,
)
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_max_pool_indices(spatial, attrs, dynamic):
    """Indices count over the whole flattened (N, C, spatial) input; storage_order=1 makes only the
    spatial part column major."""
    x = RNG.permutation(2 * 3 * int(np.prod(spatial))).reshape(2, 3, *spatial).astype(np.float32) - 50
    model = single_node_model("MaxPool", {"x": x}, attrs, outputs=["y", "indices"], opset=12)
    if dynamic:
        model = symbolic(model)
    assert_matches_ort(model, {"x": x}, exact=True)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
@pytest.mark.parametrize(
    "spatial,attrs",
    [
        ((7, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 1, 1, 0], "ceil_mode": 1}),
        ((7, 8), {"kernel_shape": [2, 2], "pads": [1, 1, 1, 1]}),
        ((9,), {"kernel_shape": [3], "strides": [2], "pads": [1, 0]}),
        ((4, 5, 6), {"kernel_shape": [2, 2, 2], "auto_pad": "SAME_UPPER", "strides": [2, 2, 2]}),
    ],
    ids=str,
)
def test_max_pool_integers(dtype, spatial, attrs):
    info = np.iinfo(dtype)
    x = RNG.integers(info.min, info.max, (2, 3, *spatial), endpoint=True).astype(dtype)
    x.flat[0] = info.min  # a border minimum must not lose to the padding
    model = single_node_model("MaxPool", {"x": x}, attrs, opset=12)
    got = assert_matches_ort(model, {"x": x}, exact=True)
    assert got[0].dtype == dtype


def test_max_pool_integer_indices():
    x = RNG.permutation(60).reshape(1, 2, 5, 6).astype(np.int8)
    model = single_node_model("MaxPool", {"x": x}, {"kernel_shape": [2, 2], "pads": [1, 0, 0, 1]},
                              outputs=["y", "indices"], opset=12)
    assert_matches_ort(model, {"x": x}, exact=True)


def test_max_pool_pads_past_the_kernel_are_loud():
    x = randn(1, 1, 6, 6)
    model = single_node_model("MaxPool", {"x": x}, {"kernel_shape": [2, 2], "pads": [2, 0, 0, 0]})
    with pytest.raises(ConversionError, match="pads"):
        ConvertModel(model, simplify=False)


# --- AveragePool ----------------------------------------------------------------------------------
@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize(
    "spatial,attrs",
    [
        ((9,), {"kernel_shape": [3], "pads": [2, 0]}),
        ((9,), {"kernel_shape": [3], "strides": [2], "pads": [0, 1], "ceil_mode": 1}),
        ((7, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 0, 1, 1]}),
        ((7, 8), {"kernel_shape": [3, 2], "pads": [2, 0, 0, 1]}),
        ((7, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 2, 1], "ceil_mode": 1}),
        ((6, 6), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [2, 2, 0, 0], "ceil_mode": 1}),
        ((5, 6, 7), {"kernel_shape": [2, 3, 2], "strides": [2, 1, 2], "pads": [1, 0, 1, 0, 2, 1], "ceil_mode": 1}),
    ],
    ids=str,
)
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_average_pool_asymmetric_pads(count_include_pad, spatial, attrs, dynamic):
    x = integers(2, 3, *spatial)
    model = single_node_model("AveragePool", {"x": x}, dict(attrs, count_include_pad=count_include_pad))
    if dynamic:
        model = symbolic(model)
    assert_matches_ort(model, {"x": x}, exact=True)


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize(
    "attrs",
    [
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
        {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
    ],
    ids=str,
)
def test_average_pool_symmetric_is_native(count_include_pad, attrs):
    x = integers(1, 2, 9, 8)
    model = single_node_model("AveragePool", {"x": x}, dict(attrs, count_include_pad=count_include_pad))
    assert_matches_ort(model, {"x": x}, exact=True)
    assert nn.AvgPool2d in child_types(model)


def test_average_pool_asymmetric_count_include_pad_pads_then_pools():
    """count_include_pad=1 with asymmetric pads: explicit zero padding, then a plain AvgPool2d."""
    x = integers(1, 2, 7, 8)
    model = single_node_model("AveragePool", {"x": x}, {"kernel_shape": [3, 3], "pads": [1, 0, 0, 2],
                                                         "count_include_pad": 1})
    assert_matches_ort(model, {"x": x}, exact=True)
    kinds = child_types(model)
    assert nn.ConstantPad2d in kinds and nn.AvgPool2d in kinds


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("spatial,kernel", [((9, 8), [3, 2]), ((7, 10), [2, 3]), ((11,), [4])], ids=str)
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_average_pool_same_stride_2(auto_pad, count_include_pad, spatial, kernel, dynamic):
    x = integers(1, 2, *spatial)
    model = single_node_model("AveragePool", {"x": x}, {"auto_pad": auto_pad, "kernel_shape": kernel,
                                                         "strides": [2] * len(spatial),
                                                         "count_include_pad": count_include_pad})
    if dynamic:
        model = symbolic(model)
    assert_matches_ort(model, {"x": x}, exact=True)


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize(
    "spatial,attrs",
    [
        ((9, 8), {"kernel_shape": [2, 2], "dilations": [2, 2]}),
        ((9, 8), {"kernel_shape": [3, 2], "strides": [2, 1], "dilations": [2, 3], "pads": [1, 1, 2, 0],
                  "ceil_mode": 1}),
        ((10,), {"kernel_shape": [3], "strides": [3], "dilations": [2], "pads": [1, 1], "ceil_mode": 1}),
        ((5, 6, 7), {"kernel_shape": [2, 2, 2], "dilations": [2, 1, 2], "pads": [1, 0, 1, 0, 1, 1]}),
    ],
    ids=str,
)
def test_average_pool_dilations_opset_19(count_include_pad, spatial, attrs):
    x = integers(2, 2, *spatial)
    model = single_node_model("AveragePool", {"x": x}, dict(attrs, count_include_pad=count_include_pad), opset=19)
    assert_matches_ort(model, {"x": x}, exact=True)


@pytest.mark.parametrize("opset", [7, 10, 11])
def test_average_pool_older_opsets(opset):
    x = integers(1, 2, 7, 6)
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 1, 1, 0], "count_include_pad": 1}
    if opset >= 10:
        attrs["ceil_mode"] = 1
    model = single_node_model("AveragePool", {"x": x}, attrs, opset=opset)
    assert_matches_ort(model, {"x": x}, exact=True)


# --- LpPool ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize(
    "spatial,attrs",
    [
        ((9, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 0, 1]}),
        ((9, 8), {"kernel_shape": [2, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2]}),
        ((9, 8), {"kernel_shape": [2, 2], "dilations": [2, 2], "strides": [2, 1], "pads": [1, 1, 0, 0],
                  "ceil_mode": 1}),
        ((11,), {"kernel_shape": [3], "strides": [2], "pads": [0, 1]}),
    ],
    ids=str,
)
def test_lp_pool(p, spatial, attrs):
    """ONNX sums |x|^p: negative inputs matter for odd p."""
    x = randn(2, 3, *spatial)
    model = single_node_model("LpPool", {"x": x}, dict(attrs, p=p), opset=18)
    assert_matches_ort(model, {"x": x}, rtol=1e-5, atol=1e-5)


# --- Global pools ---------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"])
@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 3, 5, 6), (1, 2, 3, 4, 5)], ids=str)
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_global_pools(op, shape, dynamic):
    x = randn(*shape)
    model = single_node_model(op, {"x": x}, {"p": 3} if op == "GlobalLpPool" else {})
    if dynamic:
        model = symbolic(model, axes=(0, 2, 3, 4))
    assert_matches_ort(model, {"x": x}, rtol=1e-5, atol=1e-6)


def test_global_pool_unknown_rank():
    x = randn(2, 3, 4, 5)
    for op in ("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"):
        model = single_node_model(op, {"x": x}, {})
        model.graph.input[0].type.tensor_type.ClearField("shape")
        assert_matches_ort(model, {"x": x}, rtol=1e-5, atol=1e-6)


# --- MaxUnpool ------------------------------------------------------------------------------------
def _pool_unpool_model(shape: tuple[int, ...], with_output_shape: bool) -> onnx.ModelProto:
    pool = oh.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2], strides=[2, 2])
    unpool_inputs = ["y", "i", "shape"] if with_output_shape else ["y", "i"]
    unpool = oh.make_node("MaxUnpool", unpool_inputs, ["z"], kernel_shape=[2, 2], strides=[2, 2])
    nodes = [pool, unpool]
    if with_output_shape:
        nodes.insert(0, oh.make_node("Shape", ["x"], ["shape"]))
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [oh.make_tensor_value_info("z", TensorProto.FLOAT, None)])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 11)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("shape", [(1, 2, 4, 6), (2, 3, 5, 7)], ids=str)
def test_max_unpool_round_trip_odd_size(shape):
    """MaxPool -> MaxUnpool(output_shape = the pooled input's shape) puts every max back."""
    x = RNG.permutation(int(np.prod(shape))).reshape(shape).astype(np.float32)
    model = _pool_unpool_model(shape, with_output_shape=True)
    got = assert_matches_ort(model, {"x": x}, exact=True)
    assert got[0].shape == shape


def test_max_unpool_default_shape_and_constant_output_shape():
    x = RNG.permutation(48).reshape(1, 3, 4, 4).astype(np.float32)
    assert_matches_ort(_pool_unpool_model((1, 3, 4, 4), with_output_shape=False), {"x": x}, exact=True)
    values = randn(1, 1, 2, 2)
    indices = np.array([[[[0, 3], [9, 14]]]], dtype=np.int64)
    model = single_node_model("MaxUnpool", {"v": values, "i": indices}, {"kernel_shape": [2, 2], "strides": [2, 2]},
                              initializers={"shape": np.array([1, 1, 5, 5], dtype=np.int64)}, opset=11)
    got = assert_matches_ort(model, {"v": values, "i": indices}, exact=True)
    assert got[0].shape == (1, 1, 5, 5)


# --- MaxRoiPool -----------------------------------------------------------------------------------
@pytest.mark.parametrize("spatial_scale", [1.0, 0.5, 0.25])
def test_max_roi_pool(spatial_scale):
    x = randn(2, 3, 9, 10)
    # (batch, x1, y1, x2, y2) in feature-map units: halves (C's round goes away from zero), a
    # point, boxes past the border, an inverted box (forced to 1x1).
    rois = np.array([[0, 0, 0, 8, 7], [1, 2.5, 1.5, 6, 8], [0, 5, 5, 5, 5], [1, -3, -2, 30, 40],
                     [0, 7, 6, 2, 1], [1, 1, 2, 3, 3.5]], dtype=np.float32)
    rois[:, 1:] /= spatial_scale  # ... written in input-image units
    model = single_node_model("MaxRoiPool", {"x": x, "rois": rois},
                              {"pooled_shape": [3, 4], "spatial_scale": spatial_scale}, opset=16)
    assert_matches_ort(model, {"x": x, "rois": rois}, exact=True)
