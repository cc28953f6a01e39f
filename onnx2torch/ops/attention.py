"""Converters: attention family — Attention, RotaryEmbedding, TensorScatter, SwiGLU,
CausalConvWithState, LinearAttention and ai.onnx.preview FlexAttention.

``Attention`` (opsets 23, 24 and 25 share one converter: 24 adds the ``nonpad_kv_seqlen`` input,
25 the sliding-window attributes, and the errata of each release apply to all three) becomes
:class:`OnnxAttention`.  It calls ``F.scaled_dot_product_attention`` whenever that computes the
node exactly — float32 / float64, no softcap, no ``qk_matmul_output``, softmax at the input
precision — and otherwise an explicit matmul / softmax / matmul.  Both honour the spec's fully-masked-row rule (a query that
may attend no key gives a zero row, not NaN), decided on the additive bias as the reference does.

``CausalConvWithState`` with constant weights owns a depthwise ``nn.Conv1d``; ``LinearAttention``
runs its recurrence as an explicit loop over time in float32, as the spec's reference does.
"""
from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from onnx import TensorProto
from torch import fx, nn

from onnx2torch.assemble import ConversionContext, build_subgraph
from onnx2torch.attributes import OnnxNode
from onnx2torch.ops.activation import short_float
from onnx2torch.registry import Lowered, converter

__all__ = [
    "CausalConvWithState",
    "FlexAttention",
    "LinearAttentionRecurrence",
    "OnnxAttention",
    "RotaryEmbedding",
    "attention",
    "attention_bias",
    "causal_conv_with_state",
    "flex_attention",
    "linear_attention",
    "rotary_embedding",
    "split_heads",
    "stepwise_softmax",
    "swiglu",
    "swiglu_fn",
    "tensor_scatter",
    "tensor_scatter_fn",
]

logger = logging.getLogger(__name__)

#: ``softmax_precision`` values the spec allows (TensorProto element types).
_SOFTMAX_PRECISIONS = {
    TensorProto.FLOAT: torch.float32,
    TensorProto.FLOAT16: torch.float16,
    TensorProto.DOUBLE: torch.float64,
    TensorProto.BFLOAT16: torch.bfloat16,
}
_PRECISION_NAMES = "1 (FLOAT), 10 (FLOAT16), 11 (DOUBLE), 16 (BFLOAT16)"


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(batch, seq, heads * head_size) -> (batch, heads, seq, head_size)."""
    return x.unflatten(-1, (num_heads, -1)).transpose(1, 2)


def _dtype_name(dtype: torch.dtype | None) -> str | None:
    return None if dtype is None else str(dtype).replace("torch.", "")


# --- Attention --------------------------------------------------------------------------------
_HALF_TYPES = (torch.float16, torch.bfloat16)


def stepwise_softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis as exp(x - max) / sum, each step rounded to ``x``'s dtype —
    the spec's softmax at float16 / bfloat16 precision (``torch.softmax`` rounds only once)."""
    exp = torch.exp(x - x.amax(dim=-1, keepdim=True))
    return exp / exp.sum(dim=-1, keepdim=True)


def attention_bias(
    q_len: int,
    kv_len: int,
    dtype: torch.dtype,
    device: torch.device,
    *,
    attn_mask: torch.Tensor | None = None,
    offset: int | torch.Tensor = 0,
    nonpad_kv_seqlen: torch.Tensor | None = None,
    is_causal: bool = False,
    left_window: int = -1,
    right_window: int = -1,
) -> torch.Tensor | None:
    """The additive attention bias of ONNX Attention (0 where a key may be attended, -inf where
    not, plus a float mask's values), or ``None`` when nothing masks.

    ``offset`` is the absolute position of the first query among the keys: the past length for
    an internal cache, ``nonpad_kv_seqlen - q_len`` per batch (shape (batch, 1, 1, 1)) for an
    external one.
    """
    bias = None
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            bias = torch.zeros((), dtype=dtype, device=device).masked_fill(~attn_mask, -math.inf)
        elif attn_mask.is_floating_point():
            # NOTE: a float mask of another precision promotes the scores like numpy does in the
            # reference (a float32 mask on float16 Q gives float32 logits).
            bias = attn_mask.to(torch.promote_types(dtype, attn_mask.dtype))
        else:
            # NOTE: integer masks (allowed by type U) are additive values, as in onnxruntime.
            bias = attn_mask.to(dtype)
        missing = kv_len - bias.shape[-1]
        if missing > 0:
            # NOTE: a mask shorter than the total sequence is padded with -inf (False), per spec.
            bias = F.pad(bias, (0, missing), value=-math.inf)
        if bias.dim() < 2:
            bias = bias.unsqueeze(0)
    allowed = None  # where the causal frontier, the windows and the padding let a query look
    if is_causal or left_window >= 0 or right_window >= 0:
        # NOTE: bottom-right alignment: query i sits at absolute position offset + i.
        query_pos = torch.arange(q_len, device=device).unsqueeze(-1) + offset
        distance = query_pos - torch.arange(kv_len, device=device)
        limits = []
        if is_causal:
            limits.append(distance >= 0)
        if left_window >= 0:
            limits.append(distance <= left_window)
        if right_window >= 0:
            limits.append(distance >= -right_window)
        for limit in limits:
            allowed = limit if allowed is None else allowed & limit
    if nonpad_kv_seqlen is not None:
        valid = torch.arange(kv_len, device=device) < nonpad_kv_seqlen.reshape(-1, 1, 1, 1)
        allowed = valid if allowed is None else allowed & valid
    if allowed is not None:
        term = torch.zeros((), dtype=dtype if bias is None else bias.dtype, device=device)
        term = term.masked_fill(~allowed, -math.inf)
        bias = term if bias is None else bias + term
    return bias


class OnnxAttention(nn.Module):
    """ONNX Attention: scaled dot-product attention with GQA, masks, causal / sliding windows,
    KV cache concatenation, softcap and the optional ``qk_matmul_output``.

    ``forward(Q, K, V, attn_mask?, past_key?, past_value?, nonpad_kv_seqlen?)`` returns ``Y`` and,
    when ``num_outputs`` > 1, ``(Y, present_key, present_value, qk_matmul_output)[:num_outputs]``.
    """

    def __init__(
        self,
        *,
        q_num_heads: int | None = None,
        kv_num_heads: int | None = None,
        scale: float | None = None,
        is_causal: bool = False,
        softcap: float = 0.0,
        qk_matmul_output_mode: int = 0,
        softmax_dtype: torch.dtype | None = None,
        left_window: int = -1,
        right_window: int = -1,
        num_outputs: int = 1,
        use_sdpa: bool = True,
    ):
        super().__init__()
        self.q_num_heads = q_num_heads
        self.kv_num_heads = kv_num_heads
        self.scale = scale
        self.is_causal = is_causal
        self.softcap = softcap
        self.qk_matmul_output_mode = qk_matmul_output_mode
        self.softmax_dtype = softmax_dtype
        self.left_window = left_window
        self.right_window = right_window
        self.num_outputs = num_outputs
        self.use_sdpa = use_sdpa

    def extra_repr(self) -> str:
        parts = []
        if self.q_num_heads is not None:
            parts.append(f"q_num_heads={self.q_num_heads}, kv_num_heads={self.kv_num_heads}")
        if self.scale is not None:
            parts.append(f"scale={short_float(self.scale)}")
        if self.is_causal:
            parts.append("is_causal=True")
        if self.softcap:
            parts.append(f"softcap={short_float(self.softcap)}")
        if self.left_window >= 0 or self.right_window >= 0:
            parts.append(f"window=({self.left_window}, {self.right_window})")
        if self.softmax_dtype is not None:
            parts.append(f"softmax_dtype={_dtype_name(self.softmax_dtype)}")
        if self.num_outputs > 3:
            parts.append(f"qk_matmul_output_mode={self.qk_matmul_output_mode}")
        parts.append(f"num_outputs={self.num_outputs}")
        if not self.use_sdpa:
            parts.append("use_sdpa=False")
        return ", ".join(parts)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        past_key: torch.Tensor | None = None,
        past_value: torch.Tensor | None = None,
        nonpad_kv_seqlen: torch.Tensor | None = None,
    ):
        packed = q.dim() == 3
        if packed:
            if self.q_num_heads is None or self.kv_num_heads is None:
                raise ValueError("Attention with 3-D inputs needs q_num_heads and kv_num_heads")
            q = split_heads(q, self.q_num_heads)
            k = split_heads(k, self.kv_num_heads)
            v = split_heads(v, self.kv_num_heads)
        offset = 0
        if past_key is not None:
            offset = past_key.shape[2]
            k = torch.cat((past_key, k), dim=2)
            v = torch.cat((past_value, v), dim=2)
        present_key, present_value = k, v
        if nonpad_kv_seqlen is not None:
            offset = (nonpad_kv_seqlen - q.shape[2]).reshape(-1, 1, 1, 1)
        windowed = self.left_window >= 0 or self.right_window >= 0
        # NOTE: float16 / bfloat16 take the explicit path: SDPA rounds once at the end while the
        # spec computes the softmax at the input precision step by step (up to 2 ulps apart).
        sdpa = self.use_sdpa and q.dtype == k.dtype == v.dtype and q.dtype in (torch.float32, torch.float64)
        # NOTE: SDPA's is_causal is top-left aligned, ONNX's bottom-right: equal when offset is 0.
        sdpa_causal = (sdpa and self.is_causal and attn_mask is None and past_key is None
                       and nonpad_kv_seqlen is None and not windowed)
        bias = attention_bias(
            q.shape[2], k.shape[2], q.dtype, q.device, attn_mask=attn_mask, offset=offset,
            nonpad_kv_seqlen=nonpad_kv_seqlen, is_causal=self.is_causal and not sdpa_causal,
            left_window=self.left_window, right_window=self.right_window,
        )
        # NOTE: a query row whose bias is all -inf attends nothing and is a zero row (spec errata).
        fully_masked = None if bias is None else torch.isneginf(bias.amax(dim=-1, keepdim=True))
        head_size = q.shape[-1]
        scale = self.scale if self.scale is not None else 1.0 / math.sqrt(head_size)
        q_heads, kv_heads = q.shape[1], k.shape[1]
        if q_heads != kv_heads and q_heads % kv_heads:
            raise ValueError(f"Attention: q_num_heads={q_heads} is not a multiple of kv_num_heads={kv_heads}")
        qk_output = None
        if sdpa and (bias is None or bias.dtype == q.dtype):
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=sdpa_causal, scale=scale,
                                               enable_gqa=q_heads != kv_heads)
            if fully_masked is not None:
                y = y.masked_fill(fully_masked, 0.0)
        else:
            if q_heads != kv_heads:
                k = k.repeat_interleave(q_heads // kv_heads, dim=1)
                v = v.repeat_interleave(q_heads // kv_heads, dim=1)
            # NOTE: Q and K are each scaled by sqrt(scale) rounded to Q's type (spec diagram and
            # reference), which keeps float16 products in range.
            root = q.new_tensor(math.sqrt(scale))
            scores = torch.matmul(q * root, (k * root).transpose(-1, -2))
            capped = scores
            if self.softcap > 0:
                capped = torch.tanh(scores / self.softcap) * self.softcap
            logits = capped if bias is None else capped + bias
            mode = self.qk_matmul_output_mode
            qk_output = (scores, capped, logits)[mode] if mode < 3 else None
            if self.softmax_dtype is not None:
                logits = logits.to(self.softmax_dtype)
            probs = stepwise_softmax(logits) if logits.dtype in _HALF_TYPES else torch.softmax(logits, dim=-1)
            if fully_masked is not None:
                probs = probs.masked_fill(fully_masked, 0.0)
            if mode == 3:
                qk_output = probs
            probs = probs.to(q.dtype)
            common = torch.promote_types(q.dtype, v.dtype)
            y = torch.matmul(probs.to(common), v.to(common)).to(q.dtype)
        if packed:
            y = y.transpose(1, 2).flatten(2)
        if self.num_outputs == 1:
            return y
        if qk_output is not None:
            qk_output = qk_output.to(q.dtype)
        return (y, present_key, present_value, qk_output)[: self.num_outputs]


@converter("Attention", since=23)
def attention(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Attention(Q, K, V, attn_mask?, past_key?, past_value?, nonpad_kv_seqlen?) -> (Y,
    present_key?, present_value?, qk_matmul_output?) = softmax(Q K' * scale + bias) V"""
    if node.has_input(4) != node.has_input(5):
        raise node.unsupported("past_key / past_value", (node.input(4), node.input(5)), "both or neither")
    if node.has_input(6) and node.has_input(4):
        raise node.unsupported("nonpad_kv_seqlen with past_key", node.input(6), "one KV-cache style at a time")
    q_heads, kv_heads = node.attr_int("q_num_heads"), node.attr_int("kv_num_heads")
    rank = ctx.rank(node.input(0))
    if rank == 3 and (q_heads is None or kv_heads is None):
        raise node.unsupported("3-D inputs without q_num_heads/kv_num_heads", (q_heads, kv_heads),
                               "both attributes for 3-D Q, K, V")
    if rank not in (None, 3, 4):
        raise node.unsupported("rank of Q", rank, "3 or 4")
    if q_heads is not None and kv_heads is not None and (q_heads <= 0 or kv_heads <= 0 or q_heads % kv_heads):
        raise node.unsupported("q_num_heads / kv_num_heads", (q_heads, kv_heads),
                               "q_num_heads a multiple of kv_num_heads")
    mode = node.attr_int("qk_matmul_output_mode", 0)
    if mode not in (0, 1, 2, 3):
        raise node.unsupported("qk_matmul_output_mode", mode, "0, 1, 2, 3")
    softcap = node.attr_float("softcap", 0.0)
    if softcap < 0:
        raise node.unsupported("softcap", softcap, "0 (off) or a positive cap")
    precision = node.attr_int("softmax_precision")
    softmax_dtype = None
    if precision is not None:
        if precision not in _SOFTMAX_PRECISIONS:
            raise node.unsupported("softmax_precision", precision, _PRECISION_NAMES)
        softmax_dtype = _SOFTMAX_PRECISIONS[precision]
        if ctx.elem_type(node.input(0)) == precision:
            softmax_dtype = None  # the softmax already runs at Q's precision
    left, right = node.attr_int("left_window_size", -1), node.attr_int("right_window_size", -1)
    if left < -1 or right < -1:
        raise node.unsupported("left/right_window_size", (left, right), "-1 (unbounded) or >= 0")
    scale = node.attr_float("scale")
    num_outputs = len(node.outputs)
    module = OnnxAttention(
        q_num_heads=q_heads, kv_num_heads=kv_heads,
        scale=scale, is_causal=bool(node.attr_int("is_causal", 0)), softcap=softcap,
        qk_matmul_output_mode=mode, softmax_dtype=softmax_dtype,
        left_window=left, right_window=right, num_outputs=num_outputs,
        # NOTE: SDPA has no softcap, no access to the logits and softmaxes at Q's precision.
        use_sdpa=softcap == 0 and num_outputs < 4 and softmax_dtype is None,
    )
    return Lowered(module)


# --- RotaryEmbedding ------------------------------------------------------------------------
class RotaryEmbedding(nn.Module):
    """ONNX RotaryEmbedding: rotates the first ``rotary_dim`` features of every head by the
    position's angle, halves (``interleaved=False``) or even/odd pairs (``interleaved=True``)."""

    def __init__(self, *, interleaved: bool = False, rotary_dim: int = 0, num_heads: int | None = None):
        super().__init__()
        self.interleaved = interleaved
        self.rotary_dim = rotary_dim
        self.num_heads = num_heads

    def extra_repr(self) -> str:
        return f"interleaved={self.interleaved}, rotary_dim={self.rotary_dim}, num_heads={self.num_heads}"

    def forward(self, x: torch.Tensor, cos_cache: torch.Tensor, sin_cache: torch.Tensor,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        packed = x.dim() == 3
        if packed:
            if not self.num_heads:
                raise ValueError("RotaryEmbedding with a 3-D input needs num_heads")
            heads = x.unflatten(-1, (self.num_heads, -1))  # (batch, seq, heads, head_size)
        else:
            heads = x  # (batch, heads, seq, head_size)
        if position_ids is not None:
            cos_cache, sin_cache = cos_cache[position_ids], sin_cache[position_ids]
        rotary_dim = self.rotary_dim or heads.shape[-1]
        half = rotary_dim // 2
        if cos_cache.shape[-1] != half or sin_cache.shape[-1] != half:
            raise ValueError(f"RotaryEmbedding: cos/sin caches end in {cos_cache.shape[-1]}/"
                             f"{sin_cache.shape[-1]}, rotary_embedding_dim / 2 is {half}")
        # (batch, seq, half) -> broadcast over the head axis
        cos = cos_cache.unsqueeze(2 if packed else 1)
        sin = sin_cache.unsqueeze(2 if packed else 1)
        rotate, keep = heads[..., :rotary_dim], heads[..., rotary_dim:]
        if self.interleaved:
            x1, x2 = rotate[..., 0::2], rotate[..., 1::2]
        else:
            x1, x2 = rotate[..., :half], rotate[..., half:]
        real = cos * x1 - sin * x2
        imag = sin * x1 + cos * x2
        if self.interleaved:
            rotated = torch.stack((real, imag), dim=-1).flatten(-2)
        else:
            rotated = torch.cat((real, imag), dim=-1)
        out = torch.cat((rotated, keep), dim=-1)
        return out.flatten(2) if packed else out


@converter("RotaryEmbedding", since=23)
def rotary_embedding(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """RotaryEmbedding(X, cos_cache, sin_cache, position_ids?) -> Y"""
    num_heads = node.attr_int("num_heads")
    if ctx.rank(node.input(0)) == 3 and not num_heads:
        raise node.unsupported("3-D input without num_heads", num_heads, "num_heads for 3-D inputs")
    rotary_dim = node.attr_int("rotary_embedding_dim", 0)
    if rotary_dim < 0 or rotary_dim % 2:
        raise node.unsupported("rotary_embedding_dim", rotary_dim, "0 (whole head) or an even size")
    return Lowered(RotaryEmbedding(interleaved=bool(node.attr_int("interleaved", 0)), rotary_dim=rotary_dim,
                                   num_heads=num_heads))


# --- TensorScatter --------------------------------------------------------------------------
def tensor_scatter_fn(past_cache: torch.Tensor, update: torch.Tensor, write_indices: torch.Tensor | None = None,
                      *, axis: int = -2, circular: bool = False) -> torch.Tensor:
    """TensorScatter: writes ``update`` into a copy of ``past_cache`` along ``axis`` from each
    batch entry's write index (modulo the cache length when ``circular``)."""
    axis = axis % past_cache.dim()
    length = update.shape[axis]
    positions = torch.arange(length, device=update.device).unsqueeze(0)  # (1, length)
    if write_indices is not None:
        positions = write_indices.reshape(-1, 1) + positions  # (batch, length)
    if circular:
        positions = positions % past_cache.shape[axis]
    shape = [1] * update.dim()
    shape[0], shape[axis] = positions.shape[0], length
    index = positions.reshape(shape).expand(update.shape)
    return past_cache.scatter(axis, index, update)


@converter("TensorScatter", since=24)
def tensor_scatter(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """TensorScatter(past_cache, update, write_indices?) -> present_cache"""
    mode = node.attr_str("mode", "linear")
    if mode not in ("linear", "circular"):
        raise node.unsupported("mode", mode, "'linear', 'circular'")
    axis = node.attr_int("axis", -2)
    rank = ctx.rank(node.input(0))
    if rank is not None:
        if not -rank <= axis < rank:
            raise node.unsupported("axis", axis, f"[-{rank}, {rank - 1}]")
        axis %= rank
        if axis == 0:
            raise node.unsupported("axis", axis, "any axis but the batch axis 0")
    if ctx.elem_type(node.input(0)) == TensorProto.STRING:
        raise node.unsupported("element type", "string", "numeric and bool tensors")
    return Lowered(tensor_scatter_fn, kwargs={"axis": axis, "circular": mode == "circular"})


# --- SwiGLU ---------------------------------------------------------------------------------
def swiglu_fn(a: torch.Tensor, b: torch.Tensor, *, alpha: float = 1.0) -> torch.Tensor:
    """SwiGLU: Swish_alpha(a) * b = a * sigmoid(alpha * a) * b."""
    gate = F.silu(a) if alpha == 1.0 else a * torch.sigmoid(a * alpha)
    return gate * b


@converter("SwiGLU", since=28)
def swiglu(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """SwiGLU(A, B) -> Y = A * sigmoid(alpha * A) * B"""
    alpha = short_float(node.attr_float("alpha", 1.0))
    return Lowered(swiglu_fn, kwargs={} if alpha == 1.0 else {"alpha": alpha})


# --- CausalConvWithState ----------------------------------------------------------------------
class CausalConvWithState(nn.Module):
    """Causal depthwise 1-D convolution carrying the last ``k - 1`` inputs between calls.

    ``forward(input, past_state?, weight?, bias?) -> (output, present_state)``: ``conv`` holds
    constant weights as a native ``nn.Conv1d``; without it the weight (and bias) come at run time.
    """

    def __init__(self, *, activation: str = "none", conv: nn.Conv1d | None = None):
        super().__init__()
        self.activation = activation
        self.conv = conv

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"

    def forward(self, x: torch.Tensor, past_state: torch.Tensor | None = None, weight: torch.Tensor | None = None,
                bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        kernel = self.conv.kernel_size[0] if self.conv is not None else weight.shape[-1]
        if past_state is None:
            past_state = x.new_zeros(x.shape[0], x.shape[1], kernel - 1)
        padded = torch.cat((past_state, x), dim=2)
        if self.conv is not None:
            out = self.conv(padded)
        else:
            out = F.conv1d(padded, weight, bias, groups=x.shape[1])
        if self.activation in ("silu", "swish"):
            out = F.silu(out)
        return out, padded[:, :, padded.shape[2] - (kernel - 1):]


@converter("CausalConvWithState", since=27)
def causal_conv_with_state(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """CausalConvWithState(input, weight, bias?, past_state?) -> (output, present_state)"""
    activation = node.attr_str("activation", "none")
    if activation not in ("none", "silu", "swish"):
        raise node.unsupported("activation", activation, "'none', 'silu', 'swish'")
    weight = ctx.constant(node.input(1))
    bias = ctx.constant(node.input(2)) if node.has_input(2) else None
    native = weight is not None and weight.dim() == 3 and weight.shape[1] == 1
    if native and (bias is not None or not node.has_input(2)):
        channels, _, kernel = weight.shape
        conv = nn.Conv1d(channels, channels, kernel, groups=channels, bias=bias is not None,
                         dtype=weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(weight)
            if bias is not None:
                conv.bias.copy_(bias)
        return Lowered(CausalConvWithState(activation=activation, conv=conv), inputs=[node.input(0), node.input(3)])
    return Lowered(CausalConvWithState(activation=activation),
                   inputs=[node.input(0), node.input(3), node.input(1), node.input(2)])


# --- LinearAttention ----------------------------------------------------------------------------
_UPDATE_RULES = ("linear", "gated", "delta", "gated_delta")


class LinearAttentionRecurrence(nn.Module):
    """ONNX LinearAttention: the recurrent state update run token by token in float32.

    ``forward(query, key, value, past_state?, decay?, beta?) -> (output, present_state)``.
    """

    def __init__(self, *, q_num_heads: int, kv_num_heads: int, scale: float = 0.0, update_rule: str = "gated_delta"):
        super().__init__()
        self.q_num_heads = q_num_heads
        self.kv_num_heads = kv_num_heads
        self.scale = scale
        self.update_rule = update_rule

    def extra_repr(self) -> str:
        scale = f", scale={short_float(self.scale)}" if self.scale else ""
        heads = f"q_num_heads={self.q_num_heads}, kv_num_heads={self.kv_num_heads}"
        return f"{heads}, update_rule={self.update_rule!r}{scale}"

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                past_state: torch.Tensor | None = None, decay: torch.Tensor | None = None,
                beta: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        gated = self.update_rule in ("gated", "gated_delta")
        delta = self.update_rule in ("delta", "gated_delta")
        # NOTE: the reference accumulates in float32 whatever the input precision.
        q = split_heads(query.float(), self.q_num_heads)  # (B, Hq, T, dk)
        k = split_heads(key.float(), self.kv_num_heads)  # (B, Hkv, T, dk)
        v = split_heads(value.float(), self.kv_num_heads)  # (B, Hkv, T, dv)
        batch, _, steps, d_k = k.shape
        d_v = v.shape[-1]
        group = self.q_num_heads // self.kv_num_heads
        if gated:
            per_head = decay.shape[-1] == self.kv_num_heads
            gates = split_heads(decay.float(), self.kv_num_heads)  # (B, Hkv, T, dk or 1)
            gates = torch.exp(gates).unsqueeze(-1)  # broadcast over d_v
            if not per_head and gates.shape[-2] != d_k:
                raise ValueError(f"LinearAttention: decay ends in {decay.shape[-1]}, "
                                 "expected kv_num_heads or kv_num_heads * d_k")
        if delta:
            rates = beta.float().unsqueeze(-1).transpose(1, 2)  # (B, Hkv or 1, T, 1)
        if past_state is not None:
            state = past_state.float()
        else:
            state = q.new_zeros(batch, self.kv_num_heads, d_k, d_v)
        scale = self.scale or 1.0 / math.sqrt(q.shape[-1])
        # (B, Hkv, group, T, dk): query head h reads KV head h // group
        q_grouped = q.unflatten(1, (self.kv_num_heads, group))
        outputs = []
        for t in range(steps):
            if gated:
                state = state * gates[:, :, t]
            k_t, v_t = k[:, :, t], v[:, :, t]
            if delta:
                retrieved = torch.einsum("bhdm,bhd->bhm", state, k_t)
                v_t = rates[:, :, t] * (v_t - retrieved)
            state = state + k_t.unsqueeze(-1) * v_t.unsqueeze(-2)
            outputs.append(torch.einsum("bhgd,bhdm->bhgm", q_grouped[:, :, :, t], state) * scale)
        if outputs:
            out = torch.stack(outputs, dim=3).flatten(1, 2)  # (B, Hq, T, dv)
        else:
            out = q.new_zeros(batch, self.q_num_heads, 0, d_v)
        out = out.transpose(1, 2).flatten(2).to(query.dtype)
        present = state.to(past_state.dtype if past_state is not None else query.dtype)
        return out, present


@converter("LinearAttention", since=27)
def linear_attention(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """LinearAttention(query, key, value, past_state?, decay?, beta?) -> (output, present_state)"""
    rule = node.attr_str("update_rule", "gated_delta")
    if rule not in _UPDATE_RULES:
        raise node.unsupported("update_rule", rule, ", ".join(repr(r) for r in _UPDATE_RULES))
    q_heads, kv_heads = node.attr_int("q_num_heads"), node.attr_int("kv_num_heads")
    if q_heads <= 0 or kv_heads <= 0 or q_heads % kv_heads:
        raise node.unsupported("q_num_heads / kv_num_heads", (q_heads, kv_heads),
                               "q_num_heads a positive multiple of kv_num_heads")
    gated, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
    if gated != node.has_input(4):
        raise node.unsupported("decay input", node.input(4) or None,
                               f"decay exactly when update_rule is gated (got {rule!r})")
    if delta != node.has_input(5):
        raise node.unsupported("beta input", node.input(5) or None,
                               f"beta exactly when update_rule is a delta rule (got {rule!r})")
    module = LinearAttentionRecurrence(q_num_heads=q_heads, kv_num_heads=kv_heads,
                                       scale=node.attr_float("scale", 0.0), update_rule=rule)
    return Lowered(module)


# --- FlexAttention (ai.onnx.preview) --------------------------------------------------------------
class FlexAttention(nn.Module):
    """ai.onnx.preview FlexAttention: softmax(score_mod(Q K' * scale)) then prob_mod, times V.

    ``score_mod`` / ``prob_mod`` are the converted modifier subgraphs; ``forward(Q, K, V, *outer)``
    takes after Q, K, V the outer-scope values the score graph reads, then those of the prob graph.
    """

    def __init__(self, *, scale: float | None = None, softmax_dtype: torch.dtype | None = None,
                 score_mod: fx.GraphModule | None = None, prob_mod: fx.GraphModule | None = None,
                 num_score_outer: int = 0):
        super().__init__()
        self.scale = scale
        self.softmax_dtype = softmax_dtype
        self.score_mod = score_mod
        self.prob_mod = prob_mod
        self.num_score_outer = num_score_outer

    def extra_repr(self) -> str:
        scale = None if self.scale is None else short_float(self.scale)
        return f"scale={scale}, softmax_dtype={_dtype_name(self.softmax_dtype)}"

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *outer: torch.Tensor) -> torch.Tensor:
        q_heads, kv_heads = q.shape[1], k.shape[1]
        if q_heads != kv_heads:
            if q_heads % kv_heads:
                raise ValueError(f"FlexAttention: {q_heads} query heads is not a multiple of {kv_heads} KV heads")
            k = k.repeat_interleave(q_heads // kv_heads, dim=1)
            v = v.repeat_interleave(q_heads // kv_heads, dim=1)
        scale = self.scale if self.scale is not None else 1.0 / math.sqrt(q.shape[-1])
        # NOTE: sqrt(scale) is taken in float32 and rounded to Q's type, per the reference.
        root = torch.tensor(scale, dtype=torch.float32, device=q.device).sqrt().to(q.dtype)
        scores = torch.matmul(q * root, (k * root).transpose(-1, -2))
        compute = self.softmax_dtype
        if compute is None:
            compute = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype
        scores = scores.to(compute)
        if self.score_mod is not None:
            scores = self.score_mod(scores, *outer[: self.num_score_outer])[0].to(compute)
        probs = torch.softmax(scores, dim=-1)
        if self.prob_mod is not None:
            probs = self.prob_mod(probs, *outer[self.num_score_outer:])[0].to(compute)
        return torch.matmul(probs, v.to(compute)).to(v.dtype)


@converter("FlexAttention", since=1, domain="ai.onnx.preview")
def flex_attention(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """FlexAttention(Q, K, V) -> Y = prob_mod(softmax(score_mod(Q K' * scale))) V"""
    precision = node.attr_int("softmax_precision")
    softmax_dtype = None
    if precision is not None:
        if precision not in _SOFTMAX_PRECISIONS:
            raise node.unsupported("softmax_precision", precision, _PRECISION_NAMES)
        softmax_dtype = _SOFTMAX_PRECISIONS[precision]
    rank = ctx.rank(node.input(0))
    if rank not in (None, 4):
        raise node.unsupported("rank of Q", rank, "4")
    mods, outer = {}, {"score_mod": [], "prob_mod": []}
    for name in ("score_mod", "prob_mod"):
        graph = node.attr(name)
        if graph is not None:
            if len(graph.input) != 1 or len(graph.output) != 1:
                raise node.unsupported(f"{name} graph with inputs/outputs", (len(graph.input), len(graph.output)),
                                       "1 input, 1 output")
            mods[name], outer[name] = build_subgraph(graph, ctx)
    scale = node.attr_float("scale")
    module = FlexAttention(scale=scale, softmax_dtype=softmax_dtype,
                           score_mod=mods.get("score_mod"), prob_mod=mods.get("prob_mod"),
                           num_score_outer=len(outer["score_mod"]))
    return Lowered(module, inputs=[*node.inputs[:3], *outer["score_mod"], *outer["prob_mod"]])

