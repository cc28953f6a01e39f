"""Regenerate the supported-operator list in README.md from the converter registry.

    python tools/gen_docs.py

Rewrites the block between ``<!-- ops:start -->`` and ``<!-- ops:end -->``.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import onnx2torch  # noqa: E402,F401 - registers the converters
from onnx2torch.registry import registered_ops  # noqa: E402


def ops_markdown() -> str:
    by_domain: dict[str, list[str]] = {}
    for (domain, op_type), sinces in registered_ops().items():
        versions = ", ".join(str(s) for s in sinces)
        by_domain.setdefault(domain or "ai.onnx (default)", []).append(f"`{op_type}` ({versions})")
    lines = [f"{sum(len(v) for v in by_domain.values())} operators; the numbers are the opsets from which each "
             "converter's semantics hold (a model's opset picks the highest one not above it)."]
    for domain, ops in by_domain.items():
        lines += ["", f"**{domain}**: " + ", ".join(ops)]
    return "\n".join(lines)


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    block = f"<!-- ops:start -->\n{ops_markdown()}\n<!-- ops:end -->"
    new = re.sub(r"<!-- ops:start -->.*?<!-- ops:end -->", lambda m: block, text, flags=re.S)
    readme.write_text(new)
    print(f"updated {readme}")


if __name__ == "__main__":
    main()
