"""ONNX's own node conformance cases, one test each, through ``ConvertModel(simplify=False)``.

Each case runs in a forked child with a time limit (``CONFORMANCE_TIMEOUT``, default 30 s) and is
compared with its expected outputs by the rules of ``tools/conformance.py`` (rtol 1e-3,
atol 1e-5, exact dtypes).  Cases listed in ``tests/conformance_xfail.py`` (or the file named by
``CONFORMANCE_XFAIL``) are expected to fail; one of them that passes fails its test, so the list
stays honest.

    pytest tests/test_conformance.py -n 2 -q              # everything, a few minutes
    pytest tests/test_conformance.py -k "gemm or matmul"  # some cases
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from tests import conformance_xfail

ROOT = Path(__file__).resolve().parent.parent


def _load_harness():
    name = "onnx2torch_conformance"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "conformance.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


conformance = _load_harness()
CASES = conformance.select()
# CONFORMANCE_XFAIL=path reads another expected-failure file (to try a regenerated list).
XFAIL = (
    conformance.read_xfail(os.environ["CONFORMANCE_XFAIL"])
    if os.environ.get("CONFORMANCE_XFAIL")
    else conformance_xfail.XFAIL
)


@pytest.mark.parametrize("name", CASES)
def test_node_case(name):
    result = conformance.run_isolated(name, conformance.DEFAULT_TIMEOUT)
    reason = XFAIL.get(name)
    if reason is not None:
        if result.passed:
            pytest.fail(
                f"{name} passes now but is listed in tests/conformance_xfail.py: delete its entry",
                pytrace=False,
            )
        pytest.xfail(reason)
    assert result.passed, f"{result.status}: {result.why}"


def test_xfail_entries_are_cases():
    unknown = sorted(set(XFAIL) - set(CASES))
    assert not unknown, f"tests/conformance_xfail.py lists cases onnx does not have: {unknown}"


# --- the comparison rules themselves --------------------------------------------------------
@pytest.mark.parametrize(
    "expected,got,ok",
    [
        (np.array([1.0, np.nan], np.float32), np.array([1.0005, np.nan], np.float32), True),
        (np.array([1.0], np.float32), np.array([1.01], np.float32), False),
        (np.array([1.0], np.float32), np.array([1.0], np.float64), False),  # dtype must match
        (np.array([1, 2], np.int64), np.array([1, 2], np.int32), False),
        (np.array([1, 2], np.int64), np.array([1, 3], np.int64), False),
        (np.array(5.0, np.float32), np.array([5.0], np.float32), True),  # one element either way
        (np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32), False),
        (np.array([1, -2], ml_dtypes.int4), np.array([1, -2], np.int8), True),  # int4 carried as int8
        (np.array([1.5], ml_dtypes.float4_e2m1fn), np.array([1.5], np.float32), True),
        (np.array([1.5], ml_dtypes.bfloat16), np.array([1.5], ml_dtypes.bfloat16), True),
        (np.array([1.5], ml_dtypes.bfloat16), np.array([1.5], np.float32), False),  # not as float32
        (np.array(["a", "b"], dtype=object), np.array(["a", "b"], dtype=object), True),
        ([np.array([1.0], np.float32)], [np.array([1.0], np.float32)], True),
        ([np.array([1.0], np.float32)], [], False),
        (None, None, True),
        (None, np.array([1.0], np.float32), False),
    ],
)
def test_compare_rules(expected, got, ok):
    assert (conformance.compare(expected, got) is None) == ok
