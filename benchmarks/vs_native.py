"""Converted vs native PyTorch: transformers models with random weights are exported to ONNX
(with the TorchScript exporter and with the dynamo exporter), converted back with onnx2torch and
timed against the model they came from, alternately, in one process, at the same thread count.
The ratio converted / native is what the conversion costs (below 1.0: fusion won time back).

    python benchmarks/vs_native.py [--exporter legacy,dynamo] [--threads 2] [--reps 9] [--only hf_vit,...]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import HF_CASES, alternate, cached_export, example_input, geomean, hf_model, print_table  # noqa: E402

from onnx2torch import ConvertModel  # noqa: E402


def run(exporters: list[str], reps: int, only: set[str] | None) -> dict[str, float]:
    geomeans = {}
    for exporter in exporters:
        rows, ratios = [], []
        for name, (kind, config, inputs) in HF_CASES.items():
            if only and name not in only:
                continue
            native = hf_model(kind, **config)
            x = example_input(inputs)
            path = cached_export(name, lambda: native, x, exporter)  # noqa: B023 - called right here
            started = time.perf_counter()
            converted = ConvertModel(path).eval()
            convert_s = time.perf_counter() - started
            with torch.inference_mode():
                error = float((converted(x) - native(x)).abs().max())
                median, best = alternate(lambda: native(x), lambda: converted(x), reps)  # noqa: B023
            if error <= 1e-3:
                ratios.append((median[1] / median[0], best[1] / best[0]))
            rows.append([name, f"{error:.1e}", f"{median[0] * 1e3:.2f}", f"{median[1] * 1e3:.2f}",
                         f"{median[1] / median[0]:.3f}", f"{best[0] * 1e3:.2f}", f"{best[1] * 1e3:.2f}",
                         f"{best[1] / best[0]:.3f}", f"{convert_s:.2f}"])
        print(f"### converted vs native, {exporter} exporter, {torch.get_num_threads()} threads, {reps} runs each")
        print_table(["model", "max abs error", "native ms (median)", "converted ms (median)", "ratio (median)",
                     "native ms (best)", "converted ms (best)", "ratio (best)", "conversion s"], rows)
        geomeans[exporter] = (geomean([r[0] for r in ratios]), geomean([r[1] for r in ratios]))
        print(f"geomean converted / native ({exporter}): {geomeans[exporter][0]:.3f} (medians), "
              f"{geomeans[exporter][1]:.3f} (best runs) over {len(ratios)}/{len(rows)} models matching within 1e-3\n",
              flush=True)
    return geomeans


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exporter", default="legacy,dynamo", help="legacy, dynamo or both (comma-separated)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--only", default="", help="comma-separated model names")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    run(args.exporter.split(","), args.reps, set(filter(None, args.only.split(","))))


if __name__ == "__main__":
    main()
