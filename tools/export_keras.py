"""Export Keras applications (random weights) to ONNX with tf2onnx, for ``tools/zoo.py``.

Run it with a separate environment that has TensorFlow (never needed by onnx2torch or its CI)::

    python3 -m venv /work/venv_tf && /work/venv_tf/bin/pip install tensorflow-cpu tf2onnx
    /work/venv_tf/bin/python tools/export_keras.py [--work /tmp/onnx2torch_zoo] [--filter NAME]

Each model is written to ``WORK/keras/<name>.onnx`` with a symbolic batch dimension (tf2onnx
names it ``unk__N``), NHWC inputs and the transposes tf2onnx inserts around NCHW-only ops.
``tools/zoo.py`` picks up whatever files are there; nothing here is imported by the project.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: name: (keras.applications constructor, image size, extra keyword arguments)
APPLICATIONS = {
    "keras_mobilenet_v2": ("MobileNetV2", 96, {"alpha": 0.35}),
    "keras_mobilenet_v3_small": ("MobileNetV3Small", 96, {"minimalistic": False}),
    "keras_resnet50": ("ResNet50", 64, {}),
    "keras_efficientnet_b0": ("EfficientNetB0", 64, {}),
    "keras_densenet121": ("DenseNet121", 64, {}),
    "keras_inception_v3": ("InceptionV3", 96, {}),
    "keras_xception": ("Xception", 96, {}),
    "keras_vgg16": ("VGG16", 64, {}),
    "keras_convnext_tiny": ("ConvNeXtTiny", 64, {}),
    "keras_efficientnet_v2_b0": ("EfficientNetV2B0", 64, {}),
    "keras_nasnet_mobile": ("NASNetMobile", 96, {}),
}


def build_application(tf, kind: str, size: int, extra: dict):
    ctor = getattr(tf.keras.applications, kind)
    return ctor(weights=None, input_shape=(size, size, 3), classes=10, **extra)


def build_text_lstm(tf):
    """A token classifier: Embedding -> bidirectional LSTM -> GRU -> Dense (tf2onnx's RNN patterns)."""
    layers = tf.keras.layers
    ids = tf.keras.Input(shape=(None,), dtype="int32", name="ids")
    x = layers.Embedding(500, 32)(ids)
    x = layers.Bidirectional(layers.LSTM(24, return_sequences=True))(x)
    x = layers.GRU(16, return_sequences=True)(x)
    out = layers.Dense(5, activation="softmax")(x)
    return tf.keras.Model(ids, out)


def build_conv1d(tf):
    """An audio-style Conv1D / pooling / LayerNormalization stack with a dynamic time axis."""
    layers = tf.keras.layers
    wav = tf.keras.Input(shape=(None, 8), name="features")
    x = layers.Conv1D(16, 5, padding="same", activation="relu")(wav)
    x = layers.LayerNormalization()(x)
    x = layers.SeparableConv1D(16, 3, padding="same", activation="swish")(x)
    x = layers.MaxPooling1D(2, padding="same")(x)
    x = layers.GlobalAveragePooling1D()(x)
    out = layers.Dense(4)(x)
    return tf.keras.Model(wav, out)


EXTRA = {"keras_text_lstm": build_text_lstm, "keras_conv1d": build_conv1d}


def randomize(model, np) -> None:
    """Non-trivial statistics for every normalization layer, so their conversion is tested."""
    rng = np.random.default_rng(0)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights or layer.__class__.__name__ not in ("BatchNormalization", "LayerNormalization"):
            continue
        new = []
        for w in weights:
            if layer.__class__.__name__ == "BatchNormalization" and w is weights[-1]:
                new.append(rng.uniform(0.5, 2.0, w.shape).astype(w.dtype))  # moving variance
            else:
                new.append((w + rng.uniform(-0.3, 0.3, w.shape)).astype(w.dtype))
        layer.set_weights(new)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/onnx2torch_zoo")
    parser.add_argument("--filter", default="")
    parser.add_argument("--opset", type=int, default=15)
    args = parser.parse_args()
    import numpy as np
    import tensorflow as tf
    import tf2onnx

    out_dir = Path(args.work) / "keras"
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(APPLICATIONS) + list(EXTRA)
    failures = 0
    for name in names:
        if args.filter and args.filter not in name:
            continue
        path = out_dir / f"{name}.onnx"
        if path.exists():
            print(f"{name:28s} cached")
            continue
        start = time.perf_counter()
        try:
            tf.keras.utils.set_random_seed(0)
            if name in APPLICATIONS:
                kind, size, extra = APPLICATIONS[name]
                model = build_application(tf, kind, size, extra)
                spec = [tf.TensorSpec((None, size, size, 3), tf.float32, name="input")]
            else:
                model = EXTRA[name](tf)
                spec = [tf.TensorSpec(model.inputs[0].shape, model.inputs[0].dtype, name=model.inputs[0].name)]
            randomize(model, np)
            tf2onnx.convert.from_keras(model, input_signature=spec, opset=args.opset, output_path=str(path))
            try:
                # tf2onnx leaves TF ops it cannot map (Erfc, StatefulPartitionedCall) in the graph
                onnx.checker.check_model(onnx.load(str(path)), full_check=True)
            except Exception:
                path.unlink()
                raise
            print(f"{name:28s} exported in {time.perf_counter() - start:.1f}s", flush=True)
        except Exception as exc:  # noqa: BLE001 - report and go on with the next model
            failures += 1
            print(f"{name:28s} FAILED {type(exc).__name__}: {str(exc)[:300]}", flush=True)
    print(f"tf {tf.__version__}, tf2onnx {tf2onnx.__version__}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
