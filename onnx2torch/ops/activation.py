"""Converters: activation functions (Relu ... Swish), Softmax / LogSoftmax / Hardmax, Clip, Dropout.

Elementwise activations become the matching ``torch.nn`` layer whenever its formula is the ONNX one
for the node's attributes, otherwise a small named function.  Dropout becomes ``nn.Dropout`` (or a
subclass that also returns the mask), built in eval mode so the converted model computes ONNX's
inference result while ``model.train()`` turns dropout back on for fine-tuning.
"""
from __future__ import annotations

import logging
import math
import struct

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.dtypes import torch_dtype
from onnx2torch.registry import Lowered, converter

__all__ = [
    "DropoutWithMask",
    "celu", "clip", "clip_attributes", "dropout", "dropout_legacy", "elu", "flattened_hardmax",
    "flattened_log_softmax", "flattened_softmax", "gelu", "hard_sigmoid", "hard_sigmoid_fn",
    "hard_swish", "hardmax", "hardmax_fn", "hardmax_legacy", "leaky_relu", "log_softmax",
    "log_softmax_legacy", "mish", "onnx_dropout", "prelu", "prelu_fn", "prelu_legacy", "relu",
    "selu", "selu_fn", "short_float", "shrink", "shrink_fn", "sigmoid", "softmax", "softmax_legacy",
    "softplus", "softsign", "swish", "swish_fn", "tanh", "thresholded_relu",
]

logger = logging.getLogger(__name__)


def short_float(value: float) -> float:
    """The shortest decimal with the same float32 value: ONNX float attributes are float32, so
    ``alpha=0.01`` arrives as 0.009999999776482582; the generated code reads ``0.01`` and computes
    the same float32 number."""
    # NOTE: without numpy, so that generated code copying this (extra_repr) needs only torch:
    # the fewest significant digits whose float32 rounding is the same float32 number.
    try:
        single = struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:  # beyond float32's range: float32 rounds it to infinity
        return math.copysign(math.inf, value)
    if single != single or single in (math.inf, -math.inf):
        return single
    for digits in range(1, 10):
        text = f"{single:.{digits}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            return float(text)
    return single


def _same_f32(a: float, b: float) -> bool:
    return bool(np.float32(a) == np.float32(b))


def _is_float(ctx: ConversionContext, name: str) -> bool:
    """Whether ``name`` is a floating-point tensor (``True`` when its type is unknown)."""
    elem = ctx.elem_type(name)
    if elem is None:
        return True
    try:
        return torch_dtype(elem).is_floating_point
    except TypeError:
        return False


# --- plain elementwise activations ------------------------------------------------------------
@converter("Relu", since=1)
def relu(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Relu(X) -> Y = max(0, X)"""
    return Lowered(nn.ReLU())


@converter("LeakyRelu", since=1)
def leaky_relu(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """LeakyRelu(X) -> Y = X if X >= 0 else alpha * X"""
    return Lowered(nn.LeakyReLU(negative_slope=short_float(node.attr_float("alpha"))))


@converter("Elu", since=1)
def elu(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Elu(X) -> Y = X if X > 0 else alpha * (exp(X) - 1)"""
    return Lowered(nn.ELU(alpha=short_float(node.attr_float("alpha"))))


def selu_fn(x: torch.Tensor, *, alpha: float, gamma: float) -> torch.Tensor:
    """Selu with non-standard constants: gamma * (X if X > 0 else alpha * (exp(X) - 1))."""
    return gamma * F.elu(x, alpha)


# torch's SELU constants (the ONNX defaults are their float32 roundings).
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@converter("Selu", since=1)
def selu(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Selu(X) -> Y = gamma * (X if X > 0 else alpha * (exp(X) - 1))"""
    alpha, gamma = node.attr_float("alpha"), node.attr_float("gamma")
    if _same_f32(alpha, _SELU_ALPHA) and _same_f32(gamma, _SELU_SCALE):
        return Lowered(nn.SELU())
    return Lowered(selu_fn, kwargs={"alpha": short_float(alpha), "gamma": short_float(gamma)})


@converter("Celu", since=12)
def celu(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Celu(X) -> Y = max(0, X) + min(0, alpha * (exp(X / alpha) - 1))"""
    return Lowered(nn.CELU(alpha=short_float(node.attr_float("alpha"))))


@converter("Sigmoid", since=1)
def sigmoid(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Sigmoid(X) -> Y = 1 / (1 + exp(-X))"""
    return Lowered(nn.Sigmoid())


@converter("Tanh", since=1)
def tanh(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Tanh(input) -> output = tanh(input)"""
    return Lowered(nn.Tanh())


def hard_sigmoid_fn(x: torch.Tensor, *, alpha: float, beta: float) -> torch.Tensor:
    """HardSigmoid with any slope / offset: max(0, min(1, alpha * X + beta))."""
    return torch.clamp(x * alpha + beta, 0.0, 1.0)


@converter("HardSigmoid", since=1)
def hard_sigmoid(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """HardSigmoid(X) -> Y = max(0, min(1, alpha * X + beta))"""
    alpha, beta = node.attr_float("alpha"), node.attr_float("beta")
    # NOTE: nn.Hardsigmoid is relu6(x + 3) / 6, i.e. alpha = 1/6, beta = 0.5 (ONNX's default is 0.2).
    if _same_f32(alpha, 1.0 / 6.0) and beta == 0.5:
        return Lowered(nn.Hardsigmoid())
    return Lowered(hard_sigmoid_fn, kwargs={"alpha": short_float(alpha), "beta": short_float(beta)})


@converter("HardSwish", since=14)
def hard_swish(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """HardSwish(X) -> Y = X * max(0, min(1, X / 6 + 0.5))"""
    return Lowered(nn.Hardswish())


@converter("Softplus", since=1)
def softplus(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Softplus(X) -> Y = ln(exp(X) + 1)"""
    # NOTE: nn.Softplus returns X itself where X > 20; ln(exp(X) + 1) - X < 2.1e-9 there, below
    # float32 resolution and a 1e-10 relative error in double.
    return Lowered(nn.Softplus())


@converter("Softsign", since=1)
def softsign(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Softsign(input) -> output = input / (1 + |input|)"""
    return Lowered(nn.Softsign())


@converter("Gelu", since=20)
def gelu(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Gelu(X) -> Y = 0.5 * X * (1 + erf(X / sqrt(2))), or the tanh approximation"""
    approximate = node.attr_str("approximate")
    if approximate not in ("none", "tanh"):
        raise node.unsupported("approximate", approximate, "'none', 'tanh'")
    return Lowered(nn.GELU(approximate=approximate))


@converter("Mish", since=18)
def mish(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Mish(X) -> Y = X * tanh(softplus(X))"""
    return Lowered(nn.Mish())


@converter("ThresholdedRelu", since=10)
def thresholded_relu(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ThresholdedRelu(X) -> Y = X if X > alpha else 0"""
    return Lowered(nn.Threshold(short_float(node.attr_float("alpha")), 0.0))


def swish_fn(x: torch.Tensor, *, alpha: float) -> torch.Tensor:
    """Swish with a slope: X * sigmoid(alpha * X)."""
    return x * torch.sigmoid(alpha * x)


@converter("Swish", since=24)
def swish(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Swish(X) -> Y = X * sigmoid(alpha * X)"""
    alpha = node.attr_float("alpha")
    if alpha == 1.0:
        return Lowered(nn.SiLU())
    return Lowered(swish_fn, kwargs={"alpha": short_float(alpha)})


def shrink_fn(x: torch.Tensor, *, lambd: float, bias: float) -> torch.Tensor:
    """Shrink on any numeric type: X + bias where X < -lambd, X - bias where X > lambd, else 0;
    integers are computed exactly and truncated back to their type."""
    wide = x.double()
    y = torch.where(wide < -lambd, wide + bias, torch.where(wide > lambd, wide - bias, 0.0))
    return y.to(x.dtype)


@converter("Shrink", since=9)
def shrink(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Shrink(input) -> output = input + bias if input < -lambd; input - bias if input > lambd; else 0"""
    lambd, bias = node.attr_float("lambd"), node.attr_float("bias")
    if _is_float(ctx, node.input(0)) and lambd >= 0:
        # NOTE: the torch layers propagate NaN where ONNX's formula (both comparisons false) gives 0.
        if bias == 0.0:
            return Lowered(nn.Hardshrink(short_float(lambd)))
        if bias == lambd:
            return Lowered(nn.Softshrink(short_float(lambd)))
    # NOTE: onnxruntime computes integer Shrink in floating point and truncates the result
    # (int8 -3 with lambd = bias = 1.5 gives -1), which shrink_fn reproduces.
    return Lowered(shrink_fn, kwargs={"lambd": short_float(lambd), "bias": short_float(bias)})


# --- PRelu ------------------------------------------------------------------------------------
def prelu_fn(x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """PRelu with a broadcast slope: X where X >= 0, slope * X elsewhere."""
    return torch.where(x < 0, x * slope, x)


def prelu_channelwise(x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """PRelu-1/6 with one slope per channel (dimension 1) given as a 1-D tensor."""
    return prelu_fn(x, slope.reshape([-1] + [1] * (x.dim() - 2)))


def _native_prelu(slope: torch.Tensor, rank: int | None, legacy: bool) -> nn.PReLU | None:
    """An ``nn.PReLU`` equivalent to slope broadcast against an input of ``rank``, if there is one."""
    if not slope.is_floating_point():
        return None
    if slope.numel() == 1:
        channels = 1
    else:
        dims = list(slope.shape)
        while dims and dims[0] == 1:
            dims.pop(0)
        if legacy and len(dims) == 1:
            channels = dims[0]  # PRelu-1/6: a 1-D slope is per channel
        elif rank is not None and rank >= 2 and len(dims) == rank - 1 and all(d == 1 for d in dims[1:]):
            channels = dims[0]  # [C, 1, ..., 1] lines up with dimension 1 of NC...
        else:
            return None
    module = nn.PReLU(num_parameters=channels)
    module.weight = nn.Parameter(slope.detach().reshape(-1).clone())
    return module


def _prelu(node: OnnxNode, ctx: ConversionContext, legacy: bool) -> Lowered:
    slope = ctx.constant(node.input(1))
    if slope is not None and _is_float(ctx, node.input(0)):
        native = _native_prelu(slope, ctx.rank(node.input(0)), legacy)
        if native is not None:
            return Lowered(native, inputs=node.inputs[:1])
    slope_rank = slope.dim() if slope is not None else ctx.rank(node.input(1))
    if legacy and slope_rank == 1:
        return Lowered(prelu_channelwise)
    return Lowered(prelu_fn)


@converter("PRelu", since=1)
def prelu_legacy(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """PRelu-1/6(X, slope) -> Y = X if X >= 0 else slope * X; slope of size 1 or one per channel"""
    return _prelu(node, ctx, legacy=True)


@converter("PRelu", since=7)
def prelu(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """PRelu(X, slope) -> Y = X if X >= 0 else slope * X; slope unidirectionally broadcast to X"""
    # NOTE: from opset 7 a slope of shape [C] lines up with X's LAST dimension (numpy
    # broadcasting), so only [C, 1, ..., 1] (rank - 1 dims) is nn.PReLU's per-channel layout.
    return _prelu(node, ctx, legacy=False)


# --- Softmax family ---------------------------------------------------------------------------
def flattened_softmax(x: torch.Tensor, *, axis: int) -> torch.Tensor:
    """Softmax-1/11: softmax over all dimensions from ``axis`` on (X coerced to 2-D at axis)."""
    return torch.softmax(x.flatten(axis), dim=-1).reshape(x.shape)


def flattened_log_softmax(x: torch.Tensor, *, axis: int) -> torch.Tensor:
    """LogSoftmax-1/11: log-softmax over all dimensions from ``axis`` on (X coerced to 2-D)."""
    return torch.log_softmax(x.flatten(axis), dim=-1).reshape(x.shape)


def hardmax_fn(x: torch.Tensor, *, axis: int = -1) -> torch.Tensor:
    """Hardmax-13: 1 at the first maximum along ``axis``, 0 elsewhere."""
    return torch.zeros_like(x).scatter(axis, x.argmax(axis, keepdim=True), 1.0)


def flattened_hardmax(x: torch.Tensor, *, axis: int) -> torch.Tensor:
    """Hardmax-1/11: hardmax over all dimensions from ``axis`` on (X coerced to 2-D at axis)."""
    return hardmax_fn(x.flatten(axis), axis=-1).reshape(x.shape)


def _is_last_axis(node: OnnxNode, ctx: ConversionContext, axis: int) -> bool:
    rank = ctx.rank(node.input(0))
    return axis == -1 or (rank is not None and axis == rank - 1)


@converter("Softmax", since=1)
def softmax_legacy(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Softmax-1/11(input) -> output; softmax of input coerced to 2-D at axis (default 1)"""
    axis = node.attr_int("axis")
    if _is_last_axis(node, ctx, axis):
        return Lowered(nn.Softmax(dim=-1))
    return Lowered(flattened_softmax, kwargs={"axis": axis})


@converter("Softmax", since=13)
def softmax(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Softmax(input) -> output = exp(input) / sum(exp(input), axis) (default axis -1)"""
    return Lowered(nn.Softmax(dim=node.attr_int("axis")))


@converter("LogSoftmax", since=1)
def log_softmax_legacy(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """LogSoftmax-1/11(input) -> output; log-softmax of input coerced to 2-D at axis (default 1)"""
    axis = node.attr_int("axis")
    if _is_last_axis(node, ctx, axis):
        return Lowered(nn.LogSoftmax(dim=-1))
    return Lowered(flattened_log_softmax, kwargs={"axis": axis})


@converter("LogSoftmax", since=13)
def log_softmax(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """LogSoftmax(input) -> output = log(softmax(input, axis)) (default axis -1)"""
    return Lowered(nn.LogSoftmax(dim=node.attr_int("axis")))


@converter("Hardmax", since=1)
def hardmax_legacy(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Hardmax-1/11(input) -> output; one-hot of the first maximum of input coerced to 2-D at axis"""
    axis = node.attr_int("axis")
    if _is_last_axis(node, ctx, axis):
        return Lowered(hardmax_fn, kwargs={"axis": -1})
    return Lowered(flattened_hardmax, kwargs={"axis": axis})


@converter("Hardmax", since=13)
def hardmax(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Hardmax(input) -> output; 1 at the first maximum along axis (default -1), 0 elsewhere"""
    return Lowered(hardmax_fn, kwargs={"axis": node.attr_int("axis")})


# --- Clip -------------------------------------------------------------------------------------
def _clamp(node: OnnxNode, ctx: ConversionContext, low: float | int | None, high: float | int | None) -> Lowered:
    if low is None and high is None:
        return Lowered(nn.Identity(), inputs=node.inputs[:1])
    if low == 0 and high == 6 and _is_float(ctx, node.input(0)):
        return Lowered(nn.ReLU6(), inputs=node.inputs[:1])
    kwargs = {k: v for k, v in (("min", low), ("max", high)) if v is not None}
    return Lowered(torch.clamp, inputs=node.inputs[:1], kwargs=kwargs)


@converter("Clip", since=1)
def clip_attributes(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Clip-1/6(input) -> output = min(max(input, min), max); bounds as attributes"""
    # NOTE: Clip-1 has no defaults (absent = unbounded); Clip-6 defaults to -FLT_MAX / FLT_MAX,
    # which node.attr returns from the schema, and which also clip +-inf to +-FLT_MAX.
    low, high = node.attr("min"), node.attr("max")
    return _clamp(node, ctx, None if low is None else float(low), None if high is None else float(high))


@converter("Clip", since=11)
def clip(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Clip(input, min?, max?) -> output = min(max(input, min), max); min > max gives max"""
    bounds = [node.input(1), node.input(2)]
    values = [ctx.constant(name) for name in bounds]
    if all(not name or value is not None for name, value in zip(bounds, values)):
        low, high = (None if v is None else v.reshape(-1)[0].item() for v in values)
        return _clamp(node, ctx, low, high)
    # NOTE: torch.clamp(x, min, max) with tensor bounds is min(max(x, min), max) as Clip-13 states.
    return Lowered(torch.clamp, inputs=[node.input(0)] + bounds)


# --- Dropout ----------------------------------------------------------------------------------
class DropoutWithMask(nn.Dropout):
    """``nn.Dropout`` that also returns ONNX Dropout's mask: all true (ones) in eval mode; in
    training mode the kept positions, with the kept values scaled by 1 / (1 - p)."""

    def __init__(self, p: float = 0.5, mask_dtype: torch.dtype | None = torch.bool):
        super().__init__(p=p)
        self.mask_dtype = mask_dtype

    def extra_repr(self) -> str:
        dtype = "same as input" if self.mask_dtype is None else str(self.mask_dtype)
        return f"{super().extra_repr()}, mask_dtype={dtype}"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask_dtype = x.dtype if self.mask_dtype is None else self.mask_dtype
        if not self.training or self.p == 0.0:
            return x, torch.ones_like(x, dtype=mask_dtype)
        keep = torch.rand_like(x, dtype=torch.float32) >= self.p
        scale = 1.0 / (1.0 - self.p) if self.p < 1.0 else 0.0
        return x * keep * scale, keep.to(mask_dtype)


def onnx_dropout(
    x: torch.Tensor,
    training_mode: torch.Tensor | None = None,
    ratio: torch.Tensor | float = 0.5,
    return_mask: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Dropout-12 whose training_mode comes from the graph: random dropout of X scaled by
    1 / (1 - ratio) where training_mode is true, X itself (mask all true) otherwise."""
    if training_mode is None:
        output, mask = x, torch.ones_like(x, dtype=torch.bool)
    else:
        keep = torch.rand_like(x, dtype=torch.float32) >= ratio
        output = torch.where(training_mode, (x * keep / (1 - ratio)).to(x.dtype), x)
        mask = keep | ~training_mode
    return (output, mask) if return_mask else output


def _dropout_module(p: float, with_mask: bool, mask_dtype: torch.dtype | None) -> nn.Module:
    module = DropoutWithMask(p, mask_dtype) if with_mask else nn.Dropout(p)
    # NOTE: built in eval mode: ONNX inference is the identity; model.train() re-enables dropout.
    return module.eval()


@converter("Dropout", since=1, deterministic=False)
def dropout_legacy(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Dropout-1/6/7/10(data) -> output, mask?; ratio as an attribute"""
    if node.opset < 7 and not node.attr_int("is_test"):
        # NOTE: is_test=0 asks for training-mode dropout; like Dropout-7, which leaves the mode to
        # the runtime, the converted module drops only after model.train().
        logger.info("%s: is_test=0; dropout follows the module's train()/eval() mode", node.describe())
    mask_dtype = torch.bool if node.opset >= 10 else None  # before opset 10 the mask has X's type
    ratio = short_float(node.attr_float("ratio"))
    return Lowered(_dropout_module(ratio, len(node.outputs) > 1, mask_dtype), inputs=node.inputs[:1])


@converter("Dropout", since=12, deterministic=False)
def dropout(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Dropout(data, ratio?, training_mode?) -> output, mask?; output = data * mask / (1 - ratio) in training"""
    if node.has_attr("seed"):
        logger.info("%s: seed=%s is ignored (torch's random stream differs anyway)", node.describe(), node.attr("seed"))
    with_mask = len(node.outputs) > 1
    ratio_name, mode_name = node.input(1), node.input(2)
    ratio = ctx.constant(ratio_name) if ratio_name else torch.tensor(0.5)
    mode = ctx.constant(mode_name) if mode_name else torch.tensor(False)
    inference_only = mode is not None and not bool(mode)
    if inference_only and ratio is not None:
        return Lowered(_dropout_module(short_float(ratio.item()), with_mask, torch.bool), inputs=node.inputs[:1])
    kwargs = {"return_mask": True} if with_mask else {}
    if inference_only:  # ratio is only known at run time and ignored outside training
        return Lowered(onnx_dropout, inputs=node.inputs[:1], kwargs=kwargs)
    if ratio is not None:
        return Lowered(onnx_dropout, inputs=[node.input(0), mode_name], kwargs={"ratio": short_float(ratio.item()), **kwargs})
    return Lowered(onnx_dropout, inputs=[node.input(0), mode_name, ratio_name], kwargs=kwargs)
