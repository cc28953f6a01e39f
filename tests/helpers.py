"""Shared test helpers: build one-node ONNX models and compare a conversion with onnxruntime."""
from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import torch
from onnx import TensorProto

from onnx2torch import ConvertModel
from onnx2torch.dtypes import to_torch
from onnx2torch.verify import run_onnxruntime

NP_TO_ONNX = {
    np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.float16): TensorProto.FLOAT16, np.dtype(np.int8): TensorProto.INT8,
    np.dtype(np.int16): TensorProto.INT16, np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.int64): TensorProto.INT64, np.dtype(np.uint8): TensorProto.UINT8,
    np.dtype(np.bool_): TensorProto.BOOL,
}


def single_node_model(
    op_type: str,
    inputs: dict[str, np.ndarray],
    attrs: dict | None = None,
    *,
    initializers: dict[str, np.ndarray] | None = None,
    outputs: list[str] | None = None,
    opset: int = 17,
    domain: str = "",
) -> onnx.ModelProto:
    """A model with one node; ``inputs`` become graph inputs (shapes and dtypes from the arrays),
    ``initializers`` are constants; output types are left for shape inference."""
    initializers = initializers or {}
    outputs = outputs or ["y"]
    input_names = list(inputs) + list(initializers)
    node = oh.make_node(op_type, input_names, outputs, name=f"{op_type.lower()}_node", domain=domain, **(attrs or {}))
    graph = oh.make_graph(
        [node],
        "test",
        [oh.make_tensor_value_info(k, NP_TO_ONNX[v.dtype], v.shape) for k, v in inputs.items()],
        [oh.make_empty_tensor_value_info(o) for o in outputs],
        [onnx.numpy_helper.from_array(v, k) for k, v in initializers.items()],
    )
    opsets = [oh.make_opsetid("", opset)]
    if domain:
        opsets.append(oh.make_opsetid(domain, 1))
    model = oh.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def convert_and_run(model: onnx.ModelProto, inputs: dict[str, np.ndarray], **kwargs) -> list[np.ndarray]:
    """Convert (without simplification unless asked) and run on ``inputs`` in graph-input order."""
    kwargs.setdefault("simplify", False)
    module = ConvertModel(model, **kwargs)
    initializers = {t.name for t in model.graph.initializer}
    args = [to_torch(inputs[v.name]) for v in model.graph.input if v.name not in initializers]
    with torch.no_grad():
        out = module(*args)
    if not isinstance(out, (tuple, list)):
        out = [out]
    return [o.detach().numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in out]


def assert_matches_ort(
    model: onnx.ModelProto,
    inputs: dict[str, np.ndarray],
    *,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    exact: bool = False,
    **kwargs,
) -> list[np.ndarray]:
    """Convert ``model``, run both, and assert every output matches onnxruntime (dtype included).
    ``exact=True`` demands bit-equal values."""
    expected = run_onnxruntime(model, inputs)
    got = convert_and_run(model, inputs, **kwargs)
    assert len(got) == len(expected)
    for i, (e, g) in enumerate(zip(expected, got)):
        assert g.dtype == e.dtype, f"output {i}: dtype {g.dtype} != onnxruntime's {e.dtype}"
        assert g.shape == e.shape, f"output {i}: shape {g.shape} != onnxruntime's {e.shape}"
        if exact:
            np.testing.assert_array_equal(g, e, err_msg=f"output {i}")
        else:
            np.testing.assert_allclose(g, e, atol=atol, rtol=rtol, err_msg=f"output {i}")
    return got
