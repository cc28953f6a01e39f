"""Build a corpus of real-world ONNX models offline, convert every one, regenerate model_zoo_results.md.

    python tools/zoo.py [--out model_zoo_results.md] [--work /tmp/onnx2torch_zoo] [--filter NAME]
                        [--manifest OUT.json] [--build-only] [--no-transformers]

The corpus (built once, cached under ``--work``):

- the nine Caffe2-era models shipped inside the onnx package (IR 3, initializers as inputs);
- small networks defined here and ``transformers`` models with random weights from small configs
  (BERT, GPT-2, Llama, T5 encoder, ViT, CLIP vision, Whisper encoder, ResNet, ConvNeXt, ...),
  each exported with both PyTorch exporters: TorchScript (``dynamo=False``, opset 17,
  ``dynamic_axes``) and dynamo (``dynamo=True``, ``dynamic_shapes``), batch and sequence (or
  image size) symbolic;
- onnxruntime's tools applied to some of them: ``quantize_dynamic`` (MatMulInteger, ConvInteger,
  DynamicQuantizeLSTM), ``quantize_static`` in QDQ and QOperator form (QLinearConv, QLinearAdd,
  QGemm, ...), MatMulNBits 4-bit weights, float16 conversion, the transformer optimizer
  (Attention, EmbedLayerNormalization, SkipLayerNormalization, BiasGelu, FastGelu, ...) and the
  session's own offline graph optimizer (FusedConv, FusedMatMul, Gelu, QuickGelu, ...);
- models written with ``onnx.helper``: If on a sample-rate input, Loop, LSTM whose weights come
  from other nodes; a model saved with external data; LSTM/GRU exports;
- Keras applications exported with tf2onnx by ``tools/export_keras.py`` (a separate TensorFlow
  environment) and PaddlePaddle models exported with paddle2onnx by ``tools/export_paddle.py``
  (a separate Paddle environment), picked up from ``WORK/keras/`` and ``WORK/paddle/`` when present.

Each model is converted with the default settings (``ConvertModel(path)``) and compared with
onnxruntime on seeded random inputs (the rules of ``../shared/bench/models.py``: error relative to
the output's scale ≤ 1e-3, float16 models ≤ 1e-2), again at batch 2 where the batch dimension is
symbolic, and at another sequence length / image size where those are symbolic.
``--manifest`` writes the manifest ``models.py`` reads (``MODELS_DIR`` is ``--work``).
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import glob
import io
import json
import logging
import os
import re
import shutil
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, numpy_helper
from onnx import helper as oh
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from onnx2torch import ConvertModel

CAFFE2 = "Caffe2 zoo (onnx package)"
TORCHSCRIPT = "torch.onnx TorchScript exporter"
DYNAMO = "torch.onnx dynamo exporter"
ORT_QUANT = "onnxruntime quantizer"
ORT_FP16 = "onnxruntime float16 converter"
ORT_TRANSFORMERS = "onnxruntime transformer optimizer"
ORT_GRAPH = "onnxruntime graph optimizer"
HELPER = "onnx.helper (hand-built)"
TF2ONNX = "tf2onnx (Keras)"
PADDLE = "paddle2onnx (PaddlePaddle)"


@dataclass
class Entry:
    """One corpus model: how to build it, where it lives, how to feed it."""

    name: str
    source: str
    file: str  # relative to the work dir
    build: Callable[[Path], None] | None = None
    spec: dict = field(default_factory=dict)  # the models.py manifest entry (without "file")
    alt_dims: dict = field(default_factory=dict)  # another size for each non-batch symbolic dim


# --- small networks defined here -----------------------------------------------------------------
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


class SpeechLSTM(nn.Module):
    """Two-layer bidirectional LSTM over features, batch first."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(12, 32)
        self.lstm = nn.LSTM(32, 24, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(48, 6)

    def forward(self, x):
        return self.head(self.lstm(torch.tanh(self.proj(x)))[0])


class TextGRU(nn.Module):
    """Embedding -> GRU -> classifier on the last step."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(200, 24)
        self.gru = nn.GRU(24, 32, batch_first=True)
        self.head = nn.Linear(32, 4)

    def forward(self, ids):
        out, h = self.gru(self.embed(ids))
        return self.head(h[-1]), out


@torch.jit.script
def _scripted_refine(x: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    for _ in range(int(steps)):
        x = torch.tanh(x * 1.5 + 0.1)
    return x


class ScriptedLoop(nn.Module):
    """A data-dependent Python loop that the TorchScript exporter turns into an ONNX Loop."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(8, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, x, steps):
        return self.out(_scripted_refine(self.inp(x), steps))


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial values for what random initialisation leaves at 0/1 (norm scales and shifts,
    biases, BatchNorm statistics), so a converter that dropped them would show."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if param.dim() == 1:
                param.add_(torch.randn(param.shape, generator=gen) * 0.1)
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.uniform_(-0.5, 0.5, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
    return module


def _quiet_export(fn: Callable[[], object]) -> object:
    """Run an exporter with its warnings and chatter out of the way."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return fn()


def torch_export(module: nn.Module, example: tuple, path: Path, input_names: list[str], axes: dict[str, dict[int, str]],
                 dynamo: bool, opset: int = 17, output_names: list[str] | None = None) -> None:
    """Export with the TorchScript exporter (``dynamic_axes``) or the dynamo one (``dynamic_shapes``)."""
    module = module.eval()
    output_names = output_names or ["output"]
    if not dynamo:
        _quiet_export(lambda: torch.onnx.export(
            module, example, str(path), input_names=input_names, output_names=output_names,
            dynamic_axes={k: v for k, v in axes.items() if v}, opset_version=opset, dynamo=False))
        return
    dims: dict[str, torch.export.Dim] = {}

    def dim(label: str) -> torch.export.Dim:
        if label not in dims:
            dims[label] = torch.export.Dim(label, min=1 if label == "batch" else 2, max=4096)
        return dims[label]

    # NOTE: positional, so forward's own argument names need not match the ONNX input names
    shapes = tuple({i: dim(label) for i, label in axes.get(n, {}).items()} or None for n in input_names)
    program = _quiet_export(lambda: torch.onnx.export(
        module, example, input_names=input_names, output_names=output_names, dynamic_shapes=shapes, dynamo=True))
    program.save(str(path))


# --- the hand-written torch models ------------------------------------------------------------------
def _image(size: int, batch: int = 1) -> tuple:
    return (torch.randn(batch, 3, size, size),)


TINY = {
    # name: (factory, example, input names, axes, opset, spec inputs, alt dims)
    "tiny_resnet": (TinyResNet, lambda b: _image(64, b), ["input"], {"input": {0: "batch", 2: "height", 3: "width"}}, 13,
                    {}, {"height": 48, "width": 80}),
    "tiny_mobilenet": (TinyMobileNet, lambda b: _image(32, b), ["input"], {"input": {0: "batch"}}, 17, {}, {}),
    "tiny_unet": (TinyUNet, lambda b: _image(32, b), ["input"], {"input": {0: "batch", 2: "height", 3: "width"}}, 17,
                  {}, {"height": 24, "width": 40}),
    "tiny_transformer": (TinyTransformer, lambda b: (torch.randint(0, 100, (b, 16)),), ["ids"],
                         {"ids": {0: "batch", 1: "seq"}}, 17, {"ids": {"kind": "int", "range": [0, 100]}}, {"seq": 9}),
    "tiny_mlp": (TinyMLP, lambda b: (torch.randn(b, 20),), ["x"], {"x": {0: "batch"}}, 11, {}, {}),
    "speech_lstm": (SpeechLSTM, lambda b: (torch.randn(b, 20, 12),), ["features"], {"features": {0: "batch", 1: "time"}},
                    14, {}, {"time": 7}),
    "text_gru": (TextGRU, lambda b: (torch.randint(0, 200, (b, 12)),), ["ids"], {"ids": {0: "batch", 1: "seq"}}, 14,
                 {"ids": {"kind": "int", "range": [0, 200]}}, {"seq": 5}),
}


def _tiny_builder(name: str, dynamo: bool) -> Callable[[Path], None]:
    factory, example, names, axes, opset, _, _ = TINY[name]

    def build(path: Path) -> None:
        torch.manual_seed(0)
        module = randomize(factory().eval())
        outputs = ["output", "sequence"] if name == "text_gru" else ["output"]
        torch_export(module, example(2 if dynamo else 1), path, names, axes, dynamo, opset, outputs)

    return build


def tiny_entries() -> list[Entry]:
    entries = []
    for name, (_, _, names, axes, opset, inputs, alt) in TINY.items():
        dims = {label: 1 if label == "batch" else None for ax in axes.values() for label in ax.values()}
        spec_dims = _default_dims(dims, alt)
        for dynamo in (False, True):
            if dynamo and name == "tiny_mlp":
                continue
            suffix = "dynamo" if dynamo else "ts"
            entries.append(Entry(f"{name}_{suffix}", DYNAMO if dynamo else TORCHSCRIPT, f"torch/{name}_{suffix}.onnx",
                                 _tiny_builder(name, dynamo), {"dims": spec_dims, "inputs": inputs}, alt))

    def build_scripted(path: Path) -> None:
        torch.manual_seed(0)
        torch_export(ScriptedLoop().eval(), (torch.randn(1, 8), torch.tensor(3)), path, ["x", "steps"],
                     {"x": {0: "batch"}}, dynamo=False, opset=17)

    entries.append(Entry("scripted_loop_ts", TORCHSCRIPT, "torch/scripted_loop_ts.onnx", build_scripted,
                         {"dims": {"batch": 1}, "inputs": {"steps": {"kind": "value", "value": 3, "batched": False}}}))
    return entries


def _default_dims(dims: dict[str, int | None], alt: dict[str, int]) -> dict[str, int]:
    defaults = {"batch": 1, "seq": 16, "time": 20, "height": 64, "width": 64}
    return {k: (v if v is not None else defaults.get(k, 8)) for k, v in dims.items()}


# --- transformers models with random weights ---------------------------------------------------------
TEXT = dict(vocab_size=1000)
BERT_LIKE = dict(TEXT, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                 max_position_embeddings=128)
DECODER = dict(TEXT, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=128, use_cache=False)
VIT = dict(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
           intermediate_size=128, num_channels=3)
CNN4 = dict(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1])

#: name: (model class, config class, config kwargs, input kind, extra)
HF_MODELS: dict[str, tuple[str, str, dict, str, dict]] = {
    "bert": ("BertModel", "BertConfig", BERT_LIKE, "text", {}),
    "distilbert": ("DistilBertModel", "DistilBertConfig",
                   dict(TEXT, dim=64, n_layers=2, n_heads=4, hidden_dim=128, max_position_embeddings=128), "text", {}),
    "roberta": ("RobertaModel", "RobertaConfig", dict(BERT_LIKE, max_position_embeddings=130), "text", {"id_low": 3}),
    "albert": ("AlbertModel", "AlbertConfig", dict(BERT_LIKE, embedding_size=32), "text", {}),
    "electra": ("ElectraModel", "ElectraConfig", dict(BERT_LIKE, embedding_size=32), "text", {}),
    "deberta_v2": ("DebertaV2Model", "DebertaV2Config", dict(BERT_LIKE, relative_attention=True, position_buckets=32,
                                                               max_relative_positions=64, pos_att_type=["p2c", "c2p"]),
                   "text", {}),
    "mpnet": ("MPNetModel", "MPNetConfig", dict(BERT_LIKE, max_position_embeddings=130), "text", {"id_low": 3}),
    "gpt2": ("GPT2Model", "GPT2Config", dict(TEXT, n_embd=64, n_layer=2, n_head=4, n_positions=128, use_cache=False,
                                             bos_token_id=0, eos_token_id=0), "text", {}),
    "gpt_neo": ("GPTNeoModel", "GPTNeoConfig", dict(TEXT, hidden_size=64, num_layers=2, num_heads=4,
                                                    attention_types=[[["global", "local"], 1]], window_size=8,
                                                    max_position_embeddings=128, use_cache=False,
                                                    bos_token_id=0, eos_token_id=0), "text", {}),
    "opt": ("OPTModel", "OPTConfig", dict(TEXT, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                          ffn_dim=128, word_embed_proj_dim=64, max_position_embeddings=128,
                                          use_cache=False, bos_token_id=0, eos_token_id=0, pad_token_id=1),
            "text", {"id_low": 2}),
    "bloom": ("BloomModel", "BloomConfig", dict(TEXT, hidden_size=64, n_layer=2, n_head=4, use_cache=False,
                                                bos_token_id=0, eos_token_id=0), "text", {}),
    "llama": ("LlamaModel", "LlamaConfig", DECODER, "text", {}),
    "mistral": ("MistralModel", "MistralConfig", dict(DECODER, sliding_window=None), "text", {}),
    "qwen2": ("Qwen2Model", "Qwen2Config", DECODER, "text", {}),
    "phi": ("PhiModel", "PhiConfig", dict(DECODER, partial_rotary_factor=0.5), "text", {}),
    "gemma": ("GemmaModel", "GemmaConfig", dict(DECODER, head_dim=16), "text", {}),
    "t5_encoder": ("T5EncoderModel", "T5Config", dict(TEXT, d_model=64, d_ff=128, d_kv=16, num_layers=2, num_heads=4,
                                                     relative_attention_num_buckets=8), "text", {}),
    "vit": ("ViTModel", "ViTConfig", VIT, "image32", {}),
    "deit": ("DeiTModel", "DeiTConfig", VIT, "image32", {}),
    "beit": ("BeitModel", "BeitConfig", dict(VIT, use_relative_position_bias=True), "image32", {}),
    "dinov2": ("Dinov2Model", "Dinov2Config", dict(VIT, image_size=32), "image32", {}),
    "clip_vision": ("CLIPVisionModel", "CLIPVisionConfig", VIT, "image32", {}),
    "siglip_vision": ("SiglipVisionModel", "SiglipVisionConfig", VIT, "image32", {}),
    "swin": ("SwinModel", "SwinConfig", dict(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 4],
                                             window_size=4), "image32", {}),
    "resnet": ("ResNetModel", "ResNetConfig", dict(CNN4, embedding_size=16), "cnn64", {}),
    "convnext": ("ConvNextModel", "ConvNextConfig", CNN4, "cnn64", {}),
    "convnextv2": ("ConvNextV2Model", "ConvNextV2Config", CNN4, "cnn64", {}),
    "regnet": ("RegNetModel", "RegNetConfig", dict(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                                                   groups_width=8), "cnn64", {}),
    "mobilenet_v1": ("MobileNetV1Model", "MobileNetV1Config", dict(depth_multiplier=0.25, image_size=64), "cnn64", {}),
    "mobilenet_v2": ("MobileNetV2Model", "MobileNetV2Config", dict(depth_multiplier=0.35, image_size=64), "cnn64", {}),
    "efficientnet": ("EfficientNetModel", "EfficientNetConfig", dict(width_coefficient=0.25, depth_coefficient=0.25,
                                                                     image_size=64, hidden_dim=320), "cnn64", {}),
    "poolformer": ("PoolFormerModel", "PoolFormerConfig", dict(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1]),
                   "cnn64", {}),
    "segformer": ("SegformerModel", "SegformerConfig", dict(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                                                            num_attention_heads=[1, 2, 4, 8], decoder_hidden_size=64),
                  "cnn64", {}),
    "mobilevit": ("MobileViTModel", "MobileViTConfig", dict(image_size=64, hidden_sizes=[16, 24, 32],
                                                            neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64]), "image64", {}),
    "levit": ("LevitModel", "LevitConfig", dict(image_size=64, hidden_sizes=[32, 48, 64], num_attention_heads=[1, 2, 2],
                                                depths=[1, 1, 1], key_dim=[8, 8, 8]), "image64", {}),
    "whisper_encoder": ("WhisperModel", "WhisperConfig", dict(d_model=64, encoder_layers=2, decoder_layers=1,
                                                              encoder_attention_heads=4, decoder_attention_heads=4,
                                                              encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=16,
                                                              max_source_positions=32, vocab_size=100, pad_token_id=0,
                                                              bos_token_id=0, eos_token_id=0,
                                                              decoder_start_token_id=0), "whisper", {}),
    "wav2vec2": ("Wav2Vec2Model", "Wav2Vec2Config", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                                         intermediate_size=128, conv_dim=(32, 32, 32),
                                                         conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3),
                                                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                                                         do_stable_layer_norm=True, feat_extract_norm="layer"),
                 "audio", {}),
}


class TextModel(nn.Module):
    """``(input_ids, attention_mask) -> last_hidden_state`` of a transformers model."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask)[0]


class BertWithSegments(nn.Module):
    """``(input_ids, attention_mask, token_type_ids) -> last_hidden_state``: the signature the
    onnxruntime transformer optimizer fuses into EmbedLayerNormalization + Attention."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]


class PixelModel(nn.Module):
    """``pixel_values -> last_hidden_state``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model(pixel_values=pixel_values)[0]


class AudioFeatureModel(nn.Module):
    """``input_features -> encoder last_hidden_state`` (Whisper's encoder alone)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.encoder = model.get_encoder()

    def forward(self, input_features):
        return self.encoder(input_features=input_features)[0]


class WaveformModel(nn.Module):
    """``input_values -> last_hidden_state`` from a raw waveform."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_values):
        return self.model(input_values=input_values)[0]


def _hf_model(name: str) -> nn.Module:
    import transformers

    model_cls, config_cls, kwargs, _, _ = HF_MODELS[name]
    config = getattr(transformers, config_cls)(**kwargs)
    torch.manual_seed(0)
    return randomize(getattr(transformers, model_cls)(config).eval())


def _hf_io(name: str, batch: int) -> tuple[nn.Module, tuple, list[str], dict, dict, dict]:
    """(wrapper, example, input names, axes, manifest inputs, alt dims) for a transformers model."""
    kind = HF_MODELS[name][3]
    extra = HF_MODELS[name][4]
    model = _hf_model(name)
    if kind == "text":
        low, vocab = extra.get("id_low", 0), HF_MODELS[name][2].get("vocab_size", 1000)
        example = (torch.randint(low, vocab, (batch, 16)), torch.ones(batch, 16, dtype=torch.long))
        axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}}
        inputs = {"input_ids": {"kind": "int", "range": [low, vocab]}, "attention_mask": {"kind": "value_ones"}}
        return TextModel(model), example, ["input_ids", "attention_mask"], axes, inputs, {"seq": 9}
    if kind.startswith("image"):
        size = int(kind[5:])
        return PixelModel(model), _image(size, batch), ["pixel_values"], {"pixel_values": {0: "batch"}}, {}, {}
    if kind.startswith("cnn"):
        size = int(kind[3:])
        axes = {"pixel_values": {0: "batch", 2: "height", 3: "width"}}
        return PixelModel(model), _image(size, batch), ["pixel_values"], axes, {}, {"height": 96, "width": 96}
    if kind == "whisper":
        example = (torch.randn(batch, 16, 64),)
        return AudioFeatureModel(model), example, ["input_features"], {"input_features": {0: "batch"}}, {}, {}
    if kind == "audio":
        axes = {"input_values": {0: "batch", 1: "samples"}}
        return WaveformModel(model), (torch.randn(batch, 800),), ["input_values"], axes, {}, {"samples": 1200}
    raise ValueError(kind)


def _hf_builder(name: str, dynamo: bool) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        wrapper, example, names, axes, _, _ = _hf_io(name, 2 if dynamo else 1)
        try:
            torch_export(wrapper, example, path, names, axes, dynamo)
        except Exception:
            if not any(len(a) > 1 for a in axes.values()) or name in HF_STATIC_SIZE:
                raise
            # some exports cannot keep every size symbolic: batch alone then
            HF_STATIC_SIZE.add(name)
            torch_export(wrapper, example, path, names, {k: {0: "batch"} for k in axes}, dynamo)

    return build


HF_STATIC_SIZE: set[str] = set()


def hf_entries() -> list[Entry]:
    entries = []
    for name, (_, _, cfg, kind, extra) in HF_MODELS.items():
        if kind == "text":
            low, vocab = extra.get("id_low", 0), cfg.get("vocab_size", 1000)
            inputs = {"input_ids": {"kind": "int", "range": [low, vocab]}, "attention_mask": {"kind": "value_ones"}}
            dims, alt = {"batch": 1, "seq": 16}, {"seq": 9}
        elif kind.startswith("cnn"):
            inputs, dims, alt = {}, {"batch": 1, "height": int(kind[3:]), "width": int(kind[3:])}, {"height": 96, "width": 96}
        elif kind == "audio":
            inputs, dims, alt = {}, {"batch": 1, "samples": 800}, {"samples": 1200}
        else:
            inputs, dims, alt = {}, {"batch": 1}, {}
        for dynamo in (False, True):
            suffix = "dynamo" if dynamo else "ts"
            entries.append(Entry(f"hf_{name}_{suffix}", DYNAMO if dynamo else TORCHSCRIPT, f"hf/{name}_{suffix}.onnx",
                                 _hf_builder(name, dynamo), {"dims": dims, "inputs": inputs}, alt))
    return entries


# --- onnxruntime's tools -----------------------------------------------------------------------------
class RandomReader:
    """A calibration data reader for ``quantize_static``: a few seeded random batches."""

    def __init__(self, model_path: Path, spec: dict, count: int = 4):
        model = onnx.load(str(model_path), load_external_data=False)
        self.feeds = [make_feeds(model, spec, seed=s) for s in range(count)]

    def get_next(self):
        return self.feeds.pop() if self.feeds else None

    def rewind(self):  # pragma: no cover - newer calibrators may call it
        pass


#: op types quantized in the QDQ corpus models: those that carry activations
QDQ_OPS = {"Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Conv", "ConvTranspose", "Div",
           "Erf", "Expand", "Flatten", "Gather", "GatherElements", "Gemm", "GlobalAveragePool", "HardSigmoid",
           "HardSwish", "LayerNormalization", "LeakyRelu", "MatMul", "MaxPool", "Mul", "Pad", "Relu", "Reshape",
           "Sigmoid", "Slice", "Split", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze", "Where"}


def _ort_quant_builder(base: Entry, mode: str) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        from onnxruntime.quantization import (
            QuantFormat,
            QuantType,
            quantize_dynamic,
            quantize_static,
        )

        src = WORK / base.file
        ensure_built(base)
        with _quiet():
            if mode == "dynamic":
                # (contrib ops have no ONNX schema to infer output types from: float is the default)
                quantize_dynamic(str(src), str(path), weight_type=QuantType.QInt8,
                                 extra_options={"DefaultTensorType": TensorProto.FLOAT})
            elif mode == "dynamic_u8":
                quantize_dynamic(str(src), str(path), weight_type=QuantType.QUInt8, per_channel=True)
            elif mode in ("qdq", "qoperator"):
                fmt = QuantFormat.QDQ if mode == "qdq" else QuantFormat.QOperator
                # NOTE: in QDQ form Softmax stays float: onnxruntime's default optimizations turn a
                # DequantizeLinear -> Softmax -> QuantizeLinear group into its lookup-table
                # QLinearSoftmax, one quantization step away from the float softmax the ONNX graph
                # defines (the QOperator form, which writes QLinearSoftmax itself, keeps it).  Only
                # ops that carry activations are quantized (not the comparisons / Range / shape ops
                # of attention-mask arithmetic, which onnxruntime's fusions also compute apart from
                # the graph), and Resize stays float: interpolated 8-bit integers have no
                # ONNX-defined rounding.
                model_ops = {n.op_type for n in onnx.load(str(src), load_external_data=False).graph.node}
                if mode == "qdq":
                    model_ops &= QDQ_OPS
                model_ops.discard("Resize")
                ops = sorted(model_ops)
                quantize_static(str(src), str(path), RandomReader(src, base.spec), quant_format=fmt,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                per_channel=mode == "qdq", op_types_to_quantize=ops)
            elif mode == "nbits":
                from onnxruntime.quantization.matmul_nbits_quantizer import (
                    DefaultWeightOnlyQuantConfig,
                    MatMulNBitsQuantizer,
                )

                model = onnx.load(str(src))
                quantizer = MatMulNBitsQuantizer(model, algo_config=DefaultWeightOnlyQuantConfig(
                    block_size=32, is_symmetric=False, accuracy_level=None))
                quantizer.process()
                quantizer.model.save_model_to_file(str(path), False)
            else:
                raise ValueError(mode)

    return build


def _fp16_builder(base: Entry) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        ensure_built(base)
        with _quiet():
            model = convert_float_to_float16(onnx.load(str(WORK / base.file)), keep_io_types=False)
        onnx.save(model, str(path))

    return build


def _transformers_optimizer_builder(base: Entry, model_type: str, fp16: bool = False) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        from onnxruntime.transformers.optimizer import optimize_model

        ensure_built(base)
        with _quiet():
            optimized = optimize_model(str(WORK / base.file), model_type=model_type, num_heads=4, hidden_size=64)
            if fp16:
                optimized.convert_float_to_float16(keep_io_types=True)
            optimized.save_model_to_file(str(path))

    return build


def _graph_optimizer_builder(base: Entry) -> Callable[[Path], None]:
    """onnxruntime's own extended graph optimizations, saved offline (what ``optimized_model_filepath``
    writes: FusedConv, FusedGemm, FusedMatMul, Gelu, BiasGelu, SkipLayerNormalization, ...)."""

    def build(path: Path) -> None:
        import onnxruntime as ort

        ensure_built(base)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(path)
        options.log_severity_level = 3
        ort.InferenceSession(str(WORK / base.file), options, providers=["CPUExecutionProvider"])

    return build


def _bert_segments_builder(path: Path) -> None:
    """BERT with token_type_ids and eager attention: the pattern the optimizer fuses fully."""
    import transformers

    config = transformers.BertConfig(**BERT_LIKE, attn_implementation="eager")
    torch.manual_seed(0)
    model = randomize(transformers.BertModel(config).eval())
    example = (torch.randint(0, 1000, (1, 16)), torch.ones(1, 16, dtype=torch.long), torch.zeros(1, 16, dtype=torch.long))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    torch_export(BertWithSegments(model), example, path, names, {n: {0: "batch", 1: "seq"} for n in names}, dynamo=False)


def _eager_builder(name: str) -> Callable[[Path], None]:
    """A transformers model with eager attention (the optimizer's Attention patterns), TorchScript."""

    def build(path: Path) -> None:
        import transformers

        model_cls, config_cls, kwargs, _, _ = HF_MODELS[name]
        config = getattr(transformers, config_cls)(**kwargs, attn_implementation="eager")
        torch.manual_seed(0)
        model = randomize(getattr(transformers, model_cls)(config).eval())
        wrapper, example, names, axes, _, _ = _hf_io(name, 1)
        wrapper.model = model
        torch_export(wrapper, example, path, names, axes, dynamo=False)

    return build


def ort_entries(by_name: dict[str, Entry]) -> list[Entry]:
    entries = []
    seg_spec = {"dims": {"batch": 1, "seq": 16},
                "inputs": {"input_ids": {"kind": "int", "range": [0, 1000]}, "attention_mask": {"kind": "value_ones"},
                           "token_type_ids": {"kind": "int", "range": [0, 2]}}}
    bert_seg = Entry("hf_bert_segments_ts", TORCHSCRIPT, "hf/bert_segments_ts.onnx", _bert_segments_builder, seg_spec,
                     {"seq": 9})
    entries.append(bert_seg)
    by_name[bert_seg.name] = bert_seg
    for name in ("vit", "clip_vision", "gpt2", "distilbert"):
        eager = Entry(f"hf_{name}_eager_ts", TORCHSCRIPT, f"hf/{name}_eager_ts.onnx", _eager_builder(name),
                      by_name[f"hf_{name}_ts"].spec, by_name[f"hf_{name}_ts"].alt_dims)
        entries.append(eager)
        by_name[eager.name] = eager

    def derived(name: str, source: str, base: str, build_of: Callable[[Entry], Callable[[Path], None]],
                tol: float | None = None) -> None:
        b = by_name[base]
        spec = json.loads(json.dumps(b.spec))
        if tol is not None:
            spec["tol"] = tol
        entries.append(Entry(name, source, f"ort/{name}.onnx", build_of(b), spec, b.alt_dims))
        by_name[name] = entries[-1]

    # dynamic quantization: DynamicQuantizeLinear + MatMulInteger / ConvInteger / DynamicQuantizeLSTM
    for base in ("hf_bert_ts", "hf_gpt2_ts", "hf_resnet_ts", "tiny_transformer_ts", "speech_lstm_ts", "hf_whisper_encoder_ts"):
        derived(f"{base.removesuffix('_ts')}_qdynamic", ORT_QUANT, base, lambda b: _ort_quant_builder(b, "dynamic"))
    derived("hf_mobilenet_v2_qdynamic_u8", ORT_QUANT, "hf_mobilenet_v2_ts", lambda b: _ort_quant_builder(b, "dynamic_u8"))
    # static quantization with calibration: QDQ pairs, and QOperator's QLinear* contrib ops
    for base in ("hf_resnet_ts", "tiny_mobilenet_ts", "hf_bert_ts", "hf_convnext_ts"):
        derived(f"{base.removesuffix('_ts')}_qdq", ORT_QUANT, base, lambda b: _ort_quant_builder(b, "qdq"))
    for base in ("hf_resnet_ts", "tiny_mobilenet_ts", "hf_efficientnet_ts", "tiny_unet_ts", "tiny_resnet_ts",
                 "hf_mobilenet_v2_ts"):
        derived(f"{base.removesuffix('_ts')}_qoperator", ORT_QUANT, base, lambda b: _ort_quant_builder(b, "qoperator"))
    # 4-bit block-quantized weights
    for base in ("hf_llama_ts", "hf_bert_ts"):
        derived(f"{base.removesuffix('_ts')}_matmul4bits", ORT_QUANT, base, lambda b: _ort_quant_builder(b, "nbits"))
    # float16
    for base in ("hf_bert_ts", "hf_vit_ts", "hf_resnet_ts", "tiny_transformer_ts", "hf_llama_dynamo"):
        derived(f"{base}_fp16", ORT_FP16, base, _fp16_builder, tol=1e-2)
    # the transformer optimizer's fusions
    for base, kind in (("hf_bert_segments_ts", "bert"), ("hf_bert_ts", "bert"), ("hf_bert_dynamo", "bert"),
                       ("hf_distilbert_eager_ts", "bert"), ("hf_gpt2_eager_ts", "gpt2"), ("hf_vit_eager_ts", "vit"),
                       ("hf_clip_vision_eager_ts", "clip"), ("hf_llama_ts", "bert"), ("hf_t5_encoder_ts", "t5"),
                       ("hf_swin_ts", "swin"), ("hf_roberta_ts", "bert")):
        derived(f"{base.removesuffix('_ts')}_ortopt", ORT_TRANSFORMERS, base,
                lambda b, kind=kind: _transformers_optimizer_builder(b, kind))
    # optimized, then dynamically quantized: QAttention, QEmbedLayerNormalization
    for base in ("hf_bert_segments_ortopt", "hf_gpt2_eager_ortopt"):
        derived(f"{base}_qdynamic", ORT_QUANT, base, lambda b: _ort_quant_builder(b, "dynamic"))
    derived("hf_bert_segments_ortopt_fp16", ORT_TRANSFORMERS, "hf_bert_segments_ts",
            lambda b: _transformers_optimizer_builder(b, "bert", fp16=True), tol=1e-2)
    # onnxruntime's own graph optimizer, saved offline
    for base in ("hf_resnet_ts", "hf_mobilenet_v2_ts", "hf_bert_ts", "hf_clip_vision_eager_ts", "tiny_transformer_ts",
                 "hf_convnext_ts", "hf_gpt2_ts", "hf_efficientnet_ts"):
        derived(f"{base.removesuffix('_ts')}_ortgraph", ORT_GRAPH, base, _graph_optimizer_builder)
    return entries


# --- models written with onnx.helper -------------------------------------------------------------------
def _save(model: onnx.ModelProto, path: Path) -> None:
    model.ir_version = 8  # what onnxruntime of every supported version reads
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def _f32(*shape: int, seed: int = 0, scale: float = 0.3) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def build_if_sample_rate(path: Path) -> None:
    """Silero-VAD style: the branch taken depends on a scalar sample-rate input; both branches
    read outer-scope tensors, one of them runs a strided Conv over the waveform."""
    w16 = numpy_helper.from_array(_f32(4, 1, 8, seed=1), "w16")
    w8 = numpy_helper.from_array(_f32(4, 1, 4, seed=2), "w8")
    then_g = oh.make_graph([oh.make_node("Conv", ["wave3", "w16"], ["c16"], strides=[4]),
                            oh.make_node("ReduceMean", ["c16"], ["feat_then"], axes=[2], keepdims=0)],
                           "sr16k", [], [oh.make_tensor_value_info("feat_then", TensorProto.FLOAT, ["batch", 4])])
    else_g = oh.make_graph([oh.make_node("Conv", ["wave3", "w8"], ["c8"], strides=[2]),
                            oh.make_node("ReduceMax", ["c8"], ["feat_else"], axes=[2], keepdims=0)],
                           "sr8k", [], [oh.make_tensor_value_info("feat_else", TensorProto.FLOAT, ["batch", 4])])
    nodes = [
        oh.make_node("Unsqueeze", ["wave", "one"], ["wave3"]),
        oh.make_node("Equal", ["sr", "sr16k"], ["is16k"]),
        oh.make_node("If", ["is16k"], ["feat"], then_branch=then_g, else_branch=else_g),
        oh.make_node("Sigmoid", ["feat"], ["prob"]),
    ]
    graph = oh.make_graph(nodes, "if_sample_rate",
                          [oh.make_tensor_value_info("wave", TensorProto.FLOAT, ["batch", "samples"]),
                           oh.make_tensor_value_info("sr", TensorProto.INT64, [])],
                          [oh.make_tensor_value_info("prob", TensorProto.FLOAT, ["batch", 4])],
                          [w16, w8, numpy_helper.from_array(np.array([1], np.int64), "one"),
                           numpy_helper.from_array(np.array(16000, np.int64), "sr16k")])
    _save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)]), path)


def build_loop_refine(path: Path) -> None:
    """A Loop with a trip count from an input, a loop-carried state, a scan output and an
    outer-scope weight."""
    w = numpy_helper.from_array(_f32(6, 6, seed=3), "w")
    body = oh.make_graph(
        [oh.make_node("MatMul", ["h_in", "w"], ["hw"]), oh.make_node("Tanh", ["hw"], ["h_out"]),
         oh.make_node("Identity", ["cond_in"], ["cond_out"]),
         oh.make_node("ReduceSum", ["h_out"], ["step_sum"], keepdims=0)],
        "body",
        [oh.make_tensor_value_info("iter", TensorProto.INT64, []), oh.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         oh.make_tensor_value_info("h_in", TensorProto.FLOAT, ["batch", 6])],
        [oh.make_tensor_value_info("cond_out", TensorProto.BOOL, []), oh.make_tensor_value_info("h_out", TensorProto.FLOAT, ["batch", 6]),
         oh.make_tensor_value_info("step_sum", TensorProto.FLOAT, [])])
    nodes = [oh.make_node("Loop", ["steps", "true", "x"], ["h", "sums"], body=body)]
    graph = oh.make_graph(nodes, "loop_refine",
                          [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6]),
                           oh.make_tensor_value_info("steps", TensorProto.INT64, [])],
                          [oh.make_tensor_value_info("h", TensorProto.FLOAT, ["batch", 6]),
                           oh.make_tensor_value_info("sums", TensorProto.FLOAT, ["steps_out"])],
                          [w, numpy_helper.from_array(np.array(True), "true")])
    _save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 16)]), path)


def build_lstm_computed_weights(path: Path) -> None:
    """An LSTM whose W, R and B are computed by other nodes (Paddle / Keras exports do this):
    per-gate Constant blocks concatenated, a transposed recurrence matrix, a summed bias."""
    hidden, feat = 8, 5
    gates_w = [oh.make_node("Constant", [], [f"w_{g}"], value=numpy_helper.from_array(_f32(1, hidden, feat, seed=10 + i)))
               for i, g in enumerate("iofc")]
    r_t = oh.make_node("Constant", [], ["r_t"], value=numpy_helper.from_array(_f32(1, hidden, 4 * hidden, seed=20)))
    b_parts = [oh.make_node("Constant", [], [f"b_{k}"], value=numpy_helper.from_array(_f32(1, 4 * hidden, seed=30 + i)))
               for i, k in enumerate("wr")]
    nodes = gates_w + [r_t] + b_parts + [
        oh.make_node("Concat", [f"w_{g}" for g in "iofc"], ["W"], axis=1),
        oh.make_node("Transpose", ["r_t"], ["R"], perm=[0, 2, 1]),
        oh.make_node("Concat", ["b_w", "b_r"], ["B"], axis=1),
        oh.make_node("LSTM", ["x", "W", "R", "B"], ["y", "y_h", "y_c"], hidden_size=hidden),
        oh.make_node("Squeeze", ["y", "axes1"], ["y3"]),
    ]
    graph = oh.make_graph(nodes, "lstm_computed_weights",
                          [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["time", "batch", feat])],
                          [oh.make_tensor_value_info("y3", TensorProto.FLOAT, ["time", "batch", hidden]),
                           oh.make_tensor_value_info("y_c", TensorProto.FLOAT, [1, "batch", hidden])],
                          [numpy_helper.from_array(np.array([1], np.int64), "axes1")])
    _save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 14)]), path)


def build_external_data(path: Path) -> None:
    """A GPT-2 shaped model of about 100 MB whose weights live in a separate file."""
    import transformers

    config = transformers.GPT2Config(vocab_size=8000, n_embd=384, n_layer=6, n_head=6, n_positions=128, use_cache=False,
                                     bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    model = randomize(transformers.GPT2Model(config).eval())
    tmp = path.with_suffix(".tmp.onnx")
    example = (torch.randint(0, 8000, (1, 16)), torch.ones(1, 16, dtype=torch.long))
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}}
    torch_export(TextModel(model), example, tmp, ["input_ids", "attention_mask"], axes, dynamo=False)
    loaded = onnx.load(str(tmp))
    tmp.unlink()
    onnx.save(loaded, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location=path.name + ".data", size_threshold=1024)


def helper_entries() -> list[Entry]:
    return [
        Entry("if_sample_rate_16k", HELPER, "helper/if_sample_rate.onnx", build_if_sample_rate,
              {"dims": {"batch": 1, "samples": 512}, "inputs": {"sr": {"kind": "value", "value": 16000, "batched": False}}},
              {"samples": 300}),
        Entry("if_sample_rate_8k", HELPER, "helper/if_sample_rate.onnx", build_if_sample_rate,
              {"dims": {"batch": 1, "samples": 256}, "inputs": {"sr": {"kind": "value", "value": 8000, "batched": False}}},
              {"samples": 100}),
        Entry("loop_refine", HELPER, "helper/loop_refine.onnx", build_loop_refine,
              {"dims": {"batch": 1}, "inputs": {"steps": {"kind": "value", "value": 4, "batched": False}}}),
        Entry("lstm_computed_weights", HELPER, "helper/lstm_computed_weights.onnx", build_lstm_computed_weights,
              {"dims": {"batch": 1, "time": 7}, "batch_axis0": False}, {"time": 3}),
        Entry("gpt2_external_data", TORCHSCRIPT, "external/gpt2_external_data.onnx", build_external_data,
              {"dims": {"batch": 1, "seq": 16},
               "inputs": {"input_ids": {"kind": "int", "range": [0, 8000]}, "attention_mask": {"kind": "value_ones"}}},
              {"seq": 9}),
    ]


# --- pre-exported and shipped models ---------------------------------------------------------------------
def caffe2_entries() -> list[Entry]:
    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    entries = []
    for p in sorted(glob.glob(str(light / "*.onnx"))):
        name = Path(p).stem.replace("light_", "")

        def build(path: Path, src: str = p) -> None:
            shutil.copyfile(src, path)

        entries.append(Entry(f"caffe2_{name}", CAFFE2, f"caffe2/{name}.onnx", build, {}))
    return entries


def pre_exported_entries(work: Path, folder: str, source: str, vocabulary: int) -> list[Entry]:
    """Models another environment exported into ``WORK/<folder>/`` (tools/export_keras.py,
    tools/export_paddle.py): symbolic dims get sizes, integer inputs are token ids."""
    entries = []
    for p in sorted((work / folder).glob("*.onnx")):
        model = onnx.load(str(p), load_external_data=False)
        spec: dict = {"dims": {}, "inputs": {}}
        alt: dict = {}
        for v in model.graph.input:
            for i, d in enumerate(v.type.tensor_type.shape.dim):
                if d.dim_param:
                    spec["dims"][d.dim_param] = 1 if i == 0 else 10
                    if i:
                        alt[d.dim_param] = 6
                elif not d.HasField("dim_value") or d.dim_value <= 0:
                    # an unnamed dynamic dim: give the input an explicit shape
                    spec["inputs"].setdefault(v.name, {})["shape"] = [
                        x.dim_value if x.HasField("dim_value") and x.dim_value > 0 else (1 if j == 0 else 10)
                        for j, x in enumerate(v.type.tensor_type.shape.dim)]
            if v.type.tensor_type.elem_type in (TensorProto.INT32, TensorProto.INT64):
                spec["inputs"].setdefault(v.name, {}).update(kind="int", range=[0, vocabulary])
        entries.append(Entry(p.stem, source, f"{folder}/{p.name}", None, spec, alt))
    return entries


# --- building ----------------------------------------------------------------------------------------------
WORK = Path("/tmp/onnx2torch_zoo")
_FAILED_BUILDS: dict[str, str] = {}
#: Under WORK: why each model that could not be built failed, so that ``--no-build`` still lists them.
_FAILURES_FILE = "build_failures.json"


def _remember_failures() -> None:
    (WORK / _FAILURES_FILE).write_text(json.dumps(_FAILED_BUILDS, indent=1, sort_keys=True))


def _recall_failures() -> None:
    try:
        recorded = json.loads((WORK / _FAILURES_FILE).read_text())
    except (OSError, ValueError):
        return
    _FAILED_BUILDS.update({file: why for file, why in recorded.items() if not (WORK / file).exists()})


@contextlib.contextmanager
def _quiet():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime's quantizer logs a warning per tensor it skips
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def ensure_built(entry: Entry) -> bool:
    path = WORK / entry.file
    if path.exists():
        return True
    if entry.file in _FAILED_BUILDS or entry.build is None:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        entry.build(path)
    except Exception as exc:  # noqa: BLE001 - an exporter that cannot export is reported, not fatal
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()  # exporters colour their messages
        _FAILED_BUILDS[entry.file] = f"{type(exc).__name__}: {text.splitlines()[0][:160] if text else ''}"
        for leftover in (path, Path(str(path) + ".data")):
            leftover.unlink(missing_ok=True)
        print(f"  build of {entry.name} failed: {_FAILED_BUILDS[entry.file]}", flush=True)
        if os.environ.get("ZOO_TRACE"):
            traceback.print_exc()
        _remember_failures()
        return False
    print(f"  built {entry.name} in {time.perf_counter() - start:.1f}s", flush=True)
    return True


def corpus(work: Path, with_transformers: bool = True) -> list[Entry]:
    entries = caffe2_entries() + tiny_entries() + helper_entries()
    if with_transformers:
        entries += hf_entries()
        by_name = {e.name: e for e in entries}
        entries += ort_entries(by_name)
    entries += pre_exported_entries(work, "keras", TF2ONNX, 500)
    entries += pre_exported_entries(work, "paddle", PADDLE, 300)
    return entries


# --- evaluation (the rules of ../shared/bench/models.py) -------------------------------------------------------
def make_feeds(model: onnx.ModelProto, spec: dict, batch: int | None = None, seed: int = 0,
               dims_override: dict | None = None) -> dict[str, np.ndarray]:
    """Seeded inputs from a manifest entry, generated exactly as ``models.py`` does."""
    rng = np.random.default_rng(seed)
    inits = {i.name for i in model.graph.initializer}
    dims = dict(spec.get("dims", {}), **(dims_override or {}))
    feeds = {}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        s = spec.get("inputs", {}).get(inp.name, {})
        tt = inp.type.tensor_type
        dtype = oh.tensor_dtype_to_np_dtype(tt.elem_type)
        if "shape" in s:
            shape = list(s["shape"])
        else:
            shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else dims.get(d.dim_param, 1)
                     for d in tt.shape.dim]
        if batch is not None and s.get("batched", True) and shape and spec.get("batch_axis0", True):
            shape[0] = batch
        kind = s.get("kind", "randn")
        if kind == "value":
            a = np.array(s["value"], dtype=dtype).reshape(shape)
        elif kind == "value_ones":
            a = np.ones(shape, dtype=dtype)
        elif kind == "zeros":
            a = np.zeros(shape, dtype=dtype)
        elif kind == "uniform":
            lo, hi = s.get("range", [0, 1])
            a = rng.uniform(lo, hi, size=shape).astype(dtype)
        elif kind == "int":
            lo, hi = s.get("range", [0, 100])
            a = rng.integers(lo, hi, size=shape).astype(dtype)
        else:
            a = rng.standard_normal(size=shape).astype(dtype)
        feeds[inp.name] = a
    return feeds


def _errors(ref: list[np.ndarray], got: list[np.ndarray]) -> tuple[dict | None, str]:
    worst = {"max_abs": 0.0, "rel": 0.0, "mse": 0.0}
    if len(got) < len(ref):
        return None, f"{len(got)} outputs, expected {len(ref)}"
    for r, g in zip(ref, got):
        if r.shape != g.shape and r.size != g.size:
            return None, f"shape {g.shape} != {r.shape}"
        r64, g64 = r.astype(np.float64).ravel(), g.astype(np.float64).ravel()
        if r64.size == 0:
            continue
        d = np.abs(r64 - g64)
        ma = float(np.nanmax(d))
        if np.isnan(g64).sum() != np.isnan(r64).sum():
            ma = float("inf")
        scale = float(np.nanmax(np.abs(r64))) or 1.0
        worst["max_abs"] = max(worst["max_abs"], ma)
        worst["rel"] = max(worst["rel"], ma / scale)
        worst["mse"] = max(worst["mse"], float(np.nanmean(d ** 2)))
    return worst, ""


def _flat(outs) -> list[np.ndarray]:
    if isinstance(outs, (tuple, list)):
        return [a for o in outs for a in _flat(o)]
    if isinstance(outs, torch.Tensor):
        return [outs.detach().numpy()]
    return [np.asarray(outs)]


def _median_ms(fn: Callable[[], object], reps: int = 5) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1000


def evaluate(entry: Entry, threads: int) -> dict:
    import onnxruntime as ort

    path = WORK / entry.file
    row = {"model": entry.name, "source": entry.source, "opset": "", "status": "FAIL", "mse": "", "max_abs": "",
           "rel": "", "batch2": "n/a", "other_size": "n/a", "convert_s": "", "torch_ms": "", "ort_ms": ""}
    model = onnx.load(str(path), load_external_data=False)
    row["opset"] = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), "")
    tol = entry.spec.get("tol", 1e-3)
    try:
        start = time.perf_counter()
        module = ConvertModel(str(path)).eval()
        row["convert_s"] = f"{time.perf_counter() - start:.2f}"
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = getattr(module, "onnx_input_names", None)

        def run_both(feeds: dict[str, np.ndarray]):
            ref = session.run(None, feeds)
            args = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in (names or feeds)]
            with torch.inference_mode():
                got = _flat(module(*args))
            return ref, got, args

        feeds = make_feeds(model, entry.spec)
        ref, got, args = run_both(feeds)
        err, why = _errors(ref, got)
        if err is None:
            row["status"] = f"MISMATCH: {why}"
            return row
        row.update(mse=f"{err['mse']:.1e}", max_abs=f"{err['max_abs']:.1e}", rel=f"{err['rel']:.1e}")
        row["status"] = "ok" if err["rel"] <= tol else "MISMATCH"

        def torch_run():
            with torch.inference_mode():
                module(*args)

        row["torch_ms"] = f"{_median_ms(torch_run):.2f}"
        row["ort_ms"] = f"{_median_ms(lambda: session.run(None, feeds)):.2f}"
        inits = {i.name for i in model.graph.initializer}
        first = next(v for v in model.graph.input if v.name not in inits)
        dims = first.type.tensor_type.shape.dim
        def rerun(feeds2: dict[str, np.ndarray]) -> str:
            try:
                ref2 = session.run(None, feeds2)
            except Exception:  # noqa: BLE001 - onnxruntime itself cannot run this size
                return "ort-fail"
            try:
                _, got2, _ = run_both(feeds2)
            except Exception as exc:  # noqa: BLE001
                return f"FAIL {type(exc).__name__}: {str(exc).strip().splitlines()[0][:80]}"
            e2, why2 = _errors(ref2, got2)
            if e2 and e2["rel"] <= tol:
                return "ok"
            return f"MISMATCH {why2}" if e2 is None else f"MISMATCH rel {e2['rel']:.1e}"

        if entry.spec.get("batch2", True) and dims and not dims[0].HasField("dim_value"):
            row["batch2"] = rerun(make_feeds(model, entry.spec, batch=2))
        if entry.alt_dims:
            label = ",".join(f"{k}={v}" for k, v in entry.alt_dims.items())
            row["other_size"] = f"{rerun(make_feeds(model, entry.spec, dims_override=entry.alt_dims))} ({label})"
    except Exception as exc:  # noqa: BLE001 - the table records every failure
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        row["status"] = f"FAIL: {type(exc).__name__}: {text}"
        if os.environ.get("ZOO_TRACE"):
            traceback.print_exc()
    return row


def write_manifest(entries: list[Entry], out: Path) -> None:
    manifest = {}
    for e in entries:
        if (WORK / e.file).exists():
            manifest[e.name] = {"file": e.file, **e.spec}
    out.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {out} ({len(manifest)} models; MODELS_DIR is {WORK})")


def write_results(rows: list[dict], entries: list[Entry], out: Path, threads: int) -> None:
    import onnxruntime

    passed = [r for r in rows if r["status"] == "ok" and not r["batch2"].startswith(("MISMATCH", "FAIL"))
              and not r["other_size"].startswith(("MISMATCH", "FAIL"))]
    sources = sorted({r["source"] for r in rows})
    lines = [
        "# Model zoo results",
        "",
        "Generated by `python tools/zoo.py` (do not edit by hand); it builds the corpus offline under",
        "`/tmp/onnx2torch_zoo` (Keras and Paddle models come from `tools/export_keras.py` and",
        "`tools/export_paddle.py`, run in their own environments).",
        "Each model is converted with the default settings (`ConvertModel(path)`, simplification on) and",
        "compared with onnxruntime on seeded random inputs. `rel` is the max abs error divided by the",
        "largest magnitude of the output (pass: ≤ 1e-3; float16 models ≤ 1e-2), as `../shared/bench/models.py`",
        "measures it. `batch 2` reruns at batch 2 where the batch dimension is symbolic; `other size` reruns",
        "at another sequence length / image size / sample count where those are symbolic. Latency is the",
        f"median of 5 runs at batch 1 with {threads} threads for both (converted model in `torch.inference_mode`),",
        (f"on a shared 2-core machine. torch {torch.__version__}, onnx {onnx.__version__}, "
         f"onnxruntime {onnxruntime.__version__}."),
        "",
        (f"**{len(passed)} / {len(rows)} models from {len(sources)} sources convert and match** "
         f"(at batch 1, batch 2 and other sizes where they apply)."),
        "",
        "| source | models | pass |",
        "|---|---|---|",
    ]
    for s in sources:
        lines.append(f"| {s} | {sum(r['source'] == s for r in rows)} | {sum(r['source'] == s for r in passed)} |")
    lines += [
        "",
        "| model | source | opset | status | MSE | max abs error | rel | batch 2 | other size | conversion (s) | torch ms | ort ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['source']} | {r['opset']} | {r['status']} | {r['mse']} | {r['max_abs']} | "
                     f"{r['rel']} | {r['batch2']} | {r['other_size']} | {r['convert_s']} | {r['torch_ms']} | {r['ort_ms']} |")
    failed = {e.name: _FAILED_BUILDS[e.file] for e in entries if e.file in _FAILED_BUILDS}
    if failed:
        lines += ["", "Models the exporter or tool itself could not produce (not counted above):", ""]
        lines += [f"- {name}: {why}" for name, why in failed.items()]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


def main() -> int:
    global WORK
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "model_zoo_results.md"))
    parser.add_argument("--work", default="/tmp/onnx2torch_zoo")
    parser.add_argument("--filter", default="", help="only models whose name contains this (comma-separated: any)")
    parser.add_argument("--manifest", default="", help="write a ../shared/bench/models.py manifest here")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--no-build", action="store_true", help="evaluate only the models already built")
    parser.add_argument("--no-transformers", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads for the latency columns")
    args = parser.parse_args()
    WORK = Path(args.work)
    WORK.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    with_hf = not args.no_transformers
    if with_hf:
        try:
            import transformers  # noqa: F401
        except ImportError:
            print("transformers is not installed: its models are left out")
            with_hf = False
    filters = [f for f in args.filter.split(",") if f]
    entries = [e for e in corpus(WORK, with_hf) if not filters or any(f in e.name for f in filters)]
    if args.no_build:
        _recall_failures()
    for entry in entries:
        if not args.no_build:
            ensure_built(entry)
    built = [e for e in entries if (WORK / e.file).exists()]
    if args.manifest:
        write_manifest(built, Path(args.manifest))
    if args.build_only:
        return 0
    rows = []
    for entry in built:
        row = evaluate(entry, args.threads)
        rows.append(row)
        print(f"{row['model']:<34} {row['status'][:60]:<14} rel={row['rel']:<8} b2={row['batch2'][:20]:<6} "
              f"other={row['other_size'][:24]:<8} conv={row['convert_s']}s torch={row['torch_ms']}ms ort={row['ort_ms']}ms",
              flush=True)
        gc.collect()
    if not args.filter:
        write_results(rows, entries, Path(args.out), args.threads)
    bad = [r for r in rows if r["status"] != "ok"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
