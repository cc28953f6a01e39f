"""Export small PaddlePaddle models (random weights) to ONNX with paddle2onnx, for ``tools/zoo.py``.

Run it with a separate environment that has PaddlePaddle (never needed by onnx2torch or its CI)::

    python3 -m venv /work/venv_paddle && /work/venv_paddle/bin/pip install paddlepaddle paddle2onnx packaging
    /work/venv_paddle/bin/python tools/export_paddle.py [--work /tmp/onnx2torch_zoo] [--filter NAME]

Each model is written to ``WORK/paddle/<name>.onnx`` with a symbolic batch dimension (and sequence
length for the text models); ``tools/zoo.py`` picks up whatever files are there.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path


def vision(paddle, name: str):
    models = paddle.vision.models
    builders = {
        "paddle_mobilenet_v2": lambda: models.mobilenet_v2(scale=0.5, num_classes=10),
        "paddle_mobilenet_v3_small": lambda: models.mobilenet_v3_small(scale=0.5, num_classes=10),
        "paddle_resnet18": lambda: models.resnet18(num_classes=10),
        "paddle_shufflenet_v2": lambda: models.shufflenet_v2_x0_25(num_classes=10),
        "paddle_squeezenet": lambda: models.squeezenet1_1(num_classes=10),
    }
    return builders[name]()


VISION = ["paddle_mobilenet_v2", "paddle_mobilenet_v3_small", "paddle_resnet18", "paddle_shufflenet_v2",
          "paddle_squeezenet"]


def text_models(paddle):
    nn = paddle.nn

    class TextLSTM(nn.Layer):
        """Embedding -> bidirectional LSTM -> GRU -> classifier per token."""

        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(300, 32)
            self.lstm = nn.LSTM(32, 24, direction="bidirect")
            self.gru = nn.GRU(48, 16)
            self.head = nn.Linear(16, 5)

        def forward(self, ids):
            x, _ = self.lstm(self.embed(ids))
            x, _ = self.gru(x)
            return self.head(x)

    class TextEncoder(nn.Layer):
        """Embedding + two Transformer encoder layers + mean pooling."""

        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(300, 32)
            layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0)
            self.encoder = nn.TransformerEncoder(layer, 2)
            self.head = nn.Linear(32, 3)

        def forward(self, ids):
            return self.head(self.encoder(self.embed(ids)).mean(axis=1))

    return {"paddle_text_lstm": TextLSTM, "paddle_text_encoder": TextEncoder}


def randomize(paddle, model) -> None:
    """Non-trivial BatchNorm statistics and norm scales, so their conversion is tested."""
    for layer in model.sublayers():
        name = type(layer).__name__
        if name.startswith("BatchNorm"):
            layer._mean.set_value(paddle.uniform(layer._mean.shape, min=-0.5, max=0.5))
            layer._variance.set_value(paddle.uniform(layer._variance.shape, min=0.5, max=2.0))
        if name in ("LayerNorm",) or name.startswith("BatchNorm"):
            layer.weight.set_value(layer.weight + paddle.uniform(layer.weight.shape, min=-0.2, max=0.2))
            layer.bias.set_value(layer.bias + paddle.uniform(layer.bias.shape, min=-0.2, max=0.2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/onnx2torch_zoo")
    parser.add_argument("--filter", default="")
    parser.add_argument("--opset", type=int, default=11)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import paddle  # noqa: PLC0415

    out_dir = Path(args.work) / "paddle"
    out_dir.mkdir(parents=True, exist_ok=True)
    text = text_models(paddle)
    failures = 0
    for name in VISION + list(text):
        if args.filter and args.filter not in name:
            continue
        path = out_dir / f"{name}.onnx"
        if path.exists():
            print(f"{name:28s} cached")
            continue
        start = time.perf_counter()
        try:
            paddle.seed(0)
            if name in text:
                model = text[name]()
                spec = [paddle.static.InputSpec([None, None], "int64", "ids")]
            else:
                model = vision(paddle, name)
                spec = [paddle.static.InputSpec([None, 3, 64, 64], "float32", "image")]
            randomize(paddle, model)
            model.eval()
            paddle.onnx.export(model, str(out_dir / name), input_spec=spec, opset_version=args.opset)
            print(f"{name:28s} exported in {time.perf_counter() - start:.1f}s", flush=True)
        except Exception as exc:  # noqa: BLE001 - report and go on with the next model
            failures += 1
            print(f"{name:28s} FAILED {type(exc).__name__}: {str(exc)[:300]}", flush=True)
    print(f"paddle {paddle.__version__}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
