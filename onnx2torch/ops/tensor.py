"""Converters for ops that create, select or scatter tensor elements: Gather, GatherElements,
GatherND, ScatterND, ScatterElements, Scatter, ConstantOfShape, Range, OneHot, NonZero, Unique,
TopK, Trilu, CumSum, Compress, EyeLike, ReverseSequence, CenterCropPad.

Index inputs follow ONNX: negative indices count from the end of their axis.  Run-time helpers
take ``x.shape`` at run time, so symbolic dimensions keep working.
"""
from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.dtypes import ONNX_TO_TORCH, to_torch, torch_dtype
from onnx2torch.registry import Lowered, converter
from onnx2torch.symbolic import DeviceOf, symbolic_value

__all__ = [
    "gather",
    "gather_elements",
    "gather_nd",
    "scatter_nd",
    "scatter_elements",
    "scatter",
    "constant_of_shape",
    "range_v11",
    "range_v27",
    "one_hot",
    "non_zero",
    "unique",
    "top_k_v1",
    "top_k_v10",
    "top_k",
    "trilu",
    "cum_sum",
    "compress",
    "eye_like",
    "reverse_sequence",
    "center_crop_pad",
    # run-time helpers and modules the generated code calls
    "Embedding",
    "gather_wrapped",
    "gather_elements_wrapped",
    "gather_nd_batched",
    "scatter_nd_reduce",
    "scatter_elements_reduce",
    "full_of_shape",
    "full_on",
    "arange_like",
    "arange_stashed",
    "one_hot_values",
    "one_hot_dynamic_depth",
    "nonzero_indices",
    "unique_with_indices",
    "topk_stable",
    "trilu_dynamic",
    "cumsum_onnx",
    "compress_along",
    "eye_of",
    "reverse_sequences",
    "center_crop_pad_to",
]

logger = logging.getLogger(__name__)


def _wrap(indices: torch.Tensor, size) -> torch.Tensor:
    """Negative indices count from the end of an axis of ``size`` (ONNX index convention)."""
    indices = indices.long()
    return torch.where(indices < 0, indices + size, indices)


def _scalar_literal(value: torch.Tensor):
    """A one-element tensor as the Python number of its kind."""
    item = value.reshape(-1)[0]
    if value.dtype == torch.bool:
        return bool(item)
    if value.dtype.is_floating_point:
        return float(item)
    return int(item)


# --- Gather family --------------------------------------------------------------------------


class Embedding(nn.Embedding):
    """ONNX Gather(axis=0) on a constant 2-D table: ``nn.Embedding`` that also accepts the
    negative indices ONNX allows."""

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        return super().forward(_wrap(indices, self.num_embeddings))


def gather_wrapped(x: torch.Tensor, indices: torch.Tensor, axis: int) -> torch.Tensor:
    """ONNX Gather: output shape = x.shape[:axis] + indices.shape + x.shape[axis+1:]."""
    axis = axis + x.dim() if axis < 0 else axis
    flat = _wrap(indices, x.shape[axis]).reshape(-1)
    out = torch.index_select(x, axis, flat)
    return out.reshape(x.shape[:axis] + indices.shape + x.shape[axis + 1:])


@converter("Gather", since=1)
def gather(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Gather(data, indices) -> output; picks entries of ``axis``, negative indices wrap."""
    data, index_name = node.input(0), node.input(1)
    axis = node.attr_int("axis", 0)
    rank = ctx.rank(data)
    if rank is not None and axis < 0:
        axis += rank
    indices = ctx.constant(index_name)
    table = ctx.constant(data)
    if table is not None and indices is None and axis == 0 and table.dim() == 2 and table.is_floating_point():
        layer = Embedding(table.shape[0], table.shape[1], _weight=ctx.own(table, data), _freeze=False)
        return Lowered(layer, inputs=[index_name])
    if indices is not None and indices.dim() == 0:
        # NOTE: a scalar index removes the axis; torch.select also wraps negative indices.
        return Lowered(torch.select, inputs=[data], kwargs={"dim": axis, "index": int(indices)})
    return Lowered(gather_wrapped, inputs=[data, index_name], kwargs={"axis": axis})


def gather_elements_wrapped(x: torch.Tensor, indices: torch.Tensor, axis: int) -> torch.Tensor:
    """ONNX GatherElements: ``torch.gather`` with negative indices wrapped."""
    return torch.gather(x, axis, _wrap(indices, x.shape[axis]))


@converter("GatherElements", since=11)
def gather_elements(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """GatherElements(data, indices) -> output[i][j] = data[indices[i][j]][j] (axis 0)."""
    return Lowered(gather_elements_wrapped, inputs=node.inputs[:2], kwargs={"axis": node.attr_int("axis", 0)})


def _linear_index(indices: torch.Tensor, dims) -> torch.Tensor:
    """Rows of ``indices[..., k]`` into ``dims`` (k dims) as flat row-major offsets."""
    sizes = torch.tensor(list(dims), dtype=torch.int64, device=indices.device)
    wrapped = torch.where(indices < 0, indices + sizes, indices)
    strides = [math.prod(dims[j + 1:]) for j in range(len(dims))]
    return (wrapped * torch.tensor(strides, dtype=torch.int64, device=indices.device)).sum(-1)


def gather_nd_batched(x: torch.Tensor, indices: torch.Tensor, batch_dims: int = 0) -> torch.Tensor:
    """ONNX GatherND: output shape = indices.shape[:-1] + x.shape[batch_dims + k:]."""
    k = indices.shape[-1]
    batch = math.prod(x.shape[:batch_dims])
    indexed = tuple(x.shape[batch_dims:batch_dims + k])
    rest = tuple(x.shape[batch_dims + k:])
    rows = math.prod(indices.shape[batch_dims:-1])
    offsets = _linear_index(indices.reshape(batch, rows, k).long(), indexed)
    table = x.reshape((batch, math.prod(indexed)) + rest)
    picked = table[torch.arange(batch, device=x.device).unsqueeze(1), offsets]
    return picked.reshape(tuple(indices.shape[:-1]) + rest)


@converter("GatherND", since=11)
def gather_nd(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """GatherND(data, indices) -> output; indices[..., k] address data after ``batch_dims`` (12+)."""
    batch_dims = node.attr_int("batch_dims", 0)
    kwargs = {"batch_dims": batch_dims} if batch_dims else {}
    return Lowered(gather_nd_batched, inputs=node.inputs[:2], kwargs=kwargs)


# --- Scatter family -------------------------------------------------------------------------

#: ONNX reduction -> torch scatter_reduce name.
_REDUCE = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}


def scatter_nd_reduce(x: torch.Tensor, indices: torch.Tensor, updates: torch.Tensor,
                      reduction: str = "none") -> torch.Tensor:
    """ONNX ScatterND: write (or reduce) ``updates`` into a copy of ``x`` at the rows that the
    last dim of ``indices`` addresses."""
    k = indices.shape[-1]
    indexed = tuple(x.shape[:k])
    rest = tuple(x.shape[k:])
    offsets = _linear_index(indices.reshape(-1, k).long(), indexed)
    table = x.reshape((math.prod(indexed),) + rest)
    values = updates.reshape((offsets.shape[0],) + rest)
    if reduction == "none":
        out = table.index_copy(0, offsets, values)
    else:
        index = offsets.reshape((-1,) + (1,) * len(rest)).expand(values.shape)
        out = table.scatter_reduce(0, index, values, _REDUCE[reduction], include_self=True)
    return out.reshape(x.shape)


def _reduction(node: OnnxNode) -> str:
    reduction = node.attr_str("reduction", "none") or "none"
    allowed = {"none", "add", "mul"} if node.opset < 18 else {"none", "add", "mul", "max", "min"}
    if reduction not in allowed:
        raise node.unsupported("reduction", reduction, ", ".join(sorted(allowed)))
    return reduction


@converter("ScatterND", since=11)
def scatter_nd(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ScatterND(data, indices, updates) -> output; reduction none/add/mul (16)/max/min (18)."""
    reduction = _reduction(node)
    kwargs = {"reduction": reduction} if reduction != "none" else {}
    return Lowered(scatter_nd_reduce, inputs=node.inputs[:3], kwargs=kwargs)


def scatter_elements_reduce(x: torch.Tensor, indices: torch.Tensor, updates: torch.Tensor,
                            axis: int = 0, reduction: str = "none") -> torch.Tensor:
    """ONNX ScatterElements: ``torch.scatter`` (or ``scatter_reduce`` including the original
    values) with negative indices wrapped."""
    index = _wrap(indices, x.shape[axis])
    if reduction == "none":
        return torch.scatter(x, axis, index, updates)
    return torch.scatter_reduce(x, axis, index, updates, _REDUCE[reduction], include_self=True)


@converter("ScatterElements", since=11)
def scatter_elements(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ScatterElements(data, indices, updates) -> output; reduction none/add/mul/max/min."""
    kwargs = {"axis": node.attr_int("axis", 0)}
    reduction = _reduction(node)
    if reduction != "none":
        kwargs["reduction"] = reduction
    return Lowered(scatter_elements_reduce, inputs=node.inputs[:3], kwargs=kwargs)


@converter("Scatter", since=9)
def scatter(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Scatter(data, indices, updates) -> output; the deprecated ScatterElements (no reduction)."""
    return Lowered(scatter_elements_reduce, inputs=node.inputs[:3], kwargs={"axis": node.attr_int("axis", 0)})


# --- Creation -------------------------------------------------------------------------------


def full_on(reference: torch.Tensor, *, size: tuple[int, ...], fill_value: float | int | bool,
            dtype: torch.dtype) -> torch.Tensor:
    """ConstantOfShape of a size known at conversion time, made at run time (a constant too large
    to fold) on the device of ``reference`` (its shape buffer, which follows ``model.to()``)."""
    return torch.full(size, fill_value, dtype=dtype, device=reference.device)


def full_of_shape(shape: torch.Tensor, value: float | int | bool, dtype: torch.dtype) -> torch.Tensor:
    """ONNX ConstantOfShape for a shape only known at run time."""
    return torch.full([int(d) for d in shape.reshape(-1).tolist()], value, dtype=dtype, device=shape.device)


@converter("ConstantOfShape", since=9)
def constant_of_shape(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ConstantOfShape(input) -> output of that shape filled with ``value`` (float32 0 by default)."""
    value = node.attr("value")
    if value is None:
        fill = torch.zeros(1, dtype=torch.float32)
    else:
        fill = to_torch(value.reshape(-1)) if hasattr(value, "reshape") else torch.as_tensor(value).reshape(-1)
    if fill.numel() != 1:
        raise node.unsupported("value", f"{fill.numel()} elements", "a one-element tensor")
    dims = ctx.constant_ints(node.input(0))
    if dims is not None:
        return Lowered.const(fill.reshape(()).expand(dims).clone())
    known = symbolic_value(ctx, node.input(0))
    if known is not None and not known.scalar:
        # NOTE: a shape from run-time sizes: torch.full on the device of the tensor measured.
        return Lowered(torch.full, inputs=[], kwargs={
            "size": known.items, "fill_value": _scalar_literal(fill), "dtype": fill.dtype,
            "device": DeviceOf(known.reference_tensor())})
    static = ctx.static_shape(node.outputs[0])
    if static is not None:  # the shape input is hidden (too large to fold) or computed
        return Lowered(full_on, inputs=node.inputs[:1],
                       kwargs={"size": tuple(static), "fill_value": _scalar_literal(fill), "dtype": fill.dtype})
    return Lowered(full_of_shape, inputs=node.inputs[:1],
                   kwargs={"value": _scalar_literal(fill), "dtype": fill.dtype})


def arange_like(start: torch.Tensor, limit: torch.Tensor, delta: torch.Tensor,
                compute_dtype: torch.dtype | None = None) -> torch.Tensor:
    """ONNX Range: ``start + i * delta`` for i < max(ceil((limit - start) / delta), 0), in
    start's dtype (computed in ``compute_dtype`` when given)."""
    dtype = start.dtype
    work = compute_dtype or dtype
    start, limit, delta = (v.reshape(()).to(work) for v in (start, limit, delta))
    # NOTE: values are the spec's start + i * delta (Range-11 pseudocode); onnxruntime adds
    # delta repeatedly instead, which drifts from this by a few ulps on long float ranges.
    if work.is_floating_point:
        count = math.ceil((limit - start).item() / delta.item())
    else:
        span, step = int((limit - start).item()), int(delta.item())
        count = -(-span // step)
    steps = torch.arange(max(count, 0), dtype=work, device=start.device)
    return (start + steps * delta).to(dtype)


@converter("Range", since=11)
def range_v11(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Range(start, limit, delta) -> output with max(ceil((limit - start) / delta), 0) values."""
    symbolic = _range_symbolic(node, ctx)
    if symbolic is not None:
        return symbolic
    return Lowered(arange_like, inputs=node.inputs[:3])


def _range_symbolic(node: OnnxNode, ctx: ConversionContext) -> Lowered | None:
    """Integer Range whose bounds are run-time sizes (``Range(0, x.size(1), 1)``): torch.arange
    counts integers exactly like the spec, max(ceil((limit - start) / delta), 0)."""
    bounds = []
    reference = None
    for name in node.inputs[:3]:
        value, known = ctx.constant(name), symbolic_value(ctx, name)
        if known is not None and len(known.items) == 1:
            bounds.append(known.items[0])
            reference = reference or known.reference_tensor()
        elif isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype in (torch.int64, torch.int32):
            bounds.append(int(value.reshape(-1)[0]))
        else:
            return None
    if reference is None:
        return None
    dtype = torch_dtype(ctx.elem_type(node.input(0)) or 7)
    return Lowered(torch.arange, inputs=[], kwargs={"start": bounds[0], "end": bounds[1], "step": bounds[2],
                                                     "dtype": dtype, "device": DeviceOf(reference)})


@converter("Range", since=27)
def range_v27(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Range(start, limit, delta) -> output; float16 / bfloat16 accumulate in ``stash_type``."""
    stash = node.attr_int("stash_type", 1)
    if stash not in ONNX_TO_TORCH or not torch_dtype(stash).is_floating_point:
        raise node.unsupported("stash_type", stash, "FLOAT (1) or DOUBLE (11)")
    elem = ctx.elem_type(node.input(0))
    if elem is None:
        return Lowered(arange_stashed, inputs=node.inputs[:3], kwargs={"stash_dtype": torch_dtype(stash)})
    if torch_dtype(elem) in (torch.float16, torch.bfloat16):
        return Lowered(arange_like, inputs=node.inputs[:3], kwargs={"compute_dtype": torch_dtype(stash)})
    return Lowered(arange_like, inputs=node.inputs[:3])


def arange_stashed(start: torch.Tensor, limit: torch.Tensor, delta: torch.Tensor,
                   stash_dtype: torch.dtype) -> torch.Tensor:
    """ONNX Range-27 when the dtype is only known at run time."""
    low = start.dtype in (torch.float16, torch.bfloat16)
    return arange_like(start, limit, delta, stash_dtype if low else None)


def one_hot_values(indices: torch.Tensor, values: torch.Tensor, depth: int, axis: int = -1) -> torch.Tensor:
    """ONNX OneHot: ``values[1]`` where the index matches, ``values[0]`` elsewhere; negative
    indices wrap, out-of-range ones match nothing."""
    axis = axis + indices.dim() + 1 if axis < 0 else axis
    idx = torch.where(indices < 0, indices + depth, indices)
    classes = torch.arange(depth, device=indices.device, dtype=idx.dtype)
    classes = classes.reshape((-1,) + (1,) * (indices.dim() - axis))
    hit = idx.unsqueeze(axis) == classes
    flat = values.reshape(-1)
    return torch.where(hit, flat[1], flat[0])


def one_hot_dynamic_depth(indices: torch.Tensor, depth: torch.Tensor, values: torch.Tensor,
                          axis: int = -1) -> torch.Tensor:
    """ONNX OneHot with ``depth`` only known at run time."""
    return one_hot_values(indices, values, int(depth.reshape(-1)[0].item()), axis)


@converter("OneHot", since=9)
def one_hot(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """OneHot(indices, depth, values) -> output with a new ``axis`` of size depth."""
    axis = node.attr_int("axis", -1)
    depth = ctx.constant(node.input(1))
    if depth is None:
        return Lowered(one_hot_dynamic_depth, inputs=node.inputs[:3], kwargs={"axis": axis})
    return Lowered(one_hot_values, inputs=[node.input(0), node.input(2)],
                   kwargs={"depth": int(depth.reshape(-1)[0]), "axis": axis})


# --- Selection ------------------------------------------------------------------------------


def nonzero_indices(x: torch.Tensor) -> torch.Tensor:
    """ONNX NonZero: int64 indices of the non-zero elements, one row per input dim."""
    return torch.nonzero(x).t()


@converter("NonZero", since=9)
def non_zero(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """NonZero(X) -> int64 [rank, count] indices of non-zero elements (row-major order)."""
    return Lowered(nonzero_indices, inputs=node.inputs[:1])


def unique_with_indices(x: torch.Tensor, axis: int | None = None, sorted: int = 1,  # noqa: A002
                        num_outputs: int = 4):
    """ONNX Unique: (values, first-occurrence indices, inverse indices, counts), either sorted
    or in order of first occurrence."""
    values, inverse, counts = torch.unique(x if axis is not None else x.reshape(-1), sorted=True,
                                           return_inverse=True, return_counts=True, dim=axis)
    inverse = inverse.reshape(-1)
    n = inverse.shape[0]
    positions = torch.arange(n, device=x.device)
    first = torch.full((counts.shape[0],), n, dtype=torch.int64, device=x.device)
    first = first.scatter_reduce(0, inverse, positions, "amin", include_self=True)
    if not sorted:
        order = torch.argsort(first, stable=True)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.shape[0], device=x.device)
        values = torch.index_select(values, 0 if axis is None else axis, order)
        first, counts, inverse = first[order], counts[order], rank[inverse]
    outputs = (values, first, inverse, counts)[:num_outputs]
    return outputs[0] if num_outputs == 1 else outputs


@converter("Unique", since=11)
def unique(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Unique(X) -> (Y, indices?, inverse_indices?, counts?); flattened unless ``axis``."""
    axis = node.attr_int("axis", None)
    kwargs = {"axis": axis, "sorted": node.attr_int("sorted", 1), "num_outputs": len(node.outputs)}
    return Lowered(unique_with_indices, inputs=node.inputs[:1], kwargs=kwargs)


def topk_stable(x: torch.Tensor, k: int | torch.Tensor, axis: int = -1,
                largest: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """ONNX TopK: the k largest (or smallest) along ``axis``, sorted; ties keep the lower index
    first, which a stable sort guarantees and ``torch.topk`` does not."""
    if isinstance(k, torch.Tensor):
        k = int(k.reshape(-1)[0].item())
    values, indices = torch.sort(x, dim=axis, descending=bool(largest), stable=True)
    return values.narrow(axis, 0, k), indices.narrow(axis, 0, k)


def _top_k_kwargs(node: OnnxNode, largest: int) -> dict:
    kwargs = {"axis": node.attr_int("axis", -1)}
    if largest != 1:
        kwargs["largest"] = largest
    return kwargs


@converter("TopK", since=1)
def top_k_v1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """TopK(X) -> (Values, Indices); ``k`` attribute, largest first."""
    return Lowered(topk_stable, inputs=node.inputs[:1], kwargs={"k": node.attr_int("k"), **_top_k_kwargs(node, 1)})


def _top_k(node: OnnxNode, ctx: ConversionContext, largest: int) -> Lowered:
    kwargs = _top_k_kwargs(node, largest)
    k = ctx.constant_ints(node.input(1))
    if k is None:
        return Lowered(topk_stable, inputs=node.inputs[:2], kwargs=kwargs)
    return Lowered(topk_stable, inputs=node.inputs[:1], kwargs={"k": k[0], **kwargs})


@converter("TopK", since=10)
def top_k_v10(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """TopK(X, K) -> (Values, Indices); largest first."""
    return _top_k(node, ctx, 1)


@converter("TopK", since=11)
def top_k(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """TopK(X, K) -> (Values, Indices); ``largest`` or smallest, returned sorted."""
    # NOTE: sorted=0 leaves the order open in the spec, so sorted output is valid for it too.
    return _top_k(node, ctx, node.attr_int("largest", 1))


def trilu_dynamic(x: torch.Tensor, k: torch.Tensor, upper: int = 1) -> torch.Tensor:
    """ONNX Trilu with the diagonal offset only known at run time."""
    diagonal = int(k.reshape(-1)[0].item())
    return torch.triu(x, diagonal) if upper else torch.tril(x, diagonal)


@converter("Trilu", since=14)
def trilu(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Trilu(input, k?) -> upper (triu) or lower (tril) triangle of the last two dims."""
    upper = node.attr_int("upper", 1)
    fn = torch.triu if upper else torch.tril
    if not node.has_input(1):
        return Lowered(fn, inputs=node.inputs[:1])
    k = ctx.constant_ints(node.input(1))
    if k is None:
        return Lowered(trilu_dynamic, inputs=node.inputs[:2], kwargs={"upper": upper})
    return Lowered(fn, inputs=node.inputs[:1], kwargs={"diagonal": k[0]} if k[0] else {})


def cumsum_onnx(x: torch.Tensor, axis: int | torch.Tensor, exclusive: int = 0, reverse: int = 0) -> torch.Tensor:
    """ONNX CumSum: running sum in x's dtype, optionally from the end and/or excluding the
    current element."""
    if isinstance(axis, torch.Tensor):
        axis = int(axis.reshape(-1)[0].item())
    if reverse:
        x = torch.flip(x, (axis,))
    out = torch.cumsum(x, axis, dtype=x.dtype)
    if exclusive and x.shape[axis] > 0:
        # NOTE: exclusive sums are the inclusive ones shifted by one, starting at 0
        # (ONNX CumSum: y[i] = x[0] + ... + x[i-1]).
        zero = torch.zeros_like(torch.narrow(out, axis, 0, 1))
        out = torch.cat((zero, torch.narrow(out, axis, 0, x.shape[axis] - 1)), dim=axis)
    if reverse:
        out = torch.flip(out, (axis,))
    return out


@converter("CumSum", since=11)
def cum_sum(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """CumSum(x, axis) -> running sum along ``axis``; ``exclusive`` / ``reverse`` flags."""
    exclusive, reverse = node.attr_int("exclusive", 0), node.attr_int("reverse", 0)
    axis = ctx.constant_ints(node.input(1))
    elem = ctx.elem_type(node.input(0))
    if axis is None:
        return Lowered(cumsum_onnx, inputs=node.inputs[:2], kwargs={"exclusive": exclusive, "reverse": reverse})
    if exclusive or reverse or elem is None:
        return Lowered(cumsum_onnx, inputs=node.inputs[:1],
                       kwargs={"axis": axis[0], "exclusive": exclusive, "reverse": reverse})
    kwargs = {"dim": axis[0]}
    dtype = torch_dtype(elem)
    if not dtype.is_floating_point:
        # NOTE: torch.cumsum promotes integers to int64; ONNX keeps the input type.
        kwargs["dtype"] = dtype
    return Lowered(torch.cumsum, inputs=node.inputs[:1], kwargs=kwargs)


def compress_along(x: torch.Tensor, condition: torch.Tensor, axis: int | None = None) -> torch.Tensor:
    """ONNX Compress: the slices along ``axis`` (of the flattened input when None) whose
    condition is true; a short condition drops the rest."""
    picked = torch.nonzero(condition.reshape(-1)).reshape(-1)
    if axis is None:
        return torch.index_select(x.reshape(-1), 0, picked)
    return torch.index_select(x, axis, picked)


@converter("Compress", since=9)
def compress(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Compress(input, condition) -> output; keeps the slices where condition is true."""
    axis = node.attr_int("axis", None)
    return Lowered(compress_along, inputs=node.inputs[:2], kwargs={} if axis is None else {"axis": axis})


def eye_of(x: torch.Tensor, k: int = 0, dtype: torch.dtype | None = None) -> torch.Tensor:
    """ONNX EyeLike: ones on the k-th diagonal of a matrix shaped like ``x``."""
    rows = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
    cols = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    return (cols - rows == k).to(dtype or x.dtype)


@converter("EyeLike", since=9)
def eye_like(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """EyeLike(input) -> 2-D tensor of input's shape, ones on diagonal ``k``, ``dtype`` or input's."""
    k = node.attr_int("k", 0)
    dtype_attr = node.attr_int("dtype", None)
    dtype = torch_dtype(dtype_attr) if dtype_attr is not None else None
    if dtype is None and ctx.elem_type(node.input(0)) is not None:
        dtype = torch_dtype(ctx.elem_type(node.input(0)))
    dims = ctx.static_shape(node.input(0))
    if dims is not None and dtype is not None:
        if len(dims) != 2:
            raise node.unsupported("input rank", len(dims), "2")
        return Lowered.const(eye_of(torch.empty(dims), k, dtype))
    return Lowered(eye_of, inputs=node.inputs[:1], kwargs={"k": k, "dtype": dtype})


def reverse_sequences(x: torch.Tensor, sequence_lens: torch.Tensor, batch_axis: int = 1,
                      time_axis: int = 0) -> torch.Tensor:
    """ONNX ReverseSequence: reverse the first sequence_lens[b] steps of every batch entry."""
    steps = torch.arange(x.shape[time_axis], device=x.device).unsqueeze(0)
    lens = sequence_lens.long().to(x.device).unsqueeze(1)
    source = torch.where(steps < lens, lens - 1 - steps, steps)  # [batch, time]
    if batch_axis > time_axis:
        source = source.t()
    shape = [1] * x.dim()
    shape[batch_axis], shape[time_axis] = x.shape[batch_axis], x.shape[time_axis]
    return torch.gather(x, time_axis, source.reshape(shape).expand(x.shape))


@converter("ReverseSequence", since=10)
def reverse_sequence(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReverseSequence(input, sequence_lens) -> output; reverses each batch entry's prefix."""
    batch_axis, time_axis = node.attr_int("batch_axis", 1), node.attr_int("time_axis", 0)
    if {batch_axis, time_axis} != {0, 1}:
        raise node.unsupported("batch_axis/time_axis", (batch_axis, time_axis), "(1, 0) or (0, 1)")
    return Lowered(reverse_sequences, inputs=node.inputs[:2], kwargs={"batch_axis": batch_axis, "time_axis": time_axis})


def center_crop_pad_to(x: torch.Tensor, shape: tuple[int, ...] | torch.Tensor,
                       axes: tuple[int, ...] | None = None) -> torch.Tensor:
    """ONNX CenterCropPad: crop or zero-pad each of ``axes`` to ``shape`` around the centre
    (the extra odd element goes to the end)."""
    if isinstance(shape, torch.Tensor):
        shape = tuple(int(v) for v in shape.reshape(-1).tolist())
    if axes is None:
        axes = tuple(range(x.dim()))
    for axis, target in zip(axes, shape):
        axis = axis + x.dim() if axis < 0 else axis
        size = x.shape[axis]
        if target < size:
            x = torch.narrow(x, axis, (size - target) // 2, target)
        elif target > size:
            before = (target - size) // 2
            pads = [0, 0] * (x.dim() - axis)
            pads[-2], pads[-1] = before, target - size - before
            x = F.pad(x, tuple(pads))
    return x


@converter("CenterCropPad", since=18)
def center_crop_pad(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """CenterCropPad(input_data, shape) -> output cropped / zero-padded to ``shape`` on ``axes``."""
    axes = node.attr_ints("axes", None)
    kwargs = {} if axes is None else {"axes": tuple(axes)}
    shape = ctx.constant_ints(node.input(1))
    if shape is None:
        return Lowered(center_crop_pad_to, inputs=node.inputs[:2], kwargs=kwargs)
    return Lowered(center_crop_pad_to, inputs=node.inputs[:1], kwargs={"shape": tuple(shape), **kwargs})
