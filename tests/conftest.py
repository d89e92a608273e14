"""Shared test set-up: hypothesis profiles and the ``rng`` fixture.

Profiles (all with ``deadline=None``, because the first call of a kernel JIT-compiles it):

* ``default`` - about 30 examples per property;
* ``ci``      - fewer examples, derandomised; chosen when the ``CI`` environment variable is set;
* ``nojit``   - fewest examples; chosen when ``NUMBA_DISABLE_JIT=1`` (the im2col kernels then
  run as plain Python loops).

``HYPOTHESIS_PROFILE=<name>`` overrides the choice.  No example database is written
(``database=None``) and hypothesis keeps its other files (constants cache, failure patches) in
the temp directory unless ``HYPOTHESIS_STORAGE_DIRECTORY`` says otherwise, so a test run leaves
nothing behind in the tree.
"""

from __future__ import annotations

import os
import sys
import tempfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

# tests/naive.py and tests/strategies.py are imported as plain modules by the test files.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "minisnn-hypothesis"))

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"

_common = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("default", max_examples=30, **_common)
settings.register_profile("ci", max_examples=12, derandomize=True, **_common)
settings.register_profile("nojit", max_examples=6, derandomize=True, **_common)


def _profile() -> str:
    if os.environ.get("HYPOTHESIS_PROFILE"):
        return os.environ["HYPOTHESIS_PROFILE"]
    if NO_JIT:
        return "nojit"
    if os.environ.get("CI"):
        return "ci"
    return "default"


settings.load_profile(_profile())


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's id: reproducible, but different for each test."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
