"""The exceptions onnx2torch raises: one base class, one subclass per kind of failure."""
from __future__ import annotations

__all__ = [
    "Onnx2TorchError",
    "OnnxLoadError",
    "InvalidModelError",
    "UnsupportedOperatorError",
    "ConversionError",
    "VerificationError",
]


class Onnx2TorchError(Exception):
    """Base class of every error onnx2torch raises on purpose."""


class OnnxLoadError(Onnx2TorchError):
    """The file or bytes given are not a loadable ONNX model."""


class InvalidModelError(Onnx2TorchError):
    """The ONNX model loads but is malformed (dangling inputs, cycles, bad attributes)."""


class UnsupportedOperatorError(Onnx2TorchError):
    """One or more nodes use an operator (or an opset of it) that has no converter."""


class ConversionError(Onnx2TorchError):
    """A converter met an attribute value or input it cannot turn into PyTorch exactly."""


class VerificationError(Onnx2TorchError):
    """The converted model could not be compared with onnxruntime."""
