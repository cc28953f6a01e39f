"""User-defined operators: plug a plain torch function in as the converter of an ONNX op.

    import onnx2torch

    @onnx2torch.custom_op("Scale2", domain="my.domain")
    def scale2(x, *, factor: float = 2.0):
        return x * factor

The function's positional parameters are the node's inputs, in order (a parameter with a default
is an optional input; ``*inputs`` takes any number); its keyword-only parameters are the node's
attributes, under their ONNX names, with the function's defaults for attributes the node does
not set.  Converted models call the function itself in ``forward`` with the node's attributes as
keyword literals (``scale2(x, factor=3.0)``).  A user op replaces a built-in converter of the same
name and domain at every opset from ``since`` on.
"""
from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import onnx2torch.ops  # noqa: F401 - built-ins first, so a user op registered later overrides them
from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode, decode_attribute
from onnx2torch.errors import ConversionError
from onnx2torch.registry import DEFAULT_DOMAINS, Lowered, converter, registered_ops

__all__ = [
    "CUSTOM_OP_ATTRIBUTE",
    "CustomOpSpec",
    "custom_op",
    "custom_op_source",
    "custom_op_spec",
    "is_custom_op",
    "registered_custom_ops",
]

logger = logging.getLogger(__name__)

#: The attribute :func:`custom_op` sets on the user's function (its :class:`CustomOpSpec`).
CUSTOM_OP_ATTRIBUTE = "__onnx2torch_custom_op__"

_NO_DEFAULT = inspect.Parameter.empty


@dataclass(frozen=True)
class CustomOpSpec:
    """What :func:`custom_op` learnt about a user function."""

    op_type: str
    domain: str
    since: int
    inputs: tuple[str, ...]
    #: how many leading positional parameters have no default (required inputs)
    required_inputs: int
    variadic_inputs: bool
    #: attribute name -> default (``inspect.Parameter.empty`` when required)
    attributes: dict[str, Any] = field(default_factory=dict)
    #: attribute name -> annotation (``float`` / ``int`` / ``str`` ... or ``inspect.Parameter.empty``)
    annotations: dict[str, Any] = field(default_factory=dict)
    deterministic: bool = True


_REGISTERED: dict[tuple[str, str], Callable] = {}


def is_custom_op(fn: Any) -> bool:
    """Whether ``fn`` (e.g. an fx node's target) is a function registered with :func:`custom_op`."""
    return isinstance(getattr(fn, CUSTOM_OP_ATTRIBUTE, None), CustomOpSpec)


def custom_op_spec(fn: Any) -> CustomOpSpec | None:
    """The :class:`CustomOpSpec` of a user op function, ``None`` for anything else."""
    spec = getattr(fn, CUSTOM_OP_ATTRIBUTE, None)
    return spec if isinstance(spec, CustomOpSpec) else None


def custom_op_source(fn: Callable) -> str:
    """The source of a user op function without its ``@custom_op(...)`` decorator line(s), ready
    to be written into a standalone file (raises ``OSError`` when Python cannot find it)."""
    import textwrap  # noqa: PLC0415

    lines = textwrap.dedent(inspect.getsource(fn)).splitlines(keepends=True)
    start = 0
    while start < len(lines) and not lines[start].lstrip().startswith(("def ", "async def ")):
        start += 1
    return "".join(lines[start:]) if start < len(lines) else "".join(lines)


def registered_custom_ops() -> dict[tuple[str, str], Callable]:
    """Every registered user op: ``{(domain, op_type): function}``."""
    return dict(_REGISTERED)


def _norm_domain(domain: str) -> str:
    return "" if domain in DEFAULT_DOMAINS else domain


def _spec_of(fn: Callable, op_type: str, domain: str, since: int, deterministic: bool) -> CustomOpSpec:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"custom_op({op_type!r}): cannot read the signature of {fn!r}: {exc}") from exc
    inputs: list[str] = []
    required = 0
    variadic = False
    attributes: dict[str, Any] = {}
    annotations: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            if variadic:
                raise TypeError(f"custom_op({op_type!r}): parameter {param.name!r} after *{inputs[-1]}")
            if param.default is _NO_DEFAULT:
                required += 1
            inputs.append(param.name)
        elif param.kind == inspect.Parameter.VAR_POSITIONAL:
            variadic = True
            inputs.append(param.name)
        elif param.kind == inspect.Parameter.KEYWORD_ONLY:
            attributes[param.name] = param.default
            annotation = param.annotation
            if isinstance(annotation, str):  # ``from __future__ import annotations`` in the user's module
                annotation = {"float": float, "int": int, "str": str, "bool": bool}.get(annotation, _NO_DEFAULT)
            annotations[param.name] = annotation
        else:  # **kwargs
            raise TypeError(
                f"custom_op({op_type!r}): **{param.name} is not allowed; declare each attribute as a "
                "keyword-only parameter (after a bare *) with its ONNX name and default"
            )
    return CustomOpSpec(op_type, _norm_domain(domain), since, tuple(inputs), required, variadic,
                        attributes, annotations, deterministic)


def _literal(name: str, value: Any, annotation: Any, node: OnnxNode) -> Any:
    """An attribute value as a keyword literal for generated code."""
    if isinstance(value, np.ndarray):
        raise node.unsupported(
            f"tensor-valued attribute '{name}'", "a tensor",
            "int, float, string and lists of them (pass tensors to a custom op as inputs)",
        )
    if isinstance(value, list):
        if any(isinstance(v, np.ndarray) for v in value) or not all(isinstance(v, (int, float, str)) for v in value):
            raise node.unsupported(f"attribute '{name}'", type(value).__name__,
                                   "int, float, string and lists of them")
        return tuple(value)
    if not isinstance(value, (int, float, str)):
        raise node.unsupported(f"attribute '{name}' of type", type(value).__name__,
                               "int, float, string and lists of them")
    if annotation is float and isinstance(value, int):
        return float(value)
    if annotation is bool and isinstance(value, int):
        return bool(value)
    return value


def _make_converter(fn: Callable, spec: CustomOpSpec) -> Callable:
    def convert_custom_op(node: OnnxNode, ctx: ConversionContext) -> Lowered:
        inputs = list(node.inputs)
        while inputs and not inputs[-1]:
            inputs.pop()
        if not spec.variadic_inputs and len(inputs) > len(spec.inputs):
            raise ConversionError(
                f"{node.describe()}: has {len(inputs)} inputs but the user op {fn.__qualname__}"
                f"({', '.join(spec.inputs)}) takes at most {len(spec.inputs)}"
            )
        missing = [spec.inputs[i] for i in range(min(spec.required_inputs, len(spec.inputs)))
                   if i >= len(inputs) or not inputs[i]]
        if missing:
            raise ConversionError(
                f"{node.describe()}: the user op {fn.__qualname__} needs input(s) {', '.join(missing)}, "
                f"the node gives {len(inputs)} input(s) {inputs}"
            )
        unknown = sorted(set(node.attributes) - set(spec.attributes))
        if unknown:
            known = ", ".join(spec.attributes) or "none"
            raise ConversionError(
                f"{node.describe()}: attribute(s) {', '.join(unknown)} are not parameters of the user op "
                f"{fn.__module__}.{fn.__qualname__} (its keyword-only attributes: {known}); add them as "
                "keyword-only parameters"
            )
        kwargs: dict[str, Any] = {}
        for name, default in spec.attributes.items():
            if name in node.attributes:
                value = decode_attribute(node.attributes[name])
                kwargs[name] = _literal(name, value, spec.annotations.get(name, _NO_DEFAULT), node)
            elif default is _NO_DEFAULT:
                raise ConversionError(
                    f"{node.describe()}: required attribute '{name}' of the user op "
                    f"{fn.__module__}.{fn.__qualname__} is missing on the node (give it a default "
                    "in the function to make it optional)"
                )
        return Lowered(fn, inputs=inputs, kwargs=kwargs)

    convert_custom_op.__qualname__ = f"custom_op[{spec.domain or 'ai.onnx'}::{spec.op_type}]"
    convert_custom_op.__module__ = fn.__module__
    return convert_custom_op


def custom_op(op_type: str, domain: str = "", since: int = 1, *, deterministic: bool = True) -> Callable:
    """Register a torch function as the converter of ``domain::op_type`` from opset ``since`` on.

    Positional parameters are the node's inputs (defaults make inputs optional, absent ones
    arrive as ``None``; ``*args`` takes any number), keyword-only parameters its attributes under
    their ONNX names.  Attributes the node sets are passed as keyword literals; unset ones take
    the function's default; a keyword-only parameter without a default is a required attribute;
    an attribute the function does not declare is an error.  A node with several outputs needs
    a function returning a tuple.  ``deterministic=False`` keeps the op from being evaluated at
    conversion time when its inputs are constants (random ops).  The function is returned
    unchanged, marked with :data:`CUSTOM_OP_ATTRIBUTE`.
    """
    if not isinstance(op_type, str) or not op_type:
        raise TypeError("custom_op: op_type must be a non-empty string")
    if not isinstance(since, int) or since < 1:
        raise TypeError(f"custom_op({op_type!r}): since must be an opset version >= 1, got {since!r}")

    def register(fn: Callable) -> Callable:
        if not callable(fn) or not inspect.isfunction(fn):
            raise TypeError(f"custom_op({op_type!r}) decorates a plain function, got {fn!r}")
        if fn.__name__ == "<lambda>" or "<locals>" in fn.__qualname__:
            logger.warning(
                "custom_op(%r): %s is not a module-level function; converted models calling it cannot "
                "be pickled (torch.save) or exported as code", op_type, fn.__qualname__,
            )
        spec = _spec_of(fn, op_type, domain, since, deterministic)
        setattr(fn, CUSTOM_OP_ATTRIBUTE, spec)
        convert = _make_converter(fn, spec)
        # NOTE: the table picks the highest `since` <= the model's opset, so a built-in registered
        # at a later opset would shadow the user op there; register the user op at each of those too.
        key = (spec.domain, op_type)
        versions = {since} | {v for v in registered_ops().get(key, []) if v >= since}
        for version in sorted(versions):
            converter(op_type, since=version, domain=spec.domain, deterministic=deterministic)(convert)
        _REGISTERED[key] = fn
        return fn

    return register
