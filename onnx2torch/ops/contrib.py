"""Converters: onnxruntime's com.microsoft contrib operators, as its tools emit them.

onnxruntime's transformer optimizer writes Attention, MultiHeadAttention, EmbedLayerNormalization,
SkipLayerNormalization, SkipSimplifiedLayerNormalization, SimplifiedLayerNormalization (in the
default domain), BiasGelu, FastGelu, Gelu, QuickGelu, BiasAdd and RotaryEmbedding; its graph
optimizer saves FusedConv, FusedGemm and FusedMatMul; its quantizer writes DynamicQuantizeLSTM,
DynamicQuantizeMatMul, MatMulIntegerToFloat, MatMulNBits, QGemm, the QLinear* element-wise and
pooling operators and com.microsoft Quantize/DequantizeLinear.  The semantics follow the
operators' schemas in onnxruntime (``ContribOperators.md``) and, where the schema leaves a choice
open (mask values, rounding order of requantization), what onnxruntime's CPU kernels compute,
checked against them in ``tests/ops/test_contrib.py``.

Float16 / bfloat16 inputs are computed in float32 and rounded once at the end, as onnxruntime's
CPU kernels do.  Weights that are constant become parameters of native layers (``nn.Linear``,
``nn.Conv2d``); 4-bit MatMulNBits weights are unpacked into an ``nn.Linear`` at conversion time.
"""
from __future__ import annotations

import logging
import math

import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.ops.activation import short_float
from onnx2torch.ops.quantize import onnx_dynamic_quantize_linear
from onnx2torch.registry import Lowered, converter

__all__ = [
    "ContribAttention",
    "ContribQAttention",
    "ContribMultiHeadAttention",
    "ContribRotaryEmbedding",
    "EmbedLayerNorm",
    "EmbedOutputs",
    "FusedActivation",
    "HardSigmoidAB",
    "QLinearPool",
    "QuantizedLSTM",
    "QuantizedLSTMOutputs",
    "SkipNormWithSum",
    "attention",
    "bias_add",
    "bias_add_fn",
    "bias_gelu",
    "bias_gelu_fn",
    "dequantize_linear_ms",
    "dynamic_quantize_lstm",
    "dynamic_quantize_matmul",
    "dynamic_quantize_matmul_fn",
    "embed_layer_norm_fn",
    "embed_layer_normalization",
    "fast_gelu",
    "fast_gelu_fn",
    "fused_conv",
    "fused_gemm",
    "fused_matmul",
    "fused_matmul_fn",
    "gelu",
    "gelu_fn",
    "matmul_integer_to_float",
    "matmul_integer_to_float_fn",
    "matmul_nbits",
    "multi_head_attention",
    "qattention",
    "qembed_layer_normalization",
    "qgemm",
    "qgemm_fn",
    "qlinear_add",
    "qlinear_add_fn",
    "qlinear_average_pool",
    "qlinear_concat",
    "qlinear_concat_fn",
    "qlinear_global_average_pool",
    "qlinear_global_average_pool_fn",
    "qlinear_leaky_relu",
    "qlinear_leaky_relu_fn",
    "qlinear_mul",
    "qlinear_mul_fn",
    "qlinear_sigmoid",
    "qlinear_sigmoid_fn",
    "qlinear_softmax",
    "qlinear_softmax_fn",
    "quantize_linear_ms",
    "quick_gelu",
    "quick_gelu_fn",
    "rotary_embedding",
    "simplified_layer_norm_fn",
    "simplified_layer_normalization",
    "skip_layer_norm_fn",
    "skip_layer_normalization",
    "skip_simplified_layer_norm_fn",
    "skip_simplified_layer_normalization",
    "unpack_nbits",
]

logger = logging.getLogger(__name__)

MS = "com.microsoft"
_HALF = (torch.float16, torch.bfloat16)


def _wide(x: torch.Tensor) -> torch.Tensor:
    """float16 / bfloat16 computed in float32 (onnxruntime's CPU kernels do); others as they are."""
    return x.float() if x.dtype in _HALF else x


def _standard_node(node: OnnxNode, op_type: str, opset: int, drop: tuple[str, ...] = (),
                   inputs: list[str] | None = None) -> OnnxNode:
    """The node re-read as the standard ONNX operator it extends (FusedConv -> Conv ...), so the
    standard converter, with the schema's defaults, does the common part."""
    proto = onnx.NodeProto()
    proto.CopyFrom(node.proto)
    proto.op_type = op_type
    proto.domain = ""
    if inputs is not None:
        del proto.input[:]
        proto.input.extend(inputs)
    kept = [a for a in proto.attribute if a.name not in drop]
    del proto.attribute[:]
    proto.attribute.extend(kept)
    standard = OnnxNode(proto, opset, name=node.name)
    while standard.outputs and not standard.outputs[-1]:
        standard.outputs.pop()
    return standard


def _unused_outputs(node: OnnxNode, indices: tuple[int, ...], what: str) -> None:
    """Refuse optional outputs that are asked for but not computed (training statistics)."""
    for i in indices:
        if i < len(node.outputs) and node.outputs[i]:
            raise node.unsupported(f"output {i} ({what})", node.outputs[i], "leaving it unused (it is training-only)")


# --- Gelu family and BiasAdd --------------------------------------------------------------------
def gelu_fn(x: torch.Tensor) -> torch.Tensor:
    """0.5 * x * (1 + erf(x / sqrt(2))) computed in float32 for half inputs."""
    return F.gelu(_wide(x)).to(x.dtype)


def bias_gelu_fn(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Gelu(x + bias)."""
    return F.gelu(_wide(x) + _wide(bias)).to(x.dtype)


def fast_gelu_fn(x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))) of x (+ bias)."""
    y = _wide(x)
    if bias is not None:
        y = y + _wide(bias)
    # NOTE: the schema's constants 0.797885 and 0.035677 are sqrt(2/pi) and sqrt(2/pi) * 0.044715,
    # the tanh approximation torch implements as approximate="tanh".
    return F.gelu(y, approximate="tanh").to(x.dtype)


def quick_gelu_fn(x: torch.Tensor, *, alpha: float = 1.702) -> torch.Tensor:
    """x * sigmoid(alpha * x)."""
    y = _wide(x)
    return (y * torch.sigmoid(alpha * y)).to(x.dtype)


def bias_add_fn(x: torch.Tensor, bias: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """x + bias + skip."""
    return x + bias + skip


@converter("Gelu", since=1, domain=MS)
def gelu(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Gelu(X) -> Y = 0.5 * X * (1 + erf(X / sqrt(2)))"""
    if ctx.elem_type(node.input(0)) in (TensorProto.FLOAT, TensorProto.DOUBLE):
        return Lowered(nn.GELU())
    return Lowered(gelu_fn)


@converter("BiasGelu", since=1, domain=MS)
def bias_gelu(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """BiasGelu(A, B) -> C = Gelu(A + B)"""
    return Lowered(bias_gelu_fn)


@converter("FastGelu", since=1, domain=MS)
def fast_gelu(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """FastGelu(X, bias?) -> Y = 0.5 * X' * (1 + tanh(0.797885 * X' + 0.035677 * X'^3)), X' = X + bias"""
    if not node.has_input(1) and ctx.elem_type(node.input(0)) == TensorProto.FLOAT:
        return Lowered(nn.GELU(approximate="tanh"), inputs=[node.input(0)])
    return Lowered(fast_gelu_fn, inputs=[node.input(0), node.input(1)])


@converter("QuickGelu", since=1, domain=MS)
def quick_gelu(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """QuickGelu(X) -> Y = X * Sigmoid(alpha * X)"""
    return Lowered(quick_gelu_fn, kwargs={"alpha": short_float(node.attr_float("alpha", 1.702))})


@converter("BiasAdd", since=1, domain=MS)
def bias_add(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """BiasAdd(X, bias, skip) -> Y = X + bias + skip"""
    return Lowered(bias_add_fn)


# --- layer normalizations --------------------------------------------------------------------------
def _layer_norm(s: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor | None, epsilon: float) -> torch.Tensor:
    w = _wide(gamma)
    b = None if beta is None else _wide(beta)
    return F.layer_norm(s, (s.shape[-1],), w, b, epsilon)


def _rms_norm(s: torch.Tensor, gamma: torch.Tensor, epsilon: float) -> torch.Tensor:
    return s * torch.rsqrt(s.pow(2).mean(-1, keepdim=True) + epsilon) * _wide(gamma)


def skip_layer_norm_fn(x: torch.Tensor, skip: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor | None = None,
                       bias: torch.Tensor | None = None, *, epsilon: float = 1e-12,
                       with_sum: bool = False) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """LayerNorm(x + skip + bias) * gamma + beta over the last axis; with ``with_sum`` also the
    sum itself (output 3, ``input_skip_bias_sum``)."""
    s = _wide(x) + _wide(skip)
    if bias is not None:
        s = s + _wide(bias)
    y = _layer_norm(s, gamma, beta, epsilon).to(x.dtype)
    return (y, s.to(x.dtype)) if with_sum else y


def skip_simplified_layer_norm_fn(x: torch.Tensor, skip: torch.Tensor, gamma: torch.Tensor,
                                  bias: torch.Tensor | None = None, *, epsilon: float = 1e-12,
                                  with_sum: bool = False) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """RMSNorm(x + skip + bias) * gamma over the last axis (and the sum, with ``with_sum``)."""
    s = _wide(x) + _wide(skip)
    if bias is not None:
        s = s + _wide(bias)
    y = _rms_norm(s, gamma, epsilon).to(x.dtype)
    return (y, s.to(x.dtype)) if with_sum else y


def simplified_layer_norm_fn(x: torch.Tensor, scale: torch.Tensor, *, axis: int = -1,
                             epsilon: float = 1e-5) -> torch.Tensor:
    """x / sqrt(mean(x^2 over axes axis..) + epsilon) * scale, in float32 for half inputs."""
    xw = _wide(x)
    dims = list(range(axis % x.dim(), x.dim()))
    y = xw * torch.rsqrt(xw.pow(2).mean(dims, keepdim=True) + epsilon) * _wide(scale)
    return y.to(scale.dtype if scale.dtype != x.dtype else x.dtype)


def _skip_outputs(node: OnnxNode, ctx: ConversionContext) -> list[str]:
    """The node's outputs with the training-only ones refused: output 0, and 3 when asked for."""
    _unused_outputs(node, (1, 2), "mean / inv_std_var")
    return node.outputs


@converter("SkipLayerNormalization", since=1, domain=MS)
def skip_layer_normalization(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """SkipLayerNormalization(input, skip, gamma, beta?, bias?) -> (output, mean?, inv_std_var?, input_skip_bias_sum?)"""
    outputs = _skip_outputs(node, ctx)
    kwargs: dict = {"epsilon": short_float(node.attr_float("epsilon", 1e-12))}
    if len(outputs) > 1:
        # NOTE: the output list keeps its positions: (y, "", "", sum) becomes a 4-tuple
        kwargs["with_sum"] = True
        return Lowered(SkipNormWithSum(skip_layer_norm_fn, kwargs), inputs=[node.input(i) for i in range(5)])
    return Lowered(skip_layer_norm_fn, inputs=[node.input(i) for i in range(5)], kwargs=kwargs)


@converter("SkipSimplifiedLayerNormalization", since=1, domain=MS)
def skip_simplified_layer_normalization(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """SkipSimplifiedLayerNormalization(input, skip, gamma, bias?) -> (output, mean?, inv_std_var?, input_skip_bias_sum?)"""
    outputs = _skip_outputs(node, ctx)
    kwargs: dict = {"epsilon": short_float(node.attr_float("epsilon", 1e-12))}
    inputs = [node.input(i) for i in range(4)]
    if len(outputs) > 1:
        kwargs["with_sum"] = True
        return Lowered(SkipNormWithSum(skip_simplified_layer_norm_fn, kwargs), inputs=inputs)
    return Lowered(skip_simplified_layer_norm_fn, inputs=inputs, kwargs=kwargs)


class SkipNormWithSum(nn.Module):
    """A skip normalization whose ``input_skip_bias_sum`` (output 3) is used: returns the 4
    output slots, the training-only mean / inv_std_var as ``None``."""

    def __init__(self, fn, kwargs: dict):
        super().__init__()
        self.fn = fn
        self.kwargs = dict(kwargs)

    def extra_repr(self) -> str:
        return f"{self.fn.__name__}, " + ", ".join(f"{k}={v}" for k, v in self.kwargs.items())

    def forward(self, *args):
        y, s = self.fn(*args, **self.kwargs)
        return y, None, None, s


@converter("SimplifiedLayerNormalization", since=1)
def simplified_layer_normalization(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """SimplifiedLayerNormalization(X, scale) -> (Y = X / RMS(X) * scale, inv_std_var?)  [onnxruntime, default domain]"""
    _unused_outputs(node, (1,), "inv_std_var")
    axis = node.attr_int("axis", -1)
    kwargs = {"axis": axis, "epsilon": short_float(node.attr_float("epsilon", 1e-5))}
    return Lowered(simplified_layer_norm_fn, inputs=node.inputs[:2], kwargs=kwargs)


class EmbedLayerNorm(nn.Module):
    """BERT's embedding layer: word + position (+ segment) embeddings, then LayerNorm; outputs
    ``(output, mask_index, embedding_sum)``.  The mask index is the number of non-zero mask
    entries per row (0 without a mask), as onnxruntime's kernel counts it."""

    def __init__(self, word: torch.Tensor, position: torch.Tensor, segment: torch.Tensor | None,
                 gamma: torch.Tensor, beta: torch.Tensor, epsilon: float):
        super().__init__()
        self.word = nn.Embedding.from_pretrained(word.detach().clone(), freeze=False)
        self.position = nn.Embedding.from_pretrained(position.detach().clone(), freeze=False)
        self.segment = None if segment is None else nn.Embedding.from_pretrained(segment.detach().clone(), freeze=False)
        self.norm = nn.LayerNorm(word.shape[1], eps=epsilon, dtype=word.dtype)
        with torch.no_grad():
            self.norm.weight.copy_(gamma)
            self.norm.bias.copy_(beta)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None):
        ids = input_ids.long()
        if position_ids is None:
            positions = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        else:
            positions = position_ids.long()
        emb = self.word(ids) + self.position(positions).expand(ids.shape[0], -1, -1)
        if self.segment is not None and segment_ids is not None:
            emb = emb + self.segment(segment_ids.long())
        if emb.dtype in _HALF:
            out = F.layer_norm(emb.float(), self.norm.normalized_shape, self.norm.weight.float(),
                               self.norm.bias.float(), self.norm.eps).to(emb.dtype)
        else:
            out = self.norm(emb)
        if mask is None:
            mask_index = torch.zeros(ids.shape[0], dtype=torch.int32, device=ids.device)
        else:
            mask_index = (mask != 0).sum(dim=1).to(torch.int32)
        return out, mask_index, emb


def embed_layer_norm_fn(input_ids: torch.Tensor, segment_ids: torch.Tensor | None, word: torch.Tensor,
                        position: torch.Tensor, segment: torch.Tensor | None, gamma: torch.Tensor, beta: torch.Tensor,
                        mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None, *,
                        epsilon: float = 1e-12):
    """EmbedLayerNormalization with run-time embedding tables (see :class:`EmbedLayerNorm`)."""
    ids = input_ids.long()
    positions = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0) if position_ids is None else position_ids.long()
    emb = F.embedding(ids, word) + F.embedding(positions, position).expand(ids.shape[0], -1, -1)
    if segment is not None and segment_ids is not None:
        emb = emb + F.embedding(segment_ids.long(), segment)
    out = F.layer_norm(_wide(emb), (emb.shape[-1],), _wide(gamma), _wide(beta), epsilon).to(emb.dtype)
    if mask is None:
        mask_index = torch.zeros(ids.shape[0], dtype=torch.int32, device=ids.device)
    else:
        mask_index = (mask != 0).sum(dim=1).to(torch.int32)
    return out, mask_index, emb


@converter("EmbedLayerNormalization", since=1, domain=MS)
def embed_layer_normalization(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """EmbedLayerNormalization(input_ids, segment_ids?, word_embedding, position_embedding,
    segment_embedding?, gamma, beta, mask?, position_ids?) -> (output, mask_index?, embedding_sum?)"""
    epsilon = short_float(node.attr_float("epsilon", 1e-12))
    if node.has_input(1) != node.has_input(4):
        raise node.unsupported("segment_ids / segment_embedding", "only one of them",
                               "both or neither (onnxruntime's kernel requires the pair)")
    tables = [ctx.constant(node.input(i)) if node.has_input(i) else None for i in (2, 3, 4, 5, 6)]
    needed = [t for i, t in zip((2, 3, 4, 5, 6), tables) if node.has_input(i)]
    outputs = len(node.outputs)
    if all(t is not None for t in needed):
        word, position, segment, gamma, beta = tables
        module = EmbedLayerNorm(word, position, segment, gamma, beta, epsilon)
        inputs = [node.input(0), node.input(1), node.input(7), node.input(8)]
        return Lowered(EmbedOutputs(module, outputs), inputs=inputs)
    return Lowered(embed_layer_norm_fn, inputs=[node.input(i) for i in range(9)], kwargs={"epsilon": epsilon})


class EmbedOutputs(nn.Module):
    """Keeps the outputs of :class:`EmbedLayerNorm` the node declares (1, 2 or 3)."""

    def __init__(self, embed: EmbedLayerNorm, count: int):
        super().__init__()
        self.embed = embed
        self.count = count

    def extra_repr(self) -> str:
        return f"outputs={self.count}"

    def forward(self, input_ids, segment_ids=None, mask=None, position_ids=None):
        out = self.embed(input_ids, segment_ids, mask, position_ids)
        return out[0] if self.count == 1 else out[: self.count]


# --- attention -----------------------------------------------------------------------------------------
def _additive_mask(mask: torch.Tensor | None, batch: int, seq: int, total: int, past: int, causal: bool,
                   filter_value: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor | None:
    """onnxruntime's attention mask as an additive (batch, 1, seq, total) tensor: raw 0/1 masks
    (2-D per key, 3-D per query) give ``mask_filter_value`` where 0; a 1-D mask of ``batch``
    end positions (right padding) or ``2 * batch`` end and start positions (left padding) masks
    keys outside them; ``causal`` sets keys after a query's position to the lowest float."""
    add = None
    keys = torch.arange(total, device=device)
    if mask is not None:
        if mask.dim() == 2:
            add = torch.where(mask[:, None, None, :] > 0, 0.0, filter_value)
        elif mask.dim() == 3:
            add = torch.where(mask[:, None, :, :] > 0, 0.0, filter_value)
        elif mask.dim() == 1:
            end = mask[:batch].long()
            masked = keys[None, :] >= end[:, None]
            if mask.shape[0] == 2 * batch:
                start = mask[batch:].long().clamp(max=total)
                masked = masked | (keys[None, :] < start[:, None])
            add = torch.where(masked, filter_value, 0.0)[:, None, None, :]
        else:
            raise ValueError(f"attention mask of rank {mask.dim()} is not supported")
        add = add.to(dtype).expand(batch, 1, seq, total)
    if causal:
        queries = torch.arange(seq, device=device) + past
        future = keys[None, :] > queries[:, None]
        lowest = torch.finfo(dtype).min
        base = torch.zeros((batch, 1, seq, total), dtype=dtype, device=device) if add is None else add
        # NOTE: onnxruntime overwrites (does not add to) future positions with the lowest float.
        add = base.masked_fill(future, lowest)
    return add


def _scaled_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None,
                      scale: float) -> torch.Tensor:
    """softmax(scale * q @ k^T + bias) @ v on (batch, heads, seq, head_size) tensors, float32 inside."""
    dtype = q.dtype
    q, k, v = _wide(q), _wide(k), _wide(v)
    if bias is not None:
        bias = bias.to(q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    return out.to(dtype)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(batch, heads, seq, head_size) -> (batch, seq, heads * head_size)."""
    return x.transpose(1, 2).flatten(2)


def _split(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(batch, seq, heads * head_size) -> (batch, heads, seq, head_size)."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


class ContribAttention(nn.Module):
    """com.microsoft Attention: one packed Q/K/V projection (``nn.Linear`` when the weights are
    constant), multi-head scaled dot-product attention with onnxruntime's mask formats, optional
    past / present key-value state (stacked as ``(2, batch, heads, total, head_size)``)."""

    def __init__(self, num_heads: int, sizes: tuple[int, int, int], scale: float | None, causal: bool,
                 filter_value: float, projection: nn.Linear | None, with_present: bool):
        super().__init__()
        self.num_heads = num_heads
        self.sizes = sizes
        self.scale = scale
        self.causal = causal
        self.filter_value = filter_value
        self.projection = projection
        self.with_present = with_present

    def extra_repr(self) -> str:
        return (f"num_heads={self.num_heads}, qkv_hidden_sizes={self.sizes}, scale={self.scale}, "
                f"unidirectional={self.causal}, mask_filter_value={self.filter_value}")

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                mask_index: torch.Tensor | None = None, past: torch.Tensor | None = None,
                attention_bias: torch.Tensor | None = None):
        if self.projection is not None:
            qkv = self.projection(x)
        else:
            qkv = torch.matmul(x, weights)
            if bias is not None:
                qkv = qkv + bias
        return self.attend(qkv, mask_index, past, attention_bias)

    def attend(self, qkv: torch.Tensor, mask_index: torch.Tensor | None = None, past: torch.Tensor | None = None,
               attention_bias: torch.Tensor | None = None):
        """Attention over the packed Q/K/V projection ``qkv``."""
        q, k, v = torch.split(qkv, list(self.sizes), dim=-1)
        q, k, v = _split(q, self.num_heads), _split(k, self.num_heads), _split(v, self.num_heads)
        past_len = 0
        if past is not None:
            past_len = past.shape[3]
            k = torch.cat([past[0].to(k.dtype), k], dim=2)
            v = torch.cat([past[1].to(v.dtype), v], dim=2)
        batch, seq, total = q.shape[0], q.shape[2], k.shape[2]
        scale = self.scale if self.scale is not None else 1.0 / math.sqrt(q.shape[-1])
        work = torch.float32 if q.dtype in _HALF else q.dtype
        add = _additive_mask(mask_index, batch, seq, total, past_len, self.causal, self.filter_value, work, q.device)
        if attention_bias is not None:
            add = attention_bias.to(work) if add is None else add + attention_bias.to(work)
        out = _merge_heads(_scaled_attention(q, k, v, add, scale))
        if not self.with_present:
            return out
        return out, torch.stack([k, v])


@converter("Attention", since=1, domain=MS)
def attention(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Attention(input, weights, bias?, mask_index?, past?, attention_bias?, past_sequence_length?) -> (output, present?)"""
    num_heads = node.attr_int("num_heads")
    if node.attr_int("do_rotary", 0):
        raise node.unsupported("do_rotary", 1, "0 (rotary embedding inside Attention is not converted)")
    if node.attr_int("past_present_share_buffer", 0) or node.has_input(6):
        raise node.unsupported("past_present_share_buffer", 1, "0 (separate past and present)")
    mask_rank = ctx.rank(node.input(3)) if node.has_input(3) else None
    if mask_rank == 4:
        raise node.unsupported("mask_index rank", 4, "1-D (end / start positions), 2-D or 3-D raw masks")
    weights = ctx.constant(node.input(1))
    sizes = node.attr_ints("qkv_hidden_sizes", None)
    w_shape = ctx.shape(node.input(1))
    if not sizes:
        width = w_shape[1] if w_shape is not None else None
        if not isinstance(width, int):
            raise node.unsupported("weights shape", w_shape, "a known Q/K/V width or qkv_hidden_sizes")
        sizes = [width // 3] * 3
    if sizes[0] != sizes[1]:
        raise node.unsupported("qkv_hidden_sizes", sizes, "equal Q and K sizes")
    scale = node.attr_float("scale", 0.0) or None
    projection = None
    inputs = [node.input(0), node.input(1), node.input(2), node.input(3), node.input(4), node.input(5)]
    bias = ctx.constant(node.input(2)) if node.has_input(2) else None
    if weights is not None and weights.dim() == 2 and weights.is_floating_point() and (bias is not None or not node.has_input(2)):
        projection = nn.Linear(weights.shape[0], weights.shape[1], bias=bias is not None, device="meta", dtype=weights.dtype)
        projection.weight = nn.Parameter(weights.detach().t().contiguous().clone())
        if bias is not None:
            projection.bias = nn.Parameter(bias.detach().clone().to(weights.dtype))
        inputs[1] = inputs[2] = ""
    while inputs and not inputs[-1]:
        inputs.pop()
    module = ContribAttention(num_heads, tuple(int(s) for s in sizes), None if scale is None else short_float(scale),
                              bool(node.attr_int("unidirectional", 0)),
                              short_float(node.attr_float("mask_filter_value", -10000.0)), projection,
                              len(node.outputs) > 1)
    return Lowered(module, inputs=inputs)


class ContribQAttention(nn.Module):
    """com.microsoft QAttention: the Q/K/V projection of a uint8/int8 input with int8/uint8
    weights as an exact integer product scaled by input_scale * weight_scale plus the float bias
    (onnxruntime's quantized GEMM), then the float attention of :class:`ContribAttention`."""

    def __init__(self, attention: ContribAttention, weight: torch.Tensor | None, weight_zero: torch.Tensor | None):
        super().__init__()
        self.attention = attention
        if weight is not None:
            self.register_buffer("weight", weight.clone())
        else:
            self.weight = None
        if weight_zero is not None:
            self.register_buffer("weight_zero", weight_zero.clone())
        else:
            self.weight_zero = None

    def forward(self, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor, input_scale: torch.Tensor,
                weight_scale: torch.Tensor, mask_index: torch.Tensor | None = None,
                input_zero: torch.Tensor | None = None, weight_zero: torch.Tensor | None = None,
                past: torch.Tensor | None = None):
        w = self.weight if self.weight is not None else weight
        wz = self.weight_zero if self.weight_zero is not None else weight_zero
        qkv = _integer_matmul_float(x, input_zero, w, wz, input_scale.float() * weight_scale.float()) + bias
        return self.attention.attend(qkv, mask_index, past)


@converter("QAttention", since=1, domain=MS)
def qattention(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """QAttention(input, weight, bias, input_scale, weight_scale, mask_index?, input_zero_point?,
    weight_zero_point?, past?) -> (output, present?)"""
    num_heads = node.attr_int("num_heads")
    for name in ("do_rotary", "past_present_share_buffer"):
        if node.attr_int(name, 0):
            raise node.unsupported(name, 1, "0")
    mask_rank = ctx.rank(node.input(5)) if node.has_input(5) else None
    if mask_rank == 4:
        raise node.unsupported("mask_index rank", 4, "1-D (end / start positions), 2-D or 3-D raw masks")
    w_shape = ctx.shape(node.input(1))
    width = w_shape[1] if w_shape is not None else None
    if not isinstance(width, int):
        raise node.unsupported("weight shape", w_shape, "a known Q/K/V width")
    scale = node.attr_float("scale", 0.0) or None
    attention_module = ContribAttention(num_heads, (width // 3,) * 3, None if scale is None else short_float(scale),
                                        bool(node.attr_int("unidirectional", 0)),
                                        short_float(node.attr_float("mask_filter_value", -10000.0)), None,
                                        len(node.outputs) > 1)
    weight = ctx.constant(node.input(1))
    weight_zero = ctx.constant(node.input(7)) if node.has_input(7) else None
    inputs = [node.input(i) for i in range(9)]
    if weight is not None:
        inputs[1] = ""
    if weight_zero is not None:
        inputs[7] = ""
    while inputs and not inputs[-1]:
        inputs.pop()
    return Lowered(ContribQAttention(attention_module, weight, weight_zero), inputs=inputs)


@converter("QEmbedLayerNormalization", since=1, domain=MS)
def qembed_layer_normalization(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """QEmbedLayerNormalization(input_ids, segment_ids?, word, position, segment?, gamma, beta, mask?, scales...,
    zero points...) -> (layernorm_out, mask_index_out)"""
    epsilon = short_float(node.attr_float("epsilon", 1e-12))
    if node.has_input(1) != node.has_input(4):
        raise node.unsupported("segment_ids / segment_embedding", "only one of them", "both or neither")
    tables = []
    # (quantized table, scale, zero point) input positions: word, position, segment, gamma, beta
    for q_i, s_i, z_i in ((2, 8, 13), (3, 9, 14), (4, 10, 15), (5, 11, 16), (6, 12, 17)):
        if not node.has_input(q_i):
            tables.append(None)
            continue
        q, sc, zp = ctx.constant(node.input(q_i)), ctx.constant(node.input(s_i)), ctx.constant(node.input(z_i))
        if q is None or sc is None or zp is None:
            raise node.unsupported(f"input {q_i} ({node.input(q_i)})", "computed at run time",
                                   "constant quantized tables, scales and zero points")
        tables.append(_deq(q, sc, zp))
    word, position, segment, gamma, beta = tables
    module = EmbedLayerNorm(word, position, segment, gamma, beta, epsilon)
    return Lowered(EmbedOutputs(module, len(node.outputs)), inputs=[node.input(0), node.input(1), node.input(7)])


class ContribMultiHeadAttention(nn.Module):
    """com.microsoft MultiHeadAttention: separate (or packed QKV / KV, or already split BNSH)
    query, key and value with an optional input-projection bias, key padding mask, attention
    bias and past key / value; returns ``(output, present_key, present_value)``."""

    def __init__(self, num_heads: int, scale: float | None, causal: bool, filter_value: float, outputs: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = scale
        self.causal = causal
        self.filter_value = filter_value
        self.outputs = outputs

    def extra_repr(self) -> str:
        return (f"num_heads={self.num_heads}, scale={self.scale}, unidirectional={self.causal}, "
                f"mask_filter_value={self.filter_value}")

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None, value: torch.Tensor | None = None,
                bias: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None,
                attention_bias: torch.Tensor | None = None, past_key: torch.Tensor | None = None,
                past_value: torch.Tensor | None = None):
        heads = self.num_heads
        if query.dim() == 5:  # packed QKV: (batch, seq, heads, 3, head_size)
            q, k, v = query.unbind(3)
            if bias is not None:
                bq, bk, bv = bias.reshape(3, heads, -1).unbind(0)
                q, k, v = q + bq, k + bk, v + bv
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        else:
            hidden = query.shape[-1]
            bq = bk = bv = None
            if bias is not None:
                bq, bk, bv = bias[:hidden], bias[hidden:2 * hidden], bias[2 * hidden:]
            q = _split(query if bq is None else query + bq, heads)
            if key is not None and key.dim() == 5:  # packed KV: (batch, kv_seq, heads, 2, head_size)
                k, v = key.unbind(3)
                if bk is not None:
                    k, v = k + bk.reshape(heads, -1), v + bv.reshape(heads, -1)
                k, v = k.transpose(1, 2), v.transpose(1, 2)
            elif key is not None and key.dim() == 4:  # already (batch, heads, kv_seq, head_size)
                k, v = key, value
            else:
                k = _split(key if bk is None else key + bk, heads)
                v = _split(value if bv is None else value + bv, heads)
        past_len = 0
        if past_key is not None:
            past_len = past_key.shape[2]
            k = torch.cat([past_key.to(k.dtype), k], dim=2)
            v = torch.cat([past_value.to(v.dtype), v], dim=2)
        batch, seq, total = q.shape[0], q.shape[2], k.shape[2]
        scale = self.scale if self.scale is not None else 1.0 / math.sqrt(q.shape[-1])
        work = torch.float32 if q.dtype in _HALF else q.dtype
        add = _additive_mask(key_padding_mask, batch, seq, total, past_len, self.causal, self.filter_value, work,
                             q.device)
        if attention_bias is not None:
            add = attention_bias.to(work) if add is None else add + attention_bias.to(work)
        out = _merge_heads(_scaled_attention(q, k, v, add, scale))
        if self.outputs == 1:
            return out
        return (out, k, v)[: self.outputs]


@converter("MultiHeadAttention", since=1, domain=MS)
def multi_head_attention(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """MultiHeadAttention(query, key?, value?, bias?, key_padding_mask?, attention_bias?, past_key?, past_value?)
    -> (output, present_key?, present_value?)"""
    for index, what in ((8, "past_sequence_length"), (9, "cache_indirection")):
        if node.has_input(index):
            raise node.unsupported(f"input {index} ({what})", node.input(index), "absent (no shared KV buffer / beam search)")
    _unused_outputs(node, (3,), "qk")
    scale = node.attr_float("scale", 0.0) or None
    module = ContribMultiHeadAttention(node.attr_int("num_heads"), None if scale is None else short_float(scale),
                                       bool(node.attr_int("unidirectional", 0)),
                                       short_float(node.attr_float("mask_filter_value", -10000.0)),
                                       len(node.outputs))
    inputs = [node.input(i) for i in range(8)]
    while inputs and not inputs[-1]:
        inputs.pop()
    return Lowered(module, inputs=inputs)


class ContribRotaryEmbedding(nn.Module):
    """com.microsoft RotaryEmbedding: rotates the first ``rotary_dim`` features of every head by
    the cached cos / sin of its position (halves, or interleaved pairs), the rest unchanged.
    ``position_ids`` of one element is the first position of every sequence."""

    def __init__(self, num_heads: int, rotary_dim: int, interleaved: bool):
        super().__init__()
        self.num_heads = num_heads
        self.rotary_dim = rotary_dim
        self.interleaved = interleaved

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, rotary_embedding_dim={self.rotary_dim}, interleaved={self.interleaved}"

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor, cos_cache: torch.Tensor,
                sin_cache: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            heads = self.num_heads or x.shape[-1] // (2 * cos_cache.shape[-1])
            h = x.unflatten(-1, (heads, -1)).transpose(1, 2)  # (batch, heads, seq, head_size)
        else:
            h = x
        seq = h.shape[2]
        if position_ids.numel() == 1 and position_ids.dim() <= 1:
            pos = position_ids.reshape(1, 1).long() + torch.arange(seq, device=x.device)[None, :]
        else:
            pos = position_ids.long()
        cos = cos_cache[pos][:, None]  # (batch or 1, 1, seq, rotary_dim / 2)
        sin = sin_cache[pos][:, None]
        rot = self.rotary_dim or 2 * cos_cache.shape[-1]
        r, rest = h[..., :rot], h[..., rot:]
        half = rot // 2
        cos, sin = cos[..., :half], sin[..., :half]
        if self.interleaved:
            even, odd = r[..., 0::2], r[..., 1::2]
            out = torch.stack([even * cos - odd * sin, odd * cos + even * sin], dim=-1).flatten(-2)
        else:
            first, second = r[..., :half], r[..., half:]
            out = torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)
        y = torch.cat([out.to(h.dtype), rest], dim=-1)
        if x.dim() == 3:
            y = y.transpose(1, 2).flatten(2)
        return y


@converter("RotaryEmbedding", since=1, domain=MS)
def rotary_embedding(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """RotaryEmbedding(input, position_ids, cos_cache, sin_cache) -> output  [com.microsoft]"""
    if node.attr_int("is_packed_batching", 0):
        raise node.unsupported("is_packed_batching", 1, "0")
    scale = node.attr_float("scale", 1.0)
    if scale not in (0.0, 1.0):
        raise node.unsupported("scale", scale, "1.0")
    module = ContribRotaryEmbedding(node.attr_int("num_heads", 0), node.attr_int("rotary_embedding_dim", 0),
                                    bool(node.attr_int("interleaved", 0)))
    return Lowered(module)


# --- fused operators from onnxruntime's graph optimizer ---------------------------------------------------
class HardSigmoidAB(nn.Module):
    """max(0, min(1, alpha * x + beta))."""

    def __init__(self, alpha: float, beta: float):
        super().__init__()
        self.alpha = alpha
        self.beta = beta

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x * self.alpha + self.beta, 0.0, 1.0)


def _activation(node: OnnxNode, name: str, params: list[float]) -> nn.Module:
    """The activation a fused node names, with its parameters."""
    if name in ("", "Identity"):
        return nn.Identity()
    if name == "Relu":
        return nn.ReLU()
    if name == "Tanh":
        return nn.Tanh()
    if name == "Sigmoid":
        return nn.Sigmoid()
    if name == "LeakyRelu":
        return nn.LeakyReLU(short_float(params[0]) if params else 0.01)
    if name == "Clip":
        low, high = (params + [float("-inf"), float("inf")][len(params):])[:2] if params else (float("-inf"), float("inf"))
        return nn.Hardtanh(short_float(low), short_float(high))
    if name == "HardSigmoid":
        alpha, beta = (list(params) + [0.2, 0.5][len(params):])[:2]
        return HardSigmoidAB(short_float(alpha), short_float(beta))
    raise node.unsupported("activation", name, "Relu, Tanh, Sigmoid, LeakyRelu, Clip, HardSigmoid")


class FusedActivation(nn.Module):
    """A standard operator's result (``inner``: a layer, or a function with its keyword
    arguments), plus an optional sum input, then an activation."""

    def __init__(self, inner, kwargs: dict, activation: nn.Module, with_sum: bool):
        super().__init__()
        if isinstance(inner, nn.Module):
            self.inner = inner
            self.fn = None
        else:
            self.inner = None
            self.fn = inner
        self.kwargs = dict(kwargs)
        self.activation = activation
        self.with_sum = with_sum

    def extra_repr(self) -> str:
        parts = [] if self.fn is None else [self.fn.__name__] + [f"{k}={v}" for k, v in self.kwargs.items()]
        return ", ".join(parts + [f"with_sum={self.with_sum}"])

    def forward(self, *args):
        z = None
        if self.with_sum:
            *args, z = args
        y = self.inner(*args) if self.inner is not None else self.fn(*args, **self.kwargs)
        if z is not None:
            y = y + z
        return self.activation(y)


@converter("FusedConv", since=1, domain=MS)
def fused_conv(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """FusedConv(X, W, B?, Z?) -> Y = activation(Conv(X, W, B) + Z)"""
    from onnx2torch.ops.conv import conv

    activation = _activation(node, node.attr_str("activation", "") or "", node.attr("activation_params", None) or [])
    standard = _standard_node(node, "Conv", 11, drop=("activation", "activation_params"),
                              inputs=[node.input(0), node.input(1), node.input(2)])
    lowered = conv(standard, ctx)
    inputs = list(standard.inputs if lowered.inputs is None else lowered.inputs)
    with_sum = node.has_input(3)
    if with_sum:
        inputs.append(node.input(3))
    return Lowered(FusedActivation(lowered.target, lowered.kwargs, activation, with_sum), inputs=inputs)


@converter("FusedGemm", since=1, domain=MS)
def fused_gemm(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """FusedGemm(A, B, C?) -> Y = activation(alpha * A' @ B' + beta * C)"""
    from onnx2torch.ops.linalg import gemm

    name = node.attr_str("activation", "") or ""
    params = [v for v in (node.attr("activation_alpha", None), node.attr("activation_beta", None)) if v is not None]
    if node.attr("activation_gamma", None) is not None:
        raise node.unsupported("activation_gamma", node.attr("activation_gamma"), "absent")
    activation = _activation(node, name, params)
    standard = _standard_node(node, "Gemm", 13, drop=("activation", "activation_alpha", "activation_beta",
                                                      "activation_gamma"))
    lowered = gemm(standard, ctx)
    inputs = list(standard.inputs if lowered.inputs is None else lowered.inputs)
    return Lowered(FusedActivation(lowered.target, lowered.kwargs, activation, False), inputs=inputs)


def fused_matmul_fn(a: torch.Tensor, b: torch.Tensor, *, alpha: float = 1.0, trans_a: bool = False,
                    trans_b: bool = False) -> torch.Tensor:
    """alpha * op(a) @ op(b), op transposing the last two axes where asked (1-D operands never)."""
    if trans_a and a.dim() > 1:
        a = a.transpose(-1, -2)
    if trans_b and b.dim() > 1:
        b = b.transpose(-1, -2)
    y = torch.matmul(a, b)
    return y if alpha == 1.0 else y * alpha


@converter("FusedMatMul", since=1, domain=MS)
def fused_matmul(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """FusedMatMul(A, B) -> Y = alpha * A' @ B'"""
    for name in ("transBatchA", "transBatchB"):
        if node.attr_int(name, 0):
            raise node.unsupported(name, 1, "0")
    kwargs: dict = {}
    alpha = node.attr_float("alpha", 1.0)
    if alpha != 1.0:
        kwargs["alpha"] = short_float(alpha)
    if node.attr_int("transA", 0):
        kwargs["trans_a"] = True
    if node.attr_int("transB", 0):
        kwargs["trans_b"] = True
    weight = ctx.constant(node.input(1))
    if (not kwargs.get("trans_a") and alpha == 1.0 and weight is not None and weight.dim() == 2
            and weight.is_floating_point() and not ctx.is_constant(node.input(0))):
        from onnx2torch.ops.linalg import _linear

        w = weight if kwargs.get("trans_b") else weight.t()
        return Lowered(_linear(w, None), inputs=[node.input(0)])
    return Lowered(fused_matmul_fn, inputs=node.inputs[:2], kwargs=kwargs)


# --- quantized operators (QOperator format) --------------------------------------------------------------------
def _deq(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None) -> torch.Tensor:
    """(x - zero) * scale in float32, the difference taken in int32."""
    d = x.to(torch.int32)
    if zero is not None:
        d = d - zero.to(torch.int32)
    return d.float() * scale.float()


def _quant(v: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """saturate(round_half_even(v / scale) + zero) as ``dtype``."""
    y = torch.round(v / scale.float())
    if zero is not None:
        y = y + zero.float()
    info = torch.iinfo(dtype)
    return y.clamp(info.min, info.max).to(dtype)


def _out_dtype(x: torch.Tensor, zero: torch.Tensor | None) -> torch.dtype:
    return x.dtype if zero is None else zero.dtype


def qlinear_add_fn(a: torch.Tensor, a_scale: torch.Tensor, a_zero: torch.Tensor | None, b: torch.Tensor,
                   b_scale: torch.Tensor, b_zero: torch.Tensor | None, c_scale: torch.Tensor,
                   c_zero: torch.Tensor | None = None) -> torch.Tensor:
    """QLinearAdd: round((a - a_zp) * a_scale / c_scale + (b - b_zp) * b_scale / c_scale) + c_zp."""
    # NOTE: onnxruntime (MLAS QLinearAdd) scales each operand by its ratio to the output scale
    # in float32 and adds, then rounds half to even.
    ra = (a_scale.float() / c_scale.float())
    rb = (b_scale.float() / c_scale.float())
    da = a.to(torch.int32) - (0 if a_zero is None else a_zero.to(torch.int32))
    db = b.to(torch.int32) - (0 if b_zero is None else b_zero.to(torch.int32))
    v = da.float() * ra + db.float() * rb
    y = torch.round(v)
    if c_zero is not None:
        y = y + c_zero.float()
    dtype = _out_dtype(a, c_zero)
    info = torch.iinfo(dtype)
    return y.clamp(info.min, info.max).to(dtype)


def qlinear_mul_fn(a: torch.Tensor, a_scale: torch.Tensor, a_zero: torch.Tensor | None, b: torch.Tensor,
                   b_scale: torch.Tensor, b_zero: torch.Tensor | None, c_scale: torch.Tensor,
                   c_zero: torch.Tensor | None = None) -> torch.Tensor:
    """QLinearMul: round((a - a_zp) * (b - b_zp) * a_scale * b_scale / c_scale) + c_zp."""
    # NOTE: onnxruntime (MLAS QLinearMul) multiplies the integer product by the float32 ratio
    # a_scale * b_scale / c_scale, adds the output zero point in float32 and only then rounds
    # half to even; rounding before adding the zero point differs by one in about 1% of values.
    ratio = a_scale.float() * b_scale.float() / c_scale.float()
    da = a.to(torch.int32) - (0 if a_zero is None else a_zero.to(torch.int32))
    db = b.to(torch.int32) - (0 if b_zero is None else b_zero.to(torch.int32))
    v = (da * db).float() * ratio
    if c_zero is not None:
        v = v + c_zero.float()
    y = torch.round(v)
    dtype = _out_dtype(a, c_zero)
    info = torch.iinfo(dtype)
    return y.clamp(info.min, info.max).to(dtype)


def qlinear_sigmoid_fn(x: torch.Tensor, x_scale: torch.Tensor, x_zero: torch.Tensor | None, y_scale: torch.Tensor,
                       y_zero: torch.Tensor | None = None) -> torch.Tensor:
    """QLinearSigmoid: quantize(sigmoid(dequantize(x)))."""
    return _quant(torch.sigmoid(_deq(x, x_scale, x_zero)), y_scale, y_zero, _out_dtype(x, y_zero))


def qlinear_leaky_relu_fn(x: torch.Tensor, x_scale: torch.Tensor, x_zero: torch.Tensor | None, y_scale: torch.Tensor,
                          y_zero: torch.Tensor | None = None, *, alpha: float = 0.01) -> torch.Tensor:
    """QLinearLeakyRelu: quantize(leaky_relu(dequantize(x), alpha))."""
    return _quant(F.leaky_relu(_deq(x, x_scale, x_zero), alpha), y_scale, y_zero, _out_dtype(x, y_zero))


def qlinear_concat_fn(y_scale: torch.Tensor, y_zero: torch.Tensor, *triples: torch.Tensor, axis: int) -> torch.Tensor:
    """QLinearConcat: each input requantized to the output's scale / zero point, then concatenated."""
    parts = []
    for i in range(0, len(triples), 3):
        x, scale, zero = triples[i], triples[i + 1], triples[i + 2]
        if bool((scale == y_scale).all()) and bool((zero.to(torch.int32) == y_zero.to(torch.int32)).all()):
            parts.append(x.to(y_zero.dtype))
        else:
            parts.append(_quant(_deq(x, scale, zero), y_scale, y_zero, y_zero.dtype))
    return torch.cat(parts, dim=axis)


def qlinear_global_average_pool_fn(x: torch.Tensor, x_scale: torch.Tensor, x_zero: torch.Tensor | None,
                                   y_scale: torch.Tensor, y_zero: torch.Tensor | None = None, *,
                                   channels_last: bool = False) -> torch.Tensor:
    """QLinearGlobalAveragePool: the integer sum of each channel, requantized with
    x_scale / (y_scale * count)."""
    spatial = list(range(1, x.dim() - 1)) if channels_last else list(range(2, x.dim()))
    count = 1
    for d in spatial:
        count *= x.shape[d]
    acc = x.to(torch.int32).sum(dim=spatial, keepdim=True, dtype=torch.int32)
    if x_zero is not None:
        acc = acc - x_zero.to(torch.int32) * count
    # NOTE: onnxruntime (MLAS) requantizes the int32 sum with the float32 multiplier
    # x_scale / (y_scale * count), rounding half to even.
    multiplier = x_scale.float() / (y_scale.float() * count)
    y = torch.round(acc.float() * multiplier)
    if y_zero is not None:
        y = y + y_zero.float()
    dtype = _out_dtype(x, y_zero)
    info = torch.iinfo(dtype)
    return y.clamp(info.min, info.max).to(dtype)


def _qlinear_binary(node: OnnxNode, fn) -> Lowered:
    inputs = [node.input(i) for i in range(8)]
    while inputs and not inputs[-1]:
        inputs.pop()
    return Lowered(fn, inputs=inputs)


@converter("QLinearAdd", since=1, domain=MS)
def qlinear_add(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """QLinearAdd(A, A_scale, A_zp?, B, B_scale, B_zp?, C_scale, C_zp?) -> C quantized"""
    return _qlinear_binary(node, qlinear_add_fn)


@converter("QLinearMul", since=1, domain=MS)
def qlinear_mul(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """QLinearMul(A, A_scale, A_zp?, B, B_scale, B_zp?, C_scale, C_zp?) -> C quantized"""
    return _qlinear_binary(node, qlinear_mul_fn)


@converter("QLinearSigmoid", since=1, domain=MS)
def qlinear_sigmoid(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """QLinearSigmoid(X, X_scale, X_zp?, Y_scale, Y_zp?) -> Y quantized"""
    return Lowered(qlinear_sigmoid_fn, inputs=[node.input(i) for i in range(5)])


@converter("QLinearLeakyRelu", since=1, domain=MS)
def qlinear_leaky_relu(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """QLinearLeakyRelu(X, X_scale, X_zp?, Y_scale, Y_zp?) -> Y quantized"""
    return Lowered(qlinear_leaky_relu_fn, inputs=[node.input(i) for i in range(5)],
                   kwargs={"alpha": short_float(node.attr_float("alpha", 0.01))})


@converter("QLinearConcat", since=1, domain=MS)
def qlinear_concat(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """QLinearConcat(Y_scale, Y_zp, (X, X_scale, X_zp)...) -> Y quantized"""
    if (len(node.inputs) - 2) % 3 or any(not n for n in node.inputs):
        raise node.unsupported("inputs", node.inputs, "Y_scale, Y_zero_point and complete (X, scale, zero point) triples")
    return Lowered(qlinear_concat_fn, kwargs={"axis": node.attr_int("axis")})


@converter("QLinearGlobalAveragePool", since=1, domain=MS)
def qlinear_global_average_pool(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """QLinearGlobalAveragePool(X, x_scale, x_zp, y_scale, y_zp) -> Y quantized"""
    kwargs = {"channels_last": True} if node.attr_int("channels_last", 0) else {}
    return Lowered(qlinear_global_average_pool_fn, inputs=[node.input(i) for i in range(5)], kwargs=kwargs)


def qlinear_softmax_fn(x: torch.Tensor, x_scale: torch.Tensor, x_zero: torch.Tensor | None, y_scale: torch.Tensor,
                       y_zero: torch.Tensor | None = None, *, axis: int = -1, flatten: bool = False) -> torch.Tensor:
    """QLinearSoftmax as onnxruntime computes it: exp from a 256-entry float32 table of
    exp((i - 255 + shift) * x_scale) aligned on each row's maximum (the zero point cancels), the
    float32 row sum accumulated in order, y = nearbyint(e * floor(1 / y_scale) / sum) + y_zp."""
    shape = x.shape
    if flatten:  # opset < 13: softmax over all axes from `axis` on
        start = axis % x.dim()
        work = x.reshape(*shape[:start], -1)
    else:
        work = x.movedim(axis, -1)
    length = work.shape[-1]
    signed = x.dtype == torch.int8
    # NOTE: the table keeps sum(exp) inside float32: onnxruntime reserves 5 bits above the
    # shift log(FLT_MAX / D) it divides by x_scale (QlinearBuildLookupTableUint32).
    scale = float(x_scale.reshape(-1)[0])
    shift = max(0.0, math.log(torch.finfo(torch.float32).max / length) - 5) / scale
    i = torch.arange(256, dtype=torch.float64)
    table = torch.exp((i - 255 + shift) * scale).float()
    v = work.to(torch.int32)
    top = v.amax(dim=-1, keepdim=True)
    index = (v - top + 255) if not signed else (v - top + 127 + 128) % 256
    e = table[index.long()]
    total = torch.cumsum(e, dim=-1)[..., -1:]
    inv = torch.floor(1.0 / y_scale.float())
    q = torch.round(e * inv / total).to(torch.int32)
    if y_zero is not None:
        q = q + y_zero.to(torch.int32)
    info = torch.iinfo(x.dtype)
    y = q.clamp(info.min, info.max).to(x.dtype)
    return y.reshape(shape) if flatten else y.movedim(-1, axis)


@converter("QLinearSoftmax", since=1, domain=MS)
def qlinear_softmax(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """QLinearSoftmax(X, X_scale, X_zp?, Y_scale, Y_zp?) -> Y quantized (softmax over axis)"""
    opset = node.attr_int("opset")
    axis = node.attr_int("axis", 1 if opset < 13 else -1)
    kwargs: dict = {"axis": axis}
    if opset < 13:
        kwargs["flatten"] = True
    return Lowered(qlinear_softmax_fn, inputs=[node.input(i) for i in range(5)], kwargs=kwargs)


class QLinearPool(nn.Module):
    """Dequantize, pool in float32 with a float pooling layer, quantize again."""

    def __init__(self, pool, kwargs: dict, channels_last: bool):
        super().__init__()
        if isinstance(pool, nn.Module):
            self.pool, self.fn = pool, None
        else:
            self.pool, self.fn = None, pool
        self.kwargs = dict(kwargs)
        self.channels_last = channels_last

    def extra_repr(self) -> str:
        return f"channels_last={self.channels_last}"

    def forward(self, x, x_scale, x_zero, y_scale, y_zero=None):
        v = _deq(x, x_scale, x_zero)
        if self.channels_last:
            v = v.movedim(-1, 1)
        v = self.pool(v) if self.pool is not None else self.fn(v, **self.kwargs)
        if self.channels_last:
            v = v.movedim(1, -1)
        # NOTE: onnxruntime's QLinearAveragePool adds the zero point before rounding,
        # nearbyint(v / y_scale + y_zero_point), which differs from rounding first on ties.
        y = v / y_scale.float()
        if y_zero is not None:
            y = y + y_zero.float()
        dtype = _out_dtype(x, y_zero)
        info = torch.iinfo(dtype)
        return torch.round(y).clamp(info.min, info.max).to(dtype)


@converter("QLinearAveragePool", since=1, domain=MS)
def qlinear_average_pool(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """QLinearAveragePool(X, x_scale, x_zp?, y_scale, y_zp?) -> Y = quantize(AveragePool(dequantize(X)))"""
    from onnx2torch.ops.pool import average_pool

    channels_last = bool(node.attr_int("channels_last", 0))
    if channels_last:
        raise node.unsupported("channels_last", 1, "0 (NCHW)")
    standard = _standard_node(node, "AveragePool", 19, drop=("channels_last",), inputs=[node.input(0)])
    lowered = average_pool(standard, ctx)
    return Lowered(QLinearPool(lowered.target, lowered.kwargs, channels_last), inputs=[node.input(i) for i in range(5)])


def qgemm_fn(a: torch.Tensor, a_scale: torch.Tensor, a_zero: torch.Tensor, b: torch.Tensor, b_scale: torch.Tensor,
             b_zero: torch.Tensor | None, c: torch.Tensor | None = None, y_scale: torch.Tensor | None = None,
             y_zero: torch.Tensor | None = None, *, alpha: float = 1.0, trans_a: bool = False,
             trans_b: bool = False) -> torch.Tensor:
    """QGemm: int32 ``(A - a_zp) @ (B - b_zp) + C`` scaled by ``alpha * a_scale * b_scale``, as
    float32 or requantized with ``y_scale`` / ``y_zero_point``."""
    da = a.to(torch.int32) - a_zero.to(torch.int32)
    db = b.to(torch.int32)
    if b_zero is not None:
        bz = b_zero.to(torch.int32)
        if bz.numel() > 1 and trans_b:
            bz = bz.reshape(-1, 1)
        db = db - bz
    if trans_a:
        da = da.t()
    if trans_b:
        db = db.t()
    # NOTE: float64 holds the 8-bit products and their sums exactly (an int32 accumulator).
    acc = torch.matmul(da.double(), db.double())
    if c is not None:
        acc = acc + c.double()
    acc = acc.float()
    scale = alpha * a_scale.float() * b_scale.float().reshape(-1)
    if y_scale is None:
        return acc * scale
    return _quant(acc * scale, y_scale, y_zero, _out_dtype(a, y_zero))


@converter("QGemm", since=1, domain=MS)
def qgemm(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """QGemm(A, a_scale, a_zp, B, b_scale, b_zp, C?, y_scale?, y_zp?) -> Y float32 or quantized"""
    kwargs: dict = {}
    alpha = node.attr_float("alpha", 1.0)
    if alpha != 1.0:
        kwargs["alpha"] = short_float(alpha)
    if node.attr_int("transA", 0):
        kwargs["trans_a"] = True
    if node.attr_int("transB", 0):
        kwargs["trans_b"] = True
    inputs = [node.input(i) for i in range(9)]
    while inputs and not inputs[-1]:
        inputs.pop()
    return Lowered(qgemm_fn, inputs=inputs, kwargs=kwargs)


def _integer_matmul_float(a_q: torch.Tensor, a_zero: torch.Tensor | None, b: torch.Tensor, b_zero: torch.Tensor | None,
                          multiplier: torch.Tensor) -> torch.Tensor:
    """float32 ``((a_q - a_zp) @ (b - b_zp)) * multiplier`` with an exact integer product."""
    da = a_q.to(torch.int32)
    if a_zero is not None:
        da = da - a_zero.to(torch.int32)
    db = b.to(torch.int32)
    if b_zero is not None:
        db = db - b_zero.to(torch.int32)
    acc = torch.matmul(da.double(), db.double()).float()
    return acc * multiplier


def dynamic_quantize_matmul_fn(a: torch.Tensor, b: torch.Tensor, b_scale: torch.Tensor,
                               b_zero: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> torch.Tensor:
    """DynamicQuantizeMatMul: A quantized to uint8 as DynamicQuantizeLinear does, then the
    integer product scaled by a_scale * b_scale, plus bias."""
    a_q, a_scale, a_zero = onnx_dynamic_quantize_linear(a)
    y = _integer_matmul_float(a_q, a_zero, b, b_zero, a_scale * b_scale.float())
    return y if bias is None else y + bias


def matmul_integer_to_float_fn(a: torch.Tensor, b: torch.Tensor, a_scale: torch.Tensor, b_scale: torch.Tensor,
                               a_zero: torch.Tensor | None = None, b_zero: torch.Tensor | None = None,
                               bias: torch.Tensor | None = None) -> torch.Tensor:
    """MatMulIntegerToFloat: ((A - a_zp) @ (B - b_zp)) * a_scale * b_scale + bias."""
    y = _integer_matmul_float(a, a_zero, b, b_zero, a_scale.float() * b_scale.float())
    return y if bias is None else y + bias


@converter("DynamicQuantizeMatMul", since=1, domain=MS)
def dynamic_quantize_matmul(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """DynamicQuantizeMatMul(A, B, b_scale, b_zero_point?, bias?) -> Y float32"""
    return Lowered(dynamic_quantize_matmul_fn, inputs=[node.input(i) for i in range(5)])


@converter("MatMulIntegerToFloat", since=1, domain=MS)
def matmul_integer_to_float(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """MatMulIntegerToFloat(A, B, a_scale, b_scale, a_zero_point?, b_zero_point?, bias?) -> Y float"""
    return Lowered(matmul_integer_to_float_fn, inputs=[node.input(i) for i in range(7)])


@converter("QuantizeLinear", since=1, domain=MS)
def quantize_linear_ms(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """QuantizeLinear(x, y_scale, y_zero_point?) -> y  [com.microsoft: the opset-21 operator]"""
    from onnx2torch.ops.quantize import quantize_linear

    return quantize_linear(_standard_node(node, "QuantizeLinear", 21), ctx)


@converter("DequantizeLinear", since=1, domain=MS)
def dequantize_linear_ms(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """DequantizeLinear(x, x_scale, x_zero_point?) -> y  [com.microsoft: the opset-21 operator]"""
    from onnx2torch.ops.quantize import dequantize_linear

    return dequantize_linear(_standard_node(node, "DequantizeLinear", 21), ctx)


# --- MatMulNBits ---------------------------------------------------------------------------------------------
def unpack_nbits(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """The first ``count`` unsigned ``bits``-wide values packed along the last axis of a uint8
    tensor, lowest bits first."""
    per_byte = 8 // bits
    shifts = torch.arange(per_byte, dtype=torch.int32) * bits
    values = (packed.to(torch.int32).unsqueeze(-1) >> shifts) & ((1 << bits) - 1)
    return values.flatten(-2)[..., :count]


@converter("MatMulNBits", since=1, domain=MS)
def matmul_nbits(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """MatMulNBits(A, B, scales, zero_points?, g_idx?, bias?) -> Y = A @ dequantize(B)^T + bias"""
    bits, k, n, block = node.attr_int("bits", 4), node.attr_int("K"), node.attr_int("N"), node.attr_int("block_size")
    if bits not in (2, 4, 8):
        raise node.unsupported("bits", bits, "2, 4, 8")
    if node.attr_int("accuracy_level", 0) == 4:
        # NOTE: level 4 lets onnxruntime quantize A to int8 blocks, a result no float layer reproduces.
        raise node.unsupported("accuracy_level", 4, "0-3 (A kept in floating point)")
    if node.has_input(4) and ctx.constant(node.input(4)) is not None and ctx.constant(node.input(4)).numel():
        raise node.unsupported("g_idx", node.input(4), "absent (deprecated act-order indices)")
    packed, scales = ctx.constant(node.input(1)), ctx.constant(node.input(2))
    zeros = ctx.constant(node.input(3)) if node.has_input(3) else None
    bias = ctx.constant(node.input(5)) if node.has_input(5) else None
    if packed is None or scales is None or (node.has_input(3) and zeros is None) or (node.has_input(5) and bias is None):
        raise node.unsupported("weights", "computed at run time", "constant B, scales, zero_points and bias")
    blocks = (k + block - 1) // block
    q = unpack_nbits(packed.reshape(n, blocks, -1), bits, block).float()  # (n, blocks, block)
    scale = scales.reshape(n, blocks, 1).float()
    if zeros is None:
        w = (q - float(1 << (bits - 1))) * scale
    elif zeros.dtype == torch.uint8:
        zp = unpack_nbits(zeros.reshape(n, -1), bits, blocks).float().reshape(n, blocks, 1)
        w = (q - zp) * scale
    else:
        # NOTE: a zero point of the scales' (float) type is in the dequantized domain here too:
        # onnxruntime computes (q - zero_point) * scale for it as well.
        w = (q - zeros.reshape(n, blocks, 1).float()) * scale
    weight = w.reshape(n, blocks * block)[:, :k].to(scales.dtype)
    layer = nn.Linear(k, n, bias=bias is not None, device="meta", dtype=scales.dtype)
    layer.weight = nn.Parameter(weight.contiguous())
    if bias is not None:
        layer.bias = nn.Parameter(bias.detach().clone().to(scales.dtype))
    return Lowered(layer, inputs=[node.input(0)])


# --- DynamicQuantizeLSTM ----------------------------------------------------------------------------------------
def _dynamic_gemm(x: torch.Tensor, w_q: torch.Tensor, w_zero: torch.Tensor, w_scale: torch.Tensor) -> torch.Tensor:
    """onnxruntime's quantized RNN GEMM: x quantized to uint8 over the whole tensor (range
    extended to 0), the exact integer product with the int8/uint8 weight, times
    a_scale * w_scale."""
    x_q, x_scale, x_zero = onnx_dynamic_quantize_linear(x)
    da = x_q.to(torch.int32) - x_zero.to(torch.int32)
    acc = torch.matmul(da.double(), (w_q.to(torch.int32) - w_zero).double()).float()
    return acc * (x_scale * w_scale)


class QuantizedLSTM(nn.Module):
    """com.microsoft DynamicQuantizeLSTM: the ONNX LSTM (gates i, o, f, c; default activations
    sigmoid / tanh / tanh) whose two matrix products run as onnxruntime's quantized GEMM — the
    input projection over all time steps at once, the recurrence per step — with the weights
    kept quantized (int8/uint8 buffers, ``[input, 4 * hidden]`` per direction)."""

    def __init__(self, hidden: int, directions: int, w: torch.Tensor, r: torch.Tensor, w_scale: torch.Tensor,
                 w_zero: torch.Tensor, r_scale: torch.Tensor, r_zero: torch.Tensor, bias: torch.Tensor | None,
                 peephole: torch.Tensor | None, clip: float | None, input_forget: bool, reverse_only: bool):
        super().__init__()
        self.hidden = hidden
        self.directions = directions
        self.clip = clip
        self.input_forget = input_forget
        self.reverse_only = reverse_only
        self.register_buffer("w", w.clone())
        self.register_buffer("r", r.clone())
        self.register_buffer("w_scale", w_scale.float().reshape(directions, -1).clone())
        self.register_buffer("w_zero", w_zero.to(torch.int32).reshape(directions, -1).clone())
        self.register_buffer("r_scale", r_scale.float().reshape(directions, -1).clone())
        self.register_buffer("r_zero", r_zero.to(torch.int32).reshape(directions, -1).clone())
        self.bias = None if bias is None else nn.Parameter(bias.float().clone())
        self.peephole = None if peephole is None else nn.Parameter(peephole.float().clone())

    def extra_repr(self) -> str:
        return (f"hidden_size={self.hidden}, directions={self.directions}, clip={self.clip}, "
                f"input_forget={self.input_forget}")

    def _direction(self, x: torch.Tensor, d: int, h: torch.Tensor, c: torch.Tensor, reverse: bool):
        hs = self.hidden
        steps = x.shape[0]
        gates_x = _dynamic_gemm(x.reshape(-1, x.shape[-1]), self.w[d], self.w_zero[d], self.w_scale[d])
        gates_x = gates_x.reshape(steps, x.shape[1], 4 * hs)
        if self.bias is not None:
            gates_x = gates_x + self.bias[d, : 4 * hs] + self.bias[d, 4 * hs:]
        p_i = p_o = p_f = None
        if self.peephole is not None:
            p_i, p_o, p_f = self.peephole[d].split(hs)
        outputs = []
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        rows = h.shape[0]
        chunk = rows
        if rows > 4 or (rows >= 2 and hs <= 256):
            # NOTE: onnxruntime splits the batch over its intra-op threads for the recurrence and
            # quantizes each group of rows of H separately (UniDirectionalLstm batch_parallel_);
            # the converted model follows it for onnxruntime run with torch's thread count.
            threads = max(1, torch.get_num_threads())
            chunk = -(-rows // threads)
        for t in order:
            recurrent = torch.cat([_dynamic_gemm(h[s:s + chunk], self.r[d], self.r_zero[d], self.r_scale[d])
                                   for s in range(0, rows, chunk)])
            g = gates_x[t] + recurrent
            if self.clip is not None:
                g = g.clamp(-self.clip, self.clip)
            gi, go, gf, gc = g.split(hs, dim=-1)
            if p_i is not None:
                gi = gi + p_i * c
                gf = gf + p_f * c
            i = torch.sigmoid(gi)
            f = 1 - i if self.input_forget else torch.sigmoid(gf)
            c = f * c + i * torch.tanh(gc)
            if p_o is not None:
                go = go + p_o * c
            h = torch.sigmoid(go) * torch.tanh(c)
            outputs.append(h)
        if reverse:
            outputs.reverse()
        return torch.stack(outputs), h, c

    def forward(self, x: torch.Tensor, initial_h: torch.Tensor | None = None, initial_c: torch.Tensor | None = None):
        batch = x.shape[1]
        ys, hs, cs = [], [], []
        for d in range(self.directions):
            h = x.new_zeros(batch, self.hidden) if initial_h is None else initial_h[d]
            c = x.new_zeros(batch, self.hidden) if initial_c is None else initial_c[d]
            y, h, c = self._direction(x, d, h, c, reverse=self.reverse_only or d == 1)
            ys.append(y)
            hs.append(h)
            cs.append(c)
        return torch.stack(ys, dim=1), torch.stack(hs), torch.stack(cs)


@converter("DynamicQuantizeLSTM", since=1, domain=MS)
def dynamic_quantize_lstm(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """DynamicQuantizeLSTM(X, W, R, B?, sequence_lens?, initial_h?, initial_c?, P?, W_scale, W_zero_point,
    R_scale, R_zero_point) -> (Y?, Y_h?, Y_c?)"""
    if node.has_input(4):
        raise node.unsupported("sequence_lens", node.input(4), "absent (every sequence full length)")
    activations = node.attr("activations", None)
    if activations and [a.lower() for a in activations] != ["sigmoid", "tanh", "tanh"] * (len(activations) // 3):
        raise node.unsupported("activations", activations, "the defaults Sigmoid, Tanh, Tanh")
    if node.attr("activation_alpha", None) or node.attr("activation_beta", None):
        raise node.unsupported("activation_alpha/beta", node.attr("activation_alpha", None), "absent")
    direction = node.attr_str("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise node.unsupported("direction", direction, "forward, reverse, bidirectional")
    directions = 2 if direction == "bidirectional" else 1
    names = {"W": 1, "R": 2, "W_scale": 8, "W_zero_point": 9, "R_scale": 10, "R_zero_point": 11}
    values = {key: ctx.constant(node.input(i)) for key, i in names.items()}
    missing = [key for key, v in values.items() if v is None]
    if missing:
        raise node.unsupported("quantized weights", ", ".join(missing), "constant W, R, scales and zero points")
    bias = ctx.constant(node.input(3)) if node.has_input(3) else None
    peephole = ctx.constant(node.input(7)) if node.has_input(7) else None
    if (node.has_input(3) and bias is None) or (node.has_input(7) and peephole is None):
        raise node.unsupported("B / P", "computed at run time", "constant bias and peepholes")
    hidden = node.attr_int("hidden_size", 0) or values["R"].shape[1]
    clip = node.attr("clip", None)
    module = QuantizedLSTM(hidden, directions, values["W"], values["R"], values["W_scale"], values["W_zero_point"],
                           values["R_scale"], values["R_zero_point"], bias, peephole,
                           None if clip is None else short_float(clip), bool(node.attr_int("input_forget", 0)),
                           direction == "reverse")
    inputs = [node.input(0), node.input(5), node.input(6)]
    while inputs and not inputs[-1]:
        inputs.pop()
    return Lowered(QuantizedLSTMOutputs(module, len(node.outputs)), inputs=inputs)


class QuantizedLSTMOutputs(nn.Module):
    """Keeps as many of ``(Y, Y_h, Y_c)`` as the node declares."""

    def __init__(self, lstm: QuantizedLSTM, count: int):
        super().__init__()
        self.lstm = lstm
        self.count = count

    def extra_repr(self) -> str:
        return f"outputs={self.count}"

    def forward(self, x, initial_h=None, initial_c=None):
        out = self.lstm(x, initial_h, initial_c)
        return out[0] if self.count == 1 else out[: self.count]
