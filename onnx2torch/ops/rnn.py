"""Converters: recurrent layers (RNN, GRU, LSTM).

Two lowerings.  The *native* one wraps ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` (cuDNN on GPU) and is
used when the weights are constants and the node computes exactly what those layers compute:
default activations (``Relu`` too for RNN), no clip, no peepholes, no ``input_forget`` and, for
GRU, ``linear_before_reset=1``.  Every other node gets the *general* lowering, an explicit time
loop vectorised over the batch that honours every attribute.  Both take ``sequence_lens``: steps
past a sequence's end are 0 in ``Y`` and ``Y_h``/``Y_c`` hold the state of its last valid step.
"""
from __future__ import annotations

import logging

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.errors import ConversionError
from onnx2torch.registry import Lowered, converter

__all__ = [
    "rnn",
    "gru",
    "lstm",
    "NativeRecurrent",
    "RecurrentLoop",
    "RNNLoop",
    "GRULoop",
    "LSTMLoop",
    "Affine",
    "ScaledTanh",
    "AffineHardSigmoid",
]

logger = logging.getLogger(__name__)

_DIRECTIONS = {"forward": ("forward",), "reverse": ("reverse",), "bidirectional": ("forward", "reverse")}


# --- activations ----------------------------------------------------------------------------


class Affine(nn.Module):
    """Affine(x) = alpha * x + beta (an ONNX recurrent-layer activation)."""

    def __init__(self, alpha: float, beta: float):
        super().__init__()
        self.alpha = alpha
        self.beta = beta

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.alpha + self.beta


class ScaledTanh(nn.Module):
    """ScaledTanh(x) = alpha * tanh(beta * x) (an ONNX recurrent-layer activation)."""

    def __init__(self, alpha: float, beta: float):
        super().__init__()
        self.alpha = alpha
        self.beta = beta

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x * self.beta) * self.alpha


class AffineHardSigmoid(nn.Module):
    """HardSigmoid(x) = min(max(alpha * x + beta, 0), 1) with ONNX's alpha/beta (``nn.Hardsigmoid``
    fixes alpha=1/6, beta=1/2)."""

    def __init__(self, alpha: float, beta: float):
        super().__init__()
        self.alpha = alpha
        self.beta = beta

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x * self.alpha + self.beta, 0.0, 1.0)


# ONNX activation name -> (takes alpha, takes beta, default alpha, default beta).  A default of
# None means the value must be given explicitly (see _resolve_activations).
_ACTIVATIONS: dict[str, tuple[bool, bool, float | None, float | None]] = {
    "Relu": (False, False, None, None),
    "Tanh": (False, False, None, None),
    "Sigmoid": (False, False, None, None),
    "Softsign": (False, False, None, None),
    "Softplus": (False, False, None, None),
    "LeakyRelu": (True, False, 0.01, None),
    "Elu": (True, False, 1.0, None),
    "HardSigmoid": (True, True, 0.2, 0.5),
    "ThresholdedRelu": (True, False, None, None),
    "Affine": (True, True, None, None),
    "ScaledTanh": (True, True, None, None),
}
_CANONICAL = {name.lower(): name for name in _ACTIVATIONS}
_DEFAULT_ACTIVATIONS = {"RNN": ("Tanh",), "GRU": ("Sigmoid", "Tanh"), "LSTM": ("Sigmoid", "Tanh", "Tanh")}


def _activation_module(name: str, alpha: float | None, beta: float | None) -> nn.Module:
    if name == "Relu":
        return nn.ReLU()
    if name == "Tanh":
        return nn.Tanh()
    if name == "Sigmoid":
        return nn.Sigmoid()
    if name == "Softsign":
        return nn.Softsign()
    if name == "Softplus":
        # NOTE: nn.Softplus returns x for x > 20, where log(1 + e^x) differs from x by < e^-20.
        return nn.Softplus()
    if name == "LeakyRelu":
        return nn.LeakyReLU(alpha)
    if name == "Elu":
        return nn.ELU(alpha)
    if name == "ThresholdedRelu":
        # NOTE: x if x > alpha else 0, as the ThresholdedRelu operator and onnxruntime define it.
        return nn.Threshold(alpha, 0.0)
    if name == "HardSigmoid":
        return AffineHardSigmoid(alpha, beta)
    if name == "Affine":
        return Affine(alpha, beta)
    return ScaledTanh(alpha, beta)


def _resolve_activations(
    node: OnnxNode, kind: str, num_directions: int
) -> list[tuple[str, float | None, float | None]]:
    """``(name, alpha, beta)`` for every activation of every direction, in attribute order."""
    per_direction = len(_DEFAULT_ACTIVATIONS[kind])
    names = list(node.attr("activations", None) or [])
    if not names:
        names = list(_DEFAULT_ACTIVATIONS[kind]) * num_directions
    if kind == "RNN" and num_directions == 1 and len(names) == 2:
        # NOTE: the RNN schema's default is ["Tanh", "Tanh"] whatever the direction; like
        # onnxruntime, a one-direction RNN uses the first entry.
        names = names[:1]
    if len(names) != per_direction * num_directions:
        raise node.unsupported(
            "activations", names, f"{per_direction} activation(s) per direction ({num_directions} direction(s))"
        )
    alphas = list(node.attr("activation_alpha") or [])
    betas = list(node.attr("activation_beta") or [])
    resolved = []
    for index, raw in enumerate(names):
        name = _CANONICAL.get(str(raw).lower())
        if name is None:
            raise node.unsupported("activation", raw, ", ".join(_ACTIVATIONS))
        takes_alpha, takes_beta, default_alpha, default_beta = _ACTIVATIONS[name]
        # NOTE: the spec consumes alpha/beta "in the order of activation functions".  For GRU and
        # LSTM (several activations per direction) only the activations that take a value consume
        # one; for RNN (one activation per direction) entry k belongs to activation k.  Both are
        # how onnxruntime reads them.  A missing value takes the default of the ONNX operator.
        alpha = beta = None
        if kind == "RNN":
            alpha = alphas[index] if takes_alpha and index < len(alphas) else (default_alpha if takes_alpha else None)
            beta = betas[index] if takes_beta and index < len(betas) else (default_beta if takes_beta else None)
        else:
            if takes_alpha:
                alpha = alphas.pop(0) if alphas else default_alpha
            if takes_beta:
                beta = betas.pop(0) if betas else default_beta
        if (takes_alpha and alpha is None) or (takes_beta and beta is None):
            # NOTE: ThresholdedRelu (operator default alpha=1.0), Affine and ScaledTanh have no
            # default both the spec and onnxruntime (which uses 0.0) agree on.
            raise node.unsupported(
                f"activation {name} without explicit activation_alpha/activation_beta", None,
                "explicit values (the spec's and onnxruntime's defaults differ)",
            )
        resolved.append((name, alpha, beta))
    return resolved


# --- helpers --------------------------------------------------------------------------------


def _valid_steps(sequence_lens: torch.Tensor, steps: int, device: torch.device) -> torch.Tensor:
    """``[steps, batch, 1]`` bool: step t of sequence b is within its length."""
    positions = torch.arange(steps, device=device)
    return (positions[:, None] < sequence_lens.to(device=device, dtype=torch.int64)[None, :]).unsqueeze(-1)


def _reverse_within_lengths(x: torch.Tensor, sequence_lens: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of ``x`` ``[T, batch, F]`` within its own length; padding stays."""
    positions = torch.arange(x.shape[0], device=x.device)[:, None]
    lengths = sequence_lens.to(device=x.device, dtype=torch.int64)[None, :]
    index = torch.where(positions < lengths, lengths - 1 - positions, positions)
    return x.gather(0, index.unsqueeze(-1).expand_as(x))


def _to_onnx_outputs(
    y: torch.Tensor | None, states: list[torch.Tensor], layout: int, num_outputs: int
) -> torch.Tensor | tuple[torch.Tensor | None, ...]:
    """``y`` ``[T, nd, B, H]`` and states ``[nd, B, H]`` in the node's layout, as many as asked."""
    if layout == 1:
        y = None if y is None else y.permute(2, 0, 1, 3)
        states = [s.transpose(0, 1) for s in states]
    outputs = (y, *states)[:num_outputs]
    return outputs[0] if num_outputs == 1 else outputs


# --- native lowering ------------------------------------------------------------------------


class NativeRecurrent(nn.Module):
    """An ONNX RNN/GRU/LSTM node run by a native ``nn.RNN``/``nn.GRU``/``nn.LSTM`` (``self.rnn``):
    adapts the ONNX layout, the ``reverse`` direction (a one-direction layer fed the reversed
    sequences) and ``sequence_lens`` (packed sequences)."""

    def __init__(self, rnn: nn.RNNBase, direction: str, layout: int, num_outputs: int):
        super().__init__()
        self.rnn = rnn
        self.direction = direction
        self.layout = layout
        self.num_outputs = num_outputs

    def extra_repr(self) -> str:
        return f"direction={self.direction!r}, layout={self.layout}, num_outputs={self.num_outputs}"

    def forward(
        self,
        x: torch.Tensor,
        sequence_lens: torch.Tensor | None = None,
        initial_h: torch.Tensor | None = None,
        initial_c: torch.Tensor | None = None,
    ):
        if self.layout == 1:  # [batch, seq, ...] and states [batch, num_directions, hidden]
            x = x.transpose(0, 1)
            initial_h = None if initial_h is None else initial_h.transpose(0, 1)
            initial_c = None if initial_c is None else initial_c.transpose(0, 1)
        steps, batch = x.shape[0], x.shape[1]
        num_directions = 2 if self.rnn.bidirectional else 1
        hidden = self.rnn.hidden_size
        hx = None
        if isinstance(self.rnn, nn.LSTM):
            if initial_h is not None or initial_c is not None:
                zeros = x.new_zeros((num_directions, batch, hidden))
                hx = (
                    zeros if initial_h is None else initial_h.contiguous(),
                    zeros if initial_c is None else initial_c.contiguous(),
                )
        elif initial_h is not None:
            hx = initial_h.contiguous()
        reverse = self.direction == "reverse"

        if sequence_lens is None:
            if reverse:
                x = x.flip(0)
            y, state = self.rnn(x, hx)
            if reverse:
                y = y.flip(0)
        else:
            if reverse:
                x = _reverse_within_lengths(x, sequence_lens)
            # NOTE: packing needs lengths >= 1 on the CPU; a length-0 sequence runs one step here
            # and is zeroed below, as onnxruntime returns zeros for it (Y, Y_h and Y_c).
            lengths = sequence_lens.to(device="cpu", dtype=torch.int64).clamp(min=1)
            packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
            y, state = self.rnn(packed, hx)
            y, _ = pad_packed_sequence(y, total_length=steps)
            if reverse:
                y = _reverse_within_lengths(y, sequence_lens)
            y = torch.where(_valid_steps(sequence_lens, steps, y.device), y, 0.0)
            nonempty = (sequence_lens > 0).to(y.device)[None, :, None]
            state = tuple(torch.where(nonempty, s, 0.0) for s in state) if isinstance(state, tuple) else (
                torch.where(nonempty, state, 0.0)
            )
        states = list(state) if isinstance(state, tuple) else [state]
        y = y.reshape(steps, batch, num_directions, hidden).transpose(1, 2)
        return _to_onnx_outputs(y, states, self.layout, self.num_outputs)


def _torch_gate_order(t: torch.Tensor, order: list[int], gates: int) -> torch.Tensor:
    """Re-order the gate blocks along dim 0 of ``t`` (``gates`` equal blocks)."""
    blocks = t.chunk(gates, dim=0)
    return torch.cat([blocks[i] for i in order], dim=0)


# ONNX gate order -> torch gate order: LSTM iofc -> ifco(=ifgo), GRU zrh -> rzh(=rzn).
_TORCH_ORDER = {"RNN": [0], "GRU": [1, 0, 2], "LSTM": [0, 2, 3, 1]}


def _native_layer(kind: str, nonlinearity: str, w: torch.Tensor, r: torch.Tensor, b: torch.Tensor | None,
                  bidirectional: bool) -> nn.RNNBase:
    """An ``nn.RNN``/``nn.GRU``/``nn.LSTM`` with copies of the ONNX weights in torch gate order."""
    gates = w.shape[1] // r.shape[-1]
    hidden, input_size = r.shape[-1], w.shape[-1]
    common = dict(bias=b is not None, bidirectional=bidirectional, dtype=w.dtype)
    if kind == "LSTM":
        layer = nn.LSTM(input_size, hidden, **common)
    elif kind == "GRU":
        layer = nn.GRU(input_size, hidden, **common)
    else:
        layer = nn.RNN(input_size, hidden, nonlinearity=nonlinearity, **common)
    order = _TORCH_ORDER[kind]
    with torch.no_grad():
        for d in range(w.shape[0]):
            suffix = "_reverse" if d == 1 else ""
            getattr(layer, f"weight_ih_l0{suffix}").copy_(_torch_gate_order(w[d], order, gates))
            getattr(layer, f"weight_hh_l0{suffix}").copy_(_torch_gate_order(r[d], order, gates))
            if b is not None:
                wb, rb = b[d].chunk(2)
                getattr(layer, f"bias_ih_l0{suffix}").copy_(_torch_gate_order(wb, order, gates))
                getattr(layer, f"bias_hh_l0{suffix}").copy_(_torch_gate_order(rb, order, gates))
    return layer


# --- general lowering -----------------------------------------------------------------------


class RecurrentLoop(nn.Module):
    """An ONNX recurrent node as an explicit time loop (vectorised over the batch).

    Constant ``W``/``R``/``B``/``P`` are parameters; the others come as ``forward`` arguments.
    Subclasses define :meth:`cell` (one step) and which states they carry.
    """

    num_states = 1

    def __init__(
        self,
        direction: str,
        activations: list[list[nn.Module]],
        clip: float | None,
        layout: int,
        num_outputs: int,
        need_y: bool,
        weights: dict[str, torch.Tensor | None],
    ):
        super().__init__()
        self.direction = direction
        self.activations = nn.ModuleList(nn.ModuleList(acts) for acts in activations)
        self.clip = clip
        self.layout = layout
        self.num_outputs = num_outputs
        self.need_y = need_y
        for name in ("W", "R", "B", "P"):
            value = weights.get(name)
            self.register_parameter(name, None if value is None else nn.Parameter(value.detach().clone()))

    def extra_repr(self) -> str:
        clip = "" if self.clip is None else f", clip={self.clip}"
        return f"direction={self.direction!r}{clip}, layout={self.layout}, num_outputs={self.num_outputs}"

    def clipped(self, x: torch.Tensor) -> torch.Tensor:
        """The spec's clip, applied to the input of every activation."""
        return x if self.clip is None else torch.clamp(x, -self.clip, self.clip)

    def cell(self, xw: torch.Tensor, states: tuple[torch.Tensor, ...], r_t: torch.Tensor,
             rb: torch.Tensor | None, p: torch.Tensor | None, acts: nn.ModuleList) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor | None = None,
        r: torch.Tensor | None = None,
        b: torch.Tensor | None = None,
        sequence_lens: torch.Tensor | None = None,
        initial_h: torch.Tensor | None = None,
        initial_c: torch.Tensor | None = None,
        p: torch.Tensor | None = None,
    ):
        w = self.W if w is None else w
        r = self.R if r is None else r
        b = self.B if b is None else b
        p = self.P if p is None else p
        initial = (initial_h, initial_c)[: self.num_states]
        if self.layout == 1:  # [batch, seq, ...] and states [batch, num_directions, hidden]
            x = x.transpose(0, 1)
            initial = tuple(None if s is None else s.transpose(0, 1) for s in initial)
        steps, batch = x.shape[0], x.shape[1]
        hidden = r.shape[-1]
        valid = None if sequence_lens is None else _valid_steps(sequence_lens, steps, x.device)
        ys, finals = [], []
        for d, direction in enumerate(_DIRECTIONS[self.direction]):
            states = tuple(
                x.new_zeros((batch, hidden)) if s is None else s[d] for s in initial
            )
            wb = rb = None
            if b is not None:
                wb, rb = b[d].chunk(2)
            # Xt*(W^T) + Wb for every step at once; the loop adds the recurrent part.
            xw = torch.matmul(x, w[d].t())
            if wb is not None:
                xw = xw + wb
            r_t = r[d].t()
            p_d = None if p is None else p[d]
            outputs: list[torch.Tensor | None] = [None] * steps
            order = range(steps - 1, -1, -1) if direction == "reverse" else range(steps)
            for t in order:
                new = self.cell(xw[t], states, r_t, rb, p_d, self.activations[d])
                if valid is None:
                    states = new
                    outputs[t] = new[0]
                else:
                    # Past a sequence's end its state is frozen and its output is 0; a reverse
                    # pass thus starts at each sequence's own last step.
                    states = tuple(torch.where(valid[t], n, s) for n, s in zip(new, states))
                    outputs[t] = torch.where(valid[t], new[0], 0.0)
            if self.need_y:
                ys.append(torch.stack(outputs) if steps else x.new_zeros((0, batch, hidden)))
            finals.append(states)
        y = torch.stack(ys, dim=1) if self.need_y else None
        final_states = [torch.stack([f[i] for f in finals]) for i in range(self.num_states)]
        if sequence_lens is not None:
            # NOTE: onnxruntime returns zero final states (not the initial ones) for a
            # sequence of length 0; the spec does not say.
            nonempty = (sequence_lens > 0).to(x.device)[None, :, None]
            final_states = [torch.where(nonempty, s, 0.0) for s in final_states]
        return _to_onnx_outputs(y, final_states, self.layout, self.num_outputs)


class RNNLoop(RecurrentLoop):
    """ONNX RNN: Ht = f(Xt*(Wi^T) + Ht-1*(Ri^T) + Wbi + Rbi)."""

    def cell(self, xw, states, r_t, rb, p, acts):
        (h,) = states
        pre = xw + torch.matmul(h, r_t)
        if rb is not None:
            pre = pre + rb
        return (acts[0](self.clipped(pre)),)


class GRULoop(RecurrentLoop):
    """ONNX GRU (f, g activations; ``linear_before_reset`` selects where the reset gate applies)."""

    def __init__(self, *args, linear_before_reset: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.linear_before_reset = linear_before_reset

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, linear_before_reset={self.linear_before_reset}"

    def cell(self, xw, states, r_t, rb, p, acts):
        (h,) = states
        hidden = h.shape[-1]
        xz, xr, xh = xw.split(hidden, dim=-1)
        rz_t, rr_t, rh_t = r_t.split(hidden, dim=-1)
        rbz = rbr = rbh = None
        if rb is not None:
            rbz, rbr, rbh = rb.split(hidden)
        hz = torch.matmul(h, rz_t)
        hr = torch.matmul(h, rr_t)
        if rb is not None:
            hz, hr = hz + rbz, hr + rbr
        z = acts[0](self.clipped(xz + hz))
        reset = acts[0](self.clipped(xr + hr))
        if self.linear_before_reset:
            # ht = g(Xt*(Wh^T) + (rt (.) (Ht-1*(Rh^T) + Rbh)) + Wbh)
            hh = torch.matmul(h, rh_t)
            if rbh is not None:
                hh = hh + rbh
            cand = xh + reset * hh
        else:
            # ht = g(Xt*(Wh^T) + (rt (.) Ht-1)*(Rh^T) + Rbh + Wbh)
            cand = xh + torch.matmul(reset * h, rh_t)
            if rbh is not None:
                cand = cand + rbh
        cand = acts[1](self.clipped(cand))
        return ((1 - z) * cand + z * h,)


class LSTMLoop(RecurrentLoop):
    """ONNX LSTM (f, g, h activations; peepholes ``P``; ``input_forget`` couples i and f)."""

    num_states = 2

    def __init__(self, *args, input_forget: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.input_forget = input_forget

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, input_forget={self.input_forget}"

    def cell(self, xw, states, r_t, rb, p, acts):
        h, c = states
        hidden = h.shape[-1]
        gates = xw + torch.matmul(h, r_t)
        if rb is not None:
            gates = gates + rb
        gi, go, gf, gc = gates.split(hidden, dim=-1)
        pi = po = pf = None
        if p is not None:
            pi, po, pf = p.split(hidden)
            gi = gi + pi * c
            gf = gf + pf * c
        i = acts[0](self.clipped(gi))
        # NOTE: with input_forget the forget gate is 1 - it (onnxruntime's coupling).
        f = 1 - i if self.input_forget else acts[0](self.clipped(gf))
        c_new = f * c + i * acts[1](self.clipped(gc))
        if po is not None:
            go = go + po * c_new
        o = acts[0](self.clipped(go))
        # NOTE: clip bounds the gate inputs only; h(Ct) takes the unclipped cell (onnxruntime).
        return o * acts[2](c_new), c_new


_LOOPS = {"RNN": RNNLoop, "GRU": GRULoop, "LSTM": LSTMLoop}
_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
# Outputs per op: Y, Y_h (, Y_c).
_MAX_OUTPUTS = {"RNN": 2, "GRU": 2, "LSTM": 3}


# --- converters -----------------------------------------------------------------------------


def _check_shape(node: OnnxNode, what: str, value: torch.Tensor | None, expected: list[int | None]) -> None:
    if value is None:
        return
    shape = list(value.shape)
    if len(shape) != len(expected) or any(e is not None and s != e for s, e in zip(shape, expected)):
        raise ConversionError(f"{node.describe()}: {what} has shape {shape}, expected {expected} (None: any)")


def _convert_recurrent(node: OnnxNode, ctx: ConversionContext, kind: str) -> Lowered:
    gates = _GATES[kind]
    direction = node.attr_str("direction") or "forward"
    if direction not in _DIRECTIONS:
        raise node.unsupported("direction", direction, "forward, reverse, bidirectional")
    num_directions = len(_DIRECTIONS[direction])
    layout = node.attr_int("layout", 0)
    if layout not in (0, 1):
        raise node.unsupported("layout", layout, "0, 1")
    clip = node.attr_float("clip")
    if clip is not None and not clip > 0:
        raise node.unsupported("clip", clip, "a positive threshold")
    linear_before_reset = node.attr_int("linear_before_reset", 0) if kind == "GRU" else 0
    input_forget = node.attr_int("input_forget", 0) if kind == "LSTM" else 0
    activations = _resolve_activations(node, kind, num_directions)
    if len(node.outputs) > _MAX_OUTPUTS[kind]:
        raise node.unsupported("number of outputs", len(node.outputs), f"at most {_MAX_OUTPUTS[kind]}")
    rank = ctx.rank(node.input(0))
    if rank is not None and rank != 3:
        raise node.unsupported("rank of X", rank, "3")

    w = ctx.constant(node.input(1))
    r = ctx.constant(node.input(2))
    b = ctx.constant(node.input(3))
    p = ctx.constant(node.input(7)) if kind == "LSTM" else None
    hidden = node.attr_int("hidden_size")
    if hidden is None and r is not None:
        hidden = int(r.shape[-1])
    _check_shape(node, "W", w, [num_directions, None if hidden is None else gates * hidden, None])
    _check_shape(node, "R", r, [num_directions, None if hidden is None else gates * hidden, hidden])
    _check_shape(node, "B", b, [num_directions, None if hidden is None else 2 * gates * hidden])
    _check_shape(node, "P", p, [num_directions, None if hidden is None else 3 * hidden])

    names = [a[0] for a in activations]
    has_peepholes = kind == "LSTM" and node.has_input(7) and not (p is not None and not p.any())
    native_activations = {
        "RNN": (["Tanh"] * num_directions, ["Relu"] * num_directions),
        "GRU": (list(_DEFAULT_ACTIVATIONS["GRU"]) * num_directions,),
        "LSTM": (list(_DEFAULT_ACTIVATIONS["LSTM"]) * num_directions,),
    }[kind]
    native = (
        w is not None and r is not None and (b is not None or not node.has_input(3))
        and names in native_activations and clip is None and not has_peepholes and not input_forget
        and (kind != "GRU" or linear_before_reset)
    )
    sequence_lens = node.input(4)
    if sequence_lens:
        lens = ctx.constant(sequence_lens)
        x_shape = ctx.static_shape(node.input(0))
        steps = None if x_shape is None else x_shape[1 if layout == 1 else 0]
        if lens is not None and steps is not None and bool((lens == steps).all()):
            sequence_lens = ""  # every sequence is full length: nothing to mask
    if native:
        logger.debug("%s: native nn.%s", node.describe(), kind)
        layer = _native_layer(kind, "relu" if names[0] == "Relu" else "tanh", w, r, b, num_directions == 2)
        inputs = [node.input(0), sequence_lens, node.input(5)]
        if kind == "LSTM":
            inputs.append(node.input(6))
        return Lowered(NativeRecurrent(layer, direction, layout, len(node.outputs)), inputs=inputs)

    logger.debug("%s: general time loop", node.describe())
    modules = [_activation_module(*a) for a in activations]
    per_direction = len(_DEFAULT_ACTIVATIONS[kind])
    grouped = [modules[d * per_direction:(d + 1) * per_direction] for d in range(num_directions)]
    extra = {}
    if kind == "GRU":
        extra["linear_before_reset"] = linear_before_reset
    if kind == "LSTM":
        extra["input_forget"] = input_forget
    loop = _LOOPS[kind](
        direction, grouped, clip, layout, len(node.outputs), bool(node.outputs and node.outputs[0]),
        {"W": w, "R": r, "B": b, "P": p}, **extra,
    )
    # Constant weights live in the loop module; the others are passed at run time.
    inputs = [
        node.input(0),
        "" if w is not None else node.input(1),
        "" if r is not None else node.input(2),
        "" if b is not None else node.input(3),
        sequence_lens,
        node.input(5),
    ]
    if kind == "LSTM":
        inputs += [node.input(6), "" if p is not None else node.input(7)]
    return Lowered(loop, inputs=inputs)


@converter("RNN", since=1)
@converter("RNN", since=14)
def rnn(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """RNN(X, W, R, B?, sequence_lens?, initial_h?) -> Y?, Y_h?  (Ht = f(Xt*Wi^T + Ht-1*Ri^T + Wbi + Rbi))"""
    return _convert_recurrent(node, ctx, "RNN")


@converter("GRU", since=1)
@converter("GRU", since=14)
def gru(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """GRU(X, W, R, B?, sequence_lens?, initial_h?) -> Y?, Y_h?  (gates z, r, h)"""
    return _convert_recurrent(node, ctx, "GRU")


@converter("LSTM", since=1)
@converter("LSTM", since=14)
def lstm(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """LSTM(X, W, R, B?, sequence_lens?, initial_h?, initial_c?, P?) -> Y?, Y_h?, Y_c?  (gates i, o, f, c)"""
    return _convert_recurrent(node, ctx, "LSTM")
