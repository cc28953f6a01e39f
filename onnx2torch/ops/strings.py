"""Converters for string ops.  torch has no string tensors, so string values are numpy object
arrays of Python ``str`` inside ``forward``; numeric results are torch tensors."""
from __future__ import annotations

import logging
import re

import numpy as np
import torch

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.registry import Lowered, converter

__all__ = ["string_concat", "string_normalizer", "string_split", "regex_full_match"]

logger = logging.getLogger(__name__)


def _strings(x) -> np.ndarray:
    array = np.asarray(x, dtype=object)
    return np.vectorize(lambda s: s.decode() if isinstance(s, bytes) else str(s), otypes=[object])(array) \
        if array.size else array


def concat_strings(x, y) -> np.ndarray:
    """StringConcat: elementwise ``x + y`` with numpy broadcasting."""
    a, b = np.broadcast_arrays(_strings(x), _strings(y))
    out = np.empty(a.shape, dtype=object)
    for index in np.ndindex(a.shape):
        out[index] = a[index] + b[index]
    return out


@converter("StringConcat", since=20)
def string_concat(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """StringConcat(X, Y) -> Z"""
    return Lowered(concat_strings)


def normalize_strings(x, *, case_change_action: str, is_case_sensitive: int, stopwords: tuple[str, ...]) -> np.ndarray:
    """StringNormalizer: drop stop words, then change case; keeps the [C] / [1, C] layout."""
    values = _strings(x)
    two_d = values.ndim == 2
    flat = list(values.reshape(-1))
    if stopwords:
        if is_case_sensitive:
            stop = set(stopwords)
            flat = [s for s in flat if s not in stop]
        else:
            stop = {w.lower() for w in stopwords}
            flat = [s for s in flat if s.lower() not in stop]
    if case_change_action == "LOWER":
        flat = [s.lower() for s in flat]
    elif case_change_action == "UPPER":
        flat = [s.upper() for s in flat]
    if not flat:
        flat = [""]  # NOTE: the spec keeps one empty string when everything is filtered out
    out = np.array(flat, dtype=object)
    return out.reshape(1, -1) if two_d else out


@converter("StringNormalizer", since=10)
def string_normalizer(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """StringNormalizer(X) -> Y; attrs case_change_action, is_case_sensitive, locale, stopwords"""
    action = node.attr_str("case_change_action")
    if action not in ("NONE", "LOWER", "UPPER"):
        raise node.unsupported("case_change_action", action, "NONE, LOWER, UPPER")
    return Lowered(normalize_strings, kwargs={
        "case_change_action": action,
        "is_case_sensitive": node.attr_int("is_case_sensitive"),
        "stopwords": tuple(node.attr("stopwords", []) or []),
    })


def split_strings(x, *, delimiter: str | None, maxsplit: int | None):
    """StringSplit: substrings padded with "" to the longest split, and the split counts."""
    values = _strings(x)
    parts = []
    for s in values.reshape(-1):
        limit = -1 if maxsplit is None else maxsplit
        parts.append(s.split(None, limit) if not delimiter else s.split(delimiter, limit))
    width = max((len(p) for p in parts), default=0)
    out = np.full((len(parts), width), "", dtype=object)
    for i, p in enumerate(parts):
        out[i, : len(p)] = p
    counts = torch.tensor([len(p) for p in parts], dtype=torch.int64).reshape(values.shape)
    return out.reshape(*values.shape, width), counts


@converter("StringSplit", since=20)
def string_split(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """StringSplit(X) -> (Y, Z); attrs delimiter, maxsplit"""
    return Lowered(split_strings, kwargs={"delimiter": node.attr_str("delimiter"), "maxsplit": node.attr_int("maxsplit")})


def regex_full_match_strings(x, *, pattern: str) -> torch.Tensor:
    """RegexFullMatch: whether each string matches ``pattern`` entirely."""
    compiled = re.compile(pattern)
    values = _strings(x)
    flags = [compiled.fullmatch(s) is not None for s in values.reshape(-1)]
    return torch.tensor(flags, dtype=torch.bool).reshape(values.shape)


@converter("RegexFullMatch", since=20)
def regex_full_match(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """RegexFullMatch(X) -> Y (bool); attr pattern (RE2 syntax; Python's re is used)"""
    pattern = node.attr_str("pattern")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise node.unsupported("pattern", pattern, f"a pattern Python's re accepts ({exc})") from exc
    return Lowered(regex_full_match_strings, kwargs={"pattern": pattern})
