"""Quantize family (QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, QLinearConv,
QLinearMatMul, ConvInteger) against onnxruntime, and against onnx's reference evaluator for the
types onnxruntime's Python API cannot hand over (int4/uint4/int2/uint2, float4, float8 other than
e4m3fn)."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import onnx.helper as oh
import pytest
import torch
from onnx import TensorProto as TP
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from onnx2torch import ConvertModel
from onnx2torch.dtypes import to_torch
from onnx2torch.errors import ConversionError
from onnx2torch.verify import run_onnxruntime

RNG = np.random.default_rng(0)

_ML_DTYPE = {
    TP.FLOAT8E4M3FN: ml_dtypes.float8_e4m3fn,
    TP.FLOAT8E4M3FNUZ: ml_dtypes.float8_e4m3fnuz,
    TP.FLOAT8E5M2: ml_dtypes.float8_e5m2,
    TP.FLOAT8E5M2FNUZ: ml_dtypes.float8_e5m2fnuz,
}


def randn(*shape: int, dtype=np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def model_of(
    op_type: str,
    node_inputs: list[str],
    inputs: dict[str, np.ndarray],
    consts: dict[str, onnx.TensorProto | np.ndarray] | None = None,
    attrs: dict | None = None,
    outputs: tuple[str, ...] = ("y",),
    opset: int = 21,
) -> onnx.ModelProto:
    """A one-node model; ``inputs`` are graph inputs, ``consts`` initializers (TensorProto for
    types numpy lacks)."""
    inits = []
    for name, value in (consts or {}).items():
        inits.append(value if isinstance(value, onnx.TensorProto) else numpy_helper.from_array(value, name))
    node = oh.make_node(op_type, node_inputs, list(outputs), **(attrs or {}))
    graph = oh.make_graph(
        [node],
        "test",
        [oh.make_tensor_value_info(k, oh.np_dtype_to_tensor_dtype(v.dtype), v.shape) for k, v in inputs.items()],
        [oh.make_empty_tensor_value_info(o) for o in outputs],
        inits,
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 10 if opset < 23 else 11
    return model


def run_converted(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[torch.Tensor]:
    module = ConvertModel(model, simplify=False)
    inits = {t.name for t in model.graph.initializer}
    args = [to_torch(feeds[v.name]).reshape(feeds[v.name].shape) for v in model.graph.input if v.name not in inits]
    with torch.no_grad():
        out = module(*args)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def as_torch(value: np.ndarray) -> torch.Tensor:
    value = np.asarray(value)
    return to_torch(value).reshape(value.shape)


def assert_same(got: torch.Tensor, expected: torch.Tensor, atol: float = 0.0) -> None:
    assert got.dtype == expected.dtype, f"dtype {got.dtype} != {expected.dtype}"
    assert got.shape == expected.shape, f"shape {tuple(got.shape)} != {tuple(expected.shape)}"
    if got.is_floating_point() and got.dtype.itemsize == 1:
        # float8: bit-exact (signed zeros included); any NaN encoding matches any other
        both_nan = got.float().isnan() & expected.float().isnan()
        bits_equal = got.view(torch.uint8) == expected.view(torch.uint8)
        assert bool((both_nan | bits_equal).all()), f"float8 mismatch:\n{got.float()}\n{expected.float()}"
        return
    torch.testing.assert_close(got, expected, rtol=0, atol=atol, equal_nan=True)


def check_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray], atol: float = 0.0) -> list[torch.Tensor]:
    """Converted vs onnxruntime; float8e4m3fn outputs (raw uint8 from onnxruntime) compared bit
    for bit."""
    expected = run_onnxruntime(model, feeds)
    got = run_converted(model, feeds)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        if g.dtype == torch.float8_e4m3fn and e.dtype == np.uint8:
            e = e.view(ml_dtypes.float8_e4m3fn)
        assert_same(g, as_torch(e), atol)
    return got


def check_reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray], atol: float = 0.0) -> list[torch.Tensor]:
    """Converted vs onnx.reference (types onnxruntime cannot return through Python)."""
    expected = ReferenceEvaluator(model).run(None, feeds)
    got = run_converted(model, feeds)
    for g, e in zip(got, expected):
        assert_same(g, as_torch(e), atol)
    return got


def tensor(name: str, elem: int, values, dims=None) -> onnx.TensorProto:
    values = np.asarray(values)
    return oh.make_tensor(name, elem, list(values.shape) if dims is None else dims, values.reshape(-1).tolist())


# --- QuantizeLinear -------------------------------------------------------------------------
def wide_values(*shape: int) -> np.ndarray:
    """Values that overflow every 8-bit range, with exact .5 ties after dividing by 0.5."""
    x = RNG.uniform(-300, 300, size=shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[: min(8, flat.size)] = np.array([0.25, 0.75, -0.25, -0.75, 1.25, 2.25, -1.25, 0.0], np.float32)[: min(8, flat.size)]
    return x


@pytest.mark.parametrize("opset", [10, 13, 19, 21])
@pytest.mark.parametrize("zp_dtype", [np.uint8, np.int8, None])
def test_quantize_per_tensor(opset, zp_dtype):
    x = wide_values(2, 3, 4)
    consts = {"s": np.array(0.5, np.float32)}
    node_inputs = ["x", "s"]
    if zp_dtype is not None:
        consts["zp"] = np.array(3 if zp_dtype == np.uint8 else -3, zp_dtype)
        node_inputs.append("zp")
    check_ort(model_of("QuantizeLinear", node_inputs, {"x": x}, consts, opset=opset), {"x": x})


@pytest.mark.parametrize("zp_dtype", [np.uint8, np.int8, np.uint16, np.int16])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_quantize_per_axis(zp_dtype, axis):
    x = wide_values(3, 4, 5) * 40
    n = x.shape[axis]
    scale = RNG.uniform(0.1, 2, size=n).astype(np.float32)
    zp = RNG.integers(np.iinfo(zp_dtype).min // 2, np.iinfo(zp_dtype).max // 2, size=n).astype(zp_dtype)
    model = model_of("QuantizeLinear", ["x", "s", "zp"], {"x": x}, {"s": scale, "zp": zp}, {"axis": axis})
    check_ort(model, {"x": x})


def test_quantize_runtime_scale_and_zero_point():
    x, scale, zp = wide_values(4, 6), np.array([0.7, 1.3, 0.2, 2.0], np.float32), np.array([0, 7, 250, 128], np.uint8)
    model = model_of("QuantizeLinear", ["x", "s", "zp"], {"x": x, "s": scale, "zp": zp}, attrs={"axis": 0})
    check_ort(model, {"x": x, "s": scale, "zp": zp})


@pytest.mark.parametrize("block_size,axis", [(2, 1), (3, 1), (4, 0), (5, 1)])
@pytest.mark.parametrize("with_zp", [True, False])
def test_quantize_blocked(block_size, axis, with_zp):
    x = wide_values(8, 6)
    blocks = -(-x.shape[axis] // block_size)
    sshape = list(x.shape)
    sshape[axis] = blocks
    scale = RNG.uniform(0.5, 3, size=sshape).astype(np.float32)
    consts = {"s": scale}
    if with_zp:
        consts["zp"] = RNG.integers(-20, 20, size=sshape).astype(np.int8)
    model = model_of("QuantizeLinear", ["x", "s"] + (["zp"] if with_zp else []), {"x": x}, consts,
                     {"axis": axis, "block_size": block_size}, opset=21)
    if with_zp:
        check_ort(model, {"x": x})
    else:
        check_reference(model, {"x": x})


@pytest.mark.parametrize("opset", [19, 21, 23])
def test_quantize_float16(opset):
    x = wide_values(5, 7).astype(np.float16)
    model = model_of("QuantizeLinear", ["x", "s", "zp"], {"x": x},
                     {"s": np.array(0.5, np.float16), "zp": np.array(2, np.int8)}, opset=opset)
    check_ort(model, {"x": x})


@pytest.mark.parametrize("opset", [19, 23])
def test_quantize_float16_divides_in_float16(opset):
    """The spec (opset 23) divides in the scale's type: float16 here, as the reference does.
    onnxruntime divides in float32, so about 1% of these values differ from it by one step."""
    x = (randn(2000) * 30).astype(np.float16)
    model = model_of("QuantizeLinear", ["x", "s", "zp"], {"x": x},
                     {"s": np.array(0.37, np.float16), "zp": np.array(-3, np.int8)}, opset=opset)
    check_reference(model, {"x": x})


def test_quantize_output_dtype_without_zero_point():
    x = wide_values(3, 5) * 100
    model = model_of("QuantizeLinear", ["x", "s"], {"x": x}, {"s": np.array(0.5, np.float32)},
                     {"output_dtype": TP.INT16}, opset=21)
    got = check_ort(model, {"x": x})
    assert got[0].dtype == torch.int16


@pytest.mark.parametrize("precision", [TP.FLOAT, TP.FLOAT16])
def test_quantize_precision_attribute(precision):
    x = wide_values(4, 5)
    model = model_of("QuantizeLinear", ["x", "s", "zp"], {"x": x},
                     {"s": np.array(0.37, np.float32), "zp": np.array(5, np.uint8)}, {"precision": precision}, opset=23)
    check_reference(model, {"x": x})


SPECIAL = np.array([0.0, -0.0, 0.3, -0.3, 1.0, 100.0, 230.0, 232.0, 235.0, 248.0, 250.0, 447.0, 460.0, 464.0,
                    466.0, 480.0, 500.0, -500.0, 57344.0, 61440.0, 70000.0, -70000.0, 1e-3, 1e-5,
                    np.inf, -np.inf, np.nan], np.float32)


@pytest.mark.parametrize("elem", list(_ML_DTYPE), ids=lambda e: TP.DataType.Name(e))
@pytest.mark.parametrize("saturate", [1, 0])
def test_quantize_float8_special_values(elem, saturate):
    x = np.concatenate([SPECIAL, randn(64) * 100])
    model = model_of("QuantizeLinear", ["x", "s", "zp"], {"x": x},
                     {"s": np.array(1.0, np.float32), "zp": tensor("zp", elem, [0.0], dims=[])},
                     {"saturate": saturate}, opset=19)
    check_reference(model, {"x": x})
    if elem == TP.FLOAT8E4M3FN:
        if not saturate:
            # onnxruntime maps [480, 496) to 448 without saturation; the spec, the reference and
            # ml_dtypes give NaN ([x] = 480 > FLT_MAX)
            x = x[(np.abs(x) < 480) | (np.abs(x) >= 496)]
        model = model_of("QuantizeLinear", ["x", "s", "zp"], {"x": x},
                         {"s": np.array(1.0, np.float32), "zp": tensor("zp", elem, [0.0], dims=[])},
                         {"saturate": saturate}, opset=19)
        check_ort(model, {"x": x})


@pytest.mark.parametrize("elem", [TP.INT4, TP.UINT4, TP.INT2, TP.UINT2], ids=lambda e: TP.DataType.Name(e))
def test_quantize_sub_byte_integers(elem):
    x = randn(4, 6) * 8
    lo = -1 if elem in (TP.INT4, TP.INT2) else 0
    zp = tensor("zp", elem, [lo + 1] * 6, dims=[6])
    scale = RNG.uniform(0.5, 2, size=6).astype(np.float32)
    model = model_of("QuantizeLinear", ["x", "s", "zp"], {"x": x}, {"s": scale, "zp": zp}, opset=25)
    got = check_reference(model, {"x": x})
    assert got[0].dtype == (torch.int8 if lo else torch.uint8)


def test_quantize_float4():
    grid = np.array([0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 7, 9, 100, 0.5, 1, 1.5, 2, 3, 4, 6], np.float32)
    x = np.concatenate([grid, -grid, randn(40) * 4])
    model = model_of("QuantizeLinear", ["x", "s", "zp"], {"x": x},
                     {"s": np.array(1.0, np.float32), "zp": tensor("zp", TP.FLOAT4E2M1, [0.0], dims=[])}, opset=23)
    check_reference(model, {"x": x})


def test_quantize_unsupported_scale_type_is_loud():
    node = oh.make_node("QuantizeLinear", ["x", "s"], ["y"])
    graph = oh.make_graph([node], "g", [oh.make_tensor_value_info("x", TP.FLOAT, [4]),
                                        oh.make_tensor_value_info("s", TP.FLOAT8E8M0, [])],
                          [oh.make_empty_tensor_value_info("y")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 24)])
    with pytest.raises(ConversionError, match="FLOAT8E8M0|float8e8m0"):
        ConvertModel(model, simplify=False)


# --- DequantizeLinear -----------------------------------------------------------------------
@pytest.mark.parametrize("opset", [10, 13, 19, 21])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32])
def test_dequantize_per_tensor(opset, dtype):
    info = np.iinfo(dtype)
    x = RNG.integers(max(info.min, -1000), min(info.max, 1000), size=(3, 4), endpoint=True).astype(dtype)
    consts = {"s": np.array(0.37, np.float32)}
    node_inputs = ["x", "s"]
    if dtype != np.int32:
        consts["zp"] = np.array(5, dtype)
        node_inputs.append("zp")
    check_ort(model_of("DequantizeLinear", node_inputs, {"x": x}, consts, opset=opset), {"x": x})


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16])
@pytest.mark.parametrize("axis", [0, 2, -2])
def test_dequantize_per_axis(dtype, axis):
    info = np.iinfo(dtype)
    x = RNG.integers(info.min, info.max, size=(3, 4, 5), endpoint=True).astype(dtype)
    n = x.shape[axis]
    scale = RNG.uniform(0.01, 2, size=n).astype(np.float32)
    zp = RNG.integers(info.min, info.max, size=n, endpoint=True).astype(dtype)
    model = model_of("DequantizeLinear", ["x", "s", "zp"], {"x": x, "s": scale, "zp": zp}, attrs={"axis": axis})
    check_ort(model, {"x": x, "s": scale, "zp": zp})


@pytest.mark.parametrize("block_size,axis", [(2, 1), (3, 1), (4, 0)])
def test_dequantize_blocked(block_size, axis):
    x = RNG.integers(-128, 128, size=(8, 6)).astype(np.int8)
    sshape = list(x.shape)
    sshape[axis] = -(-x.shape[axis] // block_size)
    scale = RNG.uniform(0.1, 2, size=sshape).astype(np.float32)
    zp = RNG.integers(-10, 10, size=sshape).astype(np.int8)
    model = model_of("DequantizeLinear", ["x", "s", "zp"], {"x": x}, {"s": scale, "zp": zp},
                     {"axis": axis, "block_size": block_size}, opset=21)
    check_ort(model, {"x": x})


@pytest.mark.parametrize("scale_dtype", [np.float16, np.float32])
def test_dequantize_float16_scale_and_output_dtype(scale_dtype):
    x = RNG.integers(0, 256, size=(4, 5)).astype(np.uint8)
    attrs = {"output_dtype": TP.FLOAT16} if scale_dtype == np.float32 else {}
    model = model_of("DequantizeLinear", ["x", "s", "zp"], {"x": x},
                     {"s": np.array(0.0123, scale_dtype), "zp": np.array(128, np.uint8)}, attrs, opset=23)
    got = check_reference(model, {"x": x})
    assert got[0].dtype == torch.float16
    if scale_dtype == np.float16:
        check_ort(model, {"x": x})


@pytest.mark.parametrize("elem", list(_ML_DTYPE), ids=lambda e: TP.DataType.Name(e))
def test_quantize_dequantize_float8_roundtrip(elem):
    """Quantize then dequantize a float8 tensor: the float8 value reaches DequantizeLinear at
    run time."""
    x = np.concatenate([SPECIAL[:-3], randn(50) * 30])
    s = numpy_helper.from_array(np.array(0.5, np.float32), "s")
    zp = tensor("zp", elem, [0.0], dims=[])
    nodes = [oh.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"]),
             oh.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"])]
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", TP.FLOAT, x.shape)],
                          [oh.make_empty_tensor_value_info("y")], [s, zp])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 21)])
    model.ir_version = 10
    check_reference(model, {"x": x})
    if elem == TP.FLOAT8E4M3FN:
        check_ort(model, {"x": x})


@pytest.mark.parametrize("elem", [TP.INT4, TP.UINT4, TP.INT2, TP.UINT2, TP.FLOAT4E2M1],
                         ids=lambda e: TP.DataType.Name(e))
def test_dequantize_sub_byte_constants(elem):
    values = {TP.INT4: [-8, -1, 0, 3, 7, 2], TP.UINT4: [0, 1, 9, 15, 4, 2], TP.INT2: [-2, -1, 0, 1, 1, 0],
              TP.UINT2: [0, 1, 2, 3, 3, 0], TP.FLOAT4E2M1: [-6, -1.5, 0, 0.5, 4, 3]}[elem]
    x = tensor("x", elem, values, dims=[2, 3])
    zp = tensor("zp", elem, [values[1]] * 3 if elem != TP.FLOAT4E2M1 else [0.0] * 3, dims=[3])
    scale = np.array([0.5, 1.5, 2.0], np.float32)
    model = model_of("DequantizeLinear", ["x", "s", "zp"], {}, {"x": x, "s": scale, "zp": zp}, opset=25)
    check_reference(model, {})


# --- DynamicQuantizeLinear ------------------------------------------------------------------
DYNAMIC_CASES = {
    "mixed": lambda: randn(3, 17) * 10,
    "positive": lambda: np.abs(randn(40)) + 1,
    "negative": lambda: -np.abs(randn(2, 9)) - 3,
    "zeros": lambda: np.zeros((5,), np.float32),
    "constant": lambda: np.full((4, 3), 2.5, np.float32),
    "ties": lambda: np.array([0.0, 1.0, 2.0, 255.0, 127.5, 0.5, 1.5, 2.5], np.float32),
    "scalar": lambda: np.array(-3.25, np.float32),
    "wide": lambda: randn(1000) * 1000,
}


@pytest.mark.parametrize("case", list(DYNAMIC_CASES))
def test_dynamic_quantize_linear(case):
    x = DYNAMIC_CASES[case]()
    model = model_of("DynamicQuantizeLinear", ["x"], {"x": x}, outputs=("y", "y_scale", "y_zero_point"), opset=11)
    got = check_ort(model, {"x": x})
    assert got[1].dim() == 0 and got[2].dim() == 0


# --- ConvInteger / QLinearConv --------------------------------------------------------------
CONV_CONFIGS = {
    "plain": dict(shape=(1, 3, 7, 7), w=(4, 3, 3, 3), attrs={}),
    "pads_strides": dict(shape=(2, 3, 8, 9), w=(5, 3, 3, 2), attrs={"pads": [1, 0, 2, 1], "strides": [2, 1]}),
    "dilations_group": dict(shape=(1, 4, 9, 9), w=(6, 2, 3, 3), attrs={"dilations": [2, 1], "group": 2}),
    "same_upper": dict(shape=(1, 2, 7, 6), w=(3, 2, 3, 4), attrs={"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    "same_lower": dict(shape=(1, 2, 7, 6), w=(3, 2, 2, 3), attrs={"auto_pad": "SAME_LOWER"}),
    "valid": dict(shape=(1, 2, 7, 6), w=(3, 2, 3, 3), attrs={"auto_pad": "VALID", "strides": [1, 2]}),
    "conv1d": dict(shape=(2, 3, 11), w=(4, 3, 3), attrs={"pads": [2, 1], "strides": [2]}),
    "conv3d": dict(shape=(1, 2, 4, 5, 5), w=(3, 2, 2, 3, 2), attrs={"pads": [1, 0, 1, 0, 1, 1]}),
}


@pytest.mark.parametrize("config", list(CONV_CONFIGS))
@pytest.mark.parametrize("x_dtype,w_dtype", [(np.uint8, np.uint8), (np.uint8, np.int8)])
@pytest.mark.parametrize("weights", ["const", "input"])
def test_conv_integer(config, x_dtype, w_dtype, weights):
    cfg = CONV_CONFIGS[config]
    x = RNG.integers(0, 256, size=cfg["shape"]).astype(x_dtype)
    info = np.iinfo(w_dtype)
    w = RNG.integers(info.min, info.max, size=cfg["w"], endpoint=True).astype(w_dtype)
    x_zp = np.array(7, x_dtype)
    w_zp = np.array(3, w_dtype)
    if weights == "const":
        model = model_of("ConvInteger", ["x", "w", "x_zp", "w_zp"], {"x": x}, {"w": w, "x_zp": x_zp, "w_zp": w_zp},
                         cfg["attrs"], opset=10)
        feeds = {"x": x}
    else:
        feeds = {"x": x, "w": w, "x_zp": x_zp}
        model = model_of("ConvInteger", ["x", "w", "x_zp"], feeds, attrs=cfg["attrs"], opset=10)
    got = check_ort(model, feeds)
    assert got[0].dtype == torch.int32


@pytest.mark.parametrize("config", ["pads_strides", "dilations_group", "same_lower"])
def test_conv_integer_per_channel_weight_zero_point(config):
    """onnxruntime only takes a scalar w_zero_point: the reference checks the per-channel one
    (2-D only: the reference reshapes it for 4-D weights)."""
    cfg = CONV_CONFIGS[config]
    x = RNG.integers(0, 256, size=cfg["shape"]).astype(np.uint8)
    w = RNG.integers(-128, 128, size=cfg["w"]).astype(np.int8)
    w_zp = RNG.integers(-128, 128, size=cfg["w"][0]).astype(np.int8)
    feeds = {"x": x, "w": w}
    model = model_of("ConvInteger", ["x", "w", "", "w_zp"], feeds, {"w_zp": w_zp}, cfg["attrs"], opset=10)
    check_reference(model, feeds)


@pytest.mark.parametrize("config", list(CONV_CONFIGS))
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("per_channel", [False, True])
def test_qlinear_conv(config, signed, per_channel):
    cfg = CONV_CONFIGS[config]
    dtype = np.int8 if signed else np.uint8
    info = np.iinfo(dtype)
    x = RNG.integers(info.min, info.max, size=cfg["shape"], endpoint=True).astype(dtype)
    w = RNG.integers(-127, 128, size=cfg["w"]).astype(np.int8)
    m = cfg["w"][0]
    w_scale = RNG.uniform(0.001, 0.02, size=m).astype(np.float32) if per_channel else np.array(0.01, np.float32)
    w_zp = np.zeros(m, np.int8) if per_channel else np.array(0, np.int8)
    consts = {
        "x_scale": np.array(0.05, np.float32), "x_zp": np.array(-3 if signed else 120, dtype),
        "w": w, "w_scale": w_scale, "w_zp": w_zp,
        "y_scale": np.array(0.07, np.float32), "y_zp": np.array(5 if signed else 130, dtype),
        "B": RNG.integers(-2000, 2000, size=m).astype(np.int32),
    }
    model = model_of("QLinearConv", ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp", "y_scale", "y_zp", "B"],
                     {"x": x}, consts, cfg["attrs"], opset=10)
    check_ort(model, {"x": x})


def test_qlinear_conv_runtime_weights_without_bias():
    x = RNG.integers(0, 256, size=(2, 3, 6, 6)).astype(np.uint8)
    w = RNG.integers(0, 256, size=(4, 3, 3, 3)).astype(np.uint8)
    feeds = {"x": x, "w": w}
    consts = {"x_scale": np.array(0.02, np.float32), "x_zp": np.array(128, np.uint8),
              "w_scale": np.array(0.004, np.float32), "w_zp": np.array(120, np.uint8),
              "y_scale": np.array(0.3, np.float32), "y_zp": np.array(100, np.uint8)}
    model = model_of("QLinearConv", ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp", "y_scale", "y_zp"],
                     feeds, consts, {"pads": [1, 1, 1, 1]}, opset=10)
    check_ort(model, feeds)


# --- QLinearMatMul --------------------------------------------------------------------------
@pytest.mark.parametrize("a_shape,b_shape", [((3, 5), (5, 4)), ((2, 3, 5), (5, 4)), ((2, 3, 5), (2, 5, 6)), ((5,), (5, 3))])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("opset", [10, 21])
def test_qlinear_matmul(a_shape, b_shape, dtype, opset):
    info = np.iinfo(dtype)
    a = RNG.integers(info.min, info.max, size=a_shape, endpoint=True).astype(dtype)
    b = RNG.integers(info.min, info.max, size=b_shape, endpoint=True).astype(dtype)
    consts = {"a_scale": np.array(0.03, np.float32), "a_zp": np.array(3, dtype),
              "b_scale": np.array(0.02, np.float32), "b_zp": np.array(-2 if dtype == np.int8 else 130, dtype),
              "y_scale": np.array(0.5, np.float32), "y_zp": np.array(10, dtype)}
    model = model_of("QLinearMatMul", ["a", "a_scale", "a_zp", "b", "b_scale", "b_zp", "y_scale", "y_zp"],
                     {"a": a, "b": b}, consts, opset=opset)
    check_ort(model, {"a": a, "b": b})


def test_qlinear_matmul_per_column_b():
    a = RNG.integers(0, 256, size=(4, 6)).astype(np.uint8)
    b = RNG.integers(-128, 128, size=(6, 3)).astype(np.int8)
    consts = {"a_scale": np.array(0.03, np.float32), "a_zp": np.array(128, np.uint8),
              "b_scale": np.array([0.01, 0.02, 0.05], np.float32), "b_zp": np.array([0, 0, 0], np.int8),
              "y_scale": np.array(0.4, np.float32), "y_zp": np.array(128, np.uint8)}
    model = model_of("QLinearMatMul", ["a", "a_scale", "a_zp", "b", "b_scale", "b_zp", "y_scale", "y_zp"],
                     {"a": a, "b": b}, consts, opset=10)
    check_ort(model, {"a": a, "b": b})


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_qlinear_matmul_float16_scales(dtype):
    a = RNG.integers(0, 100, size=(3, 4)).astype(dtype)
    b = RNG.integers(0, 100, size=(4, 2)).astype(dtype)
    consts = {"a_scale": np.array(0.03, np.float16), "a_zp": np.array(3, dtype),
              "b_scale": np.array(0.02, np.float16), "b_zp": np.array(2, dtype),
              "y_scale": np.array(0.5, np.float16), "y_zp": np.array(10, dtype)}
    model = model_of("QLinearMatMul", ["a", "a_scale", "a_zp", "b", "b_scale", "b_zp", "y_scale", "y_zp"],
                     {"a": a, "b": b}, consts, opset=21)
    check_reference(model, {"a": a, "b": b})


# --- generated code -------------------------------------------------------------------------
def test_generated_code_reads_well():
    x = randn(2, 4)
    model = model_of("QuantizeLinear", ["x", "s", "zp"], {"x": x},
                     {"s": np.array([0.1, 0.2, 0.3, 0.4], np.float32), "zp": tensor("zp", TP.INT4, [0, 1, 2, 3])})
    code = ConvertModel(model, simplify=False).code
    assert "onnx_quantize_linear" in code and "qtype = 'int4'" in code
