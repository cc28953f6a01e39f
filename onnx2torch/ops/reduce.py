"""Converters: reductions (ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1,
ReduceL2, ReduceLogSum, ReduceLogSumExp, ReduceSumSquare) and ArgMax / ArgMin.

``axes`` is an attribute up to ReduceSum-11 / Reduce*-13 and an optional input afterwards.
Constant axes are resolved at conversion time and become literal ``dim=(...)`` arguments of a
torch reduction; an axes input computed at run time is read in ``forward`` (nothing else can say
which dims to reduce). With no axes, every dim is reduced unless ``noop_with_empty_axes=1``, where
only the elementwise part of the reduction runs (ReduceSumSquare acts as Square, ReduceL1 as Abs).

Reductions over an empty set give what the spec and the reference give: 0 for sums, 1 for
products, -inf for ReduceMax / ReduceLogSum / ReduceLogSumExp (the dtype's lowest value for
integers, False for bool) and +inf for ReduceMin.
"""
from __future__ import annotations

import logging
import math

import torch

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.ops.constant import identity_fn
from onnx2torch.ops.elementwise import (
    WIDE_UNSIGNED,
    as_int64,
    from_int64,
    from_order_key,
    input_dtype,
    order_key,
)
from onnx2torch.registry import Lowered, converter

__all__ = [
    "reduce_sum",
    "reduce_mean",
    "reduce_max",
    "reduce_min",
    "reduce_prod",
    "reduce_l1",
    "reduce_l2",
    "reduce_log_sum",
    "reduce_log_sum_exp",
    "reduce_sum_square",
    "reduce_with_axes_input",
    "arg_max",
    "arg_min",
]

logger = logging.getLogger(__name__)


# --- runtime reductions: (x, axes, keepdims), axes None = all dims ----------------------------
def _dims(x: torch.Tensor, axes: tuple[int, ...] | None) -> tuple[int, ...]:
    rank = x.dim()
    if axes is None:
        return tuple(range(rank))
    return tuple(sorted({a + rank if a < 0 else a for a in axes}))


def _reduced_shape(x: torch.Tensor, dims: tuple[int, ...], keepdims: bool) -> list[int]:
    if keepdims:
        return [1 if d in dims else s for d, s in enumerate(x.shape)]
    return [s for d, s in enumerate(x.shape) if d not in dims]


def _is_empty(x: torch.Tensor, dims: tuple[int, ...]) -> bool:
    return any(x.shape[d] == 0 for d in dims)


def _int_accumulator(x: torch.Tensor) -> torch.dtype | None:
    """The ``dtype=`` torch's sum/prod need to keep an integer type (they widen to int64)."""
    return None if x.is_floating_point() else x.dtype


def reduce_sum(x: torch.Tensor, axes: tuple[int, ...] | None = None, keepdims: bool = True) -> torch.Tensor:
    """ReduceSum in x's dtype (integers wrap like onnxruntime's, they are not widened)."""
    dims = _dims(x, axes)
    if x.dtype in WIDE_UNSIGNED:
        return from_int64(torch.sum(as_int64(x), dim=dims, keepdim=keepdims), x.dtype)
    return torch.sum(x, dim=dims, keepdim=keepdims, dtype=_int_accumulator(x))


def reduce_mean(x: torch.Tensor, axes: tuple[int, ...] | None = None, keepdims: bool = True) -> torch.Tensor:
    """ReduceMean; integer means truncate toward zero (as onnxruntime and the reference)."""
    dims = _dims(x, axes)
    if x.is_floating_point():
        return torch.mean(x, dim=dims, keepdim=keepdims)
    count = math.prod(x.shape[d] for d in dims)
    total = torch.sum(as_int64(x), dim=dims, keepdim=keepdims)
    # NOTE: uint64 sums are exact only below 2**63 here (int64 carrier, signed division).
    return from_int64(torch.div(total, count, rounding_mode="trunc"), x.dtype)


def _lowest(dtype: torch.dtype):
    if dtype == torch.bool:
        return False
    if dtype.is_floating_point:
        return -math.inf
    return torch.iinfo(dtype).min


def _highest(dtype: torch.dtype):
    if dtype == torch.bool:
        return True
    if dtype.is_floating_point:
        return math.inf
    return torch.iinfo(dtype).max


def reduce_max(x: torch.Tensor, axes: tuple[int, ...] | None = None, keepdims: bool = True) -> torch.Tensor:
    """ReduceMax; an empty reduction gives -inf (the dtype's lowest value, False for bool)."""
    dims = _dims(x, axes)
    if _is_empty(x, dims):
        return torch.full(_reduced_shape(x, dims, keepdims), _lowest(x.dtype), dtype=x.dtype, device=x.device)
    if x.dtype in WIDE_UNSIGNED:
        return from_order_key(torch.amax(order_key(x), dim=dims, keepdim=keepdims), x.dtype)
    return torch.amax(x, dim=dims, keepdim=keepdims)


def reduce_min(x: torch.Tensor, axes: tuple[int, ...] | None = None, keepdims: bool = True) -> torch.Tensor:
    """ReduceMin; an empty reduction gives +inf (the dtype's highest value, True for bool)."""
    dims = _dims(x, axes)
    if _is_empty(x, dims):
        return torch.full(_reduced_shape(x, dims, keepdims), _highest(x.dtype), dtype=x.dtype, device=x.device)
    if x.dtype in WIDE_UNSIGNED:
        return from_order_key(torch.amin(order_key(x), dim=dims, keepdim=keepdims), x.dtype)
    return torch.amin(x, dim=dims, keepdim=keepdims)


def reduce_prod(x: torch.Tensor, axes: tuple[int, ...] | None = None, keepdims: bool = True) -> torch.Tensor:
    """ReduceProd over several dims (torch.prod takes one dim at a time)."""
    dims = _dims(x, axes)
    dtype = x.dtype
    result = as_int64(x) if dtype in WIDE_UNSIGNED else x
    for d in reversed(dims):
        result = torch.prod(result, dim=d, keepdim=True, dtype=_int_accumulator(result))
    if not keepdims and dims:
        result = result.squeeze(dims)
    return from_int64(result, dtype) if dtype in WIDE_UNSIGNED else result


def _abs(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in WIDE_UNSIGNED else torch.abs(x)


def _square(x: torch.Tensor) -> torch.Tensor:
    return x * x


def reduce_l1(x: torch.Tensor, axes: tuple[int, ...] | None = None, keepdims: bool = True) -> torch.Tensor:
    """ReduceL1 = sum(|x|)."""
    return reduce_sum(_abs(x), axes, keepdims)


def _float_then_back(fn, x: torch.Tensor, *args) -> torch.Tensor:
    """Integer inputs: compute in double and truncate back (the reference's ``astype``)."""
    if x.is_floating_point():
        return fn(x, *args)
    return fn(x.to(torch.float64), *args).to(x.dtype)


def _l2(x: torch.Tensor, axes, keepdims) -> torch.Tensor:
    return torch.sqrt(reduce_sum(x * x, axes, keepdims))


def reduce_l2(x: torch.Tensor, axes: tuple[int, ...] | None = None, keepdims: bool = True) -> torch.Tensor:
    """ReduceL2 = sqrt(sum(x ** 2))."""
    return _float_then_back(_l2, x, axes, keepdims)


def _log_sum(x: torch.Tensor, axes, keepdims) -> torch.Tensor:
    return torch.log(reduce_sum(x, axes, keepdims))


def reduce_log_sum(x: torch.Tensor, axes: tuple[int, ...] | None = None, keepdims: bool = True) -> torch.Tensor:
    """ReduceLogSum = log(sum(x)); -inf over an empty set."""
    return _float_then_back(_log_sum, x, axes, keepdims)


def _log_sum_exp(x: torch.Tensor, axes, keepdims) -> torch.Tensor:
    dims = _dims(x, axes)
    if not dims:
        return x.clone()  # a rank-0 input: log(exp(x)) == x
    return torch.logsumexp(x, dim=dims, keepdim=keepdims)


def reduce_log_sum_exp(x: torch.Tensor, axes: tuple[int, ...] | None = None, keepdims: bool = True) -> torch.Tensor:
    """ReduceLogSumExp = log(sum(exp(x))), computed stably; -inf over an empty set."""
    return _float_then_back(_log_sum_exp, x, axes, keepdims)


def reduce_sum_square(x: torch.Tensor, axes: tuple[int, ...] | None = None, keepdims: bool = True) -> torch.Tensor:
    """ReduceSumSquare = sum(x ** 2)."""
    return reduce_sum(x * x, axes, keepdims)


def _log(x: torch.Tensor) -> torch.Tensor:
    return _float_then_back(torch.log, x)


#: kind -> (reduction, what noop_with_empty_axes=1 leaves: the elementwise part alone)
_KINDS = {
    "sum": (reduce_sum, identity_fn),
    "mean": (reduce_mean, identity_fn),
    "max": (reduce_max, identity_fn),
    "min": (reduce_min, identity_fn),
    "prod": (reduce_prod, identity_fn),
    "l1": (reduce_l1, _abs),
    "l2": (reduce_l2, _abs),
    "log_sum": (reduce_log_sum, _log),
    "log_sum_exp": (reduce_log_sum_exp, identity_fn),
    "sum_square": (reduce_sum_square, _square),
}

#: The elementwise parts as module-level functions the generated code can call.
_NOOP_TARGETS = {"l1": torch.abs, "l2": torch.abs, "log_sum": torch.log, "sum_square": _square}


def reduce_with_axes_input(
    x: torch.Tensor,
    axes: torch.Tensor | None,
    kind: str = "sum",
    keepdims: bool = True,
    noop_with_empty_axes: bool = False,
) -> torch.Tensor:
    """A reduction whose axes input is only known at run time."""
    # NOTE: the axes values are read here because the node's axes are computed in the graph;
    # constant axes never come this way.
    reduce, noop = _KINDS[kind]
    values = [] if axes is None else [int(a) for a in axes.reshape(-1).tolist()]
    if not values:
        return noop(x) if noop_with_empty_axes else reduce(x, None, keepdims)
    return reduce(x, tuple(values), keepdims)


# --- conversion ------------------------------------------------------------------------------
def _static_dims(axes: list[int] | None, rank: int | None) -> tuple[int, ...] | None:
    """Non-negative sorted dims when the rank is known; None means every dim."""
    if axes is None:
        return None if rank is None else tuple(range(rank))
    if rank is None:
        return tuple(axes)
    for a in axes:
        if not -rank <= a < rank:
            raise ValueError(f"axis {a} is out of range for rank {rank}")
    return tuple(sorted({a + rank if a < 0 else a for a in axes}))


def _maybe_empty(ctx: ConversionContext, name: str, dims: tuple[int, ...] | None) -> bool:
    """True when shape inference says a reduced dim has size 0."""
    shape = ctx.shape(name)
    if shape is None:
        return False
    reduced = range(len(shape)) if dims is None else dims
    return any(shape[d] == 0 for d in reduced if -len(shape) <= d < len(shape))


def _lower_static(node: OnnxNode, ctx: ConversionContext, kind: str, axes: list[int] | None, keepdims: bool) -> Lowered:
    data = node.input(0)
    rank = ctx.rank(data)
    try:
        dims = _static_dims(axes, rank)
    except ValueError as exc:
        raise node.unsupported("axes", axes, f"axes within [-{rank}, {rank - 1}]") from exc
    dtype = input_dtype(node, ctx, 0)
    generic = Lowered(_KINDS[kind][0], inputs=[data], kwargs={"axes": dims, "keepdims": keepdims})
    if dtype is None or dtype in WIDE_UNSIGNED or _maybe_empty(ctx, data, dims) or dims == ():
        return generic
    is_float = dtype.is_floating_point
    torch_dims = {"dim": dims, "keepdim": keepdims}
    if kind == "sum" and dims is not None:
        kwargs = dict(torch_dims) if is_float else {**torch_dims, "dtype": dtype}
        return Lowered(torch.sum, inputs=[data], kwargs=kwargs)
    if kind in ("max", "min") and dims is not None:
        return Lowered(torch.amax if kind == "max" else torch.amin, inputs=[data], kwargs=torch_dims)
    if not is_float or dims is None:
        return generic
    if kind == "mean":
        return Lowered(torch.mean, inputs=[data], kwargs=torch_dims)
    if kind == "prod" and len(dims) == 1:
        return Lowered(torch.prod, inputs=[data], kwargs={"dim": dims[0], "keepdim": keepdims})
    if kind in ("l1", "l2"):
        return Lowered(torch.linalg.vector_norm, inputs=[data], kwargs={"ord": 1 if kind == "l1" else 2, **torch_dims})
    if kind == "log_sum_exp":
        return Lowered(torch.logsumexp, inputs=[data], kwargs=torch_dims)
    return generic


def _lower_reduce(node: OnnxNode, ctx: ConversionContext, kind: str, axes_input: bool) -> Lowered:
    keepdims = bool(node.attr_int("keepdims", 1))
    noop = bool(node.attr_int("noop_with_empty_axes", 0)) if axes_input else False
    data = node.input(0)
    if axes_input:
        if node.has_input(1) and not ctx.is_constant(node.input(1)):
            return Lowered(
                reduce_with_axes_input,
                inputs=[data, node.input(1)],
                kwargs={"kind": kind, "keepdims": keepdims, "noop_with_empty_axes": noop},
            )
        axes = ctx.constant_ints(node.input(1)) if node.has_input(1) else None
    else:
        axes = node.attr_ints("axes")
    if not axes:
        if noop:
            dtype = input_dtype(node, ctx, 0)
            target = _NOOP_TARGETS.get(kind, identity_fn)
            if dtype is None or not dtype.is_floating_point:
                target = _KINDS[kind][1]  # handles unsigned / integer inputs
            return Lowered(target, inputs=[data])
        axes = None  # NOTE: no axes (or an empty list) means every dim
    return _lower_static(node, ctx, kind, axes, keepdims)


@converter("ReduceSum", since=1)
def reduce_sum_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceSum(data) -> reduced = sum over the axes attribute"""
    return _lower_reduce(node, ctx, "sum", axes_input=False)


@converter("ReduceSum", since=13)
def reduce_sum_13(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceSum(data, axes?) -> reduced = sum over axes"""
    return _lower_reduce(node, ctx, "sum", axes_input=True)


@converter("ReduceMean", since=1)
def reduce_mean_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceMean(data) -> reduced = mean over the axes attribute"""
    return _lower_reduce(node, ctx, "mean", axes_input=False)


@converter("ReduceMean", since=18)
def reduce_mean_18(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceMean(data, axes?) -> reduced = mean over axes"""
    return _lower_reduce(node, ctx, "mean", axes_input=True)


@converter("ReduceMax", since=1)
def reduce_max_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceMax(data) -> reduced = max over the axes attribute"""
    return _lower_reduce(node, ctx, "max", axes_input=False)


@converter("ReduceMax", since=18)
def reduce_max_18(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceMax(data, axes?) -> reduced = max over axes (bool from opset 20)"""
    return _lower_reduce(node, ctx, "max", axes_input=True)


@converter("ReduceMin", since=1)
def reduce_min_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceMin(data) -> reduced = min over the axes attribute"""
    return _lower_reduce(node, ctx, "min", axes_input=False)


@converter("ReduceMin", since=18)
def reduce_min_18(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceMin(data, axes?) -> reduced = min over axes (bool from opset 20)"""
    return _lower_reduce(node, ctx, "min", axes_input=True)


@converter("ReduceProd", since=1)
def reduce_prod_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceProd(data) -> reduced = product over the axes attribute"""
    return _lower_reduce(node, ctx, "prod", axes_input=False)


@converter("ReduceProd", since=18)
def reduce_prod_18(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceProd(data, axes?) -> reduced = product over axes"""
    return _lower_reduce(node, ctx, "prod", axes_input=True)


@converter("ReduceL1", since=1)
def reduce_l1_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceL1(data) -> reduced = sum(|data|) over the axes attribute"""
    return _lower_reduce(node, ctx, "l1", axes_input=False)


@converter("ReduceL1", since=18)
def reduce_l1_18(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceL1(data, axes?) -> reduced = sum(|data|) over axes"""
    return _lower_reduce(node, ctx, "l1", axes_input=True)


@converter("ReduceL2", since=1)
def reduce_l2_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceL2(data) -> reduced = sqrt(sum(data ** 2)) over the axes attribute"""
    return _lower_reduce(node, ctx, "l2", axes_input=False)


@converter("ReduceL2", since=18)
def reduce_l2_18(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceL2(data, axes?) -> reduced = sqrt(sum(data ** 2)) over axes"""
    return _lower_reduce(node, ctx, "l2", axes_input=True)


@converter("ReduceLogSum", since=1)
def reduce_log_sum_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceLogSum(data) -> reduced = log(sum(data)) over the axes attribute"""
    return _lower_reduce(node, ctx, "log_sum", axes_input=False)


@converter("ReduceLogSum", since=18)
def reduce_log_sum_18(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceLogSum(data, axes?) -> reduced = log(sum(data)) over axes"""
    return _lower_reduce(node, ctx, "log_sum", axes_input=True)


@converter("ReduceLogSumExp", since=1)
def reduce_log_sum_exp_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceLogSumExp(data) -> reduced = log(sum(exp(data))) over the axes attribute"""
    return _lower_reduce(node, ctx, "log_sum_exp", axes_input=False)


@converter("ReduceLogSumExp", since=18)
def reduce_log_sum_exp_18(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceLogSumExp(data, axes?) -> reduced = log(sum(exp(data))) over axes"""
    return _lower_reduce(node, ctx, "log_sum_exp", axes_input=True)


@converter("ReduceSumSquare", since=1)
def reduce_sum_square_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceSumSquare(data) -> reduced = sum(data ** 2) over the axes attribute"""
    return _lower_reduce(node, ctx, "sum_square", axes_input=False)


@converter("ReduceSumSquare", since=18)
def reduce_sum_square_18(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ReduceSumSquare(data, axes?) -> reduced = sum(data ** 2) over axes"""
    return _lower_reduce(node, ctx, "sum_square", axes_input=True)


# --- ArgMax / ArgMin -------------------------------------------------------------------------
def _arg_reduce(fn, x: torch.Tensor, axis: int, keepdims: bool, select_last_index: bool) -> torch.Tensor:
    if x.dtype in WIDE_UNSIGNED:
        x = order_key(x)
    if not select_last_index:
        return fn(x, dim=axis, keepdim=keepdims)
    # NOTE: the last of equal extremes is the first one of the reversed axis.
    index = fn(torch.flip(x, dims=(axis,)), dim=axis, keepdim=keepdims)
    return (x.shape[axis] - 1) - index


def arg_max(x: torch.Tensor, axis: int = 0, keepdims: bool = True, select_last_index: bool = False) -> torch.Tensor:
    """ArgMax (int64 indices); ties give the first index, or the last with select_last_index."""
    return _arg_reduce(torch.argmax, x, axis, keepdims, select_last_index)


def arg_min(x: torch.Tensor, axis: int = 0, keepdims: bool = True, select_last_index: bool = False) -> torch.Tensor:
    """ArgMin (int64 indices); ties give the first index, or the last with select_last_index."""
    return _arg_reduce(torch.argmin, x, axis, keepdims, select_last_index)


def _lower_arg(node: OnnxNode, ctx: ConversionContext, torch_fn, general) -> Lowered:
    axis = node.attr_int("axis", 0)
    keepdims = bool(node.attr_int("keepdims", 1))
    select_last = bool(node.attr_int("select_last_index", 0) or 0)
    rank = ctx.rank(node.input(0))
    if rank is not None:
        if not -max(rank, 1) <= axis < max(rank, 1):
            raise node.unsupported("axis", axis, f"an axis within [-{rank}, {rank - 1}]")
        axis = axis + rank if axis < 0 else axis
    dtype = input_dtype(node, ctx, 0)
    if select_last or dtype is None or dtype in WIDE_UNSIGNED:
        return Lowered(general, kwargs={"axis": axis, "keepdims": keepdims, "select_last_index": select_last})
    return Lowered(torch_fn, kwargs={"dim": axis, "keepdim": keepdims})


@converter("ArgMax", since=1)
def argmax(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ArgMax(data) -> reduced = int64 index of the max along axis (select_last_index from 12)"""
    return _lower_arg(node, ctx, torch.argmax, arg_max)


@converter("ArgMin", since=1)
def argmin(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ArgMin(data) -> reduced = int64 index of the min along axis (select_last_index from 12)"""
    return _lower_arg(node, ctx, torch.argmin, arg_min)
