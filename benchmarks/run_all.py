"""Every benchmark in one run on one machine: converted vs native PyTorch (both exporters),
converted vs onnxruntime, and conversion time / peak memory of the large models.

    python benchmarks/run_all.py [--threads 2] [--reps 9]
"""
from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import conversion  # noqa: E402
import vs_native  # noqa: E402
import vs_onnxruntime  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    import onnx  # noqa: PLC0415
    import onnxruntime  # noqa: PLC0415
    import torch  # noqa: PLC0415

    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads available; torch "
          f"{torch.__version__}, onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}\n", flush=True)
    vs_native.main(["--threads", str(args.threads), "--reps", str(args.reps)])
    vs_onnxruntime.main(["--threads", str(args.threads), "--reps", str(args.reps)])
    conversion.main([])


if __name__ == "__main__":
    main()
