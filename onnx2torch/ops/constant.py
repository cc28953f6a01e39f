"""Converters for nodes that only name or forward values: Constant, Identity."""
from __future__ import annotations

import logging

import numpy as np
import torch

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.dtypes import to_torch
from onnx2torch.registry import Lowered, converter

__all__ = ["constant", "identity"]

logger = logging.getLogger(__name__)


def _as_value(value):
    if isinstance(value, np.ndarray):
        return value if value.dtype == object else to_torch(value)
    return value


@converter("Constant", since=1)
def constant(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Constant() -> output; value from exactly one of value / value_float(s) / value_int(s) /
    value_string(s) / sparse_value."""
    for name in node.attributes:
        value = node.attr(name)
        if name == "value":
            return Lowered.const(_as_value(value))
        if name == "value_float":
            return Lowered.const(torch.tensor(value, dtype=torch.float32))
        if name == "value_floats":
            return Lowered.const(torch.tensor(value, dtype=torch.float32))
        if name == "value_int":
            return Lowered.const(torch.tensor(value, dtype=torch.int64))
        if name == "value_ints":
            return Lowered.const(torch.tensor(value, dtype=torch.int64))
        if name == "value_string":
            return Lowered.const(np.array(value, dtype=object))
        if name == "value_strings":
            return Lowered.const(np.array(value, dtype=object))
        if name == "sparse_value":
            return Lowered.const(to_torch(np.asarray(value.todense())))
    raise node.unsupported("attributes", sorted(node.attributes), "exactly one value* attribute")


def identity_fn(x):
    """Identity: returns its input."""
    return x


@converter("Identity", since=1)
def identity(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Identity(input) -> output"""
    return Lowered(identity_fn)
