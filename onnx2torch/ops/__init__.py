"""Converters, one module per operator family; importing this package registers them all."""
from onnx2torch.ops import (  # noqa: F401
    activation,
    constant,
    control_flow,
    conv,
    elementwise,
    linalg,
    norm,
    pool,
    reduce,
    resize,
    shape,
    tensor,
)
