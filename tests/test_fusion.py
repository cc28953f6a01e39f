"""Fusion passes (onnx2torch.fusion): each exporter decomposition becomes its fused torch op, the
fused module matches onnxruntime, and weights stay trainable parameters."""
from __future__ import annotations

import io
import math

import numpy as np
import onnx
import onnx.helper as oh
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, numpy_helper
from torch import nn

from onnx2torch import ConvertModel
from onnx2torch.fusion import fold_batch_norm, fuse
from onnx2torch.verify import run_onnxruntime

RNG = np.random.default_rng(0)
F32 = TensorProto.FLOAT


def _model(nodes, inputs, initializers=None, outputs=("y",), opset=17):
    """A model from ``nodes``; ``inputs`` maps names to shapes (str dims are symbolic; a
    ``(elem_type, shape)`` pair for non-float inputs); output types come from shape inference."""
    graph = oh.make_graph(
        nodes,
        "fusion",
        [oh.make_tensor_value_info(name, *(shape if isinstance(shape, tuple) else (F32, shape)))
         for name, shape in inputs.items()],
        [oh.make_empty_tensor_value_info(o) for o in outputs],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in (initializers or {}).items()],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 8
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    for output in model.graph.output:
        if output.name in inferred:
            output.CopyFrom(inferred[output.name])
    return model


def _const(name, value):
    return oh.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, dtype=np.float32)))


def _targets(module):
    """What each call in the generated forward runs: module classes and function names."""
    found = []
    for node in module.graph.nodes:
        if node.op == "call_module":
            found.append(type(module.get_submodule(node.target)).__name__)
        elif node.op == "call_function":
            found.append(getattr(node.target, "__name__", str(node.target)))
    return found


def _check(model, feeds, *, rtol=1e-5, atol=1e-6, **kwargs):
    """Convert, compare every output with onnxruntime; returns the module."""
    module = ConvertModel(model, **kwargs)
    expected = run_onnxruntime(model, feeds)
    with torch.no_grad():
        got = module(*[torch.from_numpy(feeds[v.name]) for v in model.graph.input if v.name in feeds])
    got = got if isinstance(got, tuple) else (got,)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g.numpy(), e, rtol=rtol, atol=atol)
    return module


def _x(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# --- Linear + bias ---------------------------------------------------------------------------
def test_matmul_add_bias_becomes_linear_with_bias():
    w, b = _x(8, 16), _x(16)
    model = _model([oh.make_node("MatMul", ["x", "w"], ["h"]), oh.make_node("Add", ["b", "h"], ["y"])],
                   {"x": ["batch", 5, 8]}, {"w": w, "b": b})
    module = _check(model, {"x": _x(2, 5, 8)}, simplify=False)
    assert _targets(module) == ["Linear"]
    linear = next(m for m in module.modules() if isinstance(m, nn.Linear))
    assert linear.bias is not None and linear.bias.requires_grad
    # every ONNX weight is still one trainable parameter
    assert sum(p.numel() for p in module.parameters()) == w.size + b.size


def test_shared_bias_stays_tied():
    b = _x(4)
    model = _model([oh.make_node("MatMul", ["x", "w1"], ["h1"]), oh.make_node("Add", ["h1", "b"], ["y1"]),
                    oh.make_node("MatMul", ["x", "w2"], ["h2"]), oh.make_node("Add", ["h2", "b"], ["y2"])],
                   {"x": [3, 6]}, {"w1": _x(6, 4), "w2": _x(6, 4), "b": b}, outputs=("y1", "y2"))
    module = _check(model, {"x": _x(3, 6)}, simplify=False)
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 2 and linears[0].bias is linears[1].bias
    assert sum(p.numel() for p in module.parameters()) == 2 * 24 + 4


def test_bias_that_would_broadcast_rows_is_not_fused():
    model = _model([oh.make_node("MatMul", ["x", "w"], ["h"]), oh.make_node("Add", ["h", "b"], ["y"])],
                   {"x": [3, 6]}, {"w": _x(6, 4), "b": _x(3, 4)})
    module = _check(model, {"x": _x(3, 6)}, simplify=False)
    assert "add" in _targets(module)


# --- GELU ------------------------------------------------------------------------------------
def _gelu_erf_nodes(order):
    """x * 0.5 * (1 + erf(x / sqrt 2)) in several spellings exporters use."""
    scale = [_const("c", math.sqrt(2.0)), oh.make_node("Div", ["x", "c"], ["s"])]
    if order == "mul_inv_sqrt2":
        scale = [_const("c", 1 / math.sqrt(2.0)), oh.make_node("Mul", ["c", "x"], ["s"])]
    body = [_const("one", 1.0), _const("half", 0.5), oh.make_node("Erf", ["s"], ["e"])]
    if order in ("legacy", "mul_inv_sqrt2"):  # torch's legacy exporter: ((x * (erf + 1)) * 0.5)
        return scale + body + [oh.make_node("Add", ["e", "one"], ["a"]), oh.make_node("Mul", ["x", "a"], ["m"]),
                               oh.make_node("Mul", ["m", "half"], ["y"])]
    if order == "half_first":  # (x * 0.5) * (1 + erf)
        return scale + body + [oh.make_node("Add", ["one", "e"], ["a"]), oh.make_node("Mul", ["half", "x"], ["h"]),
                               oh.make_node("Mul", ["a", "h"], ["y"])]
    # 0.5 * (x * (1 + erf)) with a division by 2 instead of the 0.5
    return scale + body + [_const("two", 2.0), oh.make_node("Add", ["one", "e"], ["a"]),
                           oh.make_node("Mul", ["a", "x"], ["m"]), oh.make_node("Div", ["m", "two"], ["y"])]


@pytest.mark.parametrize("order", ["legacy", "mul_inv_sqrt2", "half_first", "div_two"])
def test_erf_gelu(order):
    model = _model(_gelu_erf_nodes(order), {"x": ["batch", 7, 16]})
    module = _check(model, {"x": 3 * _x(2, 7, 16)})
    assert _targets(module) == ["GELU"]
    assert module.get_submodule(next(n.target for n in module.graph.nodes if n.op == "call_module")).approximate == "none"


def test_tanh_gelu():
    c = math.sqrt(2 / math.pi)
    nodes = [_const("k", 0.044715), _const("three", 3.0), _const("c", c), _const("one", 1.0), _const("half", 0.5),
             oh.make_node("Pow", ["x", "three"], ["cube"]), oh.make_node("Mul", ["k", "cube"], ["kc"]),
             oh.make_node("Add", ["x", "kc"], ["inner"]), oh.make_node("Mul", ["inner", "c"], ["arg"]),
             oh.make_node("Tanh", ["arg"], ["t"]), oh.make_node("Add", ["t", "one"], ["a"]),
             oh.make_node("Mul", ["x", "half"], ["h"]), oh.make_node("Mul", ["h", "a"], ["y"])]
    module = _check(_model(nodes, {"x": [4, 32]}), {"x": 3 * _x(4, 32)})
    assert _targets(module) == ["GELU"]


def test_gelu_with_a_shared_intermediate_is_not_fused():
    nodes = _gelu_erf_nodes("legacy")
    model = _model(nodes, {"x": [4, 8]}, outputs=("y", "e"))
    module = _check(model, {"x": _x(4, 8)})
    assert "GELU" not in _targets(module) and "erf" in _targets(module)


def test_wrong_constant_is_not_gelu():
    nodes = _gelu_erf_nodes("legacy")
    nodes[0] = _const("c", 1.5)
    module = _check(_model(nodes, {"x": [4, 8]}), {"x": _x(4, 8)})
    assert "GELU" not in _targets(module)


# --- SiLU / HardSwish ------------------------------------------------------------------------
@pytest.mark.parametrize("swap", [False, True])
def test_silu(swap):
    mul = ["s", "x"] if swap else ["x", "s"]
    model = _model([oh.make_node("Sigmoid", ["x"], ["s"]), oh.make_node("Mul", mul, ["y"])], {"x": [2, 3, 5, 5]})
    module = _check(model, {"x": _x(2, 3, 5, 5)})
    assert _targets(module) == ["SiLU"]


def test_gating_by_another_tensor_is_not_silu():
    model = _model([oh.make_node("Sigmoid", ["g"], ["s"]), oh.make_node("Mul", ["x", "s"], ["y"])],
                   {"x": [2, 8], "g": [2, 8]})
    module = _check(model, {"x": _x(2, 8), "g": _x(2, 8)})
    assert "SiLU" not in _targets(module)


def test_hardswish_from_hardsigmoid():
    model = _model([oh.make_node("HardSigmoid", ["x"], ["s"], alpha=1 / 6, beta=0.5),
                    oh.make_node("Mul", ["x", "s"], ["y"])], {"x": [2, 16]})
    module = _check(model, {"x": 4 * _x(2, 16)})
    assert _targets(module) == ["Hardswish"]


def test_hardswish_from_relu6():
    nodes = [_const("three", 3.0), _const("zero", 0.0), _const("six", 6.0),
             oh.make_node("Add", ["x", "three"], ["p"]), oh.make_node("Clip", ["p", "zero", "six"], ["r"]),
             oh.make_node("Mul", ["x", "r"], ["m"]), oh.make_node("Div", ["m", "six"], ["y"])]
    module = _check(_model(nodes, {"x": [2, 16]}), {"x": 4 * _x(2, 16)})
    assert _targets(module) == ["Hardswish"]


# --- LayerNorm -------------------------------------------------------------------------------
def _layer_norm_nodes(opset, axes=(-1,), affine=True, square="Pow"):
    if opset >= 18:
        axes_nodes = [oh.make_node("Constant", [], ["axes"], value=numpy_helper.from_array(np.array(axes, np.int64)))]
        mean = lambda i, o: oh.make_node("ReduceMean", [i, "axes"], [o])  # noqa: E731
    else:
        axes_nodes = []
        mean = lambda i, o: oh.make_node("ReduceMean", [i], [o], axes=list(axes))  # noqa: E731
    nodes = axes_nodes + [_const("two", 2.0), _const("eps", 1e-5), mean("x", "mu"), oh.make_node("Sub", ["x", "mu"], ["d"])]
    nodes.append(oh.make_node("Pow", ["d", "two"], ["d2"]) if square == "Pow" else oh.make_node("Mul", ["d", "d"], ["d2"]))
    nodes += [mean("d2", "var"), oh.make_node("Add", ["var", "eps"], ["ve"]), oh.make_node("Sqrt", ["ve"], ["sd"]),
              oh.make_node("Div", ["d", "sd"], ["n" if affine else "y"])]
    if affine:
        nodes += [oh.make_node("Mul", ["n", "gamma"], ["g"]), oh.make_node("Add", ["g", "beta"], ["y"])]
    return nodes


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("square", ["Pow", "Mul"])
def test_decomposed_layer_norm(opset, square):
    gamma, beta = 1 + _x(32), _x(32)
    model = _model(_layer_norm_nodes(opset, square=square), {"x": ["batch", 6, 32]}, {"gamma": gamma, "beta": beta},
                   opset=opset)
    module = _check(model, {"x": 3 + 2 * _x(2, 6, 32)})
    assert _targets(module) == ["layer_norm"]
    # gamma and beta are still the module's trainable parameters
    assert sorted(p.numel() for p in module.parameters()) == [32, 32]


def test_layer_norm_over_two_trailing_dims_without_affine():
    model = _model(_layer_norm_nodes(13, axes=(-2, -1), affine=False), {"x": [3, 4, 5]})
    module = _check(model, {"x": _x(3, 4, 5)})
    assert _targets(module) == ["layer_norm"]


def test_mean_over_channels_is_not_layer_norm():
    model = _model(_layer_norm_nodes(13, axes=(1,), affine=False), {"x": [2, 4, 3, 3]})
    module = _check(model, {"x": _x(2, 4, 3, 3)})
    assert "layer_norm" not in _targets(module)


# --- attention -------------------------------------------------------------------------------
def _attention_nodes(scale_on="scores", mask=None, guard=False, transpose_k=True):
    e = 8
    nodes = []
    k_t = "k"
    if transpose_k:
        nodes.append(oh.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]))
        k_t = "kt"
    if scale_on == "scores":
        nodes += [_const("c", math.sqrt(e)), oh.make_node("MatMul", ["q", k_t], ["qk"]),
                  oh.make_node("Div", ["qk", "c"], ["s"])]
    else:  # sqrt of the scale on each operand, as torch's exporters write SDPA
        nodes += [_const("c", e ** -0.25), oh.make_node("Mul", ["q", "c"], ["qs"]),
                  oh.make_node("Mul", [k_t, "c"], ["ks"]), oh.make_node("MatMul", ["qs", "ks"], ["s"])]
    if mask is not None:
        nodes.append(oh.make_node("Add", ["s", mask], ["sm"]))
    nodes.append(oh.make_node("Softmax", ["sm" if mask else "s"], ["p"], axis=-1))
    if guard:
        nodes += [_const("zero", 0.0), oh.make_node("IsNaN", ["p"], ["nan"]),
                  oh.make_node("Where", ["nan", "zero", "p"], ["pg"])]
    nodes.append(oh.make_node("MatMul", ["pg" if guard else "p", "v"], ["y"]))
    return nodes


def _qkv_inputs(k_shape, **more):
    return {"q": ["batch", 2, 5, 8], "k": k_shape, "v": ["batch", 2, 7, 8], **more}


def _qkv(batch=2):
    return {"q": _x(batch, 2, 5, 8), "k": _x(batch, 2, 8, 7), "v": _x(batch, 2, 7, 8)}


@pytest.mark.parametrize("scale_on", ["scores", "operands"])
def test_attention_becomes_sdpa(scale_on):
    model = _model(_attention_nodes(scale_on), _qkv_inputs(["batch", 2, 7, 8]))
    feeds = {**_qkv(), "k": _x(2, 2, 7, 8)}
    module = _check(model, feeds)
    assert _targets(module) == ["scaled_dot_product_attention"]
    for batch in (1, 3):  # the symbolic batch stays symbolic
        feeds = {"q": _x(batch, 2, 5, 8), "k": _x(batch, 2, 7, 8), "v": _x(batch, 2, 7, 8)}
        expected = run_onnxruntime(model, feeds)[0]
        got = module(*[torch.from_numpy(feeds[n]) for n in ("q", "k", "v")])
        np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_attention_with_pretransposed_key():
    model = _model(_attention_nodes(transpose_k=False), _qkv_inputs(["batch", 2, 8, 7]))
    module = _check(model, _qkv())
    assert "scaled_dot_product_attention" in _targets(module)


def test_attention_with_constant_finite_mask():
    mask = np.where(RNG.random((1, 1, 5, 7)) < 0.3, -1e4, 0.0).astype(np.float32)
    model = _model(_attention_nodes(mask="mask"), _qkv_inputs(["batch", 2, 7, 8]), {"mask": mask})
    module = _check(model, {**_qkv(), "k": _x(2, 2, 7, 8)})
    assert _targets(module) == ["scaled_dot_product_attention"]


def test_attention_with_guarded_runtime_mask():
    """The dynamo exporter's shape: a boolean mask made additive with -inf, NaN rows zeroed."""
    nodes = [_const("z", 0.0), _const("ninf", -np.inf), oh.make_node("Where", ["keep", "z", "ninf"], ["mask"])]
    nodes += _attention_nodes(mask="mask", guard=True)
    model = _model(nodes, _qkv_inputs(["batch", 2, 7, 8], keep=(TensorProto.BOOL, ["batch", 1, 5, 7])))
    keep = RNG.random((2, 1, 5, 7)) < 0.7
    keep[0, 0, 1, :] = False  # a fully masked row: zeros in both
    feeds = {**_qkv(), "k": _x(2, 2, 7, 8), "keep": keep}
    module = ConvertModel(model)
    assert "scaled_dot_product_attention" in _targets(module)
    expected = run_onnxruntime(model, feeds)[0]
    got = module(*[torch.from_numpy(feeds[n]) for n in ("q", "k", "v", "keep")])
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_unguarded_runtime_mask_is_not_fused():
    """A user mask may hold -inf rows, where SDPA (0) and the graph (NaN) disagree."""
    model = _model(_attention_nodes(mask="mask"), _qkv_inputs(["batch", 2, 7, 8], mask=["batch", 1, 5, 7]))
    module = _check(model, {**_qkv(), "k": _x(2, 2, 7, 8), "mask": _x(2, 1, 5, 7)})
    assert "scaled_dot_product_attention" not in _targets(module)


def test_softmax_over_another_axis_is_not_attention():
    nodes = _attention_nodes()
    nodes[-2] = oh.make_node("Softmax", ["s"], ["p"], axis=2)
    model = _model(nodes, _qkv_inputs(["batch", 2, 7, 8]))
    module = _check(model, {**_qkv(), "k": _x(2, 2, 7, 8)})
    assert "scaled_dot_product_attention" not in _targets(module)


# --- whole models ----------------------------------------------------------------------------
def _export(module, x, opset):
    buf = io.BytesIO()
    torch.onnx.export(module, (x,), buf, dynamo=False, opset_version=opset, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}})
    return onnx.load_from_string(buf.getvalue())


@pytest.mark.parametrize("opset", [14, 17])  # LayerNormalization is an op from opset 17 on
def test_tiny_bert_fuses_and_matches(opset):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                     vocab_size=100, max_position_embeddings=32)
    bert = transformers.BertModel(config).eval()

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, x):
            return self.bert(x)[0]

    ids = torch.randint(0, 100, (1, 12))
    model = _export(Wrap().eval(), ids, opset)
    module = ConvertModel(model)
    targets = _targets(module)
    assert targets.count("GELU") == 2 and targets.count("scaled_dot_product_attention") == 2
    assert targets.count("layer_norm") + targets.count("LayerNorm") == 5
    assert "erf" not in targets and "Softmax" not in targets
    assert not any(n.op == "call_function" and n.target is torch.matmul for n in module.graph.nodes)
    feeds = {"x": torch.randint(0, 100, (2, 12)).numpy()}
    expected = run_onnxruntime(model, feeds)[0]
    with torch.no_grad():
        got = module(torch.from_numpy(feeds["x"])).numpy()
        native = bert(torch.from_numpy(feeds["x"]))[0].numpy()
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() <= 1e-5 * scale
    assert np.abs(got - native).max() <= 1e-5 * scale
    # every linear layer of the encoder is an nn.Linear with its weight and bias as parameters
    linear_params = [p for m in module.modules() if isinstance(m, nn.Linear) for p in m.parameters()]
    native = [p for m in bert.encoder.modules() if isinstance(m, nn.Linear) for p in m.parameters()]
    assert sum(p.numel() for p in linear_params) == sum(p.numel() for p in native)


def test_fused_module_survives_save_and_load(tmp_path):
    model = _model(_gelu_erf_nodes("legacy") + [oh.make_node("Sigmoid", ["y"], ["sig"]),
                                                oh.make_node("Mul", ["y", "sig"], ["z"])], {"x": [4, 8]}, outputs=("z",))
    module = ConvertModel(model)
    path = tmp_path / "m.pth"
    torch.save(module, path)
    loaded = torch.load(path, weights_only=False)
    x = torch.randn(4, 8)
    torch.testing.assert_close(loaded(x), module(x))
    assert _targets(loaded) == ["GELU", "SiLU"]


def test_fuse_on_a_traced_module():
    """``fuse`` also works on any GraphModule (without inferred shapes: rank-free rewrites only)."""

    class Gelu(nn.Module):
        def forward(self, x):
            return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))

    traced = torch.fx.symbolic_trace(Gelu())
    fused = fuse(traced)
    x = torch.randn(5, 6)
    torch.testing.assert_close(fused(x), F.gelu(x))
    assert _targets(fused) == ["GELU"]


# --- BatchNorm folding (optimize=True) -------------------------------------------------------
def _conv_bn_model():
    c = 4
    inits = {"w": _x(c, 3, 3, 3), "scale": 1 + 0.1 * _x(c), "bias": _x(c), "mean": _x(c),
             "var": 0.5 + RNG.random(c).astype(np.float32)}
    nodes = [oh.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             oh.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["b"], epsilon=1e-3),
             oh.make_node("Relu", ["b"], ["y"])]
    return _model(nodes, {"x": ["batch", 3, 8, 8]}, inits)


def test_batch_norm_stays_trainable_by_default():
    module = _check(_conv_bn_model(), {"x": _x(2, 3, 8, 8)})
    assert "BatchNorm2d" in _targets(module)


def test_optimize_folds_batch_norm_into_conv():
    module = _check(_conv_bn_model(), {"x": _x(2, 3, 8, 8)}, optimize=True)
    assert _targets(module) == ["Conv2d", "ReLU"]
    conv = next(m for m in module.modules() if isinstance(m, nn.Conv2d))
    assert conv.bias is not None


def test_fold_batch_norm_leaves_training_layers_alone():
    module = ConvertModel(_conv_bn_model()).train()
    fold_batch_norm(module)
    assert "BatchNorm2d" in _targets(module)


def test_cli_optimize_flag(tmp_path, capsys):
    from onnx2torch_cli import main

    path, pth = tmp_path / "conv_bn.onnx", tmp_path / "conv_bn.pth"
    onnx.save(_conv_bn_model(), str(path))
    code = main(["--onnx_path", str(path), "--optimize", "--pytorch_path", str(pth), "--input_shape", "x:2,3,8,8"])
    assert code == 0, capsys.readouterr().out
    module = torch.load(str(pth), weights_only=False)
    assert "BatchNorm2d" not in _targets(module)


class _BiasedAttention(nn.Module):
    """Windowed attention with a learned per-head bias, as Swin writes it: the head count is
    the -1 of a reshape whose other sizes are run-time (ONNX inference cannot tell it)."""

    def __init__(self, dim=32, heads=4, tokens=9):
        super().__init__()
        self.heads, self.qkv = heads, nn.Linear(dim, 3 * dim)
        self.bias = nn.Parameter(torch.randn(heads, tokens, tokens))

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=-1)
        q, k, v = (t.reshape(b, n, -1, c // self.heads).transpose(1, 2) for t in (q, k, v))
        scores = (q * (c // self.heads) ** -0.5) @ k.transpose(-2, -1) + self.bias
        return (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)


def test_attention_with_a_per_head_bias_and_symbolic_heads():
    torch.manual_seed(0)
    native = _BiasedAttention().eval()
    model = _export(native, torch.randn(2, 9, 32), 17)
    module = ConvertModel(model)
    assert "scaled_dot_product_attention" in _targets(module)
    x = torch.randn(3, 9, 32)
    expected = run_onnxruntime(model, {"x": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(module(x).numpy(), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(module(x).numpy(), native(x).numpy(), rtol=1e-5, atol=1e-6)


def test_weights_kept_out_of_simplification_keep_their_shapes():
    """Exporters (torch's dynamo) also list weights in value_info; the weight's dims must survive
    simplification, or the conv's channel count (and with it nn.LayerNorm) is lost."""
    w = _x(64, 3, 3, 3)  # large enough to stay out of onnxsim
    nodes = [oh.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             oh.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]),
             oh.make_node("LayerNormalization", ["t", "g", "b"], ["y"], axis=-1)]
    model = _model(nodes, {"x": ["batch", 3, 8, 8]}, {"w": w, "g": 1 + _x(64), "b": _x(64)})
    model.graph.value_info.append(oh.make_tensor_value_info("w", F32, list(w.shape)))
    module = _check(model, {"x": _x(2, 3, 8, 8)})
    assert "LayerNorm" in _targets(module)
