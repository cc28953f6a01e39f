"""Convert every model available offline and regenerate model_zoo_results.md.

    python tools/zoo.py [--out model_zoo_results.md] [--work /tmp/onnx2torch_zoo] [--filter NAME]

The corpus: the nine Caffe2-era models shipped inside the onnx package
(onnx/backend/test/data/light/) and small networks defined here, exported with PyTorch's
TorchScript-based exporter (``dynamo=False``).  Each is converted with the default settings,
checked against onnxruntime on seeded random inputs, and — where the batch dimension is
symbolic — checked again at batch 2.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from onnx2torch import ConvertModel  # noqa: E402
from onnx2torch.verify import make_inputs, run_onnxruntime, run_torch  # noqa: E402


# --- models defined here, exported with torch.onnx.export --------------------------------------
class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        self.layers = nn.Sequential(ResidualBlock(16, 16, 1), ResidualBlock(16, 32, 2), ResidualBlock(32, 64, 2))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, c: int, expand: int):
        super().__init__()
        hidden = c * expand
        self.block = nn.Sequential(
            nn.Conv2d(c, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.Hardswish(),
            nn.Conv2d(hidden, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.block(x)


class TinyMobileNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.Hardswish())
        self.blocks = nn.Sequential(InvertedResidual(16, 4), InvertedResidual(16, 6))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(16, 5))

    def forward(self, x):
        return torch.softmax(self.head(self.blocks(self.stem(x))), dim=-1)


class TinyUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.LeakyReLU(0.1), nn.GroupNorm(2, 8))
        self.mid = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 2, dilation=2), nn.ELU())
        self.up = nn.ConvTranspose2d(8, 4, 4, 2, 1)
        self.out = nn.Conv2d(7, 2, 1)

    def forward(self, x):
        y = self.up(self.mid(self.down(x)))
        y = torch.cat([y, x], dim=1)
        z = nn.functional.interpolate(self.out(y), scale_factor=2, mode="bilinear", align_corners=False)
        return torch.sigmoid(z)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        batch, seq, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, seq, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) / (dim // self.heads) ** 0.5, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(batch, seq, dim))


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 32)
        self.pos = nn.Parameter(torch.randn(1, 64, 32) * 0.02)
        self.blocks = nn.Sequential(EncoderBlock(32, 4), EncoderBlock(32, 4))
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, 100)

    def forward(self, ids):
        x = self.embed(ids) + self.pos[:, : ids.shape[1]]
        return self.head(self.norm(self.blocks(x)))


class TinyMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 64), nn.SiLU(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 3))

    def forward(self, x):
        return torch.log_softmax(self.net(x), dim=1)


EXPORTED = {
    # name: (module factory, example input, input name, dynamic axes of the input, opset)
    "tiny_resnet": (TinyResNet, lambda: torch.randn(1, 3, 64, 64), "input", {0: "batch"}, 13),
    "tiny_mobilenet": (TinyMobileNet, lambda: torch.randn(1, 3, 32, 32), "input", {0: "batch"}, 17),
    "tiny_unet": (TinyUNet, lambda: torch.randn(1, 3, 32, 32), "input", {0: "batch"}, 17),
    "tiny_transformer": (TinyTransformer, lambda: torch.randint(0, 100, (1, 16)), "ids", {0: "batch", 1: "seq"}, 17),
    "tiny_mlp": (TinyMLP, lambda: torch.randn(4, 20), "x", {0: "batch"}, 11),
}


def export_model(name: str, work: Path) -> Path:
    factory, example, input_name, axes, opset = EXPORTED[name]
    path = work / f"{name}.onnx"
    if path.exists():
        return path
    torch.manual_seed(0)
    module = factory().eval()
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):  # non-trivial statistics, so BN errors would show
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example(),), str(path), input_names=[input_name], output_names=["output"],
                          dynamic_axes={input_name: axes, "output": {0: "batch"}}, opset_version=opset,
                          dynamo=False)
    return path


def corpus(work: Path) -> list[tuple[str, str, Path]]:
    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    models = [(Path(p).stem.replace("light_", ""), "Caffe2 zoo (onnx package)", Path(p))
              for p in sorted(glob.glob(str(light / "*.onnx")))]
    for name in EXPORTED:
        models.append((name, "torch.onnx.export (TorchScript)", export_model(name, work)))
    return models


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _batch_symbolic(model: onnx.ModelProto) -> bool:
    inits = {i.name for i in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in inits]
    return bool(inputs) and all(v.type.tensor_type.shape.dim and v.type.tensor_type.shape.dim[0].HasField("dim_param")
                                for v in inputs)


def _compare(model, module, shapes=None):
    inputs = make_inputs(model, shapes)
    for v in model.graph.input:  # keep ids inside the embedding table
        if v.name in inputs and inputs[v.name].dtype.kind == "i":
            inputs[v.name] = inputs[v.name] % 100
    expected = run_onnxruntime(model, inputs)
    got = run_torch(module, model, inputs)
    mse = max(float(np.mean((e.astype(np.float64) - g) ** 2)) for e, g in zip(expected, got))
    mae = max(float(np.max(np.abs(e.astype(np.float64) - g))) for e, g in zip(expected, got))
    return mse, mae


def evaluate(name: str, source: str, path: Path) -> dict:
    model = onnx.load(str(path))
    row = {"model": name, "source": source, "opset": _opset(model), "status": "FAIL", "mse": "", "max_abs": "",
           "batch2": "n/a", "seconds": ""}
    try:
        start = time.perf_counter()
        module = ConvertModel(str(path)).eval()
        row["seconds"] = f"{time.perf_counter() - start:.2f}"
        mse, mae = _compare(model, module)
        row.update(mse=f"{mse:.2e}", max_abs=f"{mae:.2e}", status="ok" if mse <= 1e-7 else "MISMATCH")
        if _batch_symbolic(model):
            shapes = {}
            for v in model.graph.input:
                dims = [d.dim_value if d.HasField("dim_value") else 1 for d in v.type.tensor_type.shape.dim]
                if dims:
                    dims[0] = 2
                shapes[v.name] = dims
            mse2, _ = _compare(model, module, shapes)
            row["batch2"] = "ok" if mse2 <= 1e-7 else f"MSE {mse2:.1e}"
    except Exception as exc:  # noqa: BLE001 - the table records every failure
        row["status"] = f"FAIL: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "model_zoo_results.md"))
    parser.add_argument("--work", default="/tmp/onnx2torch_zoo")
    parser.add_argument("--filter", default="")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    rows = []
    for name, source, path in corpus(work):
        if args.filter and args.filter not in name:
            continue
        row = evaluate(name, source, path)
        print(f"{row['model']:<20} {row['status']:<10} mse={row['mse']:<9} max_abs={row['max_abs']:<9} "
              f"batch2={row['batch2']:<5} {row['seconds']}s", flush=True)
        rows.append(row)
    passed = sum(r["status"] == "ok" for r in rows)
    lines = [
        "# Model zoo results",
        "",
        "Generated by `python tools/zoo.py` (do not edit by hand). Each model is converted with the default",
        "settings (`ConvertModel(path)`, simplification on) and compared with onnxruntime on seeded random",
        "inputs; `status` is ok when every output's MSE ≤ 1e-7. `batch 2` reruns the comparison at batch",
        "size 2 for models whose batch dimension is symbolic. Conversion time includes simplification,",
        f"measured on a shared 2-core machine. torch {torch.__version__}, onnx {onnx.__version__}.",
        "",
        f"**{passed} / {len(rows)} models convert and match.**",
        "",
        "| model | source | opset | status | MSE | max abs error | batch 2 | conversion (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['source']} | {r['opset']} | {r['status']} | {r['mse']} | {r['max_abs']} | "
                     f"{r['batch2']} | {r['seconds']} |")
    if not args.filter:
        Path(args.out).write_text("\n".join(lines) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
