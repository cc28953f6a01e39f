"""Small PyTorch models exported to ONNX for the end-to-end tests (code export, fine-tuning,
round trip, torch.export / torch.compile): a CNN with BatchNorm and Dropout, a transformer
encoder with a padding mask, and an LSTM classifier.

Every model is exported with the TorchScript exporter (``dynamo=False``) and dynamic batch (and
sequence) axes.  Weights are re-drawn at random before export so that no two are equal: the
exporter merges identical initializers (the layers ``nn.TransformerEncoder`` clones start equal),
and a zero bias would be a special case.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import onnx
import onnx.helper as oh
import torch
from torch import nn

__all__ = ["SmallCNN", "SmallTransformer", "SmallLSTM", "export_cnn", "export_transformer", "export_lstm",
           "float_initializer_elements"]


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.prelu = nn.PReLU(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = nn.functional.max_pool2d(x, 2)
        x = self.prelu(self.bn2(self.conv2(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class SmallTransformer(nn.Module):
    def __init__(self, vocab: int = 50, width: int = 32, max_len: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.randn(1, max_len, width) * 0.1)
        layer = nn.TransformerEncoderLayer(width, 4, 64, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(width, 5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != 0).float()  # a Cast to float32 in the ONNX graph
        h = self.embed(ids) + self.position[:, : ids.shape[1]]
        h = self.encoder(h) * mask.unsqueeze(-1)
        return self.head(h.sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0))


class SmallLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=True)
        self.fc = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x)
        return self.fc(y[:, -1])


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
        for name, buf in model.named_buffers():
            if name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=generator) + 0.5)
            elif name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=generator) * 0.1)
    return model.eval()


def _export(model: nn.Module, example: torch.Tensor, path: str, dynamic: dict, **kwargs) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), path, dynamo=False, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": dynamic, "output": {0: "batch"}}, opset_version=17, **kwargs)
    return path


def export_cnn(folder: str, *, dropout: bool = True) -> str:
    """The CNN as ONNX with its BatchNormalization nodes (no folding into the convs) and, with
    ``dropout``, a Dropout(0.25) node before the classifier (a model exported in eval mode has
    none, so it is added to the graph)."""
    path = _export(_randomize(SmallCNN(), 0), torch.randn(2, 3, 16, 16), os.path.join(folder, "cnn.onnx"),
                   {0: "batch"}, do_constant_folding=False)
    if dropout:
        model = onnx.load(path)
        graph = model.graph
        gemm = next(i for i, n in enumerate(graph.node) if n.op_type == "Gemm")
        features = graph.node[gemm].input[0]
        graph.initializer.append(onnx.numpy_helper.from_array(np.array(0.25, dtype=np.float32), "dropout_ratio"))
        graph.node.insert(gemm, oh.make_node("Dropout", [features, "dropout_ratio"], ["dropped"], name="dropout"))
        graph.node[gemm + 1].input[0] = "dropped"
        onnx.checker.check_model(model)
        onnx.save(model, path)
    return path


def export_transformer(folder: str) -> str:
    """A 2-layer transformer encoder on token ids ``[batch, 12]`` (dynamic batch; the TorchScript
    exporter bakes the sequence length of nn.MultiheadAttention into constants)."""
    return _export(_randomize(SmallTransformer(), 1), torch.randint(1, 50, (2, 12)),
                   os.path.join(folder, "transformer.onnx"), {0: "batch"})


def export_lstm(folder: str) -> str:
    """An LSTM classifier on ``[batch, time, 8]`` (both dynamic)."""
    return _export(_randomize(SmallLSTM(), 2), torch.randn(2, 7, 8), os.path.join(folder, "lstm.onnx"),
                   {0: "batch", 1: "time"})


def float_initializer_elements(path: str) -> int:
    """Elements of the float initializers with more than one element (the model's weights)."""
    model = onnx.load(path)
    total = 0
    for tensor in model.graph.initializer:
        count = int(np.prod(tensor.dims)) if tensor.dims else 1
        if tensor.data_type == onnx.TensorProto.FLOAT and count > 1:
            total += count
    return total
