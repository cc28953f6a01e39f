"""Activation converters (Relu ... Swish, Softmax family, Clip, Dropout): every op against onnxruntime on random data with edge attributes, and the traps (PRelu's
broadcasting, Softmax's opset-13 axis change, Clip bounds, Dropout train/eval).
ONNX's own node cases for these ops run in tests/test_conformance.py."""
from __future__ import annotations


import numpy as np
import onnx
import onnx.helper as oh
import pytest
import torch
from onnx.reference import ReferenceEvaluator
from torch import nn

from onnx2torch import ConvertModel
from onnx2torch.dtypes import to_torch
from tests.helpers import assert_matches_ort, convert_and_run, single_node_model

RNG = np.random.default_rng(0)


def randn(*shape: int, dtype=np.float32, scale: float = 2.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(dtype)


def modules_of(model: onnx.ModelProto) -> list[nn.Module]:
    return list(ConvertModel(model, simplify=False).modules())


def check_node_case(case) -> None:
    """Convert an ONNX node case and compare every data set: rtol 1e-3, atol 1e-5, exact dtypes."""
    module = ConvertModel(case.model, simplify=False)
    for inputs, expected in case.data_sets:
        with torch.no_grad():
            got = module(*[to_torch(np.asarray(a)) for a in inputs])
        got = got if isinstance(got, (tuple, list)) else [got]
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            e = np.asarray(e)
            assert str(g.dtype) == f"torch.{e.dtype}", f"dtype {g.dtype} != {e.dtype}"
            if g.dtype == torch.bfloat16:
                g, e = g.float(), e.astype(np.float32)
            np.testing.assert_allclose(g.numpy(), e, rtol=1e-3, atol=1e-5)


#: Cases whose expected values cannot be reproduced, with the reason.
NODE_CASE_EXCLUDES = {
    "test_training_dropout": "random: expects numpy RandomState(seed)'s draws",
    "test_training_dropout_default": "random: expects numpy RandomState(seed)'s draws",
    "test_training_dropout_default_mask": "random: expects numpy RandomState(seed)'s draws",
    "test_training_dropout_mask": "random: expects numpy RandomState(seed)'s draws",
}


# --- simple elementwise activations -------------------------------------------------------------
@pytest.mark.parametrize(
    "op,attrs,opset",
    [
        ("Relu", {}, 6),
        ("Relu", {}, 14),
        ("LeakyRelu", {}, 6),
        ("LeakyRelu", {"alpha": 0.2}, 16),
        ("LeakyRelu", {"alpha": -1.5}, 16),
        ("Elu", {}, 6),
        ("Elu", {"alpha": 0.3}, 22),
        ("Selu", {}, 6),
        ("Selu", {"alpha": 2.0, "gamma": 3.0}, 22),
        ("Celu", {}, 12),
        ("Celu", {"alpha": 2.5}, 12),
        ("Sigmoid", {}, 13),
        ("Tanh", {}, 13),
        ("HardSigmoid", {}, 6),
        ("HardSigmoid", {"alpha": 1.0 / 6.0, "beta": 0.5}, 22),
        ("HardSigmoid", {"alpha": -0.4, "beta": 0.1}, 22),
        ("HardSwish", {}, 14),
        ("Softplus", {}, 1),
        ("Softsign", {}, 1),
        ("Gelu", {}, 20),
        ("Gelu", {"approximate": "tanh"}, 20),
        ("Mish", {}, 18),
        ("ThresholdedRelu", {}, 10),
        ("ThresholdedRelu", {"alpha": -0.5}, 22),
        ("Shrink", {}, 9),
        ("Shrink", {"lambd": 1.0, "bias": 1.0}, 9),
        ("Shrink", {"lambd": 0.7, "bias": -0.3}, 9),
        ("Swish", {}, 24),
        ("Swish", {"alpha": 0.35}, 24),
    ],
    ids=lambda v: str(v),
)
def test_activation_matches_ort(op, attrs, opset):
    x = randn(2, 3, 4, 5, scale=4.0)
    assert_matches_ort(single_node_model(op, {"x": x}, attrs, opset=opset), {"x": x}, atol=1e-5)


@pytest.mark.parametrize(
    "op,attrs,layer",
    [
        ("HardSigmoid", {}, None),
        ("HardSigmoid", {"alpha": 1.0 / 6.0}, nn.Hardsigmoid),
        ("Selu", {}, nn.SELU),
        ("Selu", {"gamma": 1.0}, None),
        ("Shrink", {}, nn.Hardshrink),
        ("Shrink", {"lambd": 0.25, "bias": 0.25}, nn.Softshrink),
        ("Swish", {}, nn.SiLU),
        ("ThresholdedRelu", {"alpha": 0.5}, nn.Threshold),
    ],
    ids=str,
)
def test_native_layer_only_when_exact(op, attrs, layer):
    """A torch layer is used only where its fixed constants are the node's."""
    x = randn(3, 4)
    model = single_node_model(op, {"x": x}, attrs, opset=24 if op == "Swish" else 22 if op != "Shrink" else 9)
    found = [m for m in modules_of(model) if type(m).__module__.startswith("torch.nn")]
    if layer is None:
        assert not found
    else:
        assert [type(m) for m in found] == [layer]
    assert_matches_ort(model, {"x": x})


def test_leaky_relu_alpha_reads_as_written():
    """Float32 attributes read as their shortest decimal (0.01, not 0.009999999776482582)."""
    x = randn(3, 4)
    module = ConvertModel(single_node_model("LeakyRelu", {"x": x}, {"alpha": 0.01}, opset=16), simplify=False)
    assert "negative_slope=0.01," in repr(module) or "negative_slope=0.01)" in repr(module)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.float16, np.float64])
def test_relu_dtypes(dtype):
    x = (randn(4, 5, scale=20.0)).astype(dtype)
    model = single_node_model("Relu", {"x": x}, opset=14)
    got = convert_and_run(model, {"x": x})[0]
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, np.maximum(x, 0))


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64])
@pytest.mark.parametrize("lambd,bias", [(1.5, 1.5), (1.0, 0.7), (2.0, -1.2), (0.0, 0.0)])
def test_shrink_integers(dtype, lambd, bias):
    """Integer Shrink: computed in floating point, truncated back (onnxruntime's arithmetic)."""
    x = np.arange(0, 30, dtype=dtype) if dtype == np.uint8 else np.arange(-15, 15).astype(dtype)
    assert_matches_ort(single_node_model("Shrink", {"x": x}, {"lambd": lambd, "bias": bias}, opset=9), {"x": x}, exact=True)


@pytest.mark.parametrize("op", ["Sigmoid", "Tanh", "HardSwish", "Softplus", "Gelu", "LeakyRelu", "Elu"])
def test_float16_and_double(op):
    for dt in (np.float16, np.float64):
        x = randn(3, 4, dtype=dt)
        opset = 20 if op == "Gelu" else 22
        model = single_node_model(op, {"x": x}, opset=opset)
        try:
            expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
        except Exception:  # noqa: BLE001 - the reference lacks a few
            continue
        got = convert_and_run(model, {"x": x})[0]
        assert got.dtype == dt
        np.testing.assert_allclose(got, expected, rtol=2e-3 if dt == np.float16 else 1e-6, atol=1e-3 if dt == np.float16 else 1e-7)


def test_softplus_large_inputs():
    """nn.Softplus returns x above 20: the same as ln(exp(x) + 1) in float32."""
    x = np.array([[-100.0, -20.0, 0.0, 19.0, 20.5, 30.0, 88.0, 1000.0]], np.float32)
    assert_matches_ort(single_node_model("Softplus", {"x": x}, opset=22), {"x": x}, rtol=1e-6)


# --- PRelu --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "x_shape,slope_shape,native",
    [
        ((2, 3, 4, 5), (1,), True),
        ((2, 3, 4, 5), (3, 1, 1), True),
        ((2, 3, 4, 5), (1, 3, 1, 1), True),
        ((2, 5, 4, 3), (3,), False),  # [C] lines up with the LAST dim (W), not the channels
        ((2, 3, 4, 5), (4, 5), False),
        ((2, 3, 4, 5), (3, 4, 5), False),
        ((2, 3, 4, 5), (2, 3, 4, 5), False),
        ((6, 3), (3,), True),
        ((6, 3, 7), (3, 1), True),
        ((5,), (5,), False),
    ],
    ids=str,
)
@pytest.mark.parametrize("slope_constant", [True, False], ids=["const_slope", "input_slope"])
def test_prelu_broadcasting(x_shape, slope_shape, native, slope_constant):
    x, slope = randn(*x_shape), randn(*slope_shape, scale=0.5)
    if slope_constant:
        model = single_node_model("PRelu", {"x": x}, initializers={"slope": slope}, opset=16)
    else:
        model = single_node_model("PRelu", {"x": x, "slope": slope}, opset=16)
    assert_matches_ort(model, {"x": x, "slope": slope}, exact=True)
    has_prelu = any(isinstance(m, nn.PReLU) for m in modules_of(model))
    assert has_prelu == (native and slope_constant)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float16])
def test_prelu_dtypes(dtype):
    x = randn(2, 3, 4, scale=10.0).astype(dtype)
    slope = np.array([2, 3, 1], dtype).reshape(3, 1)
    model = single_node_model("PRelu", {"x": x}, initializers={"slope": slope}, opset=16)
    assert_matches_ort(model, {"x": x}, exact=dtype != np.float16, atol=1e-2)


def test_prelu_trains_its_slope():
    x, slope = randn(2, 3, 4, 4), randn(3, 1, 1)
    module = ConvertModel(single_node_model("PRelu", {"x": x}, initializers={"slope": slope}, opset=9), simplify=False)
    params = list(module.parameters())
    assert len(params) == 1 and params[0].shape == (3,) and params[0].requires_grad


@pytest.mark.parametrize("slope_shape", [(1,), (3,), (3, 4, 4)])
def test_prelu_opset6_per_channel(slope_shape):
    """PRelu-1/6: a 1-D slope is one per channel (dimension 1), the pre-broadcasting semantics."""
    x, slope = randn(2, 3, 4, 4), randn(*slope_shape)
    model = single_node_model("PRelu", {"x": x}, initializers={"slope": slope}, opset=6)
    per_channel = slope.reshape(3, 1, 1) if slope.ndim == 1 and slope.size == 3 else slope
    expected = np.where(x < 0, x * per_channel, x)
    np.testing.assert_allclose(convert_and_run(model, {"x": x})[0], expected, rtol=1e-6)


# --- Softmax / LogSoftmax / Hardmax ---------------------------------------------------------------
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("opset", [1, 11, 13])
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, -2])
def test_softmax_family(op, opset, axis):
    """Before opset 13 the input is coerced to 2-D at axis (default 1); from 13 per axis (default -1)."""
    if opset == 1 and axis is not None and axis < 0:
        pytest.skip("negative axes arrive with opset 11")
    x = randn(2, 3, 4)
    x[0, 1, 2] = x[0, 1, 1] = 9.0  # a tie: Hardmax takes the first maximum
    attrs = {} if axis is None else {"axis": axis}
    model = single_node_model(op, {"x": x}, attrs, opset=opset)
    assert_matches_ort(model, {"x": x}, atol=1e-6)


def test_softmax_default_axis_changes_at_13():
    x = randn(2, 3, 4)
    old = convert_and_run(single_node_model("Softmax", {"x": x}, opset=11), {"x": x})[0]
    new = convert_and_run(single_node_model("Softmax", {"x": x}, opset=13), {"x": x})[0]
    np.testing.assert_allclose(old.reshape(2, -1).sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(new.sum(-1), 1.0, rtol=1e-6)


def test_softmax_symbolic_shape():
    """The 2-D coercion works on symbolic shapes (no static shape is read)."""
    x = randn(2, 3, 4)
    model = single_node_model("Softmax", {"x": x}, {"axis": 1}, opset=11)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "len"
    for shape in [(2, 3, 4), (5, 3, 7)]:
        x = randn(*shape)
        assert_matches_ort(model, {"x": x}, atol=1e-6)


# --- Clip -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("attrs", [{}, {"min": -1.0}, {"max": 0.5}, {"min": -1.0, "max": 0.5}], ids=str)
def test_clip_opset6_attributes(attrs):
    x = randn(3, 4)
    assert_matches_ort(single_node_model("Clip", {"x": x}, attrs, opset=6), {"x": x}, exact=True)


def test_clip_opset6_default_bounds_clip_infinity():
    x = np.array([-np.inf, -1.0, np.inf], np.float32)
    assert_matches_ort(single_node_model("Clip", {"x": x}, opset=6), {"x": x}, exact=True)


def test_clip_opset1_without_attributes_is_identity():
    x = np.array([-np.inf, -1.0, np.inf], np.float32)
    got = convert_and_run(single_node_model("Clip", {"x": x}, opset=1), {"x": x})[0]
    np.testing.assert_array_equal(got, x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.uint8, np.int32, np.int64])
@pytest.mark.parametrize("bounds", [(None, None), (-2, None), (None, 3), (-2, 3), (4, 1), (0, 6)], ids=str)
@pytest.mark.parametrize("constant", [True, False], ids=["const_bounds", "input_bounds"])
def test_clip_inputs(dtype, bounds, constant):
    """Clip-11+: optional min/max inputs, integer types, min > max gives max."""
    if np.dtype(dtype).kind == "u" and bounds[0] is not None and bounds[0] < 0:
        bounds = (0, bounds[1])
    x = (randn(4, 5, scale=5.0) + (3 if np.dtype(dtype).kind == "u" else 0)).astype(dtype)
    names = ["x", bounds[0] is not None and "lo" or "", bounds[1] is not None and "hi" or ""]
    tensors = {n: np.array(v, dtype) for n, v in zip(("lo", "hi"), bounds) if v is not None}
    while names and not names[-1]:
        names.pop()
    node = oh.make_node("Clip", names, ["y"])
    inputs = [oh.make_tensor_value_info("x", oh.np_dtype_to_tensor_dtype(np.dtype(dtype)), x.shape)]
    inits = []
    for name, value in tensors.items():
        if constant:
            inits.append(onnx.numpy_helper.from_array(value, name))
        else:
            inputs.append(oh.make_tensor_value_info(name, oh.np_dtype_to_tensor_dtype(np.dtype(dtype)), []))
    graph = oh.make_graph([node], "clip", inputs, [oh.make_empty_tensor_value_info("y")], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    model.ir_version = 8
    feeds = {"x": x, **({} if constant else tensors)}
    assert_matches_ort(model, feeds, exact=True)


def test_clip_relu6_is_native():
    x = randn(3, 4, scale=5.0)
    model = single_node_model("Clip", {"x": x}, initializers={"lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32)}, opset=13)
    assert any(isinstance(m, nn.ReLU6) for m in modules_of(model))
    assert_matches_ort(model, {"x": x}, exact=True)


# --- Dropout --------------------------------------------------------------------------------------
def _dropout_model(opset: int, *, ratio=None, training=None, mask: bool = False, attrs=None, dynamic=()):
    x = randn(8, 64)
    names, inits, inputs = ["x"], [], [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x.shape)]
    feeds = {"x": x}
    for name, value in (("ratio", ratio), ("training_mode", training)):
        if value is None:
            names.append("")
            continue
        names.append(name)
        if name in dynamic:
            inputs.append(oh.make_tensor_value_info(name, oh.np_dtype_to_tensor_dtype(value.dtype), []))
            feeds[name] = value
        else:
            inits.append(onnx.numpy_helper.from_array(value, name))
    while not names[-1]:
        names.pop()
    node = oh.make_node("Dropout", names, ["y", "mask"] if mask else ["y"], **(attrs or {}))
    graph = oh.make_graph([node], "dropout", inputs, [oh.make_empty_tensor_value_info("y")] + ([oh.make_empty_tensor_value_info("mask")] if mask else []), inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 8
    return model, feeds


@pytest.mark.parametrize("opset,attrs", [(7, {}), (10, {"ratio": 0.3}), (12, {}), (13, {})], ids=str)
@pytest.mark.parametrize("mask", [False, True])
def test_dropout_inference_is_identity(opset, attrs, mask):
    model, feeds = _dropout_model(opset, mask=mask, attrs=attrs)
    got = convert_and_run(model, feeds)
    expected = ReferenceEvaluator(model).run(None, feeds)
    np.testing.assert_array_equal(got[0], feeds["x"])
    if mask:
        # NOTE: onnxruntime leaves the mask of Dropout-7/10 all false; the spec (and the
        # reference) keep every element, i.e. all true, which Dropout-12 states outright.
        assert got[1].all()
        assert got[1].dtype == (np.float32 if opset < 10 else np.bool_)
        np.testing.assert_array_equal(got[1].astype(bool), expected[1].astype(bool))
    if opset >= 12:
        assert_matches_ort(model, feeds, exact=True)


@pytest.mark.parametrize("dynamic", [(), ("ratio",), ("training_mode",), ("ratio", "training_mode")], ids=str)
def test_dropout_ratio_and_training_mode_inputs(dynamic):
    """training_mode=false (constant or fed) is the identity whatever the ratio."""
    model, feeds = _dropout_model(13, ratio=np.array(0.4, np.float32), training=np.array(False), mask=True, dynamic=dynamic)
    assert_matches_ort(model, feeds, exact=True)


@pytest.mark.parametrize("dynamic", [(), ("ratio",), ("training_mode",)], ids=str)
def test_dropout_training_mode_true_drops(dynamic):
    model, feeds = _dropout_model(13, ratio=np.array(0.25, np.float32), training=np.array(True), mask=True, dynamic=dynamic)
    expected = ReferenceEvaluator(model).run(None, feeds)
    y, mask = convert_and_run(model, feeds)
    assert y.dtype == expected[0].dtype and mask.dtype == expected[1].dtype == np.bool_
    x = feeds["x"]
    np.testing.assert_allclose(y[mask], x[mask] / 0.75, rtol=1e-6)
    assert (y[~mask] == 0).all()
    assert 0.15 < 1 - mask.mean() < 0.35


def test_dropout_module_follows_train_and_eval():
    """The common Dropout becomes nn.Dropout: identity as converted (eval), dropping after train()."""
    model, feeds = _dropout_model(13, ratio=np.array(0.5, np.float32), mask=True)
    module = ConvertModel(model, simplify=False)
    dropouts = [m for m in module.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 1 and dropouts[0].p == 0.5 and not dropouts[0].training
    x = to_torch(feeds["x"])
    y, mask = module(x)
    assert torch.equal(y, x) and mask.all()
    module.train()
    y, mask = module(x)
    assert not mask.all() and torch.allclose(y[mask], x[mask] * 2) and (y[~mask] == 0).all()
    module.eval()
    assert torch.equal(module(x)[0], x)
