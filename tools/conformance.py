"""Run ONNX's node conformance cases through ``onnx2torch.ConvertModel`` and report what fails.

    python tools/conformance.py [--filter SUBSTR] [--op OP] [--jobs 2] [--timeout 30] [--by-op]
                                [--json OUT.json] [--failures-md [OUT.md]]
                                [--write-xfail tests/conformance_xfail.py]

Every case of ``onnx.backend.test.case.node.collect_testcases()`` is converted in memory with
``ConvertModel(case.model, simplify=False)``, run on each of its data sets and compared with the
expected outputs: rtol 1e-3 / atol 1e-5 for floats, exact values for everything else, and the
dtype must match (bfloat16 and float8 as torch's own dtypes; int4/uint4/int2/uint2 may come back
as int8/uint8 and float4 as float32 with the same values) — the rules of the project's benchmark.

Each case runs in a forked child process with a time limit, so a hang or a crash costs one case.
The report gives the pass count and the failures grouped by operator with the first line of each
error.  ``--write-xfail`` records the current failures in the expected-failure list that
``tests/test_conformance.py`` reads, keeping the reasons already written there by hand.
"""
from __future__ import annotations

import argparse
import ast
import functools
import json
import multiprocessing as mp
import os
import re
import sys
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import onnx  # noqa: E402
import torch  # noqa: E402
from onnx import TensorProto, numpy_helper  # noqa: E402

from onnx2torch import ConvertModel  # noqa: E402
from onnx2torch.dtypes import to_torch  # noqa: E402

__all__ = [
    "CaseResult",
    "DEFAULT_TIMEOUT",
    "load_cases",
    "case_op",
    "compare",
    "run_case",
    "run_isolated",
    "run_cases",
    "select",
    "read_xfail",
    "write_xfail",
]

RTOL, ATOL = 1e-3, 1e-5
DEFAULT_TIMEOUT = float(os.environ.get("CONFORMANCE_TIMEOUT", "30"))
PASS = "pass"

_SUBBYTE_CARRIERS = {"int4": "int8", "int2": "int8", "uint4": "uint8", "uint2": "uint8"}


def _is_low_precision(dtype_name: str) -> bool:
    """bfloat16 and the float8 family: compared as torch's own dtypes, never as float32."""
    return dtype_name == "bfloat16" or dtype_name.startswith("float8")


@dataclass
class CaseResult:
    """The outcome of one case: ``status`` is pass, convert_fail, run_fail, mismatch, timeout or
    crash; ``why`` the first line of the error."""

    case: str
    op: str
    status: str
    why: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == PASS


# --- cases ----------------------------------------------------------------------------------
_CASES: dict[str, Any] | None = None
_OPS: dict[str, str] = {}


def load_cases() -> dict[str, Any]:
    """Every ONNX node test case by name (collected once per process)."""
    global _CASES
    if _CASES is None:
        from onnx.backend.test.case.node import collect_testcases  # noqa: PLC0415

        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            _CASES = {case.name: case for case in collect_testcases()}
    return _CASES


@functools.lru_cache(maxsize=1)
def _schema_names() -> tuple[str, ...]:
    return tuple(sorted({schema.name for schema in onnx.defs.get_all_schemas_with_history()}))


def _compact(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def case_op(name: str) -> str:
    """The operator a case tests, for grouping: the graph op whose name starts the case name
    (``test_gemm_alpha`` -> Gemm; ``*_expanded`` cases take their base case's op)."""
    if name in _OPS:
        return _OPS[name]
    cases = load_cases()
    base = re.sub(r"_expanded(_ver\d+)?$", "", name)
    graph = (cases.get(base) or cases[name]).model.graph
    key = _compact(base[len("test_"):])
    ops = list(dict.fromkeys(node.op_type for node in graph.node))
    matches = [op for op in ops if key.startswith(_compact(op))]
    if not matches:
        real = [op for op in ops if op not in ("Constant", "Identity")]
        if len(real) == 1:
            matches = real
    if not matches:
        matches = [op for op in _schema_names() if key.startswith(_compact(op))]
    op = max(matches, key=len) if matches else (ops[-1] if ops else "?")
    _OPS[name] = op
    return op


# --- values ---------------------------------------------------------------------------------
def _as_numpy(value: Any) -> Any:
    """A data-set value as the benchmark reads it from disk: arrays, lists for sequences, None."""
    if value is None:
        return None
    if isinstance(value, TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, (list, tuple)):
        return [_as_numpy(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_numpy(v) for k, v in value.items()}
    return np.asarray(value)


def _to_torch_input(value: Any) -> Any:
    """numpy -> what the converted module takes: tensors, lists of tensors, None, string arrays."""
    if value is None:
        return None
    if isinstance(value, list):
        return [_to_torch_input(v) for v in value]
    if isinstance(value, np.ndarray) and value.dtype == object:
        return value
    if isinstance(value, np.ndarray):
        return to_torch(value)
    return value


def _to_numpy_output(value: Any) -> Any:
    """torch -> numpy, with bfloat16/float8 as ml_dtypes arrays; tuples and lists kept apart."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        name = str(value.dtype).removeprefix("torch.")
        if _is_low_precision(name):
            import ml_dtypes  # noqa: PLC0415

            raw = torch.uint16 if value.element_size() == 2 else torch.uint8
            return value.view(raw).numpy().view(getattr(ml_dtypes, name))
        return value.numpy()
    if isinstance(value, tuple):
        return tuple(_to_numpy_output(v) for v in value)
    if isinstance(value, list):
        return [_to_numpy_output(v) for v in value]
    if value is None:
        return None
    return np.asarray(value)


def compare(expected: Any, got: Any) -> str | None:
    """``None`` when ``got`` matches ``expected``, else why not."""
    if expected is None:
        return None if got is None else f"expected an empty optional, got {type(got).__name__}"
    if isinstance(expected, list):
        if not isinstance(got, (list, tuple)):
            return f"expected a sequence, got {type(got).__name__}"
        if len(got) != len(expected):
            return f"sequence length {len(got)} != {len(expected)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            why = compare(e, g)
            if why:
                return f"sequence item {i}: {why}"
        return None
    if got is None:
        return "got None"
    expected, got = np.asarray(expected), np.asarray(got)
    exp_name = expected.dtype.name
    # NOTE: torch has no sub-byte ints or float4: the project carries them as int8/uint8 and
    # float32 with the same values, and the benchmark accepts exactly that.
    if exp_name in _SUBBYTE_CARRIERS and got.dtype.name == _SUBBYTE_CARRIERS[exp_name]:
        expected = expected.astype(got.dtype)
    elif exp_name.startswith("float4") and got.dtype == np.float32:
        expected = expected.astype(np.float32)
    if _is_low_precision(expected.dtype.name):
        if got.dtype != expected.dtype:
            return f"dtype {got.dtype} != {expected.dtype}"
        expected, got = expected.astype(np.float32), got.astype(np.float32)
    if expected.shape != got.shape and not (expected.size == got.size and expected.size <= 1):
        return f"shape {got.shape} != {expected.shape}"
    if expected.dtype == object or expected.dtype.kind in "US":
        same = [str(v) for v in got.ravel()] == [str(v) for v in expected.ravel()]
        return None if same else "strings differ"
    if expected.dtype.kind in "fc":
        if got.dtype.kind not in "fciub":
            return f"dtype {got.dtype} != {expected.dtype}"
        g = got.reshape(expected.shape).astype(np.complex128 if expected.dtype.kind == "c" else np.float64)
        e = expected.astype(g.dtype)
        if not np.allclose(g, e, rtol=RTOL, atol=ATOL, equal_nan=True):
            with np.errstate(invalid="ignore"):
                err = np.nanmax(np.abs(g - e)) if g.size else 0.0
            dtype_note = "" if got.dtype == expected.dtype else f", dtype {got.dtype} != {expected.dtype}"
            return f"values differ (max abs error {err:.3g}){dtype_note}"
        return None if got.dtype == expected.dtype else f"dtype {got.dtype} != {expected.dtype}"
    if got.dtype != expected.dtype:
        values = "same values" if np.array_equal(got.reshape(expected.shape), expected) else "values differ"
        return f"dtype {got.dtype} != {expected.dtype} ({values})"
    if not np.array_equal(got.reshape(expected.shape), expected):
        return f"values differ ({int((got.reshape(expected.shape) != expected).sum())} of {expected.size})"
    return None


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _outputs_as_list(raw: Any, graph: onnx.GraphProto) -> list[Any]:
    """The module's result as one entry per graph output."""
    if len(graph.output) > 1:
        return list(raw)
    if isinstance(raw, tuple) and len(raw) == 1:
        return [raw[0]]
    if isinstance(raw, list) and len(raw) == 1 and not graph.output[0].type.HasField("sequence_type"):
        return [raw[0]]
    return [raw]


# --- running --------------------------------------------------------------------------------
def run_case(name: str) -> CaseResult:
    """Convert and run one case in this process."""
    case = load_cases()[name]
    op = case_op(name)
    # random ops (Bernoulli, training-mode Dropout) draw the same numbers on every run
    torch.manual_seed(0)
    start = time.perf_counter()
    try:
        module = ConvertModel(case.model, simplify=False).eval()
    except Exception as exc:  # noqa: BLE001 - every failure is a result
        return CaseResult(name, op, "convert_fail", _first_line(exc), time.perf_counter() - start)
    for index, (inputs, outputs) in enumerate(case.data_sets):
        expected = [_as_numpy(v) for v in outputs]
        try:
            args = [_to_torch_input(_as_numpy(v)) for v in inputs]
            with torch.no_grad():
                raw = module(*args)
            got = _outputs_as_list(_to_numpy_output(raw), case.model.graph)
        except Exception as exc:  # noqa: BLE001
            return CaseResult(name, op, "run_fail", _first_line(exc), time.perf_counter() - start)
        if len(got) < len(expected):
            why = f"{len(got)} outputs, expected {len(expected)}"
            return CaseResult(name, op, "mismatch", why, time.perf_counter() - start)
        for out, (e, g) in enumerate(zip(expected, got)):
            why = compare(e, g)
            if why:
                prefix = f"data set {index} " if len(case.data_sets) > 1 else ""
                why = f"{prefix}output {out} '{case.model.graph.output[out].name}': {why}"
                return CaseResult(name, op, "mismatch", why, time.perf_counter() - start)
    return CaseResult(name, op, PASS, "", time.perf_counter() - start)


def _child(name: str, conn, quiet: bool) -> None:
    """Entry point of a forked child: run one case, send the result back."""
    if quiet:
        # NOTE: torch.fx prints the generated code of a failing forward to stderr; the result
        # carries the error, so the child's own output is dropped.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    try:
        result = run_case(name)
    except BaseException as exc:  # noqa: BLE001 - the harness itself failed on this case
        result = CaseResult(name, _OPS.get(name, "?"), "crash", _first_line(exc))
    conn.send(asdict(result))
    conn.close()


def _start(name: str, quiet: bool = True):
    recv, send = mp.get_context("fork").Pipe(duplex=False)
    process = mp.get_context("fork").Process(target=_child, args=(name, send, quiet), daemon=True)
    process.start()
    send.close()
    return process, recv


def _finish(name: str, process, conn, timed_out: bool, limit: float) -> CaseResult:
    if timed_out:
        process.kill()
        process.join()
        conn.close()
        return CaseResult(name, case_op(name), "timeout", f"no result within {limit:g} s", limit)
    try:
        result = CaseResult(**conn.recv())
    except (EOFError, OSError):
        process.join()
        result = CaseResult(name, case_op(name), "crash", f"worker died (exit code {process.exitcode})")
    process.join()
    conn.close()
    return result


def run_isolated(name: str, timeout: float = DEFAULT_TIMEOUT, quiet: bool = True) -> CaseResult:
    """Run one case in a forked child with a time limit."""
    process, conn = _start(name, quiet)
    ready = wait([conn], timeout)
    return _finish(name, process, conn, not ready, timeout)


def run_cases(
    names: list[str],
    jobs: int = 2,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = False,
    quiet: bool = True,
) -> list[CaseResult]:
    """Run cases ``jobs`` at a time, each in its own forked child with a time limit."""
    load_cases()
    for name in names:
        case_op(name)  # computed once here, inherited by every child
    pending = list(reversed(names))
    running: dict[Any, tuple[str, Any, float]] = {}
    results: list[CaseResult] = []
    while pending or running:
        while pending and len(running) < jobs:
            name = pending.pop()
            process, conn = _start(name, quiet)
            running[conn] = (name, process, time.monotonic())
        deadline = min(start for _, _, start in running.values()) + timeout
        ready = wait(list(running), max(0.0, deadline - time.monotonic()))
        now = time.monotonic()
        for conn in list(running):
            name, process, start = running[conn]
            if conn in ready or now - start >= timeout:
                del running[conn]
                results.append(_finish(name, process, conn, conn not in ready, timeout))
        if progress:
            print(f"\r{len(results)}/{len(names)}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return sorted(results, key=lambda r: r.case)


# --- expected-failure list ------------------------------------------------------------------
XFAIL_HEADER = '''"""ONNX node conformance cases that onnx2torch is expected to fail, with why.

Read by tests/test_conformance.py: a case listed here that passes FAILS the test, so delete its
line when a converter starts to pass it.  Regenerate with
``python tools/conformance.py --write-xfail tests/conformance_xfail.py`` (reasons already written
here are kept; new entries get the first line of their error as a placeholder).
"""

XFAIL: dict[str, str] = {
'''


def read_xfail(path: str | os.PathLike) -> dict[str, str]:
    """The ``XFAIL`` dict of an expected-failure file (empty when there is none)."""
    path = Path(path)
    if not path.is_file():
        return {}
    tree = ast.parse(path.read_text())
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "XFAIL" and node.value is not None:
            return dict(ast.literal_eval(node.value))
    return {}


def write_xfail(path: str | os.PathLike, results: list[CaseResult], keep: dict[str, str] | None = None) -> dict[str, str]:
    """Write the failures of ``results`` (plus ``keep``: entries of cases not run this time) as
    the expected-failure file, grouped by operator; reasons already in ``path`` are kept."""
    old = read_xfail(path)
    entries = dict(keep or {})
    for result in results:
        entries.pop(result.case, None)
        if not result.passed:
            entries[result.case] = old.get(result.case) or f"{result.status}: {result.why}"
    by_op: dict[str, list[str]] = defaultdict(list)
    for name in entries:
        by_op[case_op(name) if name in load_cases() else "?"].append(name)
    lines = [XFAIL_HEADER]
    for op in sorted(by_op, key=str.lower):
        lines.append(f"    # {op}\n")
        for name in sorted(by_op[op]):
            lines.append(f"    {name!r}: {entries[name]!r},\n")
    lines.append("}\n")
    Path(path).write_text("".join(lines))
    return entries


# --- reporting ------------------------------------------------------------------------------
def _failures_by_op(results: list[CaseResult]) -> list[tuple[str, int, list[CaseResult]]]:
    totals = Counter(r.op for r in results)
    failed: dict[str, list[CaseResult]] = defaultdict(list)
    for r in results:
        if not r.passed:
            failed[r.op].append(r)
    order = sorted(failed, key=lambda op: (-len(failed[op]), op.lower()))
    return [(op, totals[op], failed[op]) for op in order]


def summary_line(results: list[CaseResult]) -> str:
    counts = Counter(r.status for r in results)
    passed = counts.pop(PASS, 0)
    pct = 100.0 * passed / len(results) if results else 0.0
    rest = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
    return f"pass {passed} / {len(results)} ({pct:.1f}%)" + (f"; {rest}" if rest else "")


def format_text(results: list[CaseResult], width: int = 160) -> str:
    lines = [summary_line(results)]
    groups = _failures_by_op(results)
    if groups:
        lines.append("")
        lines.append("failures by operator (failed/total):")
    for op, total, failed in groups:
        lines.append(f"{op}  {len(failed)}/{total}")
        name_width = max(len(r.case) for r in failed)
        for r in failed:
            line = f"    {r.case:<{name_width}}  {r.status:<12}  {r.why}"
            lines.append(line if len(line) <= width else line[: width - 3] + "...")
    return "\n".join(lines)


def format_by_op(results: list[CaseResult]) -> str:
    """Pass counts per operator, one line each."""
    totals, passed = Counter(r.op for r in results), Counter(r.op for r in results if r.passed)
    width = max(len(op) for op in totals)
    return "\n".join(f"{op:<{width}}  {passed[op]}/{totals[op]}" for op in sorted(totals, key=str.lower))


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_markdown(results: list[CaseResult]) -> str:
    lines = [f"**{summary_line(results)}**", "", "| op | failed/total | case | status | error |", "|---|---|---|---|---|"]
    for op, total, failed in _failures_by_op(results):
        for i, r in enumerate(failed):
            head = (f"{op}", f"{len(failed)}/{total}") if i == 0 else ("", "")
            lines.append(f"| {head[0]} | {head[1]} | `{r.case}` | {r.status} | {_md_cell(r.why)} |")
    return "\n".join(lines) + "\n"


def select(filters: list[str] | None = None, ops: list[str] | None = None) -> list[str]:
    """Case names containing any of ``filters`` and testing any of ``ops`` (all when empty)."""
    names = sorted(load_cases())
    if filters:
        names = [n for n in names if any(f in n for f in filters)]
    if ops:
        wanted = {op.lower() for op in ops}
        names = [n for n in names if case_op(n).lower() in wanted]
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--filter", action="append", metavar="SUBSTR",
                        help="only cases whose name contains SUBSTR (repeatable)")
    parser.add_argument("--op", action="append", metavar="OP", help="only cases testing operator OP (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds per case (default {DEFAULT_TIMEOUT:g}; env CONFORMANCE_TIMEOUT)")
    parser.add_argument("--json", metavar="OUT", help="write every result as JSON")
    parser.add_argument("--failures-md", nargs="?", const="-", metavar="OUT",
                        help="the failure table as Markdown, to OUT or stdout")
    parser.add_argument("--write-xfail", metavar="PATH",
                        help="record the failures as the expected-failure list (tests/conformance_xfail.py)")
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")
    parser.add_argument("--by-op", action="store_true", help="also print the pass count of every operator")
    parser.add_argument("--show-output", action="store_true", help="let the cases print (tracebacks of fx code...)")
    args = parser.parse_args(argv)

    names = select(args.filter, args.op)
    if not names:
        print("no case matches", file=sys.stderr)
        return 2
    started = time.perf_counter()
    results = run_cases(names, jobs=max(1, args.jobs), timeout=args.timeout, progress=sys.stderr.isatty(),
                        quiet=not args.show_output)
    elapsed = time.perf_counter() - started

    if args.failures_md == "-":
        print(format_markdown(results))
    else:
        print(summary_line(results) if args.quiet else format_text(results))
        if args.by_op:
            print("\npass counts by operator:\n" + format_by_op(results))
        if args.failures_md:
            Path(args.failures_md).write_text(format_markdown(results))
    print(f"({len(results)} cases in {elapsed:.0f} s, {args.jobs} jobs)", file=sys.stderr)
    if args.json:
        payload = {"summary": summary_line(results), "results": [asdict(r) for r in results]}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
    if args.write_xfail:
        ran = {r.case for r in results}
        keep = {k: v for k, v in read_xfail(args.write_xfail).items() if k not in ran and k in load_cases()}
        entries = write_xfail(args.write_xfail, results, keep)
        print(f"wrote {len(entries)} expected failures to {args.write_xfail}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
