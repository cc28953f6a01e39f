"""Resize (opsets 10-19) and Upsample (7, 9) against onnxruntime, and against onnx's reference
evaluator where onnxruntime has no kernel (other ranks, integer cubic...) or departs from the
spec; and the nn.Upsample lowering of the cases torch computes
exactly.
ONNX's own node cases for these ops run in tests/test_conformance.py."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnx.helper as oh
import pytest
import torch
from onnx import TensorProto
from onnx.reference import ReferenceEvaluator
from torch import nn

from onnx2torch import ConvertModel
from onnx2torch.dtypes import to_torch
from onnx2torch.errors import ConversionError
from onnx2torch.ops.resize import Resize
from tests.helpers import NP_TO_ONNX, assert_matches_ort, convert_and_run

RNG = np.random.default_rng(0)


def randn(*shape: int, dtype=np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def resize_model(
    x: np.ndarray,
    *,
    roi=None,
    scales=None,
    sizes=None,
    opset: int = 19,
    runtime: tuple[str, ...] = (),
    op_type: str = "Resize",
    **attrs,
) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A one-node Resize/Upsample model; roi/scales/sizes are initializers unless named in
    ``runtime`` (then graph inputs).  Returns the model and its input feed."""
    values = {
        "roi": None if roi is None else np.asarray(roi, np.float32),
        "scales": None if scales is None else np.asarray(scales, np.float32),
        "sizes": None if sizes is None else np.asarray(sizes, np.int64),
    }
    if op_type == "Upsample" or opset == 10:
        slots = ["scales"]
    else:
        slots = ["roi", "scales", "sizes"]
        if opset < 13:  # roi and scales are required inputs there: empty tensors stand in
            for name in ("roi", "scales"):
                if values[name] is None:
                    values[name] = np.zeros(0, np.float32)
    feed = {"x": x}
    graph_inputs = [oh.make_tensor_value_info("x", NP_TO_ONNX[x.dtype], x.shape)]
    initializers, names = [], ["x"]
    for name in slots:
        value = values[name]
        if value is None:
            names.append("")
        elif name in runtime:
            feed[name] = value
            graph_inputs.append(oh.make_tensor_value_info(name, NP_TO_ONNX[value.dtype], value.shape))
            names.append(name)
        else:
            initializers.append(onnx.numpy_helper.from_array(value, name))
            names.append(name)
    while names[-1] == "":
        names.pop()
    node = oh.make_node(op_type, names, ["y"], name="resize_node", **attrs)
    graph = oh.make_graph([node], "test", graph_inputs, [oh.make_empty_tensor_value_info("y")], initializers)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 8
    return model, feed


def assert_matches_reference(model: onnx.ModelProto, feed: dict[str, np.ndarray], *, atol=1e-5, rtol=1e-4):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ReferenceEvaluator(model).run(None, feed)[0]
    got = convert_and_run(model, feed)[0]
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=atol, rtol=rtol)


def submodules(model: onnx.ModelProto) -> list[nn.Module]:
    return list(ConvertModel(model, simplify=False).children())


# --- every mode x coordinate transform, against onnxruntime -------------------------------
X_SHAPE = (2, 3, 5, 7)
#: (scales, sizes): integer upscale, downscale, non-integer up, mixed, sizes up and down.
#: NOTE: chosen so that no nearest coordinate lands within a float32 ulp of a rounding tie:
#: there onnxruntime's arithmetic (not always the correctly rounded x / scale of its source)
#: and ours may pick different neighbours.
GEOMETRIES = {
    "up_int": ([1, 1, 2, 3], None),
    "down": ([1, 1, 0.6, 0.7], None),
    "up_frac": ([1, 1, 1.7, 2.3], None),
    "mixed": ([1, 1, 0.8, 1.5], None),
    "sizes_up": (None, [2, 3, 9, 11]),
    "sizes_down": (None, [2, 3, 3, 5]),
}
COORD_MODES = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
               "tf_half_pixel_for_nn"]
NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("ctm", COORD_MODES)
@pytest.mark.parametrize("nearest_mode", NEAREST_MODES)
def test_nearest(geometry, ctm, nearest_mode):
    scales, sizes = GEOMETRIES[geometry]
    model, feed = resize_model(randn(*X_SHAPE), scales=scales, sizes=sizes, mode="nearest",
                               coordinate_transformation_mode=ctm, nearest_mode=nearest_mode)
    assert_matches_ort(model, feed, exact=True)


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("ctm", COORD_MODES)
@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_linear_cubic(geometry, ctm, mode):
    scales, sizes = GEOMETRIES[geometry]
    model, feed = resize_model(randn(*X_SHAPE), scales=scales, sizes=sizes, mode=mode,
                               coordinate_transformation_mode=ctm)
    assert_matches_ort(model, feed, atol=1e-5)


@pytest.mark.parametrize("geometry", ["up_int", "down", "up_frac", "sizes_down"])
@pytest.mark.parametrize("ctm", ["half_pixel", "align_corners", "asymmetric"])
@pytest.mark.parametrize("a,exclude_outside", [(-0.5, 0), (-0.75, 1), (-0.5, 1)])
def test_cubic_coefficients(geometry, ctm, a, exclude_outside):
    scales, sizes = GEOMETRIES[geometry]
    model, feed = resize_model(randn(*X_SHAPE), scales=scales, sizes=sizes, mode="cubic",
                               coordinate_transformation_mode=ctm, cubic_coeff_a=a,
                               exclude_outside=exclude_outside)
    assert_matches_ort(model, feed, atol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("scales,sizes", [([1, 1, 2, 1.5], None), ([1, 1, 0.6, 0.75], None), (None, [2, 3, 8, 4]),
                                          (None, [2, 3, 1, 1])])
def test_tf_crop_and_resize(mode, scales, sizes):
    # NOTE: axes with scale 1 are left out: onnxruntime skips them even when the roi crops them.
    model, feed = resize_model(randn(*X_SHAPE), roi=[0, 0, 0.1, -0.2, 1, 1, 0.9, 1.3], scales=scales, sizes=sizes,
                               mode=mode, coordinate_transformation_mode="tf_crop_and_resize",
                               extrapolation_value=2.5)
    assert_matches_ort(model, feed, atol=1e-5)


def test_tf_crop_and_resize_runtime_roi():
    model, feed = resize_model(randn(*X_SHAPE), roi=[0, 0, 0.2, 0.1, 1, 1, 0.6, 1.1], sizes=[2, 3, 4, 6],
                               runtime=("roi",), mode="linear", coordinate_transformation_mode="tf_crop_and_resize")
    assert_matches_ort(model, feed, atol=1e-5)


def test_tf_crop_and_resize_scale_one_axis_follows_spec():
    # onnxruntime ignores the roi on an axis whose scale is 1; the spec (and the reference) crop it.
    model, feed = resize_model(randn(1, 1, 6, 8), roi=[0, 0, 0.2, 0.1, 1, 1, 0.8, 0.7], scales=[1, 1, 1, 1.5],
                               mode="linear", coordinate_transformation_mode="tf_crop_and_resize")
    assert_matches_reference(model, feed)


# --- antialias ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("ctm", ["half_pixel", "asymmetric", "align_corners", "half_pixel_symmetric"])
@pytest.mark.parametrize("scales,sizes", [([1, 1, 0.5, 0.5], None), ([1, 1, 0.6, 0.35], None),
                                          ([1, 1, 0.8, 1.7], None), (None, [2, 3, 3, 2])])
@pytest.mark.parametrize("exclude_outside", [0, 1])
def test_antialias(mode, ctm, scales, sizes, exclude_outside):
    model, feed = resize_model(randn(2, 3, 10, 12), scales=scales, sizes=sizes, mode=mode,
                               coordinate_transformation_mode=ctm, antialias=1, exclude_outside=exclude_outside)
    assert_matches_ort(model, feed, atol=1e-5)


# --- axes and keep_aspect_ratio_policy (opset 18+) ------------------------------------------
@pytest.mark.parametrize("axes", [[2, 3], [3, 2], [-1], [1, 3]])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_axes_scales(axes, mode):
    scales = {2: 1.5, 3: 0.6, 1: 2.0, -1: 0.6}
    model, feed = resize_model(randn(*X_SHAPE), scales=[scales[a] for a in axes], mode=mode, axes=axes, opset=18)
    if mode == "linear" and axes == [1, 3]:
        assert_matches_reference(model, feed)  # onnxruntime's linear kernel resizes only 2 inner axes
    else:
        assert_matches_ort(model, feed, atol=1e-5)


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
@pytest.mark.parametrize("sizes", [[8, 8], [4, 9], [2, 3]])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_axes_sizes_policy(policy, sizes, mode):
    model, feed = resize_model(randn(1, 2, 5, 7), sizes=sizes, mode=mode, axes=[2, 3],
                               keep_aspect_ratio_policy=policy, opset=19)
    assert_matches_ort(model, feed, atol=1e-5)


def test_axes_roi():
    model, feed = resize_model(randn(1, 2, 5, 7), roi=[0.1, -0.2, 0.9, 1.1], sizes=[4, 9], axes=[2, 3], mode="linear",
                               coordinate_transformation_mode="tf_crop_and_resize", opset=18)
    assert_matches_ort(model, feed, atol=1e-5)


# --- opsets 10-13 forms -------------------------------------------------------------------
@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("scales,sizes", [([1, 1, 2, 1.5], None), (None, [2, 3, 4, 9])])
def test_resize_11_13(opset, scales, sizes):
    model, feed = resize_model(randn(*X_SHAPE), scales=scales, sizes=sizes, mode="linear", opset=opset,
                               coordinate_transformation_mode="pytorch_half_pixel")
    assert_matches_ort(model, feed, atol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [[1, 1, 2, 2], [1, 1, 3, 1.5], [1, 1, 0.6, 0.5], [1, 1, 2.5, 0.75]])
def test_resize_10(mode, scales):
    model, feed = resize_model(randn(*X_SHAPE), scales=scales, mode=mode, opset=10)
    assert_matches_ort(model, feed, atol=1e-5, exact=mode == "nearest")


@pytest.mark.parametrize("opset", [7, 9])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [[1, 1, 2, 2], [1, 1, 3, 1.5], [1, 1, 2.5, 1.0]])
def test_upsample(opset, mode, scales):
    x = randn(*X_SHAPE)
    if opset == 7:
        model, feed = resize_model(x, op_type="Upsample", opset=7, mode=mode, scales=None)
        model.graph.node[0].attribute.append(oh.make_attribute("scales", [float(s) for s in scales]))
    else:
        model, feed = resize_model(x, op_type="Upsample", opset=9, mode=mode, scales=scales)
    assert_matches_ort(model, feed, atol=1e-5, exact=mode == "nearest")


@pytest.mark.parametrize("shape,scales", [((2, 6), [1, 2.5]), ((1, 2, 6), [1, 2, 1.5]),
                                          ((1, 1, 2, 3, 4), [1, 1, 2, 1.5, 2])])
def test_upsample_linear_other_ranks(shape, scales):
    model, feed = resize_model(randn(*shape), op_type="Upsample", opset=9, mode="linear", scales=scales)
    assert_matches_ort(model, feed, atol=1e-5)


# --- ranks and layouts onnxruntime does not cover (reference evaluator) -------------------
@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("shape,scales", [((9,), [1.7]), ((2, 3, 4, 5, 6), [1, 1, 0.5, 1.5, 2]),
                                          ((4, 6, 5), [0.5, 1.5, 2.0])])
@pytest.mark.parametrize("ctm", ["half_pixel", "asymmetric", "align_corners"])
def test_other_ranks_against_reference(mode, shape, scales, ctm):
    if ctm == "align_corners":
        # the reference maps align_corners with the fractional width scale * length (the spec
        # and onnxruntime: the integer output length), so give it integer-exact sizes.
        sizes = [int(np.floor(n * s)) for n, s in zip(shape, scales)]
        model, feed = resize_model(randn(*shape), sizes=sizes, mode=mode, coordinate_transformation_mode=ctm)
    else:
        model, feed = resize_model(randn(*shape), scales=scales, mode=mode, coordinate_transformation_mode=ctm)
    assert_matches_reference(model, feed)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_output_as_large_as_input_follows_spec(mode):
    # scale 1.2 on 4 pixels keeps 4: onnxruntime then copies the input, the spec still maps
    # x_original = (x + 0.5) / 1.2 - 0.5.
    model, feed = resize_model(randn(1, 1, 3, 4), scales=[1, 1, 1, 1.2], mode=mode)
    assert_matches_reference(model, feed)


# --- dtypes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32])
@pytest.mark.parametrize("scales", [[1, 1, 2, 2], [1, 1, 1.5, 0.6]])
def test_integer_nearest(dtype, scales):
    x = RNG.integers(0 if dtype == np.uint8 else -100, 100, size=X_SHAPE).astype(dtype)
    model, feed = resize_model(x, scales=scales, mode="nearest", coordinate_transformation_mode="asymmetric",
                               nearest_mode="floor")
    assert_matches_ort(model, feed, exact=True)


def test_integer_crop_extrapolation_truncates():
    x = RNG.integers(0, 100, size=(1, 1, 4, 4)).astype(np.uint8)
    model, feed = resize_model(x, roi=[0, 0, -0.5, 0, 1, 1, 1, 1.5], sizes=[1, 1, 6, 6], mode="nearest",
                               coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=7.9)
    assert_matches_ort(model, feed, exact=True)


@pytest.mark.parametrize("mode,scales", [("nearest", [1, 1, 2, 2]), ("nearest", [1, 1, 1.5, 3]),
                                         ("linear", [1, 1, 2, 2]), ("linear", [1, 1, 1.7, 0.6]),
                                         ("cubic", [1, 1, 2, 0.6])])
def test_float16(mode, scales):
    model, feed = resize_model(randn(*X_SHAPE, dtype=np.float16), scales=scales, mode=mode)
    assert_matches_ort(model, feed, atol=2e-3, rtol=2e-3)


def test_float64_against_reference():
    model, feed = resize_model(randn(*X_SHAPE, dtype=np.float64), scales=[1, 1, 1.7, 0.6], mode="cubic")
    # NOTE: coordinates are float32 (as in onnxruntime), the reference's float64.
    assert_matches_reference(model, feed, atol=1e-5, rtol=1e-5)


def test_integer_linear_is_refused():
    x = RNG.integers(0, 100, size=X_SHAPE).astype(np.uint8)
    model, _ = resize_model(x, scales=[1, 1, 2, 2], mode="linear")
    with pytest.raises(ConversionError, match="linear"):
        ConvertModel(model, simplify=False)


# --- dynamic scales / sizes -----------------------------------------------------------------
def test_sizes_from_runtime_shape():
    """Resize(x, sizes=Concat(Shape(x)[:2], Shape(y)[2:])) on inputs whose sizes vary."""
    nodes = [
        oh.make_node("Shape", ["x"], ["sx"], end=2),
        oh.make_node("Shape", ["y"], ["sy"], start=2),
        oh.make_node("Concat", ["sx", "sy"], ["sizes"], axis=0),
        oh.make_node("Resize", ["x", "", "", "sizes"], ["out"], mode="linear"),
    ]
    graph = oh.make_graph(
        nodes, "dyn",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "c", "h", "w"]),
         oh.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h2", "w2"])],
        [oh.make_tensor_value_info("out", TensorProto.FLOAT, None)],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 15)])
    model.ir_version = 8
    module = ConvertModel(model, simplify=False)
    assert any(isinstance(m, Resize) for m in module.modules())
    for hw, hw2 in (((4, 5), (8, 10)), ((6, 3), (4, 7))):
        feed = {"x": randn(1, 2, *hw), "y": randn(1, 2, *hw2)}
        assert_matches_ort(model, feed, atol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("scales,sizes", [([1, 1, 2, 1.5], None), (None, [2, 3, 4, 11])])
def test_runtime_scales_and_sizes(mode, scales, sizes):
    model, feed = resize_model(randn(*X_SHAPE), scales=scales, sizes=sizes, mode=mode, runtime=("scales", "sizes"))
    assert_matches_ort(model, feed, atol=1e-5)


def test_opset11_runtime_sizes_with_empty_scales():
    model, feed = resize_model(randn(*X_SHAPE), sizes=[2, 3, 9, 4], mode="nearest", opset=11, runtime=("sizes",))
    assert_matches_ort(model, feed, exact=True)


# --- lowering to nn.Upsample where torch is exact --------------------------------------------
@pytest.mark.parametrize("attrs,scales,sizes,expected", [
    ({"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, [1, 1, 2, 2], None,
     "Upsample(scale_factor=2.0, mode='nearest')"),
    ({"mode": "nearest"}, [1, 1, 2, 4], None, "Upsample(scale_factor=(2.0, 4.0), mode='nearest')"),
    ({"mode": "linear"}, [1, 1, 3, 2], None, "Upsample(scale_factor=(3.0, 2.0), mode='bilinear')"),
    ({"mode": "linear", "coordinate_transformation_mode": "align_corners"}, None, [2, 3, 8, 9],
     "Upsample(size=(8, 9), mode='bilinear')"),
    ({"mode": "cubic"}, [1, 1, 2, 2], None, "Upsample(scale_factor=2.0, mode='bicubic')"),
])
def test_lowered_to_upsample(attrs, scales, sizes, expected):
    model, feed = resize_model(randn(*X_SHAPE), scales=scales, sizes=sizes, **attrs)
    (layer,) = submodules(model)
    assert repr(layer) == expected
    if attrs["mode"] == "nearest":
        assert layer.align_corners is None
    else:
        assert layer.align_corners == (attrs.get("coordinate_transformation_mode") == "align_corners")
    assert_matches_ort(model, feed, atol=1e-5)


@pytest.mark.parametrize("attrs,scales", [
    ({"mode": "nearest", "nearest_mode": "round_prefer_ceil", "coordinate_transformation_mode": "asymmetric"},
     [1, 1, 2, 2]),  # x / 2 = k + 0.5 rounds up: not a repeat
    ({"mode": "nearest"}, [1, 1, 3, 3]),  # half_pixel round_prefer_floor by 3 is a repeat, but 1/3 is inexact
    ({"mode": "linear", "coordinate_transformation_mode": "asymmetric"}, [1, 1, 2, 2]),
    ({"mode": "linear"}, [1, 1, 2, 1.5]),  # fractional scale on a dynamic size
    ({"mode": "cubic", "cubic_coeff_a": -0.5}, [1, 1, 2, 2]),
    ({"mode": "linear", "antialias": 1}, [1, 1, 0.5, 0.5]),
])
def test_not_lowered_to_upsample(attrs, scales):
    model, feed = resize_model(randn(*X_SHAPE), scales=scales, **attrs)
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "w"
    (layer,) = submodules(model)
    assert isinstance(layer, Resize)
    assert_matches_ort(model, feed, atol=1e-5)


def test_upsample_nearest_2x_lowered():
    model, feed = resize_model(randn(*X_SHAPE), op_type="Upsample", opset=9, mode="nearest", scales=[1, 1, 2, 2])
    (layer,) = submodules(model)
    assert isinstance(layer, nn.Upsample)
    assert_matches_ort(model, feed, exact=True)


# --- loud failures --------------------------------------------------------------------------
@pytest.mark.parametrize("attrs", [{"mode": "area"}, {"coordinate_transformation_mode": "edge"},
                                   {"nearest_mode": "banker"}, {"keep_aspect_ratio_policy": "fit"}])
def test_unknown_attribute_values(attrs):
    model, _ = resize_model(randn(*X_SHAPE), scales=[1, 1, 2, 2], **attrs)
    with pytest.raises(ConversionError, match="not supported"):
        ConvertModel(model, simplify=False)


def test_upsample_rejects_downscaling():
    model, _ = resize_model(randn(*X_SHAPE), op_type="Upsample", opset=9, mode="nearest", scales=[1, 1, 0.5, 1])
    with pytest.raises(ConversionError, match="scales"):
        ConvertModel(model, simplify=False)


def test_crop_without_roi():
    model, _ = resize_model(randn(*X_SHAPE), scales=[1, 1, 2, 2], coordinate_transformation_mode="tf_crop_and_resize")
    with pytest.raises(ConversionError, match="roi"):
        ConvertModel(model, simplify=False)


#: Cases whose expected output departs from the spec text, onnxruntime agreeing with us.
SPEC_DEPARTURES = {
    # The reference maps align_corners with the fractional width scale * length (2.4) where the
    # spec (and onnxruntime) use the integer length_resized (2).
    "test_resize_downsample_scales_linear_align_corners",
    "test_resize_downsample_scales_cubic_align_corners",
}


# --- folding and pickling -------------------------------------------------------------------
def test_constant_input_is_folded():
    x = randn(1, 2, 3, 4)
    node = oh.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic", coordinate_transformation_mode="asymmetric")
    graph = oh.make_graph(
        [node], "fold", [], [oh.make_empty_tensor_value_info("y")],
        [onnx.numpy_helper.from_array(x, "x"), onnx.numpy_helper.from_array(np.array([1, 1, 1.5, 2], np.float32),
                                                                              "scales")],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 19)])
    model.ir_version = 8
    module = ConvertModel(model, simplify=False)
    assert not any(isinstance(m, Resize) for m in module.modules())
    assert_matches_ort(model, {}, atol=1e-5)


def test_converted_module_pickles():
    import pickle  # noqa: PLC0415

    model, feed = resize_model(randn(*X_SHAPE), roi=[0, 0, 0.1, 0.2, 1, 1, 0.8, 0.9], sizes=[2, 3, 4, 9],
                               runtime=("sizes",), mode="linear", coordinate_transformation_mode="tf_crop_and_resize")
    module = pickle.loads(pickle.dumps(ConvertModel(model, simplify=False)))
    with torch.no_grad():
        got = module(to_torch(feed["x"]), to_torch(feed["sizes"])).numpy()
    np.testing.assert_allclose(got, assert_matches_ort(model, feed, atol=1e-5)[0])
