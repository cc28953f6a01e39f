"""Normalization converters: every op against onnxruntime on random data
with edge attributes, and the traps (LRN's bias is torch's k, BatchNorm's momentum is 1 - torch's,
training_mode outputs, GroupNormalization-18's per-group scale, LayerNorm's extra outputs).
ONNX's own node cases for these ops run in tests/test_conformance.py."""
from __future__ import annotations


import numpy as np
import onnx
import pytest
import torch
from torch import nn

from onnx2torch import ConvertModel
from onnx2torch.dtypes import to_torch
from tests.helpers import assert_matches_ort, convert_and_run, single_node_model

RNG = np.random.default_rng(0)


def randn(*shape: int, dtype=np.float32, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale + shift).astype(dtype)


def positive(*shape: int) -> np.ndarray:
    return RNG.uniform(0.5, 2.0, shape).astype(np.float32)


def modules_of(model: onnx.ModelProto) -> list[nn.Module]:
    return list(ConvertModel(model, simplify=False).modules())


def symbolic(model: onnx.ModelProto, dims: dict[int, str], input_index: int = 0) -> onnx.ModelProto:
    """``model`` with some dims of one graph input made symbolic."""
    for index, name in dims.items():
        model.graph.input[input_index].type.tensor_type.shape.dim[index].dim_param = name
    return model


# --- BatchNormalization -------------------------------------------------------------------------
def _bn_params(c: int) -> dict[str, np.ndarray]:
    return {"scale": randn(c), "b": randn(c), "mean": randn(c), "var": positive(c)}


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 7), (2, 3, 4, 5), (2, 3, 2, 3, 4), (2, 3, 2, 2, 2, 2)], ids=str)
@pytest.mark.parametrize("opset", [7, 9, 14, 15])
def test_batchnorm_inference_constants(shape, opset):
    x = randn(*shape, scale=2.0, shift=0.5)
    attrs = {"epsilon": 1e-3, "momentum": 0.8}
    model = single_node_model("BatchNormalization", {"x": x}, attrs, initializers=_bn_params(3), opset=opset)
    assert_matches_ort(model, {"x": x})
    layers = [m for m in modules_of(model) if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(layers) == 1
    expected_cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}.get(len(shape))
    if expected_cls is not None:
        assert type(layers[0]) is expected_cls


def test_batchnorm_layer_is_trainable_with_running_buffers():
    """scale / B become parameters, mean / var running buffers; ONNX momentum m is torch's 1 - m."""
    x = randn(2, 3, 4, 4)
    params = _bn_params(3)
    model = single_node_model("BatchNormalization", {"x": x}, {"momentum": 0.9, "epsilon": 1e-5}, initializers=params, opset=15)
    module = ConvertModel(model, simplify=False)
    bn = next(m for m in module.modules() if isinstance(m, nn.BatchNorm2d))
    assert bn.momentum == pytest.approx(0.1) and bn.eps == 1e-5 and not bn.training
    assert {n for n, _ in bn.named_parameters()} == {"weight", "bias"}
    assert {n for n, _ in bn.named_buffers()} >= {"running_mean", "running_var"}
    np.testing.assert_array_equal(bn.running_var.numpy(), params["var"])
    # fine-tuning: train() normalizes with batch statistics and moves the running stats by 1 - m
    module.train()
    xt = to_torch(x)
    module(xt)
    batch_mean = xt.mean(dim=(0, 2, 3))
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.9 * params["mean"] + 0.1 * batch_mean.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opset", [9, 15])
def test_batchnorm_runtime_statistics(opset):
    """Statistics computed in the graph (graph inputs here) use the functional form."""
    x = randn(2, 3, 4, 5)
    params = _bn_params(3)
    model = single_node_model("BatchNormalization", {"x": x, **params}, opset=opset)
    assert_matches_ort(model, {"x": x, **params})
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules_of(model))


@pytest.mark.parametrize("x_dtype,param_dtype", [(np.float16, np.float32), (np.float32, np.float16), (np.float16, np.float16)], ids=str)
@pytest.mark.parametrize("constant", [True, False], ids=["const", "input"])
def test_batchnorm_mixed_float_types(x_dtype, param_dtype, constant):
    """BatchNormalization-15: scale / B / mean / var may have another float type than X."""
    x = randn(2, 3, 4, dtype=x_dtype)
    params = {k: v.astype(param_dtype) for k, v in _bn_params(3).items()}
    if constant:
        model = single_node_model("BatchNormalization", {"x": x}, initializers=params, opset=15)
    else:
        model = single_node_model("BatchNormalization", {"x": x, **params}, opset=15)
    assert_matches_ort(model, {"x": x, **params}, atol=2e-3, rtol=2e-3)


def test_batchnorm_symbolic_batch():
    x = randn(2, 3, 4, 5)
    model = symbolic(single_node_model("BatchNormalization", {"x": x}, initializers=_bn_params(3), opset=15), {0: "N", 2: "H"})
    for shape in [(1, 3, 4, 5), (5, 3, 7, 5)]:
        assert_matches_ort(model, {"x": randn(*shape)})


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (2, 3, 4, 5)], ids=str)
@pytest.mark.parametrize("opset", [14, 15])
def test_batchnorm_training_mode_outputs(shape, opset):
    """training_mode=1: Y from the batch statistics, running = input * m + batch * (1 - m)."""
    x = randn(*shape, scale=3.0, shift=1.0)
    model = single_node_model(
        "BatchNormalization", {"x": x}, {"training_mode": 1, "momentum": 0.7, "epsilon": 1e-2},
        initializers=_bn_params(3), outputs=["y", "running_mean", "running_var"], opset=opset,
    )
    assert_matches_ort(model, {"x": x}, atol=1e-5)


@pytest.mark.parametrize("opset", [7, 9])
def test_batchnorm_legacy_training_outputs(opset):
    """Before opset 14 the statistics outputs select training; saved_var is 1/sqrt(var + eps)
    as onnxruntime returns it."""
    x = randn(2, 3, 4, 5, scale=2.0)
    model = single_node_model(
        "BatchNormalization", {"x": x}, {"momentum": 0.6}, initializers=_bn_params(3),
        outputs=["y", "mean_out", "var_out", "saved_mean", "saved_var"], opset=opset,
    )
    assert_matches_ort(model, {"x": x}, atol=1e-5)


def test_batchnorm_spatial0_per_element_statistics():
    x = randn(2, 3, 4, 5)
    params = {"scale": randn(3, 4, 5), "b": randn(3, 4, 5), "mean": randn(3, 4, 5), "var": positive(3, 4, 5)}
    model = single_node_model("BatchNormalization", {"x": x}, {"spatial": 0}, initializers=params, opset=7)
    assert_matches_ort(model, {"x": x})


def test_batchnorm_opset6_is_test():
    """BatchNormalization-6 with is_test=1 is inference; onnxruntime has no opset-6 kernel."""
    x = randn(2, 3, 4, 5)
    p = _bn_params(3)
    model = single_node_model("BatchNormalization", {"x": x}, {"is_test": 1, "epsilon": 1e-4}, initializers=p, opset=6)
    view = (-1, 1, 1)
    expected = (x - p["mean"].reshape(view)) / np.sqrt(p["var"].reshape(view) + 1e-4) * p["scale"].reshape(view) + p["b"].reshape(view)
    np.testing.assert_allclose(convert_and_run(model, {"x": x})[0], expected, rtol=1e-5, atol=1e-5)


def test_batchnorm_extra_outputs_without_training_mode_are_refused():
    x = randn(2, 3, 4)
    model = single_node_model("BatchNormalization", {"x": x}, initializers=_bn_params(3), outputs=["y", "m", "v"], opset=15)
    with pytest.raises(Exception, match="training_mode=0"):
        ConvertModel(model, simplify=False)


# --- InstanceNormalization ----------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 3, 4, 5), (1, 3, 2, 3, 4), (2, 3, 2, 2, 2, 3)], ids=str)
@pytest.mark.parametrize("constant", [True, False], ids=["const", "input"])
def test_instance_norm(shape, constant):
    x = randn(*shape, scale=2.0, shift=1.0)
    params = {"scale": randn(3), "b": randn(3)}
    attrs = {"epsilon": 1e-3}
    if constant:
        model = single_node_model("InstanceNormalization", {"x": x}, attrs, initializers=params, opset=6)
    else:
        model = single_node_model("InstanceNormalization", {"x": x, **params}, attrs, opset=6)
    assert_matches_ort(model, {"x": x, **params}, atol=1e-5)
    native = any(isinstance(m, nn.modules.instancenorm._InstanceNorm) for m in modules_of(model))
    assert native == (constant and len(shape) <= 5)


# --- LayerNormalization -------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [-1, -2, 1, 0, 3])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("num_outputs", [1, 3])
def test_layer_norm(axis, with_bias, num_outputs):
    x = randn(2, 3, 4, 5, scale=2.0, shift=1.0)
    shape = x.shape[axis:]
    params = {"scale": randn(*shape), **({"b": randn(*shape)} if with_bias else {})}
    outputs = ["y", "mean", "inv_std"][:num_outputs]
    model = single_node_model("LayerNormalization", {"x": x}, {"axis": axis, "epsilon": 1e-3}, initializers=params, outputs=outputs, opset=17)
    assert_matches_ort(model, {"x": x}, atol=1e-5)
    native = any(isinstance(m, nn.LayerNorm) for m in modules_of(model))
    assert native == (num_outputs == 1)


@pytest.mark.parametrize("scale_shape", [(1,), (5,), (1, 5), (4, 1)], ids=str)
def test_layer_norm_broadcast_scale(scale_shape):
    """Scale / B broadcast (unidirectionally) to the normalized shape."""
    x = randn(2, 3, 4, 5)
    params = {"scale": randn(*scale_shape), "b": randn(*scale_shape)}
    model = single_node_model("LayerNormalization", {"x": x}, {"axis": -2}, initializers=params, opset=17)
    assert_matches_ort(model, {"x": x}, atol=1e-5)


def test_layer_norm_runtime_scale_and_symbolic_shape():
    x = randn(2, 3, 8)
    params = {"scale": randn(8), "b": randn(8)}
    model = symbolic(single_node_model("LayerNormalization", {"x": x, **params}, opset=17), {0: "N", 1: "T"})
    for shape in [(2, 3, 8), (1, 6, 8)]:
        assert_matches_ort(model, {"x": randn(*shape), **params}, atol=1e-5)


def test_layer_norm_float16_stats_are_float():
    x = randn(2, 3, 8, dtype=np.float16)
    model = single_node_model("LayerNormalization", {"x": x}, initializers={"scale": randn(8, dtype=np.float16)}, outputs=["y", "m", "s"], opset=17)
    got = assert_matches_ort(model, {"x": x}, atol=2e-3, rtol=2e-3)
    assert [g.dtype for g in got] == [np.float16, np.float32, np.float32]


def test_layer_norm_stash_type_other_than_float_is_refused():
    x = randn(2, 8)
    model = single_node_model("LayerNormalization", {"x": x}, {"stash_type": 11}, initializers={"scale": randn(8)}, opset=17)
    with pytest.raises(Exception, match="stash_type"):
        ConvertModel(model, simplify=False)


# --- RMSNormalization -----------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [-1, -2, 0, 2])
@pytest.mark.parametrize("constant", [True, False], ids=["const", "input"])
def test_rms_norm(axis, constant):
    x = randn(2, 3, 4, 5, scale=2.0, shift=0.5)
    scale = randn(*x.shape[axis:])
    attrs = {"axis": axis, "epsilon": 1e-3}
    if constant:
        model = single_node_model("RMSNormalization", {"x": x}, attrs, initializers={"scale": scale}, opset=23)
    else:
        model = single_node_model("RMSNormalization", {"x": x, "scale": scale}, attrs, opset=23)
    assert_matches_ort(model, {"x": x, "scale": scale}, atol=1e-5)
    assert any(isinstance(m, nn.RMSNorm) for m in modules_of(model)) == constant


def test_rms_norm_broadcast_scale():
    x = randn(2, 3, 4, 5)
    model = single_node_model("RMSNormalization", {"x": x}, {"axis": 1}, initializers={"scale": randn(4, 1)}, opset=23)
    assert_matches_ort(model, {"x": x}, atol=1e-5)


# --- GroupNormalization ---------------------------------------------------------------------------
@pytest.mark.parametrize("opset", [18, 21])
@pytest.mark.parametrize("shape,groups", [((2, 6, 5), 3), ((2, 6, 3, 4), 2), ((2, 6, 3, 4), 6), ((2, 4, 3, 4), 1)], ids=str)
@pytest.mark.parametrize("mode", ["const", "input", "const_symbolic_channels"])
def test_group_norm(opset, shape, groups, mode):
    """GroupNormalization-18 scales per GROUP, -21 per CHANNEL."""
    x = randn(*shape, scale=2.0, shift=1.0)
    n = groups if opset == 18 else shape[1]
    params = {"scale": randn(n), "bias": randn(n)}
    attrs = {"num_groups": groups, "epsilon": 1e-3}
    if mode == "input":
        model = single_node_model("GroupNormalization", {"x": x, **params}, attrs, opset=opset)
    else:
        model = single_node_model("GroupNormalization", {"x": x}, attrs, initializers=params, opset=opset)
    if mode == "const_symbolic_channels":
        model = symbolic(model, {0: "N", 1: "C"})
    assert_matches_ort(model, {"x": x, **params}, atol=1e-5)
    native = any(isinstance(m, nn.GroupNorm) for m in modules_of(model))
    assert native == (mode == "const" or (mode == "const_symbolic_channels" and opset == 21))


# --- LRN ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 3, 5])
@pytest.mark.parametrize("attrs", [{}, {"bias": 2.0}, {"bias": 0.5, "alpha": 0.02, "beta": 0.5}, {"alpha": 1.0, "beta": 1.2, "bias": 3.0}], ids=str)
def test_lrn_bias_is_torch_k(size, attrs):
    """The trap: ONNX's bias is torch's k and both divide alpha by size.  Compared with
    onnxruntime to a few float32 ulps: bit equality is out of reach, as onnxruntime sums the
    squares with a sliding window (add the head, subtract the tail) and multiplies by Eigen's
    pow(scale, -beta)."""
    x = randn(2, 7, 4, 5, scale=3.0)
    model = single_node_model("LRN", {"x": x}, {"size": size, **attrs}, opset=13)
    assert_matches_ort(model, {"x": x}, rtol=5e-6, atol=1e-7)
    assert any(isinstance(m, nn.LocalResponseNorm) for m in modules_of(model))


def _lrn_reference(x: np.ndarray, size: int, alpha: float, beta: float, bias: float) -> np.ndarray:
    """The ONNX formula, window [c - floor((size-1)/2), c + ceil((size-1)/2)], in float64."""
    x64 = x.astype(np.float64)
    out = np.empty_like(x64)
    channels = x.shape[1]
    for c in range(channels):
        lo, hi = max(0, c - (size - 1) // 2), min(channels - 1, c + -(-(size - 1) // 2))
        square_sum = (x64[:, lo:hi + 1] ** 2).sum(axis=1)
        out[:, c] = x64[:, c] / (bias + alpha / size * square_sum) ** beta
    return out


@pytest.mark.parametrize("size", [2, 4, 3])
@pytest.mark.parametrize("shape", [(2, 7, 4, 5), (2, 5, 6), (1, 4, 2, 3, 2)], ids=str)
def test_lrn_any_size_and_rank(size, shape):
    """Even sizes (onnxruntime refuses them) put the extra channel after c; torch's would put it
    before, so they are spelled out."""
    x = randn(*shape, scale=3.0)
    attrs = {"size": size, "alpha": 0.5, "beta": 0.75, "bias": 2.0}
    model = single_node_model("LRN", {"x": x}, attrs, opset=13)
    got = convert_and_run(model, {"x": x})[0]
    np.testing.assert_allclose(got, _lrn_reference(x, size, 0.5, 0.75, 2.0), rtol=1e-5, atol=1e-6)


# --- LpNormalization, MeanVarianceNormalization ---------------------------------------------------
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [-1, 0, 1, 2])
def test_lp_normalization(p, axis):
    x = randn(3, 4, 5)
    x[1] = 0.0  # zero slices along some axes: defined as 0
    assert_matches_ort(single_node_model("LpNormalization", {"x": x}, {"p": p, "axis": axis}, opset=22), {"x": x}, atol=1e-6)


def test_lp_normalization_zero_norm_has_finite_gradient():
    x = torch.zeros(2, 3, requires_grad=True)
    model = single_node_model("LpNormalization", {"x": np.zeros((2, 3), np.float32)}, opset=1)
    module = ConvertModel(model, simplify=False)
    module(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_lp_normalization_other_p_is_refused():
    model = single_node_model("LpNormalization", {"x": randn(2, 3)}, {"p": 3}, opset=22)
    with pytest.raises(Exception, match="p=3"):
        ConvertModel(model, simplify=False)


@pytest.mark.parametrize("axes", [None, [0, 2, 3], [1], [2, 3], [0, 1, 2, 3], [-1]], ids=str)
@pytest.mark.parametrize("opset", [9, 13])
def test_mean_variance_normalization(axes, opset):
    x = randn(2, 3, 4, 5, scale=2.0, shift=1.0)
    attrs = {} if axes is None else {"axes": axes}
    model = single_node_model("MeanVarianceNormalization", {"x": x}, attrs, opset=opset)
    assert_matches_ort(model, {"x": x}, atol=1e-4, rtol=1e-4)


# --- float16 / float64 ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "op,attrs,params,opset",
    [
        ("RMSNormalization", {}, {"scale": (5,)}, 23),
        ("GroupNormalization", {"num_groups": 3}, {"scale": (6,), "bias": (6,)}, 21),
        ("GroupNormalization", {"num_groups": 3}, {"scale": (3,), "bias": (3,)}, 18),
        ("InstanceNormalization", {}, {"scale": (6,), "b": (6,)}, 22),
        ("LayerNormalization", {}, {"scale": (5,)}, 17),
        ("LRN", {"size": 3, "bias": 2.0}, {}, 13),
        ("LpNormalization", {}, {}, 22),
        ("MeanVarianceNormalization", {}, {}, 13),
    ],
    ids=str,
)
@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_float16_and_double(op, attrs, params, opset, dtype):
    """Other float types keep their type (onnxruntime lacks some of these kernels, so the float32
    conversion of the same data is the yardstick)."""
    x = randn(2, 6, 4, 5, scale=2.0, shift=1.0)
    values = {name: randn(*shape) for name, shape in params.items()}
    expected = convert_and_run(single_node_model(op, {"x": x}, attrs, initializers=values, opset=opset), {"x": x})[0]
    cast = {name: v.astype(dtype) for name, v in values.items()}
    got = convert_and_run(single_node_model(op, {"x": x.astype(dtype)}, attrs, initializers=cast, opset=opset), {"x": x.astype(dtype)})[0]
    assert got.dtype == dtype
    tol = 1e-2 if dtype == np.float16 else 1e-5
    np.testing.assert_allclose(got.astype(np.float32), expected, rtol=tol, atol=tol)
