"""Loss converters (NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss): every
reduction / weight / ignore_index (positive, negative, out of range) / target type / rank against
onnxruntime, the optional log_prob output, and the native nn loss layers.
ONNX's own node cases for these ops run in tests/test_conformance.py."""
from __future__ import annotations


import numpy as np
import onnx
import pytest
import torch.nn.functional as F
from torch import nn

from onnx2torch import ConvertModel
from onnx2torch.errors import ConversionError
from tests.helpers import assert_matches_ort, single_node_model

RNG = np.random.default_rng(0)


def randn(*shape: int, dtype=np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def targets(shape: tuple[int, ...], classes: int, ignore_index: int | None, dtype=np.int64) -> np.ndarray:
    t = RNG.integers(0, classes, shape)
    if ignore_index is not None:
        t.reshape(-1)[::3] = ignore_index
    return t.astype(dtype)


def calls(model: onnx.ModelProto) -> set:
    module = ConvertModel(model, simplify=False)
    found = set()
    for node in module.graph.nodes:
        if node.op == "call_function":
            found.add(node.target)
        elif node.op == "call_module":
            found.add(type(module.get_submodule(node.target)))
    return found


# --- both losses on random data ---------------------------------------------------------------
SHAPES = [(4, 5), (3, 4, 6), (2, 3, 4, 5), (2, 3, 2, 2, 3)]
IGNORE = [None, 2, -1, -7, 9]  # 9 is beyond the classes: ignored labels only


def _model(op: str, x, t, weight, attrs, opset: int, weight_as: str, outputs=None):
    inputs = {"x": x, "t": t}
    inits = {}
    if weight is not None:
        (inputs if weight_as == "input" else inits)["w"] = weight
    model = single_node_model(op, inputs, attrs, initializers=inits, outputs=outputs, opset=opset)
    return model, inputs


@pytest.mark.parametrize("weight_as", ["none", "input", "initializer"])
@pytest.mark.parametrize("ignore_index", IGNORE, ids=str)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("op", ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"])
def test_loss(op, reduction, ignore_index, weight_as):
    for shape in SHAPES:
        classes = shape[1]
        x = randn(*shape)
        t_shape = (shape[0],) + shape[2:]
        t = targets(t_shape, classes, ignore_index)
        weight = RNG.uniform(0.2, 2.0, classes).astype(np.float32) if weight_as != "none" else None
        attrs = {"reduction": reduction}
        if ignore_index is not None:
            attrs["ignore_index"] = ignore_index
        model, inputs = _model(op, x, t, weight, attrs, 13, weight_as)
        assert_matches_ort(model, inputs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("opset", [12, 13, 22])
@pytest.mark.parametrize("op", ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"])
def test_loss_int32_targets_and_opsets(op, opset):
    x, t = randn(3, 4, 5), targets((3, 5), 4, 1, dtype=np.int32)
    w = RNG.uniform(0.5, 1.5, 4).astype(np.float32)
    model, inputs = _model(op, x, t, w, {"ignore_index": 1}, opset, "input")
    assert_matches_ort(model, inputs)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weight_as", ["none", "input"])
def test_softmax_cross_entropy_log_prob(reduction, weight_as):
    for shape in [(4, 5), (2, 3, 4, 5)]:
        x = randn(*shape)
        t = targets((shape[0],) + shape[2:], shape[1], -3)
        w = RNG.uniform(0.5, 1.5, shape[1]).astype(np.float32) if weight_as != "none" else None
        model, inputs = _model("SoftmaxCrossEntropyLoss", x, t, w, {"reduction": reduction, "ignore_index": -3}, 13,
                               weight_as, outputs=["loss", "log_prob"])
        assert_matches_ort(model, inputs)


@pytest.mark.parametrize("dtype,atol", [(np.float64, 1e-12), (np.float16, 2e-3)], ids=["double", "half"])
@pytest.mark.parametrize("op", ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"])
def test_loss_other_float_types(op, dtype, atol):
    x, t = randn(4, 3, 5, dtype=dtype), targets((4, 5), 3, None)
    w = RNG.uniform(0.5, 1.5, 3).astype(dtype)
    model, inputs = _model(op, x, t, w, {"reduction": "mean"}, 13, "input")
    assert_matches_ort(model, inputs, atol=atol, rtol=atol)


def test_mean_over_only_ignored_targets_is_nan():
    x, t = randn(3, 4), np.full(3, 2, np.int64)
    model, inputs = _model("NegativeLogLikelihoodLoss", x, t, None, {"ignore_index": 2}, 13, "none")
    got = assert_matches_ort(model, inputs)
    assert np.isnan(got[0])


def test_native_loss_layers():
    x, t = randn(3, 4), targets((3,), 4, None)
    w = RNG.uniform(0.5, 1.5, 4).astype(np.float32)
    model, _ = _model("NegativeLogLikelihoodLoss", x, t, w, {"ignore_index": 1}, 13, "initializer")
    assert nn.NLLLoss in calls(model)
    layer = next(m for m in ConvertModel(model, simplify=False).modules() if isinstance(m, nn.NLLLoss))
    assert layer.ignore_index == 1 and layer.reduction == "mean"
    np.testing.assert_array_equal(layer.weight.numpy(), w)
    model, _ = _model("SoftmaxCrossEntropyLoss", x, t, None, {"reduction": "sum"}, 13, "none")
    assert nn.CrossEntropyLoss in calls(model)
    model, _ = _model("SoftmaxCrossEntropyLoss", x, t, w, {}, 13, "input")
    assert F.cross_entropy in calls(model)


@pytest.mark.parametrize("op", ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"])
def test_unknown_reduction_is_loud(op):
    x, t = randn(3, 4), targets((3,), 4, None)
    model, _ = _model(op, x, t, None, {"reduction": "max"}, 13, "none")
    with pytest.raises(ConversionError, match="reduction"):
        ConvertModel(model, simplify=False)
