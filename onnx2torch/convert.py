"""The pipeline: load → simplify → assemble (→ debug comparison with onnxruntime)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import onnx
from torch import nn

import onnx2torch.ops  # noqa: F401 - registers the converters
from onnx2torch.assemble import assemble, check_supported
from onnx2torch.errors import OnnxLoadError
from onnx2torch.simplify import simplify_model

__all__ = ["ConvertModel", "load_model"]

logger = logging.getLogger(__name__)


def load_model(onnx_model: onnx.ModelProto | str | os.PathLike) -> tuple[onnx.ModelProto, str | None]:
    """The model and the folder its external data lives in (``None`` for an in-memory model)."""
    if isinstance(onnx_model, onnx.ModelProto):
        return onnx_model, None
    if isinstance(onnx_model, (str, os.PathLike)):
        path = Path(onnx_model)
        if not path.is_file():
            raise OnnxLoadError(f"no ONNX file at '{path}'")
        try:
            model = onnx.load(str(path), load_external_data=True)
        except Exception as exc:
            raise OnnxLoadError(f"'{path}' is not a loadable ONNX model: {type(exc).__name__}: {exc}") from exc
        return model, str(path.resolve().parent)
    raise OnnxLoadError(f"expected an onnx.ModelProto or a path, got {type(onnx_model).__name__}")


def ConvertModel(  # noqa: N802 - the name users know from the peers
    onnx_model: onnx.ModelProto | str | os.PathLike,
    *,
    simplify: bool = True,
    input_shapes: dict[str, list[int]] | None = None,
    debug: bool = False,
    inputs: list[str] | None = None,
    outputs: list[str] | None = None,
) -> nn.Module:
    """Convert an ONNX model (a ``ModelProto`` or a path) into a ``torch.fx.GraphModule``.

    ``simplify`` runs onnx-simplifier first (falling back to the original model with a warning);
    ``input_shapes`` (``{"input": [1, 3, 224, 224]}``) fixes input shapes for simplification, and
    re-shapes a model whose inputs were frozen at other sizes (see :mod:`onnx2torch.rebatch`);
    ``debug`` compares every intermediate tensor with onnxruntime after building and raises
    :class:`~onnx2torch.errors.ConversionError` at the first node that diverges.
    ``inputs`` / ``outputs`` (tensor names of the original model) convert only the part of the
    graph computing ``outputs`` from ``inputs`` (see :mod:`onnx2torch.extract`).
    """
    model, base_dir = load_model(onnx_model)
    if inputs is not None or outputs is not None or input_shapes:
        from onnx2torch.extract import prepare_model  # noqa: PLC0415

        model, notes = prepare_model(model, inputs=inputs, outputs=outputs, input_shapes=input_shapes)
        for note in notes:
            logger.info("%s", note)
    check_supported(model)
    if simplify:
        model = simplify_model(model, input_shapes)
    module = assemble(model, base_dir=base_dir)
    if debug:
        from onnx2torch.verify import find_first_divergence  # noqa: PLC0415

        find_first_divergence(model, module, input_shapes=input_shapes, raise_on_divergence=True)
    return module
