"""Shape-family converters (Reshape, Flatten, Transpose, Concat, Split, Slice, Squeeze,
Unsqueeze, Shape, Size, Expand, Tile, Pad, DepthToSpace, SpaceToDepth) against onnxruntime,
bit-exact; the reference evaluator stands in where onnxruntime has no kernel for the opset.
Plus the shape-arithmetic traps: symbolic batch dims and static chains folded to literals."""
from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import pytest
import torch
from onnx import TensorProto
from onnx.reference import ReferenceEvaluator

from onnx2torch import ConvertModel
from tests.helpers import NP_TO_ONNX, assert_matches_ort, convert_and_run, single_node_model

RNG = np.random.default_rng(0)
INT_MAX = np.iinfo(np.int64).max
INT_MIN = np.iinfo(np.int64).min


def randn(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def ints(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def assert_matches_reference(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> None:
    """Exact comparison with onnx's reference evaluator (for opsets onnxruntime lacks)."""
    expected = ReferenceEvaluator(model).run(None, inputs)
    got = convert_and_run(model, inputs)
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_array_equal(g, e)


def check(op, inputs, attrs=None, inits=None, opset=17, outputs=None, reference=False):
    model = single_node_model(op, inputs, attrs, initializers=inits, opset=opset, outputs=outputs)
    if reference:
        assert_matches_reference(model, inputs)
    else:
        assert_matches_ort(model, inputs, exact=True)


X = randn(2, 3, 4)
X4 = randn(2, 8, 3, 4)

# (id, op, inputs, attrs, initializers, opset, outputs, reference)
CASES = [
    # Reshape: 0 copies the input dim, -1 infers, allowzero keeps a literal 0
    ("reshape_zero", "Reshape", {"x": X}, {}, {"s": ints(0, -1)}, 13, None, False),
    ("reshape_zero_middle", "Reshape", {"x": X}, {}, {"s": ints(0, 0, 2, 2)}, 13, None, False),
    ("reshape_neg", "Reshape", {"x": X}, {}, {"s": ints(-1, 2)}, 13, None, False),
    ("reshape_runtime_shape", "Reshape", {"x": X, "s": ints(0, 4, -1)}, {}, {}, 13, None, False),
    ("reshape_allowzero", "Reshape", {"x": np.zeros((2, 0, 3), np.float32)}, {"allowzero": 1}, {"s": ints(0, 6)}, 14, None, False),
    ("reshape_allowzero_runtime", "Reshape", {"x": X, "s": ints(0, 4, -1)}, {}, {}, 14, None, False),
    ("reshape_v1_attr", "Reshape", {"x": X}, {"shape": [0, -1]}, {}, 1, None, False),
    # Flatten: axis 0 gives (1, N); negative axes count from the end
    ("flatten_axis0", "Flatten", {"x": X}, {"axis": 0}, {}, 13, None, False),
    ("flatten_default", "Flatten", {"x": X}, {}, {}, 13, None, False),
    ("flatten_axis2", "Flatten", {"x": X}, {"axis": 2}, {}, 13, None, False),
    ("flatten_axis_rank", "Flatten", {"x": X}, {"axis": 3}, {}, 13, None, False),
    ("flatten_axis_neg", "Flatten", {"x": X}, {"axis": -1}, {}, 13, None, False),
    ("flatten_axis_neg_rank", "Flatten", {"x": X}, {"axis": -3}, {}, 13, None, False),
    ("flatten_1d_axis1", "Flatten", {"x": randn(5)}, {"axis": 1}, {}, 13, None, False),
    # Transpose
    ("transpose_default", "Transpose", {"x": X}, {}, {}, 13, None, False),
    ("transpose_perm", "Transpose", {"x": X4}, {"perm": [0, 2, 3, 1]}, {}, 13, None, False),
    # Concat
    ("concat_axis1", "Concat", {"a": X, "b": randn(2, 5, 4)}, {"axis": 1}, {}, 13, None, False),
    ("concat_axis_neg", "Concat", {"a": X, "b": randn(2, 3, 1), "c": randn(2, 3, 2)}, {"axis": -1}, {}, 13, None, False),
    ("concat_const_input", "Concat", {"a": X}, {"axis": 0}, {"b": randn(1, 3, 4)}, 13, None, False),
    # Split
    ("split_input_sizes", "Split", {"x": randn(6, 4)}, {}, {"s": ints(2, 4)}, 13, ["y0", "y1"], False),
    ("split_equal", "Split", {"x": randn(6, 4)}, {"axis": 0}, {}, 13, ["y0", "y1", "y2"], False),
    ("split_neg_axis", "Split", {"x": randn(2, 6)}, {"axis": -1}, {}, 13, ["y0", "y1"], False),
    ("split_runtime_sizes", "Split", {"x": randn(6, 4), "s": ints(1, 5)}, {}, {}, 13, ["y0", "y1"], False),
    ("split_attr_v11", "Split", {"x": randn(2, 7)}, {"axis": 1, "split": [3, 4]}, {}, 11, ["y0", "y1"], False),
    ("split_attr_v2", "Split", {"x": randn(5, 2)}, {"split": [1, 4]}, {}, 2, ["y0", "y1"], True),
    ("split_num_outputs_uneven", "Split", {"x": randn(7, 2)}, {"num_outputs": 3}, {}, 18, ["y0", "y1", "y2"], False),
    ("split_num_outputs_even", "Split", {"x": randn(2, 8)}, {"num_outputs": 4, "axis": 1}, {}, 18, ["a", "b", "c", "d"], False),
    ("split_single_output", "Split", {"x": randn(3, 2)}, {}, {}, 13, None, False),
    # Slice: negative steps, INT_MAX / INT_MIN bounds, negative axes, default axes
    ("slice_basic", "Slice", {"x": X4}, {}, {"s": ints(1, 0), "e": ints(3, 2), "a": ints(2, 3)}, 13, None, False),
    ("slice_default_axes", "Slice", {"x": X4}, {}, {"s": ints(0, 2), "e": ints(1, 6)}, 13, None, False),
    ("slice_steps", "Slice", {"x": X4}, {}, {"s": ints(1), "e": ints(INT_MAX), "a": ints(1), "t": ints(3)}, 13, None, False),
    ("slice_neg_step", "Slice", {"x": X4}, {}, {"s": ints(-1), "e": ints(INT_MIN), "a": ints(1), "t": ints(-1)}, 13, None, False),
    ("slice_neg_step2", "Slice", {"x": X4}, {}, {"s": ints(6, 20), "e": ints(0, -20), "a": ints(1, 3), "t": ints(-2, -3)}, 13, None, False),
    ("slice_neg_axes", "Slice", {"x": X4}, {}, {"s": ints(-2), "e": ints(INT_MAX), "a": ints(-1)}, 13, None, False),
    ("slice_clamp", "Slice", {"x": X4}, {}, {"s": ints(INT_MIN, -100), "e": ints(100, 2), "a": ints(1, 2)}, 13, None, False),
    ("slice_empty", "Slice", {"x": X4}, {}, {"s": ints(5), "e": ints(2), "a": ints(1)}, 13, None, False),
    ("slice_runtime_bounds", "Slice", {"x": X4, "s": ints(1, -3), "e": ints(INT_MAX, INT_MIN), "a": ints(1, 3), "t": ints(2, -1)}, {}, {}, 13, None, False),
    ("slice_v1_attrs", "Slice", {"x": X4}, {"starts": [1, 0], "ends": [2, -1], "axes": [1, 3]}, {}, 1, None, False),
    ("slice_v1_default_axes", "Slice", {"x": X4}, {"starts": [1], "ends": [1000]}, {}, 9, None, False),
    # Squeeze / Unsqueeze: attributes before 13, inputs from 13
    ("squeeze_axes", "Squeeze", {"x": randn(1, 3, 1, 2)}, {}, {"a": ints(0, -2)}, 13, None, False),
    ("squeeze_all", "Squeeze", {"x": randn(1, 3, 1, 2)}, {}, {}, 13, None, False),
    ("squeeze_attr", "Squeeze", {"x": randn(1, 3, 1, 2)}, {"axes": [2]}, {}, 11, None, False),
    ("squeeze_runtime_axes", "Squeeze", {"x": randn(1, 3, 1, 2), "a": ints(2)}, {}, {}, 13, None, False),
    ("unsqueeze_two", "Unsqueeze", {"x": X}, {}, {"a": ints(0, 4)}, 13, None, False),
    ("unsqueeze_neg", "Unsqueeze", {"x": X}, {}, {"a": ints(-1)}, 13, None, False),
    ("unsqueeze_unsorted_neg", "Unsqueeze", {"x": X}, {}, {"a": ints(-1, 0, 2)}, 13, None, False),
    ("unsqueeze_attr", "Unsqueeze", {"x": X}, {"axes": [1, -1]}, {}, 11, None, False),
    ("unsqueeze_runtime_axes", "Unsqueeze", {"x": X, "a": ints(3, 0)}, {}, {}, 13, None, False),
    # Shape / Size
    ("shape", "Shape", {"x": X4}, {}, {}, 13, None, False),
    ("shape_start_end", "Shape", {"x": X4}, {"start": 1, "end": -1}, {}, 15, None, False),
    ("shape_clip", "Shape", {"x": X4}, {"start": -10, "end": 10}, {}, 15, None, False),
    ("size", "Size", {"x": X4}, {}, {}, 13, None, False),
    # Expand: bidirectional broadcast, 1s in the shape keep the input dim
    ("expand_new_dims", "Expand", {"x": randn(3, 1)}, {}, {"s": ints(2, 1, 6)}, 13, None, False),
    ("expand_ones_smaller", "Expand", {"x": randn(3, 4)}, {}, {"s": ints(1, 1)}, 13, None, False),
    ("expand_lower_rank", "Expand", {"x": randn(2, 1, 4)}, {}, {"s": ints(5, 1)}, 13, None, False),
    ("expand_runtime_shape", "Expand", {"x": randn(3, 1), "s": ints(2, 1, 6)}, {}, {}, 13, None, False),
    # Tile
    ("tile", "Tile", {"x": X}, {}, {"r": ints(2, 1, 3)}, 13, None, False),
    ("tile_runtime", "Tile", {"x": X, "r": ints(1, 2, 2)}, {}, {}, 13, None, False),
    # Pad: modes, negative pads crop, axes (18), wrap (19), attribute form (2)
    ("pad_constant", "Pad", {"x": X}, {}, {"p": ints(0, 1, 2, 1, 0, 3)}, 13, None, False),
    ("pad_constant_value", "Pad", {"x": X}, {}, {"p": ints(1, 0, 0, 0, 2, 1), "v": np.array(1.5, np.float32)}, 13, None, False),
    ("pad_negative", "Pad", {"x": X}, {}, {"p": ints(0, -1, 2, 0, 1, -1)}, 13, None, False),
    ("pad_reflect", "Pad", {"x": X4}, {"mode": "reflect"}, {"p": ints(0, 0, 2, 1, 0, 0, 1, 3)}, 13, None, False),
    ("pad_reflect_crop", "Pad", {"x": X4}, {"mode": "reflect"}, {"p": ints(0, -2, 1, 1, 0, 1, -1, 2)}, 13, None, False),
    ("pad_edge", "Pad", {"x": X4}, {"mode": "edge"}, {"p": ints(1, 0, 5, 0, 0, 2, 0, 6)}, 13, None, False),
    ("pad_wrap", "Pad", {"x": X4}, {"mode": "wrap"}, {"p": ints(0, 0, 2, 1, 0, 1, 1, 3)}, 19, None, False),
    ("pad_axes", "Pad", {"x": X4}, {}, {"p": ints(1, 2, 3, 4), "v": np.array(-1.0, np.float32), "a": ints(1, -1)}, 18, None, False),
    ("pad_axes_reflect", "Pad", {"x": X4}, {"mode": "reflect"}, {"p": ints(1, 2), "v": np.array(0.0, np.float32), "a": ints(-2)}, 18, None, False),
    ("pad_int", "Pad", {"x": RNG.integers(-9, 9, (3, 4)).astype(np.int32)}, {}, {"p": ints(1, 1, 1, 1), "v": np.array(7, np.int32)}, 13, None, False),
    ("pad_runtime", "Pad", {"x": X, "p": ints(0, 1, 2, 1, 0, -1)}, {}, {}, 13, None, False),
    ("pad_runtime_edge", "Pad", {"x": X, "p": ints(0, 1, 2, 1, 0, 1)}, {"mode": "edge"}, {}, 13, None, False),
    ("pad_v2_attrs", "Pad", {"x": X}, {"pads": [0, 1, 1, 0, 2, 0], "value": 2.0}, {}, 2, None, False),
    ("pad_v2_reflect", "Pad", {"x": X}, {"pads": [0, 1, 1, 0, 1, 2], "mode": "reflect"}, {}, 2, None, False),
    # DepthToSpace / SpaceToDepth
    ("depth_to_space_dcr", "DepthToSpace", {"x": X4}, {"blocksize": 2}, {}, 13, None, False),
    ("depth_to_space_crd", "DepthToSpace", {"x": X4}, {"blocksize": 2, "mode": "CRD"}, {}, 13, None, False),
    ("depth_to_space_v1", "DepthToSpace", {"x": X4}, {"blocksize": 2}, {}, 1, None, False),
    ("space_to_depth", "SpaceToDepth", {"x": randn(2, 3, 4, 6)}, {"blocksize": 2}, {}, 13, None, False),
    ("space_to_depth_dcr_v28", "SpaceToDepth", {"x": randn(2, 3, 4, 6)}, {"blocksize": 2, "mode": "DCR"}, {}, 28, None, True),
    ("space_to_depth_crd_v28", "SpaceToDepth", {"x": randn(2, 3, 4, 6)}, {"blocksize": 2, "mode": "CRD"}, {}, 28, None, True),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_against_runtime(case):
    _, op, inputs, attrs, inits, opset, outputs, reference = case
    check(op, inputs, attrs, inits, opset, outputs, reference)


def test_concat_v1_default_axis_is_1():
    # neither onnxruntime nor the reference evaluator run Concat-1 without an axis
    a, b = X, randn(2, 2, 4)
    model = single_node_model("Concat", {"a": a, "b": b}, opset=1)
    np.testing.assert_array_equal(convert_and_run(model, {"a": a, "b": b})[0], np.concatenate([a, b], axis=1))


# --- generated code ---------------------------------------------------------------------------


def test_reshape_constant_shape_is_literal():
    model = single_node_model("Reshape", {"x": X}, initializers={"s": ints(1, -1)}, opset=13)
    code = ConvertModel(model, simplify=False).code
    assert "shape = (1, -1)" in code


def test_depth_to_space_crd_is_pixel_shuffle():
    model = single_node_model("DepthToSpace", {"x": X4}, {"blocksize": 2, "mode": "CRD"}, opset=13)
    module = ConvertModel(model, simplify=False)
    assert any(isinstance(m, torch.nn.PixelShuffle) for m in module.modules())


def test_unsupported_pad_mode_is_loud():
    model = single_node_model("Pad", {"x": X}, {"mode": "mirror"}, initializers={"p": ints(0, 0, 1, 0, 0, 1)}, opset=13)
    with pytest.raises(Exception, match="mode"):
        ConvertModel(model, simplify=False)


# --- symbolic dims -----------------------------------------------------------------------------


def graph_model(nodes, inputs, outputs, inits=None, opset=13):
    """``inputs``: {name: (numpy dtype, dims with str symbols)}."""
    graph = oh.make_graph(
        nodes, "g",
        [oh.make_tensor_value_info(n, NP_TO_ONNX[np.dtype(t)], dims) for n, (t, dims) in inputs.items()],
        [oh.make_empty_tensor_value_info(o) for o in outputs],
        [onnx.numpy_helper.from_array(v, k) for k, v in (inits or {}).items()],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def shape_chain_model(batch_dim: int | str) -> onnx.ModelProto:
    """x[N, 3, 4] -> Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1]))."""
    nodes = [
        oh.make_node("Shape", ["x"], ["shape"]),
        oh.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        oh.make_node("Unsqueeze", ["batch", "axes0"], ["batch1"]),
        oh.make_node("Concat", ["batch1", "minus_one"], ["target"], axis=0),
        oh.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = {"zero": np.array(0, np.int64), "axes0": ints(0), "minus_one": ints(-1)}
    return graph_model(nodes, {"x": (np.float32, [batch_dim, 3, 4])}, ["y"], inits)


def test_symbolic_batch_shape_chain_runs_at_two_batch_sizes():
    model = shape_chain_model("N")
    module = ConvertModel(model, simplify=False)
    from onnx2torch.verify import run_onnxruntime

    for batch in (2, 5):
        x = randn(batch, 3, 4)
        expected = run_onnxruntime(model, {"x": x})[0]
        got = module(torch.from_numpy(x)).numpy()
        assert got.shape == expected.shape == (batch, 12)
        np.testing.assert_array_equal(got, expected)


def test_static_shape_chain_folds_to_literals():
    module = ConvertModel(shape_chain_model(2), simplify=False)
    code = module.code
    assert "shape_of" not in code and "torch.tensor" not in code
    assert "shape = [2, -1]" in code or "shape = (2, -1)" in code
    assert not list(module.buffers())
    x = randn(2, 3, 4)
    np.testing.assert_array_equal(module(torch.from_numpy(x)).numpy(), x.reshape(2, 12))


DYNAMIC_CASES = [
    # (id, node, inputs with symbolic dims, initializers, feeds at two sizes)
    ("reshape_zero_dynamic", oh.make_node("Reshape", ["x", "s"], ["y"]), {"x": (np.float32, ["N", "C", 4])},
     {"s": ints(0, 0, 2, -1)}, [randn(2, 3, 4), randn(3, 5, 4)]),
    ("reshape_one_zero_dynamic", oh.make_node("Reshape", ["x", "s"], ["y"]), {"x": (np.float32, ["N", 3, 4])},
     {"s": ints(0, 3, 2, 2)}, [randn(2, 3, 4), randn(5, 3, 4)]),
    ("flatten_dynamic", oh.make_node("Flatten", ["x"], ["y"], axis=2), {"x": (np.float32, ["N", 3, "W"])},
     {}, [randn(2, 3, 4), randn(5, 3, 1)]),
    ("flatten_axis0_dynamic", oh.make_node("Flatten", ["x"], ["y"], axis=0), {"x": (np.float32, ["N", 3])},
     {}, [randn(2, 3), randn(4, 3)]),
    ("split_even_dynamic", oh.make_node("Split", ["x"], ["a", "b", "c"], axis=0, num_outputs=3),
     {"x": (np.float32, ["N", 2])}, {}, [randn(7, 2), randn(9, 2)]),
    ("slice_neg_step_dynamic", oh.make_node("Slice", ["x", "s", "e", "a", "t"], ["y"]), {"x": (np.float32, ["N", 3])},
     {"s": ints(-2), "e": ints(INT_MIN), "a": ints(0), "t": ints(-2)}, [randn(5, 3), randn(8, 3)]),
    ("slice_open_end_dynamic", oh.make_node("Slice", ["x", "s", "e", "a"], ["y"]), {"x": (np.float32, ["N", 3])},
     {"s": ints(1), "e": ints(INT_MAX), "a": ints(0)}, [randn(5, 3), randn(8, 3)]),
    ("shape_dynamic", oh.make_node("Shape", ["x"], ["y"], start=0, end=2), {"x": (np.float32, ["N", 3, 4])},
     {}, [randn(2, 3, 4), randn(6, 3, 4)]),
    ("shape_static_part", oh.make_node("Shape", ["x"], ["y"], start=1), {"x": (np.float32, ["N", 3, 4])},
     {}, [randn(2, 3, 4), randn(6, 3, 4)]),
    ("size_dynamic", oh.make_node("Size", ["x"], ["y"]), {"x": (np.float32, ["N", 3])}, {}, [randn(2, 3), randn(7, 3)]),
    ("expand_dynamic", oh.make_node("Expand", ["x", "s"], ["y"]), {"x": (np.float32, ["N", 1])},
     {"s": ints(2, 1, 5)}, [randn(3, 1), randn(4, 1)]),
    ("pad_reflect_dynamic", oh.make_node("Pad", ["x", "p"], ["y"], mode="reflect"), {"x": (np.float32, ["N", "W"])},
     {"p": ints(0, 2, 0, 1)}, [randn(2, 4), randn(3, 6)]),
    # unknown rank: the converters fall back to run-time helpers
    ("flatten_unknown_rank", oh.make_node("Flatten", ["x"], ["y"], axis=-1), {"x": (np.float32, None)},
     {}, [randn(2, 3, 4), randn(5, 1)]),
    ("transpose_unknown_rank", oh.make_node("Transpose", ["x"], ["y"]), {"x": (np.float32, None)},
     {}, [randn(2, 3, 4), randn(5, 1)]),
    ("unsqueeze_unknown_rank", oh.make_node("Unsqueeze", ["x", "a"], ["y"]), {"x": (np.float32, None)},
     {"a": ints(-1, 0)}, [randn(2, 3), randn(5)]),
    ("slice_unknown_rank", oh.make_node("Slice", ["x", "s", "e", "a"], ["y"]), {"x": (np.float32, None)},
     {"s": ints(1), "e": ints(-1), "a": ints(-1)}, [randn(2, 3, 4), randn(5, 6)]),
    ("pad_unknown_rank", oh.make_node("Pad", ["x", "p", "v", "a"], ["y"]), {"x": (np.float32, None)},
     {"p": ints(1, 2), "v": np.array(3.0, np.float32), "a": ints(-1)}, [randn(2, 3, 4), randn(5)]),
    ("pad_wrap_unknown_rank", oh.make_node("Pad", ["x", "p"], ["y"], mode="wrap"), {"x": (np.float32, None)},
     {"p": ints(1, 2, 0, 3)}, [randn(2, 3), randn(4, 4)]),
    ("expand_unknown_rank", oh.make_node("Expand", ["x", "s"], ["y"]), {"x": (np.float32, None)},
     {"s": ints(3, 1)}, [randn(1, 4), randn(2, 1, 1)]),
    ("split_unknown_rank", oh.make_node("Split", ["x"], ["a", "b"], axis=-1, num_outputs=2), {"x": (np.float32, None)},
     {}, [randn(2, 5), randn(3, 2, 4)]),
    ("depth_to_space_dynamic", oh.make_node("DepthToSpace", ["x"], ["y"], blocksize=2), {"x": (np.float32, ["N", 8, "H", 3])},
     {}, [randn(1, 8, 2, 3), randn(2, 8, 5, 3)]),
]


@pytest.mark.parametrize("case", DYNAMIC_CASES, ids=[c[0] for c in DYNAMIC_CASES])
def test_symbolic_dims(case):
    from onnx2torch.verify import run_onnxruntime

    _, node, inputs, inits, feeds = case
    model = graph_model([node], inputs, list(node.output), inits, opset=18)
    module = ConvertModel(model, simplify=False)
    for x in feeds:
        expected = run_onnxruntime(model, {"x": x})
        got = module(torch.from_numpy(x))
        got = list(got) if isinstance(got, (tuple, list)) else [got]
        for e, g in zip(expected, got):
            g = g.detach().numpy()
            assert g.dtype == e.dtype and g.shape == e.shape
            np.testing.assert_array_equal(g, e)


def test_unused_trailing_split_output():
    node = oh.make_node("Split", ["x", "s"], ["first", ""], axis=1)
    model = graph_model([node], {"x": (np.float32, [2, 5])}, ["first"], {"s": ints(2, 3)})
    x = randn(2, 5)
    # onnxruntime crashes on an unnamed Split output, so compare with the slice itself
    np.testing.assert_array_equal(convert_and_run(model, {"x": x})[0], x[:, :2])


def test_shape_on_cuda_device_follows_input():
    """Run-time shape tensors are created on the input's device (CPU here), int64."""
    model = graph_model([oh.make_node("Shape", ["x"], ["y"])], {"x": (np.float32, ["N", 2])}, ["y"])
    out = ConvertModel(model, simplify=False)(torch.zeros(3, 2))
    assert out.dtype == torch.int64 and out.tolist() == [3, 2]


def test_shape_types_of_outputs():
    model = single_node_model("Shape", {"x": X}, opset=13)
    model.graph.output[0].CopyFrom(oh.make_tensor_value_info("y", TensorProto.INT64, [3]))
    assert convert_and_run(model, {"x": X})[0].dtype == np.int64
