"""String ops, TfIdfVectorizer and ai.onnx.ml ops against onnxruntime / ONNX's reference."""
from __future__ import annotations

import numpy as np
import onnx.helper as oh
import pytest
import torch
from onnx import TensorProto
from onnx.reference import ReferenceEvaluator

from onnx2torch import ConvertModel
from onnx2torch.verify import run_onnxruntime

RNG = np.random.default_rng(0)


def _model(node, inputs, opset=20, extra_opsets=()):
    graph = oh.make_graph([node], "g", inputs, [oh.make_empty_tensor_value_info(o) for o in node.output])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset), *extra_opsets])
    model.ir_version = 9
    return model


@pytest.mark.parametrize("mode", ["TF", "IDF", "TFIDF"])
@pytest.mark.parametrize("grams,skip", [((1, 1), 0), ((2, 2), 3), ((1, 3), 2)])
def test_tfidf_vectorizer_matches_onnxruntime(mode, grams, skip):
    pool = [2, 3, 5, 4, 5, 6, 7, 8, 6, 7, 2, 3, 5]  # 4 unigrams, 3 bigrams, 1 trigram
    counts = [0, 4, 10]
    indexes = list(range(8))
    node = oh.make_node("TfIdfVectorizer", ["x"], ["y"], mode=mode, min_gram_length=grams[0],
                        max_gram_length=grams[1], max_skip_count=skip, ngram_counts=counts,
                        ngram_indexes=indexes, pool_int64s=pool,
                        weights=[float(w) for w in RNG.uniform(0.5, 2, size=8)])
    x = RNG.integers(2, 9, size=(3, 12)).astype(np.int64)
    model = _model(node, [oh.make_tensor_value_info("x", TensorProto.INT64, [3, 12])], opset=9)
    expected = run_onnxruntime(model, {"x": x})[0]
    got = ConvertModel(model, simplify=False)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_string_split_and_normalizer_match_reference():
    x = np.array(["Hello  world", "a-b-c", ""], dtype=object)
    split = oh.make_node("StringSplit", ["x"], ["y", "n"], delimiter="-", maxsplit=1)
    model = _model(split, [oh.make_tensor_value_info("x", TensorProto.STRING, [3])])
    y, n = ConvertModel(model, simplify=False)(x)
    ref_y, ref_n = ReferenceEvaluator(model).run(None, {"x": x})
    assert y.tolist() == ref_y.tolist() and n.tolist() == ref_n.tolist()
    x = np.array(["Hello  world", "a-b-c", "Zoo"], dtype=object)
    norm = oh.make_node("StringNormalizer", ["x"], ["y"], case_change_action="UPPER", stopwords=["a-b-c"])
    model = _model(norm, [oh.make_tensor_value_info("x", TensorProto.STRING, [3])], opset=10)
    # onnxruntime needs an installed en_US locale for this op; the reference evaluator does not
    assert ConvertModel(model, simplify=False)(x).tolist() == ReferenceEvaluator(model).run(None, {"x": x})[0].tolist()


def test_label_encoder_maps_strings_to_ints_with_default():
    node = oh.make_node("LabelEncoder", ["x"], ["y"], domain="ai.onnx.ml", keys_strings=["a", "b"],
                        values_int64s=[1, 2], default_int64=-7)
    model = _model(node, [oh.make_tensor_value_info("x", TensorProto.STRING, [4])], opset=17,
                   extra_opsets=[oh.make_opsetid("ai.onnx.ml", 2)])
    x = np.array(["b", "a", "zz", "b"], dtype=object)
    got = ConvertModel(model, simplify=False)(x)
    assert got.dtype == torch.int64 and got.tolist() == run_onnxruntime(model, {"x": x})[0].tolist()
