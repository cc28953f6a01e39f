"""Standalone code export: write a converted model as a plain PyTorch source file.

``export_code(model, "out/net.py")`` writes

- ``out/net.py``: a module that imports only torch and the standard library (numpy only when an
  op of the model needs it), defining the model as an ``nn.Module`` whose ``forward`` is the
  converted graph written out one op per line, with named submodules; the run-time helpers of
  ``onnx2torch.ops`` the model calls (functions, small modules and the constants they read) are
  copied into the file from their source, so onnx2torch is not needed to run it;
- ``out/net.pt``: the weights, ``torch.save`` of the state_dict (loadable with
  ``weights_only=True``).

``net.load_model(path=None)`` builds the module (on the meta device, no random initialisation)
and loads the weights into it. Native ``torch.nn`` layers are rebuilt from their configuration
(their ``repr``), package modules from their ``__init__`` arguments read back from their
attributes; every rebuilt layer is checked against the original before anything is written.
"""
from __future__ import annotations

import ast
import builtins
import importlib
import importlib.util
import inspect
import io
import keyword
import logging
import math
import os
import re
import sys
import tempfile
import textwrap
import tokenize
import types
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import fx, nn
from torch.fx.node import _get_qualified_name

from onnx2torch.custom_ops import custom_op_source, is_custom_op
from onnx2torch.errors import Onnx2TorchError

__all__ = ["export_code", "CodeExportError"]

logger = logging.getLogger(__name__)

_PACKAGE = "onnx2torch"
#: Plain attributes of a converted GraphModule that the generated class keeps.
_KEPT_ATTRIBUTES = ("onnx_input_names",)
#: Modules the generated file may import besides torch and the standard library.
_ALLOWED_THIRD_PARTY = ("torch", "numpy")
#: Largest plain tensor attribute written into the source as a literal.
_MAX_LITERAL_NUMEL = 4096


class CodeExportError(Onnx2TorchError):
    """The converted model holds something that cannot be written as standalone source."""


# --- small utilities ------------------------------------------------------------------------
def _is_package_object(obj: Any) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module == _PACKAGE or module.startswith(_PACKAGE + ".")


def _camel(stem: str) -> str:
    words = re.split(r"[^0-9a-zA-Z]+", stem)
    name = "".join(w[:1].upper() + w[1:] for w in words if w) or "Model"
    return name if name[0].isalpha() else f"Model{name}"


def _identifier(stem: str) -> str:
    ident = re.sub(r"\W", "_", stem)
    if not ident or ident[0].isdigit() or keyword.iskeyword(ident):
        ident = f"m_{ident}"
    return ident


def _replace_names(source: str, mapping: dict[str, str], skip: Callable[[int, int], bool] | None = None) -> str:
    """``source`` with every NAME token in ``mapping`` replaced, except attribute names
    (``x.name``), keyword-argument names (``f(name=...)``) and tokens ``skip(row, col)`` rejects."""
    if not mapping:
        return source
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    lines = source.splitlines(keepends=True)
    edits = []
    depth = 0
    for i, tok in enumerate(tokens):
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        if tok.type != tokenize.NAME or tok.string not in mapping:
            continue
        prev = tokens[i - 1] if i else None
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if prev is not None and prev.type == tokenize.OP and prev.string == ".":
            continue
        if depth > 0 and nxt is not None and nxt.type == tokenize.OP and nxt.string == "=":
            continue
        if skip is not None and skip(*tok.start):
            continue
        edits.append((tok.start, tok.end, mapping[tok.string]))
    for (row, col), (_, end_col), new in reversed(edits):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + new + line[end_col:]
    return "".join(lines)


def _global_refs(tree: ast.AST) -> list[ast.Name]:
    """The ``Name`` nodes of a module-level definition that read module globals: not locals or
    parameters of an enclosing function, not in annotations (the file postpones them)."""
    found: list[ast.Name] = []

    def local_names(fn) -> set[str]:
        names = {a.arg for a in ast.walk(fn.args) if isinstance(a, ast.arg)}
        for stmt in fn.body if isinstance(fn.body, list) else [fn.body]:
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
                    names.add(sub.id)
                elif isinstance(sub, ast.arg):
                    names.add(sub.arg)
                elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(sub.name)
                elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                    names.update((a.asname or a.name).split(".")[0] for a in sub.names)
                elif isinstance(sub, ast.ExceptHandler) and sub.name:
                    names.add(sub.name)
        return names

    def visit(node: ast.AST, scope: frozenset[str]) -> None:
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load) and node.id not in scope:
                found.append(node)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for item in getattr(node, "decorator_list", []):
                visit(item, scope)
            for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                visit(default, scope)
            inner = scope | local_names(node)
            for stmt in node.body if isinstance(node.body, list) else [node.body]:
                visit(stmt, inner)
            return
        if isinstance(node, ast.arg):
            return  # an annotation only
        if isinstance(node, ast.AnnAssign):
            visit(node.target, scope)
            if node.value is not None:
                visit(node.value, scope)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, scope)

    visit(tree, frozenset())
    return found


def _load_names(tree: ast.AST) -> list[str]:
    """Module globals a piece of source reads, in first-use order."""
    names: list[str] = []
    for node in _global_refs(tree):
        if node.id not in names:
            names.append(node.id)
    return names


def _module_imports(module: types.ModuleType) -> dict[str, str]:
    """``{bound name: import statement}`` for the top-level imports of ``module``'s source."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError, SyntaxError):
        return {}
    imports = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    imports[alias.asname] = f"import {alias.name} as {alias.asname}"
                else:
                    top = alias.name.split(".")[0]
                    imports[top] = f"import {top}"
        elif isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module != "__future__":
            for alias in stmt.names:
                bound = alias.asname or alias.name
                suffix = f" as {alias.asname}" if alias.asname and alias.asname != alias.name else ""
                imports[bound] = f"from {stmt.module} import {alias.name}{suffix}"
    return imports


def _import_root(statement: str) -> str:
    return statement.split()[1].split(".")[0]


# --- literal values -------------------------------------------------------------------------
class _Helper:
    """One object copied into the generated file: its emitted name, source and dependencies."""

    def __init__(self, obj: Any, name: str, source: str, deps: list[Any], kind: str):
        self.obj = obj
        self.name = name
        self.source = source
        self.deps = deps
        self.kind = kind  # "function", "class" or "constant"


class _Writer:
    """Collects everything the generated file needs: imports, helpers, classes for graphs."""

    def __init__(self) -> None:
        self.imports: dict[str, str] = {}  # bound name -> statement
        self.import_objects: dict[str, Any] = {}
        self.helpers: dict[int, _Helper] = {}
        self.names: dict[str, Any] = {}  # every module-level name of the file -> object
        self.graph_classes: dict[int, tuple[str, fx.GraphModule]] = {}
        self.graph_sources: dict[int, str] = {}
        self.reserved = set(dir(builtins)) | set(keyword.kwlist) | {"self", "load_model"}
        self.uses_math = False
        self.uses_numpy = False
        self._module_imports: dict[str, dict[str, str]] = {}
        self._restore_used = False
        self.root: nn.Module | None = None

    # --- names and imports ---------------------------------------------------------------
    def add_import(self, bound: str, statement: str, obj: Any) -> None:
        known = self.import_objects.get(bound)
        if bound in self.imports and known is not obj:
            raise CodeExportError(f"two helpers import different objects as '{bound}' "
                                  f"({self.imports[bound]} / {statement})")
        root = _import_root(statement)
        if root == _PACKAGE:
            raise CodeExportError(f"'{statement}' would make the generated code import onnx2torch")
        if root not in sys.stdlib_module_names and root not in _ALLOWED_THIRD_PARTY:
            raise CodeExportError(f"the generated code would need '{statement}' (only torch, numpy and "
                                  "the standard library are allowed)")
        if root == "numpy":
            self.uses_numpy = True
        self.imports[bound] = statement
        self.import_objects[bound] = obj
        self.names[bound] = obj

    def _free_name(self, wanted: str, obj: Any) -> str:
        name, i = wanted, 1
        while (name in self.names and self.names[name] is not obj) or name in self.reserved:
            i += 1
            name = f"{wanted}_{i}"
        return name

    def ref(self, obj: Any, where: str) -> str:
        """A source expression that evaluates to ``obj`` (a function, class or module) in the file."""
        if _is_package_object(obj) or is_custom_op(obj):
            return self.helper(obj).name  # user ops travel as source too (onnx2torch.custom_op)
        if isinstance(obj, types.ModuleType):
            name = obj.__name__
            if name == "torch" or name.startswith("torch."):
                self.add_import("torch", "import torch", torch)
                return name
            top = name.split(".")[0]
            self.add_import(top, f"import {top}", sys.modules[top])
            return name
        if getattr(builtins, getattr(obj, "__name__", ""), None) is obj:
            return obj.__name__
        qualified = None
        try:
            qualified = _get_qualified_name(obj)
        except Exception:  # noqa: BLE001 - not a function fx knows how to name
            module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
            if module and qualname:
                qualified = f"{module}.{qualname}"
        if qualified:
            qualified = qualified.replace("_operator.", "operator.", 1) if qualified.startswith("_operator.") else qualified
            for candidate in _public_paths(qualified, obj):
                top = candidate.split(".")[0]
                if top == "torch":
                    self.add_import("torch", "import torch", torch)
                    if re.fullmatch(r"torch\.nn\.[A-Z]\w*", candidate):
                        return "nn." + candidate.split(".")[-1]  # the file imports nn
                    return candidate
                if top in sys.stdlib_module_names or top == "numpy":
                    self.add_import(top, f"import {top}", sys.modules[top])
                    return candidate
        raise CodeExportError(f"{where}: cannot write a reference to {obj!r} in standalone code")

    # --- helpers copied from the package -----------------------------------------------------
    def helper(self, obj: Any) -> _Helper:
        key = id(obj)
        if key in self.helpers:
            return self.helpers[key]
        module = sys.modules[obj.__module__]
        try:
            source = custom_op_source(obj) if is_custom_op(obj) else textwrap.dedent(inspect.getsource(obj))
        except (OSError, TypeError) as exc:
            raise CodeExportError(f"no source for {obj.__module__}.{getattr(obj, '__qualname__', obj)}: {exc}") from exc
        original = obj.__name__ if hasattr(obj, "__name__") else str(obj)
        if "." in getattr(obj, "__qualname__", original):
            raise CodeExportError(f"{obj.__module__}.{obj.__qualname__} is not a module-level object")
        name = self._free_name(original, obj)
        kind = "class" if inspect.isclass(obj) else "function"
        entry = _Helper(obj, name, source, [], kind)
        self.helpers[key] = entry
        self.names[name] = obj
        entry.source, entry.deps = self._resolve_source(source, module, f"{obj.__module__}.{original}",
                                                        own=(original, name))
        return entry

    def constant(self, module: types.ModuleType, global_name: str, value: Any) -> _Helper:
        key = id(value) if not isinstance(value, (int, float, str, bool, type(None))) else (module.__name__, global_name)
        if key in self.helpers:
            return self.helpers[key]
        name = self._free_name(global_name, value)
        entry = _Helper(value, name, "", [], "constant")
        self.helpers[key] = entry
        self.names[name] = value
        deps_before = set(self.helpers)
        entry.source = f"{name} = {self.literal(value, f'{module.__name__}.{global_name}')}\n"
        entry.deps = [self.helpers[k].obj for k in self.helpers if k not in deps_before]
        return entry

    def _resolve_source(self, source: str, module: types.ModuleType, where: str,
                        own: tuple[str, str]) -> tuple[str, list[Any]]:
        """Pull in what ``source`` reads from its module; rename where the file needs another name."""
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names]
                mod = getattr(node, "module", None) or ""
                if mod.startswith(_PACKAGE) or any(n.startswith(_PACKAGE) for n in names):
                    raise CodeExportError(f"{where} imports from onnx2torch inside its body")
        imports = self._module_imports.setdefault(module.__name__, _module_imports(module))
        mapping: dict[str, str] = {}
        if own[0] != own[1]:
            mapping[own[0]] = own[1]
        deps: list[Any] = []
        for name in _load_names(tree):
            if name == own[0] or name not in vars(module):
                continue  # a local, a builtin, or the object itself
            value = vars(module)[name]
            if _is_package_object(value) and (inspect.isfunction(value) or inspect.isclass(value)
                                              or hasattr(value, "__wrapped__")):
                helper = self.helper(value)
                deps.append(value)
                if helper.name != name:
                    mapping[name] = helper.name
            elif name in imports and not _is_package_object(value) and _import_root(imports[name]) != _PACKAGE:
                self.add_import(name, imports[name], value)
            elif isinstance(value, types.ModuleType):
                new = self.ref(value, where)
                if new != name:
                    mapping[name] = new
            elif isinstance(value, logging.Logger):
                self.add_import("logging", "import logging", logging)
                helper = self._logger()
                if helper.name != name:
                    mapping[name] = helper.name
            elif inspect.isfunction(value) or inspect.isclass(value) or inspect.isbuiltin(value):
                new = self.ref(value, where)
                if new != name:
                    mapping[name] = new
            else:
                helper = self.constant(module, name, value)
                deps.append(value)
                if helper.name != name:
                    mapping[name] = helper.name
        if mapping:
            source = _rename_globals(source, mapping)
        return source, deps

    def _logger(self) -> _Helper:
        key = "logger"
        if key not in self.helpers:
            name = self._free_name("logger", key)
            self.helpers[key] = _Helper(key, name, f"{name} = logging.getLogger(__name__)\n", [], "constant")
            self.names[name] = key
        return self.helpers[key]

    # --- values written as source --------------------------------------------------------------
    def literal(self, value: Any, where: str) -> str:
        if value is None or isinstance(value, (bool, str, bytes)):
            return repr(value)
        if isinstance(value, int):
            return repr(int(value))
        if isinstance(value, float):
            if math.isnan(value):
                self.uses_math = True
                return "math.nan"
            if math.isinf(value):
                self.uses_math = True
                return "math.inf" if value > 0 else "-math.inf"
            return repr(value)
        if isinstance(value, complex):
            return repr(value)
        if isinstance(value, torch.dtype):
            self.add_import("torch", "import torch", torch)
            return str(value)
        if isinstance(value, torch.device):
            self.add_import("torch", "import torch", torch)
            return f"torch.device({str(value)!r})"
        if isinstance(value, torch.Size):
            return f"torch.Size({self.literal(list(value), where)})"
        if isinstance(value, torch.Tensor):
            return self._tensor_literal(value, where)
        if isinstance(value, slice):
            return f"slice({self.literal(value.start, where)}, {self.literal(value.stop, where)}, {self.literal(value.step, where)})"
        if isinstance(value, range):
            return repr(value)
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            raise CodeExportError(f"{where}: named tuple {type(value).__name__} cannot be written as a literal")
        if isinstance(value, tuple):
            items = [self.literal(v, where) for v in value]
            return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
        if isinstance(value, list):
            return f"[{', '.join(self.literal(v, where) for v in value)}]"
        if isinstance(value, (set, frozenset)):
            if not value:
                return "set()" if isinstance(value, set) else "frozenset()"
            items = ", ".join(sorted(self.literal(v, where) for v in value))
            return f"{{{items}}}" if isinstance(value, set) else f"frozenset({{{items}}})"
        if isinstance(value, dict):
            items = ", ".join(f"{self.literal(k, where)}: {self.literal(v, where)}" for k, v in value.items())
            return f"{{{items}}}"
        if type(value).__module__ == "numpy":
            return self._numpy_literal(value, where)
        if isinstance(value, fx.GraphModule):
            return f"{self.graph_class(value, where)}()"
        if isinstance(value, nn.Module):
            return self.construct(value, where)
        if inspect.isfunction(value) or inspect.isclass(value) or inspect.isbuiltin(value) or callable(value):
            return self.ref(value, where)
        raise CodeExportError(f"{where}: cannot write {type(value).__name__} value {value!r} as source")

    def _tensor_literal(self, value: torch.Tensor, where: str) -> str:
        if value.device.type == "meta":
            raise CodeExportError(f"{where}: a meta tensor has no values to write")
        if value.numel() > _MAX_LITERAL_NUMEL:
            raise CodeExportError(f"{where}: a {tuple(value.shape)} tensor held outside parameters and "
                                  "buffers is too large to write as a literal")
        self.add_import("torch", "import torch", torch)
        data = value.detach().cpu()
        if data.dtype in (torch.bfloat16, torch.float16) or data.is_floating_point():
            values = data.double().tolist()
        elif data.is_complex():
            values = data.tolist()
        else:
            values = data.tolist()
        body = self.literal(values, where) if isinstance(values, list) else self.literal(values, where)
        if data.dim() > 0 and data.numel() == 0:
            return f"torch.empty({tuple(data.shape)}, dtype={data.dtype})"
        return f"torch.tensor({body}, dtype={data.dtype})"

    def _numpy_literal(self, value: Any, where: str) -> str:
        import numpy as np  # noqa: PLC0415

        self.add_import("np", "import numpy as np", np)
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                return f"np.array({self.literal(value.tolist(), where)}, dtype=object)"
            return f"np.array({self.literal(value.tolist(), where)}, dtype=np.{value.dtype.name})"
        if isinstance(value, np.generic):
            return f"np.{value.dtype.name}({self.literal(value.item(), where)})"
        if isinstance(value, np.dtype):
            return f"np.dtype({value.name!r})"
        raise CodeExportError(f"{where}: cannot write numpy value {value!r}")

    # --- modules ---------------------------------------------------------------------------
    def graph_class(self, gm: fx.GraphModule, where: str = "") -> str:
        """The class generated for a subgraph, named after where it sits (``If0ThenBranch``)."""
        key = id(gm)
        if key not in self.graph_classes:
            path = re.findall(r"\w+", re.sub(r"\([^)]*\)", "", where))
            name = self._free_name(_camel("_".join(path[-2:])) if path else "Subgraph", gm)
            self.graph_classes[key] = (name, gm)
            self.names[name] = gm
            self.graph_sources[key] = self._graph_source(name, gm)
        return self.graph_classes[key][0]

    def construct(self, module: nn.Module, where: str) -> str:
        """A source expression building ``module`` (parameters and buffers with their shapes; the
        values come from the state_dict)."""
        cls = type(module)
        where = f"{where} ({cls.__name__})"
        if cls is nn.Module:
            return self._restore(module, where)
        cls_ref = self.ref(cls, where)
        for candidate in self._constructor_candidates(module, cls_ref, where):
            rebuilt = self._evaluate(candidate)
            if rebuilt is not None and _same_module(module, rebuilt):
                return candidate
        return self._restore(module, where)

    def _constructor_candidates(self, module: nn.Module, cls_ref: str, where: str):
        if type(module) in (nn.Sequential, nn.ModuleList, nn.ModuleDict):
            children = {k: self.literal(v, f"{where}[{k!r}]") for k, v in module._modules.items()}
            entries = ([f"{k!r}: {v}" for k, v in children.items()] if type(module) is nn.ModuleDict
                       else list(children.values()))
            # NOTE: long containers get one child per line (indented for a line of __init__)
            sep = ",\n            " if sum(len(e) for e in entries) > 80 else ", "
            items = sep.join(entries)
            if sep != ", ":
                items = "\n            " + items + ",\n        "
            if type(module) is nn.ModuleDict:
                yield f"nn.ModuleDict({{{items}}})"
            elif list(children) == [str(i) for i in range(len(children))]:
                yield f"nn.Sequential({items})" if type(module) is nn.Sequential else f"nn.ModuleList([{items}])"
            return
        extra = module.extra_repr()
        if "\n" not in extra:
            yield f"{cls_ref}({extra})"
        args = self._signature_args(module, where)
        if args is not None:
            yield f"{cls_ref}({args})"

    def _signature_args(self, module: nn.Module, where: str) -> str | None:
        params: dict[str, inspect.Parameter] = {}
        for klass in type(module).__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            if klass is nn.Module:
                break
            try:
                signature = inspect.signature(init)
            except (TypeError, ValueError):
                return None
            more = False
            for p in list(signature.parameters.values())[1:]:
                if p.kind is p.VAR_KEYWORD or p.kind is p.VAR_POSITIONAL:
                    more = True
                elif p.name not in params:
                    params[p.name] = p
            if not more:
                break
        parts = []
        state = {**vars(module), **module._modules, **module._parameters, **module._buffers}
        for name, p in params.items():
            if name in state:
                value = state[name]
            elif "_" + name in state:
                value = state["_" + name]
            elif p.default is not p.empty:
                continue
            else:
                return None
            if isinstance(value, torch.Tensor) or (value is None and isinstance(p.default, bool)):
                if isinstance(p.default, bool):
                    value = value is not None
                elif name in module._parameters or name in module._buffers:
                    continue
            if p.default is not p.empty and _same_value(value, p.default):
                continue
            try:
                parts.append(f"{name}={self.literal(value, f'{where}.{name}')}")
            except CodeExportError:
                return None
        return ", ".join(parts)

    def _evaluate(self, candidate: str) -> nn.Module | None:
        namespace = {**self.names, "torch": torch, "nn": nn, "math": math}
        for key, (name, gm) in self.graph_classes.items():
            namespace[name] = (lambda gm=gm: gm)
        try:
            with torch.device("meta"):
                return eval(candidate, namespace)  # noqa: S307 - our own generated expression
        except Exception:  # noqa: BLE001 - the candidate does not rebuild this module
            return None

    def _restore(self, module: nn.Module, where: str) -> str:
        """Fallback: rebuild without calling ``__init__`` (attributes set one by one)."""
        self._restore_used = True
        cls = type(module)
        base = set(vars(nn.Module()))
        attrs = {k: v for k, v in vars(module).items() if k not in base}
        for key in attrs:
            if isinstance(attrs[key], (weakref.ref, weakref.ReferenceType)):
                raise CodeExportError(f"{where}: holds a weak reference ({key})")
        parts = [self.ref(cls, where) if cls is not nn.Module else "nn.Module"]
        attr_src = self.literal(attrs, where)
        children = "{" + ", ".join(f"{k!r}: {self.literal(v, f'{where}.{k}')}" for k, v in module._modules.items()) + "}"
        params = "{" + ", ".join(f"{k!r}: {_empty(v, True)}" for k, v in module._parameters.items()) + "}"
        buffers = "{" + ", ".join(f"{k!r}: {_empty(v, False)}" for k, v in module._buffers.items()) + "}"
        if module._non_persistent_buffers_set:
            raise CodeExportError(f"{where}: non-persistent buffers are not saved in the state_dict")
        return f"_restore({parts[0]}, {attr_src}, {children}, {params}, {buffers})"

    # --- graphs ------------------------------------------------------------------------------
    def _graph_source(self, class_name: str, gm: fx.GraphModule) -> str:
        lines = [f"class {class_name}(nn.Module):"]
        doc = "The converted ONNX graph." if gm is self.root else "An ONNX subgraph (If / Loop / Scan body)."
        lines.append(f'    """{doc}"""')
        lines.append("")
        lines.append("    def __init__(self):")
        lines.append("        super().__init__()")
        for name, child in gm.named_children():
            lines.append(f"        self.{name} = {self.literal(child, f'{class_name}.{name}')}")
        for name, param in gm.named_parameters(recurse=False):
            lines.append(f"        self.{name} = {_empty(param, True)}")
        for name, buf in gm.named_buffers(recurse=False):
            if name in gm._non_persistent_buffers_set:
                raise CodeExportError(f"{class_name}.{name}: non-persistent buffers are not saved in the state_dict")
            lines.append(f"        self.register_buffer({name!r}, {_empty(buf, False)})")
        for key in _KEPT_ATTRIBUTES:
            if key in vars(gm):
                lines.append(f"        self.{key} = {self.literal(vars(gm)[key], f'{class_name}.{key}')}")
        lines.append("")
        lines.extend("    " + line if line else "" for line in self._forward(gm).splitlines())
        return "\n".join(lines).rstrip() + "\n"

    def _forward(self, gm: fx.GraphModule) -> str:
        graph = fx.Graph()
        value_map: dict[fx.Node, fx.Node] = {}
        out = graph.graph_copy(gm.graph, value_map)
        graph.output(out)
        code = graph.python_code("self")
        used = {tok.string for tok in tokenize.generate_tokens(io.StringIO(code.src).readline) if tok.type == tokenize.NAME}
        mapping: dict[str, str] = {}
        for name, obj in code.globals.items():
            if name not in used or name == "__builtins__":
                continue
            if name in ("inf", "nan") and isinstance(obj, float):
                self.uses_math = True
                mapping[name] = "math.inf" if name == "inf" else "math.nan"
                continue
            expr = self.ref(obj, f"forward of {type(gm).__name__}")
            if expr != name:
                mapping[name] = expr
        # names of values: drop the "_output_0" ONNX puts on every output; keep clear of globals
        taken = set(self.names) | self.reserved | {e.split(".")[0] for e in mapping.values()} | set(code.globals)
        renames: dict[str, str] = {}
        for node in graph.nodes:
            if node.op in ("output",):
                continue
            short = re.sub(r"_output(?:_0)?(?=$|_device$)", "", node.name) or node.name
            new, i = short, 1
            while new in taken or (new != node.name and new in {n.name for n in graph.nodes}):
                i += 1
                new = f"{short}_{i}"
            taken.add(new)
            if new != node.name:
                renames[node.name] = new
        code = graph.python_code("self")
        source = code.src
        # fx's "x = None" frees after each line: hand-written code does not have them
        source = re.sub(r";\s+(?:\w+ = )+None$", "", source, flags=re.M)
        source = _replace_names(source, {**mapping, **renames})
        source = _inline_attributes(source)
        source = _tight_keywords(source)
        return source.strip("\n") + "\n"

    # --- the file ----------------------------------------------------------------------------
    def ordered_helpers(self) -> list[_Helper]:
        """Constants, then classes and functions, dependencies first (bases before subclasses)."""
        done: set[int] = set()
        order: list[_Helper] = []
        by_obj = {id(h.obj): h for h in self.helpers.values()}

        def visit(helper: _Helper, stack: set[int]) -> None:
            key = id(helper.obj)
            if key in done or key in stack:
                return
            stack.add(key)
            for dep in helper.deps:
                if id(dep) in by_obj:
                    visit(by_obj[id(dep)], stack)
            stack.discard(key)
            done.add(key)
            order.append(helper)

        for helper in list(self.helpers.values()):
            visit(helper, set())
        constants = [h for h in order if h.kind == "constant"]
        rest = [h for h in order if h.kind != "constant"]
        # a constant may hold functions (a dispatch table): those go after the functions
        early = [h for h in constants if not any(id(d) in by_obj and by_obj[id(d)].kind != "constant" for d in h.deps)]
        late = [h for h in constants if h not in early]
        return early + rest + late


def _public_paths(qualified: str, obj: Any) -> list[str]:
    """Dotted paths, shortest public one first, that resolve to ``obj``."""
    candidates = [qualified]
    parts = qualified.split(".")
    name = parts[-1]
    if parts[0] == "torch":
        candidates = [f"torch.{name}", f"torch.nn.functional.{name}", f"torch.nn.{name}", f"torch.special.{name}",
                      f"torch.linalg.{name}", f"torch.fft.{name}", qualified]
    found = []
    for path in candidates:
        bits = path.split(".")
        try:
            value = importlib.import_module(bits[0])
            for bit in bits[1:]:
                value = getattr(value, bit)
        except (ImportError, AttributeError):
            continue
        if value is obj and path not in found:
            found.append(path)
    return found


def _rename_globals(source: str, mapping: dict[str, str]) -> str:
    """Rename module-level names in one helper's source (its own name included), leaving locals,
    attributes and keyword names alone."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    edits = []
    for node in _global_refs(tree):
        if node.id in mapping:
            edits.append((node.lineno, node.col_offset, node.end_col_offset, mapping[node.id]))
    for row, start, end, new in sorted(edits, reverse=True):
        raw = lines[row - 1].encode("utf-8")
        lines[row - 1] = (raw[:start] + new.encode("utf-8") + raw[end:]).decode("utf-8")
    top = tree.body[0]
    if isinstance(top, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and top.name in mapping:
        lines[top.lineno - 1] = re.sub(rf"\b(def|class)\s+{re.escape(top.name)}\b",
                                       rf"\1 {mapping[top.name]}", lines[top.lineno - 1], count=1)
    return "".join(lines)


def _inline_attributes(source: str) -> str:
    """``w = self.w`` (and ``a = b``) lines of fx folded into the lines that use ``w``."""
    lines = source.splitlines()
    mapping: dict[str, str] = {}
    kept = []
    for line in lines:
        # fx's "w = self.w" attribute reads, and "input_1 = input" for an argument named after a builtin
        match = re.fullmatch(r"(\s*)(\w+) = (self(?:\.\w+)+|\w+)", line)
        if match and not keyword.iskeyword(match.group(3)) and match.group(3) not in ("None", "True", "False"):
            mapping[match.group(2)] = match.group(3)
            continue
        kept.append(line)
    result = "\n".join(kept) + "\n"
    if not mapping:
        return result
    # NOTE: `self.a.b` is not a NAME token, so the replacement is done on the rendered text once.
    return _replace_names(result, mapping)


def _tight_keywords(source: str) -> str:
    """``f(x, dim = 1)`` as ``f(x, dim=1)`` (fx spaces keyword arguments)."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    lines = source.splitlines(keepends=True)
    edits = []
    depth = 0
    for tok in tokens:
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        elif tok.type == tokenize.OP and tok.string == "=" and depth > 0:
            edits.append(tok.start)
    for row, col in reversed(edits):
        line = lines[row - 1]
        left = line[:col].rstrip(" ")
        right = line[col + 1:].lstrip(" ")
        lines[row - 1] = left + "=" + right
    return "".join(lines)


def _empty(tensor: torch.Tensor | None, parameter: bool) -> str:
    if tensor is None:
        return "None"
    shape = tuple(tensor.shape)
    empty = f"torch.empty({shape}, dtype={tensor.dtype})"
    if not parameter:
        return empty
    grad = "" if tensor.requires_grad else ", requires_grad=False"
    return f"nn.Parameter({empty}{grad})"


# --- comparing a rebuilt module with the original -----------------------------------------------
_BASE_KEYS = frozenset(vars(nn.Module()))


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        if a.shape != b.shape or isinstance(a, nn.Parameter) != isinstance(b, nn.Parameter):
            return False
        if a.device.type == "meta" or b.device.type == "meta":
            return True
        return a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, nn.Module) or isinstance(b, nn.Module):
        return isinstance(a, nn.Module) and isinstance(b, nn.Module) and _same_module(a, b)
    if isinstance(a, torch.Generator) or isinstance(b, torch.Generator):
        return True  # random state a module creates as it runs, not configuration
    if isinstance(a, (weakref.ref, weakref.ReferenceType)):
        return isinstance(b, (weakref.ref, weakref.ReferenceType))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # noqa: BLE001 - values that do not compare
        return a is b


def _same_module(a: nn.Module, b: nn.Module) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if a._parameters.keys() != b._parameters.keys() or a._buffers.keys() != b._buffers.keys():
        return False
    for store_a, store_b in ((a._parameters, b._parameters), (a._buffers, b._buffers)):
        for key, value in store_a.items():
            other = store_b[key]
            if (value is None) != (other is None) or (value is not None and value.shape != other.shape):
                return False
    if a._non_persistent_buffers_set != b._non_persistent_buffers_set:
        return False
    if a._modules.keys() != b._modules.keys():
        return False
    if not all(_same_value(a._modules[k], b._modules[k]) for k in a._modules):
        return False
    keys_a = {k for k in vars(a) if k not in _BASE_KEYS}
    keys_b = {k for k in vars(b) if k not in _BASE_KEYS}
    if keys_a != keys_b:
        return False
    return all(_same_value(vars(a)[k], vars(b)[k]) for k in keys_a)


# --- the file -------------------------------------------------------------------------------
_RESTORE_SOURCE = '''\
def _restore(cls, attributes, children, parameters, buffers):
    """A module of class ``cls`` rebuilt from its attributes (its __init__ is not called)."""
    module = cls.__new__(cls)
    nn.Module.__init__(module)
    module.__dict__.update(attributes)
    for name, child in children.items():
        module.add_module(name, child)
    for name, value in parameters.items():
        module.register_parameter(name, value)
    for name, value in buffers.items():
        module.register_buffer(name, value)
    return module
'''


def _render(writer: _Writer, model_class: str, weights_name: str, stem: str) -> str:
    helpers = writer.ordered_helpers()
    # the root class goes last: subgraph classes it instantiates are defined before it
    root = [src for key, src in writer.graph_sources.items() if writer.graph_classes[key][0] == model_class]
    subs = [src for key, src in writer.graph_sources.items() if writer.graph_classes[key][0] != model_class]
    parts = [
        f'"""{stem}: a PyTorch model written by onnx2torch (standalone: needs only torch).\n\n'
        f"    from {stem} import load_model\n"
        f"    model = load_model()  # weights from {weights_name} beside this file\n"
        '"""\n'
        "from __future__ import annotations\n\n"
    ]
    imports = {"import os", "import torch", "from torch import nn"}
    if writer.uses_math:
        imports.add("import math")
    imports.update(writer.imports.values())
    def order(statement: str) -> tuple:
        return (statement.split()[1], statement.startswith("from"), statement)

    std = sorted((i for i in imports if _import_root(i) in sys.stdlib_module_names), key=order)
    third = sorted((i for i in imports if _import_root(i) not in sys.stdlib_module_names), key=order)
    parts.append("\n".join(std) + "\n\n" + "\n".join(third) + "\n")
    if helpers or writer._restore_used:
        parts.append("\n\n# --- run-time helpers copied from onnx2torch.ops (ops torch has no exact equivalent for) ---\n")
        for helper in helpers:
            if helper.kind == "constant":
                parts.append(helper.source)
            else:
                parts.append("\n\n" + helper.source.rstrip() + "\n")
        if writer._restore_used:
            parts.append("\n\n" + _RESTORE_SOURCE)
    for src in subs + root:
        parts.append("\n\n" + src)
    parts.append(
        "\n\n"
        f"def load_model(path: str | None = None, map_location: str | torch.device = \"cpu\") -> {model_class}:\n"
        f'    """The model with its weights ({weights_name} beside this file unless ``path`` is given), in eval mode."""\n'
        "    if path is None:\n"
        f"        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), {weights_name!r})\n"
        '    with torch.device("meta"):\n'
        f"        model = {model_class}()\n"
        "    state = torch.load(path, map_location=map_location, weights_only=True)\n"
        "    model.load_state_dict(state, assign=True)\n"
        "    return model.eval()\n"
    )
    return "".join(parts)


def _import_file(path: str) -> types.ModuleType:
    name = f"_onnx2torch_export_check_{abs(hash(path))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in _flatten(item)]
    return [value]


def _run_original(model: nn.Module, example_inputs: Sequence[Any]) -> tuple[list, list]:
    """The original's outputs on the example, twice (a random op does not repeat itself)."""
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return _flatten(model(*example_inputs)), _flatten(model(*example_inputs))
    except Exception as exc:
        raise CodeExportError(f"example_inputs do not run through the model itself: {type(exc).__name__}: {exc}") from exc
    finally:
        model.train(training)


def _check(module: types.ModuleType, model: nn.Module, weights: str, example_inputs: Sequence[Any] | None,
           reference: tuple[list, list] | None) -> None:
    rebuilt = module.load_model(weights)
    original = dict(model.state_dict())
    state = rebuilt.state_dict()
    if original.keys() != state.keys():
        raise CodeExportError(f"the generated model's state_dict keys differ: {sorted(set(original) ^ set(state))[:5]}")
    for sub in rebuilt.modules():
        for key, value in vars(sub).items():
            if isinstance(value, torch.Tensor) and value.device.type == "meta":
                raise CodeExportError(f"{type(sub).__name__}.{key} is not restored by the state_dict")
        for key, value in list(sub.named_parameters(recurse=False)) + list(sub.named_buffers(recurse=False)):
            if value.device.type == "meta":
                raise CodeExportError(f"{type(sub).__name__}.{key} is not restored by the state_dict")
    if example_inputs is None or reference is None:
        return
    expected, again = reference
    with torch.no_grad():
        got = _flatten(rebuilt(*example_inputs))
    if len(expected) != len(got):
        raise CodeExportError(f"the generated model returns {len(got)} outputs, the original {len(expected)}")
    for i, (e, g) in enumerate(zip(expected, got)):
        if isinstance(e, torch.Tensor):
            if not isinstance(g, torch.Tensor) or e.shape != g.shape or e.dtype != g.dtype:
                raise CodeExportError(f"output {i} of the generated model differs in type or shape")
            random = not torch.equal(e, again[i]) and not (e.is_floating_point() and torch.equal(e.isnan(), again[i].isnan())
                                                          and torch.equal(e.nan_to_num(), again[i].nan_to_num()))
            if random:
                continue  # a random op: the original does not repeat itself either
            if not torch.equal(e, g) and not torch.allclose(e, g, rtol=1e-5, atol=1e-6, equal_nan=True):
                raise CodeExportError(f"output {i} of the generated model differs from the original's")


def export_code(model: nn.Module, path: str | os.PathLike, *, example_inputs: Sequence[Any] | None = None,
                check: bool = True) -> tuple[str, str]:
    """Write ``model`` (a converted ``torch.fx.GraphModule``) as standalone PyTorch source.

    ``path`` is the ``.py`` file to write; the weights go beside it with the suffix ``.pt``.
    The generated module defines the model class and ``load_model(path=None)``.  With ``check``
    the file is imported right away and its model compared with ``model``: same state_dict keys
    and, when ``example_inputs`` are given, the same outputs.  Returns ``(code_path, weights_path)``.
    """
    if not isinstance(model, fx.GraphModule):
        raise CodeExportError(f"export_code takes a converted model (a torch.fx.GraphModule), got {type(model).__name__}")
    code_path = os.fspath(path)
    if not code_path.endswith(".py"):
        raise CodeExportError(f"the code path must end in .py, got '{code_path}'")
    stem = os.path.splitext(os.path.basename(code_path))[0]
    weights_path = os.path.splitext(code_path)[0] + ".pt"
    weights_name = os.path.basename(weights_path)
    writer = _Writer()
    writer.root = model
    model_class = _camel(stem)
    writer.names[model_class] = model
    writer.graph_classes[id(model)] = (model_class, model)
    writer.graph_sources[id(model)] = writer._graph_source(model_class, model)
    source = _render(writer, model_class, weights_name, _identifier(stem))
    compile(source, code_path, "exec")  # a syntax error here is a bug of this module
    reference = _run_original(model, example_inputs) if check and example_inputs is not None else None
    state = {k: v.detach() for k, v in model.state_dict().items()}
    folder = os.path.dirname(os.path.abspath(code_path))
    os.makedirs(folder, exist_ok=True)
    # NOTE: both files are written and checked in a scratch folder beside the targets, then moved
    # into place: a failure leaves nothing behind, and never a .py without its weights.
    with tempfile.TemporaryDirectory(dir=folder, prefix=".onnx2torch-") as scratch:
        staged_code = os.path.join(scratch, os.path.basename(code_path))
        staged_weights = os.path.join(scratch, weights_name)
        torch.save(state, staged_weights)
        with open(staged_code, "w", encoding="utf-8") as handle:
            handle.write(source)
        if check:
            try:
                _check(_import_file(staged_code), model, staged_weights, example_inputs, reference)
            except CodeExportError:
                raise
            except Exception as exc:
                raise CodeExportError(f"the generated {os.path.basename(code_path)} does not run: "
                                      f"{type(exc).__name__}: {exc}") from exc
        os.replace(staged_weights, weights_path)
        os.replace(staged_code, code_path)
    return code_path, weights_path
