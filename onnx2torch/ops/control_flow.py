"""Converters for control flow: If, Loop, Scan.

Each body graph becomes its own ``torch.fx.GraphModule`` (a submodule), called from a small
module that does the branching or looping in Python.  Outer-scope values a body reads are passed
in as extra arguments; outer constants are baked into the body.
"""
from __future__ import annotations

import logging

import torch
from torch import fx, nn

from onnx2torch.assemble import ConversionContext, build_subgraph
from onnx2torch.attributes import OnnxNode
from onnx2torch.registry import Lowered, converter

__all__ = ["IfModule", "LoopModule", "ScanModule", "BatchedScanModule"]

logger = logging.getLogger(__name__)


def _unwrap(outputs: tuple, count: int):
    return outputs[0] if count == 1 else tuple(outputs)


class IfModule(nn.Module):
    """Runs ``then_branch`` or ``else_branch`` depending on a boolean tensor."""

    def __init__(self, then_branch: fx.GraphModule, else_branch: fx.GraphModule,
                 then_args: list[int], else_args: list[int], num_outputs: int):
        super().__init__()
        self.then_branch = then_branch
        self.else_branch = else_branch
        self.then_args = then_args
        self.else_args = else_args
        self.num_outputs = num_outputs

    def forward(self, cond: torch.Tensor, *outer):
        if bool(cond.reshape(-1)[0]) if isinstance(cond, torch.Tensor) else bool(cond):
            result = self.then_branch(*[outer[i] for i in self.then_args])
        else:
            result = self.else_branch(*[outer[i] for i in self.else_args])
        return _unwrap(result, self.num_outputs)


def _merge_outer(*lists: list[str]) -> tuple[list[str], list[list[int]]]:
    merged: list[str] = []
    for names in lists:
        merged.extend(n for n in names if n not in merged)
    return merged, [[merged.index(n) for n in names] for names in lists]


@converter("If", since=1)
def if_(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """If(cond) -> outputs...; then_branch / else_branch graphs read outer-scope values."""
    then_gm, then_outer = build_subgraph(node.attr("then_branch"), ctx)
    else_gm, else_outer = build_subgraph(node.attr("else_branch"), ctx)
    cond = ctx.constant(node.input(0))
    if cond is not None:
        # NOTE: a condition known at conversion time keeps only the branch that runs.
        taken = bool(torch.as_tensor(cond).reshape(-1)[0])
        gm, outer = (then_gm, then_outer) if taken else (else_gm, else_outer)
        return Lowered(IfModule(gm, gm, list(range(len(outer))), list(range(len(outer))), len(node.outputs)),
                       inputs=[node.input(0), *outer])
    merged, (then_idx, else_idx) = _merge_outer(then_outer, else_outer)
    return Lowered(IfModule(then_gm, else_gm, then_idx, else_idx, len(node.outputs)), inputs=[node.input(0), *merged])


def _stack_scan(values: list, axis: int = 0) -> torch.Tensor:
    return torch.stack(values, dim=axis) if values else torch.empty(0)


class LoopModule(nn.Module):
    """ONNX Loop: runs ``body(i, cond, *carried, *outer)`` while ``i < M`` and ``cond``."""

    def __init__(self, body: fx.GraphModule, num_carried: int, num_scan: int):
        super().__init__()
        self.body = body
        self.num_carried = num_carried
        self.num_scan = num_scan

    def forward(self, max_trip, cond, *args):
        carried = list(args[: self.num_carried])
        outer = args[self.num_carried:]
        limit = None if max_trip is None else int(max_trip.reshape(-1)[0])
        device = next((t.device for t in (max_trip, cond, *args) if isinstance(t, torch.Tensor)), None)
        keep_going = torch.tensor(True, device=device) if cond is None else cond.reshape(()).to(torch.bool)
        scans: list[list[torch.Tensor]] = [[] for _ in range(self.num_scan)]
        i = 0
        while (limit is None or i < limit) and bool(keep_going):
            out = self.body(torch.tensor(i, dtype=torch.int64, device=device), keep_going, *carried, *outer)
            keep_going = out[0].reshape(()) if isinstance(out[0], torch.Tensor) else torch.tensor(bool(out[0]), device=device)
            carried = list(out[1: 1 + self.num_carried])
            for k, value in enumerate(out[1 + self.num_carried:]):
                scans[k].append(value)
            i += 1
        result = carried + [_stack_scan(s) for s in scans]
        return _unwrap(tuple(result), len(result))


@converter("Loop", since=1)
def loop(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Loop(M?, cond?, v_initial...) -> (v_final..., scan_outputs...); body(iter, cond, v...) ->
    (cond, v..., scan...)"""
    body = node.attr("body")
    body_gm, outer = build_subgraph(body, ctx)
    num_carried = len(node.inputs) - 2
    num_scan = len(body.output) - 1 - num_carried
    if len(node.outputs) > num_carried + num_scan:
        raise node.unsupported("number of outputs", len(node.outputs), f"{num_carried + num_scan}")
    module = LoopModule(body_gm, num_carried, num_scan)
    if len(node.outputs) < num_carried + num_scan:
        raise node.unsupported("omitted Loop outputs", len(node.outputs), "all outputs listed")
    return Lowered(module, inputs=[node.input(0), node.input(1), *node.inputs[2:], *outer])


class ScanModule(nn.Module):
    """ONNX Scan (opset 9+): iterates ``body(*state, *scan_slices, *outer)`` over scan axes."""

    def __init__(self, body: fx.GraphModule, num_state: int, num_scan_in: int, in_axes: list[int],
                 in_reverse: list[int], out_axes: list[int], out_reverse: list[int]):
        super().__init__()
        self.body = body
        self.num_state = num_state
        self.num_scan_in = num_scan_in
        self.in_axes = in_axes
        self.in_reverse = in_reverse
        self.out_axes = out_axes
        self.out_reverse = out_reverse

    def forward(self, *args):
        state = list(args[: self.num_state])
        scan_in = args[self.num_state: self.num_state + self.num_scan_in]
        outer = args[self.num_state + self.num_scan_in:]
        length = scan_in[0].shape[self.in_axes[0] % scan_in[0].dim()] if scan_in else 0
        outs: list[list[torch.Tensor]] = [[] for _ in self.out_axes]
        for t in range(length):
            slices = []
            for x, axis, rev in zip(scan_in, self.in_axes, self.in_reverse):
                axis = axis % x.dim()
                slices.append(x.select(axis, length - 1 - t if rev else t))
            out = self.body(*state, *slices, *outer)
            state = list(out[: self.num_state])
            for k, value in enumerate(out[self.num_state:]):
                outs[k].append(value)
        results = list(state)
        for values, axis, rev in zip(outs, self.out_axes, self.out_reverse):
            if rev:
                values = values[::-1]
            rank = values[0].dim() + 1 if values else 1
            results.append(_stack_scan(values, axis % rank))
        return _unwrap(tuple(results), len(results))


@converter("Scan", since=9)
def scan(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Scan(initial_state..., scan_inputs...) -> (final_state..., scan_outputs...)"""
    body = node.attr("body")
    num_scan_in = node.attr_int("num_scan_inputs")
    num_state = len(node.inputs) - num_scan_in
    num_scan_out = len(body.output) - num_state
    body_gm, outer = build_subgraph(body, ctx)
    in_axes = node.attr_ints("scan_input_axes") or [0] * num_scan_in
    in_dirs = node.attr_ints("scan_input_directions") or [0] * num_scan_in
    out_axes = node.attr_ints("scan_output_axes") or [0] * num_scan_out
    out_dirs = node.attr_ints("scan_output_directions") or [0] * num_scan_out
    module = ScanModule(body_gm, num_state, num_scan_in, in_axes, in_dirs, out_axes, out_dirs)
    return Lowered(module, inputs=[*node.inputs, *outer])


class BatchedScanModule(nn.Module):
    """ONNX Scan-8: every input has a leading batch axis and the scan runs along axis 1 of each
    batch item, for that item's ``sequence_lens`` steps (all steps when absent)."""

    def __init__(self, scan: ScanModule):
        super().__init__()
        self.scan = scan

    def forward(self, sequence_lens, *args):
        num_state, num_scan_in = self.scan.num_state, self.scan.num_scan_in
        batch = args[0].shape[0]
        per_item = []
        for b in range(batch):
            items = [a[b] for a in args[: num_state + num_scan_in]]
            if sequence_lens is not None:
                length = int(sequence_lens.reshape(-1)[b])
                items[num_state:] = [x.narrow(0, 0, length) for x in items[num_state:]]
            result = self.scan(*items, *args[num_state + num_scan_in:])
            per_item.append(result if isinstance(result, tuple) else (result,))
        stacked = tuple(torch.stack([item[k] for item in per_item]) for k in range(len(per_item[0])))
        return stacked[0] if len(stacked) == 1 else stacked


@converter("Scan", since=8)
def scan_8(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Scan-8(sequence_lens?, initial_state..., scan_inputs...) -> (final_state..., scan_outputs...)
    with a batch axis in front"""
    body = node.attr("body")
    num_scan_in = node.attr_int("num_scan_inputs")
    num_state = len(node.inputs) - 1 - num_scan_in
    num_scan_out = len(body.output) - num_state
    body_gm, outer = build_subgraph(body, ctx)
    directions = node.attr_ints("directions") or [0] * num_scan_in
    inner = ScanModule(body_gm, num_state, num_scan_in, [0] * num_scan_in, directions,
                       [0] * num_scan_out, [0] * num_scan_out)
    return Lowered(BatchedScanModule(inner), inputs=[node.input(0), *node.inputs[1:], *outer])
