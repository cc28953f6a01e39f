"""Build examples/tiny_inception.onnx: a small CNN with the traps naive converters get wrong.

It has an asymmetrically padded Conv, LRN with a non-default bias, a MaxPool with asymmetric pads,
an Inception-style block whose pool branch is an AveragePool with count_include_pad=1 and
asymmetric pads, and a Gemm classifier.  Weights are seeded random numbers.

    python tools/make_example.py [OUT.onnx]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
from onnx import TensorProto, numpy_helper

__all__ = ["build_example"]


def build_example() -> onnx.ModelProto:
    rng = np.random.default_rng(42)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.2).astype(np.float32), name)

    inits = [
        weight("stem_w", 16, 3, 3, 3), weight("stem_b", 16),
        weight("b1_w", 8, 16, 1, 1), weight("b1_b", 8),
        weight("b2_w", 8, 16, 3, 3), weight("b2_b", 8),
        weight("b3_w", 8, 16, 3, 3), weight("b3_b", 8),
        weight("fc_w", 10, 24), weight("fc_b", 10),
    ]
    nodes = [
        oh.make_node("Conv", ["input", "stem_w", "stem_b"], ["stem"], name="stem_conv",
                     kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1]),
        oh.make_node("Relu", ["stem"], ["stem_relu"], name="stem_relu"),
        oh.make_node("LRN", ["stem_relu"], ["stem_lrn"], name="stem_lrn", size=5, alpha=1e-3, beta=0.75, bias=2.0),
        oh.make_node("MaxPool", ["stem_lrn"], ["pool1"], name="pool1",
                     kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1]),
        oh.make_node("Conv", ["pool1", "b1_w", "b1_b"], ["b1"], name="branch1x1", kernel_shape=[1, 1]),
        oh.make_node("Conv", ["pool1", "b2_w", "b2_b"], ["b2"], name="branch3x3", kernel_shape=[3, 3],
                     auto_pad="SAME_UPPER"),
        oh.make_node("AveragePool", ["pool1"], ["b3_pool"], name="branch_pool", kernel_shape=[3, 3],
                     strides=[1, 1], pads=[0, 0, 2, 2], count_include_pad=1),
        oh.make_node("Conv", ["b3_pool", "b3_w", "b3_b"], ["b3"], name="branch_pool_proj", kernel_shape=[3, 3],
                     pads=[1, 1, 1, 1]),
        oh.make_node("Concat", ["b1", "b2", "b3"], ["mixed"], name="mixed", axis=1),
        oh.make_node("Relu", ["mixed"], ["mixed_relu"], name="mixed_relu"),
        oh.make_node("GlobalAveragePool", ["mixed_relu"], ["gap"], name="gap"),
        oh.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1),
        oh.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
        oh.make_node("Softmax", ["logits"], ["prob"], name="softmax", axis=1),
    ]
    graph = oh.make_graph(
        nodes, "tiny_inception",
        [oh.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [oh.make_tensor_value_info("prob", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], producer_name="onnx2torch-example")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "examples" / "tiny_inception.onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(build_example(), str(out))
    print(f"wrote {out}")
