"""Shared pieces of the benchmarks: model zoo of transformers models with random weights, ONNX
export with either PyTorch exporter, alternating timing, and small table printing."""
from __future__ import annotations

import io
import math
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import onnx
import torch

__all__ = ["CACHE", "HF_CASES", "hf_model", "example_input", "export", "cached_export", "alternate", "geomean",
           "print_table"]

#: exported models are cached here between runs
CACHE = Path(os.environ.get("ONNX2TORCH_BENCH_CACHE", "/tmp/onnx2torch_bench"))

#: name -> (transformers class prefix, config overrides, input kind)
HF_CASES: dict[str, tuple[str, dict, str]] = {
    "hf_resnet50": ("ResNet", {}, "img"),
    "hf_convnext_tiny": ("ConvNext", {}, "img"),
    "hf_mobilenet_v2": ("MobileNetV2", {}, "img"),
    "hf_efficientnet_b0": ("EfficientNet", {}, "img"),
    "hf_regnet": ("RegNet", {}, "img"),
    "hf_vit": ("ViT", {"num_hidden_layers": 6}, "img"),
    "hf_bert_4l_256": ("Bert", {"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4,
                                "intermediate_size": 1024}, "ids"),
}


class FirstOutput(torch.nn.Module):
    """A transformers model returning one tensor (its last hidden state)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out["last_hidden_state"] if "last_hidden_state" in out else out[0]


def hf_model(kind: str, seed: int = 0, **config) -> torch.nn.Module:
    """A transformers ``<kind>Model`` with random weights (seeded), in eval mode."""
    import transformers  # noqa: PLC0415

    torch.manual_seed(seed)
    model = getattr(transformers, f"{kind}Model")(getattr(transformers, f"{kind}Config")(**config))
    return FirstOutput(model).eval()


def example_input(kind: str, batch: int = 1) -> torch.Tensor:
    torch.manual_seed(1)
    if kind == "img":
        return torch.randn(batch, 3, 224, 224)
    return torch.randint(0, 1000, (batch, 64))


def export(model: torch.nn.Module, x: torch.Tensor, exporter: str) -> onnx.ModelProto:
    """``model`` exported with the TorchScript exporter (``legacy``, opset 17) or the dynamo
    exporter, the batch dimension symbolic either way."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "legacy":
            buf = io.BytesIO()
            torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=17, input_names=["input"],
                              output_names=["output"], dynamic_axes={"input": {0: "batch"}})
            return onnx.load_from_string(buf.getvalue())
        xe = torch.cat([x, x]) if x.shape[0] == 1 else x  # dynamo specializes a batch of 1
        program = torch.onnx.export(model, (xe,), dynamo=True, input_names=["input"], output_names=["output"],
                                    dynamic_shapes=({0: torch.export.Dim("batch", max=64)},), verbose=False)
        return program.model_proto


def cached_export(name: str, build: Callable[[], torch.nn.Module], x: torch.Tensor, exporter: str) -> Path:
    """The ONNX file for ``name`` exported with ``exporter``, exported once and cached."""
    path = CACHE / exporter / f"{name}.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        model = export(build(), x, exporter)
        tmp = path.with_suffix(".tmp")
        onnx.save(model, str(tmp))
        tmp.replace(path)
    return path


def alternate(a: Callable[[], object], b: Callable[[], object], reps: int,
              warmup: int = 2) -> tuple[tuple[float, float], tuple[float, float]]:
    """``((median a, median b), (best a, best b))`` in seconds, ``a`` and ``b`` timed one after the
    other ``reps`` times so that both see the same machine noise.  On a busy machine the median
    swings with the load (a descheduled thread stalls every parallel op); the best run is the
    steadier estimate of what each costs."""
    for _ in range(warmup):
        a()
        b()
    ta, tb = [], []
    for _ in range(reps):
        t = time.perf_counter()
        a()
        ta.append(time.perf_counter() - t)
        t = time.perf_counter()
        b()
        tb.append(time.perf_counter() - t)
    ta.sort()
    tb.sort()
    return (ta[reps // 2], tb[reps // 2]), (ta[0], tb[0])


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def print_table(header: list[str], rows: list[list[object]]) -> None:
    """A Markdown table."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    print(flush=True)
