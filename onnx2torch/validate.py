"""Checks run on a model before anything is converted: files from strangers fail here, early and
with a message that says what is wrong, instead of deep inside a converter.

- :func:`load_onnx` reads a file that must be an ONNX model (empty files, random bytes, text and
  truncated files are refused) and resolves its external data *only inside the model's folder*:
  a location with ``..``, an absolute path or a symlink leading out is refused, a missing file is
  named.
- :func:`validate_model` checks the structure: a graph with outputs and a known opset, every
  node input produced by something, no tensor produced twice, typed graph inputs, attribute types
  as the ONNX schema declares them, tensors holding the bytes their type and shape declare (raw
  data over 64 KB is measured where it is read, :func:`onnx2torch.dtypes.tensor_from_proto`:
  each read copies it), weights whose shapes fit their Conv/BatchNorm/Gemm, and a graph that is
  a DAG (nodes out of order are sorted; a cycle is refused).  Linear in the number of nodes;
  subgraphs are walked without recursion.
- :func:`clean_errors` turns whatever else escapes the pipeline into an
  :class:`~onnx2torch.errors.Onnx2TorchError` that names the failure.
"""
from __future__ import annotations

import contextlib
import heapq
import logging
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import onnx
from onnx import AttributeProto, TensorProto

from onnx2torch.errors import ConversionError, InvalidModelError, Onnx2TorchError, OnnxLoadError
from onnx2torch.limits import subgraphs_of

__all__ = [
    "load_onnx",
    "resolve_external_data",
    "external_tensors",
    "validate_model",
    "clean_errors",
]

logger = logging.getLogger(__name__)

_DEFAULT_DOMAINS = ("", "ai.onnx")
_MAX_NAMES_SHOWN = 5


# --- loading ----------------------------------------------------------------------------------

def _parse_failure(path: str, exc: BaseException) -> OnnxLoadError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "MaxDepth" in reason or "recursion" in reason.lower():
        hint = ("its messages nest deeper than protobuf allows (about 30 levels of If/Loop "
                "subgraphs); flatten the control flow or build the model in memory")
    else:
        hint = ("protobuf cannot parse it; check that the file is a complete .onnx export "
                "(not truncated, not a text or HTML page, not another framework's format)")
    return OnnxLoadError(f"'{path}' is not an ONNX model: {hint} ({type(exc).__name__}: {reason})")


def load_onnx(path: str | os.PathLike) -> tuple[onnx.ModelProto, str]:
    """Load the ONNX file at ``path`` with its external data (read only from the model's folder);
    returns the model and that folder."""
    path = Path(path)
    if not path.exists():
        raise OnnxLoadError(f"no ONNX file at '{path}'")
    if not path.is_file():
        raise OnnxLoadError(f"'{path}' is not a regular file; give the path of an .onnx model")
    if path.stat().st_size == 0:
        raise OnnxLoadError(f"'{path}' is empty (0 bytes), not an ONNX model; re-export or re-download it")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - DecodeError, ParseError for text formats, OSError
        raise _parse_failure(str(path), exc) from exc
    _check_header(model, f"'{path}'")
    base_dir = str(path.resolve().parent)
    resolve_external_data(model, base_dir)
    return model, base_dir


#: Attribute kinds that hold no tensor and no graph: skipped without looking further.
_PLAIN_ATTRIBUTES = frozenset({
    AttributeProto.FLOAT, AttributeProto.INT, AttributeProto.STRING, AttributeProto.FLOATS,
    AttributeProto.INTS, AttributeProto.STRINGS, AttributeProto.TYPE_PROTO, AttributeProto.TYPE_PROTOS,
})


def external_tensors(model: onnx.ModelProto) -> Iterator[TensorProto]:
    """Every tensor of the model whose data lives in an external file: initializers, sparse
    initializers, Constant values and tensor attributes, in subgraphs and functions too.
    One walk over the nodes, without recursion."""
    stack: list[Iterable[onnx.NodeProto]] = [function.node for function in model.functions]
    graphs: list[onnx.GraphProto] = [model.graph]
    tensors: list[TensorProto] = []
    while graphs or stack:
        if graphs:
            graph = graphs.pop()
            tensors.extend(graph.initializer)
            for sparse in graph.sparse_initializer:
                tensors.extend((sparse.values, sparse.indices))
            stack.append(graph.node)
        for node in stack.pop() if stack else ():
            for attr in node.attribute:
                # NOTE: the attribute's declared kind decides where to look; an UNDEFINED or
                # unknown kind (a malformed model) is looked at in every field.
                if attr.type in _PLAIN_ATTRIBUTES:
                    continue
                if attr.HasField("t"):
                    tensors.append(attr.t)
                tensors.extend(attr.tensors)
                for sparse in ([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []) + list(attr.sparse_tensors):
                    tensors.extend((sparse.values, sparse.indices))
                if attr.HasField("g"):
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)
        for tensor in tensors:
            if tensor.data_location == TensorProto.EXTERNAL:
                yield tensor
        tensors.clear()


def _external_info(tensor: TensorProto) -> dict[str, str]:
    return {entry.key: entry.value for entry in tensor.external_data}


def _check_external_location(tensor: TensorProto, base_dir: str) -> Path:
    """The file ``tensor``'s external data lives in, after checking it stays in ``base_dir``."""
    info = _external_info(tensor)
    _check_text([tensor.name, *info.keys(), *info.values()], "an external data entry")
    location = info.get("location", "")
    where = f"tensor '{tensor.name}' stores its data externally at '{location}'"
    if not location:
        raise OnnxLoadError(f"tensor '{tensor.name}' says its data is external but names no file (no 'location')")
    if "\x00" in location:
        raise OnnxLoadError(f"{where}: the location contains a NUL byte; refused")
    parts = location.replace("\\", "/").split("/")
    if os.path.isabs(location) or location.startswith(("/", "\\")) or (len(location) > 1 and location[1] == ":"):
        raise OnnxLoadError(f"{where}: an absolute path; external data must be a relative path inside "
                            f"the model's folder ('{base_dir}'); refused")
    if ".." in parts:
        raise OnnxLoadError(f"{where}: the location leaves the model's folder ('..'); refused")
    root = Path(base_dir).resolve()
    target = (root / location).resolve()
    if target != root and root not in target.parents:
        raise OnnxLoadError(f"{where}, which resolves (through a symbolic link) to '{target}', outside the "
                            f"model's folder '{root}'; refused")
    if not target.exists():
        raise OnnxLoadError(f"{where}, but that file is missing from '{root}'; copy it beside the model")
    if not target.is_file():
        raise OnnxLoadError(f"{where}, which is not a regular file; refused")
    size = target.stat().st_size
    try:
        offset = int(info.get("offset", 0) or 0)
        length = int(info["length"]) if info.get("length") not in (None, "") else None
    except ValueError:
        raise OnnxLoadError(f"{where}: offset/length are not integers ({info})") from None
    if offset < 0 or (length is not None and length < 0):
        raise OnnxLoadError(f"{where}: negative offset/length ({info})")
    if offset > size or (length is not None and offset + length > size):
        raise OnnxLoadError(f"{where}: bytes {offset}..{offset + (length or 0)} are past the end of the "
                            f"{size}-byte file (truncated?)")
    return target


def resolve_external_data(model: onnx.ModelProto, base_dir: str | None) -> None:
    """Check every external location against ``base_dir``, then read the data into the model.
    A model given in memory (``base_dir`` ``None``) may not refer to external files."""
    tensors = list(external_tensors(model))
    if not tensors:
        return
    if base_dir is None:
        info = _external_info(tensors[0])
        raise OnnxLoadError(
            f"the model refers to external data (tensor '{tensors[0].name}' at '{info.get('location', '')}') "
            "but was given in memory, so there is no folder to read it from; pass the .onnx file's path "
            "instead, or load the model with onnx.load(path) first"
        )
    targets = [_check_external_location(tensor, base_dir) for tensor in tensors]
    for tensor, target in zip(tensors, targets):
        # NOTE: read from the path checked above (onnx's own loader refuses every symbolic link,
        # even one that stays inside the folder).
        info = _external_info(tensor)
        offset = int(info.get("offset", 0) or 0)
        length = int(info["length"]) if info.get("length") not in (None, "") else -1
        try:
            with open(target, "rb") as handle:
                handle.seek(offset)
                data = handle.read(length)
        except OSError as exc:
            raise OnnxLoadError(f"cannot read the external data of tensor '{tensor.name}' from "
                                f"'{info.get('location', '')}': {exc}") from exc
        tensor.raw_data = data
        tensor.data_location = TensorProto.DEFAULT
        del tensor.external_data[:]


# --- structure --------------------------------------------------------------------------------

def _check_header(model: onnx.ModelProto, source: str = "the model") -> None:
    """What every ONNX model has: protobuf parses garbage into an empty or odd ModelProto."""
    if not isinstance(model, onnx.ModelProto):
        raise OnnxLoadError(f"expected an onnx.ModelProto, got {type(model).__name__}")
    graph = model.graph
    if not model.HasField("graph") or (not graph.node and not graph.output and not graph.input):
        raise OnnxLoadError(
            f"{source} is not an ONNX model: it holds no graph (an empty file, or bytes that are not an ONNX "
            "export; check the file)"
        )
    if model.ir_version <= 0:
        raise OnnxLoadError(f"{source} has no IR version, so it is not a valid ONNX model (or it is corrupt)")
    if model.ir_version > onnx.IR_VERSION:
        raise InvalidModelError(
            f"{source} uses ONNX IR version {model.ir_version}, newer than the installed onnx {onnx.__version__} "
            f"knows (IR {onnx.IR_VERSION}); upgrade onnx (pip install -U onnx) or export with an older IR"
        )
    if not graph.output:
        raise InvalidModelError(f"{source} has a graph with no outputs, so there is nothing to convert")
    if not model.opset_import and model.ir_version >= 3:
        raise InvalidModelError(f"{source} declares no opset (opset_import is empty); re-export it with an opset")


def _max_known_opsets() -> dict[str, int]:
    known = {"": onnx.defs.onnx_opset_version()}
    # NOTE: rows are (release, IR, ai.onnx, ai.onnx.ml[, ai.onnx.training]); old rows are shorter.
    table = getattr(onnx.helper, "VERSION_TABLE", [])
    for column, domain in ((3, "ai.onnx.ml"), (4, "ai.onnx.training")):
        versions = [row[column] for row in table if len(row) > column and isinstance(row[column], int)]
        if versions:
            known[domain] = max(versions)
    return known


def _check_opsets(model: onnx.ModelProto) -> dict[str, int]:
    known = _max_known_opsets()
    opsets: dict[str, int] = {}
    _check_text([entry.domain for entry in model.opset_import], "an opset domain")
    for entry in model.opset_import:
        domain = "" if entry.domain in _DEFAULT_DOMAINS else entry.domain
        version = int(entry.version)
        label = entry.domain or "ai.onnx"
        if version < 1:
            raise InvalidModelError(f"the model imports opset {version} of domain '{label}'; opsets start at 1")
        if domain in known and version > known[domain]:
            raise InvalidModelError(
                f"the model uses opset {version} of '{label}', newer than the installed onnx {onnx.__version__} "
                f"knows (up to {known[domain]}); upgrade onnx (pip install -U onnx) or export at opset "
                f"{known[domain]} or lower"
            )
        opsets[domain] = version
    opsets.setdefault("", 1)
    return opsets


class _OpRules(NamedTuple):
    """What an op's schema says of a node: read once from ``onnx.defs`` (every property read of
    an ``OpSchema`` crosses into C++, and ``attributes`` builds a new dict each time)."""

    since_version: int
    attributes: dict[str, int]  # name -> AttributeProto type
    required: tuple[str, ...]
    min_input: int
    max_input: int
    max_output: int


#: (domain, op, since) -> rules, for all models converted in this process
_RULES: dict[tuple[str, str, int], _OpRules] = {}


def _op_rules(schema: onnx.defs.OpSchema) -> _OpRules:
    key = (schema.domain, schema.name, schema.since_version)
    rules = _RULES.get(key)
    if rules is None:
        declared = schema.attributes
        rules = _RULES[key] = _OpRules(
            since_version=schema.since_version,
            attributes={name: int(a.type.value) if hasattr(a.type, "value") else int(a.type)
                        for name, a in declared.items()},
            required=tuple(name for name, a in declared.items() if a.required),
            min_input=schema.min_input, max_input=schema.max_input, max_output=schema.max_output,
        )
    return rules


class _Schemas:
    """The rules of each op's schema, looked up once per (domain, op) at the model's opset."""

    def __init__(self, opsets: dict[str, int]):
        self.opsets = opsets
        self.cache: dict[tuple[str, str], _OpRules | None] = {}

    def get(self, op_type: str, domain: str) -> _OpRules | None:
        key = (domain, op_type)
        if key not in self.cache:
            default = "" if domain in _DEFAULT_DOMAINS else domain
            try:
                self.cache[key] = _op_rules(onnx.defs.get_schema(op_type, self.opsets.get(default, 1), default))
            except Exception:  # noqa: BLE001 - a custom op, or an op newer than its opset
                self.cache[key] = None
        return self.cache[key]


def _check_text(values: Iterable, what: str) -> None:
    """Protobuf hands back ``bytes`` for a string field that is not valid UTF-8."""
    for value in values:
        if isinstance(value, bytes):
            raise InvalidModelError(f"{what} {value[:40]!r} is not valid UTF-8 text; the model is corrupt")


def _label(node: onnx.NodeProto, index: int) -> str:
    name = node.name or (node.output[0] if node.output else f"#{index}")
    return f"node '{name}' ({node.op_type})"


_ATTR_NAMES = {int(v): k for k, v in AttributeProto.AttributeType.items()}
_ELEM_TYPES = frozenset(TensorProto.DataType.values())


def _check_attributes(node: onnx.NodeProto, index: int, rules: _OpRules | None,
                      attributes: list[AttributeProto], n_inputs: int, n_outputs: int) -> None:
    seen = set()
    for attr in attributes:
        name = attr.name
        if name in seen:
            raise InvalidModelError(f"{_label(node, index)} sets attribute '{name}' twice")
        seen.add(name)
        if attr.ref_attr_name:
            continue
        kind = attr.type
        if kind == AttributeProto.UNDEFINED:
            raise InvalidModelError(
                f"{_label(node, index)}: attribute '{name}' has no type (AttributeProto.type is UNDEFINED); "
                "the exporter wrote a malformed attribute"
            )
        if rules is None:
            continue
        expected = rules.attributes.get(name)
        if expected is not None and kind != expected:
            raise InvalidModelError(
                f"{_label(node, index)}: attribute '{name}' is {_ATTR_NAMES.get(int(kind), kind)}, "
                f"but {node.op_type}-{rules.since_version} declares it {_ATTR_NAMES.get(expected, expected)}; "
                "fix the exporter or the attribute"
            )
    if rules is None:
        return
    for name in rules.required:
        if name not in seen:
            raise InvalidModelError(
                f"{_label(node, index)} lacks the required attribute '{name}' of {node.op_type}-{rules.since_version}"
            )
    count = n_inputs
    if count < rules.min_input or count > rules.max_input:
        wanted = (f"{rules.min_input}" if rules.min_input == rules.max_input
                  else f"{rules.min_input} to {rules.max_input}")
        raise InvalidModelError(
            f"{_label(node, index)} has {count} input(s); {node.op_type}-{rules.since_version} takes {wanted}"
        )
    if n_outputs > rules.max_output:
        raise InvalidModelError(
            f"{_label(node, index)} has {n_outputs} outputs; {node.op_type}-{rules.since_version} "
            f"has at most {rules.max_output}"
        )


def _value_type_problem(value: onnx.ValueInfoProto) -> str | None:
    kind = value.type.WhichOneof("value")
    if kind is None:
        return "has no type"
    if kind == "tensor_type":
        tt = value.type.tensor_type
        if tt.elem_type == TensorProto.UNDEFINED:
            return "has no element type"
        if tt.elem_type not in _ELEM_TYPES:
            return f"has an unknown element type {tt.elem_type}"
        for dim in tt.shape.dim:
            if dim.HasField("dim_value") and dim.dim_value < 0:
                return f"has a negative dimension ({dim.dim_value})"
    return None


_RAW_ITEMSIZE = {
    TensorProto.FLOAT: 4, TensorProto.DOUBLE: 8, TensorProto.FLOAT16: 2, TensorProto.BFLOAT16: 2,
    TensorProto.INT8: 1, TensorProto.UINT8: 1, TensorProto.INT16: 2, TensorProto.UINT16: 2,
    TensorProto.INT32: 4, TensorProto.UINT32: 4, TensorProto.INT64: 8, TensorProto.UINT64: 8,
    TensorProto.BOOL: 1, TensorProto.COMPLEX64: 8, TensorProto.COMPLEX128: 16,
}
for _name in ("FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "FLOAT8E8M0"):
    if hasattr(TensorProto, _name):
        _RAW_ITEMSIZE[getattr(TensorProto, _name)] = 1
#: Sub-byte types: elements per byte of raw data.
_PACKED = {getattr(TensorProto, name): per for name, per in
           (("INT4", 2), ("UINT4", 2), ("FLOAT4E2M1", 2), ("INT2", 4), ("UINT2", 4)) if hasattr(TensorProto, name)}
_TYPED_FIELD = {
    TensorProto.FLOAT: "float_data", TensorProto.DOUBLE: "double_data", TensorProto.INT64: "int64_data",
    TensorProto.INT32: "int32_data", TensorProto.UINT64: "uint64_data",
}


#: raw data up to this many bytes is measured (copied) by the checks
_COPIED_TO_CHECK = 1 << 16


def _check_tensor(tensor: TensorProto, what: str) -> None:
    """A tensor's declared type and shape agree with the bytes it holds."""
    data_type = tensor.data_type
    if data_type == TensorProto.UNDEFINED or data_type not in _ELEM_TYPES:
        raise InvalidModelError(f"{what} '{tensor.name}' has no valid element type ({data_type})")
    dims = list(tensor.dims)
    if dims and min(dims) < 0:
        raise InvalidModelError(f"{what} '{tensor.name}' has a negative dimension in {dims}")
    if tensor.data_location == TensorProto.EXTERNAL:
        return
    count = math.prod(dims)
    has_raw = tensor.HasField("raw_data")
    if has_raw and data_type == TensorProto.STRING:
        raise InvalidModelError(f"{what} '{tensor.name}' is a STRING tensor stored as raw bytes; strings go in "
                                "string_data")
    per_byte = _PACKED.get(data_type)
    if has_raw and (data_type in _RAW_ITEMSIZE or per_byte):
        expected = -(-count // per_byte) if per_byte else count * _RAW_ITEMSIZE[data_type]
        if expected > _COPIED_TO_CHECK:
            # NOTE: reading raw_data (or ByteSize) copies the bytes: for a model's weights, a copy
            # of the file, page by page.  Their length is checked where the weight is read
            # (dtypes.tensor_from_proto); until then only their declared shape is used.
            return
        held = len(tensor.raw_data)
        if held != expected:
            raise InvalidModelError(
                f"{what} '{tensor.name}' declares shape {dims} "
                f"({TensorProto.DataType.Name(data_type)}, {expected} bytes) but holds {held} bytes"
            )
        return
    field = _TYPED_FIELD.get(data_type)
    if field is not None and not has_raw:
        held = len(getattr(tensor, field))
        if held != count:
            raise InvalidModelError(
                f"{what} '{tensor.name}' declares shape {dims} ({count} values) but holds {held}"
            )


def _declared_dims(value_type: onnx.TypeProto) -> list[int | None] | None:
    if not value_type.HasField("tensor_type") or not value_type.tensor_type.HasField("shape"):
        return None
    return [int(d.dim_value) if d.HasField("dim_value") else None for d in value_type.tensor_type.shape.dim]


def _attr_ints(node: onnx.NodeProto, name: str) -> list[int] | None:
    for attr in node.attribute:
        if attr.name == name and attr.type == AttributeProto.INTS:
            return list(attr.ints)
    return None


def _attr_int(node: onnx.NodeProto, name: str, default: int) -> int:
    for attr in node.attribute:
        if attr.name == name and attr.type == AttributeProto.INT:
            return int(attr.i)
    return default


#: The ops _check_weights knows.
_WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "BatchNormalization", "Gemm"})


def _check_weights(node: onnx.NodeProto, index: int, weights: dict[str, list[int]],
                   shapes: dict[str, list[int | None]]) -> None:
    """Weights (initializer shapes) that contradict the op they feed."""
    op = node.op_type
    if op not in _WEIGHTED_OPS:
        return
    inputs = list(node.input)

    def weight(i: int) -> list[int] | None:
        return weights.get(inputs[i]) if len(inputs) > i and inputs[i] else None

    def fail(message: str) -> None:
        raise InvalidModelError(f"{_label(node, index)}: {message}; the weights do not fit this op (corrupt or "
                                "mismatched export)")

    if op in ("Conv", "ConvTranspose") and node.domain in _DEFAULT_DOMAINS:
        w = weight(1)
        if w is None:
            return
        if len(w) < 3:
            fail(f"weight '{inputs[1]}' has shape {w}; a {op} weight has rank 3 or more")
        spatial = len(w) - 2
        x = shapes.get(inputs[0])
        if x is not None and len(x) != len(w):
            fail(f"input '{inputs[0]}' has rank {len(x)} but weight '{inputs[1]}' has rank {len(w)} ({w})")
        # NOTE: kernel_shape against the weight is the Conv converters' own check (ConversionError).
        for name, size in (("strides", spatial), ("dilations", spatial), ("pads", 2 * spatial)):
            values = _attr_ints(node, name)
            if values is not None and len(values) != size:
                fail(f"{name}={values} has {len(values)} entries; a {spatial}-d {op} takes {size}")
        group = _attr_int(node, "group", 1)
        if group < 1:
            fail(f"group={group}")
        if op == "Conv":
            if w[0] % group:
                fail(f"weight '{inputs[1]}' has {w[0]} output channels, not divisible by group={group}")
            channels, out = w[1] * group, w[0]
        else:
            channels, out = w[0], w[1] * group
        if x is not None and x[1] is not None and x[1] != channels:
            fail(f"input '{inputs[0]}' has {x[1]} channels but weight '{inputs[1]}' ({w}, group={group}) "
                 f"expects {channels}")
        b = weight(2)
        if b is not None and b != [out]:
            fail(f"bias '{inputs[2]}' has shape {b}; it must be [{out}]")
    elif op == "BatchNormalization" and node.domain in _DEFAULT_DOMAINS and _attr_int(node, "spatial", 1) != 0:
        # (spatial=0, before opset 9, has per-element statistics of any shape)
        params = [(inputs[i], weight(i)) for i in range(1, min(len(inputs), 5))]
        sizes = {tuple(s) for _, s in params if s is not None}
        if any(len(s) != 1 for s in sizes) or len(sizes) > 1:
            fail("scale, B, mean and var must be 1-D of one length, got "
                 + ", ".join(f"'{n}' {s}" for n, s in params if s is not None))
        x = shapes.get(inputs[0])
        if sizes and x is not None and len(x) > 1 and x[1] is not None and x[1] != next(iter(sizes))[0]:
            fail(f"input '{inputs[0]}' has {x[1]} channels but the parameters have {next(iter(sizes))[0]}")
    elif op == "Gemm" and node.domain in _DEFAULT_DOMAINS:
        b = weight(1)
        if b is not None and len(b) != 2:
            fail(f"B '{inputs[1]}' has shape {b}; Gemm takes a 2-D B")
        a = shapes.get(inputs[0])
        if a is not None and len(a) != 2:
            fail(f"A '{inputs[0]}' has rank {len(a)}; Gemm takes a 2-D A")
        if a is not None and b is not None:
            k_a = a[0] if _attr_int(node, "transA", 0) else a[1]
            k_b = b[1] if _attr_int(node, "transB", 0) else b[0]
            if k_a is not None and k_a != k_b:
                fail(f"A '{inputs[0]}' {a} and B '{inputs[1]}' {b} have different inner sizes ({k_a} vs {k_b})")


class _Scope:
    """Names visible in a graph: its own, then its enclosing graphs'."""

    __slots__ = ("names", "parent")

    def __init__(self, names: set[str], parent: _Scope | None):
        self.names = names
        self.parent = parent

    def __contains__(self, name: str) -> bool:
        scope = self
        while scope is not None:
            if name in scope.names:
                return True
            scope = scope.parent
        return False


def _collect_graphs(model: onnx.ModelProto) -> tuple[list, list[tuple[int, int]], list[int]]:
    """Every graph in pre-order, with ``(parent graph index, node index)`` of the node that holds
    it (``(-1, -1)`` for the main graph) and its nesting depth."""
    graphs, owners, depths = [], [], []
    stack = [(model.graph, (-1, -1), 0)]
    while stack:
        graph, owner, depth = stack.pop()
        index = len(graphs)
        graphs.append(graph)
        owners.append(owner)
        depths.append(depth)
        for i, node in enumerate(graph.node):
            for sub in subgraphs_of(node):
                stack.append((sub, (index, i), depth + 1))
    return graphs, owners, depths


def _own_names(graph: onnx.GraphProto) -> set[str]:
    names = {v.name for v in graph.input}
    names.update(t.name for t in graph.initializer)
    names.update(t.values.name for t in graph.sparse_initializer)
    for node in graph.node:
        names.update(n for n in node.output if n)
    return names


def _free_names(graphs: list, owners: list[tuple[int, int]]) -> list[set[str]]:
    """For each graph, the names it (or a subgraph) reads that it does not define itself."""
    children: list[list[int]] = [[] for _ in graphs]
    for index, (parent, _) in enumerate(owners):
        if parent >= 0:
            children[parent].append(index)
    free: list[set[str]] = [set() for _ in graphs]
    for index in range(len(graphs) - 1, -1, -1):  # reversed pre-order: children first
        graph = graphs[index]
        reads = {n for node in graph.node for n in node.input if n}
        reads.update(o.name for o in graph.output)
        for child in children[index]:
            reads |= free[child]
        free[index] = reads - _own_names(graph)
    return free


def _topological_order(graph: onnx.GraphProto, reads: list[list[str]], producer: dict[str, int],
                       where: str) -> list[int]:
    """Kahn's algorithm, keeping the original order where it is free to; a cycle is refused."""
    count = len(graph.node)
    pending = [0] * count
    users: list[list[int]] = [[] for _ in range(count)]
    for i, names in enumerate(reads):
        for p in {producer[n] for n in names if n in producer}:
            if p == i:
                raise InvalidModelError(f"{where}: {_label(graph.node[i], i)} reads its own output; "
                                        "the graph has a cycle")
            pending[i] += 1
            users[p].append(i)
    ready = [i for i in range(count) if pending[i] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for user in users[i]:
            pending[user] -= 1
            if pending[user] == 0:
                heapq.heappush(ready, user)
    if len(order) < count:
        stuck = [i for i in range(count) if pending[i] > 0]
        shown = ", ".join(_label(graph.node[i], i) for i in stuck[:_MAX_NAMES_SHOWN])
        more = f" and {len(stuck) - _MAX_NAMES_SHOWN} more" if len(stuck) > _MAX_NAMES_SHOWN else ""
        raise InvalidModelError(f"{where}: the graph is not a DAG: {len(stuck)} node(s) depend on each other in a "
                                f"cycle ({shown}{more}); the model is corrupt")
    return order


def _check_graph(graph: onnx.GraphProto, scope: _Scope, where: str, is_main: bool, schemas: _Schemas,
                 free_of_children: dict[int, set[str]]) -> tuple[set[str], list[int] | None]:
    """Checks one graph; returns its own names and, when its nodes are out of order, a
    topological order."""
    defined: dict[str, str] = {}
    initializers = set()
    for tensor in graph.initializer:
        if tensor.name in initializers:
            raise InvalidModelError(f"{where}: initializer '{tensor.name}' is given twice")
        initializers.add(tensor.name)
        _check_tensor(tensor, "initializer")
    for sparse in graph.sparse_initializer:
        initializers.add(sparse.values.name)
    for value in graph.input:
        if value.name in defined:
            raise InvalidModelError(f"{where}: graph input '{value.name}' is listed twice")
        defined[value.name] = "a graph input"
        if is_main and value.name not in initializers:
            problem = _value_type_problem(value)
            if problem:
                raise InvalidModelError(
                    f"graph input '{value.name}' {problem}; give it a type and shape "
                    "(onnx.helper.make_tensor_value_info) or re-export the model"
                )
    for name in initializers:
        defined.setdefault(name, "an initializer")
    producer: dict[str, int] = {}
    weights = {t.name: list(t.dims) for t in graph.initializer}
    shapes = {}
    for value in list(graph.input) + list(graph.value_info):
        dims = _declared_dims(value.type)
        if dims is not None:
            shapes.setdefault(value.name, dims)
    _check_text([v.name for v in list(graph.input) + list(graph.output)], f"{where}: a graph input/output name")
    _check_text([t.name for t in graph.initializer], f"{where}: an initializer name")
    reads: list[list[str]] = []
    for i, node in enumerate(graph.node):
        # NOTE: each read of a repeated protobuf field builds new Python objects: read once.
        inputs, outputs, attributes = list(node.input), list(node.output), list(node.attribute)
        op_type, domain = node.op_type, node.domain
        _check_text([node.name, op_type, domain, *inputs, *outputs, *(a.name for a in attributes)],
                    f"{where}: node #{i} has a name, op type, domain or tensor name")
        if not op_type:
            raise InvalidModelError(f"{where}: node #{i} ('{node.name}') has no op_type")
        read = [n for n in inputs if n]
        if i in free_of_children:
            read.extend(free_of_children[i])
        reads.append(read)
        for out in outputs:
            if not out:
                continue
            if out in producer:
                other = graph.node[producer[out]]
                raise InvalidModelError(
                    f"{where}: tensor '{out}' is produced twice, by {_label(other, producer[out])} and "
                    f"{_label(node, i)}; ONNX names each value once (the graph is corrupt)"
                )
            if out in defined:
                raise InvalidModelError(
                    f"{where}: tensor '{out}' is produced by {_label(node, i)} but is also {defined[out]}; "
                    "ONNX names each value once (the graph is corrupt)"
                )
            producer[out] = i
        _check_attributes(node, i, schemas.get(op_type, domain), attributes, len(inputs), len(outputs))
        if op_type == "Constant" and domain in _DEFAULT_DOMAINS:
            for attr in attributes:
                if attr.type == AttributeProto.TENSOR:
                    _check_tensor(attr.t, "Constant value")
                    if outputs and outputs[0]:
                        weights[outputs[0]] = list(attr.t.dims)
        _check_weights(node, i, weights, shapes)
    out_of_order = False
    for i, (node, names) in enumerate(zip(graph.node, reads)):
        for name in names:
            if name in defined:
                continue
            p = producer.get(name)
            if p is not None:
                if p >= i:
                    out_of_order = True
                continue
            if scope is not None and name in scope:
                continue
            raise InvalidModelError(
                f"{where}: {_label(node, i)} reads '{name}', which no node, graph input or initializer "
                "produces; the model is incomplete or corrupt"
            )
    for value in graph.output:
        if value.name not in defined and value.name not in producer and not (scope is not None and value.name in scope):
            raise InvalidModelError(f"{where}: graph output '{value.name}' is not produced by any node, input or "
                                    "initializer")
    own = set(defined) | set(producer)
    order = _topological_order(graph, reads, producer, where) if out_of_order else None
    return own, order


def validate_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """Raise :class:`InvalidModelError` (or :class:`OnnxLoadError`) when the model is malformed;
    returns the model — a copy with its nodes in topological order when they were not."""
    _check_header(model)
    opsets = _check_opsets(model)
    schemas = _Schemas(opsets)
    graphs, owners, depths = _collect_graphs(model)
    free = _free_names(graphs, owners) if len(graphs) > 1 else [set()]
    # the names each node's subgraphs read from outside them: implicit inputs of that node
    node_reads: list[dict[int, set[str]]] = [{} for _ in graphs]
    for index, (parent, node_index) in enumerate(owners):
        if parent >= 0:
            node_reads[parent].setdefault(node_index, set()).update(free[index])
    scopes: list[_Scope | None] = [None] * len(graphs)
    reorder: dict[int, list[int]] = {}
    for index, graph in enumerate(graphs):
        parent = owners[index][0]
        where = "the main graph" if parent < 0 else f"subgraph '{graph.name}' (nesting depth {depths[index]})"
        outer = scopes[parent] if parent >= 0 else None
        own, order = _check_graph(graph, outer, where, parent < 0, schemas, node_reads[index])
        scopes[index] = _Scope(own, outer)
        if order is not None:
            reorder[index] = order
    if not reorder:
        return model
    logger.info("the graph's nodes are not in topological order; sorting them")
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    fixed_graphs, _, _ = _collect_graphs(fixed)
    for index, order in reorder.items():
        graph = fixed_graphs[index]
        nodes = [graph.node[i] for i in order]
        copies = []
        for node in nodes:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copies.append(copy)
        del graph.node[:]
        graph.node.extend(copies)
    return fixed


# --- the pipeline boundary --------------------------------------------------------------------

def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def clean_errors(stage: str = "converting the model") -> Iterator[None]:
    """Let :class:`Onnx2TorchError` through; turn anything else into one that names it."""
    try:
        yield
    except Onnx2TorchError:
        raise
    except RecursionError as exc:
        raise ConversionError(
            f"{stage}: the model nests subgraphs (If/Loop/Scan bodies) or expressions too deeply for Python's "
            "recursion limit; flatten the control flow, or raise sys.setrecursionlimit for a trusted model"
        ) from exc
    except MemoryError as exc:
        raise ConversionError(
            f"{stage}: ran out of memory; the model needs more than this machine has (or asks for a huge "
            "tensor); lower max_constant_bytes or use a machine with more memory"
        ) from exc
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except Exception as exc:  # noqa: BLE001 - the boundary: nothing unnamed escapes
        module = type(exc).__module__
        if module.startswith("google.protobuf"):
            raise OnnxLoadError(f"{stage}: the model's protobuf is malformed ({type(exc).__name__}: "
                                f"{_first_line(exc)}); re-export the model") from exc
        if isinstance(exc, (onnx.checker.ValidationError, onnx.shape_inference.InferenceError)):
            raise InvalidModelError(f"{stage}: onnx rejects the model: {_first_line(exc)}") from exc
        raise ConversionError(
            f"{stage}: unexpected {type(exc).__name__}: {_first_line(exc)}. The model is malformed in a way "
            "onnx2torch does not check for, or this is a bug: please report it with the model"
        ) from exc
