"""Reduction converters (ReduceSum ... ReduceSumSquare, ArgMax, ArgMin): every reduction against onnxruntime with axes as attribute (old opsets) and as input (new
ones), keepdims 0/1, noop_with_empty_axes, integer dtypes, empty reductions and axes computed at
run time.
ONNX's own node cases for these ops run in tests/test_conformance.py."""
from __future__ import annotations


import numpy as np
import onnx
import onnx.helper as oh
import pytest
import torch
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

import onnx2torch.ops.cast  # noqa: F401 - Cast / CastLike of the "_expanded" cases
from onnx2torch import ConvertModel
from onnx2torch.dtypes import to_torch
from onnx2torch.errors import VerificationError
from tests.helpers import assert_matches_ort, convert_and_run

RNG = np.random.default_rng(0)

#: op -> (first opset with an axes input, an opset before it that takes the axes attribute)
REDUCTIONS = {
    "ReduceSum": (13, 11), "ReduceMean": (18, 13), "ReduceMax": (18, 13), "ReduceMin": (18, 13),
    "ReduceProd": (18, 13), "ReduceL1": (18, 13), "ReduceL2": (18, 13), "ReduceLogSum": (18, 13),
    "ReduceLogSumExp": (18, 13), "ReduceSumSquare": (18, 13),
}


def make_model(op: str, inputs: dict[str, np.ndarray], attrs: dict | None = None, *, opset: int = 18,
               initializers: dict[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """One node over graph inputs (any numpy dtype) and initializers; "" in ``inputs`` order is
    kept as an absent optional input."""
    initializers = initializers or {}
    node = oh.make_node(op, list(inputs) + list(initializers), ["out"], **(attrs or {}))
    graph = oh.make_graph(
        [node], "test",
        [oh.make_tensor_value_info(k, oh.np_dtype_to_tensor_dtype(v.dtype), v.shape) for k, v in inputs.items()],
        [oh.make_empty_tensor_value_info("out")],
        [numpy_helper.from_array(v, k) for k, v in initializers.items()],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def reduce_model(op: str, x: np.ndarray, axes: list[int] | None, keepdims: int, *, axes_as_input: bool,
                 dynamic: bool = False, noop: int | None = None) -> tuple[onnx.ModelProto, dict]:
    """A reduction over ``x`` with axes as attribute or as (constant or graph) input."""
    input_opset, attr_opset = REDUCTIONS[op]
    attrs = {"keepdims": keepdims}
    if noop is not None:
        attrs["noop_with_empty_axes"] = noop
    inputs, initializers = {"x": x}, {}
    if axes_as_input:
        if axes is not None:
            (inputs if dynamic else initializers)["axes"] = np.array(axes, np.int64)
        return make_model(op, inputs, attrs, opset=input_opset, initializers=initializers), inputs
    if axes is not None:
        attrs["axes"] = axes
    return make_model(op, inputs, attrs, opset=attr_opset), inputs


def assert_matches_reference(model: onnx.ModelProto, inputs: dict[str, np.ndarray], *, exact: bool = False,
                             atol: float = 1e-5, rtol: float = 1e-4, ort: bool = True) -> None:
    """Compare with onnxruntime, or with onnx's ReferenceEvaluator where onnxruntime has no kernel
    for the type (or ``ort=False``): dtype, shape and values."""
    if ort:
        try:
            assert_matches_ort(model, inputs, exact=exact, atol=atol, rtol=rtol)
            return
        except VerificationError as exc:
            if "NOT_IMPLEMENTED" not in str(exc) and "Type Error" not in str(exc):
                raise
    expected = ReferenceEvaluator(model).run(None, inputs)
    got = convert_and_run(model, inputs)
    for e, g in zip(expected, got):
        e = np.asarray(e)
        assert g.dtype == e.dtype and g.shape == e.shape, f"{g.dtype}{g.shape} != {e.dtype}{e.shape}"
        if exact:
            np.testing.assert_array_equal(g, e)
        else:
            np.testing.assert_allclose(g, e, atol=atol, rtol=rtol)


# --- ONNX's node cases ------------------------------------------------------------------------
#: Reductions, and the elementwise ops their "_expanded" cases are built from.


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
            assert g.numel() == e.size
            g = g.numpy().reshape(e.shape)
            if e.dtype.kind == "f":
                np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-5)
            else:
                np.testing.assert_array_equal(g, e)


# --- every reduction, attribute and input axes ------------------------------------------------
_AXES = [[1], [0, 2], [-1], [2, -3], None]


@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("axes", _AXES, ids=str)
@pytest.mark.parametrize("axes_as_input", [False, True], ids=["attr", "input"])
@pytest.mark.parametrize("op", sorted(REDUCTIONS))
def test_reduction(op, axes_as_input, axes, keepdims):
    x = RNG.uniform(0.2, 2.0, (3, 4, 5)).astype(np.float32)
    if op in ("ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2", "ReduceSum", "ReduceSumSquare"):
        x = x * np.where(RNG.random(x.shape) < 0.5, -1, 1).astype(np.float32)
    model, inputs = reduce_model(op, x, axes, keepdims, axes_as_input=axes_as_input)
    assert_matches_ort(model, inputs, rtol=1e-4)


@pytest.mark.parametrize("op", sorted(REDUCTIONS))
def test_reduction_axes_computed_at_run_time(op):
    x = RNG.uniform(0.2, 2.0, (3, 4, 5)).astype(np.float32)
    for axes, keepdims in (([0, 2], 1), ([-1], 0)):
        model, inputs = reduce_model(op, x, axes, keepdims, axes_as_input=True, dynamic=True)
        assert_matches_ort(model, inputs, rtol=1e-4)


@pytest.mark.parametrize("noop", [0, 1])
@pytest.mark.parametrize("op", sorted(REDUCTIONS))
def test_reduction_empty_axes(op, noop):
    """No axes: reduce everything, or with noop_with_empty_axes=1 only the elementwise part."""
    x = RNG.uniform(0.2, 2.0, (3, 4)).astype(np.float32)
    model, inputs = reduce_model(op, x, None, 1, axes_as_input=True, noop=noop)
    assert_matches_ort(model, inputs, rtol=1e-4)
    # an empty constant axes tensor means the same as no axes
    input_opset, _ = REDUCTIONS[op]
    model = make_model(op, {"x": x}, {"noop_with_empty_axes": noop}, opset=input_opset,
                       initializers={"axes": np.zeros((0,), np.int64)})
    assert_matches_ort(model, {"x": x}, rtol=1e-4)


@pytest.mark.parametrize("op", ["ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum"])
def test_noop_keeps_elementwise_part(op):
    x = np.array([[-1.5, 2.0], [3.0, 0.5]], np.float32)
    model, inputs = reduce_model(op, np.abs(x) if op == "ReduceLogSum" else x, None, 1, axes_as_input=True, noop=1)
    assert_matches_ort(model, inputs)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
                                "ReduceL1", "ReduceL2", "ReduceSumSquare"])
def test_integer_reductions_exact(op, dtype):
    """Integer reductions keep their dtype (torch would widen sums to int64); means and L2
    truncate toward zero."""
    x = RNG.integers(-9, 10, (3, 4, 5)).astype(dtype)
    if op == "ReduceProd":
        x = RNG.choice([-1, 1, 1, 1, 2], (3, 4, 5)).astype(dtype)  # no overflow (undefined)
    for axes, keepdims in (([1], 1), ([0, 2], 0), (None, 1)):
        model, inputs = reduce_model(op, x, axes, keepdims, axes_as_input=False)
        assert_matches_reference(model, inputs, exact=True)


@pytest.mark.parametrize("dtype", [np.uint32, np.uint64, np.int8, np.uint8])
@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin", "ReduceSum"])
def test_other_integer_types(op, dtype):
    if op == "ReduceSum" and dtype in (np.int8, np.uint8):
        pytest.skip("ReduceSum has no 8-bit types")
    top = int(np.iinfo(dtype).max)
    x = np.array([[0, top, 3], [top // 2 + 1, 1, top - 1]], dtype)
    model, inputs = reduce_model(op, x, [1], 1, axes_as_input=True)
    assert_matches_reference(model, inputs, exact=True)


@pytest.mark.parametrize("op", sorted(REDUCTIONS))
def test_empty_reduction(op):
    """Reducing a zero-size axis: 0 for sums, 1 for products, -inf for max / log-sums, +inf for
    min, NaN for the mean (0 / 0)."""
    x = np.zeros((2, 0, 4), np.float32)
    model, inputs = reduce_model(op, x, [1], 1, axes_as_input=True)
    assert_matches_reference(model, inputs, ort=False)


def test_empty_reduction_bool_and_dynamic_axes():
    x = np.zeros((2, 0, 4), bool)
    model = make_model("ReduceMax", {"x": x, "axes": np.array([1], np.int64)}, {"keepdims": 0}, opset=20)
    assert_matches_reference(model, {"x": x, "axes": np.array([1], np.int64)}, ort=False)


def test_bool_max_min():
    x = RNG.random((3, 4)) < 0.3
    for op in ("ReduceMax", "ReduceMin"):
        model = make_model(op, {"x": x}, {"keepdims": 0}, opset=20, initializers={"axes": np.array([1], np.int64)})
        assert_matches_reference(model, {"x": x}, exact=True)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
@pytest.mark.parametrize("op", sorted(REDUCTIONS))
def test_float_dtypes(op, dtype):
    x = RNG.uniform(0.2, 2.0, (3, 4)).astype(dtype)
    model, inputs = reduce_model(op, x, [1], 0, axes_as_input=True)
    assert_matches_reference(model, inputs, rtol=2e-3, atol=1e-3)


def test_rank_zero_input():
    x = np.array(-2.5, np.float32)
    expected = {"ReduceSum": -2.5, "ReduceMean": -2.5, "ReduceMax": -2.5, "ReduceMin": -2.5,
                "ReduceProd": -2.5, "ReduceL1": 2.5, "ReduceL2": 2.5, "ReduceLogSum": np.nan,
                "ReduceLogSumExp": -2.5, "ReduceSumSquare": 6.25}
    for op in sorted(REDUCTIONS):
        model, inputs = reduce_model(op, x, None, 1, axes_as_input=True)
        got = convert_and_run(model, inputs)[0]
        assert got.size == 1 and got.dtype == np.float32, op
        np.testing.assert_allclose(got.reshape(()), expected[op], rtol=1e-6, err_msg=op)


def test_generated_code_uses_torch_reductions():
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    code = ConvertModel(reduce_model("ReduceSum", x, [1], 1, axes_as_input=True)[0], simplify=False).code
    assert "torch.sum(x, dim = (1,), keepdim = True)" in code
    code = ConvertModel(reduce_model("ReduceMax", x, [-1, 0], 0, axes_as_input=False)[0], simplify=False).code
    assert "torch.amax(x, dim = (0, 2), keepdim = False)" in code


# --- ArgMax / ArgMin --------------------------------------------------------------------------
@pytest.mark.parametrize("select_last_index", [0, 1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
def test_arg_reductions(op, axis, keepdims, select_last_index):
    x = RNG.integers(0, 3, (3, 4, 5)).astype(np.float32)  # many ties
    attrs = {"axis": axis, "keepdims": keepdims, "select_last_index": select_last_index}
    assert_matches_ort(make_model(op, {"x": x}, attrs, opset=13), {"x": x}, exact=True)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.float16, np.float64, np.uint32, np.uint64])
@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
def test_arg_reduction_dtypes(op, dtype):
    top = int(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 100
    x = np.array([[0, top, 3, top], [top // 2 + 1, 1, top - 1, 1]], dtype)
    for select_last_index in (0, 1):
        model = make_model(op, {"x": x}, {"axis": 1, "select_last_index": select_last_index}, opset=13)
        assert_matches_reference(model, {"x": x}, exact=True)


def test_arg_reduction_old_opset():
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    assert_matches_ort(make_model("ArgMax", {"x": x}, {"axis": 1, "keepdims": 0}, opset=11), {"x": x}, exact=True)
