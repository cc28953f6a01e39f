"""ONNX node conformance cases that onnx2torch is expected to fail, with why.

Read by tests/test_conformance.py: a case listed here that passes FAILS the test, so delete its
line when a converter starts to pass it.  Regenerate with
``python tools/conformance.py --write-xfail tests/conformance_xfail.py`` (reasons already written
here are kept; new entries get the first line of their error as a placeholder).
"""

XFAIL: dict[str, str] = {
}
