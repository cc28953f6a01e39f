"""Conversion time and peak memory for large models: transformers' ViT-B/16 (``ViTModel`` at its
default size, ~346 MB), ResNet-50 (``ResNetModel``, ~100 MB) and Swin-T (``SwinModel``, ~110 MB)
with random weights.  Each conversion runs in a fresh process: the library is imported and warmed
up on a one-node model, the ONNX file is loaded with ``onnx.load``, then ``ConvertModel(model)``
(simplification included) is timed.  Peak memory is reported two ways: the growth of the peak
resident set over the level reached after loading (``ru_maxrss``, as ``../shared/bench/models.py``
measures it; loading itself peaks at about twice the file), and the peak of the conversion alone
above the resident set before it (the kernel's high-water mark reset first through
``/proc/self/clear_refs``): the weights' one copy plus whatever conversion holds on the way.

    python benchmarks/conversion.py [--exporter legacy|dynamo] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cached_export, hf_model, print_table  # noqa: E402

LARGE = {"vit_b16": "ViT", "resnet50": "ResNet", "swin_t": "Swin"}


def child(path: str) -> None:
    """Run in a fresh interpreter: convert ``path`` once and print the measurements as JSON."""
    import resource  # noqa: PLC0415
    import time  # noqa: PLC0415

    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper  # noqa: PLC0415

    from onnx2torch import ConvertModel  # noqa: PLC0415

    warnings.filterwarnings("ignore")
    tiny = helper.make_graph([helper.make_node("Relu", ["a"], ["b"])], "warm",
                             [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 2])],
                             [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 2])])
    ConvertModel(helper.make_model(tiny, opset_imports=[helper.make_opsetid("", 13)]))
    model = onnx.load(path)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_before = _status_kb("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:  # NOTE: "5" resets the peak RSS (VmHWM), Linux >= 4.0
            f.write("5")
    except OSError:
        rss_before = None
    wall, cpu = time.perf_counter(), time.process_time()
    module = ConvertModel(model)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    own_mb = (_status_kb("VmHWM") - rss_before) / 1024 if rss_before is not None else float("nan")
    params = sum(p.numel() for p in module.parameters())
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_mb": peak_mb, "own_peak_mb": own_mb, "params": params}))


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exporter", default="legacy", choices=["legacy", "dynamo"])
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per model (the median is shown)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return
    import torch  # noqa: PLC0415

    warnings.filterwarnings("ignore")
    rows = []
    for name, kind in LARGE.items():
        path = cached_export(f"{name}_full", lambda: hf_model(kind), torch.randn(1, 3, 224, 224), args.exporter)  # noqa: B023
        size_mb = os.path.getsize(path) / 1e6
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run([sys.executable, __file__, "--child", str(path)], capture_output=True, text=True,
                                 check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        runs.sort(key=lambda r: r["wall_s"])
        mid = runs[len(runs) // 2]
        mb = 2**20 / 1e6  # MiB -> MB
        spread = f" ({runs[0]['wall_s']:.3f}-{runs[-1]['wall_s']:.3f})" if len(runs) > 1 else ""
        rows.append([name, f"{size_mb:.0f}", f"{mid['wall_s']:.3f}{spread}", f"{mid['cpu_s']:.3f}",
                     f"{mid['peak_mb'] * mb:.0f} ({mid['peak_mb'] * mb / size_mb:.2f}x)",
                     f"{mid['own_peak_mb'] * mb:.0f} ({mid['own_peak_mb'] * mb / size_mb:.2f}x)",
                     f"{mid['params'] / 1e6:.1f} M"])
    print(f"### conversion of large models ({args.exporter} exporter), median of {args.repeat} fresh processes")
    print_table(["model", "file MB", "conversion s (wall; min-max)", "conversion s (cpu)", "peak growth after load (models.py)",
                 "conversion's own peak", "parameters"], rows)


if __name__ == "__main__":
    main()
