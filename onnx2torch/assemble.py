"""Build a ``torch.fx.GraphModule`` from an ONNX graph, one converter call per node.

Graph inputs become ``forward`` arguments, each node a call of a named submodule or of a torch
function, and graph outputs are returned in ONNX order.  Nodes whose inputs are all known at
conversion time are evaluated here (constant folding), so static shape arithmetic ends up as
literals and weights hidden behind ``Constant``/``Identity`` chains are plain tensors.  Shape
arithmetic over run-time sizes is tracked symbolically (:mod:`onnx2torch.symbolic`) and becomes
a call only where a node reads it as a tensor.
"""
from __future__ import annotations

import inspect
import keyword
import logging
import operator
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import onnx
import torch
from torch import fx, nn

from onnx2torch.attributes import OnnxNode
from onnx2torch.dtypes import claim_private, mark_private, owned_copy, settle, tensor_from_proto
from onnx2torch.errors import ConversionError, InvalidModelError, UnsupportedOperatorError
from onnx2torch.functions import expand_schema_function, has_schema_function, inline_local_functions
from onnx2torch.fusion import fuse_graph
from onnx2torch.limits import call_converter, data_propagation_hazard, grows_past_limit, subgraphs_of, value_bytes
from onnx2torch.registry import DEFAULT_DOMAINS, Lowered, lookup
from onnx2torch.symbolic import has_symbolic, materialize, propagate, symbolic_value

__all__ = ["ConversionContext", "assemble", "build_subgraph", "find_unsupported", "model_opsets", "outer_scope_names"]

logger = logging.getLogger(__name__)

_LITERAL_DTYPES = (torch.float32, torch.float64, torch.int64, torch.int32, torch.bool)


def model_opsets(model: onnx.ModelProto) -> dict[str, int]:
    """``{domain: version}`` with the default domain under ``""``."""
    opsets = {}
    for entry in model.opset_import:
        domain = "" if entry.domain in DEFAULT_DOMAINS else entry.domain
        opsets[domain] = int(entry.version)
    opsets.setdefault("", 1)
    return opsets


def _node_opset(opsets: dict[str, int], domain: str) -> int:
    return opsets.get("" if domain in DEFAULT_DOMAINS else domain, 1)


def _iter_nodes(graph: onnx.GraphProto) -> Iterable[onnx.NodeProto]:
    """Every node of a graph and of its subgraphs (:func:`onnx2torch.limits.subgraphs_of`),
    depth first."""
    for node in graph.node:
        yield node
        for sub in subgraphs_of(node):
            yield from _iter_nodes(sub)


def find_unsupported(model: onnx.ModelProto) -> list[str]:
    """One line per node (subgraphs included) that has no converter at the model's opset."""
    opsets = model_opsets(model)
    local_functions = {(f.domain, f.name) for f in model.functions}
    convertible: dict[tuple[str, str], bool] = {}  # NOTE: one registry lookup per kind of op
    missing = []
    for node in _iter_nodes(model.graph):
        kind = (node.domain, node.op_type)
        opset = _node_opset(opsets, node.domain)
        if kind not in convertible:
            convertible[kind] = kind in local_functions or lookup(node.domain, node.op_type, opset) is not None \
                or has_schema_function(node.op_type, opset, node.domain)
        if not convertible[kind]:
            domain = node.domain or "ai.onnx"
            label = f"'{node.name}'" if node.name else f"<unnamed, output '{node.output[0] if node.output else ''}'>"
            missing.append(f"{label} {domain}::{node.op_type} (opset {opset})")
    return missing


def check_supported(model: onnx.ModelProto) -> None:
    """Raise one :class:`UnsupportedOperatorError` naming every node without a converter."""
    missing = find_unsupported(model)
    if missing:
        kinds = sorted({line.rsplit(" ", 3)[1] for line in missing})
        raise UnsupportedOperatorError(
            f"{len(missing)} node(s) use operators onnx2torch cannot convert "
            f"({', '.join(kinds)}): " + "; ".join(missing)
            + ". Register a converter with onnx2torch.registry.converter or report the op."
        )


def sanitize(name: str, fallback: str = "v") -> str:
    """A Python identifier made from an ONNX name."""
    ident = re.sub(r"\W", "_", name).strip("_") or fallback
    if ident[0].isdigit():
        ident = f"{fallback}_{ident}"
    if keyword.iskeyword(ident):
        ident += "_"
    return ident


class ConversionContext:
    """What a converter may ask about the graph: constant values, inferred shapes and types."""

    def __init__(self, opsets: dict[str, int], value_info: dict[str, onnx.TypeProto], base_dir: str | None = None):
        self.opsets = opsets
        self.value_info = value_info
        self.base_dir = base_dir
        self.constants: dict[str, Any] = {}
        #: initializers not read yet: each becomes a tensor when a converter first asks for it
        self.pending: dict[str, onnx.TensorProto] = {}
        #: integer tensors computed from shapes, known element-wise (onnx2torch.symbolic)
        self.symbolic_values: dict[str, Any] = {}
        #: ONNX element types of initializers as declared (int4 travels as int8 in torch).
        self.declared_types: dict[str, int] = {}
        #: reads of each tensor by the nodes not converted yet, graph outputs counted as reads
        #: (kept by GraphAssembler.build; empty inside subgraphs, where nothing is adopted)
        self.reads_left: Counter = Counter()
        #: memory of private weights handed to layers by :meth:`own`, by data pointer
        self.claimed: set[int] = set()

    # --- constants -------------------------------------------------------------------------
    def is_constant(self, name: str) -> bool:
        return name in self.constants or name in self.pending

    def constant(self, name: str) -> torch.Tensor | None:
        """The value of tensor ``name`` when it is known at conversion time, else ``None``."""
        if not name:
            return None
        if name in self.pending:
            self.constants[name] = tensor_from_proto(self.pending.pop(name), self.base_dir)
        return self.constants.get(name)

    def add_initializers(self, protos: Iterable[onnx.TensorProto]) -> None:
        """Initializers as constants; they are read from the protos only when first used."""
        for proto in protos:
            self.pending[proto.name] = proto
            self.declared_types[proto.name] = proto.data_type

    def own(self, tensor: torch.Tensor, name: str) -> torch.Tensor:
        """``tensor`` (constant ``name`` or a view of it) as memory a layer may keep.

        When the node being converted is the constant's last reader, its private memory is
        handed over as it is (possibly a transposed view) and the constant is forgotten;
        :meth:`GraphAssembler.settle_weights` makes it contiguous, or copies it if anything
        else still shares it, once every node is converted.  Otherwise a copy is made."""
        if self.reads_left.get(name) != 1 or name not in self.constants or not claim_private(tensor):
            return owned_copy(tensor)
        self.constants.pop(name)
        self.claimed.add(tensor.untyped_storage().data_ptr())
        return tensor.detach()

    def release(self, name: str) -> None:
        """Forget a constant no node reads any more (its memory goes back before the next weight)."""
        self.constants.pop(name, None)
        self.pending.pop(name, None)

    def constant_ints(self, name: str) -> list[int] | None:
        value = self.constant(name)
        if value is None:
            return None
        if isinstance(value, torch.Tensor):
            return [int(v) for v in value.reshape(-1).tolist()]
        return [int(v) for v in np.asarray(value).reshape(-1)]

    def constant_floats(self, name: str) -> list[float] | None:
        value = self.constant(name)
        if value is None:
            return None
        return [float(v) for v in torch.as_tensor(value).reshape(-1).double().tolist()]

    # --- inferred types --------------------------------------------------------------------
    def _tensor_type(self, name: str):
        tp = self.value_info.get(name)
        if tp is None or not tp.HasField("tensor_type"):
            return None
        return tp.tensor_type

    def shape(self, name: str) -> list[int | str | None] | None:
        """Inferred shape: ints for static dims, the symbol (or ``None``) for dynamic ones;
        ``None`` when even the rank is unknown."""
        value = self.constant(name)
        if isinstance(value, torch.Tensor):
            return list(value.shape)
        tt = self._tensor_type(name)
        if tt is None or not tt.HasField("shape"):
            return None
        dims = []
        for dim in tt.shape.dim:
            if dim.HasField("dim_value"):
                dims.append(int(dim.dim_value))
            elif dim.HasField("dim_param"):
                dims.append(dim.dim_param)
            else:
                dims.append(None)
        return dims

    def static_shape(self, name: str) -> list[int] | None:
        """The shape when every dim is known at conversion time, else ``None``."""
        dims = self.shape(name)
        if dims is None or not all(isinstance(d, int) for d in dims):
            return None
        return dims

    def rank(self, name: str) -> int | None:
        dims = self.shape(name)
        return None if dims is None else len(dims)

    def elem_type(self, name: str) -> int | None:
        """The ONNX element type of ``name`` (``TensorProto.FLOAT`` ...), ``None`` if unknown."""
        if name in self.declared_types:
            return self.declared_types[name]
        value = self.constant(name)
        if isinstance(value, torch.Tensor):
            from onnx2torch.dtypes import ONNX_TO_TORCH  # noqa: PLC0415

            for elem, dtype in ONNX_TO_TORCH.items():
                if dtype == value.dtype:
                    return elem
        tt = self._tensor_type(name)
        return None if tt is None or tt.elem_type == 0 else int(tt.elem_type)


def _package_functions() -> tuple:
    """Every module-level function of the onnx2torch package (converters' run-time helpers)."""
    functions = []
    for name, module in list(sys.modules.items()):
        if (name == "onnx2torch" or name.startswith("onnx2torch.")) and module is not None:
            for value in vars(module).values():
                if inspect.isfunction(value) and value.__module__ == name:
                    functions.append(value)
    custom_ops = sys.modules.get("onnx2torch.custom_ops")
    if custom_ops is not None:  # user ops (onnx2torch.custom_op) stay opaque calls too
        functions.extend(custom_ops.registered_custom_ops().values())
    return tuple(functions)


class OnnxTracer(fx.Tracer):
    """The tracer a converted module is rebuilt with when it is unpickled (``torch.load``): the
    package's run-time helpers stay opaque calls instead of being traced through (they may
    branch on values or call ``.tolist()``), and every submodule is a leaf."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("autowrap_functions", _package_functions())
        super().__init__(*args, **kwargs)
        # NOTE: buffers stay get_attr nodes: traced as plain tensors, a run-time computation on
        # them (a ConstantOfShape kept out of folding by onnx2torch.limits) would be evaluated
        # at torch.load time and baked in.
        self.proxy_buffer_attributes = True


def _new_graph() -> fx.Graph:
    return fx.Graph(tracer_cls=OnnxTracer)


def _collect_value_info(graph: onnx.GraphProto) -> dict[str, onnx.TypeProto]:
    info = {}
    for value in list(graph.input) + list(graph.value_info) + list(graph.output):
        if value.type.ByteSize():
            info[value.name] = value.type
    return info


def infer_value_info(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """Types and shapes of every tensor onnx's shape inference can tell (empty on failure)."""
    from onnx2torch.simplify import strip_large_initializers  # noqa: PLC0415

    model, _ = strip_large_initializers(model)
    try:
        # NOTE: data propagation computes 1-D integer tensors element by element; a model that
        # would make it compute a huge one (Range(0, 10**9)) is inferred without it.
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=data_propagation_hazard(model) is None)
    except Exception as exc:  # noqa: BLE001 - inference is advisory
        logger.info("shape inference failed (%s); converting without inferred shapes", exc)
        inferred = model
    return _collect_value_info(inferred.graph)


class GraphAssembler:
    """Turns one ONNX graph into an fx graph on a root module."""

    def __init__(self, graph: onnx.GraphProto, ctx: ConversionContext):
        self.graph = graph
        self.ctx = ctx
        self.root = nn.Module()
        self.fx_graph = _new_graph()
        self.env: dict[str, fx.Node] = {}
        self.used_attr_names: set[str] = set()
        self.constant_attrs: dict[str, str] = {}
        #: ONNX tensor name -> fx node name, for debug mode's per-node comparison.
        self.value_nodes: dict[str, str] = {}
        #: ONNX tensor name -> (node name, op type, converter) that produced it.
        self.producers: dict[str, tuple[str, str, str]] = {}
        #: shape arithmetic known symbolically (onnx2torch.symbolic), emitted only when a node
        #: reads its tensor form: output name -> (node, lowered, inputs, converter, constants)
        self.deferred: dict[str, tuple[OnnxNode, Lowered, list[str], str, dict[str, Any]]] = {}

    # --- names -----------------------------------------------------------------------------
    def _attr_name(self, candidate: str) -> str:
        name = sanitize(candidate, "m")
        base, i = name, 1
        while name in self.used_attr_names or hasattr(self.root, name):
            i += 1
            name = f"{base}_{i}"
        self.used_attr_names.add(name)
        return name

    # --- values ----------------------------------------------------------------------------
    def _constant_arg(self, name: str, value: Any, as_literal: bool, may_own: bool = True) -> Any:
        """The fx argument for constant ``name``: a literal, or an attribute holding its memory
        (``may_own``: when this is its last reader) or a copy."""
        if isinstance(value, (list, tuple)):
            # a constant sequence: each tensor becomes its own constant attribute
            return type(value)(self._constant_arg(f"{name}_{i}", item, as_literal, may_own)
                               for i, item in enumerate(value))
        if not isinstance(value, torch.Tensor):
            return value
        if as_literal and value.dim() == 0 and value.dtype in _LITERAL_DTYPES:
            return value.item()
        if name not in self.constant_attrs:
            attr = self._attr_name(name)
            # NOTE: float tensors are trainable weights; one-element constants (a Clip bound, a
            # Dropout ratio, an epsilon) are hyper-parameters and stay buffers.
            kept = self.ctx.own(value, name) if may_own else owned_copy(value)
            if value.is_floating_point() and value.dtype.itemsize > 1 and value.numel() > 1:
                self.root.register_parameter(attr, nn.Parameter(kept, requires_grad=True))
            else:
                self.root.register_buffer(attr, kept)
            self.constant_attrs[name] = attr
        attr = self.constant_attrs[name]
        node = self.fx_graph.get_attr(attr)
        return node

    def value(self, name: str, as_literal: bool = False) -> Any:
        """The fx argument for ONNX tensor ``name``."""
        if not name:
            return None
        if name in self.env:
            return self.env[name]
        if name in self.deferred:
            self._emit(*self.deferred.pop(name))
            return self.env[name]
        if self.ctx.is_constant(name):
            return self._constant_arg(name, self.ctx.constant(name), as_literal)
        raise InvalidModelError(f"tensor '{name}' is used but no node, input or initializer produces it")

    # --- building --------------------------------------------------------------------------
    def add_inputs(self, weights: dict[str, Any]) -> None:
        self.ctx.add_initializers(self.graph.initializer)
        self.ctx.constants.update(weights)
        for value in self.graph.input:
            if self.ctx.is_constant(value.name):
                continue  # IR 3 models list their initializers as inputs too
            node = self.fx_graph.placeholder(sanitize(value.name, "input"))
            self.value_nodes[value.name] = node.name
            dims = value.type.tensor_type.shape.dim if value.type.HasField("tensor_type") else None
            if dims is not None and value.type.tensor_type.HasField("shape") and len(dims) == 0:
                # NOTE: a declared scalar input also accepts a one-element tensor of shape [1].
                node = self.fx_graph.call_method("reshape", (node, ()))
            self.env[value.name] = node

    def _type_of(self, name: str) -> onnx.TypeProto | None:
        value = self.ctx.constant(name)
        elem = self.ctx.elem_type(name)
        if isinstance(value, torch.Tensor) and elem is not None:
            return onnx.helper.make_tensor_type_proto(elem, list(value.shape))
        return self.ctx.value_info.get(name)

    def add_node(self, proto: onnx.NodeProto, index: int, opsets: dict[str, int] | None = None) -> None:
        opsets = opsets or self.ctx.opsets
        opset = _node_opset(opsets, proto.domain)
        node = OnnxNode(proto, opset, name=proto.name or f"{proto.op_type.lower()}_{index}")
        while node.outputs and not node.outputs[-1]:
            node.outputs.pop()
        entry = lookup(proto.domain, proto.op_type, opset)
        if entry is None:
            expanded = expand_schema_function(proto, opset, [self._type_of(n) if n else None for n in proto.input])
            if expanded is None:
                raise UnsupportedOperatorError(f"{node.describe()} has no converter")
            body, body_opsets = expanded
            for sub in body:
                self.add_node(sub, index, {**opsets, **body_opsets})
            return
        for name in node.inputs:
            if name and name not in self.env and name not in self.deferred and not self.ctx.is_constant(name):
                raise InvalidModelError(
                    f"{node.describe()}: input '{name}' is not produced by any earlier node, "
                    "graph input or initializer (is the graph topologically sorted?)"
                )
        try:
            lowered, foldable = call_converter(entry, node, self.ctx)  # never folds past the size limit
        except (ConversionError, UnsupportedOperatorError, InvalidModelError):
            raise
        except Exception as exc:
            raise ConversionError(
                f"{node.describe()}: converter {entry.fn.__module__}.{entry.fn.__qualname__} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        converter_name = f"{entry.fn.__module__}.{entry.fn.__qualname__}"
        static = propagate(node, self.ctx)
        if static is not None:  # e.g. Gather(Shape(x), 1) where that dim is static
            lowered = Lowered.const(static)
        for out in node.outputs:
            if out:
                self.producers[out] = (node.name, node.op_type, converter_name)
        if lowered.constant is not None:
            self.ctx.constants[node.outputs[0]] = self._fresh_marked(lowered.constant, node.inputs)
            return
        inputs = node.inputs if lowered.inputs is None else lowered.inputs
        if foldable and entry.deterministic and all(not n or self.ctx.is_constant(n) for n in inputs) \
                and not has_symbolic(lowered.kwargs):
            self._fold(node, lowered, inputs, converter_name)
            return
        if len(node.outputs) == 1 and symbolic_value(self.ctx, node.outputs[0]) is not None \
                and not isinstance(lowered.target, nn.Module):
            # NOTE: its consumers mostly take the symbolic value (literal sizes, x.size(0)); the
            # tensor form is built only if one of them reads it.  Constants it reads are held
            # here: the build loop forgets a constant after its last reader in graph order.
            held = {n: self.ctx.constant(n) for n in inputs if n and self.ctx.is_constant(n)}
            self.deferred[node.outputs[0]] = (node, lowered, inputs, converter_name, held)
            return
        self._emit(node, lowered, inputs, converter_name)

    def _fold(self, node: OnnxNode, lowered: Lowered, inputs: list[str], converter_name: str) -> None:
        args = [self.ctx.constant(n) if n else None for n in inputs]
        try:
            with torch.no_grad():
                result = lowered.target(*args, **lowered.kwargs)
        except Exception as exc:
            raise ConversionError(
                f"{node.describe()}: evaluating its constant inputs with {converter_name} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if grows_past_limit(node, self.ctx, value_bytes(result)):
            # NOTE: bigger than the folding limit (ConvertModel's max_constant_bytes): computed at
            # run time instead, so the module never embeds it.
            del result, args
            self._emit(node, lowered, inputs, converter_name)
            return
        outputs = [result] if len(node.outputs) == 1 else list(result)
        for name, value in zip(node.outputs, outputs):
            if name:
                self.ctx.constants[name] = self._fresh_marked(value, inputs)

    def _fresh_marked(self, value: Any, inputs: list[str]) -> Any:
        """A computed constant, detached; when it is a tensor in new memory (a folded
        DequantizeLinear or ConstantOfShape), a layer may keep that memory (``ctx.own``)."""
        if not isinstance(value, torch.Tensor):
            return value
        if value.requires_grad:
            value = value.detach()
        memory = value.untyped_storage().data_ptr()
        read = [self.ctx.constants.get(n) for n in inputs if n]
        if all(not isinstance(t, torch.Tensor) or t.untyped_storage().data_ptr() != memory for t in read):
            mark_private(value)
        return value

    def _emit(self, node: OnnxNode, lowered: Lowered, inputs: list[str], converter_name: str,
              held: dict[str, Any] | None = None) -> None:
        literals = lowered.scalars_as_literals
        # NOTE: a deferred node is emitted while a later node is converted: the read counts that
        # decide whether a layer may take a constant's memory (ConversionContext.own) are not its.
        args = tuple(self._constant_arg(n, held[n], literals, may_own=False) if held and n in held
                     else self.value(n, literals) for n in inputs)
        kwargs = materialize(self, dict(lowered.kwargs))  # run-time sizes (x.size(0)) as fx nodes
        out_name = sanitize(node.outputs[0] if len(node.outputs) == 1 else node.name, "out")
        if isinstance(lowered.target, nn.Module):
            attr = self._attr_name(node.name)
            self.root.add_module(attr, lowered.target)
            fx_node = self.fx_graph.create_node("call_module", attr, args, kwargs, name=out_name)
        else:
            fx_node = self.fx_graph.create_node("call_function", lowered.target, args, kwargs, name=out_name)
        fx_node.meta["onnx_node"] = node.name
        fx_node.meta["onnx_op"] = node.op_type
        fx_node.meta["converter"] = converter_name
        if len(node.outputs) == 1:
            self.env[node.outputs[0]] = fx_node
            self.value_nodes[node.outputs[0]] = fx_node.name
            return
        for i, name in enumerate(node.outputs):
            if name:
                item = self.fx_graph.create_node(
                    "call_function", operator.getitem, (fx_node, i), {}, name=sanitize(name, "out")
                )
                self.env[name] = item
                self.value_nodes[name] = item.name

    def settle_weights(self) -> Callable[[], None]:
        """Make the weights layers took over (``ConversionContext.own``) contiguous, in place
        where nothing else shares their memory, else as copies.

        The graph's own constants are settled here; the layers' transposing copies (MatMul
        weights for ``nn.Linear``) run in a background thread while the fx graph is fused and
        compiled, which reads only their types and shapes.  Returns the function that waits
        for them (and raises what they raised)."""
        if not self.ctx.claimed:
            return _no_wait
        spare_now: dict[int, list[torch.Tensor]] = {}
        spare_later: dict[int, list[torch.Tensor]] = {}
        later: list[tuple[torch.Tensor, torch.Tensor]] = []
        for module in self.root.modules():
            in_layer = module is not self.root
            for tensors in (module._parameters, module._buffers):
                for value in tensors.values():
                    if value is None or value.untyped_storage().data_ptr() not in self.ctx.claimed:
                        continue
                    if in_layer:
                        settled = settle(value, spare_later, later)
                    else:
                        settled = settle(value, spare_now)
                    if settled is not value:
                        value.data = settled
        self.ctx.claimed.clear()
        return _copy_in_background(later)

    def add_outputs(self) -> None:
        values = [self.value(out.name) for out in self.graph.output]
        self.fx_graph.output(values[0] if len(values) == 1 else tuple(values))

    def build(self, weights: dict[str, Any] | None = None) -> fx.GraphModule:
        self.add_inputs(dict(weights or {}))
        reads = [_node_reads(proto) for proto in self.graph.node]
        # NOTE: a graph output counts as a read that never comes: it is neither released nor
        # adopted by a layer (ConversionContext.own).
        pending_reads = Counter(name for names in reads for name in names)
        pending_reads.update(value.name for value in self.graph.output)
        self.ctx.reads_left = pending_reads
        for index, proto in enumerate(self.graph.node):
            self.add_node(proto, index)
            for name in reads[index]:
                pending_reads[name] -= 1
                if not pending_reads[name]:
                    self.ctx.release(name)  # NOTE: at most one weight copy is alive beyond the layers
        self.add_outputs()  # NOTE: before settling: it may emit deferred shape arithmetic
        self.deferred.clear()
        wait_for_weights = self.settle_weights()
        try:
            fuse_graph(self.root, self.fx_graph, self.ctx.value_info, self.value_nodes)  # onnx2torch.fusion
            self.fx_graph.lint()
            self.fx_graph.owning_module = self.root  # dead-code elimination asks submodules if impure
            self.fx_graph.eliminate_dead_code()
            self.fx_graph.owning_module = None
            # NOTE: the GraphModule copies only the submodules and constants still used, and
            # generates forward once.
            module = fx.GraphModule(self.root, self.fx_graph, class_name="ConvertedModel")
        finally:
            wait_for_weights()
        return module


def _no_wait() -> None:
    """Nothing runs in the background."""


def _copy_in_background(copies: list[tuple[torch.Tensor, torch.Tensor]]) -> Callable[[], None]:
    """Run ``destination.copy_(source)`` for each pair, in order, in a thread; returns the
    function that waits for it and re-raises its error."""
    copy_all = getattr(torch, "_foreach_copy_", None)
    if not copies or copy_all is None:  # NOTE: torch < 2.1 has no _foreach_copy_: copy here
        for destination, source in copies:
            destination.copy_(source)
        return _no_wait
    failures: list[BaseException] = []

    def copy_weights() -> None:
        # NOTE: one call that releases the GIL for all the copies (a Python loop would wait
        # for the GIL after each copy while the main thread runs Python).  On CPU it copies the
        # pairs one after the other, in order, which the reused memory requires (settle).
        try:
            copy_all([d for d, _ in copies], [s for _, s in copies])
        except BaseException as exc:  # noqa: BLE001 - re-raised by wait()
            failures.append(exc)

    thread = threading.Thread(target=copy_weights, name="onnx2torch-settle-weights", daemon=True)
    thread.start()

    def wait() -> None:
        thread.join()
        copies.clear()
        if failures:
            raise failures[0]

    return wait


def _node_reads(proto: onnx.NodeProto) -> list[str]:
    """The tensors a node reads: its inputs and what its subgraphs take from outside."""
    names = [name for name in proto.input if name]
    for attr in proto.attribute:
        if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs:
                names.extend(outer_scope_names(sub))
    return names


def outer_scope_names(graph: onnx.GraphProto) -> list[str]:
    """Names a (sub)graph reads that it neither receives as input nor produces, in first-use
    order — the outer-scope values of an If/Loop/Scan body, nested subgraphs included."""
    known = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    known |= {t.name for t in graph.sparse_initializer}
    outer: list[str] = []

    def visit(names: Iterable[str]) -> None:
        for name in names:
            if name and name not in known and name not in outer:
                outer.append(name)

    for node in graph.node:
        visit(node.input)
        for attr in node.attribute:
            subs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for sub in subs:
                visit(outer_scope_names(sub))
        known.update(node.output)
    visit(o.name for o in graph.output)
    return outer


def build_subgraph(graph: onnx.GraphProto, ctx: ConversionContext) -> tuple[fx.GraphModule, list[str]]:
    """A GraphModule for a control-flow body.  Its ``forward`` takes the body's own inputs, then
    the outer-scope values it reads that are not constants (returned as the second item, to be
    passed by the caller).  Outer constants are baked in."""
    child = ConversionContext(ctx.opsets, {**ctx.value_info, **_collect_value_info(graph)}, ctx.base_dir)
    child.constants = dict(ctx.constants)
    child.pending = dict(ctx.pending)
    own = {v.name for v in graph.input}
    outer = [n for n in outer_scope_names(graph) if n not in own and not ctx.is_constant(n)]
    assembler = GraphAssembler(graph, child)
    for proto in graph.initializer:
        child.constants[proto.name] = tensor_from_proto(proto, ctx.base_dir)
    for name in [v.name for v in graph.input] + outer:
        if name in child.constants and name in own:
            del child.constants[name]  # a body input shadows an outer constant of the same name
        node = assembler.fx_graph.placeholder(sanitize(name, "input"))
        assembler.env[name] = node
    for index, proto in enumerate(graph.node):
        assembler.add_node(proto, index)
    outputs = [assembler.value(o.name) for o in graph.output]
    assembler.fx_graph.output(tuple(outputs))
    module = fx.GraphModule(assembler.root, assembler.fx_graph, class_name="Subgraph")
    if module.graph.eliminate_dead_code():
        module = fx.GraphModule(module, module.graph, class_name="Subgraph")
    return module, outer


def assemble(model: onnx.ModelProto, base_dir: str | None = None,
             initializers: dict[str, onnx.TensorProto] | None = None) -> fx.GraphModule:
    """Convert a (simplified) ONNX model into a ``torch.fx.GraphModule``.  ``initializers`` are
    weights kept outside the model (``simplify.simplify_stripped``), listed as its inputs."""
    model = inline_local_functions(model)
    check_supported(model)
    ctx = ConversionContext(model_opsets(model), infer_value_info(model), base_dir)
    ctx.add_initializers((initializers or {}).values())
    assembler = GraphAssembler(model.graph, ctx)
    # NOTE: ONNX graphs describe inference; layers with train-time behaviour (BatchNorm,
    # Dropout) start in eval mode, and model.train() opts into training.
    module = assembler.build().eval()
    module.onnx_input_names = [v.name for v in model.graph.input if v.name in assembler.env]
    module.onnx_value_nodes = dict(assembler.value_nodes)
    module.onnx_producers = dict(assembler.producers)
    return module
