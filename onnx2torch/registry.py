"""The per-op converter table.

A converter is registered for ``(domain, op_type)`` together with the opset *since* which its
semantics hold.  :func:`lookup` returns the converter with the highest ``since`` that is not newer
than the model's opset, so a new opset never breaks an operator whose semantics did not change.
"""
from __future__ import annotations

import bisect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Lowered", "converter", "lookup", "registered_ops", "DEFAULT_DOMAINS"]

logger = logging.getLogger(__name__)

#: Domains that mean the standard ONNX operator set.
DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass
class Lowered:
    """What a converter returns: how one ONNX node runs in PyTorch.

    ``target`` is an ``nn.Module`` (becomes a named submodule) or a function (called in
    ``forward``).  ``inputs`` are the ONNX tensor names passed positionally, in order (``""``
    passes ``None``); by default the node's own inputs.  ``kwargs`` are literal keyword arguments.
    A node with several outputs must have a target returning a tuple with one entry per output.
    ``constant`` short-circuits everything: the node's (single) output is that value.
    ``scalars_as_literals`` lets 0-d constant inputs be written as Python numbers.
    """

    target: Any = None
    inputs: list[str] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    constant: Any = None
    scalars_as_literals: bool = False

    @classmethod
    def const(cls, value: Any) -> "Lowered":
        """A node whose output is known at conversion time."""
        return cls(constant=value)


@dataclass(frozen=True)
class ConverterEntry:
    """One registered converter and what the table knows about it."""

    fn: Callable
    domain: str
    op_type: str
    since: int
    deterministic: bool


_TABLE: dict[tuple[str, str], list[ConverterEntry]] = {}


def _norm_domain(domain: str) -> str:
    return "" if domain in DEFAULT_DOMAINS else domain


def converter(op_type: str, *, since: int = 1, domain: str = "", deterministic: bool = True):
    """Register ``fn(node, ctx) -> Lowered`` for ``op_type`` from opset ``since`` on.

    ``deterministic=False`` marks random ops, which are never folded at conversion time.
    """

    def register(fn: Callable) -> Callable:
        key = (_norm_domain(domain), op_type)
        entries = _TABLE.setdefault(key, [])
        entries[:] = [e for e in entries if e.since != since]
        bisect.insort(entries, ConverterEntry(fn, key[0], op_type, since, deterministic),
                      key=lambda e: e.since)
        return fn

    return register


def lookup(domain: str, op_type: str, opset: int) -> ConverterEntry | None:
    """The converter for ``op_type`` with the highest ``since`` ≤ ``opset``, or ``None``."""
    entries = _TABLE.get((_norm_domain(domain), op_type))
    if not entries:
        return None
    best = None
    for entry in entries:
        if entry.since <= opset:
            best = entry
    return best


def registered_ops() -> dict[tuple[str, str], list[int]]:
    """Every registered ``(domain, op_type)`` with the opsets its converters start at."""
    return {key: [e.since for e in entries] for key, entries in sorted(_TABLE.items())}
