"""Attention family against onnxruntime (Attention 23/24, RotaryEmbedding, TensorScatter) or the ONNX
reference evaluator where onnxruntime has no kernel (Attention 25, SwiGLU, CausalConvWithState,
LinearAttention, FlexAttention).
ONNX's own node cases for these ops run in tests/test_conformance.py."""
from __future__ import annotations


import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto
from onnx.reference import ReferenceEvaluator
from torch import nn

import onnx2torch.ops.attention  # noqa: F401 - registers the converters
from onnx2torch import ConvertModel
from onnx2torch.errors import ConversionError
from onnx2torch.ops.attention import CausalConvWithState, OnnxAttention
from onnx2torch.verify import run_onnxruntime
from tests.helpers import NP_TO_ONNX, convert_and_run

RNG = np.random.default_rng(0)


def make_model(op: str, inputs: dict[str, np.ndarray | None], outputs: list[str], *, opset: int,
               domain: str = "", initializers: dict[str, np.ndarray] | None = None, **attrs) -> onnx.ModelProto:
    """One node; ``None`` inputs are left out (""), ``""`` outputs are skipped outputs."""
    initializers = initializers or {}
    names = [name if value is not None or name in initializers else "" for name, value in inputs.items()]
    while names and not names[-1]:
        names.pop()
    node = oh.make_node(op, names, outputs, domain=domain, **attrs)
    graph = oh.make_graph(
        [node], "test",
        [oh.make_tensor_value_info(k, NP_TO_ONNX[v.dtype], v.shape) for k, v in inputs.items()
         if v is not None and k not in initializers],
        [oh.make_empty_tensor_value_info(o) for o in outputs if o],
        [onnx.numpy_helper.from_array(v, k) for k, v in initializers.items()],
    )
    opsets = [oh.make_opsetid("", opset)] + ([oh.make_opsetid(domain, 1)] if domain else [])
    model = oh.make_model(graph, opset_imports=opsets)
    model.ir_version = 10
    return model


def feeds_of(inputs: dict[str, np.ndarray | None], initializers: dict | None = None) -> dict[str, np.ndarray]:
    return {k: v for k, v in inputs.items() if v is not None and k not in (initializers or {})}


def compare(model: onnx.ModelProto, feeds: dict[str, np.ndarray], *, oracle: str = "ort",
            atol: float = 1e-5, rtol: float = 1e-4) -> list[np.ndarray]:
    """Convert and run ``model``; every output must match the oracle's in dtype, shape and value."""
    if oracle == "ort":
        expected = run_onnxruntime(model, feeds)
    else:
        expected = ReferenceEvaluator(model).run(None, feeds)
    got = convert_and_run(model, feeds)
    assert len(got) == len(expected)
    for i, (e, g) in enumerate(zip(expected, got)):
        e = np.asarray(e)
        assert g.dtype == e.dtype, f"output {i}: dtype {g.dtype} != {e.dtype}"
        assert g.shape == e.shape, f"output {i}: shape {g.shape} != {e.shape}"
        np.testing.assert_allclose(g, e, atol=atol, rtol=rtol, err_msg=f"output {i}")
    return got


def randn(*shape, dtype=np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


# --- Attention ------------------------------------------------------------------------------------
def attention_inputs(*, b=2, hq=4, hkv=4, sq=3, skv=5, d=8, dv=8, packed=False, past=0, mask=None,
                     mask_len=None, dtype=np.float32):
    if packed:
        q, k, v = (randn(b, sq, hq * d, dtype=dtype), randn(b, skv, hkv * d, dtype=dtype),
                   randn(b, skv, hkv * dv, dtype=dtype))
    else:
        q, k, v = (randn(b, hq, sq, d, dtype=dtype), randn(b, hkv, skv, d, dtype=dtype),
                   randn(b, hkv, skv, dv, dtype=dtype))
    total = past + skv if mask_len is None else mask_len
    attn_mask = None
    if mask == "bool":
        attn_mask = RNG.random((sq, total)) > 0.3
        attn_mask[:, 0] = True
    elif mask == "bool4d":
        attn_mask = RNG.random((b, hq, sq, total)) > 0.3
    elif mask == "float":
        attn_mask = randn(sq, total, dtype=dtype)
    elif mask == "float3d":
        attn_mask = randn(hq, sq, total, dtype=dtype)
    elif mask == "float_b1":
        attn_mask = randn(b, 1, sq, total, dtype=dtype)
    elif mask == "int":
        attn_mask = RNG.integers(-2, 3, (sq, total)).astype(np.int64)
    inputs = {"Q": q, "K": k, "V": v, "attn_mask": attn_mask, "past_key": None, "past_value": None}
    if past:
        inputs["past_key"] = randn(b, hkv, past, d, dtype=dtype)
        inputs["past_value"] = randn(b, hkv, past, dv, dtype=dtype)
    return inputs


ATTENTION_CASES = {
    "mha": ({}, {}),
    "gqa": (dict(hq=6, hkv=2), {}),
    "mqa": (dict(hq=4, hkv=1), {}),
    "v_head_size": (dict(dv=6), {}),
    "packed": (dict(packed=True), dict(q_num_heads=4, kv_num_heads=4)),
    "packed_gqa": (dict(packed=True, hq=4, hkv=2, dv=5), dict(q_num_heads=4, kv_num_heads=2)),
    "scale": ({}, dict(scale=0.3)),
    "causal": ({}, dict(is_causal=1)),
    "causal_long_query": (dict(sq=6, skv=4), dict(is_causal=1)),
    "causal_gqa_packed": (dict(packed=True, hq=4, hkv=2), dict(is_causal=1, q_num_heads=4, kv_num_heads=2)),
    "bool_mask": (dict(mask="bool"), {}),
    "bool_mask_4d": (dict(mask="bool4d"), {}),
    "float_mask": (dict(mask="float"), {}),
    "float_mask_3d_causal": (dict(mask="float3d"), dict(is_causal=1)),
    "int_mask": (dict(mask="int"), {}),
    "bool_mask_causal": (dict(mask="bool"), dict(is_causal=1)),
    "past": (dict(past=4, mask="float"), {}),
    "past_causal": (dict(past=4), dict(is_causal=1)),
    "past_causal_gqa_packed": (dict(past=3, packed=True, hq=4, hkv=2),
                               dict(is_causal=1, q_num_heads=4, kv_num_heads=2)),
    "past_causal_bool_mask": (dict(past=2, mask="bool"), dict(is_causal=1)),
    "softcap": ({}, dict(softcap=1.5)),
    "softcap_mask_causal": (dict(mask="float_b1", past=2), dict(softcap=2.0, is_causal=1)),
    "double": (dict(dtype=np.float64, mask="float"), dict(is_causal=1)),
}


@pytest.mark.parametrize("name", list(ATTENTION_CASES))
def test_attention_matches_onnxruntime(name):
    shape_kw, attrs = ATTENTION_CASES[name]
    inputs = attention_inputs(**shape_kw)
    outputs = ["Y", "present_key", "present_value"] if inputs["past_key"] is not None else ["Y"]
    model = make_model("Attention", inputs, outputs, opset=23, **attrs)
    # NOTE: onnxruntime's double Attention with a mask fails its own type check: reference there.
    compare(model, feeds_of(inputs), oracle="reference" if name == "double" else "ort")


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
@pytest.mark.parametrize("softcap", [0.0, 1.0])
def test_attention_qk_matmul_output_modes(mode, softcap):
    # NOTE: mode 0 with softcap is the raw Q K' (spec and onnxruntime; the reference evaluator
    # returns the softcapped scores there); in mode 2 onnxruntime writes the causal mask as the
    # lowest float instead of the spec's -inf, so the reference evaluator judges that mode.
    inputs = attention_inputs(mask="float", past=2, hq=4, hkv=2)
    inputs["Q"] *= 3
    model = make_model("Attention", inputs, ["Y", "present_key", "present_value", "qk"], opset=23,
                       qk_matmul_output_mode=mode, softcap=softcap, is_causal=1)
    compare(model, feeds_of(inputs), oracle="reference" if mode == 2 else "ort")


def test_attention_qk_output_skipping_present():
    inputs = attention_inputs(mask="bool")
    model = make_model("Attention", inputs, ["Y", "", "", "qk"], opset=23, qk_matmul_output_mode=3)
    compare(model, feeds_of(inputs))


def test_attention_fully_masked_rows_are_zero():
    inputs = attention_inputs(mask="bool")
    inputs["attn_mask"][1] = False
    model = make_model("Attention", inputs, ["Y", "", "", "qk"], opset=23, qk_matmul_output_mode=3)
    y, probs = compare(model, feeds_of(inputs))
    assert not np.isnan(y).any() and (y[:, :, 1] == 0).all() and (probs[:, :, 1] == 0).all()
    # the same on the SDPA path (no qk output)
    model = make_model("Attention", inputs, ["Y"], opset=23)
    (y2,) = compare(model, feeds_of(inputs))
    assert (y2[:, :, 1] == 0).all()


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_attention_softmax_precision(dtype):
    inputs = attention_inputs(mask="bool", dtype=dtype)
    model = make_model("Attention", inputs, ["Y", "", "", "qk"], opset=24, qk_matmul_output_mode=3,
                       softmax_precision=TensorProto.DOUBLE)
    compare(model, feeds_of(inputs), oracle="reference", atol=1e-3 if dtype == np.float16 else 1e-5, rtol=1e-3)


def test_attention_float16_matches_reference_rounding():
    inputs = attention_inputs(mask="float", dtype=np.float16)
    model = make_model("Attention", inputs, ["Y"], opset=23, is_causal=1)
    compare(model, feeds_of(inputs), oracle="reference", atol=0, rtol=1e-3)


@pytest.mark.parametrize("causal", [0, 1])
@pytest.mark.parametrize("lengths", [[5, 3], [5, 1], [2, 0]])
def test_attention_nonpad_kv_seqlen(causal, lengths):
    inputs = attention_inputs(sq=2, skv=5, hq=4, hkv=2)
    inputs["nonpad_kv_seqlen"] = np.array(lengths, dtype=np.int64)
    model = make_model("Attention", inputs, ["Y"], opset=24, is_causal=causal)
    compare(model, feeds_of(inputs))


def test_attention_mask_shorter_than_total_sequence():
    # NOTE: onnxruntime rejects a mask shorter than the keys, which opset 24 allows.
    inputs = attention_inputs(skv=6, mask="float_b1", mask_len=4, hq=2, hkv=2)
    inputs["nonpad_kv_seqlen"] = np.array([4, 3], dtype=np.int64)
    model = make_model("Attention", inputs, ["Y"], opset=24)
    compare(model, feeds_of(inputs), oracle="reference")
    inputs = attention_inputs(skv=6, mask="bool", mask_len=4)
    model = make_model("Attention", inputs, ["Y"], opset=24, is_causal=1)
    compare(model, feeds_of(inputs), oracle="reference")


@pytest.mark.parametrize("window", [(2, -1), (1, 2), (-1, 0), (0, 0)])
@pytest.mark.parametrize("cache", ["none", "past", "nonpad"])
def test_attention_sliding_window(window, cache):
    left, right = window
    inputs = attention_inputs(sq=4, skv=6, hq=4, hkv=2, past=3 if cache == "past" else 0, mask="bool")
    if cache == "nonpad":
        inputs["nonpad_kv_seqlen"] = np.array([6, 4], dtype=np.int64)
    outputs = ["Y", "present_key", "present_value"] if cache == "past" else ["Y"]
    model = make_model("Attention", inputs, outputs, opset=25, is_causal=int(right <= 0),
                       left_window_size=left, right_window_size=right)
    compare(model, feeds_of(inputs), oracle="reference")


def test_attention_lowering_choice():
    inputs = attention_inputs(mask="bool")
    module = ConvertModel(make_model("Attention", inputs, ["Y"], opset=23, is_causal=1), simplify=False)
    (att,) = [m for m in module.modules() if isinstance(m, OnnxAttention)]
    assert att.use_sdpa and att.is_causal
    module = ConvertModel(make_model("Attention", inputs, ["Y"], opset=23, softcap=3.0), simplify=False)
    (att,) = [m for m in module.modules() if isinstance(m, OnnxAttention)]
    assert not att.use_sdpa


def test_attention_unsupported_attributes_are_loud():
    inputs = attention_inputs(packed=True)
    with pytest.raises(ConversionError, match="q_num_heads"):
        ConvertModel(make_model("Attention", inputs, ["Y"], opset=23), simplify=False)
    inputs = attention_inputs()
    with pytest.raises(ConversionError, match="softmax_precision"):
        ConvertModel(make_model("Attention", inputs, ["Y"], opset=23, softmax_precision=7), simplify=False)
    with pytest.raises(ConversionError, match="qk_matmul_output_mode"):
        ConvertModel(make_model("Attention", inputs, ["Y", "", "", "qk"], opset=23, qk_matmul_output_mode=4),
                     simplify=False)


# --- RotaryEmbedding --------------------------------------------------------------------------------
@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("rotary_dim", [0, 4])
@pytest.mark.parametrize("layout", ["4d", "3d", "4d_no_ids"])
def test_rotary_embedding_matches_onnxruntime(interleaved, rotary_dim, layout):
    b, h, s, d = 2, 3, 5, 8
    half = (rotary_dim or d) // 2
    x = randn(b, s, h * d) if layout == "3d" else randn(b, h, s, d)
    if layout == "4d_no_ids":
        cos, sin, ids = randn(b, s, half), randn(b, s, half), None
    else:
        angles = RNG.random((16, half)).astype(np.float32) * 6
        cos, sin, ids = np.cos(angles), np.sin(angles), RNG.integers(0, 16, (b, s)).astype(np.int64)
    inputs = {"X": x, "cos_cache": cos, "sin_cache": sin, "position_ids": ids}
    attrs = dict(interleaved=interleaved, rotary_embedding_dim=rotary_dim)
    if layout == "3d":
        attrs["num_heads"] = h
    compare(make_model("RotaryEmbedding", inputs, ["Y"], opset=23, **attrs), feeds_of(inputs))


def test_rotary_embedding_constant_caches_and_float16():
    b, h, s, d = 1, 2, 4, 6
    angles = RNG.random((8, d // 2)).astype(np.float16)
    inits = {"cos_cache": np.cos(angles), "sin_cache": np.sin(angles)}
    inputs = {"X": randn(b, h, s, d, dtype=np.float16), **inits,
              "position_ids": np.arange(s, dtype=np.int64)[None]}
    model = make_model("RotaryEmbedding", inputs, ["Y"], opset=23, initializers=inits)
    compare(model, feeds_of(inputs, inits), atol=1e-3, rtol=1e-3)


# --- TensorScatter ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["linear", "circular"])
@pytest.mark.parametrize("axis", [-2, 1, 2])
@pytest.mark.parametrize("indices", [True, False])
def test_tensor_scatter_matches_onnxruntime(mode, axis, indices):
    cache = randn(3, 4, 6, 2)
    ax = axis % 4
    upd_shape = list(cache.shape)
    upd_shape[ax] = 2
    update = randn(*upd_shape)
    limit = cache.shape[ax] - 2 if mode == "linear" else cache.shape[ax] + 3
    write = RNG.integers(0, limit + 1, (3,)).astype(np.int64) if indices else None
    inputs = {"past_cache": cache, "update": update, "write_indices": write}
    model = make_model("TensorScatter", inputs, ["present"], opset=24, mode=mode, axis=axis)
    compare(model, feeds_of(inputs), atol=0, rtol=0)


def test_tensor_scatter_integer_cache():
    cache = RNG.integers(0, 100, (2, 5, 3)).astype(np.int64)
    update = RNG.integers(0, 100, (2, 2, 3)).astype(np.int64)
    inputs = {"past_cache": cache, "update": update, "write_indices": np.array([3, 0], dtype=np.int64)}
    compare(make_model("TensorScatter", inputs, ["present"], opset=24), feeds_of(inputs), atol=0, rtol=0)


# --- SwiGLU ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [1.0, 1.702])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_swiglu_matches_reference(alpha, dtype):
    inputs = {"A": randn(3, 7, dtype=dtype), "B": randn(3, 7, dtype=dtype)}
    compare(make_model("SwiGLU", inputs, ["Y"], opset=28, alpha=alpha), inputs, oracle="reference")


# --- CausalConvWithState ---------------------------------------------------------------------------
@pytest.mark.parametrize("const_weight", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("past", [True, False])
@pytest.mark.parametrize("activation", ["none", "silu"])
def test_causal_conv_with_state_matches_reference(const_weight, bias, past, activation):
    b, c, length, k = 2, 3, 5, 4
    inputs = {"input": randn(b, c, length), "weight": randn(c, 1, k), "bias": randn(c) if bias else None,
              "past_state": randn(b, c, k - 1) if past else None}
    inits = {n: inputs[n] for n in ("weight", "bias") if const_weight and inputs[n] is not None}
    model = make_model("CausalConvWithState", inputs, ["output", "present_state"], opset=27,
                       activation=activation, initializers=inits)
    compare(model, feeds_of(inputs, inits), oracle="reference")
    convs = [m for m in ConvertModel(model, simplify=False).modules() if isinstance(m, nn.Conv1d)]
    assert len(convs) == int(const_weight)


def test_causal_conv_with_state_runtime_weight_module():
    inputs = {"input": randn(1, 2, 3), "weight": randn(2, 1, 2)}
    module = ConvertModel(make_model("CausalConvWithState", inputs, ["o", "s"], opset=27), simplify=False)
    assert any(isinstance(m, CausalConvWithState) and m.conv is None for m in module.modules())


# --- LinearAttention -------------------------------------------------------------------------------
LINEAR_CASES = {
    "linear": ("linear", 4, 4, None, False, False),
    "gated_per_key": ("gated", 4, 4, "key", False, False),
    "gated_per_head_past": ("gated", 4, 2, "head", False, True),
    "delta": ("delta", 4, 4, None, True, False),
    "gated_delta_gqa": ("gated_delta", 4, 2, "head", True, True),
    "gated_delta_mqa_beta1": ("gated_delta", 4, 1, "key", "one", False),
}


@pytest.mark.parametrize("name", list(LINEAR_CASES))
def test_linear_attention_matches_reference(name):
    rule, hq, hkv, decay_kind, beta_kind, past = LINEAR_CASES[name]
    b, t, dk, dv = 2, 5, 4, 3
    key = randn(b, t, hkv * dk)
    key /= np.linalg.norm(key.reshape(b, t, hkv, dk), axis=-1).repeat(dk, -1).reshape(key.shape)
    inputs = {
        "query": randn(b, t, hq * dk), "key": key, "value": randn(b, t, hkv * dv),
        "past_state": randn(b, hkv, dk, dv) if past else None,
        "decay": None if decay_kind is None
        else -RNG.random((b, t, hkv * dk if decay_kind == "key" else hkv)).astype(np.float32),
        "beta": None if not beta_kind else RNG.random((b, t, 1 if beta_kind == "one" else hkv)).astype(np.float32),
    }
    model = make_model("LinearAttention", inputs, ["output", "present_state"], opset=27,
                       update_rule=rule, q_num_heads=hq, kv_num_heads=hkv)
    compare(model, feeds_of(inputs), oracle="reference")


def test_linear_attention_missing_decay_is_loud():
    inputs = {"query": randn(1, 2, 8), "key": randn(1, 2, 8), "value": randn(1, 2, 8)}
    with pytest.raises(ConversionError, match="decay"):
        ConvertModel(make_model("LinearAttention", inputs, ["o", "s"], opset=27, update_rule="gated",
                                q_num_heads=2, kv_num_heads=2), simplify=False)


# --- FlexAttention --------------------------------------------------------------------------------
def test_flex_attention_score_mod_reads_outer_value():
    """A score_mod subgraph that reads an outer-scope graph input (passed at run time)."""
    q, k, v = randn(1, 4, 3, 8), randn(1, 2, 5, 8), randn(1, 2, 5, 6)
    bias = randn(3, 5)
    score = oh.make_graph([oh.make_node("Add", ["s", "bias"], ["out"])], "score",
                          [oh.make_tensor_value_info("s", TensorProto.FLOAT, None)],
                          [oh.make_tensor_value_info("out", TensorProto.FLOAT, None)])
    prob = oh.make_graph([oh.make_node("Mul", ["p", "two"], ["out"])], "prob",
                         [oh.make_tensor_value_info("p", TensorProto.FLOAT, None)],
                         [oh.make_tensor_value_info("out", TensorProto.FLOAT, None)],
                         [onnx.numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")])
    node = oh.make_node("FlexAttention", ["Q", "K", "V"], ["Y"], domain="ai.onnx.preview",
                        score_mod=score, prob_mod=prob, scale=0.2)
    graph = oh.make_graph([node], "g", [oh.make_tensor_value_info(n, TensorProto.FLOAT, a.shape)
                                        for n, a in [("Q", q), ("K", k), ("V", v), ("bias", bias)]],
                          [oh.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 26), oh.make_opsetid("ai.onnx.preview", 1)])
    model.ir_version = 10
    # NOTE: the reference evaluator cannot run subgraphs reading outer values: numpy here.
    root = np.sqrt(np.float32(0.2))
    scores = (q * root) @ (np.repeat(k, 2, axis=1) * root).swapaxes(-1, -2) + bias
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    expected = 2 * probs / probs.sum(-1, keepdims=True) @ np.repeat(v, 2, axis=1)
    (got,) = convert_and_run(model, {"Q": q, "K": k, "V": v, "bias": bias})
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
