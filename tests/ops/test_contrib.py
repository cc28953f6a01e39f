"""com.microsoft contrib operators against onnxruntime, which runs every one of them."""
from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto, numpy_helper

from onnx2torch import ConvertModel
from onnx2torch.errors import UnsupportedOperatorError
from tests.helpers import (
    NP_TO_ONNX,
    assert_matches_ort,
    convert_and_run,
    single_node_model,
)

MS = "com.microsoft"
rng = np.random.default_rng(0)


def f32(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def u8(*shape, low=0, high=256):
    return rng.integers(low, high, shape).astype(np.uint8)


def i8(*shape):
    return rng.integers(-128, 128, shape).astype(np.int8)


def scalar(v, dtype=np.float32):
    return np.array(v, dtype=dtype)


def ms_model(op, inputs, attrs=None, initializers=None, outputs=("y",), opset=17, domain=MS):
    """A one-node model whose inputs may be skipped with None (kept as '' in the node)."""
    initializers = initializers or {}
    names = []
    graph_inputs, inits = [], []
    for key, value in list(inputs.items()) + list(initializers.items()):
        if value is None:
            names.append("")
            continue
        names.append(key)
        if key in initializers:
            inits.append(numpy_helper.from_array(value, key))
        else:
            graph_inputs.append(oh.make_tensor_value_info(key, NP_TO_ONNX[value.dtype], value.shape))
    node = oh.make_node(op, names, list(outputs), domain=domain, **(attrs or {}))
    graph = oh.make_graph([node], "t", graph_inputs, [oh.make_empty_tensor_value_info(o) for o in outputs if o], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset), oh.make_opsetid(MS, 1)])
    model.ir_version = 8
    return model


def check(op, inputs, attrs=None, initializers=None, outputs=("y",), atol=1e-5, rtol=1e-4, exact=False, domain=MS):
    feeds = {k: v for k, v in inputs.items() if v is not None}
    model = ms_model(op, inputs, attrs, initializers, outputs, domain=domain)
    return assert_matches_ort(model, feeds, atol=atol, rtol=rtol, exact=exact)


# --- activations ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_gelu_family(dtype):
    x, b = f32(2, 5, 8).astype(dtype), f32(8).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 2e-3
    check("Gelu", {"x": x}, atol=tol)
    check("BiasGelu", {"x": x, "b": b}, atol=tol)
    check("FastGelu", {"x": x}, atol=tol)
    check("FastGelu", {"x": x, "b": b}, atol=tol)
    check("QuickGelu", {"x": x}, atol=tol)
    check("QuickGelu", {"x": x}, {"alpha": 1.0}, atol=tol)


def test_bias_add():
    # onnxruntime has BiasAdd only on CUDA: the schema's formula is the reference
    x, bias, skip = f32(2, 6, 4), f32(4), f32(2, 6, 4)
    (got,) = convert_and_run(ms_model("BiasAdd", {"x": x, "bias": bias, "skip": skip}), {"x": x, "bias": bias, "skip": skip})
    np.testing.assert_allclose(got, x + bias + skip, rtol=1e-6)


# --- normalizations ---------------------------------------------------------------------------
@pytest.mark.parametrize("beta, bias", [(True, True), (True, False), (False, True), (False, False)])
def test_skip_layer_normalization(beta, bias):
    inputs = {"x": f32(2, 5, 16), "skip": f32(2, 5, 16), "gamma": f32(16), "beta": f32(16) if beta else None,
              "bias": f32(16) if bias else None}
    check("SkipLayerNormalization", inputs, {"epsilon": 1e-5})
    check("SkipLayerNormalization", inputs, outputs=("y", "", "", "sum"))


def test_skip_layer_normalization_2d_skip_and_half():
    check("SkipLayerNormalization", {"x": f32(2, 5, 16), "skip": f32(5, 16), "gamma": f32(16), "beta": f32(16)})
    h = {"x": f32(2, 5, 16).astype(np.float16), "skip": f32(2, 5, 16).astype(np.float16),
         "gamma": f32(16).astype(np.float16), "beta": f32(16).astype(np.float16)}
    check("SkipLayerNormalization", h, atol=4e-3, rtol=4e-3)


@pytest.mark.parametrize("bias", [True, False])
def test_skip_simplified_layer_normalization(bias):
    inputs = {"x": f32(2, 5, 16), "skip": f32(2, 5, 16), "gamma": f32(16), "bias": f32(16) if bias else None}
    check("SkipSimplifiedLayerNormalization", inputs, {"epsilon": 1e-6})
    check("SkipSimplifiedLayerNormalization", inputs, outputs=("y", "", "", "sum"))


@pytest.mark.parametrize("axis", [-1, 1])
def test_simplified_layer_normalization(axis):
    check("SimplifiedLayerNormalization", {"x": f32(2, 3, 8), "scale": f32(*([3, 8] if axis == 1 else [8]))},
          {"axis": axis, "epsilon": 1e-6}, domain="")


@pytest.mark.parametrize("segments, mask, positions", [(True, True, False), (False, False, False), (True, False, True)])
def test_embed_layer_normalization(segments, mask, positions):
    ids = rng.integers(0, 50, (2, 7)).astype(np.int32)
    m = np.ones((2, 7), np.int32)
    m[1, 4:] = 0
    inputs = {"ids": ids, "seg": rng.integers(0, 2, (2, 7)).astype(np.int32) if segments else None}
    inits = {"word": f32(50, 16), "pos": f32(20, 16), "segemb": f32(2, 16) if segments else None,
             "gamma": f32(16), "beta": f32(16)}
    tail = {"mask": m if mask else None, "pos_ids": rng.integers(0, 20, (2, 7)).astype(np.int32) if positions else None}
    model_inputs = {**inputs}
    # inputs must keep the schema order: ids, seg, word, pos, segemb, gamma, beta, mask, position_ids
    names, graph_inputs, init_protos = [], [], []
    for key, value in list(inputs.items()) + list(inits.items()) + list(tail.items()):
        if value is None:
            names.append("")
            continue
        names.append(key)
        if key in inits:
            init_protos.append(numpy_helper.from_array(value, key))
        else:
            graph_inputs.append(oh.make_tensor_value_info(key, NP_TO_ONNX[value.dtype], value.shape))
            model_inputs[key] = value
    outputs = ["y", "mask_index", "emb_sum"]
    node = oh.make_node("EmbedLayerNormalization", names, outputs, domain=MS, epsilon=1e-5)
    graph = oh.make_graph([node], "t", graph_inputs, [oh.make_empty_tensor_value_info(o) for o in outputs], init_protos)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid(MS, 1)])
    model.ir_version = 8
    got = assert_matches_ort(model, {k: v for k, v in model_inputs.items() if v is not None})
    assert got[1].dtype == np.int32


# --- attention --------------------------------------------------------------------------------
def _attention_inputs(batch=2, seq=6, hidden=16, v_hidden=None):
    v_hidden = v_hidden or hidden
    return f32(batch, seq, hidden), f32(hidden, 2 * hidden + v_hidden, scale=0.3), f32(2 * hidden + v_hidden)


@pytest.mark.parametrize("mask_kind", ["none", "lengths", "raw2d", "raw3d", "left_right"])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_masks(mask_kind, causal):
    x, w, b = _attention_inputs()
    mask = None
    if mask_kind == "lengths":
        mask = np.array([6, 4], np.int32)
    elif mask_kind == "raw2d":
        mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 0, 1, 1, 0]], np.int32)
    elif mask_kind == "raw3d":
        mask = rng.integers(0, 2, (2, 6, 6)).astype(np.int32)
        mask[:, :, 0] = 1
    elif mask_kind == "left_right":
        mask = np.array([6, 5, 0, 2], np.int32)
    check("Attention", {"x": x},
          {"num_heads": 4, "unidirectional": causal},
          initializers={"w": w, "b": b, **({"mask": mask} if mask is not None else {})}, atol=1e-5)


def test_attention_runtime_weights_scale_bias_and_v_size():
    x, w, b = _attention_inputs(v_hidden=8)
    inputs = {"x": x, "w": w, "b": b, "mask": None, "past": None, "attn_bias": f32(1, 2, 6, 6)}
    check("Attention", inputs, {"num_heads": 2, "qkv_hidden_sizes": [16, 16, 8], "scale": 0.3})


def test_attention_past_present():
    x, w, b = _attention_inputs(seq=3)
    past = f32(2, 2, 4, 5, 4)
    check("Attention", {"x": x, "w": w, "b": b, "mask": None, "past": past}, {"num_heads": 4, "unidirectional": 1},
          outputs=("y", "present"))


@pytest.mark.parametrize("per_column", [False, True])
def test_qattention(per_column):
    hidden = 16
    x = u8(2, 6, hidden)
    inits = {"w": i8(hidden, 3 * hidden), "b": f32(3 * hidden), "x_s": scalar(0.02),
             "w_s": np.abs(f32(3 * hidden)) * 0.005 + 0.001 if per_column else scalar(0.004),
             "mask": np.array([6, 4], np.int32), "x_z": np.array(120, np.uint8),
             "w_z": np.zeros(3 * hidden, np.int8) if per_column else np.array(0, np.int8)}
    check("QAttention", {"x": x}, {"num_heads": 4}, initializers=inits, atol=1e-5)


def test_qembed_layer_normalization():
    ids = rng.integers(0, 50, (2, 7)).astype(np.int32)
    seg = rng.integers(0, 2, (2, 7)).astype(np.int32)
    mask = np.ones((2, 7), np.int32)
    tables = {"word": u8(50, 16), "pos": u8(20, 16), "segemb": u8(2, 16), "gamma": u8(16), "beta": u8(16)}
    scales = {f"{k}_s": scalar(0.01 + 0.002 * i) for i, k in enumerate(tables)}
    zeros = {f"{k}_z": np.array(100 + i, np.uint8) for i, k in enumerate(tables)}
    names = ["ids", "seg", *tables, "mask", *scales, *zeros]
    node = oh.make_node("QEmbedLayerNormalization", names, ["y", "mask_index"], domain=MS, epsilon=1e-5)
    inits = [numpy_helper.from_array(v, k) for k, v in {**tables, **scales, **zeros}.items()]
    graph = oh.make_graph([node], "t", [oh.make_tensor_value_info("ids", TensorProto.INT32, ids.shape),
                                        oh.make_tensor_value_info("seg", TensorProto.INT32, seg.shape),
                                        oh.make_tensor_value_info("mask", TensorProto.INT32, mask.shape)],
                          [oh.make_empty_tensor_value_info("y"), oh.make_empty_tensor_value_info("mask_index")], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid(MS, 1)])
    model.ir_version = 8
    assert_matches_ort(model, {"ids": ids, "seg": seg, "mask": mask}, atol=1e-5)


@pytest.mark.parametrize("layout", ["separate", "bnsh_kv", "cross"])
def test_multi_head_attention_layouts(layout):
    heads, hd = 2, 4
    hidden = heads * hd
    bias = f32(3 * hidden)
    if layout == "separate":
        inputs = {"q": f32(2, 5, hidden), "k": f32(2, 5, hidden), "v": f32(2, 5, hidden), "bias": bias}
    elif layout == "cross":
        inputs = {"q": f32(2, 5, hidden), "k": f32(2, 7, hidden), "v": f32(2, 7, hidden), "bias": bias,
                  "mask": np.array([[1] * 7, [1] * 4 + [0] * 3], np.int32)}
    else:
        inputs = {"q": f32(2, 5, hidden), "k": f32(2, heads, 7, hd), "v": f32(2, heads, 7, hd)}
    check("MultiHeadAttention", inputs, {"num_heads": heads})


@pytest.mark.parametrize("packing", ["qkv", "kv"])
def test_multi_head_attention_packed(packing):
    # onnxruntime's CPU kernel has no packed layouts: compare with the same tensors unpacked
    heads, hd = 2, 4
    hidden = heads * hd
    if packing == "qkv":
        packed, bias = f32(2, 5, heads, 3, hd), f32(3 * hidden)
        q, k, v = (packed[:, :, :, i].reshape(2, 5, hidden) for i in range(3))
        got = convert_and_run(ms_model("MultiHeadAttention", {"p": packed, "k": None, "v": None, "bias": bias},
                                       {"num_heads": heads}), {"p": packed, "bias": bias})
        separate = {"q": q, "k": k, "v": v, "bias": bias}
    else:
        q, packed = f32(2, 5, hidden), f32(2, 7, heads, 2, hd)
        k, v = (packed[:, :, :, i].reshape(2, 7, hidden) for i in range(2))
        got = convert_and_run(ms_model("MultiHeadAttention", {"q": q, "p": packed}, {"num_heads": heads}),
                              {"q": q, "p": packed})
        separate = {"q": q, "k": k, "v": v}
    expected = assert_matches_ort(ms_model("MultiHeadAttention", separate, {"num_heads": heads}), separate)
    np.testing.assert_allclose(got[0], expected[0], atol=1e-5, rtol=1e-4)


def test_multi_head_attention_past_causal_and_lengths():
    heads, hd = 2, 4
    hidden = heads * hd
    inputs = {"q": f32(2, 3, hidden), "k": f32(2, 3, hidden), "v": f32(2, 3, hidden), "bias": None,
              "mask": np.array([7, 5], np.int32), "attn_bias": None, "pk": f32(2, heads, 4, hd), "pv": f32(2, heads, 4, hd)}
    check("MultiHeadAttention", inputs, {"num_heads": heads, "unidirectional": 1}, outputs=("y", "pk_out", "pv_out"))


@pytest.mark.parametrize("layout", ["bsh", "bnsh"])
@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("positions", ["start", "ids"])
def test_rotary_embedding(layout, interleaved, positions):
    heads, hd, seq = 2, 8, 5
    x = f32(2, seq, heads * hd) if layout == "bsh" else f32(2, heads, seq, hd)
    pos = np.array([3], np.int64) if positions == "start" else rng.integers(0, 16, (2, seq)).astype(np.int64)
    cos, sin = f32(16, hd // 2), f32(16, hd // 2)
    attrs = {"interleaved": interleaved}
    if layout == "bsh":
        attrs["num_heads"] = heads
    check("RotaryEmbedding", {"x": x, "pos": pos, "cos": cos, "sin": sin}, attrs)


def test_rotary_embedding_partial():
    heads, hd, seq = 2, 8, 5
    check("RotaryEmbedding", {"x": f32(1, seq, heads * hd), "pos": np.array([0], np.int64), "cos": f32(8, 2),
                              "sin": f32(8, 2)}, {"num_heads": heads, "rotary_embedding_dim": 4})


# --- fused operators ---------------------------------------------------------------------------
@pytest.mark.parametrize("activation, params", [("Relu", None), ("LeakyRelu", [0.2]), ("Clip", [-0.5, 0.7]),
                                                ("HardSigmoid", [0.3, 0.4]), ("Tanh", None), ("Sigmoid", None)])
@pytest.mark.parametrize("with_sum", [False, True])
def test_fused_conv(activation, params, with_sum):
    attrs = {"activation": activation, "pads": [1, 1, 1, 1], "strides": [1, 1], "kernel_shape": [3, 3]}
    if params:
        attrs["activation_params"] = params
    inputs = {"x": f32(2, 3, 8, 8)}
    inits = {"w": f32(4, 3, 3, 3), "b": f32(4)}
    if with_sum:
        inputs_all = {"x": inputs["x"], "w": inits["w"], "b": inits["b"], "z": f32(2, 4, 8, 8)}
        check("FusedConv", inputs_all, attrs)
    else:
        check("FusedConv", inputs, attrs, initializers=inits)


def test_fused_gemm_and_matmul():
    check("FusedGemm", {"a": f32(3, 5)}, {"activation": "LeakyRelu", "activation_alpha": 0.1, "transB": 1, "alpha": 0.5},
          initializers={"b": f32(4, 5), "c": f32(4)})
    check("FusedMatMul", {"a": f32(2, 5, 3), "b": f32(2, 4, 5)}, {"transA": 1, "transB": 1, "alpha": 0.125})
    check("FusedMatMul", {"a": f32(2, 3, 5)}, {"transB": 1}, initializers={"b": f32(4, 5)})


# --- quantized operators -------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["QLinearAdd", "QLinearMul"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_qlinear_binary(op, dtype):
    gen = u8 if dtype == np.uint8 else i8
    zp = (lambda v: np.array(v, dtype))
    inputs = {"a": gen(2, 3, 8), "a_s": scalar(0.05), "a_z": zp(100 if dtype == np.uint8 else 3),
              "b": gen(8), "b_s": scalar(0.07), "b_z": zp(120 if dtype == np.uint8 else -5),
              "c_s": scalar(0.11 if op == "QLinearAdd" else 0.9), "c_z": zp(128 if dtype == np.uint8 else 1)}
    check(op, inputs, exact=True)


@pytest.mark.parametrize("scales", [(0.05, 0.07, 0.9), (0.02, 0.3, 0.11), (1.0, 1.0, 3.0)])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_qlinear_mul_every_pair_rounds_like_onnxruntime(dtype, scales):
    """All 65,536 pairs of operands: the zero point is added before rounding, as onnxruntime does."""
    info = np.iinfo(dtype)
    values = np.arange(info.min, info.max + 1).astype(dtype)
    zp = (lambda v: np.array(v, dtype))
    inputs = {"a": values.reshape(-1, 1), "a_s": scalar(scales[0]), "a_z": zp(100 if dtype == np.uint8 else 3),
              "b": values, "b_s": scalar(scales[1]), "b_z": zp(120 if dtype == np.uint8 else -5),
              "c_s": scalar(scales[2]), "c_z": zp(128 if dtype == np.uint8 else 1)}
    check("QLinearMul", inputs, exact=True)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_qlinear_unary(dtype):
    x = u8(2, 16) if dtype == np.uint8 else i8(2, 16)
    zp = np.array(10 if dtype == np.uint8 else -3, dtype)
    inputs = {"x": x, "x_s": scalar(0.05), "x_z": zp, "y_s": scalar(1 / 256), "y_z": np.array(0, dtype)}
    check("QLinearSigmoid", inputs, exact=True)
    check("QLinearLeakyRelu", inputs, {"alpha": 0.1}, exact=True)


@pytest.mark.parametrize("dtype, axis, opset", [(np.uint8, -1, 13), (np.int8, -1, 13), (np.uint8, 1, 13),
                                                (np.uint8, 1, 12)])
def test_qlinear_softmax(dtype, axis, opset):
    x = u8(3, 10, 4) if dtype == np.uint8 else i8(3, 10, 4)
    inputs = {"x": x, "x_s": scalar(0.08), "x_z": np.array(128 if dtype == np.uint8 else 0, dtype),
              "y_s": scalar(1 / 256), "y_z": np.array(0 if dtype == np.uint8 else -128, dtype)}
    check("QLinearSoftmax", inputs, {"axis": axis, "opset": opset}, exact=True)


def test_qlinear_concat():
    inputs = {"y_s": scalar(0.1), "y_z": np.array(128, np.uint8),
              "a": u8(1, 2, 4), "a_s": scalar(0.1), "a_z": np.array(128, np.uint8),
              "b": u8(1, 3, 4), "b_s": scalar(0.05), "b_z": np.array(100, np.uint8)}
    check("QLinearConcat", inputs, {"axis": 1}, exact=True)


@pytest.mark.parametrize("channels_last", [0, 1])
def test_qlinear_global_average_pool(channels_last):
    inputs = {"x": u8(2, 7, 5, 5), "x_s": scalar(0.03), "x_z": np.array(120, np.uint8), "y_s": scalar(0.02),
              "y_z": np.array(110, np.uint8)}
    check("QLinearGlobalAveragePool", inputs, {"channels_last": channels_last}, exact=True)


@pytest.mark.parametrize("attrs", [{"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
                                   {"kernel_shape": [2, 2], "count_include_pad": 1, "pads": [0, 0, 1, 1]},
                                   {"kernel_shape": [3, 3], "ceil_mode": 1, "strides": [2, 2]}])
def test_qlinear_average_pool(attrs):
    inputs = {"x": u8(1, 3, 7, 7), "x_s": scalar(0.03), "x_z": np.array(120, np.uint8), "y_s": scalar(0.025),
              "y_z": np.array(110, np.uint8)}
    check("QLinearAveragePool", inputs, attrs, exact=True)


@pytest.mark.parametrize("quantized_out", [False, True])
@pytest.mark.parametrize("per_column", [False, True])
def test_qgemm(quantized_out, per_column):
    inits = {"a_s": scalar(0.02), "a_z": np.array(130, np.uint8), "b": i8(6, 5),
             "b_s": (np.abs(f32(6)) * 0.01 + 0.001) if per_column else scalar(0.01),
             "b_z": np.zeros(6, np.int8) if per_column else np.array(0, np.int8),
             "c": rng.integers(-500, 500, (6,)).astype(np.int32)}
    if quantized_out:
        inits.update(y_s=scalar(0.05), y_z=np.array(120, np.uint8))
    a = u8(3, 5)
    # input order: A, a_scale, a_zp, B, b_scale, b_zp, C, y_scale, y_zp
    inputs = {"a": a}
    model = ms_model("QGemm", {**inputs, **inits}, {"transB": 1, "alpha": 1.0}, outputs=("y",))
    for name in list(inits):  # make the constants initializers
        value = inits[name]
        model.graph.initializer.append(numpy_helper.from_array(value, name))
    keep = [v for v in model.graph.input if v.name == "a"]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    assert_matches_ort(model, inputs, exact=quantized_out, atol=1e-5)


def test_dynamic_quantize_matmul_and_integer_to_float():
    check("DynamicQuantizeMatMul", {"a": f32(3, 4, 8)},
          initializers={"b": i8(8, 5), "b_s": scalar(0.02), "b_z": np.array(0, np.int8), "bias": f32(5)})
    check("MatMulIntegerToFloat", {"a": u8(3, 8)},
          initializers={"b": i8(8, 5), "a_s": scalar(0.03), "b_s": np.abs(f32(5)) * 0.01 + 0.001,
                        "a_z": np.array(128, np.uint8), "b_z": np.zeros(5, np.int8), "bias": f32(5)})


@pytest.mark.parametrize("zero_points", ["packed", "none", "float"])
@pytest.mark.parametrize("k", [64, 40])
def test_matmul_nbits(zero_points, k):
    n, block = 6, 32
    blocks = (k + block - 1) // block
    inits = {"b": u8(n, blocks, block // 2), "scales": (np.abs(f32(n * blocks)) * 0.05 + 0.01)}
    if zero_points == "packed":
        inits["zp"] = u8(n, (blocks + 1) // 2)
    elif zero_points == "float":
        inits["zp"] = f32(n * blocks)
    check("MatMulNBits", {"a": f32(2, 3, k)}, {"K": k, "N": n, "bits": 4, "block_size": block},
          initializers=inits, atol=1e-4)


def test_com_microsoft_quantize_dequantize():
    x = f32(2, 6)
    check("QuantizeLinear", {"x": x}, initializers={"s": scalar(0.05), "z": np.array(3, np.int8)}, exact=True)
    check("DequantizeLinear", {"x": i8(2, 6)}, {"axis": 1},
          initializers={"s": np.abs(f32(6)) + 0.1, "z": np.zeros(6, np.int8)})


@pytest.mark.parametrize("direction, batch", [("forward", 1), ("forward", 3), ("bidirectional", 2), ("reverse", 6)])
def test_dynamic_quantize_lstm(direction, batch):
    import onnxruntime as ort
    import torch

    dirs, hidden, feat = (2 if direction == "bidirectional" else 1), 8, 5
    x = f32(4, batch, feat)
    inits = {
        "w": i8(dirs, feat, 4 * hidden), "r": i8(dirs, hidden, 4 * hidden), "b": f32(dirs, 8 * hidden, scale=0.1),
        "seq": None, "h0": None, "c0": None, "p": None,
        "w_s": np.full(dirs, 0.01, np.float32), "w_z": np.zeros(dirs, np.int8),
        "r_s": np.full(dirs, 0.02, np.float32), "r_z": np.zeros(dirs, np.int8),
    }
    names = ["x"] + [k if inits[k] is not None else "" for k in inits]
    node = oh.make_node("DynamicQuantizeLSTM", names, ["y", "y_h", "y_c"], domain=MS, hidden_size=hidden,
                        direction=direction)
    graph = oh.make_graph([node], "t", [oh.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [oh.make_empty_tensor_value_info(o) for o in ("y", "y_h", "y_c")],
                          [numpy_helper.from_array(v, k) for k, v in inits.items() if v is not None])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid(MS, 1)])
    model.ir_version = 8
    # onnxruntime quantizes the recurrent state per group of batch rows, one group per intra-op
    # thread: compare at the converted model's thread count
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    expected = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = convert_and_run(model, {"x": x})
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, atol=1e-5, rtol=1e-4)


# --- errors -----------------------------------------------------------------------------------
def test_other_custom_domains_stay_unsupported():
    model = single_node_model("Gelu", {"x": f32(2, 3)}, domain="com.example")
    with pytest.raises(UnsupportedOperatorError, match="com.example::Gelu"):
        ConvertModel(model, simplify=False)


def test_unsupported_attention_options_are_named():
    x, w, b = _attention_inputs()
    model = ms_model("Attention", {"x": x}, {"num_heads": 4, "do_rotary": 1}, initializers={"w": w, "b": b})
    with pytest.raises(Exception, match="do_rotary"):
        ConvertModel(model, simplify=False)


def test_converted_contrib_model_saves_and_reloads(tmp_path):
    import torch

    model = ms_model("SkipLayerNormalization", {"x": f32(2, 5, 8)}, initializers={"skip": f32(2, 5, 8), "gamma": f32(8),
                                                                                  "beta": f32(8)})
    module = ConvertModel(model, simplify=False)
    torch.save(module, tmp_path / "m.pt")
    again = torch.load(tmp_path / "m.pt", weights_only=False)
    x = torch.from_numpy(f32(2, 5, 8))
    assert torch.equal(module(x), again(x))
    assert onnx  # keep the import used
