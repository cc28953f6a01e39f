"""Standalone code export: the generated file runs where onnx2torch cannot be imported and
matches onnxruntime; it reads like PyTorch; the CLI writes it with or without --pytorch_path."""
from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import warnings

import numpy as np
import onnx
import onnx.helper as oh
import pytest
import torch
from onnx import TensorProto

import onnx2torch
from onnx2torch import export_code
from onnx2torch.export_code import CodeExportError
from onnx2torch.verify import run_onnxruntime
from tests.torch_models import export_cnn, export_lstm, export_transformer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Runs in a fresh interpreter: ``-I -S`` (no environment, no site hooks such as an editable
#: install's finder), only torch's site-packages appended to the path, and a finder that refuses
#: onnx2torch in case it is installed there; loads each generated model and saves its outputs.
CHILD = r"""
import importlib, importlib.abc, importlib.util, sys
sys.path.append(sys.argv[1])


class NoOnnx2torch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "onnx2torch":
            raise ImportError("onnx2torch is not importable in this process")
        return None


sys.meta_path.insert(0, NoOnnx2torch())
try:
    importlib.util.find_spec("onnx2torch")
except ImportError:
    pass
else:
    raise SystemExit("the blocker did not hold")
import torch

for job in sys.argv[2:]:
    folder, name, inputs, outputs = job.split("|")
    sys.path.insert(0, folder)
    module = importlib.import_module(name)
    model = module.load_model()
    with torch.no_grad():
        result = model(*torch.load(inputs, weights_only=True))
    torch.save(result if isinstance(result, tuple) else (result,), outputs)
assert not any(m.split(".")[0] == "onnx2torch" for m in sys.modules)
print("ok", len(sys.argv) - 2)
"""


def _inputs(name: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    if name == "cnn":
        return {"input": rng.standard_normal((3, 3, 16, 16)).astype(np.float32)}
    if name == "transformer":
        ids = rng.integers(1, 50, (3, 12)).astype(np.int64)
        ids[1, 9:] = 0  # padding
        return {"input": ids}
    return {"input": rng.standard_normal((3, 5, 8)).astype(np.float32)}


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory) -> dict[str, str]:
    folder = str(tmp_path_factory.mktemp("onnx_models"))
    return {"cnn": export_cnn(folder), "transformer": export_transformer(folder), "lstm": export_lstm(folder)}


@pytest.fixture(scope="module")
def generated(onnx_models, tmp_path_factory) -> dict[str, tuple[str, str]]:
    """``{model: (code path, weights path)}`` written by export_code."""
    out = tmp_path_factory.mktemp("generated")
    files = {}
    for name, path in onnx_models.items():
        module = onnx2torch.ConvertModel(path)
        example = [torch.from_numpy(v) for v in _inputs(name).values()]
        files[name] = export_code(module, out / f"{name}_net.py", example_inputs=example)
    return files


def _imports(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            roots.add(node.module.split(".")[0])
    return roots


def test_generated_code_runs_without_onnx2torch_and_matches_onnxruntime(onnx_models, generated, tmp_path):
    site_packages = os.path.dirname(os.path.dirname(torch.__file__))
    jobs = []
    for name, (code, _) in generated.items():
        inputs = tmp_path / f"{name}_in.pt"
        torch.save(tuple(torch.from_numpy(v) for v in _inputs(name).values()), inputs)
        jobs.append(f"{os.path.dirname(code)}|{name}_net|{inputs}|{tmp_path / f'{name}_out.pt'}")
    result = subprocess.run([sys.executable, "-I", "-S", "-c", CHILD, site_packages, *jobs], cwd=tmp_path,
                            env={"PATH": os.environ.get("PATH", "")}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok 3"
    for name, path in onnx_models.items():
        expected = run_onnxruntime(onnx.load(path), _inputs(name))
        got = torch.load(tmp_path / f"{name}_out.pt", weights_only=True)
        assert len(got) == len(expected)
        for e, g in zip(expected, got):
            assert g.dtype == torch.from_numpy(e).dtype and tuple(g.shape) == e.shape
            np.testing.assert_allclose(g.numpy(), e, rtol=1e-4, atol=1e-5, err_msg=name)


def test_generated_code_imports_only_torch_and_the_standard_library(generated):
    for name, (code, weights) in generated.items():
        source = open(code, encoding="utf-8").read()
        assert _imports(source) <= {"torch", "os", "math", "operator", "functools", "struct"} | set(sys.stdlib_module_names), name
        assert "onnx2torch" not in _imports(source)
        state = torch.load(weights, weights_only=True)  # plain tensors: safe to load
        assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_generated_code_reads_like_pytorch(generated):
    cnn = open(generated["cnn"][0], encoding="utf-8").read()
    for layer in ("nn.Conv2d(3, 8, kernel_size=(3, 3)", "nn.BatchNorm2d(8,", "nn.PReLU(num_parameters=16)",
                  "nn.Dropout(p=0.25", "nn.Linear(in_features=16, out_features=10"):
        assert layer in cnn
    forward = cnn[cnn.index("    def forward"):cnn.index("def load_model")]
    assert "= None" not in forward and "_output_0" not in forward  # no fx bookkeeping
    assert "conv1_Conv = self.conv1_Conv(input)" in forward
    transformer = open(generated["transformer"][0], encoding="utf-8").read()
    # shape arithmetic of the dynamic batch became sizes and literals: nothing reads tensor values
    assert ".tolist()" not in transformer and "reshape_dynamic" not in transformer
    assert "class Embedding(nn.Embedding):" in transformer  # a package module, copied from its source
    lstm = open(generated["lstm"][0], encoding="utf-8").read()
    assert "class NativeRecurrent(nn.Module):" in lstm and "rnn=nn.LSTM(8, 16)" in lstm


def _import(path: str):
    spec = importlib.util.spec_from_file_location(f"generated_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_load_model_returns_an_eval_model_with_the_weights(generated, onnx_models):
    code, weights = generated["cnn"]
    model = _import(code).load_model()
    assert not model.training
    original = onnx2torch.ConvertModel(onnx_models["cnn"])
    for (name, a), (_, b) in zip(sorted(original.state_dict().items()), sorted(model.state_dict().items())):
        assert torch.equal(a, b), name
    assert model.bn1_BatchNormalization.weight.requires_grad  # trainable as generated
    again = _import(code).load_model(weights)  # an explicit path works too
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(model(x), again(x))


def _if_model() -> onnx.ModelProto:
    """If(cond) with branches reading an outer value and calling package helpers (Mod, Concat)."""
    x = oh.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    cond = oh.make_tensor_value_info("cond", TensorProto.BOOL, [])
    y = oh.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = onnx.numpy_helper.from_array(np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4), "w")
    then_graph = oh.make_graph(
        [oh.make_node("MatMul", ["x", "w"], ["t"]), oh.make_node("Mod", ["t", "three"], ["t_out"], fmod=1)],
        "then", [], [oh.make_tensor_value_info("t_out", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(np.array(3.0, dtype=np.float32), "three")])
    else_graph = oh.make_graph(
        [oh.make_node("Concat", ["x", "x"], ["e"], axis=1), oh.make_node("Slice", ["e", "s", "t", "a"], ["e_out"])],
        "else", [], [oh.make_tensor_value_info("e_out", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(np.array([2], dtype=np.int64), n) if n != "t" else
         onnx.numpy_helper.from_array(np.array([6], dtype=np.int64), n) for n in ("s", "t")]
        + [onnx.numpy_helper.from_array(np.array([1], dtype=np.int64), "a")])
    node = oh.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph)
    model = oh.make_model(oh.make_graph([node], "if", [x, cond], [y], [w]), opset_imports=[oh.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_subgraphs_become_classes_of_their_own(tmp_path):
    model = _if_model()
    module = onnx2torch.ConvertModel(model, simplify=False)
    x = torch.randn(5, 4)
    code, _ = export_code(module, tmp_path / "branchy.py", example_inputs=(x, torch.tensor(True)))
    source = open(code, encoding="utf-8").read()
    assert source.count("(nn.Module):") >= 3  # the model and both bodies
    assert "class IfModule(nn.Module):" in source
    generated = _import(code).load_model()
    for flag in (True, False):
        expected = run_onnxruntime(model, {"x": x.numpy(), "cond": np.array(flag)})[0]
        np.testing.assert_allclose(generated(x, torch.tensor(flag)).detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_cli_code_path_with_and_without_pytorch_path(tmp_path, capsys):
    import onnx2torch_cli  # noqa: PLC0415

    example = os.path.join(ROOT, "examples", "tiny_inception.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert onnx2torch_cli.main(["--onnx_path", example, "--code_path", str(tmp_path / "a" / "tiny.py")]) == 0
        assert onnx2torch_cli.main(["--onnx_path", example, "--pytorch_path", str(tmp_path / "tiny.pth"),
                                    "--code_path", str(tmp_path / "b" / "tiny_net.py")]) == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "tiny_net.pt" in printed
    assert (tmp_path / "a" / "tiny.pt").is_file() and (tmp_path / "tiny.pth").is_file()
    x = torch.randn(1, 3, 32, 32)
    reference = torch.load(tmp_path / "tiny.pth", weights_only=False)
    for folder, stem in (("a", "tiny"), ("b", "tiny_net")):
        model = _import(str(tmp_path / folder / f"{stem}.py")).load_model()
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


def test_export_code_refuses_what_it_cannot_write(tmp_path):
    with pytest.raises(CodeExportError, match="GraphModule"):
        export_code(torch.nn.Linear(2, 2), tmp_path / "linear.py")
    module = onnx2torch.ConvertModel(_if_model(), simplify=False)
    with pytest.raises(CodeExportError, match=r"\.py"):
        export_code(module, tmp_path / "model.txt")
    with pytest.raises(CodeExportError, match="example_inputs"):
        export_code(module, tmp_path / "out" / "model.py", example_inputs=(torch.randn(5, 3), torch.tensor(True)))
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")  # nothing left behind
