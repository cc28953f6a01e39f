"""The simplification stage (onnx2torch.simplify): merging repeated nodes before onnx-simplifier."""
from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
from onnx import TensorProto, numpy_helper

from onnx2torch.simplify import merge_repeated_nodes
from tests.helpers import assert_matches_ort

RNG = np.random.default_rng(0)


def _model(nodes, inputs, outputs, initializers=(), value_info=()) -> onnx.ModelProto:
    graph = oh.make_graph(nodes, "g", inputs, outputs, list(initializers), value_info=list(value_info))
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


def _flatten_twice() -> onnx.ModelProto:
    """The TorchScript exporter's habit: the same shape arithmetic written once per use."""
    nodes = []
    for i in range(2):
        nodes += [
            oh.make_node("Shape", ["x"], [f"s{i}"]),
            oh.make_node("Constant", [], [f"idx{i}"], value=numpy_helper.from_array(np.array(0, np.int64))),
            oh.make_node("Gather", [f"s{i}", f"idx{i}"], [f"n{i}"], axis=0),
            oh.make_node("Unsqueeze", [f"n{i}", "zero"], [f"n1_{i}"]),
            oh.make_node("Concat", [f"n1_{i}", "minus1"], [f"shape{i}"], axis=0),
            oh.make_node("Reshape", ["x" if i == 0 else "r", f"shape{i}"], ["r" if i == 0 else "y0"]),
        ]
    nodes.append(oh.make_node("Relu", ["y0"], ["y"]))
    inits = [numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    value_info = [oh.make_tensor_value_info("n1_1", TensorProto.INT64, [1])]
    return _model(nodes, [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 4])],
                  [oh.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 12])], inits, value_info)


def test_repeated_shape_arithmetic_is_merged_and_the_model_left_alone():
    model = _flatten_twice()
    before = model.SerializeToString()
    merged = merge_repeated_nodes(model)
    assert model.SerializeToString() == before  # the caller's model is not modified
    ops = [n.op_type for n in merged.graph.node]
    assert ops == ["Shape", "Constant", "Gather", "Unsqueeze", "Concat", "Reshape", "Reshape", "Relu"], ops
    assert list(merged.graph.node[6].input) == ["r", "shape0"]
    assert not merged.graph.value_info  # n1_1 is gone
    onnx.checker.check_model(merged)
    for batch in (1, 3):
        x = RNG.standard_normal((batch, 3, 4)).astype(np.float32)
        assert_matches_ort(model, {"x": x}, exact=True)


def test_nodes_that_differ_or_are_random_or_are_outputs_are_kept():
    nodes = [
        oh.make_node("Transpose", ["x"], ["t0"], perm=[1, 0]),
        oh.make_node("Transpose", ["x"], ["t1"], perm=[1, 0]),  # an output: kept
        oh.make_node("Softmax", ["x"], ["a0"], axis=0),
        oh.make_node("Softmax", ["x"], ["a1"], axis=1),  # another attribute: kept
        oh.make_node("RandomUniformLike", ["x"], ["u0"], seed=1.0),
        oh.make_node("RandomUniformLike", ["x"], ["u1"], seed=1.0),  # random: kept
        oh.make_node("Relu", ["x"], ["r0"]),
        oh.make_node("Relu", ["x"], ["r1"]),  # merged into r0
        oh.make_node("Sum", ["t0", "a0", "a1", "u0", "u1", "r0", "r1"], ["y"]),
    ]
    io = [oh.make_tensor_value_info(n, TensorProto.FLOAT, [3, 3]) for n in ("x", "y", "t1")]
    merged = merge_repeated_nodes(_model(nodes, io[:1], io[1:]))
    assert [n.output[0] for n in merged.graph.node] == ["t0", "t1", "a0", "a1", "u0", "u1", "r0", "y"]
    assert list(merged.graph.node[-1].input) == ["t0", "a0", "a1", "u0", "u1", "r0", "r0"]


def test_graphs_with_subgraphs_are_not_merged():
    branch = oh.make_graph([oh.make_node("Relu", ["x"], ["b"])], "branch", [],
                           [oh.make_tensor_value_info("b", TensorProto.FLOAT, [2])])
    nodes = [
        oh.make_node("Relu", ["x"], ["r0"]),
        oh.make_node("Relu", ["x"], ["r1"]),
        oh.make_node("If", ["c"], ["z"], then_branch=branch, else_branch=branch),
        oh.make_node("Sum", ["r0", "r1", "z"], ["y"]),
    ]
    model = _model(nodes, [oh.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
                           oh.make_tensor_value_info("c", TensorProto.BOOL, [])],
                   [oh.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    assert merge_repeated_nodes(model) is model


def test_a_repeat_is_merged_only_where_the_earlier_node_has_every_output_it_uses():
    pool = {"kernel_shape": [2, 2], "strides": [2, 2]}
    nodes = [
        oh.make_node("MaxPool", ["x"], ["p1", ""], **pool),  # no indices
        oh.make_node("MaxPool", ["x"], ["p2", "i2"], **pool),  # needs indices the first lacks: kept
        oh.make_node("MaxPool", ["x"], ["p3", ""], **pool),  # repeats the first: merged
        oh.make_node("Sum", ["p1", "p2", "p3"], ["y"]),
        oh.make_node("Cast", ["i2"], ["i"], to=TensorProto.FLOAT),
    ]
    model = _model(nodes, [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                   [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2]),
                    oh.make_tensor_value_info("i", TensorProto.FLOAT, [1, 1, 2, 2])])
    merged = merge_repeated_nodes(model)
    assert [list(n.output) for n in merged.graph.node] == [["p1", ""], ["p2", "i2"], ["y"], ["i"]]
    assert list(merged.graph.node[2].input) == ["p1", "p2", "p1"]
    assert_matches_ort(model, {"x": RNG.standard_normal((1, 1, 4, 4)).astype(np.float32)}, exact=True)
