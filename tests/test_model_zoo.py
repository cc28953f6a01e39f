"""The nine Caffe2-era models inside the onnx package convert through the CLI with MSE ≤ 1e-7
against onnxruntime, and the saved ``.pth`` reloads with the same numbers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from onnx2torch.verify import make_inputs, run_onnxruntime
from onnx2torch_cli import main

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = sorted(p.stem.replace("light_", "") for p in LIGHT.glob("light_*.onnx"))


def test_all_nine_models_are_found():
    assert len(MODELS) == 9


@pytest.mark.parametrize("name", MODELS)
def test_zoo_model_converts_verifies_and_reloads(name, tmp_path, capsys):
    path = LIGHT / f"light_{name}.onnx"
    pth = tmp_path / f"{name}.pth"
    code = main(["--onnx_path", str(path), "--pytorch_path", str(pth)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "verification PASSED" in out
    model = onnx.load(str(path))
    inputs = make_inputs(model)
    expected = run_onnxruntime(model, inputs)
    module = torch.load(str(pth), weights_only=False)
    args = [torch.from_numpy(inputs[n]) for n in module.onnx_input_names]
    with torch.no_grad():
        got = module(*args)
    got = got if isinstance(got, tuple) else (got,)
    for e, g in zip(expected, got):
        assert np.mean((g.numpy().astype(np.float64) - e) ** 2) <= 1e-7
