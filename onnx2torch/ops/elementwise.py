"""Converters: elementwise arithmetic, math functions, comparisons, logic and bitwise ops.

Binary ops follow numpy broadcasting (opset 7+); the opset 1/6 ``broadcast``/``axis`` attributes
are honoured by reshaping B so its dims line up from ``axis``.

torch has only a few kernels for uint16/uint32/uint64 (copy, ``*``, ``&``, ``==`` ...). Those
dtypes are computed in an int64 carrier and cast back, which is exact for uint16/uint32 and, for
uint64, for everything that wraps modulo 2**64 (``+ - *``, bitwise ops, shifts, comparisons, which
use an order-preserving key). uint64 ``Div``/``Mod`` are exact only for values below 2**63.
"""
from __future__ import annotations

import functools
import logging
import operator

import numpy as np
import torch
from onnx import TensorProto
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.dtypes import torch_dtype
from onnx2torch.ops.constant import identity_fn
from onnx2torch.registry import Lowered, converter

__all__ = [
    "WIDE_UNSIGNED",
    "input_dtype",
    "is_string",
    "as_int64",
    "from_int64",
    "order_key",
    "from_order_key",
    "AxisBroadcast",
    "add_unsigned",
    "sub_unsigned",
    "mul_unsigned",
    "divide",
    "mod",
    "pow_as_base",
    "sign",
    "is_inf",
    "shift_left_unsigned",
    "shift_right_unsigned",
    "bitwise_not_unsigned",
    "compare_unsigned",
    "equal_strings",
    "where_strings",
    "sum_of",
    "mean_of",
    "max_of",
    "min_of",
]

logger = logging.getLogger(__name__)

#: Unsigned dtypes torch has (almost) no arithmetic kernels for.
WIDE_UNSIGNED = (torch.uint16, torch.uint32, torch.uint64)
_INT64_MIN = -(2**63)
_FLOAT8 = (torch.float8_e4m3fn, torch.float8_e4m3fnuz, torch.float8_e5m2, torch.float8_e5m2fnuz)


# --- dtype helpers ---------------------------------------------------------------------------
def is_string(ctx: ConversionContext, name: str) -> bool:
    """Whether tensor ``name`` holds strings (numpy object arrays inside ``forward``)."""
    return ctx.elem_type(name) == TensorProto.STRING or isinstance(ctx.constant(name), np.ndarray)


def input_dtype(node: OnnxNode, ctx: ConversionContext, index: int = 0) -> torch.dtype | None:
    """The torch dtype of input ``index`` when shape inference knows it (strings are refused)."""
    elem = ctx.elem_type(node.input(index))
    if elem is None:
        return None
    if elem == TensorProto.STRING:
        raise node.unsupported("input type", "string", "numeric and bool tensors (torch has no strings)")
    try:
        return torch_dtype(elem)
    except TypeError:
        raise node.unsupported("input type", TensorProto.DataType.Name(elem), "types torch can hold") from None


def _common_dtype(node: OnnxNode, ctx: ConversionContext) -> torch.dtype | None:
    """The element type shared by a node's (same-typed) inputs, from the first input that has one."""
    for i in range(len(node.inputs)):
        if node.has_input(i):
            dtype = input_dtype(node, ctx, i)
            if dtype is not None:
                return dtype
    return None


def _is_float(dtype: torch.dtype | None) -> bool:
    return dtype is not None and dtype.is_floating_point


def as_int64(x: torch.Tensor) -> torch.Tensor:
    """An int64 carrier: uint16/uint32 by value, uint64 bit for bit (two's complement)."""
    if x.dtype == torch.uint64:
        return x.view(torch.int64)
    return x.to(torch.int64)


def from_int64(y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Back from :func:`as_int64`; higher bits are dropped (wraps like C unsigned arithmetic)."""
    if dtype == torch.uint64:
        return y.view(torch.uint64)
    return y.to(dtype)


def order_key(x: torch.Tensor) -> torch.Tensor:
    """int64 values that sort like the unsigned ``x`` (uint64: flip the sign bit)."""
    if x.dtype == torch.uint64:
        return x.view(torch.int64) ^ _INT64_MIN
    return x.to(torch.int64)


def from_order_key(y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if dtype == torch.uint64:
        return (y ^ _INT64_MIN).view(torch.uint64)
    return y.to(dtype)


# --- legacy (opset < 7) broadcasting ---------------------------------------------------------
class AxisBroadcast(nn.Module):
    """``op(a, b)`` with B's dims aligned to A's from ``axis`` (ONNX opset 1/6 ``broadcast=1``):
    B gets ``trailing`` size-1 dims appended, then numpy broadcasting applies."""

    def __init__(self, op, trailing: int, op_kwargs: dict | None = None):
        super().__init__()
        self.op = op
        self.trailing = trailing
        self.op_kwargs = dict(op_kwargs or {})

    def extra_repr(self) -> str:
        name = getattr(self.op, "__name__", repr(self.op))
        kwargs = "".join(f", {k}={v!r}" for k, v in self.op_kwargs.items())
        return f"op={name}, trailing={self.trailing}{kwargs}"

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        b = b.reshape(tuple(b.shape) + (1,) * self.trailing)
        return self.op(a, b, **self.op_kwargs)


def _legacy_broadcast(node: OnnxNode, ctx: ConversionContext, lowered: Lowered) -> Lowered:
    """Apply the opset 1/6 ``broadcast``/``axis`` attributes to a modern (numpy) lowering."""
    if not node.attr_int("broadcast", 0):
        return lowered  # shapes must already be equal: numpy broadcasting is the identity then
    axis = node.attr("axis", None)
    if axis is None:
        return lowered  # B's shape is a suffix of A's: exactly numpy's rule
    rank_a, rank_b = ctx.rank(node.input(0)), ctx.rank(node.input(1))
    if rank_a is None or rank_b is None:
        raise node.unsupported("axis", axis, "legacy broadcasting only when the ranks of A and B are known")
    axis = int(axis) + rank_a if int(axis) < 0 else int(axis)
    trailing = rank_a - axis - rank_b
    if trailing < 0:
        raise node.unsupported("axis", axis, f"0 <= axis <= rank(A) - rank(B) = {rank_a - rank_b}")
    if trailing == 0:
        return lowered
    return Lowered(AxisBroadcast(lowered.target, trailing, lowered.kwargs), inputs=lowered.inputs)


# --- Add / Sub / Mul ------------------------------------------------------------------------
def add_unsigned(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b for uint16/32/64, wrapping modulo 2**bits."""
    return from_int64(as_int64(a) + as_int64(b), a.dtype)


def sub_unsigned(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a - b for uint16/32/64, wrapping modulo 2**bits."""
    return from_int64(as_int64(a) - as_int64(b), a.dtype)


def mul_unsigned(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a * b for uint16/32/64, wrapping modulo 2**bits (int64 products wrap modulo 2**64)."""
    return from_int64(as_int64(a) * as_int64(b), a.dtype)


def _arith(node: OnnxNode, ctx: ConversionContext, op, unsigned_op) -> Lowered:
    if _common_dtype(node, ctx) in WIDE_UNSIGNED:
        return Lowered(unsigned_op)
    return Lowered(op, scalars_as_literals=True)


@converter("Add", since=1)
def add_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Add(A, B) -> C = A + B, with legacy broadcast/axis attributes"""
    return _legacy_broadcast(node, ctx, _arith(node, ctx, operator.add, add_unsigned))


@converter("Add", since=7)
def add(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Add(A, B) -> C = A + B (numpy broadcasting)"""
    return _arith(node, ctx, operator.add, add_unsigned)


@converter("Sub", since=1)
def sub_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Sub(A, B) -> C = A - B, with legacy broadcast/axis attributes"""
    return _legacy_broadcast(node, ctx, _arith(node, ctx, operator.sub, sub_unsigned))


@converter("Sub", since=7)
def sub(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Sub(A, B) -> C = A - B (numpy broadcasting)"""
    return _arith(node, ctx, operator.sub, sub_unsigned)


@converter("Mul", since=1)
def mul_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Mul(A, B) -> C = A * B, with legacy broadcast/axis attributes"""
    return _legacy_broadcast(node, ctx, _arith(node, ctx, operator.mul, mul_unsigned))


@converter("Mul", since=7)
def mul(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Mul(A, B) -> C = A * B (numpy broadcasting)"""
    return _arith(node, ctx, operator.mul, mul_unsigned)


# --- Div / Mod -------------------------------------------------------------------------------
def divide(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """ONNX Div for any dtype: true division for floats, truncation toward zero for integers."""
    if a.is_floating_point():
        return a / b
    if a.dtype in WIDE_UNSIGNED:
        # NOTE: exact for uint16/uint32; uint64 only below 2**63 (the int64 carrier's range).
        return from_int64(torch.div(as_int64(a), as_int64(b), rounding_mode="trunc"), a.dtype)
    return torch.div(a, b, rounding_mode="trunc")


def _div(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    dtype = _common_dtype(node, ctx)
    if dtype is None or dtype in WIDE_UNSIGNED:
        return Lowered(divide)
    if dtype.is_floating_point:
        return Lowered(operator.truediv, scalars_as_literals=True)
    # NOTE: ONNX integer Div truncates toward zero (C semantics); torch's `//` floors.
    # torch.div takes a Python number only as its second argument.
    literal = not ctx.is_constant(node.input(0))
    return Lowered(torch.div, kwargs={"rounding_mode": "trunc"}, scalars_as_literals=literal)


@converter("Div", since=1)
def div_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Div(A, B) -> C = A / B (integers truncate), with legacy broadcast/axis attributes"""
    return _legacy_broadcast(node, ctx, _div(node, ctx))


@converter("Div", since=7)
def div(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Div(A, B) -> C = A / B (integers truncate toward zero; numpy broadcasting)"""
    return _div(node, ctx)


def mod(a: torch.Tensor, b: torch.Tensor, fmod: int = 0) -> torch.Tensor:
    """ONNX Mod for any dtype: ``fmod=0`` takes the divisor's sign, ``fmod=1`` the dividend's."""
    if a.dtype in WIDE_UNSIGNED:
        # NOTE: unsigned operands are non-negative, so both modes agree; exact for uint16/uint32
        # and for uint64 below 2**63.
        return from_int64(torch.fmod(as_int64(a), as_int64(b)), a.dtype)
    return torch.fmod(a, b) if fmod else torch.remainder(a, b)


@converter("Mod", since=10)
def mod_10(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Mod(A, B) -> C = A mod B; fmod=0: sign of B (Python %), fmod=1: sign of A (C fmod)"""
    fmod = node.attr_int("fmod", 0)
    if fmod not in (0, 1):
        raise node.unsupported("fmod", fmod, "0 or 1")
    dtype = _common_dtype(node, ctx)
    if dtype is None or dtype in WIDE_UNSIGNED:
        return Lowered(mod, kwargs={"fmod": fmod})
    # NOTE: fmod=0 on floats was only allowed from opset 28 (A - floor(A / B) * B); earlier
    # opsets required fmod=1 for floats, so computing the opset-28 meaning is a safe superset.
    literal = not ctx.is_constant(node.input(0))  # torch.fmod(number, tensor) does not exist
    return Lowered(torch.fmod if fmod else torch.remainder, scalars_as_literals=literal)


# --- Pow ---------------------------------------------------------------------------------------
def pow_as_base(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """ONNX Pow with mixed types: ``x ** y`` with the result in the base's dtype."""
    if not isinstance(y, torch.Tensor):
        y = torch.tensor(y)
    if y.dtype in WIDE_UNSIGNED:
        y = y.to(torch.float64) if x.is_floating_point() else as_int64(y)
    if x.is_floating_point():
        return torch.pow(x, y).to(x.dtype)
    if y.is_floating_point():
        # NOTE: integer base, float exponent: computed in double and truncated toward zero, like
        # onnxruntime and the reference (np.power(...).astype(base dtype)).
        return torch.pow(x.to(torch.float64), y.to(torch.float64)).to(x.dtype)
    x64, y64 = x.to(torch.int64), y.to(torch.int64)
    result = torch.pow(x64, y64.clamp(min=0))
    # NOTE: integer x ** negative y is 0 except for |x| == 1 (as onnxruntime's truncation of
    # pow(double, double)); torch refuses negative integer exponents.
    unit = torch.where(torch.remainder(y64, 2) == 0, torch.ones_like(x64), x64)
    negative = torch.where(x64.abs() == 1, unit, torch.zeros_like(x64))
    return torch.where(y64 < 0, negative, result).to(x.dtype)


def _pow(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    base, exponent = input_dtype(node, ctx, 0), input_dtype(node, ctx, 1)
    simple_exponent = exponent == base or (
        exponent is not None and not exponent.is_floating_point and exponent not in WIDE_UNSIGNED
        and exponent != torch.bool
    )
    if _is_float(base) and simple_exponent and not ctx.is_constant(node.input(0)):
        # float ** same float or ** any signed int stays in the base's dtype in torch
        return Lowered(operator.pow, scalars_as_literals=True)
    return Lowered(pow_as_base)


@converter("Pow", since=1)
def pow_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Pow(X, Y) -> Z = X ** Y, with legacy broadcast/axis attributes"""
    return _legacy_broadcast(node, ctx, _pow(node, ctx))


@converter("Pow", since=7)
def pow_7(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Pow(X, Y) -> Z = X ** Y in X's type (Y may have another type from opset 12)"""
    return _pow(node, ctx)


# --- unary math ------------------------------------------------------------------------------
@converter("Sqrt", since=1)
def sqrt(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Sqrt(X) -> Y = sqrt(X)"""
    return Lowered(torch.sqrt)


@converter("Exp", since=1)
def exp(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Exp(X) -> Y = exp(X)"""
    return Lowered(torch.exp)


@converter("Log", since=1)
def log(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Log(X) -> Y = ln(X)"""
    return Lowered(torch.log)


@converter("Neg", since=1)
def neg(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Neg(X) -> Y = -X"""
    return Lowered(torch.neg)


@converter("Floor", since=1)
def floor(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Floor(X) -> Y = floor(X)"""
    return Lowered(torch.floor)


@converter("Ceil", since=1)
def ceil(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Ceil(X) -> Y = ceil(X)"""
    return Lowered(torch.ceil)


@converter("Reciprocal", since=1)
def reciprocal(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Reciprocal(X) -> Y = 1 / X"""
    return Lowered(torch.reciprocal)


@converter("Sin", since=7)
def sin(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Sin(input) -> output = sin(input)"""
    return Lowered(torch.sin)


@converter("Cos", since=7)
def cos(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Cos(input) -> output = cos(input)"""
    return Lowered(torch.cos)


@converter("Tan", since=7)
def tan(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Tan(input) -> output = tan(input)"""
    return Lowered(torch.tan)


@converter("Asin", since=7)
def asin(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Asin(input) -> output = asin(input)"""
    return Lowered(torch.asin)


@converter("Acos", since=7)
def acos(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Acos(input) -> output = acos(input)"""
    return Lowered(torch.acos)


@converter("Atan", since=7)
def atan(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Atan(input) -> output = atan(input)"""
    return Lowered(torch.atan)


@converter("Sinh", since=9)
def sinh(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Sinh(input) -> output = sinh(input)"""
    return Lowered(torch.sinh)


@converter("Cosh", since=9)
def cosh(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Cosh(input) -> output = cosh(input)"""
    return Lowered(torch.cosh)


@converter("Asinh", since=9)
def asinh(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Asinh(input) -> output = asinh(input)"""
    return Lowered(torch.asinh)


@converter("Acosh", since=9)
def acosh(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Acosh(input) -> output = acosh(input)"""
    return Lowered(torch.acosh)


@converter("Atanh", since=9)
def atanh(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Atanh(input) -> output = atanh(input)"""
    return Lowered(torch.atanh)


@converter("Erf", since=9)
def erf(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Erf(input) -> output = erf(input)"""
    return Lowered(torch.erf)


@converter("IsNaN", since=9)
def is_nan(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """IsNaN(X) -> Y = X is NaN (bool)"""
    return Lowered(torch.isnan)


@converter("Round", since=11)
def round(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Round(X) -> Y = X rounded half to even"""
    # NOTE: torch.round rounds half to even, as ONNX Round requires.
    return Lowered(torch.round)


@converter("Abs", since=1)
def abs_(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Abs(X) -> Y = |X|"""
    dtype = input_dtype(node, ctx)
    if dtype is not None and dtype in WIDE_UNSIGNED:
        return Lowered(identity_fn)  # unsigned values are their own absolute value
    return Lowered(torch.abs)


def sign(x: torch.Tensor) -> torch.Tensor:
    """ONNX Sign: -1, 0 or 1 in x's dtype; NaN stays NaN (torch.sign maps NaN to 0)."""
    if x.dtype in WIDE_UNSIGNED:
        return (x != 0).to(x.dtype)
    if x.is_floating_point():
        return torch.where(torch.isnan(x), x, torch.sign(x))
    return torch.sign(x)


@converter("Sign", since=9)
def sign_9(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Sign(input) -> output = -1 / 0 / 1 (NaN for NaN)"""
    dtype = input_dtype(node, ctx)
    if dtype is not None and not dtype.is_floating_point and dtype not in WIDE_UNSIGNED:
        return Lowered(torch.sign)
    return Lowered(sign)


def is_inf(x: torch.Tensor, detect_positive: int = 1, detect_negative: int = 1) -> torch.Tensor:
    """ONNX IsInf for any float dtype (float8 via float32)."""
    if x.dtype in _FLOAT8:
        x = x.to(torch.float32)
    if detect_positive and detect_negative:
        return torch.isinf(x)
    if detect_positive:
        return torch.isposinf(x)
    if detect_negative:
        return torch.isneginf(x)
    return torch.zeros_like(x, dtype=torch.bool)


@converter("IsInf", since=10)
def isinf_10(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """IsInf(X) -> Y = X is +inf (detect_positive) or -inf (detect_negative)"""
    positive, negative = node.attr_int("detect_positive", 1), node.attr_int("detect_negative", 1)
    dtype = input_dtype(node, ctx)
    if dtype is None or dtype in _FLOAT8 or not (positive or negative):
        return Lowered(is_inf, kwargs={"detect_positive": positive, "detect_negative": negative})
    if positive and negative:
        return Lowered(torch.isinf)
    return Lowered(torch.isposinf if positive else torch.isneginf)


# --- bitwise ---------------------------------------------------------------------------------
def shift_left_unsigned(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x << y for uint16/32/64; shifts of the type's width or more give 0."""
    return from_int64(as_int64(x) << _shift_amount(y), x.dtype)


def shift_right_unsigned(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logical x >> y for uint16/32/64; shifts of the type's width or more give 0."""
    s = _shift_amount(y)
    if x.dtype != torch.uint64:
        return (as_int64(x) >> s).to(x.dtype)  # non-negative in int64: arithmetic == logical
    bits = x.view(torch.int64)
    # NOTE: int64 >> is arithmetic; masking off the sign-extended top bits makes it logical.
    # torch gives 0 for `1 << 64`, so the mask is all ones for s == 0.
    mask = (torch.ones_like(s) << (64 - s)) - 1
    shifted = torch.where((s >= 0) & (s < 64), (bits >> s) & mask, torch.zeros_like(bits))
    return shifted.view(torch.uint64)


def _shift_amount(y) -> torch.Tensor:
    if not isinstance(y, torch.Tensor):
        return torch.tensor(int(y), dtype=torch.int64)
    if y.dtype == torch.uint64:
        # amounts >= 2**63 read as negative: clamp them to 64, which shifts everything out
        s = y.view(torch.int64)
        return torch.where(s < 0, torch.full_like(s, 64), s)
    return y.to(torch.int64)


@converter("BitShift", since=11)
def bitshift_11(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """BitShift(X, Y) -> Z = X << Y or X >> Y (direction LEFT / RIGHT)"""
    direction = node.attr_str("direction")
    if direction not in ("LEFT", "RIGHT"):
        raise node.unsupported("direction", direction, "'LEFT' or 'RIGHT'")
    # NOTE: opset 28 defines shifts by >= the bit width (or negative ones) as the sign fill alone
    # (0, or -1 for a right shift of a negative signed X); torch's shifts behave exactly so, and
    # opset 11 left those cases undefined.
    if _common_dtype(node, ctx) in WIDE_UNSIGNED:
        return Lowered(shift_left_unsigned if direction == "LEFT" else shift_right_unsigned)
    return Lowered(operator.lshift if direction == "LEFT" else operator.rshift, scalars_as_literals=True)


@converter("BitwiseAnd", since=18)
def bitwise_and(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """BitwiseAnd(A, B) -> C = A & B"""
    return Lowered(operator.and_, scalars_as_literals=True)


@converter("BitwiseOr", since=18)
def bitwise_or(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """BitwiseOr(A, B) -> C = A | B"""
    return Lowered(operator.or_, scalars_as_literals=True)


@converter("BitwiseXor", since=18)
def bitwise_xor(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """BitwiseXor(A, B) -> C = A ^ B"""
    return Lowered(operator.xor, scalars_as_literals=True)


def bitwise_not_unsigned(x: torch.Tensor) -> torch.Tensor:
    """~x for uint16/32/64."""
    return from_int64(~as_int64(x), x.dtype)


@converter("BitwiseNot", since=18)
def bitwise_not(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """BitwiseNot(X) -> Y = ~X"""
    if input_dtype(node, ctx) in WIDE_UNSIGNED:
        return Lowered(bitwise_not_unsigned)
    return Lowered(torch.bitwise_not)


# --- variadic Sum / Mean / Max / Min -------------------------------------------------------
def sum_of(*xs: torch.Tensor) -> torch.Tensor:
    """Elementwise sum of any number of broadcastable tensors."""
    if xs[0].dtype in WIDE_UNSIGNED:
        return from_int64(functools.reduce(operator.add, [as_int64(x) for x in xs]), xs[0].dtype)
    return functools.reduce(operator.add, xs)


def mean_of(*xs: torch.Tensor) -> torch.Tensor:
    """Elementwise mean of any number of broadcastable tensors."""
    return functools.reduce(operator.add, xs) / len(xs)


def max_of(*xs: torch.Tensor) -> torch.Tensor:
    """Elementwise maximum of any number of broadcastable tensors (NaN propagates)."""
    if xs[0].dtype in WIDE_UNSIGNED:
        return from_order_key(functools.reduce(torch.maximum, [order_key(x) for x in xs]), xs[0].dtype)
    return functools.reduce(torch.maximum, xs)


def min_of(*xs: torch.Tensor) -> torch.Tensor:
    """Elementwise minimum of any number of broadcastable tensors (NaN propagates)."""
    if xs[0].dtype in WIDE_UNSIGNED:
        return from_order_key(functools.reduce(torch.minimum, [order_key(x) for x in xs]), xs[0].dtype)
    return functools.reduce(torch.minimum, xs)


def _variadic(node: OnnxNode, ctx: ConversionContext, pair, general) -> Lowered:
    inputs = [name for name in node.inputs if name]
    if not inputs:
        raise node.unsupported("inputs", 0, "one or more inputs")
    if len(inputs) == 1:
        return Lowered(identity_fn, inputs=inputs)
    if len(inputs) == 2 and pair is not None and _common_dtype(node, ctx) not in WIDE_UNSIGNED:
        return Lowered(pair, inputs=inputs, scalars_as_literals=pair is operator.add)
    return Lowered(general, inputs=inputs)


@converter("Sum", since=1)
def sum_(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Sum(data_0, ...) -> sum = data_0 + data_1 + ... (numpy broadcasting from opset 8)"""
    return _variadic(node, ctx, operator.add, sum_of)


@converter("Mean", since=1)
def mean(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Mean(data_0, ...) -> mean = (data_0 + data_1 + ...) / n"""
    return _variadic(node, ctx, None, mean_of)


@converter("Max", since=1)
def max_(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Max(data_0, ...) -> max = elementwise maximum"""
    return _variadic(node, ctx, torch.maximum, max_of)


@converter("Min", since=1)
def min_(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Min(data_0, ...) -> min = elementwise minimum"""
    return _variadic(node, ctx, torch.minimum, min_of)


# --- Where, comparisons, logic ---------------------------------------------------------------
def _object_array(x) -> np.ndarray:
    """A string tensor as a numpy object array of ``str``."""
    array = np.asarray(x, dtype=object)
    if array.size and any(isinstance(v, bytes) for v in array.flat):
        array = np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object])(array)
    return array


def where_strings(condition: torch.Tensor, x, y) -> np.ndarray:
    """Where on string tensors (numpy object arrays), numpy broadcasting."""
    return np.where(np.asarray(condition), _object_array(x), _object_array(y))


def equal_strings(a, b) -> torch.Tensor:
    """Equal on string tensors (numpy object arrays): a bool tensor, numpy broadcasting."""
    return torch.from_numpy(np.asarray(np.equal(_object_array(a), _object_array(b)), dtype=bool))


@converter("Where", since=9)
def where(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Where(condition, X, Y) -> output = X where condition else Y"""
    if is_string(ctx, node.input(1)) or is_string(ctx, node.input(2)):
        return Lowered(where_strings)
    # NOTE: no Python literals here: torch.where(c, 1.0, 0.0) would pick torch's default dtype.
    return Lowered(torch.where)


def compare_unsigned(a: torch.Tensor, b: torch.Tensor, op: str = "lt") -> torch.Tensor:
    """Ordered comparison (``op`` in lt/le/gt/ge) of uint16/32/64 tensors."""
    return getattr(torch, op)(order_key(a), order_key(b))


def _compare(node: OnnxNode, ctx: ConversionContext, op, name: str) -> Lowered:
    if op is operator.eq and (is_string(ctx, node.input(0)) or is_string(ctx, node.input(1))):
        return Lowered(equal_strings)
    if _common_dtype(node, ctx) in WIDE_UNSIGNED and op is not operator.eq:
        return Lowered(compare_unsigned, kwargs={"op": name})
    return Lowered(op, scalars_as_literals=True)


@converter("Equal", since=1)
def equal_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Equal(A, B) -> C = A == B (bool), with legacy broadcast/axis attributes"""
    return _legacy_broadcast(node, ctx, _compare(node, ctx, operator.eq, "eq"))


@converter("Equal", since=7)
def equal(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Equal(A, B) -> C = A == B (bool)"""
    return _compare(node, ctx, operator.eq, "eq")


@converter("Less", since=1)
def less_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Less(A, B) -> C = A < B (bool), with legacy broadcast/axis attributes"""
    return _legacy_broadcast(node, ctx, _compare(node, ctx, operator.lt, "lt"))


@converter("Less", since=7)
def less(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Less(A, B) -> C = A < B (bool)"""
    return _compare(node, ctx, operator.lt, "lt")


@converter("Greater", since=1)
def greater_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Greater(A, B) -> C = A > B (bool), with legacy broadcast/axis attributes"""
    return _legacy_broadcast(node, ctx, _compare(node, ctx, operator.gt, "gt"))


@converter("Greater", since=7)
def greater(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Greater(A, B) -> C = A > B (bool)"""
    return _compare(node, ctx, operator.gt, "gt")


@converter("LessOrEqual", since=12)
def less_or_equal(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """LessOrEqual(A, B) -> C = A <= B (bool)"""
    return _compare(node, ctx, operator.le, "le")


@converter("GreaterOrEqual", since=12)
def greater_or_equal(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """GreaterOrEqual(A, B) -> C = A >= B (bool)"""
    return _compare(node, ctx, operator.ge, "ge")


@converter("And", since=1)
def and_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """And(A, B) -> C = A & B (bool), with legacy broadcast/axis attributes"""
    return _legacy_broadcast(node, ctx, Lowered(operator.and_, scalars_as_literals=True))


@converter("And", since=7)
def and_(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """And(A, B) -> C = A & B (bool)"""
    return Lowered(operator.and_, scalars_as_literals=True)


@converter("Or", since=1)
def or_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Or(A, B) -> C = A | B (bool), with legacy broadcast/axis attributes"""
    return _legacy_broadcast(node, ctx, Lowered(operator.or_, scalars_as_literals=True))


@converter("Or", since=7)
def or_(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Or(A, B) -> C = A | B (bool)"""
    return Lowered(operator.or_, scalars_as_literals=True)


@converter("Xor", since=1)
def xor_1(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Xor(A, B) -> C = A ^ B (bool), with legacy broadcast/axis attributes"""
    return _legacy_broadcast(node, ctx, Lowered(operator.xor, scalars_as_literals=True))


@converter("Xor", since=7)
def xor(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Xor(A, B) -> C = A ^ B (bool)"""
    return Lowered(operator.xor, scalars_as_literals=True)


@converter("Not", since=1)
def not_(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Not(X) -> Y = logical not X"""
    return Lowered(torch.logical_not)
