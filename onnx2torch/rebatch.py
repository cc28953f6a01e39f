"""Re-batching: convert a model exported with a frozen batch (or other dimension) at another size.

When ``input_shapes`` asks for a size that differs from a *static* input dimension of the model,
the model is rewritten before simplification:

1. the graph inputs get the new shapes; stale intermediate shapes are forgotten;
2. every ``Reshape`` whose target is a constant and whose input changes shape is re-targeted:
   the target is matched against the input dimension by dimension (blocks of equal element
   count), the block holding the changed dimension takes the new size, and the entry is written
   as ``0`` (copy the input's dimension) or ``-1`` where that is exact, else as the new literal.
   A reshape that would have to split a changed dimension over several outputs (or drops it)
   cannot be re-targeted provably and raises, naming the node;
3. shape inference then checks the whole model at the new shapes; a node that still pins the
   old size (a ``Concat`` with a constant of the old batch, say) raises, naming that node.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from onnx2torch.errors import ConversionError
from onnx2torch.simplify import restore_initializers, strip_large_initializers

__all__ = ["RebatchResult", "frozen_dims_changed", "rebatch_model"]

logger = logging.getLogger(__name__)


@dataclass
class RebatchResult:
    """The rewritten model and what was changed."""

    model: onnx.ModelProto
    #: input name -> (old dims, new dims) for the inputs whose static dims changed
    inputs: dict[str, tuple[list, list[int]]] = field(default_factory=dict)
    #: Reshape node name -> (old target, new target)
    reshapes: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"{name} {old} -> {new}" for name, (old, new) in self.inputs.items()]
        text = "re-shaped input(s) " + ", ".join(parts)
        if self.reshapes:
            text += "; re-targeted Reshape " + ", ".join(f"'{n}' {a} -> {b}" for n, (a, b) in self.reshapes.items())
        return text


def _graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in initializers]


def _dims(value: onnx.ValueInfoProto | onnx.TypeProto) -> list[int | str | None] | None:
    tensor_type = value.type.tensor_type if isinstance(value, onnx.ValueInfoProto) else value.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor_type.shape.dim]


def frozen_dims_changed(model: onnx.ModelProto, input_shapes: dict[str, list[int]] | None) -> dict[str, tuple[list, list[int]]]:
    """``{input: (old dims, new dims)}`` for inputs whose *static* dims ``input_shapes`` changes."""
    changed = {}
    for value in _graph_inputs(model):
        if not input_shapes or value.name not in input_shapes:
            continue
        old, new = _dims(value), [int(d) for d in input_shapes[value.name]]
        if old is None:
            continue
        if len(old) != len(new):
            raise ConversionError(
                f"input_shapes gives input '{value.name}' rank {len(new)} ({new}), but the model's input has "
                f"rank {len(old)} ({old})"
            )
        if any(isinstance(o, int) and o != n for o, n in zip(old, new)):
            changed[value.name] = (old, new)
    return changed


def _infer(model: onnx.ModelProto, strict: bool = False) -> dict[str, list[int | str | None]]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=strict, data_prop=True)
    shapes = {}
    for value in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = _dims(value)
        if dims is not None:
            shapes[value.name] = dims
    return shapes


def _static(dims) -> bool:
    return dims is not None and all(isinstance(d, int) and not isinstance(d, bool) for d in dims)


def _resolve(target: list[int], dims: list[int], allowzero: bool) -> list[int] | None:
    """The output shape of Reshape(dims -> target) at static ``dims``; ``None`` if invalid."""
    out = [dims[i] if t == 0 and not allowzero and i < len(dims) else t for i, t in enumerate(target)]
    total = math.prod(dims)
    if out.count(-1) > 1:
        return None
    if -1 in out:
        rest = math.prod(d for d in out if d != -1)
        if rest == 0 or total % rest:
            return None
        out[out.index(-1)] = total // rest
    return out if math.prod(out) == total else None


class _Pinned(Exception):
    """A Reshape that cannot carry the changed dimension."""


def _new_output_shape(old_in: list[int], new_in: list[int], old_out: list[int]) -> list[int]:
    """Where the changed input dims go: match input and output dims in blocks of equal element
    count; a changed block takes its new element count in its single output dim."""
    new_out = list(old_out)
    i = j = 0
    unit_skipped_before = False
    while i < len(old_in) or j < len(old_out):
        if i < len(old_in) and old_in[i] == 1 and new_in[i] == 1:
            i += 1  # an inert unit dim
            continue
        if i < len(old_in) and old_in[i] == 1 and j < len(old_out) and old_out[j] == 1:
            new_out[j] = new_in[i]  # a changed unit dim (the batch 1) lands on the output's unit dim
            i, j = i + 1, j + 1
            unit_skipped_before = False
            continue
        if j < len(old_out) and old_out[j] == 1:
            j += 1  # a unit dim the reshape inserts
            unit_skipped_before = True
            continue
        if i >= len(old_in) or j >= len(old_out):
            raise _Pinned("the dimensions do not line up")
        block_in, block_out = [i], [j]
        p_in, p_out = old_in[i], old_out[j]
        i, j = i + 1, j + 1
        while p_in != p_out:
            if p_in < p_out and i < len(old_in):
                p_in *= old_in[i]
                block_in.append(i)
                i += 1
            elif j < len(old_out):
                p_out *= old_out[j]
                block_out.append(j)
                j += 1
            else:
                raise _Pinned("the dimensions do not line up")
        p_new = math.prod(new_in[k] for k in block_in)
        if p_new == p_in:
            unit_skipped_before = False
            continue
        after_unit = j < len(old_out) and old_out[j] == 1 and (i >= len(old_in) or old_in[i] != 1)
        if len(block_out) != 1 or unit_skipped_before or after_unit:
            raise _Pinned(
                f"input dims {[old_in[k] for k in block_in]} -> {[new_in[k] for k in block_in]} would be "
                f"split over output dims {[old_out[k] for k in block_out]}"
                + (" next to a unit dim" if len(block_out) == 1 else "")
                + "; where the new size goes is ambiguous"
            )
        new_out[block_out[0]] = p_new
    return new_out


def _new_target(target: list[int], new_in: list[int], new_out: list[int], allowzero: bool) -> list[int]:
    """A Reshape target giving ``new_out`` from ``new_in``, keeping 0 / -1 entries where they
    still mean the right thing and writing changed entries as 0 / -1 where exact."""
    result = []
    for q, (t, o) in enumerate(zip(target, new_out)):
        if t == -1:
            result.append(-1)
        elif t == 0 and not allowzero:
            result.append(0 if q < len(new_in) and new_in[q] == o else o)
        else:
            result.append(t if t == o else None)  # None: a literal that must change
    for q, entry in enumerate(result):
        if entry is None:
            if not allowzero and q < len(new_in) and new_in[q] == new_out[q]:
                result[q] = 0
            elif -1 not in result:
                result[q] = -1
            else:
                result[q] = new_out[q]
    return result


def _reshape_targets(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Constant int64 tensors a Reshape may read: initializers and Constant nodes."""
    values = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attr in node.attribute:
                if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                    values[node.output[0]] = attr.t
                elif attr.name == "value_ints":
                    values[node.output[0]] = numpy_helper.from_array(np.array(list(attr.ints), np.int64), node.output[0])
    return values


def _set_target(graph: onnx.GraphProto, node: onnx.NodeProto, new_target: list[int]) -> None:
    """Point the Reshape at a new int64 initializer holding ``new_target``."""
    base = f"{node.input[1]}_rebatched"
    name, k = base, 1
    taken = {t.name for t in graph.initializer} | {o for n in graph.node for o in n.output}
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    graph.initializer.append(numpy_helper.from_array(np.array(new_target, np.int64), name))
    node.input[1] = name


def _forget_shapes(graph: onnx.GraphProto) -> None:
    """Keep each intermediate / output tensor's type and rank, drop its (stale) dims."""
    for value in list(graph.value_info) + list(graph.output):
        tensor_type = value.type.tensor_type
        if value.type.HasField("tensor_type") and tensor_type.HasField("shape"):
            for dim in tensor_type.shape.dim:
                dim.Clear()


def _node_label(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"<{node.op_type} #{index}, output '{node.output[0] if node.output else ''}'>"


def rebatch_model(model: onnx.ModelProto, input_shapes: dict[str, list[int]] | None) -> RebatchResult:
    """The model with its frozen input dims changed to ``input_shapes`` (see the module doc).
    Returns the model itself when no static dim changes."""
    changed = frozen_dims_changed(model, input_shapes)
    if not changed:
        return RebatchResult(model)
    try:
        old_shapes = _infer(strip_large_initializers(model)[0])
    except Exception as exc:  # noqa: BLE001 - inference is advisory here
        logger.info("shape inference at the original shapes failed (%s)", exc)
        old_shapes = {}
    original_inputs = {v.name for v in model.graph.input}
    work, stash = strip_large_initializers(model)
    if work is model:
        work = onnx.ModelProto()
        work.CopyFrom(model)
    graph = work.graph
    for value in graph.input:
        if value.name in changed:
            for dim, size in zip(value.type.tensor_type.shape.dim, changed[value.name][1]):
                dim.Clear()
                dim.dim_value = size
    _forget_shapes(graph)
    result = RebatchResult(work, inputs=changed)
    constants = _reshape_targets(graph)
    new_shapes = _infer(work)
    for index, node in enumerate(graph.node):
        if node.op_type != "Reshape" or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
            continue
        old_in, new_in = old_shapes.get(node.input[0]), new_shapes.get(node.input[0])
        if not (_static(old_in) and _static(new_in)) or old_in == new_in or node.input[1] not in constants:
            continue
        target = [int(v) for v in numpy_helper.to_array(constants[node.input[1]]).reshape(-1)]
        allowzero = any(a.name == "allowzero" and a.i for a in node.attribute)
        label = _node_label(node, index)
        old_out = _resolve(target, old_in, allowzero)
        if old_out is None:
            continue  # not a valid reshape at the original shapes either; leave it to the checks
        try:
            new_out = _new_output_shape(old_in, new_in, old_out)
        except _Pinned as exc:
            raise ConversionError(
                f"cannot change {_describe(changed)}: Reshape node '{label}' pins it — it reshapes "
                f"{old_in} to the constant target {target} ({exc}); re-export the model with a dynamic "
                "dimension, or convert it at its original shape"
            ) from None
        new_target = _new_target(target, new_in, new_out, allowzero)
        if new_target == target:
            continue
        if _resolve(new_target, new_in, allowzero) != new_out:  # pragma: no cover - a safety net
            raise ConversionError(f"cannot re-target Reshape node '{label}' from {target} for input {new_in}")
        _set_target(graph, node, new_target)
        result.reshapes[label] = (target, new_target)
        new_shapes = _infer(work)  # downstream shapes follow the re-targeted reshape
    _check(model, work, changed)
    inferred = onnx.shape_inference.infer_shapes(work, data_prop=True)
    del graph.value_info[:]
    graph.value_info.extend(inferred.graph.value_info)
    for out, inferred_out in zip(graph.output, inferred.graph.output):
        if inferred_out.type.tensor_type.HasField("shape"):
            out.type.CopyFrom(inferred_out.type)
    result.model = restore_initializers(work, stash, original_inputs)
    if result.reshapes:
        logger.info("%s", result.describe())
    return result


def _describe(changed: dict[str, tuple[list, list[int]]]) -> str:
    return ", ".join(f"input '{name}' from {old} to {new}" for name, (old, new) in changed.items())


def _check(original: onnx.ModelProto, rewritten: onnx.ModelProto, changed) -> None:
    """Strict shape inference at the new shapes, when it passes at the original ones: the first
    node that still pins the old size is named."""
    try:
        onnx.shape_inference.infer_shapes(strip_large_initializers(original)[0], strict_mode=True, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - e.g. custom-domain ops: nothing to compare against
        logger.info("strict shape inference fails on the original model too (%s); not checking", str(exc)[:200])
        return
    try:
        onnx.shape_inference.infer_shapes(rewritten, strict_mode=True, data_prop=True)
    except Exception as exc:  # noqa: BLE001
        detail = " ".join(str(exc).split())
        raise ConversionError(
            f"cannot change {_describe(changed)}: a node pins the original size — {detail}; re-export the "
            "model with a dynamic dimension, or convert it at its original shape"
        ) from None
