"""Signal family (DFT, STFT, Hann/Hamming/BlackmanWindow, MelWeightMatrix) against onnxruntime,
and against onnx's reference evaluator where onnxruntime has no kernel for a case."""
from __future__ import annotations

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


def randn(*shape: int, dtype=np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def model_of(op_type: str, node_inputs: list[str], inputs: dict[str, np.ndarray],
             consts: dict[str, np.ndarray] | None = None, attrs: dict | None = None, opset: int = 17) -> onnx.ModelProto:
    node = oh.make_node(op_type, node_inputs, ["y"], **(attrs or {}))
    graph = oh.make_graph(
        [node],
        "test",
        [oh.make_tensor_value_info(k, oh.np_dtype_to_tensor_dtype(v.dtype), v.shape) for k, v in inputs.items()],
        [oh.make_empty_tensor_value_info("y")],
        [numpy_helper.from_array(v, k) for k, v in (consts or {}).items()],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 9
    return model


def run_converted(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> torch.Tensor:
    module = ConvertModel(model, simplify=False)
    inits = {t.name for t in model.graph.initializer}
    args = [to_torch(feeds[v.name]).reshape(feeds[v.name].shape) for v in model.graph.input if v.name not in inits]
    with torch.no_grad():
        return module(*args)


def check(model: onnx.ModelProto, feeds: dict[str, np.ndarray], *, oracle: str = "ort", atol: float = 1e-4,
          rtol: float = 1e-4) -> torch.Tensor:
    """The converted output against onnxruntime (or the reference): dtype, shape and values."""
    if oracle == "ort":
        expected = run_onnxruntime(model, feeds)[0]
    else:
        expected = ReferenceEvaluator(model).run(None, feeds)[0]
    got = run_converted(model, feeds)
    exp = to_torch(np.asarray(expected)).reshape(np.shape(expected))
    assert got.dtype == exp.dtype, f"dtype {got.dtype} != {exp.dtype}"
    assert got.shape == exp.shape, f"shape {tuple(got.shape)} != {tuple(exp.shape)}"
    torch.testing.assert_close(got.double(), exp.double(), atol=atol, rtol=rtol, equal_nan=True)
    return got


# --- DFT ------------------------------------------------------------------------------------
@pytest.mark.parametrize("opset", [17, 20])
@pytest.mark.parametrize("complex_input", [False, True])
@pytest.mark.parametrize("inverse", [0, 1])
@pytest.mark.parametrize("axis", [1, 2, -2, -3])
def test_dft(opset, complex_input, inverse, axis):
    x = randn(2, 6, 5, 2 if complex_input else 1)
    attrs = {"inverse": inverse}
    if opset < 20:
        model = model_of("DFT", ["x"], {"x": x}, attrs={**attrs, "axis": axis}, opset=opset)
    else:
        model = model_of("DFT", ["x", "", "axis"], {"x": x}, {"axis": np.array(axis, np.int64)}, attrs, opset=opset)
    check(model, {"x": x})


@pytest.mark.parametrize("opset", [17, 20])
@pytest.mark.parametrize("length", [4, 8, 13])
def test_dft_length_truncates_and_pads(opset, length):
    x = randn(3, 8, 2)
    model = model_of("DFT", ["x", "n"], {"x": x}, {"n": np.array(length, np.int64)}, opset=opset)
    check(model, {"x": x})


@pytest.mark.parametrize("length", [None, 6, 7, 10])
def test_dft_onesided_forward(length):
    x = randn(2, 7, 1)
    consts = {} if length is None else {"n": np.array(length, np.int64)}
    model = model_of("DFT", ["x"] + (["n"] if length else []), {"x": x}, consts, {"onesided": 1}, opset=20)
    check(model, {"x": x})


@pytest.mark.parametrize("length", [None, 8, 9, 6])
def test_dft_irfft(length):
    spectrum = randn(3, 5, 2)
    consts = {} if length is None else {"n": np.array(length, np.int64)}
    model = model_of("DFT", ["x"] + (["n"] if length else []), {"x": spectrum}, consts,
                     {"onesided": 1, "inverse": 1}, opset=20)
    check(model, {"x": spectrum})


def test_dft_runtime_length_and_axis():
    x = randn(2, 4, 6, 2)
    feeds = {"x": x, "n": np.array(5, np.int64), "axis": np.array(2, np.int64)}
    model = model_of("DFT", ["x", "n", "axis"], feeds, opset=20)
    check(model, feeds)


def test_dft_default_axis_per_opset():
    """Opset 17 defaults to axis 1, opset 20 to -2."""
    x = randn(2, 3, 4, 2)
    for opset in (17, 20):
        check(model_of("DFT", ["x"], {"x": x}, opset=opset), {"x": x})


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_dft_dtypes(dtype):
    x = randn(2, 8, 2).astype(dtype)
    model = model_of("DFT", ["x"], {"x": x}, attrs={"inverse": 1}, opset=17)
    tol = 1e-2 if dtype == np.float16 else 1e-10
    check(model, {"x": x}, oracle="reference", atol=tol, rtol=tol)


def test_dft_last_axis_is_loud():
    x = randn(2, 8, 2)
    model = model_of("DFT", ["x"], {"x": x}, attrs={"axis": 2}, opset=17)
    with pytest.raises(Exception, match="axis"):
        run_converted(model, {"x": x})


# --- STFT -----------------------------------------------------------------------------------
@pytest.mark.parametrize("onesided", [1, 0])
@pytest.mark.parametrize("step,length", [(4, 16), (3, 8), (16, 16), (5, 7)])
@pytest.mark.parametrize("with_window", [False, True])
def test_stft(onesided, step, length, with_window):
    signal = randn(2, 64, 1)
    consts = {"step": np.array(step, np.int64)}
    node_inputs = ["signal", "step"]
    if with_window:
        consts["window"] = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)).astype(np.float32)
        node_inputs.append("window")
    else:
        consts["length"] = np.array(length, np.int64)
        node_inputs += ["", "length"]
    model = model_of("STFT", node_inputs, {"signal": signal}, consts, {"onesided": onesided})
    check(model, {"signal": signal})


def test_stft_window_and_length_together():
    signal = randn(1, 40, 1)
    consts = {"step": np.array(6, np.int64), "window": randn(10), "length": np.array(10, np.int64)}
    model = model_of("STFT", ["signal", "step", "window", "length"], {"signal": signal}, consts)
    check(model, {"signal": signal})


def test_stft_complex_signal():
    signal = randn(2, 30, 2)
    consts = {"step": np.array(5, np.int64), "window": randn(8)}
    model = model_of("STFT", ["signal", "step", "window"], {"signal": signal}, consts, {"onesided": 0})
    check(model, {"signal": signal})


def test_stft_runtime_step_length_and_window():
    signal = randn(1, 50, 1)
    feeds = {"signal": signal, "step": np.array(7, np.int64), "window": randn(12), "length": np.array(12, np.int64)}
    model = model_of("STFT", ["signal", "step", "window", "length"], feeds)
    check(model, feeds)


def test_stft_double():
    signal = randn(1, 32, 1, dtype=np.float64)
    model = model_of("STFT", ["signal", "step", "", "length"], {"signal": signal},
                     {"step": np.array(8, np.int64), "length": np.array(16, np.int64)})
    check(model, {"signal": signal}, atol=1e-10, rtol=1e-10)


# --- windows --------------------------------------------------------------------------------
WINDOWS = ["HannWindow", "HammingWindow", "BlackmanWindow"]


@pytest.mark.parametrize("op", WINDOWS)
@pytest.mark.parametrize("periodic", [1, 0])
@pytest.mark.parametrize("size", [1, 2, 7, 10, 64])
def test_window(op, periodic, size):
    feeds = {"size": np.array(size, np.int64)}
    model = model_of(op, ["size"], feeds, attrs={"periodic": periodic})
    check(model, feeds, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("op", WINDOWS)
@pytest.mark.parametrize("elem", [TP.DOUBLE, TP.FLOAT16, TP.INT64, TP.UINT8, TP.INT32])
def test_window_output_datatype(op, elem):
    feeds = {"size": np.array(9, np.int32)}
    model = model_of(op, ["size"], feeds, attrs={"output_datatype": elem, "periodic": 0})
    check(model, feeds, oracle="reference", atol=1e-3, rtol=1e-3)


def test_window_constant_size_is_folded():
    model = model_of("HannWindow", ["size"], {}, {"size": np.array(16, np.int64)})
    module = ConvertModel(model, simplify=False)
    assert "hann" not in module.code
    with torch.no_grad():
        torch.testing.assert_close(module(), torch.hann_window(16, periodic=True))


# --- MelWeightMatrix ------------------------------------------------------------------------
MEL_CASES = [
    (8, 16, 8192, 0.0, 4096.0),
    (8, 16, 8192, 20.0, 4000.0),
    (20, 512, 16000, 0.0, 8000.0),
    (40, 400, 16000, 125.0, 7600.0),
    (64, 2048, 44100, 50.0, 14000.0),
]
#: an upper edge at Nyquist: onnxruntime refuses it (its last edge lands one bin past the end),
#: the reference builds the matrix
MEL_NYQUIST = (13, 255, 22050, 300.0, 11025.0)


@pytest.mark.parametrize("case", [*MEL_CASES, MEL_NYQUIST], ids=str)
def test_mel_weight_matrix(case):
    bins, length, rate, low, high = case
    feeds = {"bins": np.array(bins, np.int64), "length": np.array(length, np.int64),
             "rate": np.array(rate, np.int64), "low": np.array(low, np.float32), "high": np.array(high, np.float32)}
    model = model_of("MelWeightMatrix", list(feeds), feeds)
    if case != MEL_NYQUIST:
        check(model, feeds, atol=1e-6, rtol=1e-6)
    check(model, feeds, oracle="reference", atol=0, rtol=0)


@pytest.mark.parametrize("elem", [TP.DOUBLE, TP.FLOAT16, TP.INT32, TP.UINT8])
def test_mel_weight_matrix_output_datatype_and_constants(elem):
    consts = {"bins": np.array(10, np.int32), "length": np.array(64, np.int32), "rate": np.array(8000, np.int32),
              "low": np.array(100, np.float64), "high": np.array(3900, np.float64)}
    model = model_of("MelWeightMatrix", list(consts), {}, consts, {"output_datatype": elem})
    expected = ReferenceEvaluator(model).run(None, {})[0]
    module = ConvertModel(model, simplify=False)
    with torch.no_grad():
        got = module()
    exp = to_torch(expected)
    assert got.dtype == exp.dtype and got.shape == exp.shape
    torch.testing.assert_close(got, exp, atol=0, rtol=0)


def test_unsupported_output_datatype_is_loud():
    model = model_of("HannWindow", ["size"], {}, {"size": np.array(4, np.int64)}, {"output_datatype": TP.BOOL})
    with pytest.raises(ConversionError, match="output_datatype"):
        ConvertModel(model, simplify=False)
