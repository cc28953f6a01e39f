"""onnx2torch: turn an ONNX model into a PyTorch ``nn.Module`` (a ``torch.fx.GraphModule``)."""
from onnx2torch.convert import ConvertModel
from onnx2torch.custom_ops import custom_op
from onnx2torch.errors import (
    ConversionError,
    InvalidModelError,
    Onnx2TorchError,
    OnnxLoadError,
    UnsupportedOperatorError,
    VerificationError,
)
from onnx2torch.export_code import export_code
from onnx2torch.verify import VerificationReport, verify

__version__ = "0.1.0"

__all__ = [
    "ConvertModel",
    "export_code",
    "custom_op",
    "verify",
    "VerificationReport",
    "Onnx2TorchError",
    "OnnxLoadError",
    "InvalidModelError",
    "UnsupportedOperatorError",
    "ConversionError",
    "VerificationError",
    "__version__",
]
