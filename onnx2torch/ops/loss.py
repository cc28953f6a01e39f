"""Converters: losses (NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss).

Both are exactly torch's ``nll_loss`` / ``cross_entropy`` with class weights, ``ignore_index`` and
the three reductions: ONNX's weighted mean divides by the summed weights of the non-ignored
targets (torch's rule), and without weights by the number of non-ignored targets.  Constant (or
absent) weights with int64 targets become ``nn.NLLLoss`` / ``nn.CrossEntropyLoss``.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from onnx import TensorProto
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.registry import Lowered, converter

__all__ = [
    "negative_log_likelihood_loss",
    "nll_loss_onnx",
    "softmax_cross_entropy_loss",
    "softmax_cross_entropy_onnx",
    "softmax_cross_entropy_with_log_prob",
]

logger = logging.getLogger(__name__)

_REDUCTIONS = ("none", "sum", "mean")
# NOTE: torch's default ignore_index. Without the attribute ONNX ignores nothing, and every label
# must lie in [0, C), so -100 never occurs in a valid model.
_TORCH_IGNORE = -100


def nll_loss_onnx(x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, *,
                  ignore_index: int = _TORCH_IGNORE, reduction: str = "mean") -> torch.Tensor:
    """NegativeLogLikelihoodLoss with int32 or int64 targets."""
    return F.nll_loss(x, target.long(), weight, ignore_index=ignore_index, reduction=reduction)


def softmax_cross_entropy_onnx(scores: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None, *,
                               ignore_index: int = _TORCH_IGNORE, reduction: str = "mean") -> torch.Tensor:
    """SoftmaxCrossEntropyLoss (loss only) with int32 or int64 labels."""
    return F.cross_entropy(scores, labels.long(), weight, ignore_index=ignore_index, reduction=reduction)


def softmax_cross_entropy_with_log_prob(scores: torch.Tensor, labels: torch.Tensor,
                                        weight: torch.Tensor | None = None, *, ignore_index: int = _TORCH_IGNORE,
                                        reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    """SoftmaxCrossEntropyLoss returning (loss, log_prob), log_prob = log_softmax(scores, 1)."""
    log_prob = torch.log_softmax(scores, dim=1)
    loss = F.nll_loss(log_prob, labels.long(), weight, ignore_index=ignore_index, reduction=reduction)
    return loss, log_prob


def _loss_config(node: OnnxNode) -> dict:
    reduction = node.attr_str("reduction")
    if reduction not in _REDUCTIONS:
        raise node.unsupported("reduction", reduction, ", ".join(_REDUCTIONS))
    kwargs = {"reduction": reduction}
    ignore_index = node.attr_int("ignore_index")
    if ignore_index is not None:
        kwargs["ignore_index"] = ignore_index
    return kwargs


def _native_weight(node: OnnxNode, ctx: ConversionContext) -> tuple[bool, torch.Tensor | None]:
    """Whether an nn loss layer fits (int64 targets, weight absent or constant) and its weight."""
    if ctx.elem_type(node.input(1)) != TensorProto.INT64:
        return False, None
    if not node.has_input(2):
        return True, None
    weight = ctx.constant(node.input(2))
    if weight is None:
        return False, None
    return True, weight.detach().clone()


@converter("NegativeLogLikelihoodLoss", since=12)
def negative_log_likelihood_loss(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """NegativeLogLikelihoodLoss(input, target, weight?) -> loss = -input[n, target[n, d...], d...] * weight[c]"""
    # NOTE: versions 13 and 22 only add input types; the semantics are those of version 12.
    kwargs = _loss_config(node)
    native, weight = _native_weight(node, ctx)
    if native:
        return Lowered(nn.NLLLoss(weight=weight, **kwargs), inputs=node.inputs[:2])
    if ctx.elem_type(node.input(1)) == TensorProto.INT64:
        return Lowered(F.nll_loss, inputs=node.inputs[:3], kwargs=kwargs)
    return Lowered(nll_loss_onnx, inputs=node.inputs[:3], kwargs=kwargs)


@converter("SoftmaxCrossEntropyLoss", since=12)
def softmax_cross_entropy_loss(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """SoftmaxCrossEntropyLoss(scores, labels, weights?) -> (output, log_prob?); NLL of log_softmax(scores, 1)"""
    # NOTE: version 13 only adds bfloat16; the semantics are those of version 12.
    kwargs = _loss_config(node)
    if len(node.outputs) > 1:
        return Lowered(softmax_cross_entropy_with_log_prob, inputs=node.inputs[:3], kwargs=kwargs)
    native, weight = _native_weight(node, ctx)
    if native:
        return Lowered(nn.CrossEntropyLoss(weight=weight, **kwargs), inputs=node.inputs[:2])
    if ctx.elem_type(node.input(1)) == TensorProto.INT64:
        return Lowered(F.cross_entropy, inputs=node.inputs[:3], kwargs=kwargs)
    return Lowered(softmax_cross_entropy_onnx, inputs=node.inputs[:3], kwargs=kwargs)
