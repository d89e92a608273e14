"""How minisnn uses the process (:mod:`minisnn.runtime`): thread-wait defaults at import, the
thread counts and the allocator setting the command-line tools apply, and the pool of
recycled cache buffers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

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


SET_THREADS_PROBE = (
    "import json, sys, numpy, threadpoolctl; from minisnn.runtime import set_threads; "
    "got = set_threads(int(sys.argv[1])); "
    "blas = [i['num_threads'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas']; "
    "print(json.dumps({'got': got, 'blas_now': blas}))"
)


# CPU-seconds the process burns while its main thread sleeps right after a 2-thread product:
# OpenBLAS's idle worker spins for OPENBLAS_THREAD_TIMEOUT (2**28 cycles by default, ~0.1 s)
SPIN_PROBE = """
import time, numpy as np
import minisnn, threadpoolctl
print(any(i.get("internal_api") == "openblas" and i.get("threading_layer") == "pthreads"
          for i in threadpoolctl.threadpool_info()))
threadpoolctl.threadpool_limits(2, user_api="blas")
a = np.ones((1500, 1500), np.float32)
a @ a
t0 = time.process_time()
time.sleep(0.3)
print(time.process_time() - t0)
"""


def _idle_cpu_after_product(**overrides):
    env = {k: v for k, v in os.environ.items() if k not in minisnn.THREAD_WAIT_DEFAULTS}
    env.update(overrides)
    out = subprocess.run([sys.executable, "-c", SPIN_PROBE], env=env, capture_output=True, text=True, check=True)
    pthreads_openblas, cpu = out.stdout.split()
    return pthreads_openblas == "True", float(cpu)


def test_an_openblas_that_numpy_started_first_is_told_to_let_its_threads_sleep():
    """``import numpy`` before ``import minisnn``: OpenBLAS read its (default) timeout first;
    the import has it read the environment again and restart its threads."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: OpenBLAS starts no worker thread to spin")
    found, spinning = _idle_cpu_after_product(OPENBLAS_THREAD_TIMEOUT="28")  # the user's own value is kept
    if not found:
        pytest.skip("no OpenBLAS with pthreads in this process (another BLAS): nothing to restart")
    if spinning < 0.05:
        pytest.skip(f"could not see OpenBLAS spin here ({spinning:.3f} CPU-s in 0.3 s): nothing to compare")
    _, sleeping = _idle_cpu_after_product()
    assert sleeping < 0.25 * spinning, (sleeping, spinning)


def test_set_threads_sets_numba_and_the_blas_numpy_loaded():
    # in a child: the thread pools are the process's, and this one's must stay as they are
    cpus = os.cpu_count() or 1
    for n in sorted({1, min(2, cpus)}):
        out = subprocess.run([sys.executable, "-c", SET_THREADS_PROBE, str(n)], capture_output=True, text=True,
                             check=True)
        result = json.loads(out.stdout)
        assert result["got"]["numba"] == n
        assert result["blas_now"], "numpy's BLAS was not found by threadpoolctl"
        assert result["blas_now"] == [n] * len(result["blas_now"])
        assert [b["num_threads"] for b in result["got"]["blas"]] == result["blas_now"]


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


def test_recycled_buffers_are_reused_only_when_nothing_uses_them(monkeypatch):
    """A recycled array is a view of a pooled buffer; the buffer goes to a new caller only
    once every view of it is gone (a strided view of a reshape keeps it busy too)."""
    import numpy as np

    from minisnn.ops import scratch as S

    monkeypatch.setattr(S, "RECYCLE_MIN_BYTES", 1)
    S.release()
    a = S.recycled((40, 10), np.float32)
    a[...] = 1.0
    kept = a.reshape(-1)[::3]  # a view of a view
    del a
    b = S.recycled((40, 10), np.float32)
    b[...] = 2.0
    assert not np.shares_memory(b, kept) and np.all(kept == 1.0)
    del kept
    c = S.recycled((400,), np.float32)  # same size: the first buffer is free again
    assert len(S._local.pool) == 2 and not np.shares_memory(c, b)
    assert S.recycled((7,), np.float32).shape == (7,)  # another size: a new buffer
    S.release()


def test_conv_caches_survive_the_next_steps_with_recycling(monkeypatch):
    """With every column matrix recycled, a cache still gives the same gradients after later
    forward passes, and a dropped cache's buffer is taken again by the next one."""
    import numpy as np

    from minisnn.ops import conv2d_backward, conv2d_forward
    from minisnn.ops import scratch as S

    monkeypatch.setattr(S, "RECYCLE_MIN_BYTES", 1)
    monkeypatch.setattr("minisnn.ops.conv.DIRECT_MAX_WORK", -1)
    S.release()
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 3, 3, 9, 9))
    w = rng.standard_normal((4, 3, 3, 3))
    dy = rng.standard_normal((3, 4, 9, 9))
    y1, c1 = conv2d_forward(x1, w, None, stride=1, padding=1)
    expected = conv2d_backward(dy, c1)
    y2, c2 = conv2d_forward(x2, w, None, stride=1, padding=1)  # c1 still alive: a new buffer
    assert len(S._local.pool) == 2
    for got, want in zip(conv2d_backward(dy, c1), expected):
        np.testing.assert_array_equal(got, want)
    del c1
    conv2d_forward(x1, w, None, stride=1, padding=1)  # takes c1's buffer
    assert len(S._local.pool) == 2
    S.release()
