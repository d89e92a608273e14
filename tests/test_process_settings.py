"""The process-wide settings minisnn makes: thread-wait defaults at import, and the allocator
setting the command-line tools apply (``reuse_freed_memory``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import minisnn

PROBE = (
    "import os, json; import minisnn; "
    "print(json.dumps({k: os.environ.get(k) for k in minisnn.THREAD_WAIT_DEFAULTS}))"
)


def _env_after_import(**overrides):
    env = {k: v for k, v in os.environ.items() if k not in minisnn.THREAD_WAIT_DEFAULTS}
    env.update(overrides)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_import_sets_the_thread_wait_defaults():
    assert _env_after_import() == minisnn.THREAD_WAIT_DEFAULTS


def test_import_keeps_the_users_own_values():
    got = _env_after_import(OMP_WAIT_POLICY="ACTIVE")
    assert got["OMP_WAIT_POLICY"] == "ACTIVE"
    assert got["OPENBLAS_THREAD_TIMEOUT"] == minisnn.THREAD_WAIT_DEFAULTS["OPENBLAS_THREAD_TIMEOUT"]


def test_reuse_freed_memory_reports_whether_it_applied():
    """True where the C library is glibc (these Linux machines), False elsewhere; arrays
    allocated afterwards are ordinary arrays."""
    import platform

    import numpy as np

    applied = minisnn.reuse_freed_memory()
    assert isinstance(applied, bool)
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert applied
    a = np.ones(10_000_000, np.float32)  # 40 MB: above the 32 MiB heap limit, still fine
    assert float(a.sum()) == 10_000_000.0
