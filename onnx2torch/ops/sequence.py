"""Converters for sequence and optional values: ONNX sequences are Python lists in ``forward``,
an empty optional is ``None``."""
from __future__ import annotations

import logging

import torch
from torch import fx, nn

from onnx2torch.assemble import ConversionContext, build_subgraph
from onnx2torch.attributes import OnnxNode
from onnx2torch.registry import Lowered, converter

__all__ = [
    "sequence_construct", "sequence_insert", "sequence_at", "sequence_erase", "sequence_length",
    "split_to_sequence", "concat_from_sequence", "SequenceMapModule",
]

logger = logging.getLogger(__name__)


def _index(position, length: int, *, inserting: bool = False) -> int:
    pos = int(position.reshape(-1)[0]) if isinstance(position, torch.Tensor) else int(position)
    limit = length + 1 if inserting else length
    if pos < -length or pos >= limit:
        raise IndexError(f"sequence position {pos} is out of range for a sequence of length {length}")
    return pos + length if pos < 0 else pos


@converter("SequenceEmpty", since=11)
def sequence_empty(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """SequenceEmpty() -> output (an empty list)"""
    return Lowered(make_empty_sequence)


def make_empty_sequence() -> list:
    """A new empty ONNX sequence."""
    return []


def construct_sequence(*tensors) -> list:
    """SequenceConstruct: the inputs as a list."""
    return list(tensors)


@converter("SequenceConstruct", since=11)
def sequence_construct(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """SequenceConstruct(inputs...) -> output_sequence"""
    return Lowered(construct_sequence)


def insert_into_sequence(sequence: list, tensor, position=None) -> list:
    """SequenceInsert: a new list with ``tensor`` at ``position`` (default: the end)."""
    result = list(sequence)
    if position is None:
        result.append(tensor)
    else:
        result.insert(_index(position, len(sequence), inserting=True), tensor)
    return result


@converter("SequenceInsert", since=11)
def sequence_insert(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """SequenceInsert(input_sequence, tensor, position?) -> output_sequence"""
    return Lowered(insert_into_sequence)


def sequence_item(sequence: list, position):
    """SequenceAt: the element at ``position`` (negative counts from the end)."""
    return sequence[_index(position, len(sequence))]


@converter("SequenceAt", since=11)
def sequence_at(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """SequenceAt(input_sequence, position) -> tensor"""
    return Lowered(sequence_item)


def erase_from_sequence(sequence: list, position=None) -> list:
    """SequenceErase: a new list without the element at ``position`` (default: the last)."""
    result = list(sequence)
    del result[-1 if position is None else _index(position, len(sequence))]
    return result


@converter("SequenceErase", since=11)
def sequence_erase(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """SequenceErase(input_sequence, position?) -> output_sequence"""
    return Lowered(erase_from_sequence)


def sequence_len(sequence: list) -> torch.Tensor:
    """SequenceLength: the number of elements as an int64 scalar."""
    return torch.tensor(len(sequence), dtype=torch.int64)


@converter("SequenceLength", since=11)
def sequence_length(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """SequenceLength(input_sequence) -> length"""
    return Lowered(sequence_len)


def split_into_sequence(x: torch.Tensor, split=None, *, axis: int = 0, keepdims: int = 1) -> list:
    """SplitToSequence: chunks of ``x`` along ``axis`` (sizes from ``split``; size 1 by default)."""
    if split is None:
        parts = torch.split(x, 1, dim=axis)
        return [p.squeeze(axis) for p in parts] if not keepdims else list(parts)
    if split.dim() == 0:
        return list(torch.split(x, int(split), dim=axis))
    return list(torch.split(x, [int(s) for s in split.tolist()], dim=axis))


@converter("SplitToSequence", since=11)
def split_to_sequence(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """SplitToSequence(input, split?) -> output_sequence"""
    return Lowered(split_into_sequence, kwargs={"axis": node.attr_int("axis"), "keepdims": node.attr_int("keepdims")})


def concat_sequence(sequence: list, *, axis: int, new_axis: int = 0) -> torch.Tensor:
    """ConcatFromSequence: concatenate (or stack, with ``new_axis``) the elements."""
    if new_axis:
        return torch.stack(sequence, dim=axis)
    return torch.cat(sequence, dim=axis)


@converter("ConcatFromSequence", since=11)
def concat_from_sequence(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ConcatFromSequence(input_sequence) -> concat_result"""
    return Lowered(concat_sequence, kwargs={"axis": node.attr_int("axis"), "new_axis": node.attr_int("new_axis")})


class SequenceMapModule(nn.Module):
    """SequenceMap: runs ``body`` once per sequence element; non-sequence inputs are shared."""

    def __init__(self, body: fx.GraphModule, num_outputs: int, num_outer: int):
        super().__init__()
        self.body = body
        self.num_outputs = num_outputs
        self.num_outer = num_outer

    def forward(self, sequence: list, *extra):
        outer_start = len(extra) - self.num_outer
        additional, outer = extra[:outer_start], extra[outer_start:]
        results: list[list] = [[] for _ in range(self.num_outputs)]
        for i in range(len(sequence)):
            args = [a[i] if isinstance(a, list) else a for a in additional]
            out = self.body(sequence[i], *args, *outer)
            for k, value in enumerate(out):
                results[k].append(value)
        return results[0] if self.num_outputs == 1 else tuple(results)


@converter("SequenceMap", since=17)
def sequence_map(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """SequenceMap(input_sequence, additional_inputs...) -> out_sequence...; body per element"""
    body, outer = build_subgraph(node.attr("body"), ctx)
    return Lowered(SequenceMapModule(body, len(node.outputs), len(outer)), inputs=[*node.inputs, *outer])


def make_optional(value=None):
    """Optional: the value itself; an empty optional is ``None``."""
    return value


@converter("Optional", since=15)
def optional(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Optional(input?) -> output"""
    return Lowered(make_optional)


def optional_has_element(value=None) -> torch.Tensor:
    """OptionalHasElement: whether the optional holds a value."""
    return torch.tensor(value is not None)


@converter("OptionalHasElement", since=15)
def optional_has(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """OptionalHasElement(input?) -> output (bool scalar)"""
    return Lowered(optional_has_element)


def optional_get_element(value):
    """OptionalGetElement: the value of a non-empty optional (a plain tensor passes through)."""
    if value is None:
        raise ValueError("OptionalGetElement on an empty optional")
    return value


@converter("OptionalGetElement", since=15)
def optional_get(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """OptionalGetElement(input) -> output"""
    return Lowered(optional_get_element)
