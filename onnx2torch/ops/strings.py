"""Converters for string and text ops (TfIdfVectorizer included).  torch has no string tensors, so string values are numpy object
arrays of Python ``str`` inside ``forward``; numeric results are torch tensors."""
from __future__ import annotations

import logging
import re

import numpy as np
import torch
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.registry import Lowered, converter

__all__ = ["string_concat", "string_normalizer", "string_split", "regex_full_match", "tfidf_vectorizer"]

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


class TfIdfVectorizerModule(nn.Module):
    """TfIdfVectorizer: counts the pool's n-grams (with skips) in each row of tokens, then
    weighs the counts (TF, IDF or TFIDF) into a [C] or [B, C] float32 tensor."""

    def __init__(self, ngrams: dict[tuple, int], min_gram: int, max_gram: int, max_skip: int,
                 output_size: int, mode: str, weights: list[float] | None):
        super().__init__()
        self.ngrams = ngrams
        self.prefixes = {g[:k] for g in ngrams for k in range(1, len(g) + 1)}
        self.min_gram, self.max_gram, self.max_skip = min_gram, max_gram, max_skip
        self.output_size, self.mode, self.weights = output_size, mode, weights

    def extra_repr(self) -> str:
        return (f"ngrams={len(self.ngrams)}, grams=({self.min_gram}, {self.max_gram}), max_skip={self.max_skip}, "
                f"mode={self.mode}")

    def _count_row(self, row: list, counts: np.ndarray) -> None:
        start_size = self.min_gram
        for skip in range(1, self.max_skip + 2):
            for start in range(len(row)):
                if start + skip * (start_size - 1) >= len(row):
                    break
                gram: tuple = ()
                for item in range(start, min(len(row), start + skip * self.max_gram), skip):
                    gram = gram + (row[item],)
                    if gram not in self.prefixes:
                        break
                    if len(gram) >= start_size and gram in self.ngrams:
                        counts[self.ngrams[gram]] += 1
            if start_size == 1:
                # NOTE: unigrams do not depend on the skip distance; the spec counts them once.
                start_size = 2
                if start_size > self.max_gram:
                    break

    def forward(self, x):
        values = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x)
        if values.dtype == object:
            values = _strings(values)
        rows = values.reshape(1, -1) if values.ndim <= 1 else values
        counts = np.zeros((rows.shape[0], self.output_size), dtype=np.float32)
        for r in range(rows.shape[0]):
            self._count_row(rows[r].tolist(), counts[r])
        if self.mode == "IDF":
            counts = (counts > 0).astype(np.float32) * (np.asarray(self.weights, np.float32) if self.weights else 1)
        elif self.mode == "TFIDF" and self.weights:
            counts = counts * np.asarray(self.weights, np.float32)
        out = torch.from_numpy(counts)
        return out.reshape(-1) if values.ndim <= 1 else out


@converter("TfIdfVectorizer", since=9)
def tfidf_vectorizer(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """TfIdfVectorizer(X) -> Y; attrs mode, min/max_gram_length, max_skip_count, ngram_counts,
    ngram_indexes, pool_int64s | pool_strings, weights"""
    mode = node.attr_str("mode")
    if mode not in ("TF", "IDF", "TFIDF"):
        raise node.unsupported("mode", mode, "TF, IDF, TFIDF")
    pool = node.attr("pool_int64s", None)
    if pool is None:
        pool = node.attr("pool_strings", None)
    if pool is None:
        raise node.unsupported("pool", None, "pool_int64s or pool_strings")
    pool = list(pool)
    counts = node.attr_ints("ngram_counts")
    indexes = node.attr_ints("ngram_indexes")
    min_gram, max_gram = node.attr_int("min_gram_length"), node.attr_int("max_gram_length")
    ngrams: dict[tuple, int] = {}
    gram_id = 0
    for size, start in enumerate(counts, start=1):
        end = counts[size] if size < len(counts) else len(pool)
        for offset in range(start, end - size + 1, size):
            if min_gram <= size <= max_gram:
                ngrams[tuple(pool[offset: offset + size])] = indexes[gram_id]
            gram_id += 1
    weights = node.attr("weights", None)
    module = TfIdfVectorizerModule(ngrams, min_gram, max_gram, node.attr_int("max_skip_count"),
                                   max(indexes) + 1, mode, list(weights) if weights else None)
    return Lowered(module)
