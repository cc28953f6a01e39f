"""CumProd, BitCast and ai.onnx.ml TreeEnsemble: onnxruntime on random data
(the ONNX reference for the types onnxruntime lacks), and random tree ensembles covering every
branch mode, NaN handling, aggregate function and post transform.
ONNX's own node cases for these ops run in tests/test_conformance.py."""
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
from onnx2torch.ops.misc import TreeEnsembleModule
from onnx2torch.verify import run_onnxruntime
from tests.helpers import assert_matches_ort, convert_and_run, single_node_model

RNG = np.random.default_rng(0)


# --- CumProd ----------------------------------------------------------------------------------
def _cumprod_input(shape, dtype):
    if np.dtype(dtype).kind == "f":
        return RNG.uniform(-1.5, 1.5, shape).astype(dtype)
    low = 0 if np.dtype(dtype).kind == "u" else -4
    return RNG.integers(low, 5, shape).astype(dtype)


def cumprod_model(x: np.ndarray, attrs: dict, axis: int) -> onnx.ModelProto:
    """CumProd with a constant axis (tests.helpers.single_node_model has no unsigned 32/64-bit)."""
    node = oh.make_node("CumProd", ["x", "axis"], ["y"], **attrs)
    graph = oh.make_graph([node], "g", [oh.make_tensor_value_info("x", oh.np_dtype_to_tensor_dtype(x.dtype), x.shape)],
                          [oh.make_empty_tensor_value_info("y")], [numpy_helper.from_array(np.array(axis, np.int64), "axis")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 26)])
    model.ir_version = 12
    return model


@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("axis", [0, 1, -1, -3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.uint32, np.uint64])
def test_cumprod(dtype, axis, exclusive, reverse):
    x = _cumprod_input((3, 4, 5), dtype)
    model = cumprod_model(x, {"exclusive": exclusive, "reverse": reverse}, axis)
    assert_matches_ort(model, {"x": x}, exact=np.dtype(dtype).kind != "f")


@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 1)])
def test_cumprod_axis_as_input(exclusive, reverse):
    x, axis = _cumprod_input((3, 4), np.float32), np.array(1, np.int32)
    model = single_node_model("CumProd", {"x": x, "axis": axis}, {"exclusive": exclusive, "reverse": reverse}, opset=26)
    assert_matches_ort(model, {"x": x, "axis": axis})


def test_cumprod_wraps_like_onnxruntime():
    """Integer products overflow by wrapping in the input type (uint32 through int32 bits)."""
    for dtype in (np.int32, np.uint32):
        x = np.array([3, 100000, 70000, 5, 7], dtype)
        model = cumprod_model(x, {}, 0)
        assert_matches_ort(model, {"x": x}, exact=True)


def test_cumprod_half():
    x = _cumprod_input((2, 6), np.float16)
    model = cumprod_model(x, {"reverse": 1}, 1)
    assert_matches_ort(model, {"x": x}, atol=1e-3, rtol=2e-3)


# --- BitCast ----------------------------------------------------------------------------------
def _bitcast_model(src: int, to: int, shape) -> onnx.ModelProto:
    node = oh.make_node("BitCast", ["x"], ["y"], to=to)
    graph = oh.make_graph([node], "g", [oh.make_tensor_value_info("x", src, shape)], [oh.make_empty_tensor_value_info("y")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 26)])
    model.ir_version = 12
    return model


ORT_BITCASTS = [
    (np.array([1.5, -0.0, np.inf, np.nan], np.float32), TP.FLOAT, TP.INT32),
    (np.array([1.5, -0.0, np.inf, np.nan], np.float32), TP.FLOAT, TP.UINT32),
    (np.array([-1, 0, 2**31 - 1, -(2**31)], np.int32), TP.INT32, TP.FLOAT),
    (np.array([[1.0, -2.5], [1e300, -0.0]]), TP.DOUBLE, TP.INT64),
    (np.array([0, 1, 2**64 - 1, 2**63], np.uint64), TP.UINT64, TP.DOUBLE),
    (np.array([0, 1, 2**64 - 1, 2**63], np.uint64), TP.UINT64, TP.INT64),
    (np.array([1.0, -2.0, 65504, 0.1], np.float16), TP.FLOAT16, TP.INT16),
    (np.array([-1, 0, 127, -128], np.int8), TP.INT8, TP.UINT8),
    (np.array([0, 65535, 32768, 7], np.uint16), TP.UINT16, TP.FLOAT16),
    (np.array(3.25, np.float32), TP.FLOAT, TP.INT32),
]


@pytest.mark.parametrize("x,src,to", ORT_BITCASTS, ids=[f"{TP.DataType.Name(s)}->{TP.DataType.Name(t)}" for _, s, t in ORT_BITCASTS])
def test_bitcast_vs_ort(x, src, to):
    model = _bitcast_model(src, to, x.shape)
    expected = run_onnxruntime(model, {"x": x})[0]
    (got,) = convert_and_run(model, {"x": x})
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()


def _raw(value) -> bytes:
    """The element values' bit patterns, comparable across numpy (ml_dtypes) and torch carriers."""
    if isinstance(value, torch.Tensor):
        if value.dtype in (torch.bfloat16, torch.float16):
            return value.view(torch.int16).numpy().tobytes()
        if value.dtype.itemsize == 1 and value.dtype not in (torch.int8, torch.uint8, torch.bool):
            return value.view(torch.uint8).numpy().tobytes()
        return value.numpy().tobytes()
    return np.ascontiguousarray(value).tobytes()


REF_BITCASTS = [
    (np.array([0, 1, 2, 255, 128, 7], np.uint8), TP.UINT8, TP.FLOAT8E4M3FN),
    (np.array([0, 1, 2, 255, 128, 7], np.uint8), TP.UINT8, TP.FLOAT8E5M2FNUZ),
    (np.array([0.5, -448, 3], ml_dtypes.float8_e4m3fn), TP.FLOAT8E4M3FN, TP.INT8),
    (np.array([0.5, -3.0, 65504, 1e-3], np.float16), TP.FLOAT16, TP.BFLOAT16),
    (np.array([0.5, -3.0, 1e30, 1e-3], ml_dtypes.bfloat16), TP.BFLOAT16, TP.UINT16),
    (np.array([1 + 2j, -0.5j], np.complex64), TP.COMPLEX64, TP.INT64),
    (np.array([True, False, True]), TP.BOOL, TP.UINT8),
    (np.array([True, False, True]), TP.BOOL, TP.INT8),
]


@pytest.mark.parametrize("x,src,to", REF_BITCASTS, ids=[f"{TP.DataType.Name(s)}->{TP.DataType.Name(t)}" for _, s, t in REF_BITCASTS])
def test_bitcast_vs_reference(x, src, to):
    model = _bitcast_model(src, to, x.shape)
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    with torch.no_grad():
        got = ConvertModel(model, simplify=False)(to_torch(x))
    assert got.dtype.itemsize == expected.dtype.itemsize and tuple(got.shape) == expected.shape
    assert _raw(got) == _raw(expected)


def test_bitcast_to_bool_reads_nonzero_as_true():
    x = np.array([0, 1, 2, 255], np.uint8)
    (got,) = convert_and_run(_bitcast_model(TP.UINT8, TP.BOOL, x.shape), {"x": x})
    np.testing.assert_array_equal(got, [False, True, True, True])


SUBBYTE = [
    (np.array([1, -2, 3, -8, 7, 0, -1, 5], ml_dtypes.int4), TP.INT4, TP.UINT4),
    (np.array([1, 14, 3, 8, 7, 0, 15, 5], ml_dtypes.uint4), TP.UINT4, TP.INT4),
    (np.array([0, 0.5, -1, 1.5, -6, 4, -0.0, 3], ml_dtypes.float4_e2m1fn), TP.FLOAT4E2M1, TP.UINT4),
    (np.array([0, 0.5, -1, 1.5, -6, 4, -0.0, 3], ml_dtypes.float4_e2m1fn), TP.FLOAT4E2M1, TP.INT4),
    (np.array([1, 14, 3, 8, 7, 0, 15, 9], ml_dtypes.uint4), TP.UINT4, TP.FLOAT4E2M1),
    (np.array([1, -2, 3, -8, 7, 0, -1, 5], ml_dtypes.int4), TP.INT4, TP.FLOAT4E2M1),
    (np.array([1, -2, 1, -1, 0], ml_dtypes.int2), TP.INT2, TP.UINT2),
    (np.array([1, 2, 3, 0, 1], ml_dtypes.uint2), TP.UINT2, TP.INT2),
]


@pytest.mark.parametrize("x,src,to", SUBBYTE, ids=[f"{TP.DataType.Name(s)}->{TP.DataType.Name(t)}" for _, s, t in SUBBYTE])
def test_bitcast_subbyte_vs_reference(x, src, to):
    """4- and 2-bit types travel as int8/uint8/float32 carriers holding their values."""
    model = _bitcast_model(src, to, x.shape)
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    (got,) = convert_and_run(model, {"x": x})
    np.testing.assert_array_equal(got, expected.astype(got.dtype))
    if to == TP.FLOAT4E2M1:
        np.testing.assert_array_equal(np.signbit(got), np.signbit(expected.astype(np.float32)))


def test_bitcast_of_different_widths_is_loud():
    with pytest.raises(ConversionError, match="equal bit width"):
        ConvertModel(_bitcast_model(TP.FLOAT, TP.INT16, [3]), simplify=False)
    with pytest.raises(ConversionError, match="FLOAT8E8M0"):
        ConvertModel(_bitcast_model(TP.UINT8, TP.FLOAT8E8M0, [3]), simplify=False)


# --- TreeEnsemble -----------------------------------------------------------------------------
LEQ, LT, GTE, GT, EQ, NEQ, MEMBER = range(7)


def random_ensemble(n_trees: int, n_features: int, n_targets: int, max_depth: int, modes=tuple(range(7)),
                    leaf_range=(-3.0, 3.0), missing=True) -> dict:
    """Attributes of a random TreeEnsemble; interior nodes are numbered in a shuffled order."""
    nodes, leaves = [], []

    def leaf():
        leaves.append((RNG.uniform(*leaf_range), int(RNG.integers(n_targets))))
        return True, len(leaves) - 1

    def build(depth):
        if depth == max_depth or (depth > 0 and RNG.random() < 0.3):
            return leaf()
        index = len(nodes)
        nodes.append(None)
        mode = int(RNG.choice(modes))
        members = sorted({float(v) for v in RNG.integers(0, 6, RNG.integers(1, 4))}) if mode == MEMBER else []
        split = float(RNG.integers(0, 6)) + (0.5 if mode in (LEQ, LT, GTE, GT) and RNG.random() < 0.5 else 0.0)
        true_branch, false_branch = build(depth + 1), build(depth + 1)
        nodes[index] = dict(mode=mode, feature=int(RNG.integers(n_features)), split=split, members=members,
                            missing=int(missing and RNG.random() < 0.5), true=true_branch, false=false_branch)
        return False, index

    roots = []
    for _ in range(n_trees):
        is_leaf, ref = build(0)
        if is_leaf:  # a one-leaf tree: a node whose branches both reach the leaf
            nodes.append(dict(mode=LEQ, feature=0, split=0.0, members=[], missing=0, true=(True, ref), false=(True, ref)))
            ref = len(nodes) - 1
        roots.append(ref)

    order = RNG.permutation(len(nodes))  # new position of each node
    new_of = {old: int(new) for old, new in zip(range(len(nodes)), order)}
    by_new = [None] * len(nodes)
    for old, node in enumerate(nodes):
        by_new[new_of[old]] = node

    def ref(branch):
        is_leaf, index = branch
        return (1, index) if is_leaf else (0, new_of[index])

    membership = []
    for node in by_new:
        if node["mode"] == MEMBER:
            membership += node["members"] + [np.nan]
    attrs = dict(
        nodes_featureids=[n["feature"] for n in by_new],
        nodes_splits=np.array([n["split"] if n["mode"] != MEMBER else np.nan for n in by_new], np.float32),
        nodes_modes=np.array([n["mode"] for n in by_new], np.uint8),
        nodes_truenodeids=[ref(n["true"])[1] for n in by_new], nodes_trueleafs=[ref(n["true"])[0] for n in by_new],
        nodes_falsenodeids=[ref(n["false"])[1] for n in by_new], nodes_falseleafs=[ref(n["false"])[0] for n in by_new],
        nodes_missing_value_tracks_true=[n["missing"] for n in by_new],
        leaf_weights=np.array([w for w, _ in leaves], np.float32), leaf_targetids=[t for _, t in leaves],
        tree_roots=[new_of[r] for r in roots], n_targets=n_targets,
    )
    if membership:
        attrs["membership_values"] = np.array(membership, np.float32)
    return attrs


def tree_model(x: np.ndarray, attrs: dict, dtype=np.float32) -> onnx.ModelProto:
    attrs = dict(attrs)
    for key in ("nodes_splits", "leaf_weights", "membership_values"):
        if key in attrs:
            attrs[key] = numpy_helper.from_array(np.asarray(attrs[key], dtype), key)
    attrs["nodes_modes"] = numpy_helper.from_array(attrs["nodes_modes"], "nodes_modes")
    node = oh.make_node("TreeEnsemble", ["x"], ["y"], domain="ai.onnx.ml", **attrs)
    elem = TP.DOUBLE if dtype == np.float64 else TP.FLOAT
    graph = oh.make_graph([node], "g", [oh.make_tensor_value_info("x", elem, x.shape)], [oh.make_empty_tensor_value_info("y")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 21), oh.make_opsetid("ai.onnx.ml", 5)])
    model.ir_version = 10
    return model


def features(n: int, n_features: int, dtype=np.float32) -> np.ndarray:
    """Whole numbers (so EQ / NEQ / MEMBER hit), halves, and NaNs."""
    x = RNG.integers(0, 6, (n, n_features)).astype(dtype)
    x[RNG.random(x.shape) < 0.2] += 0.5
    x[RNG.random(x.shape) < 0.1] = np.nan
    return x


@pytest.mark.parametrize("aggregate", [0, 1, 2, 3], ids=["AVERAGE", "SUM", "MIN", "MAX"])
@pytest.mark.parametrize("seed", range(4))
def test_tree_ensemble_random(seed, aggregate):
    attrs = random_ensemble(n_trees=5, n_features=4, n_targets=3, max_depth=4)
    attrs["aggregate_function"] = aggregate
    x = features(40, 4)
    model = tree_model(x, attrs)
    assert_matches_ort(model, {"x": x}, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("post_transform", [0, 3], ids=["NONE", "SOFTMAX_ZERO"])
def test_tree_ensemble_double_and_post_transforms_vs_ort(post_transform):
    attrs = random_ensemble(n_trees=3, n_features=3, n_targets=4, max_depth=3)
    attrs["post_transform"] = post_transform
    x = features(30, 3, np.float64)
    assert_matches_ort(tree_model(x, attrs, np.float64), {"x": x}, atol=1e-7, rtol=1e-7)


def test_tree_ensemble_softmax_and_logistic():
    """Post transform 1 is SOFTMAX and 2 LOGISTIC by the spec (onnxruntime 1.31 has them swapped)."""
    attrs = random_ensemble(n_trees=3, n_features=3, n_targets=4, max_depth=3)
    x = features(30, 3)
    (raw,) = convert_and_run(tree_model(x, {**attrs, "post_transform": 0}), {"x": x})
    (soft,) = convert_and_run(tree_model(x, {**attrs, "post_transform": 1}), {"x": x})
    (logistic,) = convert_and_run(tree_model(x, {**attrs, "post_transform": 2}), {"x": x})
    e = np.exp(raw - raw.max(axis=1, keepdims=True))
    np.testing.assert_allclose(soft, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(logistic, 1 / (1 + np.exp(-raw)), rtol=1e-5, atol=1e-7)


def test_tree_ensemble_probit():
    """PROBIT is the exact inverse normal CDF; onnxruntime's erfinv approximation is within 1e-2."""
    attrs = random_ensemble(n_trees=1, n_features=3, n_targets=1, max_depth=3, leaf_range=(0.02, 0.98))
    attrs["post_transform"] = 4
    x = features(30, 3)
    got = assert_matches_ort(tree_model(x, attrs), {"x": x}, atol=1e-2, rtol=1e-2)
    (raw,) = convert_and_run(tree_model(x, {**attrs, "post_transform": 0}), {"x": x})
    np.testing.assert_allclose(got[0], torch.special.ndtri(torch.from_numpy(raw)).numpy(), rtol=1e-6)


def test_tree_ensemble_reaches_leaves_beyond_sample_depth():
    """Deep unbalanced trees: every sample stops at its own leaf while others keep walking."""
    attrs = random_ensemble(n_trees=4, n_features=2, n_targets=2, max_depth=8, modes=(LEQ, GT))
    x = features(50, 2)
    model = tree_model(x, attrs)
    assert_matches_ort(model, {"x": x})
    module = ConvertModel(model, simplify=False)
    layer = next(m for m in module.modules() if isinstance(m, TreeEnsembleModule))
    assert 1 <= layer.depth <= 8


def test_tree_ensemble_unsupported_is_loud():
    attrs = random_ensemble(n_trees=1, n_features=2, n_targets=1, max_depth=2, modes=(LEQ,))
    x = features(4, 2)
    with pytest.raises(ConversionError, match="aggregate_function"):
        ConvertModel(tree_model(x, {**attrs, "aggregate_function": 7}), simplify=False)
    with pytest.raises(ConversionError, match="nodes_modes"):
        bad = {**attrs, "nodes_modes": np.full_like(attrs["nodes_modes"], 9)}
        ConvertModel(tree_model(x, bad), simplify=False)
