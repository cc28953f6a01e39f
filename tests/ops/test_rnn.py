"""RNN / GRU / LSTM against onnxruntime: directions, states, sequence_lens, layout, peepholes,
clip, linear_before_reset, activations, runtime weights, and which lowering each node gets."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnx.helper as oh
import pytest
import torch
from onnx import TensorProto, numpy_helper
from torch import nn

from onnx2torch import ConvertModel
from onnx2torch.errors import ConversionError
from onnx2torch.ops.rnn import GRULoop, LSTMLoop, NativeRecurrent, RNNLoop
from onnx2torch.verify import run_onnxruntime
from tests.helpers import convert_and_run

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
INPUT_NAMES = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
DIRECTIONS = ["forward", "reverse", "bidirectional"]
HIDDEN, INPUT, STEPS, BATCH = 4, 3, 5, 3


def make_case(
    op: str,
    direction: str = "forward",
    *,
    bias: bool = True,
    lengths: list[int] | None = None,
    initial: bool = False,
    peepholes: bool = False,
    const: tuple[str, ...] = ("W", "R", "B", "P"),
    outputs: list[str] | None = None,
    layout: int = 0,
    opset: int = 14,
    scale: float = 0.5,
    seed: int = 0,
    dtype=np.float32,
    **attrs,
) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """One recurrent node; names in ``const`` are initializers, the other inputs graph inputs."""
    rng = np.random.default_rng(seed)
    nd = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    values: dict[str, np.ndarray] = {
        "X": rng.standard_normal((STEPS, BATCH, INPUT)),
        "W": scale * rng.standard_normal((nd, g * HIDDEN, INPUT)),
        "R": scale * rng.standard_normal((nd, g * HIDDEN, HIDDEN)),
    }
    if bias:
        values["B"] = scale * rng.standard_normal((nd, 2 * g * HIDDEN))
    if lengths is not None:
        values["sequence_lens"] = np.array(lengths, dtype=np.int32)
    if initial:
        values["initial_h"] = rng.standard_normal((nd, BATCH, HIDDEN))
        if op == "LSTM":
            values["initial_c"] = rng.standard_normal((nd, BATCH, HIDDEN))
    if peepholes:
        values["P"] = scale * rng.standard_normal((nd, 3 * HIDDEN))
    for k, v in values.items():
        if v.dtype.kind == "f":
            values[k] = v.astype(dtype)
    if layout == 1:
        for k in ("X", "initial_h", "initial_c"):
            if k in values:
                values[k] = np.ascontiguousarray(values[k].swapaxes(0, 1))
    if outputs is None:
        outputs = ["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"]
    node_inputs = [n if n in values else "" for n in INPUT_NAMES[: 8 if op == "LSTM" else 6]]
    while node_inputs and not node_inputs[-1]:
        node_inputs.pop()
    if layout:
        attrs["layout"] = layout
    node = oh.make_node(op, node_inputs, outputs, name="rec", hidden_size=HIDDEN, direction=direction, **attrs)
    elem = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE}[dtype]
    graph_inputs, initializers, feeds = [], [], {}
    for name, value in values.items():
        if name in const:
            initializers.append(numpy_helper.from_array(value, name))
        else:
            et = TensorProto.INT32 if name == "sequence_lens" else elem
            graph_inputs.append(oh.make_tensor_value_info(name, et, value.shape))
            feeds[name] = value
    graph = oh.make_graph([node], "rec", graph_inputs, [oh.make_empty_tensor_value_info(o) for o in outputs if o],
                          initializers)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 8
    return model, feeds


def to_layout0(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The same node with layout=0 (onnxruntime's CPU kernels only run layout 0)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    node = model.graph.node[0]
    for attr in node.attribute:
        if attr.name == "layout":
            attr.i = 0
    feeds = dict(feeds)
    for name in ("X", "initial_h", "initial_c"):
        if name in feeds:
            feeds[name] = np.ascontiguousarray(feeds[name].swapaxes(0, 1))
    for value in model.graph.input:
        if value.name in feeds:
            dims = value.type.tensor_type.shape.dim
            for d, size in zip(dims, feeds[value.name].shape):
                d.dim_value = size
    return model, feeds


def expected_outputs(model, feeds, layout: int = 0) -> list[np.ndarray]:
    if layout == 0:
        return run_onnxruntime(model, feeds)
    out = run_onnxruntime(*to_layout0(model, feeds))
    names = [o.name for o in model.graph.output]
    return [o.transpose(2, 0, 1, 3) if n == "Y" else o.swapaxes(0, 1) for n, o in zip(names, out)]


def check(model, feeds, *, layout: int = 0, atol: float = 1e-5, module_type: type | None = None) -> None:
    expected = expected_outputs(model, feeds, layout)
    got = convert_and_run(model, feeds)
    assert len(got) == len(expected)
    for i, (e, g) in enumerate(zip(expected, got)):
        assert g.dtype == e.dtype, f"output {i}: {g.dtype} != {e.dtype}"
        assert g.shape == e.shape, f"output {i}: {g.shape} != {e.shape}"
        np.testing.assert_allclose(g, e, atol=atol, rtol=1e-4, err_msg=f"output {i}")
    if module_type is not None:
        assert lowering(model) is module_type


def lowering(model: onnx.ModelProto) -> type:
    """The class of the module the recurrent node became."""
    module = ConvertModel(model, simplify=False)
    found = [type(m) for m in module.modules() if isinstance(m, (NativeRecurrent, RNNLoop, GRULoop, LSTMLoop))]
    assert len(found) == 1, found
    return found[0]


NATIVE_LAYER = {"RNN": nn.RNN, "GRU": nn.GRU, "LSTM": nn.LSTM}
LOOP = {"RNN": RNNLoop, "GRU": GRULoop, "LSTM": LSTMLoop}
NATIVE_ATTRS = {"RNN": {}, "GRU": {"linear_before_reset": 1}, "LSTM": {}}


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_native_path(op, direction):
    model, feeds = make_case(op, direction, initial=True, **NATIVE_ATTRS[op])
    check(model, feeds, module_type=NativeRecurrent)
    module = ConvertModel(model, simplify=False)
    layers = [m for m in module.modules() if isinstance(m, nn.RNNBase)]
    assert len(layers) == 1 and type(layers[0]) is NATIVE_LAYER[op]
    assert layers[0].bidirectional == (direction == "bidirectional")
    assert all(p.requires_grad for p in layers[0].parameters())


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_weights_from_graph_inputs(op, direction):
    model, feeds = make_case(op, direction, initial=True, const=(), peepholes=op == "LSTM")
    check(model, feeds, module_type=LOOP[op])


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("path", ["native", "loop"])
def test_sequence_lens(op, direction, path):
    attrs = dict(NATIVE_ATTRS[op])
    const = ("W", "R", "B", "P") if path == "native" else ("W", "B")
    # NOTE: a length-0 sequence gives zero Y, Y_h and Y_c in onnxruntime.
    model, feeds = make_case(op, direction, lengths=[2, STEPS, 0], initial=True, const=const, **attrs)
    check(model, feeds, module_type=NativeRecurrent if path == "native" else LOOP[op])


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_constant_full_sequence_lens_is_dropped(op):
    model, feeds = make_case(op, "bidirectional", lengths=[STEPS] * BATCH, const=("W", "R", "B", "sequence_lens"),
                             **NATIVE_ATTRS[op])
    check(model, feeds, module_type=NativeRecurrent)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("path", ["native", "loop"])
def test_layout_batch_first(op, path):
    const = ("W", "R", "B") if path == "native" else ()
    model, feeds = make_case(op, "bidirectional", layout=1, lengths=[3, STEPS, 1], initial=True, const=const,
                             **NATIVE_ATTRS[op])
    check(model, feeds, layout=1, module_type=NativeRecurrent if path == "native" else LOOP[op])


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("const", [("W", "R", "B", "P"), ("W", "R", "B")])
def test_lstm_peepholes(direction, const):
    model, feeds = make_case("LSTM", direction, peepholes=True, initial=True, lengths=[STEPS, 3, 1], const=const)
    check(model, feeds, module_type=LSTMLoop)


def test_lstm_zero_peepholes_stay_native():
    model, feeds = make_case("LSTM", "forward", peepholes=True, initial=True)
    p = next(t for t in model.graph.initializer if t.name == "P")
    p.CopyFrom(numpy_helper.from_array(np.zeros((1, 3 * HIDDEN), np.float32), "P"))
    check(model, feeds, module_type=NativeRecurrent)


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_lstm_input_forget(direction):
    model, feeds = make_case("LSTM", direction, initial=True, input_forget=1)
    check(model, feeds, module_type=LSTMLoop)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_clip(op):
    # Large weights so that the clip bounds many pre-activations.
    model, feeds = make_case(op, "bidirectional", initial=True, scale=2.0, clip=0.7, lengths=[STEPS, 2, 4])
    check(model, feeds, module_type=LOOP[op])


@pytest.mark.parametrize("linear_before_reset", [0, 1])
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_gru_linear_before_reset(linear_before_reset, direction):
    model, feeds = make_case("GRU", direction, initial=True, linear_before_reset=linear_before_reset)
    check(model, feeds, module_type=NativeRecurrent if linear_before_reset else GRULoop)


ACTIVATION_CASES = [
    ("RNN", "forward", {"activations": ["Relu"]}, NativeRecurrent),
    ("RNN", "bidirectional", {"activations": ["Relu", "Relu"]}, NativeRecurrent),
    ("RNN", "bidirectional", {"activations": ["Relu", "Tanh"]}, RNNLoop),
    ("RNN", "bidirectional", {"activations": ["LeakyRelu", "Elu"], "activation_alpha": [0.2, 0.7]}, RNNLoop),
    ("RNN", "forward", {"activations": ["Sigmoid"]}, RNNLoop),
    ("RNN", "forward", {"activations": ["Softsign"]}, RNNLoop),
    ("RNN", "forward", {"activations": ["Affine"], "activation_alpha": [0.5], "activation_beta": [0.1]}, RNNLoop),
    ("RNN", "forward", {"activations": ["ThresholdedRelu"], "activation_alpha": [0.1]}, RNNLoop),
    ("GRU", "forward", {"activations": ["HardSigmoid", "Softsign"]}, GRULoop),
    ("GRU", "forward", {"activations": ["HardSigmoid", "ScaledTanh"], "activation_alpha": [0.3, 1.5],
                        "activation_beta": [0.4, 0.8]}, GRULoop),
    ("GRU", "bidirectional", {"activations": ["Sigmoid", "Tanh", "Sigmoid", "Softplus"],
                              "linear_before_reset": 1}, GRULoop),
    ("GRU", "reverse", {"activations": ["Sigmoid", "LeakyRelu"]}, GRULoop),
    ("LSTM", "forward", {"activations": ["sigmoid", "tanh", "tanh"]}, NativeRecurrent),
    ("LSTM", "forward", {"activations": ["HardSigmoid", "Elu", "Softsign"], "activation_alpha": [0.25, 0.5]},
     LSTMLoop),
    ("LSTM", "bidirectional", {"activations": ["Sigmoid", "Tanh", "Relu", "Sigmoid", "LeakyRelu", "Tanh"],
                               "activation_alpha": [0.3]}, LSTMLoop),
    ("LSTM", "reverse", {"activations": ["Sigmoid", "ScaledTanh", "Affine"], "activation_alpha": [1.2, 0.6],
                         "activation_beta": [0.9, -0.2]}, LSTMLoop),
]


@pytest.mark.parametrize("op,direction,attrs,module_type", ACTIVATION_CASES)
def test_activations(op, direction, attrs, module_type):
    model, feeds = make_case(op, direction, initial=True, **attrs)
    check(model, feeds, module_type=module_type)


@pytest.mark.parametrize(
    "op,outputs",
    [("RNN", ["", "Y_h"]), ("RNN", ["Y"]), ("GRU", ["", "Y_h"]), ("LSTM", ["", "", "Y_c"]), ("LSTM", ["Y", "", "Y_c"]),
     ("LSTM", ["", "Y_h"])],
)
@pytest.mark.parametrize("path", ["native", "loop"])
def test_output_subsets(op, outputs, path):
    const = ("W", "R", "B") if path == "native" else ()
    model, feeds = make_case(op, "bidirectional", initial=True, outputs=outputs, const=const, **NATIVE_ATTRS[op])
    check(model, feeds)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_no_bias_opset7(op):
    model, feeds = make_case(op, "bidirectional", bias=False, opset=7, **NATIVE_ATTRS[op])
    check(model, feeds, module_type=NativeRecurrent)
    model, feeds = make_case(op, "reverse", bias=False, opset=7, const=())
    check(model, feeds, module_type=LOOP[op])


def test_double_precision():
    # onnxruntime's CPU kernels run float32 only: compare with its float32 result.
    model, feeds = make_case("LSTM", "bidirectional", initial=True, lengths=[STEPS, 2, 3], dtype=np.float64)
    model32, feeds32 = make_case("LSTM", "bidirectional", initial=True, lengths=[STEPS, 2, 3])
    expected = run_onnxruntime(model32, feeds32)
    got = convert_and_run(model, feeds)
    for e, g in zip(expected, got):
        assert g.dtype == np.float64
        np.testing.assert_allclose(g, e, atol=1e-5)


def test_native_module_is_trainable_lstm():
    model, feeds = make_case("LSTM", "bidirectional", initial=True)
    module = ConvertModel(model, simplify=False)
    x = torch.from_numpy(feeds["X"]).requires_grad_()
    out = module(x, torch.from_numpy(feeds["initial_h"]), torch.from_numpy(feeds["initial_c"]))
    out[0].sum().backward()
    lstm = next(m for m in module.modules() if isinstance(m, nn.LSTM))
    assert lstm.weight_ih_l0.grad is not None and x.grad is not None


@pytest.mark.parametrize(
    "attrs,message",
    [
        ({"activations": ["ThresholdedRelu"]}, "explicit"),
        ({"activations": ["Tanh", "Tanh", "Tanh"]}, "activations"),
        ({"activations": ["Gelu"]}, "activation"),
        ({"direction": "sideways"}, "direction"),
    ],
)
def test_unsupported_is_loud(attrs, message):
    direction = attrs.pop("direction", "forward")
    model, _ = make_case("RNN", direction if direction != "sideways" else "forward", **attrs)
    if direction == "sideways":
        for a in model.graph.node[0].attribute:
            if a.name == "direction":
                a.s = b"sideways"
    with pytest.raises(ConversionError, match=message):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ConvertModel(model, simplify=False)
