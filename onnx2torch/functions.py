"""Expansion of operators that ONNX defines as functions of other operators.

Many newer operators (Celu, Range, MeanVarianceNormalization, ...) carry a function body in
their schema.  An operator with no converter of its own is replaced by that body, so it is
converted exactly as the spec composes it.  Model-local functions (dynamo exports) are inlined
with onnx's own inliner before conversion.
"""
from __future__ import annotations

import itertools
import logging

import onnx
from onnx import AttributeProto

__all__ = ["expand_schema_function", "has_schema_function", "inline_local_functions"]

logger = logging.getLogger(__name__)

_counter = itertools.count()


def inline_local_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its local functions inlined (unchanged when it has none)."""
    if not model.functions:
        return model
    import onnx.inliner  # noqa: PLC0415

    return onnx.inliner.inline_local_functions(model)


def _schema(op_type: str, opset: int, domain: str):
    try:
        return onnx.defs.get_schema(op_type, opset, domain)
    except Exception:  # noqa: BLE001 - no schema: a custom op
        return None


def _best(versions, opset: int) -> int | None:
    usable = [v for v in versions if v <= opset]
    return max(usable) if usable else None


def has_schema_function(op_type: str, opset: int, domain: str) -> bool:
    schema = _schema(op_type, opset, domain)
    if schema is None:
        return False
    return _best(list(schema.function_opset_versions) + list(schema.context_dependent_function_opset_versions), opset) is not None


def _function_proto(node: onnx.NodeProto, opset: int, input_types: list[onnx.TypeProto | None]) -> onnx.FunctionProto | None:
    schema = _schema(node.op_type, opset, node.domain)
    if schema is None:
        return None
    function = onnx.FunctionProto()
    version = _best(schema.function_opset_versions, opset)
    if version is not None:
        function.ParseFromString(schema.get_function_with_opset_version(version))
        return function
    version = _best(schema.context_dependent_function_opset_versions, opset)
    if version is None or any(t is None for t in input_types):
        return None
    data = schema.get_context_dependent_function_with_opset_version(
        version, node.SerializeToString(), [t.SerializeToString() for t in input_types])
    if not data:
        return None
    function.ParseFromString(data)
    return function


def _substitute_attributes(node: onnx.NodeProto, values: dict[str, AttributeProto]) -> None:
    kept = []
    for attr in node.attribute:
        if attr.ref_attr_name:
            if attr.ref_attr_name in values:
                new = AttributeProto()
                new.CopyFrom(values[attr.ref_attr_name])
                new.name = attr.name
                kept.append(new)
            # an unset reference means: the attribute is absent
        else:
            kept.append(attr)
    del node.attribute[:]
    node.attribute.extend(kept)


def expand_schema_function(
    node: onnx.NodeProto, opset: int, input_types: list[onnx.TypeProto | None]
) -> tuple[list[onnx.NodeProto], dict[str, int]] | None:
    """The nodes of the schema function that defines ``node`` (renamed into the graph's
    namespace) and the opsets they use, or ``None`` when the op has no usable function body."""
    function = _function_proto(node, opset, input_types)
    if function is None or not function.node:
        return None
    prefix = f"{node.name or node.op_type}__fn{next(_counter)}__"
    rename = {"": ""}
    for formal, actual in zip(function.input, node.input):
        rename[formal] = actual
    for formal in function.input[len(node.input):]:
        rename[formal] = ""
    for formal, actual in zip(function.output, node.output):
        rename[formal] = actual
    values = {a.name: a for a in function.attribute_proto}
    values.update({a.name: a for a in node.attribute})
    nodes = []
    for index, body_node in enumerate(function.node):
        new = onnx.NodeProto()
        new.CopyFrom(body_node)
        new.name = f"{prefix}{body_node.name or body_node.op_type}_{index}"
        for i, name in enumerate(new.input):
            new.input[i] = rename.setdefault(name, prefix + name)
        for i, name in enumerate(new.output):
            new.output[i] = rename.setdefault(name, prefix + name)
        _substitute_attributes(new, values)
        nodes.append(new)
    opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in function.opset_import}
    return nodes, opsets
