"""Converters: matrix products and other linear algebra — Gemm, MatMul, MatMulInteger, Einsum,
Det.

Constant weights of ``Gemm`` and ``MatMul`` become ``nn.Linear`` layers with trainable parameters,
so a converted model fine-tunes like a native one; everything else is an exact functional form.
"""
from __future__ import annotations

import logging

import torch
from onnx import TensorProto
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.registry import Lowered, converter

__all__ = [
    "gemm",
    "gemm_legacy",
    "matmul",
    "matmul_integer",
    "einsum",
    "det",
    "onnx_gemm",
    "unsigned_matmul",
    "onnx_matmul_integer",
    "onnx_einsum",
    "onnx_det",
]

logger = logging.getLogger(__name__)

_UNSIGNED_WIDE = {TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64}
_TORCH_UNSIGNED_WIDE = (torch.uint16, torch.uint32, torch.uint64)


# --- runtime functions ----------------------------------------------------------------------
def _widen(t: torch.Tensor) -> torch.Tensor:
    """uint16/uint32/uint64 as int64 (uint64 reinterpreted bit for bit) for arithmetic torch
    lacks kernels for."""
    return t.view(torch.int64) if t.dtype == torch.uint64 else t.to(torch.int64)


def _narrow(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Back from int64 to ``dtype``, wrapping like unsigned arithmetic."""
    return t.view(torch.uint64) if dtype == torch.uint64 else t.to(dtype)


def unsigned_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for uint16/uint32/uint64, which torch has no matmul kernel for."""
    # NOTE: int64 arithmetic wraps modulo 2**64, so narrowing back gives the same wrapped result
    # as unsigned arithmetic would.
    return _narrow(torch.matmul(_widen(a), _widen(b)), a.dtype)


def onnx_gemm(
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor | None = None,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    trans_a: bool = False,
    trans_b: bool = False,
) -> torch.Tensor:
    """ONNX Gemm: ``alpha * A' @ B' + beta * C`` with C broadcast to ``[M, N]``."""
    if trans_a:
        a = a.transpose(0, 1)
    if trans_b:
        b = b.transpose(0, 1)
    # NOTE: beta == 0 leaves C out entirely (so inf/nan in C do not leak), as the ONNX reference
    # implementation and BLAS do.
    use_c = c is not None and beta != 0.0
    if a.is_floating_point():
        if not use_c:
            y = torch.matmul(a, b)
            return y if alpha == 1.0 else y * alpha
        return torch.addmm(c, a, b, beta=beta, alpha=alpha)
    dtype = a.dtype
    if dtype in _TORCH_UNSIGNED_WIDE:
        a, b = _widen(a), _widen(b)
        c = _widen(c) if use_c else c
    y = torch.matmul(a, b)
    if alpha == 1.0 and (not use_c or beta == 1.0):
        y = y + c if use_c else y
    else:
        # NOTE: integer Gemm with a non-unit alpha/beta is computed in float64 and truncated
        # back, like the ONNX reference (numpy ``astype``).
        out = y.double() * alpha
        if use_c:
            out = out + c.double() * beta
        y = out.to(y.dtype)
    return _narrow(y, dtype) if dtype in _TORCH_UNSIGNED_WIDE else y


def onnx_matmul_integer(
    a: torch.Tensor,
    b: torch.Tensor,
    a_zero_point: torch.Tensor | None = None,
    b_zero_point: torch.Tensor | None = None,
) -> torch.Tensor:
    """ONNX MatMulInteger: ``(A - a_zero_point) @ (B - b_zero_point)`` accumulated in int32."""
    a32 = a.to(torch.int32)
    if a_zero_point is not None:
        zero = a_zero_point.to(torch.int32)
        if zero.dim() == 1 and a.dim() >= 2:
            zero = zero.unsqueeze(-1)  # per-row zero points [M] -> [M, 1]
        a32 = a32 - zero
    b32 = b.to(torch.int32)
    if b_zero_point is not None:
        b32 = b32 - b_zero_point.to(torch.int32)  # per-column [N] broadcasts over the last axis
    if a32.device.type == "cpu":
        return torch.matmul(a32, b32)
    # NOTE: CUDA has no integer matmul; |A - zp|, |B - zp| <= 255 so every partial sum below
    # 2**53 is exact in float64 (the spec says products never overflow).
    return torch.matmul(a32.double(), b32.double()).to(torch.int32)


def onnx_einsum(*operands: torch.Tensor, equation: str) -> torch.Tensor:
    """ONNX Einsum: ``torch.einsum`` keeping the operands' dtype."""
    terms = equation.split("->")[0].split(",")
    if "" in terms:
        # NOTE: an operand with an empty term is a scalar; one-element [1] tensors (how scalars
        # often arrive from numpy/torch callers) are taken as that scalar instead of failing.
        operands = tuple(t.reshape(()) if term == "" else t for term, t in zip(terms, operands))
    dtype = operands[0].dtype
    if dtype in _TORCH_UNSIGNED_WIDE:
        return _narrow(torch.einsum(equation, *(_widen(t) for t in operands)), dtype)
    result = torch.einsum(equation, *operands)
    # NOTE: torch sums integer tensors into int64; ONNX keeps the input type (wrapping).
    return result if result.dtype == dtype else result.to(dtype)


def onnx_det(x: torch.Tensor) -> torch.Tensor:
    """ONNX Det; float16/bfloat16 go through float32, which torch's LU needs on the CPU."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return torch.linalg.det(x.float()).to(x.dtype)
    return torch.linalg.det(x)


# --- helpers --------------------------------------------------------------------------------
def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """An ``nn.Linear`` whose parameters are ``weight`` ([out, in]) and ``bias``, tensors the
    layer may keep (``ctx.own(...)``: contiguous, not shared with any other constant)."""
    out_features, in_features = weight.shape
    # NOTE: built on the meta device so that no random initialisation is spent on large layers.
    layer = nn.Linear(in_features, out_features, bias=bias is not None, device="meta", dtype=weight.dtype)
    layer.weight = nn.Parameter(weight)
    if bias is not None:
        layer.bias = nn.Parameter(bias)
    return layer


def _bias_vector(c: torch.Tensor, n: int) -> torch.Tensor | None:
    """C as a length-``n`` bias when it broadcasts over the rows of ``[M, N]`` the same for every
    M (shapes ``[]``, ``[1]``, ``[N]``, ``[1, 1]``, ``[1, N]``), else ``None``."""
    if c.dim() > 2 or (c.dim() == 2 and c.shape[0] != 1):
        return None
    flat = c.reshape(-1)
    if flat.numel() == n:
        return flat
    if flat.numel() == 1:
        return flat.expand(n)
    return None


def _gemm_as_linear(node: OnnxNode, ctx: ConversionContext) -> Lowered | None:
    """Gemm as ``nn.Linear`` when B (and C) are constant floats, A is not transposed and alpha
    is 1; ``None`` when the layer would not be exact."""
    weight_name = node.input(1)
    weight = ctx.constant(weight_name)
    if weight is None or not weight.is_floating_point() or weight.dim() != 2:
        return None
    if node.attr_int("transA") or node.attr_float("alpha") != 1.0:
        return None
    # nn.Linear computes x @ W.T: W is B.T, or B itself when transB is set.
    weight = weight if node.attr_int("transB") else weight.t()
    beta = node.attr_float("beta")
    bias = None
    if node.has_input(2) and beta != 0.0:
        c = ctx.constant(node.input(2))
        if c is None or c.dtype != weight.dtype:
            return None
        bias = _bias_vector(c, weight.shape[0])
        if bias is None:
            return None
        if beta != 1.0:
            # NOTE: beta * C is what Gemm adds; forming it once here is the same float product.
            bias = bias * beta
        bias = ctx.own(bias, node.input(2))
    return Lowered(_linear(ctx.own(weight, weight_name), bias), inputs=[node.input(0)])


# --- converters -----------------------------------------------------------------------------
@converter("Gemm", since=7)
def gemm(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Gemm(A, B, C?) -> Y = alpha * A' @ B' + beta * C"""
    linear = _gemm_as_linear(node, ctx)
    if linear is not None:
        return linear
    kwargs = {}
    alpha, beta = node.attr_float("alpha"), node.attr_float("beta")
    if alpha != 1.0:
        kwargs["alpha"] = alpha
    if beta != 1.0:
        kwargs["beta"] = beta
    if node.attr_int("transA"):
        kwargs["trans_a"] = True
    if node.attr_int("transB"):
        kwargs["trans_b"] = True
    inputs = [node.input(0), node.input(1)] + ([node.input(2)] if node.has_input(2) else [])
    return Lowered(onnx_gemm, inputs=inputs, kwargs=kwargs)


@converter("Gemm", since=1)
def gemm_legacy(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Gemm(A, B, C) -> Y = alpha * A' @ B' + beta * C; C broadcast only when ``broadcast=1``"""
    # NOTE: opsets 1-6: with broadcast=0 C must already be [M, N]; broadcasting it anyway gives
    # the same result for every valid model, so only a C of the wrong rank is refused.
    if not node.attr_int("broadcast", 0):
        rank = ctx.rank(node.input(2))
        if rank is not None and rank != 2:
            raise node.unsupported("C of rank (with broadcast=0)", rank, "a C of shape [M, N]")
    return gemm(node, ctx)


@converter("MatMul", since=1)
def matmul(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """MatMul(A, B) -> Y = A @ B (numpy.matmul semantics)"""
    weight = ctx.constant(node.input(1))
    if (
        weight is not None
        and weight.dim() == 2
        and weight.is_floating_point()
        and not ctx.is_constant(node.input(0))
    ):
        # A @ B == Linear with weight B.T; 1-D and N-D A work the same way through F.linear.
        return Lowered(_linear(ctx.own(weight.t(), node.input(1)), None), inputs=[node.input(0)])
    if ctx.elem_type(node.input(0)) in _UNSIGNED_WIDE:
        return Lowered(unsigned_matmul)
    return Lowered(torch.matmul)


@converter("MatMulInteger", since=10)
def matmul_integer(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """MatMulInteger(A, B, a_zero_point?, b_zero_point?) -> Y int32 = (A - a_zp) @ (B - b_zp)"""
    inputs = [node.input(i) for i in range(4)]
    while inputs and not inputs[-1]:
        inputs.pop()
    return Lowered(onnx_matmul_integer, inputs=inputs)


def _implicit_output(lhs: str) -> str:
    """The output term of an implicit-mode equation: ellipsis first, then the labels that occur
    once, in ASCII order (ONNX Einsum spec)."""
    labels = lhs.replace("...", "").replace(",", "")
    once = sorted(label for label in set(labels) if labels.count(label) == 1)
    return ("..." if "..." in lhs else "") + "".join(once)


@converter("Einsum", since=12)
def einsum(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Einsum(Inputs...) -> Output = einsum(equation, *Inputs)"""
    equation = node.attr_str("equation").replace(" ", "")
    if "->" not in equation:
        equation = f"{equation}->{_implicit_output(equation)}"
    return Lowered(onnx_einsum, kwargs={"equation": equation})


@converter("Det", since=11)
def det(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Det(X) -> Y = determinant of each [M, M] matrix of X[*, M, M]"""
    if ctx.elem_type(node.input(0)) in (TensorProto.FLOAT, TensorProto.DOUBLE):
        return Lowered(torch.linalg.det)
    return Lowered(onnx_det)
