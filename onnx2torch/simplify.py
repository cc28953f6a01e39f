"""Simplification stage: onnx-simplifier (with onnxoptimizer's passes), quiet and fail-safe.

BatchNorm is never fused into convolutions here (``skip_fuse_bn=True``) so it stays a trainable
``nn.BatchNorm*``.  Input shapes are fixed only when the caller gives them; symbolic dims stay
symbolic otherwise.  When onnxsim fails or cannot take the model, a warning is issued and the
unsimplified model is used.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator

import onnx

__all__ = ["simplify_model"]

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _silenced_stdout() -> Iterator[None]:
    """Redirect file descriptors 1 and 2 (onnxsim's C++ side prints there) to a temp file."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(open(os.devnull, "w")) as devnull:  # noqa: SIM115
                try:
                    yield
                finally:
                    devnull.close()
        finally:
            sys.stdout.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def simplify_model(
    model: onnx.ModelProto, input_shapes: dict[str, list[int]] | None = None
) -> onnx.ModelProto:
    """The model simplified by onnxsim, or the model itself (with a warning) when that fails."""
    try:
        import onnxsim  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - a declared dependency
        warnings.warn(f"onnxsim is not importable ({exc}); converting the unsimplified model", stacklevel=3)
        return model
    kwargs = {"skip_fuse_bn": True}
    if input_shapes:
        kwargs["overwrite_input_shapes"] = {k: list(v) for k, v in input_shapes.items()}
    try:
        with _silenced_stdout(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            simplified, ok = onnxsim.simplify(model, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure means: go on unsimplified
        warnings.warn(
            f"onnx-simplifier could not simplify this model ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); converting the unsimplified model",
            stacklevel=3,
        )
        return model
    if not ok:
        warnings.warn("onnx-simplifier's check failed; converting the unsimplified model", stacklevel=3)
        return model
    return simplified
