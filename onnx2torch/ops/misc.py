"""Converters: CumProd, BitCast and the ai.onnx.ml TreeEnsemble.

TreeEnsemble becomes a ``TreeEnsembleModule`` holding the trees as buffers; every sample walks all
trees at once, one level per step, so the forward pass is a fixed number of batched gathers.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from onnx import TensorProto
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.dtypes import torch_dtype
from onnx2torch.registry import Lowered, converter

__all__ = [
    "TreeEnsembleModule",
    "bit_cast",
    "bitcast",
    "bitcast_subbyte",
    "cum_prod",
    "cumprod_onnx",
    "tree_ensemble",
]

logger = logging.getLogger(__name__)

ML = "ai.onnx.ml"


# --- CumProd ----------------------------------------------------------------------------------
_UNSIGNED_AS_SIGNED = {torch.uint32: torch.int32, torch.uint64: torch.int64}


def cumprod_onnx(x: torch.Tensor, axis: int | torch.Tensor, *, exclusive: int = 0, reverse: int = 0) -> torch.Tensor:
    """ONNX CumProd: running product along ``axis`` in x's dtype, optionally from the end and/or
    leaving the current element out (exclusive products start at 1)."""
    if isinstance(axis, torch.Tensor):
        axis = int(axis.reshape(-1)[0].item())
    signed = _UNSIGNED_AS_SIGNED.get(x.dtype)
    # NOTE: torch has no uint32/uint64 cumprod; wrapping multiplication gives the same bits
    # on the signed type of the same width.
    work = x.view(signed) if signed is not None else x
    if reverse:
        work = torch.flip(work, (axis,))
    out = torch.cumprod(work, axis, dtype=work.dtype)
    if exclusive and work.shape[axis] > 0:
        one = torch.ones_like(torch.narrow(out, axis, 0, 1))
        out = torch.cat((one, torch.narrow(out, axis, 0, work.shape[axis] - 1)), dim=axis)
    if reverse:
        out = torch.flip(out, (axis,))
    return out.view(x.dtype) if signed is not None else out


@converter("CumProd", since=26)
def cum_prod(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """CumProd(x, axis) -> y; running product along axis, attrs exclusive / reverse"""
    exclusive, reverse = node.attr_int("exclusive"), node.attr_int("reverse")
    axis = ctx.constant_ints(node.input(1))
    elem = ctx.elem_type(node.input(0))
    flags = {"exclusive": exclusive, "reverse": reverse}
    if axis is None:
        return Lowered(cumprod_onnx, inputs=node.inputs[:2], kwargs=flags)
    if exclusive or reverse or elem is None or elem in (TensorProto.UINT32, TensorProto.UINT64):
        return Lowered(cumprod_onnx, inputs=node.inputs[:1], kwargs={"axis": axis[0], **flags})
    kwargs = {"dim": axis[0]}
    dtype = torch_dtype(elem)
    if not dtype.is_floating_point:
        # NOTE: torch.cumprod promotes integers to int64; ONNX keeps the input type.
        kwargs["dtype"] = dtype
    return Lowered(torch.cumprod, inputs=node.inputs[:1], kwargs=kwargs)


# --- BitCast ----------------------------------------------------------------------------------
_TP = TensorProto
_BITS = {
    _TP.BOOL: 8, _TP.UINT8: 8, _TP.INT8: 8, _TP.FLOAT8E4M3FN: 8, _TP.FLOAT8E4M3FNUZ: 8,
    _TP.FLOAT8E5M2: 8, _TP.FLOAT8E5M2FNUZ: 8, _TP.FLOAT8E8M0: 8,
    _TP.UINT16: 16, _TP.INT16: 16, _TP.FLOAT16: 16, _TP.BFLOAT16: 16,
    _TP.UINT32: 32, _TP.INT32: 32, _TP.FLOAT: 32,
    _TP.UINT64: 64, _TP.INT64: 64, _TP.DOUBLE: 64, _TP.COMPLEX64: 64,
    _TP.COMPLEX128: 128,
    _TP.UINT4: 4, _TP.INT4: 4, _TP.FLOAT4E2M1: 4,
}
_SUBBYTE_NAMES = {_TP.UINT4: "uint4", _TP.INT4: "int4", _TP.FLOAT4E2M1: "float4e2m1"}
for _name, _bits in (("UINT2", 2), ("INT2", 2)):
    if hasattr(_TP, _name):
        _BITS[getattr(_TP, _name)] = _bits
        _SUBBYTE_NAMES[getattr(_TP, _name)] = _name.lower()

# float4 e2m1 magnitudes by their 3 low bits (bit 3 is the sign)
_FLOAT4_MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def bitcast(x: torch.Tensor, *, dtype: torch.dtype) -> torch.Tensor:
    """BitCast between byte-sized (or wider) types of the same width: the same bytes, read as ``dtype``."""
    if x.dtype.itemsize != dtype.itemsize:
        raise ValueError(f"BitCast needs types of the same width, got {x.dtype} and {dtype}")
    if dtype == torch.bool:
        # NOTE: a bool byte other than 0/1 is not a valid bool; any non-zero byte reads as true.
        return x.view(torch.uint8) != 0
    return x.view(dtype)


def _subbyte_bits(x: torch.Tensor, width: int) -> torch.Tensor:
    """The raw ``width``-bit patterns (as uint8) of a 4-/2-bit tensor held in its carrier dtype."""
    if x.is_floating_point():  # float4e2m1 values carried as float32
        magnitudes = torch.tensor(_FLOAT4_MAGNITUDES, dtype=x.dtype, device=x.device)
        code = (x.abs().unsqueeze(-1) - magnitudes).abs().argmin(-1)
        return (code + torch.signbit(x).long() * 8).to(torch.uint8)
    return (x.to(torch.int16) & ((1 << width) - 1)).to(torch.uint8)


def bitcast_subbyte(x: torch.Tensor, *, to: str) -> torch.Tensor:
    """BitCast between 4-bit (int4/uint4/float4e2m1) or 2-bit (int2/uint2) types, which travel
    as int8/uint8/float32 carriers holding their values."""
    width = 2 if to.endswith("2") else 4
    bits = _subbyte_bits(x, width)
    if to.startswith("uint"):
        return bits
    if to.startswith("int"):
        half = 1 << (width - 1)
        return torch.where(bits >= half, bits.to(torch.int8) - (1 << width), bits.to(torch.int8))
    magnitudes = torch.tensor(_FLOAT4_MAGNITUDES, dtype=torch.float32, device=x.device)
    value = magnitudes[(bits & 7).long()]
    return torch.where(bits >= 8, -value, value)


@converter("BitCast", since=26)
def bit_cast(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """BitCast(input) -> output; the same bits reinterpreted as type `to` (same bit width)"""
    to = node.attr_int("to")
    src = ctx.elem_type(node.input(0))
    supported = "numeric and bool types other than float8e8m0, of equal bit width"
    if to not in _BITS or to == _TP.FLOAT8E8M0:
        raise node.unsupported("to", _TP.DataType.Name(to) if to in _TP.DataType.values() else to, supported)
    if src is not None and (src not in _BITS or src == _TP.FLOAT8E8M0):
        raise node.unsupported("input type", _TP.DataType.Name(src), supported)
    if src is not None and _BITS[src] != _BITS[to]:
        raise node.unsupported(f"to={_TP.DataType.Name(to)} ({_BITS[to]} bits) from input type",
                               f"{_TP.DataType.Name(src)} ({_BITS[src]} bits)", "types of equal bit width")
    if src == to:
        return Lowered(nn.Identity())
    if to in _SUBBYTE_NAMES:
        return Lowered(bitcast_subbyte, kwargs={"to": _SUBBYTE_NAMES[to]})
    return Lowered(bitcast, kwargs={"dtype": torch_dtype(to)})


# --- TreeEnsemble (ai.onnx.ml) ----------------------------------------------------------------
_MODE_NAMES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ", "BRANCH_MEMBER")
_MEMBER = 6
_AGGREGATES = ("AVERAGE", "SUM", "MIN", "MAX")
_POST_TRANSFORMS = ("NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT")


class TreeEnsembleModule(nn.Module):
    """ai.onnx.ml TreeEnsemble: Y[n, t] = aggregate over trees of the weight of the leaf each tree
    reaches for X[n] (leaves targeting t), then ``post_transform``.

    Node ids ``0..M-1`` are interior nodes and ``M + i`` is leaf ``i``.
    """

    def __init__(self, *, features, splits, modes, missing_true, true_next, false_next, members, roots,
                 leaf_weights, leaf_targets, n_targets: int, depth: int, aggregate: str, post_transform: str):
        super().__init__()
        self.register_buffer("features", torch.as_tensor(features, dtype=torch.long))
        self.register_buffer("splits", torch.as_tensor(splits))
        self.register_buffer("modes", torch.as_tensor(modes, dtype=torch.long))
        self.register_buffer("missing_true", torch.as_tensor(missing_true, dtype=torch.bool))
        self.register_buffer("true_next", torch.as_tensor(true_next, dtype=torch.long))
        self.register_buffer("false_next", torch.as_tensor(false_next, dtype=torch.long))
        self.register_buffer("members", torch.as_tensor(members))
        self.register_buffer("roots", torch.as_tensor(roots, dtype=torch.long))
        self.register_buffer("leaf_weights", torch.as_tensor(leaf_weights))
        self.register_buffer("leaf_targets", torch.as_tensor(leaf_targets, dtype=torch.long))
        self.n_targets = n_targets
        self.depth = depth
        self.aggregate = aggregate
        self.post_transform = post_transform

    def extra_repr(self) -> str:
        return (f"trees={self.roots.numel()}, nodes={self.features.numel()}, leaves={self.leaf_weights.numel()}, "
                f"n_targets={self.n_targets}, depth={self.depth}, aggregate={self.aggregate!r}, "
                f"post_transform={self.post_transform!r}")

    def _leaves(self, x: torch.Tensor) -> torch.Tensor:
        """The leaf (index into leaf_*) each tree reaches for each sample: (N, trees)."""
        n_nodes = self.features.numel()
        node = self.roots.unsqueeze(0).expand(x.shape[0], -1)
        x = x.to(self.splits.dtype)
        for _ in range(self.depth):
            inner = node < n_nodes
            at = node.clamp(max=n_nodes - 1)
            value = torch.gather(x, 1, self.features[at])
            split = self.splits[at]
            member = (value.unsqueeze(-1) == self.members[at]).any(-1)
            tests = torch.stack((value <= split, value < split, value >= split, value > split,
                                 value == split, value != split, member), dim=-1)
            passed = tests.gather(-1, self.modes[at].unsqueeze(-1)).squeeze(-1)
            passed = passed | (self.missing_true[at] & torch.isnan(value))
            step = torch.where(passed, self.true_next[at], self.false_next[at])
            node = torch.where(inner, step, node)
        return node - n_nodes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        leaves = self._leaves(x)
        weights = self.leaf_weights[leaves]
        targets = self.leaf_targets[leaves]
        scores = torch.zeros(x.shape[0], self.n_targets, dtype=weights.dtype, device=x.device)
        if self.aggregate in ("SUM", "AVERAGE"):
            scores = scores.scatter_add(1, targets, weights)
            if self.aggregate == "AVERAGE":
                scores = scores / self.roots.numel()
        else:
            # NOTE: a target no tree reaches stays 0, as in onnxruntime.
            reduce = "amin" if self.aggregate == "MIN" else "amax"
            scores = scores.scatter_reduce(1, targets, weights, reduce=reduce, include_self=False)
        return self._transform(scores).to(x.dtype)

    def _transform(self, scores: torch.Tensor) -> torch.Tensor:
        if self.post_transform == "SOFTMAX":
            return torch.softmax(scores, dim=1)
        if self.post_transform == "LOGISTIC":
            return torch.sigmoid(scores)
        if self.post_transform == "SOFTMAX_ZERO":
            # NOTE: onnxruntime's softmax-zero: scores within 1e-7 of 0 are not exponentiated and
            # left out of the sum (they come out as score * exp(-max), i.e. ~0).
            top = scores.amax(dim=1, keepdim=True)
            nonzero = scores.abs() > 1e-7
            exp = torch.where(nonzero, torch.exp(scores - top), scores * torch.exp(-top))
            total = torch.where(nonzero, exp, torch.zeros_like(exp)).sum(dim=1, keepdim=True)
            return exp / total
        if self.post_transform == "PROBIT":
            # NOTE: the exact inverse normal CDF sqrt(2) * erfinv(2p - 1); onnxruntime uses a
            # closed-form approximation of erfinv (relative error ~1e-3).
            return torch.special.ndtri(scores)
        return scores


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return value.reshape(-1).tolist()
    return list(value)


@converter("TreeEnsemble", since=5, domain=ML)
def tree_ensemble(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """TreeEnsemble(X) -> Y [N, n_targets]; aggregate of the leaf weights each tree reaches, then post_transform"""
    splits = np.asarray(node.attr("nodes_splits")).reshape(-1)
    features = _as_list(node.attr("nodes_featureids"))
    modes = [int(m) for m in _as_list(node.attr("nodes_modes"))]
    true_ids, false_ids = _as_list(node.attr("nodes_truenodeids")), _as_list(node.attr("nodes_falsenodeids"))
    true_leaf, false_leaf = _as_list(node.attr("nodes_trueleafs")), _as_list(node.attr("nodes_falseleafs"))
    leaf_weights = np.asarray(node.attr("leaf_weights")).reshape(-1)
    leaf_targets = _as_list(node.attr("leaf_targetids"))
    roots = _as_list(node.attr("tree_roots"))
    n_nodes, n_leaves = len(modes), len(leaf_weights)
    lengths = {len(features), len(true_ids), len(false_ids), len(true_leaf), len(false_leaf), len(splits)}
    if lengths != {n_nodes} or len(leaf_targets) != n_leaves:
        raise node.unsupported("nodes_*/leaf_* attribute lengths", sorted(lengths | {n_nodes}),
                               "equal lengths within nodes_* and within leaf_*")
    missing = _as_list(node.attr("nodes_missing_value_tracks_true")) or [0] * n_nodes
    n_targets = node.attr_int("n_targets")
    if n_targets is None:
        n_targets = max(leaf_targets, default=-1) + 1
    aggregate_id, post_id = node.attr_int("aggregate_function"), node.attr_int("post_transform")
    if not 0 <= aggregate_id < len(_AGGREGATES):
        raise node.unsupported("aggregate_function", aggregate_id, "0 AVERAGE, 1 SUM, 2 MIN, 3 MAX")
    if not 0 <= post_id < len(_POST_TRANSFORMS):
        raise node.unsupported("post_transform", post_id, "0 NONE, 1 SOFTMAX, 2 LOGISTIC, 3 SOFTMAX_ZERO, 4 PROBIT")
    bad_modes = sorted({m for m in modes if not 0 <= m < len(_MODE_NAMES)})
    if bad_modes:
        raise node.unsupported("nodes_modes", bad_modes, ", ".join(f"{i} {m}" for i, m in enumerate(_MODE_NAMES)))
    if any(t < 0 or t >= n_targets for t in leaf_targets):
        raise node.unsupported("leaf_targetids", leaf_targets, f"ids in [0, n_targets={n_targets})")

    # Sets of BRANCH_MEMBER nodes, in node order, NaN-delimited in membership_values.
    member_sets: list[list[float]] = [[] for _ in range(n_nodes)]
    member_nodes = [i for i, m in enumerate(modes) if m == _MEMBER]
    if member_nodes:
        values = np.asarray(node.attr("membership_values", np.zeros(0))).reshape(-1)
        groups, current = [], []
        for v in values:
            if np.isnan(v):
                groups.append(current)
                current = []
            else:
                current.append(float(v))
        if current:
            groups.append(current)
        if len(groups) < len(member_nodes):
            raise node.unsupported("membership_values sets", len(groups),
                                   f"one NaN-terminated set per BRANCH_MEMBER node ({len(member_nodes)})")
        for i, group in zip(member_nodes, groups):
            member_sets[i] = group
    width = max((len(s) for s in member_sets), default=0) or 1
    # NOTE: thresholds are compared in the input's float type (float for float/float16 inputs),
    # like onnxruntime, which converts them to the input type.
    x_elem = ctx.elem_type(node.input(0))
    np_dtype = np.float64 if x_elem == TensorProto.DOUBLE else np.float32
    members = np.full((max(n_nodes, 1), width), np.nan, dtype=np_dtype)
    for i, group in enumerate(member_sets):
        members[i, :len(group)] = group

    # Flatten nodes and leaves into one id space: leaf i is n_nodes + i.
    def target(ids, leafs):
        return [n_nodes + int(i) if leaf else int(i) for i, leaf in zip(ids, leafs)]

    true_next, false_next = target(true_ids, true_leaf), target(false_ids, false_leaf)
    for ref in true_next + false_next + [int(r) for r in roots]:
        if not 0 <= ref < n_nodes + n_leaves:
            raise node.unsupported("node/leaf reference", ref, f"ids within the {n_nodes} nodes and {n_leaves} leaves")
    depth = _max_depth(roots, true_next, false_next, n_nodes, node)
    if n_nodes == 0:  # keep the buffers indexable
        features, splits, modes, missing, true_next, false_next = [0], np.zeros(1), [0], [0], [0], [0]
    module = TreeEnsembleModule(
        features=features, splits=np.asarray(splits, dtype=np_dtype), modes=modes,
        missing_true=[bool(m) for m in missing], true_next=true_next, false_next=false_next,
        members=members, roots=roots, leaf_weights=np.asarray(leaf_weights, dtype=np_dtype),
        leaf_targets=leaf_targets, n_targets=n_targets, depth=depth,
        aggregate=_AGGREGATES[aggregate_id], post_transform=_POST_TRANSFORMS[post_id],
    )
    return Lowered(module, inputs=node.inputs[:1])


def _max_depth(roots, true_next, false_next, n_nodes: int, node: OnnxNode) -> int:
    """The most interior nodes on any root-to-leaf path (rejecting cycles)."""
    memo: dict[int, int] = {}

    def depth(start: int) -> int:
        # iterative post-order walk; ``visiting`` catches cycles
        stack, visiting = [(start, False)], set()
        while stack:
            at, done = stack.pop()
            if at >= n_nodes or at in memo:
                continue
            if done:
                visiting.discard(at)
                memo[at] = 1 + max(memo.get(true_next[at], 0), memo.get(false_next[at], 0))
                continue
            if at in visiting:
                raise node.unsupported("tree structure", f"cycle through node {at}", "trees (acyclic)")
            visiting.add(at)
            stack.append((at, True))
            stack.extend((child, False) for child in (true_next[at], false_next[at]))
        return memo.get(start, 0)

    return max((depth(int(r)) for r in roots), default=0)

