"""Weights read from a model: tensor_from_proto's types, and layers that keep the private copy of
a weight instead of copying it again (onnx2torch.dtypes.claim_private / settle,
ConversionContext.own, GraphAssembler.settle_weights)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnx.helper as oh
import pytest
import torch
from onnx import TensorProto, numpy_helper

from onnx2torch import ConvertModel
from onnx2torch.dtypes import claim_private, settle, tensor_from_proto
from onnx2torch.verify import run_onnxruntime


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int8, np.int32, np.int64, np.uint8,
                                   np.uint16, np.bool_, np.complex64])
def test_tensor_from_proto_matches_numpy_helper(dtype):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 5)) * 50).astype(dtype)
    proto = numpy_helper.from_array(array, "w")
    tensor = tensor_from_proto(proto)
    assert tensor.shape == (3, 5)
    np.testing.assert_array_equal(tensor.numpy(), numpy_helper.to_array(proto))


def test_tensor_from_proto_scalar_empty_and_typed_fields():
    scalar = tensor_from_proto(numpy_helper.from_array(np.array(2.5, np.float32), "s"))
    assert scalar.shape == () and float(scalar) == 2.5
    empty = tensor_from_proto(numpy_helper.from_array(np.zeros((0, 4), np.float32), "e"))
    assert empty.shape == (0, 4)
    typed = oh.make_tensor("t", TensorProto.FLOAT, [2, 2], [1.0, 2.0, 3.0, 4.0])  # float_data, not raw
    assert tensor_from_proto(typed).tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_a_private_weight_is_kept_transposed_in_place():
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    weight = tensor_from_proto(numpy_helper.from_array(array, "w"))
    pointer = weight.data_ptr()
    view = weight.t()
    assert claim_private(view)
    assert not claim_private(weight.t())  # claimed once only
    parameter = torch.nn.Parameter(view)  # what a layer keeps; the constant is forgotten
    del weight, view
    spare: dict[int, list[torch.Tensor]] = {}
    kept = settle(parameter, spare)
    assert kept.is_contiguous() and kept.shape == (4, 3)
    np.testing.assert_array_equal(kept.detach().numpy(), array.T)
    # its own memory is left for the next matrix of its size, which takes no new memory
    assert [b.data_ptr() for b in spare[48]] == [pointer]
    second = tensor_from_proto(numpy_helper.from_array(array + 1, "w2"))
    assert claim_private(second.t())
    parameter = torch.nn.Parameter(second.t())
    del second
    kept_second = settle(parameter, spare)
    assert kept_second.data_ptr() == pointer
    np.testing.assert_array_equal(kept_second.detach().numpy(), (array + 1).T)
    np.testing.assert_array_equal(kept.detach().numpy(), array.T)


def test_a_claimed_weight_still_shared_is_copied():
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    weight = tensor_from_proto(numpy_helper.from_array(array, "w"))
    assert claim_private(weight.t())
    kept = settle(weight.t(), {})  # `weight` still reads the memory
    assert kept.data_ptr() != weight.data_ptr()
    np.testing.assert_array_equal(kept.numpy(), array.T)
    np.testing.assert_array_equal(weight.numpy(), array)


def test_a_shared_or_partial_tensor_is_not_claimed():
    shared = torch.from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3))  # not from a proto
    assert not claim_private(shared.t())
    weight = tensor_from_proto(numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "w"))
    assert not claim_private(weight[1])


def _converted_matches_onnxruntime(model: onnx.ModelProto, x: np.ndarray, simplify: bool) -> torch.nn.Module:
    expected = run_onnxruntime(model, {"x": x})
    module = ConvertModel(model, simplify=simplify)
    with torch.no_grad():
        got = module(torch.from_numpy(x))
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g.detach().numpy(), e, rtol=1e-5, atol=1e-5)
    return module


def _matmul_graph(nodes, outputs, weight: np.ndarray, opset: int = 17) -> onnx.ModelProto:
    # V: a second weight of W's size, whose layer takes whatever memory W's layer left behind
    graph = oh.make_graph(
        nodes, "g", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])],
        [oh.make_tensor_value_info(name, TensorProto.FLOAT, [4, 4]) for name in outputs],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(weight[::-1] + 1, "V")],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])


@pytest.mark.parametrize("simplify", [False, True])
@pytest.mark.parametrize("case", ["two_matmuls", "matmul_and_add", "weight_is_output", "gemm_and_matmul",
                                  "identity_then_matmul", "identity_and_output"])
def test_weights_read_twice_stay_intact(case, simplify):
    """A weight with more than one reader (or that is a graph output) is copied, never rearranged
    under another reader."""
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((4, 4)).astype(np.float32)
    if case == "two_matmuls":
        nodes = [oh.make_node("MatMul", ["x", "W"], ["a"]), oh.make_node("MatMul", ["a", "W"], ["y"])]
        outputs = ["y"]
    elif case == "matmul_and_add":
        nodes = [oh.make_node("MatMul", ["x", "W"], ["a"]), oh.make_node("Add", ["a", "W"], ["y"])]
        outputs = ["y"]
    elif case == "weight_is_output":
        nodes = [oh.make_node("MatMul", ["x", "W"], ["y"])]
        outputs = ["y", "W"]
    elif case == "gemm_and_matmul":
        nodes = [oh.make_node("Gemm", ["x", "W"], ["a"]), oh.make_node("MatMul", ["a", "W"], ["y"])]
        outputs = ["y"]
    elif case == "identity_then_matmul":  # one memory, two names: no layer may rearrange it under the other
        nodes = [oh.make_node("Identity", ["W"], ["W2"]), oh.make_node("MatMul", ["x", "W2"], ["a"]),
                 oh.make_node("MatMul", ["a", "W"], ["b"]), oh.make_node("MatMul", ["b", "W2"], ["y"])]
        outputs = ["y"]
    else:  # W2's only reader takes memory that W, a graph output, still shows
        nodes = [oh.make_node("Identity", ["W"], ["W2"]), oh.make_node("MatMul", ["x", "W2"], ["a"]),
                 oh.make_node("MatMul", ["a", "V"], ["y"])]
        outputs = ["y", "W"]
    model = _matmul_graph(nodes, outputs, weight)
    _converted_matches_onnxruntime(model, rng.standard_normal((4, 4)).astype(np.float32), simplify)
    np.testing.assert_array_equal(numpy_helper.to_array(model.graph.initializer[0]), weight)


@pytest.mark.parametrize("simplify", [False, True])
def test_kept_weights_are_trainable_and_independent_of_the_model(simplify):
    rng = np.random.default_rng(2)
    w1 = rng.standard_normal((4, 8)).astype(np.float32)
    w2 = rng.standard_normal((8, 3)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    graph = oh.make_graph(
        [oh.make_node("MatMul", ["x", "W1"], ["h"]), oh.make_node("Relu", ["h"], ["r"]),
         oh.make_node("Gemm", ["r", "W2", "B"], ["y"])],
        "g", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2"), numpy_helper.from_array(bias, "B")],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    module = ConvertModel(model, simplify=simplify)
    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 2
    for layer in linears:
        assert layer.weight.is_contiguous() and layer.weight.requires_grad
    np.testing.assert_array_equal(linears[0].weight.detach().numpy(), w1.T)
    np.testing.assert_array_equal(linears[1].weight.detach().numpy(), w2.T)
    x = torch.from_numpy(rng.standard_normal((2, 4)).astype(np.float32))
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    before = [p.detach().clone() for p in module.parameters()]
    module(x).square().sum().backward()
    optimizer.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, module.parameters()))
    # training wrote into the layers' memory, not into the model's weights
    for proto, original in zip(model.graph.initializer, (w1, w2, bias)):
        np.testing.assert_array_equal(numpy_helper.to_array(proto), original)
    fresh = ConvertModel(model, simplify=simplify)
    np.testing.assert_array_equal([m for m in fresh.modules() if isinstance(m, torch.nn.Linear)][0]
                                  .weight.detach().numpy(), w1.T)


@pytest.mark.parametrize("simplify", [False, True])
@pytest.mark.parametrize("also_output", [False, True])
def test_folded_weights_are_kept_or_copied_correctly(simplify, also_output):
    """A weight computed at conversion time (DequantizeLinear of an int8 initializer, then a
    Reshape view of it) may become the layer's memory; where the graph also outputs it, or reads
    the un-reshaped value again, the layer gets a copy."""
    rng = np.random.default_rng(3)
    q = rng.integers(-100, 100, (4, 4)).astype(np.int8)
    nodes = [oh.make_node("DequantizeLinear", ["Wq", "s", "z"], ["W"]),
             oh.make_node("Reshape", ["W", "shape"], ["W2"]),
             oh.make_node("MatMul", ["x", "W2"], ["a"]),
             oh.make_node("MatMul", ["a", "W"], ["y"])]
    outputs = [oh.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])]
    if also_output:
        outputs.append(oh.make_tensor_value_info("W2", TensorProto.FLOAT, [4, 4]))
    graph = oh.make_graph(
        nodes, "g", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])], outputs,
        [numpy_helper.from_array(q, "Wq"), numpy_helper.from_array(np.array(0.05, np.float32), "s"),
         numpy_helper.from_array(np.array(3, np.int8), "z"), numpy_helper.from_array(np.array([4, 4], np.int64), "shape")],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    module = _converted_matches_onnxruntime(model, rng.standard_normal((4, 4)).astype(np.float32), simplify)
    assert all(p.is_contiguous() for p in module.parameters())


def test_pure_python_protobuf_weights_are_not_taken_over():
    """With protobuf's pure-Python implementation a TensorProto hands out its own bytes: they are
    not private, so layers copy them, and training leaves the model untouched."""
    code = textwrap.dedent("""
        import numpy as np, onnx.helper as oh, torch
        from onnx import TensorProto, numpy_helper
        from google.protobuf.internal import api_implementation
        from onnx2torch import ConvertModel
        assert api_implementation.Type() == "python", api_implementation.Type()
        w = np.arange(32, dtype=np.float32).reshape(8, 4)  # kept as it is by nn.Linear (transB=1)
        graph = oh.make_graph([oh.make_node("Gemm", ["x", "W"], ["y"], transB=1)], "g",
                              [oh.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [oh.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])],
                              [numpy_helper.from_array(w, "W")])
        model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
        module = ConvertModel(model, simplify=False)  # the layer reads the user's TensorProto
        (layer,) = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
        torch.testing.assert_close(layer.weight.detach(), torch.from_numpy(w))
        with torch.no_grad():
            for p in module.parameters():
                p.add_(1.0)
        assert np.array_equal(numpy_helper.to_array(model.graph.initializer[0]), w)
        print("ok")
    """)
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def _matmul_chain(weights: list[np.ndarray]) -> onnx.ModelProto:
    names = [f"W{i}" for i in range(len(weights))]
    nodes = [oh.make_node("MatMul", ["x" if i == 0 else f"h{i - 1}", name], [f"h{i}"]) for i, name in enumerate(names)]
    graph = oh.make_graph(
        nodes, "chain", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [3, 16])],
        [oh.make_tensor_value_info(f"h{len(weights) - 1}", TensorProto.FLOAT, [3, 16])],
        [numpy_helper.from_array(w, name) for w, name in zip(weights, names)],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


@pytest.mark.parametrize("simplify", [False, True])
def test_a_chain_of_same_size_weights_is_transposed_in_order(simplify):
    """Eight 16x16 MatMul weights: each layer's transposed weight is written into the memory the
    previous one left (in a background thread); any copy out of order would read overwritten
    memory."""
    rng = np.random.default_rng(4)
    weights = [rng.standard_normal((16, 16)).astype(np.float32) / 4 for _ in range(8)]
    model = _matmul_chain(weights)
    module = _converted_matches_onnxruntime(model, rng.standard_normal((3, 16)).astype(np.float32), simplify)
    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == len(weights)
    for layer, weight in zip(linears, weights):
        assert layer.weight.is_contiguous()
        np.testing.assert_array_equal(layer.weight.detach().numpy(), weight.T)


def test_a_failed_background_copy_is_raised(monkeypatch):
    """The layers' copies run in a thread; what goes wrong there surfaces from ConvertModel."""
    def broken(destinations, sources):
        raise RuntimeError("copy failed on purpose")

    monkeypatch.setattr(torch, "_foreach_copy_", broken)
    rng = np.random.default_rng(5)
    model = _matmul_chain([rng.standard_normal((16, 16)).astype(np.float32) for _ in range(2)])
    with pytest.raises(Exception, match="copy failed on purpose"):
        ConvertModel(model, simplify=False)
