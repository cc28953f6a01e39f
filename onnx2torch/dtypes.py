"""ONNX element types and their torch counterparts, and numpy ↔ torch conversion.

bfloat16 and the float8 types become torch's own dtypes; int4/uint4/int2/uint2 travel as
int8/uint8 with the same values and float4 as float32 (torch has no such dtypes).
"""
from __future__ import annotations

import ctypes
import math
import sys
import warnings

import numpy as np
import torch
from onnx import TensorProto, numpy_helper

from onnx2torch.errors import InvalidModelError

__all__ = ["ONNX_TO_TORCH", "torch_dtype", "to_torch", "tensor_from_proto", "is_float_dtype", "owned_copy", "claim_private", "mark_private", "settle"]

_TP = TensorProto
ONNX_TO_TORCH: dict[int, torch.dtype] = {
    _TP.FLOAT: torch.float32,
    _TP.DOUBLE: torch.float64,
    _TP.FLOAT16: torch.float16,
    _TP.BFLOAT16: torch.bfloat16,
    _TP.INT8: torch.int8,
    _TP.INT16: torch.int16,
    _TP.INT32: torch.int32,
    _TP.INT64: torch.int64,
    _TP.UINT8: torch.uint8,
    _TP.UINT16: torch.uint16,
    _TP.UINT32: torch.uint32,
    _TP.UINT64: torch.uint64,
    _TP.BOOL: torch.bool,
    _TP.COMPLEX64: torch.complex64,
    _TP.COMPLEX128: torch.complex128,
    _TP.FLOAT8E4M3FN: torch.float8_e4m3fn,
    _TP.FLOAT8E4M3FNUZ: torch.float8_e4m3fnuz,
    _TP.FLOAT8E5M2: torch.float8_e5m2,
    _TP.FLOAT8E5M2FNUZ: torch.float8_e5m2fnuz,
    _TP.INT4: torch.int8,
    _TP.UINT4: torch.uint8,
    _TP.FLOAT4E2M1: torch.float32,
}
if hasattr(_TP, "FLOAT8E8M0") and hasattr(torch, "float8_e8m0fnu"):
    ONNX_TO_TORCH[_TP.FLOAT8E8M0] = torch.float8_e8m0fnu
for _name, _carrier in (("INT2", torch.int8), ("UINT2", torch.uint8)):
    if hasattr(_TP, _name):
        ONNX_TO_TORCH[getattr(_TP, _name)] = _carrier

_LOW_PRECISION = {
    "bfloat16": (torch.bfloat16, np.uint16),
    "float8_e4m3fn": (torch.float8_e4m3fn, np.uint8),
    "float8_e4m3fnuz": (torch.float8_e4m3fnuz, np.uint8),
    "float8_e5m2": (torch.float8_e5m2, np.uint8),
    "float8_e5m2fnuz": (torch.float8_e5m2fnuz, np.uint8),
}
if hasattr(torch, "float8_e8m0fnu"):
    _LOW_PRECISION["float8_e8m0fnu"] = (torch.float8_e8m0fnu, np.uint8)


def torch_dtype(elem_type: int) -> torch.dtype:
    """The torch dtype that carries ONNX ``elem_type``."""
    try:
        return ONNX_TO_TORCH[elem_type]
    except KeyError:
        name = TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() else elem_type
        raise TypeError(f"ONNX element type {name} has no torch equivalent") from None


def is_float_dtype(dtype: torch.dtype) -> bool:
    return dtype.is_floating_point


def to_torch(array: np.ndarray) -> torch.Tensor:
    """A numpy array (ml_dtypes low-precision types included) as a torch tensor, sharing memory
    where torch can."""
    name = array.dtype.name
    if name in _LOW_PRECISION:
        dtype, raw = _LOW_PRECISION[name]
        return torch.from_numpy(_contiguous(array).view(raw)).view(dtype)
    if name in ("int4", "int2"):
        return torch.from_numpy(array.astype(np.int8))
    if name in ("uint4", "uint2"):
        return torch.from_numpy(array.astype(np.uint8))
    if name.startswith("float4"):
        return torch.from_numpy(array.astype(np.float32))
    if array.dtype == object:
        raise TypeError("string tensors have no torch equivalent")
    if not array.flags.writeable:
        # NOTE: arrays over protobuf bytes are read-only; sharing them avoids a copy of every
        # weight. Converters never write into constants (layers clone what they keep).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(array)
    return torch.from_numpy(_contiguous(array))


def owned_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of ``tensor`` that owns its memory: what a layer keeps as its weight.

    Constants read from a model share the protobuf's (read-only) bytes; a layer copies them once."""
    t = tensor.detach()
    if t.device.type == "cpu" and t.is_contiguous() and not t.is_conj() and not t.is_neg():
        # NOTE: a contiguous block is copied with one memcpy; torch's copy kernel splits it over
        # the intra-op threads, 2-3x slower for weights on a busy machine (conversion time).
        copy = torch.empty(t.shape, dtype=t.dtype)
        if t.numel():
            ctypes.memmove(copy.data_ptr(), t.data_ptr(), t.numel() * t.element_size())
        return copy
    return t.clone(memory_format=torch.contiguous_format)


#: Set on tensors made by :func:`tensor_from_proto` over a ``bytes`` object nothing else
#: refers to: a private copy of the weight (the protobuf hands out a new ``bytes`` on each read),
#: which a layer may keep instead of copying it again.
_PRIVATE = "_onnx2torch_private_bytes"


def mark_private(tensor: torch.Tensor) -> None:
    """Declare ``tensor``'s memory its own (a result just computed in new memory): when it is
    not a view and covers all of that memory, a layer may keep it (:func:`claim_private`).
    A tensor read from a protobuf keeps the verdict :func:`tensor_from_proto` gave it."""
    if (not hasattr(tensor, _PRIVATE) and tensor._base is None and tensor.is_contiguous() and tensor.numel()
            and tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()):
        setattr(tensor, _PRIVATE, True)


def _private_root(tensor: torch.Tensor) -> torch.Tensor | None:
    """The private tensor ``tensor`` views, when it views all of it, else ``None``."""
    root = tensor._base if tensor._base is not None else tensor
    if not getattr(root, _PRIVATE, False) or tensor.storage_offset() or tensor.numel() != root.numel():
        return None
    return root


def claim_private(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` views all of a private weight (see :data:`_PRIVATE`), which it then
    takes over: a layer may keep it instead of a copy (:func:`settle` finishes the job)."""
    root = _private_root(tensor)
    if root is None or tensor.is_conj() or tensor.is_neg():
        return False
    setattr(root, _PRIVATE, False)
    return True


def _storage_users(tensor: torch.Tensor) -> int:
    """How many tensors share ``tensor``'s memory (views included), itself counted."""
    count = getattr(torch._C, "_storage_Use_Count", None)
    if count is None:  # pragma: no cover - an older torch: assume it is shared
        return 2
    return count(tensor.untyped_storage()._cdata) - 1  # NOTE: minus untyped_storage()'s own reference


def settle(tensor: torch.Tensor, spare: dict[int, list[torch.Tensor]],
           deferred: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
    """A claimed weight (:func:`claim_private`) as the contiguous tensor its layer keeps
    (``tensor`` itself when it already is one).

    Memory no other tensor shares is reused: a contiguous weight stays where it is; a transposed
    matrix (MatMul's ``B`` for ``nn.Linear``) is written, transposed, into a spare buffer of its
    size from ``spare`` (byte tensors by size, which the caller keeps for the conversion) and
    leaves its own memory there for the next one.  Fresh pages cost more than copying on most
    machines: conversion keeps about one copy of the weights.  Shared memory (a constant the
    graph also outputs, a converter that kept a reference) is copied instead.

    With ``deferred`` the transposing copy is not made here but appended to it as
    ``(destination, source)``: the copies must then run in list order (a destination may be the
    source of an earlier one), before anything reads the returned tensor's values."""
    if _storage_users(tensor) > 1:
        return owned_copy(tensor)
    if tensor.is_contiguous():
        return tensor
    t = tensor.detach()
    if t.dim() == 2 and t.stride() == (1, t.shape[0]) and t.storage_offset() == 0:
        nbytes = t.numel() * t.element_size()
        free = spare.get(nbytes)
        buffer = free.pop() if free else torch.empty(nbytes, dtype=torch.uint8)
        out = buffer.view(t.dtype).view(t.shape)
        if deferred is None:
            out.copy_(t)
        else:
            deferred.append((out, t))
        spare.setdefault(nbytes, []).append(t.as_strided((t.numel(),), (1,)).view(torch.uint8))
        return out
    return owned_copy(t)


def _contiguous(array: np.ndarray) -> np.ndarray:
    """A C-contiguous array of the same shape (``np.ascontiguousarray`` turns 0-d into 1-d)."""
    return array if array.flags.c_contiguous else np.ascontiguousarray(array).reshape(array.shape)


#: Element types whose raw little-endian bytes are the torch tensor's bytes.
_RAW_DTYPES = {elem: dtype for elem, dtype in ONNX_TO_TORCH.items()
               if elem not in (_TP.INT4, _TP.UINT4, _TP.FLOAT4E2M1)
               and elem not in {getattr(_TP, n) for n in ("INT2", "UINT2") if hasattr(_TP, n)}}


def _sole_reference_count() -> int:
    """What ``sys.getrefcount`` says of an object only a local name refers to (2 up to Python
    3.13, where the call's argument counts; newer interpreters may not count it)."""
    fresh = bytes(bytearray(16))
    return sys.getrefcount(fresh)


_SOLE_REFERENCE = _sole_reference_count()


def tensor_from_proto(proto: TensorProto, base_dir: str | None = None) -> torch.Tensor | np.ndarray:
    """An initializer or Constant value as a torch tensor (strings stay a numpy object array)."""
    dtype = _RAW_DTYPES.get(proto.data_type)
    if (dtype is not None and sys.byteorder == "little" and proto.data_location != TensorProto.EXTERNAL
            and proto.HasField("raw_data")):
        raw = proto.raw_data
        count = math.prod(proto.dims)
        if len(raw) != count * dtype.itemsize:
            # NOTE: validation bounds large weights without reading them (onnx2torch.validate)
            raise InvalidModelError(
                f"tensor '{proto.name}' declares shape {list(proto.dims)} ({TensorProto.DataType.Name(proto.data_type)}, "
                f"{count * dtype.itemsize} bytes) but holds {len(raw)} bytes"
            )
        if count:
            # NOTE: no reference beyond this name means protobuf handed out a new bytes object
            # (upb does, on every read): the tensor over it is private.
            private = sys.getrefcount(raw) <= _SOLE_REFERENCE
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # bytes are not a writable buffer
                tensor = torch.frombuffer(raw, dtype=dtype)
            setattr(tensor, _PRIVATE, private)
            return tensor.view(tuple(proto.dims))
    array = numpy_helper.to_array(proto, base_dir or "")
    if array.dtype == object:
        return array
    tensor = to_torch(array)
    if tensor._base is None:
        setattr(tensor, _PRIVATE, False)  # NOTE: it may share the protobuf's own bytes
    return tensor
