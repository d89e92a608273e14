"""add_runs (LLVM vector code through numba's @intrinsic) against its scalar loop, exactly."""

import numpy as np
import pytest

import numba
from minisnn.kernels.simd import LANES, add_runs, add_runs_python


@numba.njit  # not cached: a cache keyed on this file would keep add_runs' old machine code
def _call(acc, a0, w, offs, vals, m, nchunks):  # an intrinsic is called from compiled code only
    add_runs(acc, a0, w, offs, vals, m, nchunks)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, nchunks", [(0, 2), (1, 1), (3, 0), (3, 3), (7, 2), (2, 4), (5, 7), (4, 10)])
def test_add_runs_equals_the_scalar_loop(rng, dtype, m, nchunks):
    acc = rng.standard_normal(11 * LANES + 3).astype(dtype)  # room for 10 chunks (groups of 4, 2 and 1)
    w = rng.standard_normal(20 * LANES + 5).astype(dtype)
    offs = rng.integers(0, w.size - nchunks * LANES + 1, size=8).astype(np.int64)
    vals = (rng.standard_normal(8) * 100).astype(dtype)
    a0 = 3  # not a multiple of the vector width: unaligned loads and stores
    expected = acc.copy()
    add_runs_python(expected, a0, w, offs, vals, m, nchunks)
    got = acc.copy()
    _call(got, a0, w, offs, vals, m, nchunks)
    np.testing.assert_array_equal(got, expected)
    if m and nchunks:
        assert not np.array_equal(got, acc), "nothing was added: the test would prove nothing"
    np.testing.assert_array_equal(got[: a0], acc[: a0])  # untouched outside the run
    np.testing.assert_array_equal(got[a0 + nchunks * LANES :], acc[a0 + nchunks * LANES :])
