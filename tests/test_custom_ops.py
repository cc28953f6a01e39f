"""User ops: onnx2torch.custom_op turns a plain torch function into the converter of an op."""
from __future__ import annotations

import io

import numpy as np
import onnx
import onnx.helper as oh
import pytest
import torch
from onnx import TensorProto

import onnx2torch
from onnx2torch import custom_op
from onnx2torch.custom_ops import (
    custom_op_source,
    custom_op_spec,
    is_custom_op,
    registered_custom_ops,
)
from onnx2torch.errors import ConversionError, UnsupportedOperatorError
from onnx2torch.registry import _TABLE, lookup

DOMAIN = "test.onnx2torch"


@custom_op("Scale2", domain=DOMAIN)
def scale2(x, *, factor: float = 2.0):
    return x * factor


@custom_op("Blend", domain=DOMAIN)
def blend(a, b=None, *, weights: tuple = (0.5, 0.5), mode: str = "sum", power: int):
    """Two optional-input, list / string / required-int attribute user op."""
    out = a * weights[0] if b is None else a * weights[0] + b * weights[1]
    return out.pow(power) if mode == "pow" else out


@custom_op("SumAll", domain=DOMAIN)
def sum_all(*tensors):
    return torch.stack(tensors).sum(0)


@custom_op("SplitHalves", domain=DOMAIN)
def split_halves(x, *, axis: int = -1):
    first, second = torch.chunk(x, 2, dim=axis)
    return first, second


def plus_one_relu(x):
    return torch.relu(x) + 1


def _model(nodes, inputs, outputs, opset=17):
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                          [oh.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset), oh.make_opsetid(DOMAIN, 1)])
    model.ir_version = 8
    return model


def test_user_op_in_custom_domain_converts_and_runs():
    model = _model([oh.make_node("Scale2", ["x"], ["y"], domain=DOMAIN, factor=3.0),
                    oh.make_node("Scale2", ["y"], ["z"], domain=DOMAIN)],  # factor takes the default
                   [("x", [2, 3])], [("z", [2, 3])])
    module = onnx2torch.ConvertModel(model)
    x = torch.randn(2, 3)
    torch.testing.assert_close(module(x), x * 6.0)
    assert "scale2(x, factor = 3.0)" in module.code
    assert "scale2(y)" in module.code


def test_int_attribute_for_a_float_parameter_is_passed_as_float():
    model = _model([oh.make_node("Scale2", ["x"], ["y"], domain=DOMAIN, factor=4)], [("x", [3])], [("y", [3])])
    module = onnx2torch.ConvertModel(model, simplify=False)
    assert "factor = 4.0" in module.code
    torch.testing.assert_close(module(torch.ones(3)), torch.full((3,), 4.0))


def test_optional_inputs_lists_strings_and_required_attributes():
    model = _model([oh.make_node("Blend", ["a", "b"], ["y"], domain=DOMAIN, weights=[0.25, 2.0], mode="pow", power=2),
                    oh.make_node("Blend", ["y"], ["z"], domain=DOMAIN, power=1)],
                   [("a", [4]), ("b", [4])], [("z", [4])])
    module = onnx2torch.ConvertModel(model, simplify=False)
    a, b = torch.randn(4), torch.randn(4)
    torch.testing.assert_close(module(a, b), (a * 0.25 + b * 2.0).pow(2) * 0.5)
    assert "weights = (0.25, 2.0)" in module.code and "mode = 'pow'" in module.code


def test_variadic_inputs_and_multiple_outputs():
    model = _model([oh.make_node("SumAll", ["a", "b", "c"], ["s"], domain=DOMAIN),
                    oh.make_node("SplitHalves", ["s"], ["lo", "hi"], domain=DOMAIN, axis=0)],
                   [("a", [4, 2]), ("b", [4, 2]), ("c", [4, 2])], [("lo", [2, 2]), ("hi", [2, 2])])
    module = onnx2torch.ConvertModel(model, simplify=False)
    a, b, c = torch.randn(4, 2), torch.randn(4, 2), torch.randn(4, 2)
    lo, hi = module(a, b, c)
    torch.testing.assert_close(torch.cat([lo, hi]), a + b + c)


def test_constant_inputs_are_folded_through_the_user_function():
    const = oh.make_node("Constant", [], ["k"], value=onnx.numpy_helper.from_array(np.ones(3, np.float32)))
    model = _model([const, oh.make_node("Scale2", ["k"], ["k2"], domain=DOMAIN, factor=5.0),
                    oh.make_node("Add", ["x", "k2"], ["y"])], [("x", [3])], [("y", [3])])
    module = onnx2torch.ConvertModel(model, simplify=False)
    assert "scale2" not in module.code
    torch.testing.assert_close(module(torch.zeros(3)), torch.full((3,), 5.0))


def test_unknown_attribute_is_a_clear_error():
    model = _model([oh.make_node("Scale2", ["x"], ["y"], domain=DOMAIN, factor=2.0, bias=1.0)], [("x", [3])], [("y", [3])])
    with pytest.raises(ConversionError, match=r"attribute\(s\) bias are not parameters of the user op .*scale2"):
        onnx2torch.ConvertModel(model, simplify=False)


def test_missing_required_attribute_is_a_clear_error():
    model = _model([oh.make_node("Blend", ["a"], ["y"], domain=DOMAIN)], [("a", [3])], [("y", [3])])
    with pytest.raises(ConversionError, match="required attribute 'power'"):
        onnx2torch.ConvertModel(model, simplify=False)


def test_too_many_inputs_is_a_clear_error():
    model = _model([oh.make_node("Scale2", ["x", "x"], ["y"], domain=DOMAIN)], [("x", [3])], [("y", [3])])
    with pytest.raises(ConversionError, match="takes at most 1"):
        onnx2torch.ConvertModel(model, simplify=False)


def test_unregistered_custom_op_names_the_node():
    model = _model([oh.make_node("Nope", ["x"], ["y"], domain=DOMAIN, name="mystery")], [("x", [3])], [("y", [3])])
    with pytest.raises(UnsupportedOperatorError, match="'mystery' test.onnx2torch::Nope"):
        onnx2torch.ConvertModel(model)


def test_user_op_overrides_the_builtin_at_every_opset(monkeypatch):
    key = ("", "Relu")
    monkeypatch.setitem(_TABLE, key, list(_TABLE[key]))  # restored after the test
    monkeypatch.setattr("onnx2torch.custom_ops._REGISTERED", dict(registered_custom_ops()))
    builtin_14 = lookup("", "Relu", 14).fn
    custom_op("Relu")(plus_one_relu)
    for opset in (6, 13, 14, 21):
        assert lookup("", "Relu", opset).fn is not builtin_14
        model = _model([oh.make_node("Relu", ["x"], ["y"])], [("x", [4])], [("y", [4])], opset=opset)
        module = onnx2torch.ConvertModel(model, simplify=False)
        x = torch.randn(4)
        torch.testing.assert_close(module(x), torch.relu(x) + 1)
        assert "plus_one_relu" in module.code
    monkeypatch.undo()
    assert lookup("", "Relu", 14).fn is builtin_14


def test_save_and_load_keep_the_user_function_call():
    model = _model([oh.make_node("Scale2", ["x"], ["y"], domain=DOMAIN, factor=3.0)], [("x", [2])], [("y", [2])])
    module = onnx2torch.ConvertModel(model)
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert "scale2(x, factor = 3.0)" in loaded.code
    torch.testing.assert_close(loaded(torch.ones(2)), torch.full((2,), 3.0))


def test_spec_and_source_for_code_export():
    assert is_custom_op(scale2) and not is_custom_op(_model) and not is_custom_op(torch.relu)
    spec = custom_op_spec(blend)
    assert spec.op_type == "Blend" and spec.domain == DOMAIN and spec.inputs == ("a", "b")
    assert spec.required_inputs == 1 and spec.attributes["mode"] == "sum"
    source = custom_op_source(scale2)
    assert source.startswith("def scale2(x, *, factor: float = 2.0):") and "@custom_op" not in source
    assert registered_custom_ops()[(DOMAIN, "Scale2")] is scale2


def test_bad_signatures_are_rejected_at_decoration():
    with pytest.raises(TypeError, match=r"\*\*kwargs"):
        custom_op("Bad", domain=DOMAIN)(lambda x, **kwargs: x)
    with pytest.raises(TypeError, match="plain function"):
        custom_op("Bad", domain=DOMAIN)(torch.relu)


def test_code_export_writes_the_user_function_into_the_file(tmp_path):
    import os
    import subprocess
    import sys

    from tests.test_export_code import CHILD

    nodes = [oh.make_node("Scale2", ["x"], ["s"], domain=DOMAIN, factor=3.0), oh.make_node("Relu", ["s"], ["y"])]
    model = _model(nodes, [("x", [2, 3])], [("y", [2, 3])])
    module = onnx2torch.ConvertModel(model)
    code, _ = onnx2torch.export_code(module, tmp_path / "scaled.py")
    source = open(code, encoding="utf-8").read()
    assert "def scale2(" in source and "@custom_op" not in source
    from tests.test_export_code import _imports

    assert "onnx2torch" not in _imports(source)
    x = torch.randn(2, 3)
    torch.save((x,), tmp_path / "in.pt")
    job = f"{tmp_path}|scaled|{tmp_path / 'in.pt'}|{tmp_path / 'out.pt'}"
    site_packages = os.path.dirname(os.path.dirname(torch.__file__))
    result = subprocess.run([sys.executable, "-I", "-S", "-c", CHILD, site_packages, job], cwd=tmp_path,
                            env={"PATH": os.environ.get("PATH", "")}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    (got,) = torch.load(tmp_path / "out.pt", weights_only=True)
    torch.testing.assert_close(got, torch.relu(x * 3.0))
