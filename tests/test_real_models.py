"""Small real models exported inside the test with both PyTorch exporters, converted with the
default settings, and compared with onnxruntime at batch 1 and 2 (and another sequence length /
image size): the dynamic dimensions must stay dynamic.  ``tools/zoo.py`` runs the large corpus."""
from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from onnx2torch import ConvertModel
from onnx2torch.verify import run_onnxruntime


class TinyEncoder(nn.Module):
    """BERT-shaped: embeddings + padding mask + two pre-norm encoder layers."""

    def __init__(self, vocab: int = 50, dim: int = 32, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(64, dim)
        self.layers = nn.ModuleList(
            nn.ModuleDict({"norm1": nn.LayerNorm(dim), "qkv": nn.Linear(dim, 3 * dim), "out": nn.Linear(dim, dim),
                           "norm2": nn.LayerNorm(dim), "ff1": nn.Linear(dim, 2 * dim), "ff2": nn.Linear(2 * dim, dim)})
            for _ in range(2))

    def forward(self, ids, mask):
        batch, seq = ids.shape
        x = self.embed(ids) + self.pos(torch.arange(seq, device=ids.device))[None]
        bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * -1e4
        for layer in self.layers:
            h = layer["norm1"](x)
            q, k, v = layer["qkv"](h).reshape(batch, seq, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            att = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5 + bias, dim=-1)
            x = x + layer["out"]((att @ v).transpose(1, 2).reshape(batch, seq, -1))
            x = x + layer["ff2"](nn.functional.gelu(layer["ff1"](layer["norm2"](x))))
        return x


class TinyCNN(nn.Module):
    """ResNet-shaped: stem, a residual block with BatchNorm, global pooling, classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.Hardswish(), nn.Conv2d(8, 8, 1))
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _randomized(module: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return module.eval()


def _export(module: nn.Module, example: tuple, names: list[str], axes: dict[str, dict[int, str]], dynamo: bool):
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not dynamo:
            torch.onnx.export(module, example, buffer, input_names=names, output_names=["out"], dynamic_axes=axes,
                              opset_version=17, dynamo=False)
            return onnx.load_from_string(buffer.getvalue())
        dims = {}
        shapes = tuple({i: dims.setdefault(label, torch.export.Dim(label, min=2 if label != "batch" else 1, max=256))
                        for i, label in axes[n].items()} for n in names)
        program = torch.onnx.export(module, example, input_names=names, output_names=["out"], dynamic_shapes=shapes,
                                    dynamo=True)
        return program.model_proto


def _check(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    module = ConvertModel(model)
    expected = run_onnxruntime(model, feeds)
    with torch.no_grad():
        got = module(*[torch.from_numpy(feeds[n]) for n in module.onnx_input_names])
    got = got if isinstance(got, tuple) else (got,)
    for e, g in zip(expected, got):
        assert tuple(g.shape) == e.shape
        scale = float(np.abs(e).max()) or 1.0
        assert float(np.abs(g.numpy() - e).max()) / scale <= 1e-4


def _dynamo_available() -> bool:
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


EXPORTERS = ["torchscript", pytest.param("dynamo", marks=pytest.mark.skipif(not _dynamo_available(),
                                                                           reason="onnxscript is not installed"))]


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_tiny_encoder_batch_and_sequence_stay_dynamic(exporter):
    module = _randomized(TinyEncoder())
    batch = 2 if exporter == "dynamo" else 1  # torch.export specializes a size-1 example dim
    example = (torch.randint(0, 50, (batch, 8)), torch.ones(batch, 8, dtype=torch.long))
    axes = {"ids": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"}}
    model = _export(module, example, ["ids", "mask"], axes, exporter == "dynamo")
    rng = np.random.default_rng(0)
    for b, s in ((1, 8), (2, 8), (2, 5), (3, 11)):
        mask = np.ones((b, s), np.int64)
        mask[-1, s // 2:] = 0  # right padding in the last row
        _check(model, {"ids": rng.integers(0, 50, (b, s)).astype(np.int64), "mask": mask})


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_tiny_cnn_batch_and_image_size_stay_dynamic(exporter):
    module = _randomized(TinyCNN())
    batch = 2 if exporter == "dynamo" else 1
    axes = {"image": {0: "batch", 2: "height", 3: "width"}}
    model = _export(module, (torch.randn(batch, 3, 32, 32),), ["image"], axes, exporter == "dynamo")
    rng = np.random.default_rng(0)
    for shape in ((1, 3, 32, 32), (2, 3, 32, 32), (2, 3, 24, 40)):
        _check(model, {"image": rng.standard_normal(shape).astype(np.float32)})


def test_tiny_transformers_bert_both_batches():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    bert = _randomized(transformers.BertModel(config))

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, ids, mask):
            return self.bert(input_ids=ids, attention_mask=mask)[0]

    example = (torch.randint(0, 100, (1, 8)), torch.ones(1, 8, dtype=torch.long))
    model = _export(Wrapper().eval(), example, ["ids", "mask"], {"ids": {0: "batch", 1: "seq"},
                                                                  "mask": {0: "batch", 1: "seq"}}, dynamo=False)
    rng = np.random.default_rng(0)
    for b, s in ((1, 8), (2, 6)):
        _check(model, {"ids": rng.integers(0, 100, (b, s)).astype(np.int64), "mask": np.ones((b, s), np.int64)})


def test_onnxruntime_optimized_contrib_ops_model():
    """SkipLayerNormalization + FastGelu + Attention written by hand as onnxruntime's transformer
    optimizer emits them, at two batch sizes and sequence lengths."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    hidden, heads = 16, 2

    def weight(*shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), f"w{len(inits)}")

    inits = []
    names = {}
    for key, shape in (("qkv_w", (hidden, 3 * hidden)), ("qkv_b", (3 * hidden,)), ("gamma", (hidden,)),
                       ("beta", (hidden,)), ("ff_w", (hidden, hidden)), ("ff_b", (hidden,))):
        tensor = weight(*shape)
        inits.append(tensor)
        names[key] = tensor.name
    nodes = [
        helper.make_node("Attention", ["x", names["qkv_w"], names["qkv_b"], "mask"], ["att"], domain="com.microsoft",
                         num_heads=heads),
        helper.make_node("SkipLayerNormalization", ["att", "x", names["gamma"], names["beta"]], ["ln"],
                         domain="com.microsoft", epsilon=1e-5),
        helper.make_node("MatMul", ["ln", names["ff_w"]], ["ff"]),
        helper.make_node("FastGelu", ["ff", names["ff_b"]], ["y"], domain="com.microsoft"),
    ]
    graph = helper.make_graph(nodes, "optimized", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", hidden]),
        helper.make_tensor_value_info("mask", TensorProto.INT32, ["batch", "seq"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", hidden])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    for b, s in ((1, 6), (2, 9)):
        mask = np.ones((b, s), np.int32)
        mask[-1, -2:] = 0
        _check(model, {"x": rng.standard_normal((b, s, hidden)).astype(np.float32), "mask": mask})
