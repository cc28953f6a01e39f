"""Simplification stage: onnx-simplifier (with onnxoptimizer's passes), quiet and fail-safe.

Large initializers never pass through it (they become typed graph inputs of a skeleton and come
back afterwards), and nodes that repeat an earlier one are merged before it runs
(:func:`merge_repeated_nodes`), so its passes see each computation once.

BatchNorm is never fused into convolutions here (``skip_fuse_bn=True``) so it stays a trainable
``nn.BatchNorm*``.  Input shapes are fixed only when the caller gives them; symbolic dims stay
symbolic otherwise.  When onnxsim fails or cannot take the model, a warning is issued and the
unsimplified model is used.
"""
from __future__ import annotations

import contextlib
import ctypes
import inspect
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator

import onnx

__all__ = ["simplify_model", "simplify_stripped", "strip_large_initializers", "restore_initializers",
           "merge_repeated_nodes", "empty_model_like"]

# NOTE: warnings point at the line that called ConvertModel: simplify_stripped <- ConvertModel <-
# its error guard (onnx2torch.validate.clean_errors) <- the caller.
_STACKLEVEL = 4

#: Initializers with more elements than this are kept out of onnxsim and shape inference.
LARGE_INITIALIZER = 1024

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _silenced_stdout() -> Iterator[None]:
    """Redirect file descriptors 1 and 2 (onnxsim's C++ side prints there) to a temp file."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(open(os.devnull, "w")) as devnull:  # noqa: SIM115
                try:
                    yield
                finally:
                    devnull.close()
        finally:
            sys.stdout.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


#: onnxsim's optimize / infer-shapes / fold rounds. Its default runs them to a fixed point (four
#: rounds on Swin-T's 4,000 nodes); the assembler folds what a third round would, so two rounds
#: give the same converted graph for 170 of the 173 models of tools/zoo.py's corpus (the other
#: three differ only in reshapes, which are views) at 20% less simplification time.
SIMPLIFIER_ROUNDS = 2


@contextlib.contextmanager
def _simplifier_rounds(rounds: int) -> Iterator[None]:
    """Cap onnxsim's fixed-point rounds (its ``ONNXSIM_FIXED_POINT_ITERS``) unless the caller
    set the variable; builds of onnxsim that do not read it ignore it."""
    key = "ONNXSIM_FIXED_POINT_ITERS"
    if key in os.environ:
        yield
        return
    os.environ[key] = str(rounds)
    try:
        yield
    finally:
        os.environ.pop(key, None)


def strip_large_initializers(
    model: onnx.ModelProto, limit: int = LARGE_INITIALIZER
) -> tuple[onnx.ModelProto, dict[str, onnx.TensorProto]]:
    """A copy of the model whose large initializers are graph inputs of the same type and shape,
    and the initializers taken out.  Weights never need to pass through the simplifier or shape
    inference: nothing about shapes depends on their values, and copying them costs seconds and
    gigabytes on large models."""
    stash: dict[str, onnx.TensorProto] = {}
    graph = model.graph
    large = [t for t in graph.initializer if _elements(t) > limit]
    if not large:
        return model, stash
    skeleton = _model_like(model, graph.node, [t for t in graph.initializer if _elements(t) <= limit],
                           graph.value_info)
    listed = {v.name for v in graph.input}
    for tensor in large:
        stash[tensor.name] = tensor
        if tensor.name not in listed:
            skeleton.graph.input.append(
                onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    return skeleton, stash


def empty_model_like(model: onnx.ModelProto) -> onnx.ModelProto:
    """A model with ``model``'s header (IR version, producer, opsets, local functions, metadata)
    and an empty graph."""
    copy = onnx.ModelProto()
    for field_name in ("ir_version", "producer_name", "producer_version", "domain", "model_version", "doc_string"):
        setattr(copy, field_name, getattr(model, field_name))
    copy.opset_import.extend(model.opset_import)
    copy.functions.extend(model.functions)
    copy.metadata_props.extend(model.metadata_props)
    return copy


def _model_like(model: onnx.ModelProto, nodes: Iterable[onnx.NodeProto], initializers: Iterable[onnx.TensorProto],
                value_info: Iterable[onnx.ValueInfoProto]) -> onnx.ModelProto:
    """A new model with ``model``'s header, functions, graph inputs and outputs, and the given
    nodes, initializers and value_info (copied)."""
    copy = empty_model_like(model)
    graph = model.graph
    copy.graph.name = graph.name
    copy.graph.node.extend(nodes)
    copy.graph.input.extend(graph.input)
    copy.graph.output.extend(graph.output)
    copy.graph.value_info.extend(value_info)
    copy.graph.sparse_initializer.extend(graph.sparse_initializer)
    copy.graph.initializer.extend(initializers)
    return copy


#: Domains whose ops merge_repeated_nodes may merge (pure functions of their inputs) ...
_MERGED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
#: ... except those whose output may differ between two calls with the same inputs.
_RANDOM_OPS = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli",
                         "Multinomial", "Dropout"})


def merge_repeated_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the model in which each standard-op node that repeats an earlier one (same op,
    same inputs, same attributes) is gone and its outputs are read from the earlier node; the
    model itself when nothing repeats or the graph has subgraphs (whose implicit reads of outer
    names this pass does not rename).

    The TorchScript exporter writes shape arithmetic once per use: 2,203 of Swin-T's 4,093
    nodes repeat an earlier one.  onnxsim merges them as well (eliminate_common_subexpression),
    but each of its passes first runs over all of them; merged here in one pass (about five
    microseconds per node), its whole pipeline runs over half the graph.  The converted graphs
    are the same, op for op, on the 192 models of tools/zoo.py's corpus and benchmarks/."""
    from onnx2torch.limits import subgraphs_of  # noqa: PLC0415

    graph = model.graph
    protected = {v.name for v in graph.output}
    rename: dict[str, str] = {}
    first: dict[tuple, list[str]] = {}
    nodes: list[onnx.NodeProto] = []
    changed: dict[int, list[str]] = {}  # kept nodes whose inputs are renamed, by index
    get = rename.get
    for node in graph.node:
        if subgraphs_of(node):
            return model
        op, domain, attributes = node.op_type, node.domain, node.attribute
        standard = domain in _MERGED_DOMAINS
        inputs = list(node.input)
        renamed = [get(name, name) for name in inputs]
        if standard and op not in _RANDOM_OPS:
            outputs = list(node.output)
            key = (op, domain or "ai.onnx", tuple(renamed), len(outputs),
                   tuple(a.SerializeToString() for a in attributes))
            earlier = first.get(key)
            if earlier is not None and protected.isdisjoint(outputs) and \
                    all(e or not o for o, e in zip(outputs, earlier)):
                rename.update((o, e) for o, e in zip(outputs, earlier) if o)
                continue
            first.setdefault(key, outputs)
        if renamed != inputs:
            changed[len(nodes)] = renamed
        nodes.append(node)
    if not rename:
        return model
    merged = _model_like(model, nodes, graph.initializer, [v for v in graph.value_info if v.name not in rename])
    copies = merged.graph.node
    for index, renamed in changed.items():
        del copies[index].input[:]
        copies[index].input.extend(renamed)
    return merged


def _elements(tensor: onnx.TensorProto) -> int:
    count = 1
    for d in tensor.dims:
        count *= d
    return count


def restore_initializers(skeleton: onnx.ModelProto, stash: dict[str, onnx.TensorProto], original_inputs: set[str]) -> onnx.ModelProto:
    """Put stripped initializers back: as initializers again, no longer graph inputs (unless the
    original model listed them as inputs too), and only those the graph still uses."""
    if not stash:
        return skeleton
    used = {name for node in skeleton.graph.node for name in node.input}
    used |= {o.name for o in skeleton.graph.output}
    used |= _subgraph_reads(skeleton.graph)
    inputs = [v for v in skeleton.graph.input if v.name not in stash or v.name in original_inputs]
    del skeleton.graph.input[:]
    skeleton.graph.input.extend(inputs)
    skeleton.graph.initializer.extend(t for name, t in stash.items() if name in used)
    return skeleton


def _subgraph_reads(graph: onnx.GraphProto) -> set[str]:
    names: set[str] = set()
    for node in graph.node:
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                names |= {n for sn in sub.node for n in sn.input} | _subgraph_reads(sub)
    return names


def _without_declared_sizes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose graph outputs and value_info keep element types and ranks but not the sizes
    they declare.

    Exporters sometimes declare a dimension that the graph computes from a symbolic input
    dimension as the traced size (torch's dynamo exporter does around batch-first LSTMs); onnxsim
    would trust the declaration and fold it into a Reshape target, freezing that dimension.
    Inference recomputes every size the graph determines."""
    def fixed(output: onnx.ValueInfoProto) -> bool:
        tt = output.type.tensor_type if output.type.HasField("tensor_type") else None
        return tt is not None and any(d.HasField("dim_value") for d in tt.shape.dim)

    if not any(fixed(v) for v in list(model.graph.output) + list(model.graph.value_info)):
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for output in list(copy.graph.output) + list(copy.graph.value_info):
        if fixed(output):
            for dim in output.type.tensor_type.shape.dim:
                if dim.HasField("dim_value"):
                    dim.Clear()  # an unknown size
    return copy


def _return_freed_memory() -> None:
    """Hand the heap memory onnxsim and onnxruntime have freed back to the system.

    glibc keeps freed heap pages (tens of MB after simplifying a large graph) for reuse, but the
    weights read next are large allocations that never reuse them, so they would only add to the
    conversion's peak.  ``malloc_trim`` is glibc's; elsewhere this does nothing."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except Exception:  # noqa: BLE001 - not glibc (musl, macOS, Windows): nothing to do
        return
    trim(0)


def _accepts(simplify: Callable, keyword: str) -> bool:
    try:
        return keyword in inspect.signature(simplify).parameters
    except (TypeError, ValueError):  # pragma: no cover - a signature Python cannot read
        return False


#: Domains whose schemas onnxsim links in itself.
_STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview", "ai.onnx.preview.training"})


def _standard_domains_only(model: onnx.ModelProto) -> bool:
    """Whether every op of the model is a standard ONNX op (``False`` when it has functions or
    control flow, whose bodies are not looked into)."""
    from onnx2torch.limits import SUBGRAPH_OPS  # noqa: PLC0415

    if model.functions:
        return False
    ops = {(node.domain, node.op_type) for node in model.graph.node}
    return all(domain in _STANDARD_DOMAINS and op not in SUBGRAPH_OPS for domain, op in ops)


def simplify_model(
    model: onnx.ModelProto, input_shapes: dict[str, list[int]] | None = None
) -> onnx.ModelProto:
    """The model simplified by onnxsim, or the model itself (with a warning) when that fails."""
    skeleton, stash = simplify_stripped(model, input_shapes)
    return restore_initializers(skeleton, stash, {v.name for v in model.graph.input})


def simplify_stripped(
    model: onnx.ModelProto, input_shapes: dict[str, list[int]] | None = None
) -> tuple[onnx.ModelProto, dict[str, onnx.TensorProto]]:
    """:func:`simplify_model` without putting the large initializers back: the simplified
    skeleton (which lists them as typed graph inputs) and those it still reads, by name.

    Copying the weights back into a ModelProto costs as much as the weights themselves; the
    assembler takes them from here (``assemble(skeleton, initializers=stash)``) instead."""
    try:
        import onnxsim  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - a declared dependency
        warnings.warn(f"onnxsim is not importable ({exc}); converting the unsimplified model", stacklevel=_STACKLEVEL)
        return model, {}
    from onnx2torch.limits import data_propagation_hazard  # noqa: PLC0415

    skeleton, stash = strip_large_initializers(model)
    skeleton = merge_repeated_nodes(skeleton)
    hazard = data_propagation_hazard(skeleton)  # NOTE: what onnxsim will see: each computation once
    if hazard:
        warnings.warn(f"skipping onnx-simplifier: {hazard}, which it would evaluate element by element; "
                      "converting the unsimplified model", stacklevel=_STACKLEVEL)
        return model, {}
    # NOTE: onnxsim must not materialise big constants (weights made by ConstantOfShape, say):
    # folding them here costs seconds and copies; the assembler folds them in one step.
    # NOTE: eliminate_nop_with_unit drops an Add of an all-zero bias / a Mul by all-one scales:
    # exact for inference, but those are weights a fine-tuned model must keep (freshly
    # initialised attention biases are zeros), so the pass is skipped.
    kwargs = {"skip_fuse_bn": True, "tensor_size_threshold": "64KB", "skipped_optimizers": ["eliminate_nop_with_unit"]}
    if input_shapes:
        kwargs["overwrite_input_shapes"] = {k: list(v) for k, v in input_shapes.items()}
    if _accepts(onnxsim.simplify, "certify"):
        # NOTE: builds that can prove their own result with Z3 do so by default when z3-solver
        # is installed: seconds per model, and no use here (the assembler is checked instead).
        kwargs["certify"] = False
    if _accepts(onnxsim.simplify, "import_custom_schemas") and _standard_domains_only(model):
        # NOTE: copying the schemas registered with onnx into onnxsim's registry matters only
        # for custom ops; it reads every schema onnx has, on every call.
        kwargs["import_custom_schemas"] = False
    skeleton = _without_declared_sizes(skeleton)
    try:
        with _silenced_stdout(), warnings.catch_warnings(), _simplifier_rounds(SIMPLIFIER_ROUNDS):
            warnings.simplefilter("ignore")
            simplified, ok = onnxsim.simplify(skeleton, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure means: go on unsimplified
        warnings.warn(
            f"onnx-simplifier could not simplify this model ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); converting the unsimplified model",
            stacklevel=_STACKLEVEL,
        )
        return model, {}
    if not ok:
        warnings.warn("onnx-simplifier's check failed; converting the unsimplified model", stacklevel=_STACKLEVEL)
        return model, {}
    used = {name for node in simplified.graph.node for name in node.input}
    used |= {o.name for o in simplified.graph.output} | _subgraph_reads(simplified.graph)
    inputs = [v for v in simplified.graph.input if v.name not in stash or v.name in used]
    if len(inputs) != len(simplified.graph.input):
        del simplified.graph.input[:]
        simplified.graph.input.extend(inputs)
    for value in simplified.graph.input:
        if value.name in stash:
            # NOTE: the weight's own dims, whatever onnxsim made of them (it merges a value_info
            # entry for the name, which _without_declared_sizes stripped of its sizes).
            tensor = stash[value.name]
            value.type.CopyFrom(onnx.helper.make_tensor_type_proto(tensor.data_type, list(tensor.dims)))
    _return_freed_memory()
    return simplified, {name: tensor for name, tensor in stash.items() if name in used}
