"""Convolution converters: the traps against onnxruntime — asymmetric
pads, SAME_UPPER/SAME_LOWER with stride 2 (static and run-time sizes), groups and dilations,
weights computed at run time, ConvTranspose's output_padding / output_shape / asymmetric crops,
and DeformConv.
ONNX's own node cases for these ops run in tests/test_conformance.py."""
from __future__ import annotations


import numpy as np
import onnx
import pytest
from torch import nn

from onnx.reference import ReferenceEvaluator

from onnx2torch import ConvertModel
from onnx2torch.errors import ConversionError
from onnx2torch.verify import run_onnxruntime
from tests.helpers import assert_matches_ort, convert_and_run, single_node_model

RNG = np.random.default_rng(0)


def randn(*shape: int, dtype=np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def integers(*shape: int) -> np.ndarray:
    """Small integer-valued floats: every sum of products is exact, so results compare bit for bit."""
    return RNG.integers(-4, 5, shape).astype(np.float32)


def symbolic(model: onnx.ModelProto, axes: tuple[int, ...] = (2, 3, 4)) -> onnx.ModelProto:
    """``model`` with the first graph input's spatial sizes made symbolic."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for axis in axes:
        if axis < len(dims):
            dims[axis].dim_param = f"s{axis}"
    return model


def layers(model: onnx.ModelProto) -> list[type]:
    return [type(m) for m in ConvertModel(model, simplify=False).modules()]


# --- Conv -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spatial,pads",
    [
        ((9,), [2, 0]),
        ((7, 8), [1, 0, 0, 2]),
        ((7, 8), [0, 2, 1, 1]),
        ((5, 6, 7), [1, 0, 2, 0, 1, 1]),
    ],
    ids=str,
)
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_conv_asymmetric_pads(spatial, pads, dynamic):
    rank = len(spatial)
    x = integers(2, 4, *spatial)
    w = integers(6, 2, *([3] * rank))
    model = single_node_model("Conv", {"x": x}, {"pads": pads, "group": 2, "strides": [2] * rank},
                              initializers={"w": w, "b": integers(6)})
    if dynamic:
        model = symbolic(model)
    assert_matches_ort(model, {"x": x}, exact=True)
    kinds = layers(model)
    assert {nn.Conv1d, nn.Conv2d, nn.Conv3d} & set(kinds)
    assert {nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d} & set(kinds)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize("spatial", [(9, 8), (7, 10), (11,), (5, 6, 7)], ids=str)
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_conv_same_stride_2(auto_pad, spatial, dynamic):
    rank = len(spatial)
    x = integers(1, 3, *spatial)
    w = integers(4, 3, *([4, 3, 2][:rank]))  # odd and even kernels: odd total pads
    model = single_node_model("Conv", {"x": x}, {"auto_pad": auto_pad, "strides": [2] * rank},
                              initializers={"w": w})
    if dynamic:
        model = symbolic(model)
        # one converted model serves other sizes too
        other = integers(1, 3, *[n + 3 for n in spatial])
        expected = run_onnxruntime(model, {"x": other})[0]
        np.testing.assert_array_equal(convert_and_run(model, {"x": other})[0], expected)
    assert_matches_ort(model, {"x": x}, exact=True)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_conv_same_with_dilation_follows_the_spec(auto_pad):
    """onnxruntime refuses SAME with dilations; the spec pads for the dilated kernel, which is the
    same as explicit pads computed by its formula."""
    x = integers(1, 2, 9, 8)
    w = integers(3, 2, 3, 2)
    attrs = {"strides": [2, 2], "dilations": [2, 3]}
    model = single_node_model("Conv", {"x": x}, dict(attrs, auto_pad=auto_pad), initializers={"w": w})
    pads = []
    for size, k, s, d in zip((9, 8), (3, 2), (2, 2), (2, 3)):
        out = -(-size // s)
        pads.append(max(0, (out - 1) * s + (k - 1) * d + 1 - size))
    small = [p // 2 for p in pads]
    begin = [p - q for p, q in zip(pads, small)] if auto_pad == "SAME_LOWER" else small
    end = [p - b for p, b in zip(pads, begin)]
    explicit = single_node_model("Conv", {"x": x}, dict(attrs, pads=begin + end), initializers={"w": w})
    np.testing.assert_array_equal(convert_and_run(model, {"x": x})[0], run_onnxruntime(explicit, {"x": x})[0])


@pytest.mark.parametrize(
    "attrs",
    [
        {},
        {"pads": [1, 1, 1, 1]},
        {"strides": [2, 1], "dilations": [1, 2], "pads": [2, 1, 2, 1]},
        {"auto_pad": "VALID", "strides": [2, 2]},
        {"group": 3},
        {"kernel_shape": [3, 3], "pads": [0, 1, 0, 1]},
    ],
    ids=str,
)
def test_conv_native_layer(attrs):
    x = randn(2, 3, 9, 10)
    group = attrs.get("group", 1)
    model = single_node_model("Conv", {"x": x}, attrs,
                              initializers={"w": randn(6, 3 // group, 3, 3), "b": randn(6)})
    assert_matches_ort(model, {"x": x})
    module = ConvertModel(model, simplify=False)
    conv = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    assert len(conv) == 1 and conv[0].weight.requires_grad and conv[0].bias is not None


def test_conv_depthwise_3d_double():
    """onnxruntime has no double Conv kernel: ONNX's reference evaluator is the yardstick."""
    x = randn(1, 4, 5, 6, 7, dtype=np.float64)
    model = single_node_model("Conv", {"x": x}, {"group": 4, "pads": [1, 1, 1, 1, 1, 1], "dilations": [1, 2, 1]},
                              initializers={"w": randn(8, 1, 3, 3, 3, dtype=np.float64)})
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    got = convert_and_run(model, {"x": x})[0]
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "attrs",
    [{"pads": [1, 1, 1, 1]}, {"pads": [0, 1, 2, 0], "strides": [2, 2]}, {"auto_pad": "SAME_LOWER", "strides": [2, 2]}],
    ids=str,
)
@pytest.mark.parametrize("with_bias", [False, True])
def test_conv_weights_at_run_time(attrs, with_bias):
    """Weights that are graph inputs go through the functional form."""
    x, w, b = integers(2, 3, 8, 7), integers(4, 3, 3, 2), integers(4)
    inputs = {"x": x, "w": w, "b": b} if with_bias else {"x": x, "w": w}
    model = single_node_model("Conv", inputs, attrs)
    assert_matches_ort(model, inputs, exact=True)


def test_conv_bias_at_run_time_constant_weight():
    x, b = integers(1, 3, 6, 6), integers(4)
    model = single_node_model("Conv", {"x": x, "b": b}, {"pads": [1, 1, 1, 1]},
                              initializers={"w": integers(4, 3, 3, 3)})
    # single_node_model orders graph inputs before initializers: rewire to (x, w, b).
    node = model.graph.node[0]
    node.input[:] = ["x", "w", "b"]
    assert_matches_ort(model, {"x": x, "b": b}, exact=True)


def test_conv_opset_1():
    """onnxruntime has no Conv-1 kernel: the same node at opset 11 is the reference."""
    x, w = randn(1, 2, 6, 6), randn(3, 2, 3, 3)
    attrs = {"pads": [1, 0, 1, 0]}
    old = single_node_model("Conv", {"x": x}, attrs, initializers={"w": w}, opset=1)
    new = single_node_model("Conv", {"x": x}, attrs, initializers={"w": w}, opset=11)
    np.testing.assert_allclose(convert_and_run(old, {"x": x})[0], run_onnxruntime(new, {"x": x})[0],
                               rtol=1e-5, atol=1e-5)


def test_conv_unsupported_rank_is_loud():
    x = randn(1, 1, 2, 2, 2, 2)
    model = single_node_model("Conv", {"x": x}, {}, initializers={"w": randn(1, 1, 1, 1, 1, 1)})
    with pytest.raises(ConversionError, match="spatial rank"):
        ConvertModel(model, simplify=False)


def test_conv_kernel_shape_mismatch_is_loud():
    x = randn(1, 1, 5, 5)
    model = single_node_model("Conv", {"x": x}, {"kernel_shape": [2, 2]}, initializers={"w": randn(1, 1, 3, 3)})
    with pytest.raises(ConversionError, match="kernel_shape"):
        ConvertModel(model, simplify=False)


# --- ConvTranspose --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "attrs",
    [
        {"strides": [2, 2]},
        {"strides": [2, 2], "pads": [1, 1, 1, 1]},
        {"strides": [2, 3], "output_padding": [1, 2]},
        {"strides": [2, 2], "pads": [1, 0, 0, 1], "output_padding": [1, 1]},
        {"strides": [3, 2], "pads": [0, 2, 1, 0]},
        {"strides": [2, 2], "dilations": [2, 1], "pads": [1, 0, 2, 1]},
        {"strides": [2, 2], "output_shape": [10, 8]},
        {"strides": [2, 2], "output_shape": [9, 8], "output_padding": [1, 0]},
        {"strides": [3, 2], "output_shape": [13, 11]},  # longer than the kernels reach: zeros appended
        {"strides": [2, 2], "output_shape": [9, 9], "auto_pad": "SAME_UPPER"},
        {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
        {"strides": [2, 2], "auto_pad": "SAME_LOWER"},
        {"strides": [2, 1], "auto_pad": "SAME_LOWER", "output_padding": [1, 0]},
        {"strides": [2, 2], "auto_pad": "VALID"},
        {"strides": [2, 2], "group": 2, "pads": [0, 1, 1, 0]},
    ],
    ids=str,
)
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_conv_transpose(attrs, dynamic):
    x = integers(2, 4, 4, 5)
    group = attrs.get("group", 1)
    model = single_node_model("ConvTranspose", {"x": x}, attrs,
                              initializers={"w": integers(4, 6 // group, 3, 4), "b": integers(6)})
    if dynamic:
        model = symbolic(model)
    assert_matches_ort(model, {"x": x}, exact=True)


@pytest.mark.parametrize(
    "shape,attrs",
    [
        ((1, 2, 7), {"strides": [3], "pads": [2, 0], "output_padding": [2]}),
        ((1, 2, 7), {"strides": [2], "output_shape": [16]}),
        ((1, 2, 3, 4, 3), {"strides": [2, 1, 2], "pads": [1, 0, 0, 0, 1, 1]}),
        ((1, 2, 3, 4, 3), {"strides": [1, 2, 2], "auto_pad": "SAME_UPPER"}),
    ],
    ids=str,
)
def test_conv_transpose_1d_3d(shape, attrs):
    x = integers(*shape)
    kernel = [3, 2, 3][: len(shape) - 2]
    model = single_node_model("ConvTranspose", {"x": x}, attrs, initializers={"w": integers(2, 3, *kernel)})
    assert_matches_ort(model, {"x": x}, exact=True)


def test_conv_transpose_symmetric_is_native():
    x = randn(1, 3, 5, 5)
    attrs = {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}
    model = single_node_model("ConvTranspose", {"x": x}, attrs,
                              initializers={"w": randn(3, 2, 3, 3), "b": randn(2)})
    assert_matches_ort(model, {"x": x})
    module = ConvertModel(model, simplify=False)
    assert [type(m) for m in module.children()] == [nn.ConvTranspose2d]


@pytest.mark.parametrize(
    "attrs",
    [{"strides": [2, 2], "pads": [1, 0, 0, 1]}, {"strides": [2, 2], "output_shape": [9, 10]},
     {"strides": [2, 2], "auto_pad": "SAME_LOWER", "output_padding": [1, 1]}],
    ids=str,
)
def test_conv_transpose_weights_at_run_time(attrs):
    x, w, b = integers(1, 2, 4, 5), integers(2, 3, 3, 3), integers(3)
    model = single_node_model("ConvTranspose", {"x": x, "w": w, "b": b}, attrs)
    assert_matches_ort(model, {"x": x, "w": w, "b": b}, exact=True)


# --- DeformConv -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "attrs,with_mask",
    [({}, False), ({"pads": [1, 1, 1, 1], "strides": [2, 1]}, True),
     ({"group": 2, "offset_group": 2, "dilations": [2, 1], "pads": [1, 0, 1, 0]}, True)],
    ids=str,
)
def test_deform_conv(attrs, with_mask):
    x = randn(2, 4, 7, 6)
    group, offset_group = attrs.get("group", 1), attrs.get("offset_group", 1)
    w = randn(6, 4 // group, 3, 2)
    begin, end = attrs.get("pads", [0] * 4)[:2], attrs.get("pads", [0] * 4)[2:]
    s, d = attrs.get("strides", [1, 1]), attrs.get("dilations", [1, 1])
    out = [(n + b + e - (k - 1) * dd - 1) // ss + 1 for n, b, e, k, ss, dd in zip((7, 6), begin, end, (3, 2), s, d)]
    offset = (randn(2, offset_group * 6 * 2, *out) * 1.5).astype(np.float32)
    inputs = {"x": x, "w": w, "offset": offset, "b": randn(6)}
    if with_mask:
        inputs["mask"] = RNG.uniform(0, 1, (2, offset_group * 6, *out)).astype(np.float32)
    model = single_node_model("DeformConv", inputs, attrs, opset=19)
    assert_matches_ort(model, inputs, atol=1e-4)
