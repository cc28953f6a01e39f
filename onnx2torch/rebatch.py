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
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=strict, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - inference is advisory; unknown shapes get measured
        if strict:
            raise
        logger.info("shape inference failed (%s)", str(exc)[:200])
        return {}
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
        changed_in = [k for k in block_in if new_in[k] != old_in[k]]
        if (len(block_out) > 1 and changed_in == [block_in[0]] and old_in[block_in[0]] == 1
                and not unit_skipped_before):
            # NOTE: a unit (batch-1) dim leading its block: row-major order makes the batched
            # reshape the per-sample reshapes stacked along the block's leading output dim.
            new_out[block_out[0]] = old_out[block_out[0]] * new_in[block_in[0]]
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
    old_shapes = _infer(strip_large_initializers(model)[0])
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
    probes = _Probes(model, work, stash, original_inputs, changed)
    for index, node in enumerate(graph.node):
        if node.op_type != "Reshape" or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
            continue
        if node.input[1] not in constants:
            continue
        label = _node_label(node, index)
        old_in, new_in = old_shapes.get(node.input[0]), new_shapes.get(node.input[0])
        if not _static(old_in):  # shape inference lost track: ask onnxruntime
            old_in = probes.old(node.input[0])
        if _static(old_in) and not _static(new_in):
            new_in = probes.new(node.input[0], label)
        if not (_static(old_in) and _static(new_in)) or old_in == new_in:
            continue
        target = [int(v) for v in numpy_helper.to_array(constants[node.input[1]]).reshape(-1)]
        allowzero = any(a.name == "allowzero" and a.i for a in node.attribute)
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
        probes.forget_new()
    _check(model, work, changed)
    try:
        inferred = onnx.shape_inference.infer_shapes(work, data_prop=True)
    except Exception:  # noqa: BLE001 - keep the rank-only value infos
        inferred = None
    if inferred is not None:
        del graph.value_info[:]
        graph.value_info.extend(inferred.graph.value_info)
        for out, inferred_out in zip(graph.output, inferred.graph.output):
            if inferred_out.type.tensor_type.HasField("shape"):
                out.type.CopyFrom(inferred_out.type)
    result.model = restore_initializers(work, stash, original_inputs)
    if result.reshapes:
        logger.info("%s", result.describe())
    return result


class _Probes:
    """Shapes shape inference cannot tell, measured by running onnxruntime on random inputs: at
    the original shapes (once, every Reshape input) and at the new shapes (the part of the
    re-targeted model computing one tensor; forgotten after each re-targeting)."""

    def __init__(self, original: onnx.ModelProto, work: onnx.ModelProto, stash, original_inputs: set[str], changed):
        self.original, self.work, self.stash = original, work, stash
        self.original_inputs, self.changed = original_inputs, changed
        self._old: dict[str, list[int] | None] | None = None
        self._new: dict[str, list[int]] = {}

    def old(self, name: str) -> list[int] | None:
        if self._old is None:  # one run for every Reshape input, when the whole model runs
            wanted = [n.input[0] for n in self.original.graph.node if n.op_type == "Reshape" and n.input]
            try:
                self._old = self._run(self.original, wanted)
            except Exception as exc:  # noqa: BLE001 - e.g. a custom op elsewhere: measure parts
                logger.info("onnxruntime cannot run the whole original model (%s)", str(exc)[:200])
                self._old = {}
        if name not in self._old:
            from onnx2torch.extract import extract_part  # noqa: PLC0415

            try:
                self._old.update(self._run(extract_part(self.original, None, [name]), [name]))
            except Exception as exc:  # noqa: BLE001 - no measurement: the reshape is left alone
                logger.info("cannot measure the shape of '%s' (%s)", name, str(exc)[:200])
                self._old[name] = None
        return self._old[name]

    def new(self, name: str, label: str) -> list[int]:
        if name not in self._new:
            from onnx2torch.extract import extract_part  # noqa: PLC0415

            weighted = onnx.ModelProto()
            weighted.CopyFrom(self.work)
            weighted = restore_initializers(weighted, dict(self.stash), self.original_inputs)
            try:
                self._new.update(self._run(extract_part(weighted, None, [name]), [name]))
            except Exception as exc:  # noqa: BLE001
                detail = " ".join(str(exc).split())[:600]
                raise ConversionError(
                    f"cannot change {_describe(self.changed)}: the model does not run at the new shape up to "
                    f"Reshape node '{label}' — {detail}; re-export the model with a dynamic dimension, or "
                    "convert it at its original shape"
                ) from None
        return self._new[name]

    def forget_new(self) -> None:
        self._new.clear()

    @staticmethod
    def _run(model: onnx.ModelProto, names: list[str]) -> dict[str, list[int]]:
        from onnx2torch.verify import make_inputs, run_onnxruntime  # noqa: PLC0415

        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        del probe.graph.output[:]
        probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in dict.fromkeys(names))
        values = run_onnxruntime(probe, make_inputs(probe))
        return {o.name: list(np.shape(v)) for o, v in zip(probe.graph.output, values)}


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
