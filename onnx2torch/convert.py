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
from onnx2torch.limits import constant_limit
from onnx2torch.simplify import restore_initializers, simplify_stripped
from onnx2torch.validate import clean_errors, load_onnx, resolve_external_data, validate_model

__all__ = ["ConvertModel", "load_model"]

logger = logging.getLogger(__name__)


def load_model(onnx_model: onnx.ModelProto | str | os.PathLike) -> tuple[onnx.ModelProto, str | None]:
    """The model and the folder its external data lives in (``None`` for an in-memory model)."""
    if isinstance(onnx_model, onnx.ModelProto):
        resolve_external_data(onnx_model, None)  # refuses external files with no folder to read them from
        return onnx_model, None
    if isinstance(onnx_model, (str, os.PathLike)):
        # external data is read only from inside the model's folder (onnx2torch.validate)
        return load_onnx(Path(onnx_model))
    raise OnnxLoadError(f"expected an onnx.ModelProto or a path, got {type(onnx_model).__name__}")


@clean_errors()  # nothing but an Onnx2TorchError escapes
def ConvertModel(  # noqa: N802 - the name users know from the peers
    onnx_model: onnx.ModelProto | str | os.PathLike,
    *,
    simplify: bool = True,
    input_shapes: dict[str, list[int]] | None = None,
    debug: bool = False,
    inputs: list[str] | None = None,
    outputs: list[str] | None = None,
    max_constant_bytes: int | None = None,
    optimize: bool = False,
) -> nn.Module:
    """Convert an ONNX model (a ``ModelProto`` or a path) into a ``torch.fx.GraphModule``.

    ``simplify`` runs onnx-simplifier first (falling back to the original model with a warning);
    ``input_shapes`` (``{"input": [1, 3, 224, 224]}``) fixes input shapes for simplification, and
    re-shapes a model whose inputs were frozen at other sizes (see :mod:`onnx2torch.rebatch`);
    ``debug`` compares every intermediate tensor with onnxruntime after building and raises
    :class:`~onnx2torch.errors.ConversionError` at the first node that diverges.
    ``max_constant_bytes`` caps the tensors constant folding may create (default 256 MiB, see
    :mod:`onnx2torch.limits`); larger ones are computed at run time.  Malformed models fail in
    :mod:`onnx2torch.validate` before conversion starts.
    ``inputs`` / ``outputs`` (tensor names of the original model) convert only the part of the
    graph computing ``outputs`` from ``inputs`` (see :mod:`onnx2torch.extract`).
    ``optimize`` is an inference mode: BatchNorm is folded into the convolution before it
    (:func:`onnx2torch.fusion.fold_batch_norm`), so its statistics are no longer separate.
    """
    model, base_dir = load_model(onnx_model)
    model = validate_model(model)
    if inputs is not None or outputs is not None or input_shapes:
        from onnx2torch.extract import prepare_model  # noqa: PLC0415

        model, notes = prepare_model(model, inputs=inputs, outputs=outputs, input_shapes=input_shapes)
        for note in notes:
            logger.info("%s", note)
    check_supported(model)
    stash = {}  # weights kept out of the simplified proto: the assembler reads them in place
    if simplify:
        original_inputs = {v.name for v in model.graph.input}
        model, stash = simplify_stripped(model, input_shapes)
    with constant_limit(max_constant_bytes):
        module = assemble(model, base_dir=base_dir, initializers=stash)
    if optimize:
        from onnx2torch.fusion import fold_batch_norm  # noqa: PLC0415

        module = fold_batch_norm(module)
    if debug:
        model = restore_initializers(model, stash, original_inputs) if stash else model
        from onnx2torch.verify import find_first_divergence  # noqa: PLC0415

        find_first_divergence(model, module, input_shapes=input_shapes, raise_on_divergence=True)
    return module
