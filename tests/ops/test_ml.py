"""ai.onnx.ml converters against onnxruntime: the models skl2onnx writes, built by hand with
onnx.helper (and, when scikit-learn and skl2onnx are installed, converted scikit-learn models)."""
from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import pytest
import torch
from onnx import TensorProto

from onnx2torch import ConvertModel
from onnx2torch.errors import ConversionError
from onnx2torch.verify import run_onnxruntime

ML = "ai.onnx.ml"
RNG = np.random.default_rng(0)
NP_ELEM = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
           np.dtype(np.int64): TensorProto.INT64, np.dtype(np.int32): TensorProto.INT32,
           np.dtype(object): TensorProto.STRING}

try:  # optional: end-to-end scikit-learn models (CI does not install these)
    import skl2onnx  # noqa: F401
    import sklearn  # noqa: F401

    HAVE_SKL2ONNX = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_SKL2ONNX = False
skl2onnx_models = pytest.mark.skipif(not HAVE_SKL2ONNX, reason="scikit-learn and skl2onnx are not installed")


def _value_info(name: str, value) -> onnx.ValueInfoProto:
    if isinstance(value, dict):
        key, item = next(iter(value.items()))
        key_type = TensorProto.STRING if isinstance(key, str) else TensorProto.INT64
        value_type = {str: TensorProto.STRING, int: TensorProto.INT64}.get(type(item), TensorProto.FLOAT)
        if isinstance(item, np.float64):
            value_type = TensorProto.DOUBLE
        tp = oh.make_map_type_proto(key_type, oh.make_tensor_type_proto(value_type, None))
        return oh.make_value_info(name, tp)
    return oh.make_tensor_value_info(name, NP_ELEM[value.dtype], list(value.shape))


def ml_model(op: str, inputs: dict, outputs=("y",), ml_opset: int = 3, **attrs) -> onnx.ModelProto:
    node = oh.make_node(op, list(inputs), list(outputs), domain=ML, name=f"{op.lower()}_node", **attrs)
    graph = oh.make_graph([node], "ml", [_value_info(k, v) for k, v in inputs.items()],
                          [oh.make_empty_tensor_value_info(o) for o in outputs])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid(ML, ml_opset)])
    model.ir_version = 8
    return model


def _torch_arg(value):
    if isinstance(value, np.ndarray) and value.dtype != object:
        return torch.from_numpy(value)
    return value


def assert_same(expected, got, *, atol=1e-5, rtol=1e-4, name="output"):
    if isinstance(expected, list):  # ZipMap: a list of dicts
        assert isinstance(got, list) and len(got) == len(expected), name
        for e, g in zip(expected, got):
            assert list(e) == list(g), f"{name}: keys {list(g)} != {list(e)}"
            np.testing.assert_allclose(list(g.values()), list(e.values()), atol=atol, rtol=rtol, err_msg=name)
        return
    got = got.detach().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    assert got.dtype == expected.dtype, f"{name}: dtype {got.dtype} != onnxruntime's {expected.dtype}"
    assert got.shape == expected.shape, f"{name}: shape {got.shape} != onnxruntime's {expected.shape}"
    if expected.dtype == object:
        assert got.tolist() == expected.tolist(), name
    else:
        np.testing.assert_allclose(got, expected, atol=atol, rtol=rtol, err_msg=name)


def check(model: onnx.ModelProto, feeds: dict, **tolerances) -> list:
    """Convert ``model`` and compare every output with onnxruntime."""
    expected = run_onnxruntime(model, feeds)
    module = ConvertModel(model, simplify=False)
    with torch.no_grad():
        got = module(*[_torch_arg(feeds[v.name]) for v in model.graph.input])
    got = list(got) if isinstance(got, tuple) else [got]
    assert len(got) == len(expected)
    for i, (e, g) in enumerate(zip(expected, got)):
        assert_same(e, g, name=f"output {i}", **tolerances)
    return got


TRANSFORMS = ["NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT"]


# --- linear models ------------------------------------------------------------------------------
@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("targets,intercepts", [(1, 1), (3, 3), (3, 1), (2, 0)])
def test_linear_regressor(transform, targets, intercepts):
    x = RNG.normal(size=(5, 4)).astype(np.float32)
    if transform == "PROBIT":
        x = RNG.uniform(0.05, 0.2, size=(5, 4)).astype(np.float32)
    attrs = {"coefficients": RNG.uniform(-1, 1, 4 * targets).tolist(), "targets": targets, "post_transform": transform}
    if intercepts:
        attrs["intercepts"] = RNG.uniform(0, 0.1 if transform == "PROBIT" else 1, intercepts).tolist()
    if transform == "PROBIT":
        attrs["coefficients"] = RNG.uniform(0, 1, 4 * targets).tolist()
    check(ml_model("LinearRegressor", {"x": x}, ml_opset=1, **attrs), {"x": x}, atol=1e-4)


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("classes,labels", [(3, "ints"), (4, "strings"), (1, "ints2"), (1, "strings2")])
def test_linear_classifier(transform, classes, labels):
    if transform == "PROBIT" and classes == 1:
        pytest.skip("onnxruntime leaves half of Z unwritten (the converter refuses, tested below)")
    x = RNG.normal(size=(7, 3)).astype(np.float32)
    attrs = {"coefficients": RNG.uniform(-1, 1, 3 * classes).tolist(),
             "intercepts": RNG.uniform(-1, 1, classes).tolist(),
             "post_transform": transform}
    if transform == "PROBIT":
        x = np.abs(x) * 0.1
        attrs["coefficients"] = RNG.uniform(0, 1, 3 * classes).tolist()
        attrs["intercepts"] = RNG.uniform(0.05, 0.1, classes).tolist()
    if labels.startswith("strings"):
        attrs["classlabels_strings"] = [f"c{i}" for i in range(max(classes, 2))]
    else:
        attrs["classlabels_ints"] = [10 + 3 * i for i in range(max(classes, 2))]
    check(ml_model("LinearClassifier", {"x": x}, ("y", "z"), ml_opset=1, **attrs), {"x": x}, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32])
def test_linear_classifier_input_types(dtype):
    x = RNG.integers(-3, 4, size=(6, 3)).astype(dtype)
    attrs = {"coefficients": RNG.uniform(-1, 1, 6).tolist(), "intercepts": [0.1, -0.2], "classlabels_ints": [0, 1],
             "post_transform": "LOGISTIC"}
    check(ml_model("LinearClassifier", {"x": x}, ("y", "z"), ml_opset=1, **attrs), {"x": x})
    x1 = x[0]
    check(ml_model("LinearClassifier", {"x": x1}, ("y", "z"), ml_opset=1, **attrs), {"x": x1})


# --- feature transforms -------------------------------------------------------------------------
@pytest.mark.parametrize("norm", ["MAX", "L1", "L2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
def test_normalizer(norm, dtype):
    x = (RNG.normal(size=(4, 5)) * 5).astype(dtype)
    x[1] = 0
    check(ml_model("Normalizer", {"x": x}, ml_opset=1, norm=norm), {"x": x})
    check(ml_model("Normalizer", {"x": x[0]}, ml_opset=1, norm=norm), {"x": x[0]})


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
@pytest.mark.parametrize("per_feature", [True, False])
def test_scaler(dtype, per_feature):
    x = (RNG.normal(size=(4, 3)) * 10).astype(dtype)
    n = 3 if per_feature else 1
    attrs = {"offset": RNG.normal(size=n).tolist(), "scale": RNG.uniform(0.1, 2, n).tolist()}
    check(ml_model("Scaler", {"x": x}, ml_opset=1, **attrs), {"x": x})
    check(ml_model("Scaler", {"x": x[0]}, ml_opset=1, **attrs), {"x": x[0]})
    x3 = (RNG.normal(size=(2, 3, 5)) * 10).astype(dtype)  # onnxruntime's flat-index-modulo-F layout
    check(ml_model("Scaler", {"x": x3}, ml_opset=1, **attrs), {"x": x3})


@pytest.mark.parametrize("case", ["nan", "value", "single", "int64"])
def test_imputer(case):
    x = RNG.normal(size=(5, 3)).astype(np.float32)
    x[RNG.random((5, 3)) < 0.4] = np.nan if case != "value" else 2.5
    attrs = {"imputed_value_floats": [1.0, -2.0, 3.0], "replaced_value_float": np.nan if case != "value" else 2.5}
    if case == "single":
        attrs["imputed_value_floats"] = [7.0]
    if case == "int64":
        x = RNG.integers(-2, 3, size=(5, 3)).astype(np.int64)
        attrs = {"imputed_value_int64s": [10, 20, 30], "replaced_value_int64": 0}
    check(ml_model("Imputer", {"x": x}, ml_opset=1, **attrs), {"x": x}, atol=0)


@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.float64, object])
def test_one_hot_encoder(dtype):
    if dtype is object:
        x = np.array([["a", "b", "zz"], ["c", "a", "b"]], dtype=object)
        attrs = {"cats_strings": ["a", "b", "c", "a"]}
    else:
        x = np.array([[1, 3, 7], [2.7, -3, 0]]).astype(dtype)
        attrs = {"cats_int64s": [3, 1, 2, 0, -3, 3]}
    check(ml_model("OneHotEncoder", {"x": x}, ml_opset=1, zeros=1, **attrs), {"x": x}, atol=0)
    known = x[:, :2] if dtype is not object else np.array([["a", "b"], ["c", "a"]], dtype=object)
    check(ml_model("OneHotEncoder", {"x": known}, ml_opset=1, zeros=0, **attrs), {"x": known}, atol=0)
    model = ml_model("OneHotEncoder", {"x": x}, ml_opset=1, zeros=0, **attrs)
    with pytest.raises(ValueError, match="unknown category"):
        ConvertModel(model, simplify=False)(_torch_arg(x))


def test_category_mapper_both_ways():
    attrs = {"cats_strings": ["cat", "dog", "cow", "dog"], "cats_int64s": [1, 2, 3, 4], "default_int64": -9,
             "default_string": "none"}
    strings = np.array([["dog", "emu"], ["cat", "cow"]], dtype=object)
    check(ml_model("CategoryMapper", {"x": strings}, ml_opset=1, **attrs), {"x": strings})
    ints = np.array([4, 1, 7, 3, 2], dtype=np.int64)
    check(ml_model("CategoryMapper", {"x": ints}, ml_opset=1, **attrs), {"x": ints})


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
def test_feature_vectorizer_pads_and_cuts(dtype):
    feeds = {"a": RNG.normal(size=(3, 2)), "b": RNG.normal(size=(3, 4)) * 5, "c": RNG.normal(size=(3, 1)),
             "d": RNG.normal(size=(3, 2, 2)) * 5}
    feeds = {k: v.astype(dtype) for k, v in feeds.items()}
    check(ml_model("FeatureVectorizer", feeds, ml_opset=1, inputdimensions=[2, 3, 2, 4]), feeds)


# --- maps ---------------------------------------------------------------------------------------
def run_converted(model: onnx.ModelProto, feeds: dict):
    with torch.no_grad():
        return ConvertModel(model, simplify=False)(*[_torch_arg(feeds[v.name]) for v in model.graph.input])


@pytest.mark.parametrize("keys", ["string", "int64"])
def test_dict_vectorizer_float_maps(keys):
    if keys == "string":
        vocabulary, x = {"string_vocabulary": ["b", "a", "zz", "c"]}, {"a": 0.5, "b": 1.5, "c": -2.0, "q": 4.0}
    else:
        vocabulary, x = {"int64_vocabulary": [5, 2, 9, 1]}, {1: 0.5, 2: 1.5, 5: -2.0, 8: 4.0}
    check(ml_model("DictVectorizer", {"x": x}, ml_opset=1, **vocabulary), {"x": x})


def _map_model(op: str, key_type: int, value_type: int, **attrs) -> onnx.ModelProto:
    tp = oh.make_map_type_proto(key_type, oh.make_tensor_type_proto(value_type, None))
    node = oh.make_node(op, ["x"], ["y"], domain=ML, **attrs)
    graph = oh.make_graph([node], "ml", [oh.make_value_info("x", tp)], [oh.make_empty_tensor_value_info("y")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid(ML, 1)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("value_type,values,expected", [
    (TensorProto.INT64, {"a": 3, "b": -1}, np.array([[-1, 3, 0]], dtype=np.int64)),
    (TensorProto.DOUBLE, {"a": 0.25, "c": 2.0}, np.array([[0.0, 0.25, 0.0]], dtype=np.float64)),
])
def test_dict_vectorizer_other_value_types(value_type, values, expected):
    # onnxruntime's Python API feeds only float-valued maps; these follow its kernel ([1, V], 0 when absent)
    model = _map_model("DictVectorizer", TensorProto.STRING, value_type, string_vocabulary=["b", "a", "zz"])
    got = run_converted(model, {"x": values})
    assert_same(expected, got)


def test_dict_vectorizer_int64_to_string():
    model = _map_model("DictVectorizer", TensorProto.INT64, TensorProto.STRING, int64_vocabulary=[4, 1, 7])
    got = run_converted(model, {"x": {1: "one", 7: "seven", 9: "nine"}})
    assert_same(np.array([["", "one", "seven"]], dtype=object), got)


@pytest.mark.parametrize("cast_to", ["TO_FLOAT", "TO_INT64", "TO_STRING"])
@pytest.mark.parametrize("form", ["DENSE", "SPARSE"])
def test_cast_map_from_floats(cast_to, form):
    x = {k: float(k) * 1.75 - 2 for k in [4, 0, 2, 7]}
    check(ml_model("CastMap", {"x": x}, ml_opset=1, cast_to=cast_to, map_form=form, max_map=6), {"x": x})


@pytest.mark.parametrize("cast_to,form,expected", [
    ("TO_FLOAT", "DENSE", np.array([[-2.0, 4.5, 10.0]], dtype=np.float32)),
    ("TO_INT64", "SPARSE", np.array([[-2, 0, 4, 0, 10]], dtype=np.int64)),
    ("TO_STRING", "SPARSE", np.array([["-2", "0.f", "4.5e0", "0.f", "10abc"]], dtype=object)),
])
def test_cast_map_from_strings(cast_to, form, expected):
    # onnxruntime's Python API cannot feed map(int64, string); expected values follow its kernel
    # (std::stof / std::stoll read a number's leading part, "0.f" pads SPARSE strings)
    model = _map_model("CastMap", TensorProto.INT64, TensorProto.STRING, cast_to=cast_to, map_form=form, max_map=5)
    got = run_converted(model, {"x": {4: "10abc", 0: "-2", 2: "4.5e0"}})
    assert_same(expected, got)


@pytest.mark.parametrize("labels", ["strings", "ints"])
@pytest.mark.parametrize("shape", [(4, 3), (3,)])
def test_zip_map(labels, shape):
    x = RNG.random(shape).astype(np.float32)
    attrs = {"classlabels_strings": ["x", "y", "z"]} if labels == "strings" else {"classlabels_int64s": [7, 3, 5]}
    check(ml_model("ZipMap", {"x": x}, ml_opset=1, **attrs), {"x": x}, atol=0, rtol=0)


# --- SVMs ---------------------------------------------------------------------------------------
KERNELS = [("LINEAR", [0.0, 0.0, 0.0]), ("POLY", [0.3, 0.5, 3.0]), ("RBF", [0.4, 0.0, 0.0]),
           ("SIGMOID", [0.2, 0.1, 0.0])]


@pytest.mark.parametrize("kernel,params", KERNELS)
@pytest.mark.parametrize("one_class", [0, 1])
def test_svm_regressor(kernel, params, one_class):
    x = RNG.normal(size=(6, 3)).astype(np.float32)
    attrs = {"kernel_type": kernel, "kernel_params": params, "n_supports": 4,
             "support_vectors": RNG.normal(size=12).tolist(),
             "coefficients": RNG.normal(size=4).tolist(), "rho": [0.3], "one_class": one_class}
    check(ml_model("SVMRegressor", {"x": x}, ml_opset=1, **attrs), {"x": x}, atol=1e-4)


def test_svm_regressor_linear_mode():
    x = RNG.normal(size=(6, 3)).astype(np.float32)
    attrs = {"coefficients": RNG.normal(size=3).tolist(), "rho": [-0.2], "kernel_params": [0.1, 0.0, 1.0]}
    check(ml_model("SVMRegressor", {"x": x}, ml_opset=1, **attrs), {"x": x})


def svc_attrs(classes: int, kernel: str, params, proba: bool, labels: str = "ints", features: int = 3):
    per_class = [int(n) for n in RNG.integers(2, 5, size=classes)]
    total = sum(per_class)
    attrs = {"kernel_type": kernel, "kernel_params": params, "vectors_per_class": per_class,
             "support_vectors": RNG.normal(size=total * features).tolist(),
             "coefficients": RNG.uniform(-1, 1, (classes - 1) * total).tolist(),
             "rho": RNG.uniform(-0.5, 0.5, classes * (classes - 1) // 2).tolist()}
    if proba:
        attrs["prob_a"] = RNG.uniform(-4, -1, classes * (classes - 1) // 2).tolist()
        attrs["prob_b"] = RNG.uniform(-0.3, 0.3, classes * (classes - 1) // 2).tolist()
    if labels == "ints":
        attrs["classlabels_ints"] = [2 * i + 1 for i in range(classes)]
    else:
        attrs["classlabels_strings"] = [f"k{i}" for i in range(classes)]
    return attrs


@pytest.mark.parametrize("kernel,params", KERNELS)
@pytest.mark.parametrize("classes", [2, 3, 4])
@pytest.mark.parametrize("proba", [True, False])
def test_svm_classifier(kernel, params, classes, proba):
    x = RNG.normal(size=(9, 3)).astype(np.float32)
    attrs = svc_attrs(classes, kernel, params, proba, labels="strings" if classes == 3 else "ints")
    check(ml_model("SVMClassifier", {"x": x}, ("y", "z"), ml_opset=1, **attrs), {"x": x}, atol=2e-4)


@pytest.mark.parametrize("transform", ["SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT"])
@pytest.mark.parametrize("classes,proba", [(2, False), (2, True), (3, False), (3, True)])
def test_svm_classifier_post_transforms(transform, classes, proba):
    if transform == "PROBIT" and classes == 2 and not proba:
        pytest.skip("onnxruntime leaves half of Z unwritten (the converter refuses)")
    x = RNG.normal(size=(8, 3)).astype(np.float32)
    attrs = svc_attrs(classes, "RBF", [0.3, 0.0, 0.0], proba)
    if transform == "PROBIT" and not proba:  # keep the decision values inside (0, 1)
        attrs["coefficients"] = (np.asarray(attrs["coefficients"]) * 0.01).tolist()
        attrs["rho"] = RNG.uniform(0.3, 0.6, len(attrs["rho"])).tolist()
    check(ml_model("SVMClassifier", {"x": x}, ("y", "z"), ml_opset=1, post_transform=transform, **attrs), {"x": x},
          atol=2e-4)


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("positive", [True, False])
@pytest.mark.parametrize("proba", [False, True])
def test_svm_classifier_linear_mode(classes, positive, proba):
    x = RNG.normal(size=(10, 3)).astype(np.float32)
    coefficients = RNG.uniform(0 if positive else -1, 1, classes * 3).tolist()
    attrs = {"coefficients": coefficients, "rho": [-0.3], "classlabels_ints": list(range(4, 4 + classes)),
             "kernel_params": [0.0, 0.0, 0.0]}
    if proba:
        attrs.update(prob_a=[-1.0], prob_b=[0.5])
    check(ml_model("SVMClassifier", {"x": x}, ("y", "z"), ml_opset=1, **attrs), {"x": x})


def test_unwritten_scores_are_refused():
    x = RNG.normal(size=(3, 3)).astype(np.float32)
    model = ml_model("SVMClassifier", {"x": x}, ("y", "z"), ml_opset=1, post_transform="PROBIT",
                     **svc_attrs(2, "RBF", [0.3, 0.0, 0.0], False))
    with pytest.raises(ConversionError, match="post_transform"):
        ConvertModel(model, simplify=False)
    model = ml_model("LinearClassifier", {"x": x}, ("y", "z"), ml_opset=1, coefficients=[1.0, 2.0, 3.0],
                     intercepts=[0.5], classlabels_ints=[3, 4], post_transform="PROBIT")
    with pytest.raises(ConversionError, match="post_transform"):
        ConvertModel(model, simplify=False)


# --- tree ensembles -----------------------------------------------------------------------------
def random_trees(n_trees: int, depth: int, features: int, *, n_targets: int, mode_choice=("BRANCH_LEQ",),
                 votes_per_leaf=1, target_ids=None, weights=(-1.0, 1.0), missing=False, node_offset=0):
    """Legacy TreeEnsemble node/vote attributes of random full trees (node ids in BFS order)."""
    nodes = {k: [] for k in ("treeids", "nodeids", "featureids", "values", "modes", "truenodeids", "falsenodeids",
                             "missing_value_tracks_true")}
    votes = {k: [] for k in ("treeids", "nodeids", "ids", "weights")}
    for t in range(n_trees):
        tree_depth = int(RNG.integers(0, depth + 1))
        n_inner = 2 ** tree_depth - 1
        for i in range(2 ** (tree_depth + 1) - 1):
            nodes["treeids"].append(t)
            nodes["nodeids"].append(i + node_offset)
            leaf = i >= n_inner
            nodes["featureids"].append(0 if leaf else int(RNG.integers(0, features)))
            nodes["values"].append(0.0 if leaf else float(np.round(RNG.normal(), 1)))
            nodes["modes"].append("LEAF" if leaf else str(RNG.choice(mode_choice)))
            nodes["truenodeids"].append(0 if leaf else 2 * i + 1 + node_offset)
            nodes["falsenodeids"].append(0 if leaf else 2 * i + 2 + node_offset)
            nodes["missing_value_tracks_true"].append(int(missing and RNG.random() < 0.5) if not leaf else 0)
            if leaf:
                ids = target_ids if target_ids is not None else range(n_targets)
                for target in RNG.choice(list(ids), size=min(votes_per_leaf, len(list(ids))), replace=False):
                    votes["treeids"].append(t)
                    votes["nodeids"].append(i + node_offset)
                    votes["ids"].append(int(target))
                    votes["weights"].append(float(RNG.uniform(*weights)))
    return nodes, votes


def tree_attrs(nodes, votes, prefix):
    attrs = {f"nodes_{k}": v for k, v in nodes.items()}
    attrs.update({f"{prefix}_{k}": v for k, v in votes.items()})
    return attrs


def _double_tensor(values) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(np.asarray(values, dtype=np.float64))


def tree_input(features=4, n=40, dtype=np.float32):
    x = np.round(RNG.normal(size=(n, features)), 1).astype(dtype)
    if np.dtype(dtype).kind == "f":
        x[RNG.random(x.shape) < 0.1] = np.nan
    return x


@pytest.mark.parametrize("aggregate", ["SUM", "AVERAGE", "MIN", "MAX"])
@pytest.mark.parametrize("n_targets,base", [(1, 0), (1, 1), (3, 0), (3, 3)])
def test_tree_ensemble_regressor(aggregate, n_targets, base):
    nodes, votes = random_trees(5, 3, 4, n_targets=n_targets, votes_per_leaf=2,
                                mode_choice=("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ",
                                             "BRANCH_NEQ"),
                                missing=True)
    attrs = tree_attrs(nodes, votes, "target")
    attrs.update(n_targets=n_targets, aggregate_function=aggregate)
    if base:
        attrs["base_values"] = RNG.normal(size=base).tolist()
    x = tree_input()
    check(ml_model("TreeEnsembleRegressor", {"x": x}, ml_opset=1, **attrs), {"x": x})


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("n_targets", [1, 3])
def test_tree_ensemble_regressor_post_transform(transform, n_targets):
    nodes, votes = random_trees(4, 3, 4, n_targets=n_targets, weights=(0.05, 0.2))
    attrs = tree_attrs(nodes, votes, "target")
    attrs.update(n_targets=n_targets, post_transform=transform, aggregate_function="AVERAGE")
    x = tree_input()
    check(ml_model("TreeEnsembleRegressor", {"x": x}, ml_opset=1, **attrs), {"x": x}, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32])
def test_tree_ensemble_input_types(dtype):
    nodes, votes = random_trees(3, 3, 4, n_targets=2)
    x = tree_input(dtype=dtype)
    attrs = tree_attrs(nodes, votes, "class")
    check(ml_model("TreeEnsembleClassifier", {"x": x}, ("y", "z"), ml_opset=1, classlabels_int64s=[0, 1], **attrs),
          {"x": x})
    if dtype == np.float64:
        attrs = tree_attrs(nodes, votes, "target")
        check(ml_model("TreeEnsembleRegressor", {"x": x}, ml_opset=1, n_targets=2, **attrs), {"x": x})


def test_tree_ensemble_v3_double_tensors():
    nodes, votes = random_trees(3, 3, 4, n_targets=2)
    attrs = tree_attrs(nodes, votes, "target")
    attrs["nodes_values_as_tensor"] = _double_tensor(attrs.pop("nodes_values"))
    attrs["target_weights_as_tensor"] = onnx.numpy_helper.from_array(np.asarray(attrs.pop("target_weights")) + 1e-9)
    attrs["base_values_as_tensor"] = onnx.numpy_helper.from_array(np.array([0.5, 1e-10]))
    x = tree_input(dtype=np.float64)
    check(ml_model("TreeEnsembleRegressor", {"x": x}, ml_opset=3, n_targets=2, **attrs), {"x": x})


def test_tree_ensemble_single_leaf_trees_and_unsorted_ids():
    # every tree a lone leaf; node ids not starting at 0
    nodes, votes = random_trees(3, 0, 4, n_targets=2, node_offset=5)
    attrs = tree_attrs(nodes, votes, "target")
    x = tree_input()
    check(ml_model("TreeEnsembleRegressor", {"x": x}, ml_opset=1, n_targets=2, **attrs), {"x": x})


@pytest.mark.parametrize("aggregate", ["SUM", "MIN", "MAX"])
@pytest.mark.parametrize("n_targets", [1, 2])
def test_tree_ensemble_regressor_repeated_votes(aggregate, n_targets):
    # a leaf voting twice for a target: onnxruntime's one-target path keeps the first vote only
    nodes, votes = random_trees(3, 2, 4, n_targets=n_targets, votes_per_leaf=n_targets)
    order = RNG.permutation(len(votes["ids"]))
    votes = {k: [v[i] for i in order] + v for k, v in votes.items()}  # every vote twice, shuffled first
    votes["weights"] = [float(w) for w in RNG.uniform(-1, 1, len(votes["weights"]))]
    attrs = tree_attrs(nodes, votes, "target")
    x = tree_input()
    check(ml_model("TreeEnsembleRegressor", {"x": x}, ml_opset=1, n_targets=n_targets, aggregate_function=aggregate,
                   **attrs), {"x": x})


def test_tree_ensemble_refusals():
    nodes, votes = random_trees(2, 2, 4, n_targets=2)
    attrs = tree_attrs(nodes, votes, "target")
    x = tree_input()
    model = ml_model("TreeEnsembleRegressor", {"x": x}, ml_opset=5, n_targets=2, **attrs)
    with pytest.raises(ConversionError, match="opset"):  # removed in ai.onnx.ml 5 (onnxruntime refuses too)
        ConvertModel(model, simplify=False)
    attrs["nodes_values_as_tensor"] = _double_tensor(attrs.pop("nodes_values"))
    model = ml_model("TreeEnsembleRegressor", {"x": x}, ml_opset=3, n_targets=2, **attrs)
    with pytest.raises(ConversionError, match="as_tensor"):  # double thresholds for float inputs
        ConvertModel(model, simplify=False)
    model = ml_model("TreeEnsembleRegressor", {"x": x}, ml_opset=1, n_targets=2, base_values=[1.0],
                     **tree_attrs(*random_trees(2, 2, 4, n_targets=2), "target"))
    with pytest.raises(ConversionError, match="base_values"):
        ConvertModel(model, simplify=False)


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("classes,labels", [(3, "ints"), (4, "strings")])
def test_tree_ensemble_classifier_multiclass(transform, classes, labels):
    nodes, votes = random_trees(6, 3, 4, n_targets=classes, votes_per_leaf=2,
                                weights=(0.05, 0.3) if transform == "PROBIT" else (-1.0, 1.0))
    attrs = tree_attrs(nodes, votes, "class")
    if labels == "ints":
        attrs["classlabels_int64s"] = [5 * i + 2 for i in range(classes)]
    else:
        attrs["classlabels_strings"] = [f"class_{i}" for i in range(classes)]
        attrs["base_values"] = RNG.uniform(0, 0.1, classes).tolist()
    x = tree_input()
    check(ml_model("TreeEnsembleClassifier", {"x": x}, ("y", "z"), ml_opset=1, post_transform=transform, **attrs),
          {"x": x}, atol=1e-4)


BINARY_CASES = [  # (class ids voted, votes per leaf, weights range, base values)
    ([0], 1, (0.0, 1.0), []), ([0], 1, (0.0, 1.0), [0.2]), ([0], 1, (-1.0, 1.0), [-0.3]), ([0], 1, (-1.0, 1.0), []),
    ([1], 1, (0.0, 1.0), []), ([1], 1, (-1.0, 1.0), [0.1, 0.4]), ([0, 1], 2, (0.0, 1.0), []),
    ([0, 1], 2, (-1.0, 1.0), [0.1, 0.3]), ([0, 1], 2, (0.0, 1.0), [0.2, 0.2]), ([0], 1, (0.0, 1.0), [0.1, 0.2]),
    ([0, 1], 1, (0.0, 1.0), []), ([0, 1], 1, (-1.0, 1.0), [0.3, -0.1]),  # some samples get no class-1 vote
]


@pytest.mark.parametrize("transform", ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"])
@pytest.mark.parametrize("ids,per_leaf,weights,base", BINARY_CASES)
@pytest.mark.parametrize("labels", ["ints", "strings"])
def test_tree_ensemble_classifier_binary(transform, ids, per_leaf, weights, base, labels):
    nodes, votes = random_trees(4, 3, 4, n_targets=2, target_ids=ids, weights=weights, votes_per_leaf=per_leaf)
    attrs = tree_attrs(nodes, votes, "class")
    if labels == "ints":
        attrs["classlabels_int64s"] = [3, 8]  # onnxruntime answers 0/1 for some binary models: mirrored
    else:
        attrs["classlabels_strings"] = ["no", "yes"]
    if base:
        attrs["base_values"] = base
    x = tree_input()
    model = ml_model("TreeEnsembleClassifier", {"x": x}, ("y", "z"), ml_opset=1, post_transform=transform, **attrs)
    check(model, {"x": x})


def test_tree_ensemble_classifier_refuses_unwritten_scores():
    # samples reaching only class-0 votes get one score; onnxruntime leaves Z[:, 1] unwritten with
    # PROBIT, or with one base value when both classes have votes
    nodes, votes = random_trees(3, 2, 4, n_targets=2, target_ids=[0], weights=(0.0, 1.0))
    x = tree_input()
    model = ml_model("TreeEnsembleClassifier", {"x": x}, ("y", "z"), ml_opset=1, post_transform="PROBIT",
                     classlabels_int64s=[0, 1], **tree_attrs(nodes, votes, "class"))
    with pytest.raises(ConversionError, match="class-1 vote"):
        ConvertModel(model, simplify=False)
    split = {"nodes_treeids": [0, 0, 0], "nodes_nodeids": [0, 1, 2], "nodes_featureids": [0, 0, 0],
             "nodes_values": [0.0, 0.0, 0.0], "nodes_modes": ["BRANCH_LEQ", "LEAF", "LEAF"],
             "nodes_truenodeids": [1, 0, 0], "nodes_falsenodeids": [2, 0, 0], "class_treeids": [0, 0],
             "class_nodeids": [1, 2], "class_ids": [0, 1], "class_weights": [0.7, 0.4]}
    model = ml_model("TreeEnsembleClassifier", {"x": x}, ("y", "z"), ml_opset=1, classlabels_int64s=[0, 1],
                     base_values=[0.2], **split)
    with pytest.raises(ConversionError, match="class-1 vote"):
        ConvertModel(model, simplify=False)
    model = ml_model("TreeEnsembleClassifier", {"x": x}, ("y", "z"), ml_opset=1, classlabels_int64s=[0, 1],
                     base_values=[0.2, 0.1], **split)
    check(model, {"x": x})  # fully defined with two base values


# --- end to end: scikit-learn models converted by skl2onnx -------------------------------------
def _skl_check(estimator, x, y, options: dict):
    from skl2onnx import to_onnx

    estimator.fit(x, y)
    model = to_onnx(estimator, x[:1], target_opset={"": 17, ML: 3},
                    options={id(estimator): options} if options else None)
    feeds = {model.graph.input[0].name: x}
    expected = run_onnxruntime(model, feeds)
    module = ConvertModel(model, simplify=False)
    with torch.no_grad():
        got = module(torch.from_numpy(x))
    got = list(got) if isinstance(got, tuple) else [got]
    for i, (e, g) in enumerate(zip(expected, got)):
        assert_same(e, g, atol=1e-4, name=f"{type(estimator).__name__} output {i}")


@skl2onnx_models
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("name", ["logreg2", "logreg3", "svc2", "svc3", "svc3_ovo", "nusvc_noproba", "linearsvc3",
                                  "tree2", "forest3", "gboost2", "gboost3", "tree_reg", "forest_reg", "gboost_reg",
                                  "svr", "linreg", "pipeline"])
def test_scikit_learn_models(name):
    from sklearn import ensemble, linear_model, pipeline, preprocessing, svm, tree

    x = RNG.normal(size=(80, 4)).astype(np.float32)
    y2 = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    y3 = np.digitize(x[:, 0] - x[:, 2], [-0.5, 0.5])
    yr = x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * RNG.normal(size=80)
    cases = {
        "logreg2": (linear_model.LogisticRegression(), y2, {}),
        "logreg3": (linear_model.LogisticRegression(), y3, {}),
        "svc2": (svm.SVC(probability=True, random_state=0), y2, {}),
        "svc3": (svm.SVC(probability=True, kernel="poly", degree=2, random_state=0), y3, {}),
        "svc3_ovo": (svm.SVC(decision_function_shape="ovo"), y3, {}),
        "nusvc_noproba": (svm.NuSVC(kernel="sigmoid", gamma=0.1), y2, {}),
        "linearsvc3": (svm.LinearSVC(), y3, {}),
        "tree2": (tree.DecisionTreeClassifier(max_depth=4), y2, {"zipmap": False}),
        "forest3": (ensemble.RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0), y3, {}),
        "gboost2": (ensemble.GradientBoostingClassifier(n_estimators=5, max_depth=2), y2, {}),
        "gboost3": (ensemble.GradientBoostingClassifier(n_estimators=5, max_depth=2), y3, {}),
        "tree_reg": (tree.DecisionTreeRegressor(max_depth=4), yr, {}),
        "forest_reg": (ensemble.RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0), yr, {}),
        "gboost_reg": (ensemble.GradientBoostingRegressor(n_estimators=5, max_depth=2), yr, {}),
        "svr": (svm.SVR(), yr, {}),
        "linreg": (linear_model.LinearRegression(), yr, {}),
        "pipeline": (pipeline.make_pipeline(preprocessing.StandardScaler(), preprocessing.Normalizer(),
                                            linear_model.LogisticRegression()), y3, {}),
    }
    estimator, y, options = cases[name]
    _skl_check(estimator, x, y, options)
