"""Resource limits for conversion: constant folding never materialises a huge tensor.

A model from a stranger can ask for ``ConstantOfShape([100000, 100000, 10])`` — 400 GB from a
24-byte shape.  Before a node whose inputs are all constants is evaluated at conversion time, its
output size is estimated from the constant inputs (and onnx's inferred shapes); above the limit
(:data:`DEFAULT_MAX_CONSTANT_BYTES`, 256 MiB, or ``ConvertModel(..., max_constant_bytes=...)``) the
node is converted as if its inputs were run-time values, so the big tensor is computed when the
model runs, never at conversion time.  A folded result that still turns out larger than the
limit is dropped and the node emitted instead, so no converted module embeds it.
"""
from __future__ import annotations

import array
import contextlib
import contextvars
import logging
import math
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import onnx
import torch

from onnx2torch.errors import ConversionError
from onnx2torch.registry import DEFAULT_DOMAINS

__all__ = [
    "DEFAULT_MAX_CONSTANT_BYTES",
    "MAX_FOLDED_LOOP_TRIPS",
    "max_constant_bytes",
    "constant_limit",
    "estimate_fold_bytes",
    "fold_exceeds_limit",
    "grows_past_limit",
    "value_bytes",
    "hide_constants",
    "call_converter",
    "DATA_PROP_LIMIT",
    "data_propagation_hazard",
    "SUBGRAPH_OPS",
    "subgraphs_of",
]

logger = logging.getLogger(__name__)

#: Largest tensor constant folding may create (bytes), unless configured otherwise.
DEFAULT_MAX_CONSTANT_BYTES = 256 * 2**20

#: A Loop with constant inputs is evaluated at conversion time only when its trip count is a
#: constant no larger than this (a ``while True`` loop would hang the conversion).
MAX_FOLDED_LOOP_TRIPS = 10_000

#: The estimate of an output that cannot be sized (an endless loop).
_UNBOUNDED = 2**62

_LIMIT: contextvars.ContextVar[int] = contextvars.ContextVar("onnx2torch_max_constant_bytes",
                                                             default=DEFAULT_MAX_CONSTANT_BYTES)


def max_constant_bytes() -> int:
    """The limit in force for the current conversion."""
    return _LIMIT.get()


@contextlib.contextmanager
def constant_limit(limit: int | None) -> Iterator[None]:
    """Use ``limit`` bytes (``None``: the default) as the folding limit inside the block."""
    if limit is None:
        yield
        return
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"max_constant_bytes must be a non-negative int, got {limit!r}")
    token = _LIMIT.set(limit)
    try:
        yield
    finally:
        _LIMIT.reset(token)


# --- size estimates ---------------------------------------------------------------------------

_ELEMENTWISE = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Where", "And", "Or", "Xor", "Equal", "Less", "Greater",
    "LessOrEqual", "GreaterOrEqual", "Max", "Min", "Sum", "Mean", "BitShift", "BitwiseAnd", "BitwiseOr",
    "BitwiseXor", "PRelu", "Clip",
})


def _itemsize(dtype: Any) -> int:
    if isinstance(dtype, torch.dtype):
        return max(dtype.itemsize, 1)
    try:
        return max(np.dtype(dtype).itemsize, 1)
    except TypeError:
        return 8


def value_bytes(value: Any) -> int:
    """Bytes a folded value takes (tensors, arrays and sequences of them)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * _itemsize(value.dtype)
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (list, tuple)):
        return sum(value_bytes(v) for v in value)
    return 0


def _shape_of(value: Any) -> list[int] | None:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return [int(d) for d in value.shape]
    return None


def _ints(value: Any) -> list[int] | None:
    if value is None or isinstance(value, (list, tuple)):
        return None
    try:
        flat = torch.as_tensor(value).reshape(-1)
        if flat.numel() > 64:
            return None
        return [int(v) for v in flat.tolist()]
    except Exception:  # noqa: BLE001 - no estimate from this value
        return None


def _floats(value: Any) -> list[float] | None:
    if value is None or isinstance(value, (list, tuple)):
        return None
    try:
        flat = torch.as_tensor(value).reshape(-1)
        if flat.numel() > 64:
            return None
        return [float(v) for v in flat.double().tolist()]
    except Exception:  # noqa: BLE001
        return None


def _numel(dims: Sequence[int]) -> int:
    return math.prod(max(int(d), 0) for d in dims)


def _broadcast(shapes: list[list[int]]) -> list[int] | None:
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0}
        dims.discard(1)
        if len(dims) > 1:
            return None
        out.append(dims.pop() if dims else 1)
    return out


def _elem_itemsize(elem: int | None) -> int | None:
    if not elem:
        return None
    try:
        return max(onnx.helper.tensor_dtype_to_np_dtype(elem).itemsize, 1)
    except Exception:  # noqa: BLE001 - an exotic type
        return None


def estimate_fold_bytes(node, ctx) -> int | None:
    """An estimate of the bytes evaluating ``node`` at conversion time would allocate for its
    outputs, from its constant inputs and onnx's inferred shapes (which propagate constant
    shapes); ``None`` when nothing can be told (the folded result is then checked after the
    fact)."""
    op = node.op_type
    values = [ctx.constant(n) if n else None for n in node.inputs]
    shapes = [_shape_of(v) for v in values]
    first = values[0] if values else None
    item = _itemsize(first.dtype) if isinstance(first, (torch.Tensor, np.ndarray)) else 4
    estimates: list[int] = []
    for name in node.outputs:
        dims = ctx.static_shape(name) if name else None
        if dims is not None:
            estimates.append(_numel(dims) * (_elem_itemsize(ctx.elem_type(name)) or item))
    if op == "ConstantOfShape":
        dims = _ints(first)
        value = node.attr("value", None)
        fill_item = _itemsize(getattr(value, "dtype", np.float32)) if value is not None else 4
        if dims is not None:
            estimates.append(_numel(dims) * fill_item)
    elif op == "Expand" and len(values) > 1 and shapes[0] is not None:
        dims = _ints(values[1])
        if dims is not None:
            rank = max(len(dims), len(shapes[0]))
            a = [1] * (rank - len(shapes[0])) + shapes[0]
            b = [1] * (rank - len(dims)) + dims
            estimates.append(_numel(max(x, y) for x, y in zip(a, b)) * item)
    elif op == "Tile" and len(values) > 1 and shapes[0] is not None:
        reps = _ints(values[1])
        if reps is not None:
            estimates.append(_numel(shapes[0]) * _numel(reps) * item)
    elif op == "Range" and len(values) >= 3:
        start, limit, delta = (_floats(v) for v in values[:3])
        if start and limit and delta and delta[0] != 0 and all(map(math.isfinite, start + limit + delta)):
            estimates.append(max(math.ceil((limit[0] - start[0]) / delta[0]), 0) * item)
    elif op == "OneHot" and len(values) > 1 and shapes[0] is not None:
        depth = _floats(values[1])
        if depth and math.isfinite(depth[0]):
            estimates.append(_numel(shapes[0]) * max(int(abs(depth[0])), 1) * 8)
    elif op == "Pad" and shapes[0] is not None:
        pads = _ints(values[1]) if len(values) > 1 and values[1] is not None else node.attr("pads", None)
        if pads is not None and len(pads) == 2 * len(shapes[0]):
            rank = len(shapes[0])
            estimates.append(_numel(d + pads[i] + pads[i + rank] for i, d in enumerate(shapes[0])) * item)
    elif op in ("Resize", "Upsample") and shapes[0] is not None:
        sizes = _ints(values[3]) if len(values) > 3 and values[3] is not None else None
        scales_value = values[2] if op == "Resize" and len(values) > 2 else values[1] if len(values) > 1 else None
        scales = _floats(scales_value) if scales_value is not None else node.attr("scales", None)
        rank = len(shapes[0])
        axes = node.attr("axes", None) if op == "Resize" else None
        axes = [a % rank for a in axes] if axes and rank else list(range(rank))
        if sizes and len(sizes) == len(axes):
            out = list(shapes[0])
            for axis, size in zip(axes, sizes):
                out[axis] = size
            estimates.append(_numel(out) * item)
        elif scales and len(scales) == len(axes):
            out_f = [float(d) for d in shapes[0]]
            for axis, scale in zip(axes, scales):
                out_f[axis] = out_f[axis] * max(float(scale), 0.0)
            if all(math.isfinite(d) for d in out_f):
                estimates.append(int(math.prod(out_f)) * item)
    elif op in ("MatMul", "MatMulInteger", "Gemm") and len(shapes) > 1 and shapes[0] and shapes[1]:
        a, b = shapes[0], shapes[1]
        rows = a[-2] if len(a) > 1 else 1
        cols = b[-1] if len(b) > 1 else 1
        batch = _broadcast([a[:-2], b[:-2]]) or []
        estimates.append(_numel(batch) * rows * cols * item)
    elif op == "Gather" and len(shapes) > 1 and shapes[0] and shapes[1] is not None:
        estimates.append(_numel(shapes[1]) * (_numel(shapes[0]) // max(min(shapes[0]), 1)) * item)
    elif op in ("HannWindow", "HammingWindow", "BlackmanWindow"):
        size = _ints(first)
        if size:
            estimates.append(max(size[0], 0) * 8)
    elif op == "MelWeightMatrix" and len(values) >= 2:
        bins, length = _ints(values[0]), _ints(values[1])
        if bins and length:
            estimates.append(max(bins[0], 0) * max(length[0] // 2 + 1, 0) * 8)
    elif op == "Loop":
        trips = _ints(first) if node.input(0) else None
        if not trips or trips[0] > MAX_FOLDED_LOOP_TRIPS:
            # NOTE: an unbounded (or long) loop cannot be sized; folding it could run forever.
            estimates.append(_UNBOUNDED)
    if op in _ELEMENTWISE:
        known = [s for s in shapes if s is not None]
        if known:
            dims = _broadcast(known)
            if dims is not None:
                items = [_itemsize(v.dtype) for v in values if isinstance(v, (torch.Tensor, np.ndarray))]
                estimates.append(_numel(dims) * max(items or [4]))
    return max(estimates) if estimates else None



def _largest_input_bytes(node, ctx) -> int:
    """Bytes of the largest input: tensors already in memory (from the file or folded within
    the limit); an output no larger than that is not a blow-up."""
    sizes = [value_bytes(ctx.constant(n)) for n in node.inputs if n]
    return max(sizes, default=0)


def grows_past_limit(node, ctx, size: int | None) -> bool:
    """Whether an output of ``size`` bytes is over the limit *and* larger than every input
    (ops that keep the data's size — Identity, Reshape, Cast, DequantizeLinear of a big weight —
    only pass on what the file already holds; the factor 8 allows for a widening cast)."""
    if size is None or size <= max_constant_bytes():
        return False
    return size >= _UNBOUNDED or size > 8 * _largest_input_bytes(node, ctx)


def fold_exceeds_limit(node, ctx) -> bool:
    """Whether evaluating ``node`` now would materialise more than the limit."""
    try:
        return grows_past_limit(node, ctx, estimate_fold_bytes(node, ctx))
    except Exception as exc:  # noqa: BLE001 - an estimate never breaks a conversion
        logger.debug("no size estimate for %s: %s", node.describe(), exc)
        return False


# --- converting a node without folding --------------------------------------------------------

def hide_constants(ctx, names: Sequence[str]):
    """A view of the conversion context in which ``names`` are run-time values, not constants,
    so a converter builds its run-time form instead of computing the output now."""
    from onnx2torch.assemble import ConversionContext  # noqa: PLC0415 - assemble imports us

    class _RuntimeInputsContext(ConversionContext):
        def is_constant(self, name: str) -> bool:
            return name not in self._hidden and super().is_constant(name)

        def constant(self, name: str):
            return None if name in self._hidden else super().constant(name)

    view = object.__new__(_RuntimeInputsContext)
    view.__dict__.update(ctx.__dict__)  # shares the constants dict and the inferred types
    view._hidden = frozenset(n for n in names if n)
    return view


def _too_large_message(node, size: int | None) -> str:
    limit = max_constant_bytes()
    told = f"about {size / 2**20:.0f} MiB" if size is not None and size < _UNBOUNDED else "an unbounded amount"
    return (f"{node.describe()}: evaluating it at conversion time would create {told} "
            f"(limit {limit / 2**20:.0f} MiB)")


def call_converter(entry, node, ctx):
    """Run ``entry``'s converter for ``node``; returns ``(lowered, foldable)``.

    When folding the node would exceed the size limit, the converter sees its constant inputs
    as run-time values (``foldable`` is then ``False``); when it still insists on a constant
    that large, the node is refused with a :class:`ConversionError`.
    """
    if not entry.deterministic or not node.inputs or not all(not n or ctx.is_constant(n) for n in node.inputs):
        return entry.fn(node, ctx), True
    if not fold_exceeds_limit(node, ctx):
        lowered = entry.fn(node, ctx)
        size = value_bytes(lowered.constant) if lowered.constant is not None else None
        if not grows_past_limit(node, ctx, size):
            return lowered, True
        del lowered
    else:
        size = None
        try:
            size = estimate_fold_bytes(node, ctx)
        except Exception:  # noqa: BLE001
            pass
    logger.info("%s; computing it at run time instead", _too_large_message(node, size))
    lowered = entry.fn(node, hide_constants(ctx, node.inputs))
    if lowered.constant is not None:
        raise ConversionError(
            f"{_too_large_message(node, size)}, and its converter cannot compute it at run time. "
            "Raise the limit with ConvertModel(..., max_constant_bytes=N) if the model is trusted."
        )
    return lowered, False


# --- onnx's data propagation ------------------------------------------------------------------

#: onnx's shape inference with ``data_prop=True`` (and onnx-simplifier) compute the values of
#: 1-D integer tensors element by element, about a microsecond each: ``Range(0, 10**8)`` takes
#: minutes.  Models that would propagate a longer one are inferred without data propagation.
DATA_PROP_LIMIT = 1_000_000

_NUM_TYPES = frozenset({
    onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.INT16, onnx.TensorProto.INT8,
    onnx.TensorProto.UINT64, onnx.TensorProto.UINT32, onnx.TensorProto.UINT16, onnx.TensorProto.UINT8,
})
_SMALL = 64


class _Known:
    """What the scan knows of a tensor: its values (when short) and/or its length (1-D).  Values
    of a short constant are decoded only when a node needs them (most never are)."""

    __slots__ = ("_values", "length", "_proto")

    def __init__(self, values: list | None = None, length: int | None = None,
                 proto: onnx.TensorProto | None = None):
        self._values = values
        self._proto = proto
        self.length = len(values) if values is not None and length is None else length

    @property
    def values(self) -> list | None:
        if self._proto is not None:
            proto, self._proto = self._proto, None
            self._values = _short_values(proto, self.length)
        return self._values


#: array typecodes of the integer element types, for raw little-endian data (ten times faster
#: than numpy_helper.to_array on the short shape constants exporters write by the thousand)
_RAW_INT_CODES = {onnx.TensorProto.INT64: "q", onnx.TensorProto.INT32: "i"} if sys.byteorder == "little" else {}


def _short_values(proto: onnx.TensorProto, count: int | None) -> list | None:
    """The values of a short constant as a flat list, ``None`` when it is malformed."""
    code = _RAW_INT_CODES.get(proto.data_type)
    if code is not None and proto.HasField("raw_data"):
        raw = proto.raw_data
        if count is not None and len(raw) == count * (8 if code == "q" else 4):
            return array.array(code, raw).tolist()
    try:
        return onnx.numpy_helper.to_array(proto).reshape(-1).tolist()
    except Exception:  # noqa: BLE001 - malformed: nothing known
        return None


def _static_dims(value_type: onnx.TypeProto) -> list[int] | None:
    if not value_type.HasField("tensor_type") or not value_type.tensor_type.HasField("shape"):
        return None
    dims = []
    for dim in value_type.tensor_type.shape.dim:
        if not dim.HasField("dim_value"):
            return None
        dims.append(int(dim.dim_value))
    return dims


def _tensor_known(tensor: onnx.TensorProto) -> _Known | None:
    if tensor.data_type not in _NUM_TYPES or len(tensor.dims) > 1:
        return None
    count = math.prod(tensor.dims) if tensor.dims else 1
    if count > _SMALL or tensor.data_location == onnx.TensorProto.EXTERNAL:
        return _Known(length=count) if len(tensor.dims) == 1 else None
    return _Known(length=count, proto=tensor)


def _elementwise(op: str, a: list[int], b: list[int]) -> list[int] | None:
    if len(a) != len(b) and len(a) != 1 and len(b) != 1:
        return None
    n = max(len(a), len(b))
    a, b = a * n if len(a) == 1 else a, b * n if len(b) == 1 else b
    out = []
    for x, y in zip(a, b):
        if op == "Add":
            out.append(x + y)
        elif op == "Sub":
            out.append(x - y)
        elif op == "Mul":
            out.append(x * y)
        elif op == "Div":
            if y == 0:
                return None
            out.append(int(x / y) if isinstance(x, int) and isinstance(y, int) else x / y)
        elif op == "Max":
            out.append(max(x, y))
        else:
            out.append(min(x, y))
    return out


#: The ops _scan_node follows, and those of them that need their inputs' values.
_READS_VALUES = frozenset({"Add", "Sub", "Mul", "Div", "Max", "Min", "Concat", "Gather", "Range",
                           "ConstantOfShape", "Tile", "Expand"})
#: ops whose output holds the values of their first input (as far as the scan tells)
_PASSED_ON = frozenset({"Identity", "Cast", "CastLike", "Squeeze", "Unsqueeze", "Reshape", "Flatten"})
_SCANNED_OPS = _READS_VALUES | _PASSED_ON | {"Constant", "Shape", "Size"}


#: ONNX ops with graph attributes (any op of another domain may have some too).
SUBGRAPH_OPS = frozenset({"If", "Loop", "Scan", "SequenceMap"})


def subgraphs_of(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    """The graphs a node holds as attributes.  Only control-flow ops and ops of other domains are
    looked into: no other standard op has a graph attribute, and one set anyway is never run."""
    if node.op_type not in SUBGRAPH_OPS and node.domain in DEFAULT_DOMAINS:
        return []
    graphs = []
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            graphs.append(attr.g)
        elif attr.type == onnx.AttributeProto.GRAPHS:
            graphs.extend(attr.graphs)
    return graphs


def _scan_node(node: onnx.NodeProto, known: dict[str, _Known], dims: dict[str, list[int]]) -> _Known | None:
    """What can be told of the node's first output (shape arithmetic only); ``node`` is one of
    ``_SCANNED_OPS`` (the caller filters)."""
    op = node.op_type
    if op in _PASSED_ON:
        names = node.input
        return known.get(names[0]) if names else None
    ins = [known.get(n) if n else None for n in node.input]
    first = ins[0] if ins else None
    attrs = {a.name: a for a in node.attribute} if op in ("Constant", "Shape") else {}
    vals = [k.values if k is not None else None for k in ins] if op in _READS_VALUES else []
    if op == "Constant":
        if "value" in attrs:
            return _tensor_known(attrs["value"].t)
        if "value_ints" in attrs:
            return _Known([int(v) for v in attrs["value_ints"].ints[:_SMALL + 1]]) \
                if len(attrs["value_ints"].ints) <= _SMALL else _Known(length=len(attrs["value_ints"].ints))
        if "value_int" in attrs:
            return _Known([int(attrs["value_int"].i)])
        return None
    if op == "Shape" and node.input and node.input[0] in dims:
        shape = dims[node.input[0]]
        start = attrs["start"].i if "start" in attrs else 0
        end = attrs["end"].i if "end" in attrs else len(shape)
        return _Known(shape[start:end])
    if op == "Size" and node.input and node.input[0] in dims:
        return _Known([math.prod(dims[node.input[0]])])
    if op in ("Add", "Sub", "Mul", "Div", "Max", "Min") and len(vals) == 2 and vals[0] is not None and vals[1] is not None:
        result = _elementwise(op, vals[0], vals[1])
        return _Known(result) if result is not None else None
    if op == "Concat":
        if all(v is not None for v in vals):
            joined = [x for v in vals for x in v]
            return _Known(joined) if len(joined) <= _SMALL else _Known(length=len(joined))
        if all(k is not None and k.length is not None for k in ins):
            return _Known(length=sum(k.length for k in ins))
        return None
    if op == "Gather" and len(vals) == 2 and vals[0] is not None and vals[1] is not None:
        try:
            return _Known([vals[0][i] for i in vals[1]])
        except IndexError:
            return None
    if op == "Range" and len(vals) == 3 and all(v is not None and len(v) == 1 for v in vals):
        (start,), (limit,), (delta,) = vals
        if delta == 0 or not all(math.isfinite(v) for v in (start, limit, delta)):
            return None
        length = max(math.ceil((limit - start) / delta), 0) if isinstance(delta, float) or \
            isinstance(start, float) or isinstance(limit, float) else max(-(-(limit - start) // delta), 0)
        return _Known([start + i * delta for i in range(length)]) if length <= _SMALL else _Known(length=length)
    if op == "ConstantOfShape" and vals and vals[0] is not None and len(vals[0]) == 1:
        return _Known(length=max(int(vals[0][0]), 0))
    if op == "Tile" and len(ins) == 2 and first is not None and first.length is not None \
            and vals[1] is not None and len(vals[1]) == 1:
        return _Known(length=first.length * max(int(vals[1][0]), 0))
    if op == "Expand" and len(vals) == 2 and vals[1] is not None and len(vals[1]) == 1:
        return _Known(length=max(int(vals[1][0]), first.length if first is not None and first.length else 1))
    return None


def data_propagation_hazard(model: onnx.ModelProto, limit: int = DATA_PROP_LIMIT) -> str | None:
    """A description of the first 1-D integer tensor longer than ``limit`` that onnx's data
    propagation would compute from the model's constants and static shapes, else ``None``.
    One pass over the nodes (subgraphs included); anything it cannot tell is skipped."""
    known: dict[str, _Known] = {}
    dims: dict[str, list[int]] = {}
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        for tensor in graph.initializer:
            dims[tensor.name] = list(tensor.dims)
            item = _tensor_known(tensor)
            if item is not None:
                known[tensor.name] = item
        for value in list(graph.input) + list(graph.value_info):
            shape = _static_dims(value.type)
            if shape is not None:
                dims.setdefault(value.name, shape)
        for node in graph.node:
            graphs.extend(subgraphs_of(node))
            if node.op_type not in _SCANNED_OPS:
                continue
            try:
                item = _scan_node(node, known, dims) if node.output else None
            except Exception:  # noqa: BLE001 - a malformed node: nothing known
                item = None
            if item is None:
                continue
            if item.length is not None and item.length > limit:
                return (f"node '{node.name or node.output[0]}' ({node.op_type}) computes a "
                        f"{item.length}-element 1-D tensor from constants")
            if item._proto is None and item.values is not None and len(item.values) > _SMALL:
                item = _Known(length=len(item.values))
            known[node.output[0]] = item
    return None
