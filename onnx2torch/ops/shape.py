"""Converters for ops that move or reshape data without computing on it: Reshape, Flatten,
Transpose, Concat, Split, Slice, Squeeze, Unsqueeze, Shape, Size, Expand, Tile, Pad,
DepthToSpace, SpaceToDepth.

Whatever is known at conversion time (a constant ``shape`` input, the static shape of a tensor)
is written into the generated code as literals; what is only known at run time is computed from
``x.shape`` inside small named functions, so symbolic dimensions keep working.
"""
from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.dtypes import ONNX_TO_TORCH
from onnx2torch.ops.constant import identity_fn
from onnx2torch.registry import Lowered, converter
from onnx2torch.symbolic import Dim, symbolic_value

__all__ = [
    "reshape_v1",
    "reshape",
    "flatten",
    "transpose",
    "concat_v1",
    "concat",
    "split_v1",
    "split_v2",
    "split_v13",
    "split_v18",
    "slice_v1",
    "slice_v10",
    "squeeze_v1",
    "squeeze_v13",
    "unsqueeze_v1",
    "unsqueeze_v13",
    "shape",
    "size",
    "expand",
    "tile_v1",
    "tile",
    "pad_v1",
    "pad_v2",
    "pad_v11",
    "depth_to_space",
    "space_to_depth",
    "space_to_depth_v28",
    # run-time helpers the generated code calls
    "reshape_keep_zeros",
    "reshape_dynamic",
    "flatten_2d",
    "reverse_dims",
    "concat_tensors",
    "split_even",
    "split_dynamic",
    "slice_tensor",
    "slice_dynamic",
    "squeeze_dynamic",
    "unsqueeze_axes",
    "unsqueeze_dynamic",
    "shape_of",
    "size_of",
    "expand_to",
    "expand_dynamic",
    "tile_dynamic",
    "tile_along_axis",
    "pad_constant",
    "pad_indexed",
    "pad_dynamic",
    "depth_to_space_dcr",
    "space_to_depth_dcr",
]

logger = logging.getLogger(__name__)

#: Slice bounds at or beyond this are "past the end" (exported models use INT_MAX / INT64_MAX).
_HUGE = 2**31 - 1


def _normalize_axis(axis: int, rank: int | None) -> int:
    """``axis`` in ``[0, rank)`` when the rank is known, else unchanged."""
    if rank is None:
        return axis
    return axis + rank if axis < 0 else axis


def _tensor_ints(value: torch.Tensor) -> list[int]:
    """A small integer tensor (a shape, pads, axes) as Python ints; read at run time."""
    return [int(v) for v in value.reshape(-1).tolist()]


# --- Reshape --------------------------------------------------------------------------------


def reshape_keep_zeros(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Reshape where a 0 in ``shape`` copies the matching dimension of ``x`` (ONNX allowzero=0)."""
    return torch.reshape(x, [x.shape[i] if d == 0 else d for i, d in enumerate(shape)])


def reshape_dynamic(x: torch.Tensor, shape: torch.Tensor, allowzero: int = 0) -> torch.Tensor:
    """Reshape to a shape only known at run time; 0 copies the input dim unless ``allowzero``."""
    dims = _tensor_ints(shape)
    if not allowzero:
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return torch.reshape(x, dims)


def _reshape_literal(node: OnnxNode, ctx: ConversionContext, dims: list[int], allowzero: int) -> Lowered:
    data = node.input(0)
    in_shape = ctx.shape(data)
    if allowzero and 0 in dims and -1 in dims:
        raise node.unsupported("shape", dims, "a shape without both 0 and -1 when allowzero=1 (the spec forbids it)")
    if not allowzero and 0 in dims:
        resolved = list(dims)
        dynamic_zeros = []
        for i, d in enumerate(dims):
            if d != 0:
                continue
            known = in_shape[i] if in_shape is not None and i < len(in_shape) else None
            if isinstance(known, int):
                resolved[i] = known
            else:
                dynamic_zeros.append(i)
        others = math.prod(d for i, d in enumerate(resolved) if i not in dynamic_zeros)
        if len(dynamic_zeros) == 1 and -1 not in resolved and others != 0:
            # NOTE: one copied dim that is unknown now is what -1 infers from the element count
            # (exactly, as the other dims are known and non-zero).
            resolved[dynamic_zeros[0]] = -1
        elif dynamic_zeros:
            return Lowered(reshape_keep_zeros, inputs=[data], kwargs={"shape": tuple(dims)})
        dims = resolved
    return Lowered(torch.reshape, inputs=[data], kwargs={"shape": tuple(dims)})


@converter("Reshape", since=1)
def reshape_v1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Reshape(data) -> reshaped; target from the ``shape`` attribute, 0 copies, -1 infers."""
    dims = node.attr_ints("shape")
    if dims is None:
        raise node.unsupported("shape", None, "a shape attribute")
    return _reshape_literal(node, ctx, dims, allowzero=0)


@converter("Reshape", since=5)
def reshape(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Reshape(data, shape) -> reshaped; 0 copies the input dim unless allowzero=1, -1 infers."""
    allowzero = node.attr_int("allowzero", 0)
    dims = ctx.constant_ints(node.input(1))
    if dims is not None:
        return _reshape_literal(node, ctx, dims, allowzero)
    known = symbolic_value(ctx, node.input(1))
    if known is not None and not known.scalar:
        return _reshape_symbolic(node, ctx, list(known.items), allowzero)
    return Lowered(reshape_dynamic, inputs=node.inputs[:2], kwargs={"allowzero": allowzero})


def _reshape_symbolic(node: OnnxNode, ctx: ConversionContext, dims: list, allowzero: int) -> Lowered:
    """Reshape to a shape computed from run-time sizes (``Shape -> Gather -> Concat``): the
    sizes go in as ``x.size(i)`` ints, so nothing reads a tensor's values at run time."""
    data = node.input(0)
    in_shape = ctx.shape(data) or []
    if allowzero and 0 in dims and -1 in dims:
        raise node.unsupported("shape", dims, "a shape without both 0 and -1 when allowzero=1 (the spec forbids it)")
    if not allowzero:
        # NOTE: a 0 element copies the input dim; a run-time size could itself be 0 only for an
        # empty input, where the spec's copy and the size agree whenever the reshape is valid.
        dims = [(in_shape[i] if i < len(in_shape) and isinstance(in_shape[i], int) else Dim("size", data, i))
                if d == 0 else d for i, d in enumerate(dims)]
    runtime = [i for i, d in enumerate(dims) if isinstance(d, Dim)]
    if len(runtime) == 1 and -1 not in dims and all(isinstance(d, int) and d > 0 for d in dims if not isinstance(d, Dim)):
        # NOTE: one run-time dim among positive literals is what -1 infers from the element count.
        dims[runtime[0]] = -1
    return Lowered(torch.reshape, inputs=[data], kwargs={"shape": tuple(dims)})


# --- Flatten --------------------------------------------------------------------------------


def flatten_2d(x: torch.Tensor, axis: int) -> torch.Tensor:
    """ONNX Flatten: dims before ``axis`` form the rows, the rest the columns."""
    outer = math.prod(x.shape[:axis])
    inner = math.prod(x.shape[axis:])
    return torch.reshape(x, (outer, inner))


@converter("Flatten", since=1)
def flatten(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Flatten(input) -> 2-D output (prod(d[:axis]), prod(d[axis:])); axis may be negative (11+)."""
    axis = node.attr_int("axis", 1)
    dims = ctx.shape(node.input(0))
    rank = None if dims is None else len(dims)
    axis = _normalize_axis(axis, rank)
    if rank is None:
        return Lowered(flatten_2d, inputs=node.inputs[:1], kwargs={"axis": axis})
    if not 0 <= axis <= rank:
        raise node.unsupported("axis", node.attr_int("axis", 1), f"an axis in [-{rank}, {rank}]")
    if axis == 1 and rank >= 2:
        return Lowered(torch.flatten, inputs=node.inputs[:1], kwargs={"start_dim": 1})
    inner = dims[axis:]
    # NOTE: -1 cannot be inferred for an empty tensor, so it only stands in for the rows when
    # the columns are known and non-empty.
    if all(isinstance(d, int) for d in inner) and math.prod(inner) > 0:
        columns = math.prod(inner)
        return Lowered(torch.reshape, inputs=node.inputs[:1], kwargs={"shape": (1, -1) if axis == 0 else (-1, columns)})
    return Lowered(flatten_2d, inputs=node.inputs[:1], kwargs={"axis": axis})


# --- Transpose ------------------------------------------------------------------------------


def reverse_dims(x: torch.Tensor) -> torch.Tensor:
    """Transpose without ``perm``: reverse the order of all dimensions."""
    return torch.permute(x, tuple(range(x.dim() - 1, -1, -1)))


@converter("Transpose", since=1)
def transpose(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Transpose(data) -> transposed; perm defaults to reversing the dimensions."""
    perm = node.attr_ints("perm")
    if perm is None:
        rank = ctx.rank(node.input(0))
        if rank is None:
            return Lowered(reverse_dims, inputs=node.inputs[:1])
        perm = list(range(rank - 1, -1, -1))
    return Lowered(torch.permute, inputs=node.inputs[:1], kwargs={"dims": tuple(perm)})


# --- Concat ---------------------------------------------------------------------------------


def concat_tensors(*tensors: torch.Tensor, dim: int) -> torch.Tensor:
    """Concat: ``torch.cat`` over the positional inputs."""
    return torch.cat(tensors, dim=dim)


def _concat(node: OnnxNode, axis: int) -> Lowered:
    inputs = [name for name in node.inputs if name]
    return Lowered(concat_tensors, inputs=inputs, kwargs={"dim": axis})


@converter("Concat", since=1)
def concat_v1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Concat(inputs...) -> concat_result; axis defaults to 1 in opset 1."""
    return _concat(node, node.attr_int("axis", 1))


@converter("Concat", since=4)
def concat(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Concat(inputs...) -> concat_result along the required ``axis`` (negative from 11)."""
    return _concat(node, node.attr_int("axis"))


# --- Split ----------------------------------------------------------------------------------


def _even_sizes(size: int, parts: int) -> list[int]:
    # NOTE: ONNX Split without ``split`` (and Split-18 ``num_outputs``): every part has
    # ceil(size / parts) elements and the last one takes what is left.
    if size % parts == 0:
        return [size // parts] * parts
    chunk = size // parts + 1
    return [chunk] * (parts - 1) + [size - chunk * (parts - 1)]


def split_even(x: torch.Tensor, parts: int, dim: int, first_only: bool = False):
    """Split into ``parts`` pieces of ceil(size / parts), the last one smaller (only the first
    piece when the node's other outputs are unused)."""
    pieces = torch.split(x, _even_sizes(x.shape[dim], parts), dim=dim)
    return pieces[0] if first_only else pieces


def split_dynamic(x: torch.Tensor, split: torch.Tensor, dim: int, first_only: bool = False):
    """Split with piece sizes only known at run time (only the first piece when the node's
    other outputs are unused)."""
    pieces = torch.split(x, _tensor_ints(split), dim=dim)
    return pieces[0] if first_only else pieces


def _split_runtime(node: OnnxNode) -> Lowered:
    kwargs = {"dim": node.attr_int("axis", 0)}
    if len(node.outputs) == 1:
        kwargs["first_only"] = True
    return Lowered(split_dynamic, inputs=node.inputs[:2], kwargs=kwargs)


def _split(node: OnnxNode, ctx: ConversionContext, axis: int, sizes: list[int] | None, parts: int) -> Lowered:
    data = node.input(0)
    declared = len(node.proto.output)  # trailing unused outputs are still pieces of the split
    if sizes is not None and len(sizes) != declared:
        raise node.unsupported("split", sizes, f"one size per output ({declared} outputs)")
    if declared == 1:
        return Lowered(identity_fn, inputs=[data])
    rank = ctx.rank(data)
    axis = _normalize_axis(axis, rank)
    if sizes is None:
        dims = ctx.shape(data)
        dim = dims[axis] if dims is not None and 0 <= axis < len(dims) else None
        if not isinstance(dim, int):
            kwargs = {"parts": parts, "dim": axis}
            if len(node.outputs) == 1:
                kwargs["first_only"] = True
            return Lowered(split_even, inputs=[data], kwargs=kwargs)
        sizes = _even_sizes(dim, parts)
    if len(node.outputs) == 1:
        # only the first piece is used: a single-output node must return a tensor
        return Lowered(torch.narrow, inputs=[data], kwargs={"dim": axis, "start": 0, "length": sizes[0]})
    return Lowered(torch.split, inputs=[data], kwargs={"split_size_or_sections": list(sizes), "dim": axis})


@converter("Split", since=1)
def split_v1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Split(input, split?) -> outputs...; sizes from the second input or the ``split`` attribute."""
    axis = node.attr_int("axis", 0)
    sizes = node.attr_ints("split")
    if node.has_input(1):
        sizes = ctx.constant_ints(node.input(1))
        if sizes is None:
            return _split_runtime(node)
    return _split(node, ctx, axis, sizes, len(node.proto.output))


@converter("Split", since=2)
def split_v2(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Split(input) -> outputs...; sizes from the ``split`` attribute, else equal parts."""
    return _split(node, ctx, node.attr_int("axis", 0), node.attr_ints("split"), len(node.proto.output))


@converter("Split", since=13)
def split_v13(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Split(input, split?) -> outputs...; sizes from the ``split`` input, else equal parts."""
    axis = node.attr_int("axis", 0)
    if node.has_input(1):
        sizes = ctx.constant_ints(node.input(1))
        if sizes is None:
            return _split_runtime(node)
        return _split(node, ctx, axis, sizes, len(node.proto.output))
    return _split(node, ctx, axis, None, len(node.proto.output))


@converter("Split", since=18)
def split_v18(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Split(input, split?) -> outputs...; sizes from ``split``, else ``num_outputs`` parts."""
    axis = node.attr_int("axis", 0)
    num_outputs = node.attr_int("num_outputs")
    if node.has_input(1):
        if num_outputs is not None:
            raise node.unsupported("num_outputs", num_outputs, "either the split input or num_outputs, not both")
        sizes = ctx.constant_ints(node.input(1))
        if sizes is None:
            return _split_runtime(node)
        return _split(node, ctx, axis, sizes, len(node.proto.output))
    parts = num_outputs if num_outputs is not None else len(node.proto.output)
    if parts != len(node.proto.output):
        raise node.unsupported("num_outputs", num_outputs, f"the node's output count ({len(node.proto.output)})")
    return _split(node, ctx, axis, None, parts)


# --- Slice ----------------------------------------------------------------------------------


def _flip_bounds(start: int | None, end: int | None, size: int) -> tuple[int, int]:
    """For a negative step: ONNX's clamped (start, end) on an axis of ``size`` (both in
    [-1, size-1]), which are also Python's slice rules; ``None`` is an open bound."""
    start = size - 1 if start is None else (start + size if start < 0 else start)
    end = -1 if end is None else (end + size if end < 0 else end)
    return min(max(start, -1), size - 1), min(max(end, -1), size - 1)


def slice_tensor(
    x: torch.Tensor,
    starts: tuple[int | None, ...],
    ends: tuple[int | None, ...],
    axes: tuple[int, ...],
    steps: tuple[int, ...],
) -> torch.Tensor:
    """ONNX Slice with literal bounds (``None`` = open); negative steps read a flipped view."""
    index = [slice(None)] * x.dim()
    flipped = []
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = axis + x.dim() if axis < 0 else axis
        if step > 0:
            index[axis] = slice(start, end, None if step == 1 else step)
            continue
        # NOTE: torch has no negative-step slicing: on the flipped axis, element i sits at
        # size-1-i, so start..end (exclusive, walking down) becomes size-1-start..size-1-end.
        size = x.shape[axis]
        first, stop = _flip_bounds(start, end, size)
        index[axis] = slice(size - 1 - first, size - 1 - stop, -step)
        flipped.append(axis)
    if flipped:
        x = torch.flip(x, flipped)
    return x[tuple(index)]


def _open_bounds(starts: list[int], ends: list[int], steps: list[int]) -> tuple[list, list]:
    """Bounds past either end (INT64_MAX / INT64_MIN / INT_MAX in exported models) as ``None``.

    NOTE: any |bound| >= 2**31 lies beyond a real axis, where ONNX clamps it to the axis'
    first / last element: the same as an open Python slice bound in that direction."""
    open_starts, open_ends = [], []
    for start, end, step in zip(starts, ends, steps):
        before_first = start <= -_HUGE if step > 0 else start >= _HUGE
        past_last = end >= _HUGE if step > 0 else end <= -_HUGE
        open_starts.append(None if before_first else start)
        open_ends.append(None if past_last else end)
    return open_starts, open_ends


def slice_dynamic(
    x: torch.Tensor,
    starts: torch.Tensor,
    ends: torch.Tensor,
    axes: torch.Tensor | None = None,
    steps: torch.Tensor | None = None,
) -> torch.Tensor:
    """ONNX Slice whose bounds are only known at run time."""
    start_list, end_list = _tensor_ints(starts), _tensor_ints(ends)
    axis_list = _tensor_ints(axes) if axes is not None else list(range(len(start_list)))
    step_list = _tensor_ints(steps) if steps is not None else [1] * len(start_list)
    start_list, end_list = _open_bounds(start_list, end_list, step_list)
    return slice_tensor(x, tuple(start_list), tuple(end_list), tuple(axis_list), tuple(step_list))


def _slice(node: OnnxNode, ctx: ConversionContext, starts: list[int], ends: list[int],
           axes: list[int] | None, steps: list[int] | None) -> Lowered:
    data = node.input(0)
    dims = ctx.shape(data)
    rank = None if dims is None else len(dims)
    if axes is None:
        axes = list(range(len(starts)))
    if steps is None:
        steps = [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        lengths = (len(starts), len(ends), len(axes), len(steps))
        raise node.unsupported("starts/ends/axes/steps lengths", lengths, "equal lengths")
    if 0 in steps:
        raise node.unsupported("steps", steps, "non-zero steps")
    axes = [_normalize_axis(a, rank) for a in axes]
    open_starts, open_ends = _open_bounds(starts, ends, steps)
    for i, (axis, step) in enumerate(zip(axes, steps)):
        size = dims[axis] if dims is not None and axis >= 0 else None
        if step > 0 and isinstance(size, int):
            # a static axis: write the clamped bounds
            begin, stop, _ = slice(starts[i], ends[i]).indices(size)
            open_starts[i] = begin or None
            open_ends[i] = None if stop >= size else max(stop, begin)
    if len(axes) == 1 and steps[0] == 1 and dims is not None and axes[0] >= 0 and isinstance(dims[axes[0]], int):
        size = dims[axes[0]]
        begin, stop, _ = slice(starts[0], ends[0]).indices(size)
        kwargs = {"dim": axes[0], "start": begin, "length": max(stop - begin, 0)}
        return Lowered(torch.narrow, inputs=[data], kwargs=kwargs)
    return Lowered(slice_tensor, inputs=[data], kwargs={
        "starts": tuple(open_starts), "ends": tuple(open_ends), "axes": tuple(axes), "steps": tuple(steps)})


@converter("Slice", since=1)
def slice_v1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Slice(data) -> output; ``starts``/``ends``/``axes`` attributes, step 1."""
    return _slice(node, ctx, node.attr_ints("starts"), node.attr_ints("ends"), node.attr_ints("axes"), None)


@converter("Slice", since=10)
def slice_v10(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Slice(data, starts, ends, axes?, steps?) -> output; negative steps, clamped bounds."""
    names = [node.input(i) for i in range(5)]
    values = [ctx.constant_ints(n) if n else None for n in names[1:]]
    known = all(v is not None or not n for v, n in zip(values, names[1:]))
    if known:
        starts, ends, axes, steps = values
        return _slice(node, ctx, starts, ends, axes, steps)
    symbolic = _slice_symbolic(node, ctx, names, values)
    if symbolic is not None:
        return symbolic
    return Lowered(slice_dynamic, inputs=names)


def _slice_symbolic(node: OnnxNode, ctx: ConversionContext, names: list[str], values: list) -> Lowered | None:
    """Slice whose starts / ends come from run-time sizes (constant axes and positive steps)."""
    bounds = []
    for name, value in zip(names[1:3], values[:2]):
        known = symbolic_value(ctx, name)
        if value is None and (known is None or known.scalar):
            return None
        bounds.append(list(value) if value is not None else list(known.items))
    starts, ends = bounds
    axes = values[2] if names[3] else list(range(len(starts)))
    steps = values[3] if names[4] else [1] * len(starts)
    if axes is None or steps is None or not len(starts) == len(ends) == len(axes) == len(steps):
        return None
    if any(step <= 0 for step in steps):
        return None
    rank = ctx.rank(names[0])
    axes = [_normalize_axis(a, rank) for a in axes]
    # NOTE: Python slicing of a tensor clamps like ONNX Slice for positive steps; only the huge
    # literal bounds exporters write for "to the end" become open bounds.
    open_starts = [None if isinstance(s, int) and s <= -_HUGE else s for s in starts]
    open_ends = [None if isinstance(e, int) and e >= _HUGE else e for e in ends]
    return Lowered(slice_tensor, inputs=[names[0]], kwargs={
        "starts": tuple(open_starts), "ends": tuple(open_ends), "axes": tuple(axes), "steps": tuple(steps)})


# --- Squeeze / Unsqueeze --------------------------------------------------------------------


def squeeze_dynamic(x: torch.Tensor, axes: torch.Tensor | None = None) -> torch.Tensor:
    """Squeeze with axes only known at run time (all size-1 dims when absent)."""
    if axes is None:
        return torch.squeeze(x)
    return torch.squeeze(x, tuple(_tensor_ints(axes)))


def unsqueeze_axes(x: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    """Insert size-1 dims at ``axes``, which index the output (negative from its end)."""
    out_rank = x.dim() + len(axes)
    for axis in sorted(a + out_rank if a < 0 else a for a in axes):
        x = torch.unsqueeze(x, axis)
    return x


def unsqueeze_dynamic(x: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """Unsqueeze with axes only known at run time."""
    return unsqueeze_axes(x, tuple(_tensor_ints(axes)))


def _squeeze(node: OnnxNode, axes: list[int] | None) -> Lowered:
    if axes is None:
        return Lowered(torch.squeeze, inputs=node.inputs[:1])
    if not axes:
        return Lowered(identity_fn, inputs=node.inputs[:1])
    dim = axes[0] if len(axes) == 1 else tuple(axes)
    return Lowered(torch.squeeze, inputs=node.inputs[:1], kwargs={"dim": dim})


def _unsqueeze(node: OnnxNode, ctx: ConversionContext, axes: list[int]) -> Lowered:
    if len(axes) == 1:
        # NOTE: torch.unsqueeze counts a negative dim from the output's end, as ONNX does.
        return Lowered(torch.unsqueeze, inputs=node.inputs[:1], kwargs={"dim": axes[0]})
    rank = ctx.rank(node.input(0))
    if rank is not None:
        axes = sorted(_normalize_axis(a, rank + len(axes)) for a in axes)
    return Lowered(unsqueeze_axes, inputs=node.inputs[:1], kwargs={"axes": tuple(axes)})


@converter("Squeeze", since=1)
def squeeze_v1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Squeeze(data) -> squeezed; ``axes`` attribute, every size-1 dim when absent."""
    return _squeeze(node, node.attr_ints("axes"))


@converter("Squeeze", since=13)
def squeeze_v13(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Squeeze(data, axes?) -> squeezed; every size-1 dim when ``axes`` is absent."""
    if not node.has_input(1):
        return _squeeze(node, None)
    axes = ctx.constant_ints(node.input(1))
    if axes is None:
        return Lowered(squeeze_dynamic, inputs=node.inputs[:2])
    return _squeeze(node, axes)


@converter("Unsqueeze", since=1)
def unsqueeze_v1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Unsqueeze(data) -> expanded; ``axes`` attribute indexes the output."""
    return _unsqueeze(node, ctx, node.attr_ints("axes"))


@converter("Unsqueeze", since=13)
def unsqueeze_v13(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Unsqueeze(data, axes) -> expanded; ``axes`` index the output."""
    axes = ctx.constant_ints(node.input(1))
    if axes is None:
        return Lowered(unsqueeze_dynamic, inputs=node.inputs[:2])
    return _unsqueeze(node, ctx, axes)


# --- Shape / Size ---------------------------------------------------------------------------


def shape_of(x: torch.Tensor, start: int = 0, end: int | None = None) -> torch.Tensor:
    """ONNX Shape: the (sliced) shape of ``x`` as an int64 tensor on ``x``'s device."""
    return torch.tensor(x.shape[start:end], dtype=torch.int64, device=x.device)


def size_of(x: torch.Tensor) -> torch.Tensor:
    """ONNX Size: the element count of ``x`` as an int64 scalar."""
    return torch.tensor(x.numel(), dtype=torch.int64, device=x.device)


@converter("Shape", since=1)
def shape(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Shape(data) -> int64 shape, sliced by ``start``/``end`` (opset 15)."""
    start = node.attr_int("start", 0)
    end = node.attr_int("end", None)
    dims = ctx.shape(node.input(0))
    if dims is not None:
        # NOTE: start/end clamp to [0, rank] after adding rank to negatives, as Python slicing.
        wanted = dims[start:end]
        if all(isinstance(d, int) for d in wanted):
            return Lowered.const(torch.tensor(wanted, dtype=torch.int64))
    kwargs = {}
    if start:
        kwargs["start"] = start
    if end is not None:
        kwargs["end"] = end
    return Lowered(shape_of, inputs=node.inputs[:1], kwargs=kwargs)


@converter("Size", since=1)
def size(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Size(data) -> int64 scalar element count."""
    dims = ctx.static_shape(node.input(0))
    if dims is not None:
        return Lowered.const(torch.tensor(math.prod(dims), dtype=torch.int64))
    return Lowered(size_of, inputs=node.inputs[:1])


# --- Expand / Tile --------------------------------------------------------------------------


def expand_to(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """ONNX Expand: broadcast ``x`` and ``shape`` against each other (a 1 in ``shape`` keeps
    the input's dim)."""
    return torch.broadcast_to(x, torch.broadcast_shapes(x.shape, tuple(shape)))


def expand_dynamic(x: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """ONNX Expand to a shape only known at run time."""
    return expand_to(x, tuple(_tensor_ints(shape)))


@converter("Expand", since=8)
def expand(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Expand(input, shape) -> output of shape broadcast(input.shape, shape)."""
    data = node.input(0)
    target = ctx.constant_ints(node.input(1))
    known = symbolic_value(ctx, node.input(1))
    if target is None and known is not None and not known.scalar:
        # NOTE: run-time sizes (x.size(i)) broadcast like the literal shape would.
        return Lowered(expand_to, inputs=[data], kwargs={"shape": known.items})
    if target is None:
        return Lowered(expand_dynamic, inputs=node.inputs[:2])
    rank = ctx.rank(data)
    if rank is None:
        return Lowered(expand_to, inputs=[data], kwargs={"shape": tuple(target)})
    out_rank = max(rank, len(target))
    size = []
    for i in range(out_rank):
        in_i = i - (out_rank - rank)
        want_i = i - (out_rank - len(target))
        want = target[want_i] if want_i >= 0 else None
        if in_i >= 0 and (want is None or want == 1):
            # NOTE: broadcast_to's -1 keeps the input dim, which is also what a 1 in the
            # ONNX shape broadcasts to.
            size.append(-1)
        else:
            size.append(want)
    return Lowered(torch.broadcast_to, inputs=[data], kwargs={"size": tuple(size)})


def tile_dynamic(x: torch.Tensor, repeats: torch.Tensor) -> torch.Tensor:
    """ONNX Tile with repeats only known at run time."""
    return torch.tile(x, tuple(_tensor_ints(repeats)))


def tile_along_axis(x: torch.Tensor, tiles: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """ONNX Tile-1: repeat ``x`` ``tiles`` times along ``axis``."""
    reps = [1] * x.dim()
    reps[int(axis.reshape(-1)[0])] = int(tiles.reshape(-1)[0])
    return torch.tile(x, tuple(reps))


@converter("Tile", since=1)
def tile_v1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Tile(input, tiles, axis) -> output; ``tiles`` copies along one ``axis``."""
    tiles, axis = ctx.constant_ints(node.input(1)), ctx.constant_ints(node.input(2))
    rank = ctx.rank(node.input(0))
    if tiles is None or axis is None or rank is None:
        return Lowered(tile_along_axis, inputs=node.inputs[:3])
    reps = [1] * rank
    reps[axis[0]] = tiles[0]
    return Lowered(torch.tile, inputs=node.inputs[:1], kwargs={"dims": tuple(reps)})


@converter("Tile", since=6)
def tile(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Tile(input, repeats) -> output; dim i repeated repeats[i] times."""
    repeats = ctx.constant_ints(node.input(1))
    known = symbolic_value(ctx, node.input(1))
    if repeats is None and known is not None and not known.scalar:
        return Lowered(torch.tile, inputs=node.inputs[:1], kwargs={"dims": known.items})
    if repeats is None:
        return Lowered(tile_dynamic, inputs=node.inputs[:2])
    return Lowered(torch.tile, inputs=node.inputs[:1], kwargs={"dims": tuple(repeats)})


# --- Pad ------------------------------------------------------------------------------------

_PAD_MODES = ("constant", "reflect", "edge", "wrap")


def _pad_pairs(pads: tuple[int, ...], axes: tuple[int, ...], rank: int) -> list[tuple[int, int]]:
    """ONNX pads (all begins, then all ends) for ``axes`` as one (begin, end) pair per dim."""
    pairs = [(0, 0)] * rank
    n = len(axes)
    for i, axis in enumerate(axes):
        pairs[axis + rank if axis < 0 else axis] = (pads[i], pads[n + i])
    return pairs


def _torch_pad_list(pairs: list[tuple[int, int]]) -> tuple[int, ...]:
    """(begin, end) per dim -> F.pad's list (last dim first), trailing no-op pairs left out."""
    first = next((i for i, p in enumerate(pairs) if p != (0, 0)), len(pairs))
    flat: list[int] = []
    for begin, end in reversed(pairs[first:]):
        flat += [begin, end]
    return tuple(flat)


def pad_constant(x: torch.Tensor, pads: tuple[int, ...], axes: tuple[int, ...],
                 value: float | int | bool = 0) -> torch.Tensor:
    """ONNX Pad, constant mode, where the rank is only known at run time (negative pads crop)."""
    return F.pad(x, _torch_pad_list(_pad_pairs(pads, axes, x.dim())), mode="constant", value=value)


def _source_index(length: int, begin: int, size: int, mode: str, device: torch.device) -> torch.Tensor:
    """Which input position each of ``length`` output positions reads along one padded axis."""
    pos = torch.arange(length, device=device) - begin
    if mode == "edge":
        return pos.clamp(0, size - 1)
    if mode == "wrap":
        return torch.remainder(pos, size)
    # reflect: mirror on the first and last element, period 2 * (size - 1)
    if size == 1:
        return torch.zeros_like(pos)
    period = 2 * (size - 1)
    pos = torch.remainder(pos, period)
    return torch.where(pos < size, pos, period - pos)


def pad_indexed(x: torch.Tensor, pads: tuple[int, ...], axes: tuple[int, ...], mode: str) -> torch.Tensor:
    """ONNX Pad in reflect / edge / wrap mode, any rank: negative pads crop first (as
    onnxruntime does), then each padded axis is gathered through an index map."""
    for axis, (begin, end) in enumerate(_pad_pairs(pads, axes, x.dim())):
        if begin < 0 or end < 0:
            size = x.shape[axis]
            start = max(-begin, 0)
            x = torch.narrow(x, axis, start, size - start - max(-end, 0))
        begin, end = max(begin, 0), max(end, 0)
        if begin or end:
            size = x.shape[axis]
            index = _source_index(size + begin + end, begin, size, mode, x.device)
            x = torch.index_select(x, axis, index)
    return x


def pad_dynamic(
    x: torch.Tensor,
    pads: torch.Tensor,
    value: torch.Tensor | None = None,
    axes: torch.Tensor | None = None,
    mode: str = "constant",
) -> torch.Tensor:
    """ONNX Pad whose pads (or value, or axes) are only known at run time."""
    pad_list = tuple(_tensor_ints(pads))
    axis_list = tuple(_tensor_ints(axes)) if axes is not None else tuple(range(x.dim()))
    if mode == "constant":
        fill = 0 if value is None or value.numel() == 0 else value.reshape(-1)[0].item()
        return pad_constant(x, pad_list, axis_list, fill)
    return pad_indexed(x, pad_list, axis_list, mode)


def _pad_value(value, elem_dtype: torch.dtype | None):
    """The fill value as the Python type that matches the tensor's dtype."""
    if elem_dtype is None:
        return value
    if elem_dtype == torch.bool:
        return bool(value)
    if elem_dtype.is_floating_point or elem_dtype.is_complex:
        return float(value)
    return int(value)


def _pad(node: OnnxNode, ctx: ConversionContext, pads: list[int], axes: list[int] | None,
         mode: str, value) -> Lowered:
    data = node.input(0)
    if mode not in _PAD_MODES:
        raise node.unsupported("mode", mode, ", ".join(_PAD_MODES))
    rank = ctx.rank(data)
    if axes is None:
        if rank is None:
            axes = None
        else:
            axes = list(range(rank))
    if axes is not None and len(pads) != 2 * len(axes):
        raise node.unsupported("pads", pads, f"2 values per padded axis ({len(axes)} axes)")
    if axes is None:
        axes_literal = tuple(range(len(pads) // 2))
    else:
        axes_literal = tuple(_normalize_axis(a, rank) for a in axes)
    if mode != "constant":
        return Lowered(pad_indexed, inputs=[data], kwargs={"pads": tuple(pads), "axes": axes_literal, "mode": mode})
    if rank is None:
        return Lowered(pad_constant, inputs=[data], kwargs={"pads": tuple(pads), "axes": axes_literal, "value": value})
    pairs = _pad_pairs(pads, axes_literal, rank)
    kwargs = {"pad": _torch_pad_list(pairs), "mode": "constant"}
    if value or (isinstance(value, float) and math.copysign(1.0, value) < 0):  # keep -0.0
        kwargs["value"] = value
    return Lowered(F.pad, inputs=[data], kwargs=kwargs)


def _elem_dtype(ctx: ConversionContext, name: str) -> torch.dtype | None:
    elem = ctx.elem_type(name)
    return None if elem is None else ONNX_TO_TORCH.get(elem)


@converter("Pad", since=1)
def pad_v1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Pad(data) -> output; ``paddings`` attribute, ``mode``, fill ``value``."""
    value = _pad_value(node.attr_float("value", 0.0), _elem_dtype(ctx, node.input(0)))
    return _pad(node, ctx, node.attr_ints("paddings"), None, node.attr_str("mode", "constant"), value)


@converter("Pad", since=2)
def pad_v2(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Pad(data) -> output; ``pads`` attribute, ``mode``, fill ``value``."""
    value = _pad_value(node.attr_float("value", 0.0), _elem_dtype(ctx, node.input(0)))
    return _pad(node, ctx, node.attr_ints("pads"), None, node.attr_str("mode", "constant"), value)


@converter("Pad", since=11)
def pad_v11(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Pad(data, pads, constant_value?, axes?) -> output; constant/reflect/edge/wrap, pads < 0 crop."""
    mode = node.attr_str("mode", "constant")
    pads = ctx.constant_ints(node.input(1))
    value_name, axes_name = node.input(2), node.input(3)
    value = ctx.constant(value_name) if value_name else None
    axes = ctx.constant_ints(axes_name) if axes_name else None
    if pads is None or (value_name and value is None) or (axes_name and axes is None):
        return Lowered(pad_dynamic, inputs=[node.input(i) for i in range(4)], kwargs={"mode": mode})
    fill = 0 if value is None or value.numel() == 0 else value.reshape(-1)[0].item()
    fill = _pad_value(fill, _elem_dtype(ctx, node.input(0)))
    return _pad(node, ctx, pads, axes, mode, fill)


# --- DepthToSpace / SpaceToDepth ------------------------------------------------------------


def depth_to_space_dcr(x: torch.Tensor, blocksize: int) -> torch.Tensor:
    """DepthToSpace, DCR mode: channels are read as (block row, block column, depth)."""
    b, c, h, w = x.shape
    depth = c // (blocksize * blocksize)
    x = x.reshape(b, blocksize, blocksize, depth, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(b, depth, h * blocksize, w * blocksize)


def space_to_depth_dcr(x: torch.Tensor, blocksize: int) -> torch.Tensor:
    """SpaceToDepth, DCR mode: output channel = (block row * blocksize + block column) * C + c."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // blocksize, blocksize, w // blocksize, blocksize).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(b, c * blocksize * blocksize, h // blocksize, w // blocksize)


@converter("DepthToSpace", since=1)
def depth_to_space(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """DepthToSpace(input) -> output; mode DCR (default) or CRD (11+, = PixelShuffle)."""
    blocksize = node.attr_int("blocksize")
    mode = node.attr_str("mode", "DCR")
    if mode == "CRD":
        return Lowered(nn.PixelShuffle(blocksize), inputs=node.inputs[:1])
    if mode == "DCR":
        return Lowered(depth_to_space_dcr, inputs=node.inputs[:1], kwargs={"blocksize": blocksize})
    raise node.unsupported("mode", mode, "DCR, CRD")


@converter("SpaceToDepth", since=1)
def space_to_depth(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """SpaceToDepth(input) -> output; blocks go to channels in DCR order."""
    blocksize = node.attr_int("blocksize")
    return Lowered(space_to_depth_dcr, inputs=node.inputs[:1], kwargs={"blocksize": blocksize})


@converter("SpaceToDepth", since=28)
def space_to_depth_v28(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """SpaceToDepth(input) -> output; mode DCR (default) or CRD (= PixelUnshuffle)."""
    blocksize = node.attr_int("blocksize")
    mode = node.attr_str("mode", "DCR")
    if mode == "CRD":
        return Lowered(nn.PixelUnshuffle(blocksize), inputs=node.inputs[:1])
    if mode == "DCR":
        return Lowered(space_to_depth_dcr, inputs=node.inputs[:1], kwargs={"blocksize": blocksize})
    raise node.unsupported("mode", mode, "DCR, CRD")
