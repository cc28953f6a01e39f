"""Converters: activation functions."""
from __future__ import annotations

import logging

from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.registry import Lowered, converter

logger = logging.getLogger(__name__)


@converter("Relu", since=1)
def relu(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Relu(X) -> Y = max(0, X)"""
    return Lowered(nn.ReLU())
