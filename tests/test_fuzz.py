"""Fuzzing: mutated models convert or fail with an Onnx2TorchError, within a time limit.

A small valid model (Conv, MaxPool, Constant, Reshape, MatMul, If with two branches, Softmax) is
mutated two ways by hypothesis, deterministically (``derandomize``) so CI sees the same cases:

- its serialized bytes: flipped bits, overwritten/deleted/inserted/duplicated runs, truncation
  (converted from a file, so the loader is fuzzed too);
- its fields: op types, inputs and outputs renamed, nodes dropped/duplicated/swapped, attributes
  replaced by values of any type, initializer dims/types/bytes, external-data locations, opsets,
  IR version, input types, subgraph nodes.

Each case must return a module or raise :class:`Onnx2TorchError` — any other exception, or a
case running past ``CASE_SECONDS`` (SIGALRM), fails the test; so does an error that only the
pipeline's last-resort wrapper caught ("unexpected ..."), which means validation missed a
malformation.  ``FUZZ_EXAMPLES`` scales the
number of cases per test (default 1100; two tests, so 2200 models).
"""
from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import AttributeProto, TensorProto, numpy_helper

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from onnx2torch import ConvertModel, Onnx2TorchError  # noqa: E402

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1100"))
CASE_SECONDS = 10.0
F = TensorProto.FLOAT


def base_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    then_g = oh.make_graph([oh.make_node("Relu", ["p"], ["t_out"], name="then_relu")], "then", [],
                           [oh.make_tensor_value_info("t_out", F, None)])
    else_g = oh.make_graph([oh.make_node("Neg", ["p"], ["e_out"], name="else_neg")], "else", [],
                           [oh.make_tensor_value_info("e_out", F, None)])
    nodes = [
        oh.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        oh.make_node("Relu", ["c"], ["r"], name="relu"),
        oh.make_node("MaxPool", ["r"], ["p0"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        oh.make_node("Constant", [], ["shape"], name="shape_const",
                     value=numpy_helper.from_array(np.array([1, 16], np.int64))),
        oh.make_node("Reshape", ["p0", "shape"], ["f"], name="reshape"),
        oh.make_node("MatMul", ["f", "w2"], ["m"], name="matmul"),
        oh.make_node("ReduceSum", ["m"], ["s"], name="rsum", keepdims=0),
        oh.make_node("Greater", ["s", "zero"], ["cond"], name="gt"),
        oh.make_node("Identity", ["m"], ["p"], name="ident"),
        oh.make_node("If", ["cond"], ["i"], name="if", then_branch=then_g, else_branch=else_g),
        oh.make_node("Softmax", ["i"], ["y"], name="softmax", axis=-1),
    ]
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 2, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"),
        numpy_helper.from_array(rng.standard_normal((16, 5)).astype(np.float32), "w2"),
        numpy_helper.from_array(np.array(0, np.float32), "zero"),
    ]
    graph = oh.make_graph(nodes, "fuzz", [oh.make_tensor_value_info("x", F, [1, 2, 4, 4])],
                          [oh.make_tensor_value_info("y", F, [1, 5])], inits)
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)


BASE = base_model()
BASE_BYTES = BASE.SerializeToString()
NAMES = ["x", "w", "b", "c", "r", "p0", "shape", "f", "w2", "m", "s", "zero", "cond", "p", "i", "y", "ghost", ""]
OPS = ["Relu", "Add", "Conv", "Reshape", "If", "Loop", "Scan", "Concat", "Gather", "Slice", "ConstantOfShape",
       "Range", "Expand", "Tile", "Transpose", "Split", "Squeeze", "Unsqueeze", "MatMul", "Gemm", "Softmax",
       "Cast", "Resize", "Pad", "TopK", "Einsum", "BatchNormalization", "Identity", "Constant", "Mystery", ""]
ATTRS = ["axis", "axes", "kernel_shape", "pads", "strides", "dilations", "group", "perm", "to", "value",
         "keepdims", "then_branch", "else_branch", "body", "mode", "equation", "alpha", "shape", "unknown"]
LOCATIONS = ["../escape.bin", "/etc/passwd", "missing.bin", "", "a/../../b.bin", "sub/x.bin", "C:\\w.bin", "."]


# --- the per-case time limit --------------------------------------------------------------------

class CaseTimeout(BaseException):
    """A case ran past CASE_SECONDS (BaseException, so no ``except Exception`` swallows it)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expired(signum, frame):
        raise CaseTimeout(f"a fuzz case ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def watchdog(seconds: float):
    """A hang inside C code never returns to Python for SIGALRM to act: end the process then."""
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def convert(source, counts: dict[str, int], simplify: bool = False) -> None:
    counts["cases"] += 1
    started = time.perf_counter()
    with time_limit(CASE_SECONDS), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ConvertModel(source, simplify=simplify)
            counts["converted"] += 1
        except Onnx2TorchError as exc:
            counts["refused"] += 1
            if str(exc).startswith("converting the model: unexpected"):
                # the pipeline's last-resort wrapper (onnx2torch.validate.clean_errors): a
                # malformation that validation should name, or a bug
                UNEXPECTED.append(str(exc))
    counts["slowest_ms"] = max(counts["slowest_ms"], int(1000 * (time.perf_counter() - started)))


UNEXPECTED: list[str] = []


def _run_campaign(label: str, case, counts) -> None:
    """Run a hypothesis campaign under the watchdog, then check that every case converted or was
    refused as expected, and that both outcomes occurred."""
    started = time.perf_counter()
    with watchdog(900):
        case()
    elapsed = time.perf_counter() - started
    print(f"{label}: {counts} in {elapsed:.1f} s", file=sys.stderr)
    _check_no_unexpected()
    assert counts["cases"] >= EXAMPLES
    assert counts["converted"] > 0 and counts["refused"] > 0


def _check_no_unexpected() -> None:
    found, UNEXPECTED[:] = list(UNEXPECTED), []
    assert not found, f"{len(found)} case(s) failed outside validation and the converters: {found[:5]}"


def _counts() -> dict[str, int]:
    return {"cases": 0, "converted": 0, "refused": 0, "slowest_ms": 0}


def _settings(examples: int):
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), print_blob=True)


# --- byte mutations -----------------------------------------------------------------------------

_SIZE = len(BASE_BYTES)
BYTE_MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, _SIZE - 1), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, _SIZE - 1), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, _SIZE - 1), st.integers(1, 64)),
    st.tuples(st.just("insert"), st.integers(0, _SIZE), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("duplicate"), st.integers(0, _SIZE - 1), st.integers(1, 64)),
    st.tuples(st.just("truncate"), st.integers(0, _SIZE - 1)),
)


def mutate_bytes(data: bytes, mutations) -> bytes:
    buf = bytearray(data)
    for kind, *args in mutations:
        if not buf:
            break
        pos = args[0] % len(buf) if kind != "insert" else args[0] % (len(buf) + 1)
        if kind == "flip":
            buf[pos] ^= 1 << args[1]
        elif kind == "set":
            buf[pos] = args[1]
        elif kind == "delete":
            del buf[pos: pos + args[1]]
        elif kind == "insert":
            buf[pos:pos] = args[1]
        elif kind == "duplicate":
            buf[pos:pos] = buf[pos: pos + args[1]]
        else:
            del buf[pos:]
    return bytes(buf)


def test_fuzz_bytes():
    counts = _counts()
    folder = Path(tempfile.mkdtemp(prefix="onnx2torch-fuzz-"))
    path = folder / "m.onnx"

    @_settings(EXAMPLES)
    @given(st.lists(BYTE_MUTATION, min_size=1, max_size=4))
    def case(mutations):
        path.write_bytes(mutate_bytes(BASE_BYTES, mutations))
        convert(path, counts)

    _run_campaign("byte fuzz", case, counts)


# --- field mutations ----------------------------------------------------------------------------

def _attr_value():
    graph = oh.make_graph([oh.make_node("Identity", ["x"], ["g_out"])], "sub", [],
                          [oh.make_tensor_value_info("g_out", F, None)])
    return st.one_of(
        st.integers(-5, 5), st.integers(-(2**62), 2**62), st.floats(allow_nan=True, allow_infinity=True, width=32),
        st.lists(st.integers(-3, 2**40), max_size=6), st.lists(st.floats(width=32), max_size=4),
        st.sampled_from(["", "constant", "linear", "ij,jk->ik", "NOTSET", "\xff"]),
        st.just(numpy_helper.from_array(np.array([3], np.int64))),
        st.just(numpy_helper.from_array(np.zeros((0,), np.float32))),
        st.just(graph),
    )


FIELD_MUTATION = st.one_of(
    st.tuples(st.just("op_type"), st.integers(0, 30), st.sampled_from(OPS)),
    st.tuples(st.just("input"), st.integers(0, 30), st.integers(0, 4), st.sampled_from(NAMES)),
    st.tuples(st.just("output"), st.integers(0, 30), st.integers(0, 2), st.sampled_from(NAMES)),
    st.tuples(st.just("drop_node"), st.integers(0, 30)),
    st.tuples(st.just("dup_node"), st.integers(0, 30)),
    st.tuples(st.just("swap_nodes"), st.integers(0, 30), st.integers(0, 30)),
    st.tuples(st.just("attr"), st.integers(0, 30), st.sampled_from(ATTRS), _attr_value()),
    st.tuples(st.just("drop_attrs"), st.integers(0, 30)),
    st.tuples(st.just("init_dims"), st.integers(0, 3), st.lists(st.integers(-2, 2**40), max_size=5)),
    st.tuples(st.just("init_type"), st.integers(0, 3), st.integers(0, 26)),
    st.tuples(st.just("init_bytes"), st.integers(0, 3), st.integers(-40, 40)),
    st.tuples(st.just("external"), st.integers(0, 3), st.sampled_from(LOCATIONS)),
    st.tuples(st.just("opset"), st.sampled_from(["", "ai.onnx", "ai.onnx.ml", "acme"]),
              st.sampled_from([0, 1, 6, 7, 9, 11, 13, 17, 18, 21, 26, 28, 29, 10**6, -1])),
    st.tuples(st.just("ir"), st.integers(-1, 20)),
    st.tuples(st.just("input_type"), st.integers(0, 26), st.lists(st.integers(-2, 2**40), max_size=5)),
    st.tuples(st.just("graph_output"), st.sampled_from(NAMES)),
    st.tuples(st.just("sub_op"), st.sampled_from(["then_branch", "else_branch"]), st.sampled_from(OPS),
              st.sampled_from(NAMES)),
)


def _node(graph: onnx.GraphProto, index: int) -> onnx.NodeProto | None:
    return graph.node[index % len(graph.node)] if len(graph.node) else None


def _set_attr(node: onnx.NodeProto, name: str, value) -> None:
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(kept)
    try:
        node.attribute.append(oh.make_attribute(name, value))
    except (ValueError, TypeError):
        pass


def mutate_fields(mutations) -> onnx.ModelProto:
    model = onnx.ModelProto()
    model.CopyFrom(BASE)
    graph = model.graph
    for kind, *args in mutations:
        node = _node(graph, args[0]) if args and isinstance(args[0], int) else None
        if kind == "op_type" and node is not None:
            node.op_type = args[1]
        elif kind == "input" and node is not None:
            if args[1] < len(node.input):
                node.input[args[1]] = args[2]
            else:
                node.input.append(args[2])
        elif kind == "output" and node is not None:
            if args[1] < len(node.output):
                node.output[args[1]] = args[2]
            else:
                node.output.append(args[2])
        elif kind == "drop_node" and node is not None:
            graph.node.remove(node)
        elif kind == "dup_node" and node is not None:
            graph.node.add().CopyFrom(node)
        elif kind == "swap_nodes" and len(graph.node) > 1:
            i, j = args[0] % len(graph.node), args[1] % len(graph.node)
            a, b = onnx.NodeProto(), onnx.NodeProto()
            a.CopyFrom(graph.node[i])
            b.CopyFrom(graph.node[j])
            graph.node[i].CopyFrom(b)
            graph.node[j].CopyFrom(a)
        elif kind == "attr" and node is not None:
            _set_attr(node, args[1], args[2])
        elif kind == "drop_attrs" and node is not None:
            del node.attribute[:]
        elif kind.startswith("init_") or kind == "external":
            if not graph.initializer:
                continue
            tensor = graph.initializer[args[0] % len(graph.initializer)]
            if kind == "init_dims":
                del tensor.dims[:]
                tensor.dims.extend(args[1])
            elif kind == "init_type":
                tensor.data_type = args[1]
            elif kind == "init_bytes":
                tensor.raw_data = tensor.raw_data[: args[1]] if args[1] < 0 else tensor.raw_data + b"\1" * args[1]
            else:
                tensor.data_location = TensorProto.EXTERNAL
                tensor.ClearField("raw_data")
                del tensor.external_data[:]
                entry = tensor.external_data.add()
                entry.key, entry.value = "location", args[1]
        elif kind == "opset":
            del model.opset_import[:]
            model.opset_import.add(domain=args[0], version=args[1])
        elif kind == "ir":
            model.ir_version = args[0]
        elif kind == "input_type":
            value = graph.input[0]
            value.type.tensor_type.elem_type = args[0]
            del value.type.tensor_type.shape.dim[:]
            for d in args[1]:
                value.type.tensor_type.shape.dim.add(dim_value=d) if d >= 0 else \
                    value.type.tensor_type.shape.dim.add(dim_param="n")
        elif kind == "graph_output":
            graph.output[0].name = args[0]
        elif kind == "sub_op":
            if_nodes = [n for n in graph.node if n.op_type == "If"]
            for attr in (if_nodes[0].attribute if if_nodes else []):
                if attr.name == args[0] and attr.type == AttributeProto.GRAPH and attr.g.node:
                    attr.g.node[0].op_type = args[1]
                    attr.g.node[0].input[:] = [args[2]]
    return model


def test_fuzz_fields(tmp_path):
    counts = _counts()

    @_settings(EXAMPLES)
    @given(st.lists(FIELD_MUTATION, min_size=1, max_size=4))
    def case(mutations):
        model = mutate_fields(mutations)
        if any(t.data_location == TensorProto.EXTERNAL for t in model.graph.initializer):
            path = tmp_path / "m.onnx"  # external data needs a folder: convert from a file
            path.write_bytes(model.SerializeToString())
            convert(path, counts)
        else:
            convert(model, counts)

    _run_campaign("field fuzz", case, counts)


def test_fuzz_with_simplification():
    """A few mutated models through onnx-simplifier too (the default path of ConvertModel)."""
    counts = _counts()

    @_settings(max(EXAMPLES // 20, 10))
    @given(st.lists(FIELD_MUTATION, min_size=1, max_size=3))
    def case(mutations):
        model = mutate_fields(mutations)
        if not any(t.data_location == TensorProto.EXTERNAL for t in model.graph.initializer):
            convert(model, counts, simplify=True)

    with watchdog(600):
        case()
    _check_no_unexpected()
    assert counts["converted"] > 0
