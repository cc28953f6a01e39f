"""Test setup: make the repository root importable (tests import `tests.helpers` and the CLI),
and give each test its own seeded random data."""
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def _seed_module_rng(request):
    """Test modules draw inputs from a module-level ``rng`` / ``RNG`` / ``_rng``; reseeding it
    from the test's name makes each test draw the same data however the tests are ordered or
    split between xdist workers (a test must not pass or fail with its neighbours)."""
    module = request.module
    for name in ("rng", "RNG", "_rng"):
        if isinstance(getattr(module, name, None), np.random.Generator):
            setattr(module, name, np.random.default_rng(zlib.crc32(request.node.nodeid.encode())))
