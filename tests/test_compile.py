"""Converted models go through PyTorch's compilers and exporters: torch.onnx.export (both
exporters) round-trips to onnxruntime, torch.export.export works with a dynamic batch dimension,
torch.compile(fullgraph=True) captures the whole graph; shape arithmetic stays symbolic."""
from __future__ import annotations

import os
import warnings

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto

import onnx2torch
from onnx2torch.verify import run_onnxruntime
from tests.torch_models import export_cnn, export_transformer


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, str]:
    folder = str(tmp_path_factory.mktemp("compile_models"))
    return {"cnn": export_cnn(folder), "transformer": export_transformer(folder)}


def _batch(name: str, batch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(batch)
    if name == "cnn":
        return torch.randn(batch, 3, 16, 16, generator=generator)
    return torch.randint(0, 50, (batch, 12), generator=generator)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name", ["cnn", "transformer"])
def test_onnx_round_trip(paths, tmp_path, name, dynamo):
    if dynamo:
        pytest.importorskip("onnxscript")
    model = onnx2torch.ConvertModel(paths[name])
    path = str(tmp_path / f"{name}_again.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, (_batch(name, 2),), path, dynamo=True, input_names=["input"],
                              dynamic_shapes=({0: torch.export.Dim("batch")},))
        else:
            # NOTE: output_names is needed with dynamic_axes: without it the TorchScript exporter
            # takes a GraphModule's .graph for a TorchScript graph (torch 2.13).
            torch.onnx.export(model, (_batch(name, 2),), path, dynamo=False, input_names=["input"],
                              output_names=["output"], dynamic_axes={"input": {0: "batch"}})
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        x = _batch(name, batch).numpy()
        expected = run_onnxruntime(onnx.load(paths[name]), {"input": x})[0]
        np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0], expected,
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["cnn", "transformer"])
def test_torch_export_with_dynamic_batch(paths, name):
    model = onnx2torch.ConvertModel(paths[name])
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(model, (_batch(name, 2),), dynamic_shapes=({0: batch},), strict=False)
    exported = program.module()
    for size in (1, 3, 8):
        x = _batch(name, size)
        torch.testing.assert_close(exported(x), model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, backend", [
    ("cnn", "inductor"),
    # NOTE: inductor's code generation takes ~20 s more on the transformer on 2 CPU cores; the
    # whole-graph capture (dynamo + AOT autograd) is what a converter can break.
    ("transformer", os.environ.get("ONNX2TORCH_TEST_BACKEND", "aot_eager")),
])
def test_torch_compile_fullgraph(paths, name, backend):
    torch._dynamo.reset()
    model = onnx2torch.ConvertModel(paths[name])
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    with torch.no_grad():
        for size in (4, 4, 6):
            x = _batch(name, size)
            torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


# --- symbolic shape arithmetic ------------------------------------------------------------------
def _shape_model() -> onnx.ModelProto:
    """The integer graphs exporters write for dynamic dims: Shape -> Gather -> Concat -> Reshape,
    ConstantOfShape, Range, Expand (also through Where(Equal(shape, -1), 1, shape)), Slice and
    Tile on run-time sizes."""
    const = {
        "zero": np.array(0, np.int64), "one": np.array(1, np.int64), "i0": np.array([0], np.int64),
        "i1": np.array([1], np.int64), "i2": np.array([2], np.int64), "minus1": np.array([-1], np.int64), "dims23": np.array([2, 3], np.int64),
        "half": np.array(2, np.int64), "column": np.linspace(-1, 1, 3, dtype=np.float32).reshape(1, 3),
    }
    nodes = [
        oh.make_node("Shape", ["x"], ["shape"]),
        oh.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        oh.make_node("Gather", ["shape", "one"], ["width"], axis=0),
        oh.make_node("Unsqueeze", ["n", "i0"], ["n1"]),
        oh.make_node("Concat", ["n1", "dims23"], ["target"], axis=0),
        oh.make_node("Reshape", ["x", "target"], ["reshaped"]),
        oh.make_node("ConstantOfShape", ["shape"], ["ones"], value=oh.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
        oh.make_node("Add", ["x", "ones"], ["plus_one"]),
        oh.make_node("Range", ["zero", "n", "one"], ["positions"]),
        oh.make_node("Div", ["width", "half"], ["half_width"]),
        oh.make_node("Unsqueeze", ["half_width", "i0"], ["end"]),
        oh.make_node("Slice", ["x", "i0", "end", "i1"], ["left"]),
        oh.make_node("Mul", ["n1", "i2"], ["rows"]),
        oh.make_node("Concat", ["rows", "i1"], ["expand_to"], axis=0),
        oh.make_node("Expand", ["column", "expand_to"], ["expanded"]),
        oh.make_node("Sub", ["n1", "i1"], ["all_but_last"]),
        oh.make_node("Slice", ["x", "i0", "all_but_last", "i0"], ["head"]),
        # torch's expand(n, -1) as the TorchScript exporter writes it
        oh.make_node("Concat", ["n1", "minus1"], ["wanted"], axis=0),
        oh.make_node("Equal", ["wanted", "minus1"], ["keep"]),
        oh.make_node("Where", ["keep", "i1", "wanted"], ["expand_shape"]),
        oh.make_node("Expand", ["x", "expand_shape"], ["expanded_x"]),
        oh.make_node("Concat", ["i1", "n1"], ["repeats"], axis=0),
        oh.make_node("Tile", ["left", "repeats"], ["tiled"]),
    ]
    outputs = ["reshaped", "plus_one", "positions", "left", "expanded", "head", "expanded_x", "tiled"]
    graph = oh.make_graph(nodes, "shapes", [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 6])],
                          [oh.make_empty_tensor_value_info(o) for o in outputs],
                          [onnx.numpy_helper.from_array(v, k) for k, v in const.items()])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_shape_arithmetic_stays_symbolic():
    model = _shape_model()
    module = onnx2torch.ConvertModel(model, simplify=False)
    code = module.code
    for helper in ("reshape_dynamic", "full_of_shape", "arange_like", "slice_dynamic", "expand_dynamic",
                   "tile_dynamic", "shape_of"):
        assert helper not in code, helper  # nothing reads a shape tensor's values at run time
    assert "x.size(0)" in code
    for batch in (2, 5):
        x = np.random.default_rng(batch).standard_normal((batch, 6)).astype(np.float32)
        expected = run_onnxruntime(model, {"x": x})
        got = module(torch.from_numpy(x))
        for e, g in zip(expected, got):
            assert g.dtype == torch.from_numpy(e).dtype
            np.testing.assert_allclose(g.detach().numpy(), e, rtol=0, atol=0)
    # NOTE: min=3: x[:n-1] has a dim n - 1, which torch.export wants to be >= 2 (0/1 specialisation).
    program = torch.export.export(module, (torch.randn(3, 6),),
                                  dynamic_shapes=({0: torch.export.Dim("n", min=3, max=64)},), strict=False)
    x = torch.randn(7, 6)
    for a, b in zip(program.module()(x), module(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_shapes_of_unknown_rank_and_truncating_division():
    """Shape of a tensor whose rank shape inference cannot tell (as after contrib ops): the sizes
    a Gather / Slice picks are still x.size(i); ONNX's integer Div truncates toward zero."""
    from onnx2torch.symbolic import trunc_div  # noqa: PLC0415

    assert [trunc_div(a, 4) for a in (-9, -4, -1, 0, 3, 9)] == [-2, -1, 0, 0, 0, 2]
    const = {"zero": np.array(0, np.int64), "one": np.array(1, np.int64), "last": np.array([-1], np.int64),
             "big": np.array([2**62], np.int64), "i0": np.array([0], np.int64), "two": np.array([2], np.int64),
             "two_s": np.array(2, np.int64), "five": np.array([5], np.int64)}
    nodes = [
        oh.make_node("Shape", ["x"], ["shape"]),
        oh.make_node("Gather", ["shape", "zero"], ["n"]),
        oh.make_node("Unsqueeze", ["n", "i0"], ["n1"]),
        oh.make_node("Concat", ["n1", "last"], ["flat_shape"], axis=0),
        oh.make_node("Reshape", ["x", "flat_shape"], ["flat"]),
        oh.make_node("Slice", ["shape", "last", "big"], ["tail"]),
        oh.make_node("Squeeze", ["tail", "i0"], ["width"]),
        oh.make_node("Range", ["zero", "width", "one"], ["widths"]),
        oh.make_node("Sub", ["tail", "five"], ["short"]),
        oh.make_node("Div", ["short", "two"], ["half"]),  # (w - 5) / 2 truncates: w = 3 gives -1, not -2
        oh.make_node("Squeeze", ["half", "i0"], ["half_s"]),
        oh.make_node("Add", ["half_s", "two_s"], ["end"]),
        oh.make_node("Range", ["zero", "end", "one"], ["count"]),
    ]
    graph = oh.make_graph(nodes, "unranked", [oh.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                          [oh.make_empty_tensor_value_info(o) for o in ("flat", "widths", "count")],
                          [onnx.numpy_helper.from_array(v, k) for k, v in const.items()])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    model.ir_version = 8
    module = onnx2torch.ConvertModel(model, simplify=False)
    assert "reshape_dynamic" not in module.code and "arange_like" not in module.code and "x.size(-1)" in module.code
    for shape in ((2, 3, 9), (4, 3)):
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        for e, g in zip(run_onnxruntime(model, {"x": x}), module(torch.from_numpy(x))):
            np.testing.assert_array_equal(g.detach().numpy(), e)
