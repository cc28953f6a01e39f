"""Converters for random ops: RandomNormal(Like), RandomUniform(Like), Bernoulli, Multinomial.

They are never folded at conversion time.  A ``seed`` attribute seeds a private generator once,
so a converted model's draws are reproducible from one construction; values cannot match another
runtime's generator, only the distribution, shape and dtype.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.dtypes import torch_dtype
from onnx2torch.registry import Lowered, converter

__all__ = ["RandomModule"]

logger = logging.getLogger(__name__)


class RandomModule(nn.Module):
    """Draws from one distribution; the shape comes from the config or from ``like``."""

    def __init__(self, kind: str, dtype: torch.dtype | None, shape: list[int] | None,
                 a: float, b: float, seed: float | None):
        super().__init__()
        self.kind, self.dtype, self.shape, self.a, self.b = kind, dtype, shape, a, b
        self.seed = seed
        self.generator: torch.Generator | None = None

    def extra_repr(self) -> str:
        return f"kind={self.kind}, dtype={self.dtype}, shape={self.shape}, a={self.a}, b={self.b}, seed={self.seed}"

    def _gen(self, device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if self.generator is None or self.generator.device != torch.device(device):
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(int(self.seed))
        return self.generator

    def forward(self, like: torch.Tensor | None = None):
        device = like.device if like is not None else "cpu"
        shape = list(like.shape) if self.shape is None else self.shape
        dtype = self.dtype or (like.dtype if like is not None else torch.float32)
        work = dtype if dtype.is_floating_point else torch.float32
        out = torch.empty(shape, dtype=work, device=device)
        if self.kind == "normal":
            out.normal_(self.a, self.b, generator=self._gen(device))
        else:
            out.uniform_(self.a, self.b, generator=self._gen(device))
        return out.to(dtype)


def _dtype(node: OnnxNode, default: int | None) -> torch.dtype | None:
    elem = node.attr_int("dtype", default) if node.has_attr("dtype") or default is not None else None
    return None if elem is None else torch_dtype(elem)


@converter("RandomNormal", since=1, deterministic=False)
def random_normal(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """RandomNormal() -> output; attrs dtype, mean, scale, seed, shape"""
    module = RandomModule("normal", _dtype(node, 1), node.attr_ints("shape"), node.attr_float("mean"),
                          node.attr_float("scale"), node.attr("seed"))
    return Lowered(module, inputs=[])


@converter("RandomUniform", since=1, deterministic=False)
def random_uniform(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """RandomUniform() -> output; attrs dtype, high, low, seed, shape"""
    module = RandomModule("uniform", _dtype(node, 1), node.attr_ints("shape"), node.attr_float("low"),
                          node.attr_float("high"), node.attr("seed"))
    return Lowered(module, inputs=[])


@converter("RandomNormalLike", since=1, deterministic=False)
def random_normal_like(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """RandomNormalLike(input) -> output with input's shape (and dtype unless given)"""
    module = RandomModule("normal", _dtype(node, None), None, node.attr_float("mean"), node.attr_float("scale"),
                          node.attr("seed"))
    return Lowered(module)


@converter("RandomUniformLike", since=1, deterministic=False)
def random_uniform_like(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """RandomUniformLike(input) -> output with input's shape (and dtype unless given)"""
    module = RandomModule("uniform", _dtype(node, None), None, node.attr_float("low"), node.attr_float("high"),
                          node.attr("seed"))
    return Lowered(module)


class BernoulliModule(nn.Module):
    """Bernoulli: 1 with probability ``p`` (elementwise), in the requested dtype."""

    def __init__(self, dtype: torch.dtype | None, seed: float | None):
        super().__init__()
        self.dtype, self.seed = dtype, seed
        self.generator: torch.Generator | None = None

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        gen = None
        if self.seed is not None:
            if self.generator is None:
                self.generator = torch.Generator(device=p.device)
                self.generator.manual_seed(int(self.seed))
            gen = self.generator
        out = torch.bernoulli(p.float(), generator=gen)
        return out.to(self.dtype or p.dtype)


@converter("Bernoulli", since=15, deterministic=False)
def bernoulli(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Bernoulli(input) -> output; attrs dtype, seed"""
    return Lowered(BernoulliModule(_dtype(node, None), node.attr("seed")))


class MultinomialModule(nn.Module):
    """Multinomial: ``sample_size`` class indices per batch row drawn from unnormalised log-probs."""

    def __init__(self, sample_size: int, dtype: torch.dtype, seed: float | None):
        super().__init__()
        self.sample_size, self.dtype, self.seed = sample_size, dtype, seed
        self.generator: torch.Generator | None = None

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        gen = None
        if self.seed is not None:
            if self.generator is None:
                self.generator = torch.Generator(device=logits.device)
                self.generator.manual_seed(int(self.seed))
            gen = self.generator
        probs = torch.softmax(logits.float(), dim=-1)
        return torch.multinomial(probs, self.sample_size, replacement=True, generator=gen).to(self.dtype)


@converter("Multinomial", since=7, deterministic=False)
def multinomial(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Multinomial(input) -> output [batch, sample_size]; attrs dtype (int32/int64), sample_size, seed"""
    return Lowered(MultinomialModule(node.attr_int("sample_size"), torch_dtype(node.attr_int("dtype")), node.attr("seed")))
