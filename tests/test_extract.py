"""Partial conversion (inputs= / outputs=, --inputs / --outputs) and re-batching of models
exported with a frozen batch (input_shapes / --input_shape)."""
from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import pytest
import torch
from onnx import TensorProto, numpy_helper

import onnx2torch
from onnx2torch.errors import ConversionError, UnsupportedOperatorError
from onnx2torch.extract import extract_part
from onnx2torch.verify import run_onnxruntime

RNG = np.random.default_rng(3)


def _init(name, shape, scale=0.3):
    return numpy_helper.from_array((RNG.standard_normal(shape) * scale).astype(np.float32), name)


def _ints(name, values):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _detector() -> onnx.ModelProto:
    """A tiny one-stage detector: backbone -> feat -> head (boxes, scores) -> NMS post-processing,
    with a custom-domain decoding op nobody can convert in the post-processing."""
    anchors = 8 * 8
    nodes = [
        oh.make_node("Conv", ["data", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2], name="stem"),
        oh.make_node("Relu", ["c1"], ["feat"], name="stem_relu"),
        oh.make_node("Conv", ["feat", "wc"], ["cls_map"], name="cls_conv"),
        oh.make_node("Reshape", ["cls_map", "cls_shape"], ["cls_flat"], name="cls_reshape"),
        oh.make_node("Sigmoid", ["cls_flat"], ["scores"], name="cls_sigmoid"),
        oh.make_node("Conv", ["feat", "wr"], ["reg_map"], name="reg_conv"),
        oh.make_node("Reshape", ["reg_map", "reg_shape"], ["reg_flat"], name="reg_reshape"),
        oh.make_node("Transpose", ["reg_flat"], ["boxes"], perm=[0, 2, 1], name="reg_transpose"),
        oh.make_node("Decode", ["boxes"], ["decoded"], domain="acme", name="decode"),
        oh.make_node("NonMaxSuppression", ["decoded", "scores", "max_out", "iou"], ["selected"], name="nms"),
    ]
    graph = oh.make_graph(
        nodes, "detector",
        [oh.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 16, 16])],
        [oh.make_tensor_value_info("selected", TensorProto.INT64, [None, 3])],
        [_init("w1", (8, 3, 3, 3)), _init("b1", (8,)), _init("wc", (3, 8, 1, 1)), _init("wr", (4, 8, 1, 1)),
         _ints("cls_shape", [1, 3, anchors]), _ints("reg_shape", [1, 4, anchors]),
         _ints("max_out", [5]), numpy_helper.from_array(np.array([0.5], np.float32), "iou")],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid("acme", 1)])
    model.ir_version = 8
    return model


def _ort_part(model, inputs, outputs, tmp_path):
    """onnxruntime on the same part, cut by onnx.utils.extract_model."""
    full, part = tmp_path / "full.onnx", tmp_path / "part.onnx"
    onnx.save(onnx.shape_inference.infer_shapes(model), full)
    onnx.utils.extract_model(str(full), str(part), inputs, outputs)
    return onnx.load(str(part))


def test_whole_detector_is_unconvertible():
    with pytest.raises(UnsupportedOperatorError, match="acme::Decode"):
        onnx2torch.ConvertModel(_detector())


@pytest.mark.parametrize("inputs", [None, ["data"], ["feat"]])
def test_partial_conversion_of_detector_head_matches_onnxruntime(inputs, tmp_path):
    model = _detector()
    module = onnx2torch.ConvertModel(model, inputs=inputs, outputs=["boxes", "scores"])
    reference = _ort_part(model, inputs or ["data"], ["boxes", "scores"], tmp_path)
    name = (inputs or ["data"])[0]
    shape = [1, 3, 16, 16] if name == "data" else [1, 8, 8, 8]
    x = RNG.standard_normal(shape).astype(np.float32)
    expected = run_onnxruntime(reference, {name: x})
    assert module.onnx_input_names == [name]
    got = module(torch.from_numpy(x))
    assert len(got) == 2
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_allclose(g.detach().numpy(), e, atol=1e-5, rtol=1e-5)


def test_partial_conversion_debug_mode_works_on_the_part():
    module = onnx2torch.ConvertModel(_detector(), inputs=["feat"], outputs=["scores"], debug=True)
    assert module(torch.zeros(1, 8, 8, 8)).shape == (1, 3, 64)


def test_extracted_model_keeps_only_the_part():
    part = extract_part(_detector(), ["feat"], ["scores"])
    assert [n.name for n in part.graph.node] == ["cls_conv", "cls_reshape", "cls_sigmoid"]
    assert [i.name for i in part.graph.input] == ["feat"]
    assert sorted(t.name for t in part.graph.initializer) == ["cls_shape", "wc"]
    assert [d.dim_value for d in part.graph.input[0].type.tensor_type.shape.dim] == [1, 8, 8, 8]
    onnx.checker.check_model(part)


def test_unknown_tensor_name_is_a_clear_error():
    with pytest.raises(ConversionError, match=r"output 'scroes' is not a tensor of the model.*did you mean 'scores'"):
        onnx2torch.ConvertModel(_detector(), outputs=["scroes"])
    with pytest.raises(ConversionError, match="input 'nope' is not a tensor"):
        onnx2torch.ConvertModel(_detector(), inputs=["nope"], outputs=["scores"])


def test_output_not_computable_from_the_inputs_is_a_clear_error():
    model = _detector()
    with pytest.raises(ConversionError, match=r"cannot be computed from the inputs \['cls_map'\]: 'boxes' needs 'data'"):
        onnx2torch.ConvertModel(model, inputs=["cls_map"], outputs=["scores", "boxes"])


def test_cli_converts_and_verifies_the_part(tmp_path, capsys):
    from onnx2torch_cli import main

    path = tmp_path / "det.onnx"
    onnx.save(_detector(), path)
    code = main(["--onnx_path", str(path), "--pytorch_path", str(tmp_path / "head.pth"),
                 "--inputs", "feat", "--outputs", "boxes", "scores"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "from ['feat']: 6 of 10 nodes" in out and "verification PASSED" in out
    head = torch.load(tmp_path / "head.pth", weights_only=False)
    assert [t.shape for t in head(torch.zeros(1, 8, 8, 8))] == [(1, 64, 4), (1, 3, 64)]
    code = main(["--onnx_path", str(path), "--outputs", "nothing_here"])
    assert code == 2 and "'nothing_here' is not a tensor of the model" in capsys.readouterr().err


# --- re-batching ------------------------------------------------------------------------------
def _batch1_cnn(size: int = 224) -> onnx.ModelProto:
    """A CNN exported at batch 1 with its flatten / output reshapes baked as constants."""
    side = size // 32
    nodes = [
        oh.make_node("Conv", ["data", "w1", "b1"], ["c1"], pads=[3, 3, 3, 3], strides=[4, 4], kernel_shape=[7, 7], name="conv1"),
        oh.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        oh.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
        oh.make_node("Conv", ["p1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[4, 4], name="conv2"),
        oh.make_node("Reshape", ["c2", "flat_shape"], ["flat"], name="flatten"),
        oh.make_node("Gemm", ["flat", "fw", "fb"], ["logits"], transB=1, name="fc"),
        oh.make_node("Reshape", ["logits", "out_shape"], ["out"], name="to_groups"),
        oh.make_node("Softmax", ["out"], ["prob"], axis=-1, name="softmax"),
    ]
    graph = oh.make_graph(
        nodes, "cnn",
        [oh.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, size, size])],
        [oh.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 2, 5])],
        [_init("w1", (8, 3, 7, 7), 0.1), _init("b1", (8,)), _init("w2", (16, 8, 3, 3), 0.1),
         _ints("flat_shape", [1, 16 * side * side]), _init("fw", (10, 16 * side * side), 0.05), _init("fb", (10,)),
         _ints("out_shape", [1, 2, 5])],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _per_sample(model, x):
    return np.concatenate([run_onnxruntime(model, {"data": x[i:i + 1]})[0] for i in range(x.shape[0])])


def test_cli_rebatches_a_batch1_cnn(tmp_path, capsys):
    from onnx2torch_cli import main

    model = _batch1_cnn()
    path = tmp_path / "cnn.onnx"
    onnx.save(model, path)
    code = main(["--onnx_path", str(path), "--pytorch_path", str(tmp_path / "cnn.pth"),
                 "--input_shape", "data:4,3,224,224"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "re-targeted Reshape 'flatten' [1, 784] -> [0, 784], 'to_groups' [1, 2, 5] -> [0, 2, 5]" in out
    assert "verification PASSED" in out
    converted = torch.load(tmp_path / "cnn.pth", weights_only=False)
    x = RNG.standard_normal((4, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        got = converted(torch.from_numpy(x)).numpy()
    assert got.shape == (4, 2, 5)
    np.testing.assert_allclose(got, _per_sample(model, x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("simplify", [True, False])
def test_rebatch_through_the_api(simplify):
    model = _batch1_cnn(64)
    module = onnx2torch.ConvertModel(model, input_shapes={"data": [3, 3, 64, 64]}, simplify=simplify)
    x = RNG.standard_normal((3, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, _per_sample(model, x), atol=1e-5, rtol=1e-4)


def test_same_shape_leaves_the_model_alone():
    from onnx2torch.rebatch import rebatch_model

    model = _batch1_cnn(64)
    assert rebatch_model(model, {"data": [1, 3, 64, 64]}).model is model


def test_rebatch_retargets_transformer_style_reshapes():
    """[1, T, C] -> [1, T, heads, C/heads] -> [1, heads, T, d] -> back; a [-1, C] reshape stays."""
    nodes = [
        oh.make_node("Reshape", ["x", "split_heads"], ["h"], name="split_heads"),
        oh.make_node("Transpose", ["h"], ["ht"], perm=[0, 2, 1, 3]),
        oh.make_node("Softmax", ["ht"], ["hs"], axis=-1),
        oh.make_node("Transpose", ["hs"], ["hb"], perm=[0, 2, 1, 3]),
        oh.make_node("Reshape", ["hb", "merge_heads"], ["m"], name="merge_heads"),
        oh.make_node("Reshape", ["m", "rows"], ["y"], name="rows"),
    ]
    graph = oh.make_graph(
        nodes, "attn", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 8])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, [6, 8])],
        [_ints("split_heads", [1, 6, 2, 4]), _ints("merge_heads", [1, 6, 8]), _ints("rows", [-1, 8])],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    from onnx2torch.rebatch import rebatch_model

    result = rebatch_model(model, {"x": [5, 6, 8]})
    assert result.reshapes == {"split_heads": ([1, 6, 2, 4], [0, 6, 2, 4]), "merge_heads": ([1, 6, 8], [0, 6, 8])}
    module = onnx2torch.ConvertModel(model, input_shapes={"x": [5, 6, 8]})
    x = RNG.standard_normal((5, 6, 8)).astype(np.float32)
    expected = np.concatenate([run_onnxruntime(model, {"x": x[i:i + 1]})[0] for i in range(5)])
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), expected, atol=1e-6)


def test_rebatch_other_dimension_of_a_fully_convolutional_model():
    nodes = [oh.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             oh.make_node("Reshape", ["c", "tokens"], ["t"], name="tokens"),
             oh.make_node("Softmax", ["t"], ["y"], axis=-1)]
    graph = oh.make_graph(nodes, "fcn", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 64])],
                          [_init("w", (4, 3, 3, 3)), _ints("tokens", [1, 4, 64])])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    module = onnx2torch.ConvertModel(model, input_shapes={"x": [1, 3, 12, 10]})
    x = RNG.standard_normal((1, 3, 12, 10)).astype(np.float32)
    patched = onnx.ModelProto()
    patched.CopyFrom(model)
    patched.graph.initializer[1].CopyFrom(_ints("tokens", [1, 4, -1]))
    del patched.graph.input[0].type.tensor_type.shape.dim[2:]
    patched.graph.input[0].type.tensor_type.shape.dim.add().dim_param = "h"
    patched.graph.input[0].type.tensor_type.shape.dim.add().dim_param = "w"
    del patched.graph.output[0].type.tensor_type.shape.dim[:]
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), run_onnxruntime(patched, {"x": x})[0], atol=1e-6)


def test_a_node_that_pins_the_batch_is_named():
    """A class token concatenated at batch 1 (a constant) pins the batch."""
    nodes = [oh.make_node("Concat", ["cls", "x"], ["tokens"], axis=1, name="add_class_token"),
             oh.make_node("Relu", ["tokens"], ["y"])]
    graph = oh.make_graph(nodes, "vit", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 8])], [_init("cls", (1, 1, 8))])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    with pytest.raises(ConversionError, match=r"input 'x' from \[1, 4, 8\] to \[2, 4, 8\].*add_class_token"):
        onnx2torch.ConvertModel(model, input_shapes={"x": [2, 4, 8]})


def test_a_reshape_that_splits_a_changed_dim_ambiguously_is_named():
    """[4, 6] -> [1, 4, 6]: whether 12 rows become [3, 4, 6] or [1, 12, 6] is not provable."""
    nodes = [oh.make_node("Reshape", ["x", "split"], ["y"], name="split_rows")]
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6])],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6])], [_ints("split", [1, 4, 6])])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    with pytest.raises(ConversionError, match="Reshape node 'split_rows' pins it"):
        onnx2torch.ConvertModel(model, input_shapes={"x": [12, 6]})


def test_a_batch1_dim_merged_into_the_next_dim_stacks_the_samples():
    """[1, 16] -> [4, 4] at batch 1 is [N, 16] -> [4 N, 4]: the per-sample results stacked."""
    nodes = [oh.make_node("Reshape", ["x", "square"], ["y"], name="to_square"),
             oh.make_node("Softmax", ["y"], ["z"], axis=-1)]
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                          [oh.make_tensor_value_info("z", TensorProto.FLOAT, [4, 4])], [_ints("square", [4, 4])])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    module = onnx2torch.ConvertModel(model, input_shapes={"x": [3, 16]})
    x = RNG.standard_normal((3, 16)).astype(np.float32)
    expected = np.concatenate([run_onnxruntime(model, {"x": x[i:i + 1]})[0] for i in range(3)])
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), expected, atol=1e-6)


def test_shapes_inference_cannot_tell_are_measured_and_torch_attention_pins_clearly():
    """nn.MultiheadAttention exported at batch 1 merges the batch into the heads, then splits it
    back next to a unit dim: the conversion names that node instead of guessing."""

    class Attention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = torch.nn.MultiheadAttention(16, 4, batch_first=True)

        def forward(self, x):
            return self.attn(x, x, x, need_weights=False)[0]

    import io
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Attention().eval(), (torch.randn(1, 6, 16),), buffer, dynamo=False,
                          input_names=["data"], output_names=["out"])
    model = onnx.load_from_string(buffer.getvalue())
    with pytest.raises(ConversionError, match=r"Reshape node '/attn/Reshape_\d+' pins it .* next to a unit dim"):
        onnx2torch.ConvertModel(model, input_shapes={"data": [3, 6, 16]})


def test_wrong_rank_in_input_shapes_is_a_clear_error():
    with pytest.raises(ConversionError, match="rank 3"):
        onnx2torch.ConvertModel(_batch1_cnn(64), input_shapes={"data": [2, 3, 64]})
