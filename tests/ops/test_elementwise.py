"""Elementwise converters (arithmetic, math, comparisons, logic, bitwise, variadic, Where):
the traps against onnxruntime: integer Div/Mod with negative numbers,
unsigned 16/32/64-bit arithmetic torch has no kernels for, numpy broadcasting, Pow's mixed types,
legacy opset-6 axis broadcasting and Python literals in the generated code.
ONNX's own node cases for these ops run in tests/test_conformance.py."""
from __future__ import annotations


import numpy as np
import onnx
import onnx.helper as oh
import pytest
import torch
from onnx import TensorProto, numpy_helper
from onnx.reference import ReferenceEvaluator

from onnx2torch import ConvertModel
from onnx2torch.dtypes import to_torch
from onnx2torch.errors import ConversionError, VerificationError
from tests.helpers import assert_matches_ort, convert_and_run, single_node_model

RNG = np.random.default_rng(0)


def make_model(op: str, inputs: dict[str, np.ndarray], attrs: dict | None = None, *, opset: int = 18,
               initializers: dict[str, np.ndarray] | None = None, ir_version: int = 8) -> onnx.ModelProto:
    """One node over graph inputs of any numpy dtype (uint16/32/64 included)."""
    initializers = initializers or {}
    node = oh.make_node(op, list(inputs) + list(initializers), ["out"], **(attrs or {}))
    graph = oh.make_graph(
        [node], "test",
        [oh.make_tensor_value_info(k, oh.np_dtype_to_tensor_dtype(v.dtype), v.shape) for k, v in inputs.items()],
        [oh.make_empty_tensor_value_info("out")],
        [numpy_helper.from_array(v, k) for k, v in initializers.items()],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


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


def _as_input(value):
    value = numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)
    return value if value.dtype == object else to_torch(value)


def check_node_case(case) -> None:
    """Convert an ONNX node case and compare every data set: rtol 1e-3, atol 1e-5, exact dtypes."""
    module = ConvertModel(case.model, simplify=False)
    for inputs, expected in case.data_sets:
        with torch.no_grad():
            got = module(*[_as_input(a) for a in inputs])
        got = got if isinstance(got, (tuple, list)) else [got]
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            e = np.asarray(e)
            if e.dtype == object:
                assert list(np.asarray(g).ravel()) == list(e.ravel())
                continue
            assert str(g.dtype) == f"torch.{e.dtype}", f"dtype {g.dtype} != {e.dtype}"
            assert g.numel() == e.size
            if g.dtype == torch.bfloat16:
                g, e = g.float(), e.astype(np.float32)
            g = g.numpy().reshape(e.shape)
            if e.dtype.kind in "fc":
                np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-5)
            else:
                np.testing.assert_array_equal(g, e)


# --- integer Div / Mod ------------------------------------------------------------------------
def _int_pairs(dtype) -> tuple[np.ndarray, np.ndarray]:
    info = np.iinfo(dtype)
    a = np.array([-7, -6, -5, -1, 0, 1, 5, 6, 7, 13, -13, info.max, info.min + 1, 100, -100], dtype)
    b = np.array([2, -2, 3, -3, 4, -4, 5, -5, 1, -1, 7, -7, 3, -3], dtype)
    aa, bb = np.meshgrid(a, b)
    return aa.astype(dtype), bb.astype(dtype)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
@pytest.mark.parametrize("op, attrs", [("Div", {}), ("Mod", {"fmod": 0}), ("Mod", {"fmod": 1})])
def test_integer_div_mod_negative_exact(op, attrs, dtype):
    """C truncating division and both Mod flavours on signed integers, bit-exact."""
    a, b = _int_pairs(dtype)
    model = make_model(op, {"a": a, "b": b}, attrs, opset=14 if op == "Div" else 13)
    # NOTE: onnxruntime computes integer fmod=1 through double, which is inexact past 2**53;
    # the reference (np.fmod) is exact, as the spec's A - trunc(A / B) * B.
    assert_matches_reference(model, {"a": a, "b": b}, exact=True, ort=not (dtype == np.int64 and attrs.get("fmod")))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_mod_fmod(dtype):
    a = (RNG.standard_normal((4, 5)) * 10).astype(dtype)
    b = np.where(RNG.random((4, 5)) < 0.5, -1, 1).astype(dtype) * (RNG.random((4, 5)) * 3 + 0.5).astype(dtype)
    model = make_model("Mod", {"a": a, "b": b}, {"fmod": 1}, opset=13)
    assert_matches_reference(model, {"a": a, "b": b}, exact=True)


def test_float_mod_python_sign():
    """fmod=0 on floats (defined from opset 28): the divisor's sign, like Python's %."""
    a = np.array([-4.5, 4.5, -4.5, 4.5, 3.0, -0.0], np.float32)
    b = np.array([2.0, -2.0, -2.0, 2.0, 1.5, 3.0], np.float32)
    got = convert_and_run(make_model("Mod", {"a": a, "b": b}, {"fmod": 0}, opset=13), {"a": a, "b": b})[0]
    np.testing.assert_array_equal(got, np.mod(a, b))


# --- unsigned 16/32/64-bit arithmetic ---------------------------------------------------------
def _unsigned(dtype, big: bool = True) -> tuple[np.ndarray, np.ndarray]:
    top = int(np.iinfo(dtype).max) if big else min(int(np.iinfo(dtype).max), 2**63 - 1)
    a = [0, 1, 7, 1000, top, top - 1, top // 2, top // 3 + 5, 12345, 65535]
    b = [1, 3, 2, 7, 2, top, 3, top // 7, 1, 65535]
    return np.array([v % (top + 1) for v in a], dtype), np.array([max(v % (top + 1), 1) for v in b], dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul"])
def test_unsigned_wraparound_exact(op, dtype):
    a, b = _unsigned(dtype)
    model = make_model(op, {"a": a, "b": b}, opset=14)
    assert_matches_reference(model, {"a": a, "b": b}, exact=True)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
@pytest.mark.parametrize("op, attrs", [("Div", {}), ("Mod", {}), ("Mod", {"fmod": 1})])
def test_unsigned_div_mod_exact(op, attrs, dtype):
    # NOTE: uint64 Div/Mod are exact below 2**63 only (documented limit of the int64 carrier).
    a, b = _unsigned(dtype, big=dtype != np.uint64)
    model = make_model(op, {"a": a, "b": b}, attrs, opset=14 if op == "Div" else 13)
    assert_matches_reference(model, {"a": a, "b": b}, exact=True, ort=not (dtype == np.uint64 and attrs.get("fmod")))


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.uint64])
@pytest.mark.parametrize("op", ["Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Equal", "Max", "Min"])
def test_unsigned_ordering_exact(op, dtype):
    """Values above 2**63 (uint64) must still compare as unsigned."""
    top = np.iinfo(dtype).max
    a = np.array([0, top, top - 1, 1, top // 2 + 1, 5], dtype)
    b = np.array([top, 0, top, 1, top // 2, 6], dtype)
    opset = 16 if "Equal" in op and op != "Equal" else 13
    assert_matches_reference(make_model(op, {"a": a, "b": b}, opset=opset), {"a": a, "b": b}, exact=True)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_unsigned_bitshift_exact(direction, dtype):
    bits = np.iinfo(dtype).bits
    top = np.iinfo(dtype).max
    x = np.array([top, 1, top - 5, 3, top // 2 + 1, 12], dtype)
    y = np.array([1, bits - 1, 3, 0, bits - 1, 2], dtype)
    model = make_model("BitShift", {"x": x, "y": y}, {"direction": direction}, opset=11)
    assert_matches_reference(model, {"x": x, "y": y}, exact=True)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64, np.int16, np.int64])
def test_bitwise_ops_exact(dtype):
    info = np.iinfo(dtype)
    a = np.array([info.max, info.min, 5, 12, info.max // 3], dtype)
    b = np.array([1, info.max, 3, 10, info.max // 5], dtype)
    for op in ("BitwiseAnd", "BitwiseOr", "BitwiseXor"):
        assert_matches_reference(make_model(op, {"a": a, "b": b}), {"a": a, "b": b}, exact=True)
    assert_matches_reference(make_model("BitwiseNot", {"a": a}), {"a": a}, exact=True)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.uint64])
def test_unsigned_abs_sign_sum(dtype):
    top = np.iinfo(dtype).max
    a = np.array([0, 1, top, top // 2 + 3], dtype)
    b = np.array([top, 1, 1, top // 2], dtype)
    for op in ("Abs", "Sign"):
        assert_matches_reference(make_model(op, {"a": a}, opset=13), {"a": a}, exact=True)
    got = convert_and_run(make_model("Sum", {"a": a, "b": b}, opset=13), {"a": a, "b": b})[0]
    np.testing.assert_array_equal(got, a + b)  # numpy wraps like ONNX; onnxruntime has no kernel


# --- broadcasting -----------------------------------------------------------------------------
_SHAPES = [((2, 3, 4), (4,)), ((3, 1), (1, 4)), ((2, 1, 4), (3, 1)), ((2, 3), ()), ((), (2, 3)), ((1,), (5, 1, 1))]


@pytest.mark.parametrize("shape_a, shape_b", _SHAPES, ids=str)
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean",
                                "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
def test_numpy_broadcasting(op, shape_a, shape_b):
    a = np.asarray(RNG.random(shape_a) + 0.5, np.float32)
    b = np.asarray(RNG.random(shape_b) + 0.5, np.float32)
    if op in ("Equal", "LessOrEqual", "GreaterOrEqual"):
        b = np.broadcast_to(a.reshape(-1)[0], shape_b).astype(np.float32)  # some ties
    assert_matches_reference(make_model(op, {"a": a, "b": b}), {"a": a, "b": b})


@pytest.mark.parametrize("op", ["Div", "Mod", "BitShift"])
def test_integer_broadcasting(op):
    a = RNG.integers(-50, 50, (2, 3, 4)).astype(np.int32)
    b = np.array([3, -4, 5, 7], np.int32)
    attrs = {}
    if op == "BitShift":
        a, b, attrs = np.abs(a).astype(np.uint8), np.array([0, 1, 2, 3], np.uint8), {"direction": "LEFT"}
    assert_matches_reference(make_model(op, {"a": a, "b": b}, attrs, opset=13), {"a": a, "b": b}, exact=True)


def test_where_broadcasting():
    c = RNG.random((2, 1, 4)) < 0.5
    x = RNG.standard_normal((3, 1)).astype(np.float32)
    y = RNG.standard_normal((4,)).astype(np.float32)
    inputs = {"c": c, "x": x, "y": y}
    assert_matches_reference(make_model("Where", inputs, opset=16), inputs, exact=True)


@pytest.mark.parametrize("dtype", [np.int64, np.uint32, np.uint64, np.float16, np.bool_])
def test_where_dtypes(dtype):
    c = RNG.random((3, 4)) < 0.5
    x = (RNG.random((3, 4)) * 100).astype(dtype)
    y = (RNG.random((1, 4)) * 100).astype(dtype)
    inputs = {"c": c, "x": x, "y": y}
    assert_matches_reference(make_model("Where", inputs, opset=16), inputs, exact=True)


@pytest.mark.parametrize("op", ["Sum", "Mean", "Max", "Min"])
@pytest.mark.parametrize("count", [1, 2, 3])
def test_variadic(op, count):
    shapes = [(2, 3, 4), (3, 1), (4,)][:count]
    inputs = {f"x{i}": RNG.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
    assert_matches_reference(make_model(op, inputs, opset=13), inputs)


@pytest.mark.parametrize("op", ["Max", "Min"])
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64])
def test_variadic_max_min_integers(op, dtype):
    info = np.iinfo(dtype)
    inputs = {
        "a": np.array([info.min, info.max, 3, 0], dtype),
        "b": np.array([info.max, info.min, 4, 0], dtype),
        "c": np.array([5, 6, info.max // 2 + 2, 1], dtype),
    }
    assert_matches_reference(make_model(op, inputs, opset=13), inputs, exact=True)


# --- Pow ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("base, exponent", [
    (np.float32, np.float32), (np.float32, np.int64), (np.float32, np.int32), (np.float64, np.float32),
    (np.float32, np.float64), (np.int32, np.float32), (np.int64, np.float32), (np.int64, np.int64),
    (np.int32, np.int32), (np.float16, np.float32), (np.float32, np.uint32), (np.float32, np.uint8),
    (np.float16, np.float16),
])
def test_pow_mixed_types(base, exponent):
    """The result always has the base's type (integer bases truncate float powers)."""
    x = np.array([[1, 2, 3, -2], [0, 5, -3, 4]], dtype=base)
    y = np.array([[0.5, 2.0, 3.0, 3.0], [2.0, 1.7, 2.0, 0.0]])
    if not np.issubdtype(exponent, np.floating):
        y = np.round(y)
    y = y.astype(exponent)
    if np.issubdtype(base, np.floating) and np.issubdtype(exponent, np.floating):
        x = np.abs(x)  # no NaNs from negative bases with fractional exponents
    assert_matches_reference(make_model("Pow", {"x": x, "y": y}, opset=15), {"x": x, "y": y}, rtol=1e-3)


def test_pow_integer_negative_exponent():
    """Integer x ** negative y is 0 unless |x| == 1 (torch would refuse it)."""
    x = np.array([2, 1, -1, -1, 3, 5], np.int64)
    y = np.array([-1, -3, -3, -2, 2, 0], np.int64)
    assert_matches_reference(make_model("Pow", {"x": x, "y": y}, opset=15), {"x": x, "y": y}, exact=True)


# --- legacy (opset < 7) broadcasting ----------------------------------------------------------
@pytest.mark.parametrize("op, fn", [("Add", np.add), ("Sub", np.subtract), ("Mul", np.multiply), ("Div", np.divide)])
@pytest.mark.parametrize("axis, shape_b, view", [
    (1, (3, 4), (1, 3, 4, 1)), (0, (2,), (2, 1, 1, 1)), (2, (4, 5), (1, 1, 4, 5)), (None, (5,), (5,)),
    (-3, (3,), (1, 3, 1, 1)),
])
def test_legacy_axis_broadcast(op, fn, axis, shape_b, view):
    """Opset 6 broadcast=1 with axis: B's dims line up with A's from axis (onnxruntime has no
    opset-6 Add kernel any more, so numpy is the reference)."""
    a = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    b = RNG.random(shape_b).astype(np.float32) + 0.5
    attrs = {"broadcast": 1} if axis is None else {"broadcast": 1, "axis": axis}
    model = make_model(op, {"a": a, "b": b}, attrs, opset=6, ir_version=3)
    got = convert_and_run(model, {"a": a, "b": b})[0]
    np.testing.assert_allclose(got, fn(a, b.reshape(view)), rtol=1e-6)


def test_legacy_axis_broadcast_needs_ranks():
    node = oh.make_node("Add", ["a", "b"], ["y"], broadcast=1, axis=1)
    graph = oh.make_graph([node], "g", [oh.make_tensor_value_info("a", TensorProto.FLOAT, None),
                                        oh.make_tensor_value_info("b", TensorProto.FLOAT, None)],
                          [oh.make_empty_tensor_value_info("y")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 6)])
    model.ir_version = 3
    with pytest.raises(ConversionError, match="axis"):
        ConvertModel(model, simplify=False)


# --- generated code ---------------------------------------------------------------------------
@pytest.mark.parametrize("op, expected", [
    ("Add", "x + 1.5"), ("Sub", "x - 1.5"), ("Mul", "x * 1.5"), ("Div", "x / 1.5"), ("Pow", "x ** 1.5"),
    ("Less", "x < 1.5"), ("Equal", "x == 1.5"),
])
def test_scalar_constants_are_literals(op, expected):
    """0-d constants become Python numbers: the forward reads `x + 1.5`."""
    x = RNG.random((2, 3)).astype(np.float32) + 0.1
    model = make_model(op, {"x": x}, initializers={"c": np.array(1.5, np.float32)})
    module = ConvertModel(model, simplify=False)
    assert expected in module.code
    assert_matches_reference(model, {"x": x})


@pytest.mark.parametrize("op, attrs, expected", [
    ("Div", {}, "torch.div(x, -3, rounding_mode = 'trunc')"), ("Mod", {}, "torch.remainder(x, -3)"),
    ("Mod", {"fmod": 1}, "torch.fmod(x, -3)"), ("Sub", {}, "x - -3"), ("Max", {}, "torch.maximum(x, c)"),
])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_scalar_constants(op, attrs, expected, dtype):
    x = np.array([[-7, 7, -8, 5, 2, 9]], dtype)
    model = make_model(op, {"x": x}, attrs, opset=13, initializers={"c": np.array(-3, dtype)})
    assert expected in ConvertModel(model, simplify=False).code
    assert_matches_ort(model, {"x": x}, exact=True)
    # and with the constant first, where torch functions take no Python number
    model = make_model(op, {}, attrs, opset=13, initializers={"c": np.array(-3, dtype), "x": x})
    model.graph.node[0].input[:] = ["c", "x"]
    model.graph.input.extend([oh.make_tensor_value_info("x", oh.np_dtype_to_tensor_dtype(x.dtype), x.shape)])
    model.graph.initializer.pop()
    assert_matches_ort(model, {"x": x}, exact=True)


@pytest.mark.parametrize("op, expected", [
    ("Add", "x + y"), ("Mul", "x * y"), ("Div", "torch.div(x, y, rounding_mode = 'trunc')"),
    ("Equal", "x == y"), ("BitwiseAnd", "x & y"),
])
def test_generated_code_reads_naturally(op, expected):
    x = np.array([[7, -7, 3]], np.int32)
    y = np.array([[2, 2, -2]], np.int32)
    assert expected in ConvertModel(make_model(op, {"x": x, "y": y}), simplify=False).code


# --- unary math -------------------------------------------------------------------------------
_UNARY_DOMAINS = {
    "Sqrt": (0.0, 4.0), "Exp": (-3.0, 3.0), "Log": (0.1, 5.0), "Neg": (-3.0, 3.0), "Abs": (-3.0, 3.0),
    "Floor": (-3.0, 3.0), "Ceil": (-3.0, 3.0), "Reciprocal": (0.5, 3.0), "Erf": (-3.0, 3.0),
    "Sin": (-3.0, 3.0), "Cos": (-3.0, 3.0), "Tan": (-1.5, 1.5), "Asin": (-0.99, 0.99), "Acos": (-0.99, 0.99),
    "Atan": (-3.0, 3.0), "Sinh": (-3.0, 3.0), "Cosh": (-3.0, 3.0), "Asinh": (-3.0, 3.0),
    "Acosh": (1.01, 4.0), "Atanh": (-0.99, 0.99), "Round": (-3.0, 3.0), "Sign": (-3.0, 3.0),
}


@pytest.mark.parametrize("op", sorted(_UNARY_DOMAINS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_math(op, dtype):
    low, high = _UNARY_DOMAINS[op]
    x = RNG.uniform(low, high, (3, 7)).astype(dtype)
    assert_matches_reference(make_model(op, {"x": x}, opset=13), {"x": x}, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
def test_integer_neg_abs_sign(dtype):
    info = np.iinfo(dtype)
    x = np.array([info.min, info.min + 1, -3, 0, 5, info.max], dtype)
    for op in ("Neg", "Abs", "Sign"):
        assert_matches_reference(make_model(op, {"x": x}, opset=13), {"x": x}, exact=True)


def test_round_half_to_even_and_sign_nan():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, np.nan, np.inf, -np.inf], np.float32)
    assert_matches_reference(make_model("Round", {"x": x}, opset=11), {"x": x}, exact=True)
    assert_matches_reference(make_model("Sign", {"x": x}, opset=13), {"x": x}, exact=True)
    assert_matches_reference(make_model("IsNaN", {"x": x}, opset=13), {"x": x}, exact=True)


@pytest.mark.parametrize("positive, negative", [(1, 1), (1, 0), (0, 1), (0, 0)])
def test_isinf_detect_flags(positive, negative):
    x = np.array([np.inf, -np.inf, np.nan, 0.0, 1e38, -3.0], np.float32)
    attrs = {"detect_positive": positive, "detect_negative": negative}
    assert_matches_reference(make_model("IsInf", {"x": x}, attrs, opset=10), {"x": x}, exact=True)


# --- logic and comparisons --------------------------------------------------------------------
@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logic(op):
    a = RNG.random((2, 3, 4)) < 0.5
    b = RNG.random((3, 1)) < 0.5
    assert_matches_reference(make_model(op, {"a": a, "b": b}, opset=7), {"a": a, "b": b}, exact=True)
    assert_matches_reference(make_model("Not", {"a": a}, opset=1), {"a": a}, exact=True)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.float16, np.float64])
@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
def test_comparisons(op, dtype):
    a = np.array([[1, 2, 3], [4, 5, 6]], dtype)
    b = np.array([3, 2, 1], dtype)
    assert_matches_reference(make_model(op, {"a": a, "b": b}, opset=16), {"a": a, "b": b}, exact=True)


def test_equal_on_strings():
    a = np.array(["cat", "dog", "emu"], dtype=object)
    b = np.array(["cat"], dtype=object)
    module = ConvertModel(make_model("Equal", {"a": a, "b": b}, opset=19), simplify=False)
    np.testing.assert_array_equal(module(a, b).numpy(), [True, False, False])


# --- refusals ---------------------------------------------------------------------------------
def test_mod_rejects_unknown_fmod():
    a = np.array([1, 2], np.int32)
    with pytest.raises(ConversionError, match="fmod"):
        ConvertModel(single_node_model("Mod", {"a": a, "b": a}, {"fmod": 2}, opset=13), simplify=False)


def test_bitshift_rejects_unknown_direction():
    a = np.array([1, 2], np.uint8)
    with pytest.raises(ConversionError, match="direction"):
        ConvertModel(single_node_model("BitShift", {"a": a, "b": a}, {"direction": "UP"}, opset=11), simplify=False)
