"""Converted model vs onnxruntime on the same ONNX files, same inputs, same thread count: the
Caffe2-era models that ship with the onnx package (real architectures, constant weights), the
transformers models of ``vs_native.py`` (both exporters) and, with ``--manifest``, any corpus in
the format of ``tools/zoo.py --manifest``.

    python benchmarks/vs_onnxruntime.py [--threads 2] [--reps 9] [--manifest M.json --models DIR] [--only a,b]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CACHE, HF_CASES, alternate, cached_export, example_input, geomean, hf_model, print_table  # noqa: E402

from onnx2torch import ConvertModel  # noqa: E402
from onnx2torch.verify import make_inputs  # noqa: E402


def corpus(manifest: str | None, models_dir: str | None) -> list[tuple[str, str, dict]]:
    """``(name, path, spec)`` for every model to time."""
    found = []
    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    for path in sorted(glob.glob(str(light / "*.onnx"))):
        found.append((Path(path).stem.replace("light_", "caffe2_"), path, {}))
    for exporter in ("legacy", "dynamo"):
        for name, (kind, config, inputs) in HF_CASES.items():
            path = cached_export(name, lambda: hf_model(kind, **config), example_input(inputs), exporter)  # noqa: B023
            found.append((f"{name}_{exporter}", str(path), {"kind": inputs}))
    if manifest:
        for name, spec in json.load(open(manifest)).items():
            found.append((name, os.path.join(models_dir or os.path.dirname(manifest), spec["file"]), spec))
    return found


def feeds_for(model: onnx.ModelProto, spec: dict) -> dict[str, np.ndarray]:
    if spec.get("kind") == "ids":
        return {"input": np.random.default_rng(0).integers(0, 1000, (1, 64)).astype(np.int64)}
    if spec.get("kind") == "img":
        return {"input": np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)}
    shapes = {}
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if any(not d.HasField("dim_value") for d in dims):
            shapes[value.name] = [d.dim_value if d.HasField("dim_value") else spec.get("dims", {}).get(d.dim_param, 1)
                                  for d in dims]
    return make_inputs(model, shapes or None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--manifest", help="a tools/zoo.py manifest of more models")
    parser.add_argument("--models", help="the folder the manifest's files are in")
    parser.add_argument("--only", default="", help="comma-separated model names")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    import onnxruntime as ort  # noqa: PLC0415

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # NOTE: onnxruntime's idle workers spin; on a machine with as many cores as threads they
    # would take the cores from torch's threads between the two timings.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    rows, ratios = [], []
    only = set(filter(None, args.only.split(",")))
    for name, path, spec in corpus(args.manifest, args.models):
        if only and name not in only:
            continue
        model = onnx.load(path)
        try:
            feeds = feeds_for(model, spec)
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            module = ConvertModel(path).eval()
        except Exception as exc:  # noqa: BLE001 - a benchmark reports and goes on
            rows.append([name, f"skipped: {type(exc).__name__}"] + [""] * 6)
            continue
        initializers = {t.name for t in model.graph.initializer}
        names = [v.name for v in model.graph.input if v.name not in initializers]
        args_t = [torch.from_numpy(feeds[n]) for n in names]
        ort_feeds = {n: feeds[n] for n in names}
        with torch.inference_mode():
            out = module(*args_t)
            out = out[0] if isinstance(out, (tuple, list)) else out
            ref = session.run(None, ort_feeds)[0]
            rel = float(np.abs(out.numpy() - ref).max() / (np.abs(ref).max() or 1.0))
            median, best = alternate(lambda: session.run(None, ort_feeds), lambda: module(*args_t), args.reps)  # noqa: B023
        ratios.append((median[1] / median[0], best[1] / best[0]))
        rows.append([name, f"{rel:.1e}", f"{median[0] * 1e3:.2f}", f"{median[1] * 1e3:.2f}",
                     f"{median[1] / median[0]:.2f}", f"{best[0] * 1e3:.2f}", f"{best[1] * 1e3:.2f}",
                     f"{best[1] / best[0]:.2f}"])
    print(f"### converted vs onnxruntime, {args.threads} threads, {args.reps} runs each")
    print_table(["model", "rel error", "ort ms (median)", "converted ms (median)", "ratio (median)", "ort ms (best)",
                 "converted ms (best)", "ratio (best)"], rows)
    print(f"geomean converted / onnxruntime: {geomean([r[0] for r in ratios]):.3f} (medians), "
          f"{geomean([r[1] for r in ratios]):.3f} (best runs) over {len(ratios)} models\n", flush=True)


if __name__ == "__main__":
    main()
