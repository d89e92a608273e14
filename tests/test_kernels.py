"""Every registered Numba kernel against its NumPy reference (generic over KERNELS).

The registry is read at collection time, so a kernel registered later is tested here without
touching this file.  For each kernel, on its own example arguments:

* fast == reference: the returned values *and* every array argument afterwards (kernels may
  update state in place), floats to a tight tolerance, integers and booleans exactly;
* the fast kernel gives bit-identical results with 1 thread and with 2 threads;
* ``warmup()`` compiles (or, with ``NUMBA_DISABLE_JIT=1``, just runs) every kernel.
"""

from __future__ import annotations

import copy
import os
import sys

import numba
import numpy as np
import pytest

from minisnn import kernels
from minisnn.kernels import KERNELS

NAMES = sorted(KERNELS)
FLOAT_TOL = dict(rtol=1e-10, atol=1e-12)


def _example(pair):
    """The kernel's example arguments, from a fixed seed (the same for every call in a test)."""
    return pair.example(np.random.default_rng(20240611))


def _outputs(result) -> list:
    """Flatten a kernel's return value (array, scalar, tuple or None) to a list."""
    if result is None:
        return []
    if isinstance(result, (tuple, list)):
        return [item for r in result for item in _outputs(r)]
    return [result]


def _run(fn, args):
    """Call ``fn`` on a deep copy of ``args``; return (outputs, the array arguments afterwards)."""
    args = copy.deepcopy(args)
    out = _outputs(fn(*args))
    return out, [a for a in args if isinstance(a, np.ndarray)]


def _assert_same(label, got, expected, exact=False):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, f"{label}: shape {got.shape} != {expected.shape}"
    if exact or not np.issubdtype(expected.dtype, np.inexact):
        np.testing.assert_array_equal(got, expected, err_msg=label)
    else:
        np.testing.assert_allclose(got, expected, err_msg=label, **FLOAT_TOL)


def _assert_runs_equal(run_a, run_b, exact=False):
    (out_a, args_a), (out_b, args_b) = run_a, run_b
    assert len(out_a) == len(out_b), f"{len(out_a)} outputs != {len(out_b)}"
    for i, (a, b) in enumerate(zip(out_a, out_b)):
        _assert_same(f"output {i}", a, b, exact)
    for i, (a, b) in enumerate(zip(args_a, args_b)):
        _assert_same(f"array argument {i} after the call", a, b, exact)


def test_registry_is_not_empty():
    assert {"im2col", "col2im"} <= set(KERNELS)
    for name, pair in KERNELS.items():
        assert pair.name == name and callable(pair.reference) and callable(pair.fast)


@pytest.mark.parametrize("name", NAMES)
def test_fast_matches_reference(name):
    pair = KERNELS[name]
    args = _example(pair)
    _assert_runs_equal(_run(pair.fast, args), _run(pair.reference, args))


@pytest.mark.parametrize("name", NAMES)
def test_result_does_not_depend_on_thread_count(name):
    pair = KERNELS[name]
    args = _example(pair)
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only (NUMBA_NUM_THREADS < 2): nothing to compare 1 thread against")
    previous = kernels.get_num_threads()
    many = 2
    try:
        kernels.set_num_threads(1)
        one = _run(pair.fast, args)
        kernels.set_num_threads(many)
        several = _run(pair.fast, args)
    finally:
        kernels.set_num_threads(previous)
    assert kernels.get_num_threads() == previous
    _assert_runs_equal(several, one, exact=True)


#: Python lines a registered kernel may run in :mod:`minisnn.kernels` on its example: a compiled
#: kernel runs none, a wrapper a few dozen (argument checks, choosing a compiled loop; 37 at
#: most when this was written); a loop left in Python runs thousands (1612 for
#: ``winograd_output`` without its ``@jit``, 6943 for ``lif_run32`` with its scan uncompiled).
PYTHON_LINES = 100


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1: every kernel runs as Python")
@pytest.mark.parametrize("name", NAMES)
def test_kernel_loops_are_compiled(name):
    """A kernel that lost its ``@jit`` still equals its reference, as plain Python: count the
    Python lines it runs in the kernels package instead (a tracer sees only Python frames)."""
    pair = KERNELS[name]
    pair.fast(*_example(pair))  # compiled (or loaded) before counting
    args = _example(pair)
    package = os.path.dirname(kernels.__file__) + os.sep
    lines = 0

    def trace(frame, event, arg):
        nonlocal lines
        if not frame.f_code.co_filename.startswith(package):
            return None
        lines += event == "line"
        return trace

    previous = sys.gettrace()  # (a coverage tool's or a debugger's, put back after)
    sys.settrace(trace)
    try:
        pair.fast(*args)
    finally:
        sys.settrace(previous)
    assert lines <= PYTHON_LINES, f"{name}: ran {lines} Python lines in minisnn.kernels; is a loop missing @jit?"


def test_the_line_count_sees_a_kernel_without_jit(monkeypatch):
    """The check above fails for the slip it is for: ``winograd_output`` as plain Python."""
    if numba.config.DISABLE_JIT:
        pytest.skip("NUMBA_DISABLE_JIT=1: every kernel runs as Python")
    from minisnn.kernels import winograd

    pair = KERNELS["winograd_output"]
    monkeypatch.setitem(KERNELS, "winograd_output",
                        kernels.KernelPair(pair.name, pair.reference, winograd.output_numba.py_func, pair.example))
    with pytest.raises(AssertionError, match="missing @jit"):
        test_kernel_loops_are_compiled("winograd_output")


def test_warmup_runs_every_registered_kernel(monkeypatch):
    called = []

    def recording(pair):
        def fast(*args):
            called.append(pair.name)
            return pair.fast(*args)
        return fast

    recorded = {name: kernels.KernelPair(name, pair.reference, recording(pair), pair.example)
                for name, pair in KERNELS.items()}
    monkeypatch.setattr(kernels, "KERNELS", recorded)
    kernels.warmup()
    assert called == list(KERNELS), "warmup must run each registered kernel once, in order"
    if numba.config.DISABLE_JIT:
        return
    for name, pair in KERNELS.items():
        if isinstance(pair.fast, numba.core.registry.CPUDispatcher):
            assert pair.fast.signatures, f"{name}: warmup left the kernel uncompiled"
