"""Converters for the ai.onnx.ml domain (the ops skl2onnx emits for scikit-learn models).

ArrayFeatureExtractor, Binarizer, LabelEncoder, CategoryMapper, Normalizer, Scaler, Imputer,
OneHotEncoder, FeatureVectorizer, DictVectorizer, CastMap, ZipMap, LinearRegressor,
LinearClassifier, SVMRegressor, SVMClassifier, TreeEnsembleRegressor and TreeEnsembleClassifier.

Scores follow onnxruntime's kernels (the de-facto reference for these ops), including their
binary-classification rules; PROBIT is onnxruntime's closed-form inverse-erf approximation.
Strings are numpy object arrays of ``str``; maps are Python dicts and ZipMap's output is a list of
dicts, as onnxruntime's Python API returns them.
"""
from __future__ import annotations

import logging
import math
import re

import numpy as np
import torch
from onnx import TensorProto
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.dtypes import to_torch
from onnx2torch.ops.misc import _MODE_NAMES, TreeEnsembleModule, _max_depth
from onnx2torch.registry import Lowered, converter

__all__ = [
    "CastMapModule",
    "DictVectorizerModule",
    "ImputerModule",
    "LabelEncoderModule",
    "LegacyTreeClassifierModule",
    "LegacyTreeRegressorModule",
    "LinearClassifierModule",
    "LinearRegressorModule",
    "OneHotEncoderModule",
    "SVMClassifierModule",
    "SVMRegressorModule",
    "ScalerModule",
    "ZipMapModule",
    "array_feature_extractor",
    "binarizer",
    "cast_map",
    "category_mapper",
    "dict_vectorizer",
    "feature_vectorizer",
    "imputer",
    "label_encoder",
    "linear_classifier",
    "linear_regressor",
    "normalizer",
    "one_hot_encoder",
    "scaler",
    "svm_classifier",
    "svm_regressor",
    "tree_ensemble_classifier",
    "tree_ensemble_regressor",
    "zip_map",
]

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


# --- shared scoring helpers ------------------------------------------------------------------
_POST_TRANSFORMS = ("NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT")


def _post_transform_attr(node: OnnxNode) -> str:
    name = node.attr_str("post_transform", "NONE")
    if name not in _POST_TRANSFORMS:
        raise node.unsupported("post_transform", name, ", ".join(_POST_TRANSFORMS))
    return name


def ort_probit(p: torch.Tensor) -> torch.Tensor:
    """PROBIT as onnxruntime computes it: sqrt(2) * erfinv(2p - 1) with the closed-form erfinv
    approximation (a = 0.147) its kernels and the ONNX reference use."""
    # NOTE: not the exact inverse normal CDF (relative error ~1e-3); this is what onnxruntime returns.
    x = 2 * p - 1
    sign = torch.where(x < 0, -torch.ones_like(x), torch.ones_like(x))
    log = torch.log((1 - x) * (1 + x))
    v = 2 / (math.pi * 0.147) + 0.5 * log
    v2 = log / 0.147
    return math.sqrt(2) * sign * torch.sqrt(-v + torch.sqrt(v * v - v2))


def post_transform(scores: torch.Tensor, name: str) -> torch.Tensor:
    """A post_transform over the score columns of [N, C] float scores (C >= 2)."""
    if name == "SOFTMAX":
        return torch.softmax(scores, dim=1)
    if name == "LOGISTIC":
        return torch.sigmoid(scores)
    if name == "SOFTMAX_ZERO":
        # NOTE: onnxruntime's softmax-zero: scores within 1e-7 of 0 are not exponentiated and stay
        # out of the sum; they come out as score * exp(-max) / sum (about 0).
        top = scores.amax(dim=1, keepdim=True)
        nonzero = scores.abs() > 1e-7
        exp = torch.where(nonzero, torch.exp(scores - top), scores * torch.exp(-top))
        total = torch.where(nonzero, exp, torch.zeros_like(exp)).sum(dim=1, keepdim=True)
        return exp / total
    if name == "PROBIT":
        return ort_probit(scores)
    return scores


def _rows(x: torch.Tensor) -> torch.Tensor:
    """The [N, F] view the ml kernels take: a 1-D input is one row."""
    return x.reshape(1, -1) if x.dim() == 1 else x


def _floats(node: OnnxNode, name: str) -> np.ndarray | None:
    """A FLOATS attribute or its ``*_as_tensor`` twin (which may hold doubles), else None."""
    value = node.attr(name, None)
    if value is not None:
        return np.asarray(value, dtype=np.float32).reshape(-1)
    tensor = node.attr(f"{name}_as_tensor", None)
    if tensor is not None:
        return np.asarray(tensor).reshape(-1)
    return None


def _class_labels(node: OnnxNode, ints_name: str) -> list | None:
    strings = node.attr("classlabels_strings", None)
    if strings:
        return [str(s) for s in strings]
    ints = node.attr(ints_name, None)
    if ints:
        return [int(i) for i in ints]
    return None


def _store_labels(module: nn.Module, labels: list) -> None:
    """Class labels on ``module``: ``string_labels`` (a tuple) or the ``int_labels`` buffer."""
    module.string_labels = tuple(labels) if labels and isinstance(labels[0], str) else None
    values = [0] if module.string_labels is not None or not labels else labels
    module.register_buffer("int_labels", torch.tensor(values, dtype=torch.int64))


def _pick_labels(module: nn.Module, index: torch.Tensor):
    """The labels at ``index``: an int64 tensor, or a numpy object array of strings."""
    if module.string_labels is not None:
        return np.array(module.string_labels, dtype=object)[index.detach().cpu().numpy()]
    return module.int_labels[index]


class _Labels(nn.Module):
    """Holds class labels (int64 buffer or a tuple of strings) and picks them by index."""

    def __init__(self, labels: list):
        super().__init__()
        _store_labels(self, labels)

    def pick(self, index: torch.Tensor):
        return _pick_labels(self, index)


def _single_input_rank(node: OnnxNode, ctx: ConversionContext) -> None:
    rank = ctx.rank(node.input(0))
    if rank is not None and rank > 2:
        raise node.unsupported("input rank", rank, "1-D [F] or 2-D [N, F] inputs")


# --- LinearRegressor / LinearClassifier -------------------------------------------------------
class LinearRegressorModule(nn.Module):
    """LinearRegressor: ``X @ coefficients' + intercepts`` (an nn.Linear), then post_transform."""

    def __init__(self, linear: nn.Linear, post_transform: str):
        super().__init__()
        self.linear = linear
        self.post_transform = post_transform

    def extra_repr(self) -> str:
        return f"post_transform={self.post_transform!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.linear(_rows(x).to(torch.float32))
        if scores.shape[1] >= 2:
            return post_transform(scores, self.post_transform)
        # NOTE: onnxruntime transforms a single target only with PROBIT.
        return ort_probit(scores) if self.post_transform == "PROBIT" else scores


def _linear_layer(coefficients: list[float], intercepts: list[float] | None, targets: int, node: OnnxNode) -> nn.Linear:
    if targets <= 0 or len(coefficients) % targets:
        raise node.unsupported("coefficients length", len(coefficients), f"a multiple of the {targets} targets/classes")
    features = len(coefficients) // targets
    layer = nn.Linear(features, targets, bias=intercepts is not None)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(coefficients, dtype=torch.float32).reshape(targets, features))
        if intercepts is not None:
            layer.bias.copy_(torch.tensor(intercepts, dtype=torch.float32))
    return layer


@converter("LinearRegressor", since=1, domain=ML)
def linear_regressor(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """LinearRegressor(X) -> Y [N, targets] = X @ coefficients' + intercepts, then post_transform"""
    _single_input_rank(node, ctx)
    targets = node.attr_int("targets", 1)
    intercepts = node.attr("intercepts", None)
    # NOTE: onnxruntime uses intercepts only when there is one per target.
    use = intercepts is not None and len(intercepts) == targets
    layer = _linear_layer(list(node.attr("coefficients")), list(intercepts) if use else None, targets, node)
    return Lowered(LinearRegressorModule(layer, _post_transform_attr(node)), inputs=node.inputs[:1])


class LinearClassifierModule(_Labels):
    """LinearClassifier: scores ``X @ coefficients' + intercepts``; the label is the top class
    (one score column: ``score > 0``), scores then post_transform (onnxruntime's binary rules)."""

    def __init__(self, linear: nn.Linear, labels: list, post_transform: str, n_outputs: int):
        super().__init__(labels)
        self.linear = linear
        self.post_transform = post_transform
        self.n_outputs = n_outputs

    def extra_repr(self) -> str:
        return f"post_transform={self.post_transform!r}"

    def forward(self, x: torch.Tensor):
        scores = self.linear(_rows(x).to(torch.float32))
        if scores.shape[1] == 1:
            # NOTE: one score column (binary model): label 1 when it is positive; onnxruntime
            # writes [1 - s, s] with s the score, its logistic for LOGISTIC, and no other transform.
            label = self.pick((scores[:, 0] > 0).long())
            if self.post_transform == "LOGISTIC":
                scores = torch.sigmoid(scores)
            scores = torch.cat((1 - scores, scores), dim=1)
        else:
            label = self.pick(torch.argmax(scores, dim=1))
            scores = post_transform(scores, self.post_transform)
        return (label, scores) if self.n_outputs == 2 else label


@converter("LinearClassifier", since=1, domain=ML)
def linear_classifier(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """LinearClassifier(X) -> (Y labels [N], Z scores [N, C]); linear scores, top class, post_transform"""
    _single_input_rank(node, ctx)
    intercepts = node.attr("intercepts", None)
    if not intercepts:
        raise node.unsupported("intercepts", intercepts, "one intercept per class (onnxruntime counts classes by them)")
    labels = _class_labels(node, "classlabels_ints")
    if labels is None:
        raise node.unsupported("class labels", None, "classlabels_strings or classlabels_ints")
    transform = _post_transform_attr(node)
    classes = len(intercepts)
    if classes > 1 and len(labels) < classes:
        raise node.unsupported("class label count", len(labels), f"at least one per class ({classes})")
    if classes == 1 and len(labels) != 2:
        raise node.unsupported("class label count of a one-column model", len(labels), "2 (as onnxruntime demands)")
    if classes == 1 and transform == "PROBIT":
        raise node.unsupported("post_transform of a one-column model", transform,
                               "NONE, SOFTMAX, LOGISTIC, SOFTMAX_ZERO (onnxruntime leaves half of Z unwritten)")
    layer = _linear_layer(list(node.attr("coefficients")), list(intercepts), classes, node)
    return Lowered(LinearClassifierModule(layer, labels, transform, len(node.outputs)), inputs=node.inputs[:1])


# --- Normalizer / Scaler / Imputer ------------------------------------------------------------
def normalize_features(x: torch.Tensor, *, norm: str) -> torch.Tensor:
    """Normalizer: float rows (axis 1; axis 0 of a 1-D input) divided by their MAX, L1 or L2 norm;
    rows whose norm is 0 are only cast."""
    dim = 0 if x.dim() == 1 else 1
    xf = x.to(torch.float32)
    if norm == "MAX":
        total = xf.amax(dim=dim, keepdim=True)
        return torch.where(total != 0, xf / total, xf)
    if norm == "L1":
        total = x.abs().to(torch.float32).sum(dim=dim, keepdim=True)
        return torch.where(total != 0, xf / total, xf)
    square = (x * x).to(torch.float32)
    total = square.sum(dim=dim, keepdim=True)
    # NOTE: onnxruntime computes sign(x) * sqrt(x^2 / sum) rather than x / sqrt(sum).
    root = torch.sqrt(square / total)
    return torch.where(total != 0, torch.where(x < 0, -root, root), xf)


@converter("Normalizer", since=1, domain=ML)
def normalizer(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Normalizer(X) -> Y float; each row divided by its MAX / L1 / L2 norm"""
    _single_input_rank(node, ctx)
    norm = node.attr_str("norm", "MAX")
    if norm not in ("MAX", "L1", "L2"):
        raise node.unsupported("norm", norm, "MAX, L1, L2")
    return Lowered(normalize_features, kwargs={"norm": norm})


def _per_feature(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``values`` laid over x the way onnxruntime indexes them: flat index modulo x.shape[1]
    (x.shape[0] for 1-D), which for 1-D and 2-D inputs is plain broadcasting over features."""
    if x.dim() <= 2 or values.numel() == 1:
        return values
    stride = x.shape[1]
    flat = torch.arange(x.numel(), device=x.device) % stride
    return values[flat].reshape(x.shape)


class ScalerModule(nn.Module):
    """Scaler: ``(X - offset) * scale`` as float, per feature or with one value for all."""

    def __init__(self, offset: list[float], scale: list[float]):
        super().__init__()
        self.register_buffer("offset", torch.tensor(offset, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))

    def extra_repr(self) -> str:
        return f"features={self.offset.numel()}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # NOTE: doubles are scaled in double and then rounded, like onnxruntime; integers in float.
        work = x if x.dtype == torch.float64 else x.to(torch.float32)
        offset, scale = _per_feature(x, self.offset.to(work.dtype)), _per_feature(x, self.scale.to(work.dtype))
        return ((work - offset) * scale).to(torch.float32)


@converter("Scaler", since=1, domain=ML)
def scaler(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Scaler(X) -> Y float = (X - offset) * scale"""
    offset, scale = node.attr("offset", None), node.attr("scale", None)
    if not scale or offset is None or len(offset) != len(scale):
        raise node.unsupported("offset/scale lengths", (len(offset or []), len(scale or [])),
                               "non-empty scale and an offset of the same length")
    shape = ctx.shape(node.input(0))
    features = shape[0 if len(shape) == 1 else 1] if shape else None
    if isinstance(features, int) and len(scale) not in (1, features):
        raise node.unsupported("scale length", len(scale), f"1 or the feature count ({features})")
    return Lowered(ScalerModule(list(offset), list(scale)))


class ImputerModule(nn.Module):
    """Imputer: elements equal to ``replaced`` (or NaN when it is NaN) become the imputed value of
    their feature (or the first imputed value when there is not one per feature)."""

    def __init__(self, imputed: list, replaced: float, dtype: torch.dtype):
        super().__init__()
        self.register_buffer("imputed", torch.tensor(imputed, dtype=dtype))
        self.replaced = replaced

    def extra_repr(self) -> str:
        return f"values={self.imputed.numel()}, replaced={self.replaced!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x.shape[0] if x.dim() == 1 else x.shape[1]
        values = self.imputed.to(x.dtype)
        fill = _per_feature(x, values) if values.numel() == features else values[:1]
        hit = x == self.replaced
        if isinstance(self.replaced, float) and math.isnan(self.replaced):
            hit = torch.isnan(x)
        return torch.where(hit, fill, x)


@converter("Imputer", since=1, domain=ML)
def imputer(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Imputer(X) -> Y; replaced_value_* elements become imputed_value_*"""
    floats, ints = node.attr("imputed_value_floats", None), node.attr("imputed_value_int64s", None)
    if bool(floats) == bool(ints):
        raise node.unsupported("imputed values", (floats, ints),
                               "exactly one of imputed_value_floats / imputed_value_int64s")
    elem = ctx.elem_type(node.input(0))
    if floats:
        if elem in (TensorProto.INT64, TensorProto.INT32):
            raise node.unsupported("imputed_value_floats for input type", TensorProto.DataType.Name(elem),
                                   "float inputs")
        return Lowered(ImputerModule(list(floats), node.attr_float("replaced_value_float", 0.0), torch.float32))
    if elem in (TensorProto.FLOAT, TensorProto.DOUBLE):
        raise node.unsupported("imputed_value_int64s for input type", TensorProto.DataType.Name(elem), "integer inputs")
    return Lowered(ImputerModule(list(ints), node.attr_int("replaced_value_int64", 0), torch.int64))


# --- OneHotEncoder / CategoryMapper / FeatureVectorizer ---------------------------------------
def _strings_of(x) -> np.ndarray:
    array = np.asarray(x, dtype=object)
    return np.array([s.decode() if isinstance(s, bytes) else str(s) for s in array.reshape(-1)],
                    dtype=object).reshape(array.shape)


class OneHotEncoderModule(nn.Module):
    """OneHotEncoder: Y[..., k] = 1.0 where X equals category k (numbers truncated to int64 first);
    an unknown category gives a zero row, or an error when ``zeros`` is 0."""

    def __init__(self, categories: list, zeros: bool):
        super().__init__()
        self.string_categories = tuple(categories) if isinstance(categories[0], str) else None
        # NOTE: a repeated category maps to its last position, as in onnxruntime's table.
        last = {c: i for i, c in enumerate(categories)}
        self.register_buffer("keep", torch.tensor([last[c] == i for i, c in enumerate(categories)]))
        codes = list(range(len(categories))) if self.string_categories is not None else categories
        self.register_buffer("categories", torch.tensor(codes, dtype=torch.int64))
        self.zeros = zeros

    def extra_repr(self) -> str:
        return f"categories={self.categories.numel()}, zeros={self.zeros}"

    def forward(self, x) -> torch.Tensor:
        if self.string_categories is not None:
            table = {c: i for i, c in enumerate(self.string_categories)}
            strings = _strings_of(x)
            codes = torch.tensor([table.get(s, -1) for s in strings.reshape(-1)], dtype=torch.int64,
                                 device=self.categories.device).reshape(strings.shape)
        else:
            codes = x.to(torch.int64)  # C++ static_cast: truncation toward zero
        hits = (codes.unsqueeze(-1) == self.categories) & self.keep
        if not self.zeros and not bool(hits.any(-1).all()):
            raise ValueError("OneHotEncoder: unknown category and zeros = 0")
        return hits.to(torch.float32)


@converter("OneHotEncoder", since=1, domain=ML)
def one_hot_encoder(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """OneHotEncoder(X) -> Y float [..., categories]; attrs cats_int64s / cats_strings, zeros"""
    ints, strings = node.attr("cats_int64s", None), node.attr("cats_strings", None)
    if bool(ints) == bool(strings):
        raise node.unsupported("categories", (ints, strings), "exactly one of cats_int64s / cats_strings, non-empty")
    elem = ctx.elem_type(node.input(0))
    if (elem == TensorProto.STRING) != bool(strings):
        raise node.unsupported("categories for input type", TensorProto.DataType.Name(elem) if elem else None,
                               "cats_strings for string inputs, cats_int64s for numeric inputs")
    return Lowered(OneHotEncoderModule([str(s) for s in strings] if strings else list(ints),
                                       bool(node.attr_int("zeros", 1))))


@converter("CategoryMapper", since=1, domain=ML)
def category_mapper(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """CategoryMapper(X) -> Y; strings to int64 (or int64 to strings) through cats_strings/cats_int64s"""
    strings, ints = list(node.attr("cats_strings", []) or []), list(node.attr("cats_int64s", []) or [])
    if len(strings) != len(ints):
        raise node.unsupported("cats_strings/cats_int64s lengths", (len(strings), len(ints)), "equal lengths")
    elem = ctx.elem_type(node.input(0))
    if elem == TensorProto.STRING:
        return Lowered(LabelEncoderModule(strings, ints, node.attr_int("default_int64", -1), torch.int64))
    if elem == TensorProto.INT64:
        return Lowered(LabelEncoderModule(ints, strings, node.attr_str("default_string", "_Unused"), object))
    raise node.unsupported("input type", TensorProto.DataType.Name(elem) if elem else None, "string or int64")


def vectorize_features(*inputs: torch.Tensor, dimensions: tuple[int, ...]) -> torch.Tensor:
    """FeatureVectorizer: each input's rows (flattened) cut or zero-padded to its dimension, joined
    as float columns."""
    rows = 1 if inputs[0].dim() == 1 else inputs[0].shape[0]
    parts = []
    for x, size in zip(inputs, dimensions):
        flat = x.reshape(rows, -1)[:, :size].to(torch.float32)
        parts.append(torch.nn.functional.pad(flat, (0, size - flat.shape[1])))
    return torch.cat(parts, dim=1)


@converter("FeatureVectorizer", since=1, domain=ML)
def feature_vectorizer(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """FeatureVectorizer(X...) -> Y float [N, sum(inputdimensions)]"""
    dimensions = node.attr_ints("inputdimensions", [])
    if len(dimensions) != len(node.inputs) or any(d < 0 for d in dimensions):
        raise node.unsupported("inputdimensions", dimensions, "one non-negative size per input")
    return Lowered(vectorize_features, kwargs={"dimensions": tuple(dimensions)})


# --- DictVectorizer / CastMap / ZipMap (maps) -------------------------------------------------
_MAP_VALUE_DTYPES = {TensorProto.FLOAT: torch.float32, TensorProto.DOUBLE: torch.float64,
                     TensorProto.INT64: torch.int64, TensorProto.STRING: object}


def _map_value_type(ctx: ConversionContext, name: str) -> int | None:
    tp = ctx.value_info.get(name)
    if tp is not None and tp.HasField("map_type"):
        value = tp.map_type.value_type
        if value.HasField("tensor_type"):
            return value.tensor_type.elem_type
    return None


class DictVectorizerModule(nn.Module):
    """DictVectorizer: a [1, V] tensor of the map's values in vocabulary order (0 / "" when a key is absent)."""

    def __init__(self, vocabulary: list, dtype):
        super().__init__()
        self.vocabulary = tuple(vocabulary)
        self.dtype = dtype

    def extra_repr(self) -> str:
        return f"vocabulary={len(self.vocabulary)}, dtype={self.dtype}"

    def forward(self, x: dict):
        table = {(k.decode() if isinstance(k, bytes) else k if isinstance(k, str) else int(k)): v for k, v in x.items()}
        if self.dtype is object:
            return np.array([[str(table.get(k, "")) for k in self.vocabulary]], dtype=object)
        return torch.tensor([[table.get(k, 0) for k in self.vocabulary]], dtype=self.dtype)


@converter("DictVectorizer", since=1, domain=ML)
def dict_vectorizer(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """DictVectorizer(X map) -> Y [1, V]; the values of the vocabulary's keys"""
    strings, ints = node.attr("string_vocabulary", None), node.attr("int64_vocabulary", None)
    if bool(strings) == bool(ints):
        raise node.unsupported("vocabulary", (strings, ints), "exactly one of string_vocabulary / int64_vocabulary")
    elem = _map_value_type(ctx, node.input(0)) or ctx.elem_type(node.outputs[0])
    if elem not in _MAP_VALUE_DTYPES:
        raise node.unsupported("map value type", elem, "float, double, int64, string")
    vocabulary = [str(s) for s in strings] if strings else [int(i) for i in ints]
    return Lowered(DictVectorizerModule(vocabulary, _MAP_VALUE_DTYPES[elem]))


def _c_float(text: str) -> float:
    """std::stof: the longest leading float of ``text`` (leading blanks skipped)."""
    match = re.match(r"\s*([+-]?(?:inf(?:inity)?|nan|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))", text, re.IGNORECASE)
    if match is None:
        raise ValueError(f"CastMap: '{text}' is not a number")
    return float(np.float32(float(match.group(1))))


def _c_int(text: str) -> int:
    """std::stoll: the leading integer of ``text``."""
    match = re.match(r"\s*([+-]?\d+)", text)
    if match is None:
        raise ValueError(f"CastMap: '{text}' is not an integer")
    return int(match.group(1))


class CastMapModule(nn.Module):
    """CastMap: a map(int64, string|float) as a [1, M] tensor of its values in key order (DENSE) or at
    positions 0..max_map-1 with padding (SPARSE), cast to float, int64 or string."""

    def __init__(self, cast_to: str, map_form: str, max_map: int):
        super().__init__()
        self.cast_to = cast_to
        self.map_form = map_form
        self.max_map = max_map

    def extra_repr(self) -> str:
        return f"cast_to={self.cast_to!r}, map_form={self.map_form!r}, max_map={self.max_map}"

    def _cast(self, value):
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, str):
            if self.cast_to == "TO_FLOAT":
                return _c_float(value)
            return _c_int(value) if self.cast_to == "TO_INT64" else value
        value = float(np.float32(value))
        if self.cast_to == "TO_STRING":
            return f"{value:f}"  # std::to_string(float)
        return int(value) if self.cast_to == "TO_INT64" else value

    def forward(self, x: dict):
        items = sorted((int(k), v) for k, v in x.items())
        if self.map_form == "DENSE":
            values = [self._cast(v) for _, v in items]
        else:
            if items and items[0][0] < 0:
                raise ValueError("CastMap: negative keys are not allowed with map_form SPARSE")
            present = dict(items)
            pad = {"TO_FLOAT": 0.0, "TO_INT64": 0, "TO_STRING": "0.f"}[self.cast_to]
            values = [self._cast(present[i]) if i in present else pad for i in range(self.max_map)]
        if self.cast_to == "TO_STRING":
            return np.array([values], dtype=object).reshape(1, len(values))
        dtype = torch.float32 if self.cast_to == "TO_FLOAT" else torch.int64
        return torch.tensor(values, dtype=dtype).reshape(1, len(values))


@converter("CastMap", since=1, domain=ML)
def cast_map(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """CastMap(X map(int64, string|float)) -> Y [1, M]; attrs cast_to, map_form, max_map"""
    cast_to, form = node.attr_str("cast_to", "TO_FLOAT"), node.attr_str("map_form", "DENSE")
    if cast_to not in ("TO_FLOAT", "TO_STRING", "TO_INT64"):
        raise node.unsupported("cast_to", cast_to, "TO_FLOAT, TO_STRING, TO_INT64")
    if form not in ("DENSE", "SPARSE"):
        raise node.unsupported("map_form", form, "DENSE, SPARSE")
    return Lowered(CastMapModule(cast_to, form, node.attr_int("max_map", 1)))


class ZipMapModule(nn.Module):
    """ZipMap: each row of X [N, C] (a 1-D X is one row) as a dict {class label: float score}."""

    def __init__(self, labels: list):
        super().__init__()
        self.labels = tuple(labels)

    def extra_repr(self) -> str:
        return f"labels={len(self.labels)}"

    def forward(self, x: torch.Tensor) -> list[dict]:
        rows = _rows(x)
        if rows.shape[1] != len(self.labels):
            raise ValueError(f"ZipMap: {rows.shape[1]} scores per row for {len(self.labels)} labels")
        maps = []
        for row in rows.detach().cpu().to(torch.float32).tolist():
            entries = dict(zip(self.labels, row))
            maps.append({key: entries[key] for key in sorted(entries)})  # std::map: ordered by key
        return maps


@converter("ZipMap", since=1, domain=ML)
def zip_map(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ZipMap(X float [N, C]) -> Z list of N maps {label: score}"""
    _single_input_rank(node, ctx)
    strings, ints = node.attr("classlabels_strings", None), node.attr("classlabels_int64s", None)
    if bool(strings) == bool(ints):
        raise node.unsupported("class labels", (strings, ints),
                               "exactly one of classlabels_strings / classlabels_int64s")
    return Lowered(ZipMapModule([str(s) for s in strings] if strings else [int(i) for i in ints]))


# --- SVMRegressor / SVMClassifier -------------------------------------------------------------
_KERNELS = ("LINEAR", "POLY", "RBF", "SIGMOID")


def svm_kernel(x: torch.Tensor, vectors: torch.Tensor, *, kernel: str, gamma: float, coef0: float,
               degree: float) -> torch.Tensor:
    """K(x_n, v_m) for every sample and vector: [N, M]."""
    if kernel == "RBF":
        distance = torch.cdist(x, vectors, compute_mode="donot_use_mm_for_euclid_dist")
        return torch.exp(-gamma * distance * distance)
    dot = x @ vectors.T
    if kernel == "LINEAR":
        return dot
    dot = gamma * dot + coef0
    return torch.pow(dot, degree) if kernel == "POLY" else torch.tanh(dot)


def _kernel_config(node: OnnxNode) -> dict:
    kernel = node.attr_str("kernel_type", "LINEAR")
    if kernel not in _KERNELS:
        raise node.unsupported("kernel_type", kernel, ", ".join(_KERNELS))
    params = list(node.attr("kernel_params", None) or [])
    if params and len(params) < 3:
        raise node.unsupported("kernel_params", params, "[gamma, coef0, degree]")
    gamma, coef0, degree = (params[:3] if params else [0.0, 0.0, 0.0])
    return {"kernel": kernel, "gamma": float(gamma), "coef0": float(coef0), "degree": float(degree)}


class SVMRegressorModule(nn.Module):
    """SVMRegressor: ``sum_m coef_m K(x, sv_m) + rho`` (or ``x @ coef + rho`` without support
    vectors); one_class gives the sign as +-1."""

    def __init__(self, coefficients, support_vectors, rho: float, kernel: dict, one_class: bool):
        super().__init__()
        self.register_buffer("coefficients", torch.tensor(coefficients, dtype=torch.float32))
        self.register_buffer("support_vectors", torch.tensor(support_vectors, dtype=torch.float32))
        self.rho = rho
        self.kernel = kernel
        self.one_class = one_class

    def extra_repr(self) -> str:
        return (f"support_vectors={self.support_vectors.shape[0]}, {self.kernel}, rho={self.rho}, "
                f"one_class={self.one_class}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = _rows(x).to(torch.float32)
        if self.support_vectors.shape[0]:
            y = svm_kernel(rows, self.support_vectors, **self.kernel) @ self.coefficients.unsqueeze(1) + self.rho
        else:
            y = rows @ self.coefficients.unsqueeze(1) + self.rho
        if self.one_class:
            y = torch.where(y > 0, torch.ones_like(y), -torch.ones_like(y))
        return y


@converter("SVMRegressor", since=1, domain=ML)
def svm_regressor(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """SVMRegressor(X) -> Y [N, 1]; kernel regression over support vectors (linear without them)"""
    _single_input_rank(node, ctx)
    coefficients = list(node.attr("coefficients", None) or [])
    rho = list(node.attr("rho", None) or [])
    if not coefficients or not rho:
        raise node.unsupported("coefficients/rho", (len(coefficients), len(rho)), "non-empty coefficients and rho")
    vectors = node.attr_int("n_supports", 0)
    flat = list(node.attr("support_vectors", None) or [])
    kernel = _kernel_config(node)
    if vectors > 0:
        if len(flat) % vectors or len(coefficients) < vectors:
            raise node.unsupported("support_vectors length", len(flat),
                                   f"n_supports ({vectors}) rows and a coefficient each")
        support = np.asarray(flat, dtype=np.float32).reshape(vectors, -1)
        coefficients = coefficients[:vectors]
    else:
        support = np.zeros((0, len(coefficients)), dtype=np.float32)
        kernel = {**kernel, "kernel": "LINEAR"}
    # NOTE: onnxruntime ignores post_transform for SVMRegressor; so does this module.
    module = SVMRegressorModule(coefficients, support, float(rho[0]), kernel, bool(node.attr_int("one_class", 0)))
    return Lowered(module, inputs=node.inputs[:1])


def pairwise_coupling(r: torch.Tensor) -> torch.Tensor:
    """Class probabilities from pairwise ones r [N, C, C] (r[i, j] = P(i | i or j)) by the
    iterative method of Wu, Lin & Weng (libsvm's multiclass_probability), step for step as
    onnxruntime runs it: at most 100 sweeps, each sample stopping on its own."""
    n, classes = r.shape[0], r.shape[1]
    eye = torch.eye(classes, dtype=torch.bool, device=r.device)
    rt = r.transpose(1, 2)
    q = torch.where(eye, torch.zeros_like(r), -rt * r)
    q = q + torch.diag_embed(torch.where(eye, torch.zeros_like(r), rt * rt).sum(-1))
    p = torch.full((n, classes), 1.0 / classes, dtype=r.dtype, device=r.device)
    active = torch.ones(n, dtype=torch.bool, device=r.device)
    eps = 0.005 / classes
    for _ in range(100):
        qp = (q @ p.unsqueeze(-1)).squeeze(-1)
        pqp = (p * qp).sum(-1)
        error = (qp - pqp.unsqueeze(-1)).abs().amax(-1)
        active = active & ~(error < eps)
        if not bool(active.any()):
            break
        new_p = p.clone()
        for i in range(classes):
            qii = q[:, i, i]
            diff = (pqp - qp[:, i]) / qii
            new_p[:, i] = new_p[:, i] + diff
            pqp = (pqp + diff * (diff * qii + 2 * qp[:, i])) / (1 + diff) / (1 + diff)
            qp = (qp + diff.unsqueeze(-1) * q[:, i, :]) / (1 + diff).unsqueeze(-1)
            new_p = new_p / (1 + diff).unsqueeze(-1)
        p = torch.where(active.unsqueeze(-1), new_p, p)
    return p


class SVMClassifierModule(_Labels):
    """SVMClassifier as onnxruntime scores it.

    With support vectors (libsvm SVC): one decision value per class pair (i < j), votes for i when
    positive; labels by votes; Z holds the pair scores, or with prob_a/prob_b the Platt-scaled pair
    probabilities coupled into class probabilities. Without support vectors (liblinear): linear
    scores per class. Binary models follow onnxruntime's two-column rules.
    """

    def __init__(self, *, labels: list, kernel: dict, coefficients: np.ndarray, rho: list[float],
                 support_vectors: np.ndarray | None, vectors_per_class: list[int], prob_a: list[float],
                 prob_b: list[float], post_transform: str, n_outputs: int):
        super().__init__(labels)
        classes = len(labels)
        self.classes = classes
        self.kernel = kernel
        self.post_transform = post_transform
        self.n_outputs = n_outputs
        self.has_proba = bool(prob_a)
        self.all_positive = bool((coefficients >= 0).all())
        self.svc = support_vectors is not None
        self.register_buffer("rho", torch.tensor(rho, dtype=torch.float32))
        if not self.svc:
            self.register_buffer("coefficients", torch.tensor(coefficients, dtype=torch.float32).reshape(classes, -1))
            return
        self.register_buffer("support_vectors", torch.tensor(support_vectors, dtype=torch.float32))
        starts = np.concatenate(([0], np.cumsum(vectors_per_class)))
        pairs = [(i, j) for i in range(classes - 1) for j in range(i + 1, classes)]
        # decision value of pair (i, j) = K @ pair_weights[:, p] + rho[p]
        weights = np.zeros((support_vectors.shape[0], len(pairs)), dtype=np.float32)
        winners_i = np.zeros((len(pairs), classes), dtype=np.float32)
        winners_j = np.zeros((len(pairs), classes), dtype=np.float32)
        for p, (i, j) in enumerate(pairs):
            weights[starts[i]:starts[i + 1], p] = coefficients[j - 1, starts[i]:starts[i + 1]]
            weights[starts[j]:starts[j + 1], p] = coefficients[i, starts[j]:starts[j + 1]]
            winners_i[p, i] = 1
            winners_j[p, j] = 1
        self.register_buffer("pair_weights", torch.from_numpy(weights))
        self.register_buffer("winners_i", torch.from_numpy(winners_i))
        self.register_buffer("winners_j", torch.from_numpy(winners_j))
        self.register_buffer("pair_i", torch.tensor([i for i, _ in pairs], dtype=torch.long))
        self.register_buffer("pair_j", torch.tensor([j for _, j in pairs], dtype=torch.long))
        self.register_buffer("prob_a", torch.tensor(prob_a, dtype=torch.float32))
        self.register_buffer("prob_b", torch.tensor(prob_b, dtype=torch.float32))

    def extra_repr(self) -> str:
        vectors = self.support_vectors.shape[0] if self.svc else 0
        return (f"classes={self.classes}, support_vectors={vectors}, {self.kernel}, probabilities={self.has_proba}, "
                f"post_transform={self.post_transform!r}")

    def _linear(self, rows: torch.Tensor):
        scores = rows @ self.coefficients.T + self.rho[0]
        best, index = scores.amax(dim=1), torch.argmax(scores, dim=1)
        if self.classes == 2 and not self.has_proba:
            # NOTE: onnxruntime's binary rule: class 1 when the top score is >= 0.5 (all weights
            # positive) or > 0 (mixed weights), else the arg-max.
            pick_one = best >= 0.5 if self.all_positive else best > 0
            index = torch.where(pick_one, torch.ones_like(index), index)
        if self.classes >= 2:
            return index, post_transform(scores, self.post_transform)
        return index, ort_probit(scores) if self.post_transform == "PROBIT" else scores

    def _probabilities(self, decision: torch.Tensor) -> torch.Tensor:
        value = 1 - torch.sigmoid(decision * self.prob_a + self.prob_b)
        value = value.clamp(1e-7, 1 - 1e-7)
        r = decision.new_zeros(decision.shape[0], self.classes, self.classes)
        r[:, self.pair_i, self.pair_j] = value
        r[:, self.pair_j, self.pair_i] = 1 - value
        return pairwise_coupling(r)

    def forward(self, x: torch.Tensor):
        rows = _rows(x).to(torch.float32)
        if not self.svc:
            index, scores = self._linear(rows)
        else:
            kernel = svm_kernel(rows, self.support_vectors, **self.kernel)
            decision = kernel @ self.pair_weights + self.rho
            positive = (decision > 0).to(torch.float32)
            votes = positive @ self.winners_i + (1 - positive) @ self.winners_j
            index = torch.argmax(votes, dim=1)
            if self.has_proba:
                scores = post_transform(self._probabilities(decision), self.post_transform)
            elif self.classes > 2:
                scores = post_transform(decision, self.post_transform)
            elif self.post_transform == "NONE":
                scores = torch.cat((-decision, decision), dim=1)
            else:
                # NOTE: onnxruntime writes [1 - s, s], s the decision value or (LOGISTIC) its
                # logistic; no other transform applies here.
                score = torch.sigmoid(decision) if self.post_transform == "LOGISTIC" else decision
                scores = torch.cat((1 - score, score), dim=1)
        label = self.pick(index)
        return (label, scores) if self.n_outputs == 2 else label


@converter("SVMClassifier", since=1, domain=ML)
def svm_classifier(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """SVMClassifier(X) -> (Y labels [N], Z scores); libsvm SVC (pairwise votes, Platt probabilities) or liblinear"""
    _single_input_rank(node, ctx)
    labels = _class_labels(node, "classlabels_ints")
    if labels is None:
        raise node.unsupported("class labels", None, "classlabels_strings or classlabels_ints")
    classes = len(labels)
    coefficients = np.asarray(node.attr("coefficients", None) or [], dtype=np.float32)
    rho = list(node.attr("rho", None) or [])
    prob_a, prob_b = list(node.attr("prob_a", None) or []), list(node.attr("prob_b", None) or [])
    if not coefficients.size or not rho:
        raise node.unsupported("coefficients/rho", (coefficients.size, len(rho)), "non-empty coefficients and rho")
    if len(prob_a) != len(prob_b):
        raise node.unsupported("prob_a/prob_b lengths", (len(prob_a), len(prob_b)), "equal lengths")
    transform = _post_transform_attr(node)
    vectors_per_class = node.attr_ints("vectors_per_class", []) or []
    kernel = _kernel_config(node)
    support = None
    pairs = classes * (classes - 1) // 2
    if sum(vectors_per_class) > 0:
        total = sum(vectors_per_class)
        flat = np.asarray(node.attr("support_vectors", None) or [], dtype=np.float32)
        if classes < 2 or len(vectors_per_class) != classes:
            raise node.unsupported("vectors_per_class", vectors_per_class,
                                   f"one count per class ({classes}), 2+ classes")
        if flat.size % total or coefficients.size != (classes - 1) * total or len(rho) < pairs:
            raise node.unsupported("support_vectors/coefficients/rho sizes", (flat.size, coefficients.size, len(rho)),
                                   f"[{total}, F] vectors, [{classes - 1}, {total}] coefficients, {pairs} rho")
        if prob_a and len(prob_a) < pairs:
            raise node.unsupported("prob_a length", len(prob_a), f"one per class pair ({pairs})")
        if classes == 2 and not prob_a and transform == "PROBIT":
            raise node.unsupported("post_transform of a binary SVC without probabilities", transform,
                                   "NONE, SOFTMAX, LOGISTIC, SOFTMAX_ZERO (onnxruntime leaves half of Z unwritten)")
        support = flat.reshape(total, -1)
        coefficients = coefficients.reshape(classes - 1, total)
    elif coefficients.size % classes:
        raise node.unsupported("coefficients length", coefficients.size, f"a multiple of the {classes} classes")
    module = SVMClassifierModule(
        labels=labels, kernel=kernel, coefficients=coefficients, rho=[float(v) for v in rho],
        support_vectors=support, vectors_per_class=vectors_per_class, prob_a=prob_a, prob_b=prob_b,
        post_transform=transform, n_outputs=len(node.outputs),
    )
    return Lowered(module, inputs=node.inputs[:1])


# --- TreeEnsembleRegressor / TreeEnsembleClassifier (ai.onnx.ml 1 and 3) ----------------------
_LEGACY_MODES = {name: i for i, name in enumerate(_MODE_NAMES[:6])}


class _LegacyTrees:
    """The node tables of a legacy tree ensemble, flattened for TreeEnsembleModule's walk, plus the
    (target, weight) votes of every leaf."""

    def __init__(self, node: OnnxNode, ctx: ConversionContext, prefix: str, targets: int):
        tree_ids = node.attr_ints("nodes_treeids", []) or []
        node_ids = node.attr_ints("nodes_nodeids", []) or []
        features = node.attr_ints("nodes_featureids", []) or []
        modes = [str(m) for m in (node.attr("nodes_modes", None) or [])]
        true_ids = node.attr_ints("nodes_truenodeids", []) or []
        false_ids = node.attr_ints("nodes_falsenodeids", []) or []
        missing = node.attr_ints("nodes_missing_value_tracks_true", []) or []
        values = _floats(node, "nodes_values")
        count = len(tree_ids)
        lengths = {len(node_ids), len(features), len(modes), len(true_ids), len(false_ids),
                   len(values) if values is not None else 0}
        if count == 0 or lengths != {count}:
            raise node.unsupported("nodes_* attribute lengths", sorted(lengths | {count}), "equal, non-zero lengths")
        unknown = sorted({m for m in modes if m != "LEAF" and m not in _LEGACY_MODES})
        if unknown:
            raise node.unsupported("nodes_modes", unknown, ", ".join([*_LEGACY_MODES, "LEAF"]))
        # NOTE: thresholds are compared in double for double inputs and in float otherwise
        # (integer inputs are converted to float), as in onnxruntime.
        elem = ctx.elem_type(node.input(0))
        self.dtype = np.float64 if elem == TensorProto.DOUBLE else np.float32
        for name in ("nodes_values", "base_values", f"{prefix}_weights"):
            tensor = node.attr(f"{name}_as_tensor", None)
            if elem is not None and tensor is not None and tensor.dtype != self.dtype:
                raise node.unsupported(f"{name}_as_tensor of type {tensor.dtype} for input type",
                                       TensorProto.DataType.Name(elem), "double tensors for double inputs, "
                                       "float tensors otherwise (as onnxruntime reads them)")
        position = {}
        for i, key in enumerate(zip(tree_ids, node_ids)):
            if key in position:
                raise node.unsupported("node id", f"tree {key[0]} node {key[1]} repeated", "unique (tree, node) ids")
            position[key] = i
        inner = [i for i, m in enumerate(modes) if m != "LEAF"]
        leaves = [i for i, m in enumerate(modes) if m == "LEAF"]
        n_inner = max(len(inner), 1)  # the walk needs one node row even when every tree is a leaf
        ref = {i: k for k, i in enumerate(inner)}
        ref.update({i: n_inner + k for k, i in enumerate(leaves)})

        def child(i: int, ids: list[int]) -> int:
            key = (tree_ids[i], ids[i])
            if key not in position or position[key] == i:
                raise node.unsupported("child of tree node", f"tree {key[0]} node {node_ids[i]} -> {key[1]}",
                                       "an existing other node of the same tree")
            return ref[position[key]]

        self.features = [features[i] for i in inner] or [0]
        self.splits = np.asarray([values[i] for i in inner] or [0.0], dtype=self.dtype)
        self.modes = [_LEGACY_MODES[modes[i]] for i in inner] or [0]
        self.missing = [bool(i < len(missing) and missing[i] == 1) for i in inner] or [False]
        self.true_next = [child(i, true_ids) for i in inner] or [0]
        self.false_next = [child(i, false_ids) for i in inner] or [0]
        # NOTE: onnxruntime starts a tree at every change of nodes_treeids in attribute order.
        self.roots = [ref[i] for i in range(count) if i == 0 or tree_ids[i] != tree_ids[i - 1]]
        self.n_inner, self.n_leaves = n_inner, len(leaves)

        w_trees = node.attr_ints(f"{prefix}_treeids", []) or []
        w_nodes = node.attr_ints(f"{prefix}_nodeids", []) or []
        w_ids = node.attr_ints(f"{prefix}_ids", []) or []
        w_values = _floats(node, f"{prefix}_weights")
        w_values = np.zeros(0) if w_values is None else w_values
        if not len(w_trees) == len(w_nodes) == len(w_ids) == len(w_values):
            raise node.unsupported(f"{prefix}_* attribute lengths",
                                   (len(w_trees), len(w_nodes), len(w_ids), len(w_values)), "equal lengths")
        bad = sorted({t for t in w_ids if not 0 <= t < targets})
        if bad:
            raise node.unsupported(f"{prefix}_ids", bad, f"ids in [0, {targets})")
        self.weight_ids = w_ids
        self.weight_values = [float(v) for v in w_values]
        # leaf index -> its (target, weight) votes in onnxruntime's order (sorted by tree, node)
        self.votes: list[list[tuple[int, float]]] = [[] for _ in leaves]
        for k in sorted(range(len(w_ids)), key=lambda k: (w_trees[k], w_nodes[k], k)):
            key = (w_trees[k], w_nodes[k])
            if key not in position:
                raise node.unsupported(f"{prefix} weight node", f"tree {key[0]} node {key[1]}", "an existing node")
            if modes[position[key]] != "LEAF":
                continue  # NOTE: onnxruntime ignores weights on branch nodes (old converters wrote them)
            self.votes[ref[position[key]] - n_inner].append((w_ids[k], float(w_values[k])))
        empty = [k for k, v in enumerate(self.votes) if not v]
        if empty:
            i = leaves[empty[0]]
            raise node.unsupported("leaf without weights", f"tree {tree_ids[i]} node {node_ids[i]}",
                                   "a weight on every leaf")
        self.depth = _max_depth(self.roots, self.true_next, self.false_next, n_inner, node)

    def dense(self, targets: int, combine: str, node: OnnxNode) -> tuple[np.ndarray, np.ndarray]:
        """[leaves, targets] weights and has-a-vote masks; several votes for one target are summed
        (``min``/``max`` for those aggregates)."""
        weights = np.zeros((self.n_leaves, targets), dtype=self.dtype)
        has = np.zeros((self.n_leaves, targets), dtype=bool)
        for leaf, votes in enumerate(self.votes):
            for target, value in votes:
                if not has[leaf, target]:
                    weights[leaf, target] = value
                elif combine == "sum":
                    weights[leaf, target] += value
                else:
                    weights[leaf, target] = (min if combine == "min" else max)(weights[leaf, target], value)
                has[leaf, target] = True
        return weights, has

    def module_kwargs(self) -> dict:
        return {
            "features": self.features, "splits": self.splits, "modes": self.modes, "missing_true": self.missing,
            "true_next": self.true_next, "false_next": self.false_next,
            "members": np.full((self.n_inner, 1), np.nan, dtype=self.dtype), "roots": self.roots,
            "leaf_weights": np.zeros(self.n_leaves, dtype=self.dtype), "leaf_targets": [0] * self.n_leaves,
            "depth": self.depth, "post_transform": "NONE",
        }


class LegacyTreeRegressorModule(TreeEnsembleModule):
    """TreeEnsembleRegressor (ai.onnx.ml 1/3) on TreeEnsembleModule's batched walk: per target the
    aggregate of the votes of the leaves reached, plus base_values, then post_transform."""

    def __init__(self, trees: _LegacyTrees, *, targets: int, aggregate: str, base_values: np.ndarray,
                 post_transform: str, node: OnnxNode):
        super().__init__(**trees.module_kwargs(), n_targets=targets, aggregate=aggregate)
        self.transform = post_transform
        self.single = targets == 1
        if self.single:
            # NOTE: onnxruntime's one-target path takes only each leaf's first vote.
            weights = np.asarray([[votes[0][1]] for votes in trees.votes], dtype=trees.dtype).reshape(-1, 1)
            has = np.ones_like(weights, dtype=bool)
        else:
            combine = {"MIN": "min", "MAX": "max"}.get(aggregate, "sum")
            weights, has = trees.dense(targets, combine, node)
        base = list(base_values) if len(base_values) else [0.0] * targets
        self.register_buffer("target_weights", torch.from_numpy(weights))
        self.register_buffer("target_votes", torch.from_numpy(has))
        self.register_buffer("base_values", torch.tensor(base, dtype=self.target_weights.dtype))

    def extra_repr(self) -> str:
        return (f"trees={self.roots.numel()}, leaves={self.target_weights.shape[0]}, n_targets={self.n_targets}, "
                f"depth={self.depth}, aggregate={self.aggregate!r}, post_transform={self.transform!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        leaves = self._leaves(_rows(x))
        weights, votes = self.target_weights[leaves], self.target_votes[leaves]
        reached = votes.any(dim=1)
        if self.aggregate in ("SUM", "AVERAGE"):
            score = weights.sum(dim=1)
            if self.aggregate == "AVERAGE":
                score = score / self.roots.numel()
        else:
            fill = math.inf if self.aggregate == "MIN" else -math.inf
            masked = torch.where(votes, weights, torch.full_like(weights, fill))
            score = masked.amin(dim=1) if self.aggregate == "MIN" else masked.amax(dim=1)
            score = torch.where(reached, score, torch.zeros_like(score))
        score = score + self.base_values
        if self.single:
            score = score.to(torch.float32)
            return ort_probit(score) if self.transform == "PROBIT" else score
        # NOTE: onnxruntime writes 0 for a target no reached leaf votes for (its base value included).
        score = torch.where(reached, score, torch.zeros_like(score)).to(torch.float32)
        return post_transform(score, self.transform)


@converter("TreeEnsembleRegressor", since=1, domain=ML)
def tree_ensemble_regressor(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """TreeEnsembleRegressor(X) -> Y float [N, n_targets]; aggregate of the reached leaves' votes + base_values"""
    _legacy_tree_opset(node)
    _single_input_rank(node, ctx)
    aggregate = node.attr_str("aggregate_function", "SUM")
    if aggregate not in ("AVERAGE", "SUM", "MIN", "MAX"):
        raise node.unsupported("aggregate_function", aggregate, "AVERAGE, SUM, MIN, MAX")
    targets = node.attr_int("n_targets", None)
    if not targets or targets < 1:
        raise node.unsupported("n_targets", targets, "a positive count")
    trees = _LegacyTrees(node, ctx, "target", targets)
    base = _floats(node, "base_values")
    if base is not None and len(base) not in (0, targets):
        raise node.unsupported("base_values length", len(base), f"0 or n_targets ({targets}), as onnxruntime demands")
    module = LegacyTreeRegressorModule(trees, targets=targets, aggregate=aggregate,
                                       base_values=np.zeros(0) if base is None else base.astype(trees.dtype),
                                       post_transform=_post_transform_attr(node), node=node)
    return Lowered(module, inputs=node.inputs[:1])


class LegacyTreeClassifierModule(TreeEnsembleModule):
    """TreeEnsembleClassifier (ai.onnx.ml 1/3): per class the sum of the votes of the leaves
    reached plus base_values; the top class (onnxruntime's binary rules for two classes), scores
    after post_transform."""

    def __init__(self, trees: _LegacyTrees, *, labels: list, base_values: np.ndarray, post_transform: str,
                 binary_case: bool, all_positive: bool, n_outputs: int, node: OnnxNode):
        classes = len(labels)
        super().__init__(**trees.module_kwargs(), n_targets=classes, aggregate="SUM")
        _store_labels(self, labels)
        weights, has = trees.dense(classes, "sum", node)
        self.register_buffer("class_weights", torch.from_numpy(weights))
        self.register_buffer("class_votes", torch.from_numpy(has))
        self.register_buffer("base_values", torch.tensor(base_values, dtype=self.class_weights.dtype))
        self.transform = post_transform
        self.binary_case = binary_case
        self.all_positive = all_positive
        self.n_outputs = n_outputs

    def extra_repr(self) -> str:
        return (f"trees={self.roots.numel()}, leaves={self.class_weights.shape[0]}, classes={self.n_targets}, "
                f"depth={self.depth}, base_values={self.base_values.numel()}, post_transform={self.transform!r}")

    def _multiclass(self, score: torch.Tensor, has: torch.Tensor):
        if self.base_values.numel():
            # NOTE: a base value also counts as a vote for its class.
            score = score + self.base_values
            has = torch.ones_like(has)
        top = torch.argmax(torch.where(has, score, torch.full_like(score, -math.inf)), dim=1)
        values = torch.where(has, score, torch.zeros_like(score)).to(torch.float32)
        return _pick_labels(self, top), post_transform(values, self.transform)

    def _binary(self, score: torch.Tensor, has: torch.Tensor):
        s0, s1, h0, h1 = score[:, 0], score[:, 1], has[:, 0], has[:, 1]
        zero = torch.zeros_like(s0)
        n_base = self.base_values.numel()
        two_columns = torch.ones_like(h1)
        if n_base == 2:
            b0, b1 = self.base_values[0], self.base_values[1]
            # NOTE: onnxruntime's rule: with a class-1 vote, s1 = b1 + s0 and s0 = -s1;
            # otherwise both get their base value.
            s1, s0 = torch.where(h1, b1 + s0, s1 + b1), torch.where(h1, -(b1 + s0), s0 + b0)
        elif n_base == 1:
            s0 = s0 + self.base_values[0]
            two_columns = h1
        elif n_base == 0:
            two_columns = h1
        positive = torch.where(two_columns & h1, s1, torch.where(h0, s0, zero))
        if self.binary_case:
            win = positive > 0.5 if self.all_positive else positive > 0
        else:
            win = positive > 0  # NOTE: onnxruntime then returns the literal labels 1 / 0 for int labels
        v0, v1 = torch.where(h0, s0, zero).to(torch.float32), torch.where(h1, s1, zero).to(torch.float32)
        pair = post_transform(torch.stack((v0, v1), dim=1), self.transform)
        if self.transform == "LOGISTIC":
            single = torch.stack((1 - torch.sigmoid(v0), torch.sigmoid(v0)), dim=1)
        elif self.binary_case and self.all_positive:
            single = torch.stack((1 - v0, v0), dim=1)
        else:
            single = torch.stack((-v0, v0), dim=1)
        scores = torch.where(two_columns.unsqueeze(1), pair, single)
        if self.string_labels is None and not self.binary_case:
            label = win.to(torch.int64)
        else:
            label = _pick_labels(self, win.to(torch.int64))
        return label, scores

    def forward(self, x: torch.Tensor):
        leaves = self._leaves(_rows(x))
        score = self.class_weights[leaves].sum(dim=1)
        has = self.class_votes[leaves].any(dim=1)
        label, scores = self._binary(score, has) if self.n_targets == 2 else self._multiclass(score, has)
        return (label, scores) if self.n_outputs == 2 else label


@converter("TreeEnsembleClassifier", since=1, domain=ML)
def tree_ensemble_classifier(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """TreeEnsembleClassifier(X) -> (Y labels [N], Z scores [N, classes]); summed leaf votes + base_values"""
    _legacy_tree_opset(node)
    _single_input_rank(node, ctx)
    labels = _class_labels(node, "classlabels_int64s")
    if labels is None or len(labels) < 2:
        raise node.unsupported("class labels", labels, "2+ classlabels_strings or classlabels_int64s")
    transform = _post_transform_attr(node)
    classes = len(labels)
    trees = _LegacyTrees(node, ctx, "class", classes)
    base = _floats(node, "base_values")
    base = np.zeros(0, dtype=trees.dtype) if base is None else base.astype(trees.dtype)
    if (classes == 2 and len(base) > 2) or (classes > 2 and len(base) not in (0, classes)):
        raise node.unsupported("base_values length", len(base),
                               "0-2 for two classes, else 0 or one per class (as onnxruntime demands)")
    binary_case = classes == 2 and len(set(trees.weight_ids)) == 1
    all_positive = all(v >= 0 for v in trees.weight_values)
    if classes == 2 and len(base) <= 1:
        # A sample no class-1 vote reaches gets one score column, which onnxruntime expands to two
        # only with a known rule; with PROBIT or (one base value, votes for both classes) it leaves
        # the second column unwritten.
        unwritten = transform == "PROBIT" or (len(base) == 1 and not binary_case)
        _, has = trees.dense(2, "sum", node)
        trees_of_leaf = _tree_of_leaves(trees)
        can_miss = all(any(not has[leaf, 1] for leaf in leaves) for leaves in trees_of_leaf)
        if unwritten and can_miss:
            raise node.unsupported("binary model whose samples may get no class-1 vote, with "
                                   "post_transform/base_values", (transform, [float(b) for b in base]),
                                   "models onnxruntime fully defines")
    module = LegacyTreeClassifierModule(trees, labels=labels, base_values=base, post_transform=transform,
                                        binary_case=binary_case, all_positive=all_positive,
                                        n_outputs=len(node.outputs), node=node)
    return Lowered(module, inputs=node.inputs[:1])


def _legacy_tree_opset(node: OnnxNode) -> None:
    if node.opset >= 5:
        raise node.unsupported("ai.onnx.ml opset", node.opset,
                               "1-4 (the op was removed in ai.onnx.ml 5 for TreeEnsemble)")


def _tree_of_leaves(trees: _LegacyTrees) -> list[list[int]]:
    """For every tree (root), the leaves (indices into the leaf table) it can reach."""
    result = []
    for root in trees.roots:
        stack, found, seen = [root], [], set()
        while stack:
            at = stack.pop()
            if at in seen:
                continue
            seen.add(at)
            if at >= trees.n_inner:
                found.append(at - trees.n_inner)
            else:
                stack.extend((trees.true_next[at], trees.false_next[at]))
        result.append(found)
    return result
