"""Converters for the ai.onnx.ml domain: ArrayFeatureExtractor, Binarizer, LabelEncoder."""
from __future__ import annotations

import logging
import math

import numpy as np
import torch
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.dtypes import to_torch
from onnx2torch.registry import Lowered, converter

__all__ = ["array_feature_extractor", "binarizer", "label_encoder", "LabelEncoderModule"]

logger = logging.getLogger(__name__)

ML = "ai.onnx.ml"


def extract_features(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """ArrayFeatureExtractor: ``x[..., indices]`` (a 1-D input gives a [1, k] result)."""
    picked = torch.index_select(x, x.dim() - 1, indices.reshape(-1).long())
    return picked.reshape(1, -1) if x.dim() == 1 else picked


@converter("ArrayFeatureExtractor", since=1, domain=ML)
def array_feature_extractor(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ArrayFeatureExtractor(X, Y) -> Z: elements of X's last axis selected by Y"""
    return Lowered(extract_features)


def binarize(x: torch.Tensor, *, threshold: float) -> torch.Tensor:
    """Binarizer: 1 where ``x > threshold``, else 0, in x's dtype."""
    return (x > threshold).to(x.dtype)


@converter("Binarizer", since=1, domain=ML)
def binarizer(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Binarizer(X) -> Y; attr threshold"""
    return Lowered(binarize, kwargs={"threshold": node.attr_float("threshold")})


def _key(value):
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


class LabelEncoderModule(nn.Module):
    """LabelEncoder: maps each element through a fixed table, ``default`` when absent."""

    def __init__(self, keys: list, values: list, default, value_dtype):
        super().__init__()
        self.table = {_key(k): v for k, v in zip(keys, values)}
        self.default = default
        self.value_dtype = value_dtype

    def extra_repr(self) -> str:
        return f"entries={len(self.table)}, default={self.default!r}"

    def forward(self, x):
        flat = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=object)
        shape = flat.shape
        mapped = [self.table.get(_key(v.decode() if isinstance(v, bytes) else
                                      (float(v) if isinstance(v, (float, np.floating)) else v)), self.default)
                  for v in flat.reshape(-1)]
        if self.value_dtype is object:
            return np.array(mapped, dtype=object).reshape(shape)
        return torch.tensor(mapped, dtype=self.value_dtype).reshape(shape)


def _table(node: OnnxNode, prefix: str):
    for suffix, dtype in (("strings", object), ("int64s", torch.int64), ("floats", torch.float32)):
        value = node.attr(f"{prefix}_{suffix}", None)
        if value is not None:
            return list(value), dtype
    tensor = node.attr(f"{prefix}_tensor", None)
    if tensor is not None:
        if tensor.dtype == object:
            return [s.decode() if isinstance(s, bytes) else s for s in tensor.reshape(-1)], object
        t = to_torch(tensor)
        return t.reshape(-1).tolist(), t.dtype
    return None, None


@converter("LabelEncoder", since=1, domain=ML)
def label_encoder(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """LabelEncoder(X) -> Y; keys_* / values_* attributes (or the legacy classes_strings)"""
    keys, _ = _table(node, "keys")
    values, value_dtype = _table(node, "values")
    if keys is None or values is None or len(keys) != len(values):
        raise node.unsupported("keys/values", (keys, values), "keys_* and values_* of equal length")
    default_tensor = node.attr("default_tensor", None)
    if default_tensor is not None:
        flat = default_tensor.reshape(-1)[0]
        default = flat.decode() if isinstance(flat, bytes) else (flat if isinstance(flat, str) else flat.item())
    elif value_dtype is object:
        default = node.attr_str("default_string", "_Unused")
    elif value_dtype == torch.int64:
        default = node.attr_int("default_int64", -1)
    else:
        default = node.attr_float("default_float", -0.0)
    return Lowered(LabelEncoderModule(keys, values, default, value_dtype))
