"""A typed view of one ONNX node: its inputs, outputs and attributes with the schema's defaults."""
from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np
import onnx
from onnx import AttributeProto, numpy_helper

from onnx2torch.errors import ConversionError

__all__ = ["OnnxNode", "decode_attribute"]

logger = logging.getLogger(__name__)

_MISSING = object()


def decode_attribute(attr: AttributeProto) -> Any:
    """An attribute's value as Python: ints, floats, str, lists, numpy arrays or a GraphProto."""
    kind = attr.type
    if kind == AttributeProto.INT:
        return int(attr.i)
    if kind == AttributeProto.FLOAT:
        return float(attr.f)
    if kind == AttributeProto.STRING:
        return attr.s.decode("utf-8", errors="replace")
    if kind == AttributeProto.INTS:
        return [int(v) for v in attr.ints]
    if kind == AttributeProto.FLOATS:
        return [float(v) for v in attr.floats]
    if kind == AttributeProto.STRINGS:
        return [s.decode("utf-8", errors="replace") for s in attr.strings]
    if kind == AttributeProto.TENSOR:
        return numpy_helper.to_array(attr.t)
    if kind == AttributeProto.TENSORS:
        return [numpy_helper.to_array(t) for t in attr.tensors]
    if kind == AttributeProto.GRAPH:
        return attr.g
    if kind == AttributeProto.GRAPHS:
        return list(attr.graphs)
    if kind == AttributeProto.SPARSE_TENSOR:
        from onnx.reference.op_run import to_sparse_tensor  # noqa: PLC0415

        return to_sparse_tensor(attr.sparse_tensor)
    if kind == AttributeProto.TYPE_PROTO:
        return attr.tp
    raise ConversionError(f"attribute '{attr.name}' has an unknown type {kind}")


@functools.lru_cache(maxsize=4096)
def _schema_attributes(op_type: str, opset: int, domain: str) -> dict[str, tuple[bool, Any]]:
    """``{name: (required, default)}`` from the ONNX schema, empty when onnx has no schema."""
    try:
        schema = onnx.defs.get_schema(op_type, opset, domain)
    except Exception:  # noqa: BLE001 - custom domains and unknown ops have no schema
        return {}
    result = {}
    for name, attr in schema.attributes.items():
        default = _MISSING
        if attr.default_value is not None and attr.default_value.type != AttributeProto.UNDEFINED:
            default = decode_attribute(attr.default_value)
        result[name] = (bool(attr.required), default)
    return result


class OnnxNode:
    """One ONNX node with the opset of its domain; attributes decoded on demand."""

    def __init__(self, proto: onnx.NodeProto, opset: int, name: str | None = None):
        self.proto = proto
        self.op_type = proto.op_type
        self.domain = proto.domain
        self.opset = opset
        self.name = name or proto.name
        self.inputs: list[str] = list(proto.input)
        self.outputs: list[str] = list(proto.output)
        self.attributes: dict[str, Any] = {a.name: a for a in proto.attribute}

    def __repr__(self) -> str:
        return f"OnnxNode({self.describe()})"

    def describe(self) -> str:
        """``node 'conv1' (Conv, opset 11)`` — how errors name a node."""
        domain = f"{self.domain}." if self.domain not in ("", "ai.onnx") else ""
        return f"node '{self.name}' ({domain}{self.op_type}, opset {self.opset})"

    def input(self, index: int) -> str:
        """The name of input ``index``, or ``""`` when the optional input is absent."""
        return self.inputs[index] if index < len(self.inputs) else ""

    def has_input(self, index: int) -> bool:
        return bool(self.input(index))

    def has_attr(self, name: str) -> bool:
        return name in self.attributes

    def attr(self, name: str, default: Any = _MISSING) -> Any:
        """The attribute's value; else ``default``; else the schema's default.

        A required attribute that is missing raises :class:`ConversionError`; an optional one
        without any default gives ``None``.
        """
        if name in self.attributes:
            return decode_attribute(self.attributes[name])
        if default is not _MISSING:
            return default
        required, schema_default = _schema_attributes(self.op_type, self.opset, self.domain).get(
            name, (False, _MISSING)
        )
        if required:
            raise ConversionError(f"{self.describe()}: required attribute '{name}' is missing")
        return None if schema_default is _MISSING else schema_default

    def attr_int(self, name: str, default: Any = _MISSING) -> int | None:
        value = self.attr(name, default)
        return None if value is None else int(value)

    def attr_float(self, name: str, default: Any = _MISSING) -> float | None:
        value = self.attr(name, default)
        return None if value is None else float(value)

    def attr_ints(self, name: str, default: Any = _MISSING) -> list[int] | None:
        value = self.attr(name, default)
        if value is None:
            return None
        if isinstance(value, np.ndarray):
            return [int(v) for v in value.ravel()]
        return [int(v) for v in value]

    def attr_str(self, name: str, default: Any = _MISSING) -> str | None:
        value = self.attr(name, default)
        return None if value is None else str(value)

    def unsupported(self, what: str, value: Any, supported: str) -> ConversionError:
        """An error naming this node, the offending value and what is supported (to raise)."""
        return ConversionError(
            f"{self.describe()}: {what}={value!r} is not supported; supported: {supported}"
        )
