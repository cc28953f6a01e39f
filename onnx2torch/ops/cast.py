"""Converters: Cast and CastLike.

Most casts are ``Tensor.to(dtype)``: float -> integer truncates toward zero like C (and, out of
range, gives what onnxruntime gives on the same CPU: both are C casts), integer -> narrower
integer drops the high bits, anything -> bool is ``!= 0``.  Three families need more:

* float8 (opset 19+): ``saturate=1`` clamps to the type's finite range (so +-inf becomes +-max,
  as onnxruntime and the reference do); ``saturate=0`` gives NaN / +-inf past the range, per the
  spec's table.
* int4 / uint4 / int2 / uint2 (carried as int8 / uint8): the value is truncated to an integer and
  wrapped to the type's bits, as the spec's "discard higher bits" rule and ONNX's node cases.
* float4e2m1 (carried as float32): rounded to the 16 representable values, half to even,
  saturating at +-6 (NaN has no encoding; it becomes -0 as in ml_dtypes).
* float8e8m0 (opset 24+, powers of two 2**-127 .. 2**127): ``round_mode`` up / down / nearest
  (ties up) picks the power of two; out of range (0 and negatives included) ``saturate=1``
  clamps to the smallest / largest value and ``saturate=0`` gives NaN, per the spec's table (as
  onnxruntime does; the reference rounds a few of those edge values differently).

float6 and string casts have no torch carrier and are refused.

A cast to the graph's main float type (the float type most of its initializer elements have,
float32 when there are none) follows the module's dtype instead: it casts to the dtype of a
zero-size reference buffer, which ``model.half()`` / ``.bfloat16()`` / ``.double()`` convert with
the weights.  As converted the result is exactly the ONNX type; after ``model.half()`` the casts an
exporter wrote to float32 produce float16 and do not force float32 back into the model.
"""
from __future__ import annotations

import logging
import math

import torch
from onnx import TensorProto

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.dtypes import torch_dtype
from onnx2torch.registry import Lowered, converter

__all__ = ["cast_to_float8", "cast_to_float8e8m0", "cast_to_small_int", "cast_to_float4", "cast_like",
           "to_model_float"]

logger = logging.getLogger(__name__)

_TP = TensorProto

#: float8 dtype -> (largest finite value, overflow threshold, inclusive?, value past the range
#: when saturate=0). An input rounds past the largest value when |x| > threshold (>= when
#: inclusive): the midpoint to the next power-of-two step, with ties going to the even neighbour.
_FLOAT8 = {
    torch.float8_e4m3fn: (448.0, 464.0, False, math.nan),
    torch.float8_e4m3fnuz: (240.0, 248.0, True, math.nan),
    torch.float8_e5m2: (57344.0, 61440.0, True, math.inf),
    torch.float8_e5m2fnuz: (57344.0, 61440.0, True, math.nan),
}

#: ONNX sub-byte integer types -> (bits, signed)
_SMALL_INTS = {_TP.INT4: (4, True), _TP.UINT4: (4, False)}
for _name, _signed in (("INT2", True), ("UINT2", False)):
    if hasattr(_TP, _name):
        _SMALL_INTS[getattr(_TP, _name)] = (2, _signed)

#: ONNX types with no torch carrier a cast could produce.
_REFUSED = {_TP.STRING: "string"}
for _name in ("FLOAT6E2M3", "FLOAT6E3M2"):
    if hasattr(_TP, _name):
        _REFUSED[getattr(_TP, _name)] = _name.lower()


def cast_to_float8(x: torch.Tensor, dtype: torch.dtype = torch.float8_e4m3fn, saturate: bool = True) -> torch.Tensor:
    """float / int -> float8 with ONNX's saturate rules, rounding to nearest even."""
    largest, threshold, inclusive, overflow = _FLOAT8[dtype]
    # NOTE: via float32 (exact for float16 / bfloat16 / float8 sources) so torch's own
    # float8 conversion, which saturates for e4m3fn but not for the others, is never relied on
    # out of range. A float64 source is rounded twice, which can differ in the last bit at ties.
    x = x.to(torch.float32)
    if saturate:
        return x.clamp(-largest, largest).to(dtype)
    magnitude = x.abs()
    past = magnitude >= threshold if inclusive else magnitude > threshold
    replacement = torch.full_like(x, overflow).copysign(x)
    return torch.where(past, replacement, x).to(dtype)


_E8M0 = getattr(torch, "float8_e8m0fnu", None)
_E8M0_ROUND_MODES = ("up", "down", "nearest")


def cast_to_float8e8m0(x: torch.Tensor, saturate: bool = True, round_mode: str = "up") -> torch.Tensor:
    """-> float8e8m0 (2**e for e in -127..127, NaN): a power of two picked by ``round_mode``."""
    x = x.to(torch.float32)
    # NOTE: frexp gives x = m * 2**k with m in [0.5, 1), exact for float32 subnormals too, so
    # 2**(k-1) <= x < 2**k and 2 * m is the significand in [1, 2).
    significand, exponent = torch.frexp(x)
    power = exponent.to(torch.int32) - 1
    if round_mode == "up":
        power = power + (significand != 0.5).to(torch.int32)
    elif round_mode == "nearest":
        power = power + (significand >= 0.75).to(torch.int32)
    biased = power + 127
    # NOTE: the spec's table: x below the smallest value (0 and negatives included), above the
    # largest or infinite saturates, or is NaN without saturation; rounding past 2**127 too.
    too_small = ~(x >= 2.0**-127)
    too_large = (x > 2.0**127) | (biased > 254)
    if saturate:
        biased = torch.where(too_small, 0, torch.where(too_large, 254, biased))
    else:
        biased = torch.where(too_small | too_large, 255, biased)
    biased = torch.where(torch.isnan(x), 255, biased)
    return biased.to(torch.uint8).view(_E8M0)


def cast_to_small_int(x: torch.Tensor, bits: int = 4, signed: bool = True) -> torch.Tensor:
    """-> int4/uint4/int2/uint2 values (in int8/uint8): truncate toward zero, keep the low bits."""
    value = x.to(torch.int64) & ((1 << bits) - 1)
    if signed:
        half = 1 << (bits - 1)
        return ((value ^ half) - half).to(torch.int8)
    return value.to(torch.uint8)


def cast_to_float4(x: torch.Tensor) -> torch.Tensor:
    """-> float4e2m1 values (in float32): 0, 0.5, 1, 1.5, 2, 3, 4, 6 and negatives, half to even."""
    x = x.to(torch.float32)
    magnitude = x.abs().clamp(max=6.0)
    # NOTE: the spacing is 0.5 below 2, 1 in [2, 4) and 2 in [4, 6]; torch.round is half to even
    # on the scaled value, which is the format's round-half-to-even (even mantissa).
    step = torch.where(magnitude < 2.0, 0.5, torch.where(magnitude < 4.0, 1.0, 2.0))
    rounded = torch.round(magnitude / step) * step
    result = rounded.copysign(x)
    return torch.where(torch.isnan(x), torch.full_like(x, -0.0), result)


def _lower_cast(node: OnnxNode, to: int, saturate: bool, inputs: list[str] | None = None,
                round_mode: str = "up") -> Lowered:
    """How a cast to ONNX type ``to`` runs."""
    if to in _REFUSED:
        raise node.unsupported("to", _REFUSED[to], "numeric and bool types (torch has no such tensors)")
    if to in _SMALL_INTS:
        bits, signed = _SMALL_INTS[to]
        return Lowered(cast_to_small_int, inputs=inputs, kwargs={"bits": bits, "signed": signed})
    if to == _TP.FLOAT4E2M1:
        return Lowered(cast_to_float4, inputs=inputs)
    try:
        dtype = torch_dtype(to)
    except TypeError:
        raise node.unsupported("to", to, "an ONNX TensorProto data type torch can hold") from None
    if dtype in _FLOAT8:
        return Lowered(cast_to_float8, inputs=inputs, kwargs={"dtype": dtype, "saturate": saturate})
    if _E8M0 is not None and dtype == _E8M0:
        if round_mode not in _E8M0_ROUND_MODES:
            raise node.unsupported("round_mode", round_mode, "'up', 'down' or 'nearest'")
        return Lowered(cast_to_float8e8m0, inputs=inputs, kwargs={"saturate": saturate, "round_mode": round_mode})
    return Lowered(torch.Tensor.to, inputs=inputs, kwargs={"dtype": dtype})


#: The ONNX name of the zero-size buffer whose dtype the casts to the main float type follow.
DTYPE_REFERENCE = "float_dtype_reference"
_FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def to_model_float(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Cast to the model's float type: the dtype of ``reference``, a zero-size buffer converted
    with the weights by ``model.half()`` / ``.bfloat16()`` / ``.to(dtype)``."""
    return x.to(reference.dtype)


def _main_float(ctx: ConversionContext) -> torch.dtype:
    """The float type most initializer elements have (float32 when there are none)."""
    counts: dict[torch.dtype, int] = {}
    for value in ctx.constants.values():
        if isinstance(value, torch.Tensor) and value.dtype in _FLOAT_TYPES:
            counts[value.dtype] = counts.get(value.dtype, 0) + value.numel()
    return max(counts, key=lambda dtype: (counts[dtype], dtype == torch.float32)) if counts else torch.float32


def _follow_model_dtype(node: OnnxNode, ctx: ConversionContext, to: int, source: str) -> Lowered | None:
    """A cast to the main float type as :func:`to_model_float`, or None for other targets."""
    if to not in (_TP.FLOAT, _TP.FLOAT16, _TP.BFLOAT16, _TP.DOUBLE):
        return None  # float4 travels as float32 but is not the model's float type
    dtype = torch_dtype(to)
    reference = ctx.constant(DTYPE_REFERENCE)
    if reference is None:
        main = _main_float(ctx)
        if dtype != main:
            return None
        reference = torch.empty(0, dtype=main)
        ctx.constants[DTYPE_REFERENCE] = reference
    if dtype != reference.dtype:
        return None
    return Lowered(to_model_float, inputs=[source, DTYPE_REFERENCE])


def _target_type(node: OnnxNode) -> int:
    to = node.attr("to")
    if isinstance(to, str):  # opset 1 spells the type: "FLOAT", "INT64" ...
        try:
            return TensorProto.DataType.Value(to.upper())
        except ValueError:
            raise node.unsupported("to", to, "a TensorProto.DataType name") from None
    return int(to)


def _check_source(node: OnnxNode, ctx: ConversionContext) -> None:
    if ctx.elem_type(node.input(0)) == _TP.STRING:
        raise node.unsupported("input type", "string", "numeric and bool inputs (torch has no strings)")


@converter("Cast", since=1)
def cast(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Cast(input) -> output = input as type `to`"""
    _check_source(node, ctx)
    to = _target_type(node)
    return _follow_model_dtype(node, ctx, to, node.input(0)) or _lower_cast(node, to, saturate=True)


@converter("Cast", since=19)
def cast_19(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Cast(input) -> output = input as type `to` (float8 targets follow `saturate`)"""
    _check_source(node, ctx)
    to = _target_type(node)
    return _follow_model_dtype(node, ctx, to, node.input(0)) or _lower_cast(
        node, to, saturate=bool(node.attr_int("saturate", 1)))


@converter("Cast", since=24)
def cast_24(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Cast(input) -> output = input as type `to` (float8e8m0 targets follow `round_mode`)"""
    _check_source(node, ctx)
    to = _target_type(node)
    return _follow_model_dtype(node, ctx, to, node.input(0)) or _lower_cast(
        node, to, saturate=bool(node.attr_int("saturate", 1)), round_mode=node.attr_str("round_mode", "up"))


def cast_like(x: torch.Tensor, like: torch.Tensor, saturate: bool = True, round_mode: str = "up") -> torch.Tensor:
    """x cast to ``like``'s dtype, for a target type shape inference could not tell."""
    # NOTE: only torch's own dtypes can be told apart here: a like-tensor carrying int4 / uint4 /
    # float4 values in int8 / uint8 / float32 gets a plain int8 / uint8 / float32 cast.
    if like.dtype in _FLOAT8:
        return cast_to_float8(x, like.dtype, saturate)
    if _E8M0 is not None and like.dtype == _E8M0:
        return cast_to_float8e8m0(x, saturate, round_mode)
    return x.to(like.dtype)


def _cast_like(node: OnnxNode, ctx: ConversionContext, saturate: bool, round_mode: str = "up") -> Lowered:
    _check_source(node, ctx)
    to = ctx.elem_type(node.input(1))
    if to is not None and _follow_model_dtype(node, ctx, to, node.input(0)) is not None:
        if not ctx.is_constant(node.input(1)):
            return Lowered(cast_like, inputs=node.inputs[:2], kwargs={"saturate": saturate, "round_mode": round_mode})
        return _follow_model_dtype(node, ctx, to, node.input(0))
    if to is None:
        return Lowered(cast_like, inputs=node.inputs[:2], kwargs={"saturate": saturate, "round_mode": round_mode})
    return _lower_cast(node, to, saturate, inputs=[node.input(0)], round_mode=round_mode)


@converter("CastLike", since=15)
def castlike(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """CastLike(input, target_type) -> output = input as target_type's type"""
    return _cast_like(node, ctx, saturate=True)


@converter("CastLike", since=19)
def castlike_19(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """CastLike(input, target_type) -> output = input as target_type's type (float8 `saturate`)"""
    return _cast_like(node, ctx, saturate=bool(node.attr_int("saturate", 1)))


@converter("CastLike", since=24)
def castlike_24(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """CastLike(input, target_type) -> output = input as target_type's type (`round_mode` for e8m0)"""
    return _cast_like(node, ctx, saturate=bool(node.attr_int("saturate", 1)),
                      round_mode=node.attr_str("round_mode", "up"))
