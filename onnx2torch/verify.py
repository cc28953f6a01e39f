"""Compare a converted model with onnxruntime: per-output MSE and max abs error, and (debug
mode) the first node whose output diverges."""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

import numpy as np
import onnx
import torch
from torch import fx, nn

from onnx2torch.dtypes import to_torch
from onnx2torch.errors import ConversionError, VerificationError

__all__ = ["VerificationReport", "OutputComparison", "verify", "make_inputs", "find_first_divergence"]

logger = logging.getLogger(__name__)

_NUMPY_OF = {
    onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.FLOAT16: np.float16, onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.INT16: np.int16, onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.INT64: np.int64, onnx.TensorProto.UINT8: np.uint8,
    onnx.TensorProto.UINT16: np.uint16, onnx.TensorProto.UINT32: np.uint32,
    onnx.TensorProto.UINT64: np.uint64, onnx.TensorProto.BOOL: np.bool_,
}


@dataclass
class OutputComparison:
    """How one output of the converted model compares with onnxruntime's."""

    name: str
    shape: tuple[int, ...]
    mse: float
    max_abs_error: float
    shape_matches: bool = True

    def passed(self, mse_threshold: float) -> bool:
        return self.shape_matches and self.mse <= mse_threshold


@dataclass
class VerificationReport:
    """The per-output comparison of a converted model against onnxruntime."""

    outputs: list[OutputComparison] = field(default_factory=list)

    def passed(self, mse_threshold: float = 1e-7) -> bool:
        return all(o.passed(mse_threshold) for o in self.outputs)

    @property
    def max_mse(self) -> float:
        return max((o.mse for o in self.outputs), default=0.0)

    @property
    def max_abs_error(self) -> float:
        return max((o.max_abs_error for o in self.outputs), default=0.0)

    def format(self, mse_threshold: float = 1e-7) -> str:
        lines = [f"{'output':<32} {'shape':<20} {'MSE':>12} {'max abs err':>12}  status"]
        for o in self.outputs:
            status = "ok" if o.passed(mse_threshold) else ("SHAPE MISMATCH" if not o.shape_matches else "FAIL")
            lines.append(f"{o.name[:32]:<32} {str(list(o.shape))[:20]:<20} {o.mse:>12.3e} {o.max_abs_error:>12.3e}  {status}")
        verdict = "PASSED" if self.passed(mse_threshold) else "FAILED"
        lines.append(f"verification {verdict} (MSE threshold {mse_threshold:g})")
        return "\n".join(lines)

    __str__ = format


def _graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in initializers]


def make_inputs(
    model: onnx.ModelProto, input_shapes: dict[str, list[int]] | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Seeded random inputs shaped from the model (symbolic dims: ``input_shapes`` or 1)."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for value in _graph_inputs(model):
        tt = value.type.tensor_type
        if input_shapes and value.name in input_shapes:
            shape = [int(d) for d in input_shapes[value.name]]
        else:
            shape = [d.dim_value if d.HasField("dim_value") else 1 for d in tt.shape.dim]
        dtype = _NUMPY_OF.get(tt.elem_type)
        if dtype is None:
            raise VerificationError(
                f"cannot make a random value for input '{value.name}' of type "
                f"{onnx.TensorProto.DataType.Name(tt.elem_type)}; pass inputs= explicitly"
            )
        if dtype == np.bool_:
            inputs[value.name] = rng.integers(0, 2, size=shape).astype(np.bool_)
        elif np.issubdtype(dtype, np.integer):
            inputs[value.name] = rng.integers(0, 10, size=shape).astype(dtype)
        else:
            inputs[value.name] = rng.standard_normal(shape).astype(dtype)
    return inputs


def _ort_session(model: onnx.ModelProto):
    import onnxruntime as ort  # noqa: PLC0415

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        try:
            return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            match = re.search(r"max supported IR version: (\d+)", str(exc))
            if not match:
                raise
            # NOTE: onnx may stamp a newer IR version than onnxruntime reads; the graph is the same.
            older = onnx.ModelProto()
            older.CopyFrom(model)
            older.ir_version = int(match.group(1))
            return ort.InferenceSession(older.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise VerificationError(f"onnxruntime cannot run this model: {str(exc).splitlines()[0]}") from exc


def run_onnxruntime(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = _ort_session(model)
    names = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v for k, v in inputs.items() if k in names})


def _to_numpy(value) -> np.ndarray:
    """A result as numpy; dtypes numpy lacks (bfloat16, float8) are widened to float32."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16 or (value.dtype.is_floating_point and value.dtype.itemsize == 1):
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def _torch_args(module: nn.Module, model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> list[torch.Tensor]:
    """The converted module's positional arguments (its forward takes the model's inputs in
    order, minus any the simplifier found unused)."""
    names = getattr(module, "onnx_input_names", None) or [v.name for v in _graph_inputs(model)]
    missing = [n for n in names if n not in inputs]
    if missing:
        raise VerificationError(f"no value given for input(s) {missing}")
    return [to_torch(inputs[n]) for n in names]


def run_torch(module: nn.Module, model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    args = _torch_args(module, model, inputs)
    with torch.no_grad():
        out = module(*args)
    if not isinstance(out, (tuple, list)):
        out = [out]
    return [_to_numpy(o) for o in out]


def _compare(name: str, expected: np.ndarray, got: np.ndarray) -> OutputComparison:
    expected = np.asarray(expected)
    got = np.asarray(got)
    if expected.shape != got.shape:
        return OutputComparison(name, tuple(got.shape), float("inf"), float("inf"), shape_matches=False)
    if expected.size == 0:
        return OutputComparison(name, tuple(got.shape), 0.0, 0.0)
    if expected.dtype == object:
        same = list(expected.ravel()) == list(got.ravel())
        return OutputComparison(name, tuple(got.shape), 0.0 if same else float("inf"), 0.0 if same else float("inf"))
    diff = np.abs(expected.astype(np.float64) - got.astype(np.float64))
    diff = np.where(np.isnan(expected) & np.isnan(got), 0.0, diff) if expected.dtype.kind == "f" else diff
    return OutputComparison(name, tuple(got.shape), float(np.mean(diff**2)), float(np.max(diff)))


def verify(
    onnx_model: onnx.ModelProto | str | os.PathLike,
    torch_model: nn.Module,
    inputs: dict[str, np.ndarray] | None = None,
    *,
    input_shapes: dict[str, list[int]] | None = None,
    seed: int = 0,
) -> VerificationReport:
    """Run the ONNX model in onnxruntime and the converted model on the same inputs; report per
    output the MSE and max abs error."""
    from onnx2torch.convert import load_model  # noqa: PLC0415

    model, _ = load_model(onnx_model)
    if inputs is None:
        inputs = make_inputs(model, input_shapes, seed)
    expected = run_onnxruntime(model, inputs)
    got = run_torch(torch_model, model, inputs)
    if len(got) != len(expected):
        raise VerificationError(f"the converted model returned {len(got)} outputs, onnxruntime {len(expected)}")
    report = VerificationReport()
    for value, exp, out in zip(model.graph.output, expected, got):
        report.outputs.append(_compare(value.name, exp, out))
    return report


class _Recorder(fx.Interpreter):
    """Runs a GraphModule and keeps every node's result by node name."""

    def __init__(self, module: fx.GraphModule):
        super().__init__(module)
        self.values: dict[str, object] = {}

    def run_node(self, n: fx.Node):
        result = super().run_node(n)
        self.values[n.name] = result
        return result


def find_first_divergence(
    model: onnx.ModelProto,
    module: fx.GraphModule,
    *,
    inputs: dict[str, np.ndarray] | None = None,
    input_shapes: dict[str, list[int]] | None = None,
    rtol: float = 1e-3,
    atol: float = 1e-4,
    raise_on_divergence: bool = False,
) -> str | None:
    """Compare every intermediate tensor with onnxruntime's; describe the first node (in graph
    order) whose output diverges, or return ``None`` when all match."""
    if inputs is None:
        inputs = make_inputs(model, input_shapes)
    value_nodes: dict[str, str] = getattr(module, "onnx_value_nodes", {})
    producers: dict[str, tuple[str, str, str]] = getattr(module, "onnx_producers", {})
    graph_inputs = {v.name for v in model.graph.input}
    order = [out for node in model.graph.node for out in node.output if out in value_nodes and out not in graph_inputs]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    for name in order:
        if name not in existing:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
    session = _ort_session(probe)
    wanted = [o.name for o in session.get_outputs()]
    reference = dict(zip(wanted, session.run(None, {k: v for k, v in inputs.items() if k in {i.name for i in session.get_inputs()}})))
    recorder = _Recorder(module)
    args = _torch_args(module, model, inputs)
    with torch.no_grad():
        recorder.run(*args)
    node_inputs = {out: list(node.input) for node in model.graph.node for out in node.output}
    for name in order:
        got = recorder.values.get(value_nodes[name])
        if name not in reference or not isinstance(got, torch.Tensor):
            continue
        exp = np.asarray(reference[name])
        got_np = _to_numpy(got)
        cmp = _compare(name, exp, got_np)
        bad = not cmp.shape_matches
        if not bad and exp.size and exp.dtype != object:
            scale = float(np.max(np.abs(exp.astype(np.float64)))) if exp.dtype.kind in "fiub" else 0.0
            bad = cmp.max_abs_error > atol + rtol * scale
        if bad:
            node_name, op_type, converter_name = producers.get(name, ("?", "?", "?"))
            shapes = []
            for i in node_inputs.get(name, []):
                v = recorder.values.get(value_nodes.get(i, ""), reference.get(i, inputs.get(i)))
                shapes.append(f"{i}: {list(v.shape) if hasattr(v, 'shape') else 'constant'}")
            detail = (f"shape {list(got_np.shape)} vs onnxruntime {list(exp.shape)}" if not cmp.shape_matches
                      else f"max abs error {cmp.max_abs_error:.3g}")
            message = (
                f"first divergence at node '{node_name}' ({op_type}), output '{name}': {detail}; "
                f"inputs [{', '.join(shapes)}]; produced by converter {converter_name}"
            )
            if raise_on_divergence:
                raise ConversionError(message)
            return message
    return None
