"""Converters: signal family — DFT, STFT, HannWindow, HammingWindow, BlackmanWindow,
MelWeightMatrix.

ONNX carries complex values as a trailing dimension of 2 (real, imaginary) and real signals as a
trailing dimension of 1; the runtime functions turn those into torch complex tensors for
``torch.fft`` and back.  Lengths, steps and axes that are constants become literals; when they are
computed at run time their values are read then (they decide output shapes, so they cannot stay
tensors).
"""
from __future__ import annotations

import logging
import math

import torch
from onnx import TensorProto

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.dtypes import ONNX_TO_TORCH
from onnx2torch.registry import Lowered, converter

__all__ = [
    "dft",
    "dft_axis_input",
    "stft",
    "hann_window",
    "hamming_window",
    "blackman_window",
    "mel_weight_matrix",
    "onnx_dft",
    "onnx_stft",
    "onnx_hann_window",
    "onnx_hamming_window",
    "onnx_blackman_window",
    "onnx_mel_weight_matrix",
]

logger = logging.getLogger(__name__)

_FLOAT_ELEMS = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16)
#: output_datatype values the window / MelWeightMatrix ops accept (their T2/T3)
_NUMERIC_OUTPUTS = (
    TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64,
    TensorProto.INT8, TensorProto.INT16, TensorProto.INT32, TensorProto.INT64,
    TensorProto.FLOAT16, TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.BFLOAT16,
)


def _scalar(value: int | torch.Tensor | None) -> int | None:
    """A length / step / axis given as a literal or (computed at run time) as a tensor."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"expected a scalar, got a tensor of shape {tuple(value.shape)}")
        return int(value.reshape(()).item())
    return int(value)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # NOTE: torch.fft on the CPU has no float16/bfloat16 kernels; those go through float32 and
    # the result is cast back to the input type, which is what ONNX returns.
    return torch.float64 if dtype == torch.float64 else torch.float32


def _to_complex_signal(x: torch.Tensor) -> torch.Tensor:
    """``[..., 1]`` (real) or ``[..., 2]`` (real, imaginary) as a real or complex tensor."""
    x = x.to(_compute_dtype(x.dtype))
    if x.shape[-1] == 1:
        return x[..., 0]
    if x.shape[-1] == 2:
        return torch.complex(x[..., 0], x[..., 1])
    raise ValueError(f"the last dimension must be 1 (real) or 2 (complex), got {x.shape[-1]}")


def _from_complex(y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A complex result as ``[..., 2]`` (real, imaginary) in ``dtype``."""
    return torch.view_as_real(y.resolve_conj()).to(dtype)


# --- runtime functions ---------------------------------------------------------------------
def onnx_dft(
    x: torch.Tensor,
    dft_length_input: torch.Tensor | None = None,
    axis_input: torch.Tensor | None = None,
    *,
    dft_length: int | None = None,
    axis: int | None = None,
    inverse: bool = False,
    onesided: bool = False,
) -> torch.Tensor:
    """ONNX DFT over ``axis`` (default -2) of a real ``[..., 1]`` or complex ``[..., 2]`` signal;
    ``dft_length``/``axis`` are literals, or ``*_input`` tensors when computed at run time."""
    rank = x.dim()
    dim = axis if axis is not None else _scalar(axis_input)
    dim = -2 if dim is None else dim
    if dim < 0:
        dim += rank
    if not 0 <= dim <= rank - 2:
        raise ValueError(f"DFT axis {dim} is out of range for an input of rank {rank} (the last dim is re/im)")
    signal = _to_complex_signal(x)
    n = dft_length if dft_length is not None else _scalar(dft_length_input)
    if inverse and onesided:
        # NOTE: IRFFT: a one-sided spectrum in, a real signal [..., 1] out; the default length is
        # 2 * (size - 1) (spec, opset 17 and 20).
        n = 2 * (signal.shape[dim] - 1) if n is None else n
        return torch.fft.irfft(signal, n=n, dim=dim).unsqueeze(-1).to(x.dtype)
    n = signal.shape[dim] if n is None else n
    if inverse:
        return _from_complex(torch.fft.ifft(signal, n=n, dim=dim), x.dtype)
    if onesided and not signal.is_complex():
        return _from_complex(torch.fft.rfft(signal, n=n, dim=dim), x.dtype)
    spectrum = torch.fft.fft(signal, n=n, dim=dim)
    if onesided:
        # NOTE: the spec allows onesided forward DFTs of real input only; for complex input the
        # reference keeps the first n // 2 + 1 bins, as done here.
        spectrum = spectrum.narrow(dim, 0, n // 2 + 1)
    return _from_complex(spectrum, x.dtype)


def onnx_stft(
    signal: torch.Tensor,
    frame_step_input: torch.Tensor | None = None,
    window: torch.Tensor | None = None,
    frame_length_input: torch.Tensor | None = None,
    *,
    frame_step: int | None = None,
    frame_length: int | None = None,
    onesided: bool = True,
) -> torch.Tensor:
    """ONNX STFT of ``[batch, length, 1|2]`` into ``[batch, frames, bins, 2]``; ``frame_step`` /
    ``frame_length`` are literals, or ``*_input`` tensors when computed at run time."""
    step = frame_step if frame_step is not None else _scalar(frame_step_input)
    length = frame_length if frame_length is not None else _scalar(frame_length_input)
    if step is None:
        raise ValueError("STFT needs a frame_step")
    if length is None:
        length = window.shape[0] if window is not None else signal.shape[-2]
    if window is not None and (window.dim() != 1 or window.shape[0] != length):
        raise ValueError(f"STFT window of shape {tuple(window.shape)} does not match frame_length {length}")
    if step <= 0 or length <= 0 or length > signal.shape[-2]:
        raise ValueError(
            f"STFT frame_step={step}, frame_length={length} do not fit a signal of length {signal.shape[-2]}"
        )
    samples = _to_complex_signal(signal)
    # frames = floor((signal_length - frame_length) / frame_step) + 1, as unfold makes them
    frames = samples.unfold(-1, length, step)
    if window is not None:
        frames = frames * window.to(_compute_dtype(signal.dtype))
    if onesided and not frames.is_complex():
        spectrum = torch.fft.rfft(frames, dim=-1)
    else:
        spectrum = torch.fft.fft(frames, dim=-1)
        if onesided:
            spectrum = spectrum[..., : length // 2 + 1]  # reference behaviour for complex input
    return _from_complex(spectrum, signal.dtype)


def _window_positions(size: int | torch.Tensor, periodic: bool) -> tuple[torch.Tensor, int]:
    n = _scalar(size)
    if n < 0:
        raise ValueError(f"window size must be >= 0, got {n}")
    return torch.arange(n, dtype=torch.float64), (n if periodic else n - 1)


def onnx_hann_window(size: int | torch.Tensor, *, periodic: bool = True, dtype: str = "float32") -> torch.Tensor:
    """ONNX HannWindow: ``sin(pi * n / N) ** 2`` (N = size if periodic else size - 1)."""
    n, denom = _window_positions(size, periodic)
    # NOTE: every window is computed in float64 with the operation order of the ONNX reference
    # and cast once to the output type (integer outputs truncate, as a Cast does).
    return (torch.sin(n * math.pi / denom) ** 2).to(getattr(torch, dtype))


def onnx_hamming_window(size: int | torch.Tensor, *, periodic: bool = True, dtype: str = "float32") -> torch.Tensor:
    """ONNX HammingWindow: ``25/46 - 21/46 * cos(2 pi n / N)``."""
    n, denom = _window_positions(size, periodic)
    alpha = 25.0 / 46.0
    beta = 1.0 - alpha
    return (alpha - torch.cos(n * math.pi * 2 / denom) * beta).to(getattr(torch, dtype))


def onnx_blackman_window(size: int | torch.Tensor, *, periodic: bool = True, dtype: str = "float32") -> torch.Tensor:
    """ONNX BlackmanWindow: ``0.42 - 0.5 cos(2 pi n / N) + 0.08 cos(4 pi n / N)``."""
    n, denom = _window_positions(size, periodic)
    y = torch.cos((n * (math.pi * 2)) / denom) * -0.5
    y = y + torch.cos((n * (math.pi * 4)) / denom) * 0.08
    return (y + 0.42).to(getattr(torch, dtype))


def onnx_mel_weight_matrix(
    num_mel_bins: int | torch.Tensor,
    dft_length: int | torch.Tensor,
    sample_rate: int | torch.Tensor,
    lower_edge_hertz: torch.Tensor,
    upper_edge_hertz: torch.Tensor,
    *,
    dtype: str = "float32",
) -> torch.Tensor:
    """ONNX MelWeightMatrix ``[dft_length // 2 + 1, num_mel_bins]``: triangular filters of peak 1
    between mel-spaced edges (mel(f) = 2595 log10(1 + f / 700))."""
    bins = _scalar(num_mel_bins)
    length = _scalar(dft_length)
    rate = _scalar(sample_rate)
    if bins <= 0 or length <= 0 or rate <= 0:
        raise ValueError(
            f"MelWeightMatrix needs positive num_mel_bins, dft_length, sample_rate; got {bins}, {length}, {rate}"
        )
    spectrogram_bins = length // 2 + 1
    log10 = torch.tensor(math.log(10), dtype=torch.float64)

    def to_mel(hertz: torch.Tensor) -> torch.Tensor:
        # NOTE: as the ONNX reference: log1p in the edge's own type, the division by ln(10) in
        # float64, and every later step in float64.
        hertz = torch.as_tensor(hertz).reshape(())
        return 2595 * torch.log1p(hertz / 700) / log10

    low_mel = to_mel(lower_edge_hertz)
    high_mel = to_mel(upper_edge_hertz)
    mel_step = (high_mel - low_mel) / (bins + 2)
    edges = torch.arange(bins + 2, dtype=torch.float64) * mel_step + low_mel
    edges = 700 * torch.expm1(edges / 2595 * log10)
    edges = torch.div((length + 1) * edges, rate, rounding_mode="floor").to(torch.int64).tolist()
    if min(edges) < 0 or max(edges) >= spectrogram_bins + 1 or max(edges[:-1]) >= spectrogram_bins:
        raise ValueError(
            f"MelWeightMatrix edges {edges} fall outside the {spectrogram_bins} spectrogram bins "
            f"(check lower/upper_edge_hertz against sample_rate)"
        )
    out = torch.zeros(spectrogram_bins, bins, dtype=torch.float64)
    for i in range(bins):
        left, center, right = edges[i], edges[i + 1], edges[i + 2]
        if center == left:
            out[center, i] = 1.0
        elif center > left:
            j = torch.arange(left, center + 1, dtype=torch.float64)
            out[left : center + 1, i] = (j - left) / (center - left)
        if right > center:
            j = torch.arange(center, right, dtype=torch.float64)
            out[center:right, i] = (right - j) / (right - center)
    return out.to(getattr(torch, dtype))


# --- converters ----------------------------------------------------------------------------
def _literal_or_input(node: OnnxNode, ctx: ConversionContext, index: int) -> tuple[int | None, str | None]:
    """An optional scalar input: ``(value, None)`` when constant, ``(None, name)`` when computed
    at run time, ``(None, None)`` when absent."""
    name = node.input(index)
    if not name:
        return None, None
    values = ctx.constant_ints(name)
    if values is None:
        return None, name
    if len(values) != 1:
        raise node.unsupported(f"input {index} ({name})", values, "a scalar")
    return values[0], None


def _check_signal_type(node: OnnxNode, ctx: ConversionContext, index: int = 0) -> None:
    elem = ctx.elem_type(node.input(index))
    if elem is not None and elem not in _FLOAT_ELEMS:
        raise node.unsupported(f"input {index} element type", TensorProto.DataType.Name(elem),
                               "float, double, float16, bfloat16")


def _flags(node: OnnxNode) -> dict:
    inverse = node.attr_int("inverse", 0)
    onesided = node.attr_int("onesided", 0)
    for name, value in (("inverse", inverse), ("onesided", onesided)):
        if value not in (0, 1):
            raise node.unsupported(name, value, "0 or 1")
    return {"inverse": bool(inverse), "onesided": bool(onesided)}


def _dft_lowered(node: OnnxNode, ctx: ConversionContext, axis: int | None, axis_name: str | None) -> Lowered:
    _check_signal_type(node, ctx)
    length, length_name = _literal_or_input(node, ctx, 1)
    kwargs = _flags(node)
    if length is not None:
        if length <= 0:
            raise node.unsupported("dft_length", length, "a positive length")
        kwargs["dft_length"] = length
    if axis is not None:
        kwargs["axis"] = axis
    inputs = [node.input(0)]
    if length_name or axis_name:
        inputs.append(length_name or "")
    if axis_name:
        inputs.append(axis_name)
    return Lowered(onnx_dft, inputs=inputs, kwargs=kwargs)


@converter("DFT", since=17)
def dft(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """DFT(input, dft_length?) -> output; axis attribute (default 1)"""
    return _dft_lowered(node, ctx, node.attr_int("axis", 1), None)


@converter("DFT", since=20)
def dft_axis_input(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """DFT(input, dft_length?, axis?) -> output; axis input (default -2)"""
    axis, axis_name = _literal_or_input(node, ctx, 2)
    return _dft_lowered(node, ctx, -2 if axis is None and axis_name is None else axis, axis_name)


@converter("STFT", since=17)
def stft(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """STFT(signal, frame_step, window?, frame_length?) -> output [batch, frames, bins, 2]"""
    _check_signal_type(node, ctx)
    onesided = node.attr_int("onesided", 1)
    if onesided not in (0, 1):
        raise node.unsupported("onesided", onesided, "0 or 1")
    step, step_name = _literal_or_input(node, ctx, 1)
    length, length_name = _literal_or_input(node, ctx, 3)
    kwargs: dict = {"onesided": bool(onesided)}
    if step is not None:
        if step <= 0:
            raise node.unsupported("frame_step", step, "a positive step")
        kwargs["frame_step"] = step
    if length is not None:
        kwargs["frame_length"] = length
    # runtime inputs positionally (signal, frame_step, window, frame_length), trailing absent
    # ones dropped; constant step/length travel as the literal keywords instead
    inputs = [node.input(0), step_name or "", node.input(2), length_name or ""]
    while inputs and not inputs[-1]:
        inputs.pop()
    return Lowered(onnx_stft, inputs=inputs, kwargs=kwargs)


def _output_dtype(node: OnnxNode) -> str:
    elem = node.attr_int("output_datatype", TensorProto.FLOAT)
    if elem not in _NUMERIC_OUTPUTS:
        name = TensorProto.DataType.Name(elem) if elem in TensorProto.DataType.values() else elem
        raise node.unsupported("output_datatype", name, "an integer or float type")
    return str(ONNX_TO_TORCH[elem]).removeprefix("torch.")


def _window(node: OnnxNode, ctx: ConversionContext, fn) -> Lowered:
    periodic = node.attr_int("periodic", 1)
    if periodic not in (0, 1):
        raise node.unsupported("periodic", periodic, "0 or 1")
    kwargs = {"periodic": bool(periodic), "dtype": _output_dtype(node)}
    size, _ = _literal_or_input(node, ctx, 0)
    if size is not None:
        return Lowered.const(fn(size, **kwargs))
    return Lowered(fn, inputs=[node.input(0)], kwargs=kwargs)


@converter("HannWindow", since=17)
def hann_window(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """HannWindow(size) -> output = sin(pi n / N) ** 2"""
    return _window(node, ctx, onnx_hann_window)


@converter("HammingWindow", since=17)
def hamming_window(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """HammingWindow(size) -> output = 25/46 - 21/46 cos(2 pi n / N)"""
    return _window(node, ctx, onnx_hamming_window)


@converter("BlackmanWindow", since=17)
def blackman_window(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """BlackmanWindow(size) -> output = 0.42 - 0.5 cos(2 pi n / N) + 0.08 cos(4 pi n / N)"""
    return _window(node, ctx, onnx_blackman_window)


@converter("MelWeightMatrix", since=17)
def mel_weight_matrix(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """MelWeightMatrix(num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz)
    -> output [dft_length // 2 + 1, num_mel_bins]"""
    for index in (3, 4):
        _check_signal_type(node, ctx, index)
    return Lowered(onnx_mel_weight_matrix, inputs=[node.input(i) for i in range(5)],
                   kwargs={"dtype": _output_dtype(node)})
