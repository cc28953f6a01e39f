"""Partial conversion: the part of a graph that computes some tensors from some others.

``extract_part(model, inputs=[...], outputs=[...])`` returns a model whose graph inputs are
``inputs`` (tensor names of the original model: graph inputs, intermediate tensors, even
initializers) and whose outputs are ``outputs``, holding only the nodes on the way.  Types of
intermediate tensors come from shape inference; a name that is not in the model, or an output
that needs a graph input not among ``inputs``, is a clear error.  ``inputs=None`` means the
model's own inputs (those the part uses), ``outputs=None`` its own outputs.
"""
from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable

import onnx

from onnx2torch.errors import ConversionError
from onnx2torch.simplify import empty_model_like

__all__ = ["extract_part", "prepare_model"]

logger = logging.getLogger(__name__)


def _unique(names: Iterable[str], what: str) -> list[str]:
    if isinstance(names, str):
        names = [names]
    result: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name:
            raise ConversionError(f"{what} must be tensor names (non-empty strings), got {name!r}")
        if name not in result:
            result.append(name)
    return result


def _subgraph_reads(node: onnx.NodeProto) -> list[str]:
    """Outer-scope names the If / Loop / Scan bodies of ``node`` read."""
    from onnx2torch.assemble import outer_scope_names  # noqa: PLC0415

    names: list[str] = []
    for attr in node.attribute:
        subs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for sub in subs:
            names.extend(outer_scope_names(sub))
    return names


def _not_found(name: str, known: set[str], role: str) -> ConversionError:
    close = difflib.get_close_matches(name, sorted(known), n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ConversionError(f"{role} '{name}' is not a tensor of the model (not a graph input, initializer or node output){hint}")


def _types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    from onnx2torch.assemble import infer_value_info  # noqa: PLC0415

    return infer_value_info(model)


def extract_part(
    model: onnx.ModelProto, inputs: Iterable[str] | None = None, outputs: Iterable[str] | None = None
) -> onnx.ModelProto:
    """The sub-model computing ``outputs`` from ``inputs`` (names from this model)."""
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    sparse = {t.values.name: t for t in graph.sparse_initializer}
    graph_inputs = [v for v in graph.input if v.name not in initializers]
    producer: dict[str, int] = {}
    for index, node in enumerate(graph.node):
        for out in node.output:
            if out:
                producer[out] = index
    known = set(producer) | set(initializers) | set(sparse) | {v.name for v in graph_inputs}

    explicit_inputs = inputs is not None
    input_names = _unique(inputs, "inputs") if explicit_inputs else [v.name for v in graph_inputs]
    output_names = _unique(outputs, "outputs") if outputs is not None else [o.name for o in graph.output]
    if not output_names:
        raise ConversionError("outputs must name at least one tensor")
    for name in input_names:
        if name not in known:
            raise _not_found(name, known, "input")
    for name in output_names:
        if name not in known:
            raise _not_found(name, known, "output")

    boundary = set(input_names)
    needed_nodes: set[int] = set()
    needed_inits: set[str] = set()
    used_inputs: set[str] = set()
    missing: dict[str, str] = {}  # graph input not among `inputs` -> an output that needs it
    for output in output_names:
        stack, seen = [output], set()
        while stack:
            name = stack.pop()
            if not name or name in seen:
                continue
            seen.add(name)
            if name in boundary:
                used_inputs.add(name)
            elif name in initializers or name in sparse:
                needed_inits.add(name)
            elif name in producer:
                index = producer[name]
                if index not in needed_nodes:
                    needed_nodes.add(index)
                node = graph.node[index]
                stack.extend(node.input)
                stack.extend(_subgraph_reads(node))
            else:
                missing.setdefault(name, output)
    if missing:
        lines = [f"'{out}' needs '{name}'" for name, out in missing.items()]
        raise ConversionError(
            f"the requested outputs cannot be computed from the inputs {input_names}: "
            + "; ".join(lines)
            + " (a graph input that is not among the inputs; add it to inputs, or cut later)"
        )
    for index in needed_nodes:
        clash = [o for o in graph.node[index].output if o in boundary]
        if clash:
            node = graph.node[index]
            raise ConversionError(
                f"input '{clash[0]}' is an output of node '{node.name or node.op_type}', which the part also "
                f"needs for its other outputs {[o for o in node.output if o and o not in boundary]}; choose "
                "inputs that cut the graph between nodes"
            )

    if not explicit_inputs:  # the model's own inputs: only those the part reads, in model order
        input_names = [n for n in input_names if n in used_inputs]

    types = _types(model)
    by_name = {v.name: v for v in list(graph.input) + list(graph.value_info) + list(graph.output)}

    def typed(name: str, role: str) -> onnx.ValueInfoProto:
        if name in {v.name for v in graph_inputs}:
            return by_name[name]
        if name in initializers:
            tensor = initializers[name]
            return onnx.helper.make_tensor_value_info(name, tensor.data_type, list(tensor.dims))
        tp = types.get(name) or (by_name[name].type if name in by_name else None)
        if tp is None or (tp.HasField("tensor_type") and tp.tensor_type.elem_type == 0):
            if role == "output":
                return onnx.ValueInfoProto(name=name)
            raise ConversionError(
                f"cannot tell the type of input '{name}': shape inference could not infer it (is it produced by "
                "a custom-domain op?); choose another input"
            )
        value = onnx.ValueInfoProto(name=name)
        value.type.CopyFrom(tp)
        return value

    part = empty_model_like(model)
    new = part.graph
    new.name = graph.name
    new.input.extend(typed(n, "input") for n in input_names)
    new.output.extend(by_name[n] if n in {o.name for o in graph.output} else typed(n, "output") for n in output_names)
    new.node.extend(graph.node[i] for i in sorted(needed_nodes))
    new.initializer.extend(t for name, t in initializers.items() if name in needed_inits and name not in boundary)
    new.sparse_initializer.extend(t for name, t in sparse.items() if name in needed_inits and name not in boundary)
    inner = {o for i in needed_nodes for o in graph.node[i].output} - set(output_names)
    new.value_info.extend(v for v in graph.value_info if v.name in inner)
    logger.info("extracted %d of %d nodes computing %s from %s", len(needed_nodes), len(graph.node),
                output_names, input_names)
    return part


def prepare_model(
    model: onnx.ModelProto,
    *,
    inputs: Iterable[str] | None = None,
    outputs: Iterable[str] | None = None,
    input_shapes: dict[str, list[int]] | None = None,
) -> tuple[onnx.ModelProto, list[str]]:
    """The conversion's view of the model: the part from ``inputs`` to ``outputs`` (when given),
    re-shaped where ``input_shapes`` changes a frozen dimension; and one line per change made."""
    from onnx2torch.rebatch import rebatch_model  # noqa: PLC0415

    notes = []
    if inputs is not None or outputs is not None:
        before = len(model.graph.node)
        model = extract_part(model, inputs, outputs)
        notes.append(
            f"converting the part computing {[o.name for o in model.graph.output]} from "
            f"{[i.name for i in model.graph.input]}: {len(model.graph.node)} of {before} nodes"
        )
    rebatched = rebatch_model(model, input_shapes)
    if rebatched.inputs:
        notes.append(rebatched.describe())
    return rebatched.model, notes
