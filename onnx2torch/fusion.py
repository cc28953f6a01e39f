"""Graph rewrites on a converted module: the decompositions exporters write become the fused
torch ops they came from.

Exporters spell GELU, SiLU, HardSwish, LayerNorm and attention as chains of elementwise ops
(``x * 0.5 * (1 + erf(x / sqrt(2)))``, ``MatMul -> Mul -> Softmax -> MatMul`` ...).  Each chain
runs as several kernels and as many full-size temporaries; the fused op runs as one.  The passes
here find those chains in the assembled ``torch.fx`` graph and replace them:

- ``Linear(bias=False)`` whose only user adds a constant ``[out]`` vector -> ``Linear`` with that
  bias (the same ``nn.Parameter``, so tied weights stay tied and trainable);
- the erf and tanh GELU formulas -> ``nn.GELU`` / ``nn.GELU(approximate="tanh")``;
- ``x * sigmoid(x)`` -> ``nn.SiLU``; ``x * hardsigmoid(x)`` and ``x * relu6(x + 3) / 6`` ->
  ``nn.Hardswish``;
- ``ReduceMean / Sub / Pow 2 / ReduceMean / Add eps / Sqrt / Div`` (then ``* gamma + beta``)
  -> ``F.layer_norm`` over the trailing dims, with gamma / beta the graph's own parameters;
- ``MatMul(q, k^T)``, a constant scale, an optional additive mask, ``Softmax(-1)`` and
  ``MatMul(., v)`` -> ``F.scaled_dot_product_attention``.

Every rewrite is exact up to float rounding (the fused kernels round once where the chain
rounded at each step) and only fires when the shapes, dtypes and constants make it so: scalars
must be the formula's constants to float32 precision, intermediate results may have no other
users, and masks may only be fused where SDPA and the chain agree on fully masked rows.

:func:`fold_batch_norm` (``ConvertModel(..., optimize=True)``) folds an inference BatchNorm into
the convolution before it; it changes which tensors are trainable, so it is opt-in.
"""
from __future__ import annotations

import logging
import math
import operator
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import onnx
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name
from torch import fx, nn

from onnx2torch.dtypes import ONNX_TO_TORCH

__all__ = ["fuse", "fuse_graph", "fold_batch_norm", "ShapeInfo"]

logger = logging.getLogger(__name__)

_MUL = (operator.mul, torch.mul)
_DIV = (operator.truediv, torch.div)
_ADD = (operator.add, torch.add)
_SUB = (operator.sub, torch.sub)
_POW = (operator.pow, torch.pow)
_SHAPE_ONLY = {"reshape", "unsqueeze", "squeeze", "permute", "transpose", "flatten", "expand_to", "expand_dynamic",
               "expand", "contiguous"}
_REL_TOL = 1e-6


# --- shapes ----------------------------------------------------------------------------------
class ShapeInfo:
    """Inferred ONNX shapes and element types of fx nodes (by way of the ONNX tensor each node
    computes); unknown is ``None``."""

    def __init__(self, value_nodes: dict[str, str], value_info: dict[str, onnx.TypeProto] | None,
                 root: nn.Module | None = None):
        self.root = root
        self.by_node: dict[str, onnx.TypeProto] = {}
        #: dims found per fx node (a tensor's shape survives every rewrite of the graph)
        self._found: dict[fx.Node, list[int | str | None] | None] = {}
        for onnx_name, node_name in value_nodes.items():
            tp = (value_info or {}).get(onnx_name)
            if tp is not None and tp.HasField("tensor_type"):
                self.by_node[node_name] = tp

    def dims(self, node: Any, depth: int = 0) -> list[int | str | None] | None:
        """Static dims as ints, symbolic ones as their symbol (equal symbols: equal sizes),
        unknown ones as ``None``."""
        if not isinstance(node, fx.Node):
            return None
        if node not in self._found:
            self._found[node] = self._dims(node, depth)
        found = self._found[node]
        return None if found is None else list(found)

    def _dims(self, node: fx.Node, depth: int) -> list[int | str | None] | None:
        value = _attr_value(self.root, node) if self.root is not None else None
        if value is not None:
            return list(value.shape)
        tp = self.by_node.get(node.name)
        declared = None
        if tp is not None and tp.tensor_type.HasField("shape"):
            declared = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                        for d in tp.tensor_type.shape.dim]
        if declared is not None and all(isinstance(d, int) for d in declared) or depth > 16:
            return declared
        derived = self._derived(node, depth + 1)
        if derived is None or (declared is not None and len(derived) != len(declared)):
            return declared
        if declared is None:
            return derived
        # an int beats a symbol beats unknown
        return [d if isinstance(d, int) or e is None or (d is not None and not isinstance(e, int)) else e
                for d, e in zip(declared, derived)]

    def _derived(self, node: fx.Node, depth: int) -> list[int | str | None] | None:
        """Dims of a reshape / permute from its input's (ONNX inference cannot see through a
        reshape whose target holds run-time sizes)."""
        if _is_call(node, (torch.permute,)) and node.args:
            source = self.dims(node.args[0], depth)
            order = node.kwargs.get("dims", node.args[1] if len(node.args) > 1 else None)
            if source is None or not isinstance(order, (tuple, list)) or len(order) != len(source):
                return None
            return [source[i] for i in order]
        if not _is_call(node, (torch.reshape,)) or not node.args or not isinstance(node.kwargs.get("shape"), tuple):
            return None
        source = self.dims(node.args[0], depth)
        target: list[int | str | None] = []
        for item in node.kwargs["shape"]:
            if isinstance(item, fx.Node) and item.op == "call_method" and item.target == "size" and len(item.args) == 2:
                of = self.dims(item.args[0], depth)
                index = item.args[1]
                target.append(of[index] if of is not None and isinstance(index, int) and -len(of) <= index < len(of)
                              else None)
            else:
                target.append(item if isinstance(item, int) else None)
        if target.count(-1) == 1 and source is not None and None not in source and None not in target:
            # -1 is the element count over the other sizes: symbols must cancel
            whole = _product_of(source)
            known = _product_of([d for d in target if d != -1])
            if whole[1] == known[1] and known[0] and whole[0] % known[0] == 0:
                target[target.index(-1)] = whole[0] // known[0]
            else:
                target[target.index(-1)] = None
        return [None if d == -1 else d for d in target]

    def rank(self, node: Any) -> int | None:
        dims = self.dims(node)
        return None if dims is None else len(dims)

    def dtype(self, node: Any) -> torch.dtype | None:
        if not isinstance(node, fx.Node):
            return None
        value = _attr_value(self.root, node) if self.root is not None else None
        if value is not None:
            return value.dtype
        tp = self.by_node.get(node.name)
        return None if tp is None else ONNX_TO_TORCH.get(tp.tensor_type.elem_type)


def _product_of(dims: list[int | str]) -> tuple[int, Counter[str]]:
    """A product of sizes as (integer factor, symbols)."""
    factor, symbols = 1, Counter()
    for d in dims:
        if isinstance(d, int):
            factor *= d
        else:
            symbols[d] += 1
    return factor, symbols


# --- graph helpers ---------------------------------------------------------------------------
def _is_call(node: Any, targets: Iterable) -> bool:
    return isinstance(node, fx.Node) and node.op == "call_function" and node.target in tuple(targets)


def _submodule(gm: fx.GraphModule, node: Any) -> nn.Module | None:
    if isinstance(node, fx.Node) and node.op == "call_module":
        return gm.get_submodule(node.target)
    return None


def _is_module(gm: fx.GraphModule, node: Any, cls: type | tuple[type, ...]) -> bool:
    module = _submodule(gm, node)
    return module is not None and type(module) in (cls if isinstance(cls, tuple) else (cls,))


def _sole_user(node: fx.Node) -> fx.Node | None:
    return next(iter(node.users)) if len(node.users) == 1 else None


def _alive(node: fx.Node) -> bool:
    return not getattr(node, "_erased", False)


def _attr_value(gm: fx.GraphModule, node: Any) -> torch.Tensor | None:
    if not isinstance(node, fx.Node) or node.op != "get_attr":
        return None
    value: Any = gm
    for part in node.target.split("."):
        value = getattr(value, part, None)
    return value if isinstance(value, torch.Tensor) else None


def _scalar(gm: fx.GraphModule, arg: Any, shapes: ShapeInfo, like: Any = None) -> float | None:
    """``arg`` as a Python float when it is a constant that broadcasts like a scalar against
    ``like`` (a literal, a 0-d constant, or a one-element constant of no higher rank and the
    same dtype), else ``None``."""
    if isinstance(arg, bool):
        return None
    if isinstance(arg, (int, float)):
        return float(arg)
    value = _attr_value(gm, arg)
    if value is None or value.numel() != 1 or not value.is_floating_point():
        return None
    if value.dim() > 0:
        rank, dtype = shapes.rank(like), shapes.dtype(like)
        if rank is None or value.dim() > rank or dtype != value.dtype:
            return None
    return float(value.reshape(()).item())


def _close(value: float | None, expected: float) -> bool:
    return value is not None and math.isclose(value, expected, rel_tol=_REL_TOL)


def _product(gm: fx.GraphModule, node: fx.Node, shapes: ShapeInfo) -> tuple[list[Any], float, list[fx.Node]]:
    """Flatten a tree of multiplications (and divisions by constants) rooted at ``node``:
    the non-constant factors, the product of the constant ones, and the inner nodes (each used
    only inside the tree).  A node that is not a product is its own single factor."""
    factors: list[Any] = []
    inner: list[fx.Node] = []
    const = 1.0

    def visit(n: Any, is_root: bool) -> None:
        nonlocal const
        if not is_root and (not isinstance(n, fx.Node) or len(n.users) != 1):
            factors.append(n)
            return
        if _is_call(n, _MUL) and len(n.args) == 2 and not n.kwargs:
            inner.append(n)
            for operand in n.args:
                value = _scalar(gm, operand, shapes, like=n)
                if value is not None:
                    const *= value
                else:
                    visit(operand, False)
            return
        if _is_call(n, _DIV) and len(n.args) == 2 and not n.kwargs:
            value = _scalar(gm, n.args[1], shapes, like=n)
            if value is not None and value != 0.0:
                inner.append(n)
                const /= value
                visit(n.args[0], False)
                return
        factors.append(n)

    visit(node, True)
    if inner and inner[0] is node:
        return factors, const, inner
    return [node], 1.0, []


def _only_used_inside(nodes: Iterable[fx.Node], allowed: set[fx.Node]) -> bool:
    return all(user in allowed for n in nodes for user in n.users)


def _add_module(gm: nn.Module, root: fx.Node, tag: str, module: nn.Module) -> str:
    """Register ``module`` under a name from the ONNX scope of ``root`` (``/m/layer.0/act/Mul_1``
    -> ``m_layer_0_act_gelu``), or from the node's own name."""
    scope = str(root.meta.get("onnx_node", "")).rpartition("/")[0]
    base = re.sub(r"\W+", "_", scope).strip("_")
    if base and not base[0].isdigit():
        base = f"{base}_{tag}"
    else:
        base = root.name if tag in root.name.lower() else f"{root.name}_{tag}"
    name, i = base, 1
    while hasattr(gm, name):
        i += 1
        name = f"{base}_{i}"
    gm.add_module(name, module)
    return name


def _rewrite(root: fx.Node, op: str, target: Any, args: tuple, kwargs: dict, tag: str) -> None:
    """Turn ``root`` in place into the fused call (it keeps its name and its place)."""
    root.op = op
    root.target = target
    root.args = args
    root.kwargs = kwargs
    root.meta["fused"] = tag


def _erase_dead(graph: fx.Graph, nodes: Iterable[fx.Node]) -> None:
    pending = list({n: None for n in nodes if _alive(n)})
    progress = True
    while pending and progress:
        progress = False
        for n in list(pending):
            if not n.users:
                graph.erase_node(n)
                pending.remove(n)
                progress = True


class _Fuser:
    """Runs the passes over one fx graph whose submodules and constants live on ``root``."""

    def __init__(self, root: nn.Module, graph: fx.Graph, shapes: ShapeInfo):
        self.root = root
        self.graph = graph
        self.shapes = shapes
        self.counts: Counter[str] = Counter()
        self.touched_attrs: set[str] = set()
        self.attr_uses: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def run(self) -> None:
        self.attr_uses = Counter(n.target for n in self.graph.nodes if n.op == "get_attr")
        self.calls = Counter(n.target for n in self.graph.nodes if n.op == "call_module")
        for matcher in (self._linear_bias_at, self._gelu_at, self._gates_at, self._layer_norm_from,
                        self._attention_from):
            for node in list(self.graph.nodes):
                if not _alive(node):
                    continue
                try:
                    matcher(node)
                except Exception as exc:  # noqa: BLE001 - a pattern that cannot be fused stays as it is
                    # NOTE: every rewrite checks its whole pattern before it changes anything, so
                    # a failed match leaves the graph exactly as the converters built it.
                    logger.warning("fusion: %s skipped at node %s (%s: %s)", matcher.__name__.strip("_"),
                                   node.name, type(exc).__name__, exc)
        if self.counts:
            self.finish()

    # --- Linear + bias ---------------------------------------------------------------------
    def _linear_bias_at(self, node: fx.Node) -> None:
        """Linear(bias=False) -> + constant [out] vector: the vector becomes the Linear's bias."""
        layer = _submodule(self.root, node)
        if type(layer) is not nn.Linear or layer.bias is not None or len(node.args) != 1:
            return
        if self.calls[node.target] != 1:
            return
        add = _sole_user(node)
        if not _is_call(add, _ADD) or len(add.args) != 2 or add.kwargs or node not in add.args:
            return
        other = add.args[1] if add.args[0] is node else add.args[0]
        if other is node:
            return
        bias = _attr_value(self.root, other)
        out = layer.out_features
        # NOTE: only a trainable vector moves into the layer (one-element constants are buffers,
        # hyper-parameters rather than weights, and stay where they are).
        if not isinstance(bias, nn.Parameter) or bias.dim() == 0 or bias.dtype != layer.weight.dtype \
                or bias.numel() != out or bias.shape[-1] != out:
            return
        if bias.dim() > 1:
            rank = self.shapes.rank(node)
            if rank is None or bias.dim() > rank or self.attr_uses[other.target] != 1:
                return
        if bias.dim() == 1:
            layer.bias = bias  # the graph's own parameter: ties and trainability unchanged
        else:
            layer.bias = nn.Parameter(bias.detach().reshape(out).clone(), requires_grad=bias.requires_grad)
        self.touched_attrs.add(other.target)
        add.replace_all_uses_with(node)
        self.graph.erase_node(add)
        _erase_dead(self.graph, [other])
        self.counts["linear_bias"] += 1

    # --- GELU -------------------------------------------------------------------------------
    def _product_root(self, start: fx.Node, want: list[Any], const: float) -> tuple[fx.Node, list[fx.Node]] | None:
        """The highest node of the single-use multiplication chain above ``start`` whose factors
        are exactly ``want`` (in any order) times the constant ``const``."""
        chain = []
        node = start
        while True:
            user = _sole_user(node)
            if user is None or not (_is_call(user, _MUL) or _is_call(user, _DIV)):
                break
            chain.append(user)
            node = user
        for top in reversed(chain):
            factors, value, inner = _product(self.root, top, self.shapes)
            if Counter(id(f) for f in factors) == Counter(id(w) for w in want) and _close(value, const):
                return top, inner
        return None

    def _one_plus(self, node: fx.Node) -> fx.Node | None:
        """The ``1 + node`` (either order) that is ``node``'s only user."""
        add = _sole_user(node)
        if not _is_call(add, _ADD) or len(add.args) != 2 or add.kwargs:
            return None
        other = add.args[1] if add.args[0] is node else add.args[0]
        return add if _scalar(self.root, other, self.shapes, like=add) == 1.0 else None

    def _gelu_at(self, node: fx.Node) -> None:
        if _is_call(node, (torch.erf, torch.special.erf)):
            self._gelu_erf(node)
        elif _is_module(self.root, node, nn.Tanh) or _is_call(node, (torch.tanh,)):
            self._gelu_tanh(node)

    def _fuse_gelu(self, x: fx.Node, one_plus: fx.Node, inner: list[fx.Node], approximate: str) -> bool:
        found = self._product_root(one_plus, [x, one_plus], 0.5)
        if found is None:
            return False
        root, root_inner = found
        matched = set(inner) | set(root_inner) | {one_plus}
        if not _only_used_inside([n for n in matched if n is not root], matched):
            return False
        if self.shapes.dtype(x) is not None and not self.shapes.dtype(x).is_floating_point:
            return False
        name = _add_module(self.root, root, "gelu", nn.GELU(approximate=approximate))
        _rewrite(root, "call_module", name, (x,), {}, "gelu")
        _erase_dead(self.graph, matched - {root})
        self.counts["gelu"] += 1
        return True

    def _gelu_erf(self, erf: fx.Node) -> None:
        """x * 0.5 * (1 + erf(x / sqrt(2))), any association and operand order."""
        arg = erf.args[0]
        if not isinstance(arg, fx.Node) or len(arg.users) != 1:
            return
        factors, const, inner = _product(self.root, arg, self.shapes)
        if len(factors) != 1 or not _close(const, math.sqrt(0.5)) or not isinstance(factors[0], fx.Node):
            return
        one_plus = self._one_plus(erf)
        if one_plus is not None:
            self._fuse_gelu(factors[0], one_plus, inner + [erf], "none")

    def _gelu_tanh(self, tanh: fx.Node) -> None:
        """x * 0.5 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))."""
        arg = tanh.args[0]
        if not isinstance(arg, fx.Node) or len(arg.users) != 1:
            return
        factors, const, inner = _product(self.root, arg, self.shapes)
        if len(factors) != 1 or not _close(const, math.sqrt(2.0 / math.pi)):
            return
        total = factors[0]
        if not _is_call(total, _ADD) or len(total.args) != 2 or len(total.users) != 1:
            return
        for x, cube_term in (total.args, total.args[::-1]):
            if not isinstance(x, fx.Node) or not isinstance(cube_term, fx.Node) or len(cube_term.users) != 1:
                continue
            cube_factors, cube_const, cube_inner = _product(self.root, cube_term, self.shapes)
            if not _close(cube_const, 0.044715):
                continue
            if cube_factors == [x, x, x]:
                cube_nodes = cube_inner
            elif (len(cube_factors) == 1 and _is_call(cube_factors[0], _POW) and cube_factors[0].args[0] is x
                  and cube_factors[0].args[1] in (3, 3.0) and len(cube_factors[0].users) == 1):
                cube_nodes = cube_inner + [cube_factors[0]]
            else:
                continue
            one_plus = self._one_plus(tanh)
            if one_plus is not None and self._fuse_gelu(x, one_plus, inner + [total, tanh] + cube_nodes, "tanh"):
                return

    # --- SiLU / HardSwish -------------------------------------------------------------------
    def _gates_at(self, node: fx.Node) -> None:
        if len(node.args) != 2 or node.kwargs:
            return
        if _is_call(node, _MUL) and self._gated(node):
            return
        if _is_call(node, _MUL) or _is_call(node, _DIV):
            self._hardswish_relu6(node)

    def _gated(self, node: fx.Node) -> bool:
        """x * sigmoid(x) -> SiLU, x * hardsigmoid(x) -> Hardswish."""
        a, b = node.args
        for x, gate in ((a, b), (b, a)):
            if not isinstance(x, fx.Node) or not isinstance(gate, fx.Node) or len(gate.users) != 1:
                continue
            if gate.args != (x,):
                continue
            if _is_module(self.root, gate, nn.Sigmoid) or (_is_call(gate, (torch.sigmoid,)) and not gate.kwargs):
                self._replace_gate(node, gate, x, nn.SiLU(), "silu")
                return True
            if _is_module(self.root, gate, nn.Hardsigmoid) or self._is_hard_sigmoid_fn(gate):
                self._replace_gate(node, gate, x, nn.Hardswish(), "hardswish")
                return True
        return False

    def _is_hard_sigmoid_fn(self, node: fx.Node) -> bool:
        return (node.op == "call_function" and getattr(node.target, "__name__", "") == "hard_sigmoid_fn"
                and _close(node.kwargs.get("alpha"), 1.0 / 6.0) and node.kwargs.get("beta") == 0.5)

    def _replace_gate(self, root: fx.Node, gate: fx.Node, x: fx.Node, module: nn.Module, tag: str) -> None:
        name = _add_module(self.root, root, tag, module)
        _rewrite(root, "call_module", name, (x,), {}, tag)
        _erase_dead(self.graph, [gate])
        self.counts[tag] += 1

    def _hardswish_relu6(self, root: fx.Node) -> None:
        """x * relu6(x + 3) / 6 (or * 1/6, in any association)."""
        factors, const, inner = _product(self.root, root, self.shapes)
        if len(factors) != 2 or not _close(const, 1.0 / 6.0):
            return
        for x, gate in (factors, factors[::-1]):
            if not isinstance(gate, fx.Node) or len(gate.users) != 1:
                continue
            is_relu6 = _is_module(self.root, gate, nn.ReLU6) or (
                _is_call(gate, (torch.clamp,)) and gate.kwargs.get("min") == 0 and gate.kwargs.get("max") == 6
                and len(gate.args) == 1)
            shifted = gate.args[0] if gate.args else None
            if not is_relu6 or not _is_call(shifted, _ADD) or len(shifted.users) != 1 or len(shifted.args) != 2:
                continue
            a, b = shifted.args
            three = _scalar(self.root, b if a is x else a, self.shapes, like=shifted)
            if x not in (a, b) or three != 3.0:
                continue
            matched = set(inner) | {gate, shifted}
            if not _only_used_inside([n for n in matched if n is not root], matched):
                continue
            name = _add_module(self.root, root, "hardswish", nn.Hardswish())
            _rewrite(root, "call_module", name, (x,), {}, "hardswish")
            _erase_dead(self.graph, matched - {root})
            self.counts["hardswish"] += 1
            return

    # --- LayerNorm --------------------------------------------------------------------------
    def _mean_dims(self, node: fx.Node, x: Any) -> tuple[int, ...] | None:
        """The trailing dims (as negative indices) a keepdim mean over ``x`` reduces, or None."""
        if not _is_call(node, (torch.mean,)) or node.args[:1] != (x,) or len(node.args) != 1:
            return None
        dims, keep = node.kwargs.get("dim"), node.kwargs.get("keepdim")
        if keep is not True or dims is None or node.kwargs.keys() - {"dim", "keepdim"}:
            return None
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        rank = self.shapes.rank(x)
        if any(d >= 0 for d in dims):
            if rank is None:
                return None
            dims = tuple(d - rank if d >= 0 else d for d in dims)
        dims = tuple(sorted(dims))
        return dims if dims == tuple(range(-len(dims), 0)) else None

    def _layer_norm_from(self, mean: fx.Node) -> None:
        """ReduceMean / Sub / Pow 2 / ReduceMean / Add eps / Sqrt / Div (* gamma + beta)."""
        if not _is_call(mean, (torch.mean,)):
            return
        x = mean.args[0] if mean.args else None
        dims = self._mean_dims(mean, x)
        centred = _sole_user(mean) if dims else None
        if not _is_call(centred, _SUB) or centred.args != (x, mean) or centred.kwargs:
            return
        users = list(centred.users)
        if len(users) != 2:
            return
        square = next((u for u in users if (_is_call(u, _POW) and u.args[0] is centred and len(u.args) == 2
                                            and _scalar(self.root, u.args[1], self.shapes, like=u) == 2.0)
                       or (_is_call(u, _MUL) and u.args == (centred, centred))), None)
        if square is None or len(square.users) != 1:
            return
        var = _sole_user(square)
        if self._mean_dims(var, square) is None or var.kwargs.get("dim") != mean.kwargs.get("dim"):
            return
        shifted = _sole_user(var)
        if not _is_call(shifted, _ADD) or len(shifted.args) != 2 or var not in shifted.args:
            return
        eps = _scalar(self.root, shifted.args[1] if shifted.args[0] is var else shifted.args[0], self.shapes, like=x)
        std = _sole_user(shifted)
        if eps is None or eps < 0 or not _is_call(std, (torch.sqrt,)) or len(std.users) != 1:
            return
        normed = _sole_user(std)
        if not _is_call(normed, _DIV) or normed.args != (centred, std) or normed.kwargs:
            return
        if next(u for u in users if u is not square) is not normed:
            return
        shape = self._normalized_shape(x, len(dims))
        weight = bias = None
        root = normed
        matched = {mean, centred, square, var, shifted, std, normed}
        scaled = _sole_user(normed)
        if _is_call(scaled, _MUL) and len(scaled.args) == 2 and normed in scaled.args:
            gamma = scaled.args[1] if scaled.args[0] is normed else scaled.args[0]
            affine = self._affine_param(gamma, shape, x)
            if affine is not None:
                weight, shape = affine
                root = scaled
                matched.add(scaled)
                shifted_out = _sole_user(scaled)
                if _is_call(shifted_out, _ADD) and len(shifted_out.args) == 2 and scaled in shifted_out.args:
                    beta = shifted_out.args[1] if shifted_out.args[0] is scaled else shifted_out.args[0]
                    affine = self._affine_param(beta, shape, x)
                    if affine is not None:
                        bias = affine[0]
                        root = shifted_out
                        matched.add(shifted_out)
        if shape is None or self.shapes.dtype(x) not in (None, torch.float32, torch.float64, torch.float16,
                                                          torch.bfloat16):
            return
        if not _only_used_inside([n for n in matched if n is not root], matched):
            return
        _rewrite(root, "call_function", F.layer_norm, (x, tuple(shape)), {"weight": weight, "bias": bias, "eps": eps},
                 "layer_norm")
        _erase_dead(self.graph, matched - {root})
        self.counts["layer_norm"] += 1

    def _normalized_shape(self, x: Any, count: int) -> list[int] | None:
        dims = self.shapes.dims(x)
        if dims is None or len(dims) < count:
            return None
        tail = dims[len(dims) - count:]
        return list(tail) if all(isinstance(d, int) for d in tail) else None

    def _affine_param(self, arg: Any, shape: list[int] | None, x: Any) -> tuple[fx.Node, list[int]] | None:
        """A get_attr that is exactly a LayerNorm weight / bias of ``shape`` (learning the shape
        from the parameter when the input's trailing dims are unknown)."""
        value = _attr_value(self.root, arg)
        if value is None or not value.is_floating_point() or value.dim() == 0:
            return None
        dtype = self.shapes.dtype(x)
        if dtype is not None and value.dtype != dtype:
            return None
        own = list(value.shape)
        if shape is None:
            # NOTE: without inferred dims the parameter's shape is the normalized shape only if no
            # dim of it could be broadcast (a size-1 dim could stand for a longer one).
            return (arg, own) if all(d > 1 for d in own) else None
        return (arg, shape) if own == list(shape) else None

    # --- attention --------------------------------------------------------------------------
    def _is_last_softmax(self, node: fx.Node) -> bool:
        module = _submodule(self.root, node)
        if type(module) is nn.Softmax:
            dim, args = module.dim, node.args
        elif _is_call(node, (torch.softmax, F.softmax)):
            dim, args = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None), node.args[:1]
            if node.kwargs.keys() - {"dim"}:
                return False
        else:
            return False
        if len(args) != 1 or not isinstance(dim, int):
            return False
        rank = self.shapes.rank(args[0])
        return dim == -1 or (rank is not None and dim == rank - 1)

    def _peel_scale(self, node: Any, inner: list[fx.Node]) -> tuple[Any, float]:
        """Strip single-use multiplications / divisions by constants: the operand and the scale."""
        scale = 1.0
        while isinstance(node, fx.Node) and len(node.users) == 1 and len(node.args) == 2 and not node.kwargs:
            if _is_call(node, _MUL):
                operand, value = node.args[0], _scalar(self.root, node.args[1], self.shapes, like=node)
                if value is None:
                    operand, value = node.args[1], _scalar(self.root, node.args[0], self.shapes, like=node)
                if value is None:
                    break
                scale *= value
            elif _is_call(node, _DIV):
                operand, value = node.args[0], _scalar(self.root, node.args[1], self.shapes, like=node)
                if not value:
                    break
                scale /= value
            else:
                break
            inner.append(node)
            node = operand
        return node, scale

    def _attention_from(self, softmax: fx.Node) -> None:
        if not self._is_last_softmax(softmax):
            return
        inner: list[fx.Node] = [softmax]
        users = list(softmax.users)
        guarded = False
        probs = softmax
        if len(users) == 2:
            # the dynamo exporter's guard: where(isnan(p), 0, p) zeroes fully masked rows
            isnan = next((u for u in users if _is_call(u, (torch.isnan,))), None)
            where = next((u for u in users if _is_call(u, (torch.where,))), None)
            if isnan is None or where is None or where.args[0] is not isnan or where.args[2] is not softmax:
                return
            if _sole_user(isnan) is not where or _scalar(self.root, where.args[1], self.shapes, like=where) != 0.0:
                return
            inner += [isnan, where]
            guarded = True
            probs = where
        elif len(users) != 1:
            return
        out = _sole_user(probs)
        if not _is_call(out, (torch.matmul,)) or len(out.args) != 2 or out.args[0] is not probs or out.kwargs:
            return
        value = out.args[1]
        scores = softmax.args[0]
        if not isinstance(scores, fx.Node) or len(scores.users) != 1:
            return
        mask = None
        found = self._scores(scores, inner)
        if found is None and _is_call(scores, _ADD) and len(scores.args) == 2 and not scores.kwargs:
            for candidate, other in (scores.args, scores.args[::-1]):
                probe: list[fx.Node] = []
                found = self._scores(candidate, probe)
                if found is not None:
                    inner += [scores] + probe
                    mask = other
                    break
        if found is None:
            return
        query, key_t, scale = found
        if any(self.shapes.rank(t) is None or self.shapes.rank(t) < 2 for t in (query, key_t, value)):
            return
        if mask is not None:
            if not self._mask_covered(mask, query, key_t):
                return
            if self._all_zero(mask):
                mask = None  # an all-true boolean mask made additive: nothing to add
            elif not self._mask_ok(mask, scores, guarded):
                return
        if not _only_used_inside([n for n in inner if n is not out], set(inner) | {out}):
            return
        key = self._untranspose(key_t, inner, out)
        kwargs: dict[str, Any] = {"scale": scale}
        if mask is not None:
            kwargs = {"attn_mask": mask, "scale": scale}
        _rewrite(out, "call_function", F.scaled_dot_product_attention, (query, key, value), kwargs, "attention")
        _erase_dead(self.graph, inner)
        self.counts["attention"] += 1

    def _scores(self, node: Any, inner: list[fx.Node]) -> tuple[Any, Any, float] | None:
        """``scale * (q @ k^T)`` with the scale on the product or on either operand."""
        if not isinstance(node, fx.Node):
            return None
        probe: list[fx.Node] = []
        product, scale = self._peel_scale(node, probe)
        if not _is_call(product, (torch.matmul,)) or len(product.args) != 2 or product.kwargs:
            return None
        if len(product.users) != 1:
            return None
        probe.append(product)
        query, q_scale = self._peel_scale(product.args[0], probe)
        key_t, k_scale = self._peel_scale(product.args[1], probe)
        if not isinstance(query, fx.Node) or not isinstance(key_t, fx.Node):
            return None
        inner += probe
        return query, key_t, scale * q_scale * k_scale

    def _mask_covered(self, mask: Any, query: fx.Node, key_t: fx.Node) -> bool:
        """True when broadcasting the mask cannot enlarge the scores: each of its dims is 1 or
        is known to be the matching dim of q (or of k^T)."""
        dims, q_dims, k_dims = self.shapes.dims(mask), self.shapes.dims(query), self.shapes.dims(key_t)
        if dims is None or q_dims is None or k_dims is None or len(dims) > max(len(q_dims), len(k_dims)):
            return False
        # scores: [*batch, L, S] with L from q (..., L, E) and S from k^T (..., E, S)
        q_dims, k_dims = q_dims[:-1] + [None], k_dims[:-2] + [None, k_dims[-1]]

        def at(seq: list, i: int) -> Any:
            return seq[len(seq) - i] if i <= len(seq) else 1

        for i in range(1, len(dims) + 1):
            dim = dims[len(dims) - i]
            if dim == 1 or dim is None:
                if dim is None:
                    return False
                continue
            if dim not in (at(q_dims, i), at(k_dims, i)):
                return False
        return True

    def _all_zero(self, mask: fx.Node) -> bool:
        """``where(c, 0, x)`` with ``c`` a constant that is true everywhere (through expands and
        reshapes), or a constant zero."""
        value = _attr_value(self.root, mask)
        if value is not None:
            return bool((value == 0).all())
        if not _is_call(mask, (torch.where,)) or len(mask.args) != 3:
            return False
        if _scalar(self.root, mask.args[1], self.shapes, like=mask) != 0.0:
            return False
        cond = mask.args[0]
        for _ in range(8):
            value = _attr_value(self.root, cond)
            if value is not None:
                return value.dtype == torch.bool and bool(value.all())
            name = getattr(cond.target, "__name__", "") if isinstance(cond, fx.Node) else ""
            if not isinstance(cond, fx.Node) or cond.op != "call_function" or name not in _SHAPE_ONLY:
                return False
            cond = cond.args[0]
        return False

    def _mask_ok(self, mask: Any, scores: fx.Node, guarded: bool) -> bool:
        if not isinstance(mask, fx.Node):
            return False
        dtype = self.shapes.dtype(mask)
        if dtype is None or not dtype.is_floating_point or dtype != self.shapes.dtype(scores):
            return False
        # NOTE: SDPA gives 0 for a row whose mask is -inf everywhere, the unfused chain NaN; they
        # agree when the graph zeroes NaN rows itself or the mask is provably finite.
        return guarded or self._finite(mask)

    def _finite(self, node: Any, depth: int = 0) -> bool:
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            return math.isfinite(node)
        value = _attr_value(self.root, node)
        if value is not None:
            return not value.is_floating_point() or bool(torch.isfinite(value).all())
        if not isinstance(node, fx.Node) or depth > 8:
            return False
        if _is_call(node, (torch.where,)):
            return self._finite(node.args[1], depth + 1) and self._finite(node.args[2], depth + 1)
        name = getattr(node.target, "__name__", node.target if node.op == "call_method" else "")
        if node.op in ("call_function", "call_method") and name in _SHAPE_ONLY and node.args:
            return self._finite(node.args[0], depth + 1)
        return False

    def _untranspose(self, key_t: fx.Node, inner: list[fx.Node], before: fx.Node) -> fx.Node:
        """k from the k^T operand: undo the transposition that made it, or transpose back."""
        if len(key_t.users) == 1:
            if _is_call(key_t, (torch.permute,)):
                source = key_t.args[0]
                dims = key_t.kwargs.get("dims", key_t.args[1] if len(key_t.args) > 1 else None)
                if isinstance(dims, (tuple, list)) and len(dims) >= 2 and isinstance(source, fx.Node):
                    dims = tuple(dims[:-2]) + (dims[-1], dims[-2])
                    inner.append(key_t)
                    if dims == tuple(range(len(dims))):
                        return source
                    with self.graph.inserting_before(before):
                        node = self.graph.call_function(torch.permute, (source,), {"dims": dims})
                    node.meta.update(key_t.meta)
                    return node
            if _is_call(key_t, (torch.transpose,)) and len(key_t.args) == 3 and not key_t.kwargs:
                rank = self.shapes.rank(key_t)
                axes = {a - rank if a >= 0 and rank else a for a in key_t.args[1:]}
                if axes == {-1, -2}:
                    inner.append(key_t)
                    return key_t.args[0]
            chain = self._folded_transpose(key_t)
            if chain is not None:
                inner.extend(chain[1])
                return chain[0]
        with self.graph.inserting_before(before):
            return self.graph.call_function(torch.transpose, (key_t, -2, -1))

    def _folded_transpose(self, key_t: fx.Node) -> tuple[fx.Node, list[fx.Node]] | None:
        """``reshape(permute(reshape(k, (-1, S, E)), (0, 2, 1)), (-1, *H, E, S))`` — the dynamo
        exporter's k^T through 3-D — is ``k.transpose(-2, -1)`` when k's other dims are static."""
        if not _is_call(key_t, (torch.reshape,)):
            return None
        swap = key_t.args[0]
        if not _is_call(swap, (torch.permute,)) or len(swap.users) != 1 or swap.kwargs.get("dims") != (0, 2, 1):
            return None
        flat = swap.args[0]
        if not _is_call(flat, (torch.reshape,)) or len(flat.users) != 1:
            return None
        key = flat.args[0]
        dims = self.shapes.dims(key)
        if dims is None or len(dims) < 3 or not all(isinstance(d, int) for d in dims[1:]):
            return None
        seq, emb = dims[-2], dims[-1]
        if tuple(flat.kwargs.get("shape", ())) != (-1, seq, emb):
            return None
        if tuple(key_t.kwargs.get("shape", ())) != (-1, *dims[1:-2], emb, seq):
            return None
        return key, [key_t, swap, flat]

    # --- tidy up ----------------------------------------------------------------------------
    def finish(self) -> None:
        for node in reversed(list(self.graph.nodes)):
            pure = node.op == "call_function" and (node.target is torch.where or node.meta.get("onnx_op") in (
                "Expand", "Where", "Reshape", "Unsqueeze", "Cast", "Equal", "Shape", "Gather", "Concat"))
            if node.users or not (pure or (node.op == "call_method" and node.target == "size")):
                continue
            self.graph.erase_node(node)
        for node in list(self.graph.nodes):
            if node.op == "get_attr" and not node.users:
                self.touched_attrs.add(node.target)
                self.graph.erase_node(node)
        used = {n.target for n in self.graph.nodes if n.op == "get_attr"}
        for target in self.touched_attrs - used:
            if "." not in target and hasattr(self.root, target):
                delattr(self.root, target)
        self.graph.lint()


def fuse_graph(root: nn.Module, graph: fx.Graph, value_info: dict[str, onnx.TypeProto] | None = None,
               value_nodes: dict[str, str] | None = None) -> Counter[str]:
    """Replace exporter decompositions in ``graph`` (in place; submodules and constants on
    ``root``) by fused torch ops; returns how many of each kind.

    ``value_info`` (ONNX tensor name -> type) and ``value_nodes`` (ONNX tensor name -> fx node
    name) give the passes ranks, static dims and dtypes; ``value_nodes`` loses the entries of
    the nodes that are gone.  Without them only shape-independent rewrites fire."""
    value_nodes = {} if value_nodes is None else value_nodes
    before = {n.name for n in graph.nodes}
    fuser = _Fuser(root, graph, ShapeInfo(value_nodes, value_info, root))
    fuser.run()
    if fuser.counts:
        gone = before - {n.name for n in graph.nodes}
        for onnx_name in [k for k, v in value_nodes.items() if v in gone]:
            del value_nodes[onnx_name]
        logger.debug("fused %s", dict(fuser.counts))
    return fuser.counts


def fuse(module: fx.GraphModule, value_info: dict[str, onnx.TypeProto] | None = None) -> fx.GraphModule:
    """:func:`fuse_graph` on a GraphModule (in place, using its ``onnx_value_nodes``); returns it."""
    value_nodes = getattr(module, "onnx_value_nodes", None)
    counts = fuse_graph(module, module.graph, value_info, value_nodes if isinstance(value_nodes, dict) else None)
    if counts:
        module.delete_all_unused_submodules()
        module.recompile()
    return module


# --- inference-only folding ------------------------------------------------------------------
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _conv_layer(module: nn.Module | None) -> nn.Module | None:
    if type(module) in _CONVS:
        return module
    if isinstance(module, nn.Sequential) and len(module) and type(module[-1]) in _CONVS:
        return module[-1]  # explicit padding, then the convolution
    return None


def fold_batch_norm(module: fx.GraphModule) -> fx.GraphModule:
    """Fold every inference BatchNorm that is the only user of a convolution into that
    convolution's weight and bias (in place); returns the module.

    The folded model computes ``conv(x) * s + t`` as one convolution; its BatchNorm statistics
    and affine parameters are gone, so it is for inference (``ConvertModel(optimize=True)``)."""
    graph = module.graph
    folded = 0
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module")
    for node in list(graph.nodes):
        norm = _submodule(module, node)
        if not isinstance(norm, nn.modules.batchnorm._BatchNorm) or norm.training:
            continue
        source = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        conv = _conv_layer(_submodule(module, source))
        if conv is None or len(source.users) != 1 or norm.running_mean is None or norm.running_var is None:
            continue
        if calls[source.target] != 1:
            continue
        if conv.out_channels != norm.num_features or not conv.weight.is_floating_point():
            continue
        with torch.no_grad():
            # NOTE: folded in float64, rounded once to the layer's dtype.
            inv_std = torch.rsqrt(norm.running_var.double() + norm.eps)
            gain = inv_std * (norm.weight.double() if norm.weight is not None else 1.0)
            shift = norm.bias.double() if norm.bias is not None else torch.zeros_like(gain)
            bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(gain)
            weight = conv.weight.double() * gain.reshape(-1, *([1] * (conv.weight.dim() - 1)))
            dtype = conv.weight.dtype
            conv.weight = nn.Parameter(weight.to(dtype))
            conv.bias = nn.Parameter(((bias - norm.running_mean.double()) * gain + shift).to(dtype))
        node.replace_all_uses_with(source)
        graph.erase_node(node)
        folded += 1
    if folded:
        module.delete_all_unused_submodules()
        graph.lint()
        module.recompile()
        logger.debug("folded %d BatchNorm layers into convolutions", folded)
    return module
