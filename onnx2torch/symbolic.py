"""Shape arithmetic kept symbolic at conversion time.

Exporters write dynamic dimensions as small integer graphs: ``Shape -> Gather -> Unsqueeze ->
Concat -> Reshape``, ``Shape -> Gather -> Range``, ``Shape -> ConstantOfShape``.  Run literally,
they build int64 tensors and read their values back (``.tolist()``) to call ``torch.reshape``:
that is opaque to ``torch.export`` / ``torch.compile`` (a data-dependent value) and reads poorly.

This module tracks such values while the graph is assembled: a 1-D (or 0-D) integer tensor whose
elements are known as Python ints or as :class:`Dim` expressions over input sizes
(``x.size(0) * 4``).  Converters of ops that take a shape ask :func:`symbolic_value` and, when it
is known, pass the dims as a literal argument (``torch.reshape(t, (batch, 16, -1))``); the
assembler turns each :class:`Dim` into ``x.size(i)`` / arithmetic nodes of the fx graph
(:func:`materialize`).  The tensor form of the value stays available to other consumers and is
dropped as dead code when nothing else reads it.

Only integer arithmetic that is exact on sizes is tracked: elements of shapes, +, -, *, and
floor division of non-negative values (ONNX Div truncates, which is the same there).
"""
from __future__ import annotations

import logging
import operator
from dataclasses import dataclass
from typing import Any

import onnx
import torch

__all__ = ["Dim", "DeviceOf", "SymbolicValue", "symbolic_value", "propagate", "has_symbolic", "materialize",
           "trunc_div"]

logger = logging.getLogger(__name__)

_INT_TYPES = (onnx.TensorProto.INT64, onnx.TensorProto.INT32)
_MAX_LENGTH = 16  # shape vectors are short; longer integer tensors are data, not shapes
_HUGE = 2**31 - 1  # |bound| >= this is "to the end" in a Slice


@dataclass(frozen=True)
class Dim:
    """A run-time integer: ``("size", tensor_name, axis)`` or ``(op, a, b)`` with op one of
    ``add``, ``sub``, ``mul``, ``floordiv``, ``truncdiv`` and a / b ints or Dims."""

    op: str
    a: Any
    b: Any

    @property
    def nonneg(self) -> bool:
        """Known to be >= 0 (sizes and their sums, products and quotients)."""
        if self.op == "size":
            return True
        if self.op in ("sub", "truncdiv"):
            return self.op == "truncdiv" and _nonneg(self.a) and _nonneg(self.b)
        return all(_nonneg(v) for v in (self.a, self.b))


@dataclass(frozen=True)
class DeviceOf:
    """The device of ONNX tensor ``name`` at run time (``x.device``)."""

    name: str


@dataclass(frozen=True)
class SymbolicValue:
    """A small integer tensor known element by element: ints and :class:`Dim` s; ``scalar``
    for a 0-D tensor (one item)."""

    items: tuple
    scalar: bool = False

    @property
    def has_dims(self) -> bool:
        return any(isinstance(v, Dim) for v in self.items)

    def reference_tensor(self) -> str | None:
        """The name of a tensor one of the sizes is read from (for a device)."""
        for item in self.items:
            name = _reference(item)
            if name is not None:
                return name
        return None


def _reference(value: Any) -> str | None:
    if not isinstance(value, Dim):
        return None
    if value.op == "size":
        return value.a
    return _reference(value.a) or _reference(value.b)


def _nonneg(value: Any) -> bool:
    return value >= 0 if isinstance(value, int) else value.nonneg


def _store(ctx) -> dict[str, SymbolicValue]:
    store = getattr(ctx, "symbolic_values", None)
    if store is None:
        store = ctx.symbolic_values = {}
    return store


def symbolic_value(ctx, name: str) -> SymbolicValue | None:
    """What is known of integer tensor ``name``: a :class:`SymbolicValue` with at least one
    run-time :class:`Dim` (``None`` when the tensor is a plain constant or unknown)."""
    if not name or ctx.is_constant(name):
        return None
    value = _store(ctx).get(name)
    return value if value is not None and value.has_dims else None


def _known(ctx, name: str) -> SymbolicValue | None:
    """Symbolic or small constant integer value of ``name``."""
    if not name:
        return None
    value = ctx.constant(name)
    if isinstance(value, torch.Tensor):
        if value.dtype not in (torch.int64, torch.int32, torch.bool) or value.dim() > 1 or value.numel() > _MAX_LENGTH:
            return None
        cast = bool if value.dtype == torch.bool else int
        return SymbolicValue(tuple(cast(v) for v in value.reshape(-1).tolist()), scalar=value.dim() == 0)
    return _store(ctx).get(name)


# --- arithmetic on items ------------------------------------------------------------------------
def trunc_div(a, b):
    """Integer division rounding toward zero, as ONNX Div does on integers (a size expression
    that may be negative, such as ``(h - 7) // 4`` before clamping)."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b > 0) else -quotient


def _combine(op: str, a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int):
        if op == "floordiv":
            return a // b
        if op == "truncdiv":
            return trunc_div(a, b)
        return {"add": operator.add, "sub": operator.sub, "mul": operator.mul}[op](a, b)
    if op == "mul" and (a == 1 or b == 1):
        return b if a == 1 else a
    if op in ("add", "sub") and b == 0:
        return a
    if op == "add" and a == 0:
        return b
    if op in ("floordiv", "truncdiv") and b == 1:
        return a
    return Dim(op, a, b)


def _paired(left: SymbolicValue, right: SymbolicValue) -> list[tuple[Any, Any]] | None:
    """The items of two 1-D values side by side, a one-item value broadcast to the other's
    length; ``None`` when the lengths do not broadcast."""
    la, lb = list(left.items), list(right.items)
    if len(la) == 1 and len(lb) != 1:
        la = la * len(lb)
    elif len(lb) == 1 and len(la) != 1:
        lb = lb * len(la)
    if len(la) != len(lb):
        return None
    return list(zip(la, lb))


def _broadcast(op: str, left: SymbolicValue, right: SymbolicValue) -> SymbolicValue | None:
    pairs = _paired(left, right)
    if pairs is None:
        return None
    items = []
    for a, b in pairs:
        kind = op
        if op == "floordiv":
            if b == 0:
                return None
            # NOTE: ONNX Div truncates toward zero, which floor division equals for a >= 0, b > 0
            # (a size as divisor: ONNX and Python both fail on a zero).
            kind = "floordiv" if _nonneg(a) and (isinstance(b, Dim) and b.nonneg or isinstance(b, int) and b > 0) \
                else "truncdiv"
        items.append(_combine(kind, a, b))
    return SymbolicValue(tuple(items), scalar=left.scalar and right.scalar)


# --- propagation ---------------------------------------------------------------------------------
def _axes(node, ctx, input_index: int) -> list[int] | None:
    if node.opset >= 13 and node.op_type in ("Squeeze", "Unsqueeze"):
        return ctx.constant_ints(node.input(input_index)) if node.input(input_index) else None
    return node.attr_ints("axes")


def _shape(node, ctx) -> SymbolicValue | None:
    dims = ctx.shape(node.input(0))
    if dims is None:
        if (node.opset < 15 or (node.attr_int("start", 0) == 0 and node.attr_int("end", None) is None)) \
                and node.outputs[0]:
            # NOTE: the rank is unknown (an input of an op shape inference does not know): the
            # shape's entries are still x.size(i) for the indices a Gather picks.
            _unranked(ctx)[node.outputs[0]] = node.input(0)
        return None
    start = node.attr_int("start", 0) if node.opset >= 15 else 0
    end = node.attr_int("end", None) if node.opset >= 15 else None
    rank = len(dims)
    items = tuple(d if isinstance(d, int) else Dim("size", node.input(0), i) for i, d in enumerate(dims))
    return SymbolicValue(items[slice(start, end)]) if rank else None


def _unranked(ctx) -> dict[str, str]:
    """``{shape tensor: measured tensor}`` for Shape outputs of unknown length."""
    store = getattr(ctx, "symbolic_unranked", None)
    if store is None:
        store = ctx.symbolic_unranked = {}
    return store


def _gather(node, ctx) -> SymbolicValue | None:
    data = _known(ctx, node.input(0))
    indices = ctx.constant(node.input(1))
    source = _unranked(ctx).get(node.input(0))
    if data is None and source is not None and indices is not None and indices.dim() <= 1 \
            and node.attr_int("axis", 0) == 0:
        # NOTE: x.size(i) with a negative i counts from the end like the Gather; an index past
        # the rank raises there (as the Gather would be invalid).
        picked = tuple(Dim("size", source, int(i)) for i in indices.reshape(-1).tolist())
        return SymbolicValue(picked, scalar=indices.dim() == 0)
    if data is None or data.scalar or indices is None or node.attr_int("axis", 0) not in (0, -1):
        return None
    if indices.dim() > 1:
        return None
    size = len(data.items)
    picked = []
    for i in indices.reshape(-1).tolist():
        i = int(i) + size if int(i) < 0 else int(i)
        if not 0 <= i < size:
            return None
        picked.append(data.items[i])
    return SymbolicValue(tuple(picked), scalar=indices.dim() == 0)


def _slice(node, ctx) -> SymbolicValue | None:
    data = _known(ctx, node.input(0))
    source = _unranked(ctx).get(node.input(0))
    if (data is None or data.scalar) and source is None:
        return None
    if node.opset >= 10:
        starts, ends = ctx.constant_ints(node.input(1)), ctx.constant_ints(node.input(2))
        axes = ctx.constant_ints(node.input(3)) if node.input(3) else [0]
        steps = ctx.constant_ints(node.input(4)) if node.input(4) else [1]
    else:
        starts, ends, axes, steps = node.attr_ints("starts"), node.attr_ints("ends"), node.attr_ints("axes") or [0], [1]
    if None in (starts, ends, axes, steps) or len(starts) != 1 or axes[0] not in (0, -1) or steps[0] == 0:
        return None
    if data is None:  # a shape of unknown length: only spans that do not depend on the length
        start, end = starts[0], ends[0]
        if steps[0] != 1:
            return None
        if start >= 0 and 0 <= end < _HUGE:
            span = range(start, end)  # x.size(i) raises for an i past the rank: loud, not wrong
        elif start < 0 and (end >= _HUGE or end < 0):
            span = range(start, 0 if end >= _HUGE else end)
        else:
            return None
        if len(span) > _MAX_LENGTH:
            return None
        return SymbolicValue(tuple(Dim("size", source, i) for i in span))
    return SymbolicValue(tuple(data.items[slice(starts[0], ends[0], steps[0])]))


def _concat(node, ctx) -> SymbolicValue | None:
    if node.attr_int("axis", 0) not in (0, -1):
        return None
    items: list = []
    for name in node.inputs:
        if not name:
            continue
        part = _known(ctx, name)
        if part is None or part.scalar:
            return None
        items.extend(part.items)
    return SymbolicValue(tuple(items))


def _unsqueeze(node, ctx) -> SymbolicValue | None:
    data = _known(ctx, node.input(0))
    if data is None or not data.scalar or _axes(node, ctx, 1) not in ([0], [-1]):
        return None
    return SymbolicValue(data.items)


def _squeeze(node, ctx) -> SymbolicValue | None:
    data = _known(ctx, node.input(0))
    if data is None or data.scalar or len(data.items) != 1 or _axes(node, ctx, 1) not in (None, [0], [-1]):
        return None
    return SymbolicValue(data.items, scalar=True)


def _reshape(node, ctx) -> SymbolicValue | None:
    data = _known(ctx, node.input(0))
    target = ctx.constant_ints(node.input(1)) if node.opset >= 5 else node.attr_ints("shape")
    if data is None or target is None or len(target) > 1:
        return None
    if not target:
        return SymbolicValue(data.items, scalar=True) if len(data.items) == 1 else None
    if target[0] in (-1, len(data.items)) or (target[0] == 0 and not data.scalar):
        return SymbolicValue(data.items)
    return None


def _same(node, ctx) -> SymbolicValue | None:
    return _known(ctx, node.input(0))


def _cast(node, ctx) -> SymbolicValue | None:
    return _known(ctx, node.input(0)) if node.attr_int("to") in _INT_TYPES else None


def _binary(op: str):
    def propagate_binary(node, ctx) -> SymbolicValue | None:
        left, right = _known(ctx, node.input(0)), _known(ctx, node.input(1))
        if left is None or right is None:
            return None
        return _broadcast(op, left, right)

    return propagate_binary


def _equal(node, ctx) -> SymbolicValue | None:
    """Equal of known values: a size is never equal to a negative number (the ``-1`` of
    ``Where(Equal(shape, -1), 1, shape)`` that exporters write for ``expand(-1, ...)``)."""
    left, right = _known(ctx, node.input(0)), _known(ctx, node.input(1))
    if left is None or right is None:
        return None
    pairs = _paired(left, right)
    if pairs is None:
        return None
    result = []
    for a, b in pairs:
        if isinstance(a, int) and isinstance(b, int):
            result.append(a == b)
        elif a == b:
            result.append(True)
        elif (isinstance(a, int) and a < 0 and _nonneg(b)) or (isinstance(b, int) and b < 0 and _nonneg(a)):
            result.append(False)
        else:
            return None
    return SymbolicValue(tuple(result), scalar=left.scalar and right.scalar)


def _where(node, ctx) -> SymbolicValue | None:
    cond, left, right = (_known(ctx, node.input(i)) for i in range(3))
    if cond is None or left is None or right is None or any(isinstance(c, Dim) for c in cond.items):
        return None
    size = max(len(cond.items), len(left.items), len(right.items))
    parts = [list(v.items) * size if len(v.items) == 1 else list(v.items) for v in (cond, left, right)]
    if any(len(p) != size for p in parts):
        return None
    return SymbolicValue(tuple(a if c else b for c, a, b in zip(*parts)),
                         scalar=cond.scalar and left.scalar and right.scalar)


def _size(node, ctx) -> SymbolicValue | None:
    shape = _shape(node, ctx)
    if shape is None:
        return None
    total: Any = 1
    for item in shape.items:
        total = _combine("mul", total, item)
    return SymbolicValue((total,), scalar=True)


_RULES = {
    "Shape": _shape, "Size": _size, "Gather": _gather, "Slice": _slice, "Concat": _concat,
    "Unsqueeze": _unsqueeze, "Squeeze": _squeeze, "Reshape": _reshape, "Identity": _same, "Cast": _cast,
    "Add": _binary("add"), "Sub": _binary("sub"), "Mul": _binary("mul"), "Div": _binary("floordiv"),
    "Equal": _equal, "Where": _where,
}


def propagate(node, ctx) -> torch.Tensor | None:
    """Record what is known symbolically of ``node``'s output (called for every node).  Returns
    the output's value when it turns out fully known (the static entries of a partly dynamic
    shape: ``Gather(Shape(x), 1)`` with dim 1 static), for the assembler to fold."""
    if node.proto.domain not in ("", "ai.onnx") or len(node.outputs) != 1:
        return None
    rule = _RULES.get(node.op_type)
    out = node.outputs[0]
    if rule is None or not out or ctx.is_constant(out):
        return None
    elem = ctx.elem_type(out)
    if node.op_type in ("Shape", "Size"):
        elem = onnx.TensorProto.INT64
    if elem not in _INT_TYPES and not (elem == onnx.TensorProto.BOOL and node.op_type in ("Equal", "Where")):
        return None  # float arithmetic, or a type shape inference could not tell
    if any(name and not ctx.is_constant(name) and name not in _store(ctx) and name not in _unranked(ctx)
           for name in node.inputs[:1]) and node.op_type not in ("Shape", "Size"):
        return None  # the data input is neither known nor symbolic
    try:
        value = rule(node, ctx)
    except Exception as exc:  # noqa: BLE001 - tracking is an optimisation, never a failure
        logger.debug("no symbolic value for %s: %s", node.describe(), exc)
        return None
    if value is None or len(value.items) > _MAX_LENGTH:
        return None
    if not value.has_dims:
        dtype = {onnx.TensorProto.INT64: torch.int64, onnx.TensorProto.INT32: torch.int32}.get(elem, torch.bool)
        return torch.tensor(value.items[0] if value.scalar else list(value.items), dtype=dtype)
    _store(ctx)[out] = value
    return None


# --- turning Dims into fx nodes --------------------------------------------------------------------
def has_symbolic(value: Any) -> bool:
    if isinstance(value, (Dim, DeviceOf)):
        return True
    if isinstance(value, (list, tuple)):
        return any(has_symbolic(v) for v in value)
    if isinstance(value, dict):
        return any(has_symbolic(v) for v in value.values())
    return False


def _input_dims(assembler) -> dict[str, tuple[str, int]]:
    """``{symbol: (graph input, axis)}`` for the symbolic dims of the graph's inputs."""
    found = assembler.__dict__.get("_symbolic_input_dims")
    if found is None:
        found = {}
        for value in assembler.graph.input:
            if value.name not in assembler.env:
                continue
            for axis, dim in enumerate(assembler.ctx.shape(value.name) or []):
                if isinstance(dim, str) and dim and not dim.startswith("unk__"):
                    found.setdefault(dim, (value.name, axis))
        assembler._symbolic_input_dims = found
    return found


_FX_OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "floordiv": operator.floordiv,
           "truncdiv": trunc_div}


def materialize(assembler, value: Any) -> Any:
    """``value`` with every :class:`Dim` / :class:`DeviceOf` replaced by an fx node of
    ``assembler``'s graph (``x.size(0)``, ``a * b``, ``x.device``), created once per graph."""
    if isinstance(value, tuple):
        return tuple(materialize(assembler, v) for v in value)
    if isinstance(value, list):
        return [materialize(assembler, v) for v in value]
    if isinstance(value, dict):
        return {k: materialize(assembler, v) for k, v in value.items()}
    if not isinstance(value, (Dim, DeviceOf)):
        return value
    cache = assembler.__dict__.setdefault("_symbolic_nodes", {})
    if value in cache:
        return cache[value]
    from onnx2torch.assemble import sanitize  # noqa: PLC0415 - the assembler imports this module

    graph = assembler.fx_graph
    if isinstance(value, DeviceOf):
        node = graph.create_node("call_function", getattr, (assembler.value(value.name), "device"), {},
                                 name=f"{sanitize(value.name)}_device")
    elif value.op == "size":
        dims = assembler.ctx.shape(value.a)
        symbol = dims[value.b] if dims is not None and value.b < len(dims) else None
        named = _input_dims(assembler).get(symbol) if isinstance(symbol, str) else None
        if named is not None and named != (value.a, value.b):
            # NOTE: a dim that shape inference names after a graph input's symbolic dim (``batch``)
            # is that input's size: read once from the input.
            node = materialize(assembler, Dim("size", *named))
            cache[value] = node
            return node
        hint = sanitize(symbol, "dim") if named is not None else "size"
        node = graph.create_node("call_method", "size", (assembler.value(value.a), value.b), {}, name=hint)
    else:
        a, b = materialize(assembler, value.a), materialize(assembler, value.b)
        node = graph.call_function(_FX_OPS[value.op], (a, b))
    cache[value] = node
    return node
