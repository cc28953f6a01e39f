"""Beyond-inference checks over the model corpus of ``tools/zoo.py``: standalone code export,
torch.export with a dynamic batch, torch.compile(fullgraph=True) and a run on the meta device.

    python tools/zoo_extras.py [--work /tmp/onnx2torch_zoo] [--mode code export compile meta]
                               [--filter NAME] [--max_mb 40] [--jsonl OUT.jsonl]

Every ONNX file under ``--work`` (built by ``python tools/zoo.py --build-only``) is converted with
the default settings and run on seeded inputs: symbolic dims are 2 for the first (batch) and 64
for image sides, 8 for other dims (3200 samples for audio); attention masks are ones and
token-type ids 0/1.  Per mode:

- ``code``: ``export_code`` to a scratch folder, with the inputs as ``example_inputs`` (the file
  is imported and its outputs compared with the converted model's);
- ``export``: ``torch.export.export(strict=False)`` with ``Dim.AUTO`` on every input's first dim
  when it is symbolic, the exported program run at twice the batch and compared with eager;
- ``compile``: ``torch.compile(fullgraph=True, backend="aot_eager")`` under ``no_grad`` (with
  ``allow_rnn`` for nn.LSTM / nn.GRU), compared with eager;
- ``meta``: the model and inputs moved to the meta device and run (a tensor forward creates on a
  fixed device fails there).

Prints one line per model and a summary per mode.
"""
from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import onnx2torch  # noqa: E402
from onnx2torch.export_code import export_code  # noqa: E402
from onnx2torch.verify import _torch_args, make_inputs  # noqa: E402

MODES = ("code", "export", "compile", "meta")


class _Timeout(Exception):
    pass


def _alarm(*_):
    raise _Timeout("timed out")


def _inputs(model: onnx.ModelProto, path: str) -> dict[str, np.ndarray]:
    shapes = {}
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if any(not d.HasField("dim_value") for d in dims):
            rank = len(dims)

            def size(i: int) -> int:
                if i == 0:
                    return 2
                if rank == 2 and "wav" in os.path.basename(path):
                    return 3200
                return 64 if rank == 4 else 8

            shapes[value.name] = [d.dim_value if d.HasField("dim_value") else size(i) for i, d in enumerate(dims)]
    inputs = make_inputs(model, shapes)
    for name, value in inputs.items():
        if value.dtype.kind in "iu":
            if "mask" in name:
                inputs[name] = np.ones_like(value)
            elif "token_type" in name or "segment" in name:
                inputs[name] = np.clip(value, 0, 1)
    return inputs


def _flat(value):
    return [x for item in value for x in _flat(item)] if isinstance(value, (list, tuple)) else [value]


def _max_error(expected, got) -> float:
    errors = [0.0]
    for e, g in zip(_flat(expected), _flat(got)):
        if isinstance(e, torch.Tensor) and e.numel():
            if e.is_floating_point():
                errors.append(float((e.double() - g.double()).abs().max()))
            else:
                errors.append(float((e != g).sum()))
    return max(errors)


def check(path: str, mode: str) -> dict:
    record: dict = {"model": path, "mode": mode}
    model = onnx.load(path, load_external_data=True)
    module = onnx2torch.ConvertModel(path)
    args = _torch_args(module, model, _inputs(model, path))
    if mode == "code":
        with tempfile.TemporaryDirectory() as folder:
            code, _ = export_code(module, os.path.join(folder, "net.py"), example_inputs=args)
            source = Path(code).read_text()
        record.update(lines=source.count("\n"), numpy="import numpy" in source, restore="_restore(" in source)
    elif mode == "export":
        graph_inputs = {v.name: v for v in model.graph.input}
        dynamic = []
        for name, arg in zip(module.onnx_input_names, args):
            dims = graph_inputs[name].type.tensor_type.shape.dim
            symbolic = dims and not dims[0].HasField("dim_value") and isinstance(arg, torch.Tensor) and arg.dim() > 0
            dynamic.append({0: torch.export.Dim.AUTO} if symbolic else None)
        record["dynamic_batch"] = any(dynamic)
        program = torch.export.export(module, tuple(args), dynamic_shapes=tuple(dynamic), strict=False)
        bigger = [torch.cat([a, a]) if d else a for a, d in zip(args, dynamic)]
        with torch.no_grad():
            record["max_error"] = _max_error(module(*bigger), program.module()(*bigger))
    elif mode == "compile":
        torch._dynamo.reset()
        torch._dynamo.config.allow_rnn = True
        compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
        with torch.no_grad():
            record["max_error"] = _max_error(module(*args), compiled(*args))
    elif mode == "meta":
        module.to("meta")(*[a.to("meta") if isinstance(a, torch.Tensor) else a for a in args])
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/tmp/onnx2torch_zoo")
    parser.add_argument("--mode", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--filter", default="")
    parser.add_argument("--max_mb", type=float, default=40.0, help="skip files larger than this")
    parser.add_argument("--jsonl", help="append one JSON record per model and mode here")
    parser.add_argument("--timeout", type=int, default=240, help="seconds per model and mode")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.disable(logging.CRITICAL)
    files = sorted(f for f in glob.glob(os.path.join(args.work, "**", "*.onnx"), recursive=True)
                   if os.path.getsize(f) <= args.max_mb * 1e6 and args.filter in f)
    signal.signal(signal.SIGALRM, _alarm)
    out = open(args.jsonl, "a", encoding="utf-8") if args.jsonl else None  # noqa: SIM115
    for mode in args.mode:
        passed = 0
        for path in files:
            started = time.perf_counter()
            signal.alarm(args.timeout)
            try:
                record = check(path, mode)
                record["ok"] = True
                passed += 1
            except BaseException as exc:  # noqa: BLE001 - a report, never an abort
                if isinstance(exc, KeyboardInterrupt):
                    raise
                record = {"model": path, "mode": mode, "ok": False,
                          "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}
            finally:
                signal.alarm(0)
            record["model"] = os.path.relpath(path, args.work)
            record["seconds"] = round(time.perf_counter() - started, 1)
            print(json.dumps(record), flush=True)
            if out:
                out.write(json.dumps(record) + "\n")
                out.flush()
        print(f"== {mode}: {passed} / {len(files)} models pass", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
