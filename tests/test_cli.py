"""The command line: exit codes, one-line errors, saved modules that reload with the same numbers."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import pytest
import torch
from onnx import TensorProto

from onnx2torch.registry import _TABLE, Lowered, converter
from onnx2torch.verify import make_inputs, run_onnxruntime
from onnx2torch_cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tiny_inception.onnx"


def test_example_converts_verifies_and_reloads(tmp_path, capsys):
    pth = tmp_path / "tiny.pth"
    simplified = tmp_path / "tiny_sim.onnx"
    code = main(["--onnx_path", str(EXAMPLE), "--pytorch_path", str(pth),
                 "--input_shape", "input:2,3,32,32", "--simplify_path", str(simplified)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "verification PASSED" in out
    onnx.checker.check_model(onnx.load(str(simplified)))
    module = torch.load(str(pth), weights_only=False)
    model = onnx.load(str(EXAMPLE))
    inputs = make_inputs(model, {"input": [2, 3, 32, 32]})
    expected = run_onnxruntime(model, inputs)[0]
    got = module(torch.from_numpy(inputs["input"])).detach().numpy()
    assert np.mean((got - expected) ** 2) <= 1e-7


def test_unknown_op_exits_2_with_one_line(tmp_path):
    graph = oh.make_graph([oh.make_node("Mystery", ["x"], ["y"], domain="acme")], "g",
                          [oh.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid("acme", 1)])
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    pth = tmp_path / "m.pth"
    proc = subprocess.run([sys.executable, str(ROOT / "onnx2torch_cli.py"), "--onnx_path", str(path),
                           "--pytorch_path", str(pth)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "acme::Mystery" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not pth.exists()


@pytest.mark.parametrize("argv_tail", [["--input_shape", "input:1,x,3"], ["--input_shape", "nosuch:1,3,32,32"]])
def test_bad_input_shape_exits_2(argv_tail, capsys):
    assert main(["--onnx_path", str(EXAMPLE), *argv_tail]) == 2
    assert "input_shape" in capsys.readouterr().err


def test_missing_file_exits_2(tmp_path, capsys):
    assert main(["--onnx_path", str(tmp_path / "nope.onnx")]) == 2
    assert "no ONNX file" in capsys.readouterr().err


def test_failed_verification_exits_1_and_debug_names_the_node(monkeypatch, capsys):
    monkeypatch.setitem(_TABLE, ("", "LRN"), list(_TABLE[("", "LRN")]))

    @converter("LRN", since=13)
    def wrong_lrn(node, ctx):
        return Lowered(torch.nn.Identity())

    assert main(["--onnx_path", str(EXAMPLE), "--debug"]) == 1
    out = capsys.readouterr().out
    assert "verification FAILED" in out and "stem_lrn" in out and "wrong_lrn" in out
