"""Converters: quantize family — QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
QLinearConv, QLinearMatMul, ConvInteger.

Quantized values keep their ONNX type where torch has it (uint8, int8, uint16, int16, the float8
types); int4/int2 travel as int8 and uint4/uint2 as uint8 with the same values, float4e2m1 as
float32 holding exactly the representable values (see :mod:`onnx2torch.dtypes`).  Because the
carrier dtype cannot tell int4 from int8 at run time, the quantized type is decided at conversion
time and passed to the runtime functions as a literal (``qtype="int4"``).

MatMulInteger lives in :mod:`onnx2torch.ops.linalg`.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from onnx import TensorProto

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.registry import Lowered, converter

__all__ = [
    "quantize_linear",
    "dequantize_linear",
    "dynamic_quantize_linear",
    "qlinear_conv",
    "conv_integer",
    "qlinear_matmul",
    "onnx_quantize_linear",
    "onnx_dequantize_linear",
    "onnx_dynamic_quantize_linear",
    "onnx_qlinear_conv",
    "onnx_conv_integer",
    "onnx_qlinear_matmul",
]

logger = logging.getLogger(__name__)

# --- quantized types -----------------------------------------------------------------------
#: integer quantized type -> (carrier dtype, qmin, qmax)
_INT_TYPES: dict[str, tuple[torch.dtype, int, int]] = {
    "uint8": (torch.uint8, 0, 255),
    "int8": (torch.int8, -128, 127),
    "uint16": (torch.uint16, 0, 65535),
    "int16": (torch.int16, -32768, 32767),
    "uint4": (torch.uint8, 0, 15),
    "int4": (torch.int8, -8, 7),
    "uint2": (torch.uint8, 0, 3),
    "int2": (torch.int8, -2, 1),
}
_FLOAT8_TYPES: dict[str, torch.dtype] = {
    "float8e4m3fn": torch.float8_e4m3fn,
    "float8e4m3fnuz": torch.float8_e4m3fnuz,
    "float8e5m2": torch.float8_e5m2,
    "float8e5m2fnuz": torch.float8_e5m2fnuz,
}
_FLOAT4 = "float4e2m1"
_FLOAT4_MAX = 6.0
_QTYPE_NAMES = (*_INT_TYPES, *_FLOAT8_TYPES, _FLOAT4)

#: ONNX element types a scale / precision / output_dtype may name -> torch dtype name
_FLOAT_NAMES = {
    TensorProto.FLOAT: "float32",
    TensorProto.FLOAT16: "float16",
    TensorProto.BFLOAT16: "bfloat16",
    TensorProto.DOUBLE: "float64",
}


def _type_name(elem: int) -> str:
    return TensorProto.DataType.Name(elem).lower() if elem in TensorProto.DataType.values() else str(elem)


# --- runtime functions ---------------------------------------------------------------------
def _broadcast_param(param: torch.Tensor, x: torch.Tensor, axis: int, block_size: int) -> torch.Tensor:
    """A scale / zero point shaped to broadcast against ``x``: scalar (per tensor), 1-D along
    ``axis`` (per axis) or repeated ``block_size`` times along ``axis`` (blocked)."""
    if param.dim() == 0 or param.numel() == 1:
        return param.reshape(())
    axis = axis + x.dim() if axis < 0 else axis
    if not 0 <= axis < x.dim():
        raise ValueError(f"quantization axis {axis} is out of range for an input of rank {x.dim()}")
    if block_size <= 0:
        if param.dim() != 1 or param.shape[0] != x.shape[axis]:
            raise ValueError(
                f"per-axis scale/zero point of shape {tuple(param.shape)} does not match "
                f"dimension {axis} (size {x.shape[axis]}) of the input"
            )
        shape = [1] * x.dim()
        shape[axis] = -1
        return param.reshape(shape)
    if param.dim() != x.dim():
        raise ValueError(
            f"blocked scale/zero point of rank {param.dim()} must have the input's rank {x.dim()}"
        )
    # NOTE: blocked quantization (opset 21): element i along `axis` uses block i // block_size;
    # the last block may be partial, so the repeated parameter is cut to the input's length.
    expanded = param.repeat_interleave(block_size, dim=axis).narrow(axis, 0, x.shape[axis])
    if expanded.shape != x.shape:
        raise ValueError(
            f"blocked scale/zero point of shape {tuple(param.shape)} does not match input shape "
            f"{tuple(x.shape)} with block_size={block_size} on axis {axis}"
        )
    return expanded


def _round_float4(v: torch.Tensor) -> torch.Tensor:
    """Round float32 values to the float4e2m1 grid {0, 0.5, 1, 1.5, 2, 3, 4, 6} (and negatives),
    nearest with ties to even mantissa, saturating at +-6."""
    mag = v.abs()
    # NOTE: the grid spacing is 0.5 below 2, 1 in [2, 4) and 2 from 4 on; the parity of
    # round(mag / step) equals the parity of the e2m1 mantissa, so torch.round's ties-to-even is
    # the format's round-to-nearest-even.  A tie at 7 rounds to 8, which saturates to 6 like
    # ml_dtypes (the type has no infinity).
    step = torch.where(mag < 2, 0.5, torch.where(mag < 4, 1.0, 2.0)).to(v.dtype)
    rounded = (torch.round(mag / step) * step).clamp(max=_FLOAT4_MAX)
    return torch.copysign(rounded, v)


def _to_float8(v: torch.Tensor, dtype: torch.dtype, saturate: bool) -> torch.Tensor:
    """Cast to a float8 type following the ONNX saturation tables (Cast / QuantizeLinear)."""
    fmax = torch.finfo(dtype).max
    nan = torch.tensor(float("nan"), dtype=v.dtype)
    if saturate:
        # NOTE: saturate=1: out-of-range values and +-inf become +-FLT_MAX.  The Cast table in the
        # spec sends +-inf to NaN for the *fnuz types, but onnxruntime and the ONNX reference
        # both saturate them to +-FLT_MAX like every other type; this follows them.
        return v.clamp(-fmax, fmax).to(dtype)
    if dtype == torch.float8_e4m3fn:
        # NOTE: torch's e4m3fn cast saturates; ONNX saturate=0 wants NaN (sign kept) for +-inf and
        # for values that round past 448, i.e. |x| > 464 (464 is the tie that rounds to 448).
        overflow = v.isinf() | (v.abs() > 464)
        v = torch.where(overflow, torch.copysign(nan, v), v)
    # e5m2 overflows to +-inf, the fnuz types to NaN: torch's cast already does exactly that.
    return v.to(dtype)


def onnx_quantize_linear(
    x: torch.Tensor,
    y_scale: torch.Tensor,
    y_zero_point: torch.Tensor | None = None,
    *,
    qtype: str = "uint8",
    axis: int = 1,
    block_size: int = 0,
    saturate: bool = True,
    precision: str | None = None,
) -> torch.Tensor:
    """ONNX QuantizeLinear: ``y = saturate(round_half_even(x / y_scale) + y_zero_point)`` in the
    quantized type ``qtype``."""
    scale = _broadcast_param(y_scale, x, axis, block_size)
    # NOTE: the division runs in `precision` if given, else in the scale's type (opset 23 spec);
    # an integer scale divides like numpy's true division, in float64.
    if precision is not None:
        compute = getattr(torch, precision)
    elif scale.is_floating_point():
        compute = scale.dtype
    else:
        compute = torch.float64
    v = x.to(compute) / scale.to(compute)
    zero = None if y_zero_point is None else _broadcast_param(y_zero_point, x, axis, block_size)
    if qtype in _INT_TYPES:
        carrier, qmin, qmax = _INT_TYPES[qtype]
        # NOTE: after rounding, float32 holds every integer that can survive the clamp exactly
        # (|q| < 2**24), so adding the zero point there is exact; float16/bfloat16 could not.
        wide = torch.float64 if v.dtype == torch.float64 else torch.float32
        q = torch.round(v).to(wide)
        if zero is not None:
            q = q + zero.to(wide)
        return q.clamp(qmin, qmax).to(carrier)
    if qtype in _FLOAT8_TYPES:
        # NOTE: a float8 zero point only names the type: onnxruntime and the ONNX reference both
        # leave it out of the sum (adding a 0 would also turn -0 into +0).
        return _to_float8(v, _FLOAT8_TYPES[qtype], saturate)
    if qtype == _FLOAT4:
        if zero is not None:
            v = v + zero.to(v.dtype)  # the ONNX reference adds a float4 zero point
        return _round_float4(v.float())
    raise ValueError(f"unknown quantized type {qtype!r}; expected one of {_QTYPE_NAMES}")


def onnx_dequantize_linear(
    x: torch.Tensor,
    x_scale: torch.Tensor,
    x_zero_point: torch.Tensor | None = None,
    *,
    axis: int = 1,
    block_size: int = 0,
    output_dtype: str | None = None,
) -> torch.Tensor:
    """ONNX DequantizeLinear: ``y = (x - x_zero_point) * x_scale`` in the scale's type (or
    ``output_dtype``)."""
    scale = _broadcast_param(x_scale, x, axis, block_size)
    zero = None if x_zero_point is None else _broadcast_param(x_zero_point, x, axis, block_size)
    if x.is_floating_point():
        # float8 values, or float4e2m1 values carried as float32
        dx = x.float()
        if zero is not None and bool((zero.float() != 0).any()):
            # NOTE: onnxruntime rejects non-zero float8 zero points and the ONNX reference rejects
            # (float8) or ignores (float4) them; the spec's formula would subtract them.
            raise ValueError("DequantizeLinear of a float8/float4 input needs zero points that are all 0")
    else:
        # NOTE: like onnxruntime, the zero point is subtracted in int32 and the difference
        # converted to float32 before the multiplication.
        dx = x.to(torch.int32)
        if zero is not None:
            dx = dx - zero.to(torch.int32)
        dx = dx.float()
    y = dx * scale.float()
    out = getattr(torch, output_dtype) if output_dtype is not None else x_scale.dtype
    return y.to(out)


def onnx_dynamic_quantize_linear(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ONNX DynamicQuantizeLinear (uint8): ``(y, y_scale, y_zero_point)`` from the data range
    extended to include 0."""
    if x.numel() == 0:
        low = high = torch.zeros((), dtype=torch.float32)
    else:
        low, high = torch.aminmax(x.float())
    # NOTE: float32 throughout, in onnxruntime's order: range [min(x, 0), max(x, 0)],
    # scale = (max - min) / 255 (1 when the range is empty), zero point = round_half_even(
    # clamp(0 - min / scale, 0, 255)), y = clamp(round_half_even(x / scale) + zero point, 0, 255).
    low = low.clamp(max=0)
    high = high.clamp(min=0)
    scale = torch.where(high == low, torch.ones((), dtype=torch.float32), (high - low) / 255.0)
    zero = torch.round((0.0 - low / scale).clamp(0.0, 255.0))
    y = (torch.round(x / scale) + zero).clamp(0.0, 255.0)
    return y.to(torch.uint8), scale, zero.to(torch.uint8)


def _pad_amounts(
    x: torch.Tensor,
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dilations: tuple[int, ...],
    pads: tuple[int, ...],
    auto_pad: str,
) -> list[int]:
    """ONNX ``[begin..., end...]`` pads for the spatial dims of ``x``, auto_pad resolved."""
    n = len(kernel)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        result_begin, result_end = [], []
        for i in range(n):
            size = x.shape[2 + i]
            out = -(-size // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size)
            small, large = total // 2, total - total // 2
            begin, end = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
            result_begin.append(begin)
            result_end.append(end)
        return result_begin + result_end
    if auto_pad == "VALID":
        return [0] * (2 * n)
    return list(pads) if pads else [0] * (2 * n)


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _integer_conv(
    x: torch.Tensor,
    w: torch.Tensor,
    x_zero_point: torch.Tensor | None,
    w_zero_point: torch.Tensor | None,
    strides: tuple[int, ...],
    dilations: tuple[int, ...],
    pads: tuple[int, ...],
    group: int,
    auto_pad: str,
) -> torch.Tensor:
    """The exact int32 convolution ``conv(x - x_zp, w - w_zp)`` (padding counts as 0 after the
    zero point is removed)."""
    # NOTE: float64 holds every product (<= 2**16) and every sum of up to 2**36 of them exactly,
    # so the float64 convolution is the exact integer result; it is then wrapped to int32 like an
    # int32 accumulator.
    xd = x.to(torch.float64)
    if x_zero_point is not None:
        xd = xd - x_zero_point.to(torch.float64)
    wd = w.to(torch.float64)
    if w_zero_point is not None:
        wz = w_zero_point.to(torch.float64)
        if wz.dim() == 1 and wz.numel() > 1:
            wz = wz.reshape([-1] + [1] * (w.dim() - 1))  # per output channel
        wd = wd - wz
    kernel = tuple(w.shape[2:])
    padding = _pad_amounts(x, kernel, strides, dilations, pads, auto_pad)
    n = len(kernel)
    begin, end = padding[:n], padding[n:]
    if begin == end:
        conv_padding = tuple(begin)
    else:
        torch_pads = []
        for i in reversed(range(n)):
            torch_pads += [begin[i], end[i]]
        xd = F.pad(xd, torch_pads)
        conv_padding = (0,) * n
    out = _CONV[n](xd, wd, None, strides, conv_padding, dilations, group)
    return out.to(torch.int64).to(torch.int32)


def onnx_conv_integer(
    x: torch.Tensor,
    w: torch.Tensor,
    x_zero_point: torch.Tensor | None = None,
    w_zero_point: torch.Tensor | None = None,
    *,
    strides: tuple[int, ...],
    dilations: tuple[int, ...],
    pads: tuple[int, ...] = (),
    group: int = 1,
    auto_pad: str = "NOTSET",
) -> torch.Tensor:
    """ONNX ConvInteger: int32 ``conv(x - x_zero_point, w - w_zero_point)``."""
    return _integer_conv(x, w, x_zero_point, w_zero_point, strides, dilations, pads, group, auto_pad)


def onnx_qlinear_conv(
    x: torch.Tensor,
    x_scale: torch.Tensor,
    x_zero_point: torch.Tensor,
    w: torch.Tensor,
    w_scale: torch.Tensor,
    w_zero_point: torch.Tensor,
    y_scale: torch.Tensor,
    y_zero_point: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    strides: tuple[int, ...],
    dilations: tuple[int, ...],
    pads: tuple[int, ...] = (),
    group: int = 1,
    auto_pad: str = "NOTSET",
) -> torch.Tensor:
    """ONNX QLinearConv: requantize ``conv(x - x_zp, w - w_zp) + B`` with
    ``x_scale * w_scale / y_scale`` and ``y_zero_point``."""
    acc = _integer_conv(x, w, x_zero_point, w_zero_point, strides, dilations, pads, group, auto_pad)
    spatial = [1] * (acc.dim() - 2)
    if bias is not None:
        acc = acc + bias.to(torch.int32).reshape([1, -1, *spatial])
    # NOTE: the multiplier x_scale * w_scale / y_scale is per output channel when w_scale is 1-D.
    multiplier = (x_scale.float() * w_scale.float() / y_scale.float()).reshape(-1)
    if multiplier.numel() > 1:
        multiplier = multiplier.reshape([1, -1, *spatial])
    else:
        multiplier = multiplier.reshape(())
    out_dtype = x.dtype if y_zero_point is None else y_zero_point.dtype
    return _requantize(acc, multiplier, y_zero_point, out_dtype)


def _requantize(acc: torch.Tensor, multiplier: torch.Tensor, y_zero_point: torch.Tensor | None,
                out_dtype: torch.dtype) -> torch.Tensor:
    """``saturate(round_half_even(acc * multiplier) + y_zero_point)`` as ``out_dtype``."""
    # NOTE: onnxruntime requantizes in float32 (int32 accumulator to float, times the multiplier,
    # round half to even, plus the zero point, saturate); so does this.
    y = torch.round(acc.float() * multiplier.float())
    if y_zero_point is not None:
        y = y + y_zero_point.float()
    info = torch.iinfo(out_dtype)
    return y.clamp(info.min, info.max).to(out_dtype)


def onnx_qlinear_matmul(
    a: torch.Tensor,
    a_scale: torch.Tensor,
    a_zero_point: torch.Tensor | None,
    b: torch.Tensor,
    b_scale: torch.Tensor,
    b_zero_point: torch.Tensor | None,
    y_scale: torch.Tensor,
    y_zero_point: torch.Tensor | None = None,
) -> torch.Tensor:
    """ONNX QLinearMatMul: requantize ``(a - a_zp) @ (b - b_zp)`` with
    ``a_scale * b_scale / y_scale`` and ``y_zero_point``."""
    # NOTE: a 1-D scale / zero point of `a` is per row ([M] -> [M, 1]); one of `b` is per column
    # and broadcasts over the last dim as it is (QLinearMatMul spec).
    if a_scale.dim() == 1 and a_scale.numel() > 1:
        a_scale = a_scale.unsqueeze(-1)
    ad = a.to(torch.float64)
    if a_zero_point is not None:
        zero = a_zero_point.unsqueeze(-1) if a_zero_point.dim() == 1 and a_zero_point.numel() > 1 else a_zero_point
        ad = ad - zero.to(torch.float64)
    bd = b.to(torch.float64)
    if b_zero_point is not None:
        bd = bd - b_zero_point.to(torch.float64)
    # NOTE: float64 holds the int8/uint8 products and their sums exactly; the result is wrapped to
    # int32 like an int32 accumulator.
    acc = torch.matmul(ad, bd).to(torch.int64).to(torch.int32)
    # NOTE: the multiplier is formed in the scales' own type (float16 scales: float16 arithmetic,
    # as the reference does), then applied in float32.
    multiplier = a_scale * b_scale / y_scale
    out_dtype = a.dtype if y_zero_point is None else y_zero_point.dtype
    return _requantize(acc, multiplier, y_zero_point, out_dtype)


# --- converters ----------------------------------------------------------------------------
def _scale_check(node: OnnxNode, ctx: ConversionContext, index: int) -> None:
    elem = ctx.elem_type(node.input(index))
    if elem is not None and elem not in _FLOAT_NAMES and elem != TensorProto.INT32:
        raise node.unsupported(f"input {index} ({node.input(index)}) element type", _type_name(elem),
                               "float, float16, bfloat16 scales")


def _quantized_type(node: OnnxNode, ctx: ConversionContext) -> str:
    """The quantized output type of a QuantizeLinear node, as a ``_QTYPE_NAMES`` entry."""
    output_dtype = node.attr_int("output_dtype", 0) or 0
    if output_dtype:
        elem = output_dtype
        zero_elem = None if ctx.is_constant(node.input(2)) else ctx.elem_type(node.input(2))
        if node.has_input(2) and zero_elem is not None and zero_elem != elem:
            raise node.unsupported("output_dtype", _type_name(elem),
                                   f"the zero point's type {_type_name(zero_elem)} (spec: they must match)")
    elif node.has_input(2):
        # NOTE: int4/int2 zero points are carried as int8 (uint4/uint2 as uint8), so a constant's
        # torch dtype cannot tell them apart: the output's inferred type is asked first.
        elem = ctx.elem_type(node.outputs[0]) or ctx.elem_type(node.input(2))
        if elem is None:
            raise node.unsupported("y_zero_point element type", None, "a zero point of known type")
    else:
        elem = TensorProto.UINT8  # spec: no output_dtype and no zero point means uint8
    name = _type_name(elem)
    if name not in _QTYPE_NAMES:
        raise node.unsupported("quantized output type", name, ", ".join(_QTYPE_NAMES))
    return name


def _quant_axis(node: OnnxNode) -> int:
    return node.attr_int("axis", 1) if node.opset >= 13 else 1


@converter("QuantizeLinear", since=10)
@converter("QuantizeLinear", since=13)
@converter("QuantizeLinear", since=19)
@converter("QuantizeLinear", since=21)
@converter("QuantizeLinear", since=23)
@converter("QuantizeLinear", since=25)
def quantize_linear(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """QuantizeLinear(x, y_scale, y_zero_point?) -> y = saturate(round(x / y_scale) + y_zero_point)"""
    # opset 10: per tensor; 13: axis; 19: float8 + saturate; 21: blocked + int4/int16 +
    # output_dtype; 23: precision + float4 + mixed x/scale types; 25: int2.
    _scale_check(node, ctx, 1)
    qtype = _quantized_type(node, ctx)
    kwargs: dict = {"qtype": qtype, "axis": _quant_axis(node)}
    block_size = node.attr_int("block_size", 0) or 0
    if block_size < 0:
        raise node.unsupported("block_size", block_size, "block_size >= 0")
    if block_size:
        kwargs["block_size"] = block_size
    if qtype in _FLOAT8_TYPES:
        kwargs["saturate"] = bool(node.attr_int("saturate", 1))
    precision = node.attr_int("precision", 0) or 0
    if precision:
        if precision not in _FLOAT_NAMES:
            raise node.unsupported("precision", _type_name(precision), "float, float16, bfloat16, double")
        kwargs["precision"] = _FLOAT_NAMES[precision]
    inputs = [node.input(0), node.input(1)] + ([node.input(2)] if node.has_input(2) else [])
    return Lowered(onnx_quantize_linear, inputs=inputs, kwargs=kwargs)


@converter("DequantizeLinear", since=10)
@converter("DequantizeLinear", since=13)
@converter("DequantizeLinear", since=19)
@converter("DequantizeLinear", since=21)
@converter("DequantizeLinear", since=23)
@converter("DequantizeLinear", since=25)
def dequantize_linear(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """DequantizeLinear(x, x_scale, x_zero_point?) -> y = (x - x_zero_point) * x_scale"""
    # opset 10: per tensor; 13: axis; 19: float8 + float16/bfloat16 scales; 21: blocked +
    # int4/int16; 23: output_dtype + float4; 25: int2.
    # (a constant's type is read from its carrier dtype, which float4 shares with float32: the
    # runtime function tells the types apart by dtype itself)
    elem = None if ctx.is_constant(node.input(0)) else ctx.elem_type(node.input(0))
    if elem is not None and _type_name(elem) not in (*_QTYPE_NAMES, "int32"):
        raise node.unsupported("x element type", _type_name(elem), ", ".join((*_QTYPE_NAMES, "int32")))
    scale_elem = ctx.elem_type(node.input(1))
    if scale_elem is not None and scale_elem not in _FLOAT_NAMES:
        raise node.unsupported("x_scale element type", _type_name(scale_elem), "float, float16, bfloat16")
    kwargs: dict = {"axis": _quant_axis(node)}
    block_size = node.attr_int("block_size", 0) or 0
    if block_size < 0:
        raise node.unsupported("block_size", block_size, "block_size >= 0")
    if block_size:
        kwargs["block_size"] = block_size
    output_dtype = node.attr_int("output_dtype", 0) or 0
    if output_dtype:
        if output_dtype not in _FLOAT_NAMES:
            raise node.unsupported("output_dtype", _type_name(output_dtype), "float, float16, bfloat16")
        kwargs["output_dtype"] = _FLOAT_NAMES[output_dtype]
    inputs = [node.input(0), node.input(1)] + ([node.input(2)] if node.has_input(2) else [])
    return Lowered(onnx_dequantize_linear, inputs=inputs, kwargs=kwargs)


@converter("DynamicQuantizeLinear", since=11)
def dynamic_quantize_linear(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """DynamicQuantizeLinear(x) -> (y uint8, y_scale, y_zero_point)"""
    return Lowered(onnx_dynamic_quantize_linear, inputs=[node.input(0)])


def _conv_kwargs(node: OnnxNode, ctx: ConversionContext, weight: str) -> dict:
    """Literal conv configuration (strides, dilations, pads, group, auto_pad) for a conv node."""
    w_shape = ctx.shape(weight)
    kernel = node.attr_ints("kernel_shape", None)
    rank = len(kernel) if kernel else (len(w_shape) - 2 if w_shape is not None else None)
    if rank is None:
        raise node.unsupported("weight rank", None, "a weight of known rank or kernel_shape")
    if rank not in _CONV:
        raise node.unsupported("spatial rank", rank, "1, 2 or 3 spatial dims")
    if kernel and w_shape is not None and all(isinstance(d, int) for d in w_shape[2:]):
        if list(w_shape[2:]) != list(kernel):
            raise node.unsupported("kernel_shape", kernel, f"the weight's spatial shape {w_shape[2:]}")
    auto_pad = node.attr_str("auto_pad", "NOTSET") or "NOTSET"
    if auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        raise node.unsupported("auto_pad", auto_pad, "NOTSET, SAME_UPPER, SAME_LOWER, VALID")
    kwargs: dict = {
        "strides": tuple(node.attr_ints("strides", None) or [1] * rank),
        "dilations": tuple(node.attr_ints("dilations", None) or [1] * rank),
        "group": node.attr_int("group", 1),
    }
    pads = node.attr_ints("pads", None)
    if pads and auto_pad == "NOTSET":
        if len(pads) != 2 * rank:
            raise node.unsupported("pads", pads, f"{2 * rank} values")
        kwargs["pads"] = tuple(pads)
    if auto_pad != "NOTSET":
        kwargs["auto_pad"] = auto_pad
    return kwargs


@converter("ConvInteger", since=10)
def conv_integer(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ConvInteger(x, w, x_zero_point?, w_zero_point?) -> y int32 = conv(x - x_zp, w - w_zp)"""
    inputs = [node.input(i) for i in range(4)]
    while inputs and not inputs[-1]:
        inputs.pop()
    return Lowered(onnx_conv_integer, inputs=inputs, kwargs=_conv_kwargs(node, ctx, node.input(1)))


@converter("QLinearConv", since=10)
def qlinear_conv(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """QLinearConv(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B?) -> y quantized"""
    inputs = [node.input(i) for i in range(9)]
    while inputs and not inputs[-1]:
        inputs.pop()
    return Lowered(onnx_qlinear_conv, inputs=inputs, kwargs=_conv_kwargs(node, ctx, node.input(3)))


@converter("QLinearMatMul", since=10)
@converter("QLinearMatMul", since=21)
def qlinear_matmul(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """QLinearMatMul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp) -> y quantized"""
    # opset 21 adds float16/bfloat16 scales and float8 operands.
    for index in (0, 2, 3, 5, 7):
        elem = ctx.elem_type(node.input(index))
        if elem is not None and elem not in (TensorProto.INT8, TensorProto.UINT8):
            # NOTE: the spec defines no rounding/saturation for float8 operands and onnxruntime
            # has no kernel for them.
            raise node.unsupported(f"input {index} ({node.input(index)}) element type",
                                   _type_name(elem), "int8, uint8")
    for index in (1, 4, 6):
        _scale_check(node, ctx, index)
    return Lowered(onnx_qlinear_matmul, inputs=[node.input(i) for i in range(8)])
