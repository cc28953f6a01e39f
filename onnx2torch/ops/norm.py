"""Converters: normalization layers (BatchNormalization, InstanceNormalization, LayerNormalization,
GroupNormalization, RMSNormalization, LRN, LpNormalization, MeanVarianceNormalization).

Constant weights become the native ``torch.nn`` layer with copies of them as parameters (and the
BatchNorm statistics as running buffers), so the converted model can be fine-tuned; weights that
are computed in the graph fall back to the functional form.  BatchNorm layers are built in eval
mode: the converted model computes ONNX's inference result, ``model.train()`` switches them to
batch statistics.
"""
from __future__ import annotations

import logging

import onnx
import torch
import torch.nn.functional as F
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.dtypes import torch_dtype
from onnx2torch.ops.activation import short_float
from onnx2torch.registry import Lowered, converter

__all__ = [
    "BatchNormNd",
    "batch_norm_mixed", "batch_norm_per_element", "batch_norm_training", "batch_normalization",
    "batch_normalization_legacy", "group_norm", "group_norm_per_group", "group_normalization",
    "group_normalization_per_group", "instance_normalization", "layer_norm", "layer_normalization",
    "local_response_norm", "lp_normalize", "lp_normalization", "lrn",
    "mean_variance_normalization", "mean_variance_normalize", "rms_norm", "rms_normalization",
]

logger = logging.getLogger(__name__)

_FLOAT = onnx.TensorProto.FLOAT  # the only stash_type implemented (and the only one onnxruntime runs)


def _reduced_dims(x: torch.Tensor, axis: int) -> list[int]:
    """The dimensions ``axis, ..., rank - 1`` of ``x``."""
    start = axis if axis >= 0 else axis + x.dim()
    return list(range(start, x.dim()))


def _channel_shape(x: torch.Tensor) -> list[int]:
    """``[1, -1, 1, ..., 1]``: a per-channel vector viewed to broadcast against NC... ``x``."""
    return [1, -1] + [1] * (x.dim() - 2)


def _normalized_shape(ctx: ConversionContext, x: str, axis: int) -> list[int] | None:
    """The static dims ``axis ..`` of ``x`` (None when the rank or one of those dims is unknown)."""
    shape = ctx.shape(x)
    if shape is None:
        return None
    start = axis + len(shape) if axis < 0 else axis
    if not 0 <= start < len(shape) or not all(isinstance(d, int) for d in shape[start:]):
        return None
    return list(shape[start:])


def _broadcast_to(value: torch.Tensor, shape: list[int]) -> torch.Tensor | None:
    """``value`` expanded to ``shape`` (unidirectional broadcasting), or None if it does not fit."""
    try:
        return value.expand(shape).clone()
    except RuntimeError:
        return None


def _stash(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the type its statistics are computed in: float32 (stash_type=1), or float64 for a
    float64 ``x`` (onnxruntime's LayerNormalization and RMSNormalization kernels keep double)."""
    return x if x.dtype == torch.float64 else x.float()


def _stash_type(node: OnnxNode) -> None:
    stash = node.attr_int("stash_type")
    if stash != _FLOAT:
        raise node.unsupported("stash_type", stash, "1 (float32 statistics)")


# --- BatchNormalization -----------------------------------------------------------------------
class BatchNormNd(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over dimension 1 of an input of any rank >= 2 (nn.BatchNorm1d/2d/3d check rank)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input of rank >= 2, got rank {input.dim()}")


_BATCH_NORM_BY_RANK = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}


def batch_norm_training(
    x: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor,
    input_mean: torch.Tensor,
    input_var: torch.Tensor,
    *,
    momentum: float,
    epsilon: float,
    num_outputs: int = 1,
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """Training-mode BatchNormalization: Y normalized with the batch's mean and (population)
    variance; then running_mean, running_var = input * momentum + batch * (1 - momentum), and
    (before opset 14) saved_mean, saved_inv_std; the first ``num_outputs`` of those."""
    # NOTE: statistics of float16 / bfloat16 inputs are computed in float (BatchNormalization-15).
    wide = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    dims = [0] + list(range(2, x.dim()))
    var, mean = torch.var_mean(wide, dim=dims, correction=0)
    inv_std = torch.rsqrt(var + epsilon)
    shape = _channel_shape(x)
    y = ((wide - mean.view(shape)) * inv_std.view(shape) * scale.view(shape) + bias.view(shape)).to(x.dtype)
    running_mean = input_mean * momentum + mean.to(input_mean.dtype) * (1 - momentum)
    running_var = input_var * momentum + var.to(input_var.dtype) * (1 - momentum)
    outputs = (y, running_mean, running_var, mean.to(x.dtype), inv_std.to(x.dtype))
    return y if num_outputs == 1 else outputs[:num_outputs]


def batch_norm_per_element(
    x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, *, epsilon: float
) -> torch.Tensor:
    """BatchNormalization-1/6/7 with spatial=0 (inference): statistics of shape (C x D1 x ... x Dn)."""
    return (x - mean) / torch.sqrt(var + epsilon) * scale + bias


def batch_norm_mixed(
    x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, *, epsilon: float
) -> torch.Tensor:
    """BatchNormalization-15 (inference) whose scale / B / mean / var have another float type
    than X: computed with them cast to X's type."""
    return F.batch_norm(x, mean.to(x.dtype), var.to(x.dtype), scale.to(x.dtype), bias.to(x.dtype), eps=epsilon)


def _param_dtype(x_dtype: torch.dtype | None, param_dtype: torch.dtype) -> torch.dtype:
    """The dtype torch's batch_norm accepts for parameters of an X of ``x_dtype``: X's own, or
    float32 for a float16 / bfloat16 X (torch's mixed mode, which keeps the precision)."""
    if x_dtype is None or x_dtype == param_dtype:
        return param_dtype
    if x_dtype in (torch.float16, torch.bfloat16) and param_dtype == torch.float32:
        return param_dtype
    return x_dtype


def _batch_norm_inference(node: OnnxNode, ctx: ConversionContext, epsilon: float, momentum: float) -> Lowered:
    x, scale_name, bias_name, mean_name, var_name = node.inputs[:5]
    params = [ctx.constant(name) for name in (scale_name, bias_name, mean_name, var_name)]
    x_elem = ctx.elem_type(x)
    x_dtype = torch_dtype(x_elem) if x_elem is not None else None
    if all(isinstance(p, torch.Tensor) and p.dim() == 1 for p in params):
        # NOTE: BatchNormalization-15 lets the parameters' float type differ from X's (T1, T2).
        scale, bias, mean, var = (p.to(_param_dtype(x_dtype, p.dtype)) for p in params)
        layer_cls = _BATCH_NORM_BY_RANK.get(ctx.rank(x), BatchNormNd)
        # NOTE: ONNX momentum m updates running = m * running + (1 - m) * batch; torch's momentum
        # is the weight of the batch, 1 - m (rounded: 1 - float32(0.9) is 0.100000024).
        layer = layer_cls(scale.numel(), eps=epsilon, momentum=round(1.0 - momentum, 6))
        layer.weight = nn.Parameter(scale.detach().clone())
        layer.bias = nn.Parameter(bias.detach().clone())
        layer.running_mean = mean.detach().clone()
        layer.running_var = var.detach().clone()
        return Lowered(layer.eval(), inputs=[x])
    elems = {ctx.elem_type(name) for name in (scale_name, bias_name, mean_name, var_name)}
    if elems != {x_elem}:
        return Lowered(batch_norm_mixed, inputs=[x, scale_name, bias_name, mean_name, var_name], kwargs={"epsilon": epsilon})
    return Lowered(F.batch_norm, inputs=[x, mean_name, var_name, scale_name, bias_name], kwargs={"eps": epsilon})


@converter("BatchNormalization", since=1)
def batch_normalization_legacy(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """BatchNormalization-1/6/7/9(X, scale, B, mean, var) -> Y, mean?, var?, saved_mean?, saved_var?"""
    epsilon = short_float(node.attr_float("epsilon"))
    momentum = short_float(node.attr_float("momentum"))
    spatial = node.attr_int("spatial") if node.opset < 9 else 1
    if node.opset < 7:
        is_test = bool(node.attr_int("is_test"))
        if is_test and len(node.outputs) > 1:
            raise node.unsupported("outputs with is_test=1", node.outputs, "Y only (test mode)")
        training = not is_test
    else:
        training = len(node.outputs) > 1  # Output case #1 (training) has the statistics outputs
    if training:
        if not spatial:
            raise node.unsupported("spatial", spatial, "1 in training mode (statistics per channel)")
        # NOTE: saved_var is the inverse standard deviation 1 / sqrt(var + epsilon), as onnxruntime
        # (and Caffe2, where the op comes from) return it.
        return Lowered(batch_norm_training, kwargs={"momentum": momentum, "epsilon": epsilon, "num_outputs": len(node.outputs)})
    if not spatial:
        return Lowered(batch_norm_per_element, kwargs={"epsilon": epsilon})
    return _batch_norm_inference(node, ctx, epsilon, momentum)


@converter("BatchNormalization", since=14)
def batch_normalization(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """BatchNormalization(X, scale, B, input_mean, input_var) -> Y, running_mean?, running_var?"""
    epsilon = short_float(node.attr_float("epsilon"))
    momentum = short_float(node.attr_float("momentum"))
    if node.attr_int("training_mode"):
        return Lowered(batch_norm_training, kwargs={"momentum": momentum, "epsilon": epsilon, "num_outputs": len(node.outputs)})
    if len(node.outputs) > 1:
        raise node.unsupported("outputs with training_mode=0", node.outputs, "Y only (extra outputs are invalid)")
    return _batch_norm_inference(node, ctx, epsilon, momentum)


# --- InstanceNormalization --------------------------------------------------------------------
_INSTANCE_NORM_BY_RANK = {3: nn.InstanceNorm1d, 4: nn.InstanceNorm2d, 5: nn.InstanceNorm3d}


@converter("InstanceNormalization", since=1)
def instance_normalization(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """InstanceNormalization(input, scale, B) -> output = scale * (x - mean) / sqrt(var + epsilon) + B"""
    x, scale_name, bias_name = node.inputs[:3]
    epsilon = short_float(node.attr_float("epsilon"))
    rank = ctx.rank(x)
    if rank is not None and rank < 3:
        raise node.unsupported("input rank", rank, ">= 3 (N x C x D1 x ...)")
    scale, bias = ctx.constant(scale_name), ctx.constant(bias_name)
    layer_cls = _INSTANCE_NORM_BY_RANK.get(rank)
    if layer_cls is not None and scale is not None and bias is not None and scale.dim() == bias.dim() == 1:
        layer = layer_cls(scale.numel(), eps=epsilon, affine=True)
        layer.weight = nn.Parameter(scale.detach().clone())
        layer.bias = nn.Parameter(bias.detach().clone())
        return Lowered(layer, inputs=[x])
    return Lowered(F.instance_norm, inputs=[x, "", "", scale_name, bias_name], kwargs={"eps": epsilon})


# --- LayerNormalization / RMSNormalization ------------------------------------------------------
def layer_norm(
    x: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    axis: int = -1,
    epsilon: float = 1e-5,
    num_outputs: int = 1,
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """LayerNormalization over dims ``axis ..`` with broadcast Scale / B; statistics in float32
    (stash_type=1); returns Y, or the first ``num_outputs`` of (Y, Mean, InvStdDev), the
    statistics as float32 (type U)."""
    wide = _stash(x)
    var, mean = torch.var_mean(wide, dim=_reduced_dims(x, axis), correction=0, keepdim=True)
    inv_std_dev = torch.rsqrt(var + epsilon)
    y = ((wide - mean) * inv_std_dev).to(x.dtype) * scale
    if bias is not None:
        y = y + bias
    return y if num_outputs == 1 else (y, mean.float(), inv_std_dev.float())[:num_outputs]


@converter("LayerNormalization", since=17)
def layer_normalization(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """LayerNormalization(X, Scale, B?) -> Y, Mean?, InvStdDev?; normalized over axes axis .."""
    _stash_type(node)
    x, scale_name, bias_name = node.input(0), node.input(1), node.input(2)
    axis, epsilon = node.attr_int("axis"), short_float(node.attr_float("epsilon"))
    if len(node.outputs) == 1:
        shape = _normalized_shape(ctx, x, axis)
        scale, bias = ctx.constant(scale_name), ctx.constant(bias_name)
        if shape is not None and scale is not None and (bias is not None or not bias_name):
            weight = _broadcast_to(scale, shape)
            offset = _broadcast_to(bias, shape) if bias is not None else None
            if weight is not None and (offset is not None or bias is None):
                # NOTE: torch's layer_norm keeps float32 statistics for float16 / bfloat16 inputs
                # (stash_type=1) and double ones for double inputs (at least as precise).
                layer = nn.LayerNorm(shape, eps=epsilon, bias=offset is not None)
                layer.weight = nn.Parameter(weight)
                if offset is not None:
                    layer.bias = nn.Parameter(offset)
                return Lowered(layer, inputs=[x])
    kwargs = {"axis": axis, "epsilon": epsilon}
    if len(node.outputs) > 1:
        kwargs["num_outputs"] = len(node.outputs)
    return Lowered(layer_norm, inputs=[x, scale_name] + ([bias_name] if bias_name else []), kwargs=kwargs)


def rms_norm(x: torch.Tensor, scale: torch.Tensor, *, axis: int = -1, epsilon: float = 1e-5) -> torch.Tensor:
    """RMSNormalization over dims ``axis ..``: X / sqrt(mean(X^2) + epsilon) in float32
    (stash_type=1), cast back to X's type, times the broadcast Scale."""
    wide = _stash(x)
    mean_square = wide.square().mean(dim=_reduced_dims(x, axis), keepdim=True)
    return (wide * torch.rsqrt(mean_square + epsilon)).to(x.dtype) * scale


@converter("RMSNormalization", since=23)
def rms_normalization(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """RMSNormalization(X, scale) -> Y = X / sqrt(mean(X^2, axes axis ..) + epsilon) * scale"""
    _stash_type(node)
    x, scale_name = node.input(0), node.input(1)
    axis, epsilon = node.attr_int("axis"), short_float(node.attr_float("epsilon"))
    shape = _normalized_shape(ctx, x, axis)
    scale = ctx.constant(scale_name)
    if shape is not None and scale is not None and ctx.elem_type(x) == ctx.elem_type(scale_name):
        weight = _broadcast_to(scale, shape)
        if weight is not None:
            layer = nn.RMSNorm(shape, eps=epsilon)
            layer.weight = nn.Parameter(weight)
            return Lowered(layer, inputs=[x])
    return Lowered(rms_norm, kwargs={"axis": axis, "epsilon": epsilon})


# --- GroupNormalization -----------------------------------------------------------------------
def group_norm(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, *, num_groups: int, epsilon: float) -> torch.Tensor:
    """GroupNormalization-21 with per-channel scale and bias computed in the graph."""
    return F.group_norm(x, num_groups, scale, bias, epsilon)


def group_norm_per_group(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, *, num_groups: int, epsilon: float) -> torch.Tensor:
    """GroupNormalization-18: normalize per group, then scale and shift each group by its own
    ``scale[g]`` / ``bias[g]``."""
    y = F.group_norm(x, num_groups, None, None, epsilon).unflatten(1, (num_groups, -1))
    shape = [1, num_groups] + [1] * (y.dim() - 2)
    return (y * scale.reshape(shape) + bias.reshape(shape)).flatten(1, 2)


def _group_norm_layer(num_groups: int, scale: torch.Tensor, bias: torch.Tensor, epsilon: float) -> nn.GroupNorm:
    layer = nn.GroupNorm(num_groups, scale.numel(), eps=epsilon)
    layer.weight = nn.Parameter(scale.detach().clone())
    layer.bias = nn.Parameter(bias.detach().clone())
    return layer


@converter("GroupNormalization", since=18)
def group_normalization_per_group(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """GroupNormalization-18(X, scale, bias) -> Y; scale and bias have one entry per GROUP"""
    x, scale_name, bias_name = node.inputs[:3]
    num_groups, epsilon = node.attr_int("num_groups"), short_float(node.attr_float("epsilon"))
    scale, bias = ctx.constant(scale_name), ctx.constant(bias_name)
    shape = ctx.shape(x)
    channels = shape[1] if shape is not None and len(shape) > 1 and isinstance(shape[1], int) else None
    if scale is not None and bias is not None and channels is not None and channels % num_groups == 0:
        # NOTE: a per-group scale is a per-channel one repeated over the group's channels, which
        # is what nn.GroupNorm (GroupNormalization-21 semantics) takes.
        repeats = channels // num_groups
        layer = _group_norm_layer(num_groups, scale.reshape(-1).repeat_interleave(repeats),
                                  bias.reshape(-1).repeat_interleave(repeats), epsilon)
        return Lowered(layer, inputs=[x])
    return Lowered(group_norm_per_group, kwargs={"num_groups": num_groups, "epsilon": epsilon})


@converter("GroupNormalization", since=21)
def group_normalization(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """GroupNormalization(X, scale, bias) -> Y; scale and bias have one entry per CHANNEL"""
    _stash_type(node)
    x, scale_name, bias_name = node.inputs[:3]
    num_groups, epsilon = node.attr_int("num_groups"), short_float(node.attr_float("epsilon"))
    scale, bias = ctx.constant(scale_name), ctx.constant(bias_name)
    if scale is not None and bias is not None and scale.dim() == 1 and scale.numel() % num_groups == 0:
        return Lowered(_group_norm_layer(num_groups, scale, bias, epsilon), inputs=[x])
    return Lowered(group_norm, kwargs={"num_groups": num_groups, "epsilon": epsilon})


# --- LRN, LpNormalization, MeanVarianceNormalization ------------------------------------------
def local_response_norm(x: torch.Tensor, *, size: int, alpha: float, beta: float, bias: float) -> torch.Tensor:
    """LRN with ONNX's channel window [c - floor((size-1)/2), c + ceil((size-1)/2)]:
    X / (bias + alpha / size * sum of squares in the window) ^ beta."""
    squares = F.pad(x.square().movedim(1, -1), ((size - 1) // 2, size // 2))
    square_sum = squares.unfold(-1, size, 1).sum(-1).movedim(-1, 1)
    return x / (bias + alpha / size * square_sum) ** beta


@converter("LRN", since=1)
def lrn(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """LRN(X) -> Y = X / (bias + alpha / size * square_sum over size channels) ^ beta"""
    size = node.attr_int("size")
    alpha, beta, bias = (short_float(node.attr_float(name)) for name in ("alpha", "beta", "bias"))
    rank = ctx.rank(node.input(0))
    half = ctx.elem_type(node.input(0)) in (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
    if size < 1:
        raise node.unsupported("size", size, "a positive window size")
    if rank is not None and rank < 3:
        raise node.unsupported("input rank", rank, ">= 3 (N x C x D1 x ...)")
    if size % 2 == 1 and not half:
        # NOTE: torch's k is ONNX's bias, and torch divides alpha by size too (it averages the
        # squares); for odd sizes its window is centred like ONNX's.
        return Lowered(nn.LocalResponseNorm(size, alpha=alpha, beta=beta, k=bias))
    # NOTE: for even sizes torch's window leans the other way (size/2 channels before c, ONNX's
    # size/2 after), so the ONNX formula is spelled out; so it is for float16 / bfloat16 inputs,
    # for which torch's CPU avg_pool3d (used at rank >= 4) has no kernel.
    return Lowered(local_response_norm, kwargs={"size": size, "alpha": alpha, "beta": beta, "bias": bias})


def lp_normalize(x: torch.Tensor, *, p: int, axis: int) -> torch.Tensor:
    """X / ||X||_p along ``axis``; 0 where the norm is 0."""
    norm = torch.linalg.vector_norm(x, ord=p, dim=axis, keepdim=True)
    # NOTE: a zero norm means a zero slice, so dividing it by 1 gives ONNX's defined 0 (and a
    # finite gradient, unlike torch.where over x / norm).
    return x / torch.where(norm == 0, 1, norm)


@converter("LpNormalization", since=1)
def lp_normalization(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """LpNormalization(input) -> output = input / Lp_norm(input, axis)"""
    p = node.attr_int("p")
    if p not in (1, 2):
        raise node.unsupported("p", p, "1, 2")
    return Lowered(lp_normalize, kwargs={"p": p, "axis": node.attr_int("axis")})


def mean_variance_normalize(x: torch.Tensor, *, axes: list[int]) -> torch.Tensor:
    """(X - E[X]) / (sqrt(E[X^2] - E[X]^2) + 1e-9) over ``axes``."""
    mean = x.mean(dim=axes, keepdim=True)
    variance = x.square().mean(dim=axes, keepdim=True) - mean.square()
    return (x - mean) / (torch.sqrt(variance) + 1e-9)


@converter("MeanVarianceNormalization", since=9)
def mean_variance_normalization(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """MeanVarianceNormalization(X) -> Y = (X - E[X]) / sqrt(E[(X - E[X])^2]) over axes"""
    # NOTE: follows the op's function body: Var = E[X^2] - E[X]^2 and the 1e-9 is added to the
    # standard deviation, not to the variance.
    return Lowered(mean_variance_normalize, kwargs={"axes": tuple(node.attr_ints("axes"))})
