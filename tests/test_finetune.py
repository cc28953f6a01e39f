"""Converted models are trainable PyTorch models: every float weight is an nn.Parameter,
BatchNorm updates its running statistics in train(), Dropout follows train()/eval(), casts follow
.half() / .bfloat16(), and nothing in forward is tied to the CPU."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import onnx2torch
from onnx2torch.verify import run_onnxruntime
from tests.torch_models import SmallCNN, SmallLSTM, SmallTransformer, export_cnn, export_lstm, export_transformer


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, str]:
    folder = str(tmp_path_factory.mktemp("finetune_models"))
    return {"cnn": export_cnn(folder), "transformer": export_transformer(folder), "lstm": export_lstm(folder)}


def _example(name: str, batch: int = 4) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    if name == "cnn":
        return torch.randn(batch, 3, 16, 16, generator=generator)
    if name == "transformer":
        return torch.randint(1, 50, (batch, 12), generator=generator)
    return torch.randn(batch, 5, 8, generator=generator)


def _train(optimizer: torch.optim.Optimizer, loss_fn, steps: int) -> list[float]:
    """``steps`` optimizer steps on ``loss_fn()``; the loss before each step."""
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name, original", [("cnn", SmallCNN), ("transformer", SmallTransformer), ("lstm", SmallLSTM)])
def test_every_float_weight_is_a_parameter(paths, name, original):
    model = onnx2torch.ConvertModel(paths[name])
    expected_count = sum(p.numel() for p in original().parameters())
    if name == "transformer":
        # NOTE: the sequence length is static (12), so position[:, :12] is folded at conversion:
        # the 4 rows of the 16-row table the graph never reads are not part of the model.
        expected_count -= 4 * 32
    assert sum(p.numel() for p in model.parameters()) == expected_count
    assert all(p.requires_grad for p in model.parameters())
    kinds = {type(m) for m in model.modules()}
    expected = {"cnn": {nn.Conv2d, nn.BatchNorm2d, nn.PReLU, nn.Dropout, nn.Linear},
                "transformer": {nn.Linear, nn.LayerNorm}, "lstm": {nn.LSTM, nn.Linear}}[name]
    assert expected <= kinds
    if name == "transformer":  # the Gather on the embedding table is an nn.Embedding
        assert any(isinstance(m, nn.Embedding) for m in model.modules())
    float_buffers = [n for n, b in model.named_buffers() if b.is_floating_point() and b.numel() > 1]
    assert all(n.endswith(("running_mean", "running_var")) for n in float_buffers), float_buffers


def test_batchnorm_cnn_fine_tunes(paths, tmp_path):
    model = onnx2torch.ConvertModel(paths["cnn"])
    assert not model.training  # converted models start in eval mode, like the ONNX graph
    bn = model.bn1_BatchNormalization
    running_mean, running_var = bn.running_mean.clone(), bn.running_var.clone()
    x = _example("cnn", 16)
    target = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    model.train()
    losses = _train(optimizer, lambda: F.cross_entropy(model(x), target), steps=30)
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert int(bn.num_batches_tracked) == 30
    assert not torch.allclose(bn.running_mean, running_mean) and not torch.allclose(bn.running_var, running_var)
    # the fine-tuned weights are what the standalone code saves
    model.eval()
    code, _ = onnx2torch.export_code(model, tmp_path / "tuned.py", example_inputs=(x,))
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("tuned_cnn", code)
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    torch.testing.assert_close(generated.load_model()(x), model(x), rtol=0, atol=0)


def test_dropout_follows_train_and_eval(paths):
    model = onnx2torch.ConvertModel(paths["cnn"])
    x = _example("cnn")
    with torch.no_grad():
        first, second = model(x), model(x)
        expected = run_onnxruntime(onnx.load(paths["cnn"]), {"input": x.numpy()})[0]
        np.testing.assert_allclose(first.numpy(), expected, rtol=1e-4, atol=1e-5)
        assert torch.equal(first, second)
        model.train()
        model.bn1_BatchNormalization.eval()
        model.bn2_BatchNormalization.eval()
        assert not torch.equal(model(x), model(x))  # only Dropout is random
        model.eval()
        assert torch.equal(model(x), first)


def test_transformer_fine_tunes_embeddings_and_attention(paths):
    model = onnx2torch.ConvertModel(paths["transformer"]).train()
    ids = _example("transformer", 8)
    target = torch.randn(8, 5, generator=torch.Generator().manual_seed(1))
    embedding = next(m for m in model.modules() if isinstance(m, nn.Embedding))
    before = embedding.weight.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = _train(optimizer, lambda: F.mse_loss(model(ids), target), steps=10)
    assert losses[-1] < losses[0], losses
    assert not torch.equal(embedding.weight, before)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["cnn", "transformer", "lstm"])
def test_half_precision_follows_the_module(paths, name, dtype):
    model = onnx2torch.ConvertModel(paths[name])
    x = _example(name)
    with torch.no_grad():
        reference = model(x)
        low = model.to(dtype)
        out = low(x.to(dtype) if x.is_floating_point() else x)
    assert out.dtype == dtype  # no Cast in the graph forces float32 back
    tolerance = 5e-2 if dtype == torch.bfloat16 else 1e-2
    torch.testing.assert_close(out.float(), reference, rtol=tolerance, atol=tolerance)


def test_transformer_casts_follow_the_model_dtype(paths):
    model = onnx2torch.ConvertModel(paths["transformer"])
    assert "to_model_float" in model.code  # the exporter's Cast(to=FLOAT) of the padding mask
    assert model.float_dtype_reference.dtype == torch.float32
    assert model.half().float_dtype_reference.dtype == torch.float16


@pytest.mark.parametrize("name", ["cnn", "transformer", "lstm"])
def test_forward_creates_no_tensor_on_a_fixed_device(paths, name):
    """On the meta device, any tensor forward made on the CPU would fail to combine (a stand-in
    for CUDA on machines without a GPU; with one, the CUDA run is compared too)."""
    model = onnx2torch.ConvertModel(paths[name])
    x = _example(name)
    out = model.to("meta")(x.to("meta"))
    assert out.device.type == "meta"
    if torch.cuda.is_available():
        model = onnx2torch.ConvertModel(paths[name])
        with torch.no_grad():
            torch.testing.assert_close(model.to("cuda")(x.to("cuda")).cpu(), model.cpu()(x), rtol=1e-3, atol=1e-4)
