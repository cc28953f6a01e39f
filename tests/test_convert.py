"""The pipeline end to end: weights from anywhere, graph wiring, folding, errors, debug mode."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnx.helper as oh
import pytest
import torch
from onnx import TensorProto, numpy_helper
from torch import nn

import onnx2torch
from onnx2torch import ConvertModel, UnsupportedOperatorError
from onnx2torch.registry import _TABLE, Lowered, converter
from tests.helpers import assert_matches_ort

RNG = np.random.default_rng(0)


def _model(nodes, inputs, outputs, initializers=(), opset=13, ir_version=8):
    graph = oh.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


def _float_input(name, shape):
    return oh.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_weights_in_constant_nodes_and_behind_identity():
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(4).astype(np.float32)
    nodes = [
        oh.make_node("Constant", [], ["w_const"], value=numpy_helper.from_array(w)),
        oh.make_node("Identity", ["w_const"], ["w_id1"]),
        oh.make_node("Identity", ["w_id1"], ["w"]),
        oh.make_node("Constant", [], ["b"], value=numpy_helper.from_array(b)),
        oh.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1]),
    ]
    model = _model(nodes, [_float_input("x", [1, 3, 8, 8])], [_float_input("y", [1, 4, 8, 8])])
    x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
    assert_matches_ort(model, {"x": x}, atol=1e-5)
    module = ConvertModel(model, simplify=False)
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 and convs[0].weight.requires_grad
    np.testing.assert_array_equal(convs[0].weight.detach().numpy(), w)


def test_graph_input_passed_through_and_second_output_of_multi_output_node():
    nodes = [oh.make_node("Split", ["x"], ["a", "b"], name="split", axis=1)]
    model = _model(
        nodes,
        [_float_input("x", [2, 6])],
        [_float_input("b", [2, 3]), _float_input("x", [2, 6])],
    )
    x = RNG.standard_normal((2, 6)).astype(np.float32)
    got = assert_matches_ort(model, {"x": x}, exact=True)
    np.testing.assert_array_equal(got[0], x[:, 3:])
    np.testing.assert_array_equal(got[1], x)


def test_single_output_is_a_tensor_and_outputs_keep_onnx_order():
    nodes = [oh.make_node("Relu", ["x"], ["r"]), oh.make_node("Neg", ["x"], ["n"])]
    model = _model(nodes, [_float_input("x", [3])], [_float_input("n", [3]), _float_input("r", [3])])
    module = ConvertModel(model, simplify=False)
    x = torch.tensor([-1.0, 0.5, 2.0])
    n, r = module(x)
    torch.testing.assert_close(n, -x)
    torch.testing.assert_close(r, torch.relu(x))
    single = ConvertModel(_model(nodes[:1], [_float_input("x", [3])], [_float_input("r", [3])]), simplify=False)
    assert isinstance(single(x), torch.Tensor)


def test_ir3_initializers_listed_as_inputs_are_weights_not_arguments():
    w = RNG.standard_normal((3, 3)).astype(np.float32)
    nodes = [oh.make_node("MatMul", ["x", "w"], ["y"])]
    model = _model(
        nodes, [_float_input("x", [2, 3]), _float_input("w", [3, 3])], [_float_input("y", [2, 3])],
        [numpy_helper.from_array(w, "w")], opset=9, ir_version=3,
    )
    module = ConvertModel(model, simplify=False)
    assert module.onnx_input_names == ["x"]
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), x @ w, rtol=1e-5, atol=1e-6)


def test_input_names_are_sanitised_into_forward_arguments():
    nodes = [oh.make_node("Relu", ["gpu_0/data:0"], ["y"])]
    model = _model(nodes, [_float_input("gpu_0/data:0", [2])], [_float_input("y", [2])])
    module = ConvertModel(model, simplify=False)
    assert "def forward(self, gpu_0_data_0)" in module.code


def _flatten(out: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """The exporters' ``x.reshape(x.shape[0], -1)``: Shape, Gather, Unsqueeze, Concat, Reshape."""
    nodes = [
        oh.make_node("Shape", ["x"], ["s"]),
        oh.make_node("Constant", [], ["idx"], value=numpy_helper.from_array(np.array(0, dtype=np.int64))),
        oh.make_node("Gather", ["s", "idx"], ["n"], axis=0),
        oh.make_node("Unsqueeze", ["n", "zero"], ["n1"]),
        oh.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        oh.make_node("Reshape", ["x", "shape"], [out]),
    ]
    inits = [numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    return nodes, inits


def test_static_shape_arithmetic_is_folded():
    nodes, inits = _flatten("y")
    model = _model(nodes, [_float_input("x", [2, 3, 4])], [_float_input("y", [2, 12])], inits)
    module = ConvertModel(model, simplify=False)
    code = module.code
    calls = [line for line in code.splitlines() if "=" in line and "def " not in line]
    assert len(calls) == 1 and "(2, -1)" in calls[0], code
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    assert_matches_ort(model, {"x": x}, exact=True)


def test_dynamic_shape_arithmetic_builds_tensors_only_where_read():
    """Shape arithmetic over a symbolic batch becomes ``x.size(0)`` for the Reshape; its tensor
    form is built where a node reads it as data (the Cast to float, the graph output), after the
    constants it reads were last needed in graph order."""
    nodes, inits = _flatten("flat")
    nodes += [
        oh.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
        oh.make_node("Mul", ["flat", "nf"], ["y"]),
        oh.make_node("Gather", ["s", "zero"], ["n_vec"], axis=0),
        oh.make_node("Cast", ["n_vec"], ["n_vec_f"], to=TensorProto.FLOAT),
        oh.make_node("Mul", ["y", "n_vec_f"], ["y2"]),
        oh.make_node("Gather", ["x", "zero"], ["first"], axis=1),  # reads zero after the deferred Gather
    ]
    model = _model(nodes, [_float_input("x", ["batch", 3, 4])],
                   [_float_input("y2", ["batch", 12]), oh.make_tensor_value_info("shape", TensorProto.INT64, [2]),
                    _float_input("first", ["batch", 1, 4])],
                   inits)
    module = ConvertModel(model, simplify=False)
    code = module.code
    assert "torch.reshape(x, shape = (batch, -1))" in code and code.count("shape_of(") == 1, code
    for batch in (1, 3):
        x = RNG.standard_normal((batch, 3, 4)).astype(np.float32)
        assert_matches_ort(model, {"x": x}, exact=True, simplify=False)


def test_unknown_ops_are_all_named_in_one_error():
    nodes = [
        oh.make_node("Relu", ["x"], ["a"]),
        oh.make_node("FancyOp", ["a"], ["b"], name="fancy1", domain="my.domain"),
        oh.make_node("OtherOp", ["b"], ["c"], name="other", domain="my.domain"),
        oh.make_node("FancyOp", ["c"], ["y"], name="fancy2", domain="my.domain"),
    ]
    graph = oh.make_graph(nodes, "g", [_float_input("x", [2])], [_float_input("y", [2])])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid("my.domain", 1)])
    with pytest.raises(UnsupportedOperatorError) as info:
        ConvertModel(model)
    message = str(info.value)
    for name in ("fancy1", "other", "fancy2", "my.domain::FancyOp", "my.domain::OtherOp"):
        assert name in message
    assert "Relu" not in message


def test_debug_names_the_node_of_a_faulty_converter(monkeypatch):
    monkeypatch.setitem(_TABLE, ("", "Sigmoid"), list(_TABLE[("", "Sigmoid")]))

    @converter("Sigmoid", since=13)
    def faulty_sigmoid(node, ctx):
        return Lowered(torch.tanh)

    nodes = [
        oh.make_node("Relu", ["x"], ["a"], name="first_relu"),
        oh.make_node("Sigmoid", ["a"], ["b"], name="the_sigmoid"),
        oh.make_node("Neg", ["b"], ["y"], name="negate"),
    ]
    model = _model(nodes, [_float_input("x", [4, 4])], [_float_input("y", [4, 4])])
    with pytest.raises(onnx2torch.ConversionError) as info:
        ConvertModel(model, debug=True)
    message = str(info.value)
    assert "the_sigmoid" in message and "Sigmoid" in message and "faulty_sigmoid" in message
    assert "first_relu" not in message and "negate" not in message


def test_debug_passes_a_correct_model():
    nodes = [oh.make_node("Relu", ["x"], ["a"]), oh.make_node("Sigmoid", ["a"], ["y"])]
    model = _model(nodes, [_float_input("x", [4, 4])], [_float_input("y", [4, 4])])
    module = ConvertModel(model, debug=True)
    assert module(torch.zeros(4, 4)).shape == (4, 4)


def test_loads_a_path_with_external_data(tmp_path):
    w = RNG.standard_normal((64, 64)).astype(np.float32)
    model = _model([oh.make_node("MatMul", ["x", "w"], ["y"])], [_float_input("x", [1, 64])],
                   [_float_input("y", [1, 64])], [numpy_helper.from_array(w, "w")])
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="m.weights", size_threshold=0)
    assert (tmp_path / "m.weights").exists()
    module = ConvertModel(str(path))
    x = RNG.standard_normal((1, 64)).astype(np.float32)
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), x @ w, rtol=1e-4, atol=1e-5)


def test_simplifier_failure_warns_and_converts(monkeypatch):
    import onnxsim

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(onnxsim, "simplify", broken)
    model = _model([oh.make_node("Relu", ["x"], ["y"])], [_float_input("x", [2])], [_float_input("y", [2])])
    with pytest.warns(UserWarning, match="onnx-simplifier could not simplify"):
        module = ConvertModel(model)
    torch.testing.assert_close(module(torch.tensor([-1.0, 1.0])), torch.tensor([0.0, 1.0]))


def test_simplifier_prints_nothing(capfd):
    model = _model([oh.make_node("Relu", ["x"], ["y"])], [_float_input("x", ["n", 2])], [_float_input("y", ["n", 2])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module = ConvertModel(model, input_shapes={"x": [3, 2]})
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert module(torch.ones(3, 2)).shape == (3, 2)


def test_symbolic_dims_stay_symbolic_through_simplification():
    nodes = [oh.make_node("Flatten", ["x"], ["y"], axis=1)]
    model = _model(nodes, [_float_input("x", ["batch", 2, 3])], [_float_input("y", ["batch", 6])])
    module = ConvertModel(model)
    for batch in (1, 5):
        assert module(torch.ones(batch, 2, 3)).shape == (batch, 6)


def test_verify_reports_mse_and_max_abs_error_per_output():
    model = _model([oh.make_node("Relu", ["x"], ["y"])], [_float_input("x", [3, 3])], [_float_input("y", [3, 3])])
    module = ConvertModel(model)
    report = onnx2torch.verify(model, module)
    assert report.passed() and report.outputs[0].name == "y"
    assert report.outputs[0].mse == 0.0 and report.outputs[0].max_abs_error == 0.0
    wrong = onnx2torch.verify(model, nn.Identity())
    assert not wrong.passed() and wrong.outputs[0].max_abs_error > 0


def test_saved_module_with_runtime_helpers_reloads(tmp_path):
    # Slice with runtime starts and NonZero use helper functions that read tensor values;
    # torch.load re-traces the generated code, which must keep them opaque.
    nodes = [
        oh.make_node("NonZero", ["x"], ["nz"]),
        oh.make_node("Shape", ["nz"], ["s"]),
        oh.make_node("Slice", ["x", "start", "s_end"], ["y"]),
        oh.make_node("Gather", ["s", "one"], ["s_end0"], axis=0),
        oh.make_node("Unsqueeze", ["s_end0", "zero"], ["s_end"]),
    ]
    nodes = [nodes[0], nodes[1], nodes[3], nodes[4], nodes[2]]
    inits = [numpy_helper.from_array(np.array([0], np.int64), "start"),
             numpy_helper.from_array(np.array(1, np.int64), "one"),
             numpy_helper.from_array(np.array([0], np.int64), "zero")]
    model = _model(nodes, [_float_input("x", ["n"])], [_float_input("y", ["m"])], inits)
    module = ConvertModel(model, simplify=False)
    path = tmp_path / "m.pth"
    torch.save(module, path)
    loaded = torch.load(path, weights_only=False)
    x = torch.tensor([0.0, 1.0, 2.0, 0.0, 3.0])
    torch.testing.assert_close(loaded(x), module(x))
    torch.testing.assert_close(loaded(x), x[:3])
    assert loaded.onnx_input_names == ["x"]
