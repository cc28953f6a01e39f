"""Cast / CastLike: bit-exact casts against onnxruntime: float -> integer truncation with negative and out-of-range values, every
pair of standard types, float8 with saturate on and off, opset 1's string ``to``.
ONNX's own node cases for these ops run in tests/test_conformance.py."""
from __future__ import annotations


import ml_dtypes
import numpy as np
import onnx
import onnx.helper as oh
import pytest
import torch
from onnx import TensorProto, numpy_helper
from onnx.reference import ReferenceEvaluator

import onnx2torch.ops.cast  # noqa: F401 - registers Cast / CastLike until ops/__init__ imports it
from onnx2torch import ConvertModel
from onnx2torch.dtypes import to_torch
from onnx2torch.errors import ConversionError
from tests.helpers import assert_matches_ort, convert_and_run

RNG = np.random.default_rng(0)
TP = TensorProto


def _input(name: str, x: np.ndarray) -> onnx.ValueInfoProto:
    return oh.make_tensor_value_info(name, oh.np_dtype_to_tensor_dtype(x.dtype), x.shape)


def cast_model(x: np.ndarray, to: int | str, *, opset: int = 19, **attrs) -> onnx.ModelProto:
    node = oh.make_node("Cast", ["x"], ["y"], to=to, **attrs)
    graph = oh.make_graph([node], "test", [_input("x", x)], [oh.make_empty_tensor_value_info("y")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 9
    return model


def roundtrip_model(x: np.ndarray, to: int, back: int = TP.FLOAT, *, opset: int = 19, **attrs) -> onnx.ModelProto:
    """x -> Cast(to) -> Cast(back): lets onnxruntime's numpy bridge see low-precision results."""
    nodes = [oh.make_node("Cast", ["x"], ["t"], to=to, **attrs), oh.make_node("Cast", ["t"], ["y"], to=back)]
    graph = oh.make_graph(nodes, "test", [_input("x", x)], [oh.make_tensor_value_info("y", back, x.shape)])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 11 if opset >= 24 else 9
    return model


_LOW_PRECISION = {"bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu"}
_CARRIERS = {"int4": np.int8, "int2": np.int8, "uint4": np.uint8, "uint2": np.uint8, "float4_e2m1fn": np.float32}


def _array(value) -> np.ndarray:
    return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)


def _as_float32(t: torch.Tensor) -> np.ndarray:
    return t.to(torch.float32).numpy()


def check_node_case(case) -> None:
    """Compare like the project's conformance bench: low-precision types must come back as
    torch's own dtype, sub-byte types as their int8/uint8/float32 carriers."""
    module = ConvertModel(case.model, simplify=False)
    for inputs, expected in case.data_sets:
        with torch.no_grad():
            got = module(*[to_torch(_array(a)) for a in inputs])
        got = got if isinstance(got, (tuple, list)) else [got]
        for g, e in zip(got, expected):
            e = _array(e)
            name = e.dtype.name
            if name in _CARRIERS:
                e = e.astype(_CARRIERS[name])
            if name in _LOW_PRECISION:
                assert g.dtype == getattr(torch, name), f"dtype {g.dtype} != {name}"
                g, e = _as_float32(g), e.astype(np.float32)
            else:
                assert str(g.dtype) == f"torch.{e.dtype}", f"dtype {g.dtype} != {e.dtype}"
                g = g.numpy()
            g = g.reshape(e.shape)
            if e.dtype.kind == "f":
                np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-5)
            else:
                np.testing.assert_array_equal(g, e)


# --- float -> integer -------------------------------------------------------------------------
_FRACTIONS = [-300.7, -129.5, -128.9, -100.5, -2.5, -1.5, -1.0, -0.9, -0.5, -0.0, 0.0, 0.4, 0.5,
              0.99, 1.5, 2.5, 3.7, 100.5, 126.6, 127.9]
_INTS = [TP.INT8, TP.INT16, TP.INT32, TP.INT64, TP.UINT8, TP.UINT16, TP.UINT32, TP.UINT64]


@pytest.mark.parametrize("source", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("to", [TP.INT8, TP.INT16, TP.INT32, TP.INT64], ids=TP.DataType.Name)
def test_float_to_signed_int_truncates_toward_zero(source, to):
    x = np.array(_FRACTIONS, source)
    got = assert_matches_ort(cast_model(x, to), {"x": x}, exact=True)[0]
    np.testing.assert_array_equal(got, np.trunc(x).astype(got.dtype))


@pytest.mark.parametrize("source", [np.float32, np.float64])
@pytest.mark.parametrize("to", _INTS, ids=TP.DataType.Name)
def test_float_to_int_out_of_range_like_onnxruntime(source, to):
    """Out of range the spec says 'undefined'; both sides are C casts on the same CPU."""
    wide = [255.9, 256.5, 70000.5, -70000.5, 3e9, -3e9, 1e19, -1e19, np.nan, np.inf, -np.inf]
    x = np.array(_FRACTIONS + wide, source)
    assert_matches_ort(cast_model(x, to), {"x": x}, exact=True)


# --- every pair of standard types -------------------------------------------------------------
_STANDARD = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8,
             np.uint16, np.uint32, np.uint64, np.bool_]


def _values(dtype) -> np.ndarray:
    if dtype == np.bool_:
        return np.array([True, False, True, True])
    if np.issubdtype(dtype, np.floating):
        return np.array([0.0, 1.0, 2.75, 100.25, 7.5, -0.0], dtype)
    info = np.iinfo(dtype)
    return np.array([0, 1, info.max, info.min, 100, int(info.max) // 3], dtype)


@pytest.mark.parametrize("target", _STANDARD, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("source", _STANDARD, ids=lambda t: np.dtype(t).name)
def test_cast_between_standard_types(source, target):
    """Integer narrowing wraps, integer -> float rounds, anything -> bool is != 0."""
    x = _values(source)
    assert_matches_ort(cast_model(x, oh.np_dtype_to_tensor_dtype(np.dtype(target)), opset=13), {"x": x}, exact=True)


@pytest.mark.parametrize("source", [np.float32, np.float64, np.int32])
def test_cast_to_and_from_bfloat16(source):
    x = np.array([1.0, -2.5, 3.14159, 1000.7, 65504.0, 1e-3], np.float64).astype(source)
    model = roundtrip_model(x, TP.BFLOAT16)
    assert_matches_ort(model, {"x": x}, exact=True)
    module = ConvertModel(cast_model(x, TP.BFLOAT16), simplify=False)
    got = module(torch.from_numpy(x))
    assert got.dtype == torch.bfloat16
    np.testing.assert_array_equal(got.float().numpy(), x.astype(ml_dtypes.bfloat16).astype(np.float32))


# --- float8 -----------------------------------------------------------------------------------
_FLOAT8 = {TP.FLOAT8E4M3FN: ml_dtypes.float8_e4m3fn, TP.FLOAT8E4M3FNUZ: ml_dtypes.float8_e4m3fnuz,
           TP.FLOAT8E5M2: ml_dtypes.float8_e5m2, TP.FLOAT8E5M2FNUZ: ml_dtypes.float8_e5m2fnuz}
_F8_INPUT = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e6, -1e6, 448, 449, 464, 465, 480, 500, 57344,
                      61439, 61440, 61441, -61440, 240, 241, 247, 248, 249, -250, 1e-4, -1e-4, 1e-10,
                      3.3, 0.1, 2**-9, 2**-10, 2**-17, 0.4789, 0.8191], np.float32)


@pytest.mark.parametrize("to", list(_FLOAT8), ids=TP.DataType.Name)
def test_float8_saturate(to):
    """saturate=1: out-of-range values and +-inf clamp to +-max, as onnxruntime does."""
    assert_matches_ort(roundtrip_model(_F8_INPUT, to, saturate=1), {"x": _F8_INPUT}, exact=True)
    got = ConvertModel(cast_model(_F8_INPUT, to, saturate=1), simplify=False)(torch.from_numpy(_F8_INPUT))
    assert str(got.dtype) == f"torch.{np.dtype(_FLOAT8[to]).name}"


@pytest.mark.parametrize("source", [np.float32, np.float16])
@pytest.mark.parametrize("to", list(_FLOAT8), ids=TP.DataType.Name)
def test_float8_no_saturate(to, source):
    """saturate=0 follows the spec's table: NaN past the range (+-inf for e5m2). onnxruntime
    rounds some of those values differently (e4m3fn 480 -> 448, e5m2 overflow -> NaN), so the
    reference (ml_dtypes' conversion) is the yardstick."""
    x = _F8_INPUT.astype(source)
    model = cast_model(x, to, saturate=0)
    got = ConvertModel(model, simplify=False)(torch.from_numpy(x))
    expected = x.astype(np.float32).astype(_FLOAT8[to]).astype(np.float32)
    np.testing.assert_array_equal(got.float().numpy(), expected)
    reference = ReferenceEvaluator(model).run(None, {"x": x})[0].astype(np.float32)
    np.testing.assert_array_equal(got.float().numpy(), reference)


@pytest.mark.parametrize("to", [TP.FLOAT, TP.FLOAT16, TP.INT32, TP.BOOL, TP.UINT8], ids=TP.DataType.Name)
@pytest.mark.parametrize("via", list(_FLOAT8), ids=TP.DataType.Name)
def test_from_float8(via, to):
    x = np.array([0.0, 1.5, -2.5, 100.0, -0.3, 7.0], np.float32)
    assert_matches_ort(roundtrip_model(x, via, back=to), {"x": x}, exact=True)


_E8M0_INPUT = np.array([0.0, -0.0, 1.0, 3.0, 1.5, 1.4999, 0.75, 0.124, 1.1, 2.0**127, 1.5 * 2.0**127, 3e38,
                        np.inf, -np.inf, np.nan, 2.0**-127, 1.5 * 2.0**-127, 2.0**-130, 2.0**-126, -2.0,
                        1e-30, 12345.678], np.float32)


@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [1, 0])
def test_float8e8m0(saturate, round_mode):
    """Powers of two, rounded per round_mode; out of range (0 and negatives included) clamps or
    becomes NaN, per the spec's table and onnxruntime."""
    attrs = {"saturate": saturate, "round_mode": round_mode}
    assert_matches_ort(roundtrip_model(_E8M0_INPUT, TP.FLOAT8E8M0, opset=24, **attrs), {"x": _E8M0_INPUT}, exact=True)
    module = ConvertModel(cast_model(_E8M0_INPUT, TP.FLOAT8E8M0, opset=24, **attrs), simplify=False)
    got = module(torch.from_numpy(_E8M0_INPUT))
    assert got.dtype == torch.float8_e8m0fnu


# --- sub-byte types ---------------------------------------------------------------------------
@pytest.mark.parametrize("to, carrier, expected", [
    (TP.INT4, torch.int8, [7, -8, -7, -1, 0, 1, 7, -8, -7, 2, -2]),
    (TP.UINT4, torch.uint8, [7, 8, 9, 15, 0, 1, 7, 8, 9, 2, 14]),
])
def test_cast_to_4bit_integers_wraps(to, carrier, expected):
    x = np.array([-9, -8, -7, -1, 0, 1, 7, 8, 9, 2.7, -2.7], np.float32)
    got = ConvertModel(cast_model(x, to, opset=21), simplify=False)(torch.from_numpy(x))
    assert got.dtype == carrier
    assert got.tolist() == expected


def test_cast_to_float4_rounds_half_to_even_and_saturates():
    x = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 7.0, 100.0, -0.3, -3.5, np.inf, 0.0], np.float32)
    got = ConvertModel(cast_model(x, TP.FLOAT4E2M1, opset=23), simplify=False)(torch.from_numpy(x))
    expected = x.astype(ml_dtypes.float4_e2m1fn).astype(np.float32)
    np.testing.assert_array_equal(got.numpy(), expected)


# --- opsets, CastLike, refusals ---------------------------------------------------------------
def test_opset1_string_to():
    x = np.array([1.7, -2.2], np.float32)
    model = cast_model(x, "INT32", opset=1)
    model.ir_version = 3
    got = convert_and_run(model, {"x": x})[0]
    assert got.dtype == np.int32 and got.tolist() == [1, -2]


def test_generated_code_is_tensor_to():
    x = np.array([1.7, -2.2], np.float32)
    code = ConvertModel(cast_model(x, TP.FLOAT16), simplify=False).code
    assert "dtype = torch.float16" in code


@pytest.mark.parametrize("like", [np.int32, np.float16, np.uint8, np.bool_, np.float64])
def test_castlike(like):
    x = np.array([[-1.5, 0.0, 2.7], [300.2, -0.4, 9.0]], np.float32)
    t = np.zeros((1,), like)
    node = oh.make_node("CastLike", ["x", "t"], ["y"])
    graph = oh.make_graph([node], "test", [_input("x", x), _input("t", t)], [oh.make_empty_tensor_value_info("y")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 19)])
    model.ir_version = 9
    assert_matches_ort(model, {"x": x, "t": t}, exact=True)


def test_cast_like_runtime_fallback():
    from onnx2torch.ops.cast import cast_like

    x = torch.tensor([1e6, -2.5, 0.3])
    assert cast_like(x, torch.zeros(1, dtype=torch.float8_e4m3fn)).float().tolist() == [448.0, -2.5, 0.3125]
    assert cast_like(x, torch.zeros(1, dtype=torch.int16)).tolist() == [16960, -2, 0]


def test_string_cast_is_refused():
    x = np.array([1.0], np.float32)
    with pytest.raises(ConversionError, match="string"):
        ConvertModel(cast_model(x, TP.STRING), simplify=False)
